//! GitHub deployment protection rules: `POST /integrations/github/deployment-protection`.
//!
//! GitHub calls it with the `deployment_protection_rule` webhook when a job deploys to a
//! protected environment. The body's HMAC-SHA256 (`X-Hub-Signature-256`) is checked over the
//! raw bytes in constant time before anything else; a bad or missing signature is `401` and
//! nothing happens, and a signed payload seen before is `409` — whatever its (unsigned)
//! `X-GitHub-Delivery` header says, and across restarts (the payloads' SHA-256 are kept in the
//! data directory's `github-deliveries`). The repository's environment is
//! mapped to a scope (`[[github.environment]]` of `sv0.toml`; unmapped environments are
//! rejected), a sync of the deployment runs, and its verdict goes back to the payload's
//! `deployment_callback_url` as `{environment_name, state: approved|rejected, comment}` with
//! a Markdown comment of at most 1,024 characters. The callback authenticates as the GitHub
//! App: an RS256 JWT signed with the App's key buys an installation token.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use serde_json::json;
use sv0_domain::TenantId;
use sv0_log::EventLog;
use tracing::{info, warn};

use crate::ApiState;
use crate::problem::Problem;
use crate::syncs::{SyncRecord, SyncRequest, SyncStatus};

/// The longest review comment GitHub takes.
pub const MAX_COMMENT: usize = 1024;
/// Delivery ids remembered to refuse replays.
const REMEMBERED_DELIVERIES: usize = 100_000;

/// A GitHub App ready to take webhooks: secrets loaded, key parsed.
pub struct GitHubApp {
    tenant: TenantId,
    secret: ring::hmac::Key,
    app_id: String,
    key: RsaKeyPair,
    api_url: String,
    report_url: Option<String>,
    environments: Vec<GitHubEnvironment>,
    deliveries: Mutex<(BTreeSet<String>, VecDeque<String>)>,
    /// Where the payloads seen are kept across restarts.
    deliveries_file: Option<std::path::PathBuf>,
    http: reqwest::Client,
}

impl std::fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the key.
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Why the GitHub configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GitHubSetupError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("[github] in sv0.toml: {0}")]
    Invalid(String),
}

impl GitHubApp {
    /// Loads the secret and the key the configuration names; callbacks go through `http`.
    pub fn load(config: &GitHubConfig, http: reqwest::Client) -> Result<GitHubApp, GitHubSetupError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| GitHubSetupError::Read { path: path.to_path_buf(), source })
        };
        let secret = read(&config.webhook_secret_file)?;
        let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
        if secret.is_empty() {
            return Err(GitHubSetupError::Invalid("the webhook secret file is empty".into()));
        }
        let pem = String::from_utf8_lossy(&read(&config.private_key_file)?).into_owned();
        let key = parse_rsa_key(&pem).map_err(GitHubSetupError::Invalid)?;
        let tenant = TenantId::new(&config.tenant).map_err(|e| GitHubSetupError::Invalid(e.to_string()))?;
        for env in &config.environments {
            sv0_domain::scope::Scope::parse(&env.scope).map_err(|e| GitHubSetupError::Invalid(e.to_string()))?;
        }
        Ok(GitHubApp {
            tenant,
            secret: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            app_id: config.app_id.clone(),
            key,
            api_url: config
                .api_url
                .clone()
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .into(),
            report_url: config.report_url.clone(),
            environments: config.environments.clone(),
            deliveries: Mutex::new((BTreeSet::new(), VecDeque::new())),
            deliveries_file: None,
            http,
        })
    }

    /// Keeps the payloads seen in `file` (one SHA-256 per line), and reads those a previous
    /// run kept, so that a replay is refused after a restart too.
    pub fn remember_in(mut self, file: std::path::PathBuf) -> Result<GitHubApp, GitHubSetupError> {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(GitHubSetupError::Read { path: file, source }),
        };
        let lines: Vec<&str> = text.lines().filter(|l| l.len() == 64).collect();
        let kept = &lines[lines.len().saturating_sub(REMEMBERED_DELIVERIES)..];
        {
            let mut guard = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
            for digest in kept {
                if guard.0.insert((*digest).to_string()) {
                    guard.1.push_back((*digest).to_string());
                }
            }
        }
        if lines.len() > kept.len() {
            // Compacted to what is remembered.
            let mut body = kept.join("\n");
            body.push('\n');
            std::fs::write(&file, body).map_err(|source| GitHubSetupError::Read { path: file.clone(), source })?;
        }
        self.deliveries_file = Some(file);
        Ok(self)
    }

    /// The App's JWT (RS256, valid ten minutes from a minute ago, as GitHub asks).
    fn jwt(&self, now: i64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims =
            URL_SAFE_NO_PAD.encode(json!({ "iat": now - 60, "exp": now + 540, "iss": self.app_id }).to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| "cannot sign the App JWT".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// An installation token for `installation`.
    async fn installation_token(&self, installation: u64) -> Result<String, String> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs()
                as i64;
        let url = format!("{}/app/installations/{installation}/access_tokens", self.api_url);
        let response = self
            .http
            .post(&url)
            .bearer_auth(self.jwt(now)?)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| format!("POST {url}: {e}"))?;
        match body["token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_string()),
            _ => Err(format!("POST {url} answered {status}")),
        }
    }

    /// Remembers a signed payload by its SHA-256; false when it was seen before.
    fn first_delivery(&self, id: &str) -> bool {
        let mut guard = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, order) = &mut *guard;
        if !seen.insert(id.to_string()) {
            return false;
        }
        if let Some(file) = &self.deliveries_file {
            use std::io::Write as _;
            let written =
                std::fs::OpenOptions::new().create(true).append(true).open(file).and_then(|mut f| writeln!(f, "{id}"));
            if let Err(e) = written {
                warn!(path = %file.display(), error = %e, "a GitHub delivery could not be kept for after a restart");
            }
        }
        order.push_back(id.to_string());
        if order.len() > REMEMBERED_DELIVERIES
            && let Some(old) = order.pop_front()
        {
            seen.remove(&old);
        }
        true
    }
}

