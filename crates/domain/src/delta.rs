//! The path-level delta between a baseline and the current posture of a scope, and the
//! verification of a posture against its baseline.
//!
//! A delta is a set comparison on path ids plus a comparison of each common path's
//! properties. Every addition (a new path, expanded permissions, a new identity, a new egress
//! boundary) is `intended`, `unintended` or `unreviewed` against the intent approved with the
//! baseline (`intent`): nothing is guessed to be expected. Entries are also *flagged* for their
//! risk, with a severity: any new reach into a sensitive domain (read medium, write or delete
//! high, admin critical), expanded permissions, a new identity, new LLM or external egress, a
//! new ownership gap, a new long-lived credential. A posture matches its baseline only when no
//! addition is unintended or unreviewed and nothing approved was lost or changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::findings::{DELTA_UNDECLARED, Finding, Severity, finding};
use crate::intent::{self, IntentIndex, IntentItem, IntentStatus};
use crate::model::{EgressClass, Permission};
use crate::paths::{AuthorityPath, DomainRef, Grade, NodeRef, OwnerState};
use crate::remediation::{self, RemediationAction};

/// What changed on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    /// The path did not exist in the baseline.
    NewPath,
    /// The path did not exist in the baseline and reaches a sensitive domain.
    NewSensitivePath,
    /// The baseline path no longer exists.
    RemovedPath,
    /// The path gained permissions.
    PermissionsExpanded,
    /// The path lost permissions.
    PermissionsReduced,
    /// The destination's egress class changed.
    EgressChanged,
    /// The workload can now reach an egress class (`external_http`, `llm_api`) none of its
    /// baseline paths reached; the entry sits on the first path that does.
    NewEgressBoundary,
    /// The evidence grade changed.
    GradeChanged,
    /// The ownership state changed.
    OwnershipChanged,
    /// An identity no baseline path went through; the entry sits on its first new path.
    NewIdentity,
    /// A long-lived credential appeared for the scope's workloads (a long-lived-secret
    /// finding not open or acknowledged at approval); the entry sits on one of its paths.
    CredentialExposure,
    /// A workload that was not in the baseline has no accountable owner; the entry sits on its
    /// first path.
    OwnershipGap,
}

impl DeltaKind {
    /// Whether the entry is about a path that is new in the scope.
    pub fn is_new_path(&self) -> bool {
        matches!(self, DeltaKind::NewPath | DeltaKind::NewSensitivePath)
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeltaKind::NewPath => "new_path",
            DeltaKind::NewSensitivePath => "new_sensitive_path",
            DeltaKind::RemovedPath => "removed_path",
            DeltaKind::PermissionsExpanded => "permissions_expanded",
            DeltaKind::PermissionsReduced => "permissions_reduced",
            DeltaKind::EgressChanged => "egress_changed",
            DeltaKind::NewEgressBoundary => "new_egress_boundary",
            DeltaKind::GradeChanged => "grade_changed",
            DeltaKind::OwnershipChanged => "ownership_changed",
            DeltaKind::NewIdentity => "new_identity",
            DeltaKind::CredentialExposure => "credential_exposure",
            DeltaKind::OwnershipGap => "ownership_gap",
        }
    }
}

impl fmt::Display for DeltaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one path against the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeltaEntry {
    /// What changed.
    pub kind: DeltaKind,
    /// The path.
    pub path_id: String,
    /// Its workload.
    pub workload: NodeRef,
    /// Its identity.
    pub identity: NodeRef,
    /// Its destination.
    pub destination: NodeRef,
    /// Its data domain.
    pub domain: DomainRef,
    /// Permissions now (for a removed path: in the baseline).
    pub permissions: Vec<Permission>,
    /// Permissions gained (all of them for a new path).
    pub added_permissions: Vec<Permission>,
    /// Permissions lost.
    pub removed_permissions: Vec<Permission>,
    /// Grade now (for a removed path: in the baseline).
    pub grade: Grade,
    /// Grade in the baseline, for a changed path.
    pub previous_grade: Option<Grade>,
    /// Egress class now.
    pub egress: EgressClass,
    /// Ownership state now.
    pub owner_state: OwnerState,
    /// For an addition (new path, expanded permissions, new identity, new egress boundary):
    /// whether the approved intent declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentStatus>,
    /// Whether the entry carries a risk that needs a person's attention.
    pub flagged: bool,
    /// Why it is flagged, one reason per item.
    pub flags: Vec<String>,
    /// How serious the flags are: reach into a sensitive domain by its permission (read
    /// medium, write or delete high, admin critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The remediation as one line, when there is something to change.
    pub remediation: Option<String>,
    /// The remediation as separate actions, each naming its record.
    pub remediation_actions: Vec<RemediationAction>,
}

