//! `Service`: the one entry point the CLI and the API drive. It appends commands'
//! events to the log, keeps the views caught up, seals assessments into packs and answers
//! queries.

mod approval;
mod evidence;
mod history;

pub use approval::*;
pub use evidence::*;
pub use history::*;

use std::path::Path;

use sv0_domain::delta::{self, DeltaEntry};
use sv0_domain::events::Acknowledgement;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{ScanTrigger, ValidSnapshot};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EmbeddedLog, EventLog, Expected, Seq};
use sv0_projections::{FindingRecord, PathFilter, ScanRecord, Views};
use sv0_signer::PackSigner;
use tracing::{info, warn};

use crate::data_dir::DataDir;
use crate::error::ServiceError;
use crate::import::{parse_snapshot, scan_events};
use crate::signals::{Signal, SignalSink, signals_for};
use crate::verify::Freshness;

/// Attempts at sealing when another signer keeps winning the race.
pub(crate) const SEAL_ATTEMPTS: usize = 5;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ImportReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The scan id.
    pub scan_id: String,
    /// True when the same scan was already on the log: nothing was appended.
    pub duplicate: bool,
    /// Log positions of the scan's events.
    pub first_seq: Seq,
    /// Last position.
    pub last_seq: Seq,
    /// Chunks.
    pub chunk_count: u32,
    /// Entities.
    pub entity_count: u64,
    /// How the views took it.
    pub scan: Option<ScanRecord>,
}

/// Refuses acknowledgements whose due date is before `at` (the day of the approval).
pub(crate) fn refuse_past_dues(acknowledged: &[Acknowledgement], at: Timestamp) -> Result<(), ServiceError> {
    let today = at.date();
    for ack in acknowledged {
        let due = ack.due.date();
        if due < today {
            return Err(ServiceError::Input(sv0_domain::InvalidInput::new(format!(
                "the acknowledgement of {} is due {due}, which is before today ({today}): give a date to come",
                ack.finding_id
            ))));
        }
    }
    Ok(())
}

/// A scope's delta against its latest baseline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DeltaReport {
    /// The scope.
    pub scope: Scope,
    /// The baseline compared against.
    pub baseline_version: u32,
    /// Entries.
    pub entries: Vec<DeltaEntry>,
    /// The verdict of the current posture against the baseline.
    pub verification: delta::Verification,
    /// What a CI gate does with the scope now.
    pub disposition: sv0_domain::disposition::Disposition,
    /// The scope's paths now.
    pub paths: Vec<AuthorityPath>,
    /// The scope's findings now.
    pub findings: Vec<FindingRecord>,
    /// Additions the approved plan declared (`approve --plan`) that no path of the scope
    /// realises: planned, and not (or not yet) there.
    pub planned_missing: Vec<sv0_domain::intent::IntentItem>,
}

/// How far past this server's clock a pushed scan's `observed_at` may be.
const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// A scope now against its approved baseline: what its delta and disposition are decided from.
struct ScopeNow {
    scope: String,
    baseline_version: u32,
    paths: Vec<AuthorityPath>,
    findings: Vec<FindingRecord>,
    entries: Vec<DeltaEntry>,
    builtin: sv0_domain::disposition::Disposition,
}

impl ScopeNow {
    fn input<'a>(&'a self, tenant: &'a TenantId) -> sv0_projections::rego::DispositionInput<'a> {
        sv0_projections::rego::DispositionInput {
            tenant,
            scope: &self.scope,
            baseline_version: self.baseline_version,
            paths: &self.paths,
            findings: &self.findings,
            delta: &self.entries,
            verification: None,
            builtin: &self.builtin,
        }
    }
}

/// The read side of SV0 over one log and one set of views: every query, cheap to clone
/// (the log and the views are shared handles), never behind a command in progress. The API
/// answers reads through one of these while commands wait for their lock.
#[derive(Clone)]
pub struct Queries<L: EventLog> {
    pub(crate) data_dir: DataDir,
    pub(crate) log: L,
    pub(crate) views: Views,
}