/// A PKCS#1 (`BEGIN RSA PRIVATE KEY`, as GitHub gives App keys) or PKCS#8 PEM RSA key.
fn parse_rsa_key(pem: &str) -> Result<RsaKeyPair, String> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the App private key is not PEM".to_string())?;
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaKeyPair::from_der(&der).map_err(|e| format!("the App private key is not an RSA key: {e}"))
    } else {
        RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("the App private key is not an RSA key: {e}"))
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
pub fn signature_valid(key: &ring::hmac::Key, header: Option<&str>, body: &[u8]) -> bool {
    let Some(tag) = header.and_then(|h| h.strip_prefix("sha256=")).and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    ring::hmac::verify(key, body, &tag).is_ok()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Payload {
    action: String,
    environment: String,
    deployment_callback_url: String,
    repository: Repository,
    installation: Installation,
    deployment: Option<Deployment>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Repository {
    full_name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Installation {
    id: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Deployment {
    sha: Option<String>,
}

/// The webhook.
pub(crate) async fn deployment_protection<L: EventLog + Clone + Send + Sync + 'static>(
    State(state): State<Arc<ApiState<L>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let Some(app) = state.github.clone() else {
        return Err(Problem::not_found("GitHub deployment protection is not configured ([github] in sv0.toml)"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !signature_valid(&app.secret, header("x-hub-signature-256"), &body) {
        warn!("a GitHub webhook with a bad or missing signature was refused");
        return Err(Problem::invalid_signature());
    }
    match header("x-github-event") {
        Some("ping") => return Ok((StatusCode::OK, axum::Json(json!({ "ok": true }))).into_response()),
        Some("deployment_protection_rule") => {}
        other => return Err(Problem::invalid_request(format!("unexpected event {other:?}"))),
    }
    let delivery = header("x-github-delivery").ok_or_else(|| Problem::invalid_request("no X-GitHub-Delivery"))?;
    // The delivery header is not signed: a replay is recognised by the signed payload itself.
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
    if !app.first_delivery(&digest) {
        return Err(Problem::replayed(format!(
            "this payload (delivery {delivery}, sha256 {digest}) was already received"
        )));
    }
    let payload: Payload = sv0_codec::json::from_slice(&body)
        .map_err(|e| Problem::invalid_request(format!("not a deployment_protection_rule payload: {e}")))?;
    if payload.action != "requested" {
        return Ok((StatusCode::OK, axum::Json(json!({ "ignored": payload.action }))).into_response());
    }
    if !crate::url_within(&app.api_url, &payload.deployment_callback_url) {
        return Err(Problem::invalid_request("the callback URL is not on the configured GitHub API"));
    }
    let scope = app
        .environments
        .iter()
        .find(|e| e.repository == payload.repository.full_name && e.environment == payload.environment)
        .map(|e| e.scope.clone());
    let principal = format!("github:{}", payload.repository.full_name);
    let sync = match &scope {
        Some(scope) => Some(crate::syncs::start(
            &state,
            &app.tenant,
            &principal,
            SyncRequest {
                scope: Some(scope.clone()),
                environment: Some(payload.environment.clone()),
                repository: Some(payload.repository.full_name.clone()),
                run_id: run_id(&payload.deployment_callback_url),
                commit: payload.deployment.as_ref().and_then(|d| d.sha.clone()),
                targets: Vec::new(),
                // A deployment protection rule fires before the deployment job runs.
                trigger: Some(sv0_domain::snapshot::ScanTrigger::PreDeployment),
            },
        )?),
        None => None,
    };
    let sync_id = sync.as_ref().map(|s| s.sync_id.clone());
    let state2 = Arc::clone(&state);
    tokio::spawn(async move {
        let (verdict, comment) = match (&scope, sync) {
            (Some(scope), Some(sync)) => judge(&state2, &app, &sync.sync_id, scope, &payload.environment).await,
            _ => (
                "rejected",
                format!(
                    "**SV0: rejected.** No SV0 scope is configured for `{}` environment `{}`; add it under `[[github.environment]]`.",
                    payload.repository.full_name, payload.environment
                ),
            ),
        };
        if let Err(e) = callback(&app, &payload, verdict, &comment).await {
            warn!(error = %e, "the GitHub deployment callback failed");
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "sync_id": sync_id }))).into_response())
}

/// The workflow run id in `.../actions/runs/{id}/deployment_protection_rule`.
fn run_id(callback: &str) -> Option<String> {
    let mut parts = callback.rsplit('/');
    parts.next()?;
    parts.next().map(str::to_string)
}

/// Waits for the sync and words the verdict.
async fn judge<L: EventLog>(
    state: &ApiState<L>,
    app: &GitHubApp,
    sync_id: &str,
    scope: &str,
    environment: &str,
) -> (&'static str, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    let record = loop {
        match state.syncs.get(&app.tenant, sync_id) {
            Some(r) if r.status.finished() => break Some(r),
            _ if tokio::time::Instant::now() >= deadline => break None,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let Some(record) = record else {
        return ("rejected", format!("**SV0: rejected.** Sync `{sync_id}` did not finish in 15 minutes."));
    };
    comment(app, &record, scope, environment)
}

/// The review comment: verdict, counts, reasons, link; cut to `MAX_COMMENT` characters.
fn comment(app: &GitHubApp, sync: &SyncRecord, scope: &str, environment: &str) -> (&'static str, String) {
    let decision = sync.disposition.as_ref().map(|d| serde_json::to_value(d.decision).unwrap_or_default());
    let approved =
        sync.status == SyncStatus::Completed && decision.as_ref().and_then(|d| d.as_str()) == Some("approved");
    let verdict = if approved { "approved" } else { "rejected" };
    let word = match (sync.status, decision.as_ref().and_then(|d| d.as_str())) {
        (SyncStatus::Completed, Some(d)) => d.replace('_', " "),
        (SyncStatus::Quarantined, _) => "held by a deletion breaker".to_string(),
        (SyncStatus::Completed, None) => "no approved baseline".to_string(),
        _ => "the scan failed".to_string(),
    };
    let mut text = format!("**SV0: {word}** for `{scope}` → `{environment}`.");
    if let Some(delta) = &sync.delta {
        text.push_str(&format!(
            " {} new path(s), {} flagged for review, against baseline v{}.",
            delta.new_paths, delta.flagged, delta.baseline_version
        ));
    }
    if let Some(error) = &sync.error {
        text.push_str(&format!(" {error}."));
    }
    let link = app.report_url.as_ref().map(|url| format!("\n\n[Full report]({url})")).unwrap_or_default();
    if let Some(disposition) = &sync.disposition {
        for reason in disposition.reasons.iter().take(8) {
            text.push_str(&format!("\n- {}", reason.text));
        }
    }
    (verdict, cut(&text, MAX_COMMENT.saturating_sub(link.chars().count())) + &link)
}

/// `text` cut to `max` characters, ending in `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

async fn callback(app: &GitHubApp, payload: &Payload, verdict: &str, comment: &str) -> Result<(), String> {
    let token = app.installation_token(payload.installation.id).await?;
    let response = app
        .http
        .post(&payload.deployment_callback_url)
        .bearer_auth(token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .json(&json!({ "environment_name": payload.environment, "state": verdict, "comment": comment }))
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", payload.deployment_callback_url))?;
    if !response.status().is_success() {
        return Err(format!("POST {} answered {}", payload.deployment_callback_url, response.status()));
    }
    info!(environment = %payload.environment, verdict, "answered GitHub's deployment protection rule");
    Ok(())
}

/// `[github]` of `sv0.toml`: a GitHub App whose deployment protection rule calls SV0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// The tenant the App's deployments belong to.
    pub tenant: String,
    /// A file holding the webhook secret (never the secret itself in this file).
    pub webhook_secret_file: std::path::PathBuf,
    /// The App's id (the JWT's issuer).
    pub app_id: String,
    /// The App's private key (PEM, as GitHub gives it).
    pub private_key_file: std::path::PathBuf,
    /// The REST API's base URL (GitHub Enterprise Server, tests) [default: https://api.github.com].
    pub api_url: Option<String>,
    /// A link to the full report, put in the review comment.
    pub report_url: Option<String>,
    /// Which scope each repository's environment is judged by; others are rejected.
    #[serde(default, rename = "environment")]
    pub environments: Vec<GitHubEnvironment>,
}

/// `[[github.environment]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubEnvironment {
    /// `owner/name`.
    pub repository: String,
    /// The environment's name.
    pub environment: String,
    /// The scope judged.
    pub scope: String,
}
