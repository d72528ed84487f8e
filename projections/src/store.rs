//! The views' tables and how keys and values are laid out in them.
//!
//! Every table maps bytes to bytes. Keys are components joined by a 0x00 byte (ids never hold
//! control characters; numbers are fixed-width big-endian so they sort), so a tenant's rows
//! are one contiguous range. Values are deterministic CBOR (`sv0_codec::to_stable`), except the
//! tables of a million rows, which hold postcard (no field names, a third of the size, several
//! times faster to write and read): one row each (findings), or many values of one workload
//! packed into one row (`encode_packed`: paths by workload and identity, workload facts,
//! finding groups). Entity rows are their canonical CBOR, packed (`graph::entity_row`). Packed
//! rows longer than `PIECE_BYTES` are stored in pieces. Every encoding is deterministic, so
//! equal content is equal bytes and a rebuilt database can be compared with an incremental one
//! entry for entry.
//!
//! `FORMAT` names the layout; views of another layout are refolded from the log on open.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sv0_domain::assessment::FindingMovement;
use sv0_domain::policy::{Policy, RegoState};
use sv0_domain::snapshot::EntityList;
use sv0_domain::{TenantId, Timestamp};

use crate::error::ProjectionError;
use crate::records::TenantState;

/// The layout of the views: a views file of another layout is refolded from the log.
pub const FORMAT: &[u8] = b"sv0-views-23";

/// One raw row: key bytes and value bytes.
pub type Row = (Vec<u8>, Vec<u8>);

/// A view table: bytes to bytes.
pub type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The projector's position: `views` → last applied log position.
pub const CHECKPOINTS: Def = TableDefinition::new("checkpoints");
/// `(tenant, scan_id)` → `ScanStarted` of a scan whose chunks are still arriving.
pub const SCANS_PENDING: Def = TableDefinition::new("scans_pending");
/// `(tenant, scan_id, index)` → the chunk's `Entities`.
pub const SCAN_CHUNKS: Def = TableDefinition::new("scan_chunks");
/// `(tenant, scan_id)` → `ScanRecord`: applied or rejected, and why.
pub const SCANS: Def = TableDefinition::new("scans");
/// `(tenant, list, id)` → the entity as last observed.
pub const ENTITIES: Def = TableDefinition::new("entities");
/// `(tenant, index, value, entity id)` → payload: secondary indexes of entities (see `graph`).
pub const ENTITY_INDEX: Def = TableDefinition::new("entity_index");
/// `(tenant, list, id)` → since when an entity a partial scan did not see has been unobserved.
pub const UNOBSERVED: Def = TableDefinition::new("unobserved");
/// `(tenant, workload, identity)` → the workload's paths through the identity (`pathstore`).
pub const PATHS: Def = TableDefinition::new("paths");
/// `(tenant, index, value, path_id)` → the path's workload: paths by workload, identity,
/// destination, domain, grade, egress, owner state, evidence gap and grade expiry.
pub const PATH_INDEX: Def = TableDefinition::new("path_index");
/// `(tenant, path_id)` → the path's fingerprint, for the path set digest.
pub const PATH_FINGERPRINTS: Def = TableDefinition::new("path_fingerprints");
/// (tenant, workload) -> what the rules about the whole workload read of each of its paths.
pub const WORKLOAD_FACTS: Def = TableDefinition::new("workload_facts");
/// `(tenant, bucket)` → the digest of one of the path set digest's 65,536 buckets.
pub const DIGEST_BUCKETS: Def = TableDefinition::new("digest_buckets");
/// `(tenant)` → `TenantState`.
pub const TENANTS: Def = TableDefinition::new("tenants");
/// `(tenant)` → the tenant's `Policy`.
pub const POLICIES: Def = TableDefinition::new("policies");
/// `(tenant, scan_id)` → `EntityDiff`: what a scan added, removed, changed, left unobserved.
pub const SCAN_DIFFS: Def = TableDefinition::new("scan_diffs");
/// `(tenant, finding_id)` → `FindingRecord`.
pub const FINDINGS: Def = TableDefinition::new("findings");
/// `(tenant, workload, finding_id)` → empty: the findings of a workload in `findings`.
pub const FINDINGS_BY_WORKLOAD: Def = TableDefinition::new("findings_by_workload");
/// `(tenant, workload)` → the findings about the workload and its paths, one compressed row
/// (`findingstore`).
pub const FINDING_GROUPS: Def = TableDefinition::new("finding_groups");
/// `(tenant, finding_id)` → the workload whose group holds the finding.
pub const FINDING_LOCATOR: Def = TableDefinition::new("finding_locator");
/// `(tenant, scope_key)` → `BaselineHead`.
pub const BASELINES: Def = TableDefinition::new("baselines");
/// `(tenant, scope_key, version)` → `Baseline` (`encode_big`).
pub const BASELINE_VERSIONS: Def = TableDefinition::new("baseline_versions");
/// `(tenant, scope_key)` → flagged path ids of the scope's last post-deployment delta.
pub const SCOPE_FLAGS: Def = TableDefinition::new("scope_flags");
/// `(tenant, scope_key)` → ids of the scope's open undeclared-addition findings (SV0-D010).
pub const DELTA_FINDINGS: Def = TableDefinition::new("delta_findings");
/// `(tenant, scope_key)` → `ScopeMemo`: what the scope's last computed assessment was computed
/// from and gave, reused while none of it changed (`assess`).
pub const SCOPE_MEMOS: Def = TableDefinition::new("scope_memos");
/// `(tenant, workload)` → the position of the last event that changed the workload's paths or
/// findings (`assess::stamp`).
pub const WORKLOAD_STAMPS: Def = TableDefinition::new("workload_stamps");
/// `(tenant, seq)` → `Assessment` awaiting or bearing a seal (`encode_big`).
pub const ASSESSMENTS: Def = TableDefinition::new("assessments");
/// `(tenant)` → position of the tenant's last assessment.
pub const ASSESSMENT_CURSOR: Def = TableDefinition::new("assessment_cursor");
/// `(tenant, index)` → `PackSealed` (`encode_big`).
pub const PACKS: Def = TableDefinition::new("packs");
/// `(tenant)` → `PackHead`.
pub const PACK_HEADS: Def = TableDefinition::new("pack_heads");
/// `(tenant, key_id)` → `KeyRecord`.
pub const KEYS: Def = TableDefinition::new("keys");
/// `token_id` → `TokenRecord` (token ids are global, so that a token finds its tenant).
pub const TOKENS: Def = TableDefinition::new("tokens");
/// `(tenant, event id, index)` → a piece of a fragmented event whose other pieces are pending.
pub const FRAGMENTS: Def = TableDefinition::new("fragments");
/// `log` → the identity of the log the views are folded from; `signals` → the signal cursor.
pub const META: Def = TableDefinition::new("meta");