/// Compares the current paths of a scope with its baseline paths, judging each addition
/// against the intent approved with the baseline (`None`: none was declared). Both inputs may
/// be in any order; entries come out sorted by path id, then kind.
pub fn compute(
    baseline: &[AuthorityPath],
    current: &[AuthorityPath],
    intent: Option<&[IntentItem]>,
) -> Vec<DeltaEntry> {
    let index = intent.map(IntentIndex::new);
    let intent = index.as_ref();
    let mut base: Vec<&AuthorityPath> = baseline.iter().collect();
    let mut now: Vec<&AuthorityPath> = current.iter().collect();
    base.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    now.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    let mut entries = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < base.len() || j < now.len() {
        let order = match (base.get(i), now.get(j)) {
            (Some(b), Some(c)) => b.path_id.cmp(&c.path_id),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                entries.push(removed(base[i]));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                entries.push(added(now[j], intent));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if base[i].fingerprint != now[j].fingerprint {
                    changed(base[i], now[j], intent, &mut entries);
                }
                i += 1;
                j += 1;
            }
        }
    }
    boundaries(&base, &now, intent, &mut entries);
    entries.sort_by(|a, b| (&a.path_id, a.kind).cmp(&(&b.path_id, b.kind)));
    entries
}

/// The delta entries about more than one path: new identities, new egress boundaries and
/// ownership gaps of new workloads. `base` and `now` are sorted by path id, so "first" is
/// deterministic.
fn boundaries(
    base: &[&AuthorityPath],
    now: &[&AuthorityPath],
    intent: Option<&IntentIndex<'_>>,
    out: &mut Vec<DeltaEntry>,
) {
    let known_paths: BTreeSet<&str> = base.iter().map(|p| p.path_id.as_str()).collect();
    let known_identities: BTreeSet<&str> = base.iter().map(|p| p.identity.id.as_str()).collect();
    let known_workloads: BTreeSet<&str> = base.iter().map(|p| p.workload.id.as_str()).collect();
    let known_egress: BTreeSet<(&str, EgressClass)> = base.iter().map(|p| (p.workload.id.as_str(), p.egress)).collect();
    let mut identities = BTreeSet::new();
    let mut egress = BTreeSet::new();
    let mut workloads = BTreeSet::new();
    for path in now {
        let new = !known_paths.contains(path.path_id.as_str());
        if new && !known_identities.contains(path.identity.id.as_str()) && identities.insert(path.identity.id.as_str())
        {
            let mut e = entry(DeltaKind::NewIdentity, path);
            e.intent = Some(intent::status(intent, path, &path.permissions));
            e.flags.push(format!("new identity {} ({})", path.identity.name, path.identity.id));
            e.severity = Some(Severity::Medium);
            e.remediation_actions.push(remediation::action(
                "disable_identity",
                &path.identity.id,
                format!(
                    "disable or delete identity {} ({}) unless the deployment was meant to create it",
                    path.identity.name, path.identity.id
                ),
            ));
            out.push(finish(e));
        }
        let boundary = matches!(path.egress, EgressClass::ExternalHttp | EgressClass::LlmApi)
            && !known_egress.contains(&(path.workload.id.as_str(), path.egress));
        if boundary && egress.insert((path.workload.id.as_str(), path.egress)) {
            let mut e = entry(DeltaKind::NewEgressBoundary, path);
            e.intent = Some(intent::status(intent, path, &path.permissions));
            let what = if path.egress == EgressClass::ExternalHttp { "external endpoints" } else { "a model API" };
            e.flags.push(format!("{} can now reach {what} ({})", path.workload.name, path.destination.name));
            e.severity = Some(Severity::Medium);
            e.remediation_actions = path.grants.iter().map(|g| remediation::remove_grant(g, &path.identity)).collect();
            out.push(finish(e));
        }
        if !known_workloads.contains(path.workload.id.as_str())
            && path.owner_state != OwnerState::Assigned
            && workloads.insert(path.workload.id.as_str())
        {
            let mut e = entry(DeltaKind::OwnershipGap, path);
            e.flags.push(format!("new workload {} is {}", path.workload.name, path.owner_state));
            e.severity = Some(Severity::Medium);
            e.remediation_actions.push(remediation::assign_owner(&path.workload));
            out.push(finish(e));
        }
    }
}

