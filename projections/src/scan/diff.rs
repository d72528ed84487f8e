//! A scan's entities against the stored rows: what was added, changed and removed (`diff`),
//! written back as rows and counted for the scan record.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::events::ScanStarted;
use sv0_domain::snapshot::{CoverageMode, Deletion, Entities, EntityList, ListCoverage};
use sv0_domain::{TenantId, Timestamp};

use crate::batch::Batch;
use crate::error::ProjectionError;
use crate::graph::{self, AnyEntity, entity_key};
use crate::records::EntityDiff;
use crate::store::{self, scan_raw};
use crate::store::{Tables, t_prefix};
use redb::ReadableTable;

/// One entity the scan changes.
pub(crate) struct Change {
    pub(crate) list: EntityList,
    pub(crate) id: String,
    pub(crate) old: Option<Vec<u8>>,
    pub(crate) new: Option<Vec<u8>>,
    pub(crate) kind: ChangeKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Changed,
    Removed,
    /// Kept, marked unobserved.
    Unobserved,
    /// Seen again after being unobserved.
    Reobserved,
}

/// The scan's entity changes under its coverage. Each list's scanned rows are merged with the
/// stored rows the scan answers for (`merge_list`): a full scan's are every row of the list, a
/// targeted scan's those of its scope (`stored_in_scope`), a delta's those it names, its
/// entities and its deletions (`stored_named`), so that the work grows with what the scan
/// covers, and the same rules decide every kind of scan.
pub(super) fn diff(
    t: &Tables<'_>,
    tenant: &TenantId,
    scanned: Scanned,
    started: &ScanStarted,
) -> Result<Vec<Change>, ProjectionError> {
    let coverage = &started.coverage;
    // The scan's entities are held once, as encoded rows grouped by list, which move into the
    // changes: never the whole tenant twice.
    let Scanned { mut rows, mut deleted, identities: seen_identities, .. } = scanned;
    let targets: BTreeSet<&str> = coverage.targets.iter().map(String::as_str).collect();
    // A delta looks up the few rows it names; the other scans read the tenant's marks once.
    let marked: Option<BTreeSet<Vec<u8>>> = (coverage.mode != CoverageMode::Delta)
        .then(|| scan_raw(&t.unobserved, &t_prefix(tenant, &[])))
        .transpose()?
        .map(|rows| rows.into_iter().map(|(k, _)| k).collect());
    let was_unobserved = |key: &[u8]| -> Result<bool, ProjectionError> {
        Ok(match &marked {
            Some(marked) => marked.contains(key),
            None => t.unobserved.get(key)?.is_some(),
        })
    };
    let mut changes = Vec::new();
    for list in EntityList::ALL {
        let scanned = rows.remove(&list).unwrap_or_default();
        let stored = match coverage.mode {
            CoverageMode::Full => stored_all(&t.entities, tenant, list)?,
            CoverageMode::Targeted => stored_in_scope(t, tenant, list, &scanned, &targets, &seen_identities)?,
            CoverageMode::Delta => stored_named(t, tenant, list, &scanned, deleted.remove(&list).unwrap_or_default())?,
        };
        // In a targeted scan, which unseen stored entities the scan was responsible for.
        let in_scope = |bytes: &[u8]| -> Result<bool, ProjectionError> {
            if coverage.mode != CoverageMode::Targeted {
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
        let merge = Merge { tenant, list, coverage: coverage.of(list), was_unobserved: &was_unobserved };
        changes.extend(merge.merge(scanned, stored, in_scope)?);
    }
    Ok(changes)
}

/// A scan's entities as the fold takes them in, part by part: encoded rows by list (each part
/// consumed as it is encoded), the deletions, and the identities it holds.
#[derive(Default)]
pub(crate) struct Scanned {
    rows: graph::ScanRows,
    deleted: BTreeMap<EntityList, Vec<String>>,
    identities: BTreeSet<String>,
    /// Entities and deletions taken in.
    pub(crate) count: u64,
}

impl Scanned {
    /// Takes in the next part, in the order `Entities::split_weighted` made them; only its rows
    /// are kept.
    pub(crate) fn add(&mut self, part: Entities) -> Result<(), ProjectionError> {
        self.count += part.len() as u64;
        self.identities.extend(part.identities.iter().map(|i| i.id.clone()));
        for (list, rows) in graph::scan_rows(&part)? {
            self.rows.entry(list).or_default().extend(rows);
        }
        for Deletion { list, id } in part.deleted {
            self.deleted.entry(list).or_default().push(id);
        }
        Ok(())
    }
}

/// One list's scanned rows against its stored rows (both in id order), under the list's
/// coverage: the rules every scan, and `Views::as_delta`, share.
pub(crate) struct Merge<'a> {
    pub(crate) tenant: &'a TenantId,
    pub(crate) list: EntityList,
    pub(crate) coverage: ListCoverage,
    /// Whether an entity (by its entity key) is stored unobserved.
    pub(crate) was_unobserved: &'a dyn Fn(&[u8]) -> Result<bool, ProjectionError>,
}

impl Merge<'_> {
    /// The changes: scanned rows not stored are added, stored ones with other bytes changed,
    /// unobserved ones seen again reobserved; stored rows not scanned, in a list read and in
    /// the scan's scope (`in_scope`), are removed (complete list) or marked unobserved (partial).
    pub(crate) fn merge(
        &self,
        mut scanned: Vec<(String, Vec<u8>)>,
        stored: Vec<(String, Vec<u8>)>,
        in_scope: impl Fn(&[u8]) -> Result<bool, ProjectionError>,
    ) -> Result<Vec<Change>, ProjectionError> {
        let Merge { tenant, list, coverage, was_unobserved } = *self;
        let mut changes = Vec::new();
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
                    let kind = if *old != bytes {
                        Some(ChangeKind::Changed)
                    } else if was_unobserved(&entity_key(tenant, list, &id))? {
                        Some(ChangeKind::Reobserved)
                    } else {
                        None
                    };
                    if let Some(kind) = kind {
                        changes.push(Change { list, id, old: Some(old.clone()), new: Some(bytes), kind });
                    }
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (id, bytes) = &stored[j];
                    j += 1;
                    if coverage == ListCoverage::NotRead || !in_scope(bytes)? {
                        continue;
                    }
                    let old = Some(bytes.clone());
                    if coverage == ListCoverage::Complete {
                        changes.push(Change { list, id: id.clone(), old, new: None, kind: ChangeKind::Removed });
                    } else if !was_unobserved(&entity_key(tenant, list, id))? {
                        changes.push(Change {
                            list,
                            id: id.clone(),
                            new: old.clone(),
                            old,
                            kind: ChangeKind::Unobserved,
                        });
                    }
                }
            }
        }
        Ok(changes)
    }
}

