//! Authority paths: `Workload → Identity → Destination → Data Domain`, with permissions,
//! egress class, ownership state and evidence grade.
//!
//! The rules (docs/authority-model.md has them with examples):
//! - a path exists for every run-as binding workload → identity and every grant identity →
//!   destination; grants to the same destination merge (permissions union, every source kept);
//! - the domain is the destination's own label, else the first matching classification rule
//!   of the tenant's policy, else of the scan (each by id), else `unclassified`;
//! - grade A: an evidence record names this identity acting on this destination inside the
//!   evidence window (the `window` days before the scan); B: a record in the window names the
//!   identity acting on the destination's service, or the workload's run acting on the
//!   destination, but none names both; C: standing authority only. Grades decay as the window
//!   moves with each scan's time, never with the wall clock;
//! - an evidence gap: a path below grade A to a destination whose execution logs are disabled,
//!   which can never reach A until they are enabled;
//! - ownership: the workload's owners, else the identity's; `assigned` when one is active and
//!   not silent past the limit, `decayed` when owners exist but none is, `orphaned` when none.
//!
//! Paths are computed one workload at a time through a `GraphLookup`, so a rescan recomputes
//! only the workloads its changes reach; `compute_paths` does a whole tenant in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::egress;
use crate::ids::{Timestamp, stable_hash};
use crate::model::{
    Binding, ClassificationRule, DataDomain, Destination, EgressClass, Evidence, Grant, GrantSource, Identity, Owner,
    OwnerStatus, Permission, Workload,
};
use crate::policy::Policy;
use crate::snapshot::Entities;

/// Id of the domain given to destinations that no label or rule classifies.
pub const UNCLASSIFIED: &str = "unclassified";

/// Evidence grade of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Grade {
    /// Execution confirmed: a record names this identity acting on this destination.
    A,
    /// Inferred: activity toward the destination's service, or the workload's run on it.
    B,
    /// Standing authority only.
    C,
}

impl Grade {
    /// Every grade, best first.
    pub const ALL: [Grade; 3] = [Grade::A, Grade::B, Grade::C];

    /// One letter.
    pub fn as_str(&self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether someone can be held accountable for a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerState {
    /// An active owner is assigned.
    Assigned,
    /// No owner at all.
    Orphaned,
    /// Owners exist, but all are disabled, departed or silent past the limit.
    Decayed,
}

impl OwnerState {
    /// Every state, in display order.
    pub const ALL: [OwnerState; 3] = [OwnerState::Assigned, OwnerState::Orphaned, OwnerState::Decayed];

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            OwnerState::Assigned => "assigned",
            OwnerState::Orphaned => "orphaned",
            OwnerState::Decayed => "decayed",
        }
    }
}

impl fmt::Display for OwnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node of a path, with its display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeRef {
    /// Stable id in the source system.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The data domain at the end of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DomainRef {
    /// Domain id (`unclassified` when nothing classifies the destination).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the domain is marked sensitive.
    pub sensitive: bool,
}

/// A record that grants part of a path's authority: the thing to change to remove it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantRef {
    /// Source record id (role assignment id, app role assignment id, ...).
    pub id: String,
    /// What sort of record it is.
    pub source: GrantSource,
    /// Role or permission name.
    pub role: String,
    /// Scope the record applies at.
    pub scope: String,
    /// The permissions this record grants.
    pub permissions: Vec<Permission>,
}

impl GrantRef {
    /// The reference to a grant record, its permissions sorted and deduplicated.
    pub fn of(grant: &Grant) -> GrantRef {
        let mut permissions = grant.permissions.clone();
        permissions.sort();
        permissions.dedup();
        GrantRef {
            id: grant.id.clone(),
            source: grant.source,
            role: grant.role.clone(),
            scope: grant.scope.clone(),
            permissions,
        }
    }
}

