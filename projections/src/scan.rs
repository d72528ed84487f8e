//! Applying a scan to the views:
//!
//! 1. reassemble it from its chunks (or reject it whole);
//! 2. diff its entities against the stored ones under its coverage: what it read completely and
//!    did not see is removed; what it read with failures and did not see is kept, unobserved;
//!    what it did not read, or what lies outside a targeted scan's scope, is left alone;
//! 3. trip the entity breaker if it removes too much of a list;
//! 4. write the entity changes and find the workloads they reach (plus those whose evidence
//!    left the window or whose owners went silent since the last scan);
//! 5. trip the path breaker if those workloads would lose too many paths (the entity changes
//!    are undone and the scan is held);
//! 6. recompute the paths and findings of those workloads only, and the credential, identity
//!    and destination findings their changes touch;
//! 7. record the scan, its entity diff and its assessment.

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;
use sv0_domain::assessment::{AssessmentKind, FindingMovement, ScanAssessment, ScanRef};
use sv0_domain::events::{Event, ScanCompleted, ScanQuarantined, ScanReleased, ScanStarted};
use sv0_domain::findings::{self, Finding, PathOf};
use sv0_domain::model::{Binding, Credential, Destination, Evidence, Grant, Identity, Owner, OwnerStatus};
use sv0_domain::paths::{AuthorityPath, PathSelection, compute_selected_paths};
use sv0_domain::policy::{Policy, RegoState};
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{CoverageMode, Entities, EntityList, ListCoverage};
use sv0_domain::{TenantId, Timestamp};
use tracing::{info, warn};

use crate::batch::{Batch, Target};
use crate::error::ProjectionError;
use crate::fold::{Tables, store_assessment, t_key, t_prefix};
use crate::graph::{self, AnyEntity, GraphCache, StoredGraph, entity_key, index_lookup, index_range, time_key};
use crate::pathstore::{self, PathWriter};
use crate::records::{EntityDiff, FindingRecord, FindingStatus, ScanRecord, ScanStatus, TenantState};
use crate::store::{self, get, put, scan_raw};

/// One entity the scan changes.
struct Change {
    list: EntityList,
    id: String,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
    kind: ChangeKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Changed,
    Removed,
    /// Kept, marked unobserved.
    Unobserved,
    /// Seen again after being unobserved.
    Reobserved,
}

/// The tenant's policy (the default until a `policy.set`).
pub(crate) fn policy(t: &Tables<'_>, tenant: &TenantId) -> Result<Policy, ProjectionError> {
    Ok(get(&t.policies, "policies", &t_key(tenant, &[]))?.unwrap_or_default())
}

/// The key (below the tenant's) of its `RegoState` in the policies table.
pub(crate) const REGO_STATE: &[u8] = b"rego";

/// Which Rego policy decides the tenant's dispositions, and which waits for an approval.
pub(crate) fn rego_state(t: &Tables<'_>, tenant: &TenantId) -> Result<RegoState, ProjectionError> {
    Ok(get(&t.policies, "policies", &t_key(tenant, &[REGO_STATE]))?.unwrap_or_default())
}

/// `policy.approved`: the policy waiting for a second person is in force, when the approver
/// is not the person who set it and approved the policy that is set. Anything else (an event
/// a log writer forged, a race with a newer `policy.set`) changes nothing.
pub(crate) fn policy_approved(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    event: &Event,
    approved: &sv0_domain::events::PolicyApproved,
) -> Result<(), ProjectionError> {
    let by = sv0_domain::events::Actor::principal_of(&event.meta.actor);
    let current = policy(t, tenant)?;
    match rego_state(t, tenant)?.after_approval(current.rego.as_ref(), &approved.digest, by) {
        Ok(rego) => put(&mut t.policies, &t_key(tenant, &[REGO_STATE]), &rego),
        Err(why) => {
            tracing::warn!(%tenant, %why, "policy.approved changes nothing");
            Ok(())
        }
    }
}

fn tenant_state(t: &Tables<'_>, tenant: &TenantId) -> Result<Option<TenantState>, ProjectionError> {
    get(&t.tenants, "tenants", &t_key(tenant, &[]))
}

/// Reassembles a scan from its pending rows; `Err` says why it cannot be applied.
fn reassemble(
    t: &Tables<'_>,
    tenant: &TenantId,
    completed: &ScanCompleted,
) -> Result<Result<(ScanStarted, Entities), String>, ProjectionError> {
    let started: Option<ScanStarted> =
        get(&t.scans_pending, "scans_pending", &t_key(tenant, &[completed.scan_id.as_bytes()]))?;
    let chunks: Vec<Entities> =
        store::scan(&t.scan_chunks, "scan_chunks", &t_prefix(tenant, &[completed.scan_id.as_bytes()]))?;
    let Some(started) = started else {
        return Ok(Err("no scan.started event precedes scan.completed".to_string()));
    };
    if chunks.len() != completed.chunk_count as usize {
        return Ok(Err(format!("expected {} chunk(s), found {}", completed.chunk_count, chunks.len())));
    }
    let entities = Entities::merge(chunks);
    if entities.len() as u64 != completed.entity_count {
        return Ok(Err(format!("expected {} entities, found {}", completed.entity_count, entities.len())));
    }
    let digest = sv0_codec::entities_digest(&entities).map_err(ProjectionError::Encode)?.digest;
    if digest != completed.snapshot_digest {
        return Ok(Err("snapshot digest does not match the chunks".to_string()));
    }
    Ok(Ok((started, entities)))
}

