//! `Service`: the one entry point the CLI (and later the API) drives. It appends commands'
//! events to the log, keeps the views caught up, seals assessments into packs and answers
//! queries.

use std::collections::BTreeSet;
use std::path::Path;

use sv0_codec::decode_event;
use sv0_domain::delta::{self, DeltaEntry};
use sv0_domain::events::{Acknowledgement, ApprovalRecorded, Event, EventMeta, EventPayload, PackSealed, derived_id};
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{ScanTrigger, ValidSnapshot};
use sv0_domain::{EventId, TenantId, Timestamp};
use sv0_log::{AppendError, EmbeddedLog, EventLog, Expected, Seq};
use sv0_projections::{Baseline, FindingRecord, FindingStatus, PathFilter, ScanRecord, Views};
use sv0_signer::{ChainLink, KeyRing, PackFile, PackSigner};
use tracing::{info, warn};

use crate::any_log::{AnyLog, LogTarget};
use crate::data_dir::DataDir;
use crate::error::ServiceError;
use crate::import::{Reassembler, log_records, parse_snapshot, scan_events};
use crate::signals::{Signal, SignalSink, signals_for};
use crate::verify::Freshness;
use crate::verify::{LogVerdict, RecordedChain, VerifyMode, verify_chains};

/// Attempts at sealing when another signer keeps winning the race.
pub(crate) const SEAL_ATTEMPTS: usize = 5;

/// A point in the log's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// A log position.
    Position(Seq),
    /// A time: the log as it stood then.
    Time(Timestamp),
}

/// What a log covers (`Service::coverage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The log's head (positions 1 to head).
    pub head: Seq,
    /// Recording times of its first and last records.
    pub recorded: Option<(Timestamp, Timestamp)>,
    /// Observation times of the earliest and latest scans on it.
    pub observed: Option<(Timestamp, Timestamp)>,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.recorded {
            Some((first, last)) => write!(f, "The log holds positions 1 to {}, recorded {first} to {last}", self.head)?,
            None => f.write_str("The log is empty")?,
        }
        if let Some((first, last)) = self.observed {
            write!(f, "; its scans were observed {first} to {last}")?;
        }
        Ok(())
    }
}

impl AsOf {
    /// Parses a log position (digits) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<AsOf, ServiceError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let seq =
                text.parse().map_err(|_| sv0_domain::InvalidInput::new(format!("log position {text} is too large")))?;
            return Ok(AsOf::Position(seq));
        }
        Ok(AsOf::Time(Timestamp::parse(text)?))
    }
}

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

/// What an approval recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalReport {
    /// The new baseline.
    pub baseline: Baseline,
    /// Its log position.
    pub seq: Seq,
}

/// What an approver reviewed: a posture digest, and the log position it stood at when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// `sha256:...` as a posture read gave it.
    pub digest: String,
    /// The log position of that read.
    pub position: Option<u64>,
}

impl Reviewed {
    /// Parses `sha256:<hex>` or `sha256:<hex>@<position>` (as `sv0 review` prints it).
    pub fn parse(text: &str) -> Result<Reviewed, sv0_domain::InvalidInput> {
        let (digest, position) = match text.trim().split_once('@') {
            Some((d, p)) => (
                d,
                Some(p.parse::<u64>().map_err(|_| {
                    sv0_domain::InvalidInput::new(format!("posture {text:?}: the part after @ is not a log position"))
                })?),
            ),
            None => (text.trim(), None),
        };
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(sv0_domain::InvalidInput::new(format!(
                "posture {text:?} is not a posture digest such as sha256:<64 hex digits> (see `sv0 review --scope ...`)"
            )));
        }
        Ok(Reviewed { digest: digest.to_string(), position })
    }
}

/// An approval as a person asks for it.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Their notes.
    pub note: String,
    /// Findings accepted with a due date.
    pub acknowledged: Vec<Acknowledgement>,
    /// The additions the deployment declares.
    pub intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// The posture they reviewed; the approval is refused if the posture has changed since.
    pub posture: Option<Reviewed>,
    /// Who approves, as they authenticated: the baseline's approver is its principal.
    pub by: sv0_domain::events::Actor,
    /// The digest of the plan the intent was predicted from.
    pub plan_digest: Option<String>,
    /// Record a new version even when it would lock exactly what the baseline in force locks.
    pub force: bool,
}