/// One authority path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthorityPath {
    /// Stable hash of the four node ids.
    pub path_id: String,
    /// The workload that acts.
    pub workload: NodeRef,
    /// The identity it acts as.
    pub identity: NodeRef,
    /// What the identity can act on.
    pub destination: NodeRef,
    /// The data domain behind the destination.
    pub domain: DomainRef,
    /// Union of the permissions of every grant, sorted.
    pub permissions: Vec<Permission>,
    /// Egress class of the destination.
    pub egress: EgressClass,
    /// The rule of the egress table that decided the class.
    pub egress_rule: String,
    /// Accountability.
    pub owner_state: OwnerState,
    /// Since when (scan time) the path has had this ownership state.
    pub owner_state_since: Timestamp,
    /// Owner ids considered (workload's, else identity's).
    pub owners: Vec<String>,
    /// Evidence grade.
    pub grade: Grade,
    /// The evidence record behind grade A or B.
    pub grade_evidence: Option<String>,
    /// When the evidence behind grade A or B leaves the window (the grade decays then).
    pub grade_expires_at: Option<Timestamp>,
    /// True when the path is below grade A and its destination's execution logs are disabled:
    /// it can never reach grade A until they are enabled.
    pub evidence_gap: bool,
    /// The records that grant the authority.
    pub grants: Vec<GrantRef>,
    /// The run-as binding records linking workload and identity.
    pub bindings: Vec<String>,
    /// Where the domain came from: `label` or a classification rule id.
    pub classified_by: Option<String>,
    /// Hash of the properties a delta compares (permissions, egress, owner state, grade).
    pub fingerprint: String,
}

impl AuthorityPath {
    /// Whether any permission changes data or access.
    pub fn modifies(&self) -> bool {
        self.permissions.iter().any(Permission::modifies)
    }
}

/// The stable id of the path through four nodes.
pub fn path_id(workload: &str, identity: &str, destination: &str, domain: &str) -> String {
    stable_hash("sv0.path.v1", &[workload, identity, destination, domain], 32)
}

/// The fingerprint of a path's compared properties; volatile values (times, names) are left out.
pub fn fingerprint(permissions: &[Permission], egress: EgressClass, owner_state: OwnerState, grade: Grade) -> String {
    let permissions: Vec<&str> = permissions.iter().map(Permission::as_str).collect();
    let permissions = permissions.join(",");
    stable_hash("sv0.path-fingerprint.v1", &[&permissions, egress.as_str(), owner_state.as_str(), grade.as_str()], 16)
}

/// The digest of a scope's posture: its paths with what a reviewer approves about each (the
/// fingerprint: permissions, egress, owner state, grade) and its open findings. An approval
/// names the digest its approver reviewed, so that a posture that changed in between cannot be
/// approved unseen. `sha256:` and 64 hex digits.
pub fn posture_digest<'a>(
    paths: impl IntoIterator<Item = &'a AuthorityPath>,
    open_findings: impl IntoIterator<Item = &'a str>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> =
        paths.into_iter().map(|p| format!("path\t{}\t{}\n", p.path_id, p.fingerprint)).collect();
    lines.sort();
    let mut findings: Vec<&str> = open_findings.into_iter().collect();
    findings.sort();
    findings.dedup();
    let mut hasher = Sha256::new();
    hasher.update(b"sv0.posture.v1\n");
    for line in lines {
        hasher.update(line.as_bytes());
    }
    for finding in findings {
        hasher.update(format!("finding\t{finding}\n").as_bytes());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// What path computation needs to read: the tenant's current entities, wherever they live.
pub trait GraphLookup {
    /// A workload by id.
    fn workload(&self, id: &str) -> Option<Workload>;
    /// The run-as bindings of a workload.
    fn bindings_of(&self, workload: &str) -> Vec<Binding>;
    /// An identity by id.
    fn identity(&self, id: &str) -> Option<Identity>;
    /// The grants held by an identity.
    fn grants_of(&self, identity: &str) -> Vec<Grant>;
    /// A destination by id.
    fn destination(&self, id: &str) -> Option<Destination>;
    /// A data domain by id.
    fn domain(&self, id: &str) -> Option<DataDomain>;
    /// The scan's classification rules, by id.
    fn classification_rules(&self) -> Vec<ClassificationRule>;
    /// An owner by id.
    fn owner(&self, id: &str) -> Option<Owner>;
    /// Evidence records naming this identity.
    fn evidence_of_identity(&self, identity: &str) -> Vec<Evidence>;
    /// Evidence records naming this workload.
    fn evidence_of_workload(&self, workload: &str) -> Vec<Evidence>;
}

/// The bindings and grants (by id) through which a workload reaches one destination as one
/// identity.
#[derive(Default)]
struct Reach(BTreeSet<String>, BTreeMap<String, Grant>);

/// Which of a workload's paths to compute: those through some identities (to every
/// destination) and those of some (identity, destination) pairs. A rescan that changed one
/// grant recomputes the paths of that grant's pair, not every path of the workloads bound to
/// its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathSelection {
    /// Identities whose every path is selected.
    pub identities: BTreeSet<String>,
    /// Identity → destinations: the (identity, destination) pairs whose path is selected.
    pub pairs: BTreeMap<String, BTreeSet<String>>,
}

