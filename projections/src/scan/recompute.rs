//! Recomputing the reached paths and the findings of the entities around them (`recompute`,
//! `settle`), then storing them.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::findings::{self, Finding, PathFacts, PathOf};
use sv0_domain::model::{Binding, Credential, Destination, Evidence, Grant, Identity, Owner, OwnerStatus};
use sv0_domain::paths::compute_selected_paths;
use sv0_domain::policy::Policy;
use sv0_domain::snapshot::EntityList;
use sv0_domain::{TenantId, Timestamp};

use crate::batch::{Batch, Target};
use crate::error::ProjectionError;
use crate::findingstore;
use crate::graph::{self, GraphCache, StoredGraph, index_lookup};
use crate::pathstore::{self, PathWriter};
use crate::records::{FindingRecord, FindingStatus};
use crate::store;
use crate::store::{ScanFold, Tables, t_key};

use super::*;

/// Whether an owner can be held accountable at a time.
pub(super) fn accountable(owner: &Owner, at: Timestamp, policy: &Policy) -> bool {
    owner.status == OwnerStatus::Active
        && owner.last_active_at.is_none_or(|last| last >= at.add_days(-i64::from(policy.owner_silence_days)))
}

/// The identities, credentials and destinations whose findings are decided again.
#[derive(Default)]
pub(crate) struct Around {
    pub(crate) identities: BTreeSet<String>,
    pub(crate) credentials: BTreeSet<String>,
    pub(crate) destinations: BTreeSet<String>,
}

/// The selections recomputed, not yet written: their path and workload finding rows wait in
/// the batch, so a breaker that trips on what they remove drops them unwritten.
pub(crate) struct Recomputed {
    writer: PathWriter,
    batch: Batch,
    /// The paths computed would pass the budget: the recompute stopped there, incomplete.
    pub(crate) over_budget: bool,
}

impl Recomputed {
    /// Paths the recompute removes.
    pub(crate) fn removed(&self) -> u64 {
        self.writer.removed
    }

    /// Writes the recomputed rows, then settles the findings of the identities, credentials
    /// and destinations around them and of those whose paths changed.
    pub(crate) fn write(
        self,
        t: &mut Tables<'_>,
        fold: &mut ScanFold<'_>,
        mut around: Around,
    ) -> Result<PathWriter, ProjectionError> {
        let Recomputed { writer, mut batch, .. } = self;
        batch.flush(t)?;
        let tenant = fold.tenant;
        around.identities.extend(writer.identities.iter().cloned());
        around.destinations.extend(writer.destinations.iter().cloned());
        for identity in &around.identities {
            for (credential, _) in index_lookup(&t.entity_index, tenant, "credential.identity", identity)? {
                around.credentials.insert(credential);
            }
        }
        entity_findings(t, &mut batch, fold, &around)?;
        batch.flush(t)?;
        fold.state.paths_total = fold.state.posture.paths_total;
        Ok(writer)
    }
}

