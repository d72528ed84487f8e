//! The JetStream backend of the `EventLog` contract: `JetStreamLog`.
//!
//! The only crate that knows NATS subjects and headers. One stream (`SV0_LOG` by default)
//! captures `sv0.log.>`; an `EventLog` subject `<tenant>.<category>` becomes the NATS subject
//! `sv0.log.<tenant>.<category>`, and a log position is the stream sequence.
//!
//! Stream configuration, chosen for an audit log (see `StreamSettings`): file storage, replicas
//! set explicitly, `deny_delete` and `deny_purge`, no limits and so no discard of old events, a
//! duplicate window, a maximum message size, direct gets allowed.
//!
//! Appends: `Nats-Msg-Id` is the event id (the server drops duplicates inside the duplicate
//! window); `Sv0-Record-Sha256` is `sv0_log::record_digest` of the subject, the id and the
//! payload, checked on every read, so a message whose bytes changed (or that SV0 did not
//! write) is `ReadError::Corrupt` at its position. A batch with an expectation publishes its events one after another, each carrying
//! `Nats-Expected-Last-Subject-Sequence` — the caller's expectation for the first, the previous
//! event's position for the rest — so no other writer can slip in between and two writers with
//! the same expectation cannot both win. A batch without an expectation is pipelined: all
//! publishes are sent, then every ack is awaited. Every ack is awaited; none is dropped.
//!
//! Unlike the embedded log, a batch is not atomic here: a crash can leave a prefix of it. SV0's
//! multi-event facts end with a commit marker (`scan.completed`, the last `event.fragment`) and
//! readers apply nothing before it, so a prefix is inert, and a retry with the same event ids
//! completes it.

pub mod bench;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;
use async_nats::jetstream::{self, consumer, stream};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sv0_log::{AppendError, Appended, BackendError, EventLog, Expected, NewEvent, ReadError, Record, Seq};
use thiserror::Error;
use tracing::{debug, info, warn};

pub use version::ServerVersion;

/// The NATS subject prefix of the log.
pub const SUBJECT_PREFIX: &str = "sv0.log";
/// Default stream name.
pub const DEFAULT_STREAM: &str = "SV0_LOG";
/// The stream of derived signals for SOC consumers.
pub const SIGNALS_STREAM: &str = "SV0_SIGNALS";
/// The NATS subject prefix of signals: `sv0.signals.<tenant>.<type>`.
pub const SIGNALS_PREFIX: &str = "sv0.signals";

/// One SOC signal to publish: this crate alone turns it into a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalMessage {
    /// Stable per signal: the `Nats-Msg-Id`, so a regenerated signal is a duplicate.
    pub id: String,
    /// The tenant it is about.
    pub tenant: String,
    /// Its type (`drift.detected`, `finding.opened`, ...).
    pub kind: String,
    /// The CloudEvent, as JSON.
    pub payload: Vec<u8>,
}

impl SignalMessage {
    /// `sv0.signals.<tenant>.<type>`; a tenant or type that would add or empty a token of the
    /// subject (a space, `*`, `>`, an empty part) is refused.
    pub fn subject(&self) -> Result<String, AppendError> {
        let subject = format!("{SIGNALS_PREFIX}.{}.{}", self.tenant, self.kind);
        let fine = |part: &str| {
            !part.is_empty() && part.split('.').all(|t| !t.is_empty()) && !part.contains([' ', '*', '>', '\t', '\n'])
        };
        if fine(&self.tenant) && !self.tenant.contains('.') && fine(&self.kind) {
            Ok(subject)
        } else {
            Err(AppendError::InvalidSubject(subject))
        }
    }
}
/// Bytes kept free under the server's `max_payload` for headers.
const HEADER_ROOM: usize = 1024;
/// How long a read waits for one message before it resumes with a new consumer.
const MESSAGE_WAIT: Duration = Duration::from_secs(10);
/// How long a read keeps resuming without any progress before it fails.
const READ_PATIENCE: Duration = Duration::from_secs(60);
/// Messages per pull request of the log's ordered consumers (see `ordered`).
const PULL_BATCH: i64 = 24;
/// The header carrying a record's checksum.
const DIGEST_HEADER: &str = "Sv0-Record-Sha256";

