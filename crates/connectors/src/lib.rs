//! SV0's connectors: they read the source systems' own API formats, live over HTTP or from an
//! export directory of the same responses, and turn them into one snapshot with a coverage
//! record of exactly which APIs failed.
//!
//! Start at [`scan`]: it runs each requested connector over a [`source::Source`], collects
//! what they read into a [`collect::Collected`], and assembles the snapshot. `source` fetches
//! (paging, throttling, retries, tokens); `entra`, `arm`, `servicenow`, `foundry` and
//! `azurehound` convert; `collect` merges and resolves references.

pub mod arm;
pub mod auth;
pub mod azurehound;
pub mod cloud;
pub mod collect;
mod config;
pub mod entra;
pub mod foundry;
pub mod groups;
mod json;
pub mod plan;
pub mod schema;
pub mod servicenow;
pub mod source;
pub mod tracking;

pub use config::ConnectorsConfig;

use std::collections::BTreeMap;
use std::sync::Arc;

use sv0_domain::snapshot::{
    ApiCoverage, ApiStatus, Coverage, CoverageMode, EntityList, ScanInfo, ScanTrigger, Snapshot,
};
use sv0_domain::{TenantId, Timestamp};

use crate::collect::Collected;
use crate::source::{ApiOutcome, Ledger, Source};

/// Why a scan could not run at all (an API failing is not an error: it is recorded in coverage).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Bad settings, a missing directory or secret.
    #[error("{0}")]
    Setup(String),
    /// A token could not be acquired.
    #[error("cannot acquire a token, so nothing was imported: {0}")]
    Token(String),
    /// Nothing could be read at all.
    #[error("{0}")]
    NothingRead(String),
}

/// The connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnectorKind {
    /// Microsoft Entra ID through Microsoft Graph.
    Entra,
    /// Azure RBAC through Azure Resource Manager (and storage logs through Log Analytics).
    AzureRbac,
    /// ServiceNow through the Table API.
    ServiceNow,
    /// Azure AI Foundry Agent Service.
    Foundry,
    /// AzureHound's JSON output.
    AzureHound,
}

impl ConnectorKind {
    /// Every connector.
    pub const ALL: [ConnectorKind; 5] = [
        ConnectorKind::Entra,
        ConnectorKind::AzureRbac,
        ConnectorKind::ServiceNow,
        ConnectorKind::Foundry,
        ConnectorKind::AzureHound,
    ];

    /// Its name on the command line and in `scan.connector`.
    pub fn name(&self) -> &'static str {
        match self {
            ConnectorKind::Entra => "entra",
            ConnectorKind::AzureRbac => "azure-rbac",
            ConnectorKind::ServiceNow => "servicenow",
            ConnectorKind::Foundry => "foundry",
            ConnectorKind::AzureHound => "azurehound",
        }
    }
}

/// Progress of a scan, for the terminal.
pub trait Progress: Send + Sync {
    /// `calls` more requests are planned (fan-outs announce theirs).
    fn planned(&self, calls: usize);
    /// A page of `items` was read from `api`.
    fn page(&self, api: &str, items: usize);
    /// A call (all its pages) ended, with an error when it failed.
    fn call_done(&self, api: &str, error: Option<&str>);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _calls: usize) {}
    fn page(&self, _api: &str, _items: usize) {}
    fn call_done(&self, _api: &str, _error: Option<&str>) {}
}

/// What the connectors need besides the source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SV0 tenant the snapshot is for.
    pub tenant: TenantId,
    /// The Entra tenant id (identities homed elsewhere are marked with their home tenant).
    pub azure_tenant_id: Option<String>,
    /// When the sources were read; sign-ins and logs are read for the evidence window before it.
    pub observed_at: Timestamp,
    /// Why the scan ran.
    pub trigger: ScanTrigger,
    /// Days of sign-ins and storage logs to read.
    pub evidence_days: u32,
    /// Subscriptions to read (all the credentials can see when empty).
    pub subscriptions: Vec<String>,
    /// Log Analytics workspaces (ids) holding `StorageBlobLogs`.
    pub log_analytics_workspaces: Vec<String>,
    /// ServiceNow table → data domain, over the built-in table.
    pub servicenow_classification: BTreeMap<String, String>,
    /// The ServiceNow instance's host name, recorded on its tables (default: the base URL's).
    pub servicenow_host: Option<String>,
    /// What `sv0 watch` keeps between rounds to ask the vendors only for what changed (none:
    /// everything is read whole).
    pub tracking: Option<Arc<tracking::Tracking>>,
}