/// Credential exposures: long-lived-secret findings open now on the scope's paths that the
/// approver neither saw open nor acknowledged (`known`). Each becomes an entry on the first of
/// its paths in `current`, with the finding's remediation.
pub fn credential_exposures(
    findings: &[crate::findings::Finding],
    known: &BTreeSet<String>,
    current: &[AuthorityPath],
) -> Vec<DeltaEntry> {
    let mut out = Vec::new();
    for finding in findings {
        if finding.rule_id != crate::findings::LONG_LIVED_SECRET.id || known.contains(&finding.finding_id) {
            continue;
        }
        let ids: BTreeSet<&str> = finding.path_ids.iter().map(String::as_str).collect();
        let Some(path) =
            current.iter().filter(|p| ids.contains(p.path_id.as_str())).min_by(|a, b| a.path_id.cmp(&b.path_id))
        else {
            continue;
        };
        let mut e = entry(DeltaKind::CredentialExposure, path);
        e.flags.push(finding.summary.clone());
        e.severity = Some(finding.severity);
        e.remediation_actions.clone_from(&finding.remediation);
        out.push(finish(e));
    }
    out
}

/// Why a scope's delta is better answered by rolling the deployment back than by revoking
/// paths one by one (the source document's three cases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RollbackAdvice {
    /// One reason per case that applies.
    pub reasons: Vec<String>,
    /// The paths behind the reasons.
    pub path_ids: Vec<String>,
}

/// Paths breaking the match must outnumber the intended ones by this factor, and be at least
/// `ROLLBACK_MIN_UNEXPECTED`, before surgical remediation counts as impractical.
pub const ROLLBACK_RATIO: usize = 3;
/// See `ROLLBACK_RATIO`.
pub const ROLLBACK_MIN_UNEXPECTED: usize = 10;

/// Full rollback advice, when surgical remediation is impractical: a new or expanded path
/// granted at a wildcard or subscription-wide scope (it cascades to every resource there); grade
/// A evidence on a path the approver never saw (the authority has already been used); or
/// paths breaking the match far outnumbering the intended ones.
pub fn rollback(entries: &[DeltaEntry], current: &[AuthorityPath]) -> Option<RollbackAdvice> {
    let mut reasons = Vec::new();
    let mut path_ids = BTreeSet::new();
    let by_id: std::collections::BTreeMap<&str, &AuthorityPath> =
        current.iter().map(|p| (p.path_id.as_str(), p)).collect();
    let grown = |e: &&DeltaEntry| e.kind.is_new_path() || e.kind == DeltaKind::PermissionsExpanded;
    let broad: Vec<&DeltaEntry> = entries
        .iter()
        .filter(grown)
        .filter(|e| {
            by_id
                .get(e.path_id.as_str())
                .is_some_and(|p| p.grants.iter().any(|g| crate::findings::is_broad_scope(&g.scope)))
        })
        .collect();
    if !broad.is_empty() {
        reasons.push(format!(
            "{} new or expanded path(s) come from a grant at a wildcard or subscription-wide scope, which cannot be revoked path by path",
            broad.len()
        ));
        path_ids.extend(broad.iter().map(|e| e.path_id.clone()));
    }
    let used: Vec<&DeltaEntry> = entries.iter().filter(grown).filter(|e| e.grade == Grade::A).collect();
    if !used.is_empty() {
        reasons.push(format!(
            "grade A evidence shows {} unapproved path(s) already exercised",
            used.iter().map(|e| e.path_id.as_str()).collect::<BTreeSet<_>>().len()
        ));
        path_ids.extend(used.iter().map(|e| e.path_id.clone()));
    }
    let unexpected: BTreeSet<&str> = entries.iter().filter(|e| breaks_match(e)).map(|e| e.path_id.as_str()).collect();
    let expected: BTreeSet<&str> =
        entries.iter().filter(|e| e.intent == Some(IntentStatus::Intended)).map(|e| e.path_id.as_str()).collect();
    if unexpected.len() >= ROLLBACK_MIN_UNEXPECTED && unexpected.len() > ROLLBACK_RATIO * expected.len() {
        reasons.push(format!(
            "{} path(s) not matching the baseline against {} intended: more than {ROLLBACK_RATIO} times as many, too many to revoke one by one",
            unexpected.len(),
            expected.len()
        ));
        path_ids.extend(unexpected.iter().map(|id| id.to_string()));
    }
    if reasons.is_empty() {
        return None;
    }
    Some(RollbackAdvice { reasons, path_ids: path_ids.into_iter().collect() })
}

