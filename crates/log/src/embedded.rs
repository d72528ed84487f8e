//! The embedded backend: the log in one redb file, so that `sv0` runs with no server.
//!
//! Tables:
//! - `events`: seq → record (`checksum[32] | event_id[16] | recorded_at i64 BE | subject_len u16 BE
//!   | subject | data`), the checksum a SHA-256 over the position, the recording time and
//!   `record_digest` of the rest, verified on every read: a record that fails is
//!   `ReadError::Corrupt` naming its position, never skipped;
//! - `event_ids`: event id → seq (idempotency; kept forever);
//! - `subjects`: subject → last seq on it (optimistic concurrency);
//! - `times`: recorded_at → last seq recorded at that millisecond (reads up to a time).
//!
//! Each append is one redb write transaction with `Durability::Immediate`: when `append`
//! returns, the batch is on disk (one fsync). redb allows one writer at a time, so the expected
//! position check and the write cannot interleave with another append. redb also locks the file
//! against other processes: one process owns an embedded log at a time. The file is opened
//! through `file::open`: verified page by page unless SV0 closed it cleanly and nothing touched
//! it since, and never silently rolled back past a commit SV0 acknowledged.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::BoxStream;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;

use crate::contract::{
    AppendError, Appended, BackendError, EventLog, Expected, NewEvent, ReadError, Record, Seq, record_digest,
    validate_subject,
};
use crate::file::{self, CheckedDatabase, FileError, Role};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENT_IDS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("event_ids");
const SUBJECTS: TableDefinition<&str, u64> = TableDefinition::new("subjects");
const TIMES: TableDefinition<i64, u64> = TableDefinition::new("times");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// The `meta` entry naming the record layout; logs written before it are rewritten on open.
const RECORDS_LAYOUT: (&str, &str) = ("records", "sha256-1");
/// Bytes of a record's checksum.
const CHECKSUM_LEN: usize = 32;

/// Default largest event: 1 MiB, the same as a default NATS server's max payload.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1024 * 1024;

/// Records read per batch by `subscribe`.
const SUBSCRIBE_BATCH: usize = 512;

/// Why the embedded log could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Another process holds the file.
    #[error(
        "the log {path} is in use by another process. Wait for the other sv0 command to finish or use another --data-dir"
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged or truncated. The log is the source of truth: views can be rebuilt
    /// from it, not the other way round.
    #[error("{0}. The log is the source of truth and cannot be rebuilt: restore log.redb from a backup")]
    Damaged(FileError),
    /// redb could not open or create the file.
    #[error("cannot open the log {path}")]
    Database {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: BackendError,
    },
}

/// The append-only log in a redb file.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: CheckedDatabase,
    path: PathBuf,
    head: watch::Sender<Seq>,
    max_event_size: usize,
}

