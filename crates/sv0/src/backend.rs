//! The log backend chosen at run time by `--log`: `LogTarget` parses the choice, `AnyLog` is
//! either backend as one `EventLog`, `open` opens a service over it, and `NatsSignals`
//! publishes signals on a JetStream log's `SV0_SIGNALS` stream. Only the binary knows which
//! backends exist; `sv0-service` works over any `EventLog`.

use std::path::Path;

use futures::stream::BoxStream;
use sv0_log::{AppendError, Appended, EmbeddedLog, EventLog, Expected, NewEvent, ReadError, Record, Seq};
use sv0_log_nats::{Credentials, JetStreamLog, StreamSettings};

use sv0_service::signals::{Signal, SignalSink};
use sv0_service::{DataDir, Service, ServiceError};

/// Where the log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// The embedded redb log in the data directory.
    Embedded,
    /// A JetStream stream.
    JetStream {
        /// `nats://HOST:PORT[,HOST:PORT...]`.
        url: String,
        /// Stream replicas: 1 for one server, 3 for a three-node cluster.
        replicas: usize,
    },
}

impl LogTarget {
    /// Parses `--log`: absent or `embedded`, or a `nats://` URL list.
    pub fn parse(text: Option<&str>, replicas: usize) -> anyhow::Result<LogTarget> {
        match text.map(str::trim) {
            None | Some("") | Some("embedded") => Ok(LogTarget::Embedded),
            Some(url) if url.starts_with("nats://") => {
                sv0_log_nats::parse_urls(url)?;
                Ok(LogTarget::JetStream { url: url.to_string(), replicas })
            }
            Some(other) => Err(sv0_domain::InvalidInput::new(format!(
                "invalid --log {other:?}: use embedded or nats://HOST:PORT[,HOST:PORT...]"
            ))
            .into()),
        }
    }
}

/// Opens the log `target` names (the embedded one lives in the data directory) and the data
/// directory's views, as a service.
pub async fn open(root: impl AsRef<Path>, target: &LogTarget) -> anyhow::Result<Service<AnyLog>> {
    let data_dir = DataDir::create(root)?;
    let log = AnyLog::open(target, &data_dir.log_path(), data_dir.is_read_only()).await?;
    Ok(Service::open_with(data_dir, log).await?)
}

/// The `SV0_SIGNALS` stream of a JetStream log.
pub struct NatsSignals(pub JetStreamLog);

impl SignalSink for NatsSignals {
    async fn publish(&self, signals: &[Signal]) -> Result<(), ServiceError> {
        let items: Vec<sv0_log_nats::SignalMessage> = signals
            .iter()
            .map(|s| {
                Ok(sv0_log_nats::SignalMessage {
                    id: s.id.clone(),
                    tenant: s.tenant.to_string(),
                    kind: s.signal_type.name().to_string(),
                    payload: serde_json::to_vec(&s.cloudevent())?,
                })
            })
            .collect::<Result<_, serde_json::Error>>()?;
        Ok(self.0.publish_signals(&items).await?)
    }
}

/// The log behind a service: embedded or JetStream.
#[derive(Clone)]
pub enum AnyLog {
    /// The embedded redb log.
    Embedded(EmbeddedLog),
    /// A JetStream stream.
    JetStream(Box<JetStreamLog>),
}

impl AnyLog {
    /// Opens the log a target names; the embedded one lives at `embedded_path`, opened without
    /// writing to it with `read_only`.
    pub async fn open(target: &LogTarget, embedded_path: &Path, read_only: bool) -> anyhow::Result<AnyLog> {
        match target {
            LogTarget::Embedded => Ok(AnyLog::Embedded(EmbeddedLog::open_in_mode(embedded_path, read_only)?)),
            LogTarget::JetStream { url, replicas } => {
                let settings = StreamSettings { replicas: *replicas, ..StreamSettings::default() };
                Ok(AnyLog::JetStream(Box::new(JetStreamLog::connect(url, Credentials::from_env(), settings).await?)))
            }
        }
    }
}

impl EventLog for AnyLog {
    async fn append(&self, subject: &str, expected: Expected, events: Vec<NewEvent>) -> Result<Appended, AppendError> {
        match self {
            AnyLog::Embedded(log) => log.append(subject, expected, events).await,
            AnyLog::JetStream(log) => log.append(subject, expected, events).await,
        }
    }

    async fn read(&self, from: Seq, to: Option<Seq>, limit: usize) -> Result<Vec<Record>, ReadError> {
        match self {
            AnyLog::Embedded(log) => log.read(from, to, limit).await,
            AnyLog::JetStream(log) => log.read(from, to, limit).await,
        }
    }

    async fn head(&self) -> Result<Seq, ReadError> {
        match self {
            AnyLog::Embedded(log) => log.head().await,
            AnyLog::JetStream(log) => log.head().await,
        }
    }

    async fn subject_head(&self, subject: &str) -> Result<Option<Seq>, ReadError> {
        match self {
            AnyLog::Embedded(log) => log.subject_head(subject).await,
            AnyLog::JetStream(log) => log.subject_head(subject).await,
        }
    }

    async fn seq_at(&self, time: i64) -> Result<Seq, ReadError> {
        match self {
            AnyLog::Embedded(log) => log.seq_at(time).await,
            AnyLog::JetStream(log) => log.seq_at(time).await,
        }
    }

    fn subscribe(&self, from: Seq) -> BoxStream<'static, Result<Record, ReadError>> {
        match self {
            AnyLog::Embedded(log) => log.subscribe(from),
            AnyLog::JetStream(log) => log.subscribe(from),
        }
    }

    fn max_event_size(&self) -> usize {
        match self {
            AnyLog::Embedded(log) => log.max_event_size(),
            AnyLog::JetStream(log) => log.max_event_size(),
        }
    }

    async fn identity(&self) -> Result<String, ReadError> {
        match self {
            AnyLog::Embedded(log) => log.identity().await,
            AnyLog::JetStream(log) => log.identity().await,
        }
    }

    fn is_read_only(&self) -> bool {
        match self {
            AnyLog::Embedded(log) => log.is_read_only(),
            AnyLog::JetStream(log) => log.is_read_only(),
        }
    }
}