fn entry(kind: DeltaKind, path: &AuthorityPath) -> DeltaEntry {
    DeltaEntry {
        kind,
        path_id: path.path_id.clone(),
        workload: path.workload.clone(),
        identity: path.identity.clone(),
        destination: path.destination.clone(),
        domain: path.domain.clone(),
        permissions: path.permissions.clone(),
        added_permissions: Vec::new(),
        removed_permissions: Vec::new(),
        grade: path.grade,
        previous_grade: None,
        egress: path.egress,
        owner_state: path.owner_state,
        intent: None,
        flagged: false,
        flags: Vec::new(),
        severity: None,
        remediation: None,
        remediation_actions: Vec::new(),
    }
}

fn removed(path: &AuthorityPath) -> DeltaEntry {
    let mut e = entry(DeltaKind::RemovedPath, path);
    e.removed_permissions = path.permissions.clone();
    e
}

fn added(path: &AuthorityPath, intent: Option<&IntentIndex<'_>>) -> DeltaEntry {
    let kind = if path.domain.sensitive { DeltaKind::NewSensitivePath } else { DeltaKind::NewPath };
    let mut e = entry(kind, path);
    e.added_permissions = path.permissions.clone();
    e.intent = Some(intent::status(intent, path, &path.permissions));
    flag_reach(&mut e, path, &path.permissions);
    if path.egress == EgressClass::ExternalHttp {
        e.flags.push(format!("new external egress to {}", path.destination.name));
        raise(&mut e, Severity::Medium);
    }
    if path.owner_state != OwnerState::Assigned {
        e.flags.push(format!("new path is {}", path.owner_state));
    }
    e.remediation_actions = path.grants.iter().map(|g| remediation::remove_grant(g, &path.identity)).collect();
    finish(e)
}

fn changed(before: &AuthorityPath, after: &AuthorityPath, intent: Option<&IntentIndex<'_>>, out: &mut Vec<DeltaEntry>) {
    let old: BTreeSet<Permission> = before.permissions.iter().copied().collect();
    let new: BTreeSet<Permission> = after.permissions.iter().copied().collect();
    let gained: Vec<Permission> = new.difference(&old).copied().collect();
    let lost: Vec<Permission> = old.difference(&new).copied().collect();
    if !gained.is_empty() {
        let mut e = entry(DeltaKind::PermissionsExpanded, after);
        e.intent = Some(intent::status(intent, after, &gained));
        let names: Vec<&str> = gained.iter().map(Permission::as_str).collect();
        e.flags.push(format!("permissions expanded: {} on {}", names.join("/"), after.destination.name));
        raise(&mut e, if gained.contains(&Permission::Admin) { Severity::High } else { Severity::Low });
        flag_reach(&mut e, after, &gained);
        let known: BTreeSet<&str> = before.grants.iter().map(|g| g.id.as_str()).collect();
        e.remediation_actions = after
            .grants
            .iter()
            .filter(|g| !known.contains(g.id.as_str()) || g.permissions.iter().any(|p| gained.contains(p)))
            .map(|g| remediation::remove_grant(g, &after.identity))
            .collect();
        e.added_permissions = gained;
        out.push(finish(e));
    }
    if !lost.is_empty() {
        let mut e = entry(DeltaKind::PermissionsReduced, after);
        e.removed_permissions = lost;
        out.push(e);
    }
    if before.egress != after.egress {
        let mut e = entry(DeltaKind::EgressChanged, after);
        if matches!(after.egress, EgressClass::ExternalHttp | EgressClass::LlmApi) {
            e.flags.push(format!("egress became {} (was {})", after.egress, before.egress));
            raise(&mut e, Severity::Medium);
        }
        e.remediation_actions.push(remediation::action(
            "review_destination",
            &after.destination.id,
            format!(
                "review destination {}: its egress changed from {} to {}",
                after.destination.name, before.egress, after.egress
            ),
        ));
        out.push(finish(e));
    }
    if before.grade != after.grade {
        let mut e = entry(DeltaKind::GradeChanged, after);
        e.previous_grade = Some(before.grade);
        out.push(e);
    }
    if before.owner_state != after.owner_state {
        let mut e = entry(DeltaKind::OwnershipChanged, after);
        if after.owner_state != OwnerState::Assigned {
            e.flags.push(format!("ownership became {} (was {})", after.owner_state, before.owner_state));
            raise(&mut e, Severity::Medium);
            e.remediation_actions.push(remediation::assign_owner(&after.workload));
        }
        out.push(finish(e));
    }
}

