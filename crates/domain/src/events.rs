//! Events: the immutable facts on the log. Each payload type has a name and a schema version;
//! the codec crate turns them into bytes.
//!
//! Whatever a replay must reproduce is recorded here rather than recomputed from configuration:
//! the path policy a scan was folded with, the approver's identity, the posture the approver
//! saw, the keys that sign packs.

use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::ids::{EventId, TenantId, Timestamp};
use crate::paths::AuthorityPath;
use crate::policy::Policy;
use crate::scope::Scope;
use crate::snapshot::{Coverage, DeploymentRef, Entities, ScanTrigger};

/// Metadata every event carries, next to its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Unique id; the log deduplicates on it.
    pub event_id: EventId,
    /// The tenant the fact belongs to.
    pub tenant_id: TenantId,
    /// When the fact happened in the world (scan time, approval time).
    pub occurred_at: Timestamp,
    /// Who caused it: `host:<principal>` (a command on the SV0 host), `api:<principal>` (an
    /// authenticated API caller), `user:<principal>` (before issue 14), `connector:<name>`,
    /// `system:signer`.
    pub actor: String,
    /// The event that caused this one.
    pub causation_id: Option<EventId>,
    /// The event that started the chain this one belongs to.
    pub correlation_id: Option<EventId>,
    /// How an API actor authenticated: `token:<token id>` or `oidc:<issuer>#<subject>`. `None`
    /// for actions on the host and by the system.
    pub credential: Option<String>,
}

/// Who records an event, as they authenticated: a person on the SV0 host (`host:<principal>`)
/// or an API caller (`api:<principal>` with the token or OIDC identity it presented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The principal: what approvals, acknowledgements and releases name.
    pub principal: String,
    /// The event's `actor`.
    pub actor: String,
    /// The event's `credential`.
    pub credential: Option<String>,
}

impl Actor {
    /// A person running a command on the SV0 host, as the data directory's principal.
    pub fn host(principal: &str) -> Actor {
        Actor { principal: principal.to_string(), actor: format!("host:{principal}"), credential: None }
    }

    /// The principal behind an event's `actor` (`host:<p>` and `api:<p>` are the same person).
    pub fn principal_of(actor: &str) -> &str {
        actor.strip_prefix("host:").or_else(|| actor.strip_prefix("api:")).unwrap_or(actor)
    }

    /// An API caller: `credential` is `token:<id>` or `oidc:<issuer>#<subject>`.
    pub fn api(principal: &str, credential: String) -> Actor {
        Actor { principal: principal.to_string(), actor: format!("api:{principal}"), credential: Some(credential) }
    }
}

/// A decoded event: metadata plus a typed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Metadata.
    pub meta: EventMeta,
    /// The fact.
    pub payload: EventPayload,
}

impl Event {
    /// An event with no causation or correlation: what a command records on its own.
    pub fn of(
        event_id: EventId,
        tenant: &TenantId,
        occurred_at: Timestamp,
        actor: &str,
        payload: EventPayload,
    ) -> Event {
        Event {
            meta: EventMeta {
                event_id,
                tenant_id: tenant.clone(),
                occurred_at,
                actor: actor.to_string(),
                causation_id: None,
                correlation_id: None,
                credential: None,
            },
            payload,
        }
    }

    /// An event recorded by `by`, with the credential it authenticated with.
    pub fn by(
        event_id: EventId,
        tenant: &TenantId,
        occurred_at: Timestamp,
        by: &Actor,
        payload: EventPayload,
    ) -> Event {
        let mut event = Event::of(event_id, tenant, occurred_at, &by.actor, payload);
        event.meta.credential = by.credential.clone();
        event
    }
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
    /// A piece of an event too large for one log record.
    Fragment(EventFragment),
    /// A tenant's policy was set.
    PolicySet(PolicySet),
    /// A second person approved a Rego policy that can loosen the built-in decision.
    PolicyApproved(PolicyApproved),
    /// A scan tripped a deletion circuit breaker and is held.
    ScanQuarantined(ScanQuarantined),
    /// A person released a quarantined scan: it is applied now.
    ScanReleased(ScanReleased),
    /// A signing key replaced another for a tenant's chain from a pack index on.
    KeyRotated(KeyRotated),
    /// An API token was issued (its hash, never the token).
    TokenIssued(TokenIssued),
    /// An API token was revoked.
    TokenRevoked(TokenRevoked),
    /// A person accepted open findings until a date, outside an approval.
    FindingsAcknowledged(FindingsAcknowledged),
    /// A Time Stamping Authority's RFC 3161 token over a checkpoint of a tenant's pack chain.
    CheckpointTimestamped(CheckpointTimestamped),
}

