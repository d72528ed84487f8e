//! Trusted time for the pack chains: after sealing, the signer asks a Time Stamping Authority
//! (RFC 3161) for a token over each tenant's new checkpoint and appends it to the log as a
//! `checkpoint.timestamped` event on `<tenant>.timestamp`. A TSA that is down or answers
//! wrongly delays timestamping, never sealing: the failure is logged, and the next round (with
//! a growing pause between attempts) asks again for the checkpoint then current.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sv0_domain::events::{Bytes, CheckpointTimestamped, Event, EventPayload, derived_id};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_signer::timestamp::{self, QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE};
use thiserror::Error;
use tracing::{info, warn};

use crate::error::ServiceError;
use crate::{Queries, Service};

/// The largest TSA answer read (a token with its certificate chain is a few KiB).
const MAX_REPLY: usize = 1 << 20;
/// The longest pause between attempts after failures.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// `[timestamping]` of `sv0.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampingConfig {
    /// The TSA's URL (RFC 3161 over HTTP: POST `application/timestamp-query`).
    pub url: String,
    /// The TSA policy to ask for (an object identifier); the token must carry it.
    pub policy: Option<String>,
    /// A client certificate (PEM) for TSAs that authenticate their clients, with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// Seconds to wait for an answer (default 10).
    pub timeout_secs: Option<u64>,
    /// A root certificate (PEM) to trust for the TSA's HTTPS server, besides the system's (a
    /// private TSA).
    pub ca_cert: Option<PathBuf>,
}

/// Why one request for a token failed.
#[derive(Debug, Error)]
pub enum TsaError {
    /// The configuration cannot be used.
    #[error("invalid [timestamping] configuration: {0}")]
    Config(String),
    /// The TSA could not be reached or answered with an error.
    #[error("the TSA at {url} did not answer: {detail}")]
    Unreachable {
        /// Its URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The answer is not a token for what was asked.
    #[error(transparent)]
    Token(#[from] timestamp::TimestampError),
}

/// Asks a TSA for tokens, and paces itself after failures.
#[derive(Debug)]
pub struct Timestamper {
    config: TimestampingConfig,
    /// The private HTTPS root and the client identity, read and checked by `new`.
    root: Option<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    /// Built at the first request: building loads the system's root certificates, which a
    /// command that seals nothing never needs.
    client: std::sync::OnceLock<reqwest::Client>,
    failures: u32,
    next_attempt: Option<Instant>,
    /// The checkpoint size each tenant is known to have a token for (from the log, or
    /// appended here), so that a round in which a chain did not grow reads nothing.
    stamped: std::collections::BTreeMap<TenantId, u64>,
}

impl Timestamper {
    /// A client for the configured TSA (its root and client certificate read and checked now).
    pub fn new(config: TimestampingConfig) -> Result<Timestamper, TsaError> {
        if !(config.url.starts_with("https://") || config.url.starts_with("http://")) {
            return Err(TsaError::Config(format!("url {:?} is not an http(s) URL", config.url)));
        }
        if let Some(policy) = &config.policy {
            // The check each request makes, now rather than at the first seal.
            timestamp::policy_oid(policy)?;
        }
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| TsaError::Config(format!("cannot read {}: {e}", path.display())))
        };
        let root = match &config.ca_cert {
            Some(path) => Some(
                reqwest::Certificate::from_pem(&read(path)?)
                    .map_err(|e| TsaError::Config(format!("{} is not a PEM certificate: {e}", path.display())))?,
            ),
            None => None,
        };
        let identity = match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                Some(
                    reqwest::Identity::from_pem(&pem)
                        .map_err(|e| TsaError::Config(format!("client certificate and key: {e}")))?,
                )
            }
            (None, None) => None,
            _ => return Err(TsaError::Config("client_cert and client_key go together".into())),
        };
        Ok(Timestamper {
            config,
            root,
            identity,
            client: std::sync::OnceLock::new(),
            failures: 0,
            next_attempt: None,
            stamped: Default::default(),
        })
    }

    fn client(&self) -> Result<&reqwest::Client, TsaError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let timeout = Duration::from_secs(self.config.timeout_secs.unwrap_or(10).clamp(1, 300));
        let mut builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
        if let Some(root) = &self.root {
            builder = builder.add_root_certificate(root.clone());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        let client = builder.build().map_err(|e| TsaError::Config(e.to_string()))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The TSA's URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn paused(&self) -> bool {
        self.next_attempt.is_some_and(|at| Instant::now() < at)
    }

    fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let pause = Duration::from_secs(1u64 << self.failures.min(9)).min(MAX_PAUSE);
        self.next_attempt = Some(Instant::now() + pause);
        pause
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// A token over `message`: (the DER request, the DER response), the response checked
    /// against the request (status, imprint, nonce, policy).
    pub async fn stamp(&self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TsaError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| TsaError::Config(format!("no randomness for a nonce: {e}")))?;
        let request = timestamp::request(message, nonce, self.config.policy.as_deref())?;
        let unreachable = |detail: String| TsaError::Unreachable { url: self.config.url.clone(), detail };
        let mut answer = self
            .client()?
            .post(&self.config.url)
            .header("content-type", QUERY_MEDIA_TYPE)
            .body(request.clone())
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(unreachable(format!("HTTP {}", answer.status())));
        }
        let media = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !media.starts_with(REPLY_MEDIA_TYPE) {
            return Err(unreachable(format!("content type {media:?}, not {REPLY_MEDIA_TYPE}")));
        }
        let mut response = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| unreachable(e.to_string()))? {
            if response.len() + chunk.len() > MAX_REPLY {
                return Err(unreachable(format!("an answer over {MAX_REPLY} bytes")));
            }
            response.extend_from_slice(&chunk);
        }
        timestamp::check_response(&request, &response, message)?;
        Ok((request, response))
    }
}