/// Recomputes the selected paths of each workload and, where they changed, the workload's
/// findings, into a batch that [`Recomputed::write`] writes. Nothing is written to the tables
/// here; the fold's state (posture, open findings) moves, and is dropped with the fold if the
/// recompute is not written.
///
/// With a `budget`, it stops once the paths computed would pass it (`over_budget`). A selection of
/// (identity, destination) pairs alone computes at most a path per pair, which the scan's own
/// changes bound, so it is counted as computed; any other selection (a whole workload, every
/// path of an identity) is counted first, no further than the budget left, as
/// `reach::over_budget` counts a first scan's.
pub(crate) fn recompute(
    t: &Tables<'_>,
    fold: &mut ScanFold<'_>,
    policy: &Policy,
    selections: &Selections,
    budget: Option<u64>,
) -> Result<Recomputed, ProjectionError> {
    let (tenant, now) = (fold.tenant, fold.now);
    let mut writer = PathWriter::new();
    let mut batch = Batch::default();
    let cache = GraphCache::default();
    let mut budget = budget.map(Budget::new);
    let (mut computed, mut whole) = (0u64, 0u64);
    for (workload, selection) in selections {
        whole += u64::from(selection.is_none());
        let pairs_only = selection.as_ref().is_some_and(|s| s.identities.is_empty());
        if let Some(budget) = budget.as_mut().filter(|_| !pairs_only) {
            let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
            if budget.count(&lookup, workload, selection.as_ref()) {
                return Ok(Recomputed { writer, batch, over_budget: true });
            }
        }
        // Each workload is read and rewritten once, so its rows are never in the batch yet.
        let stored = stored_rows(t, tenant, workload, selection.as_ref())?;
        let old = selected(&stored, selection.as_ref())?;
        let previous: BTreeMap<&str, _> =
            old.iter().map(|p| (p.path_id.as_str(), (p.owner_state, p.owner_state_since))).collect();
        let new = {
            let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
            let previous = |id: &str| previous.get(id).copied();
            compute_selected_paths(&lookup, workload, now, policy, &previous, selection.as_ref())
        };
        computed += new.len() as u64;
        if pairs_only && budget.as_mut().is_some_and(|budget| budget.spend(new.len())) {
            return Ok(Recomputed { writer, batch, over_budget: true });
        }
        let writes = writer.writes;
        writer.replace(&mut batch, &t.paths, &stored, &mut fold.state.posture, tenant, &old, &new)?;
        let changed = writer.writes != writes;
        if changed {
            fold.touched.insert(workload.clone());
        }
        // A workload's findings follow from its paths alone: when a selection of them was
        // recomputed and none changed, neither did the findings. Those about one path are
        // settled for the recomputed paths only; those about the whole workload from the facts
        // of all of its paths, the stored facts of the others read from one row. A whole
        // workload recomputed is settled whole.
        if selection.is_none() || changed {
            let stored_facts = pathstore::facts_of(&t.workload_facts, tenant, workload)?;
            let mut facts = match selection {
                None => Vec::new(),
                Some(_) => {
                    let replaced: BTreeSet<&str> = old.iter().map(|p| p.path_id.as_str()).collect();
                    stored_facts.iter().filter(|f| !replaced.contains(f.path_id.as_str())).cloned().collect()
                }
            };
            facts.extend(new.iter().map(PathFacts::of));
            facts.sort_by(|a, b| a.path_id.cmp(&b.path_id));
            // Most changes to a path leave the few fields its facts keep as they were.
            if facts != stored_facts {
                pathstore::put_facts(&mut batch, &t.workload_facts, tenant, workload, &facts)?;
            }
            let recomputed: BTreeSet<&str> = old.iter().chain(&new).map(|p| p.path_id.as_str()).collect();
            let mut current: Vec<_> = new.iter().flat_map(findings::path_findings).collect();
            current.extend(findings::whole_workload_findings(&facts));
            settle_workload(t, &mut batch, fold, workload, &recomputed, current)?;
        }
        batch.relieve()?;
    }
    tracing::debug!(
        %tenant,
        workloads = selections.len(),
        whole,
        computed,
        writes = writer.writes,
        "recomputed the selected paths"
    );
    Ok(Recomputed { writer, batch, over_budget: false })
}

pub(super) fn get_entity<E: serde::de::DeserializeOwned>(
    t: &Tables<'_>,
    tenant: &TenantId,
    list: EntityList,
    id: &str,
) -> Result<Option<E>, ProjectionError> {
    graph::get_entity(&t.entities, tenant, list, id)
}

/// The stored entities of `list` that an entity index names for `value`.
pub(super) fn related<E: serde::de::DeserializeOwned>(
    t: &Tables<'_>,
    tenant: &TenantId,
    index: &str,
    value: &str,
    list: EntityList,
) -> Result<Vec<E>, ProjectionError> {
    let mut out = Vec::new();
    for (id, _) in index_lookup(&t.entity_index, tenant, index, value)? {
        out.extend(get_entity::<E>(t, tenant, list, &id)?);
    }
    Ok(out)
}

