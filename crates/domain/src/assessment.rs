//! Assessments: what an evidence pack seals. One is produced, deterministically, for every
//! accepted scan (a scan assessment, a post-deployment delta or a verification, by trigger) and
//! every approval.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::delta::{DeltaEntry, Verification};
use crate::events::Acknowledgement;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ids::{EventId, TenantId, Timestamp};
use crate::model::EgressClass;
use crate::paths::{AuthorityPath, Grade, OwnerState};
use crate::snapshot::{DeploymentRef, ScanTrigger};

/// What an assessment is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentKind {
    /// A manual or scheduled scan.
    ScanAssessment,
    /// An approval: a baseline locked.
    Approval,
    /// A gate's scan before a deployment, compared with the baselines: what the deployment is
    /// about to promote. Never a post-deployment delta.
    PreDeploymentAssessment,
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
            ScanTrigger::PreDeployment => AssessmentKind::PreDeploymentAssessment,
            ScanTrigger::Deployment => AssessmentKind::PostDeploymentDelta,
            ScanTrigger::Remediation => AssessmentKind::Verification,
        }
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AssessmentKind::ScanAssessment => "scan_assessment",
            AssessmentKind::Approval => "approval",
            AssessmentKind::PreDeploymentAssessment => "pre_deployment_assessment",
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OwnerCounts {
    /// `assigned` paths.
    pub assigned: u64,
    /// `orphaned` paths.
    pub orphaned: u64,
    /// `decayed` paths.
    pub decayed: u64,
}

/// The shape of a set of paths, with a digest that pins the exact set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PostureSummary {
    /// Number of paths.
    pub paths_total: u64,
    /// Paths reaching a sensitive domain.
    pub sensitive_paths: u64,
    /// Paths that can never reach grade A until execution logs are enabled.
    pub evidence_gaps: u64,
    /// By grade.
    pub by_grade: GradeCounts,
    /// By egress class.
    pub by_egress: EgressCounts,
    /// By ownership state.
    pub by_owner_state: OwnerCounts,
    /// The path set digest (`path_set_digest`).
    pub path_set_digest: String,
}

impl PostureSummary {
    /// Summarises paths (any order).
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a AuthorityPath>) -> PostureSummary {
        let mut summary = PostureSummary::default();
        let mut lines = Vec::new();
        for path in paths {
            summary.count(path, 1);
            lines.push((path.path_id.as_str(), path.fingerprint.as_str()));
        }
        summary.path_set_digest = path_set_digest(lines);
        summary
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) one path from the counts.
    pub fn count(&mut self, path: &AuthorityPath, sign: i64) {
        let add = |n: &mut u64| *n = n.saturating_add_signed(sign);
        add(&mut self.paths_total);
        if path.domain.sensitive {
            add(&mut self.sensitive_paths);
        }
        if path.evidence_gap {
            add(&mut self.evidence_gaps);
        }
        add(match path.grade {
            Grade::A => &mut self.by_grade.a,
            Grade::B => &mut self.by_grade.b,
            Grade::C => &mut self.by_grade.c,
        });
        add(match path.egress {
            EgressClass::LlmApi => &mut self.by_egress.llm_api,
            EgressClass::CloudStorage => &mut self.by_egress.cloud_storage,
            EgressClass::ExternalHttp => &mut self.by_egress.external_http,
            EgressClass::Internal => &mut self.by_egress.internal,
        });
        add(match path.owner_state {
            OwnerState::Assigned => &mut self.by_owner_state.assigned,
            OwnerState::Orphaned => &mut self.by_owner_state.orphaned,
            OwnerState::Decayed => &mut self.by_owner_state.decayed,
        });
    }
}

/// Buckets of the path set digest: path ids are hex, the first four digits pick the bucket.
pub const DIGEST_BUCKETS: usize = 65_536;

/// The bucket of a path id (its first four hex digits).
pub fn digest_bucket(path_id: &str) -> u16 {
    path_id.get(..4).and_then(|p| u16::from_str_radix(p, 16).ok()).unwrap_or(0)
}

/// SHA-256 over the lines `path_id:fingerprint\n` of one bucket, sorted by path id.
pub fn bucket_digest<'a>(sorted_lines: impl IntoIterator<Item = (&'a str, &'a str)>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (path_id, fingerprint) in sorted_lines {
        hasher.update(path_id.as_bytes());
        hasher.update(b":");
        hasher.update(fingerprint.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// The digest of the empty bucket.
pub fn empty_bucket_digest() -> [u8; 32] {
    Sha256::digest(b"").into()
}

/// `sha256:<hex>` over the 65,536 bucket digests in bucket order.
pub fn root_digest(bucket: impl Fn(u16) -> [u8; 32]) -> String {
    let mut hasher = Sha256::new();
    for n in 0..=u16::MAX {
        hasher.update(bucket(n));
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The digest that pins a set of paths, defined so that it can be kept up to date one bucket at
/// a time: lines `path_id:fingerprint\n` are grouped into 65,536 buckets by the first four hex
/// digits of the path id; each bucket's digest is SHA-256 over its lines sorted by path id; the
/// set's digest is `sha256:` + hex SHA-256 over the bucket digests in bucket order.
pub fn path_set_digest<'a>(lines: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut buckets: BTreeMap<u16, Vec<(&str, &str)>> = BTreeMap::new();
    for (path_id, fingerprint) in lines {
        buckets.entry(digest_bucket(path_id)).or_default().push((path_id, fingerprint));
    }
    let digests: BTreeMap<u16, [u8; 32]> = buckets
        .into_iter()
        .map(|(bucket, mut lines)| {
            lines.sort();
            (bucket, bucket_digest(lines))
        })
        .collect();
    let empty = empty_bucket_digest();
    root_digest(|bucket| digests.get(&bucket).copied().unwrap_or(empty))
}

/// The scan an assessment covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingMovement {
    /// Findings open after the scan.
    pub open: u64,
    /// Findings this scan opened.
    pub opened: Vec<String>,
    /// Findings this scan resolved.
    pub resolved: Vec<String>,
}

/// A baselined scope as this scan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// What a CI gate does with the scope: approved, requires review or rejected, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<crate::disposition::Disposition>,
}

/// What a scan-based pack seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The posture digest the approver reviewed, and its log position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_digest: Option<String>,
    /// The log position of the posture approved.
    #[serde(default)]
    pub posture_seq: u64,
    /// The additions the approval declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Vec<crate::intent::IntentItem>>,
    /// The digest of the plan the intent was predicted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
}

/// The content of one evidence pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
