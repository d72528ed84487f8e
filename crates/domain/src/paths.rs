//! Authority paths: `Workload → Identity → Destination → Data Domain`, with permissions,
//! egress class, ownership state and evidence grade, computed from a scan's `Entities`.
//!
//! The rules (first, simple versions; see ARCHITECTURE.md):
//! - a path exists for every run-as binding workload → identity and every grant identity →
//!   destination; grants to the same destination merge (permissions union, every source kept);
//! - the domain is the destination's own label, else the first classification rule (by id)
//!   whose tag matches, else `unclassified`;
//! - grade A: an evidence record names this identity acting on this destination inside the
//!   window; B: a record names the identity acting on the destination's service, or the
//!   workload's run acting on the destination; C: standing authority only;
//! - ownership: the workload's owners, else the identity's; `assigned` when one is active and
//!   not silent past the limit, `decayed` when owners exist but none is, `orphaned` when none.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, stable_hash};
use crate::model::{
    DataDomain, Destination, DestinationKind, EgressClass, Evidence, GrantSource, Owner, OwnerStatus, Permission,
};
use crate::snapshot::Entities;

/// Id of the domain given to destinations that no label or rule classifies.
pub const UNCLASSIFIED: &str = "unclassified";

/// Evidence grade of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// Settings the path rules depend on. They are recorded in the scan's events, so that a
/// replay reproduces the same grades whatever the configuration is today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathPolicy {
    /// Evidence older than this many days before the scan does not count.
    pub evidence_window_days: u32,
    /// An owner silent for longer than this many days is decayed.
    pub owner_silence_days: u32,
}

impl Default for PathPolicy {
    fn default() -> PathPolicy {
        PathPolicy { evidence_window_days: 30, owner_silence_days: 90 }
    }
}

/// A node of a path, with its display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRef {
    /// Stable id in the source system.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The data domain at the end of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainRef {
    /// Domain id (`unclassified` when nothing classifies the destination).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the domain is marked sensitive.
    pub sensitive: bool,
}

/// A record that grants part of a path's authority: the thing to change to remove it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// One authority path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Owner ids considered (workload's, else identity's).
    pub owners: Vec<String>,
    /// Evidence grade.
    pub grade: Grade,
    /// The evidence record behind grade A or B.
    pub grade_evidence: Option<String>,
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

/// Classifies a destination's egress from the rule table; returns the class and the rule.
pub fn classify_egress(destination: &Destination) -> (EgressClass, String) {
    if let Some(egress) = destination.egress {
        return (egress, "destination.egress".to_string());
    }
    let class = match destination.kind {
        DestinationKind::LlmDeployment => EgressClass::LlmApi,
        DestinationKind::StorageContainer | DestinationKind::StorageAccount => EgressClass::CloudStorage,
        DestinationKind::HttpEndpoint => EgressClass::ExternalHttp,
        DestinationKind::GraphApi
        | DestinationKind::ServicenowTable
        | DestinationKind::Database
        | DestinationKind::Queue
        | DestinationKind::Other => EgressClass::Internal,
    };
    let kind = serde_plain_kind(destination.kind);
    (class, format!("kind={kind}"))
}

fn serde_plain_kind(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::StorageContainer => "storage_container",
        DestinationKind::StorageAccount => "storage_account",
        DestinationKind::GraphApi => "graph_api",
        DestinationKind::ServicenowTable => "servicenow_table",
        DestinationKind::LlmDeployment => "llm_deployment",
        DestinationKind::HttpEndpoint => "http_endpoint",
        DestinationKind::Database => "database",
        DestinationKind::Queue => "queue",
        DestinationKind::Other => "other",
    }
}

