//! The disposition of a scope after a scan: `approved`, `requires_review` or `rejected`, with
//! every reason listed. Built-in rules (the catalogue's delta and verification rules,
//! `SV0-D*`, `SV0-V001`) read the scope's delta against its approved baseline, the rollback
//! advice and, for a remediation rescan, the verification. Deterministic: the same delta gives
//! the same disposition, reasons in the same order.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::delta::{DeltaEntry, DeltaKind, RollbackAdvice, Verification};
use crate::findings::{self, Rule};
use crate::intent::IntentStatus;
use crate::paths::{Grade, OwnerState};

/// What a CI gate does with the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Nothing needs a person: proceed.
    Approved,
    /// A person must look (and approve a new baseline, or remediate) before proceeding.
    RequiresReview,
    /// Do not proceed.
    Rejected,
}

impl Decision {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::RequiresReview => "requires_review",
            Decision::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule's contribution to a disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reason {
    /// The rule (`SV0-D001`...), or the id a customer policy gave.
    pub rule: String,
    /// What the rule decides.
    pub decision: Decision,
    /// One sentence.
    pub text: String,
    /// The paths behind it.
    pub path_ids: Vec<String>,
}

/// A scope's disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Disposition {
    /// The strictest decision of the reasons; `approved` when there are none.
    pub decision: Decision,
    /// Every reason, in rule order.
    pub reasons: Vec<Reason>,
    /// When surgical remediation is impractical, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackAdvice>,
}

impl Disposition {
    /// A disposition from its reasons: the strictest decision wins.
    pub fn of(reasons: Vec<Reason>, rollback: Option<RollbackAdvice>) -> Disposition {
        let decision = reasons.iter().map(|r| r.decision).max().unwrap_or(Decision::Approved);
        Disposition { decision, reasons, rollback }
    }
}

fn reason(rule: &Rule, decision: Decision, entries: &[&DeltaEntry], what: &str) -> Option<Reason> {
    if entries.is_empty() {
        return None;
    }
    let path_ids: Vec<String> =
        entries.iter().map(|e| e.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    Some(Reason { rule: rule.id.to_string(), decision, text: format!("{} {what}", entries.len()), path_ids })
}

/// The built-in disposition of a scope's delta.
pub fn decide(
    entries: &[DeltaEntry],
    rollback: Option<RollbackAdvice>,
    verification: Option<&Verification>,
) -> Disposition {
    use Decision::{Rejected, RequiresReview};
    // An intended addition was declared and approved: the rules judge what nobody approved.
    let of = |keep: &dyn Fn(&DeltaEntry) -> bool| -> Vec<&DeltaEntry> {
        entries.iter().filter(|e| e.intent != Some(IntentStatus::Intended) && keep(e)).collect()
    };
    let grown = |e: &DeltaEntry| e.kind.is_new_path() || e.kind == DeltaKind::PermissionsExpanded;
    let covered = |e: &DeltaEntry| {
        matches!(
            e.kind,
            DeltaKind::NewSensitivePath
                | DeltaKind::PermissionsExpanded
                | DeltaKind::NewEgressBoundary
                | DeltaKind::EgressChanged
                | DeltaKind::NewIdentity
                | DeltaKind::CredentialExposure
                | DeltaKind::OwnershipGap
        ) || (e.kind == DeltaKind::OwnershipChanged && e.owner_state != OwnerState::Assigned)
    };
    let mut reasons: Vec<Reason> = [
        reason(
            &findings::DELTA_SENSITIVE_PATH,
            RequiresReview,
            &of(&|e| e.kind == DeltaKind::NewSensitivePath),
            "new path(s) into a sensitive domain",
        ),
        reason(
            &findings::DELTA_UNAPPROVED_EXECUTION,
            Rejected,
            &of(&|e| grown(e) && e.grade == Grade::A),
            "unapproved path(s) with grade A execution evidence",
        ),
        reason(
            &findings::DELTA_EXPANDED,
            RequiresReview,
            &of(&|e| e.kind == DeltaKind::PermissionsExpanded),
            "approved path(s) with expanded permissions",
        ),
        reason(
            &findings::DELTA_EGRESS,
            RequiresReview,
            &of(&|e| matches!(e.kind, DeltaKind::NewEgressBoundary | DeltaKind::EgressChanged)),
            "new egress boundary or changed egress",
        ),
        reason(
            &findings::DELTA_IDENTITY,
            RequiresReview,
            &of(&|e| e.kind == DeltaKind::NewIdentity),
            "new identity(ies)",
        ),
        reason(
            &findings::DELTA_CREDENTIAL,
            RequiresReview,
            &of(&|e| e.kind == DeltaKind::CredentialExposure),
            "long-lived credential(s) appeared",
        ),
        reason(
            &findings::DELTA_OWNERSHIP,
            RequiresReview,
            &of(&|e| {
                e.kind == DeltaKind::OwnershipGap
                    || (e.kind == DeltaKind::OwnershipChanged && e.owner_state != OwnerState::Assigned)
            }),
            "workload path(s) without an accountable owner",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(advice) = &rollback {
        reasons.push(Reason {
            rule: findings::DELTA_ROLLBACK.id.to_string(),
            decision: Rejected,
            text: advice.reasons.join("; "),
            path_ids: advice.path_ids.clone(),
        });
    }
    reasons.extend(reason(
        &findings::DELTA_FLAGGED,
        RequiresReview,
        &of(&|e| e.flagged && !covered(e)),
        "other flagged change(s)",
    ));
    reasons.extend(reason(
        &findings::DELTA_UNDECLARED,
        RequiresReview,
        &of(&|e| e.intent == Some(IntentStatus::Unintended)),
        "addition(s) the approved intent does not declare",
    ));
    reasons.extend(reason(
        &findings::DELTA_UNDECLARED,
        RequiresReview,
        &of(&|e| e.intent == Some(IntentStatus::Unreviewed)),
        "addition(s) nobody declared: no intent was approved for them",
    ));
    if let Some(v) = verification.filter(|v| !v.matches_baseline) {
        reasons.push(Reason {
            rule: findings::VERIFICATION_MISMATCH.id.to_string(),
            decision: RequiresReview,
            text: v.summary.clone(),
            path_ids: v.unexpected.clone(),
        });
    }
    Disposition::of(reasons, rollback)
}