/// Every table, so that a new database has them all and a dump covers them all.
pub const ALL_TABLES: [Def; 33] = [
    CHECKPOINTS,
    SCANS_PENDING,
    SCAN_CHUNKS,
    SCANS,
    ENTITIES,
    ENTITY_INDEX,
    UNOBSERVED,
    PATHS,
    PATH_INDEX,
    PATH_FINGERPRINTS,
    WORKLOAD_FACTS,
    DIGEST_BUCKETS,
    TENANTS,
    POLICIES,
    SCAN_DIFFS,
    FINDINGS,
    FINDINGS_BY_WORKLOAD,
    FINDING_GROUPS,
    FINDING_LOCATOR,
    BASELINES,
    BASELINE_VERSIONS,
    SCOPE_FLAGS,
    DELTA_FINDINGS,
    SCOPE_MEMOS,
    WORKLOAD_STAMPS,
    ASSESSMENTS,
    ASSESSMENT_CURSOR,
    PACKS,
    PACK_HEADS,
    KEYS,
    TOKENS,
    FRAGMENTS,
    META,
];

/// A key from components.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
    out
}

/// The prefix every key starting with these components shares.
pub fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = key(parts);
    out.push(0);
    out
}

/// The exclusive end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    // A prefix ends in 0x00, so bumping its last byte to 0x01 ends the range.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Encodes a value for a table.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProjectionError> {
    sv0_codec::to_stable(value).map_err(ProjectionError::Encode)
}

/// Decodes a table value.
pub fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, ProjectionError> {
    sv0_codec::from_stable(bytes).map_err(|source| ProjectionError::CorruptView { table: table.to_string(), source })
}

/// Encodes a value of the paths or findings table (postcard).
pub fn encode_compact<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProjectionError> {
    postcard::to_allocvec(value).map_err(|e| ProjectionError::Encode(sv0_codec::EncodeError::Serialize(e.to_string())))
}

/// Decodes a value of the paths or findings table.
pub fn decode_compact<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, ProjectionError> {
    postcard::from_bytes(bytes).map_err(|e| corrupt(table, e.to_string()))
}

/// A packed row larger than this, unpacked, is damage rather than data: a workload of a million
/// paths or findings, or the largest entity a scan admits, stays well below it.
const MAX_PACKED_BYTES: usize = 1 << 30;

/// Packs bytes: LZ4-compressed after a 4-byte little-endian length. Deterministic: equal
/// bytes give equal rows.
pub fn pack(plain: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(plain)
}