/// Flags reach into a sensitive domain, whatever the permission: read (or execute) is medium,
/// write or delete high, admin critical.
fn flag_reach(e: &mut DeltaEntry, path: &AuthorityPath, permissions: &[Permission]) {
    if !path.domain.sensitive || permissions.is_empty() {
        return;
    }
    let names: Vec<&str> = permissions.iter().map(Permission::as_str).collect();
    e.flags.push(format!("{} reach into sensitive domain {}", names.join("/"), path.domain.name));
    let severity = if permissions.contains(&Permission::Admin) {
        Severity::Critical
    } else if permissions.iter().any(Permission::modifies) {
        Severity::High
    } else {
        Severity::Medium
    };
    raise(e, severity);
}

/// Keeps the most serious severity (`Critical` orders first).
fn raise(e: &mut DeltaEntry, severity: Severity) {
    e.severity = Some(e.severity.map_or(severity, |s| s.min(severity)));
}

fn finish(mut e: DeltaEntry) -> DeltaEntry {
    e.flagged = !e.flags.is_empty();
    e.remediation = remediation::join(&e.remediation_actions);
    e
}

/// Whether an entry keeps a posture from matching its baseline: an addition nobody declared
/// (`unintended` or `unreviewed`), a removal, a reduction, a changed egress, and any other
/// flagged change (a new ownership gap, a new long-lived credential, ownership lost). An
/// intended addition never does, flagged or not: the approver declared it. A grade change,
/// or ownership becoming assigned, does not.
pub fn breaks_match(entry: &DeltaEntry) -> bool {
    match entry.intent {
        Some(IntentStatus::Intended) => false,
        Some(IntentStatus::Unintended | IntentStatus::Unreviewed) => true,
        None => {
            entry.flagged
                || matches!(
                    entry.kind,
                    DeltaKind::RemovedPath | DeltaKind::PermissionsReduced | DeltaKind::EgressChanged
                )
        }
    }
}

/// The verdict of a rescan against the approved baseline of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    /// The baseline version compared against.
    pub baseline_version: u32,
    /// True when the posture is the baseline plus only intended additions: no addition is
    /// unintended or unreviewed and nothing approved was lost or changed.
    pub matches_baseline: bool,
    /// True when the posture is exactly the baseline.
    pub exact_match: bool,
    /// Paths added as the approved intent declared: ready to approve into a new baseline.
    #[serde(default)]
    pub intended_additions: Vec<String>,
    /// The same list under its former name, kept for one release for scripts that read it.
    #[serde(default)]
    pub expected_additions: Vec<String>,
    /// Paths added although the approved intent does not declare them: remove them, or approve
    /// them with an intent that does.
    #[serde(default)]
    pub unintended: Vec<String>,
    /// Paths added under a baseline approved without declared intent: approve them with an
    /// intent, or remove them.
    #[serde(default)]
    pub unreviewed: Vec<String>,
    /// Paths whose entries still break the match.
    pub unexpected: Vec<String>,
    /// Paths flagged by the previous delta that no longer carry a flag.
    pub resolved: Vec<String>,
    /// One sentence for people.
    pub summary: String,
}