/// Name and current schema version of each payload type.
impl EventPayload {
    /// Every event type name with the schema version this build writes.
    pub const TYPES: [(&'static str, u32); 16] = [
        ("scan.started", 1),
        ("scan.chunk", 1),
        ("scan.completed", 1),
        ("approval.recorded", 1),
        ("key.registered", 1),
        ("pack.sealed", 1),
        ("event.fragment", 1),
        ("policy.set", 1),
        ("scan.quarantined", 1),
        ("scan.released", 1),
        ("key.rotated", 1),
        ("token.issued", 1),
        ("token.revoked", 1),
        ("findings.acknowledged", 1),
        ("policy.approved", 1),
        ("checkpoint.timestamped", 1),
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
            EventPayload::Fragment(_) => "event.fragment",
            EventPayload::PolicySet(_) => "policy.set",
            EventPayload::PolicyApproved(_) => "policy.approved",
            EventPayload::ScanQuarantined(_) => "scan.quarantined",
            EventPayload::ScanReleased(_) => "scan.released",
            EventPayload::KeyRotated(_) => "key.rotated",
            EventPayload::TokenIssued(_) => "token.issued",
            EventPayload::TokenRevoked(_) => "token.revoked",
            EventPayload::FindingsAcknowledged(_) => "findings.acknowledged",
            EventPayload::CheckpointTimestamped(_) => "checkpoint.timestamped",
        }
    }

    /// The schema version this build writes for the payload's type.
    pub fn schema_version(&self) -> u32 {
        let name = self.event_type();
        Self::TYPES.iter().find(|(n, _)| *n == name).map_or(1, |(_, v)| *v)
    }
}

/// A scan began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// What it covered: which lists it read completely, which with failures, its targets.
    pub coverage: Coverage,
}

/// Part of what a scan saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The finding.
    pub finding_id: String,
    /// When it must be resolved.
    pub due: Timestamp,
}

/// A person approved a scope's posture; the paths they saw become the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The posture digest of `paths` and `open_findings` (`paths::posture_digest`); absent in
    /// approvals recorded before digests existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_digest: Option<String>,
    /// The additions the deployment declared, approved with the baseline; absent when none
    /// was declared (every later addition is then `unreviewed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Vec<crate::intent::IntentItem>>,
    /// `sha256:<hex>` of the plan the intent was predicted from (`sv0 approve --plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
}

/// A public key registered for signing packs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistered {
    /// Hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Signature algorithm; `ed25519`.
    pub algorithm: String,
    /// The raw public key bytes, hex.
    pub public_key: String,
    /// The first index of the tenant's pack chain this key may sign. Absent in registrations
    /// written before keys had validity ranges: such a key is valid from the first pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<u64>,
}

/// A signing key replaced another for a tenant's pack chain: the retired key signs packs below
/// `valid_from`, the new key packs from `valid_from` on. Appended on the pack subject with the
/// chain's head as the expectation, so no pack lands between the decision and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotated {
    /// The key retired.
    pub retired_key_id: String,
    /// Hex SHA-256 of the new raw public key.
    pub key_id: String,
    /// Signature algorithm; `ed25519`.
    pub algorithm: String,
    /// The new raw public key bytes, hex.
    pub public_key: String,
    /// The first pack index signed by the new key; the retired key's range ends just before.
    pub valid_from: u64,
    /// Why the key was rotated.
    pub reason: String,
}

/// An evidence pack sealed by the signer. The body is carried as the exact canonical bytes
/// that were hashed and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The previous pack of the chain (none for the first); also in the signed body.
    pub previous_pack_id: Option<String>,
    /// Its digest; also in the signed body.
    pub previous_digest: Option<String>,
    /// The signing key.
    pub key_id: String,
    /// ed25519 signature over the DSSE pre-authentication encoding of the body, hex.
    pub signature: String,
    /// The canonical JSON body (RFC 8785), as text.
    pub body: String,
}

