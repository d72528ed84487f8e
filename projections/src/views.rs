//! `Views`: the redb database the fold writes and the queries read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sv0_domain::TenantId;
use sv0_domain::assessment::Assessment;
use sv0_domain::events::PackSealed;
use sv0_domain::model::Workload;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_log::file::{self, CheckedDatabase, FileError, Role};
use sv0_log::{EventLog, Record, Seq};
use tracing::{debug, warn};

use crate::error::ProjectionError;
use crate::fold;
use crate::pathstore;
use crate::records::{
    Baseline, BaselineHead, EntityDiff, FindingRecord, KeyRecord, PackHead, ScanRecord, TenantState, TokenRecord,
};
use crate::shard::Shard;
use crate::store::Tables;
use crate::store::{self, get, key, prefix, scan};
use sv0_domain::policy::Policy;

/// The paths of a scope now and after a plan (`Views::whatif`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhatIf {
    /// The scope's paths now, by path id.
    pub before: Vec<AuthorityPath>,
    /// The scope's paths after the plan, by path id.
    pub after: Vec<AuthorityPath>,
    /// The workloads recomputed (the plan reaches them), in id order.
    pub recomputed: Vec<String>,
}

/// What `Views::query_paths` selects: every part given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFilter {
    /// Paths of the scope's workloads.
    pub scope: Option<Scope>,
    /// Paths of one workload.
    pub workload: Option<String>,
    /// Paths through one identity.
    pub identity: Option<String>,
    /// Paths to one destination.
    pub destination: Option<String>,
    /// Paths into one data domain (its id).
    pub domain: Option<String>,
    /// Paths of one grade: `A`, `B` or `C`.
    pub grade: Option<String>,
    /// Paths of one egress class.
    pub egress: Option<String>,
    /// Paths of one ownership state.
    pub owner_state: Option<String>,
}

/// The workloads a filter's scope and workload select.
fn filter_workloads(
    txn: &redb::ReadTransaction,
    tenant: &TenantId,
    filter: &PathFilter,
) -> Result<BTreeSet<String>, ProjectionError> {
    let mut workloads: BTreeSet<String> = match &filter.scope {
        Some(scope) => {
            let entities = txn.open_table(store::ENTITIES)?;
            let entity_index = txn.open_table(store::ENTITY_INDEX)?;
            crate::assess::scope_workloads(&entities, &entity_index, tenant, scope)?
        }
        None => filter.workload.iter().cloned().collect(),
    };
    if let Some(workload) = &filter.workload {
        workloads.retain(|w| w == workload);
    }
    Ok(workloads)
}

impl PathFilter {
    /// Whether a path passes every part of the filter but the scope.
    pub fn matches(&self, path: &AuthorityPath) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        is(&self.workload, &path.workload.id)
            && is(&self.identity, &path.identity.id)
            && is(&self.destination, &path.destination.id)
            && is(&self.domain, &path.domain.id)
            && is(&self.grade, path.grade.as_str())
            && is(&self.egress, path.egress.as_str())
            && is(&self.owner_state, path.owner_state.as_str())
    }
}

/// Events applied per write transaction when catching up: one commit (one fsync) per batch.
pub const BATCH_EVENTS: usize = 512;
/// Bytes of events applied per write transaction at most, so large scans commit in steps.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

const CHECKPOINT_KEY: &[u8] = b"views";

/// The projected views of the log.
#[derive(Clone)]
pub struct Views {
    db: Arc<CheckedDatabase>,
}

impl Views {
    /// Opens (or creates) the views file. Views of another layout (an older sv0) are a cache
    /// of the log like any other: they are dropped and refolded by the next catch-up. A file
    /// not closed cleanly by SV0 is verified page by page first (`sv0_log::file`); a damaged
    /// one is `ProjectionError::Damaged`.
    pub fn open(path: impl AsRef<Path>) -> Result<Views, ProjectionError> {
        Views::open_with(path, false)
    }