/// Verifies a delta against the baseline; `previously_flagged` are the flagged path ids of the
/// delta this rescan is meant to remediate.
pub fn verify(baseline_version: u32, delta: &[DeltaEntry], previously_flagged: &[String]) -> Verification {
    let unexpected: BTreeSet<String> = delta.iter().filter(|e| breaks_match(e)).map(|e| e.path_id.clone()).collect();
    let with = |status: IntentStatus| -> BTreeSet<String> {
        delta.iter().filter(|e| e.intent == Some(status)).map(|e| e.path_id.clone()).collect()
    };
    let intended: BTreeSet<String> =
        with(IntentStatus::Intended).into_iter().filter(|id| !unexpected.contains(id)).collect();
    let (unintended, unreviewed) = (with(IntentStatus::Unintended), with(IntentStatus::Unreviewed));
    let still_flagged: BTreeSet<&str> = delta.iter().filter(|e| e.flagged).map(|e| e.path_id.as_str()).collect();
    let resolved: Vec<String> = previously_flagged
        .iter()
        .filter(|id| !still_flagged.contains(id.as_str()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let matches_baseline = unexpected.is_empty();
    let exact_match = delta.is_empty();
    let summary = if exact_match {
        format!("posture matches baseline v{baseline_version} exactly")
    } else if matches_baseline {
        let resolved_words = match resolved.len() {
            0 => String::new(),
            n => format!("; {n} flagged path(s) resolved"),
        };
        format!("posture matches baseline v{baseline_version} plus {} intended path(s){resolved_words}", intended.len())
    } else {
        let mut parts = Vec::new();
        if !unintended.is_empty() {
            parts.push(format!("{} unintended addition(s)", unintended.len()));
        }
        if !unreviewed.is_empty() {
            parts.push(format!("{} addition(s) no approved intent declares", unreviewed.len()));
        }
        let rest = unexpected.len()
            - unexpected.iter().filter(|id| unintended.contains(*id) || unreviewed.contains(*id)).count();
        if rest > 0 {
            parts.push(format!("{rest} other path(s) that need action"));
        }
        format!(
            "posture does not match baseline v{baseline_version}: {}; approve the additions with a declared intent or remove them",
            parts.join(", ")
        )
    };
    let intended: Vec<String> = intended.into_iter().collect();
    Verification {
        baseline_version,
        matches_baseline,
        exact_match,
        expected_additions: intended.clone(),
        intended_additions: intended,
        unintended: unintended.into_iter().collect(),
        unreviewed: unreviewed.into_iter().collect(),
        unexpected: unexpected.into_iter().collect(),
        resolved,
        summary,
    }
}

/// The findings of a scope's delta after a deployment: one per path that an undeclared
/// addition (`unintended` or `unreviewed` entries: a new path, expanded permissions, a new
/// identity, a new egress boundary) reaches, of rule `SV0-D010`. Its subject names the scope,
/// so the same path in two scopes under two baselines gives two findings. Each lists the path,
/// the records to change and, as the last resort, approving it with a declared intent.
pub fn undeclared_additions(scope: &str, baseline_version: u32, entries: &[DeltaEntry]) -> Vec<Finding> {
    use crate::intent::IntentStatus;
    let mut by_path: BTreeMap<&str, Vec<&DeltaEntry>> = BTreeMap::new();
    for e in entries {
        if matches!(e.intent, Some(IntentStatus::Unintended | IntentStatus::Unreviewed)) {
            by_path.entry(e.path_id.as_str()).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for (path_id, group) in by_path {
        let first = group[0];
        let unintended = group.iter().any(|e| e.intent == Some(IntentStatus::Unintended));
        let added: BTreeSet<Permission> = group.iter().flat_map(|e| e.added_permissions.iter().copied()).collect();
        let added: Vec<&str> = added.iter().map(Permission::as_str).collect();
        let why = if unintended {
            format!("the intent approved with baseline v{baseline_version} does not declare it")
        } else {
            format!("baseline v{baseline_version} was approved without a declared intent")
        };
        let gained = if added.is_empty() { "authority".to_string() } else { added.join("/") };
        let mut f = finding(
            &DELTA_UNDECLARED,
            format!("scope:{scope}|path:{path_id}"),
            format!(
                "{} gained {gained} on {} ({}) as {} after baseline v{baseline_version} of {scope}, and {why}",
                first.workload.name, first.destination.name, first.domain.name, first.identity.name
            ),
        );
        f.severity = group.iter().filter_map(|e| e.severity).min().unwrap_or(Severity::Low);
        f.workloads.push(first.workload.id.clone());
        f.path_ids.push(path_id.to_string());
        for action in group.iter().flat_map(|e| &e.remediation_actions) {
            if !f.remediation.iter().any(|a| a.record_id == action.record_id && a.text == action.text) {
                if !f.records.contains(&action.record_id) {
                    f.records.push(action.record_id.clone());
                }
                f.remediation.push(action.clone());
            }
        }
        f.remediation.push(remediation::action(
            "declare_intent",
            path_id,
            format!(
                "or, if {} is meant to hold it, approve scope {scope} again with an intent that declares it (sv0 approve --intent)",
                first.workload.name
            ),
        ));
        out.push(f);
    }
    out
}