/// What an approval would lock (`Service::plan_approval`), checked as the approval itself is.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalPlan {
    /// The scope (canonical).
    pub scope: String,
    /// The baseline version it would record.
    pub version: u32,
    /// The posture it would lock and the log position it stands at.
    pub posture_digest: String,
    /// The log position.
    pub posture_seq: Seq,
    /// The paths it would lock.
    pub paths: Vec<AuthorityPath>,
    /// Findings acknowledged, with their due dates.
    pub acknowledged: Vec<Acknowledgement>,
    /// Open findings of the scope it would leave unacknowledged.
    pub unacknowledged: Vec<sv0_projections::FindingRecord>,
    /// Additions declared as intended (`None`: no intent).
    pub intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// Ids of every open finding of the scope (what the baseline records as open).
    #[serde(skip)]
    pub open_findings: Vec<String>,
    /// The log position of the approval of the baseline in force, if any: the append expects
    /// it to be the scope's last approval.
    #[serde(skip)]
    pub head_approval_seq: Option<u64>,
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

/// A scope's posture now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    /// The scope.
    pub scope: Scope,
    /// `paths::posture_digest` of the paths and open findings.
    pub digest: String,
    /// The log position the views stand at.
    pub position: u64,
    /// The scope's paths.
    pub paths: Vec<AuthorityPath>,
    /// Ids of its open findings, sorted.
    pub open_findings: Vec<String>,
}

