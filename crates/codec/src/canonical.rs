//! Deterministic CBOR over serde, via `ciborium::Value`.
//!
//! ciborium writes struct fields in declaration order and map entries in iteration order; this
//! module re-sorts every map by the bytes of its encoded keys before writing, which is the
//! RFC 8949 §4.2.1 order. Decoding re-encodes and compares, so a non-canonical byte string is
//! an error rather than a second spelling of the same value.

use std::cmp::Ordering;
use std::io::Cursor;

use ciborium::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A value that cannot be written as canonical CBOR.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// serde refused the value.
    #[error("cannot serialise value: {0}")]
    Serialize(String),
    /// Floats have several encodings and no place in hashed content.
    #[error("floating-point numbers are not allowed in canonical content")]
    Float,
    /// Two entries of one map have the same key.
    #[error("map has a duplicate key")]
    DuplicateKey,
}

/// Bytes that are not one canonical CBOR value of the expected shape.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Not well-formed CBOR.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Well-formed, but bytes follow the value.
    #[error("{0} trailing byte(s) after the CBOR value")]
    TrailingBytes(usize),
    /// Well-formed, but not in canonical form (unsorted keys, long integers, indefinite lengths, floats).
    #[error("CBOR is not in canonical form")]
    NonCanonical,
    /// Canonical CBOR, but not the expected structure.
    #[error("unexpected content: {0}")]
    Shape(String),
}

/// Encodes a value as canonical CBOR.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let value = Value::serialized(value).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    write_value(canonicalize(value)?)
}

/// Decodes canonical CBOR into a value, refusing any other spelling.
pub fn from_canonical<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value = read_value(bytes)?;
    value.deserialized().map_err(|e| DecodeError::Shape(e.to_string()))
}

/// Lowercase hex SHA-256 of a value's canonical CBOR; the digest of content that must be
/// reproducible by anyone holding the same value.
pub fn digest_hex<T: Serialize + ?Sized>(value: &T) -> Result<String, EncodeError> {
    let bytes = to_canonical(value)?;
    Ok(sv0_domain::ids::sha256_hex(&bytes))
}

/// The digest and per-entity encoded sizes of a scan's entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitiesDigest {
    /// Lowercase hex SHA-256 over, for each entity in `Entities::visit` order, its list name,
    /// the length of its canonical CBOR (8 bytes, big-endian) and that CBOR.
    pub digest: String,
    /// Size of each entity's canonical CBOR, in visit order.
    pub sizes: Vec<usize>,
}

/// Hashes a scan's entities one at a time, so memory stays proportional to one entity.
pub fn entities_digest(entities: &sv0_domain::snapshot::Entities) -> Result<EntitiesDigest, EncodeError> {
    let mut hashing = Hashing { hasher: Sha256::new(), sizes: Some(Vec::with_capacity(entities.len())) };
    entities.visit(&mut hashing)?;
    Ok(EntitiesDigest { digest: hex_lower(&hashing.hasher.finalize()), sizes: hashing.sizes.unwrap_or_default() })
}

/// [`entities_digest`]'s digest of entities that arrive in parts: parts that `split_weighted`
/// made, added in their order, give the digest of the whole, holding one part at a time.
pub struct EntitiesHasher(Hashing);

impl Default for EntitiesHasher {
    fn default() -> Self {
        EntitiesHasher(Hashing { hasher: Sha256::new(), sizes: None })
    }
}

impl EntitiesHasher {
    /// Adds the next part.
    pub fn add(&mut self, part: &sv0_domain::snapshot::Entities) -> Result<(), EncodeError> {
        part.visit(&mut self.0)
    }

    /// The lowercase hex digest of everything added.
    pub fn finish(self) -> String {
        hex_lower(&self.0.hasher.finalize())
    }
}

struct Hashing {
    hasher: Sha256,
    sizes: Option<Vec<usize>>,
}