/// The policy a tenant's rules follow from now on (it replaces the previous one whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The policy.
    pub policy: Policy,
}

/// A scan would have removed more than the breaker allows; it is held, not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanQuarantined {
    /// The scan.
    pub scan_id: String,
    /// Why, in words.
    pub reason: String,
    /// Entities it would have removed.
    pub removed_entities: u64,
    /// Paths it would have removed.
    pub removed_paths: u64,
}

/// An approver (not the admin who set it) approved the tenant's Rego policy of this digest: a
/// `replace` policy, which can turn a built-in `requires_review` into `approved`, is in force
/// only from such an approval on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyApproved {
    /// `RegoPolicy::digest` of the policy approved.
    pub digest: String,
    /// Who approved it (also the event's actor).
    pub approved_by: String,
    /// Why.
    pub note: String,
}

/// Most pieces an event may be cut into: a count read from the log beyond it is refused before
/// anything is allocated for it (65,536 pieces of a record each are far more than any event
/// SV0 writes).
pub const MAX_FRAGMENTS: u32 = 1 << 16;

/// A person released a quarantined scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanReleased {
    /// The scan.
    pub scan_id: String,
    /// Who released it (also the event's actor).
    pub released_by: String,
    /// Why.
    pub note: String,
}

/// One piece of an encoded event that is larger than a log record may be. All pieces of an
/// event are appended in one batch to the event's subject; readers apply the event only when
/// every piece is present, at the position of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventFragment {
    /// The id of the whole event.
    pub of: EventId,
    /// Position of this piece, from 0.
    pub index: u32,
    /// Number of pieces.
    pub count: u32,
    /// The piece's bytes of the whole event's encoding.
    pub bytes: Bytes,
}

/// A byte string (CBOR major type 2; lowercase hex in JSON).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl schemars::JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bytes".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "bytes, lowercase hex" })
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string or hex")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
                hex::decode(v).map(Bytes).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            // ciborium's `deserialize_bytes` only takes strings that fit its 4 KiB scratch
            // buffer; a fragment's piece is larger.
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }
}

/// Convenience: a new event id derived from the content that makes it unique.
pub fn derived_id(label: &str, tenant: &TenantId, parts: &[&[u8]]) -> EventId {
    let mut all: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    all.extend_from_slice(parts);
    EventId::derive(label, &all)
}

/// An API bearer token was issued for the event's tenant. Only the SHA-256 of its secret is
/// recorded; the token itself is shown once, to whoever issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIssued {
    /// Public id of the token (16 hex digits), the part of the token used to find it.
    pub token_id: String,
    /// A name for people (`ci-deploy`, `riley`).
    pub name: String,
    /// Who acts with it: what approvals and scans record.
    pub principal: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// Hex SHA-256 of the token's secret part.
    pub secret_sha256: String,
    /// When it stops authenticating (`None`: until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// An API token was revoked: from this event on it authenticates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// The token.
    pub token_id: String,
    /// Why.
    pub reason: String,
}

/// A person accepted open findings until a date (an analyst triaging, outside an approval):
/// each stays open, shown as acknowledged, and becomes overdue past its date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingsAcknowledged {
    /// The findings and their dates.
    pub acknowledged: Vec<Acknowledgement>,
    /// Who accepted them (the authenticated principal).
    pub by: String,
    /// Why.
    pub note: String,
}

/// A Time Stamping Authority's RFC 3161 token over a checkpoint of a tenant's pack chain: proof,
/// from outside SV0, that the chain had this size and root no later than the token's time. The
/// message timestamped is the checkpoint's signed note, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointTimestamped {
    /// The number of packs the checkpoint covers.
    pub size: u64,
    /// The tree's root at that size, hex.
    pub root: String,
    /// The checkpoint timestamped: a C2SP signed note, exactly as its SHA-256 was sent.
    pub checkpoint: String,
    /// The TSA asked (its URL).
    pub tsa: String,
    /// The DER `TimeStampReq` sent: the imprint, the nonce and the policy asked for.
    pub request: Bytes,
    /// The DER `TimeStampResp` received.
    pub response: Bytes,
}