/// Every stored entity of a list as (id, canonical bytes), in id order.
pub(crate) fn stored_all(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    list: EntityList,
) -> Result<Vec<(String, Vec<u8>)>, ProjectionError> {
    let p = t_prefix(tenant, &[list.name().as_bytes()]);
    scan_raw(entities, &p)?
        .into_iter()
        .map(|(k, row)| Ok((String::from_utf8_lossy(&k[p.len()..]).into_owned(), graph::canonical(&row)?)))
        .collect()
}

/// The stored entities of the ids given as (id, canonical bytes), in id order.
fn stored_rows(
    t: &Tables<'_>,
    tenant: &TenantId,
    list: EntityList,
    ids: BTreeSet<String>,
) -> Result<Vec<(String, Vec<u8>)>, ProjectionError> {
    let mut stored = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = t.entities.get(entity_key(tenant, list, &id).as_slice())? {
            stored.push((id, graph::canonical(row.value())?));
        }
    }
    Ok(stored)
}

/// The stored rows a delta names: those of the entities it holds and of those it deletes.
fn stored_named(
    t: &Tables<'_>,
    tenant: &TenantId,
    list: EntityList,
    scanned: &[(String, Vec<u8>)],
    deleted: Vec<String>,
) -> Result<Vec<(String, Vec<u8>)>, ProjectionError> {
    let ids = scanned.iter().map(|(id, _)| id.clone()).chain(deleted).collect();
    stored_rows(t, tenant, list, ids)
}

/// The stored rows a targeted scan's diff needs, in id order: those of the entities it holds,
/// and those of the stored entities in its scope (its targets, their bindings, and the grants,
/// credentials and evidence of the identities it saw or of its targets), found through the
/// entity indexes. The merge skips every other unseen row, so reading only these gives the
/// same changes as reading the whole list, at the cost of the scope, not the tenant.
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
    stored_rows(t, tenant, list, ids)
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
    // In the order of their keys: redb packs a leaf full only when keys arrive after every key
    // already in the tree, and splits it in half otherwise, so rows written list by list (in
    // the lists' order, not their names') would leave most entity pages half empty.
    let mut ordered: Vec<&Change> = changes.iter().collect();
    ordered.sort_by(|a, b| (a.list.name(), &a.id).cmp(&(b.list.name(), &b.id)));
    for change in ordered {
        let key = entity_key(tenant, change.list, &change.id);
        let (from, to) = if undo { (&change.new, &change.old) } else { (&change.old, &change.new) };
        if from != to {
            if let Some(bytes) = from {
                graph::write_index(&mut batch, tenant, &change.id, &AnyEntity::decode(change.list, bytes)?, true);
            }
            match to {
                Some(bytes) => {
                    t.entities.insert(key.as_slice(), graph::entity_row(bytes).as_slice())?;
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