/// The bytes a packed row holds; damage (a short row, a length past `MAX_PACKED_BYTES`, bytes
/// that are not LZ4) is a `CorruptView` error of `table`.
pub fn unpack(table: &str, row: &[u8]) -> Result<Vec<u8>, ProjectionError> {
    let damage = |detail: String| corrupt(table, detail);
    let (size, body) =
        row.split_first_chunk::<4>().ok_or_else(|| damage("a packed row shorter than its length".into()))?;
    let size = u32::from_le_bytes(*size) as usize;
    if size > MAX_PACKED_BYTES {
        return Err(damage(format!("a packed row claims {size} bytes")));
    }
    lz4_flex::block::decompress(body, size).map_err(|e| damage(format!("not LZ4: {e}")))
}

/// Encodes a row of many values of one workload (its findings, its paths through an
/// identity, their facts): postcard, packed. Such values repeat their workload's names,
/// records and sentences, which compress several times over.
pub fn encode_packed<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProjectionError> {
    Ok(pack(&encode_compact(value)?))
}

/// Decodes a packed row (`unpack`, then postcard).
pub fn decode_packed<T: DeserializeOwned>(table: &str, row: &[u8]) -> Result<T, ProjectionError> {
    decode_compact(table, &unpack(table, row)?)
}

/// A packed row of many values, each in a frame: the frame's head, postcard of the body's length
/// and a tag (a string the row's readers select by: a path's destination, a finding's subject),
/// then the body, the value in postcard, which begins with the value's id (a string). Frames
/// follow each other in id order. Unpacked, a row's ids and tags are read without decoding a
/// value, a reader decodes only the values it selects, and a rewrite copies the frames it keeps
/// as they are (`pack_frames`).
pub struct FramedRow {
    table: &'static str,
    plain: Vec<u8>,
    frames: Vec<FrameAt>,
}

/// Where one frame lies in an unpacked row.
struct FrameAt {
    whole: Range<usize>,
    id: Range<usize>,
    tag: Range<usize>,
    body: Range<usize>,
}

/// One value of a framed row, not yet decoded.
pub struct Framed<'a> {
    /// The value's id.
    pub id: &'a str,
    /// The frame's tag.
    pub tag: &'a str,
    /// The whole frame, as `frame` writes it.
    pub bytes: &'a [u8],
    body: &'a [u8],
    table: &'static str,
}

impl Framed<'_> {
    /// The value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProjectionError> {
        decode_compact(self.table, self.body)
    }

    /// Damage to this frame's row, as an error.
    pub fn corrupt(&self, detail: String) -> ProjectionError {
        corrupt(self.table, detail)
    }
}

/// Damage found in a row of `table`.
pub fn corrupt(table: &str, detail: String) -> ProjectionError {
    ProjectionError::CorruptView { table: table.to_string(), source: sv0_codec::DecodeError::Shape(detail) }
}

/// Where `part`, a slice of `whole`, lies in it.
fn offset(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

impl FramedRow {
    /// Unpacks a stored row of `table` and finds its frames. Damage (a frame past the end, a
    /// head or id that does not decode, ids out of order) is a `CorruptView` error.
    pub fn parse(table: &'static str, row: &[u8]) -> Result<FramedRow, ProjectionError> {
        let plain = unpack(table, row)?;
        let damage = |detail: String| corrupt(table, detail);
        let mut frames: Vec<FrameAt> = Vec::new();
        let mut at = 0;
        while at < plain.len() {
            let ((len, tag), after): ((u32, &str), &[u8]) =
                postcard::take_from_bytes(&plain[at..]).map_err(|e| damage(format!("a frame's head: {e}")))?;
            let body = after.get(..len as usize).ok_or_else(|| damage("a frame past the end of its row".into()))?;
            let (id, _): (&str, _) =
                postcard::take_from_bytes(body).map_err(|e| damage(format!("a frame's id: {e}")))?;
            let frame = FrameAt {
                whole: at..offset(&plain, body).end,
                id: offset(&plain, id.as_bytes()),
                tag: offset(&plain, tag.as_bytes()),
                body: offset(&plain, body),
            };
            if frames.last().is_some_and(|last| plain[last.id.clone()] >= plain[frame.id.clone()]) {
                return Err(damage("a row's values out of id order".into()));
            }
            at = frame.whole.end;
            frames.push(frame);
        }
        Ok(FramedRow { table, plain, frames })
    }

    /// The row's values, in id order, undecoded.
    pub fn iter(&self) -> impl Iterator<Item = Framed<'_>> {
        // `parse` read every id and tag as UTF-8.
        let text = |r: &Range<usize>| std::str::from_utf8(&self.plain[r.clone()]).unwrap_or_default();
        self.frames.iter().map(move |f| Framed {
            id: text(&f.id),
            tag: text(&f.tag),
            bytes: &self.plain[f.whole.clone()],
            body: &self.plain[f.body.clone()],
            table: self.table,
        })
    }

    /// The row's ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|f| f.id)
    }
}