/// The command side of SV0: appends commands' events, keeps the views caught up, seals
/// assessments and rotates keys (`&mut self`). It dereferences to its [`Queries`], so a
/// command can read what it decides from, and the CLI can ask one value everything.
pub struct Service<L: EventLog> {
    pub(crate) queries: Queries<L>,
    pub(crate) signer: Option<PackSigner>,
    pub(crate) sealing: bool,
    /// The TSA asked for a token over each new checkpoint after sealing, when configured.
    pub(crate) timestamper: Option<crate::timestamping::Timestamper>,
    /// Where the signing key is: key files (the default) or a PKCS #11 token.
    pub(crate) key_store: sv0_signer::KeyStore,
}

impl<L: EventLog + Clone> Queries<L> {
    /// The same queries over other views (a replay's): what a page "as of" a point reads.
    pub fn over(&self, views: Views) -> Queries<L> {
        Queries { data_dir: self.data_dir.clone(), log: self.log.clone(), views }
    }
}

impl<L: EventLog> From<Queries<L>> for Service<L> {
    /// A service over the same log and views as `queries` (which needs a signing key to seal,
    /// unless `without_sealing`).
    fn from(queries: Queries<L>) -> Service<L> {
        Service { queries, signer: None, sealing: true, timestamper: None, key_store: sv0_signer::KeyStore::Files }
    }
}

impl<L: EventLog> std::ops::Deref for Service<L> {
    type Target = Queries<L>;

    fn deref(&self) -> &Queries<L> {
        &self.queries
    }
}

impl Service<EmbeddedLog> {
    /// Opens the embedded log and views in a data directory.
    pub async fn open(root: impl AsRef<Path>) -> Result<Service<EmbeddedLog>, ServiceError> {
        let data_dir = DataDir::create(root)?;
        let log = EmbeddedLog::open_in_mode(data_dir.log_path(), data_dir.is_read_only())?;
        Service::open_with(data_dir, log).await
    }
}

impl<L: EventLog> Queries<L> {
    /// A full scan as a delta of the tenant's latest applied scan (`Views::as_delta`), or the
    /// snapshot unchanged when it cannot be one (no applied scan yet, or a targeted scan).
    pub fn as_delta(&self, snapshot: ValidSnapshot) -> Result<ValidSnapshot, ServiceError> {
        Ok(self.views.as_delta(snapshot)?)
    }
}

impl<L: EventLog> Queries<L> {
    /// The data directory.
    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    /// The log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// Whether the data directory's files are read-only here (an audit replay, a read-only
    /// mount or copy): queries fold in memory, nothing is written.
    pub fn is_read_only(&self) -> bool {
        self.data_dir.is_read_only() || self.views.is_read_only() || self.log.is_read_only()
    }

    /// The views.
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// Brings the views up to the log's head without sealing (for read-only commands).
    pub async fn catch_up(&self) -> Result<Seq, ServiceError> {
        Ok(self.views.catch_up(&self.log, None).await?)
    }

