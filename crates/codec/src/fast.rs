//! A direct CBOR deserializer for the bytes `to_stable` writes: definite lengths, text map
//! keys, unit enum variants as text, no tags. Strings are read in place, so a field name costs
//! a comparison and a value one allocation; ciborium copies each through a scratch buffer
//! first, and decoding view rows through it was a tenth of a large import.
//!
//! It declines anything else (a tag, an indefinite length, `undefined`, a simple value, a
//! nesting deeper than `MAX_DEPTH`) with an error, and `from_stable` then decodes the bytes with
//! ciborium, so what it accepts it must read exactly as ciborium does: a test decodes every
//! entity of a synthetic tenant and of the bundled example both ways.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Deeper nesting is declined (and left to ciborium's own limit).
const MAX_DEPTH: usize = 128;

/// Why the fast path declined; never shown: the bytes are then decoded by ciborium.
#[derive(Debug)]
pub(crate) struct Declined(String);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Declined(msg.to_string())
    }
}

fn declined<T>(why: &str) -> Result<T, Declined> {
    Err(Declined(why.to_string()))
}

/// Decodes one value from the start of `bytes` (trailing bytes are ignored, as ciborium's
/// `from_reader` ignores them).
pub(crate) fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Declined> {
    T::deserialize(&mut Deserializer { input: bytes, depth: 0 })
}

struct Deserializer<'de> {
    input: &'de [u8],
    depth: usize,
}

/// A data item's head: major type and argument.
struct Head {
    major: u8,
    info: u8,
    arg: u64,
}

