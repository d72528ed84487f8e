//! The snapshot: what one scan saw, in the vendor-neutral format connectors produce and people
//! can write by hand. `Snapshot::validate` turns it into `Entities`, sorted and checked.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::SnapshotInvalid;
use crate::ids::{TenantId, Timestamp};
use crate::model::{
    Binding, ClassificationRule, Credential, DataDomain, Destination, Evidence, Grant, Identity, Owner, Workload,
};

/// The snapshot format version this build reads and writes.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// Longest id accepted for any entity.
pub const MAX_ID_LEN: usize = 1024;

/// Most problems reported for one snapshot; the rest are counted.
const MAX_PROBLEMS: usize = 50;

/// One scan's observations of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format version; this build reads version 1.
    pub schema_version: u32,
    /// The tenant scanned.
    pub tenant: TenantId,
    /// How and when the scan ran.
    pub scan: ScanInfo,
    /// Data domains.
    #[serde(default)]
    pub domains: Vec<DataDomain>,
    /// Tag-based classification rules.
    #[serde(default)]
    pub classification_rules: Vec<ClassificationRule>,
    /// Owners.
    #[serde(default)]
    pub owners: Vec<Owner>,
    /// Workloads.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// Identities.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Credentials.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Destinations.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Grants.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Run-as bindings.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// Execution evidence records.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// In a delta scan, the entities gone since its base scan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<Deletion>,
}

/// An entity a delta scan says is gone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deletion {
    /// Its list.
    pub list: EntityList,
    /// Its id.
    pub id: String,
}

/// How and when a scan ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanInfo {
    /// The connector (or `snapshot` for a hand-written file).
    #[serde(default = "default_connector")]
    pub connector: String,
    /// When the source systems were read; the evidence window ends here.
    pub observed_at: Timestamp,
    /// Why the scan ran.
    #[serde(default)]
    pub trigger: ScanTrigger,
    /// The deployment that caused the scan, for `deployment` and `remediation` triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRef>,
    /// What the scan covered; absent means a full scan whose every list was read completely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

/// What a scan covered, so that what it did not see is removed only when it really looked.
///
/// For each list, the APIs that read it decide: when every one of them succeeded, entities in
/// the scan's scope that it did not see are removed; when one failed (a 403, a 429, a
/// timeout), they are kept and marked `unobserved`; a list no API read is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// A full scan looked at the whole tenant; a targeted one only at its target workloads.
    pub mode: CoverageMode,
    /// For a targeted scan: the workloads it re-read. It may remove those workloads, their
    /// run-as bindings, the grants, credentials and evidence of the identities it saw, and the
    /// evidence of the workloads; it never removes anything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// For a delta scan: the scan it is a delta of, which must be the tenant's latest applied
    /// scan (otherwise the delta would be applied to a state its connector never saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_scan: Option<String>,
    /// The calls the connector made and how each ended. In a delta scan, a list whose APIs all
    /// succeeded is complete: its deletions are applied; one with a failed API is partial: the
    /// entities it names as deleted are kept and marked unobserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<ApiCoverage>,
}

/// Full or targeted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoverageMode {
    /// The whole tenant.
    Full,
    /// Only `targets`.
    Targeted,
    /// What changed since `base_scan`: the entities added or changed, and the entities
    /// `deleted`. What it does not name is left as it is.
    Delta,
}

/// One API a connector called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiCoverage {
    /// The API, e.g. `graph.servicePrincipals` or `arm.roleAssignments`.
    pub name: String,
    /// The snapshot lists it fills.
    pub lists: Vec<EntityList>,
    /// How the calls ended.
    pub status: ApiStatus,
    /// What went wrong, for a failed API (e.g. `403 Forbidden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How an API's calls ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiStatus {
    /// Every page was read.
    Succeeded,
    /// Some or all calls failed.
    Failed,
}

/// The lists of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityList {
    /// `domains`.
    Domains,
    /// `classification_rules`.
    ClassificationRules,
    /// `owners`.
    Owners,
    /// `workloads`.
    Workloads,
    /// `identities`.
    Identities,
    /// `credentials`.
    Credentials,
    /// `destinations`.
    Destinations,
    /// `grants`.
    Grants,
    /// `bindings`.
    Bindings,
    /// `evidence`.
    Evidence,
}

