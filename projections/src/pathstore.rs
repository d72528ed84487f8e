//! Paths as the views keep them. Rows are laid out so that each query is one range read and
//! each path costs few writes:
//!
//! | table | key | value |
//! |---|---|---|
//! | `PATHS` | `(tenant, workload, identity)` | the workload's paths through the identity, by path id (packed) |
//! | `PATH_INDEX` | `(tenant, "destination", digest of destination, path_id)` | `workload\0identity\0gap` |
//! | `PATH_INDEX` | `(tenant, "class", domain\0grade\0egress\0owner_state, path_id)` | `workload\0identity` |
//! | `PATH_INDEX` | `(tenant, "expiry", time, path_id)` | `workload\0identity` |
//! | `PATH_FINGERPRINTS` | `(tenant, path_id)` | fingerprint |
//! | `WORKLOAD_FACTS` | `(tenant, workload)` | the facts of each path, by path id (packed) |
//!
//! A workload's paths through one identity are one row: they repeat the workload's and the
//! identity's names and records, so packed (`store::encode_packed`) they take a fifth of the
//! room one row per path took, and a million paths are tens of thousands of rows, not a
//! million. A path is found by its workload and identity, which every index entry carries.
//!
//! Paths by workload (and scope) and by workload and identity are ranges of `PATHS`; by identity
//! they are the ranges of the workloads bound to it; by destination, and the evidence gaps of a
//! destination, a range of its index; by domain a range of the class index, and by grade,
//! egress class or owner state a skip scan over it (one range per distinct prefix, a few
//! dozen). Paths whose grade rests on evidence are indexed by when it leaves the window, so a
//! rescan finds the grades that decay without reading any other path. Fingerprints are keyed by
//! path id, whose first four hex digits pick one of the 65,536 buckets of the path set digest.
//! A workload's facts are the few fields of each path that the rules about the whole workload
//! read, so a rescan that recomputes some of its paths decides those rules without reading the
//! others.
//!
//! The packed rows (`PATHS`, `WORKLOAD_FACTS`) are stored in pieces (`Batch::put_pieces`).
//! All writes go through a `Batch`, applied in key order.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, Table};
use sv0_domain::TenantId;
use sv0_domain::Timestamp;
use sv0_domain::assessment::{PostureSummary, bucket_digest, digest_bucket, empty_bucket_digest, root_digest};
use sv0_domain::findings::{PathFacts, PathOf};
use sv0_domain::paths::AuthorityPath;

use crate::batch::{Batch, Target};
use crate::error::ProjectionError;
use crate::graph::time_key;
use crate::store::{self, Framed, key, prefix};

type T<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Where a path's row is, as an index entry tells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Located {
    pub path_id: String,
    pub workload: String,
    pub identity: String,
    /// The path is an evidence gap (destination entries only).
    pub gap: bool,
}

impl Located {
    fn parse(path_id: &str, payload: &[u8]) -> Located {
        let text = String::from_utf8_lossy(payload);
        let mut parts = text.split('\0');
        Located {
            path_id: path_id.to_string(),
            workload: parts.next().unwrap_or_default().to_string(),
            identity: parts.next().unwrap_or_default().to_string(),
            gap: parts.next() == Some("1"),
        }
    }

    /// As a finding's reference.
    pub(crate) fn path_of(&self) -> PathOf {
        PathOf { path_id: self.path_id.clone(), workload: self.workload.clone() }
    }
}

/// The key of the row of a workload's paths through an identity.
pub(crate) fn group_key(tenant: &TenantId, workload: &str, identity: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), workload.as_bytes(), identity.as_bytes()])
}

/// A row of a workload's paths through an identity, unpacked: its frames are tagged with the
/// path's destination id, so a row's ids and destinations are read without decoding a path.
pub(crate) type PathRow = store::FramedRow;

/// A path of a row, decoded; one whose id or destination differs from its frame's is damage.
pub(crate) fn decode_path(framed: &Framed<'_>) -> Result<AuthorityPath, ProjectionError> {
    let path: AuthorityPath = framed.decode()?;
    if path.path_id != framed.id || path.destination.id != framed.tag {
        return Err(framed.corrupt(format!("path {} is framed as {} to {}", path.path_id, framed.id, framed.tag)));
    }
    Ok(path)
}

