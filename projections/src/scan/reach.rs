//! Which paths a scan's changes can reach (`reach`): the workloads, identities and
//! destinations whose paths must be recomputed, and the paths lost with removed entities.

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;
use sv0_domain::findings::{self};
use sv0_domain::model::{Credential, Evidence, Owner};
use sv0_domain::paths::{AuthorityPath, PathSelection};
use sv0_domain::policy::Policy;
use sv0_domain::snapshot::EntityList;
use sv0_domain::{TenantId, Timestamp};

use crate::error::ProjectionError;
use crate::graph::{self, AnyEntity, GraphCache, StoredGraph, entity_key, index_lookup, index_range, time_key};
use crate::pathstore::{self};
use crate::store::scan_raw;
use crate::store::{Tables, t_prefix};

use super::*;

/// What the changes and the passing of time reach: the paths to recompute (whole workloads,
/// every path through some identities, or the paths of some identity-destination pairs), and
/// the credentials, identities and destinations whose findings must be re-evaluated.
#[derive(Default)]
pub(super) struct Reach {
    pub(super) all: bool,
    /// Workloads whose every path is recomputed.
    pub(super) workloads: BTreeSet<String>,
    /// Identities whose every path is recomputed, in every workload bound to them.
    pub(super) path_identities: BTreeSet<String>,
    /// (identity, destination) pairs whose paths are recomputed, in every workload bound to the
    /// identity.
    pub(super) pairs: BTreeSet<(String, String)>,
    /// Whose findings are decided again.
    pub(super) around: Around,
}

/// The paths to recompute, by workload: all of them (`None`) or a selection.
pub(super) type Selections = BTreeMap<String, Option<PathSelection>>;

impl Reach {
    /// Resolves identities and pairs to the workloads bound to them.
    pub(super) fn selections(&self, t: &Tables<'_>, tenant: &TenantId) -> Result<Selections, ProjectionError> {
        let mut out: Selections = self.workloads.iter().map(|w| (w.clone(), None)).collect();
        let mut bound: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let identities = self.path_identities.iter().chain(self.pairs.iter().map(|(i, _)| i));
        for identity in identities {
            if !bound.contains_key(identity.as_str()) {
                bound.insert(identity, graph::workloads_of_identity(&t.entity_index, tenant, identity)?);
            }
        }
        let mut select = |identity: &str, add: &dyn Fn(&mut PathSelection)| {
            for workload in &bound[identity] {
                if let Some(selection) = out.entry(workload.clone()).or_insert_with(|| Some(PathSelection::default())) {
                    add(selection);
                }
            }
        };
        for identity in &self.path_identities {
            select(identity, &|s| {
                s.identities.insert(identity.clone());
            });
        }
        for (identity, destination) in &self.pairs {
            select(identity, &|s| s.add_pair(identity, destination));
        }
        Ok(out)
    }
}

