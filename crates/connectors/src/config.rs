//! `[connectors]` of `sv0.toml`: where the source systems are and what `sv0 scan run` reads.

use serde::Deserialize;

/// `[connectors]` of `sv0.toml`: where the source systems are and what to read. Secrets are
/// never here: they come from the environment or a file (see docs/connectors.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// The Entra tenant id (also `SV0_AZURE_TENANT_ID` or `AZURE_TENANT_ID`).
    pub azure_tenant_id: Option<String>,
    /// The Entra token authority, e.g. `https://login.microsoftonline.us` for US Government.
    pub authority_url: Option<String>,
    /// Microsoft Graph, e.g. `https://graph.microsoft.us`.
    pub graph_url: Option<String>,
    /// Azure Resource Manager, e.g. `https://management.usgovcloudapi.net`.
    pub arm_url: Option<String>,
    /// Log Analytics' query API.
    pub log_analytics_url: Option<String>,
    /// The ServiceNow instance, e.g. `https://contoso.service-now.com`.
    pub servicenow_url: Option<String>,
    /// Where Foundry project endpoints are sent instead of their own hosts (a proxy); by
    /// default each project's endpoint as Azure Resource Manager lists it.
    pub foundry_url: Option<String>,
    /// The national cloud: `public` (default), `usgov`, `usgov-dod` or `china`; it sets the
    /// default base URLs, authority and token scopes.
    pub cloud: Option<String>,
    /// The token scope for Microsoft Graph (default: the cloud's, e.g. `https://graph.microsoft.com/.default`).
    pub graph_scope: Option<String>,
    /// The token scope for Azure Resource Manager (default: the cloud's).
    pub arm_scope: Option<String>,
    /// The token scope for Log Analytics (default: the cloud's, e.g. `https://api.loganalytics.io/.default`).
    pub log_analytics_scope: Option<String>,
    /// The token scope for Foundry (default: the cloud's, `https://ai.azure.com/.default` in public).
    pub foundry_scope: Option<String>,
    /// No longer used: Foundry projects are read from Azure Resource Manager (kept so that
    /// older files still load; `sv0 scan run` warns when it is set).
    pub foundry_project: Option<String>,
    /// No longer used: each project's managed identity is read from Azure Resource Manager.
    pub foundry_principal_id: Option<String>,
    /// The ServiceNow host name recorded on its tables (default: the base URL's host).
    pub servicenow_host: Option<String>,
    /// No longer used: each project's endpoint is read from Azure Resource Manager.
    pub foundry_host: Option<String>,
    /// Subscriptions to read (default: every one the credentials see).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Log Analytics workspace ids holding `StorageBlobLogs`.
    #[serde(default)]
    pub log_analytics_workspaces: Vec<String>,
    /// Days of sign-ins, logs and run steps to read (default 30).
    pub evidence_days: Option<u32>,
    /// Concurrent requests per API (default 4).
    pub concurrency: Option<usize>,
    /// ServiceNow table → data domain, over the built-in map.
    #[serde(default)]
    pub servicenow_classification: std::collections::BTreeMap<String, String>,
}