/// Every path of a row, in path id order.
pub(crate) fn decode_row(row: &PathRow) -> Result<Vec<AuthorityPath>, ProjectionError> {
    row.iter().map(|f| decode_path(&f)).collect()
}

/// A path's frame in a row.
fn frame(path: &AuthorityPath) -> Result<Vec<u8>, ProjectionError> {
    store::frame(&path.destination.id, path)
}

/// The row of a workload's paths through an identity, when it has any.
pub(crate) fn row(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
    identity: &str,
) -> Result<Option<PathRow>, ProjectionError> {
    store::get_pieces(paths, "paths", &group_key(tenant, workload, identity))?
        .map(|b| PathRow::parse("paths", &b))
        .transpose()
}

/// A destination as the destination index keys it: 128 bits of SHA-256 of its id (as strong as
/// a path id), 32 hex digits instead of an ARM id of 100 to 200 characters repeated in every
/// path's entry.
fn destination_digest(destination: &str) -> String {
    sv0_domain::ids::stable_hash("sv0.path-index.destination.v1", &[destination], 32)
}

fn index_key(tenant: &TenantId, index: &str, value: &str, path_id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), index.as_bytes(), value.as_bytes(), path_id.as_bytes()])
}

fn fingerprint_key(tenant: &TenantId, path_id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), path_id.as_bytes()])
}

/// The class index value of a path.
fn class(path: &AuthorityPath) -> String {
    [path.domain.id.as_str(), path.grade.as_str(), path.egress.as_str(), path.owner_state.as_str()].join("\0")
}

/// The index rows of a path: (index, value, payload).
fn index_entries(path: &AuthorityPath) -> Vec<(&'static str, String, String)> {
    let at = format!("{}\0{}", path.workload.id, path.identity.id);
    let gap = if path.evidence_gap { "1" } else { "0" };
    let mut out = vec![
        ("destination", destination_digest(&path.destination.id), format!("{at}\0{gap}")),
        ("class", class(path), at.clone()),
    ];
    if let Some(expires) = path.grade_expires_at {
        out.push(("expiry", time_key(expires.0), at));
    }
    out
}

/// A workload's rows, by identity: its paths through each, sorted by path id.
pub(crate) type Rows = BTreeMap<String, PathRow>;

/// Every row of a workload's paths.
pub(crate) fn rows_of(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
) -> Result<Rows, ProjectionError> {
    let p = prefix(&[tenant.as_str().as_bytes(), workload.as_bytes()]);
    let mut out = Rows::new();
    for (key, bytes) in store::scan_pieces(paths, "paths", &p)? {
        out.insert(String::from_utf8_lossy(&key[p.len()..]).into_owned(), PathRow::parse("paths", &bytes)?);
    }
    Ok(out)
}

/// The paths of rows, in row order.
pub(crate) fn decode_rows(rows: Vec<store::Row>) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for (_, v) in rows {
        out.extend(decode_row(&PathRow::parse("paths", &v)?)?);
    }
    Ok(out)
}

/// The paths of a workload (through one identity, when given), in key order: by identity,
/// then path id.
pub(crate) fn of_workload(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
    identity: Option<&str>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    match identity {
        Some(identity) => {
            Ok(row(paths, tenant, workload, identity)?.map(|row| decode_row(&row)).transpose()?.unwrap_or_default())
        }
        None => decode_rows(store::scan_pieces(
            paths,
            "paths",
            &prefix(&[tenant.as_str().as_bytes(), workload.as_bytes()]),
        )?),
    }
}

/// The ids of a workload's paths through an identity.
pub(crate) fn ids_of(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
    identity: &str,
) -> Result<Vec<String>, ProjectionError> {
    Ok(row(paths, tenant, workload, identity)?.map_or_else(Vec::new, |row| row.ids().map(str::to_string).collect()))
}

/// The paths to a destination.
pub(crate) fn by_destination(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    destination: &str,
) -> Result<Vec<Located>, ProjectionError> {
    let p = prefix(&[tenant.as_str().as_bytes(), b"destination", destination_digest(destination).as_bytes()]);
    Ok(store::scan_raw(index, &p)?
        .into_iter()
        .map(|(k, v)| Located::parse(&String::from_utf8_lossy(&k[p.len()..]), &v))
        .collect())
}

