//! Canonical CBOR at the byte level, without building a `ciborium::Value` tree.
//!
//! ciborium serialises straight to bytes with shortest-form integers, but writes struct fields
//! in declaration order and maps of unknown length as indefinite. [`canonicalize`] rewrites such
//! bytes into the RFC 8949 §4.2.1 core deterministic form: every map's entries sorted by the
//! bytes of their encoded keys, definite lengths, shortest heads. [`check`] walks bytes without
//! copying and says whether they already are in that form. Both bound nesting, so hostile input
//! cannot exhaust the stack, and never size a buffer from a length the input claims.

use std::cmp::Ordering;

use crate::canonical::{DecodeError, EncodeError};

/// Deepest nesting of arrays, maps and tags read or written (ciborium's own limit is 256).
const MAX_DEPTH: usize = 256;

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

/// The head of one data item.
#[derive(Debug, Clone, Copy)]
struct Head {
    major: u8,
    /// The argument; `None` for an indefinite length (or, in major type 7, a break).
    arg: Option<u64>,
    /// Whether the head used the shortest form of its argument.
    shortest: bool,
    /// The additional information bits, for major type 7.
    info: u8,
}

/// Why bytes could not be read or are not canonical; mapped onto the public errors.
#[derive(Debug)]
enum Fault {
    Malformed(&'static str),
    NonCanonical,
    Float,
    DuplicateKey,
}

impl From<Fault> for DecodeError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Malformed(why) => DecodeError::Malformed(why.to_string()),
            Fault::NonCanonical | Fault::Float | Fault::DuplicateKey => DecodeError::NonCanonical,
        }
    }
}

impl From<Fault> for EncodeError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Float => EncodeError::Float,
            Fault::DuplicateKey => EncodeError::DuplicateKey,
            // ciborium only writes well-formed CBOR; reaching these is a bug in this module.
            Fault::Malformed(why) => EncodeError::Serialize(format!("serialiser wrote malformed CBOR: {why}")),
            Fault::NonCanonical => EncodeError::Serialize("serialiser wrote non-canonical CBOR".to_string()),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], Fault> {
        let n = usize::try_from(n).map_err(|_| Fault::Malformed("length beyond the input"))?;
        let end =
            self.pos.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(Fault::Malformed("truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn head(&mut self) -> Result<Head, Fault> {
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let width = match info {
            0..=23 => return Ok(Head { major, arg: Some(u64::from(info)), shortest: true, info }),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            28..=30 => return Err(Fault::Malformed("reserved additional information")),
            _ => {
                if matches!(major, UINT | NINT | TAG) {
                    return Err(Fault::Malformed("indefinite length on a type without length"));
                }
                return Ok(Head { major, arg: None, shortest: false, info });
            }
        };
        if major == SIMPLE && width > 1 {
            return Err(Fault::Float);
        }
        let arg = self.take(width)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let shortest = match width {
            1 => arg >= 24,
            2 => arg > 0xff,
            4 => arg > 0xffff,
            _ => arg > 0xffff_ffff,
        };
        if major == SIMPLE && arg < 32 {
            return Err(Fault::Malformed("simple value in two bytes below 32"));
        }
        Ok(Head { major, arg: Some(arg), shortest, info })
    }
}

/// Writes a head in its shortest form.
fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let major = major << 5;
    if arg < 24 {
        out.push(major | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[major | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(major | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(major | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

fn is_break(head: &Head) -> bool {
    head.major == SIMPLE && head.arg.is_none()
}

/// Rewrites exactly one CBOR data item (and nothing after it) into canonical form.
pub(crate) fn canonicalize(bytes: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut out = Vec::with_capacity(bytes.len());
    let head = reader.head()?;
    rewrite(&mut reader, head, &mut out, 0)?;
    if reader.pos != bytes.len() {
        return Err(Fault::Malformed("bytes after the item").into());
    }
    Ok(out)
}

fn rewrite(reader: &mut Reader<'_>, head: Head, out: &mut Vec<u8>, depth: usize) -> Result<(), Fault> {
    if depth > MAX_DEPTH {
        return Err(Fault::Malformed("nested too deeply"));
    }
    match (head.major, head.arg) {
        (UINT | NINT | TAG, Some(arg)) => {
            write_head(out, head.major, arg);
            if head.major == TAG {
                let inner = reader.head()?;
                rewrite(reader, inner, out, depth + 1)?;
            }
        }
        (BYTES | TEXT, Some(len)) => {
            write_head(out, head.major, len);
            out.extend_from_slice(reader.take(len)?);
        }
        (BYTES | TEXT, None) => {
            // Indefinite: the definite chunks, joined.
            let mut joined = Vec::new();
            loop {
                let chunk = reader.head()?;
                if is_break(&chunk) {
                    break;
                }
                match (chunk.major == head.major, chunk.arg) {
                    (true, Some(len)) => joined.extend_from_slice(reader.take(len)?),
                    _ => return Err(Fault::Malformed("bad chunk in an indefinite string")),
                }
            }
            write_head(out, head.major, joined.len() as u64);
            out.extend_from_slice(&joined);
        }
        (ARRAY, Some(len)) => {
            write_head(out, ARRAY, len);
            let mut count = 0u64;
            while let Some(item) = next_item(reader, Some(len), count)? {
                rewrite(reader, item, out, depth + 1)?;
                count += 1;
            }
        }
        (ARRAY, None) => {
            // Indefinite: the items are counted before the head can be written.
            let mut items = Vec::new();
            let mut count = 0u64;
            while let Some(item) = next_item(reader, None, count)? {
                rewrite(reader, item, &mut items, depth + 1)?;
                count += 1;
            }
            write_head(out, ARRAY, count);
            out.extend_from_slice(&items);
        }
        (MAP, len) => {
            // Each entry rewritten into `entries`; `spans` holds (key start, key end, entry end).
            let mut entries = Vec::new();
            let mut spans = Vec::new();
            let mut count = 0u64;
            while let Some(key) = next_item(reader, len, count)? {
                let start = entries.len();
                rewrite(reader, key, &mut entries, depth + 1)?;
                let key_end = entries.len();
                let value = reader.head()?;
                if is_break(&value) {
                    return Err(Fault::Malformed("map key without a value"));
                }
                rewrite(reader, value, &mut entries, depth + 1)?;
                spans.push((start, key_end, entries.len()));
                count += 1;
            }
            spans.sort_by(|a, b| entries[a.0..a.1].cmp(&entries[b.0..b.1]));
            if spans.windows(2).any(|w| entries[w[0].0..w[0].1] == entries[w[1].0..w[1].1]) {
                return Err(Fault::DuplicateKey);
            }
            write_head(out, MAP, count);
            for (start, _, end) in spans {
                out.extend_from_slice(&entries[start..end]);
            }
        }
        (SIMPLE, None) => return Err(Fault::Malformed("break outside an indefinite item")),
        (SIMPLE, Some(arg)) => {
            if head.info == 24 {
                out.extend_from_slice(&[0xf8, arg as u8]);
            } else {
                out.push(0xe0 | head.info);
            }
        }
        _ => return Err(Fault::Malformed("unknown major type")),
    }
    Ok(())
}

/// The next item of an array or map with `len` items (`None`: until a break), `count` read so far.
fn next_item(reader: &mut Reader<'_>, len: Option<u64>, count: u64) -> Result<Option<Head>, Fault> {
    match len {
        Some(len) if count == len => Ok(None),
        Some(_) => {
            let head = reader.head()?;
            if is_break(&head) {
                return Err(Fault::Malformed("break inside a definite item"));
            }
            Ok(Some(head))
        }
        None => {
            let head = reader.head()?;
            Ok((!is_break(&head)).then_some(head))
        }
    }
}

/// Checks that `bytes` are exactly one canonical CBOR data item, copying nothing.
pub(crate) fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let head = reader.head()?;
    walk(&mut reader, head, 0, &mut |_, _| {})?;
    if reader.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - reader.pos));
    }
    Ok(())
}

/// One map entry: its encoded key and its encoded value.
pub(crate) type Entry<'a> = (&'a [u8], &'a [u8]);

/// The entries of canonical bytes that are one map, as (encoded key, encoded value) slices,
/// after checking the whole of them as [`check`] does.
pub(crate) fn map_entries(bytes: &[u8]) -> Result<Vec<Entry<'_>>, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let head = reader.head()?;
    if head.major != MAP {
        return Err(DecodeError::Shape("expected a map".to_string()));
    }
    let mut entries = Vec::new();
    walk(&mut reader, head, 0, &mut |key, value| entries.push((key, value)))?;
    if reader.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - reader.pos));
    }
    Ok(entries)
}

