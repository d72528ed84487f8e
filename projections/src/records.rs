//! The rows of the views, beyond the domain's own types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sv0_domain::assessment::PostureSummary;
use sv0_domain::events::Acknowledgement;
use sv0_domain::findings::{Finding, Severity};
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{CoverageMode, ScanTrigger};
use sv0_domain::{EventId, TenantId, Timestamp};

/// What happened to a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Folded into the views.
    Applied,
    /// Not folded: incomplete or inconsistent; nothing of it was applied.
    Rejected,
    /// Held by a deletion circuit breaker until someone releases it.
    Quarantined,
    /// Held, and then a newer scan was applied: releasing it would undo newer data.
    Superseded,
}

impl ScanStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScanStatus::Applied => "applied",
            ScanStatus::Rejected => "rejected",
            ScanStatus::Quarantined => "quarantined",
            ScanStatus::Superseded => "superseded",
        }
    }
}

/// A scan as the views saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScanRecord {
    /// Scan id.
    pub scan_id: String,
    /// What happened to it.
    pub status: ScanStatus,
    /// Why it was rejected or quarantined.
    pub reason: Option<String>,
    /// Position of its `scan.completed`.
    pub completed_seq: u64,
    /// Position of the event that applied it (its `scan.completed`, or the release).
    pub applied_seq: Option<u64>,
    /// Position of the `scan.quarantined` event that recorded the quarantine.
    pub quarantine_seq: Option<u64>,
    /// Who released it, if someone did.
    pub released_by: Option<String>,
    /// Why it ran.
    pub trigger: Option<ScanTrigger>,
    /// Full, targeted or a delta of the previous scan (absent for a rejected scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CoverageMode>,
    /// When the sources were read.
    pub observed_at: Option<Timestamp>,
    /// Entities in it.
    pub entity_count: u64,
    /// Entities it removed (or would have, when quarantined).
    pub removed_entities: u64,
    /// Paths it removed (or would have, when quarantined).
    pub removed_paths: u64,
    /// Paths after applying it.
    pub paths_total: u64,
}

/// What a scan changed, entity by entity (ids per list name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntityDiff {
    /// Entities new in this scan (empty for a tenant's first scan: see `first_scan`).
    pub added: BTreeMap<String, Vec<String>>,
    /// For a tenant's first scan, where every entity is new: how many per list, instead of
    /// their ids (which are the tenant's whole inventory, a million rows for a large tenant).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_scan: BTreeMap<String, u64>,
    /// Entities that changed.
    pub changed: BTreeMap<String, Vec<String>>,
    /// Entities removed: the scan read their list completely and did not see them.
    pub removed: BTreeMap<String, Vec<String>>,
    /// Entities kept but marked unobserved: their list was read with failures.
    pub unobserved: BTreeMap<String, Vec<String>>,
}

impl EntityDiff {
    /// Number of entities in each category: (added, changed, removed, unobserved).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let n = |m: &BTreeMap<String, Vec<String>>| m.values().map(|v| v.len() as u64).sum::<u64>();
        let first: u64 = self.first_scan.values().sum();
        (n(&self.added) + first, n(&self.changed), n(&self.removed), n(&self.unobserved))
    }

    /// How many entities of one list the scan added and removed.
    pub fn added_and_removed(&self, list: sv0_domain::snapshot::EntityList) -> (u64, u64) {
        let n = |m: &BTreeMap<String, Vec<String>>| m.get(list.name()).map_or(0, |v| v.len() as u64);
        (n(&self.added) + self.first_scan.get(list.name()).copied().unwrap_or(0), n(&self.removed))
    }
}

/// What the views know of a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TenantState {
    /// Last applied scan.
    pub last_scan_id: String,
    /// Position of the event that applied it.
    pub last_scan_seq: u64,
    /// When its sources were read: the tenant's current time.
    pub last_observed_at: Timestamp,
    /// Paths now.
    pub paths_total: u64,
    /// The posture of all paths, kept up to date path by path (its digest is computed on demand).
    pub posture: PostureSummary,
    /// Entities per list name.
    pub entities: BTreeMap<String, u64>,
    /// Open findings, by severity.
    pub open: OpenFindings,
}

/// How many findings are open, by severity, and how many of them are evidence gaps: kept by
/// the fold as findings open and resolve, so that no screen counts them by reading them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenFindings {
    /// Critical.
    pub critical: u64,
    /// High.
    pub high: u64,
    /// Medium.
    pub medium: u64,
    /// Low.
    pub low: u64,
    /// Of all of them, the evidence gaps.
    pub evidence_gaps: u64,
}

