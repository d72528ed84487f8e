//! `sv0 scan run`: runs the connectors (live or over an export directory), shows progress on
//! the terminal, prints how every API call went, and imports the snapshot as one scan.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use sv0_connectors::ConnectorsConfig;
use sv0_connectors::auth::{ClientCredentials, TokenSource};
use sv0_connectors::cloud::Cloud;
use sv0_connectors::source::{ExportDir, HttpSettings, Live, Service, Source};
use sv0_connectors::tracking::Tracking;
use sv0_connectors::{ConnectorKind, Progress, ScanResult, Settings};
use sv0_domain::snapshot::ScanTrigger;
use sv0_domain::{TenantId, Timestamp};

use crate::{ConnectorArg, ConnectorArgs};

/// What an export directory may say about itself (`meta.json`; the synthetic generator writes one).
#[derive(Debug, Default, serde::Deserialize)]
struct ExportMeta {
    tenant: Option<String>,
    observed_at: Option<String>,
    azure_tenant_id: Option<String>,
    servicenow_host: Option<String>,
    /// The Log Analytics workspaces the export's storage logs were read from.
    #[serde(default)]
    log_analytics_workspaces: Vec<String>,
}

/// Runs the connectors and returns the scan (not yet imported). `observed_at` overrides the
/// export's `meta.json` and the clock; `tracking` (the watch's) asks the vendors only for what
/// changed since its previous round.
pub async fn run_connectors(
    args: &ConnectorArgs,
    observed_at: Option<&str>,
    trigger: ScanTrigger,
    tenant: Option<&str>,
    config: &ConnectorsConfig,
    tracking: Option<Arc<Tracking>>,
) -> anyhow::Result<ScanResult> {
    let kinds: Vec<ConnectorKind> = args.connectors.iter().map(|c| kind(*c)).collect();
    let meta = match &args.from_export {
        Some(dir) if dir.is_dir() => read_meta(&dir.join("meta.json"))?,
        _ => ExportMeta::default(),
    };
    let azure_tenant_id = config
        .azure_tenant_id
        .clone()
        .or_else(|| std::env::var("SV0_AZURE_TENANT_ID").ok())
        .or_else(|| std::env::var("AZURE_TENANT_ID").ok())
        .or(meta.azure_tenant_id.clone());
    let tenant = tenant.map(str::to_string).or(meta.tenant.clone()).or(azure_tenant_id.clone()).context(
        "name the SV0 tenant with --tenant (or SV0_TENANT); an export's meta.json or the Entra tenant id can also name it",
    )?;
    let observed_at = match observed_at.or(meta.observed_at.as_deref()) {
        Some(text) => Timestamp::parse(text)?,
        None => Timestamp::now(),
    };
    let settings = Settings {
        tenant: TenantId::new(tenant)?,
        azure_tenant_id: azure_tenant_id.clone(),
        observed_at,
        trigger,
        evidence_days: config.evidence_days.unwrap_or(30).clamp(1, 365),
        subscriptions: config.subscriptions.clone(),
        log_analytics_workspaces: if config.log_analytics_workspaces.is_empty() {
            meta.log_analytics_workspaces.clone()
        } else {
            config.log_analytics_workspaces.clone()
        },
        servicenow_classification: config.servicenow_classification.clone(),
        servicenow_host: config.servicenow_host.clone().or(meta.servicenow_host),
        tracking,
    };
    if config.foundry_project.is_some() || config.foundry_principal_id.is_some() || config.foundry_host.is_some() {
        tracing::warn!(
            "[connectors] foundry_project, foundry_principal_id and foundry_host are no longer used: every Foundry \
             project, its managed identity and its endpoint are read from Azure Resource Manager"
        );
    }
    let source = match &args.from_export {
        Some(dir) => Source::Export(ExportDir::open(dir)?),
        None => Source::Live(Box::new(live_source(args, &kinds, config, azure_tenant_id.as_deref())?)),
    };
    let progress = Arc::new(Bar::new());
    let result = sv0_connectors::scan(&kinds, &source, &settings, progress.clone()).await;
    progress.bar.finish_and_clear();
    Ok(result?)
}

pub(crate) fn kind(arg: ConnectorArg) -> ConnectorKind {
    match arg {
        ConnectorArg::Entra => ConnectorKind::Entra,
        ConnectorArg::AzureRbac => ConnectorKind::AzureRbac,
        ConnectorArg::Servicenow => ConnectorKind::ServiceNow,
        ConnectorArg::Foundry => ConnectorKind::Foundry,
        ConnectorArg::Azurehound => ConnectorKind::AzureHound,
    }
}