/// Publishes awaiting their ack at most, on the pipelined paths. The client's own limit
/// (`max_ack_inflight`, 5,000 by default) makes a publish past it wait for a permit that only
/// an awaited ack returns: a pipeline that awaits nothing until the end deadlocks there.
const ACKS_IN_FLIGHT: usize = 1024;

/// How to authenticate to NATS.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials.
    #[default]
    None,
    /// A `.creds` file (JWT and NKey seed).
    File(PathBuf),
    /// User and password.
    UserPassword(String, String),
    /// A token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs or error messages.
        match self {
            Credentials::None => f.write_str("none"),
            Credentials::File(path) => write!(f, "creds file {}", path.display()),
            Credentials::UserPassword(user, _) => write!(f, "user {user}"),
            Credentials::Token(_) => f.write_str("token"),
        }
    }
}

impl Credentials {
    /// Reads credentials from the environment: `SV0_NATS_CREDS` (a `.creds` file),
    /// `SV0_NATS_USER` with `SV0_NATS_PASSWORD`, or `SV0_NATS_TOKEN`.
    pub fn from_env() -> Credentials {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(path) = var("SV0_NATS_CREDS") {
            Credentials::File(PathBuf::from(path))
        } else if let (Some(user), Some(password)) = (var("SV0_NATS_USER"), var("SV0_NATS_PASSWORD")) {
            Credentials::UserPassword(user, password)
        } else if let Some(token) = var("SV0_NATS_TOKEN") {
            Credentials::Token(token)
        } else {
            Credentials::None
        }
    }
}

/// The stream's configuration; every field is set explicitly and checked on an existing stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Replicas: 1 for a single server, 3 for a three-node cluster.
    pub replicas: usize,
    /// How long the server remembers event ids for deduplication.
    pub duplicate_window: Duration,
    /// Largest event accepted (further capped by the server's `max_payload`).
    pub max_event_size: usize,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            name: DEFAULT_STREAM.to_string(),
            replicas: 1,
            duplicate_window: Duration::from_secs(3600),
            max_event_size: sv0_log::DEFAULT_MAX_EVENT_SIZE,
        }
    }
}

/// Why the JetStream log could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The URL list is not `nats://HOST:PORT[,HOST:PORT...]`.
    #[error("invalid NATS URL {0:?}: use nats://HOST:PORT[,HOST:PORT...]")]
    Url(String),
    /// The credentials file could not be read.
    #[error("cannot read NATS credentials file {path}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No server could be reached.
    #[error("cannot connect to NATS at {url}")]
    Connect {
        /// The URLs.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server lacks something SV0 relies on.
    #[error("nats-server {version} is not supported: {reason}")]
    UnsupportedServer {
        /// The server's version.
        version: String,
        /// What is missing.
        reason: String,
    },
    /// JetStream is not enabled, or the stream could not be created or read.
    #[error("cannot set up the JetStream stream {stream}")]
    Stream {
        /// The stream.
        stream: String,
        /// The cause.
        #[source]
        source: BackendError,
    },
    /// The stream exists with a configuration unfit for an audit log.
    #[error(
        "the existing stream {stream} is unfit for an audit log: {problem}. Fix it with the nats CLI or use another stream"
    )]
    Misconfigured {
        /// The stream.
        stream: String,
        /// What is wrong.
        problem: String,
    },
}

/// The event log on a JetStream stream.
#[derive(Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    settings: StreamSettings,
    max_event_size: usize,
    server_version: ServerVersion,
}

fn backend(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::new(what.to_string(), error)
}