    /// Resolves the tenant to act on: the named one, else the only one the views know.
    pub fn tenant(&self, named: Option<&str>) -> Result<TenantId, ServiceError> {
        if let Some(name) = named {
            return Ok(TenantId::new(name)?);
        }
        let tenants = self.views.tenants()?;
        match tenants.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ServiceError::Tenant(
                "no tenant has been scanned yet. Import a snapshot with `sv0 scan import FILE`".to_string(),
            )),
            many => Err(ServiceError::Tenant(format!(
                "several tenants are known ({}). Name one with --tenant",
                many.iter().map(TenantId::as_str).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The delta of a scope against its latest baseline, with the verdict.
    pub fn delta(&self, tenant: &TenantId, scope: &Scope) -> Result<DeltaReport, ServiceError> {
        let now = self.scope_now(tenant, scope)?;
        let rego = self.views.rego_state(tenant)?;
        let disposition = sv0_projections::rego::disposition(rego.in_force.as_ref(), &now.input(tenant));
        let flagged_at_deployment = self.views.deployment_flags(tenant, scope)?;
        let verification = delta::verify(now.baseline_version, &now.entries, &flagged_at_deployment);
        let planned_missing = self
            .views
            .baseline(tenant, scope, None)?
            .and_then(|b| b.intent)
            .unwrap_or_default()
            .into_iter()
            .filter(|item| item.planned_by.is_some() && !now.paths.iter().any(|p| item.realized_by(p)))
            .collect();
        Ok(DeltaReport {
            scope: scope.clone(),
            baseline_version: now.baseline_version,
            entries: now.entries,
            verification,
            disposition,
            paths: now.paths,
            findings: now.findings,
            planned_missing,
        })
    }

    /// The input document a Rego disposition policy sees for a scope now (what
    /// `sv0 export opa-input` prints), with the built-in rules' disposition in it.
    pub fn opa_input(&self, tenant: &TenantId, scope: &Scope) -> Result<serde_json::Value, ServiceError> {
        let now = self.scope_now(tenant, scope)?;
        Ok(sv0_projections::rego::input_document(&now.input(tenant)))
    }

    /// Evaluates `rego` against every baselined scope of the tenant as it stands (and an empty
    /// document when none is baselined): the first failure (an error, a time or memory limit)
    /// with the scope it failed on. `sv0 policy set` refuses a policy that fails here.
    pub fn dry_run_policy(
        &self,
        tenant: &TenantId,
        rego: &sv0_domain::policy::RegoPolicy,
    ) -> Result<Result<usize, String>, ServiceError> {
        let heads = self.views.baselines(tenant)?;
        let mut tried = 0;
        for head in &heads {
            let now = self.scope_now(tenant, &head.scope)?;
            let document = sv0_projections::rego::input_document(&now.input(tenant));
            if let Err(why) = sv0_projections::rego::try_policy(rego, &document) {
                return Ok(Err(format!("on scope {}: {why}", head.scope.canonical())));
            }
            tried += 1;
        }
        if heads.is_empty() {
            let builtin = sv0_projections::rego::builtin(&[], &[], None);
            let scope = "all";
            let input = sv0_projections::rego::DispositionInput {
                tenant,
                scope,
                baseline_version: 0,
                paths: &[],
                findings: &[],
                delta: &[],
                verification: None,
                builtin: &builtin,
            };
            if let Err(why) = sv0_projections::rego::try_policy(rego, &sv0_projections::rego::input_document(&input)) {
                return Ok(Err(format!("on an empty tenant: {why}")));
            }
        }
        Ok(Ok(tried))
    }

    /// A scope's findings a delta is judged with: all but the delta's own (undeclared
    /// additions), which are the entries themselves, as the fold does.
    pub(crate) fn judged_findings(&self, tenant: &TenantId, scope: &Scope) -> Result<Vec<FindingRecord>, ServiceError> {
        let mut findings = self.views.findings(tenant, Some(scope))?;
        findings.retain(|r| !sv0_domain::findings::from_delta(&r.finding));
        Ok(findings)
    }

    /// A scope now against its approved baseline.
    fn scope_now(&self, tenant: &TenantId, scope: &Scope) -> Result<ScopeNow, ServiceError> {
        let baseline = self
            .views
            .baseline(tenant, scope, None)?
            .ok_or_else(|| ServiceError::NoBaseline { tenant: tenant.to_string(), scope: scope.canonical() })?;
        let paths = self.views.paths(tenant, Some(scope))?;
        let findings = self.judged_findings(tenant, scope)?;
        let entries = baseline.delta(&paths, &findings);
        let builtin = sv0_projections::rego::builtin(&entries, &paths, None);
        Ok(ScopeNow { scope: scope.canonical(), baseline_version: baseline.version, paths, findings, entries, builtin })
    }

    /// Paths of a tenant (of a scope), now or as the log stood at `as_of`.
    pub async fn paths(
        &self,
        tenant: &TenantId,
        scope: Option<&Scope>,
        as_of: Option<AsOf>,
    ) -> Result<Vec<AuthorityPath>, ServiceError> {
        self.query_paths(tenant, &PathFilter { scope: scope.cloned(), ..PathFilter::default() }, as_of).await
    }

    /// Paths that pass a filter, now or as the log stood at `as_of`; read through the views'
    /// indexes, never by scanning every path of the tenant unless the filter is empty.
    pub async fn query_paths(
        &self,
        tenant: &TenantId,
        filter: &PathFilter,
        as_of: Option<AsOf>,
    ) -> Result<Vec<AuthorityPath>, ServiceError> {
        match as_of {
            None => Ok(self.views.query_paths(tenant, filter)?),
            Some(as_of) => Ok(self.replay(as_of).await?.1.query_paths(tenant, filter)?),
        }
    }

    /// Paths as `query_paths` answers them, with the posture of the filter's scope (when it
    /// names one) as of the same point: what `sv0 paths --scope` shows for `approve --posture`.
    pub async fn query_paths_with_posture(
        &self,
        tenant: &TenantId,
        filter: &PathFilter,
        as_of: Option<AsOf>,
    ) -> Result<(Vec<AuthorityPath>, Option<Posture>), ServiceError> {
        let replayed;
        let views = match as_of {
            None => &self.views,
            Some(as_of) => {
                replayed = self.replay(as_of).await?.1;
                &replayed
            }
        };
        let paths = views.query_paths(tenant, filter)?;
        let posture = filter.scope.as_ref().map(|scope| posture_of(views, tenant, scope)).transpose()?;
        Ok((paths, posture))
    }

    /// Findings of a tenant (of a scope), open and resolved.
    pub fn findings(&self, tenant: &TenantId, scope: Option<&Scope>) -> Result<Vec<FindingRecord>, ServiceError> {
        Ok(self.views.findings(tenant, scope)?)
    }

    /// About the `n` latest signals of the tenant, in log order: the latest assessments, newest
    /// first, until `n` signals are found, each with the last `n` of the findings it opened and
    /// resolved — never the tenant's whole history (a first scan opens thousands).
    pub fn latest_signals(&self, tenant: &TenantId, n: usize) -> Result<Vec<Signal>, ServiceError> {
        let mut out: Vec<Signal> = Vec::new();
        for assessment in self.views.latest_assessments(tenant, n)? {
            let mut findings = std::collections::BTreeMap::new();
            if let Some(scan) = &assessment.scan {
                // The tail of an assessment's signals holds at most the last `n` of each list.
                for id in scan.findings.opened.iter().rev().take(n).chain(scan.findings.resolved.iter().rev().take(n)) {
                    if let Some(record) = self.views.finding(tenant, id)? {
                        findings.insert(id.clone(), record);
                    }
                }
            }
            let signals = signals_for(&assessment, &findings);
            out.extend(
                signals
                    .into_iter()
                    .filter(|s| !s.signal_type.name().starts_with("finding.") || findings.contains_key(&s.subject)),
            );
            if out.len() >= n {
                break;
            }
        }
        out.sort_by_key(|s| s.assessed_seq);
        let skip = out.len().saturating_sub(n);
        Ok(out.split_off(skip))
    }

    /// The signals of every assessment after log position `after`, in log order.
    pub fn signals_after(&self, tenant: Option<&TenantId>, after: Seq) -> Result<Vec<Signal>, ServiceError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => self.views.tenants()?,
        };
        let mut out = Vec::new();
        for tenant in tenants {
            let assessments = self.views.assessments_after(&tenant, after)?;
            if assessments.is_empty() {
                continue;
            }
            let findings =
                self.views.findings(&tenant, None)?.into_iter().map(|r| (r.finding.finding_id.clone(), r)).collect();
            for assessment in &assessments {
                out.extend(signals_for(assessment, &findings));
            }
        }
        out.sort_by_key(|s| s.assessed_seq);
        Ok(out)
    }
}

impl<L: EventLog> Service<L> {
    /// Opens the data directory's views over `log`, refusing views folded from another log.
    /// The views are as the last command left them: `catch_up` or `sync` brings them up to date.
    pub async fn open_with(data_dir: DataDir, log: L) -> Result<Service<L>, ServiceError> {
        let views = Views::open_with(data_dir.views_path(), data_dir.is_read_only())?;
        if !views.is_read_only() {
            data_dir.restrict_files()?;
        }
        views.bind_log(&log.identity().await?)?;
        Ok(Service::with_parts(data_dir, log, views))
    }