/// Walks one canonical item; `on_entry` sees the entries of the item when it is a map (nested
/// items are walked with a closure that ignores them).
fn walk<'a>(
    reader: &mut Reader<'a>,
    head: Head,
    depth: usize,
    on_entry: &mut dyn FnMut(&'a [u8], &'a [u8]),
) -> Result<(), Fault> {
    if depth > MAX_DEPTH {
        return Err(Fault::Malformed("nested too deeply"));
    }
    if !head.shortest && head.arg.is_some() {
        return Err(Fault::NonCanonical);
    }
    let Some(arg) = head.arg else {
        return Err(if head.major == SIMPLE {
            Fault::Malformed("break outside an indefinite item")
        } else {
            Fault::NonCanonical
        });
    };
    match head.major {
        UINT | NINT | SIMPLE => {}
        BYTES | TEXT => {
            reader.take(arg)?;
        }
        TAG => {
            let inner = reader.head()?;
            walk(reader, inner, depth + 1, &mut |_, _| {})?;
        }
        ARRAY => {
            for _ in 0..arg {
                let item = reader.head()?;
                walk(reader, item, depth + 1, &mut |_, _| {})?;
            }
        }
        _ => {
            let mut previous: Option<&[u8]> = None;
            for _ in 0..arg {
                let key_start = reader.pos;
                let key = reader.head()?;
                walk(reader, key, depth + 1, &mut |_, _| {})?;
                let key_bytes = &reader.bytes[key_start..reader.pos];
                if previous.is_some_and(|p| p.cmp(key_bytes) != Ordering::Less) {
                    return Err(Fault::NonCanonical);
                }
                previous = Some(key_bytes);
                let value_start = reader.pos;
                let value = reader.head()?;
                walk(reader, value, depth + 1, &mut |_, _| {})?;
                on_entry(key_bytes, &reader.bytes[value_start..reader.pos]);
            }
        }
    }
    Ok(())
}