fn drop_pending(t: &mut Tables<'_>, tenant: &TenantId, scan_id: &str) -> Result<(), ProjectionError> {
    t.scans_pending.remove(t_key(tenant, &[scan_id.as_bytes()]).as_slice())?;
    store::remove_prefix(&mut t.scan_chunks, &t_prefix(tenant, &[scan_id.as_bytes()]))
}

/// `scan.completed`: apply the scan, or reject it, or hold it.
pub(crate) fn scan_completed(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    completed: &ScanCompleted,
) -> Result<(), ProjectionError> {
    match reassemble(t, tenant, completed)? {
        Err(reason) => {
            warn!(%tenant, seq, scan_id = %completed.scan_id, %reason, "scan rejected");
            drop_pending(t, tenant, &completed.scan_id)?;
            let record = ScanRecord {
                scan_id: completed.scan_id.clone(),
                status: ScanStatus::Rejected,
                reason: Some(reason),
                completed_seq: seq,
                applied_seq: None,
                quarantine_seq: None,
                released_by: None,
                trigger: None,
                observed_at: None,
                entity_count: completed.entity_count,
                removed_entities: 0,
                removed_paths: 0,
                paths_total: 0,
            };
            put(&mut t.scans, &t_key(tenant, &[completed.scan_id.as_bytes()]), &record)
        }
        Ok((started, entities)) => apply(t, tenant, seq, event, completed, &started, entities, None),
    }
}

/// `scan.quarantined`: the record that the breaker's decision was written down.
pub(crate) fn scan_quarantined(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    quarantined: &ScanQuarantined,
) -> Result<(), ProjectionError> {
    let key = t_key(tenant, &[quarantined.scan_id.as_bytes()]);
    if let Some(mut record) = get::<ScanRecord>(&t.scans, "scans", &key)? {
        record.quarantine_seq.get_or_insert(seq);
        put(&mut t.scans, &key, &record)?;
    }
    Ok(())
}

/// `scan.released`: a person applies a held scan, unless a newer scan was applied since.
pub(crate) fn scan_released(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    released: &ScanReleased,
) -> Result<(), ProjectionError> {
    let key = t_key(tenant, &[released.scan_id.as_bytes()]);
    let Some(record) = get::<ScanRecord>(&t.scans, "scans", &key)? else {
        warn!(%tenant, seq, scan_id = %released.scan_id, "release of an unknown scan ignored");
        return Ok(());
    };
    if record.status != ScanStatus::Quarantined {
        warn!(%tenant, seq, scan_id = %released.scan_id, "release of a scan that is not quarantined ignored");
        return Ok(());
    }
    let newer = tenant_state(t, tenant)?.is_some_and(|s| s.last_scan_seq > record.completed_seq);
    let completed: Option<ScanCompleted> =
        get(&t.scans_pending, "scans_pending", &held_key(tenant, &released.scan_id))?;
    let held = match completed {
        Some(completed) if !newer => match reassemble(t, tenant, &completed)? {
            Ok((started, entities)) => Some((completed, started, entities)),
            Err(_) => None,
        },
        _ => None,
    };
    let Some((completed, started, entities)) = held else {
        drop_pending(t, tenant, &released.scan_id)?;
        t.scans_pending.remove(held_key(tenant, &released.scan_id).as_slice())?;
        let record =
            ScanRecord { status: ScanStatus::Superseded, released_by: Some(released.released_by.clone()), ..record };
        return put(&mut t.scans, &key, &record);
    };
    t.scans_pending.remove(held_key(tenant, &released.scan_id).as_slice())?;
    apply(t, tenant, seq, event, &completed, &started, entities, Some(released))
}

fn held_key(tenant: &TenantId, scan_id: &str) -> Vec<u8> {
    t_key(tenant, &[scan_id.as_bytes(), b"completed"])
}

