//! A planned change laid over the current graph: what a deployment *will* do, before it runs.
//!
//! An `Overlay` holds the entities a plan adds or replaces and the ids it removes; an
//! `OverlayGraph` answers the `GraphLookup` questions as the graph would stand after the plan,
//! reading everything else from the current graph. Nothing is written anywhere: a what-if is
//! a computation, never a fact on the log.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Binding, ClassificationRule, DataDomain, Destination, Evidence, Grant, Identity, Owner, Workload};
use crate::paths::{GraphLookup, MemoryGraph};
use crate::snapshot::{Entities, EntityList};

/// What a plan changes, as entities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Entities the plan creates or replaces (a replaced entity keeps its id).
    pub upserts: Entities,
    /// Ids the plan deletes, per list. A removed grant id also removes the grants expanded
    /// from it (`<id>#<resource>`, one per data resource below an assignment's scope).
    pub removed: BTreeMap<EntityList, BTreeSet<String>>,
    /// Identities whose authority changes: those of every upserted or removed grant, binding
    /// and identity.
    pub identities: BTreeSet<String>,
    /// Workloads the plan creates, replaces or deletes.
    pub workloads: BTreeSet<String>,
    /// Destinations the plan creates, replaces or deletes (their classification may change),
    /// by lower-case id.
    pub destinations: BTreeSet<String>,
}

impl Overlay {
    /// Records that the plan deletes `id` from `list` (an ARM id in any case).
    pub fn remove(&mut self, list: EntityList, id: &str) {
        let id = if id.starts_with('/') { id.to_ascii_lowercase() } else { id.to_string() };
        self.removed.entry(list).or_default().insert(id);
    }

    /// Whether `id` of `list` is deleted (for grants, also an expansion of a deleted one). ARM
    /// ids (`/subscriptions/...`) compare case-insensitively, as Azure compares them.
    pub fn is_removed(&self, list: EntityList, id: &str) -> bool {
        let Some(ids) = self.removed.get(&list) else { return false };
        let lower;
        let id = if id.starts_with('/') {
            lower = id.to_ascii_lowercase();
            lower.as_str()
        } else {
            id
        };
        ids.contains(id)
            || (list == EntityList::Grants && id.split_once('#').is_some_and(|(base, _)| ids.contains(base)))
    }

    /// Fills `identities`, `workloads` and `destinations` from the upserts (removals name their
    /// identities when they are recorded).
    pub fn touch_upserts(&mut self) {
        let u = &self.upserts;
        self.identities.extend(u.grants.iter().map(|g| g.identity.clone()));
        self.identities.extend(u.bindings.iter().map(|b| b.identity.clone()));
        self.identities.extend(u.identities.iter().map(|i| i.id.clone()));
        self.workloads.extend(u.workloads.iter().map(|w| w.id.clone()));
        self.workloads.extend(u.bindings.iter().map(|b| b.workload.clone()));
        self.destinations.extend(u.destinations.iter().map(|d| d.id.to_ascii_lowercase()));
    }

    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upserts == Entities::default() && self.removed.values().all(BTreeSet::is_empty)
    }
}

/// The graph as it would stand after the plan: `base` with the overlay's upserts and removals.
pub struct OverlayGraph<'a, G: GraphLookup> {
    base: &'a G,
    overlay: &'a Overlay,
    planned: MemoryGraph<'a>,
}

impl<'a, G: GraphLookup> OverlayGraph<'a, G> {
    /// `base` with `overlay` laid over it.
    pub fn new(base: &'a G, overlay: &'a Overlay) -> OverlayGraph<'a, G> {
        OverlayGraph { base, overlay, planned: MemoryGraph::new(&overlay.upserts) }
    }

    fn one<E>(&self, list: EntityList, id: &str, planned: Option<E>, base: impl FnOnce() -> Option<E>) -> Option<E> {
        if let Some(found) = planned {
            return Some(found);
        }
        if self.overlay.is_removed(list, id) { None } else { base() }
    }

    /// `base` minus what the plan removes or replaces, plus what it plans.
    fn many<E>(&self, list: EntityList, base: Vec<E>, planned: Vec<E>, id: impl Fn(&E) -> &str) -> Vec<E> {
        let replaced: BTreeSet<String> = planned.iter().map(|e| id(e).to_string()).collect();
        let mut out: Vec<E> =
            base.into_iter().filter(|e| !self.overlay.is_removed(list, id(e)) && !replaced.contains(id(e))).collect();
        out.extend(planned);
        out
    }
}

