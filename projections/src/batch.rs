//! Buffered writes. Folding one large scan writes millions of index, fingerprint and finding
//! rows whose keys are hashes or ids in no useful order; inserted one by one they land all over
//! each B-tree (redb does about 300k random inserts/s here, against 1M/s in key order). A
//! `Batch` collects them and applies them sorted by table and key, the last write of a key
//! winning, whenever it grows past a bound and before anything reads those tables again.

use redb::Table;

use crate::error::ProjectionError;
use crate::fold::Tables;

/// Bytes of keys and values a batch holds before it writes them out.
const FLUSH_BYTES: usize = 96 * 1024 * 1024;

/// The tables writes are buffered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    EntityIndex,
    Paths,
    PathIndex,
    Fingerprints,
    Findings,
    FindingsByWorkload,
}

/// Writes waiting to be applied.
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<(Target, Vec<u8>, Option<Vec<u8>>)>,
    bytes: usize,
}

impl Batch {
    /// Queues an insert.
    pub(crate) fn put(&mut self, target: Target, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len() + 32;
        self.ops.push((target, key, Some(value)));
    }

    /// Queues a removal.
    pub(crate) fn remove(&mut self, target: Target, key: Vec<u8>) {
        self.bytes += key.len() + 32;
        self.ops.push((target, key, None));
    }

    /// Whether the batch has grown past its bound (the caller flushes at its next safe point).
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= FLUSH_BYTES
    }

    /// Applies every queued write, sorted by table and key; of several writes to one key only
    /// the last takes effect.
    pub(crate) fn flush(&mut self, t: &mut Tables<'_>) -> Result<(), ProjectionError> {
        let mut ops = std::mem::take(&mut self.ops);
        self.bytes = 0;
        // A stable sort keeps the writes of one key in the order they were made.
        ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut iter = ops.into_iter().peekable();
        while let Some((target, key, value)) = iter.next() {
            if iter.peek().is_some_and(|next| next.0 == target && next.1 == key) {
                continue;
            }
            let table: &mut Table<'_, &'static [u8], &'static [u8]> = match target {
                Target::EntityIndex => &mut t.entity_index,
                Target::Paths => &mut t.paths,
                Target::PathIndex => &mut t.path_index,
                Target::Fingerprints => &mut t.path_fingerprints,
                Target::Findings => &mut t.findings,
                Target::FindingsByWorkload => &mut t.findings_by_workload,
            };
            match value {
                Some(value) => {
                    table.insert(key.as_slice(), value.as_slice())?;
                }
                None => {
                    table.remove(key.as_slice())?;
                }
            }
        }
        Ok(())
    }
}