/// The `checkpoint.timestamped` event of a token. Its id names the tenant and checkpoint, so
/// a second token for the same checkpoint is the same event (the log keeps the first).
pub fn timestamp_event(tenant: &TenantId, stamped: CheckpointTimestamped, occurred_at: Timestamp) -> Event {
    use sha2::Digest as _;
    let note = sha2::Sha256::digest(stamped.checkpoint.as_bytes());
    let event_id = derived_id("sv0.timestamp.v1", tenant, &[&stamped.size.to_be_bytes(), &note]);
    Event::of(event_id, tenant, occurred_at, "system:signer", EventPayload::CheckpointTimestamped(stamped))
}

impl<L: EventLog> Queries<L> {
    /// The size of the last checkpoint timestamped for a tenant, and the subject's position.
    async fn last_timestamped(&self, tenant: &TenantId) -> Result<(u64, Expected), ServiceError> {
        let subject = format!("{tenant}.timestamp");
        let Some(seq) = self.log.subject_head(&subject).await? else { return Ok((0, Expected::NoEvents)) };
        let records = self.log.read(seq, Some(seq), 1).await?;
        let size = match records.first().map(|r| sv0_codec::decode_event(&r.data)).transpose()? {
            Some(Event { payload: EventPayload::CheckpointTimestamped(stamped), .. }) => stamped.size,
            _ => 0,
        };
        Ok((size, Expected::LastSeq(seq)))
    }
}

impl<L: EventLog> Service<L> {
    /// Timestamps every tenant's current checkpoint that has no token yet. Failures are logged
    /// and retried at a later round; they never fail the caller.
    pub(crate) async fn timestamp_pending(&mut self) {
        let Some(mut timestamper) = self.timestamper.take() else { return };
        if !timestamper.paused() {
            match self.timestamp_tenants(&mut timestamper).await {
                Ok(()) => timestamper.succeeded(),
                Err(e) => {
                    let pause = timestamper.failed();
                    warn!(tsa = timestamper.url(), error = %e, retry_in_s = pause.as_secs(), "timestamping delayed; the packs are sealed");
                }
            }
        }
        self.timestamper = Some(timestamper);
    }

    async fn timestamp_tenants(
        &mut self,
        timestamper: &mut Timestamper,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        for tenant in self.views.tenants()? {
            let Some(head) = self.views.pack_head(&tenant)? else { continue };
            if timestamper.stamped.get(&tenant).is_some_and(|&done| done >= head.index) {
                continue;
            }
            let (done, expected) = self.last_timestamped(&tenant).await?;
            timestamper.stamped.insert(tenant.clone(), done);
            if done >= head.index {
                continue;
            }
            let (checkpoint, size, root) = self.signed_checkpoint(&tenant)?;
            let (request, response) = timestamper.stamp(checkpoint.as_bytes()).await?;
            let stamped = CheckpointTimestamped {
                size,
                root,
                checkpoint,
                tsa: timestamper.url().to_string(),
                request: Bytes(request),
                response: Bytes(response),
            };
            let event = timestamp_event(&tenant, stamped, Timestamp::now());
            match self.append_expecting(&format!("{tenant}.timestamp"), expected, &event).await {
                Ok(_) => {
                    timestamper.stamped.insert(tenant.clone(), size);
                    info!(%tenant, size, "checkpoint timestamped");
                }
                // Another signer timestamped meanwhile: its token stands.
                Err(ServiceError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
