//! The append-only event log: the `EventLog` contract (`contract`), its backend-agnostic
//! conformance suite (`conformance`, behind the `conformance` feature) and the embedded backend
//! on redb (`EmbeddedLog`), the default that lets `sv0` run with no server.
//!
//! The log knows nothing of SV0's events: it stores opaque bytes with an id and a subject.

pub mod contract;
pub mod embedded;
pub mod file;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use contract::{
    AppendError, Appended, BackendError, EventLog, Expected, NewEvent, ReadError, Record, Seq, record_digest,
    validate_subject,
};
pub use embedded::{DEFAULT_MAX_EVENT_SIZE, EmbeddedLog, OpenError};