impl EntityList {
    /// Every list, in `Entities` field order.
    pub const ALL: [EntityList; 10] = [
        EntityList::Domains,
        EntityList::ClassificationRules,
        EntityList::Owners,
        EntityList::Workloads,
        EntityList::Identities,
        EntityList::Credentials,
        EntityList::Destinations,
        EntityList::Grants,
        EntityList::Bindings,
        EntityList::Evidence,
    ];

    /// One entity of the list, in words (`identity` for `identities`).
    pub fn noun(&self) -> &'static str {
        match self {
            EntityList::Domains => "domain",
            EntityList::ClassificationRules => "classification rule",
            EntityList::Owners => "owner",
            EntityList::Workloads => "workload",
            EntityList::Identities => "identity",
            EntityList::Credentials => "credential",
            EntityList::Destinations => "destination",
            EntityList::Grants => "grant",
            EntityList::Bindings => "binding",
            EntityList::Evidence => "evidence record",
        }
    }

    /// The list's name in snapshots.
    pub fn name(&self) -> &'static str {
        match self {
            EntityList::Domains => "domains",
            EntityList::ClassificationRules => "classification_rules",
            EntityList::Owners => "owners",
            EntityList::Workloads => "workloads",
            EntityList::Identities => "identities",
            EntityList::Credentials => "credentials",
            EntityList::Destinations => "destinations",
            EntityList::Grants => "grants",
            EntityList::Bindings => "bindings",
            EntityList::Evidence => "evidence",
        }
    }
}

/// How a scan treats one list's entities that it did not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCoverage {
    /// Read completely: unseen entities in scope are removed.
    Complete,
    /// Read with failures: unseen entities are kept and marked unobserved.
    Partial,
    /// Not read: unseen entities are left as they are.
    NotRead,
}

impl Coverage {
    /// The coverage of a scan that declares none: full, every list read completely.
    pub fn complete() -> Coverage {
        Coverage {
            mode: CoverageMode::Full,
            targets: Vec::new(),
            base_scan: None,
            apis: vec![ApiCoverage {
                name: "snapshot".to_string(),
                lists: EntityList::ALL.to_vec(),
                status: ApiStatus::Succeeded,
                error: None,
            }],
        }
    }

    /// The coverage of a delta of `base_scan` complete for every list.
    pub fn delta(base_scan: &str) -> Coverage {
        Coverage { mode: CoverageMode::Delta, base_scan: Some(base_scan.to_string()), ..Coverage::complete() }
    }

    /// How the scan covered one list.
    pub fn of(&self, list: EntityList) -> ListCoverage {
        let mut calls = self.apis.iter().filter(|api| api.lists.contains(&list)).peekable();
        if calls.peek().is_none() {
            return ListCoverage::NotRead;
        }
        if calls.all(|api| api.status == ApiStatus::Succeeded) { ListCoverage::Complete } else { ListCoverage::Partial }
    }
}

fn default_connector() -> String {
    "snapshot".to_string()
}

/// Why a scan ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanTrigger {
    /// Someone ran it.
    #[default]
    Manual,
    /// A schedule ran it.
    Scheduled,
    /// A deployment gate ran it before the deployment happened (a CI gate, a GitHub deployment
    /// protection rule, an Azure DevOps check): it judges what the deployment is about to
    /// promote, e.g. what a staging deployment added, in the production scope.
    PreDeployment,
    /// A deployment ran it, to see the authority the deployment created.
    Deployment,
    /// Remediation ran it, to verify the fix.
    Remediation,
}

impl ScanTrigger {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScanTrigger::Manual => "manual",
            ScanTrigger::Scheduled => "scheduled",
            ScanTrigger::PreDeployment => "pre_deployment",
            ScanTrigger::Deployment => "deployment",
            ScanTrigger::Remediation => "remediation",
        }
    }
}