/// The paths of a class: domain, grade, egress and owner state, each given or any. Reads one
/// range per distinct combination present, skipping over everything else.
pub(crate) fn by_class(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    wanted: [Option<&str>; 4],
) -> Result<Vec<Located>, ProjectionError> {
    let base = prefix(&[tenant.as_str().as_bytes(), b"class"]);
    let mut out = Vec::new();
    skip_scan(index, &base, &wanted, &mut out)?;
    Ok(out)
}

fn skip_scan(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    at: &[u8],
    wanted: &[Option<&str>],
    out: &mut Vec<Located>,
) -> Result<(), ProjectionError> {
    let Some((first, rest)) = wanted.split_first() else {
        // `at` ends with the whole class: every row below it is a path.
        for (k, v) in store::scan_raw(index, at)? {
            out.push(Located::parse(&String::from_utf8_lossy(&k[at.len()..]), &v));
        }
        return Ok(());
    };
    if let Some(value) = first {
        let mut next = at.to_vec();
        next.extend_from_slice(value.as_bytes());
        next.push(0);
        return skip_scan(index, &next, rest, out);
    }
    // Any value: find each distinct one by seeking past the previous.
    let end = store::prefix_end(at);
    let mut from = at.to_vec();
    loop {
        let value = match index.range(from.as_slice()..end.as_slice())?.next() {
            Some(entry) => {
                let (k, _) = entry?;
                let rest_of_key = &k.value()[at.len()..];
                let len = rest_of_key.iter().position(|b| *b == 0).unwrap_or(rest_of_key.len());
                rest_of_key[..len].to_vec()
            }
            None => return Ok(()),
        };
        let mut next = at.to_vec();
        next.extend_from_slice(&value);
        next.push(0);
        skip_scan(index, &next, rest, out)?;
        from = store::prefix_end(&next);
    }
}

/// The paths whose grade rests on evidence that leaves the window by `until`.
pub(crate) fn expiring(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    until: Timestamp,
) -> Result<Vec<Located>, ProjectionError> {
    let base = prefix(&[tenant.as_str().as_bytes(), b"expiry"]);
    let mut end = base.clone();
    end.extend_from_slice(time_key(until.0).as_bytes());
    end.push(1);
    let mut out = Vec::new();
    for entry in index.range(base.as_slice()..end.as_slice())? {
        let (k, v) = entry?;
        // The key ends with the path id, after the last separator.
        let key = k.value();
        let path_id = key.iter().rposition(|b| *b == 0).map_or(&[][..], |at| &key[at + 1..]);
        out.push(Located::parse(&String::from_utf8_lossy(path_id), v.value()));
    }
    Ok(out)
}

/// Loads located paths, reading each row they are in once; in row order.
pub(crate) fn load<'a>(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    located: impl IntoIterator<Item = &'a Located>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut rows: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for l in located {
        rows.entry((l.workload.as_str(), l.identity.as_str())).or_default().insert(l.path_id.as_str());
    }
    let mut out = Vec::new();
    for ((workload, identity), ids) in rows {
        if let Some(row) = row(paths, tenant, workload, identity)? {
            for framed in row.iter().filter(|f| ids.contains(f.id)) {
                out.push(decode_path(&framed)?);
            }
        }
    }
    Ok(out)
}

/// A path's facts as stored: the workload and the owners only where they differ from the
/// previous entry's, which in a workload's row is almost never.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredFacts {
    path_id: String,
    owner_state: sv0_domain::paths::OwnerState,
    workload: Option<sv0_domain::paths::NodeRef>,
    owners: Option<Vec<String>>,
    sensitive_read: Option<String>,
    exit: Option<sv0_domain::findings::Exit>,
}

fn facts_key(tenant: &TenantId, workload: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), workload.as_bytes()])
}