impl PathSelection {
    /// Selects the path of `identity` to `destination`.
    pub fn add_pair(&mut self, identity: &str, destination: &str) {
        self.pairs.entry(identity.to_string()).or_default().insert(destination.to_string());
    }

    /// Whether any path through `identity` is selected.
    pub fn has_identity(&self, identity: &str) -> bool {
        self.identities.contains(identity) || self.pairs.contains_key(identity)
    }

    /// Whether the path of `identity` to `destination` is selected.
    pub fn has(&self, identity: &str, destination: &str) -> bool {
        self.identities.contains(identity) || self.pairs.get(identity).is_some_and(|d| d.contains(destination))
    }
}

/// Computes the paths of one workload, sorted by path id. `previous` gives the ownership state
/// and its start of paths that existed before, so that `owner_state_since` survives rescans.
pub fn compute_workload_paths(
    lookup: &impl GraphLookup,
    workload_id: &str,
    observed_at: Timestamp,
    policy: &Policy,
    previous: &dyn Fn(&str) -> Option<(OwnerState, Timestamp)>,
) -> Vec<AuthorityPath> {
    compute_selected_paths(lookup, workload_id, observed_at, policy, previous, None)
}

/// How many paths `compute_selected_paths` would give for the workload, counting no further
/// than `limit + 1`: the distinct destinations of each bound identity's grants (within the
/// selection). Reads what computing reads, but builds nothing, so a budget can be checked
/// before the work.
pub fn count_selected_paths(
    lookup: &impl GraphLookup,
    workload_id: &str,
    only: Option<&PathSelection>,
    limit: u64,
) -> u64 {
    let mut identities: BTreeSet<String> = BTreeSet::new();
    let mut count = 0u64;
    for binding in lookup.bindings_of(workload_id) {
        if only.is_some_and(|s| !s.has_identity(&binding.identity)) || !identities.insert(binding.identity.clone()) {
            continue;
        }
        let destinations: BTreeSet<String> = lookup
            .grants_of(&binding.identity)
            .into_iter()
            .filter(|grant| only.is_none_or(|s| s.has(&binding.identity, &grant.destination)))
            .map(|grant| grant.destination)
            .collect();
        count += destinations.len() as u64;
        if count > limit {
            break;
        }
    }
    count
}