impl sv0_domain::snapshot::EntityVisitor for Hashing {
    type Error = EncodeError;
    fn visit<T: Serialize>(&mut self, list: &'static str, item: &T) -> Result<(), EncodeError> {
        let bytes = to_canonical(item)?;
        self.hasher.update(list.as_bytes());
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(&bytes);
        if let Some(sizes) = &mut self.sizes {
            sizes.push(bytes.len());
        }
        Ok(())
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads exactly one canonical CBOR value.
pub(crate) fn read_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut cursor = Cursor::new(bytes);
    let value: Value = ciborium::from_reader(&mut cursor).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let used = cursor.position() as usize;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    // Key order and the absence of floats are checked on the value; shortest-form integers
    // and definite lengths by re-encoding it, which ciborium always does canonically.
    if !in_canonical_order(&value) {
        return Err(DecodeError::NonCanonical);
    }
    let mut again = Vec::with_capacity(bytes.len());
    ciborium::into_writer(&value, &mut again).map_err(|_| DecodeError::NonCanonical)?;
    if again != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Writes a value that is already canonical.
pub(crate) fn write_value(value: Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    Ok(out)
}

/// RFC 8949 §4.2.1 order of two map keys: the bytewise order of their encodings. For text keys
/// that is shorter first, then bytewise, which needs no encoding.
fn key_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Text(a), Value::Text(b)) => a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes())),
        _ => {
            let encode = |v: &Value| {
                let mut out = Vec::new();
                // Encoding into a Vec cannot fail.
                let _ = ciborium::into_writer(v, &mut out);
                out
            };
            encode(a).cmp(&encode(b))
        }
    }
}

fn in_canonical_order(value: &Value) -> bool {
    match value {
        Value::Float(_) => false,
        Value::Array(items) => items.iter().all(in_canonical_order),
        Value::Tag(_, inner) => in_canonical_order(inner),
        Value::Map(entries) => {
            entries.windows(2).all(|w| key_order(&w[0].0, &w[1].0) == Ordering::Less)
                && entries.iter().all(|(k, v)| in_canonical_order(k) && in_canonical_order(v))
        }
        _ => true,
    }
}

/// Sorts every map by encoded key bytes, recursively; refuses floats and duplicate keys.
pub(crate) fn canonicalize(value: Value) -> Result<Value, EncodeError> {
    Ok(match value {
        Value::Float(_) => return Err(EncodeError::Float),
        Value::Array(items) => Value::Array(items.into_iter().map(canonicalize).collect::<Result<_, _>>()?),
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonicalize(*inner)?)),
        Value::Map(entries) => {
            let mut entries = entries
                .into_iter()
                .map(|(k, v)| Ok((canonicalize(k)?, canonicalize(v)?)))
                .collect::<Result<Vec<_>, EncodeError>>()?;
            entries.sort_by(|a, b| key_order(&a.0, &b.0));
            if entries.windows(2).any(|w| key_order(&w[0].0, &w[1].0) == Ordering::Equal) {
                return Err(EncodeError::DuplicateKey);
            }
            Value::Map(entries)
        }
        other => other,
    })
}

/// Encodes a value deterministically but without canonical key order: the same value always
/// gives the same bytes (struct fields in declaration order, `BTreeMap`s in key order). For
/// data SV0 writes and reads itself, such as view rows, where speed matters and no outside
/// party recomputes the bytes.
pub fn to_stable<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    Ok(out)
}

/// Decodes what `to_stable` wrote.
pub fn from_stable<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    ciborium::from_reader(bytes).map_err(|e| DecodeError::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        zz: u64,
        b: String,
        aa: bool,
    }

    #[test]
    fn map_keys_sort_by_encoded_bytes_not_declaration_order() {
        // RFC 8949 §4.2.1: "b" (0x61 62) sorts before "aa" (0x62 61 61) and "zz" (0x62 7a 7a).
        let bytes = to_canonical(&Sample { zz: 1, b: "x".into(), aa: true }).unwrap();
        assert_eq!(hex(&bytes), "a361626178626161f5627a7a01");
        assert_eq!(from_canonical::<Sample>(&bytes).unwrap(), Sample { zz: 1, b: "x".into(), aa: true });
    }

    #[test]
    fn non_canonical_spellings_are_refused() {
        // The same map with keys in declaration order.
        let unsorted = [0xa3, 0x62, 0x7a, 0x7a, 0x01, 0x61, 0x62, 0x61, 0x78, 0x62, 0x61, 0x61, 0xf5];
        assert!(matches!(from_canonical::<Sample>(&unsorted), Err(DecodeError::NonCanonical)));
        // 1 written as a two-byte integer.
        assert!(matches!(from_canonical::<u64>(&[0x18, 0x01]), Err(DecodeError::NonCanonical)));
        // An indefinite-length array.
        assert!(matches!(from_canonical::<Vec<u64>>(&[0x9f, 0x01, 0xff]), Err(DecodeError::NonCanonical)));
        // Trailing bytes.
        assert!(matches!(from_canonical::<u64>(&[0x01, 0x02]), Err(DecodeError::TrailingBytes(1))));
        // Truncated.
        assert!(matches!(from_canonical::<String>(&[0x63, 0x61]), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn floats_are_refused() {
        assert!(matches!(to_canonical(&1.5f64), Err(EncodeError::Float)));
    }
}