/// The facts of a workload's paths, sorted by path id.
pub(crate) fn facts_of(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
) -> Result<Vec<PathFacts>, ProjectionError> {
    let Some(row) = store::get_pieces(table, "workload_facts", &facts_key(tenant, workload))? else {
        return Ok(Vec::new());
    };
    let stored: Vec<StoredFacts> = store::decode_packed("workload_facts", &row)?;
    let mut out: Vec<PathFacts> = Vec::with_capacity(stored.len());
    for s in stored {
        let previous = out.last();
        let (Some(workload), Some(owners)) = (
            s.workload.or_else(|| previous.map(|p| p.workload.clone())),
            s.owners.or_else(|| previous.map(|p| p.owners.clone())),
        ) else {
            return Err(store::corrupt("workload_facts", "the first entry names no workload or owners".to_string()));
        };
        out.push(PathFacts {
            path_id: s.path_id,
            workload,
            owner_state: s.owner_state,
            owners,
            sensitive_read: s.sensitive_read,
            exit: s.exit,
        });
    }
    Ok(out)
}

/// Writes a workload's facts (sorted by path id), or removes the row when it has no paths.
pub(crate) fn put_facts(
    batch: &mut Batch,
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
    facts: &[PathFacts],
) -> Result<(), ProjectionError> {
    let row = facts_key(tenant, workload);
    if facts.is_empty() {
        return batch.remove_pieces(Target::WorkloadFacts, table, &row);
    }
    let mut stored = Vec::with_capacity(facts.len());
    let mut previous: Option<&PathFacts> = None;
    for f in facts {
        stored.push(StoredFacts {
            path_id: f.path_id.clone(),
            owner_state: f.owner_state,
            workload: previous.is_none_or(|p| p.workload != f.workload).then(|| f.workload.clone()),
            owners: previous.is_none_or(|p| p.owners != f.owners).then(|| f.owners.clone()),
            sensitive_read: f.sensitive_read.clone(),
            exit: f.exit.clone(),
        });
        previous = Some(f);
    }
    batch.put_pieces(Target::WorkloadFacts, table, &row, &store::encode_packed(&stored)?)
}

/// Rewrites paths and keeps the indexes, fingerprints and tenant posture in step, through a
/// batch of writes.
pub(crate) struct PathWriter {
    /// Digest buckets whose lines changed.
    pub dirty_buckets: BTreeSet<u16>,
    /// Paths removed.
    pub removed: u64,
    /// Path rows written or removed.
    pub writes: u64,
    /// Identities whose paths changed (their credential findings follow their paths).
    pub identities: BTreeSet<String>,
    /// Destinations whose paths changed (their evidence-gap findings follow their paths).
    pub destinations: BTreeSet<String>,
}

impl PathWriter {
    pub(crate) fn new() -> PathWriter {
        PathWriter {
            dirty_buckets: BTreeSet::new(),
            removed: 0,
            writes: 0,
            identities: BTreeSet::new(),
            destinations: BTreeSet::new(),
        }
    }