impl OpenFindings {
    /// All open findings.
    pub fn total(&self) -> u64 {
        self.critical + self.high + self.medium + self.low
    }

    /// The count of one severity.
    pub fn of(&self, severity: Severity) -> u64 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }

    /// `finding` opened.
    pub fn open(&mut self, finding: &Finding) {
        self.step(finding, |n| *n += 1);
    }

    /// `finding` resolved (or is replaced by its next version).
    pub fn close(&mut self, finding: &Finding) {
        self.step(finding, |n| *n = n.saturating_sub(1));
    }

    fn step(&mut self, finding: &Finding, f: impl Fn(&mut u64)) {
        f(match finding.severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
        });
        if finding.rule_id == sv0_domain::findings::EVIDENCE_GAP.id {
            f(&mut self.evidence_gaps);
        }
    }
}

/// Where a finding is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// The rule still matches.
    Open,
    /// The rule no longer matches.
    Resolved,
}

impl FindingStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

/// Where a finding stands at a time: the lifecycle open → acknowledged → resolved, where an
/// acknowledgement past its due date makes the finding overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// The rule matches and nobody has accepted it.
    Open,
    /// An approver accepted it until a due date that has not passed.
    Acknowledged,
    /// Accepted, but the due date has passed and the rule still matches.
    Overdue,
    /// The rule no longer matches.
    Resolved,
}

impl Lifecycle {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Lifecycle::Open => "open",
            Lifecycle::Acknowledged => "acknowledged",
            Lifecycle::Overdue => "overdue",
            Lifecycle::Resolved => "resolved",
        }
    }
}

/// An approver's acceptance of an open finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingAck {
    /// Who accepted it.
    pub by: String,
    /// When it must be resolved.
    pub due: Timestamp,
    /// When it was accepted.
    pub at: Timestamp,
}

/// A finding with its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingRecord {
    /// The rule's latest result on the subject.
    pub finding: Finding,
    /// Open or resolved.
    pub status: FindingStatus,
    /// Position of the scan that opened it.
    pub opened_seq: u64,
    /// When (scan time) it opened.
    pub opened_at: Timestamp,
    /// Position of the scan that resolved it.
    pub resolved_seq: Option<u64>,
    /// When (scan time) it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// The acknowledgement, if an approver accepted it.
    pub acknowledgement: Option<FindingAck>,
}

impl FindingRecord {
    /// A finding opened at log position `seq`, time `at`.
    pub fn opened(finding: Finding, seq: u64, at: Timestamp) -> FindingRecord {
        FindingRecord {
            finding,
            status: FindingStatus::Open,
            opened_seq: seq,
            opened_at: at,
            resolved_seq: None,
            resolved_at: None,
            acknowledgement: None,
        }
    }

    /// This finding resolved at log position `seq`, time `at`.
    pub fn resolved(self, seq: u64, at: Timestamp) -> FindingRecord {
        FindingRecord { status: FindingStatus::Resolved, resolved_seq: Some(seq), resolved_at: Some(at), ..self }
    }

    /// Where the finding stands at `at` (the tenant's latest scan time, so that the answer
    /// comes from the log, not the wall clock).
    pub fn lifecycle(&self, at: Timestamp) -> Lifecycle {
        match (&self.status, &self.acknowledgement) {
            (FindingStatus::Resolved, _) => Lifecycle::Resolved,
            (FindingStatus::Open, None) => Lifecycle::Open,
            (FindingStatus::Open, Some(ack)) if ack.due < at => Lifecycle::Overdue,
            (FindingStatus::Open, Some(_)) => Lifecycle::Acknowledged,
        }
    }
}

/// The current baseline version of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaselineHead {
    /// The scope.
    pub scope: Scope,
    /// Latest version.
    pub version: u32,
    /// Position of the approval that created it.
    pub approval_seq: u64,
    /// Since when (the scan's position and time) the scope has drifted from this version, and
    /// by how many paths; `None` while its posture matches (approved).
    #[serde(default)]
    pub drifted: Option<Drift>,
}

/// A scope's drift from its approved baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Drift {
    /// Position of the scan that first showed the drift.
    pub since_seq: u64,
    /// Its time.
    pub since: Timestamp,
    /// Paths that break the match at the latest scan.
    pub paths: u64,
    /// The latest scan's disposition.
    pub decision: sv0_domain::disposition::Decision,
}

/// Where a baseline version stands: the latest version is `approved` or `drifted`, older ones
/// `superseded` (re-assessed by a newer approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineState {
    /// The scope's posture matches it.
    Approved,
    /// A scan showed a delta beyond the drift threshold: it asks for re-assessment.
    Drifted,
    /// A newer approval replaced it.
    Superseded,
}

