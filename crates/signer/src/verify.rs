//! Verification of a pack chain with nothing but the packs and public keys.
//!
//! For each pack, in chain order: the body's canonical bytes hash to the stated digest; the
//! index is its position (nothing missing, nothing reordered); id, key and tenant agree between
//! file and body; the body names the previous pack's id and digest; and the signature over
//! `PAE(payload type, body)` verifies with the named key, which must be valid for that index of
//! that tenant's chain. The first failure is reported with the pack it concerns.

use std::fmt;
use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::Signature;
use serde::Deserialize;
use sv0_domain::events::PackSealed;

use crate::checkpoint::Checkpoint;
use crate::keys::KeyRing;
use crate::merkle;
use crate::pack::{ChainLink, PACK_FILE_FORMAT, PACK_FORMAT, PAYLOAD_TYPE, PackFile, canonical_json, digest, pae};

/// One pack to verify, with where it came from (a file name, a log position).
#[derive(Debug, Clone)]
pub struct ChainEntry {
    /// Where the pack came from, for messages.
    pub source: String,
    /// The pack, or why it could not be read.
    pub pack: Result<PackFile, String>,
}

/// An intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The tenant of the packs.
    pub tenant: Option<String>,
    /// How many packs verified.
    pub packs: usize,
    /// The last pack.
    pub head: Option<ChainLink>,
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// 1-based position in chain order.
    pub position: usize,
    /// Where the pack came from.
    pub source: String,
    /// Its id, when it could be read.
    pub pack_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pack {} ({}", self.position, self.source)?;
        if let Some(id) = &self.pack_id {
            write!(f, ", {id}")?;
        }
        write!(f, "): {}", self.reason)
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct BodyHeader {
    format: String,
    pack_id: String,
    index: u64,
    tenant: String,
    key_id: String,
    previous_pack_id: Option<String>,
    previous_digest: Option<String>,
}

/// Packs checked together: each pack's own checks run across the cores, then the window's
/// links are followed in order.
const WINDOW: usize = 4096;

/// What one pack's own checks found, without its place in the chain.
struct Alone {
    /// Its signed header, when it could be read.
    header: Option<BodyHeader>,
    /// A problem with the pack itself (format, digest, header), reported before its links.
    early: Option<String>,
    /// A problem with its key or signature, reported after its links.
    late: Option<String>,
}

/// Verifies packs in chain order. Each pack's own checks (canonical bytes, digest, header, key
/// validity, signature) run in windows spread over the machine's cores; indexes, tenant and
/// links are then followed pack by pack. The failure reported is the first in chain order,
/// and for one pack its own problems come before its links, its links before its signature.
pub fn verify_chain(entries: &[ChainEntry], keys: &KeyRing) -> Result<ChainReport, BrokenLink> {
    let mut previous: Option<ChainLink> = None;
    let mut tenant: Option<String> = None;
    for (w, window) in entries.chunks(WINDOW).enumerate() {
        let checked = check_alone_in_parallel(window, keys);
        for (i, (entry, alone)) in window.iter().zip(checked).enumerate() {
            let position = w * WINDOW + i + 1;
            follow_link(position, entry, alone, &mut previous, &mut tenant)?;
        }
    }
    Ok(ChainReport { tenant, packs: entries.len(), head: previous })
}

fn check_alone_in_parallel(window: &[ChainEntry], keys: &KeyRing) -> Vec<Alone> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(window.len().max(1));
    let chunk = window.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = window
            .chunks(chunk)
            .map(|part| {
                (part.len(), scope.spawn(move || part.iter().map(|e| check_alone(e, keys)).collect::<Vec<_>>()))
            })
            .collect();
        let mut out = Vec::with_capacity(window.len());
        for (len, worker) in workers {
            // A worker that failed to finish vouches for none of its packs.
            out.extend(worker.join().unwrap_or_else(|_| {
                (0..len)
                    .map(|_| Alone { header: None, early: Some("verification failed".to_string()), late: None })
                    .collect()
            }));
        }
        out
    })
}

/// One pack's own checks.
fn check_alone(entry: &ChainEntry, keys: &KeyRing) -> Alone {
    let early = |reason: String| Alone { header: None, early: Some(reason), late: None };
    let file = match &entry.pack {
        Ok(file) => file,
        Err(e) => return early(format!("unreadable pack: {e}")),
    };
    if file.format != PACK_FILE_FORMAT {
        return early(format!("unknown file format {:?}", file.format));
    }
    if file.payload_type != PAYLOAD_TYPE {
        return early(format!("unexpected payload type {:?}", file.payload_type));
    }
    let bytes = match canonical_json(&file.body) {
        Ok(bytes) => bytes,
        Err(e) => return early(format!("body is not canonicalisable JSON: {e}")),
    };
    if digest(&bytes) != file.digest {
        return early("digest mismatch: the pack's content was changed".to_string());
    }
    let header = match BodyHeader::deserialize(&file.body) {
        Ok(header) => header,
        Err(e) => return early(format!("body lacks chain fields: {e}")),
    };
    if header.format != PACK_FORMAT {
        return early(format!("unknown pack format {:?}", header.format));
    }
    if header.pack_id != file.pack_id || header.index != file.index || header.key_id != file.key_id {
        return early("file header and signed body disagree".to_string());
    }
    let late = keys
        .key_for(&file.key_id, &header.tenant, header.index)
        .and_then(|key| Ok((key, decode_signature(&file.signature)?)))
        .and_then(|(key, signature)| {
            key.verify_strict(&pae(&file.payload_type, &bytes), &signature)
                .map_err(|_| "signature does not verify".to_string())
        })
        .err();
    Alone { header: Some(header), early: None, late }
}