    /// Assembles a service from an open log and views.
    pub fn with_parts(data_dir: DataDir, log: L, views: Views) -> Service<L> {
        Service::from(Queries { data_dir, log, views })
    }

    /// Folds only `shard`'s tenants from now on (recorded in the views; views that fold other
    /// tenants are refused).
    pub fn bind_shard(&self, shard: &sv0_projections::Shard) -> Result<(), ServiceError> {
        Ok(self.views.bind_shard(Some(shard))?)
    }

    /// Leaves sealing to a separate signer process (`sv0 sign`): commands append and fold but
    /// never seal, and need no signing key.
    pub fn without_sealing(mut self) -> Service<L> {
        self.sealing = false;
        self
    }

    /// Keeps the signing key in `store` (`[signing]`: a PKCS #11 token) instead of key files.
    pub fn with_key_store(mut self, store: sv0_signer::KeyStore) -> Service<L> {
        self.key_store = store;
        self.signer = None;
        self
    }

    /// After each sealing round, asks this TSA for a token over every tenant's new checkpoint
    /// (`[timestamping]`); a TSA that fails delays the tokens, never the packs.
    pub fn with_timestamping(mut self, timestamper: crate::timestamping::Timestamper) -> Service<L> {
        self.timestamper = Some(timestamper);
        self
    }