/// A value's frame, tagged `tag`; the value's postcard must begin with its id (a string).
pub fn frame<T: Serialize + ?Sized>(tag: &str, value: &T) -> Result<Vec<u8>, ProjectionError> {
    let body = encode_compact(value)?;
    let len = u32::try_from(body.len())
        .map_err(|_| ProjectionError::Invalid(format!("a value of {} bytes does not fit a row", body.len())))?;
    let mut out = encode_compact(&(len, tag))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// A framed row rewritten: the frames of `stored` that `keep` keeps, copied as they are, and
/// the frames `written` (by id) in their places, packed in id order; `None` when no frame is
/// left.
pub fn repack(
    stored: Option<&FramedRow>,
    keep: impl Fn(&str) -> bool,
    written: &BTreeMap<&str, Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut frames: BTreeMap<&str, &[u8]> =
        stored.into_iter().flat_map(FramedRow::iter).filter(|f| keep(f.id)).map(|f| (f.id, f.bytes)).collect();
    frames.extend(written.iter().map(|(id, frame)| (*id, frame.as_slice())));
    (!frames.is_empty()).then(|| pack_frames(frames.into_values()))
}

/// A row of frames given in id order, packed.
pub fn pack_frames<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut plain = Vec::new();
    for f in frames {
        plain.extend_from_slice(f);
    }
    pack(&plain)
}

/// A packed row longer than this is stored in pieces of at most this many bytes, keyed by the
/// row's key, a 0x00 byte and the piece's number (4 bytes, big-endian). redb gives a value
/// larger than a page a leaf of its own, rounded up to a power of two pages, which left a
/// third of the grouped rows' pages empty; pieces share leaves, two to a page.
pub const PIECE_BYTES: usize = 1_900;

/// The key of a row's `n`th piece.
fn piece_key(row: &[u8], n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() + 5);
    out.extend_from_slice(row);
    out.push(0);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// The range of a row's pieces: the keys that start with the row's key and a 0x00 byte. Keys of
/// one table have the same number of components and ids hold no 0x00, so no other row's
/// pieces fall in it.
fn piece_range(row: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let start = [row, &[0]].concat();
    let end = prefix_end(&start);
    (start, end)
}

/// Reads a row stored in pieces: its bytes, joined.
pub fn get_pieces(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    row: &[u8],
) -> Result<Option<Vec<u8>>, ProjectionError> {
    let (start, end) = piece_range(row);
    let mut rows = PieceRows { name, inner: table.range(start.as_slice()..end.as_slice())?.peekable() };
    rows.next().transpose().map(|found| found.map(|(_, bytes)| bytes))
}

/// The rows stored in pieces whose keys start with `prefix`, as (row key, joined bytes), in
/// key order.
pub fn scan_pieces(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    prefix: &[u8],
) -> Result<Vec<Row>, ProjectionError> {
    pieces_in(table, name, prefix, &prefix_end(prefix))?.collect()
}

/// The rows stored in pieces from the row `start` (or the first after it) up to `end`, joined
/// as they are iterated.
pub fn pieces_in<'a>(
    table: &'a impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &'a str,
    start: &[u8],
    end: &[u8],
) -> Result<impl Iterator<Item = Result<Row, ProjectionError>> + 'a, ProjectionError> {
    Ok(PieceRows { name, inner: table.range(start..end)?.peekable() })
}

/// Joins consecutive pieces into rows; a row that does not start at piece 0 or skips a piece
/// is a `CorruptView` error.
struct PieceRows<'a> {
    name: &'a str,
    inner: std::iter::Peekable<redb::Range<'a, &'static [u8], &'static [u8]>>,
}

impl PieceRows<'_> {
    fn corrupt(&self, detail: &str) -> ProjectionError {
        corrupt(self.name, detail.to_string())
    }
}

