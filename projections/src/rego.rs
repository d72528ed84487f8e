//! Customer disposition policies in Rego (the `regorus` engine). The input document is what
//! `sv0 export opa-input` prints; the policy (package `sv0`) defines `decision` and optionally
//! `reasons`. A policy that fails, decides nothing or decides something else than the three
//! decisions gives `rejected` with the error as its reason: never an approval. The engine is
//! built without clock, network or randomness builtins, so evaluation in the fold is
//! deterministic.

use serde_json::{Value, json};
use sv0_domain::TenantId;
use sv0_domain::assessment::PostureSummary;
use sv0_domain::delta::{DeltaEntry, Verification};
use sv0_domain::disposition::{Decision, Disposition, Reason};
use sv0_domain::paths::AuthorityPath;
use sv0_domain::policy::{RegoMode, RegoPolicy};

use crate::records::{FindingRecord, FindingStatus};

/// The rule id of reasons a policy gives without one, and of policy errors.
pub const POLICY_RULE: &str = "policy";

/// What a scope's disposition is decided from.
pub struct DispositionInput<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// Canonical scope text.
    pub scope: &'a str,
    /// The baseline version compared against.
    pub baseline_version: u32,
    /// The scope's paths now.
    pub paths: &'a [AuthorityPath],
    /// The scope's findings (open ones are passed to the policy).
    pub findings: &'a [FindingRecord],
    /// The delta against the baseline.
    pub delta: &'a [DeltaEntry],
    /// The verification, for a remediation rescan.
    pub verification: Option<&'a Verification>,
    /// The built-in rules' disposition (with the rollback advice).
    pub builtin: &'a Disposition,
}

/// The input document a Rego policy sees.
pub fn input_document(input: &DispositionInput<'_>) -> Value {
    let open: Vec<&FindingRecord> = input.findings.iter().filter(|r| r.status == FindingStatus::Open).collect();
    json!({
        "tenant": input.tenant,
        "scope": input.scope,
        "baseline_version": input.baseline_version,
        "posture": PostureSummary::of(input.paths),
        "paths": input.paths,
        "findings": open,
        "delta": input.delta,
        "verification": input.verification,
        "rollback": input.builtin.rollback,
        "builtin": { "decision": input.builtin.decision, "reasons": input.builtin.reasons },
    })
}

/// Checks that a policy compiles, for `sv0 policy set`: a bad policy is refused before it
/// reaches the log.
pub fn check(source: &str) -> Result<(), String> {
    let mut engine = regorus::Engine::new();
    let package = engine.add_policy("policy.rego".to_string(), source.to_string()).map_err(|e| e.to_string())?;
    if package != "data.sv0" {
        return Err(format!("the policy's package is {package}; it must be `package sv0`"));
    }
    Ok(())
}

/// A scope's disposition: the built-in rules over its delta (with the rollback advice), then
/// the tenant's Rego policy, if it has one.
#[allow(clippy::too_many_arguments)]
pub fn scope_disposition(
    policy: Option<&RegoPolicy>,
    tenant: &TenantId,
    scope: &str,
    baseline_version: u32,
    paths: &[AuthorityPath],
    findings: &[FindingRecord],
    delta: &[DeltaEntry],
    verification: Option<&Verification>,
) -> Disposition {
    let builtin = builtin(delta, paths, verification);
    let input =
        DispositionInput { tenant, scope, baseline_version, paths, findings, delta, verification, builtin: &builtin };
    disposition(policy, &input)
}

/// The built-in rules' disposition of a delta, with the rollback advice.
pub fn builtin(delta: &[DeltaEntry], paths: &[AuthorityPath], verification: Option<&Verification>) -> Disposition {
    sv0_domain::disposition::decide(delta, sv0_domain::delta::rollback(delta, paths), verification)
}

/// The disposition under a tenant's Rego policy, or the built-in one when it has none.
pub fn disposition(policy: Option<&RegoPolicy>, input: &DispositionInput<'_>) -> Disposition {
    let Some(policy) = policy else { return input.builtin.clone() };
    let decided = match evaluate(&policy.source, &input_document(input)) {
        Ok(decided) => decided,
        Err(error) => {
            return Disposition {
                decision: Decision::Rejected,
                reasons: vec![Reason {
                    rule: POLICY_RULE.to_string(),
                    decision: Decision::Rejected,
                    text: format!("the Rego policy failed, so nothing is approved: {error}"),
                    path_ids: Vec::new(),
                }],
                rollback: input.builtin.rollback.clone(),
            };
        }
    };
    match policy.mode {
        RegoMode::Replace => {
            let (decision, reasons) = decided;
            Disposition { decision, reasons, rollback: input.builtin.rollback.clone() }
        }
        RegoMode::Extend => {
            let (decision, extra) = decided;
            let mut reasons = input.builtin.reasons.clone();
            reasons.extend(extra);
            Disposition {
                decision: decision.max(input.builtin.decision),
                reasons,
                rollback: input.builtin.rollback.clone(),
            }
        }
    }
}

/// Evaluates `data.sv0` over the input: the decision and the policy's reasons.
fn evaluate(source: &str, input: &Value) -> Result<(Decision, Vec<Reason>), String> {
    let mut engine = regorus::Engine::new();
    engine.add_policy("policy.rego".to_string(), source.to_string()).map_err(|e| e.to_string())?;
    let input = regorus::Value::from_json_str(&input.to_string()).map_err(|e| e.to_string())?;
    engine.set_input(input);
    let results = engine.eval_query("data.sv0".to_string(), false).map_err(|e| e.to_string())?;
    let results = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    let package = &results["result"][0]["expressions"][0]["value"];
    let decision = match package.get("decision") {
        None => return Err("the policy decided nothing: define `default decision := \"requires_review\"`".to_string()),
        Some(Value::String(text)) => match text.as_str() {
            "approved" => Decision::Approved,
            "requires_review" => Decision::RequiresReview,
            "rejected" => Decision::Rejected,
            other => return Err(format!("decision {other:?} is none of approved, requires_review, rejected")),
        },
        Some(other) => return Err(format!("decision is {other}, not a string")),
    };
    let mut reasons = Vec::new();
    let listed = match package.get("reasons") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => return Err(format!("reasons is {other}, not a set or an array")),
    };
    for item in listed {
        reasons.push(match item {
            Value::String(text) => Reason { rule: POLICY_RULE.to_string(), decision, text, path_ids: Vec::new() },
            Value::Object(fields) => Reason {
                rule: fields.get("rule").and_then(Value::as_str).unwrap_or(POLICY_RULE).to_string(),
                decision,
                text: fields.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
                path_ids: fields
                    .get("path_ids")
                    .and_then(Value::as_array)
                    .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            },
            other => return Err(format!("a reason is {other}, neither a string nor an object")),
        });
    }
    Ok((decision, reasons))
}
