//! Errors of the service layer, one variant per thing a user can do about it.

use std::path::PathBuf;

use sv0_codec::EventError;
use sv0_domain::{InvalidInput, SnapshotInvalid};
use sv0_log::{AppendError, OpenError, ReadError};
use sv0_projections::ProjectionError;
use sv0_signer::{KeyError, SealError};
use thiserror::Error;

/// Why an operation failed. Whatever the variant, a failed command appended nothing.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The data directory could not be prepared.
    #[error("cannot use data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot is not JSON of the snapshot format.
    #[error("snapshot is not valid: {0}")]
    SnapshotJson(String),
    /// The snapshot breaks the model's rules.
    #[error(transparent)]
    Snapshot(#[from] SnapshotInvalid),
    /// A value given on the command line or in a request is invalid.
    #[error(transparent)]
    Input(#[from] InvalidInput),
    /// One entity alone is larger than an event may be.
    #[error(
        "{list} entry {id:?} is {size} bytes encoded, more than the log's event limit of {max} bytes leaves for one entity: no event can carry it"
    )]
    EntityTooLarge {
        /// The entity's list (`grants`, `identities`, ...).
        list: String,
        /// Its id.
        id: String,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No tenant was named and the data holds none or several.
    #[error("{0}")]
    Tenant(String),
    /// The scope selects no workload with authority.
    #[error("scope {scope} selects no workload with authority paths in tenant {tenant}")]
    EmptyScope {
        /// The tenant.
        tenant: String,
        /// The scope.
        scope: String,
    },
    /// The scope has no approved baseline yet.
    #[error(
        "scope {scope} of tenant {tenant} has no approved baseline. Approve it first with `sv0 approve --scope {scope}`"
    )]
    NoBaseline {
        /// The tenant.
        tenant: String,
        /// The scope.
        scope: String,
    },
    /// An acknowledged finding is not open in the scope.
    #[error(
        "finding {finding_id} is not open in scope {scope}. Acknowledge only findings shown by `sv0 findings --scope {scope}`"
    )]
    UnknownFinding {
        /// The finding.
        finding_id: String,
        /// The scope.
        scope: String,
    },
    /// Someone else changed the same thing first.
    #[error("{0}")]
    Conflict(String),
    /// The posture changed since the approver reviewed it: nothing was approved.
    #[error(
        "the posture of scope {scope} is no longer {reviewed}, the one reviewed: it is {current} at log position {position}{changes}. Review it again (`sv0 review --scope {scope}`) and approve what you see"
    )]
    PostureChanged {
        /// The scope.
        scope: String,
        /// The digest the approver reviewed.
        reviewed: String,
        /// The digest now.
        current: String,
        /// The log position the current posture stands at.
        position: u64,
        /// What happened since, in words (starting with `; `), when it is known.
        changes: String,
    },
    /// The log refused an append.
    #[error("cannot append to the log")]
    Append(#[from] AppendError),
    /// The log could not be read.
    #[error("cannot read the log")]
    Read(#[from] ReadError),
    /// The log could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// An event could not be encoded or decoded.
    #[error("event codec failed")]
    Event(#[from] EventError),
    /// The views failed.
    #[error(transparent)]
    Views(#[from] ProjectionError),
    /// A key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `sv0 keys generate` when a key exists.
    #[error("this installation already has signing key {key_id}. Use `sv0 keys rotate` to replace it")]
    KeyExists {
        /// The existing key.
        key_id: String,
    },
    /// The operating system gave no randomness.
    #[error("cannot get randomness for a new token")]
    Random,
    /// `sv0 keys rotate` with no key to rotate.
    #[error("this installation has no signing key to rotate yet. Create one with `sv0 keys generate`")]
    NoKey,
    /// This installation's key does not currently sign the tenant's chain.
    #[error(
        "signing key {key_id} of this installation is not a current key of the chain of tenant {tenant}, so what it signs would not verify with the chain's keys. Run this where the chain's signer runs (`sv0 sign`, or its --data-dir), or after `sv0 keys rotate` there"
    )]
    KeyNotInChain {
        /// The tenant.
        tenant: String,
        /// This installation's key.
        key_id: String,
    },
    /// The signer holds a key rotated out of a tenant's chain.
    #[error(
        "signing key {key_id} was rotated out of the chain of tenant {tenant} after pack {last}; this signer must not seal with it. Run `sv0 keys rotate` where the current key is kept"
    )]
    KeyRetired {
        /// The tenant.
        tenant: String,
        /// The retired key.
        key_id: String,
        /// The last pack it may sign.
        last: u64,
    },
    /// A pack could not be sealed.
    #[error("cannot seal a pack")]
    Seal(#[from] SealError),
    /// The command's events are on the log, but bringing the views and packs up to date failed;
    /// the next command retries that.
    #[error("the events were appended (log position {last_seq}) but could not be applied yet")]
    NotApplied {
        /// Position of the last event appended.
        last_seq: u64,
        /// The cause.
        #[source]
        source: Box<ServiceError>,
    },
    /// JSON could not be produced or read.
    #[error("JSON serialisation failed")]
    Json(#[from] serde_json::Error),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    /// Whether retrying later may succeed: the log was unreachable, not wrong.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Read(ReadError::Backend(_))
                | ServiceError::Append(AppendError::Backend(_))
                | ServiceError::Views(ProjectionError::Log(ReadError::Backend(_)))
                // A lagging server's head: a long-running process waits for it, never exits.
                | ServiceError::Views(ProjectionError::AheadOfLog { .. })
        )
    }

    /// The damaged log record this error reports, if it is one: its position and what is
    /// wrong with it.
    pub fn log_damage(&self) -> Option<(sv0_log::Seq, &'static str)> {
        match self {
            ServiceError::Read(ReadError::Corrupt { seq, reason })
            | ServiceError::Views(ProjectionError::Log(ReadError::Corrupt { seq, reason })) => Some((*seq, *reason)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log head behind the views (a server that just rejoined its cluster) is waited out by
    /// the long-running processes, not a reason to exit.
    #[test]
    fn a_head_behind_the_views_is_transient() {
        let lagging = ServiceError::Views(ProjectionError::AheadOfLog { views: 424, log: 423 });
        assert!(lagging.is_transient());
        assert!(!ServiceError::NoKey.is_transient());
        let damaged = ServiceError::Read(ReadError::Corrupt { seq: 7, reason: "does not match its checksum" });
        assert!(!damaged.is_transient(), "a damaged record is not retried forever");
        assert_eq!(damaged.log_damage(), Some((7, "does not match its checksum")));
    }
}