/// Computes the paths of one workload that `only` selects (all of them when `None`), sorted by
/// path id: the same paths, field for field, as `compute_workload_paths` gives for them.
pub fn compute_selected_paths(
    lookup: &impl GraphLookup,
    workload_id: &str,
    observed_at: Timestamp,
    policy: &Policy,
    previous: &dyn Fn(&str) -> Option<(OwnerState, Timestamp)>,
    only: Option<&PathSelection>,
) -> Vec<AuthorityPath> {
    let Some(workload) = lookup.workload(workload_id) else {
        return Vec::new();
    };
    let window_start = observed_at.add_days(-i64::from(policy.evidence_window_days));
    let in_window = |e: &Evidence| e.at >= window_start && e.at <= observed_at;
    let run_evidence: Vec<Evidence> = lookup.evidence_of_workload(workload_id).into_iter().filter(in_window).collect();
    let scan_rules = lookup.classification_rules();
    let mut bindings = lookup.bindings_of(workload_id);
    bindings.sort_by(|a, b| a.id.cmp(&b.id));
    let mut merged: BTreeMap<(String, String), Reach> = BTreeMap::new();
    let mut identities: BTreeMap<String, Identity> = BTreeMap::new();
    for binding in &bindings {
        if only.is_some_and(|s| !s.has_identity(&binding.identity)) {
            continue;
        }
        let Some(identity) = lookup.identity(&binding.identity) else { continue };
        for grant in lookup.grants_of(&binding.identity) {
            if only.is_some_and(|s| !s.has(&binding.identity, &grant.destination)) {
                continue;
            }
            let entry = merged.entry((binding.identity.clone(), grant.destination.clone())).or_default();
            entry.0.insert(binding.id.clone());
            entry.1.insert(grant.id.clone(), grant);
        }
        identities.insert(identity.id.clone(), identity);
    }
    let mut identity_evidence: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
    let mut paths = Vec::with_capacity(merged.len());
    for ((identity_id, destination_id), Reach(binding_ids, grants)) in merged {
        let (Some(identity), Some(destination)) = (identities.get(&identity_id), lookup.destination(&destination_id))
        else {
            continue;
        };
        let evidence = identity_evidence
            .entry(identity_id.clone())
            .or_insert_with(|| lookup.evidence_of_identity(&identity_id).into_iter().filter(in_window).collect());
        let (domain, classified_by) = domain_of(lookup, &destination, policy, &scan_rules);
        let mut permissions = BTreeSet::new();
        let grant_refs: Vec<GrantRef> = grants
            .into_values()
            .map(|grant| {
                let mut granted = grant.permissions.clone();
                granted.sort();
                granted.dedup();
                permissions.extend(granted.iter().copied());
                GrantRef {
                    id: grant.id,
                    source: grant.source,
                    role: grant.role,
                    scope: grant.scope,
                    permissions: granted,
                }
            })
            .collect();
        let permissions: Vec<Permission> = permissions.into_iter().collect();
        let (egress, egress_rule) = egress::classify(&destination, policy);
        let owners = if workload.owners.is_empty() { identity.owners.clone() } else { workload.owners.clone() };
        let owner_state = owner_state(lookup, &owners, observed_at, policy);
        let (grade, grade_evidence, evidence_at) = grade(evidence, &run_evidence, &identity.id, &destination);
        let id = path_id(&workload.id, &identity.id, &destination.id, &domain.id);
        let owner_state_since = match previous(&id) {
            Some((state, since)) if state == owner_state => since,
            _ => observed_at,
        };
        let evidence_gap = grade != Grade::A && destination.execution_logs.is_some_and(|l| l.blind());
        paths.push(AuthorityPath {
            fingerprint: fingerprint(&permissions, egress, owner_state, grade),
            path_id: id,
            workload: NodeRef { id: workload.id.clone(), name: workload.name.clone() },
            identity: NodeRef { id: identity.id.clone(), name: identity.name.clone() },
            destination: NodeRef { id: destination.id.clone(), name: destination.name.clone() },
            domain,
            permissions,
            egress,
            egress_rule,
            owner_state,
            owner_state_since,
            owners,
            grade,
            grade_evidence,
            grade_expires_at: evidence_at.map(|at| at.add_days(i64::from(policy.evidence_window_days))),
            evidence_gap,
            grants: grant_refs,
            bindings: binding_ids.into_iter().collect(),
            classified_by,
        });
    }
    paths.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    paths
}

