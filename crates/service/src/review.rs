//! The review document of a scope: everything an analyst reads before approving it, in one
//! answer (`sv0 review`, `GET /api/v1/review`). It ends with the `posture_digest` the approval
//! names, so that what is approved is what was read.

use std::collections::BTreeMap;

use serde::Serialize;
use sv0_domain::findings::{self, RuleKind};
use sv0_domain::model::EgressClass;
use sv0_domain::paths::{AuthorityPath, Grade, OwnerState};
use sv0_domain::scope::Scope;
use sv0_domain::{TenantId, Timestamp};
use sv0_log::EventLog;
use sv0_projections::{BaselineState, FindingRecord, FindingStatus};

use crate::error::ServiceError;
use crate::service::{Posture, Queries};

/// One scope, ready to review.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Review {
    /// The tenant.
    pub tenant: TenantId,
    /// The scope.
    pub scope: Scope,
    /// The digest of the paths and open findings below: what `approve --posture` names.
    pub posture_digest: String,
    /// The log position the document stands at.
    pub log_position: u64,
    /// The baseline in force, if the scope was approved before.
    pub baseline: Option<BaselineInForce>,
    /// Counts of the paths.
    pub counts: Counts,
    /// Every path of the scope.
    pub paths: Vec<AuthorityPath>,
    /// The open findings of the scope.
    pub findings: Vec<FindingRecord>,
    /// Open identity and credential conditions (orphaned credentials, long-lived secrets, ...).
    pub governance: Vec<Condition>,
    /// What keeps paths from being confirmed by execution evidence.
    pub evidence_gaps: EvidenceGaps,
}

/// The scope's latest baseline.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BaselineInForce {
    /// Its version.
    pub version: u32,
    /// `approved` or `drifted`.
    pub state: BaselineState,
    /// Who approved it.
    pub approver: String,
    /// When.
    pub approved_at: Timestamp,
    /// How many paths it holds.
    pub paths: usize,
    /// The posture digest it approved (none for approvals recorded before digests).
    pub posture_digest: Option<String>,
    /// How many intended additions it declared; `None`: no intent was declared, so every
    /// addition after it is `unreviewed`.
    pub intent_items: Option<usize>,
}

/// Paths counted by grade, egress class and ownership state. Every class is present, zero or not.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// All paths.
    pub paths: usize,
    /// Paths into a sensitive domain.
    pub sensitive: usize,
    /// By evidence grade: A, B, C.
    pub by_grade: BTreeMap<String, usize>,
    /// By egress class.
    pub by_egress: BTreeMap<String, usize>,
    /// By ownership state.
    pub by_owner_state: BTreeMap<String, usize>,
}

/// One governance condition: the open findings of one rule.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Condition {
    /// `orphaned_credential`, `long_lived_secret` or `identity_hygiene`.
    pub condition: &'static str,
    /// The rule.
    pub rule: String,
    /// Its title.
    pub title: String,
    /// The open findings.
    pub findings: Vec<String>,
}

/// The paths without execution evidence, and what would give them some.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EvidenceGaps {
    /// Paths below grade A: nothing confirms they were exercised.
    pub without_execution_evidence: usize,
    /// Of them, the paths whose destination's execution logs are off or unread: they can never
    /// reach grade A until the logs are enabled.
    pub never_confirmable: usize,
    /// One sentence.
    pub summary: String,
    /// What to enable, one line per destination (from the evidence-gap findings).
    pub actions: Vec<String>,
}

fn condition_of(rule: &str) -> &'static str {
    const ORPHANED: [&str; 6] = [
        findings::UNOWNED_WORKLOAD.id,
        findings::DISABLED_WITH_GRANTS.id,
        findings::EXPIRED_CREDENTIAL.id,
        findings::UNUSED_IDENTITY.id,
        findings::ORPHANED_SERVICE_PRINCIPAL.id,
        findings::DANGLING_ASSIGNMENT.id,
    ];
    const LONG_LIVED: [&str; 3] =
        [findings::LONG_LIVED_SECRET.id, findings::SECRET_SPRAWL.id, findings::STATIC_KEY_IDENTITY.id];
    if ORPHANED.contains(&rule) {
        "orphaned_credential"
    } else if LONG_LIVED.contains(&rule) {
        "long_lived_secret"
    } else {
        "identity_hygiene"
    }
}