/// The deployment behind a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRef {
    /// Repository, e.g. `contoso/hr-agents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// CI run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Target environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Commit deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Invokes the macro `$m` with every list of `Entities`, in field order: the one place that
/// order is written down (`visit`, `split_weighted` and the digest all follow it). `Snapshot`
/// and `Entities` declare the lists as serde fields, and `Snapshot::validate_at_most` moves
/// one into the other through this macro, so the compiler holds all three to one list;
/// `EntityList` is held to it by a unit test.
macro_rules! entity_lists {
    ($m:ident) => {
        $m!(
            domains,
            classification_rules,
            owners,
            workloads,
            identities,
            credentials,
            destinations,
            grants,
            bindings,
            evidence
        )
    };
}

/// Every entity a scan observed. After `validate`, each list is sorted by id and every
/// reference resolves. Scan chunk events carry parts of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    /// Data domains.
    #[serde(default)]
    pub domains: Vec<DataDomain>,
    /// Tag-based classification rules.
    #[serde(default)]
    pub classification_rules: Vec<ClassificationRule>,
    /// Owners.
    #[serde(default)]
    pub owners: Vec<Owner>,
    /// Workloads.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// Identities.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Credentials.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Destinations.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Grants.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Run-as bindings.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// Execution evidence records.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// In a delta scan, the entities gone since its base scan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<Deletion>,
}

impl Snapshot {
    /// Checks the snapshot and returns its parts, entities sorted by id.
    pub fn validate(self) -> Result<ValidSnapshot, SnapshotInvalid> {
        self.validate_at_most(MAX_SNAPSHOT_ENTITIES)
    }

    /// `validate` with a cap of `limit` entities.
    pub fn validate_at_most(self, limit: usize) -> Result<ValidSnapshot, SnapshotInvalid> {
        // Destructured without `..` and rebuilt from `entity_lists!`: a list added to
        // `Snapshot` or `Entities` and not to the macro does not compile.
        macro_rules! split {
            ($($field:ident),*) => {{
                let Snapshot { schema_version, tenant, scan, deleted, $($field),* } = self;
                (schema_version, tenant, scan, Entities { deleted, $($field),* })
            }};
        }
        let (schema_version, tenant, scan, entities) = entity_lists!(split);
        let mut problems = Problems::default();
        let count = entities.len();
        if count > limit {
            // Nothing else is checked: the fold would hold what it cannot bound.
            problems.push(format!("the snapshot holds {count} entities; at most {limit} are read"));
            return Err(problems.finish().expect_err("a problem was pushed"));
        }
        if schema_version != SNAPSHOT_SCHEMA_VERSION {
            problems.push(format!(
                "unsupported schema_version {schema_version}: this sv0 reads version {SNAPSHOT_SCHEMA_VERSION}"
            ));
        }
        if scan.connector.trim().is_empty() {
            problems.push("scan.connector is empty".to_string());
        }
        let entities = entities.sorted();
        let coverage = scan.coverage.as_ref();
        let delta = coverage.is_some_and(|c| c.mode == CoverageMode::Delta);
        match (delta, coverage.and_then(|c| c.base_scan.as_deref())) {
            (true, None) => problems.push("scan.coverage: a delta scan names its base_scan".to_string()),
            (false, Some(_)) => problems.push("scan.coverage: base_scan is only for a delta scan".to_string()),
            _ => {}
        }
        if !delta && !entities.deleted.is_empty() {
            problems.push("deleted: only a delta scan names deleted entities".to_string());
        }
        // A delta names only what changed: its references may point at entities of its base,
        // which the caller resolves against the views.
        let mut outside = delta.then(Vec::new);
        entities.check(&mut problems, outside.as_mut());
        problems.finish()?;
        Ok(ValidSnapshot { tenant, scan, entities, outside: outside.unwrap_or_default() })
    }
}

