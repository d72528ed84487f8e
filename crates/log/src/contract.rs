//! The `EventLog` contract every backend fulfils, checked by `conformance`.
//!
//! The log is append-only: there is no update and no delete. Events are opaque bytes with an
//! id and a subject; the log assigns each a position (`Seq`, from 1, gap-free) and a recording
//! time (milliseconds, never decreasing). Appends are ordered per batch, idempotent by event id,
//! and can require the subject's last position to be a given value (optimistic concurrency).

use std::fmt;
use std::future::Future;

use futures::stream::BoxStream;
use thiserror::Error;

/// A position in the log, from 1. Position 0 means "before the first event".
pub type Seq = u64;

/// Longest subject accepted.
pub const MAX_SUBJECT_LEN: usize = 255;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id; appending an id already in the log is a no-op.
    pub event_id: [u8; 16],
    /// The encoded event.
    pub data: Vec<u8>,
}

/// An event in the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Position.
    pub seq: Seq,
    /// Subject it was appended to.
    pub subject: String,
    /// Its id.
    pub event_id: [u8; 16],
    /// When the log recorded it, Unix milliseconds.
    pub recorded_at: i64,
    /// The encoded event.
    pub data: Vec<u8>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("seq", &self.seq)
            .field("subject", &self.subject)
            .field("recorded_at", &self.recorded_at)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// What the subject's last position must be for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No condition.
    Any,
    /// The subject has no event yet.
    NoEvents,
    /// The subject's last event is at this position.
    LastSeq(Seq),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any"),
            Expected::NoEvents => f.write_str("no events"),
            Expected::LastSeq(seq) => write!(f, "last position {seq}"),
        }
    }
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Position of each event of the batch, in order; for an event already in the log, the
    /// position it was first appended at.
    pub positions: Vec<Seq>,
    /// How many events of the batch were already in the log.
    pub duplicates: usize,
}

impl Appended {
    /// Position of the batch's last event.
    pub fn last(&self) -> Seq {
        self.positions.iter().copied().max().unwrap_or(0)
    }
}

/// Why an append did not happen. In every case nothing was written.
#[derive(Debug, Error)]
pub enum AppendError {
    /// The subject's last position is not the expected one.
    #[error("concurrent change on {subject}: expected {expected}, found {}", describe(*.actual))]
    Conflict {
        /// The subject.
        subject: String,
        /// What the caller expected.
        expected: Expected,
        /// The subject's actual last position.
        actual: Option<Seq>,
    },
    /// An event is larger than the log accepts.
    #[error("event of {size} bytes exceeds the log's limit of {max} bytes")]
    TooLarge {
        /// The event's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The subject is not `token(.token)*` with tokens of letters, digits, `-` and `_`.
    #[error("invalid subject {0:?}: use dot-separated tokens of letters, digits, '-' and '_'")]
    InvalidSubject(String),
    /// The batch has no events.
    #[error("empty batch")]
    EmptyBatch,
    /// The same event id appears twice in one batch.
    #[error("event id appears twice in one batch")]
    DuplicateInBatch,
    /// The log is read-only here (a read-only mount or copy, an audit replay).
    #[error("the log {} is read-only here (a read-only mount or copy, a full disk, or an audit replay): nothing can be appended", .0.display())]
    ReadOnly(std::path::PathBuf),
    /// The backend failed; whether the batch was written is unknown only if it says so.
    #[error("log backend failed")]
    Backend(#[source] BackendError),
}

fn describe(actual: Option<Seq>) -> String {
    match actual {
        None => "no events".to_string(),
        Some(seq) => format!("last position {seq}"),
    }
}

/// Why a read failed.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The backend failed.
    #[error("log backend failed")]
    Backend(#[source] BackendError),
    /// A stored record is not in the layout the log writes, or its bytes do not match the
    /// checksum stored with them: the log is damaged at this position.
    #[error("the log is damaged: the record at position {seq} {reason}")]
    Corrupt {
        /// Position of the record.
        seq: Seq,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A backend's own failure, boxed so the contract does not depend on any backend.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct BackendError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A failure with a message and a cause.
    pub fn new(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError { message: message.into(), source: Some(Box::new(source)) }
    }

    /// A failure with only a message.
    pub fn msg(message: impl Into<String>) -> BackendError {
        BackendError { message: message.into(), source: None }
    }
}

/// The SHA-256 every backend stores with a record and checks when it reads it back:
/// over the subject, the event id and the event's bytes, each length-prefixed, so that no
/// two different records share the input. A backend may bind more (the embedded log adds the
/// position and the recording time).
pub fn record_digest(subject: &str, event_id: &[u8; 16], data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"sv0-record-1\0");
    hasher.update((subject.len() as u64).to_be_bytes());
    hasher.update(subject.as_bytes());
    hasher.update(event_id);
    hasher.update((data.len() as u64).to_be_bytes());
    hasher.update(data);
    hasher.finalize().into()
}

/// Checks a subject: dot-separated tokens of ASCII letters, digits, `-` and `_`.
pub fn validate_subject(subject: &str) -> Result<(), AppendError> {
    let valid = !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject.split('.').all(|token| {
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid { Ok(()) } else { Err(AppendError::InvalidSubject(subject.to_string())) }
}

/// An append-only event log.
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch to one subject, in order, if the subject's last position is `expected`;
    /// no other event lands on the subject between the batch's events. Events whose id is
    /// already in the log are skipped and reported at their first position; a batch made only of
    /// such events succeeds whatever `expected` says, so a retried append is harmless.
    ///
    /// The embedded backend appends a batch atomically. A networked backend may leave a prefix
    /// of the batch after a crash; a retry with the same event ids completes it. Readers must
    /// therefore never act on a multi-event fact before its last event (SV0's facts end with a
    /// commit marker: `scan.completed`, the last `event.fragment`).
    fn append(
        &self,
        subject: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    /// Reads events with `from <= seq <= to` (no upper bound when `to` is `None`), at most
    /// `limit` of them, in order.
    fn read(
        &self,
        from: Seq,
        to: Option<Seq>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Record>, ReadError>> + Send;

    /// Position of the last event (0 when the log is empty).
    fn head(&self) -> impl Future<Output = Result<Seq, ReadError>> + Send;

    /// Position of the last event on a subject.
    fn subject_head(&self, subject: &str) -> impl Future<Output = Result<Option<Seq>, ReadError>> + Send;

    /// The last position recorded at or before `time` (Unix milliseconds); 0 when none is.
    fn seq_at(&self, time: i64) -> impl Future<Output = Result<Seq, ReadError>> + Send;

    /// Every event from `from` on: first those already in the log, then each new one as it is
    /// appended. The stream ends only on error or when dropped.
    fn subscribe(&self, from: Seq) -> BoxStream<'static, Result<Record, ReadError>>;

    /// Largest event, in bytes, the log accepts.
    fn max_event_size(&self) -> usize;

    /// Whether appends are refused here (a log whose file this process may not write, or one
    /// opened read-only on purpose).
    fn is_read_only(&self) -> bool {
        false
    }

    /// A stable name of this log, different for every log ever created, so that views folded
    /// from one log are never mistaken for views of another.
    fn identity(&self) -> impl Future<Output = Result<String, ReadError>> + Send;
}