fn counted<'a>(
    keys: impl Iterator<Item = &'static str>,
    values: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = keys.map(|k| (k.to_string(), 0)).collect();
    for v in values {
        *out.entry(v.to_string()).or_default() += 1;
    }
    out
}

impl<L: EventLog> Queries<L> {
    /// The review document of a scope now; a scope with no paths and no baseline is an error
    /// (there is nothing to review), as approving it would be.
    pub fn review(&self, tenant: &TenantId, scope: &Scope) -> Result<Review, ServiceError> {
        let Posture { digest, position, paths, .. } = self.posture(tenant, scope)?;
        let findings: Vec<FindingRecord> =
            self.views.findings(tenant, Some(scope))?.into_iter().filter(|r| r.status == FindingStatus::Open).collect();
        let head = self.views.baselines(tenant)?.into_iter().find(|h| h.scope == *scope);
        let baseline = match head {
            Some(head) => self.views.baseline(tenant, scope, Some(head.version))?.map(|b| BaselineInForce {
                version: b.version,
                state: if head.drifted.is_some() { BaselineState::Drifted } else { BaselineState::Approved },
                approver: b.approver,
                approved_at: b.approved_at,
                paths: b.paths.len(),
                posture_digest: b.posture_digest,
                intent_items: b.intent.as_ref().map(Vec::len),
            }),
            None => None,
        };
        if paths.is_empty() && baseline.is_none() {
            return Err(ServiceError::EmptyScope { tenant: tenant.to_string(), scope: scope.canonical() });
        }
        let counts = Counts {
            paths: paths.len(),
            sensitive: paths.iter().filter(|p| p.domain.sensitive).count(),
            by_grade: counted(Grade::ALL.iter().map(Grade::as_str), paths.iter().map(|p| p.grade.as_str())),
            by_egress: counted(
                EgressClass::ALL.iter().map(EgressClass::as_str),
                paths.iter().map(|p| p.egress.as_str()),
            ),
            by_owner_state: counted(
                OwnerState::ALL.iter().map(OwnerState::as_str),
                paths.iter().map(|p| p.owner_state.as_str()),
            ),
        };
        let mut governance: BTreeMap<&str, Vec<&FindingRecord>> = BTreeMap::new();
        for record in &findings {
            if findings::rule(&record.finding.rule_id).is_some_and(|r| r.kind == RuleKind::Entity) {
                governance.entry(record.finding.rule_id.as_str()).or_default().push(record);
            }
        }
        let governance: Vec<Condition> = governance
            .into_iter()
            .map(|(rule, records)| Condition {
                condition: condition_of(rule),
                rule: rule.to_string(),
                title: records[0].finding.title.clone(),
                findings: records.iter().map(|r| r.finding.finding_id.clone()).collect(),
            })
            .collect();
        let evidence_gaps = evidence_gaps(&paths, &findings);
        Ok(Review {
            tenant: tenant.clone(),
            scope: scope.clone(),
            posture_digest: digest,
            log_position: position,
            baseline,
            counts,
            paths,
            findings,
            governance,
            evidence_gaps,
        })
    }
}

fn evidence_gaps(paths: &[AuthorityPath], findings: &[FindingRecord]) -> EvidenceGaps {
    let without = paths.iter().filter(|p| p.grade != Grade::A).count();
    let never = paths.iter().filter(|p| p.evidence_gap).count();
    let actions: Vec<String> = findings
        .iter()
        .filter(|r| r.finding.rule_id == findings::EVIDENCE_GAP.id)
        .flat_map(|r| r.finding.remediation.iter().map(|a| a.text.clone()))
        .collect();
    let summary = if without == 0 {
        "every path has execution evidence (grade A)".to_string()
    } else if actions.is_empty() {
        format!(
            "{without} path(s) have no execution evidence (grade B or C): their destinations' execution logs are read, so a path reaches grade A once it is exercised"
        )
    } else {
        format!(
            "{without} path(s) have no execution evidence (grade B or C), {never} of them can never be confirmed until logs are enabled: {}",
            actions.join("; ")
        )
    };
    EvidenceGaps { without_execution_evidence: without, never_confirmable: never, summary, actions }
}
