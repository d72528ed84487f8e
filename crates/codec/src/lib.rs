//! The only crate that knows CBOR byte layout, and where JSON from outside is read.
//!
//! - `canonical`: `to_canonical` / `from_canonical` turn any serde value into deterministic CBOR
//!   (RFC 8949 §4.2.1 core deterministic encoding: shortest integers, definite lengths, map keys
//!   sorted by their encoded bytes, no floats) and refuse non-canonical input on the way back, so
//!   one value has exactly one byte string and digests taken over it are stable. `to_stable` /
//!   `from_stable` skip the key sort for data only SV0 reads back (view rows); `from_stable`
//!   reads through `fast`, a direct deserializer, and through ciborium what `fast` declines.
//! - `envelope`: `encode_event` / `decode_event` wrap an `Event` in the versioned envelope and
//!   check the envelope version, the event type and its schema version before the payload is read.
//! - `json`: `json::from_slice` reads JSON a user or a vendor supplies, with errors that name the
//!   field by its JSON path, in JSON's words.

mod bytes;
pub mod canonical;
pub mod envelope;
mod fast;
pub mod json;

pub use canonical::{
    DecodeError, EncodeError, EntitiesDigest, EntitiesHasher, digest_hex, entities_digest, from_canonical, from_stable,
    from_stable_fast, to_canonical, to_stable,
};
pub use envelope::{ENVELOPE_VERSION, EventError, decode_event, encode_event};