    /// Brings the views up to the log's head, seals every pending assessment, and brings the
    /// views up to the new head (which now holds the packs).
    pub async fn sync(&mut self) -> Result<Seq, ServiceError> {
        self.views.catch_up(&self.log, None).await?;
        if self.sealing {
            self.seal_pending().await?;
        }
        Ok(self.views.catch_up(&self.log, None).await?)
    }

    /// `sync` after a command appended up to `last_seq`: a failure says the events are on the log.
    pub(crate) async fn sync_after(&mut self, last_seq: Seq) -> Result<Seq, ServiceError> {
        self.sync().await.map_err(|source| ServiceError::NotApplied { last_seq, source: Box::new(source) })
    }

    /// Catches the views up for a query. When the views cannot be written here (a full disk,
    /// an I/O error), they are reopened read-only and the fold runs in memory, so the answer is
    /// still current (`Freshness::InMemory`); if even that fails, the query answers from the
    /// views as they stand (`Freshness::Behind`). Damage and an unreadable log are errors as
    /// ever.
    pub async fn catch_up_for_query(&mut self) -> Result<Freshness, ServiceError> {
        let mut saved_why = None;
        loop {
            match self.views.catch_up(&self.log, None).await {
                Ok(_) => return Ok(saved_why.map_or(Freshness::Current, Freshness::InMemory)),
                Err(e) if e.is_write_failure() && !self.views.is_read_only() => {
                    info!(error = %e, "the views cannot be written here; folding in memory");
                    self.reopen_views_read_only().await?;
                    saved_why = Some(e.into());
                }
                Err(e) if e.is_write_failure() => {
                    let behind = self.log.head().await?.saturating_sub(self.views.checkpoint()?);
                    return Ok(Freshness::Behind { behind, why: e.into() });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Swaps the views for a read-only open of their file (`sv0_log::file::ReadOnlyOverlay`:
    /// what is folded stays in memory), and stops sealing: for when the views cannot be
    /// written here.
    async fn reopen_views_read_only(&mut self) -> Result<(), ServiceError> {
        // The file is closed before it is opened again (its lock is this process's).
        drop(std::mem::replace(&mut self.queries.views, Views::in_memory()?));
        let views = Views::open_with(self.data_dir.views_path(), true)?;
        views.bind_log(&self.log.identity().await?)?;
        self.queries.views = views;
        self.sealing = false;
        Ok(())
    }

    /// Validates a snapshot and appends its scan; nothing is appended if anything is wrong.
    pub async fn import_snapshot(
        &mut self,
        json: &[u8],
        trigger: Option<ScanTrigger>,
    ) -> Result<ImportReport, ServiceError> {
        self.import_parsed(parse_snapshot(json)?, trigger, None).await
    }

    /// `import_snapshot` of a snapshot pushed through the API by `by`: its events record who.
    pub async fn import_pushed(
        &mut self,
        json: &[u8],
        trigger: Option<ScanTrigger>,
        by: &sv0_domain::events::Actor,
    ) -> Result<ImportReport, ServiceError> {
        self.import_parsed(parse_snapshot(json)?, trigger, Some(by)).await
    }

    /// `import_snapshot` of a snapshot already parsed and validated (so that a caller holding
    /// a large file can free its bytes before the scan is folded).
    pub async fn import_parsed(
        &mut self,
        mut snapshot: ValidSnapshot,
        trigger: Option<ScanTrigger>,
        pushed_by: Option<&sv0_domain::events::Actor>,
    ) -> Result<ImportReport, ServiceError> {
        let tenant = snapshot.tenant.clone();
        let observed = snapshot.scan.observed_at;
        // Views that fold a shard would append a scan they then never fold.
        if let Some(shard) = self.views.shard()?.filter(|s| !s.keeps(tenant.as_str())) {
            return Err(sv0_domain::InvalidInput::new(format!(
                "this data directory's views fold {shard}, which does not hold tenant {tenant}: import it where that tenant is folded"
            ))
            .into());
        }
        let delta = snapshot.scan.coverage.as_ref().and_then(|c| c.base_scan.clone());
        let outside = std::mem::take(&mut snapshot.outside);
        let scans = self.views.scans(&tenant)?;
        let duplicate_of = |known: &ScanRecord, chunk_count, entity_count| ImportReport {
            tenant: tenant.clone(),
            scan_id: known.scan_id.clone(),
            duplicate: true,
            first_seq: known.completed_seq,
            last_seq: known.completed_seq,
            chunk_count,
            entity_count,
            scan: Some(known.clone()),
        };
        // An empty delta at its base's time says nothing new: like a duplicate, it appends nothing.
        if let Some(base) = delta.as_deref().filter(|_| snapshot.entities.is_empty())
            && let Some(state) = self.views.tenant_state(&tenant)?
            && state.last_scan_id == base
            && state.last_observed_at == observed
            && let Some(known) = scans.iter().find(|r| r.scan_id == base)
        {
            return Ok(duplicate_of(known, 0, 0));
        }
        let scan = scan_events(snapshot, trigger, self.log.max_event_size(), pushed_by)?;
        // A scan already folded is not appended again, even after the log's deduplication
        // window (JetStream's) has passed.
        if let Some(known) = scans.iter().find(|r| r.scan_id == scan.scan_id) {
            return Ok(duplicate_of(known, scan.chunk_count, scan.entity_count));
        }
        // Time only moves forward: a scan observed before the tenant's latest would rewrite
        // what SV0 knew then, and one from the future (pushed from elsewhere) would age every
        // grade and credential at once.
        let latest = scans.iter().filter_map(|s| s.observed_at).max();
        if let Some(latest) = latest
            && observed < latest
        {
            return Err(sv0_domain::InvalidInput::new(format!(
                "scan {} was observed at {}, before the tenant's latest scan ({}): a scan of the past cannot be imported after a newer one",
                scan.scan_id,
                observed.to_rfc3339(),
                latest.to_rfc3339()
            ))
            .into());
        }
        if pushed_by.is_some() && observed.0 > Timestamp::now().0 + MAX_FUTURE_SKEW_MS {
            return Err(sv0_domain::InvalidInput::new(format!(
                "scan {} says it was observed at {}, more than 5 minutes after this server's clock ({})",
                scan.scan_id,
                observed.to_rfc3339(),
                Timestamp::now().to_rfc3339()
            ))
            .into());
        }
        if let Some(base) = &delta {
            self.check_delta(&tenant, &scan.scan_id, base, outside)?;
        }
        // The scan will be sealed: make sure the key is usable before anything is appended.
        if self.sealing {
            self.signer()?;
        }
        let subject = format!("{tenant}.scan");
        let appended = self.log.append(&subject, Expected::Any, scan.events).await?;
        let duplicate = appended.duplicates == appended.positions.len();
        info!(%tenant, scan_id = %scan.scan_id, duplicate, last_seq = appended.last(), "scan appended");
        self.sync_after(appended.last()).await?;
        let mut record = self.views.scans(&tenant)?.into_iter().find(|r| r.scan_id == scan.scan_id);
        if let Some(held) = record.as_ref().filter(|r| r.status == sv0_projections::ScanStatus::Quarantined) {
            self.record_quarantine(&tenant, held).await?;
            record = self.views.scans(&tenant)?.into_iter().find(|r| r.scan_id == scan.scan_id);
        }
        Ok(ImportReport {
            tenant,
            scan_id: scan.scan_id,
            duplicate,
            first_seq: appended.positions.iter().copied().min().unwrap_or(0),
            last_seq: appended.last(),
            chunk_count: scan.chunk_count,
            entity_count: scan.entity_count,
            scan: record,
        })
    }

    /// A delta scan applies to its base only: that base must be the tenant's latest applied
    /// scan, and every entity the delta refers to and does not hold must be in the views.
    fn check_delta(
        &self,
        tenant: &TenantId,
        scan_id: &str,
        base: &str,
        outside: Vec<sv0_domain::snapshot::Reference>,
    ) -> Result<(), ServiceError> {
        let latest = self.views.tenant_state(tenant)?.map(|s| s.last_scan_id).filter(|id| !id.is_empty());
        if latest.as_deref() != Some(base) {
            let why = match latest {
                Some(latest) => format!(
                    "scan {scan_id} is a delta of scan {base}, but the tenant's latest applied scan is {latest}: send a full scan, or a delta of {latest}"
                ),
                None => format!(
                    "scan {scan_id} is a delta of scan {base}, but no scan of tenant {tenant} has been applied: the first scan is a full one"
                ),
            };
            return Err(sv0_domain::InvalidInput::new(why).into());
        }
        // Each distinct target once (named by its first reference), all in one read transaction.
        let mut targets = std::collections::BTreeMap::new();
        for reference in &outside {
            targets.entry((reference.list, reference.id.as_str())).or_insert(reference);
        }
        let missing = self.views.missing_entities(tenant, targets.keys().copied())?;
        let unknown: Vec<String> = missing
            .iter()
            .map(|target| {
                let reference = targets[target];
                format!(
                    "{} refers to {:?}, which is in neither the delta nor the tenant's {}",
                    reference.from,
                    reference.id,
                    reference.list.name()
                )
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let shown = unknown.len().min(20);
        let more = unknown.len() - shown;
        let mut text = unknown[..shown].join("; ");
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        Err(sv0_domain::InvalidInput::new(format!("scan {scan_id} is not a valid delta: {text}")).into())
    }

    /// Follows the log until `shutdown` completes: folds new events into the views as they are
    /// appended (in batches of what is ready) and, with `seal`, seals every new assessment.
    /// Calls `progress` with the views' position after each step. A lost connection to the log
    /// is retried from the views' checkpoint, so the process can be killed and restarted, and
    /// the log's servers restarted, at any moment; other failures end the loop.
    pub async fn follow(
        &mut self,
        seal: bool,
        signals: Option<&impl SignalSink>,
        mut progress: impl FnMut(Seq),
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServiceError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let failure = match self.follow_once(seal, signals, &mut progress, &mut shutdown).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            warn!(error = %failure, "the log is unreachable; retrying in 1 s");
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// One subscription's worth of `follow`; returns `Ok` only on shutdown.
    async fn follow_once(
        &mut self,
        seal: bool,
        signals: Option<&impl SignalSink>,
        progress: &mut impl FnMut(Seq),
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), ServiceError> {
        use futures::{FutureExt, StreamExt};
        // Everything after the checkpoint arrives through the subscription, batch by batch, so
        // progress is reported as the views advance, from the first batch on.
        let mut checkpoint = self.views.checkpoint()?;
        progress(checkpoint);
        if seal {
            self.seal_pending().await?;
        }
        if let Some(sink) = signals {
            self.publish_signals(sink).await?;
        }
        let mut records = self.log.subscribe(checkpoint + 1);
        // A subscription can stall without an error (a server that dropped a slow consumer's
        // messages, a consumer lost in a leader change): every `STALL_CHECK` without a record,
        // the log's head is asked, and a head past the views means resubscribing from the
        // checkpoint (a transient error, which `follow` retries).
        let mut watchdog = tokio::time::interval_at(tokio::time::Instant::now() + STALL_CHECK, STALL_CHECK);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether no record arrived since the last tick.
        let mut quiet = true;
        loop {
            let first = tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                next = records.next() => next,
                _ = watchdog.tick() => {
                    if !std::mem::replace(&mut quiet, true) {
                        continue;
                    }
                    let head = self.log.head().await?;
                    if head > checkpoint {
                        return Err(ServiceError::Read(sv0_log::ReadError::Backend(sv0_log::BackendError::msg(
                            format!("the subscription stalled at position {checkpoint} while the log holds {head}"),
                        ))));
                    }
                    continue;
                }
            };
            quiet = false;
            let mut batch = match first {
                Some(record) => vec![record?],
                None => {
                    return Err(ServiceError::Read(sv0_log::ReadError::Backend(sv0_log::BackendError::msg(
                        "the subscription ended",
                    ))));
                }
            };
            while batch.len() < sv0_projections::BATCH_EVENTS {
                match records.next().now_or_never() {
                    Some(Some(record)) => batch.push(record?),
                    _ => break,
                }
            }
            // A record delivered again (a redelivery after a reconnect) was applied already.
            batch.retain(|record| record.seq > checkpoint);
            if batch.is_empty() {
                continue;
            }
            let views = self.views.clone();
            checkpoint = tokio::task::spawn_blocking(move || views.apply(&batch))
                .await
                .map_err(|e| ServiceError::Views(sv0_projections::ProjectionError::Worker(e.to_string())))??;
            if seal {
                self.seal_pending().await?;
            }
            if let Some(sink) = signals {
                self.publish_signals(sink).await?;
            }
            progress(checkpoint);
        }
    }

    /// Publishes the signals of assessments not yet published, then moves the cursor: a crash
    /// in between republishes them with the same ids, which the sink deduplicates.
    pub async fn publish_signals(&mut self, sink: &impl SignalSink) -> Result<usize, ServiceError> {
        let cursor = self.views.signal_cursor()?;
        let checkpoint = self.views.checkpoint()?;
        if checkpoint <= cursor {
            return Ok(0);
        }
        let signals = self.signals_after(None, cursor)?;
        sink.publish(&signals).await?;
        self.views.set_signal_cursor(checkpoint)?;
        Ok(signals.len())
    }
}

/// How long a following process waits without a record before it asks whether the log moved on.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(10);