impl Iterator for PieceRows<'_> {
    type Item = Result<Row, ProjectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self.inner.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e.into())),
        };
        let key = key.value();
        let Some(split) = key.len().checked_sub(5).filter(|at| key[*at] == 0) else {
            return Some(Err(self.corrupt("a key that names no piece")));
        };
        if key[split + 1..] != [0, 0, 0, 0] {
            return Some(Err(self.corrupt("a row whose first piece is missing")));
        }
        let row = key[..split].to_vec();
        let mut bytes = value.value().to_vec();
        let mut expected = 1u32;
        loop {
            // Whether the next entry is this row's next piece (`None`: a piece out of place).
            let take = match self.inner.peek() {
                Some(Ok((k, _))) => {
                    let k = k.value();
                    if k.len() != row.len() + 5 || !k.starts_with(&row) || k[row.len()] != 0 {
                        Some(false)
                    } else {
                        (k[row.len() + 1..] == expected.to_be_bytes()).then_some(true)
                    }
                }
                // An error: taken below, so that it is returned.
                Some(Err(_)) => Some(true),
                None => Some(false),
            };
            match take {
                None => return Some(Err(self.corrupt("a row whose pieces are not consecutive"))),
                Some(false) => break,
                Some(true) => match self.inner.next() {
                    Some(Ok((_, v))) => bytes.extend_from_slice(v.value()),
                    Some(Err(e)) => return Some(Err(e.into())),
                    None => break,
                },
            }
            expected += 1;
        }
        Some(Ok((row, bytes)))
    }
}

/// The writes that store `bytes` as a row's pieces over `stored` pieces of an older version:
/// each piece's key with the piece to put, then the keys of the older pieces past them, to
/// remove (`None`).
pub(crate) fn piece_writes<'a>(
    row: &'a [u8],
    bytes: &'a [u8],
    stored: u32,
) -> impl Iterator<Item = (Vec<u8>, Option<&'a [u8]>)> + 'a {
    let pieces = bytes.chunks(PIECE_BYTES).zip(0u32..).map(|(piece, n)| (piece_key(row, n), Some(piece)));
    let written = bytes.len().div_ceil(PIECE_BYTES) as u32;
    pieces.chain((written..stored).map(|n| (piece_key(row, n), None)))
}

/// How many pieces `table` holds of a row.
pub(crate) fn stored_pieces(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    row: &[u8],
) -> Result<u32, ProjectionError> {
    let (start, end) = piece_range(row);
    let mut n = 0u32;
    for entry in table.range(start.as_slice()..end.as_slice())? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// Writes a row in pieces at once (outside a batch), removing the pieces of a longer version.
pub fn insert_pieces(
    table: &mut Table<&'static [u8], &'static [u8]>,
    row: &[u8],
    bytes: &[u8],
) -> Result<(), ProjectionError> {
    let stored = stored_pieces(table, row)?;
    for (key, piece) in piece_writes(row, bytes, stored) {
        match piece {
            Some(piece) => table.insert(key.as_slice(), piece)?,
            None => table.remove(key.as_slice())?,
        };
    }
    Ok(())
}

/// Reads one row and decodes it with `decode`.
fn get_as<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    key: &[u8],
    decode: impl FnOnce(&str, &[u8]) -> Result<T, ProjectionError>,
) -> Result<Option<T>, ProjectionError> {
    table.get(key)?.map(|value| decode(name, value.value())).transpose()
}

/// Writes one row of encoded bytes.
fn put_bytes(
    table: &mut Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    bytes: Result<Vec<u8>, ProjectionError>,
) -> Result<(), ProjectionError> {
    table.insert(key, bytes?.as_slice())?;
    Ok(())
}

/// Reads and decodes one compact row.
pub fn get_compact<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    key: &[u8],
) -> Result<Option<T>, ProjectionError> {
    get_as(table, name, key, decode_compact)
}

/// Encodes and writes one compact row.
pub fn put_compact<T: Serialize + ?Sized>(
    table: &mut Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    value: &T,
) -> Result<(), ProjectionError> {
    put_bytes(table, key, encode_compact(value))
}

/// Reads and decodes one row.
pub fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    key: &[u8],
) -> Result<Option<T>, ProjectionError> {
    get_as(table, name, key, decode)
}

/// Encodes and writes one row.
pub fn put<T: Serialize + ?Sized>(
    table: &mut Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    value: &T,
) -> Result<(), ProjectionError> {
    put_bytes(table, key, encode(value))
}

/// The first byte of a packed large row (`encode_big`); a plain one is canonical CBOR of a
/// record, which begins with a map's head, never with this.
const BIG_PACKED: u8 = 0x01;

/// Encodes a large value read whole (a baseline with the paths it approved, an assessment):
/// its canonical CBOR, LZ4-packed behind `BIG_PACKED`, or plain when it is too large to pack.
pub fn encode_big<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProjectionError> {
    let plain = encode(value)?;
    if plain.len() > MAX_PACKED_BYTES {
        return Ok(plain);
    }
    let mut row = vec![BIG_PACKED];
    row.extend_from_slice(&pack(&plain));
    Ok(row)
}