/// The paths through an identity: the rows of each workload bound to it.
pub(super) fn paths_of_identity(
    t: &Tables<'_>,
    tenant: &TenantId,
    identity: &str,
) -> Result<Vec<PathOf>, ProjectionError> {
    let mut out = Vec::new();
    for workload in graph::workloads_of_identity(&t.entity_index, tenant, identity)? {
        for path_id in pathstore::ids_of(&t.paths, tenant, &workload, identity)? {
            out.push(PathOf { path_id, workload: workload.clone() });
        }
    }
    Ok(out)
}

/// The evidence gaps of a destination.
pub(super) fn gaps_of(t: &Tables<'_>, tenant: &TenantId, destination: &str) -> Result<Vec<PathOf>, ProjectionError> {
    Ok(pathstore::by_destination(&t.path_index, tenant, destination)?
        .iter()
        .filter(|l| l.gap)
        .map(pathstore::Located::path_of)
        .collect())
}

/// Decides the findings of the credentials, identities and destinations `around` names.
pub(super) fn entity_findings(
    t: &Tables<'_>,
    batch: &mut Batch,
    fold: &mut ScanFold<'_>,
    around: &Around,
) -> Result<(), ProjectionError> {
    let (tenant, now) = (fold.tenant, fold.now);
    let mut candidates = BTreeSet::new();
    let mut current = Vec::new();
    for id in &around.credentials {
        candidates.extend(findings::credential_subjects(id));
        if let Some(credential) = get_entity::<Credential>(t, tenant, EntityList::Credentials, id)? {
            let name = get_entity::<Identity>(t, tenant, EntityList::Identities, &credential.identity)?
                .map_or_else(|| credential.identity.clone(), |i| i.name);
            let paths = paths_of_identity(t, tenant, &credential.identity)?;
            current.extend(findings::credential_findings(&credential, &name, &paths, now));
        }
    }
    for id in &around.identities {
        candidates.extend(findings::identity_subjects(id));
        if let Some(identity) = get_entity::<Identity>(t, tenant, EntityList::Identities, id)? {
            let grants: Vec<Grant> = related(t, tenant, "grant.identity", id, EntityList::Grants)?;
            let bindings: Vec<Binding> = related(t, tenant, "binding.identity", id, EntityList::Bindings)?;
            let credentials: Vec<Credential> = related(t, tenant, "credential.identity", id, EntityList::Credentials)?;
            let evidence: Vec<Evidence> = related(t, tenant, "evidence.identity", id, EntityList::Evidence)?;
            let paths = paths_of_identity(t, tenant, id)?;
            let facts = findings::IdentityFacts {
                identity: &identity,
                grants: &grants,
                bindings: &bindings,
                credentials: &credentials,
                last_activity: evidence.iter().map(|e| e.at).max(),
                paths: &paths,
                now,
            };
            current.extend(findings::identity_findings(&facts));
        }
    }
    for id in &around.destinations {
        candidates.insert(findings::finding_id(findings::EVIDENCE_GAP.id, &format!("destination:{id}")));
        if let Some(destination) = get_entity::<Destination>(t, tenant, EntityList::Destinations, id)? {
            let gaps = gaps_of(t, tenant, id)?;
            current.extend(findings::evidence_gap_finding(&destination, &gaps));
        }
    }
    settle(t, batch, fold, candidates, current)
}

/// The next record of a candidate finding, from its stored record and the rule's result now;
/// `None` when there is nothing to store or nothing changed. Moves the fold's open counts and
/// the scan's finding movement.
fn next_record(
    fold: &mut ScanFold<'_>,
    id: &str,
    existing: Option<&FindingRecord>,
    current: Option<Finding>,
) -> Option<FindingRecord> {
    let (seq, now) = (fold.seq, fold.now);
    let next = match (existing, current) {
        (None, None) => return None,
        (Some(old), Some(finding)) if old.status == FindingStatus::Open => {
            fold.state.open.close(&old.finding);
            fold.state.open.open(&finding);
            FindingRecord { finding, ..old.clone() }
        }
        (_, Some(finding)) => {
            fold.movement.opened.push(id.to_string());
            fold.state.open.open(&finding);
            FindingRecord::opened(finding, seq, now)
        }
        (Some(old), None) if old.status == FindingStatus::Open => {
            fold.movement.resolved.push(id.to_string());
            fold.state.open.close(&old.finding);
            old.clone().resolved(seq, now)
        }
        (Some(_), None) => return None,
    };
    (existing != Some(&next)).then_some(next)
}