impl Snapshot {
    /// The delta scan that takes the tenant from `base`, applied as scan `base_scan`, to this
    /// snapshot: the entities added or changed, and those gone as deletions; complete for
    /// every list. Applied, it gives the views this snapshot as a full scan gives.
    pub fn delta_since(&self, base: &Snapshot, base_scan: &str) -> Snapshot {
        let mut deleted = Vec::new();
        let mut lists = EntityList::ALL.into_iter();
        macro_rules! changed {
            ($($field:ident),*) => {{
                $(
                    let before: BTreeMap<&str, _> = base.$field.iter().map(|e| (e.id.as_str(), e)).collect();
                    let now: BTreeSet<&str> = self.$field.iter().map(|e| e.id.as_str()).collect();
                    let $field: Vec<_> =
                        self.$field.iter().filter(|e| before.get(e.id.as_str()) != Some(e)).cloned().collect();
                    if let Some(list) = lists.next() {
                        deleted.extend(
                            base.$field
                                .iter()
                                .filter(|e| !now.contains(e.id.as_str()))
                                .map(|e| Deletion { list, id: e.id.clone() }),
                        );
                    }
                )*
                Snapshot {
                    schema_version: self.schema_version,
                    tenant: self.tenant.clone(),
                    scan: ScanInfo { coverage: Some(Coverage::delta(base_scan)), ..self.scan.clone() },
                    deleted,
                    $($field),*
                }
            }};
        }
        entity_lists!(changed)
    }
}

/// Something that looks at every entity of an `Entities`, e.g. to hash or measure it.
pub trait EntityVisitor {
    /// What can go wrong.
    type Error;
    /// Called once per entity with the name of its list.
    fn visit<T: Serialize>(&mut self, list: &'static str, item: &T) -> Result<(), Self::Error>;
}

/// A snapshot that passed `Snapshot::validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSnapshot {
    /// The tenant scanned.
    pub tenant: TenantId,
    /// How and when the scan ran.
    pub scan: ScanInfo,
    /// What it saw, sorted by id.
    pub entities: Entities,
    /// A delta scan's references to entities it does not hold (those of its base).
    pub outside: Vec<Reference>,
}

/// A reference from an entity to another, by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// The list of the entity referred to.
    pub list: EntityList,
    /// Its id.
    pub id: String,
    /// Who refers to it, for messages: `grants "g-1": identity`.
    pub from: String,
}

/// Most entities one snapshot may hold (a million-path tenant holds a few hundred thousand):
/// beyond it a snapshot is refused before anything of it is folded.
pub const MAX_SNAPSHOT_ENTITIES: usize = 5_000_000;

impl Entities {
    /// Total number of entities of every kind.
    pub fn len(&self) -> usize {
        let mut total = 0;
        macro_rules! count {
            ($($field:ident),*) => {$( total += self.$field.len(); )*};
        }
        entity_lists!(count);
        total + self.deleted.len()
    }

    /// Whether no entity of any kind is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts every list by id, so that equal content has one order.
    pub fn sorted(mut self) -> Entities {
        macro_rules! sort {
            ($($field:ident),*) => {$( self.$field.sort_by(|a, b| a.id.cmp(&b.id)); )*};
        }
        entity_lists!(sort);
        self.deleted.sort();
        self
    }

    /// Shows every entity to `visitor`, list by list in field order, each list in its order.
    /// `split_weighted` walks the same order.
    pub fn visit<V: EntityVisitor>(&self, visitor: &mut V) -> Result<(), V::Error> {
        macro_rules! each {
            ($($field:ident),*) => {$(
                for item in &self.$field {
                    visitor.visit(stringify!($field), item)?;
                }
            )*};
        }
        entity_lists!(each);
        for deletion in &self.deleted {
            visitor.visit("deleted", deletion)?;
        }
        Ok(())
    }