/// The pack's place in the chain: index, tenant, link to the previous pack; then its own
/// late problem, if any.
fn follow_link(
    position: usize,
    entry: &ChainEntry,
    alone: Alone,
    previous: &mut Option<ChainLink>,
    tenant: &mut Option<String>,
) -> Result<(), BrokenLink> {
    let pack_id = entry.pack.as_ref().ok().map(|p| p.pack_id.as_str());
    let broken = |reason: String| BrokenLink {
        position,
        source: entry.source.clone(),
        pack_id: pack_id.map(str::to_string),
        reason,
    };
    let (Some(header), None) = (alone.header, alone.early.clone()) else {
        return Err(broken(alone.early.unwrap_or_else(|| "unreadable pack".to_string())));
    };
    let expected_index = previous.as_ref().map_or(1, |p| p.index + 1);
    if header.index > expected_index {
        return Err(broken(format!(
            "index {} where {expected_index} was expected: pack(s) {expected_index}..{} are missing",
            header.index,
            header.index - 1
        )));
    }
    if header.index < expected_index {
        return Err(broken(format!(
            "index {} where {expected_index} was expected: packs are out of order",
            header.index
        )));
    }
    match tenant {
        Some(t) if *t != header.tenant => {
            return Err(broken(format!("tenant {} in a chain of tenant {t}", header.tenant)));
        }
        _ => *tenant = Some(header.tenant.clone()),
    }
    let (want_id, want_digest) = match previous {
        Some(p) => (Some(p.pack_id.as_str()), Some(p.digest.as_str())),
        None => (None, None),
    };
    if header.previous_pack_id.as_deref() != want_id || header.previous_digest.as_deref() != want_digest {
        return Err(broken("does not link to the previous pack's id and digest".to_string()));
    }
    if let Some(reason) = alone.late {
        return Err(broken(reason));
    }
    let digest = entry.pack.as_ref().map(|p| p.digest.clone()).unwrap_or_default();
    *previous = Some(ChainLink { index: header.index, pack_id: header.pack_id, digest });
    Ok(())
}

/// Checks that a chain (already verified link by link) extends a checkpoint: it holds at least
/// the checkpoint's number of packs, and its first that many hash to the checkpoint's root. This
/// is what finds a chain cut short at the end, which no link betrays. `source` names the packs'
/// origin in the report.
pub fn extends_checkpoint(entries: &[ChainEntry], checkpoint: &Checkpoint, source: &str) -> Result<(), BrokenLink> {
    tree_extends(&tree_of_entries(entries), checkpoint, source)
}

/// The Merkle tree of a chain's packs, in chain order.
fn tree_of_entries(entries: &[ChainEntry]) -> merkle::Tree {
    let leaves = entries.iter().filter_map(|e| e.pack.as_ref().ok()).filter_map(|p| merkle::pack_leaf(&p.digest));
    merkle::Tree::from_leaf_hashes(leaves)
}

/// `extends_checkpoint` over the chain's tree, built once by a caller with several checkpoints.
fn tree_extends(tree: &merkle::Tree, checkpoint: &Checkpoint, source: &str) -> Result<(), BrokenLink> {
    let broken = |position: u64, reason: String| BrokenLink {
        position: position as usize,
        source: source.to_string(),
        pack_id: None,
        reason,
    };
    if tree.size() < checkpoint.size {
        return Err(broken(
            tree.size() + 1,
            format!(
                "truncated: the checkpoint of {} covers {} pack(s), the directory holds {}",
                checkpoint.origin,
                checkpoint.size,
                tree.size()
            ),
        ));
    }
    if tree.root_at(checkpoint.size) != checkpoint.root {
        return Err(broken(
            checkpoint.size,
            format!(
                "the first {} pack(s) do not hash to the checkpoint's root: a pack was replaced or reordered",
                checkpoint.size
            ),
        ));
    }
    Ok(())
}

/// Checks a sealed pack on its own: its body hashes to its digest and its signature verifies
/// under `public_key` (raw ed25519, hex) — what the fold checks before it adopts a pack.
pub fn verify_sealed(sealed: &PackSealed, public_key: &str) -> Result<(), String> {
    let raw: [u8; 32] = hex::decode(public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the registered public key is not 32 bytes of hex".to_string())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| "the registered public key is invalid")?;
    verify_sealed_with(sealed, &key)
}

/// `verify_sealed` with the key itself.
pub fn verify_sealed_with(sealed: &PackSealed, key: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
    crate::pack::check_unique_names(&sealed.body)?;
    let bytes = sealed.body.as_bytes();
    if digest(bytes) != sealed.digest {
        return Err("digest mismatch: the pack's body was changed".to_string());
    }
    key.verify_strict(&pae(PAYLOAD_TYPE, bytes), &decode_signature(&sealed.signature)?)
        .map_err(|_| "signature does not verify".to_string())
}

fn decode_signature(text: &str) -> Result<Signature, String> {
    // DSSE verifiers accept standard and URL-safe base64.
    let bytes =
        STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).map_err(|_| "signature is not base64".to_string())?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| "signature is not 64 bytes".to_string())?;
    Ok(Signature::from_bytes(&bytes))
}

