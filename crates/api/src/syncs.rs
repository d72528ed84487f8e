//! Syncs: a scan SV0 runs itself, on request, with the deployment it is for. `POST /syncs`
//! answers `202` with a sync id at once; the scan runs in the background (`pending` →
//! `running` → `completed`, `quarantined` or `failed`), and `GET /syncs/{id}` then carries the
//! scan, and for the requested scope its disposition and a summary of its delta.
//!
//! The source of a sync is the snapshot a collector keeps current (`sv0 serve --sync-snapshot
//! FILE`) or SV0's connectors, run for each sync (`sv0 serve --sync-connector ...`). Syncs live
//! in the serving process: a restart forgets them (their scans stay on the log).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sv0_domain::disposition::Disposition;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{DeploymentRef, ScanTrigger};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::EventLog;
use sv0_projections::ScanStatus;
use tracing::warn;

use crate::ApiState;
use crate::problem::Problem;

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Accepted, not started.
    Pending,
    /// Reading and importing.
    Running,
    /// The scan was applied.
    Completed,
    /// The scan tripped a deletion breaker and waits for a release.
    Quarantined,
    /// It could not run; `error` says why.
    Failed,
}

impl SyncStatus {
    /// Whether the sync is over.
    pub fn finished(self) -> bool {
        !matches!(self, SyncStatus::Pending | SyncStatus::Running)
    }
}

/// The delta of the requested scope, in counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DeltaSummary {
    /// The baseline version compared against.
    pub baseline_version: u32,
    /// Entries of the delta.
    pub changes: usize,
    /// Entries flagged for review.
    pub flagged: usize,
    /// New paths.
    pub new_paths: usize,
    /// Whether the posture matches the baseline.
    pub matches_baseline: bool,
    /// The verification's one-line summary.
    pub summary: String,
    /// The flagged entries' remediation, one line each.
    pub remediation: Vec<String>,
}

/// One sync.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SyncRecord {
    /// Its id.
    pub sync_id: String,
    /// Where it stands.
    pub status: SyncStatus,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: Timestamp,
    /// The deployment it is for.
    pub deployment: DeploymentRef,
    /// The scope judged.
    pub scope: Option<String>,
    /// The workloads of a targeted sync (none: a full one).
    pub targets: Vec<String>,
    /// When the scan is judged: `pre_deployment` or `deployment`.
    pub trigger: ScanTrigger,
    /// The scan it ran.
    pub scan_id: Option<String>,
    /// Why it failed, or why the scan was held.
    pub error: Option<String>,
    /// The scope's disposition after the scan.
    pub disposition: Option<Disposition>,
    /// The scope's delta after the scan.
    pub delta: Option<DeltaSummary>,
    #[serde(skip)]
    tenant: Option<TenantId>,
}

/// Syncs of one tenant waiting or running at once, by default; one more is refused (429).
pub const SYNC_QUEUE: usize = 8;

/// How long the record of an ended sync is kept (from its request), and how long a sync may
/// wait to start.
pub const SYNC_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The syncs of this process: each tenant's run one at a time, at most `queue` of a tenant
/// waiting or running, records of ended syncs forgotten `SYNC_TTL` after their request.
#[derive(Debug)]
pub struct Syncs {
    records: Mutex<BTreeMap<String, SyncRecord>>,
    lanes: Mutex<BTreeMap<TenantId, Arc<tokio::sync::Semaphore>>>,
    queue: usize,
}

impl Default for Syncs {
    fn default() -> Syncs {
        Syncs::with_queue(SYNC_QUEUE)
    }
}

impl Syncs {
    /// At most `queue` syncs of a tenant waiting or running.
    pub fn with_queue(queue: usize) -> Syncs {
        Syncs { records: Mutex::default(), lanes: Mutex::default(), queue: queue.max(1) }
    }