    /// Splits into parts whose entities' weights (one per entity, in `visit` order) add up to at
    /// most `budget` each, so that a large scan travels as several events; an entity heavier
    /// than the budget gets a part of its own. `merge` puts the parts back together.
    pub fn split_weighted(self, weights: &[usize], budget: usize) -> Vec<Entities> {
        let mut parts = vec![Entities::default()];
        let mut load = 0usize;
        let mut weights = weights.iter().copied();
        macro_rules! spread {
            ($($field:ident),*) => {$(
                for item in self.$field {
                    let weight = weights.next().unwrap_or(0);
                    let current_empty = parts.last().is_none_or(Entities::is_empty);
                    if load + weight > budget && !current_empty {
                        parts.push(Entities::default());
                        load = 0;
                    }
                    load += weight;
                    if let Some(part) = parts.last_mut() {
                        part.$field.push(item);
                    }
                }
            )*};
        }
        entity_lists!(spread);
        spread!(deleted);
        parts
    }

    /// Keeps the entities for which `keep(list, id)` holds (deletions stay).
    pub fn retain(&mut self, mut keep: impl FnMut(EntityList, &str) -> bool) {
        // `EntityList::ALL` is in field order (a unit test holds it there).
        let mut lists = EntityList::ALL.into_iter();
        macro_rules! filter {
            ($($field:ident),*) => {$(
                if let Some(list) = lists.next() {
                    self.$field.retain(|e| keep(list, &e.id));
                }
            )*};
        }
        entity_lists!(filter);
    }

    /// Concatenates parts made by `split_weighted` (in order) back into one value.
    pub fn merge(parts: impl IntoIterator<Item = Entities>) -> Entities {
        let mut all = Entities::default();
        for part in parts {
            macro_rules! extend {
                ($($field:ident),*) => {$( all.$field.extend(part.$field); )*};
            }
            entity_lists!(extend);
            extend!(deleted);
        }
        all
    }

    /// Checks ids and references. References to entities the snapshot does not hold are
    /// problems, unless `outside` collects them (a delta scan's, to its base's entities).
    fn check(&self, problems: &mut Problems, mut outside: Option<&mut Vec<Reference>>) {
        // Each list a reference may point into, with the ids the snapshot holds.
        let domains = (EntityList::Domains, ids(problems, "domains", self.domains.iter().map(|d| d.id.as_str())));
        let owners = (EntityList::Owners, ids(problems, "owners", self.owners.iter().map(|o| o.id.as_str())));
        let workloads =
            (EntityList::Workloads, ids(problems, "workloads", self.workloads.iter().map(|w| w.id.as_str())));
        let identities =
            (EntityList::Identities, ids(problems, "identities", self.identities.iter().map(|i| i.id.as_str())));
        let destinations =
            (EntityList::Destinations, ids(problems, "destinations", self.destinations.iter().map(|d| d.id.as_str())));
        ids(problems, "classification_rules", self.classification_rules.iter().map(|r| r.id.as_str()));
        let credentials =
            (EntityList::Credentials, ids(problems, "credentials", self.credentials.iter().map(|c| c.id.as_str())));
        ids(problems, "grants", self.grants.iter().map(|g| g.id.as_str()));
        ids(problems, "bindings", self.bindings.iter().map(|b| b.id.as_str()));
        ids(problems, "evidence", self.evidence.iter().map(|e| e.id.as_str()));
        let deleted = self.check_deleted(problems);

        let mut refer =
            |list: &str, id: &str, field: &str, (target, known): &(EntityList, BTreeSet<&str>), value: &str| {
                if known.contains(value) {
                    return;
                }
                let noun = target.noun();
                match outside.as_deref_mut() {
                    Some(outside) if !deleted.contains(&(*target, value)) => outside.push(Reference {
                        list: *target,
                        id: value.to_string(),
                        from: format!("{list} {id:?}: {field}"),
                    }),
                    Some(_) => {
                        problems.push(format!("{list} {id:?}: {field} refers to {noun} {value:?}, which it deletes"))
                    }
                    None => problems.push(format!("{list} {id:?}: {field} refers to unknown {noun} {value:?}")),
                }
            };
        for w in &self.workloads {
            for owner in &w.owners {
                refer("workloads", &w.id, "owners", &owners, owner);
            }
        }
        for i in &self.identities {
            for owner in &i.owners {
                refer("identities", &i.id, "owners", &owners, owner);
            }
        }
        for c in &self.credentials {
            refer("credentials", &c.id, "identity", &identities, &c.identity);
        }
        for d in &self.destinations {
            if let Some(domain) = &d.domain {
                refer("destinations", &d.id, "domain", &domains, domain);
            }
        }
        for r in &self.classification_rules {
            refer("classification_rules", &r.id, "domain", &domains, &r.domain);
        }
        for g in &self.grants {
            refer("grants", &g.id, "identity", &identities, &g.identity);
            refer("grants", &g.id, "destination", &destinations, &g.destination);
        }
        for b in &self.bindings {
            refer("bindings", &b.id, "workload", &workloads, &b.workload);
            refer("bindings", &b.id, "identity", &identities, &b.identity);
        }
        for e in &self.evidence {
            if let Some(identity) = &e.identity {
                refer("evidence", &e.id, "identity", &identities, identity);
            }
            if let Some(workload) = &e.workload {
                refer("evidence", &e.id, "workload", &workloads, workload);
            }
            if let Some(destination) = &e.destination {
                refer("evidence", &e.id, "destination", &destinations, destination);
            }
            if let Some(credential) = &e.credential {
                refer("evidence", &e.id, "credential", &credentials, credential);
            }
        }
        for g in &self.grants {
            if g.permissions.is_empty() {
                problems.push(format!("grants {:?}: permissions is empty", g.id));
            }
        }
        for e in &self.evidence {
            if e.identity.is_none() && e.workload.is_none() {
                problems.push(format!("evidence {:?}: names neither an identity nor a workload", e.id));
            }
        }
    }
}

