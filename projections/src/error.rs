//! Errors of the projections.

use std::path::PathBuf;

use sv0_codec::{DecodeError, EncodeError, EventError};
use sv0_log::{ReadError, Seq};
use thiserror::Error;

/// Why a fold or a query failed.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// redb failed.
    #[error("view storage failed")]
    Storage(#[source] redb::Error),
    /// A value could not be encoded.
    #[error("cannot encode a view value")]
    Encode(#[source] EncodeError),
    /// A stored value does not decode: the views file is damaged or from another version.
    #[error("corrupt value in view table {table}. Run `sv0 rebuild` to refold the views from the log")]
    CorruptView {
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: DecodeError,
    },
    /// An event on the log does not decode; the projector stops rather than skip it.
    #[error("cannot decode the event at log position {seq}")]
    Event {
        /// Its position.
        seq: Seq,
        /// The cause.
        #[source]
        source: EventError,
    },
    /// The log could not be read.
    #[error("cannot read the log")]
    Log(#[from] ReadError),
    /// A query argument the views cannot use (a cursor of another query).
    #[error("{0}")]
    Invalid(String),
    /// The views file is damaged (its pages do not match their checksums) or truncated.
    #[error("{0}. The views are a cache of the log: run `sv0 rebuild` to refold them")]
    Damaged(sv0_log::file::FileError),
    /// The views file is held by another process.
    #[error("the views {path} are in use by another process")]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The views record a position the log does not have: they were built from another log.
    #[error("the views are at log position {views} but the log ends at {log}. Run `sv0 rebuild`")]
    AheadOfLog {
        /// The views' checkpoint.
        views: Seq,
        /// The log's head.
        log: Seq,
    },
    /// The views were folded from a different log.
    #[error(
        "these views were folded from another log ({views}), not from {log}. Use another --data-dir for this log, or `sv0 rebuild`"
    )]
    OtherLog {
        /// The log the views belong to.
        views: String,
        /// The log now opened.
        log: String,
    },
    /// The views fold other tenants than asked.
    #[error(
        "these views fold {views}, not {asked}. Use another --data-dir for this shard, or the same --tenants/--shard"
    )]
    OtherShard {
        /// What the views fold.
        views: String,
        /// What was asked.
        asked: String,
    },
    /// Views of an older layout could not be removed to be refolded.
    #[error("cannot replace the views {path} of an older layout")]
    Replace {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Buffered writes could not be spilled to, or read back from, a temporary file.
    #[error("cannot spill buffered view writes to a temporary file (is TMPDIR writable and not full?)")]
    Spill(#[source] std::io::Error),
    /// A background task failed.
    #[error("projection worker failed: {0}")]
    Worker(String),
    /// The views record which tenants they fold in a form this build cannot read.
    #[error("the views record an unreadable shard {0:?}; rebuild them with `sv0 rebuild`")]
    UnreadableShard(String),
}

impl ProjectionError {
    /// Whether the views could not be written (a full disk, an I/O error, a spill file), as
    /// opposed to damage, a bad event or an unreadable log: queries may still answer from the
    /// views as they stand.
    pub fn is_write_failure(&self) -> bool {
        match self {
            ProjectionError::Storage(e) => !matches!(e, redb::Error::Corrupted(_)),
            ProjectionError::Spill(_) => true,
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ProjectionError {
            fn from(e: $ty) -> Self {
                ProjectionError::Storage(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);