/// The packs of a tenant as sealed on the log, ready for `verify_chain`.
pub fn entries_from_sealed(packs: &[(u64, PackSealed)]) -> Vec<ChainEntry> {
    packs
        .iter()
        .map(|(seq, sealed)| ChainEntry {
            source: format!("log position {seq}"),
            pack: crate::pack::check_unique_names(&sealed.body)
                .and_then(|()| PackFile::from_sealed(sealed).map_err(|e| e.to_string())),
        })
        .collect()
}

/// Reads the pack files of a directory in chain order: every file named as `export packs` names
/// them (`NNNNNN-*.json`, a pack even when it cannot be read), and every other `*.json` file
/// that is a pack file (`"format": "sv0.pack-file.v1"`; a pack saved from the API under any
/// name). Files named as exported are ordered by their names, and one whose name's number is
/// not the index of the pack it holds is unreadable as such (the directory was reordered);
/// other pack files are ordered by their chain index.
pub fn entries_from_dir(dir: &Path) -> std::io::Result<Vec<ChainEntry>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let mut pack = read_pack_file(&dir.join(&name));
        let index = if is_pack_file_name(&name) {
            let number: u64 = name[..6].parse().unwrap_or(u64::MAX);
            if let Ok(p) = &pack
                && p.index != number
            {
                pack = Err(format!("named as pack {number}, it holds pack {}", p.index));
            }
            number
        } else {
            match &pack {
                Ok(p) if p.format == crate::pack::PACK_FILE_FORMAT => p.index,
                _ => continue,
            }
        };
        entries.push((index, ChainEntry { source: name, pack }));
    }
    // Stable: two files claiming one index stay in name order, and the chain check names them.
    entries.sort_by_key(|(index, _)| *index);
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}

/// Largest pack file read.
pub const MAX_PACK_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// One pack file: a regular file (not a FIFO or a link to a device) of at most
/// `MAX_PACK_FILE_BYTES`, strict JSON (no member name twice: I-JSON, as RFC 8785 requires).
fn read_pack_file(path: &Path) -> Result<PackFile, String> {
    use std::io::Read;
    let metadata = fs::metadata(path).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_PACK_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PACK_FILE_BYTES {
        return Err(format!("larger than {MAX_PACK_FILE_BYTES} bytes"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8".to_string())?;
    crate::pack::check_unique_names(text)?;
    serde_json::from_str::<PackFile>(text).map_err(|e| e.to_string())
}

fn is_pack_file_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.ends_with(".json") && bytes.len() > 12 && bytes[..6].iter().all(u8::is_ascii_digit) && bytes[6] == b'-'
}

/// A timestamped checkpoint that verified: the chain's first `size` packs existed, as they are
/// in the directory, no later than `token.gen_time_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTime {
    /// The export's file stem.
    pub stem: String,
    /// Packs covered.
    pub size: u64,
    /// What the token says.
    pub token: crate::timestamp::TokenInfo,
}

/// Verifies the timestamped checkpoints of an export against a chain already verified link by
/// link: each note is a checkpoint signed by a key of `ring` for the chain's tenant, the chain's
/// first `size` packs hash to its root (a pack inserted or replaced after the token was issued
/// breaks this), and its token verifies against `trusted` TSA certificates. The first failure
/// is reported, naming the file.
pub fn verify_timestamps(
    entries: &[ChainEntry],
    tenant: &str,
    ring: &KeyRing,
    stamps: &[crate::timestamp::StampFiles],
    trusted: &[x509_cert::Certificate],
) -> Result<Vec<TrustedTime>, String> {
    let origin = crate::checkpoint::origin(tenant);
    let tree = tree_of_entries(entries);
    stamps
        .iter()
        .map(|stamp| {
            let checkpoint =
                ring.keys().find_map(|key| Checkpoint::verify(&stamp.note, &origin, key).ok()).ok_or_else(|| {
                    format!("{}.txt: not a checkpoint of {origin} signed by a key of the key file", stamp.stem)
                })?;
            tree_extends(&tree, &checkpoint, &stamp.stem).map_err(|broken| {
                format!("{}: the packs are not the ones timestamped: {}", stamp.stem, broken.reason)
            })?;
            let token = crate::timestamp::verify_token(&stamp.request, &stamp.response, stamp.note.as_bytes(), trusted)
                .map_err(|e| format!("{}.tsr: {e}", stamp.stem))?;
            Ok(TrustedTime { stem: stamp.stem.clone(), size: checkpoint.size, token })
        })
        .collect()
}