impl Entities {
    /// Checks a delta's deletions: valid ids, each named once, none of an entity it also
    /// holds. Returns them.
    fn check_deleted(&self, problems: &mut Problems) -> BTreeSet<(EntityList, &str)> {
        let mut deleted = BTreeSet::new();
        for list in EntityList::ALL {
            let named = ids(problems, "deleted", self.deleted.iter().filter(|d| d.list == list).map(|d| d.id.as_str()));
            deleted.extend(named.into_iter().map(|id| (list, id)));
        }
        let mut held = |list: EntityList, id: &str| {
            if deleted.contains(&(list, id)) {
                problems.push(format!("deleted: {} {id:?} is both deleted and present", list.name()));
            }
        };
        // `EntityList::ALL` is in field order (a unit test holds it there).
        let mut lists = EntityList::ALL.into_iter();
        macro_rules! both {
            ($($field:ident),*) => {$(
                if let Some(list) = lists.next() {
                    for item in &self.$field {
                        held(list, &item.id);
                    }
                }
            )*};
        }
        entity_lists!(both);
        deleted
    }
}

/// Collects the ids of one list, reporting empty, oversized, control-character and duplicate ids.
fn ids<'a>(problems: &mut Problems, list: &str, values: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in values {
        if id.is_empty() {
            problems.push(format!("{list}: an entry has an empty id"));
        } else if id.len() > MAX_ID_LEN {
            problems.push(format!("{list}: id of {} bytes is longer than {MAX_ID_LEN}", id.len()));
        } else if id.chars().any(char::is_control) {
            problems.push(format!("{list} {id:?}: id contains a control character"));
        }
        *counts.entry(id).or_default() += 1;
        seen.insert(id);
    }
    for (id, count) in counts {
        if count > 1 {
            problems.push(format!("{list}: duplicate id {id:?} ({count} entries)"));
        }
    }
    seen
}

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    overflow: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(problem);
        } else {
            self.overflow += 1;
        }
    }

    fn finish(mut self) -> Result<(), SnapshotInvalid> {
        if self.overflow > 0 {
            self.list.push(format!("{} further problems not shown", self.overflow));
        }
        if self.list.is_empty() { Ok(()) } else { Err(SnapshotInvalid { problems: self.list }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_list_names_every_list_of_entities_in_field_order() {
        macro_rules! names {
            ($($field:ident),*) => { vec![$(stringify!($field)),*] };
        }
        let fields: Vec<&str> = entity_lists!(names);
        let lists: Vec<&str> = EntityList::ALL.iter().map(EntityList::name).collect();
        assert_eq!(lists, fields);
    }
}