impl<'de> Deserializer<'de> {
    fn peek_byte(&self) -> Result<u8, Declined> {
        self.input.first().copied().ok_or_else(|| Declined("end of input".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], Declined> {
        if self.input.len() < n {
            return declined("a length past the end of the input");
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn head(&mut self) -> Result<Head, Declined> {
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let width = match info {
            0..=23 => return Ok(Head { major, info, arg: u64::from(info) }),
            24..=27 => 1usize << (info - 24),
            _ => return declined("an indefinite length or reserved head"),
        };
        let arg = self.take(width)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Ok(Head { major, info, arg })
    }

    fn length(&self, arg: u64) -> Result<usize, Declined> {
        usize::try_from(arg)
            .ok()
            .filter(|n| *n <= self.input.len())
            .ok_or_else(|| Declined("a length past the end".into()))
    }

    fn text(&mut self, arg: u64) -> Result<&'de str, Declined> {
        let n = self.length(arg)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| Declined("text that is not UTF-8".into()))
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Declined>) -> Result<T, Declined> {
        if self.depth >= MAX_DEPTH {
            return declined("nesting too deep");
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        let head = self.head()?;
        match head.major {
            0 => visitor.visit_u64(head.arg),
            1 => match i64::try_from(head.arg) {
                Ok(n) => visitor.visit_i64(-1 - n),
                Err(_) => visitor.visit_i128(-1 - i128::from(head.arg)),
            },
            2 => {
                let n = self.length(head.arg)?;
                visitor.visit_borrowed_bytes(self.take(n)?)
            }
            3 => visitor.visit_borrowed_str(self.text(head.arg)?),
            4 => {
                let n = self.length(head.arg)?;
                self.nested(|de| {
                    let mut seq = Seq { de, left: n };
                    let value = visitor.visit_seq(&mut seq)?;
                    if seq.left != 0 {
                        return declined("items left in an array");
                    }
                    Ok(value)
                })
            }
            5 => {
                // Each entry takes at least two bytes.
                let n = self.length(head.arg.saturating_mul(2))? / 2;
                self.nested(|de| {
                    let mut map = Map { de, left: n };
                    let value = visitor.visit_map(&mut map)?;
                    if map.left != 0 {
                        return declined("entries left in a map");
                    }
                    Ok(value)
                })
            }
            // As ciborium: null is `None`, every float an `f64`.
            7 => match head.info {
                20 => visitor.visit_bool(false),
                21 => visitor.visit_bool(true),
                22 => visitor.visit_none(),
                25..=27 => visitor.visit_f64(float(&head)),
                _ => declined("a simple value"),
            },
            _ => declined("a tag"),
        }
    }

    // As ciborium: a float field takes a float, not an integer.
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        let head = self.head()?;
        match (head.major, head.info) {
            (7, 25..=27) => visitor.visit_f64(float(&head)),
            _ => declined("not a float"),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        if self.peek_byte()? == 0xf6 {
            self.take(1)?;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        if self.take(1)?[0] != 0xf6 {
            return declined("not null");
        }
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        match self.peek_byte()? >> 5 {
            3 => {
                let head = self.head()?;
                let name: &'de str = self.text(head.arg)?;
                visitor.visit_enum(IntoDeserializer::<'de, Declined>::into_deserializer(name))
            }
            5 => {
                let head = self.head()?;
                if head.arg != 1 {
                    return declined("an enum map of more than one entry");
                }
                self.nested(|de| visitor.visit_enum(Variant { de }))
            }
            _ => declined("an enum that is neither text nor a map"),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_any(de::IgnoredAny)?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf
        seq tuple tuple_struct map struct identifier
    }
}

/// The value of a float head (major type 7, additional information 25, 26 or 27).
fn float(head: &Head) -> f64 {
    match head.info {
        25 => f64::from(half_to_f32(head.arg as u16)),
        26 => f64::from(f32::from_bits(head.arg as u32)),
        _ => f64::from_bits(head.arg),
    }
}

/// A half-precision float as `f32` (RFC 8949 appendix D).
fn half_to_f32(bits: u16) -> f32 {
    let exponent = (bits >> 10) & 0x1f;
    let mantissa = f32::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1024.0 + mantissa) * 2f32.powi(i32::from(e) - 25),
    };
    if bits & 0x8000 != 0 { -magnitude } else { magnitude }
}

struct Seq<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for &mut Seq<'_, 'de> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Declined> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct Map<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for &mut Map<'_, 'de> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// An enum written as a one-entry map: variant name → content.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Declined;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Declined> {
        let value = seed.deserialize(&mut *self.de)?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Declined;

    fn unit_variant(self) -> Result<(), Declined> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Declined> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Declined> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Wrapped(u32),
        Shaped { a: i64, b: Option<String> },
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        id: String,
        n: i64,
        big: u64,
        ratio: f64,
        flag: bool,
        maybe: Option<u8>,
        kinds: Vec<Kind>,
        tags: BTreeMap<String, String>,
        raw: Vec<u8>,
        unit: (),
    }

    fn sample() -> Sample {
        Sample {
            id: "grant-1 ✓".into(),
            n: -40_000_000_000,
            big: u64::MAX,
            ratio: 0.25,
            flag: true,
            maybe: None,
            kinds: vec![Kind::Plain, Kind::Wrapped(7), Kind::Shaped { a: -1, b: Some("x".into()) }],
            tags: [("env".to_string(), "prod".to_string())].into(),
            raw: vec![0, 255],
            unit: (),
        }
    }

    #[test]
    fn it_reads_what_ciborium_writes_as_ciborium_reads_it() {
        let bytes = crate::to_stable(&sample()).unwrap();
        let fast: Sample = from_slice(&bytes).unwrap();
        let slow: Sample = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast, sample());
    }

    #[test]
    fn it_declines_tags_indefinite_lengths_deep_nesting_and_short_input_and_ciborium_decides() {
        // Tag 1 (epoch time) around 1: ciborium reads through the tag.
        let tagged = [0xc1, 0x01];
        assert!(from_slice::<u64>(&tagged).is_err());
        assert_eq!(crate::from_stable::<u64>(&tagged).unwrap(), 1);
        // An indefinite-length array.
        let indefinite = [0x9f, 0x01, 0x02, 0xff];
        assert!(from_slice::<Vec<u64>>(&indefinite).is_err());
        assert_eq!(crate::from_stable::<Vec<u64>>(&indefinite).unwrap(), vec![1, 2]);
        // Nesting past the limit: declined, not a stack overflow.
        let deep: Vec<u8> = std::iter::repeat_n(0x81u8, 10_000).chain([0x01]).collect();
        assert!(from_slice::<serde_json::Value>(&deep).is_err());
        // A length past the end, and an integer where a float belongs (ciborium refuses it too).
        assert!(from_slice::<String>(&[0x7a, 0xff, 0xff, 0xff, 0xff, b'a']).is_err());
        assert!(from_slice::<f64>(&[0x01]).is_err());
        assert!(crate::from_stable::<f64>(&[0x01]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_ciborium_when_both_read_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let fast = from_slice::<serde_json::Value>(&bytes);
            let slow = ciborium::from_reader::<serde_json::Value, _>(bytes.as_slice());
            if let (Ok(fast), Ok(slow)) = (fast, slow) {
                prop_assert_eq!(fast, slow);
            }
        }
    }
}