pub(super) fn reach(
    t: &Tables<'_>,
    tenant: &TenantId,
    changes: &[Change],
    previous: Option<Timestamp>,
    now: Timestamp,
    policy: &Policy,
) -> Result<Reach, ProjectionError> {
    let mut r = Reach::default();
    let touch = |r: &mut Reach, entity: AnyEntity| -> Result<(), ProjectionError> {
        match entity {
            AnyEntity::Workload(w) => {
                r.workloads.insert(w.id);
            }
            AnyEntity::Binding(b) => {
                // Which workloads an identity runs is an identity finding (shared, user, key).
                r.around.identities.insert(b.identity);
                r.workloads.insert(b.workload);
            }
            AnyEntity::Identity(i) => {
                r.path_identities.insert(i.id.clone());
                r.around.identities.insert(i.id);
            }
            AnyEntity::Grant(g) => {
                r.pairs.insert((g.identity.clone(), g.destination));
                r.around.identities.insert(g.identity);
            }
            AnyEntity::Destination(d) => {
                // The paths through it (a grant's destination exists, so every identity granted
                // it and bound to a workload has a path through it).
                for located in pathstore::by_destination(&t.path_index, tenant, &d.id)? {
                    r.pairs.insert((located.identity, d.id.clone()));
                }
                r.around.destinations.insert(d.id);
            }
            AnyEntity::Domain(_) | AnyEntity::Rule(_) => r.all = true,
            AnyEntity::Owner(o) => {
                r.workloads.extend(
                    index_lookup(&t.entity_index, tenant, "workload.owner", &o.id)?.into_iter().map(|(id, _)| id),
                );
                for (identity, _) in index_lookup(&t.entity_index, tenant, "identity.owner", &o.id)? {
                    r.path_identities.insert(identity.clone());
                    r.around.identities.insert(identity);
                }
            }
            AnyEntity::Evidence(e) => {
                // A record grades only what it names (`paths::grade`): the identity's path to
                // the destination it names (grade A); every path of the identity when it names
                // a service (grade B toward each destination of that service); and, for a run
                // of a workload that names a destination, the paths of the workload's
                // identities to that destination (grade B). The identity's last activity is an
                // identity finding.
                if let Some(identity) = &e.identity {
                    if e.service.is_some() {
                        r.path_identities.insert(identity.clone());
                    } else if let Some(destination) = &e.destination {
                        r.pairs.insert((identity.clone(), destination.clone()));
                    }
                }
                if let (Some(workload), Some(destination)) = (&e.workload, &e.destination) {
                    for (_, identity) in index_lookup(&t.entity_index, tenant, "binding.workload", workload)? {
                        r.pairs.insert((identity, destination.clone()));
                    }
                }
                r.around.identities.extend(e.identity);
            }
            AnyEntity::Credential(c) => {
                // An identity's secrets together are an identity finding (several active).
                r.around.identities.insert(c.identity);
                r.around.credentials.insert(c.id);
            }
        }
        Ok(())
    };
    for change in changes {
        if matches!(change.kind, ChangeKind::Unobserved | ChangeKind::Reobserved) {
            continue;
        }
        for bytes in [&change.old, &change.new].into_iter().flatten() {
            touch(&mut r, AnyEntity::decode(change.list, bytes)?)?;
        }
    }
    if let Some(previous) = previous.filter(|p| *p < now) {
        // Time-driven conditions compare with `<` or `<=`, so an instant equal to either scan's
        // time may flip one: every range below runs from one millisecond before the previous
        // scan (the range's start is exclusive) to the current one, both ends included.
        let since = |at: Timestamp| time_key(at.0 - 1);
        // Grades whose evidence left the window: the pairs of those paths, not their whole
        // workloads (a day's expiries reach a fifth of a large tenant's workloads, and
        // recomputing them whole cost more than the rest of a 1 % delta scan).
        let expiring = pathstore::expiring(&t.path_index, tenant, Timestamp(now.0 - 1))?;
        for path in pathstore::load(&t.paths, tenant, &expiring)? {
            r.pairs.insert((path.identity.id, path.destination.id));
        }
        // Evidence dated after the previous scan's time that now falls inside the window.
        for (_, evidence_id, _) in
            index_range(&t.entity_index, tenant, "evidence.time", &since(previous), &time_key(now.0))?
        {
            if let Some(bytes) = t.entities.get(entity_key(tenant, EntityList::Evidence, &evidence_id).as_slice())? {
                touch(&mut r, AnyEntity::decode(EntityList::Evidence, &graph::canonical(bytes.value())?)?)?;
            }
        }
        // Owners who went silent.
        let p = t_prefix(tenant, &[EntityList::Owners.name().as_bytes()]);
        for (_, bytes) in scan_raw(&t.entities, &p)? {
            let owner: Owner = graph::decode_row(&bytes)?;
            if accountable(&owner, previous, policy) != accountable(&owner, now, policy) {
                touch(&mut r, AnyEntity::Owner(owner))?;
            }
        }
        // Credentials whose expiry, or the point past which they count as long-lived, passed:
        // their findings and their identity's (several active secrets).
        for (_, credential_id, _) in
            index_range(&t.entity_index, tenant, "credential.time", &since(previous), &time_key(now.0))?
        {
            if let Some(credential) = get_entity::<Credential>(t, tenant, EntityList::Credentials, &credential_id)? {
                r.around.identities.insert(credential.identity);
            }
            r.around.credentials.insert(credential_id);
        }
        // Identities whose latest evidence may have aged past the unused limit.
        let unused = |at: Timestamp| at.add_days(-findings::UNUSED_DAYS);
        for (_, evidence_id, _) in
            index_range(&t.entity_index, tenant, "evidence.time", &since(unused(previous)), &time_key(unused(now).0))?
        {
            if let Some(evidence) = get_entity::<Evidence>(t, tenant, EntityList::Evidence, &evidence_id)? {
                r.around.identities.extend(evidence.identity);
            }
        }
    }
    tracing::debug!(
        pairs = r.pairs.len(),
        identities = r.path_identities.len(),
        workloads = r.workloads.len(),
        "what the scan's changes and the time since the last scan reach"
    );
    if r.all {
        r.workloads.extend(entity_ids(&t.entities, tenant, EntityList::Workloads)?);
    }
    Ok(r)
}