fn domain_of(
    lookup: &impl GraphLookup,
    destination: &Destination,
    policy: &Policy,
    scan_rules: &[ClassificationRule],
) -> (DomainRef, Option<String>) {
    // The policy's definition of a domain wins over the scan's: the organisation decides what
    // is sensitive.
    let known = |id: &str| -> Option<DomainRef> {
        let domain = policy.classification.domain(id).cloned().or_else(|| lookup.domain(id))?;
        Some(DomainRef { id: domain.id, name: domain.name, sensitive: domain.sensitive })
    };
    // A domain the policy's rules name is created when neither defines it.
    let named = |id: &str, value: &str| {
        known(id).unwrap_or_else(|| DomainRef { id: id.to_string(), name: value.trim().to_string(), sensitive: false })
    };
    if let Some(domain) = destination.domain.as_deref().and_then(known) {
        return (domain, Some("label".to_string()));
    }
    for rule in &policy.classification_rules {
        if destination.tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(&rule.tag) && *v == rule.value) {
            return (named(&rule.domain, &rule.value), Some(rule.id.clone()));
        }
    }
    if let Some((domain, value, by)) = policy.classification.classify(&destination.tags) {
        return (named(&domain, &value), Some(by));
    }
    for rule in scan_rules {
        if destination.tags.get(&rule.tag) == Some(&rule.value)
            && let Some(domain) = known(&rule.domain)
        {
            return (domain, Some(rule.id.clone()));
        }
    }
    (DomainRef { id: UNCLASSIFIED.to_string(), name: "Unclassified".to_string(), sensitive: false }, None)
}

fn owner_state(lookup: &impl GraphLookup, owner_ids: &[String], observed_at: Timestamp, policy: &Policy) -> OwnerState {
    if owner_ids.is_empty() {
        return OwnerState::Orphaned;
    }
    let silence_limit = observed_at.add_days(-i64::from(policy.owner_silence_days));
    let accountable = owner_ids.iter().any(|id| {
        lookup
            .owner(id)
            .is_some_and(|o| o.status == OwnerStatus::Active && o.last_active_at.is_none_or(|at| at >= silence_limit))
    });
    if accountable { OwnerState::Assigned } else { OwnerState::Decayed }
}

/// The grade, the evidence record behind it and that record's time. Among several records the
/// latest wins (then the greatest id), so the result does not depend on the order of records.
fn grade(
    identity_evidence: &[Evidence],
    run_evidence: &[Evidence],
    identity: &str,
    destination: &Destination,
) -> (Grade, Option<String>, Option<Timestamp>) {
    let latest = |records: &mut dyn Iterator<Item = &Evidence>| {
        records.max_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id))).map(|e| (e.id.clone(), e.at))
    };
    let exact = latest(&mut identity_evidence.iter().filter(|e| {
        e.identity.as_deref() == Some(identity) && e.destination.as_deref() == Some(destination.id.as_str())
    }));
    if let Some((id, at)) = exact {
        return (Grade::A, Some(id), Some(at));
    }
    let inferred = latest(
        &mut identity_evidence
            .iter()
            .filter(|e| destination.service.is_some() && e.service == destination.service)
            .chain(run_evidence.iter().filter(|e| e.destination.as_deref() == Some(destination.id.as_str()))),
    );
    match inferred {
        Some((id, at)) => (Grade::B, Some(id), Some(at)),
        None => (Grade::C, None, None),
    }
}

/// Computes every path of a tenant's entities, held in memory, sorted by path id.
pub fn compute_paths(entities: &Entities, observed_at: Timestamp, policy: &Policy) -> Vec<AuthorityPath> {
    let lookup = MemoryGraph::new(entities);
    let mut paths: Vec<AuthorityPath> = entities
        .workloads
        .iter()
        .flat_map(|w| compute_workload_paths(&lookup, &w.id, observed_at, policy, &|_| None))
        .collect();
    paths.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    paths
}