/// Moves the findings about a workload and its paths through their lifecycle, in the
/// workload's group (`findingstore`): a stored finding about the whole workload or about one of
/// the `recomputed` paths is open when `current` has it and resolved otherwise; the findings
/// about the workload's other paths stay as they are. The group is rewritten once, when anything
/// in it changed.
fn settle_workload(
    t: &Tables<'_>,
    batch: &mut Batch,
    fold: &mut ScanFold<'_>,
    workload: &str,
    recomputed: &BTreeSet<&str>,
    current: Vec<Finding>,
) -> Result<(), ProjectionError> {
    let tenant = fold.tenant;
    let stored = findingstore::group_row(&t.finding_groups, tenant, workload)?;
    let mut current: BTreeMap<String, Finding> = current.into_iter().map(|f| (f.finding_id.clone(), f)).collect();
    // The group holds only findings about the workload's paths (`path:ID`) and about the whole
    // workload: which of them the recomputation decides follows from their subjects, which
    // their frames carry, so the others are neither decoded nor encoded again.
    let decided = |subject: &str| match subject.strip_prefix("path:") {
        Some(path_id) => recomputed.contains(path_id),
        None => true,
    };
    let mut group = findingstore::Group::new();
    for framed in stored.iter().flat_map(findingstore::GroupRow::iter).filter(|f| decided(f.tag)) {
        group.insert(framed.id.to_string(), findingstore::decode_record(&framed)?);
    }
    let ids: BTreeSet<String> = group.keys().cloned().chain(current.keys().cloned()).collect();
    let mut new_ids = Vec::new();
    let mut changed = false;
    for id in ids {
        let existing = group.get(&id);
        let is_new = existing.is_none();
        let Some(next) = next_record(fold, &id, existing, current.remove(&id)) else { continue };
        if is_new {
            new_ids.push(id.clone());
        }
        group.insert(id, next);
        changed = true;
    }
    if changed {
        findingstore::put_group(batch, &t.finding_groups, tenant, workload, stored.as_ref(), &group, &new_ids)?;
        fold.touched.insert(workload.to_string());
    }
    Ok(())
}

/// Moves the findings about identities, credentials and destinations (one row each in
/// `findings`) through their lifecycle: each candidate id is open when `current` has it and
/// resolved otherwise.
pub(super) fn settle(
    t: &Tables<'_>,
    batch: &mut Batch,
    fold: &mut ScanFold<'_>,
    candidates: impl IntoIterator<Item = String>,
    current: Vec<Finding>,
) -> Result<(), ProjectionError> {
    let tenant = fold.tenant;
    let mut current: BTreeMap<String, Finding> = current.into_iter().map(|f| (f.finding_id.clone(), f)).collect();
    let ids: BTreeSet<String> = candidates.into_iter().chain(current.keys().cloned()).collect();
    for id in ids {
        let key = t_key(tenant, &[id.as_bytes()]);
        let existing: Option<FindingRecord> = store::get_compact(&t.findings, "findings", &key)?;
        let Some(next) = next_record(fold, &id, existing.as_ref(), current.remove(&id)) else { continue };
        if let Some(old) = &existing {
            for workload in &old.finding.workloads {
                batch.remove(Target::FindingsByWorkload, t_key(tenant, &[workload.as_bytes(), id.as_bytes()]));
                fold.touched.insert(workload.clone());
            }
        }
        for workload in &next.finding.workloads {
            batch.put(Target::FindingsByWorkload, t_key(tenant, &[workload.as_bytes(), id.as_bytes()]), Vec::new());
            fold.touched.insert(workload.clone());
        }
        batch.put(Target::Findings, key, store::encode_compact(&next)?);
    }
    Ok(())
}