impl EmbeddedLog {
    /// Opens (or creates) the log at `path` with the default event size limit.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedLog, OpenError> {
        EmbeddedLog::open_with_limit(path, DEFAULT_MAX_EVENT_SIZE)
    }

    /// Opens (or creates) the log at `path`, accepting events up to `max_event_size` bytes.
    pub fn open_with_limit(path: impl AsRef<Path>, max_event_size: usize) -> Result<EmbeddedLog, OpenError> {
        EmbeddedLog::open_with_options(path, max_event_size, false)
    }

    /// `open`, and with `read_only` an existing log is opened without ever writing to its
    /// file: reads as usual, appends refused. A file this process may not write opens this way
    /// whatever `read_only` says.
    pub fn open_in_mode(path: impl AsRef<Path>, read_only: bool) -> Result<EmbeddedLog, OpenError> {
        EmbeddedLog::open_with_options(path, DEFAULT_MAX_EVENT_SIZE, read_only)
    }

    fn open_with_options(
        path: impl AsRef<Path>,
        max_event_size: usize,
        read_only: bool,
    ) -> Result<EmbeddedLog, OpenError> {
        let path = path.as_ref().to_path_buf();
        let db_error = |source: BackendError| OpenError::Database { path: path.clone(), source };
        let db = match file::open(&path, Role::SourceOfTruth, read_only) {
            Ok(db) => db,
            Err(FileError::InUse { .. }) => return Err(OpenError::InUse { path }),
            Err(FileError::Open { source, .. }) => return Err(db_error(BackendError::new("redb open failed", source))),
            Err(damaged) => return Err(OpenError::Damaged(damaged)),
        };
        let txn = db.begin_write().map_err(|e| db_error(BackendError::new("begin write", e)))?;
        let head = {
            let mut events = txn.open_table(EVENTS).map_err(|e| db_error(BackendError::new("open events", e)))?;
            txn.open_table(EVENT_IDS).map_err(|e| db_error(BackendError::new("open event_ids", e)))?;
            txn.open_table(SUBJECTS).map_err(|e| db_error(BackendError::new("open subjects", e)))?;
            txn.open_table(TIMES).map_err(|e| db_error(BackendError::new("open times", e)))?;
            let mut meta = txn.open_table(META).map_err(|e| db_error(BackendError::new("open meta", e)))?;
            let known = meta.get("identity").map_err(|e| db_error(BackendError::new("read meta", e)))?.is_some();
            if !known {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random).map_err(|e| db_error(BackendError::msg(format!("no randomness: {e}"))))?;
                let identity = format!("embedded:{}", hex_lower(&random));
                meta.insert("identity", identity.as_str()).map_err(|e| db_error(BackendError::new("write meta", e)))?;
            }
            let layout = meta.get(RECORDS_LAYOUT.0).map_err(|e| db_error(BackendError::new("read meta", e)))?;
            if layout.is_none_or(|v| v.value() != RECORDS_LAYOUT.1) {
                add_checksums(&mut events).map_err(db_error)?;
                meta.insert(RECORDS_LAYOUT.0, RECORDS_LAYOUT.1)
                    .map_err(|e| db_error(BackendError::new("write meta", e)))?;
            }
            last_key(&events).map_err(db_error)?
        };
        txn.commit().map_err(|e| db_error(BackendError::new("commit", e)))?;
        let (head_tx, _) = watch::channel(head);
        Ok(EmbeddedLog { inner: Arc::new(Inner { db, path, head: head_tx, max_event_size }) })
    }

    /// Copies records read from another log into this one, keeping their positions, subjects,
    /// ids and recording times: how an audit replay gets a faithful prefix of a log. The first
    /// record must follow this log's head and positions must be contiguous.
    pub fn import_records(&self, records: &[Record]) -> Result<(), AppendError> {
        let inner = &self.inner;
        let fail = |what: &'static str| move |e: redb::Error| AppendError::Backend(BackendError::new(what, e));
        let txn = inner.begin_append()?;
        let last = {
            let mut events = txn.open_table(EVENTS).map_err(|e| fail("open events")(e.into()))?;
            let mut ids = txn.open_table(EVENT_IDS).map_err(|e| fail("open event_ids")(e.into()))?;
            let mut subjects = txn.open_table(SUBJECTS).map_err(|e| fail("open subjects")(e.into()))?;
            let mut times = txn.open_table(TIMES).map_err(|e| fail("open times")(e.into()))?;
            let mut expected = last_key(&events).map_err(AppendError::Backend)? + 1;
            for record in records {
                validate_subject(&record.subject)?;
                if record.seq != expected {
                    return Err(AppendError::Backend(BackendError::msg(format!(
                        "record at position {} where {expected} was expected",
                        record.seq
                    ))));
                }
                let bytes =
                    encode_record(record.seq, &record.event_id, record.recorded_at, &record.subject, &record.data);
                events.insert(record.seq, bytes.as_slice()).map_err(|e| fail("insert event")(e.into()))?;
                ids.insert(&record.event_id, record.seq).map_err(|e| fail("insert event id")(e.into()))?;
                subjects.insert(record.subject.as_str(), record.seq).map_err(|e| fail("update subject")(e.into()))?;
                times.insert(record.recorded_at, record.seq).map_err(|e| fail("update times")(e.into()))?;
                expected += 1;
            }
            expected - 1
        };
        txn.commit().map_err(|e| fail("commit")(e.into()))?;
        inner.head.send_if_modified(|head| {
            let advanced = last > *head;
            *head = (*head).max(last);
            advanced
        });
        Ok(())
    }

    /// The file the log lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, BackendError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| BackendError::new("log worker task failed", e))
    }
}

