//! Assessments: what an evidence pack seals. One is produced, deterministically, for every
//! accepted scan (a scan assessment, a post-deployment delta or a verification, by trigger) and
//! every approval.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::delta::{DeltaEntry, Verification};
use crate::events::Acknowledgement;
use crate::ids::{EventId, TenantId, Timestamp, sha256_hex};
use crate::model::EgressClass;
use crate::paths::{AuthorityPath, Grade, OwnerState};
use crate::snapshot::{DeploymentRef, ScanTrigger};

/// What an assessment is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentKind {
    /// A manual or scheduled scan.
    ScanAssessment,
    /// An approval: a baseline locked.
    Approval,
    /// A deployment's rescan compared with the baselines.
    PostDeploymentDelta,
    /// A remediation rescan verified against the baselines.
    Verification,
}

impl AssessmentKind {
    /// The assessment kind that a scan with this trigger produces.
    pub fn for_trigger(trigger: ScanTrigger) -> AssessmentKind {
        match trigger {
            ScanTrigger::Manual | ScanTrigger::Scheduled => AssessmentKind::ScanAssessment,
            ScanTrigger::Deployment => AssessmentKind::PostDeploymentDelta,
            ScanTrigger::Remediation => AssessmentKind::Verification,
        }
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AssessmentKind::ScanAssessment => "scan_assessment",
            AssessmentKind::Approval => "approval",
            AssessmentKind::PostDeploymentDelta => "post_deployment_delta",
            AssessmentKind::Verification => "verification",
        }
    }
}

impl fmt::Display for AssessmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Path counts by grade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeCounts {
    /// Grade A paths.
    #[serde(rename = "A")]
    pub a: u64,
    /// Grade B paths.
    #[serde(rename = "B")]
    pub b: u64,
    /// Grade C paths.
    #[serde(rename = "C")]
    pub c: u64,
}

/// Path counts by egress class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressCounts {
    /// `llm_api` paths.
    pub llm_api: u64,
    /// `cloud_storage` paths.
    pub cloud_storage: u64,
    /// `external_http` paths.
    pub external_http: u64,
    /// `internal` paths.
    pub internal: u64,
}

/// Path counts by ownership state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCounts {
    /// `assigned` paths.
    pub assigned: u64,
    /// `orphaned` paths.
    pub orphaned: u64,
    /// `decayed` paths.
    pub decayed: u64,
}

/// The shape of a set of paths, with a digest that pins the exact set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureSummary {
    /// Number of paths.
    pub paths_total: u64,
    /// Paths reaching a sensitive domain.
    pub sensitive_paths: u64,
    /// By grade.
    pub by_grade: GradeCounts,
    /// By egress class.
    pub by_egress: EgressCounts,
    /// By ownership state.
    pub by_owner_state: OwnerCounts,
    /// `sha256:<hex>` over the sorted lines `path_id:fingerprint\n`.
    pub path_set_digest: String,
}

impl PostureSummary {
    /// Summarises paths (any order).
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a AuthorityPath>) -> PostureSummary {
        let mut summary = PostureSummary::default();
        let mut lines = Vec::new();
        for path in paths {
            summary.paths_total += 1;
            summary.sensitive_paths += u64::from(path.domain.sensitive);
            match path.grade {
                Grade::A => summary.by_grade.a += 1,
                Grade::B => summary.by_grade.b += 1,
                Grade::C => summary.by_grade.c += 1,
            }
            match path.egress {
                EgressClass::LlmApi => summary.by_egress.llm_api += 1,
                EgressClass::CloudStorage => summary.by_egress.cloud_storage += 1,
                EgressClass::ExternalHttp => summary.by_egress.external_http += 1,
                EgressClass::Internal => summary.by_egress.internal += 1,
            }
            match path.owner_state {
                OwnerState::Assigned => summary.by_owner_state.assigned += 1,
                OwnerState::Orphaned => summary.by_owner_state.orphaned += 1,
                OwnerState::Decayed => summary.by_owner_state.decayed += 1,
            }
            lines.push(format!("{}:{}\n", path.path_id, path.fingerprint));
        }
        lines.sort();
        summary.path_set_digest = format!("sha256:{}", sha256_hex(lines.concat().as_bytes()));
        summary
    }
}

/// The scan an assessment covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRef {
    /// Scan id.
    pub scan_id: String,
    /// Connector.
    pub connector: String,
    /// Why it ran.
    pub trigger: ScanTrigger,
    /// When the sources were read.
    pub observed_at: Timestamp,
    /// The deployment behind it.
    pub deployment: Option<DeploymentRef>,
}

/// How the tenant's findings moved with this scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingMovement {
    /// Findings open after the scan.
    pub open: u64,
    /// Findings this scan opened.
    pub opened: Vec<String>,
    /// Findings this scan resolved.
    pub resolved: Vec<String>,
}

/// A baselined scope as this scan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeAssessment {
    /// Canonical scope text.
    pub scope: String,
    /// Baseline version compared against.
    pub baseline_version: u32,
    /// The scope's posture now.
    pub posture: PostureSummary,
    /// Path-level delta against the baseline.
    pub delta: Vec<DeltaEntry>,
    /// The verdict, for remediation rescans.
    pub verification: Option<Verification>,
}

/// What a scan-based pack seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanAssessment {
    /// The scan.
    pub scan: ScanRef,
    /// The whole tenant's posture after the scan.
    pub posture: PostureSummary,
    /// Findings.
    pub findings: FindingMovement,
    /// Every baselined scope, compared with its baseline.
    pub scopes: Vec<ScopeAssessment>,
}

/// What an approval pack seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAssessment {
    /// Canonical scope text.
    pub scope: String,
    /// The baseline version created.
    pub baseline_version: u32,
    /// Who approved.
    pub approver: String,
    /// When.
    pub approved_at: Timestamp,
    /// Their notes.
    pub note: String,
    /// Findings accepted with due dates.
    pub acknowledged: Vec<Acknowledgement>,
    /// Findings open in the scope at approval.
    pub open_findings: Vec<String>,
    /// The posture locked as the baseline.
    pub posture: PostureSummary,
    /// Every path of the baseline.
    pub paths: Vec<AuthorityPath>,
}

/// The content of one evidence pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// What it is about.
    pub kind: AssessmentKind,
    /// The tenant.
    pub tenant: TenantId,
    /// The event assessed.
    pub assessed_event: EventId,
    /// Its log position.
    pub assessed_seq: u64,
    /// First log position this assessment accounts for (one after the previous assessment).
    pub log_from: u64,
    /// When the assessed fact happened.
    pub occurred_at: Timestamp,
    /// Present for scan-based kinds.
    pub scan: Option<ScanAssessment>,
    /// Present for approvals.
    pub approval: Option<ApprovalAssessment>,
}