    /// Records a new sync unless its tenant already has `queue` waiting or running (then the
    /// oldest of those, to name in the refusal); forgets records ended more than `SYNC_TTL` ago.
    fn admit(&self, record: SyncRecord, now: Timestamp) -> Result<(), String> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = SYNC_TTL.as_millis() as i64;
        records.retain(|_, r| !r.status.finished() || now.0 - r.requested_at.0 < ttl);
        let open: Vec<&SyncRecord> =
            records.values().filter(|r| r.tenant == record.tenant && !r.status.finished()).collect();
        if open.len() >= self.queue {
            let oldest = open.iter().min_by_key(|r| r.requested_at.0).map(|r| r.sync_id.clone()).unwrap_or_default();
            return Err(oldest);
        }
        records.insert(record.sync_id.clone(), record);
        Ok(())
    }

    /// The tenant's lane: one sync runs at a time.
    fn lane(&self, tenant: &TenantId) -> Arc<tokio::sync::Semaphore> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(lanes.entry(tenant.clone()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1))))
    }

    /// A sync of `tenant`, if it has this id.
    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<SyncRecord> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.get(id).filter(|r| r.tenant.as_ref() == Some(tenant)).cloned()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut SyncRecord)) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = records.get_mut(id) {
            change(record);
        }
    }
}

/// What `POST /syncs` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The scope the deployment is judged for.
    pub scope: Option<String>,
    /// Target environment.
    pub environment: Option<String>,
    /// Repository.
    pub repository: Option<String>,
    /// CI run id.
    pub run_id: Option<String>,
    /// Commit.
    pub commit: Option<String>,
    /// A targeted sync: only these workloads (their bindings, identities, credentials, grants
    /// and evidence) are read and may change; the rest of the tenant is left as it is.
    #[serde(default)]
    pub targets: Vec<String>,
    /// When the scan is judged: `pre_deployment` (the default: a gate, before the deployment
    /// job runs; seals a `pre_deployment_assessment`) or `deployment` (a rescan after the
    /// deployment; seals a `post_deployment_delta`).
    #[serde(default)]
    pub trigger: Option<ScanTrigger>,
}

/// Restricts a snapshot to `targets` and declares it a targeted scan of them.
fn target(snapshot: &mut serde_json::Value, targets: &[String]) -> Result<(), String> {
    use sv0_domain::snapshot::{ApiCoverage, ApiStatus, Coverage, CoverageMode, EntityList};
    let keep: std::collections::BTreeSet<&str> = targets.iter().map(String::as_str).collect();
    let field = |v: &serde_json::Value, name: &str| v[name].as_str().map(str::to_string);
    let retain = |snapshot: &mut serde_json::Value, list: &str, keep: &dyn Fn(&serde_json::Value) -> bool| {
        if let Some(items) = snapshot[list].as_array_mut() {
            items.retain(|item| keep(item));
        }
    };
    retain(snapshot, "workloads", &|w| field(w, "id").is_some_and(|id| keep.contains(id.as_str())));
    if snapshot["workloads"].as_array().is_none_or(Vec::is_empty) {
        return Err("none of the sync's targets is a workload of the source".to_string());
    }
    retain(snapshot, "bindings", &|b| field(b, "workload").is_some_and(|w| keep.contains(w.as_str())));
    let identities: std::collections::BTreeSet<String> = snapshot["bindings"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| field(b, "identity")).collect())
        .unwrap_or_default();
    let bound = |v: &serde_json::Value| field(v, "identity").is_some_and(|i| identities.contains(&i));
    retain(snapshot, "identities", &|i| field(i, "id").is_some_and(|id| identities.contains(&id)));
    retain(snapshot, "credentials", &bound);
    retain(snapshot, "grants", &bound);
    retain(snapshot, "evidence", &|e| bound(e) || field(e, "workload").is_some_and(|w| keep.contains(w.as_str())));
    let coverage = Coverage {
        mode: CoverageMode::Targeted,
        targets: targets.to_vec(),
        base_scan: None,
        apis: vec![ApiCoverage {
            name: "sync".to_string(),
            lists: EntityList::ALL.to_vec(),
            status: ApiStatus::Succeeded,
            error: None,
        }],
    };
    snapshot["scan"]["coverage"] = serde_json::to_value(coverage).map_err(|e| e.to_string())?;
    Ok(())
}

