//! Trusted time for the pack chains: after sealing, the signer asks a Time Stamping Authority
//! (RFC 3161) for a token over each tenant's new checkpoint and appends it to the log as a
//! `checkpoint.timestamped` event on `<tenant>.timestamp`. A TSA that is down or answers
//! wrongly delays timestamping, never sealing: the failure is logged, and the next round (with
//! a growing pause between attempts) asks again for the checkpoint then current.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sv0_domain::events::{Bytes, CheckpointTimestamped, Event, EventMeta, EventPayload, derived_id};
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
    client: reqwest::Client,
    failures: u32,
    next_attempt: Option<Instant>,
    /// The checkpoint size each tenant is known to have a token for (from the log, or
    /// appended here), so that a round in which a chain did not grow reads nothing.
    stamped: std::collections::BTreeMap<TenantId, u64>,
}

impl Timestamper {
    /// A client for the configured TSA (its client certificate read now).
    pub fn new(config: TimestampingConfig) -> Result<Timestamper, TsaError> {
        if !(config.url.starts_with("https://") || config.url.starts_with("http://")) {
            return Err(TsaError::Config(format!("url {:?} is not an http(s) URL", config.url)));
        }
        if let Some(policy) = &config.policy {
            // The same check the request makes, now rather than at the first seal.
            timestamp::request(b"", [1; 8], Some(policy))?;
        }
        let timeout = Duration::from_secs(config.timeout_secs.unwrap_or(10).clamp(1, 300));
        let mut builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| TsaError::Config(format!("cannot read {}: {e}", path.display())))?;
            let root = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| TsaError::Config(format!("{} is not a PEM certificate: {e}", path.display())))?;
            builder = builder.add_root_certificate(root);
        }
        match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|e| TsaError::Config(format!("cannot read {}: {e}", path.display())))
                };
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| TsaError::Config(format!("client certificate and key: {e}")))?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(TsaError::Config("client_cert and client_key go together".into())),
        }
        let client = builder.build().map_err(|e| TsaError::Config(e.to_string()))?;
        Ok(Timestamper { config, client, failures: 0, next_attempt: None, stamped: Default::default() })
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
            .client
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
    Event {
        meta: EventMeta {
            event_id: derived_id("sv0.timestamp.v1", tenant, &[&stamped.size.to_be_bytes(), &note]),
            tenant_id: tenant.clone(),
            occurred_at,
            actor: "system:signer".to_string(),
            causation_id: None,
            correlation_id: None,
            credential: None,
        },
        payload: EventPayload::CheckpointTimestamped(stamped),
    }
}

impl<L: EventLog> Queries<L> {
    /// Every `checkpoint.timestamped` event of a tenant, in log order, read from the log.
    pub async fn timestamps(&self, tenant: &TenantId) -> Result<Vec<CheckpointTimestamped>, ServiceError> {
        let subject = format!("{tenant}.timestamp");
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let records = self.log.read(from, None, 1024).await?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            for record in records.iter().filter(|r| r.subject == subject) {
                if let EventPayload::CheckpointTimestamped(stamped) = sv0_codec::decode_event(&record.data)?.payload {
                    out.push(stamped);
                }
            }
        }
        Ok(out)
    }

    /// Writes each of a tenant's timestamped checkpoints to `dir` as `timestamp-NNNNNN.txt` (the
    /// note), `.tsq` (the request) and `.tsr` (the TSA's response); returns how many.
    pub async fn export_timestamps(&self, tenant: &TenantId, dir: &std::path::Path) -> Result<usize, ServiceError> {
        let stamps = self.timestamps(tenant).await?;
        for stamp in &stamps {
            let stem = timestamp::file_stem(stamp.size);
            for (ext, bytes) in
                [("txt", stamp.checkpoint.as_bytes()), ("tsq", &stamp.request.0[..]), ("tsr", &stamp.response.0[..])]
            {
                let path = dir.join(format!("{stem}.{ext}"));
                std::fs::write(&path, bytes).map_err(|source| ServiceError::Write { path, source })?;
            }
        }
        Ok(stamps.len())
    }

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