fn read_meta(path: &Path) -> anyhow::Result<ExportMeta> {
    match std::fs::read(path) {
        Ok(bytes) => sv0_codec::json::from_slice(&bytes).with_context(|| format!("{} is not valid", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ExportMeta::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The services each connector calls.
fn services(kind: ConnectorKind) -> &'static [Service] {
    match kind {
        ConnectorKind::Entra => &[Service::Graph],
        // Graph too: the members of groups that hold role assignments.
        ConnectorKind::AzureRbac => &[Service::Arm, Service::LogAnalytics, Service::Graph],
        ConnectorKind::ServiceNow => &[Service::ServiceNow],
        // Azure Resource Manager lists the projects, their identities and connections.
        ConnectorKind::Foundry => &[Service::Arm, Service::Foundry],
        ConnectorKind::AzureHound => &[],
    }
}

/// Base URLs, tokens and limits for a live scan.
fn live_source(
    args: &ConnectorArgs,
    kinds: &[ConnectorKind],
    config: &ConnectorsConfig,
    azure_tenant_id: Option<&str>,
) -> anyhow::Result<Live> {
    let cloud = Cloud::parse(config.cloud.as_deref().unwrap_or("public"))?;
    let mut base_urls: BTreeMap<Service, String> = BTreeMap::new();
    let configured = [
        (Service::Graph, &config.graph_url),
        (Service::Arm, &config.arm_url),
        (Service::LogAnalytics, &config.log_analytics_url),
        (Service::ServiceNow, &config.servicenow_url),
        (Service::Foundry, &config.foundry_url),
    ];
    let needed: Vec<Service> = kinds.iter().flat_map(|k| services(*k).iter().copied()).collect();
    for service in &needed {
        let url = configured.iter().find(|(s, _)| s == service).and_then(|(_, u)| (*u).clone());
        if let Some(url) = url.or_else(|| cloud.base_url(*service).map(str::to_string)) {
            base_urls.insert(*service, url);
        }
    }
    // Foundry projects are called at the endpoints ARM lists for them, only on the cloud's
    // Foundry hosts (or a base URL given for Foundry).
    let mut endpoint_suffixes = BTreeMap::new();
    if let Some(suffix) = cloud.foundry_suffix() {
        endpoint_suffixes.insert(Service::Foundry, suffix.to_string());
    }
    for given in &args.base_urls {
        let (targets, url): (Vec<Service>, &str) = match given.split_once('=') {
            Some((name, url)) if !name.contains('/') => {
                let targets = match name {
                    "entra" | "graph" => vec![Service::Graph],
                    "azure-rbac" | "arm" => vec![Service::Arm],
                    "log-analytics" => vec![Service::LogAnalytics],
                    "servicenow" => vec![Service::ServiceNow],
                    "foundry" => vec![Service::Foundry],
                    other => {
                        bail!("--base-url {other}=...: name entra, azure-rbac, log-analytics, servicenow or foundry")
                    }
                };
                (targets, url)
            }
            _ => (needed.clone(), given.as_str()),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--base-url {url}: give an http(s) URL");
        }
        for service in targets {
            base_urls.insert(service, url.trim_end_matches('/').to_string());
        }
    }
    let mut tokens = BTreeMap::new();
    let azure: Vec<Service> = needed
        .iter()
        .copied()
        .filter(|s| matches!(s, Service::Graph | Service::Arm | Service::LogAnalytics | Service::Foundry))
        .collect();
    if !azure.is_empty() {
        let credentials = ClientCredentials::from_env("SV0_AZURE", Some("AZURE"))?.context(
            "live Azure connectors need an app registration: set SV0_AZURE_CLIENT_ID and SV0_AZURE_CLIENT_SECRET or \
             SV0_AZURE_CLIENT_SECRET_FILE (the AZURE_* names work too); secrets are never taken from the command line",
        )?;
        let tenant = azure_tenant_id.context(
            "live Azure connectors need the Entra tenant id: SV0_AZURE_TENANT_ID or [connectors] azure_tenant_id",
        )?;
        let authority = config
            .authority_url
            .clone()
            .or_else(|| std::env::var("SV0_AZURE_AUTHORITY").ok())
            .unwrap_or_else(|| cloud.authority().into());
        let token_url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
        for service in azure {
            // The audience is the cloud's (or the configured one), never the base URL's: a
            // proxy or a test server sees the tokens the real service would.
            let configured = match service {
                Service::Graph => &config.graph_scope,
                Service::Arm => &config.arm_scope,
                Service::LogAnalytics => &config.log_analytics_scope,
                _ => &config.foundry_scope,
            };
            let scope = configured.clone().or_else(|| cloud.scope(service).map(str::to_string)).with_context(|| {
                format!(
                    "no token scope for {} in this cloud: set [connectors] {}_scope",
                    service.name(),
                    service.name().replace('-', "_")
                )
            })?;
            tokens.insert(service, Arc::new(TokenSource::new(token_url.clone(), Some(scope), credentials.clone())));
        }
    }
    if needed.contains(&Service::ServiceNow) {
        let credentials = ClientCredentials::from_env("SV0_SERVICENOW", None)?.context(
            "the live servicenow connector needs an OAuth client: set SV0_SERVICENOW_CLIENT_ID and \
             SV0_SERVICENOW_CLIENT_SECRET or SV0_SERVICENOW_CLIENT_SECRET_FILE",
        )?;
        let base = base_urls.get(&Service::ServiceNow).context(
            "servicenow needs the instance URL: --base-url servicenow=https://<instance>.service-now.com or [connectors] servicenow_url",
        )?;
        tokens.insert(
            Service::ServiceNow,
            Arc::new(TokenSource::new(format!("{base}/oauth_token.do"), None, credentials)),
        );
    }
    let settings = HttpSettings {
        base_urls,
        concurrency: args.concurrency.or(config.concurrency).unwrap_or(4).clamp(1, 64),
        max_retries: args.max_retries.min(10),
        max_retry_wait: Duration::from_secs(args.max_retry_wait.min(600)),
        timeout: Duration::from_secs(args.timeout.clamp(1, 600)),
        endpoint_suffixes,
    };
    Ok(Live::new(settings, tokens)?)
}

/// Runs the connectors for each sync of `sv0 serve`: live with sv0.toml's settings, or over an
/// export directory; the snapshot goes back to the API as JSON.
pub struct SyncConnectors {
    /// The connectors and their source.
    pub args: ConnectorArgs,
    /// The tenant named on the command line.
    pub tenant: Option<String>,
    /// `[connectors]` of sv0.toml.
    pub config: ConnectorsConfig,
}

impl sv0_api::syncs::SnapshotProducer for SyncConnectors {
    fn produce(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send + '_>> {
        Box::pin(async move {
            let result =
                run_connectors(&self.args, None, ScanTrigger::Deployment, self.tenant.as_deref(), &self.config, None)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            let failed: Vec<&str> = result.outcomes.iter().filter(|(_, o)| o.failed > 0).map(|(api, _)| *api).collect();
            if !failed.is_empty() {
                tracing::warn!(apis = ?failed, "sync scan is partial");
            }
            serde_json::to_value(&result.snapshot).map_err(|e| e.to_string())
        })
    }
}

/// Prints how every API call went, and what was left out.
pub fn print_outcomes(out: &mut dyn Write, result: &ScanResult) -> anyhow::Result<()> {
    let mut table = crate::render::table(&["api", "calls", "pages", "items", "retries", "status"]);
    for (api, o) in &result.outcomes {
        let status = match &o.first_error {
            Some(error) if o.failed > 0 => format!("FAILED ({} of {}): {error}", o.failed, o.calls),
            _ => "ok".to_string(),
        };
        table.add_row(vec![
            api.to_string(),
            o.calls.to_string(),
            o.pages.to_string(),
            o.items.to_string(),
            o.retries.to_string(),
            status,
        ]);
    }
    writeln!(out, "{table}")?;
    for (reason, count) in &result.dropped {
        writeln!(out, "left out: {count} {reason}")?;
    }
    let failed = result.outcomes.values().filter(|o| o.failed > 0).count();
    if failed > 0 {
        writeln!(
            out,
            "{failed} API(s) failed: the scan is partial, so what they would have shown is kept as unobserved, not removed"
        )?;
    }
    Ok(())
}

/// The outcomes as JSON.
pub fn outcomes_json(result: &ScanResult) -> serde_json::Value {
    json!({
        "apis": result.outcomes.iter().map(|(api, o)| json!({
            "api": api,
            "calls": o.calls,
            "pages": o.pages,
            "items": o.items,
            "retries": o.retries,
            "failed": o.failed,
            "error": o.first_error.as_ref().filter(|_| o.failed > 0),
        })).collect::<Vec<_>>(),
        "dropped": result.dropped,
    })
}

/// Progress on the terminal (hidden when stderr is not one): calls done of planned, pages,
/// entities, rate and ETA.
struct Bar {
    bar: ProgressBar,
    pages: std::sync::atomic::AtomicU64,
    items: std::sync::atomic::AtomicU64,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos}/{len} calls · {msg} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar { bar, pages: 0.into(), items: 0.into() }
    }
}

impl Progress for Bar {
    fn planned(&self, calls: usize) {
        self.bar.inc_length(calls as u64);
    }

    fn page(&self, api: &str, items: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let pages = self.pages.fetch_add(1, Relaxed) + 1;
        let total = self.items.fetch_add(items as u64, Relaxed) + items as u64;
        let seconds = self.bar.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!("{pages} pages · {total} entities · {:.0}/s · {api}", total as f64 / seconds));
    }

    fn call_done(&self, api: &str, error: Option<&str>) {
        if self.bar.length() <= Some(self.bar.position()) {
            self.bar.inc_length(1);
        }
        self.bar.inc(1);
        if let Some(error) = error {
            self.bar.suspend(|| tracing::warn!(api, error, "API call failed"));
        }
    }
}
