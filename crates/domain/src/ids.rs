//! Identifiers and time: `TenantId`, `EventId`, `Timestamp`.
//!
//! Each type serialises in two shapes: a readable one (hex, RFC 3339) for JSON and a compact one
//! (bytes, integer milliseconds) for CBOR. serde's `is_human_readable` picks the shape, so the
//! same struct is both the snapshot format and the event payload.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::InvalidInput;

/// A tenant: one customer organisation. Lowercase letters, digits and `-`, at most 63 bytes,
/// so that it is safe as a NATS subject token and a file name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(value: impl Into<String>) -> Result<TenantId, InvalidInput> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-');
        if valid {
            Ok(TenantId(value))
        } else {
            Err(InvalidInput::new(format!("invalid tenant id {value:?}: use 1-63 lowercase letters, digits or '-'")))
        }
    }

    /// The tenant id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        TenantId::new(value).map_err(de::Error::custom)
    }
}

/// A 16-byte event id. Ids are derived from content (see `EventId::derive`) so that retrying a
/// command appends nothing new: the log deduplicates by event id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub [u8; 16]);

impl EventId {
    /// Derives an id from a domain-separation label and parts, by SHA-256.
    pub fn derive(label: &str, parts: &[&[u8]]) -> EventId {
        let mut hasher = Sha256::new();
        hasher.update(label.as_bytes());
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        EventId(id)
    }

    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Result<EventId, InvalidInput> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id)
            .map_err(|_| InvalidInput::new(format!("invalid event id {text:?}: expected 32 hex digits")))?;
        Ok(EventId(id))
    }

    /// Lowercase hex, 32 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.to_hex())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = EventId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("16 bytes or 32 hex digits")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<EventId, E> {
                let bytes: [u8; 16] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(EventId(bytes))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<EventId, E> {
                self.visit_bytes(&v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventId, E> {
                EventId::parse(v).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(IdVisitor)
        } else {
            deserializer.deserialize_bytes(IdVisitor)
        }
    }
}

impl JsonSchema for EventId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9a-f]{32}$" })
    }
}

/// A point in time, UTC, in whole milliseconds since the Unix epoch.
///
/// SV0 never reads the wall clock inside a fold: every timestamp a decision uses comes from an
/// event, so a replay reproduces the same decisions.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds in one day.
    pub const DAY_MS: i64 = 86_400_000;

    /// Parses RFC 3339 (any offset; kept as UTC milliseconds, finer digits are truncated).
    pub fn parse(text: &str) -> Result<Timestamp, InvalidInput> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            InvalidInput::new(format!("invalid time {text:?}: {e}. Use RFC 3339, e.g. 2026-03-02T09:00:00Z"))
        })?;
        Ok(Timestamp((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Parses a calendar date (`YYYY-MM-DD`) as its first millisecond, UTC.
    pub fn parse_date(text: &str) -> Result<Timestamp, InvalidInput> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(text, &format)
            .map_err(|_| InvalidInput::new(format!("invalid date {text:?}: use YYYY-MM-DD, e.g. 2026-03-15")))?;
        let start = date.midnight().assume_utc();
        Ok(Timestamp((start.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Parses a due date as every command and route takes one: `YYYY-MM-DD` (its first
    /// millisecond, UTC) or an RFC 3339 time, with one error message for both.
    pub fn parse_due(text: &str) -> Result<Timestamp, InvalidInput> {
        Timestamp::parse_date(text).or_else(|_| Timestamp::parse(text)).map_err(|_| {
            InvalidInput::new(format!(
                "invalid date {text:?}: use YYYY-MM-DD (e.g. 2026-03-15) or an RFC 3339 time (e.g. 2026-03-15T17:00:00Z)"
            ))
        })
    }

    /// The current wall-clock time. Only command handlers call this, never folds
    /// (`projections/clippy.toml` bans it there).
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Timestamp {
        Timestamp((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Canonical RFC 3339 text: UTC, `Z`, milliseconds only when they are not zero.
    pub fn to_rfc3339(&self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) if self.0.rem_euclid(1000) == 0 => t
                .format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
                .unwrap_or_else(|_| self.0.to_string()),
            Ok(t) => t
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// The UTC date, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        let text = self.to_rfc3339();
        match text.split_once('T') {
            Some((date, _)) => date.to_string(),
            None => text,
        }
    }

    /// This time plus (or minus) a number of days.
    pub fn add_days(&self, days: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(days.saturating_mul(Self::DAY_MS)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// `readable`: JSON (an RFC 3339 string), else CBOR (integer milliseconds).
        struct TimeVisitor {
            readable: bool,
        }
        impl Visitor<'_> for TimeVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(if self.readable {
                    "an RFC 3339 time such as 2026-03-02T09:00:00Z"
                } else {
                    "integer milliseconds since 1970"
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(|_| E::custom("time out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimeVisitor { readable: true })
        } else {
            deserializer.deserialize_i64(TimeVisitor { readable: false })
        }
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 time, e.g. 2026-03-02T09:00:00Z"
        })
    }
}

/// Lowercase hex of SHA-256 over `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 over a label and length-prefixed parts, as lowercase hex truncated to `hex_len`
/// digits. Used for stable ids of paths, findings and scopes.
pub fn stable_hash(label: &str, parts: &[&str], hex_len: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let mut text = hex::encode(hasher.finalize());
    text.truncate(hex_len);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp::parse("2026-03-02T10:15:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-02T09:15:00Z");
        let t = Timestamp::parse("2026-03-02T09:15:00.250Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-02T09:15:00.250Z");
        assert_eq!(Timestamp::parse_date("2026-03-15").unwrap().to_rfc3339(), "2026-03-15T00:00:00Z");
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn tenant_ids_are_subject_safe() {
        assert!(TenantId::new("contoso").is_ok());
        assert!(TenantId::new("contoso-eu-2").is_ok());
        for bad in ["", "Contoso", "a.b", "a b", "-x", "a*", &"x".repeat(64)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
