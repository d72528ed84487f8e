//! Paths as the views keep them: `PATHS (tenant, path_id) → path`, their query indexes in
//! `PATH_INDEX (tenant, index, value, path_id) → workload`, their fingerprints and the
//! 65,536 buckets of the path set digest, all rewritten one workload at a time so that a rescan
//! costs what it changes.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, Table};
use sv0_domain::TenantId;
use sv0_domain::assessment::{PostureSummary, bucket_digest, digest_bucket, empty_bucket_digest, root_digest};
use sv0_domain::paths::AuthorityPath;

use crate::error::ProjectionError;
use crate::graph::time_key;
use crate::store::{self, get, key, prefix};

type T<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The index rows of a path: (index, value). Each row's payload is the path's workload.
pub(crate) fn index_entries(path: &AuthorityPath) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("workload", path.workload.id.clone()),
        ("identity", path.identity.id.clone()),
        ("destination", path.destination.id.clone()),
        ("domain", path.domain.id.clone()),
        ("grade", path.grade.as_str().to_string()),
        ("egress", path.egress.as_str().to_string()),
        ("owner_state", path.owner_state.as_str().to_string()),
    ];
    if path.evidence_gap {
        out.push(("gap", path.destination.id.clone()));
    }
    if let Some(expires) = path.grade_expires_at {
        out.push(("expiry", time_key(expires.0)));
    }
    out
}

fn path_key(tenant: &TenantId, path_id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), path_id.as_bytes()])
}

fn index_key(tenant: &TenantId, index: &str, value: &str, path_id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), index.as_bytes(), value.as_bytes(), path_id.as_bytes()])
}

/// The path ids with an index value, and their workloads.
pub(crate) fn lookup(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    index: &str,
    value: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let p = prefix(&[tenant.as_str().as_bytes(), index.as_bytes(), value.as_bytes()]);
    Ok(store::scan_raw(table, &p)?
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k[p.len()..]).into_owned(), String::from_utf8_lossy(&v).into_owned()))
        .collect())
}

/// Loads paths by id.
pub(crate) fn load(
    paths: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    ids: impl IntoIterator<Item = String>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(path) = get(paths, "paths", &path_key(tenant, &id))? {
            out.push(path);
        }
    }
    Ok(out)
}

/// Rewrites paths and keeps the indexes, fingerprints and tenant posture in step.
pub(crate) struct PathWriter {
    /// Digest buckets whose lines changed.
    pub dirty_buckets: BTreeSet<u16>,
    /// Paths removed.
    pub removed: u64,
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
            identities: BTreeSet::new(),
            destinations: BTreeSet::new(),
        }
    }

    /// Replaces the paths `old` by `new` (both of one workload), writing only what differs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace(
        &mut self,
        paths: &mut T<'_>,
        index: &mut T<'_>,
        fingerprints: &mut T<'_>,
        posture: &mut PostureSummary,
        tenant: &TenantId,
        old: &[AuthorityPath],
        new: &[AuthorityPath],
    ) -> Result<(), ProjectionError> {
        let before: BTreeMap<&str, &AuthorityPath> = old.iter().map(|p| (p.path_id.as_str(), p)).collect();
        let after: BTreeMap<&str, &AuthorityPath> = new.iter().map(|p| (p.path_id.as_str(), p)).collect();
        for (id, path) in &before {
            if !after.contains_key(id) {
                self.unwrite(paths, index, fingerprints, posture, tenant, path)?;
                self.removed += 1;
            }
        }
        for (id, path) in &after {
            match before.get(id) {
                Some(previous) if previous == path => {}
                Some(previous) => {
                    self.unwrite(paths, index, fingerprints, posture, tenant, previous)?;
                    self.write(paths, index, fingerprints, posture, tenant, path)?;
                }
                None => self.write(paths, index, fingerprints, posture, tenant, path)?,
            }
        }
        Ok(())
    }

    fn note(&mut self, path: &AuthorityPath) {
        self.dirty_buckets.insert(digest_bucket(&path.path_id));
        self.identities.insert(path.identity.id.clone());
        self.destinations.insert(path.destination.id.clone());
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        paths: &mut T<'_>,
        index: &mut T<'_>,
        fingerprints: &mut T<'_>,
        posture: &mut PostureSummary,
        tenant: &TenantId,
        path: &AuthorityPath,
    ) -> Result<(), ProjectionError> {
        store::put(paths, &path_key(tenant, &path.path_id), path)?;
        for (name, value) in index_entries(path) {
            index.insert(index_key(tenant, name, &value, &path.path_id).as_slice(), path.workload.id.as_bytes())?;
        }
        fingerprints.insert(path_key(tenant, &path.path_id).as_slice(), path.fingerprint.as_bytes())?;
        posture.count(path, 1);
        self.note(path);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn unwrite(
        &mut self,
        paths: &mut T<'_>,
        index: &mut T<'_>,
        fingerprints: &mut T<'_>,
        posture: &mut PostureSummary,
        tenant: &TenantId,
        path: &AuthorityPath,
    ) -> Result<(), ProjectionError> {
        paths.remove(path_key(tenant, &path.path_id).as_slice())?;
        for (name, value) in index_entries(path) {
            index.remove(index_key(tenant, name, &value, &path.path_id).as_slice())?;
        }
        fingerprints.remove(path_key(tenant, &path.path_id).as_slice())?;
        posture.count(path, -1);
        self.note(path);
        Ok(())
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