impl<G: GraphLookup> GraphLookup for OverlayGraph<'_, G> {
    fn workload(&self, id: &str) -> Option<Workload> {
        self.one(EntityList::Workloads, id, self.planned.workload(id), || self.base.workload(id))
    }
    fn bindings_of(&self, workload: &str) -> Vec<Binding> {
        self.many(EntityList::Bindings, self.base.bindings_of(workload), self.planned.bindings_of(workload), |b| &b.id)
    }
    fn identity(&self, id: &str) -> Option<Identity> {
        self.one(EntityList::Identities, id, self.planned.identity(id), || self.base.identity(id))
    }
    fn grants_of(&self, identity: &str) -> Vec<Grant> {
        self.many(EntityList::Grants, self.base.grants_of(identity), self.planned.grants_of(identity), |g| &g.id)
    }
    fn destination(&self, id: &str) -> Option<Destination> {
        self.one(EntityList::Destinations, id, self.planned.destination(id), || self.base.destination(id))
    }
    fn domain(&self, id: &str) -> Option<DataDomain> {
        self.one(EntityList::Domains, id, self.planned.domain(id), || self.base.domain(id))
    }
    fn classification_rules(&self) -> Vec<ClassificationRule> {
        self.many(
            EntityList::ClassificationRules,
            self.base.classification_rules(),
            self.planned.classification_rules(),
            |r| &r.id,
        )
    }
    fn owner(&self, id: &str) -> Option<Owner> {
        self.one(EntityList::Owners, id, self.planned.owner(id), || self.base.owner(id))
    }
    fn evidence_of_identity(&self, identity: &str) -> Vec<Evidence> {
        // A plan creates no evidence: what has not happened has not been seen.
        self.base.evidence_of_identity(identity)
    }
    fn evidence_of_workload(&self, workload: &str) -> Vec<Evidence> {
        self.base.evidence_of_workload(workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::paths::compute_workload_paths;
    use crate::policy::Policy;

    fn tenant() -> Entities {
        serde_json::from_value(serde_json::json!({
            "domains": [{"id": "finance", "name": "Finance", "sensitive": true}],
            "workloads": [{"id": "w", "name": "Agent", "kind": "foundry_agent"}],
            "identities": [{"id": "mi", "name": "mi", "kind": "managed_identity"}],
            "destinations": [
                {"id": "graph", "name": "Graph", "kind": "graph_api", "service": "graph", "host": "graph.microsoft.com"},
                {"id": "ledger", "name": "ledger", "kind": "storage_container", "service": "storage",
                 "host": "st.blob.core.windows.net", "domain": "finance"}
            ],
            "grants": [{"id": "g-graph", "identity": "mi", "destination": "graph", "permissions": ["read"],
                        "source": "app_role_assignment", "role": "User.Read.All", "scope": "graph"}],
            "bindings": [{"id": "b", "workload": "w", "identity": "mi"}]
        }))
        .unwrap()
    }

    fn paths(lookup: &impl GraphLookup) -> Vec<(String, Vec<crate::model::Permission>)> {
        let at = Timestamp::parse("2026-03-02T00:00:00Z").unwrap();
        compute_workload_paths(lookup, "w", at, &Policy::default(), &|_| None)
            .into_iter()
            .map(|p| (p.destination.id, p.permissions))
            .collect()
    }

    #[test]
    fn a_planned_grant_adds_a_path_and_a_deleted_one_removes_it_with_its_expansions() {
        let current = tenant();
        let base = MemoryGraph::new(&current);
        assert_eq!(paths(&base).len(), 1);
        let mut overlay = Overlay::default();
        overlay.upserts.grants.push(Grant {
            id: "/ra/1".into(),
            identity: "mi".into(),
            destination: "ledger".into(),
            permissions: vec![crate::model::Permission::Read],
            source: crate::model::GrantSource::AzureRoleAssignment,
            role: "Storage Blob Data Reader".into(),
            scope: "ledger".into(),
            consent: None,
        });
        overlay.remove(EntityList::Grants, "g-graph");
        overlay.touch_upserts();
        assert_eq!(overlay.identities, BTreeSet::from(["mi".to_string()]));
        let after = OverlayGraph::new(&base, &overlay);
        assert_eq!(paths(&after), [("ledger".to_string(), vec![crate::model::Permission::Read])]);
        // The base is untouched.
        assert_eq!(paths(&base)[0].0, "graph");
        // A removed assignment takes its per-container expansions with it.
        let mut expanded = Overlay::default();
        expanded.remove(EntityList::Grants, "/ra/2");
        assert!(expanded.is_removed(EntityList::Grants, "/ra/2#/containers/x"));
        assert!(!expanded.is_removed(EntityList::Grants, "/ra/20"));
    }
}