/// A `GraphLookup` over entities held in memory.
pub struct MemoryGraph<'a> {
    entities: &'a Entities,
    workloads: BTreeMap<&'a str, &'a Workload>,
    identities: BTreeMap<&'a str, &'a Identity>,
    destinations: BTreeMap<&'a str, &'a Destination>,
    domains: BTreeMap<&'a str, &'a DataDomain>,
    owners: BTreeMap<&'a str, &'a Owner>,
    bindings: BTreeMap<&'a str, Vec<&'a Binding>>,
    grants: BTreeMap<&'a str, Vec<&'a Grant>>,
    identity_evidence: BTreeMap<&'a str, Vec<&'a Evidence>>,
    workload_evidence: BTreeMap<&'a str, Vec<&'a Evidence>>,
}

impl<'a> MemoryGraph<'a> {
    /// Indexes the entities.
    pub fn new(entities: &'a Entities) -> MemoryGraph<'a> {
        let mut bindings: BTreeMap<&str, Vec<&Binding>> = BTreeMap::new();
        for b in &entities.bindings {
            bindings.entry(b.workload.as_str()).or_default().push(b);
        }
        let mut grants: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
        for g in &entities.grants {
            grants.entry(g.identity.as_str()).or_default().push(g);
        }
        let mut identity_evidence: BTreeMap<&str, Vec<&Evidence>> = BTreeMap::new();
        let mut workload_evidence: BTreeMap<&str, Vec<&Evidence>> = BTreeMap::new();
        for e in &entities.evidence {
            if let Some(identity) = &e.identity {
                identity_evidence.entry(identity.as_str()).or_default().push(e);
            }
            if let Some(workload) = &e.workload {
                workload_evidence.entry(workload.as_str()).or_default().push(e);
            }
        }
        MemoryGraph {
            entities,
            workloads: entities.workloads.iter().map(|w| (w.id.as_str(), w)).collect(),
            identities: entities.identities.iter().map(|i| (i.id.as_str(), i)).collect(),
            destinations: entities.destinations.iter().map(|d| (d.id.as_str(), d)).collect(),
            domains: entities.domains.iter().map(|d| (d.id.as_str(), d)).collect(),
            owners: entities.owners.iter().map(|o| (o.id.as_str(), o)).collect(),
            bindings,
            grants,
            identity_evidence,
            workload_evidence,
        }
    }
}

impl GraphLookup for MemoryGraph<'_> {
    fn workload(&self, id: &str) -> Option<Workload> {
        self.workloads.get(id).map(|w| (*w).clone())
    }
    fn bindings_of(&self, workload: &str) -> Vec<Binding> {
        self.bindings.get(workload).map_or_else(Vec::new, |v| v.iter().map(|b| (*b).clone()).collect())
    }
    fn identity(&self, id: &str) -> Option<Identity> {
        self.identities.get(id).map(|i| (*i).clone())
    }
    fn grants_of(&self, identity: &str) -> Vec<Grant> {
        self.grants.get(identity).map_or_else(Vec::new, |v| v.iter().map(|g| (*g).clone()).collect())
    }
    fn destination(&self, id: &str) -> Option<Destination> {
        self.destinations.get(id).map(|d| (*d).clone())
    }
    fn domain(&self, id: &str) -> Option<DataDomain> {
        self.domains.get(id).map(|d| (*d).clone())
    }
    fn classification_rules(&self) -> Vec<ClassificationRule> {
        self.entities.classification_rules.clone()
    }
    fn owner(&self, id: &str) -> Option<Owner> {
        self.owners.get(id).map(|o| (*o).clone())
    }
    fn evidence_of_identity(&self, identity: &str) -> Vec<Evidence> {
        self.identity_evidence.get(identity).map_or_else(Vec::new, |v| v.iter().map(|e| (*e).clone()).collect())
    }
    fn evidence_of_workload(&self, workload: &str) -> Vec<Evidence> {
        self.workload_evidence.get(workload).map_or_else(Vec::new, |v| v.iter().map(|e| (*e).clone()).collect())
    }
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