/// Computes every authority path of a tenant's entities, sorted by path id.
pub fn compute_paths(entities: &Entities, observed_at: Timestamp, policy: &PathPolicy) -> Vec<AuthorityPath> {
    let graph = GraphIndex::new(entities, observed_at, policy);
    let mut merged: BTreeMap<(usize, usize, usize), Partial> = BTreeMap::new();
    for binding in &entities.bindings {
        let (Some(&w), Some(&i)) =
            (graph.workload_idx.get(binding.workload.as_str()), graph.identity_idx.get(binding.identity.as_str()))
        else {
            continue;
        };
        for &grant_idx in graph.grants_by_identity.get(binding.identity.as_str()).into_iter().flatten() {
            let grant = &entities.grants[grant_idx];
            let Some(&d) = graph.destination_idx.get(grant.destination.as_str()) else {
                continue;
            };
            let partial = merged.entry((w, i, d)).or_default();
            partial.bindings.insert(binding.id.clone());
            partial.grants.insert(grant_idx);
        }
    }
    let mut paths: Vec<AuthorityPath> =
        merged.into_iter().map(|((w, i, d), partial)| graph.path(w, i, d, &partial)).collect();
    paths.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    paths
}

#[derive(Default)]
struct Partial {
    bindings: BTreeSet<String>,
    grants: BTreeSet<usize>,
}

/// Lookups over one `Entities`, built once per computation.
struct GraphIndex<'a> {
    entities: &'a Entities,
    observed_at: Timestamp,
    policy: PathPolicy,
    workload_idx: BTreeMap<&'a str, usize>,
    identity_idx: BTreeMap<&'a str, usize>,
    destination_idx: BTreeMap<&'a str, usize>,
    grants_by_identity: BTreeMap<&'a str, Vec<usize>>,
    owners: BTreeMap<&'a str, &'a Owner>,
    domains: BTreeMap<&'a str, &'a DataDomain>,
    evidence_exact: BTreeMap<(&'a str, &'a str), Vec<&'a Evidence>>,
    evidence_service: BTreeMap<(&'a str, &'a str), Vec<&'a Evidence>>,
    evidence_run: BTreeMap<(&'a str, &'a str), Vec<&'a Evidence>>,
}

impl<'a> GraphIndex<'a> {
    fn new(entities: &'a Entities, observed_at: Timestamp, policy: &PathPolicy) -> GraphIndex<'a> {
        let index = |ids: Vec<&'a str>| ids.into_iter().enumerate().map(|(n, id)| (id, n)).collect();
        let mut grants_by_identity: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, grant) in entities.grants.iter().enumerate() {
            grants_by_identity.entry(grant.identity.as_str()).or_default().push(n);
        }
        let window_start = observed_at.add_days(-i64::from(policy.evidence_window_days));
        let mut evidence_exact: BTreeMap<(&str, &str), Vec<&Evidence>> = BTreeMap::new();
        let mut evidence_service: BTreeMap<(&str, &str), Vec<&Evidence>> = BTreeMap::new();
        let mut evidence_run: BTreeMap<(&str, &str), Vec<&Evidence>> = BTreeMap::new();
        for e in &entities.evidence {
            if e.at < window_start || e.at > observed_at {
                continue;
            }
            if let (Some(identity), Some(destination)) = (&e.identity, &e.destination) {
                evidence_exact.entry((identity, destination)).or_default().push(e);
            }
            if let (Some(identity), Some(service)) = (&e.identity, &e.service) {
                evidence_service.entry((identity, service)).or_default().push(e);
            }
            if let (Some(workload), Some(destination)) = (&e.workload, &e.destination) {
                evidence_run.entry((workload, destination)).or_default().push(e);
            }
        }
        GraphIndex {
            entities,
            observed_at,
            policy: *policy,
            workload_idx: index(entities.workloads.iter().map(|w| w.id.as_str()).collect()),
            identity_idx: index(entities.identities.iter().map(|i| i.id.as_str()).collect()),
            destination_idx: index(entities.destinations.iter().map(|d| d.id.as_str()).collect()),
            grants_by_identity,
            owners: entities.owners.iter().map(|o| (o.id.as_str(), o)).collect(),
            domains: entities.domains.iter().map(|d| (d.id.as_str(), d)).collect(),
            evidence_exact,
            evidence_service,
            evidence_run,
        }
    }

