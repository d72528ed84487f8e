//! The versioned event envelope.
//!
//! ```text
//! envelope = {
//!   v: 1,                      ; envelope format version
//!   event_id: bstr .size 16,
//!   tenant_id: tstr,
//!   event_type: tstr,          ; e.g. "scan.started"
//!   schema_version: uint,      ; version of the payload's schema
//!   occurred_at: int,          ; Unix milliseconds, UTC
//!   actor: tstr,
//!   causation_id: bstr .size 16 / null,
//!   correlation_id: bstr .size 16 / null,
//!   ? credential: tstr,        ; token:<id> or oidc:<issuer>#<subject> (API actors)
//!   payload: { * tstr => any },
//! }
//! ```
//!
//! The full schema is `schemas/events.cddl`. Decoding checks, in order: canonical bytes, the
//! envelope version, the event type, the schema version; only then is the payload read. An
//! event written by a newer SV0 is therefore a clear error, never a silent skip.

use ciborium::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sv0_domain::events::{Event, EventMeta, EventPayload};
use sv0_domain::{EventId, TenantId, Timestamp};
use thiserror::Error;

use crate::canonical::{DecodeError, EncodeError, canonicalize, read_value, write_value};

/// The envelope format version this build reads and writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// An event that cannot be decoded.
#[derive(Debug, Error)]
pub enum EventError {
    /// The bytes are not canonical CBOR of an envelope.
    #[error("invalid event bytes")]
    Bytes(#[from] DecodeError),
    /// The envelope has a version this build does not know.
    #[error(
        "unknown envelope version {found}: this sv0 reads version {ENVELOPE_VERSION}. Upgrade sv0 to read this log"
    )]
    UnknownEnvelopeVersion {
        /// The version found.
        found: u32,
    },
    /// The event type is not one this build knows.
    #[error("unknown event type {event_type:?}. Upgrade sv0 to read this log")]
    UnknownEventType {
        /// The type found.
        event_type: String,
    },
    /// The event type is known, but its schema version is newer than this build.
    #[error(
        "event type {event_type} has schema version {found}, this sv0 reads up to {supported}. Upgrade sv0 to read this log"
    )]
    UnsupportedSchemaVersion {
        /// The type.
        event_type: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The payload does not have the shape its type and version promise.
    #[error("invalid {event_type} payload: {reason}")]
    InvalidPayload {
        /// The type.
        event_type: String,
        /// What is wrong.
        reason: String,
    },
    /// The event could not be encoded.
    #[error("cannot encode event")]
    Encode(#[from] EncodeError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    event_id: EventId,
    tenant_id: TenantId,
    event_type: String,
    schema_version: u32,
    occurred_at: Timestamp,
    actor: String,
    causation_id: Option<EventId>,
    correlation_id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
    payload: Value,
}

/// Encodes an event as canonical CBOR.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, EventError> {
    let payload = match &event.payload {
        EventPayload::ScanStarted(p) => serialized(p)?,
        EventPayload::ScanChunk(p) => serialized(p)?,
        EventPayload::ScanCompleted(p) => serialized(p)?,
        EventPayload::ApprovalRecorded(p) => serialized(p)?,
        EventPayload::KeyRegistered(p) => serialized(p)?,
        EventPayload::PackSealed(p) => serialized(p)?,
        EventPayload::Fragment(p) => serialized(p)?,
        EventPayload::PolicySet(p) => serialized(p)?,
        EventPayload::PolicyApproved(p) => serialized(p)?,
        EventPayload::ScanQuarantined(p) => serialized(p)?,
        EventPayload::ScanReleased(p) => serialized(p)?,
        EventPayload::KeyRotated(p) => serialized(p)?,
        EventPayload::TokenIssued(p) => serialized(p)?,
        EventPayload::TokenRevoked(p) => serialized(p)?,
        EventPayload::FindingsAcknowledged(p) => serialized(p)?,
    };
    let meta = &event.meta;
    let wire = Wire {
        v: ENVELOPE_VERSION,
        event_id: meta.event_id,
        tenant_id: meta.tenant_id.clone(),
        event_type: event.payload.event_type().to_string(),
        schema_version: event.payload.schema_version(),
        occurred_at: meta.occurred_at,
        actor: meta.actor.clone(),
        causation_id: meta.causation_id,
        correlation_id: meta.correlation_id,
        credential: meta.credential.clone(),
        payload,
    };
    let value = Value::serialized(&wire).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    Ok(write_value(canonicalize(value)?)?)
}