/// Splits `nats://h1:p1,h2:p2` into server addresses.
pub fn parse_urls(url: &str) -> Result<Vec<ServerAddr>, ConnectError> {
    let rest = url.strip_prefix("nats://").ok_or_else(|| ConnectError::Url(url.to_string()))?;
    rest.split(',')
        .filter(|host| !host.trim().is_empty())
        .map(|host| {
            format!("nats://{}", host.trim()).parse::<ServerAddr>().map_err(|_| ConnectError::Url(url.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|addrs| if addrs.is_empty() { Err(ConnectError::Url(url.to_string())) } else { Ok(addrs) })
}

impl JetStreamLog {
    /// Connects, checks the server version, and creates or checks the stream.
    pub async fn connect(
        url: &str,
        credentials: Credentials,
        settings: StreamSettings,
    ) -> Result<JetStreamLog, ConnectError> {
        let addrs = parse_urls(url)?;
        let mut options = match &credentials {
            Credentials::None => async_nats::ConnectOptions::new(),
            Credentials::File(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| ConnectError::Credentials { path: path.clone(), source })?,
            Credentials::UserPassword(user, password) => {
                async_nats::ConnectOptions::new().user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => async_nats::ConnectOptions::new().token(token.clone()),
        };
        options = options.name("sv0").connection_timeout(Duration::from_secs(5));
        let client = options
            .connect(addrs.as_slice())
            .await
            .map_err(|source| ConnectError::Connect { url: url.to_string(), source })?;
        let info = client.server_info();
        let server_version = ServerVersion::parse(&info.version).ok_or_else(|| ConnectError::UnsupportedServer {
            version: info.version.clone(),
            reason: "the version string is not major.minor.patch".to_string(),
        })?;
        server_version
            .check(settings.replicas)
            .map_err(|reason| ConnectError::UnsupportedServer { version: info.version.clone(), reason })?;
        let max_event_size = settings.max_event_size.min(info.max_payload.saturating_sub(HEADER_ROOM));
        let context = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .backpressure_on_inflight(true)
            .build(client.clone());
        let stream = open_stream(&context, &settings, max_event_size).await?;
        info!(server = %info.version, stream = %settings.name, replicas = settings.replicas, "JetStream log ready");
        Ok(JetStreamLog { client, context, stream, settings, max_event_size, server_version })
    }

    /// The stream's settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The connected server's version.
    pub fn server_version(&self) -> ServerVersion {
        self.server_version
    }

    /// The underlying NATS client (for the signals stream).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// Publishes derived events (SOC signals) to the `SV0_SIGNALS` stream, creating it on first
    /// use, each on `sv0.signals.<tenant>.<type>` with its id as `Nats-Msg-Id` so a regenerated
    /// signal is a duplicate. Every acknowledgement is awaited.
    pub async fn publish_signals(&self, signals: &[SignalMessage]) -> Result<(), AppendError> {
        if signals.is_empty() {
            return Ok(());
        }
        let config = stream::Config {
            name: SIGNALS_STREAM.to_string(),
            subjects: vec![format!("{SIGNALS_PREFIX}.>")],
            storage: stream::StorageType::File,
            num_replicas: self.settings.replicas,
            duplicate_window: self.settings.duplicate_window,
            // Signals can be regenerated from the log; SOC consumers get 90 days to read them.
            max_age: Duration::from_secs(90 * 86_400),
            deny_delete: true,
            allow_direct: true,
            description: Some("SV0 signals for SOC consumers (CloudEvents)".to_string()),
            ..Default::default()
        };
        self.context
            .get_or_create_stream(config)
            .await
            .map_err(|e| AppendError::Backend(backend("signals stream", e)))?;
        let mut acks: std::collections::VecDeque<jetstream::context::PublishAckFuture> =
            std::collections::VecDeque::with_capacity(ACKS_IN_FLIGHT);
        for signal in signals {
            if acks.len() == ACKS_IN_FLIGHT
                && let Some(ack) = acks.pop_front()
            {
                ack.await.map_err(|e| AppendError::Backend(backend("signal acknowledgement", e)))?;
            }
            let subject = signal.subject()?;
            let message = jetstream::message::PublishMessage::build()
                .payload(signal.payload.clone().into())
                .message_id(&signal.id)
                .header("Content-Type", "application/cloudevents+json");
            acks.push_back(
                self.context
                    .send_publish(subject, message)
                    .await
                    .map_err(|e| AppendError::Backend(backend("publish signal", e)))?,
            );
        }
        for ack in acks {
            ack.await.map_err(|e| AppendError::Backend(backend("signal acknowledgement", e)))?;
        }
        Ok(())
    }

    fn nats_subject(subject: &str) -> String {
        format!("{SUBJECT_PREFIX}.{subject}")
    }

    async fn head_seq(&self) -> Result<Seq, ReadError> {
        let info = self.stream.get_info().await.map_err(|e| ReadError::Backend(backend("stream info", e)))?;
        Ok(info.state.last_sequence)
    }

    async fn publish(
        &self,
        subject: &str,
        event: &NewEvent,
        expected: Option<Seq>,
    ) -> Result<jetstream::context::PublishAckFuture, AppendError> {
        let mut message = jetstream::message::PublishMessage::build()
            .payload(event.data.clone().into())
            .message_id(hex::encode(event.event_id))
            .header(DIGEST_HEADER, hex::encode(sv0_log::record_digest(subject, &event.event_id, &event.data)).as_str());
        if let Some(seq) = expected {
            message = message.expected_last_subject_sequence(seq);
        }
        self.context
            .send_publish(Self::nats_subject(subject), message)
            .await
            .map_err(|e| AppendError::Backend(backend("publish", e)))
    }

    async fn conflict(&self, subject: &str, expected: Expected) -> AppendError {
        let actual = self.subject_head(subject).await.ok().flatten();
        AppendError::Conflict { subject: subject.to_string(), expected, actual }
    }

    async fn await_ack(
        &self,
        subject: &str,
        expected: Expected,
        ack: jetstream::context::PublishAckFuture,
    ) -> Result<(Seq, bool), AppendError> {
        match ack.await {
            Ok(ack) => Ok((ack.sequence, ack.duplicate)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Err(self.conflict(subject, expected).await)
            }
            Err(e) => Err(AppendError::Backend(backend("publish acknowledgement", e))),
        }
    }

    /// The position and event id of the first event on `subject` after position `after`.
    async fn next_on_subject(&self, subject: &str, after: Seq) -> Result<Option<(Seq, [u8; 16])>, ReadError> {
        match self.stream.direct_get_next_for_subject(Self::nats_subject(subject), Some(after + 1)).await {
            Ok(message) => {
                let id = event_id_of(&message.headers)
                    .ok_or(ReadError::Corrupt { seq: message.sequence, reason: "has no valid Nats-Msg-Id header" })?;
                Ok(Some((message.sequence, id)))
            }
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReadError::Backend(backend("next event of subject", e))),
        }
    }

    /// Appends to `out` the records from `from + out.len()` until it holds `count`, through one
    /// new consumer; a message delivered twice is taken once. `Some(why)` when the consumer
    /// could not be made, failed, ended or stalled first (the caller resumes with another).
    async fn read_with_one_consumer(
        &self,
        from: Seq,
        count: usize,
        out: &mut Vec<Record>,
    ) -> Result<Option<String>, ReadError> {
        let mut messages = match self.ordered_from(from + out.len() as u64).await {
            Ok(messages) => messages,
            Err(e) => return Ok(Some(format!("cannot create a consumer: {e}"))),
        };
        while out.len() < count {
            let want = from + out.len() as u64;
            let message = match tokio::time::timeout(MESSAGE_WAIT, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Ok(Some(format!("consume: {e}"))),
                Ok(None) => return Ok(Some("the consumer ended early".to_string())),
                Err(_) => return Ok(Some(format!("no event at position {want} after {} s", MESSAGE_WAIT.as_secs()))),
            };
            let record = record_from(&message)?;
            if record.seq > want {
                return Err(ReadError::Backend(BackendError::msg(format!(
                    "the stream skipped from position {want} to {}",
                    record.seq
                ))));
            }
            if record.seq == want {
                out.push(record);
            }
        }
        Ok(None)
    }

    /// A consumer that delivers every log event from `from`, in order.
    async fn ordered_from(&self, from: Seq) -> Result<consumer::pull::Ordered, ReadError> {
        self.ordered(consumer::DeliverPolicy::ByStartSequence { start_sequence: from.max(1) }).await
    }

    /// An ordered consumer over the log. Creating one can time out while a cluster elects a
    /// leader or a member catches up, so it is retried for a few seconds before giving up.
    async fn ordered(&self, deliver_policy: consumer::DeliverPolicy) -> Result<consumer::pull::Ordered, ReadError> {
        let config = consumer::pull::OrderedConfig {
            filter_subject: format!("{SUBJECT_PREFIX}.>"),
            deliver_policy,
            // Each pull asks for at most this many messages: with events up to 1 MiB, what the
            // server has in flight to this client stays under its default per-connection
            // pending limit (64 MiB), so it never cuts the connection as a slow consumer.
            max_batch: PULL_BATCH,
            ..Default::default()
        };
        let mut attempt = 0;
        loop {
            let created = match self.stream.create_consumer(config.clone()).await {
                Ok(consumer) => consumer.messages().await.map_err(|e| backend("consume", e)),
                Err(e) => Err(backend("create ordered consumer", e)),
            };
            match created {
                Ok(messages) => return Ok(messages),
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    debug!(attempt, error = %e, "ordered consumer not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(ReadError::Backend(e)),
            }
        }
    }
}

async fn open_stream(
    context: &jetstream::Context,
    settings: &StreamSettings,
    max_event_size: usize,
) -> Result<stream::Stream, ConnectError> {
    let config = stream::Config {
        name: settings.name.clone(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        max_messages: -1,
        max_bytes: -1,
        max_age: Duration::ZERO,
        max_messages_per_subject: -1,
        max_message_size: i32::try_from(max_event_size + HEADER_ROOM).unwrap_or(i32::MAX),
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        description: Some("SV0 append-only event log".to_string()),
        ..Default::default()
    };
    let stream_error = |e: &dyn std::fmt::Display| ConnectError::Stream {
        stream: settings.name.clone(),
        source: BackendError::msg(e.to_string()),
    };
    // An existing stream is taken as it is configured: its replica count is the operator's
    // (`--log-replicas` applies only when SV0 creates the stream). The lookup answers with the
    // stream's information, which is checked below. A lookup that gets no answer (a cluster
    // electing its meta leader, or too busy to answer in time) is asked again a few times
    // before the open fails; any answer is taken as it is.
    let mut looked_up = context.get_stream(&settings.name).await;
    for pause in [1, 2, 4] {
        match &looked_up {
            Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::Request) => {
                warn!(stream = %settings.name, error = %e, "the stream did not answer; asking again in {pause} s");
                tokio::time::sleep(Duration::from_secs(pause)).await;
                looked_up = context.get_stream(&settings.name).await;
            }
            _ => break,
        }
    }
    let stream = match looked_up {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            context.get_or_create_stream(config).await.map_err(|e| stream_error(&e))?
        }
        Err(e) => return Err(stream_error(&e)),
    };
    let actual = &stream.cached_info().config;
    if actual.num_replicas != settings.replicas {
        info!(
            stream = %settings.name,
            replicas = actual.num_replicas,
            asked = settings.replicas,
            "the stream exists with its own replica count; --log-replicas applies only when SV0 creates it"
        );
    }
    let mut problems = Vec::new();
    if !actual.deny_delete || !actual.deny_purge {
        problems.push("deletes or purges are allowed".to_string());
    }
    if actual.storage != stream::StorageType::File {
        problems.push("it is not stored on file".to_string());
    }
    if actual.max_messages > 0
        || actual.max_bytes > 0
        || !actual.max_age.is_zero()
        || actual.max_messages_per_subject > 0
    {
        problems.push("it has limits that would discard events".to_string());
    }
    if !actual.subjects.iter().any(|s| s == &format!("{SUBJECT_PREFIX}.>")) {
        problems.push(format!("it does not capture {SUBJECT_PREFIX}.>"));
    }
    if let Some(problem) = problems.into_iter().reduce(|a, b| format!("{a}; {b}")) {
        return Err(ConnectError::Misconfigured { stream: settings.name.clone(), problem });
    }
    Ok(stream)
}

/// The event id a message's `Nats-Msg-Id` header carries.
fn event_id_of(headers: &async_nats::HeaderMap) -> Option<[u8; 16]> {
    let value = headers.get(async_nats::header::NATS_MESSAGE_ID)?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(value.as_str(), &mut id).ok().map(|()| id)
}

fn record_from(message: &jetstream::Message) -> Result<Record, ReadError> {
    let info = message.info().map_err(|e| ReadError::Backend(BackendError::msg(format!("message metadata: {e}"))))?;
    let seq = info.stream_sequence;
    let corrupt = |reason: &'static str| move || ReadError::Corrupt { seq, reason };
    let subject = message
        .subject
        .as_str()
        .strip_prefix(&format!("{SUBJECT_PREFIX}."))
        .ok_or_else(corrupt("is not on a log subject"))?
        .to_string();
    let headers = message.headers.as_ref();
    let event_id = headers.and_then(event_id_of).ok_or_else(corrupt("has no valid Nats-Msg-Id header"))?;
    let stored = headers
        .and_then(|h| h.get(DIGEST_HEADER))
        .map(|v| v.as_str().to_string())
        .ok_or_else(corrupt("has no Sv0-Record-Sha256 header"))?;
    let data = message.payload.to_vec();
    if stored != hex::encode(sv0_log::record_digest(&subject, &event_id, &data)) {
        return Err(corrupt("does not match its Sv0-Record-Sha256 checksum")());
    }
    let recorded_at = i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    Ok(Record { seq, subject, event_id, recorded_at, data })
}

impl EventLog for JetStreamLog {
    async fn append(&self, subject: &str, expected: Expected, events: Vec<NewEvent>) -> Result<Appended, AppendError> {
        sv0_log::validate_subject(subject)?;
        if events.is_empty() {
            return Err(AppendError::EmptyBatch);
        }
        if let Some(big) = events.iter().find(|e| e.data.len() > self.max_event_size) {
            return Err(AppendError::TooLarge { size: big.data.len(), max: self.max_event_size });
        }
        let distinct: std::collections::BTreeSet<&[u8; 16]> = events.iter().map(|e| &e.event_id).collect();
        if distinct.len() != events.len() {
            return Err(AppendError::DuplicateInBatch);
        }
        let mut positions = Vec::with_capacity(events.len());
        let mut duplicates = 0;
        match expected {
            Expected::Any => {
                // The bulk path: pipeline the publishes, awaiting acks in order once
                // `ACKS_IN_FLIGHT` are pending (the client blocks a publish past its own limit
                // until an ack is awaited, so an unbounded pipeline would wait on itself).
                let mut acks = std::collections::VecDeque::with_capacity(ACKS_IN_FLIGHT);
                for event in &events {
                    if acks.len() == ACKS_IN_FLIGHT
                        && let Some(ack) = acks.pop_front()
                    {
                        let (seq, duplicate) = self.await_ack(subject, expected, ack).await?;
                        positions.push(seq);
                        duplicates += usize::from(duplicate);
                    }
                    acks.push_back(self.publish(subject, event, None).await?);
                }
                for ack in acks {
                    let (seq, duplicate) = self.await_ack(subject, expected, ack).await?;
                    positions.push(seq);
                    duplicates += usize::from(duplicate);
                }
            }
            Expected::NoEvents | Expected::LastSeq(_) => {
                let mut expect = match expected {
                    Expected::LastSeq(seq) => seq,
                    _ => 0,
                };
                for event in &events {
                    let ack = self.publish(subject, event, Some(expect)).await?;
                    let (seq, duplicate) = match self.await_ack(subject, expected, ack).await {
                        Ok(acked) => acked,
                        // The server checks the expectation before the duplicate window, so a
                        // retry of a batch that already landed looks like a conflict: it is a
                        // retry when the subject's next event after `expect` is this very event.
                        Err(conflict @ AppendError::Conflict { .. }) => {
                            match self.next_on_subject(subject, expect).await {
                                Ok(Some((seq, id))) if id == event.event_id => (seq, true),
                                _ => return Err(conflict),
                            }
                        }
                        Err(e) => return Err(e),
                    };
                    positions.push(seq);
                    duplicates += usize::from(duplicate);
                    expect = seq;
                }
            }
        }
        debug!(subject, events = positions.len(), duplicates, "appended to JetStream");
        Ok(Appended { positions, duplicates })
    }

    async fn read(&self, from: Seq, to: Option<Seq>, limit: usize) -> Result<Vec<Record>, ReadError> {
        let from = from.max(1);
        let head = self.head_seq().await?;
        let upto = to.map_or(head, |to| to.min(head));
        if from > upto || limit == 0 {
            return Ok(Vec::new());
        }
        let count = usize::try_from(upto - from + 1).unwrap_or(usize::MAX).min(limit);
        let mut out: Vec<Record> = Vec::with_capacity(count);
        // A reconnect or a leader change can end or stall a consumer mid-read: the read goes on
        // from the next position with a new consumer, until `READ_PATIENCE` has passed with no
        // progress.
        let mut patience = tokio::time::Instant::now() + READ_PATIENCE;
        loop {
            let before = out.len();
            let failure = match self.read_with_one_consumer(from, count, &mut out).await? {
                None => return Ok(out),
                Some(failure) => failure,
            };
            if out.len() > before {
                patience = tokio::time::Instant::now() + READ_PATIENCE;
            }
            if tokio::time::Instant::now() >= patience {
                return Err(ReadError::Backend(BackendError::msg(failure)));
            }
            debug!(%failure, "reading the log: resuming with a new consumer");
            if out.len() == before {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn head(&self) -> Result<Seq, ReadError> {
        self.head_seq().await
    }

    async fn subject_head(&self, subject: &str) -> Result<Option<Seq>, ReadError> {
        match self.stream.get_last_raw_message_by_subject(&Self::nats_subject(subject)).await {
            Ok(message) => Ok(Some(message.sequence)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ReadError::Backend(backend("last message of subject", e))),
        }
    }

    async fn seq_at(&self, time: i64) -> Result<Seq, ReadError> {
        let info = self.stream.get_info().await.map_err(|e| ReadError::Backend(backend("stream info", e)))?;
        let state = &info.state;
        let ms = |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        if state.last_sequence == 0 || ms(state.last_timestamp) <= time {
            return Ok(state.last_sequence);
        }
        // The first event recorded after `time`; everything before it was recorded at or before.
        let start = time::OffsetDateTime::from_unix_timestamp_nanos((i128::from(time) + 1) * 1_000_000)
            .map_err(|e| ReadError::Backend(backend("time", e)))?;
        let mut messages = self.ordered(consumer::DeliverPolicy::ByStartTime { start_time: start }).await?;
        match tokio::time::timeout(Duration::from_secs(30), messages.next()).await {
            Ok(Some(Ok(message))) => Ok(record_from(&message)?.seq - 1),
            Ok(Some(Err(e))) => Err(ReadError::Backend(backend("consume", e))),
            Ok(None) | Err(_) => Err(ReadError::Backend(BackendError::msg("no event after the given time arrived"))),
        }
    }

    fn subscribe(&self, from: Seq) -> BoxStream<'static, Result<Record, ReadError>> {
        let log = self.clone();
        futures::stream::once(async move { log.ordered_from(from).await })
            .map_ok(|messages| {
                messages.map(|next| match next {
                    Ok(message) => record_from(&message),
                    Err(e) => Err(ReadError::Backend(backend("consume", e))),
                })
            })
            .try_flatten()
            .boxed()
    }

    fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    async fn identity(&self) -> Result<String, ReadError> {
        // A stream's creation time tells a recreated stream of the same name from the original.
        let created = self.stream.cached_info().created.unix_timestamp_nanos();
        Ok(format!("jetstream:{}:{created}", self.settings.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(tenant: &str, kind: &str) -> SignalMessage {
        SignalMessage { id: "sig-1".into(), tenant: tenant.into(), kind: kind.into(), payload: b"{}".to_vec() }
    }

    #[test]
    fn a_signal_subject_is_built_here_and_cannot_be_widened() {
        assert_eq!(signal("contoso", "drift.detected").subject().unwrap(), "sv0.signals.contoso.drift.detected");
        for (tenant, kind) in
            [("con.toso", "drift"), ("contoso", "*"), ("contoso", ">"), ("", "drift"), ("contoso", "a..b")]
        {
            assert!(signal(tenant, kind).subject().is_err(), "{tenant:?} {kind:?}");
        }
    }
}