/// A finished scan: the snapshot, and how every API call went.
#[derive(Debug)]
pub struct ScanResult {
    /// The snapshot (not yet validated).
    pub snapshot: Snapshot,
    /// Each API's outcome, by name.
    pub outcomes: BTreeMap<&'static str, ApiOutcome>,
    /// Records left out because what they refer to was not read, by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// Runs the connectors over one source and assembles their snapshot.
pub async fn scan(
    kinds: &[ConnectorKind],
    source: &Source,
    settings: &Settings,
    progress: Arc<dyn Progress>,
) -> Result<ScanResult, ConnectorError> {
    let mut kinds = kinds.to_vec();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        return Err(ConnectorError::Setup("name at least one --connector".into()));
    }
    if kinds.contains(&ConnectorKind::AzureHound) && !source.is_export() {
        return Err(ConnectorError::Setup(
            "azurehound reads AzureHound's output file: use --from-export FILE|DIR".into(),
        ));
    }
    source.authenticate().await?;
    let ledger = Ledger::new(progress);
    let mut collected = Collected::default();
    // Entra first, so that the identities it reads win over the names others infer.
    for kind in &kinds {
        match kind {
            ConnectorKind::Entra => entra::collect(source, settings, &ledger, &mut collected).await?,
            ConnectorKind::AzureRbac => arm::collect(source, settings, &ledger, &mut collected).await?,
            ConnectorKind::ServiceNow => servicenow::collect(source, settings, &ledger, &mut collected).await?,
            ConnectorKind::Foundry => foundry::collect(source, settings, &ledger, &mut collected).await?,
            ConnectorKind::AzureHound => azurehound::collect(source, settings, &ledger, &mut collected).await?,
        }
    }
    // Grants to groups reach the service principals in them.
    groups::collect(source, &ledger, &mut collected).await;
    let outcomes = ledger.outcomes();
    if !outcomes.is_empty() && outcomes.values().all(|o| o.failed > 0 && o.items == 0) {
        let first = outcomes.iter().find_map(|(api, o)| o.first_error.as_ref().map(|e| format!("{api}: {e}")));
        return Err(ConnectorError::NothingRead(format!(
            "every API call failed, so nothing was imported (first: {})",
            first.unwrap_or_default()
        )));
    }
    let mut apis: Vec<ApiCoverage> = collected
        .apis
        .iter()
        .map(|(api, lists)| {
            let outcome = outcomes.get(api);
            let failed = outcome.is_some_and(|o| o.failed > 0);
            ApiCoverage {
                name: (*api).to_string(),
                lists: lists.iter().copied().collect(),
                status: if failed { ApiStatus::Failed } else { ApiStatus::Succeeded },
                error: outcome.filter(|_| failed).map(|o| {
                    let error = o.first_error.clone().unwrap_or_default();
                    if o.failed > 1 { format!("{error} (and {} more failed calls)", o.failed - 1) } else { error }
                }),
            }
        })
        .collect();
    let (entities, dropped, spread) = collected.finish();
    // A failed API also leaves partial the lists whose records refer into what it fills.
    for api in apis.iter_mut().filter(|a| a.status == ApiStatus::Failed) {
        let mut lists: std::collections::BTreeSet<EntityList> = api.lists.iter().copied().collect();
        loop {
            let more: Vec<EntityList> =
                lists.iter().filter_map(|l| spread.get(l)).flatten().copied().filter(|l| !lists.contains(l)).collect();
            if more.is_empty() {
                break;
            }
            lists.extend(more);
        }
        api.lists = lists.into_iter().collect();
    }
    let connector = kinds.iter().map(ConnectorKind::name).collect::<Vec<_>>().join("+");
    let snapshot = Snapshot {
        schema_version: sv0_domain::snapshot::SNAPSHOT_SCHEMA_VERSION,
        tenant: settings.tenant.clone(),
        scan: ScanInfo {
            connector,
            observed_at: settings.observed_at,
            trigger: settings.trigger,
            deployment: None,
            coverage: Some(Coverage { mode: CoverageMode::Full, targets: Vec::new(), base_scan: None, apis }),
        },
        domains: entities.domains,
        classification_rules: entities.classification_rules,
        owners: entities.owners,
        workloads: entities.workloads,
        identities: entities.identities,
        credentials: entities.credentials,
        destinations: entities.destinations,
        grants: entities.grants,
        bindings: entities.bindings,
        evidence: entities.evidence,
        deleted: entities.deleted,
    };
    Ok(ScanResult { snapshot, outcomes, dropped })
}