fn serialized<T: Serialize>(payload: &T) -> Result<Value, EncodeError> {
    Value::serialized(payload).map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Decodes an event, checking versions before reading the payload.
pub fn decode_event(bytes: &[u8]) -> Result<Event, EventError> {
    let value = read_value(bytes)?;
    let version = envelope_version(&value)?;
    if version != ENVELOPE_VERSION {
        return Err(EventError::UnknownEnvelopeVersion { found: version });
    }
    let wire: Wire = value.deserialized().map_err(|e| DecodeError::Shape(format!("envelope: {e}")))?;
    let supported = EventPayload::TYPES
        .iter()
        .find(|(name, _)| *name == wire.event_type)
        .map(|(_, version)| *version)
        .ok_or_else(|| EventError::UnknownEventType { event_type: wire.event_type.clone() })?;
    if wire.schema_version > supported || wire.schema_version == 0 {
        return Err(EventError::UnsupportedSchemaVersion {
            event_type: wire.event_type,
            found: wire.schema_version,
            supported,
        });
    }
    // Every type is at version 1 today, so there is nothing to upcast yet. When a type moves to
    // version 2, its older payloads are rewritten here, before the typed decode.
    let payload = match wire.event_type.as_str() {
        "scan.started" => EventPayload::ScanStarted(payload(&wire)?),
        "scan.chunk" => EventPayload::ScanChunk(payload(&wire)?),
        "scan.completed" => EventPayload::ScanCompleted(payload(&wire)?),
        "approval.recorded" => EventPayload::ApprovalRecorded(payload(&wire)?),
        "key.registered" => EventPayload::KeyRegistered(payload(&wire)?),
        "pack.sealed" => EventPayload::PackSealed(payload(&wire)?),
        "event.fragment" => EventPayload::Fragment(payload(&wire)?),
        "policy.set" => EventPayload::PolicySet(payload(&wire)?),
        "policy.approved" => EventPayload::PolicyApproved(payload(&wire)?),
        "scan.quarantined" => EventPayload::ScanQuarantined(payload(&wire)?),
        "scan.released" => EventPayload::ScanReleased(payload(&wire)?),
        "key.rotated" => EventPayload::KeyRotated(payload(&wire)?),
        "token.issued" => EventPayload::TokenIssued(payload(&wire)?),
        "token.revoked" => EventPayload::TokenRevoked(payload(&wire)?),
        "findings.acknowledged" => EventPayload::FindingsAcknowledged(payload(&wire)?),
        other => {
            return Err(EventError::UnknownEventType { event_type: other.to_string() });
        }
    };
    Ok(Event {
        meta: EventMeta {
            event_id: wire.event_id,
            tenant_id: wire.tenant_id,
            occurred_at: wire.occurred_at,
            actor: wire.actor,
            causation_id: wire.causation_id,
            correlation_id: wire.correlation_id,
            credential: wire.credential,
        },
        payload,
    })
}

fn envelope_version(value: &Value) -> Result<u32, DecodeError> {
    let Value::Map(entries) = value else {
        return Err(DecodeError::Shape("an event envelope is a map".to_string()));
    };
    entries
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (Value::Text(key), Value::Integer(n)) if key == "v" => u32::try_from(i128::from(*n)).ok(),
            _ => None,
        })
        .ok_or_else(|| DecodeError::Shape("the envelope has no version field \"v\"".to_string()))
}

fn payload<T: DeserializeOwned>(wire: &Wire) -> Result<T, EventError> {
    wire.payload
        .deserialized()
        .map_err(|e| EventError::InvalidPayload { event_type: wire.event_type.clone(), reason: e.to_string() })
}