/// Decodes a row `encode_big` wrote.
pub fn decode_big<T: DeserializeOwned>(table: &str, row: &[u8]) -> Result<T, ProjectionError> {
    match row.split_first() {
        Some((&BIG_PACKED, packed)) => decode(table, &unpack(table, packed)?),
        _ => decode(table, row),
    }
}

/// Reads and decodes one row `encode_big` wrote.
pub fn get_big<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    key: &[u8],
) -> Result<Option<T>, ProjectionError> {
    get_as(table, name, key, decode_big)
}

/// Writes one row as `encode_big` encodes it.
pub fn put_big<T: Serialize + ?Sized>(
    table: &mut Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    value: &T,
) -> Result<(), ProjectionError> {
    put_bytes(table, key, encode_big(value))
}

/// Every row `encode_big` wrote whose key starts with `prefix`, decoded, in key order.
pub fn scan_big<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    prefix: &[u8],
) -> Result<Vec<T>, ProjectionError> {
    scan_as(table, name, prefix, decode_big)
}

/// Every row whose key starts with `prefix`, decoded with `decode`, in key order.
fn scan_as<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    prefix: &[u8],
    decode: impl Fn(&str, &[u8]) -> Result<T, ProjectionError>,
) -> Result<Vec<T>, ProjectionError> {
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    for entry in table.range(prefix..end.as_slice())? {
        out.push(decode(name, entry?.1.value())?);
    }
    Ok(out)
}

/// Every row whose key starts with `prefix`, as raw bytes, in key order.
pub fn scan_raw(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Vec<Row>, ProjectionError> {
    let end = prefix_end(prefix);
    let mut rows = Vec::new();
    for entry in table.range(prefix..end.as_slice())? {
        let (k, v) = entry?;
        rows.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(rows)
}

/// Every row whose key starts with `prefix`, decoded, in key order.
pub fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
    prefix: &[u8],
) -> Result<Vec<T>, ProjectionError> {
    scan_as(table, name, prefix, decode)
}

/// Removes every row whose key starts with `prefix`.
pub fn remove_prefix(table: &mut Table<&'static [u8], &'static [u8]>, prefix: &[u8]) -> Result<(), ProjectionError> {
    let end = prefix_end(prefix);
    table.retain_in(prefix..end.as_slice(), |_, _| false)?;
    Ok(())
}

/// One fold step of a tenant (a scan applied, a policy set, an approval): whose it is, at
/// which log position and observation time, and what it accumulates — the tenant's state and
/// the findings it opens and resolves. Passed down a scan's calls instead of five arguments.
pub(crate) struct ScanFold<'a> {
    pub tenant: &'a TenantId,
    pub seq: u64,
    pub now: Timestamp,
    pub state: TenantState,
    pub movement: FindingMovement,
    /// The workloads whose stored paths or findings this step changed (`assess::stamp`).
    pub touched: BTreeSet<String>,
}

impl<'a> ScanFold<'a> {
    /// A step over a tenant's `state`.
    pub fn at(tenant: &'a TenantId, seq: u64, now: Timestamp, state: TenantState) -> ScanFold<'a> {
        ScanFold { tenant, seq, now, state, movement: FindingMovement::default(), touched: BTreeSet::new() }
    }

    /// A step at `seq` and `now` over the tenant's stored state (or a new tenant's).
    pub fn new(
        t: &Tables<'_>,
        tenant: &'a TenantId,
        seq: u64,
        now: Timestamp,
    ) -> Result<ScanFold<'a>, ProjectionError> {
        let state = tenant_state(t, tenant)?.unwrap_or_default();
        Ok(ScanFold::at(tenant, seq, now, state))
    }

    /// Stores the tenant's state.
    pub fn store_state(&self, t: &mut Tables<'_>) -> Result<(), ProjectionError> {
        put(&mut t.tenants, &t_key(self.tenant, &[]), &self.state)
    }
}