fn last_key(events: &impl ReadableTable<u64, &'static [u8]>) -> Result<Seq, BackendError> {
    Ok(events.last().map_err(|e| BackendError::new("read last event", e))?.map_or(0, |(k, _)| k.value()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The checksum stored with a record: it binds the record's bytes to its position and time.
fn checksum(seq: Seq, recorded_at: i64, subject: &str, event_id: &[u8; 16], data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(b"sv0-embedded-record-1\0");
    hasher.update(seq.to_be_bytes());
    hasher.update(recorded_at.to_be_bytes());
    hasher.update(record_digest(subject, event_id, data));
    hasher.finalize().into()
}

fn encode_record(seq: Seq, event_id: &[u8; 16], recorded_at: i64, subject: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKSUM_LEN + 26 + subject.len() + data.len());
    out.extend_from_slice(&checksum(seq, recorded_at, subject, event_id, data));
    out.extend_from_slice(event_id);
    out.extend_from_slice(&recorded_at.to_be_bytes());
    // Subjects are at most MAX_SUBJECT_LEN (255) bytes, validated before any write.
    out.extend_from_slice(&(subject.len() as u16).to_be_bytes());
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(data);
    out
}

fn decode_record(seq: Seq, bytes: &[u8]) -> Result<Record, ReadError> {
    let (stored, rest) =
        bytes.split_at_checked(CHECKSUM_LEN).ok_or(ReadError::Corrupt { seq, reason: "is cut short" })?;
    let record = decode_unchecked(seq, rest)?;
    if checksum(seq, record.recorded_at, &record.subject, &record.event_id, &record.data) != stored {
        return Err(ReadError::Corrupt { seq, reason: "does not match its checksum" });
    }
    Ok(record)
}

/// A record of the first layout (no checksum).
fn decode_unchecked(seq: Seq, bytes: &[u8]) -> Result<Record, ReadError> {
    let corrupt = || ReadError::Corrupt { seq, reason: "is not in the log's record layout" };
    let event_id: [u8; 16] = bytes.get(..16).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
    let recorded_at = i64::from_be_bytes(bytes.get(16..24).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?);
    let subject_len =
        u16::from_be_bytes(bytes.get(24..26).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?) as usize;
    let subject_end = 26 + subject_len;
    let subject = bytes.get(26..subject_end).ok_or_else(corrupt)?;
    let subject = std::str::from_utf8(subject).map_err(|_| corrupt())?.to_string();
    Ok(Record { seq, subject, event_id, recorded_at, data: bytes[subject_end..].to_vec() })
}

/// Rewrites the records of a log written before records carried checksums, each with its
/// checksum, one at a time, in the open's write transaction. What they hold is taken as it
/// stands: the file itself was verified page by page when it was opened without a stamp.
fn add_checksums(events: &mut redb::Table<u64, &'static [u8]>) -> Result<(), BackendError> {
    let fail = |what: &'static str| move |e: redb::StorageError| BackendError::new(what, e);
    let last = last_key(events)?;
    if last > 0 {
        tracing::info!(records = last, "adding a checksum to every record of the log");
    }
    for seq in 1..=last {
        let Some(bytes) = events.get(seq).map_err(fail("read event"))?.map(|v| v.value().to_vec()) else { continue };
        let record = decode_unchecked(seq, &bytes)
            .map_err(|e| BackendError::msg(format!("cannot add checksums to the log: {e}")))?;
        let upgraded = encode_record(seq, &record.event_id, record.recorded_at, &record.subject, &record.data);
        events.insert(seq, upgraded.as_slice()).map_err(fail("rewrite event"))?;
    }
    Ok(())
}

impl Inner {
    /// The write transaction of an append; refused when the file is read-only here.
    fn begin_append(&self) -> Result<redb::WriteTransaction, AppendError> {
        if self.db.is_read_only() {
            return Err(AppendError::ReadOnly(self.path.clone()));
        }
        self.db.begin_write().map_err(|e| AppendError::Backend(BackendError::new("begin write", e)))
    }

    fn append(&self, subject: &str, expected: Expected, events: Vec<NewEvent>) -> Result<Appended, AppendError> {
        validate_subject(subject)?;
        if events.is_empty() {
            return Err(AppendError::EmptyBatch);
        }
        if let Some(big) = events.iter().find(|e| e.data.len() > self.max_event_size) {
            return Err(AppendError::TooLarge { size: big.data.len(), max: self.max_event_size });
        }
        let distinct: BTreeSet<&[u8; 16]> = events.iter().map(|e| &e.event_id).collect();
        if distinct.len() != events.len() {
            return Err(AppendError::DuplicateInBatch);
        }
        let fail = |what: &'static str| move |e: redb::Error| AppendError::Backend(BackendError::new(what, e));
        let txn = self.begin_append()?;
        let appended = {
            let mut table_events = txn.open_table(EVENTS).map_err(|e| fail("open events")(e.into()))?;
            let mut ids = txn.open_table(EVENT_IDS).map_err(|e| fail("open event_ids")(e.into()))?;
            let mut subjects = txn.open_table(SUBJECTS).map_err(|e| fail("open subjects")(e.into()))?;
            let mut times = txn.open_table(TIMES).map_err(|e| fail("open times")(e.into()))?;

            let mut known = Vec::with_capacity(events.len());
            for event in &events {
                let seq = ids.get(&event.event_id).map_err(|e| fail("read event_ids")(e.into()))?;
                known.push(seq.map(|s| s.value()));
            }
            let duplicates = known.iter().filter(|k| k.is_some()).count();
            if duplicates == events.len() {
                let positions = known.into_iter().flatten().collect();
                return Ok(Appended { positions, duplicates });
            }

            let actual = subjects.get(subject).map_err(|e| fail("read subjects")(e.into()))?.map(|v| v.value());
            let matches = match expected {
                Expected::Any => true,
                Expected::NoEvents => actual.is_none(),
                Expected::LastSeq(seq) => actual == Some(seq),
            };
            if !matches {
                return Err(AppendError::Conflict { subject: subject.to_string(), expected, actual });
            }

            let head = last_key(&table_events).map_err(AppendError::Backend)?;
            let last_time =
                times.last().map_err(|e| fail("read times")(e.into()))?.map_or(i64::MIN, |(k, _)| k.value());
            let recorded_at = now_ms().max(last_time);
            let mut next = head;
            let mut positions = Vec::with_capacity(events.len());
            for (event, known_at) in events.iter().zip(known) {
                if let Some(seq) = known_at {
                    positions.push(seq);
                    continue;
                }
                next += 1;
                let record = encode_record(next, &event.event_id, recorded_at, subject, &event.data);
                table_events.insert(next, record.as_slice()).map_err(|e| fail("insert event")(e.into()))?;
                ids.insert(&event.event_id, next).map_err(|e| fail("insert event id")(e.into()))?;
                positions.push(next);
            }
            subjects.insert(subject, next).map_err(|e| fail("update subject")(e.into()))?;
            times.insert(recorded_at, next).map_err(|e| fail("update times")(e.into()))?;
            Appended { positions, duplicates }
        };
        txn.commit().map_err(|e| fail("commit")(e.into()))?;
        // Take the current head first: holding `borrow()` across `send_*` would deadlock.
        let last = appended.last();
        self.head.send_if_modified(|head| {
            let advanced = last > *head;
            *head = (*head).max(last);
            advanced
        });
        Ok(appended)
    }

    fn read(&self, from: Seq, to: Option<Seq>, limit: usize) -> Result<Vec<Record>, ReadError> {
        let fail = |what: &'static str| move |e: redb::Error| ReadError::Backend(BackendError::new(what, e));
        let txn = self.db.begin_read().map_err(|e| fail("begin read")(e.into()))?;
        let events = txn.open_table(EVENTS).map_err(|e| fail("open events")(e.into()))?;
        let from = from.max(1);
        let to = to.unwrap_or(Seq::MAX);
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in events.range(from..=to).map_err(|e| fail("range events")(e.into()))? {
            let (seq, bytes) = entry.map_err(|e| fail("read event")(e.into()))?;
            out.push(decode_record(seq.value(), bytes.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn subject_head(&self, subject: &str) -> Result<Option<Seq>, ReadError> {
        let fail = |what: &'static str| move |e: redb::Error| ReadError::Backend(BackendError::new(what, e));
        let txn = self.db.begin_read().map_err(|e| fail("begin read")(e.into()))?;
        let subjects = txn.open_table(SUBJECTS).map_err(|e| fail("open subjects")(e.into()))?;
        Ok(subjects.get(subject).map_err(|e| fail("read subjects")(e.into()))?.map(|v| v.value()))
    }

    fn seq_at(&self, time: i64) -> Result<Seq, ReadError> {
        let fail = |what: &'static str| move |e: redb::Error| ReadError::Backend(BackendError::new(what, e));
        let txn = self.db.begin_read().map_err(|e| fail("begin read")(e.into()))?;
        let times = txn.open_table(TIMES).map_err(|e| fail("open times")(e.into()))?;
        let last = times
            .range(..=time)
            .map_err(|e| fail("range times")(e.into()))?
            .next_back()
            .transpose()
            .map_err(|e| fail("read times")(e.into()))?;
        Ok(last.map_or(0, |(_, seq)| seq.value()))
    }
}

impl EventLog for EmbeddedLog {
    async fn append(&self, subject: &str, expected: Expected, events: Vec<NewEvent>) -> Result<Appended, AppendError> {
        let subject = subject.to_string();
        self.blocking(move |inner| inner.append(&subject, expected, events)).await.map_err(AppendError::Backend)?
    }

    async fn read(&self, from: Seq, to: Option<Seq>, limit: usize) -> Result<Vec<Record>, ReadError> {
        self.blocking(move |inner| inner.read(from, to, limit)).await.map_err(ReadError::Backend)?
    }

    async fn head(&self) -> Result<Seq, ReadError> {
        Ok(*self.inner.head.borrow())
    }

    async fn subject_head(&self, subject: &str) -> Result<Option<Seq>, ReadError> {
        let subject = subject.to_string();
        self.blocking(move |inner| inner.subject_head(&subject)).await.map_err(ReadError::Backend)?
    }

    async fn seq_at(&self, time: i64) -> Result<Seq, ReadError> {
        self.blocking(move |inner| inner.seq_at(time)).await.map_err(ReadError::Backend)?
    }

    fn subscribe(&self, from: Seq) -> BoxStream<'static, Result<Record, ReadError>> {
        struct State {
            log: EmbeddedLog,
            next: Seq,
            buffer: VecDeque<Record>,
            head: watch::Receiver<Seq>,
            done: bool,
        }
        let state = State {
            log: self.clone(),
            next: from.max(1),
            buffer: VecDeque::new(),
            head: self.inner.head.subscribe(),
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                if st.done {
                    return None;
                }
                if let Some(record) = st.buffer.pop_front() {
                    return Some((Ok(record), st));
                }
                // Mark the current head as seen before reading, so an append that lands after
                // the read wakes `changed()` below.
                st.head.borrow_and_update();
                match st.log.read(st.next, None, SUBSCRIBE_BATCH).await {
                    Ok(records) if !records.is_empty() => {
                        st.next = records.last().map_or(st.next, |r| r.seq + 1);
                        st.buffer.extend(records);
                    }
                    Ok(_) => {
                        if st.head.changed().await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
        .boxed()
    }

    fn max_event_size(&self) -> usize {
        self.inner.max_event_size
    }

    fn is_read_only(&self) -> bool {
        self.inner.db.is_read_only()
    }

    async fn identity(&self) -> Result<String, ReadError> {
        self.blocking(|inner| {
            let fail = |e: redb::Error| ReadError::Backend(BackendError::new("read meta", e));
            let txn = inner.db.begin_read().map_err(|e| fail(e.into()))?;
            let meta = txn.open_table(META).map_err(|e| fail(e.into()))?;
            let identity = meta.get("identity").map_err(|e| fail(e.into()))?;
            Ok(identity.map(|v| v.value().to_string()).unwrap_or_default())
        })
        .await
        .map_err(ReadError::Backend)?
    }
}
