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

use serde::Serialize;
use serde::de::DeserializeOwned;
use sv0_domain::events::{Event, EventMeta, EventPayload};
use sv0_domain::{EventId, TenantId, Timestamp};
use thiserror::Error;

use crate::canonical::{DecodeError, EncodeError, from_stable, to_canonical};

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

#[derive(Serialize)]
struct Wire<'a, P> {
    v: u32,
    event_id: EventId,
    tenant_id: &'a TenantId,
    event_type: &'a str,
    schema_version: u32,
    occurred_at: Timestamp,
    actor: &'a str,
    causation_id: Option<EventId>,
    correlation_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    payload: &'a P,
}

/// Encodes an event as canonical CBOR.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, EventError> {
    match &event.payload {
        EventPayload::ScanStarted(p) => encode(event, p),
        EventPayload::ScanChunk(p) => encode(event, p),
        EventPayload::ScanCompleted(p) => encode(event, p),
        EventPayload::ApprovalRecorded(p) => encode(event, p),
        EventPayload::KeyRegistered(p) => encode(event, p),
        EventPayload::PackSealed(p) => encode(event, p),
        EventPayload::Fragment(p) => encode(event, p),
        EventPayload::PolicySet(p) => encode(event, p),
        EventPayload::PolicyApproved(p) => encode(event, p),
        EventPayload::ScanQuarantined(p) => encode(event, p),
        EventPayload::ScanReleased(p) => encode(event, p),
        EventPayload::KeyRotated(p) => encode(event, p),
        EventPayload::TokenIssued(p) => encode(event, p),
        EventPayload::TokenRevoked(p) => encode(event, p),
        EventPayload::FindingsAcknowledged(p) => encode(event, p),
        EventPayload::CheckpointTimestamped(p) => encode(event, p),
    }
}

fn encode<P: Serialize>(event: &Event, payload: &P) -> Result<Vec<u8>, EventError> {
    let meta = &event.meta;
    let wire = Wire {
        v: ENVELOPE_VERSION,
        event_id: meta.event_id,
        tenant_id: &meta.tenant_id,
        event_type: event.payload.event_type(),
        schema_version: event.payload.schema_version(),
        occurred_at: meta.occurred_at,
        actor: &meta.actor,
        causation_id: meta.causation_id,
        correlation_id: meta.correlation_id,
        credential: meta.credential.as_deref(),
        payload,
    };
    Ok(to_canonical(&wire)?)
}

/// The envelope's fields, each as its encoded value, read in one pass that also checks the
/// whole event is canonical.
struct Fields<'a>(Vec<(Option<String>, &'a [u8])>);

/// The envelope's fields; any other is refused.
const FIELDS: [&str; 11] = [
    "v",
    "event_id",
    "tenant_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "actor",
    "causation_id",
    "correlation_id",
    "credential",
    "payload",
];

impl<'a> Fields<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let entries = crate::bytes::map_entries(bytes).map_err(|e| match e {
            DecodeError::Shape(_) => DecodeError::Shape("an event envelope is a map".to_string()),
            other => other,
        })?;
        // Each key's text, read once (`None`: not a text string, refused by `no_unknown`; a
        // tagged string is not one, though ciborium would read through the tag).
        let text = |key: &[u8]| key.first().is_some_and(|b| b >> 5 == 3).then(|| from_stable(key).ok()).flatten();
        Ok(Fields(entries.into_iter().map(|(key, value)| (text(key), value)).collect()))
    }

    /// The encoded value of a field, if present.
    fn raw(&self, name: &str) -> Option<&'a [u8]> {
        self.0.iter().find(|(key, _)| key.as_deref() == Some(name)).map(|(_, value)| *value)
    }

    /// A field the envelope must have.
    fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, DecodeError> {
        let raw = self.raw(name).ok_or_else(|| DecodeError::Shape(format!("envelope: missing field `{name}`")))?;
        from_stable(raw).map_err(|e| DecodeError::Shape(format!("envelope: field `{name}`: {e}")))
    }

    /// A field the envelope may omit.
    fn optional<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, DecodeError> {
        match self.raw(name) {
            None => Ok(None),
            Some(raw) => from_stable(raw).map_err(|e| DecodeError::Shape(format!("envelope: field `{name}`: {e}"))),
        }
    }

    /// Refuses fields the envelope does not have, as the schema's closed map does.
    fn no_unknown(&self) -> Result<(), DecodeError> {
        for (key, _) in &self.0 {
            match key.as_deref() {
                Some(name) if FIELDS.contains(&name) => {}
                Some(name) => return Err(DecodeError::Shape(format!("envelope: unknown field `{name}`"))),
                None => return Err(DecodeError::Shape("envelope: a key that is not text".to_string())),
            }
        }
        Ok(())
    }
}

/// Decodes an event, checking versions before reading the payload.
pub fn decode_event(bytes: &[u8]) -> Result<Event, EventError> {
    let fields = Fields::read(bytes)?;
    let version = fields
        .raw("v")
        .and_then(|raw| from_stable::<u32>(raw).ok())
        .ok_or_else(|| DecodeError::Shape("the envelope has no version field \"v\"".to_string()))?;
    if version != ENVELOPE_VERSION {
        return Err(EventError::UnknownEnvelopeVersion { found: version });
    }
    fields.no_unknown()?;
    let wire = WireIn {
        event_id: fields.required("event_id")?,
        tenant_id: fields.required("tenant_id")?,
        event_type: fields.required("event_type")?,
        schema_version: fields.required("schema_version")?,
        occurred_at: fields.required("occurred_at")?,
        actor: fields.required("actor")?,
        causation_id: fields.optional("causation_id")?.flatten(),
        correlation_id: fields.optional("correlation_id")?.flatten(),
        credential: fields.optional("credential")?,
        payload: fields
            .raw("payload")
            .ok_or_else(|| DecodeError::Shape("envelope: missing field `payload`".to_string()))?,
    };
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
        "checkpoint.timestamped" => EventPayload::CheckpointTimestamped(payload(&wire)?),
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

/// A decoded envelope whose payload is still bytes.
struct WireIn<'a> {
    event_id: EventId,
    tenant_id: TenantId,
    event_type: String,
    schema_version: u32,
    occurred_at: Timestamp,
    actor: String,
    causation_id: Option<EventId>,
    correlation_id: Option<EventId>,
    credential: Option<String>,
    payload: &'a [u8],
}

fn payload<T: DeserializeOwned>(wire: &WireIn<'_>) -> Result<T, EventError> {
    from_stable(wire.payload)
        .map_err(|e| EventError::InvalidPayload { event_type: wire.event_type.clone(), reason: e.to_string() })
}