/// The scan's entity changes under its coverage.
fn diff(
    t: &Tables<'_>,
    tenant: &TenantId,
    entities: Entities,
    started: &ScanStarted,
) -> Result<Vec<Change>, ProjectionError> {
    let coverage = &started.coverage;
    // The scan's entities are held once, as encoded rows grouped by list, which move into the
    // changes: never the whole tenant twice.
    let seen_identities: BTreeSet<String> = entities.identities.iter().map(|i| i.id.clone()).collect();
    let mut rows: BTreeMap<EntityList, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (list, id, bytes) in graph::scan_rows(&entities)? {
        rows.entry(list).or_default().push((id, bytes));
    }
    drop(entities);
    let targeted = coverage.mode == CoverageMode::Targeted;
    let targets: BTreeSet<&str> = coverage.targets.iter().map(String::as_str).collect();
    let unobserved: BTreeSet<Vec<u8>> =
        scan_raw(&t.unobserved, &t_prefix(tenant, &[]))?.into_iter().map(|(k, _)| k).collect();
    let mut changes = Vec::new();
    for list in EntityList::ALL {
        let mut scanned = rows.remove(&list).unwrap_or_default();
        let p = t_prefix(tenant, &[list.name().as_bytes()]);
        let stored: Vec<(String, Vec<u8>)> = scan_raw(&t.entities, &p)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[p.len()..]).into_owned(), v))
            .collect();
        let list_coverage = coverage.of(list);
        // In a targeted scan, which unseen stored entities the scan was responsible for.
        let in_scope = |bytes: &[u8]| -> Result<bool, ProjectionError> {
            if !targeted {
                return Ok(true);
            }
            Ok(match AnyEntity::decode(list, bytes)? {
                AnyEntity::Workload(w) => targets.contains(w.id.as_str()),
                AnyEntity::Binding(b) => targets.contains(b.workload.as_str()),
                AnyEntity::Grant(g) => seen_identities.contains(&g.identity),
                AnyEntity::Credential(c) => seen_identities.contains(&c.identity),
                AnyEntity::Evidence(e) => {
                    e.workload.as_deref().is_some_and(|w| targets.contains(w))
                        || e.identity.as_ref().is_some_and(|i| seen_identities.contains(i))
                }
                _ => false,
            })
        };
        let (mut i, mut j) = (0, 0);
        while i < scanned.len() || j < stored.len() {
            let order = match (scanned.get(i), stored.get(j)) {
                (Some(a), Some(b)) => a.0.cmp(&b.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, _) => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (id, bytes) = std::mem::take(&mut scanned[i]);
                    changes.push(Change { list, id, old: None, new: Some(bytes), kind: ChangeKind::Added });
                    i += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (id, bytes) = std::mem::take(&mut scanned[i]);
                    let old = &stored[j].1;
                    let was_unobserved = unobserved.contains(&entity_key(tenant, list, &id));
                    if *old != bytes {
                        changes.push(Change {
                            list,
                            id,
                            old: Some(old.clone()),
                            new: Some(bytes),
                            kind: ChangeKind::Changed,
                        });
                    } else if was_unobserved {
                        changes.push(Change {
                            list,
                            id,
                            old: Some(old.clone()),
                            new: Some(bytes),
                            kind: ChangeKind::Reobserved,
                        });
                    }
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (id, bytes) = &stored[j];
                    j += 1;
                    if list_coverage == ListCoverage::NotRead || !in_scope(bytes)? {
                        continue;
                    }
                    if list_coverage == ListCoverage::Complete {
                        changes.push(Change {
                            list,
                            id: id.clone(),
                            old: Some(bytes.clone()),
                            new: None,
                            kind: ChangeKind::Removed,
                        });
                    } else if !unobserved.contains(&entity_key(tenant, list, id)) {
                        changes.push(Change {
                            list,
                            id: id.clone(),
                            old: Some(bytes.clone()),
                            new: Some(bytes.clone()),
                            kind: ChangeKind::Unobserved,
                        });
                    }
                }
            }
        }
    }
    Ok(changes)
}

/// Writes (or, with `undo`, reverts) entity changes with their index rows.
fn write_changes(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    changes: &[Change],
    at: Timestamp,
    undo: bool,
) -> Result<(), ProjectionError> {
    let mut batch = Batch::default();
    for change in changes {
        let key = entity_key(tenant, change.list, &change.id);
        let (from, to) = if undo { (&change.new, &change.old) } else { (&change.old, &change.new) };
        if from != to {
            if let Some(bytes) = from {
                graph::write_index(&mut batch, tenant, &change.id, &AnyEntity::decode(change.list, bytes)?, true);
            }
            match to {
                Some(bytes) => {
                    t.entities.insert(key.as_slice(), bytes.as_slice())?;
                    graph::write_index(&mut batch, tenant, &change.id, &AnyEntity::decode(change.list, bytes)?, false);
                }
                None => {
                    t.entities.remove(key.as_slice())?;
                }
            }
        }
        let marked = match (change.kind, undo) {
            (ChangeKind::Unobserved, false) => Some(true),
            (ChangeKind::Unobserved, true) => Some(false),
            (ChangeKind::Reobserved, false) => Some(false),
            (ChangeKind::Reobserved, true) => Some(true),
            (ChangeKind::Removed | ChangeKind::Changed, false) => Some(false),
            _ => None,
        };
        match marked {
            Some(true) => {
                t.unobserved.insert(key.as_slice(), store::encode(&at)?.as_slice())?;
            }
            Some(false) => {
                t.unobserved.remove(key.as_slice())?;
            }
            None => {}
        }
        batch.relieve()?;
    }
    batch.flush(t)
}

/// Whether an owner can be held accountable at a time.
fn accountable(owner: &Owner, at: Timestamp, policy: &Policy) -> bool {
    owner.status == OwnerStatus::Active
        && owner.last_active_at.is_none_or(|last| last >= at.add_days(-i64::from(policy.owner_silence_days)))
}

