//! `sv0.toml`: the installation's configuration, read by the binary. Each section belongs to
//! the crate that uses it (`[connectors]` to `sv0-connectors`, `[github]`, `[oidc]` and
//! `[azure_devops]` to `sv0-api`); this file assembles them and owns `[identity]` and
//! `[classification]`. A missing file is an empty configuration; an unknown key is an error.

use std::fs;

use anyhow::Context;
use serde::Deserialize;
use sv0_api::azure_devops::AzureDevOpsConfig;
use sv0_api::github::GitHubConfig;
use sv0_api::oidc::OidcConfig;
use sv0_connectors::ConnectorsConfig;
use sv0_service::DataDir;

/// Environment variable naming the approver for CLI approvals.
pub const PRINCIPAL_ENV: &str = "SV0_PRINCIPAL";

/// Reads the data directory's `sv0.toml`; a missing file is an empty configuration.
pub fn read(data_dir: &DataDir) -> anyhow::Result<Config> {
    let path = data_dir.config_path();
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid configuration {}: {e}", path.display()))
}

/// The approver for CLI approvals: `SV0_PRINCIPAL`, else the configuration's principal.
pub fn principal(data_dir: &DataDir) -> anyhow::Result<String> {
    if let Ok(principal) = std::env::var(PRINCIPAL_ENV)
        && !principal.trim().is_empty()
    {
        return Ok(principal.trim().to_string());
    }
    read(data_dir)?.identity.and_then(|i| i.principal).filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "no approver identity is configured (approvals and key rotations record who acted). Set SV0_PRINCIPAL or `principal` under [identity] in {}",
            data_dir.config_path().display()
        )
    })
}

/// `sv0.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// The RFC 3161 Time Stamping Authority asked for a token over each new checkpoint.
    pub timestamping: Option<sv0_service::timestamping::TimestampingConfig>,
    /// The signing key in a PKCS #11 token instead of a key file.
    pub signing: Option<sv0_signer::pkcs11::Pkcs11Config>,
}

/// Applies the evidence settings to a service: the `[signing]` key store (a PKCS #11 token)
/// and the `[timestamping]` TSA, when configured.
pub fn apply<L: sv0_log::EventLog>(
    mut service: sv0_service::Service<L>,
    config: &Config,
) -> anyhow::Result<sv0_service::Service<L>> {
    if let Some(signing) = &config.signing {
        service = service.with_key_store(sv0_signer::KeyStore::Pkcs11(signing.clone()));
    }
    if let Some(timestamping) = &config.timestamping {
        service = service.with_timestamping(sv0_service::timestamping::Timestamper::new(timestamping.clone())?);
    }
    Ok(service)
}

/// `[classification]` of `sv0.toml`: which tags classify data and how their values map to
/// domains. It decides paths, so it takes effect as part of the policy: `sv0 policy set`
/// records it (a `policy.set` event), and a replay classifies as the policy in force then did.
#[derive(Debug, Clone, Default, Deserialize)]
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

/// `[identity]` of `sv0.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The principal recorded as approver, e.g. `alice@contoso.example`.
    pub principal: Option<String>,
}
