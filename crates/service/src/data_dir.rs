//! The data directory: where an installation keeps its log, views, keys and configuration.
//!
//! ```text
//! <data-dir>/
//!   log.redb         the embedded event log (the source of truth)
//!   views.redb       projections; disposable, `sv0 rebuild` refolds them from the log
//!   keys/            signing.key (PKCS#8, 0600) and signing.pub.pem; the directory is 0700
//!   sv0.toml         configuration (optional)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ServiceError;

/// Environment variable naming the approver for CLI approvals.
pub const PRINCIPAL_ENV: &str = "SV0_PRINCIPAL";

/// The file that marks a data directory as an audit replay.
const REPLAY_MARKER: &str = "REPLAY.json";

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    read_only: bool,
}

impl DataDir {
    /// Creates the directory if needed.
    pub fn create(root: impl AsRef<Path>) -> Result<DataDir, ServiceError> {
        let root = root.as_ref().to_path_buf();
        let existed = root.exists();
        fs::create_dir_all(&root).map_err(|source| ServiceError::DataDir { path: root.clone(), source })?;
        if !existed {
            // Only the host's user reads the log, the views and the keys.
            restrict(&root, 0o700).map_err(|source| ServiceError::DataDir { path: root.clone(), source })?;
        }
        // An audit replay is read-only by definition: its files are opened so that nothing can
        // write to them.
        let read_only = root.join(REPLAY_MARKER).exists();
        Ok(DataDir { root, read_only })
    }

    /// Whether the directory's files are opened read-only whatever the file system allows.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Forgets that the log and the views closed cleanly, so that their next open checks every
    /// page (`sv0_log::file`). Nothing is removed in a read-only directory, whose files are
    /// always checked.
    pub fn distrust_files(&self) {
        if !self.read_only {
            sv0_log::file::distrust(&self.log_path());
            sv0_log::file::distrust(&self.views_path());
        }
    }

    /// Makes the data directory's own files (the log, the views) readable by the host's user
    /// only (0600), as they are created with the process's umask.
    pub fn restrict_files(&self) -> Result<(), ServiceError> {
        if self.read_only {
            return Ok(());
        }
        for path in [self.log_path(), self.views_path()] {
            if path.is_file() {
                restrict(&path, 0o600).map_err(|source| ServiceError::DataDir { path: path.clone(), source })?;
            }
        }
        Ok(())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.redb")
    }

    /// The views file.
    pub fn views_path(&self) -> PathBuf {
        self.root.join("views.redb")
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("sv0.toml")
    }

    /// The marker of an audit replay directory (`sv0 replay`), which is read-only.
    pub fn replay_marker(&self) -> PathBuf {
        self.root.join(REPLAY_MARKER)
    }

    /// The audit replay this directory holds, if it is one.
    pub fn replay(&self) -> Option<serde_json::Value> {
        let text = fs::read_to_string(self.replay_marker()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Reads the configuration; a missing file is an empty configuration.
    pub fn config(&self) -> Result<Config, ServiceError> {
        let path = self.config_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ServiceError::DataDir { path, source }),
        };
        toml::from_str(&text).map_err(|e| ServiceError::Config { path, message: e.to_string() })
    }

    /// The approver for CLI approvals: `SV0_PRINCIPAL`, else the configuration's principal.
    pub fn principal(&self) -> Result<String, ServiceError> {
        if let Ok(principal) = std::env::var(PRINCIPAL_ENV)
            && !principal.trim().is_empty()
        {
            return Ok(principal.trim().to_string());
        }
        self.config()?
            .identity
            .and_then(|i| i.principal)
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| ServiceError::NoPrincipal { path: self.config_path() })
    }
}

/// `sv0.toml`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who the CLI acts as.
    pub identity: Option<IdentityConfig>,
    /// GitHub deployment protection rules (`sv0 serve`).
    pub github: Option<GitHubConfig>,
    /// Azure DevOps "Invoke REST API" checks (`sv0 serve`).
    pub azure_devops: Option<AzureDevOpsConfig>,
    /// OIDC sign-in to the API (`sv0 serve`).
    pub oidc: Option<OidcConfig>,
    /// The connectors of `sv0 scan run`.
    pub connectors: Option<ConnectorsConfig>,
    /// How resource tags classify data; `sv0 policy set` records it in the policy.
    pub classification: Option<ClassificationConfig>,
}