/// What the changes and the passing of time reach: the paths to recompute (whole workloads,
/// every path through some identities, or the paths of some identity-destination pairs), and
/// the credentials, identities and destinations whose findings must be re-evaluated.
#[derive(Default)]
struct Reach {
    all: bool,
    /// Workloads whose every path is recomputed.
    workloads: BTreeSet<String>,
    /// Identities whose every path is recomputed, in every workload bound to them.
    path_identities: BTreeSet<String>,
    /// (identity, destination) pairs whose paths are recomputed, in every workload bound to the
    /// identity.
    pairs: BTreeSet<(String, String)>,
    identities: BTreeSet<String>,
    credentials: BTreeSet<String>,
    destinations: BTreeSet<String>,
}

/// The paths to recompute, by workload: all of them (`None`) or a selection.
type Selections = BTreeMap<String, Option<PathSelection>>;

impl Reach {
    /// Resolves identities and pairs to the workloads bound to them.
    fn selections(&self, t: &Tables<'_>, tenant: &TenantId) -> Result<Selections, ProjectionError> {
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

fn reach(
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
                r.identities.insert(b.identity);
                r.workloads.insert(b.workload);
            }
            AnyEntity::Identity(i) => {
                r.path_identities.insert(i.id.clone());
                r.identities.insert(i.id);
            }
            AnyEntity::Grant(g) => {
                r.pairs.insert((g.identity.clone(), g.destination));
                r.identities.insert(g.identity);
            }
            AnyEntity::Destination(d) => {
                for (_, identity) in index_lookup(&t.entity_index, tenant, "grant.destination", &d.id)? {
                    r.pairs.insert((identity, d.id.clone()));
                }
                r.destinations.insert(d.id);
            }
            AnyEntity::Domain(_) | AnyEntity::Rule(_) => r.all = true,
            AnyEntity::Owner(o) => {
                r.workloads.extend(
                    index_lookup(&t.entity_index, tenant, "workload.owner", &o.id)?.into_iter().map(|(id, _)| id),
                );
                for (identity, _) in index_lookup(&t.entity_index, tenant, "identity.owner", &o.id)? {
                    r.path_identities.insert(identity.clone());
                    r.identities.insert(identity);
                }
            }
            AnyEntity::Evidence(e) => {
                // Evidence toward a service grades every destination of it: the identity's
                // paths, not one pair.
                r.path_identities.extend(e.identity.iter().cloned());
                r.identities.extend(e.identity);
                r.workloads.extend(e.workload);
            }
            AnyEntity::Credential(c) => {
                // An identity's secrets together are an identity finding (several active).
                r.identities.insert(c.identity);
                r.credentials.insert(c.id);
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
        // Grades whose evidence left the window.
        r.workloads.extend(pathstore::expiring(&t.path_index, tenant, Timestamp(now.0 - 1))?);
        // Evidence dated after the previous scan's time that now falls inside the window.
        for (_, evidence_id, _) in
            index_range(&t.entity_index, tenant, "evidence.time", &since(previous), &time_key(now.0))?
        {
            if let Some(bytes) = t.entities.get(entity_key(tenant, EntityList::Evidence, &evidence_id).as_slice())? {
                touch(&mut r, AnyEntity::decode(EntityList::Evidence, bytes.value())?)?;
            }
        }
        // Owners who went silent.
        let p = t_prefix(tenant, &[EntityList::Owners.name().as_bytes()]);
        for (_, bytes) in scan_raw(&t.entities, &p)? {
            let owner: Owner = store::decode("entities", &bytes)?;
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
                r.identities.insert(credential.identity);
            }
            r.credentials.insert(credential_id);
        }
        // Identities whose latest evidence may have aged past the unused limit.
        let unused = |at: Timestamp| at.add_days(-findings::UNUSED_DAYS);
        for (_, evidence_id, _) in
            index_range(&t.entity_index, tenant, "evidence.time", &since(unused(previous)), &time_key(unused(now).0))?
        {
            if let Some(evidence) = get_entity::<Evidence>(t, tenant, EntityList::Evidence, &evidence_id)? {
                r.identities.extend(evidence.identity);
            }
        }
    }
    if r.all {
        r.workloads.extend(entity_ids(&t.entities, tenant, EntityList::Workloads)?);
    }
    Ok(r)
}

/// The stored paths of a workload that `selection` selects (all of them for `None`), reading
/// only the rows of the selected identities.
fn selected_paths(
    t: &Tables<'_>,
    tenant: &TenantId,
    workload: &str,
    selection: Option<&PathSelection>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let Some(s) = selection else { return pathstore::of_workload(&t.paths, tenant, workload, None) };
    let identities: BTreeSet<&str> = s.identities.iter().chain(s.pairs.keys()).map(String::as_str).collect();
    let mut out = Vec::new();
    for identity in identities {
        let rows = pathstore::of_workload(&t.paths, tenant, workload, Some(identity))?;
        out.extend(rows.into_iter().filter(|p| s.has(&p.identity.id, &p.destination.id)));
    }
    Ok(out)
}