/// Every view table, open in one write transaction.
pub(crate) struct Tables<'t> {
    pub checkpoints: Table<'t, &'static [u8], &'static [u8]>,
    pub scans_pending: Table<'t, &'static [u8], &'static [u8]>,
    pub scan_chunks: Table<'t, &'static [u8], &'static [u8]>,
    pub scans: Table<'t, &'static [u8], &'static [u8]>,
    pub entities: Table<'t, &'static [u8], &'static [u8]>,
    pub entity_index: Table<'t, &'static [u8], &'static [u8]>,
    pub unobserved: Table<'t, &'static [u8], &'static [u8]>,
    pub paths: Table<'t, &'static [u8], &'static [u8]>,
    pub path_index: Table<'t, &'static [u8], &'static [u8]>,
    pub path_fingerprints: Table<'t, &'static [u8], &'static [u8]>,
    pub workload_facts: Table<'t, &'static [u8], &'static [u8]>,
    pub digest_buckets: Table<'t, &'static [u8], &'static [u8]>,
    pub tenants: Table<'t, &'static [u8], &'static [u8]>,
    pub policies: Table<'t, &'static [u8], &'static [u8]>,
    pub scan_diffs: Table<'t, &'static [u8], &'static [u8]>,
    pub findings: Table<'t, &'static [u8], &'static [u8]>,
    pub findings_by_workload: Table<'t, &'static [u8], &'static [u8]>,
    pub finding_groups: Table<'t, &'static [u8], &'static [u8]>,
    pub finding_locator: Table<'t, &'static [u8], &'static [u8]>,
    pub baselines: Table<'t, &'static [u8], &'static [u8]>,
    pub baseline_versions: Table<'t, &'static [u8], &'static [u8]>,
    pub scope_flags: Table<'t, &'static [u8], &'static [u8]>,
    pub delta_findings: Table<'t, &'static [u8], &'static [u8]>,
    pub scope_memos: Table<'t, &'static [u8], &'static [u8]>,
    pub workload_stamps: Table<'t, &'static [u8], &'static [u8]>,
    pub assessments: Table<'t, &'static [u8], &'static [u8]>,
    pub assessment_cursor: Table<'t, &'static [u8], &'static [u8]>,
    pub packs: Table<'t, &'static [u8], &'static [u8]>,
    pub pack_heads: Table<'t, &'static [u8], &'static [u8]>,
    pub keys: Table<'t, &'static [u8], &'static [u8]>,
    pub tokens: Table<'t, &'static [u8], &'static [u8]>,
    pub fragments: Table<'t, &'static [u8], &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, ProjectionError> {
        Ok(Tables {
            checkpoints: txn.open_table(CHECKPOINTS)?,
            scans_pending: txn.open_table(SCANS_PENDING)?,
            scan_chunks: txn.open_table(SCAN_CHUNKS)?,
            scans: txn.open_table(SCANS)?,
            entities: txn.open_table(ENTITIES)?,
            entity_index: txn.open_table(ENTITY_INDEX)?,
            unobserved: txn.open_table(UNOBSERVED)?,
            paths: txn.open_table(PATHS)?,
            path_index: txn.open_table(PATH_INDEX)?,
            path_fingerprints: txn.open_table(PATH_FINGERPRINTS)?,
            workload_facts: txn.open_table(WORKLOAD_FACTS)?,
            digest_buckets: txn.open_table(DIGEST_BUCKETS)?,
            tenants: txn.open_table(TENANTS)?,
            policies: txn.open_table(POLICIES)?,
            scan_diffs: txn.open_table(SCAN_DIFFS)?,
            findings: txn.open_table(FINDINGS)?,
            findings_by_workload: txn.open_table(FINDINGS_BY_WORKLOAD)?,
            finding_groups: txn.open_table(FINDING_GROUPS)?,
            finding_locator: txn.open_table(FINDING_LOCATOR)?,
            baselines: txn.open_table(BASELINES)?,
            baseline_versions: txn.open_table(BASELINE_VERSIONS)?,
            scope_flags: txn.open_table(SCOPE_FLAGS)?,
            delta_findings: txn.open_table(DELTA_FINDINGS)?,
            scope_memos: txn.open_table(SCOPE_MEMOS)?,
            workload_stamps: txn.open_table(WORKLOAD_STAMPS)?,
            assessments: txn.open_table(ASSESSMENTS)?,
            assessment_cursor: txn.open_table(ASSESSMENT_CURSOR)?,
            packs: txn.open_table(PACKS)?,
            pack_heads: txn.open_table(PACK_HEADS)?,
            keys: txn.open_table(KEYS)?,
            tokens: txn.open_table(TOKENS)?,
            fragments: txn.open_table(FRAGMENTS)?,
        })
    }
}

pub(crate) fn t_key(tenant: &TenantId, rest: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    parts.extend_from_slice(rest);
    key(&parts)
}

pub(crate) fn t_prefix(tenant: &TenantId, rest: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    parts.extend_from_slice(rest);
    prefix(&parts)
}

/// The tenant's policy (the default until a `policy.set`).
pub(crate) fn policy(t: &Tables<'_>, tenant: &TenantId) -> Result<Policy, ProjectionError> {
    Ok(get(&t.policies, "policies", &t_key(tenant, &[]))?.unwrap_or_default())
}

/// The key (below the tenant's) of its `RegoState` in the policies table.
pub(crate) const REGO_STATE: &[u8] = b"rego";