/// `[classification]` of `sv0.toml`: which tags classify data and how their values map to
/// domains. It decides paths, so it takes effect as part of the policy: `sv0 policy set`
/// records it (a `policy.set` event), and a replay classifies as the policy in force then did.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// Tag keys whose value names a data domain, in order (default `data-domain`,
    /// `DataClassification`, `Classification`).
    pub tag_keys: Option<Vec<String>>,
    /// Tag value → domain id (values not listed name the domain of their own slug).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
    /// Domains defined or redefined over the built-in ones (`[[classification.domain]]` with
    /// `id`, `name`, `sensitive`).
    #[serde(default)]
    pub domain: Vec<sv0_domain::model::DataDomain>,
}

impl ClassificationConfig {
    /// The classification these settings give, over the built-in one.
    pub fn classification(&self) -> sv0_domain::policy::Classification {
        let mut out = sv0_domain::policy::Classification::default();
        if let Some(keys) = &self.tag_keys {
            out.tag_keys.clone_from(keys);
        }
        out.values.clone_from(&self.values);
        for domain in &self.domain {
            match out.domains.iter_mut().find(|d| d.id == domain.id) {
                Some(known) => *known = domain.clone(),
                None => out.domains.push(domain.clone()),
            }
        }
        out
    }
}

/// `[connectors]` of `sv0.toml`: where the source systems are and what to read. Secrets are
/// never here: they come from the environment or a file (see docs/connectors.md).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
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

/// `[oidc]` of `sv0.toml`: JWTs of an identity provider accepted as bearer tokens.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` the tokens must carry, e.g. `https://login.microsoftonline.com/<tenant id>/v2.0`.
    pub issuer: String,
    /// The `aud` they must carry, e.g. `api://sv0`.
    pub audience: String,
    /// The SV0 tenant its users act for.
    pub tenant: String,
    /// The provider's signing keys (JWKS) in a file...
    pub jwks_file: Option<PathBuf>,
    /// ... or at an `https` URL, fetched when the server starts and when a JWT names a key the
    /// set does not hold.
    pub jwks_url: Option<String>,
    /// The claim naming the principal [default: `<issuer>#<oid>`, else `<issuer>#<sub>`].
    pub principal_claim: Option<String>,
    /// The claim listing roles (`SV0.Approver` or `approver`) [default: roles].
    pub roles_claim: Option<String>,
}

/// `[azure_devops]` of `sv0.toml`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureDevOpsConfig {
    /// The organisation URLs (`$(system.CollectionUri)`, e.g. `https://dev.azure.com/contoso/`)
    /// a check may ask to be called back at; any other is refused, so that a token holder
    /// cannot make SV0 send requests elsewhere.
    pub collection_urls: Vec<String>,
}

/// `[github]` of `sv0.toml`: a GitHub App whose deployment protection rule calls SV0.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// The tenant the App's deployments belong to.
    pub tenant: String,
    /// A file holding the webhook secret (never the secret itself in this file).
    pub webhook_secret_file: PathBuf,
    /// The App's id (the JWT's issuer).
    pub app_id: String,
    /// The App's private key (PEM, as GitHub gives it).
    pub private_key_file: PathBuf,
    /// The REST API's base URL (GitHub Enterprise Server, tests) [default: https://api.github.com].
    pub api_url: Option<String>,
    /// A link to the full report, put in the review comment.
    pub report_url: Option<String>,
    /// Which scope each repository's environment is judged by; others are rejected.
    #[serde(default, rename = "environment")]
    pub environments: Vec<GitHubEnvironment>,
}

/// `[[github.environment]]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitHubEnvironment {
    /// `owner/name`.
    pub repository: String,
    /// The environment's name.
    pub environment: String,
    /// The scope judged.
    pub scope: String,
}

/// `[identity]` of `sv0.toml`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The principal recorded as approver, e.g. `alice@contoso.example`.
    pub principal: Option<String>,
}

/// Sets a path's permission bits (Unix; elsewhere the platform's defaults stand).
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}