/// The stored paths of a workload that `selection` leaves alone.
fn unselected_paths(
    t: &Tables<'_>,
    tenant: &TenantId,
    workload: &str,
    selection: Option<&PathSelection>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let Some(s) = selection else { return Ok(Vec::new()) };
    let all = pathstore::of_workload(&t.paths, tenant, workload, None)?;
    Ok(all.into_iter().filter(|p| !s.has(&p.identity.id, &p.destination.id)).collect())
}

/// How many paths recomputing the selections would compute, counting no further than past
/// `budget`: the fold budget is checked before any path is built.
fn paths_to_compute(
    t: &Tables<'_>,
    tenant: &TenantId,
    selections: &Selections,
    budget: u64,
) -> Result<u64, ProjectionError> {
    let cache = GraphCache::default();
    let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
    let mut total = 0u64;
    for (workload, selection) in selections {
        total +=
            sv0_domain::paths::count_selected_paths(&lookup, workload, selection.as_ref(), budget - total.min(budget));
        if total > budget {
            break;
        }
    }
    Ok(total)
}

/// Paths the reached workloads would lose (for the path breaker), without writing anything.
fn paths_lost(
    t: &Tables<'_>,
    tenant: &TenantId,
    selections: &Selections,
    now: Timestamp,
    policy: &Policy,
) -> Result<u64, ProjectionError> {
    let cache = GraphCache::default();
    let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
    let mut lost = 0;
    for (workload, selection) in selections {
        let selected = selected_paths(t, tenant, workload, selection.as_ref())?;
        if selected.is_empty() {
            continue;
        }
        let old: BTreeSet<String> = selected.into_iter().map(|p| p.path_id).collect();
        let new: BTreeSet<String> =
            compute_selected_paths(&lookup, workload, now, policy, &|_| None, selection.as_ref())
                .into_iter()
                .map(|p| p.path_id)
                .collect();
        lost += old.difference(&new).count() as u64;
    }
    Ok(lost)
}

/// Recomputes the selected paths of each workload and, where they changed, the workload's
/// findings; then the findings of the identities, credentials and destinations reached.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recompute(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    now: Timestamp,
    policy: &Policy,
    selections: &Selections,
    mut identities: BTreeSet<String>,
    mut credentials: BTreeSet<String>,
    mut destinations: BTreeSet<String>,
    state: &mut TenantState,
    movement: &mut FindingMovement,
) -> Result<PathWriter, ProjectionError> {
    let mut writer = PathWriter::new();
    let mut batch = Batch::default();
    let cache = GraphCache::default();
    for (workload, selection) in selections {
        // Each workload is read and rewritten once, so its rows are never in the batch yet.
        let old = selected_paths(t, tenant, workload, selection.as_ref())?;
        let previous: BTreeMap<&str, _> =
            old.iter().map(|p| (p.path_id.as_str(), (p.owner_state, p.owner_state_since))).collect();
        let new = {
            let lookup = StoredGraph { entities: &t.entities, index: &t.entity_index, tenant, cache: &cache };
            let previous = |id: &str| previous.get(id).copied();
            compute_selected_paths(&lookup, workload, now, policy, &previous, selection.as_ref())
        };
        let writes = writer.writes;
        writer.replace(&mut batch, &mut state.posture, tenant, &old, &new)?;
        // A workload's findings follow from its paths alone: when a selection of them was
        // recomputed and none changed, neither did the findings. Those about one path are
        // settled for the recomputed paths only; those about the whole workload from all of
        // its paths. A whole workload recomputed is settled whole.
        if selection.is_none() || writer.writes != writes {
            let candidates = findings::workload_subjects(workload, old.iter().chain(&new).map(|p| p.path_id.as_str()));
            let mut all = unselected_paths(t, tenant, workload, selection.as_ref())?;
            let untouched: BTreeSet<String> = all.iter().flat_map(|p| findings::path_subjects(&p.path_id)).collect();
            all.extend(new);
            all.sort_by(|a, b| a.path_id.cmp(&b.path_id));
            let current: Vec<_> =
                findings::workload_findings(&all).into_iter().filter(|f| !untouched.contains(&f.finding_id)).collect();
            settle(t, &mut batch, tenant, seq, now, candidates, current, state, movement)?;
        }
        batch.relieve()?;
    }
    batch.flush(t)?;
    identities.extend(writer.identities.iter().cloned());
    destinations.extend(writer.destinations.iter().cloned());
    for identity in &identities {
        for (credential, _) in index_lookup(&t.entity_index, tenant, "credential.identity", identity)? {
            credentials.insert(credential);
        }
    }
    entity_findings(t, &mut batch, tenant, seq, now, &identities, &credentials, &destinations, state, movement)?;
    batch.flush(t)?;
    state.paths_total = state.posture.paths_total;
    Ok(writer)
}

fn get_entity<E: serde::de::DeserializeOwned>(
    t: &Tables<'_>,
    tenant: &TenantId,
    list: EntityList,
    id: &str,
) -> Result<Option<E>, ProjectionError> {
    get(&t.entities, "entities", &entity_key(tenant, list, id))
}