    /// Replaces the paths `old` by `new`, all of one workload, writing only what differs: the
    /// index entries and fingerprint that changed of each changed path, and once each row of
    /// the workload's paths through an identity that a changed path goes through. `stored`
    /// holds the rows `old` was selected from, by identity, as read from `paths`: every row a
    /// path of `new` goes through (`reach::stored_rows` reads them). Each workload is replaced
    /// at most once per batch, so they are the rows to change.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace(
        &mut self,
        batch: &mut Batch,
        paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
        stored: &Rows,
        posture: &mut PostureSummary,
        tenant: &TenantId,
        old: &[AuthorityPath],
        new: &[AuthorityPath],
    ) -> Result<(), ProjectionError> {
        let before: BTreeMap<&str, &AuthorityPath> = old.iter().map(|p| (p.path_id.as_str(), p)).collect();
        let after: BTreeMap<&str, &AuthorityPath> = new.iter().map(|p| (p.path_id.as_str(), p)).collect();
        // The rows touched: (workload, identity).
        let mut touched: BTreeSet<(&str, &str)> = BTreeSet::new();
        fn row(p: &AuthorityPath) -> (&str, &str) {
            (p.workload.id.as_str(), p.identity.id.as_str())
        }
        for (id, path) in &before {
            if !after.contains_key(id) {
                self.write(batch, posture, tenant, Some(path), None);
                self.removed += 1;
                touched.insert(row(path));
            }
        }
        for (id, path) in &after {
            match before.get(id) {
                Some(previous) if previous == path => {}
                previous => {
                    self.write(batch, posture, tenant, previous.copied(), Some(path));
                    touched.extend(previous.map(|p| row(p)));
                    touched.insert(row(path));
                }
            }
        }
        for (workload, identity) in touched {
            let mut written = BTreeMap::new();
            for (id, path) in after.iter().filter(|(_, p)| p.identity.id == identity) {
                written.insert(*id, frame(path)?);
            }
            let key = group_key(tenant, workload, identity);
            match store::repack(stored.get(identity), |id| !before.contains_key(id), &written) {
                Some(row) => batch.put_pieces(Target::Paths, paths, &key, &row)?,
                None => batch.remove_pieces(Target::Paths, paths, &key)?,
            }
        }
        Ok(())
    }

    /// Moves one path from `old` to `new` (either absent): its index entries and fingerprint,
    /// each written only where it differs, and the posture.
    fn write(
        &mut self,
        batch: &mut Batch,
        posture: &mut PostureSummary,
        tenant: &TenantId,
        old: Option<&AuthorityPath>,
        new: Option<&AuthorityPath>,
    ) {
        let entries = |p: Option<&AuthorityPath>| p.map(index_entries).unwrap_or_default();
        let (before, after) = (entries(old), entries(new));
        let (old_id, new_id) = (old.map_or("", |p| p.path_id.as_str()), new.map_or("", |p| p.path_id.as_str()));
        for (name, value, _) in &before {
            if !after.iter().any(|(n, v, _)| n == name && v == value) {
                batch.remove(Target::PathIndex, index_key(tenant, name, value, old_id));
            }
        }
        for entry in &after {
            if !before.contains(entry) {
                let (name, value, payload) = entry;
                batch.put(Target::PathIndex, index_key(tenant, name, value, new_id), payload.clone().into_bytes());
            }
        }
        if old.map(|p| &p.fingerprint) != new.map(|p| &p.fingerprint) {
            let path = new.or(old).map_or("", |p| p.path_id.as_str());
            match new {
                Some(p) => {
                    batch.put(Target::Fingerprints, fingerprint_key(tenant, path), p.fingerprint.as_bytes().to_vec())
                }
                None => batch.remove(Target::Fingerprints, fingerprint_key(tenant, path)),
            }
            self.dirty_buckets.insert(digest_bucket(path));
        }
        for (path, sign) in [(old, -1), (new, 1)] {
            if let Some(path) = path {
                posture.count(path, sign);
                self.note(path);
            }
        }
    }

    fn note(&mut self, path: &AuthorityPath) {
        self.writes += 1;
        if !self.identities.contains(&path.identity.id) {
            self.identities.insert(path.identity.id.clone());
        }
        if !self.destinations.contains(&path.destination.id) {
            self.destinations.insert(path.destination.id.clone());
        }
    }
}