/// The posture of a scope in `views`: its paths, its open findings, their digest and the log
/// position the views stand at.
pub fn posture_of(views: &Views, tenant: &TenantId, scope: &Scope) -> Result<Posture, ServiceError> {
    let position = views.checkpoint()?;
    let paths = views.paths(tenant, Some(scope))?;
    let open_findings: Vec<String> = views
        .findings(tenant, Some(scope))?
        .into_iter()
        .filter(|r| r.status == FindingStatus::Open)
        .map(|r| r.finding.finding_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let digest = sv0_domain::paths::posture_digest(&paths, open_findings.iter().map(String::as_str));
    Ok(Posture { scope: scope.clone(), digest, position, paths, open_findings })
}

/// What `replay_to_dir` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The last log position copied and folded.
    pub until: Seq,
    /// Tenants in the replay.
    pub tenants: usize,
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

/// The SV0 service over one log and one set of views.
pub struct Service<L: EventLog> {
    pub(crate) data_dir: DataDir,
    pub(crate) log: L,
    pub(crate) views: Views,
    pub(crate) signer: Option<PackSigner>,
    pub(crate) sealing: bool,
}

impl Service<EmbeddedLog> {
    /// Opens the embedded log and views in a data directory.
    pub async fn open(root: impl AsRef<Path>) -> Result<Service<EmbeddedLog>, ServiceError> {
        let data_dir = DataDir::create(root)?;
        let log = EmbeddedLog::open_in_mode(data_dir.log_path(), data_dir.is_read_only())?;
        Service::open_with(data_dir, log).await
    }
}

impl Service<AnyLog> {
    /// Opens the log `target` names (the embedded one lives in the data directory) and the
    /// data directory's views.
    pub async fn open_target(root: impl AsRef<Path>, target: &LogTarget) -> Result<Service<AnyLog>, ServiceError> {
        let data_dir = DataDir::create(root)?;
        let log = AnyLog::open(target, &data_dir.log_path(), data_dir.is_read_only()).await?;
        Service::open_with(data_dir, log).await
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
        Service { data_dir, log, views, signer: None, sealing: true }
    }

    /// Leaves sealing to a separate signer process (`sv0 sign`): commands append and fold but
    /// never seal, and need no signing key.
    pub fn without_sealing(mut self) -> Service<L> {
        self.sealing = false;
        self
    }

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

    /// Brings the views up to the log's head without sealing (for read-only commands).
    pub async fn catch_up(&self) -> Result<Seq, ServiceError> {
        Ok(self.views.catch_up(&self.log, None).await?)
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
        drop(std::mem::replace(&mut self.views, Views::in_memory()?));
        let views = Views::open_with(self.data_dir.views_path(), true)?;
        views.bind_log(&self.log.identity().await?)?;
        self.views = views;
        self.sealing = false;
        Ok(())
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
        snapshot: ValidSnapshot,
        trigger: Option<ScanTrigger>,
        pushed_by: Option<&sv0_domain::events::Actor>,
    ) -> Result<ImportReport, ServiceError> {
        let tenant = snapshot.tenant.clone();
        let observed = snapshot.scan.observed_at;
        let scan = scan_events(snapshot, trigger, self.log.max_event_size(), pushed_by)?;
        // A scan already folded is not appended again, even after the log's deduplication
        // window (JetStream's) has passed.
        if let Some(known) = self.views.scans(&tenant)?.into_iter().find(|r| r.scan_id == scan.scan_id) {
            return Ok(ImportReport {
                tenant,
                scan_id: scan.scan_id,
                duplicate: true,
                first_seq: known.completed_seq,
                last_seq: known.completed_seq,
                chunk_count: scan.chunk_count,
                entity_count: scan.entity_count,
                scan: Some(known),
            });
        }
        // Time only moves forward: a scan observed before the tenant's latest would rewrite
        // what SV0 knew then, and one from the future (pushed from elsewhere) would age every
        // grade and credential at once.
        let latest = self.views.scans(&tenant)?.iter().filter_map(|s| s.observed_at).max();
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

    /// Records an approval of a scope's current posture by `approver` at `approved_at`.
    pub async fn approve(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        note: &str,
        acknowledged: Vec<Acknowledgement>,
        approver: &str,
        approved_at: Timestamp,
    ) -> Result<ApprovalReport, ServiceError> {
        let request = Approval {
            note: note.to_string(),
            acknowledged,
            intent: None,
            posture: None,
            by: sv0_domain::events::Actor::host(approver),
            plan_digest: None,
            force: false,
        };
        self.approve_with(tenant, scope, request, approved_at).await
    }

    /// The posture of a scope now: its paths, its open findings, their digest and the log
    /// position they stand at.
    pub fn posture(&self, tenant: &TenantId, scope: &Scope) -> Result<Posture, ServiceError> {
        posture_of(&self.views, tenant, scope)
    }

    /// Records an approval of a scope's posture as a new baseline version: refused when the
    /// posture is no longer the one the approver reviewed (`request.posture`), with the
    /// additions the deployment declared (`request.intent`).
    pub async fn approve_with(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        request: Approval,
        approved_at: Timestamp,
    ) -> Result<ApprovalReport, ServiceError> {
        let approver = request.by.principal.as_str();
        if self.sealing {
            self.signer()?;
        }
        let plan = self.plan_approval(tenant, scope, &request, approved_at).await?;
        let expected = plan.head_approval_seq.map_or(Expected::NoEvents, Expected::LastSeq);
        let ApprovalPlan { version, posture_digest: digest, posture_seq, paths, acknowledged, open_findings, .. } =
            plan;
        let scope_key = scope.key();
        let event = Event {
            meta: EventMeta {
                event_id: derived_id("sv0.approval.v1", tenant, &[scope_key.as_bytes(), &version.to_be_bytes()]),
                tenant_id: tenant.clone(),
                occurred_at: approved_at,
                actor: request.by.actor.clone(),
                causation_id: None,
                correlation_id: None,
                credential: request.by.credential.clone(),
            },
            payload: EventPayload::ApprovalRecorded(ApprovalRecorded {
                scope: scope.clone(),
                baseline_version: version,
                approver: approver.to_string(),
                note: request.note.clone(),
                acknowledged,
                posture_seq,
                paths,
                open_findings,
                posture_digest: Some(digest),
                intent: request.intent.clone(),
                plan_digest: request.plan_digest.clone(),
            }),
        };
        let subject = format!("{tenant}.approval.{scope_key}");
        let records = log_records(&event, self.log.max_event_size())?;
        let appended = match self.log.append(&subject, expected, records).await {
            Ok(appended) => appended,
            Err(AppendError::Conflict { .. }) => {
                return Err(ServiceError::Conflict(format!(
                    "another approval of scope {} was recorded first. Review the posture again and approve the new baseline",
                    scope.canonical()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if appended.duplicates > 0 {
            return Err(ServiceError::Conflict(format!(
                "baseline v{version} of scope {} was already approved",
                scope.canonical()
            )));
        }
        self.sync_after(appended.last()).await?;
        let baseline = self
            .views
            .baseline(tenant, scope, Some(version))?
            .ok_or_else(|| ServiceError::Conflict("the approval was not applied".to_string()))?;
        info!(%tenant, scope = %scope, version, approver, "baseline approved");
        Ok(ApprovalReport { baseline, seq: appended.last() })
    }

    /// What approving `request` would lock, with every check the approval makes: a note, a
    /// scope with paths, the posture reviewed (when given), acknowledgements of open findings
    /// due no earlier than the day of the approval, and something new to lock (unless
    /// `request.force`). Appends nothing (`approve --dry-run`).
    pub async fn plan_approval(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        request: &Approval,
        approved_at: Timestamp,
    ) -> Result<ApprovalPlan, ServiceError> {
        if request.note.trim().is_empty() {
            return Err(ServiceError::Input(sv0_domain::InvalidInput::new(
                "an approval needs a note: what was reviewed, and why it is acceptable",
            )));
        }
        refuse_past_dues(&request.acknowledged, approved_at)?;
        if let Some(intent) = &request.intent {
            sv0_domain::intent::validate(intent)?;
        }
        let posture_seq = self.sync().await?;
        let Posture { paths, open_findings, digest, .. } = self.posture(tenant, scope)?;
        if paths.is_empty() {
            return Err(ServiceError::EmptyScope { tenant: tenant.to_string(), scope: scope.canonical() });
        }
        if let Some(reviewed) = &request.posture
            && reviewed.digest != digest
        {
            return Err(ServiceError::PostureChanged {
                scope: scope.canonical(),
                reviewed: reviewed.digest.clone(),
                current: digest,
                position: posture_seq,
                changes: self.changes_since(tenant, reviewed.position)?,
            });
        }
        let open: BTreeSet<String> = open_findings.into_iter().collect();
        for ack in &request.acknowledged {
            if !open.contains(&ack.finding_id) {
                return Err(ServiceError::UnknownFinding {
                    finding_id: ack.finding_id.clone(),
                    scope: scope.canonical(),
                });
            }
        }
        let mut acknowledged = request.acknowledged.clone();
        acknowledged.sort();
        let head = self.views.baseline(tenant, scope, None)?;
        if let Some(head) = &head
            && !request.force
            && head.posture_digest.as_deref() == Some(digest.as_str())
            && head.acknowledged == acknowledged
            && head.intent == request.intent
        {
            return Err(ServiceError::Conflict(format!(
                "scope {} is already approved exactly so: baseline v{} locks this posture ({digest}) with the same \
                 acknowledgements and intent. Nothing was recorded; approve with --force (API: \"force\": true) to \
                 record a new version anyway",
                scope.canonical(),
                head.version
            )));
        }
        let acked: BTreeSet<&str> = acknowledged.iter().map(|a| a.finding_id.as_str()).collect();
        let unacknowledged = self
            .views
            .findings(tenant, Some(scope))?
            .into_iter()
            .filter(|r| open.contains(&r.finding.finding_id) && !acked.contains(r.finding.finding_id.as_str()))
            .collect();
        Ok(ApprovalPlan {
            scope: scope.canonical(),
            version: head.as_ref().map_or(1, |b| b.version + 1),
            posture_digest: digest,
            posture_seq,
            paths,
            acknowledged,
            unacknowledged,
            intent: request.intent.clone(),
            open_findings: open.into_iter().collect(),
            head_approval_seq: head.as_ref().map(|b| b.approval_seq),
        })
    }

    /// What changed the tenant's posture after log position `since` (when known), in words
    /// for a refusal: the scans applied since, newest last; without a position, the latest.
    fn changes_since(&self, tenant: &TenantId, since: Option<u64>) -> Result<String, ServiceError> {
        let mut scans: Vec<ScanRecord> =
            self.views.scans(tenant)?.into_iter().filter(|s| s.applied_seq.is_some()).collect();
        scans.sort_by_key(|s| s.applied_seq);
        let described = |s: &ScanRecord| {
            format!(
                "scan {} ({}{}) at log position {}",
                s.scan_id,
                s.trigger.map(|t| t.as_str()).unwrap_or("manual"),
                s.observed_at.map(|t| format!(", observed {}", t.to_rfc3339())).unwrap_or_default(),
                s.applied_seq.unwrap_or_default()
            )
        };
        Ok(match since {
            Some(position) => {
                let after: Vec<String> =
                    scans.iter().filter(|s| s.applied_seq.is_some_and(|a| a > position)).map(described).collect();
                if after.is_empty() {
                    format!("; since log position {position} the tenant's policy or findings changed")
                } else {
                    format!("; applied since log position {position}: {}", after.join(", "))
                }
            }
            None => scans.last().map(|s| format!("; the latest change: {}", described(s))).unwrap_or_default(),
        })
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

    /// Views folded, in memory, from the log up to a point; returns the position reached.
    pub async fn replay(&self, as_of: AsOf) -> Result<(Seq, Views), ServiceError> {
        let until = self.position_of(as_of).await?;
        let views = Views::in_memory()?;
        let reached = views.catch_up(&self.log, Some(until)).await?;
        Ok((reached, views))
    }

    /// The log position an `as_of` names (the last event recorded at or before a time). "As
    /// of" is the log's recording time: what SV0 knew then, not when the scans were observed. A
    /// time before the log's first record, or a position that is not on the log, selects
    /// nothing and is refused, with what the log covers.
    pub async fn position_of(&self, as_of: AsOf) -> Result<Seq, ServiceError> {
        let head = self.log.head().await?;
        let refuse = |what: String, coverage: Coverage| {
            ServiceError::Input(sv0_domain::InvalidInput::new(format!(
                "{what}. {coverage}. `--as-of` and `--until` take the log's recording time (what SV0 \
                 knew when) or a log position, not the time a scan was observed"
            )))
        };
        match as_of {
            AsOf::Position(seq) if (1..=head).contains(&seq) => Ok(seq),
            AsOf::Position(seq) => Err(refuse(
                format!("log position {seq} is not on the log (positions 1 to {head})"),
                self.coverage().await?,
            )),
            AsOf::Time(time) => match self.log.seq_at(time.0).await? {
                0 => Err(refuse(
                    format!("{time} is before the log's first record: SV0 knew nothing then"),
                    self.coverage().await?,
                )),
                seq => Ok(seq),
            },
        }
    }

    /// What the log covers: its positions, their recording times, and the observation times
    /// of the scans on it.
    pub async fn coverage(&self) -> Result<Coverage, ServiceError> {
        let head = self.log.head().await?;
        let time_at = |seq: Seq| async move {
            Ok::<_, ServiceError>(self.log.read(seq, Some(seq), 1).await?.first().map(|r| Timestamp(r.recorded_at)))
        };
        let recorded = match (time_at(1).await?, time_at(head).await?) {
            (Some(first), Some(last)) if head > 0 => Some((first, last)),
            _ => None,
        };
        let mut observed: Option<(Timestamp, Timestamp)> = None;
        for tenant in self.views.tenants()? {
            for at in self.views.scans(&tenant)?.iter().filter_map(|s| s.observed_at) {
                observed = Some(observed.map_or((at, at), |(lo, hi)| (lo.min(at), hi.max(at))));
            }
        }
        Ok(Coverage { head, recorded, observed })
    }

    /// Replaces the views with the log's prefix up to `as_of`, folded in memory, for the rest
    /// of this service's life: every query then answers as of that point (and nothing is
    /// sealed). Returns the position reached.
    pub async fn travel_to(&mut self, as_of: AsOf) -> Result<Seq, ServiceError> {
        let (reached, views) = self.replay(as_of).await?;
        self.views = views;
        self.sealing = false;
        Ok(reached)
    }

    /// An audit replay of one tenant up to log position `until`: in-memory views folded from
    /// that tenant's subjects only (the work grows with the tenant's history, not the log's).
    pub async fn replay_tenant(&self, tenant: &TenantId, until: Seq) -> Result<Views, ServiceError> {
        let views = Views::in_memory()?;
        let prefix = format!("{tenant}.");
        views.catch_up_where(&self.log, Some(until), move |r: &sv0_log::Record| r.subject.starts_with(&prefix)).await?;
        Ok(views)
    }

    /// Writes an audit replay into the new directory `out`: the log's prefix up to `as_of`
    /// copied, positions and recording times kept, into an embedded log there, and views folded
    /// from it. Every read command then answers as of that moment with `--data-dir out`; the
    /// directory is marked read-only (`REPLAY.json`).
    pub async fn replay_to_dir(&self, as_of: AsOf, out: &Path) -> Result<ReplayReport, ServiceError> {
        let until = self.position_of(as_of).await?;
        if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(ServiceError::Input(sv0_domain::InvalidInput::new(format!(
                "{} is not empty: a replay needs a new directory",
                out.display()
            ))));
        }
        let data_dir = DataDir::create(out)?;
        let copy = EmbeddedLog::open(data_dir.log_path())?;
        let mut from = 1;
        let mut last_time = None;
        while from <= until {
            let records = self.log.read(from, Some(until), 1024).await?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            last_time = Some(last.recorded_at);
            copy.import_records(&records)?;
        }
        let replay = Service::open_with(data_dir, copy).await?.without_sealing();
        let reached = replay.catch_up().await?;
        let marker = serde_json::json!({
            "replay_of": self.log.identity().await?,
            "until_position": reached,
            "until_recorded_at": last_time.map(|t| Timestamp(t).to_rfc3339()),
            "note": "an audit replay written by sv0 replay: read-only",
        });
        let path = replay.data_dir.replay_marker();
        std::fs::write(&path, serde_json::to_vec_pretty(&marker)?)
            .map_err(|source| ServiceError::Write { path, source })?;
        Ok(ReplayReport { until: reached, tenants: replay.views.tenants()?.len() })
    }

    /// Refolds the views from an empty database and swaps them in.
    pub async fn rebuild(&mut self) -> Result<Seq, ServiceError> {
        let fresh_path = self.data_dir.root().join("views.rebuild.redb");
        let _ = std::fs::remove_file(&fresh_path);
        let fresh = Views::open(&fresh_path)?;
        fresh.bind_log(&self.log.identity().await?)?;
        let reached = fresh.catch_up(&self.log, None).await?;
        std::fs::rename(&fresh_path, self.data_dir.views_path())
            .map_err(|source| ServiceError::Write { path: self.data_dir.views_path(), source })?;
        fresh.renamed(&self.data_dir.views_path());
        // The fresh handle keeps the renamed file open and locked; the old file is unlinked.
        self.views = fresh;
        info!(reached, "views rebuilt from the log");
        Ok(reached)
    }

    pub(crate) fn signer(&mut self) -> Result<&PackSigner, ServiceError> {
        let signer = match self.signer.take() {
            Some(signer) => signer,
            None => PackSigner::load_or_create(&self.data_dir.keys_dir())?,
        };
        Ok(self.signer.insert(signer))
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

    /// Seals every assessment that has no pack yet, for every tenant (unless another signer keeps
    /// sealing them first).
    pub async fn seal_pending(&mut self) -> Result<usize, ServiceError> {
        // A rotation cut short is finished before anything is sealed with either key.
        if self.data_dir.keys_dir().join(sv0_signer::keys::NEXT_KEY_FILE).exists() {
            self.views.catch_up(&self.log, None).await?;
            self.finish_rotation("finishing a rotation that was cut short", "system:signer").await?;
        }
        let mut sealed = 0;
        for tenant in self.views.tenants()? {
            let mut attempt = 0;
            loop {
                match self.seal_tenant(&tenant).await {
                    Ok(n) => {
                        sealed += n;
                        break;
                    }
                    Err(ServiceError::Conflict(message)) if attempt + 1 < SEAL_ATTEMPTS => {
                        attempt += 1;
                        warn!(%tenant, attempt, %message, "another signer extended the chain; catching up");
                        self.views.catch_up(&self.log, None).await?;
                    }
                    // Another signer keeps winning: it is sealing these assessments, so this one
                    // leaves them to it rather than fail (a signer that exited here would leave
                    // the chain to a single process).
                    Err(ServiceError::Conflict(message)) => {
                        warn!(%tenant, %message, "another signer keeps extending the chain; leaving the pending packs to it");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(sealed)
    }

    async fn seal_tenant(&mut self, tenant: &TenantId) -> Result<usize, ServiceError> {
        // The expectation is the pack subject's actual last position, read before the views
        // catch up: any pack that lands after this read makes the append below conflict, and
        // any that landed before is folded into the chain head we build on. (A pack left
        // incomplete by a crashed signer only moves the expectation; it never blocks.)
        let subject = format!("{tenant}.pack");
        let expected = self.expectation(&subject).await?;
        self.views.catch_up(&self.log, None).await?;
        let head = self.views.pack_head(tenant)?;
        let pending = self.views.assessments_after(tenant, head.as_ref().map_or(0, |h| h.assessed_seq))?;
        if pending.is_empty() {
            return Ok(0);
        }
        let next_index = head.as_ref().map_or(1, |h| h.index + 1);
        let mut expected = self.ensure_key(tenant, &subject, expected, next_index).await?;
        let signer = self.signer()?;
        let mut link =
            head.as_ref().map(|h| ChainLink { index: h.index, pack_id: h.pack_id.clone(), digest: h.digest.clone() });
        let mut events = Vec::new();
        for assessment in &pending {
            let pack = sv0_signer::seal(assessment, link.as_ref(), signer)?;
            link = Some(ChainLink { index: pack.index, pack_id: pack.pack_id.clone(), digest: pack.digest.clone() });
            events.push(pack_event(tenant, pack, assessment.assessed_event, assessment.occurred_at));
        }
        let count = events.len();
        for event in events {
            expected = Expected::LastSeq(self.append_expecting(&subject, expected, &event).await?);
        }
        info!(%tenant, count, "packs sealed");
        Ok(count)
    }

    /// Every `pack.sealed`, `key.registered` and `key.rotated` event of a tenant, read from the
    /// log itself: the chain and its keys with their validity ranges.
    pub(crate) async fn chain_from_log(&self, tenant: &TenantId) -> Result<RecordedChain, ServiceError> {
        let subjects = [format!("{tenant}.pack"), format!("{tenant}.key")];
        let mut packs = Vec::new();
        let mut keys = KeyRing::new();
        let mut pieces = Reassembler::default();
        let mut refused = Vec::new();
        let mut from = 1;
        loop {
            let records = self.log.read(from, None, 1024).await?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            for record in records.iter().filter(|r| subjects.contains(&r.subject)) {
                let Some(event) = pieces.accept(decode_event(&record.data)?)? else { continue };
                match event.payload {
                    // The chain is what the views fold: each pack extends the one before it and
                    // is signed by a key registered for the chain at its index. Anything else
                    // on the subject (a foreign writer's event) is not part of it.
                    EventPayload::PackSealed(pack) => {
                        let head: Option<&PackSealed> = packs.last().map(|(_, p)| p);
                        let extends = pack.index == head.map_or(1, |h| h.index + 1)
                            && pack.previous_digest.as_deref() == head.map(|h| h.digest.as_str());
                        let signed = keys
                            .key_for(&pack.key_id, tenant.as_str(), pack.index)
                            .and_then(|key| sv0_signer::verify::verify_sealed_with(&pack, key));
                        match (extends, signed) {
                            (true, Ok(())) => packs.push((record.seq, pack)),
                            (false, _) => {
                                warn!(%tenant, seq = record.seq, "pack event outside the chain");
                                refused.push((record.seq, pack.pack_id, "it does not extend the chain".to_string()));
                            }
                            (true, Err(why)) => {
                                warn!(%tenant, seq = record.seq, %why, "pack event not signed by the chain's key");
                                refused.push((record.seq, pack.pack_id, why));
                            }
                        }
                    }
                    EventPayload::KeyRegistered(key) => keys.add_registered(tenant.as_str(), &key)?,
                    EventPayload::KeyRotated(rotated) => keys.add_rotated(tenant.as_str(), &rotated)?,
                    _ => {}
                }
            }
        }
        Ok(RecordedChain { tenant: tenant.clone(), packs, keys, refused })
    }

    /// Verifies every tenant's chain as recorded on the log: every record's checksum, digests,
    /// links, signatures (with the keys registered on the log), that every pack event on a
    /// chain's subject is part of the chain, and that each pack's content is the assessment the
    /// log gives for its position: folded into scratch views from the first event
    /// (`VerifyMode::Replay`), or read from the views as they stand (`VerifyMode::Quick`). A
    /// record that cannot be read back as written is reported in the verdict, not as an error.
    pub async fn verify(&mut self, tenant: Option<&TenantId>, mode: VerifyMode) -> Result<LogVerdict, ServiceError> {
        // Views that cannot be written here (a full disk) are brought up to date in memory.
        let caught_up = match self.catch_up_for_query().await {
            Ok(Freshness::Behind { why, .. }) => Err(why),
            Ok(Freshness::InMemory(why)) => {
                warn!(error = %why, "the views cannot be saved here; verifying with views folded in memory");
                Ok(())
            }
            Ok(Freshness::Current) => Ok(()),
            Err(e) => Err(e),
        };
        let outcome = match (caught_up, mode) {
            (Err(e), _) => Err(e),
            (Ok(()), VerifyMode::Quick) => self.verify_with(&self.views, tenant).await,
            (Ok(()), VerifyMode::Replay) => self.verify_replay(tenant).await,
        };
        match outcome {
            Err(e) => match e.log_damage() {
                Some((seq, reason)) => Ok(LogVerdict::damaged(seq, reason.to_string())),
                None => Err(e),
            },
            verdict => verdict,
        }
    }

    /// `verify_replayed` in scratch views beside the views (they are as large), or in the
    /// system's temporary directory when the data directory cannot take them: read-only here,
    /// or its disk full.
    async fn verify_replay(&self, tenant: Option<&TenantId>) -> Result<LogVerdict, ServiceError> {
        let elsewhere = std::env::temp_dir().join(format!("sv0-verify-{}.redb", std::process::id()));
        let beside = self.data_dir.root().join("views.verify.redb");
        let mut places = if self.is_read_only() { vec![elsewhere] } else { vec![beside, elsewhere] };
        loop {
            let scratch = places.remove(0);
            let outcome = self.verify_replayed(tenant, &scratch).await;
            remove_scratch(&scratch);
            match &outcome {
                Err(ServiceError::Views(e)) if e.is_write_failure() && !places.is_empty() => {
                    warn!(scratch = %scratch.display(), error = %e, "cannot write the scratch views here");
                }
                _ => break outcome,
            }
        }
    }

    /// `verify` against scratch views at `scratch` folded from the whole log, which are also
    /// compared with the views table by table.
    async fn verify_replayed(&self, tenant: Option<&TenantId>, scratch: &Path) -> Result<LogVerdict, ServiceError> {
        remove_scratch(scratch);
        let replayed = Views::open(scratch)?;
        replayed.bind_log(&self.log.identity().await?)?;
        let views_differ = self.views_differ_from(&replayed).await?;
        replayed.catch_up(&self.log, None).await?;
        Ok(LogVerdict { views_differ: Some(views_differ), ..self.verify_with(&replayed, tenant).await? })
    }

    /// Folds `replayed` to the views' position and names the tables in which the two differ.
    async fn views_differ_from(&self, replayed: &Views) -> Result<Vec<String>, ServiceError> {
        let position = self.views.checkpoint()?;
        replayed.catch_up(&self.log, Some(position)).await?;
        let (ours, theirs) = (self.views.table_digests()?, replayed.table_digests()?);
        let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        Ok(names.into_iter().filter(|n| ours.get(*n) != theirs.get(*n)).cloned().collect())
    }

    async fn verify_with(&self, views: &Views, tenant: Option<&TenantId>) -> Result<LogVerdict, ServiceError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => views.tenants()?,
        };
        let mut chains = Vec::new();
        for tenant in tenants {
            chains.push(self.chain_from_log(&tenant).await?);
        }
        Ok(LogVerdict { damaged: None, chains: verify_chains(views, chains)?, views_differ: None })
    }

    /// Writes a tenant's packs (`NNNNNN-<pack id>.json`) and `public-key.pem` to `dir`.
    pub async fn export_packs(&mut self, tenant: &TenantId, dir: &Path) -> Result<usize, ServiceError> {
        let chain = self.chain_from_log(tenant).await?;
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::Write { path: dir.to_path_buf(), source })?;
        let write = |path: std::path::PathBuf, bytes: &[u8]| {
            std::fs::write(&path, bytes).map_err(|source| ServiceError::Write { path, source })
        };
        for (_, sealed) in &chain.packs {
            let file = PackFile::from_sealed(sealed)?;
            let mut json = serde_json::to_vec_pretty(&file)?;
            json.push(b'\n');
            write(dir.join(file.file_name()), &json)?;
        }
        write(dir.join("public-key.pem"), chain.keys.to_pem().as_bytes())?;
        Ok(chain.packs.len())
    }
}

/// How long a following process waits without a record before it asks whether the log moved on.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes scratch views and their clean-close stamp.
fn remove_scratch(path: &Path) {
    let _ = std::fs::remove_file(path);
    sv0_log::file::distrust(path);
}

/// The `pack.sealed` event of a pack. Its id names the pack's content (its digest, which covers
/// the signing key), not only its place in the chain: two signers sealing the same assessment
/// produce two different events, so the loser's append is a conflict rather than being taken
/// for a retry of the winner's (which would leave both believing the pack sealed, and the
/// log's duplicate window dropping every later attempt at that place).
pub fn pack_event(tenant: &TenantId, pack: PackSealed, assessed_event: EventId, occurred_at: Timestamp) -> Event {
    Event {
        meta: EventMeta {
            event_id: derived_id("sv0.pack.v2", tenant, &[pack.pack_id.as_bytes(), pack.digest.as_bytes()]),
            tenant_id: tenant.clone(),
            occurred_at,
            actor: "system:signer".to_string(),
            causation_id: Some(assessed_event),
            correlation_id: None,
            credential: None,
        },
        payload: EventPayload::PackSealed(pack),
    }
}
