//! Deterministic CBOR over serde.
//!
//! ciborium writes struct fields in declaration order and map entries in iteration order; this
//! module re-sorts every map by the bytes of its encoded keys (`crate::bytes`), which is the
//! RFC 8949 §4.2.1 order. Decoding checks the bytes are already in that form, so a
//! non-canonical byte string is an error rather than a second spelling of the same value.

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

/// Encodes a value as canonical CBOR: ciborium writes it straight to bytes, then every map is
/// sorted and every length made definite at the byte level (no `Value` tree in between).
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut raw = Vec::new();
    ciborium::into_writer(value, &mut raw).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    crate::bytes::canonicalize(&raw)
}

/// Decodes canonical CBOR into a value, refusing any other spelling: the bytes are checked in
/// one pass that copies nothing, then deserialised straight into `T`.
pub fn from_canonical<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    crate::bytes::check(bytes)?;
    ciborium::from_reader(bytes).map_err(|e| DecodeError::Shape(e.to_string()))
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

/// Encodes a value deterministically but without canonical key order: the same value always
/// gives the same bytes (struct fields in declaration order, `BTreeMap`s in key order). For
/// data SV0 writes and reads itself, such as view rows, where speed matters and no outside
/// party recomputes the bytes.
pub fn to_stable<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    Ok(out)
}

/// The fast path of `from_stable` alone: `None` where it declines the bytes (tests compare it
/// with ciborium).
pub fn from_stable_fast<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    crate::fast::from_slice(bytes).ok()
}

/// Decodes what `to_stable` wrote: through `fast` when it takes the bytes, through ciborium
/// (whose error is the one reported) when it declines them.
pub fn from_stable<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if let Ok(value) = crate::fast::from_slice(bytes) {
        return Ok(value);
    }
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
        assert!(matches!(from_canonical::<u64>(&[0xf9, 0x3c, 0x00]), Err(DecodeError::NonCanonical)));
    }

    #[test]
    fn duplicate_keys_are_refused_both_ways() {
        let pairs = vec![("a", 1u8), ("a", 2u8)];
        let map = Value::Map(pairs.into_iter().map(|(k, v)| (Value::Text(k.into()), Value::from(v))).collect());
        assert!(matches!(to_canonical(&map), Err(EncodeError::DuplicateKey)));
        assert!(matches!(
            from_canonical::<Value>(&[0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02]),
            Err(DecodeError::NonCanonical)
        ));
    }

    #[test]
    fn indefinite_lengths_become_definite() {
        // ciborium writes a map of unknown length (a flattened struct) as indefinite.
        #[derive(serde::Serialize)]
        struct Outer {
            #[serde(flatten)]
            inner: Sample,
            extra: Vec<u8>,
        }
        let value = Outer { inner: Sample { zz: 300, b: "y".into(), aa: false }, extra: vec![1, 2] };
        let bytes = to_canonical(&value).unwrap();
        assert_eq!(bytes, reference::to_canonical(&value));
        crate::bytes::check(&bytes).unwrap();
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let deep = [vec![0x81u8; 100_000], vec![0x00]].concat();
        assert!(matches!(from_canonical::<Value>(&deep), Err(DecodeError::Malformed(_))));
        // A length far beyond the input is refused without allocating for it.
        assert!(matches!(
            from_canonical::<Value>(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            from_canonical::<Value>(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// The encoder this module had before: a `ciborium::Value` tree, sorted and re-encoded.
    /// Kept as the reference the byte-level encoder must match exactly.
    mod reference {
        use std::cmp::Ordering;

        use ciborium::Value;

        fn key_order(a: &Value, b: &Value) -> Ordering {
            let encode = |v: &Value| {
                let mut out = Vec::new();
                ciborium::into_writer(v, &mut out).unwrap();
                out
            };
            encode(a).cmp(&encode(b))
        }

        fn canonicalize(value: Value) -> Value {
            match value {
                Value::Array(items) => Value::Array(items.into_iter().map(canonicalize).collect()),
                Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonicalize(*inner))),
                Value::Map(entries) => {
                    let mut entries: Vec<_> =
                        entries.into_iter().map(|(k, v)| (canonicalize(k), canonicalize(v))).collect();
                    entries.sort_by(|a, b| key_order(&a.0, &b.0));
                    Value::Map(entries)
                }
                other => other,
            }
        }

        pub fn to_canonical<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
            let value = canonicalize(Value::serialized(value).unwrap());
            let mut out = Vec::new();
            ciborium::into_writer(&value, &mut out).unwrap();
            out
        }
    }

    use ciborium::Value;
    use proptest::prelude::*;

    /// CBOR values without floats, with keys of every kind and length so map order is exercised.
    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![0u64, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296])
                .prop_map(Value::from),
            "[a-z]{0,30}".prop_map(Value::Text),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{0,12}", inner.clone(), 0..8)
                    .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())),
                prop::collection::vec((any::<i16>(), inner.clone()), 0..6).prop_map(|entries| {
                    let mut seen = std::collections::BTreeSet::new();
                    Value::Map(
                        entries
                            .into_iter()
                            .filter(|(k, _)| seen.insert(*k))
                            .map(|(k, v)| (Value::from(k), v))
                            .collect(),
                    )
                }),
                (any::<u16>(), inner).prop_map(|(tag, v)| Value::Tag(u64::from(tag), Box::new(v))),
            ]
        })
    }

    proptest! {
        #[test]
        fn byte_level_encoding_is_the_value_tree_encoding(value in values()) {
            let bytes = to_canonical(&value).unwrap();
            prop_assert_eq!(&bytes, &reference::to_canonical(&value));
            crate::bytes::check(&bytes).unwrap();
            prop_assert_eq!(from_canonical::<Value>(&bytes).unwrap(), from_canonical::<Value>(&reference::to_canonical(&value)).unwrap());
        }

        #[test]
        fn any_other_spelling_is_refused(value in values()) {
            // ciborium's own encoding of the unsorted tree is accepted only when it happens to
            // be the canonical one.
            let mut plain = Vec::new();
            ciborium::into_writer(&value, &mut plain).unwrap();
            let canonical = to_canonical(&value).unwrap();
            prop_assert_eq!(crate::bytes::check(&plain).is_ok(), plain == canonical);
        }
    }
}