/// Recomputes the digests of the dirty buckets and returns the path set digest.
pub(crate) fn refresh_digest(
    fingerprints: &T<'_>,
    buckets: &mut T<'_>,
    tenant: &TenantId,
    dirty: &BTreeSet<u16>,
) -> Result<String, ProjectionError> {
    let base = prefix(&[tenant.as_str().as_bytes()]);
    for bucket in dirty {
        let mut start = base.clone();
        start.extend_from_slice(format!("{bucket:04x}").as_bytes());
        // Path ids are lowercase hex, so every id in the bucket sorts below the prefix + 0xff.
        let mut end = start.clone();
        end.push(0xff);
        let mut lines = Vec::new();
        for entry in fingerprints.range(start.as_slice()..end.as_slice())? {
            let (k, v) = entry?;
            lines.push((
                String::from_utf8_lossy(&k.value()[base.len()..]).into_owned(),
                String::from_utf8_lossy(v.value()).into_owned(),
            ));
        }
        let bucket_key = key(&[tenant.as_str().as_bytes(), format!("{bucket:04x}").as_bytes()]);
        if lines.is_empty() {
            buckets.remove(bucket_key.as_slice())?;
        } else {
            let digest = bucket_digest(lines.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            buckets.insert(bucket_key.as_slice(), digest.as_slice())?;
        }
    }
    let stored: BTreeMap<u16, [u8; 32]> = store::scan_raw(buckets, &base)?
        .into_iter()
        .filter_map(|(k, v)| {
            let bucket = u16::from_str_radix(std::str::from_utf8(&k[base.len()..]).ok()?, 16).ok()?;
            Some((bucket, v.try_into().ok()?))
        })
        .collect();
    let empty = empty_bucket_digest();
    Ok(root_digest(|bucket| stored.get(&bucket).copied().unwrap_or(empty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(id: &str, destination: &str) -> AuthorityPath {
        serde_json::from_value(serde_json::json!({
            "path_id": id,
            "workload": { "id": "w1", "name": "Agent" },
            "identity": { "id": "i1", "name": "Agent identity" },
            "destination": { "id": destination, "name": "Store" },
            "domain": { "id": "finance", "name": "Finance", "sensitive": true },
            "permissions": ["read"],
            "egress": "internal",
            "egress_rule": "default",
            "owner_state": "assigned",
            "owner_state_since": "2026-01-01T00:00:00Z",
            "owners": ["o1"],
            "grade": "C",
            "grade_evidence": null,
            "grade_expires_at": null,
            "evidence_gap": false,
            "grants": [],
            "bindings": ["b1"],
            "classified_by": "label",
            "fingerprint": format!("fp-{id}"),
        }))
        .expect("a path")
    }

    fn row_of(paths: &[AuthorityPath]) -> Vec<u8> {
        let frames: Vec<Vec<u8>> = paths.iter().map(|p| frame(p).expect("frame")).collect();
        store::pack_frames(frames.iter().map(Vec::as_slice))
    }

    fn parse(row: &[u8]) -> Result<PathRow, ProjectionError> {
        PathRow::parse("paths", row)
    }

    #[test]
    fn a_row_reads_its_ids_and_destinations_without_decoding_and_each_path_when_asked() {
        let paths = vec![path("a1", "/subscriptions/s/d1"), path("b2", "/subscriptions/s/d2"), path("c3", "d3")];
        let row = parse(&row_of(&paths)).expect("parse");
        assert_eq!(row.ids().collect::<Vec<_>>(), ["a1", "b2", "c3"]);
        assert_eq!(row.iter().map(|f| f.tag).collect::<Vec<_>>(), ["/subscriptions/s/d1", "/subscriptions/s/d2", "d3"]);
        assert_eq!(decode_row(&row).expect("decode"), paths);
        // Frames copied as they are make the same row.
        assert_eq!(store::pack_frames(row.iter().map(|f| f.bytes)), row_of(&paths));
        assert!(parse(&store::pack(&[])).expect("empty").ids().next().is_none());
    }

    #[test]
    fn damaged_rows_are_errors() {
        let paths = vec![path("a1", "d1"), path("b2", "d2")];
        let plain = store::unpack("paths", &row_of(&paths)).expect("unpack");
        let corrupt = |bytes: &[u8]| matches!(parse(&store::pack(bytes)), Err(ProjectionError::CorruptView { .. }));
        // Cut short anywhere inside the last frame.
        let second = frame(&paths[1]).expect("frame").len();
        for cut in 1..second {
            assert!(corrupt(&plain[..plain.len() - cut]), "cut {cut}");
        }
        // Out of order, and repeated.
        let (first, last) = (frame(&paths[0]).expect("frame"), frame(&paths[1]).expect("frame"));
        assert!(corrupt(&[last.clone(), first.clone()].concat()));
        assert!(corrupt(&[first.clone(), first.clone()].concat()));
        // A frame whose tag names another destination than its path's, or whose body is
        // another path's.
        let other = store::frame("dX", &paths[0]).expect("frame");
        let row = parse(&store::pack(&other)).expect("a frame that reads");
        assert_eq!(row.iter().map(|f| f.tag).collect::<Vec<_>>(), ["dX"]);
        assert!(row.iter().all(|f| matches!(decode_path(&f), Err(ProjectionError::CorruptView { .. }))));
        // Not LZ4.
        assert!(matches!(parse(b"\x10\0\0\0garbage"), Err(ProjectionError::CorruptView { .. })));
    }
}