/// Records a sync and starts it.
pub(crate) fn start<L: EventLog + Clone + Send + Sync + 'static>(
    state: &Arc<ApiState<L>>,
    tenant: &TenantId,
    principal: &str,
    request: SyncRequest,
) -> Result<SyncRecord, Problem> {
    let Some(source) = state.sync_source.clone() else {
        return Err(Problem::conflict(
            "this server has no sync source; start it with --sync-snapshot FILE (the snapshot a collector keeps \
             current) or --sync-connector CONNECTOR",
        ));
    };
    if let Some(scope) = &request.scope {
        Scope::parse(scope).map_err(|e| Problem::invalid_request(e.to_string()))?;
    }
    let trigger = request.trigger.unwrap_or(ScanTrigger::PreDeployment);
    if !matches!(trigger, ScanTrigger::PreDeployment | ScanTrigger::Deployment) {
        return Err(Problem::invalid_request(format!(
            "a sync is judged before a deployment (pre_deployment) or after it (deployment), not as {}",
            trigger.as_str()
        )));
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(Problem::internal)?;
    let record = SyncRecord {
        sync_id: format!("sync-{}", hex::encode(random)),
        status: SyncStatus::Pending,
        requested_by: principal.to_string(),
        requested_at: Timestamp::now(),
        deployment: DeploymentRef {
            repository: request.repository,
            run_id: request.run_id,
            environment: request.environment,
            commit: request.commit,
        },
        scope: request.scope,
        targets: request.targets,
        trigger,
        scan_id: None,
        error: None,
        disposition: None,
        delta: None,
        tenant: Some(tenant.clone()),
    };
    if let Err(oldest) = state.syncs.admit(record.clone(), Timestamp::now()) {
        return Err(Problem::busy(format!(
            "tenant {tenant} has {} syncs waiting or running (the oldest: {oldest}); ask again when one is done",
            state.syncs.queue
        )));
    }
    let state = Arc::clone(state);
    let id = record.sync_id.clone();
    let tenant = tenant.clone();
    tokio::spawn(async move {
        // One sync of a tenant at a time; one that waited too long does not run.
        let lane = state.syncs.lane(&tenant);
        let Ok(_turn) = lane.acquire().await else { return };
        let waited = state.syncs.get(&tenant, &id).map_or(0, |r| Timestamp::now().0 - r.requested_at.0);
        if waited > SYNC_TTL.as_millis() as i64 {
            state.syncs.update(&id, |r| {
                r.status = SyncStatus::Failed;
                r.error = Some("it waited longer than an hour to start; start a new sync".into());
            });
            return;
        }
        state.syncs.update(&id, |r| r.status = SyncStatus::Running);
        let outcome = run(&state, &tenant, &id, source).await;
        state.syncs.update(&id, |r| match outcome {
            Ok(()) => {}
            Err(reason) => {
                warn!(sync = %id, %reason, "sync failed");
                r.status = SyncStatus::Failed;
                r.error = Some(reason);
            }
        });
    });
    Ok(record)
}

/// Produces a snapshot (as JSON) for a sync: the binary runs its connectors behind this, so that
/// this crate knows nothing of the source systems.
pub trait SnapshotProducer: Send + Sync {
    /// Reads the sources now. The error is shown in the sync's status, so it must name no secret.
    fn produce(&self) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + '_>>;
}

/// What a sync reads.
#[derive(Clone)]
pub enum SyncSource {
    /// The snapshot file a collector keeps current.
    Snapshot(PathBuf),
    /// Connectors run for each sync.
    Connectors(Arc<dyn SnapshotProducer>),
}

impl SyncSource {
    async fn read(&self, max_body: usize) -> Result<serde_json::Value, String> {
        match self {
            SyncSource::Snapshot(file) => {
                let bytes = tokio::fs::read(file).await.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                if bytes.len() > max_body {
                    return Err(format!("{} is larger than {max_body} bytes", file.display()));
                }
                sv0_codec::json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", file.display()))
            }
            SyncSource::Connectors(producer) => producer.produce().await,
        }
    }
}

/// Reads the source, imports it as a deployment scan, judges the scope.
async fn run<L: EventLog>(state: &ApiState<L>, tenant: &TenantId, id: &str, source: SyncSource) -> Result<(), String> {
    let (deployment, scope, targets, trigger) = {
        let records = state.syncs.records.lock().unwrap_or_else(|e| e.into_inner());
        let r = records.get(id).ok_or("the sync was forgotten")?;
        (r.deployment.clone(), r.scope.clone(), r.targets.clone(), r.trigger)
    };
    let mut snapshot = source.read(state.max_body).await?;
    if snapshot["tenant"].as_str() != Some(tenant.as_str()) {
        return Err(format!("the sync source is not a snapshot of tenant {tenant}"));
    }
    if !targets.is_empty() {
        target(&mut snapshot, &targets)?;
    }
    snapshot["scan"]["trigger"] = serde_json::json!(trigger);
    snapshot["scan"]["deployment"] = serde_json::to_value(&deployment).map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec(&snapshot).map_err(|e| e.to_string())?;
    let mut commands = state.commands.lock().await;
    let report = commands.import_snapshot(&bytes, Some(trigger)).await.map_err(|e| e.to_string())?;
    let held = report.scan.as_ref().is_some_and(|s| s.status == ScanStatus::Quarantined);
    // The scope is checked against the tenant as this scan left it: one that selects nothing
    // (a typo) is named as such, never answered with "approve it first".
    let judged = match scope.as_deref() {
        Some(text) if !held => Some(commands.scope(tenant, text).and_then(|scope| commands.delta(tenant, &scope))),
        _ => None,
    };
    drop(commands);
    state.syncs.update(id, |r| {
        r.scan_id = Some(report.scan_id.clone());
        if held {
            r.status = SyncStatus::Quarantined;
            r.error = report.scan.as_ref().and_then(|s| s.reason.clone());
            return;
        }
        r.status = SyncStatus::Completed;
        match judged {
            Some(Ok(delta)) => {
                r.delta = Some(DeltaSummary {
                    baseline_version: delta.baseline_version,
                    changes: delta.entries.len(),
                    flagged: delta.entries.iter().filter(|e| e.flagged).count(),
                    new_paths: delta
                        .entries
                        .iter()
                        .filter(|e| {
                            matches!(
                                e.kind,
                                sv0_domain::delta::DeltaKind::NewPath | sv0_domain::delta::DeltaKind::NewSensitivePath
                            )
                        })
                        .count(),
                    matches_baseline: delta.verification.matches_baseline,
                    summary: delta.verification.summary.clone(),
                    remediation: delta
                        .entries
                        .iter()
                        .filter(|e| e.flagged)
                        .flat_map(|e| e.remediation_actions.iter().map(|a| a.text.clone()))
                        .collect(),
                });
                r.disposition = Some(delta.disposition);
            }
            Some(Err(e)) => r.error = Some(e.to_string()),
            None => {}
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tenant: &str, status: SyncStatus, at: i64) -> SyncRecord {
        SyncRecord {
            sync_id: id.into(),
            status,
            requested_by: "ci@contoso.example".into(),
            requested_at: Timestamp(at),
            deployment: DeploymentRef { repository: None, run_id: None, environment: None, commit: None },
            scope: None,
            targets: Vec::new(),
            trigger: ScanTrigger::PreDeployment,
            scan_id: None,
            error: None,
            disposition: None,
            delta: None,
            tenant: Some(TenantId::new(tenant).unwrap()),
        }
    }

    /// A tenant has at most `queue` syncs waiting or running; another tenant is not held up;
    /// ended records are forgotten after `SYNC_TTL`.
    #[test]
    fn syncs_are_queued_per_tenant_within_a_bound_and_forgotten_after_their_ttl() {
        let syncs = Syncs::with_queue(2);
        let now = Timestamp(10_000_000);
        syncs.admit(record("a1", "contoso", SyncStatus::Pending, now.0), now).unwrap();
        syncs.admit(record("a2", "contoso", SyncStatus::Running, now.0 + 1), now).unwrap();
        assert_eq!(syncs.admit(record("a3", "contoso", SyncStatus::Pending, now.0 + 2), now), Err("a1".into()));
        syncs.admit(record("b1", "fabrikam", SyncStatus::Pending, now.0), now).unwrap();
        syncs.update("a1", |r| r.status = SyncStatus::Completed);
        syncs.admit(record("a3", "contoso", SyncStatus::Pending, now.0 + 3), now).unwrap();
        let later = Timestamp(now.0 + SYNC_TTL.as_millis() as i64 + 1);
        syncs.admit(record("b2", "fabrikam", SyncStatus::Pending, later.0), later).unwrap();
        let contoso = TenantId::new("contoso").unwrap();
        assert!(syncs.get(&contoso, "a1").is_none(), "an ended sync is forgotten after its ttl");
        assert!(syncs.get(&contoso, "a2").is_some(), "a running one is kept");
    }
}