    /// `open`, and with `read_only` (or for a file this process may not write) never writing
    /// to the file: what folding writes stays in memory until the views are closed.
    pub fn open_with(path: impl AsRef<Path>, read_only: bool) -> Result<Views, ProjectionError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let create = || match file::open(&path, Role::Cache, read_only) {
            Ok(db) => Ok(db),
            Err(FileError::InUse { .. }) => Err(ProjectionError::InUse { path: path.clone() }),
            Err(FileError::Open { source, .. }) => Err(ProjectionError::from(source)),
            Err(damaged) => Err(ProjectionError::Damaged(damaged)),
        };
        let db = create()?;
        if Views::layout(&db)?.is_some_and(|layout| layout != store::FORMAT) {
            warn!(path = %path.display(), "the views have another layout; they are refolded from the log");
            if db.is_read_only() {
                // The file stays as it is; the fold goes to memory.
                return Views::in_memory();
            }
            // The tenants the views fold stay those recorded.
            let shard = Views { db: Arc::new(db) }.shard()?;
            std::fs::remove_file(&path).map_err(|source| ProjectionError::Replace { path: path.clone(), source })?;
            let views = Views::init(create()?)?;
            views.bind_shard(shard.as_ref())?;
            return Ok(views);
        }
        Views::init(db)
    }

    /// The tenants these views fold, when they fold only some (`None`: every tenant).
    pub fn shard(&self) -> Result<Option<Shard>, ProjectionError> {
        let txn = self.db.begin_read()?;
        Views::recorded_shard(&txn.open_table(store::META)?)
    }

    fn recorded_shard(
        meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ) -> Result<Option<Shard>, ProjectionError> {
        let recorded = meta.get(b"shard".as_slice())?.map(|v| String::from_utf8_lossy(v.value()).into_owned());
        match recorded {
            None => Ok(None),
            Some(text) => Shard::parse_recorded(&text).map(Some).ok_or(ProjectionError::UnreadableShard(text)),
        }
    }

    /// Makes the views fold only `shard`'s tenants from now on, as recorded in them: views
    /// that already fold other tenants (every tenant, or another shard) are refused. `None`
    /// keeps what is recorded.
    pub fn bind_shard(&self, shard: Option<&Shard>) -> Result<(), ProjectionError> {
        let Some(shard) = shard else { return Ok(()) };
        let recorded = self.shard()?;
        if recorded.as_ref() == Some(shard) {
            return Ok(());
        }
        if recorded.is_some() || self.checkpoint()? > 0 {
            return Err(ProjectionError::OtherShard {
                views: recorded.map_or_else(|| "every tenant".to_string(), |r| r.to_string()),
                asked: shard.to_string(),
            });
        }
        let txn = self.db.begin_write()?;
        txn.open_table(store::META)?.insert(b"shard".as_slice(), shard.to_string().as_bytes())?;
        txn.commit()?;
        Ok(())
    }

    /// The layout a views file was written with: `None` for a new file.
    fn layout(db: &Database) -> Result<Option<Vec<u8>>, ProjectionError> {
        let txn = db.begin_read()?;
        let meta = match txn.open_table(store::META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if let Some(format) = meta.get(b"format".as_slice())? {
            return Ok(Some(format.value().to_vec()));
        }
        // Written before layouts were recorded: the first layout.
        Ok(Some(b"sv0-views-1".to_vec()))
    }

    /// Whether the file records this layout and has every table.
    fn complete(db: &Database) -> Result<bool, ProjectionError> {
        if Views::layout(db)?.as_deref() != Some(store::FORMAT) {
            return Ok(false);
        }
        let txn = db.begin_read()?;
        for table in store::ALL_TABLES {
            match txn.open_table(table) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Views in memory, for replays to a point in time.
    pub fn in_memory() -> Result<Views, ProjectionError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new())?;
        Views::init(CheckedDatabase::in_memory(db))
    }

    /// Whether the views file is read-only here (folds stay in memory).
    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    /// The file was renamed (a rebuilt file swapped in for the old one).
    pub fn renamed(&self, to: &Path) {
        self.db.renamed(to);
    }

    /// The database, for this crate's tests.
    #[cfg(test)]
    pub(crate) fn database(&self) -> &Database {
        self.db.database()
    }

    /// Creates the tables and records the layout, when the file lacks either: an open of views
    /// that have both writes nothing, so that views on a full disk still open.
    fn init(db: CheckedDatabase) -> Result<Views, ProjectionError> {
        if Views::complete(&db)? {
            return Ok(Views { db: Arc::new(db) });
        }
        let txn = db.begin_write()?;
        for table in store::ALL_TABLES {
            txn.open_table(table)?;
        }
        txn.open_table(store::META)?.insert(b"format".as_slice(), store::FORMAT)?;
        txn.commit()?;
        Ok(Views { db: Arc::new(db) })
    }

    /// Ties the views to the log they fold: the first log seen is recorded, any other refused.
    pub fn bind_log(&self, identity: &str) -> Result<(), ProjectionError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(store::META)?;
            let bound = meta.get(b"log".as_slice())?.map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match bound {
                Some(existing) if existing != identity => {
                    return Err(ProjectionError::OtherLog { views: existing, log: identity.to_string() });
                }
                Some(_) => {}
                None => {
                    meta.insert(b"log".as_slice(), identity.as_bytes())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The log position of the last assessment whose signals were published (0 if none were).
    /// Publisher bookkeeping, kept beside the views but not folded from events.
    pub fn signal_cursor(&self) -> Result<Seq, ProjectionError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(store::META)?;
        Ok(get::<u64>(&meta, "meta", b"signals")?.unwrap_or(0))
    }

    /// Records that signals up to the assessment at `seq` are published.
    pub fn set_signal_cursor(&self, seq: Seq) -> Result<(), ProjectionError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(store::META)?;
            store::put(&mut meta, b"signals", &seq)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The last log position applied (0 when none is).
    pub fn checkpoint(&self) -> Result<Seq, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::CHECKPOINTS)?;
        Ok(get::<u64>(&table, "checkpoints", CHECKPOINT_KEY)?.unwrap_or(0))
    }

    /// Applies records that follow the checkpoint, in one write transaction together with the
    /// new checkpoint: either all of them take effect or none does. Records at or before the
    /// checkpoint are skipped, so a redelivered batch changes nothing.
    pub fn apply(&self, records: &[Record]) -> Result<Seq, ProjectionError> {
        self.apply_where(records, |_| true)
    }

    /// `apply` of the records `keep` selects (and the views' shard folds); the checkpoint
    /// passes the others too.
    pub fn apply_where(&self, records: &[Record], keep: impl Fn(&Record) -> bool) -> Result<Seq, ProjectionError> {
        let txn = self.db.begin_write()?;
        let shard = Views::recorded_shard(&txn.open_table(store::META)?)?;
        let keep = |record: &Record| keep(record) && shard.as_ref().is_none_or(|s| s.keeps_subject(&record.subject));
        let mut checkpoint;
        {
            let mut tables = Tables::open(&txn)?;
            checkpoint = get::<u64>(&tables.checkpoints, "checkpoints", CHECKPOINT_KEY)?.unwrap_or(0);
            for record in records {
                if record.seq <= checkpoint {
                    continue;
                }
                if !keep(record) {
                    checkpoint = record.seq;
                    continue;
                }
                let event = sv0_codec::decode_event(&record.data)
                    .map_err(|source| ProjectionError::Event { seq: record.seq, source })?;
                fold::apply(&mut tables, record, &event)?;
                checkpoint = record.seq;
            }
            store::put(&mut tables.checkpoints, CHECKPOINT_KEY, &checkpoint)?;
        }
        txn.commit()?;
        Ok(checkpoint)
    }

    /// Applies everything the log holds up to `until` (its head when `None`); returns the new
    /// checkpoint.
    pub async fn catch_up<L: EventLog>(&self, log: &L, until: Option<Seq>) -> Result<Seq, ProjectionError> {
        self.catch_up_where(log, until, |_: &Record| true).await
    }

    /// `catch_up` folding only the records `keep` selects (an audit replay of one tenant folds
    /// only that tenant's subjects).
    pub async fn catch_up_where<L: EventLog>(
        &self,
        log: &L,
        until: Option<Seq>,
        keep: impl Fn(&Record) -> bool + Clone + Send + 'static,
    ) -> Result<Seq, ProjectionError> {
        let mut checkpoint = self.checkpoint()?;
        let mut head = log.head().await?;
        // A server that just rejoined a cluster may report a head behind what its peers
        // acknowledged: ask again for a few seconds before calling the views ahead of the log.
        for wait_ms in [100, 300, 1_000, 2_000] {
            if checkpoint <= head {
                break;
            }
            debug!(checkpoint, head, "the log's head is behind the views; asking again");
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            head = log.head().await?;
        }
        let target = until.map_or(head, |u| u.min(head));
        if checkpoint > head {
            return Err(ProjectionError::AheadOfLog { views: checkpoint, log: head });
        }
        while checkpoint < target {
            let records = log.read(checkpoint + 1, Some(target), BATCH_EVENTS).await?;
            if records.is_empty() {
                break;
            }
            let mut batch = Vec::new();
            let mut bytes = 0;
            for record in records {
                bytes += record.data.len();
                batch.push(record);
                if bytes >= BATCH_BYTES {
                    break;
                }
            }
            let views = self.clone();
            let keep = keep.clone();
            checkpoint = tokio::task::spawn_blocking(move || views.apply_where(&batch, keep))
                .await
                .map_err(|e| ProjectionError::Worker(e.to_string()))??;
            debug!(checkpoint, target, "views applied a batch");
        }
        Ok(checkpoint)
    }

    /// Every tenant the views know.
    pub fn tenants(&self) -> Result<Vec<TenantId>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::TENANTS)?;
        let mut tenants = Vec::new();
        for entry in table.iter()? {
            let (k, _) = entry?;
            let text = String::from_utf8_lossy(k.value()).into_owned();
            if let Ok(tenant) = TenantId::new(text) {
                tenants.push(tenant);
            }
        }
        Ok(tenants)
    }

    /// What the views know of a tenant.
    pub fn tenant_state(&self, tenant: &TenantId) -> Result<Option<TenantState>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::TENANTS)?;
        get(&table, "tenants", &key(&[tenant.as_str().as_bytes()]))
    }

    /// Every workload of a tenant, sorted by id.
    pub fn workloads(&self, tenant: &TenantId) -> Result<Vec<Workload>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::ENTITIES)?;
        store::scan_raw(&table, &prefix(&[tenant.as_str().as_bytes(), b"workloads"]))?
            .iter()
            .map(|(_, row)| crate::graph::decode_row(row))
            .collect()
    }

    /// A what-if: the paths of `scope` now and as they would stand after `overlay` (a plan),
    /// computed in a read transaction, so that nothing is written anywhere. Only the
    /// workloads the plan reaches are recomputed (those it creates, replaces or deletes, those
    /// bound to an identity whose authority it changes, those with a path to a destination it
    /// changes); the others keep their stored paths.
    pub fn whatif(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        overlay: &sv0_domain::overlay::Overlay,
    ) -> Result<WhatIf, ProjectionError> {
        use sv0_domain::paths::GraphLookup;
        let policy = self.policy(tenant)?;
        let now = self.tenant_state(tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
        let txn = self.db.begin_read()?;
        let entities = txn.open_table(store::ENTITIES)?;
        let index = txn.open_table(store::ENTITY_INDEX)?;
        let stored_paths = txn.open_table(store::PATHS)?;
        let mut workloads = crate::assess::scope_workloads(&entities, &index, tenant, scope)?;
        for planned in &overlay.upserts.workloads {
            if scope.matches(planned) {
                workloads.insert(planned.id.clone());
            } else {
                workloads.remove(&planned.id);
            }
        }
        let cache = crate::graph::GraphCache::default();
        let base = crate::graph::StoredGraph { entities: &entities, index: &index, tenant, cache: &cache };
        let graph = sv0_domain::overlay::OverlayGraph::new(&base, overlay);
        let mut out = WhatIf::default();
        for workload in &workloads {
            let stored = pathstore::of_workload(&stored_paths, tenant, workload, None)?;
            let reached = overlay.workloads.contains(workload)
                || base
                    .bindings_of(workload)
                    .iter()
                    .chain(&graph.bindings_of(workload))
                    .any(|b| overlay.identities.contains(&b.identity))
                || stored.iter().any(|p| overlay.destinations.contains(&p.destination.id.to_ascii_lowercase()));
            if reached {
                let previous: BTreeMap<&str, _> =
                    stored.iter().map(|p| (p.path_id.as_str(), (p.owner_state, p.owner_state_since))).collect();
                let previous = |id: &str| previous.get(id).copied();
                out.after.extend(sv0_domain::paths::compute_workload_paths(&graph, workload, now, &policy, &previous));
                out.recomputed.push(workload.clone());
            } else {
                out.after.extend(stored.iter().cloned());
            }
            out.before.extend(stored);
        }
        out.before.sort_by(|a, b| a.path_id.cmp(&b.path_id));
        out.after.sort_by(|a, b| a.path_id.cmp(&b.path_id));
        Ok(out)
    }

    /// One entity of the tenant's latest scan, by list and id.
    pub fn entity<E: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        list: sv0_domain::snapshot::EntityList,
        id: &str,
    ) -> Result<Option<E>, ProjectionError> {
        let txn = self.db.begin_read()?;
        crate::graph::get_entity(&txn.open_table(store::ENTITIES)?, tenant, list, id)
    }

    /// A full scan as a delta of the tenant's latest applied scan: the entities the scan's
    /// diff would add, change or see again, and as deletions those it would remove or mark
    /// unobserved, found by the same merge (`scan::Merge`) the fold runs. Applied, it gives the
    /// views the full scan gives, but the log holds and the fold reads only the change. The
    /// snapshot comes back as it is when it cannot be a delta: the tenant has no applied scan,
    /// or the scan is not a full one (a targeted scan is already small).
    pub fn as_delta(
        &self,
        mut snapshot: sv0_domain::snapshot::ValidSnapshot,
    ) -> Result<sv0_domain::snapshot::ValidSnapshot, ProjectionError> {
        use crate::scan::{ChangeKind, Merge, stored_all};
        use sv0_domain::snapshot::{Coverage, CoverageMode, Deletion, EntityList};
        let tenant = snapshot.tenant.clone();
        let base = self.tenant_state(&tenant)?.map(|s| s.last_scan_id).filter(|id| !id.is_empty());
        let coverage = snapshot.scan.coverage.clone().unwrap_or_else(Coverage::complete);
        let Some(base) = base.filter(|_| coverage.mode == CoverageMode::Full) else { return Ok(snapshot) };
        let txn = self.db.begin_read()?;
        let entities = txn.open_table(store::ENTITIES)?;
        let unobserved = txn.open_table(store::UNOBSERVED)?;
        let marked: BTreeSet<Vec<u8>> =
            store::scan_raw(&unobserved, &prefix(&[tenant.as_str().as_bytes()]))?.into_iter().map(|(k, _)| k).collect();
        let was_unobserved = |key: &[u8]| Ok(marked.contains(key));
        let mut rows = crate::graph::scan_rows(&snapshot.entities)?;
        let mut keep: BTreeSet<(EntityList, String)> = BTreeSet::new();
        let mut deleted = Vec::new();
        for list in EntityList::ALL {
            let merge = Merge { tenant: &tenant, list, coverage: coverage.of(list), was_unobserved: &was_unobserved };
            let scanned = rows.remove(&list).unwrap_or_default();
            for change in merge.merge(scanned, stored_all(&entities, &tenant, list)?, |_| Ok(true))? {
                match change.kind {
                    ChangeKind::Removed | ChangeKind::Unobserved => deleted.push(Deletion { list, id: change.id }),
                    ChangeKind::Added | ChangeKind::Changed | ChangeKind::Reobserved => {
                        keep.insert((list, change.id));
                    }
                }
            }
        }
        snapshot.entities.retain(|list, id| keep.contains(&(list, id.to_string())));
        snapshot.entities.deleted = deleted;
        snapshot.scan.coverage = Some(Coverage { mode: CoverageMode::Delta, base_scan: Some(base), ..coverage });
        Ok(snapshot)
    }

    /// Whether the tenant's views hold an entity.
    pub fn has_entity(
        &self,
        tenant: &TenantId,
        list: sv0_domain::snapshot::EntityList,
        id: &str,
    ) -> Result<bool, ProjectionError> {
        Ok(self.missing_entities(tenant, [(list, id)])?.is_empty())
    }

    /// Which of these entities the tenant does not hold, in the order asked, read in one
    /// transaction.
    pub fn missing_entities<'a>(
        &self,
        tenant: &TenantId,
        wanted: impl IntoIterator<Item = (sv0_domain::snapshot::EntityList, &'a str)>,
    ) -> Result<Vec<(sv0_domain::snapshot::EntityList, &'a str)>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let entities = txn.open_table(store::ENTITIES)?;
        let mut missing = Vec::new();
        for (list, id) in wanted {
            if entities.get(crate::graph::entity_key(tenant, list, id).as_slice())?.is_none() {
                missing.push((list, id));
            }
        }
        Ok(missing)
    }

    /// The ids of a list's entities that start with `prefix`, in id order, at most `limit`.
    pub fn entity_ids_with_prefix(
        &self,
        tenant: &TenantId,
        list: sv0_domain::snapshot::EntityList,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let entities = txn.open_table(store::ENTITIES)?;
        let base = crate::graph::entity_key(tenant, list, "");
        let start = crate::graph::entity_key(tenant, list, prefix);
        let mut out = Vec::new();
        for entry in entities.range(start.as_slice()..)? {
            let (k, _) = entry?;
            if !k.value().starts_with(&start) || out.len() >= limit {
                break;
            }
            out.push(String::from_utf8_lossy(&k.value()[base.len()..]).into_owned());
        }
        Ok(out)
    }

    /// The destinations whose ARM id, compared case-insensitively, is `arm_id` or below it.
    pub fn destinations_below(
        &self,
        tenant: &TenantId,
        arm_id: &str,
    ) -> Result<Vec<sv0_domain::model::Destination>, ProjectionError> {
        let lower = arm_id.trim_end_matches('/').to_ascii_lowercase();
        let txn = self.db.begin_read()?;
        let entities = txn.open_table(store::ENTITIES)?;
        let index = txn.open_table(store::ENTITY_INDEX)?;
        let mut out = Vec::new();
        for (_, id) in crate::graph::index_below(&index, tenant, "destination.arm", &lower)? {
            let list = sv0_domain::snapshot::EntityList::Destinations;
            out.extend(crate::graph::get_entity(&entities, tenant, list, &id)?);
        }
        Ok(out)
    }

    /// The paths of a tenant (of a scope, when given), sorted by path id.
    pub fn paths(&self, tenant: &TenantId, scope: Option<&Scope>) -> Result<Vec<AuthorityPath>, ProjectionError> {
        self.query_paths(tenant, &PathFilter { scope: scope.cloned(), ..PathFilter::default() })
    }

    /// The paths that pass every part of a filter, sorted by path id. The most selective part
    /// the filter names is read through its index: workload or scope (ranges of the paths
    /// table), destination, identity (the workloads bound to it), then domain, grade, egress
    /// class and owner state (the class index). Only an empty filter reads every path.
    pub fn query_paths(&self, tenant: &TenantId, filter: &PathFilter) -> Result<Vec<AuthorityPath>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let paths = txn.open_table(store::PATHS)?;
        let index = txn.open_table(store::PATH_INDEX)?;
        let identity = filter.identity.as_deref();
        let mut out = if filter.scope.is_some() || filter.workload.is_some() {
            let mut out = Vec::new();
            for workload in &filter_workloads(&txn, tenant, filter)? {
                out.extend(pathstore::of_workload(&paths, tenant, workload, identity)?);
            }
            out
        } else if let Some(destination) = &filter.destination {
            pathstore::load(&paths, tenant, &pathstore::by_destination(&index, tenant, destination)?)?
        } else if let Some(identity) = identity {
            let entity_index = txn.open_table(store::ENTITY_INDEX)?;
            let mut out = Vec::new();
            for workload in crate::graph::workloads_of_identity(&entity_index, tenant, identity)? {
                out.extend(pathstore::of_workload(&paths, tenant, &workload, Some(identity))?);
            }
            out
        } else if filter.domain.is_some()
            || filter.grade.is_some()
            || filter.egress.is_some()
            || filter.owner_state.is_some()
        {
            let class = [
                filter.domain.as_deref(),
                filter.grade.as_deref(),
                filter.egress.as_deref(),
                filter.owner_state.as_deref(),
            ];
            pathstore::load(&paths, tenant, &pathstore::by_class(&index, tenant, class)?)?
        } else {
            pathstore::decode_rows(store::scan_pieces(&paths, "paths", &prefix(&[tenant.as_str().as_bytes()]))?)?
        };
        out.retain(|p| filter.matches(p));
        out.sort_by(|a, b| a.path_id.cmp(&b.path_id));
        Ok(out)
    }

    /// One page of `query_paths`: at most `limit` paths after the cursor `after`, and the cursor
    /// of the next page when more follow. A filter of a scope or workload (and identity) alone
    /// reads the page straight from the paths table, in row order (workload, identity, path
    /// id), so a page costs the same whatever the scope's size; its cursor is those three
    /// components, rebuilt under the caller's tenant. Any other filter reads the whole result
    /// and cuts the page in path id order; its cursor is the last path id.
    pub fn query_paths_page(
        &self,
        tenant: &TenantId,
        filter: &PathFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuthorityPath>, Option<String>), ProjectionError> {
        let keyed = (filter.scope.is_some() || filter.workload.is_some())
            && filter.destination.is_none()
            && filter.domain.is_none()
            && filter.grade.is_none()
            && filter.egress.is_none()
            && filter.owner_state.is_none();
        if !keyed {
            let all = self.query_paths(tenant, filter)?;
            let start = after.map_or(0, |a| all.partition_point(|p| p.path_id.as_str() <= a));
            let more = all.len() > start + limit;
            let page: Vec<AuthorityPath> = all.into_iter().skip(start).take(limit).collect();
            let next = if more { page.last().map(|p| p.path_id.clone()) } else { None };
            return Ok((page, next));
        }
        let txn = self.db.begin_read()?;
        let paths = txn.open_table(store::PATHS)?;
        let workloads = filter_workloads(&txn, tenant, filter)?;
        // The cursor: workload, identity and path id of the last row served.
        let after: Option<Vec<&str>> = after.map(|a| a.split('\0').collect());
        let after = match after.as_deref() {
            Some([w, i, p]) => Some((*w, *i, *p)),
            Some(_) => return Err(ProjectionError::Invalid("not a cursor of this query".to_string())),
            None => None,
        };
        let mut page = Vec::with_capacity(limit + 1);
        'workloads: for workload in workloads.iter().filter(|w| after.is_none_or(|(aw, _, _)| w.as_str() >= aw)) {
            // The workload's rows, one per identity, from the cursor's on.
            let p = prefix(&[tenant.as_str().as_bytes(), workload.as_bytes()]);
            let end = store::prefix_end(&p);
            let start = match after {
                Some((aw, ai, _)) if aw == workload.as_str() => pathstore::group_key(tenant, aw, ai),
                _ => p.clone(),
            };
            for row in store::pieces_in(&paths, "paths", &start, &end)? {
                let (k, v) = row?;
                let identity = &k[p.len()..];
                if filter.identity.as_deref().is_some_and(|wanted| wanted.as_bytes() != identity) {
                    continue;
                }
                for framed in pathstore::PathRow::parse("paths", &v)?.iter() {
                    let served = after.is_some_and(|(aw, ai, ap)| {
                        aw == workload.as_str() && ai.as_bytes() == identity && framed.id <= ap
                    });
                    if served {
                        continue;
                    }
                    page.push(pathstore::decode_path(&framed)?);
                    if page.len() > limit {
                        break 'workloads;
                    }
                }
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|p| format!("{}\0{}\0{}", p.workload.id, p.identity.id, p.path_id))
        } else {
            None
        };
        Ok((page, next))
    }

    /// Findings of a tenant, open and resolved, sorted by id; restricted to a scope's
    /// workloads when given.
    pub fn findings(&self, tenant: &TenantId, scope: Option<&Scope>) -> Result<Vec<FindingRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::FINDINGS)?;
        let groups = txn.open_table(store::FINDING_GROUPS)?;
        let Some(scope) = scope else {
            return crate::findingstore::all(&table, &groups, tenant);
        };
        let entities = txn.open_table(store::ENTITIES)?;
        let entity_index = txn.open_table(store::ENTITY_INDEX)?;
        let by_workload = txn.open_table(store::FINDINGS_BY_WORKLOAD)?;
        crate::assess::scope_findings(&entities, &entity_index, &by_workload, &table, &groups, tenant, scope)
    }

    /// The tenant's policy (the default until one is set).
    pub fn policy(&self, tenant: &TenantId) -> Result<Policy, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::POLICIES)?;
        Ok(get(&table, "policies", &key(&[tenant.as_str().as_bytes()]))?.unwrap_or_default())
    }

    /// Which Rego policy decides the tenant's dispositions, and which waits for a second
    /// person's approval.
    pub fn rego_state(&self, tenant: &TenantId) -> Result<sv0_domain::policy::RegoState, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::POLICIES)?;
        Ok(get(&table, "policies", &key(&[tenant.as_str().as_bytes(), crate::store::REGO_STATE]))?.unwrap_or_default())
    }

    /// The paths the scope's latest deployment scan flagged (until the next deployment or
    /// approval): what remediation is measured against.
    pub fn deployment_flags(&self, tenant: &TenantId, scope: &Scope) -> Result<Vec<String>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::SCOPE_FLAGS)?;
        Ok(get(&table, "scope_flags", &key(&[tenant.as_str().as_bytes(), scope.key().as_bytes()]))?.unwrap_or_default())
    }

    /// What a scan changed, entity by entity.
    pub fn scan_diff(&self, tenant: &TenantId, scan_id: &str) -> Result<Option<EntityDiff>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::SCAN_DIFFS)?;
        get(&table, "scan_diffs", &key(&[tenant.as_str().as_bytes(), scan_id.as_bytes()]))
    }

    /// Entities a partial scan did not see, with since when: (list, id, since).
    pub fn unobserved(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, String, sv0_domain::Timestamp)>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::UNOBSERVED)?;
        let p = prefix(&[tenant.as_str().as_bytes()]);
        let mut out = Vec::new();
        for (k, v) in store::scan_raw(&table, &p)? {
            let rest = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            if let Some((list, id)) = rest.split_once('\0') {
                out.push((list.to_string(), id.to_string(), store::decode("unobserved", &v)?));
            }
        }
        Ok(out)
    }

    /// Every baselined scope of a tenant.
    pub fn baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineHead>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::BASELINES)?;
        scan(&table, "baselines", &prefix(&[tenant.as_str().as_bytes()]))
    }

    /// A baseline version of a scope; the latest when `version` is `None`.
    pub fn baseline(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        version: Option<u32>,
    ) -> Result<Option<Baseline>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let heads = txn.open_table(store::BASELINES)?;
        let versions = txn.open_table(store::BASELINE_VERSIONS)?;
        let scope_key = scope.key();
        let version = match version {
            Some(v) => v,
            None => match get::<BaselineHead>(
                &heads,
                "baselines",
                &key(&[tenant.as_str().as_bytes(), scope_key.as_bytes()]),
            )? {
                Some(head) => head.version,
                None => return Ok(None),
            },
        };
        store::get_big(
            &versions,
            "baseline_versions",
            &key(&[tenant.as_str().as_bytes(), scope_key.as_bytes(), &version.to_be_bytes()]),
        )
    }

    /// Who approved a baseline version of a scope and when, read without building its paths
    /// (the row is unpacked and its paths skipped; the Overview lists every scope's).
    pub fn baseline_approval(
        &self,
        tenant: &TenantId,
        scope: &Scope,
        version: u32,
    ) -> Result<Option<crate::records::BaselineApproval>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(store::BASELINE_VERSIONS)?;
        store::get_big(
            &versions,
            "baseline_versions",
            &key(&[tenant.as_str().as_bytes(), scope.key().as_bytes(), &version.to_be_bytes()]),
        )
    }

    /// Every baseline version of a scope, oldest first.
    pub fn baseline_history(&self, tenant: &TenantId, scope: &Scope) -> Result<Vec<Baseline>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(store::BASELINE_VERSIONS)?;
        store::scan_big(&versions, "baseline_versions", &prefix(&[tenant.as_str().as_bytes(), scope.key().as_bytes()]))
    }

    /// Assessments of a tenant after a log position, in log order: a range read from that
    /// position (rows are keyed by it, big-endian), so sealing a scan reads its own
    /// assessment, not the tenant's history.
    pub fn assessments_after(&self, tenant: &TenantId, after: Seq) -> Result<Vec<Assessment>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::ASSESSMENTS)?;
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let start = key(&[tenant.as_str().as_bytes(), &from.to_be_bytes()]);
        let end = store::prefix_end(&prefix(&[tenant.as_str().as_bytes()]));
        let mut out = Vec::new();
        for entry in table.range(start.as_slice()..end.as_slice())? {
            let (_, value) = entry?;
            let assessment: Assessment = store::decode_big("assessments", value.value())?;
            if assessment.assessed_seq > after {
                out.push(assessment);
            }
        }
        Ok(out)
    }

    /// The tenant's latest `n` assessments, newest first: a reverse range read of `n` rows.
    pub fn latest_assessments(&self, tenant: &TenantId, n: usize) -> Result<Vec<Assessment>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::ASSESSMENTS)?;
        let start = prefix(&[tenant.as_str().as_bytes()]);
        let end = store::prefix_end(&start);
        let mut out = Vec::new();
        for entry in table.range(start.as_slice()..end.as_slice())?.rev().take(n) {
            let (_, value) = entry?;
            out.push(store::decode_big("assessments", value.value())?);
        }
        Ok(out)
    }

    /// One finding of a tenant, by id.
    pub fn finding(&self, tenant: &TenantId, finding_id: &str) -> Result<Option<FindingRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let findings = txn.open_table(store::FINDINGS)?;
        let groups = txn.open_table(store::FINDING_GROUPS)?;
        let locator = txn.open_table(store::FINDING_LOCATOR)?;
        crate::findingstore::get(&findings, &groups, &locator, tenant, finding_id)
    }

    /// The assessment of one log position.
    pub fn assessment(&self, tenant: &TenantId, seq: Seq) -> Result<Option<Assessment>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::ASSESSMENTS)?;
        store::get_big(&table, "assessments", &key(&[tenant.as_str().as_bytes(), &seq.to_be_bytes()]))
    }

    /// The head of a tenant's pack chain.
    pub fn pack_head(&self, tenant: &TenantId) -> Result<Option<PackHead>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::PACK_HEADS)?;
        get(&table, "pack_heads", &key(&[tenant.as_str().as_bytes()]))
    }

    /// A tenant's packs in chain order.
    pub fn packs(&self, tenant: &TenantId) -> Result<Vec<PackSealed>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::PACKS)?;
        store::scan_big(&table, "packs", &prefix(&[tenant.as_str().as_bytes()]))
    }

    /// The signing keys registered for a tenant.
    pub fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::KEYS)?;
        scan(&table, "keys", &prefix(&[tenant.as_str().as_bytes()]))
    }

    /// A token by id, whatever its tenant.
    pub fn token(&self, token_id: &str) -> Result<Option<TokenRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::TOKENS)?;
        get(&table, "tokens", token_id.as_bytes())
    }

    /// A tenant's tokens, by id.
    pub fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::TOKENS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            let record: TokenRecord = store::decode("tokens", v.value())?;
            if record.tenant == *tenant {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every scan of a tenant, by scan id.
    pub fn scans(&self, tenant: &TenantId) -> Result<Vec<ScanRecord>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(store::SCANS)?;
        scan(&table, "scans", &prefix(&[tenant.as_str().as_bytes()]))
    }

    /// A SHA-256 of each table but `meta` (every key and value, length-prefixed, in key order):
    /// two views folded from the same log to the same position have equal digests. Streams
    /// the tables; memory does not grow with them.
    pub fn table_digests(&self) -> Result<BTreeMap<String, [u8; 32]>, ProjectionError> {
        use sha2::{Digest, Sha256};
        self.fold_tables(Sha256::new, |hasher, key, value| {
            for part in [key, value] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
        })
        .map(|tables| tables.into_iter().map(|(name, hasher)| (name, hasher.finalize().into())).collect())
    }

    /// Every row of every table but `meta`, for comparing two databases entry for entry.
    pub fn dump(&self) -> Result<BTreeMap<String, Vec<store::Row>>, ProjectionError> {
        self.fold_tables(Vec::new, |rows, key, value| rows.push((key.to_vec(), value.to_vec())))
    }

    /// The bytes of pages each table holds (its stored bytes, its B-tree's metadata and the
    /// unused parts of its pages, as redb counts them), largest first.
    pub fn table_bytes(&self) -> Result<Vec<(String, u64)>, ProjectionError> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for handle in txn.list_tables()? {
            let name = redb::TableHandle::name(&handle).to_string();
            let definition: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
            let stats = txn.open_table(definition)?.stats()?;
            out.push((name, stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes()));
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Folds the rows of each table but `meta` (which log the views belong to is bookkeeping,
    /// not something folded from events) in key order, one accumulator per table.
    fn fold_tables<A>(
        &self,
        start: impl Fn() -> A,
        mut add: impl FnMut(&mut A, &[u8], &[u8]),
    ) -> Result<BTreeMap<String, A>, ProjectionError> {
        let txn = self.db.begin_read()?;
        let mut out = BTreeMap::new();
        for handle in txn.list_tables()? {
            let name = redb::TableHandle::name(&handle).to_string();
            if name == redb::TableHandle::name(&store::META) {
                continue;
            }
            let definition: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
            let table = txn.open_table(definition)?;
            let mut acc = start();
            for entry in table.iter()? {
                let (k, v) = entry?;
                add(&mut acc, k.value(), v.value());
            }
            out.insert(name, acc);
        }
        Ok(out)
    }
}