    fn path(&self, w: usize, i: usize, d: usize, partial: &Partial) -> AuthorityPath {
        let workload = &self.entities.workloads[w];
        let identity = &self.entities.identities[i];
        let destination = &self.entities.destinations[d];
        let (domain, classified_by) = self.domain_of(destination);
        let mut permissions = BTreeSet::new();
        let mut grants = Vec::new();
        for &g in &partial.grants {
            let grant = &self.entities.grants[g];
            let mut granted: Vec<Permission> = grant.permissions.clone();
            granted.sort();
            granted.dedup();
            permissions.extend(granted.iter().copied());
            grants.push(GrantRef {
                id: grant.id.clone(),
                source: grant.source,
                role: grant.role.clone(),
                scope: grant.scope.clone(),
                permissions: granted,
            });
        }
        let permissions: Vec<Permission> = permissions.into_iter().collect();
        let (egress, egress_rule) = classify_egress(destination);
        let owners = if workload.owners.is_empty() { identity.owners.clone() } else { workload.owners.clone() };
        let owner_state = self.owner_state(&owners);
        let (grade, grade_evidence) = self.grade(&workload.id, &identity.id, destination);
        AuthorityPath {
            path_id: path_id(&workload.id, &identity.id, &destination.id, &domain.id),
            workload: NodeRef { id: workload.id.clone(), name: workload.name.clone() },
            identity: NodeRef { id: identity.id.clone(), name: identity.name.clone() },
            destination: NodeRef { id: destination.id.clone(), name: destination.name.clone() },
            fingerprint: fingerprint(&permissions, egress, owner_state, grade),
            domain,
            permissions,
            egress,
            egress_rule,
            owner_state,
            owners,
            grade,
            grade_evidence,
            grants,
            bindings: partial.bindings.iter().cloned().collect(),
            classified_by,
        }
    }

    fn domain_of(&self, destination: &Destination) -> (DomainRef, Option<String>) {
        let lookup = |id: &str| self.domains.get(id).copied();
        if let Some(domain) = destination.domain.as_deref().and_then(lookup) {
            return (
                DomainRef { id: domain.id.clone(), name: domain.name.clone(), sensitive: domain.sensitive },
                Some("label".to_string()),
            );
        }
        for rule in &self.entities.classification_rules {
            if destination.tags.get(&rule.tag) == Some(&rule.value)
                && let Some(domain) = lookup(&rule.domain)
            {
                return (
                    DomainRef { id: domain.id.clone(), name: domain.name.clone(), sensitive: domain.sensitive },
                    Some(rule.id.clone()),
                );
            }
        }
        (DomainRef { id: UNCLASSIFIED.to_string(), name: "Unclassified".to_string(), sensitive: false }, None)
    }

    fn owner_state(&self, owner_ids: &[String]) -> OwnerState {
        if owner_ids.is_empty() {
            return OwnerState::Orphaned;
        }
        let silence_limit = self.observed_at.add_days(-i64::from(self.policy.owner_silence_days));
        let accountable = owner_ids.iter().any(|id| {
            self.owners.get(id.as_str()).is_some_and(|o| {
                o.status == OwnerStatus::Active && o.last_active_at.is_none_or(|at| at >= silence_limit)
            })
        });
        if accountable { OwnerState::Assigned } else { OwnerState::Decayed }
    }

    fn grade(&self, workload: &str, identity: &str, destination: &Destination) -> (Grade, Option<String>) {
        let latest = |records: Option<&Vec<&Evidence>>| {
            records.into_iter().flatten().max_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id))).map(|e| e.id.clone())
        };
        if let Some(id) = latest(self.evidence_exact.get(&(identity, destination.id.as_str()))) {
            return (Grade::A, Some(id));
        }
        let by_service =
            destination.service.as_deref().and_then(|service| latest(self.evidence_service.get(&(identity, service))));
        let by_run = latest(self.evidence_run.get(&(workload, destination.id.as_str())));
        match by_service.into_iter().chain(by_run).max() {
            Some(id) => (Grade::B, Some(id)),
            None => (Grade::C, None),
        }
    }
}
