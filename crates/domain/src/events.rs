//! Events: the immutable facts on the log. Each payload type has a name and a schema version;
//! the codec crate turns them into bytes.
//!
//! Whatever a replay must reproduce is recorded here rather than recomputed from configuration:
//! the path policy a scan was folded with, the approver's identity, the posture the approver
//! saw, the keys that sign packs.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, TenantId, Timestamp};
use crate::paths::{AuthorityPath, PathPolicy};
use crate::scope::Scope;
use crate::snapshot::{DeploymentRef, Entities, ScanTrigger};

/// Metadata every event carries, next to its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Unique id; the log deduplicates on it.
    pub event_id: EventId,
    /// The tenant the fact belongs to.
    pub tenant_id: TenantId,
    /// When the fact happened in the world (scan time, approval time).
    pub occurred_at: Timestamp,
    /// Who caused it: `user:<principal>`, `connector:<name>`, `system:signer`.
    pub actor: String,
    /// The event that caused this one.
    pub causation_id: Option<EventId>,
    /// The event that started the chain this one belongs to.
    pub correlation_id: Option<EventId>,
}

/// A decoded event: metadata plus a typed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Metadata.
    pub meta: EventMeta,
    /// The fact.
    pub payload: EventPayload,
}

/// Every kind of fact SV0 records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// A scan began; its chunks follow.
    ScanStarted(ScanStarted),
    /// Part of what a scan saw.
    ScanChunk(ScanChunk),
    /// A scan's chunks are all on the log; projectors apply it now, never earlier.
    ScanCompleted(ScanCompleted),
    /// A person approved the posture of a scope: a new baseline version.
    ApprovalRecorded(ApprovalRecorded),
    /// A public key that signs evidence packs.
    KeyRegistered(KeyRegistered),
    /// An evidence pack was sealed.
    PackSealed(PackSealed),
}

/// Name and current schema version of each payload type.
impl EventPayload {
    /// Every event type name with the schema version this build writes.
    pub const TYPES: [(&'static str, u32); 6] = [
        ("scan.started", 1),
        ("scan.chunk", 1),
        ("scan.completed", 1),
        ("approval.recorded", 1),
        ("key.registered", 1),
        ("pack.sealed", 1),
    ];

    /// The event type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventPayload::ScanStarted(_) => "scan.started",
            EventPayload::ScanChunk(_) => "scan.chunk",
            EventPayload::ScanCompleted(_) => "scan.completed",
            EventPayload::ApprovalRecorded(_) => "approval.recorded",
            EventPayload::KeyRegistered(_) => "key.registered",
            EventPayload::PackSealed(_) => "pack.sealed",
        }
    }

    /// The schema version this build writes for the payload's type.
    pub fn schema_version(&self) -> u32 {
        let name = self.event_type();
        Self::TYPES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1, |(_, v)| *v)
    }

    /// The log subject category (`<tenant>.<category>`) the event is appended to.
    pub fn category(&self) -> &'static str {
        match self {
            EventPayload::ScanStarted(_)
            | EventPayload::ScanChunk(_)
            | EventPayload::ScanCompleted(_) => "scan",
            EventPayload::ApprovalRecorded(_) => "approval",
            EventPayload::KeyRegistered(_) => "key",
            EventPayload::PackSealed(_) => "pack",
        }
    }
}

/// A scan began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanStarted {
    /// Stable id of the scan.
    pub scan_id: String,
    /// Connector that produced it.
    pub connector: String,
    /// Why it ran.
    pub trigger: ScanTrigger,
    /// When the sources were read.
    pub observed_at: Timestamp,
    /// The deployment behind it, if any.
    pub deployment: Option<DeploymentRef>,
    /// The path rules' settings in force for this scan.
    pub policy: PathPolicy,
}

/// Part of what a scan saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanChunk {
    /// The scan.
    pub scan_id: String,
    /// Position of this chunk, from 0.
    pub index: u32,
    /// The entities in this chunk.
    pub entities: Entities,
}

/// A scan's chunks are complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanCompleted {
    /// The scan.
    pub scan_id: String,
    /// How many chunks it has.
    pub chunk_count: u32,
    /// How many entities in all.
    pub entity_count: u64,
    /// `sv0_codec::entities_digest` of the merged entities (hex); the projector checks it.
    pub snapshot_digest: String,
}

/// A finding the approver accepted, with the date it must be dealt with by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The finding.
    pub finding_id: String,
    /// When it must be resolved.
    pub due: Timestamp,
}

/// A person approved a scope's posture; the paths they saw become the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecorded {
    /// The scope approved.
    pub scope: Scope,
    /// The baseline version this approval creates (1 for the first).
    pub baseline_version: u32,
    /// The authenticated principal who approved.
    pub approver: String,
    /// The approver's notes.
    pub note: String,
    /// Findings accepted with a due date.
    pub acknowledged: Vec<Acknowledgement>,
    /// The log position of the posture the approver saw.
    pub posture_seq: u64,
    /// The posture: every path of the scope, sorted by path id.
    pub paths: Vec<AuthorityPath>,
    /// Ids of the findings open in the scope at that moment.
    pub open_findings: Vec<String>,
}

/// A public key registered for signing packs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistered {
    /// Hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Signature algorithm; `ed25519`.
    pub algorithm: String,
    /// The raw public key bytes, hex.
    pub public_key: String,
}

/// An evidence pack sealed by the signer. The body is carried as the exact canonical bytes
/// that were hashed and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSealed {
    /// Pack id.
    pub pack_id: String,
    /// Position in the tenant's chain, from 1.
    pub index: u64,
    /// The log position of the assessed event.
    pub assessed_seq: u64,
    /// `sha256:<hex>` of the body bytes.
    pub digest: String,
    /// The signing key.
    pub key_id: String,
    /// ed25519 signature over the DSSE pre-authentication encoding of the body, hex.
    pub signature: String,
    /// The canonical JSON body (RFC 8785), as text.
    pub body: String,
}

/// Convenience: a new event id derived from the content that makes it unique.
pub fn derived_id(label: &str, tenant: &TenantId, parts: &[&[u8]]) -> EventId {
    let mut all: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    all.extend_from_slice(parts);
    EventId::derive(label, &all)
}