/// The stored rows of a workload's paths through the identities `selection` names (every
/// identity for `None`), by identity.
pub(super) fn stored_rows(
    t: &Tables<'_>,
    tenant: &TenantId,
    workload: &str,
    selection: Option<&PathSelection>,
) -> Result<pathstore::Rows, ProjectionError> {
    let Some(s) = selection else { return pathstore::rows_of(&t.paths, tenant, workload) };
    let mut out = pathstore::Rows::new();
    for identity in s.identities.iter().chain(s.pairs.keys()) {
        if !out.contains_key(identity)
            && let Some(row) = pathstore::row(&t.paths, tenant, workload, identity)?
        {
            out.insert(identity.clone(), row);
        }
    }
    Ok(out)
}

/// The stored paths `selection` selects (all of them for `None`), decoded from their rows; the
/// others stay undecoded.
pub(super) fn selected(
    rows: &pathstore::Rows,
    selection: Option<&PathSelection>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for (identity, row) in rows {
        for framed in row.iter().filter(|f| selection.is_none_or(|s| s.has(identity, f.tag))) {
            out.push(pathstore::decode_path(&framed)?);
        }
    }
    Ok(out)
}

/// The policy's fold budget as a fold spends it: paths counted before they are built, or built.
pub(super) struct Budget {
    limit: u64,
    planned: u64,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Budget {
        Budget { limit, planned: 0 }
    }

    /// Counts the paths recomputing a workload's selection would compute, no further than the
    /// budget left; whether the budget is now passed.
    pub(super) fn count(
        &mut self,
        lookup: &impl sv0_domain::paths::GraphLookup,
        workload: &str,
        selection: Option<&PathSelection>,
    ) -> bool {
        let left = self.limit - self.planned.min(self.limit);
        self.planned += sv0_domain::paths::count_selected_paths(lookup, workload, selection, left);
        self.planned > self.limit
    }

    /// Adds paths already computed; whether the budget is now passed.
    pub(super) fn spend(&mut self, paths: usize) -> bool {
        self.planned += paths as u64;
        self.planned > self.limit
    }
}

/// Whether recomputing the selections would compute more paths than `budget`, counted before
/// any path is built.
pub(super) fn over_budget(
    t: &Tables<'_>,
    tenant: &TenantId,
    selections: &Selections,
    budget: u64,
) -> Result<bool, ProjectionError> {
    let cache = GraphCache::default();
    let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
    let mut spent = Budget::new(budget);
    Ok(selections.iter().any(|(workload, selection)| spent.count(&lookup, workload, selection.as_ref())))
}