/// The ids of a tenant's stored entities of one list, in order.
fn entity_ids(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    list: EntityList,
) -> Result<BTreeSet<String>, ProjectionError> {
    let p = t_prefix(tenant, &[list.name().as_bytes()]);
    let mut out = BTreeSet::new();
    for entry in entities.range(p.as_slice()..store::prefix_end(&p).as_slice())? {
        let (k, _) = entry?;
        out.insert(String::from_utf8_lossy(&k.value()[p.len()..]).into_owned());
    }
    Ok(out)
}

/// The stored entities of `list` that an entity index names for `value`.
fn related<E: serde::de::DeserializeOwned>(
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
fn paths_of_identity(t: &Tables<'_>, tenant: &TenantId, identity: &str) -> Result<Vec<PathOf>, ProjectionError> {
    let mut out = Vec::new();
    for workload in graph::workloads_of_identity(&t.entity_index, tenant, identity)? {
        for path_id in pathstore::ids_of(&t.paths, tenant, &workload, identity)? {
            out.push(PathOf { path_id, workload: workload.clone() });
        }
    }
    Ok(out)
}

/// The evidence gaps of a destination.
fn gaps_of(t: &Tables<'_>, tenant: &TenantId, destination: &str) -> Result<Vec<PathOf>, ProjectionError> {
    Ok(pathstore::by_destination(&t.path_index, tenant, destination)?
        .iter()
        .filter(|l| l.gap)
        .map(pathstore::Located::path_of)
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn entity_findings(
    t: &Tables<'_>,
    batch: &mut Batch,
    tenant: &TenantId,
    seq: u64,
    now: Timestamp,
    identities: &BTreeSet<String>,
    credentials: &BTreeSet<String>,
    destinations: &BTreeSet<String>,
    state: &mut TenantState,
    movement: &mut FindingMovement,
) -> Result<(), ProjectionError> {
    let mut candidates = BTreeSet::new();
    let mut current = Vec::new();
    for id in credentials {
        candidates.extend(findings::credential_subjects(id));
        if let Some(credential) = get_entity::<Credential>(t, tenant, EntityList::Credentials, id)? {
            let name = get_entity::<Identity>(t, tenant, EntityList::Identities, &credential.identity)?
                .map_or_else(|| credential.identity.clone(), |i| i.name);
            let paths = paths_of_identity(t, tenant, &credential.identity)?;
            current.extend(findings::credential_findings(&credential, &name, &paths, now));
        }
    }
    for id in identities {
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
    for id in destinations {
        candidates.insert(findings::finding_id(findings::EVIDENCE_GAP.id, &format!("destination:{id}")));
        if let Some(destination) = get_entity::<Destination>(t, tenant, EntityList::Destinations, id)? {
            let gaps = gaps_of(t, tenant, id)?;
            current.extend(findings::evidence_gap_finding(&destination, &gaps));
        }
    }
    settle(t, batch, tenant, seq, now, candidates, current, state, movement)
}

/// Moves findings through their lifecycle: each candidate id is open when `current` has it and
/// resolved otherwise.
#[allow(clippy::too_many_arguments)]
fn settle(
    t: &Tables<'_>,
    batch: &mut Batch,
    tenant: &TenantId,
    seq: u64,
    now: Timestamp,
    candidates: impl IntoIterator<Item = String>,
    current: Vec<Finding>,
    state: &mut TenantState,
    movement: &mut FindingMovement,
) -> Result<(), ProjectionError> {
    let mut current: BTreeMap<String, Finding> = current.into_iter().map(|f| (f.finding_id.clone(), f)).collect();
    let ids: BTreeSet<String> = candidates.into_iter().chain(current.keys().cloned()).collect();
    for id in ids {
        let key = t_key(tenant, &[id.as_bytes()]);
        let existing: Option<FindingRecord> = store::get_compact(&t.findings, "findings", &key)?;
        let next = match (existing.clone(), current.remove(&id)) {
            (None, None) => continue,
            (Some(old), Some(finding)) if old.status == FindingStatus::Open => FindingRecord { finding, ..old },
            (_, Some(finding)) => {
                movement.opened.push(id.clone());
                state.open_findings += 1;
                FindingRecord::opened(finding, seq, now)
            }
            (Some(old), None) if old.status == FindingStatus::Open => {
                movement.resolved.push(id.clone());
                state.open_findings = state.open_findings.saturating_sub(1);
                old.resolved(seq, now)
            }
            (Some(_), None) => continue,
        };
        if existing.as_ref() == Some(&next) {
            continue;
        }
        if let Some(old) = &existing {
            for workload in &old.finding.workloads {
                batch.remove(Target::FindingsByWorkload, t_key(tenant, &[workload.as_bytes(), id.as_bytes()]));
            }
        }
        for workload in &next.finding.workloads {
            batch.put(Target::FindingsByWorkload, t_key(tenant, &[workload.as_bytes(), id.as_bytes()]), Vec::new());
        }
        batch.put(Target::Findings, key, store::encode_compact(&next)?);
    }
    Ok(())
}

fn entity_diff(changes: &[Change]) -> EntityDiff {
    let mut diff = EntityDiff::default();
    for change in changes {
        let bucket = match change.kind {
            ChangeKind::Added => &mut diff.added,
            ChangeKind::Changed => &mut diff.changed,
            ChangeKind::Removed => &mut diff.removed,
            ChangeKind::Unobserved => &mut diff.unobserved,
            ChangeKind::Reobserved => continue,
        };
        bucket.entry(change.list.name().to_string()).or_default().push(change.id.clone());
    }
    diff
}

/// Applies a scan (`released` says who released it, which skips the breakers).
#[allow(clippy::too_many_arguments)]
fn apply(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    completed: &ScanCompleted,
    started: &ScanStarted,
    entities: Entities,
    released: Option<&ScanReleased>,
) -> Result<(), ProjectionError> {
    let policy = policy(t, tenant)?;
    let mut state = tenant_state(t, tenant)?.unwrap_or_default();
    let now = started.observed_at;
    let previous = (!state.last_scan_id.is_empty()).then_some(state.last_observed_at);
    let changes = diff(t, tenant, entities, started)?;
    let diff_record = entity_diff(&changes);
    let removed_entities = diff_record.counts().2;
    let record_key = t_key(tenant, &[started.scan_id.as_bytes()]);
    let hold = |t: &mut Tables<'_>, reason: String, removed_paths: u64| -> Result<(), ProjectionError> {
        info!(%tenant, seq, scan_id = %started.scan_id, %reason, "scan quarantined by a deletion circuit breaker");
        put(&mut t.scans_pending, &held_key(tenant, &started.scan_id), completed)?;
        let record = ScanRecord {
            scan_id: started.scan_id.clone(),
            status: ScanStatus::Quarantined,
            reason: Some(reason),
            completed_seq: seq,
            applied_seq: None,
            quarantine_seq: None,
            released_by: None,
            trigger: Some(started.trigger),
            observed_at: Some(now),
            entity_count: completed.entity_count,
            removed_entities,
            removed_paths,
            paths_total: state.paths_total,
        };
        put(&mut t.scans, &record_key, &record)
    };
    if released.is_none() {
        for list in EntityList::ALL {
            let removed = diff_record.removed.get(list.name()).map_or(0, |v| v.len() as u64);
            let existing = state.entities.get(list.name()).copied().unwrap_or(0);
            if policy.breaker.trips(removed, existing) {
                let reason = format!(
                    "it would remove {removed} of {existing} {} (the breaker allows {} %)",
                    list.name(),
                    policy.breaker.max_removed_percent
                );
                return hold(t, reason, 0);
            }
        }
    }
    write_changes(t, tenant, &changes, now, false)?;
    let reached = reach(t, tenant, &changes, previous, now, &policy)?;
    let selections = reached.selections(t, tenant)?;
    if released.is_none() {
        let budget = policy.fold_budget();
        let planned = paths_to_compute(t, tenant, &selections, budget)?;
        if planned > budget {
            write_changes(t, tenant, &changes, now, true)?;
            let reason = format!(
                "its fold would compute more than {budget} paths (the policy's fold budget, `sv0 policy set --fold-budget-paths`); `sv0 scan release` applies it anyway"
            );
            return hold(t, reason, 0);
        }
    }
    if released.is_none() && state.paths_total > 0 {
        let lost = paths_lost(t, tenant, &selections, now, &policy)?;
        if policy.breaker.trips(lost, state.paths_total) {
            write_changes(t, tenant, &changes, now, true)?;
            let reason = format!(
                "it would remove {lost} of {} paths (the breaker allows {} %)",
                state.paths_total, policy.breaker.max_removed_percent
            );
            return hold(t, reason, lost);
        }
    }

    let mut movement = FindingMovement::default();
    let writer = recompute(
        t,
        tenant,
        seq,
        now,
        &policy,
        &selections,
        reached.identities,
        reached.credentials,
        reached.destinations,
        &mut state,
        &mut movement,
    )?;
    let digest = pathstore::refresh_digest(&t.path_fingerprints, &mut t.digest_buckets, tenant, &writer.dirty_buckets)?;
    // Each baselined scope against its baseline; its undeclared additions open findings, so
    // this comes before the tenant's finding count is stored.
    let scopes = crate::fold::assess_scopes(t, tenant, started.trigger, seq, now, &mut state, &mut movement)?;
    for change in &changes {
        let count = state.entities.entry(change.list.name().to_string()).or_default();
        match change.kind {
            ChangeKind::Added => *count += 1,
            ChangeKind::Removed => *count = count.saturating_sub(1),
            _ => {}
        }
    }
    state.last_scan_id = started.scan_id.clone();
    state.last_scan_seq = seq;
    state.last_observed_at = now;
    put(&mut t.tenants, &t_key(tenant, &[]), &state)?;
    put(&mut t.scan_diffs, &record_key, &diff_record)?;
    drop_pending(t, tenant, &started.scan_id)?;
    let existing: Option<ScanRecord> = get(&t.scans, "scans", &record_key)?;
    let record = ScanRecord {
        scan_id: started.scan_id.clone(),
        status: ScanStatus::Applied,
        reason: None,
        completed_seq: existing.as_ref().map_or(seq, |r| r.completed_seq),
        applied_seq: Some(seq),
        quarantine_seq: existing.as_ref().and_then(|r| r.quarantine_seq),
        released_by: released.map(|r| r.released_by.clone()),
        trigger: Some(started.trigger),
        observed_at: Some(now),
        entity_count: completed.entity_count,
        removed_entities,
        removed_paths: writer.removed,
        paths_total: state.paths_total,
    };
    put(&mut t.scans, &record_key, &record)?;

    movement.open = state.open_findings;
    movement.opened.sort();
    movement.resolved.sort();
    let mut posture = state.posture.clone();
    posture.path_set_digest = digest;
    let assessment = ScanAssessment {
        scan: ScanRef {
            scan_id: started.scan_id.clone(),
            connector: started.connector.clone(),
            trigger: started.trigger,
            observed_at: now,
            deployment: started.deployment.clone(),
        },
        posture,
        findings: movement,
        scopes,
    };
    store_assessment(t, tenant, seq, event, AssessmentKind::for_trigger(started.trigger), Some(assessment), None)
}

/// `policy.set`: keep the policy and, for a tenant already scanned, recompute every workload
/// under it at the tenant's current time.
pub(crate) fn policy_set(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    policy: &Policy,
) -> Result<(), ProjectionError> {
    put(&mut t.policies, &t_key(tenant, &[]), policy)?;
    let by = sv0_domain::events::Actor::principal_of(&event.meta.actor);
    let rego = rego_state(t, tenant)?.after_set(policy.rego.as_ref(), by, seq);
    put(&mut t.policies, &t_key(tenant, &[REGO_STATE]), &rego)?;
    let Some(mut state) = tenant_state(t, tenant)? else { return Ok(()) };
    let workloads: Selections =
        entity_ids(&t.entities, tenant, EntityList::Workloads)?.into_iter().map(|w| (w, None)).collect();
    // Every entity finding is decided again too: a policy change is a full recomputation, and
    // the property tests use it as the oracle for the incremental one.
    let identities = entity_ids(&t.entities, tenant, EntityList::Identities)?;
    let credentials = entity_ids(&t.entities, tenant, EntityList::Credentials)?;
    let destinations = entity_ids(&t.entities, tenant, EntityList::Destinations)?;
    let mut movement = FindingMovement::default();
    let now = state.last_observed_at;
    let writer = recompute(
        t,
        tenant,
        seq,
        now,
        policy,
        &workloads,
        identities,
        credentials,
        destinations,
        &mut state,
        &mut movement,
    )?;
    pathstore::refresh_digest(&t.path_fingerprints, &mut t.digest_buckets, tenant, &writer.dirty_buckets)?;
    put(&mut t.tenants, &t_key(tenant, &[]), &state)
}

/// The workloads a scope selects, from the entity indexes.
pub(crate) fn scope_workloads(
    entities: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    index: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<BTreeSet<String>, ProjectionError> {
    use sv0_domain::scope::Selector;
    let mut out = BTreeSet::new();
    for selector in scope.selectors() {
        match selector {
            Selector::All => out.extend(entity_ids(entities, tenant, EntityList::Workloads)?),
            Selector::Workload(id) => {
                if entities.get(entity_key(tenant, EntityList::Workloads, id).as_slice())?.is_some() {
                    out.insert(id.clone());
                }
            }
            Selector::Project(name) => {
                out.extend(index_lookup(index, tenant, "workload.project", name)?.into_iter().map(|(id, _)| id));
            }
            Selector::Tag(k, v) => {
                out.extend(
                    index_lookup(index, tenant, "workload.tag", &format!("{k}={v}"))?.into_iter().map(|(id, _)| id),
                );
            }
        }
    }
    Ok(out)
}

/// The findings of a scope's workloads, by finding id.
pub(crate) fn scope_findings(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    entity_index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    by_workload: &impl ReadableTable<&'static [u8], &'static [u8]>,
    findings: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<Vec<FindingRecord>, ProjectionError> {
    let mut ids = BTreeSet::new();
    for workload in scope_workloads(entities, entity_index, tenant, scope)? {
        let p = t_prefix(tenant, &[workload.as_bytes()]);
        for (k, _) in scan_raw(by_workload, &p)? {
            ids.insert(k[p.len()..].to_vec());
        }
    }
    let mut out = Vec::new();
    for id in ids {
        out.extend(store::get_compact::<FindingRecord>(findings, "findings", &t_key(tenant, &[&id]))?);
    }
    Ok(out)
}

/// The paths of a scope's workloads, sorted by path id.
pub(crate) fn scope_paths(
    entities: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    entity_index: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    paths: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for workload in scope_workloads(entities, entity_index, tenant, scope)? {
        out.extend(pathstore::of_workload(paths, tenant, &workload, None)?);
    }
    out.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    Ok(out)
}