/// Which Rego policy decides the tenant's dispositions, and which waits for an approval.
pub(crate) fn rego_state(t: &Tables<'_>, tenant: &TenantId) -> Result<RegoState, ProjectionError> {
    Ok(get(&t.policies, "policies", &t_key(tenant, &[REGO_STATE]))?.unwrap_or_default())
}

pub(crate) fn tenant_state(t: &Tables<'_>, tenant: &TenantId) -> Result<Option<TenantState>, ProjectionError> {
    get(&t.tenants, "tenants", &t_key(tenant, &[]))
}

/// The ids of a tenant's stored entities of one list, in order.
pub(crate) fn entity_ids(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    list: EntityList,
) -> Result<BTreeSet<String>, ProjectionError> {
    let p = t_prefix(tenant, &[list.name().as_bytes()]);
    let mut out = BTreeSet::new();
    for entry in entities.range(p.as_slice()..prefix_end(&p).as_slice())? {
        let (k, _) = entry?;
        out.insert(String::from_utf8_lossy(&k.value()[p.len()..]).into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use redb::ReadableTable;

    use super::*;
    use crate::views::Views;

    fn raw_keys(table: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Vec<Vec<u8>> {
        table.iter().unwrap().map(|e| e.unwrap().0.value().to_vec()).collect()
    }

    #[test]
    fn rows_in_pieces_join_shrink_and_sit_beside_their_neighbours() {
        let views = Views::in_memory().unwrap();
        let long: Vec<u8> = (0..PIECE_BYTES * 3 + 7).map(|n| (n % 251) as u8).collect();
        let txn = views.database().begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            // "t\0a" and "t\0a-b": a row key that is a prefix of another's.
            insert_pieces(&mut t.paths, b"t\0a", &long).unwrap();
            insert_pieces(&mut t.paths, b"t\0a-b", b"short").unwrap();
            insert_pieces(&mut t.paths, b"u\0a", b"other tenant").unwrap();
            assert_eq!(raw_keys(&t.paths).len(), 4 + 1 + 1);
            assert_eq!(get_pieces(&t.paths, "paths", b"t\0a").unwrap(), Some(long.clone()));
            assert_eq!(get_pieces(&t.paths, "paths", b"t\0a-b").unwrap().as_deref(), Some(&b"short"[..]));
            assert_eq!(get_pieces(&t.paths, "paths", b"t\0c").unwrap(), None);
            let rows = scan_pieces(&t.paths, "paths", b"t\0").unwrap();
            assert_eq!(rows, vec![(b"t\0a".to_vec(), long.clone()), (b"t\0a-b".to_vec(), b"short".to_vec())]);

            // A shorter version leaves none of the longer one's pieces; through a batch too.
            insert_pieces(&mut t.paths, b"t\0a", &long[..PIECE_BYTES + 1]).unwrap();
            assert_eq!(raw_keys(&t.paths).len(), 2 + 1 + 1);
            let mut batch = crate::batch::Batch::default();
            batch.put_pieces(crate::batch::Target::Paths, &t.paths, b"t\0a", b"one").unwrap();
            batch.remove_pieces(crate::batch::Target::Paths, &t.paths, b"t\0a-b").unwrap();
            batch.flush(&mut t).unwrap();
            assert_eq!(scan_pieces(&t.paths, "paths", b"t\0").unwrap(), vec![(b"t\0a".to_vec(), b"one".to_vec())]);
            assert_eq!(raw_keys(&t.paths).len(), 2);
        }
        txn.commit().unwrap();
    }

    #[test]
    fn pieces_out_of_place_are_errors() {
        let views = Views::in_memory().unwrap();
        let long: Vec<u8> = vec![7; PIECE_BYTES * 3];
        let txn = views.database().begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            insert_pieces(&mut t.paths, b"t\0gap", &long).unwrap();
            t.paths.remove(piece_key(b"t\0gap", 1).as_slice()).unwrap();
            insert_pieces(&mut t.paths, b"t\0headless", &long).unwrap();
            t.paths.remove(piece_key(b"t\0headless", 0).as_slice()).unwrap();
            t.paths.insert(&b"t\0x"[..], &b"not a piece"[..]).unwrap();
            for row in [&b"t\0gap"[..], b"t\0headless"] {
                let found = get_pieces(&t.paths, "paths", row);
                assert!(matches!(found, Err(ProjectionError::CorruptView { .. })), "{found:?}");
            }
            assert!(matches!(scan_pieces(&t.paths, "paths", b"t\0x"), Err(ProjectionError::CorruptView { .. })));
        }
        txn.commit().unwrap();
    }
}
