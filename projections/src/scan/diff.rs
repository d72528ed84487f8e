//! A scan's entities against the stored rows: what was added, changed and removed (`diff`),
//! written back as rows and counted for the scan record.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::events::ScanStarted;
use sv0_domain::snapshot::{Coverage, CoverageMode, Deletion, Entities, EntityList, ListCoverage};
use sv0_domain::{TenantId, Timestamp};

use crate::batch::Batch;
use crate::error::ProjectionError;
use crate::graph::{self, AnyEntity, entity_key};
use crate::records::EntityDiff;
use crate::store::{self, scan_raw};
use crate::store::{Tables, t_prefix};
use redb::ReadableTable;

/// One entity the scan changes.
pub(super) struct Change {
    pub(super) list: EntityList,
    pub(super) id: String,
    pub(super) old: Option<Vec<u8>>,
    pub(super) new: Option<Vec<u8>>,
    pub(super) kind: ChangeKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeKind {
    Added,
    Changed,
    Removed,
    /// Kept, marked unobserved.
    Unobserved,
    /// Seen again after being unobserved.
    Reobserved,
}

/// The scan's entity changes under its coverage.
pub(super) fn diff(
    t: &Tables<'_>,
    tenant: &TenantId,
    entities: Entities,
    started: &ScanStarted,
) -> Result<Vec<Change>, ProjectionError> {
    let coverage = &started.coverage;
    if coverage.mode == CoverageMode::Delta {
        return delta_diff(t, tenant, entities, coverage);
    }
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
        let stored = if targeted {
            stored_in_scope(t, tenant, list, &scanned, &targets, &seen_identities)?
        } else {
            let p = t_prefix(tenant, &[list.name().as_bytes()]);
            scan_raw(&t.entities, &p)?
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k[p.len()..]).into_owned(), v))
                .collect()
        };
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

/// The stored rows a targeted scan's diff needs, in id order: those of the entities it holds,
/// and those of the stored entities in its scope (its targets, their bindings, and the grants,
/// credentials and evidence of the identities it saw or of its targets), found through the
/// entity indexes. The merge in `diff` skips every other unseen row, so reading only these
/// gives the same changes as reading the whole list, at the cost of the scope, not the tenant.
fn stored_in_scope(
    t: &Tables<'_>,
    tenant: &TenantId,
    list: EntityList,
    scanned: &[(String, Vec<u8>)],
    targets: &BTreeSet<&str>,
    seen_identities: &BTreeSet<String>,
) -> Result<Vec<(String, Vec<u8>)>, ProjectionError> {
    let mut ids: BTreeSet<String> = scanned.iter().map(|(id, _)| id.clone()).collect();
    let mut by_index = |index: &str, values: &mut dyn Iterator<Item = &str>| -> Result<(), ProjectionError> {
        for value in values {
            ids.extend(graph::index_lookup(&t.entity_index, tenant, index, value)?.into_iter().map(|(id, _)| id));
        }
        Ok(())
    };
    match list {
        EntityList::Workloads => ids.extend(targets.iter().map(|w| (*w).to_string())),
        EntityList::Bindings => by_index("binding.workload", &mut targets.iter().copied())?,
        EntityList::Grants => by_index("grant.identity", &mut seen_identities.iter().map(String::as_str))?,
        EntityList::Credentials => by_index("credential.identity", &mut seen_identities.iter().map(String::as_str))?,
        EntityList::Evidence => {
            by_index("evidence.identity", &mut seen_identities.iter().map(String::as_str))?;
            by_index("evidence.workload", &mut targets.iter().copied())?;
        }
        _ => {}
    }
    let mut stored = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = t.entities.get(entity_key(tenant, list, &id).as_slice())? {
            stored.push((id, row.value().to_vec()));
        }
    }
    Ok(stored)
}

/// A delta scan's changes: each entity it holds against its stored row, each deletion it
/// names against the stored entity; point reads only, so the work grows with the delta, not
/// with the tenant. The changes come in the order `diff` gives a full scan's.
fn delta_diff(
    t: &Tables<'_>,
    tenant: &TenantId,
    mut entities: Entities,
    coverage: &Coverage,
) -> Result<Vec<Change>, ProjectionError> {
    let deleted = std::mem::take(&mut entities.deleted);
    let stored = |list: EntityList, id: &str| -> Result<(Option<Vec<u8>>, bool), ProjectionError> {
        let key = entity_key(tenant, list, id);
        let row = t.entities.get(key.as_slice())?.map(|v| v.value().to_vec());
        Ok((row, t.unobserved.get(key.as_slice())?.is_some()))
    };
    let mut changes = Vec::new();
    for (list, id, bytes) in graph::scan_rows(&entities)? {
        let (old, unobserved) = stored(list, &id)?;
        let kind = match &old {
            None => ChangeKind::Added,
            Some(old) if *old != bytes => ChangeKind::Changed,
            Some(_) if unobserved => ChangeKind::Reobserved,
            Some(_) => continue,
        };
        changes.push(Change { list, id, old, new: Some(bytes), kind });
    }
    drop(entities);
    for Deletion { list, id } in deleted {
        let (Some(old), unobserved) = stored(list, &id)? else { continue };
        match coverage.of(list) {
            ListCoverage::NotRead => {}
            ListCoverage::Complete => {
                changes.push(Change { list, id, old: Some(old), new: None, kind: ChangeKind::Removed })
            }
            ListCoverage::Partial if !unobserved => {
                changes.push(Change { list, id, old: Some(old.clone()), new: Some(old), kind: ChangeKind::Unobserved })
            }
            ListCoverage::Partial => {}
        }
    }
    changes.sort_by(|a, b| (a.list, &a.id).cmp(&(b.list, &b.id)));
    Ok(changes)
}

/// Writes (or, with `undo`, reverts) entity changes with their index rows.
pub(super) fn write_changes(
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

/// The scan's entity diff; for a tenant's `first` scan, the additions as counts per list.
pub(super) fn entity_diff(changes: &[Change], first: bool) -> EntityDiff {
    let mut diff = EntityDiff::default();
    for change in changes {
        if first && change.kind == ChangeKind::Added {
            *diff.first_scan.entry(change.list.name().to_string()).or_default() += 1;
            continue;
        }
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