impl BaselineState {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            BaselineState::Approved => "approved",
            BaselineState::Drifted => "drifted",
            BaselineState::Superseded => "superseded",
        }
    }
}

impl BaselineHead {
    /// The state of one of this scope's versions.
    pub fn state_of(&self, version: u32) -> BaselineState {
        match (&self.drifted, version == self.version) {
            (_, false) => BaselineState::Superseded,
            (Some(_), true) => BaselineState::Drifted,
            (None, true) => BaselineState::Approved,
        }
    }
}

/// The approval of a baseline version: a `Baseline` row read with only these fields (the
/// row's other fields, its paths above all, are skipped, not decoded).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BaselineApproval {
    /// Version, from 1.
    pub version: u32,
    /// Who approved.
    pub approver: String,
    /// When.
    pub approved_at: Timestamp,
}

/// One locked baseline version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Baseline {
    /// The scope.
    pub scope: Scope,
    /// Version, from 1.
    pub version: u32,
    /// Who approved.
    pub approver: String,
    /// When.
    pub approved_at: Timestamp,
    /// Notes.
    pub note: String,
    /// Findings accepted with due dates.
    pub acknowledged: Vec<Acknowledgement>,
    /// Findings open in the scope at approval.
    pub open_findings: Vec<String>,
    /// The approved paths.
    pub paths: Vec<AuthorityPath>,
    /// Position of the posture the approver saw.
    pub posture_seq: u64,
    /// Position of the approval.
    pub approval_seq: u64,
    /// The approval event.
    pub event_id: EventId,
    /// The posture digest the approver reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_digest: Option<String>,
    /// The additions declared with the approval; `None`: no intent was declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// The digest of the plan the intent was predicted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
}

impl Baseline {
    /// The delta of a scope's current paths and findings against this baseline: the path-level
    /// entries plus the credential exposures the approver neither saw open nor acknowledged.
    pub fn delta(&self, current: &[AuthorityPath], findings: &[FindingRecord]) -> Vec<sv0_domain::delta::DeltaEntry> {
        let known: std::collections::BTreeSet<String> =
            self.open_findings.iter().cloned().chain(self.acknowledged.iter().map(|a| a.finding_id.clone())).collect();
        let open: Vec<Finding> =
            findings.iter().filter(|r| r.status == FindingStatus::Open).map(|r| r.finding.clone()).collect();
        let mut entries = sv0_domain::delta::compute(&self.paths, current, self.intent.as_deref());
        entries.extend(sv0_domain::delta::credential_exposures(&open, &known, current));
        entries.sort_by(|a, b| (&a.path_id, a.kind).cmp(&(&b.path_id, b.kind)));
        entries
    }
}

/// A key registered to sign a tenant's packs, with where in the chain it may sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyRecord {
    /// Hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Signature algorithm.
    pub algorithm: String,
    /// The raw public key, hex.
    pub public_key: String,
    /// The first pack index it may sign.
    pub valid_from: u64,
    /// The last pack index it may sign, once rotated out.
    pub valid_to: Option<u64>,
    /// The key that replaced it.
    pub replaced_by: Option<String>,
    /// Why it was rotated out.
    pub rotation_reason: Option<String>,
    /// Position of the event that registered it.
    pub registered_seq: u64,
    /// Position of the event that rotated it out.
    pub retired_seq: Option<u64>,
}

impl KeyRecord {
    /// Whether it still signs new packs.
    pub fn current(&self) -> bool {
        self.valid_to.is_none()
    }
}

/// An API token as the views hold it: never the token, only its secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenRecord {
    /// Public id.
    pub token_id: String,
    /// The one tenant it acts for.
    pub tenant: TenantId,
    /// A name for people.
    pub name: String,
    /// Who acts with it.
    pub principal: String,
    /// What it may do.
    pub roles: Vec<sv0_domain::access::Role>,
    /// Hex SHA-256 of its secret part.
    pub secret_sha256: String,
    /// Who issued it.
    pub issued_by: String,
    /// When.
    pub issued_at: Timestamp,
    /// Position of its `token.issued` event.
    pub issued_seq: u64,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// By whom.
    pub revoked_by: Option<String>,
    /// When it stops authenticating (`None`: until revoked).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// The head of a tenant's pack chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PackHead {
    /// Index of the last pack, from 1.
    pub index: u64,
    /// Its id.
    pub pack_id: String,
    /// Its digest.
    pub digest: String,
    /// Position of the assessment it seals.
    pub assessed_seq: u64,
    /// Position of its `pack.sealed` event.
    pub seq: u64,
}
