//! Buffered writes. Folding one large scan writes millions of index, fingerprint and finding
//! rows whose keys are hashes or ids in no useful order; inserted one by one they land all over
//! each B-tree (redb does about 300k random inserts/s here, against 1M/s in key order), and once
//! the tables outgrow redb's cache every insert may evict and reread a page. A `Batch` collects
//! them and applies them in one pass sorted by table and key, the last write of a key winning,
//! before anything reads those tables again.
//!
//! Memory stays bounded: when the buffered writes pass a bound, they are sorted and spilled to
//! an anonymous temporary file (a sorted run). `flush` merges every run with what is still in
//! memory, so even a tenant of a million paths is written in a single ascending pass per table:
//! an external merge sort in front of the B-tree.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use redb::{ReadableTable, Table};

use crate::error::ProjectionError;
use crate::store::{self, Tables};

/// Bytes of keys and values a batch holds in memory before it spills them to a sorted run,
/// unless `set_spill_bytes` says otherwise.
pub const SPILL_BYTES: usize = 96 * 1024 * 1024;

static SPILL_AT: AtomicUsize = AtomicUsize::new(SPILL_BYTES);

/// Sets, for the whole process, how many bytes of buffered writes a fold holds in memory before
/// spilling them to a sorted run: lower on a host short of memory; tests set it to a few bytes
/// to prove that spilled and unspilled folds write the same views.
pub fn set_spill_bytes(bytes: usize) {
    SPILL_AT.store(bytes, Ordering::Relaxed);
}

/// The tables writes are buffered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    EntityIndex,
    Paths,
    PathIndex,
    Fingerprints,
    Findings,
    FindingsByWorkload,
    FindingGroups,
    FindingLocator,
    WorkloadFacts,
}

impl Target {
    const ALL: [Target; 9] = [
        Target::EntityIndex,
        Target::Paths,
        Target::PathIndex,
        Target::Fingerprints,
        Target::Findings,
        Target::FindingsByWorkload,
        Target::FindingGroups,
        Target::FindingLocator,
        Target::WorkloadFacts,
    ];

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Target> {
        Target::ALL.get(usize::from(code)).copied()
    }

    fn table<'a, 't>(self, t: &'a mut Tables<'t>) -> &'a mut Table<'t, &'static [u8], &'static [u8]> {
        match self {
            Target::EntityIndex => &mut t.entity_index,
            Target::Paths => &mut t.paths,
            Target::PathIndex => &mut t.path_index,
            Target::Fingerprints => &mut t.path_fingerprints,
            Target::Findings => &mut t.findings,
            Target::FindingsByWorkload => &mut t.findings_by_workload,
            Target::FindingGroups => &mut t.finding_groups,
            Target::FindingLocator => &mut t.finding_locator,
            Target::WorkloadFacts => &mut t.workload_facts,
        }
    }
}

/// One buffered write: an insert (`Some` value) or a removal.
type Op = (Target, Vec<u8>, Option<Vec<u8>>);

/// Writes waiting to be applied.
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<Op>,
    bytes: usize,
    runs: Vec<File>,
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

    /// Queues the write of a row in pieces (`store::PIECE_BYTES`), and the removal of the pieces
    /// past them that `table` holds of a longer version. A row is written at most once per
    /// batch, so `table` holds its last version.
    pub(crate) fn put_pieces(
        &mut self,
        target: Target,
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        row: &[u8],
        bytes: &[u8],
    ) -> Result<(), ProjectionError> {
        for (key, piece) in store::piece_writes(row, bytes, store::stored_pieces(table, row)?) {
            match piece {
                Some(piece) => self.put(target, key, piece.to_vec()),
                None => self.remove(target, key),
            }
        }
        Ok(())
    }

    /// Queues the removal of every piece of a row.
    pub(crate) fn remove_pieces(
        &mut self,
        target: Target,
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        row: &[u8],
    ) -> Result<(), ProjectionError> {
        self.put_pieces(target, table, row, &[])
    }

    /// Spills the buffered writes to a sorted run on disk when they have grown past their
    /// bound. Callers call it between units of work; nothing spilled is visible before `flush`.
    pub(crate) fn relieve(&mut self) -> Result<(), ProjectionError> {
        if self.bytes < SPILL_AT.load(Ordering::Relaxed) || self.ops.is_empty() {
            return Ok(());
        }
        self.spill()
    }

    /// Sorts the buffered writes and spills them to a new run.
    fn spill(&mut self) -> Result<(), ProjectionError> {
        let ops = self.take_sorted();
        let mut file = tempfile::tempfile().map_err(ProjectionError::Spill)?;
        {
            let mut out = BufWriter::with_capacity(1 << 20, &mut file);
            for op in &ops {
                write_op(&mut out, op).map_err(ProjectionError::Spill)?;
            }
            out.flush().map_err(ProjectionError::Spill)?;
        }
        file.seek(SeekFrom::Start(0)).map_err(ProjectionError::Spill)?;
        self.runs.push(file);
        Ok(())
    }

    /// Applies every queued write, spilled or not, in ascending order of table and key; of
    /// several writes to one key only the last takes effect.
    pub(crate) fn flush(&mut self, t: &mut Tables<'_>) -> Result<(), ProjectionError> {
        let memory = self.take_sorted();
        let runs = std::mem::take(&mut self.runs);
        if runs.is_empty() {
            for (target, key, value) in memory {
                apply(t, target, &key, value.as_deref())?;
            }
            return Ok(());
        }
        // Sources in the order their writes were made: the runs, then memory. Of equal keys the
        // write of the latest source wins (each source holds at most one write per key).
        let mut sources: Vec<Source> =
            runs.into_iter().map(|f| Source::Run(BufReader::with_capacity(1 << 16, f))).collect();
        sources.push(Source::Memory(memory.into_iter()));
        let mut heads: Vec<Option<Option<Vec<u8>>>> = vec![None; sources.len()];
        let mut heap = BinaryHeap::new();
        for (n, source) in sources.iter_mut().enumerate() {
            if let Some((target, key, value)) = source.next_op()? {
                heads[n] = Some(value);
                heap.push(Reverse((target, key, n)));
            }
        }
        while let Some(Reverse((target, key, n))) = heap.pop() {
            let value = heads[n].take().flatten();
            if let Some((next_target, next_key, next_value)) = sources[n].next_op()? {
                heads[n] = Some(next_value);
                heap.push(Reverse((next_target, next_key, n)));
            }
            let superseded = heap.peek().is_some_and(|Reverse((t2, k2, _))| *t2 == target && *k2 == key);
            if !superseded {
                apply(t, target, &key, value.as_deref())?;
            }
        }
        Ok(())
    }

    /// The buffered writes sorted by table and key, only the last write of each key kept.
    fn take_sorted(&mut self) -> Vec<Op> {
        let mut ops = std::mem::take(&mut self.ops);
        self.bytes = 0;
        // A stable sort keeps the writes of one key in the order they were made.
        ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut kept: Vec<Op> = Vec::with_capacity(ops.len());
        for op in ops {
            match kept.last_mut() {
                Some(last) if last.0 == op.0 && last.1 == op.1 => *last = op,
                _ => kept.push(op),
            }
        }
        kept
    }
}

fn apply(t: &mut Tables<'_>, target: Target, key: &[u8], value: Option<&[u8]>) -> Result<(), ProjectionError> {
    let table = target.table(t);
    match value {
        Some(value) => {
            table.insert(key, value)?;
        }
        None => {
            table.remove(key)?;
        }
    }
    Ok(())
}

/// Where a merge reads sorted writes from.
enum Source {
    Run(BufReader<File>),
    Memory(std::vec::IntoIter<Op>),
}

impl Source {
    fn next_op(&mut self) -> Result<Option<Op>, ProjectionError> {
        match self {
            Source::Memory(ops) => Ok(ops.next()),
            Source::Run(reader) => read_op(reader),
        }
    }
}

// A run is a sequence of records: target (1 byte), key length (4 bytes, big-endian), key,
// value flag (1 byte: 1 insert, 0 removal), and for an insert the value's length and bytes.

fn write_op(out: &mut impl Write, (target, key, value): &Op) -> std::io::Result<()> {
    out.write_all(&[target.code()])?;
    write_bytes(out, key)?;
    match value {
        Some(value) => {
            out.write_all(&[1])?;
            write_bytes(out, value)
        }
        None => out.write_all(&[0]),
    }
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a buffered write over 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

fn read_op(input: &mut impl Read) -> Result<Option<Op>, ProjectionError> {
    let mut code = [0u8; 1];
    match input.read_exact(&mut code) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(ProjectionError::Spill(e)),
    }
    let corrupt = || ProjectionError::Spill(std::io::Error::other("a spilled run of buffered writes is corrupt"));
    let target = Target::from_code(code[0]).ok_or_else(corrupt)?;
    let key = read_bytes(input)?;
    let mut flag = [0u8; 1];
    input.read_exact(&mut flag).map_err(ProjectionError::Spill)?;
    let value = match flag[0] {
        0 => None,
        1 => Some(read_bytes(input)?),
        _ => return Err(corrupt()),
    };
    Ok(Some((target, key, value)))
}

fn read_bytes(input: &mut impl Read) -> Result<Vec<u8>, ProjectionError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(ProjectionError::Spill)?;
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut bytes).map_err(ProjectionError::Spill)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTable};

    use super::{Batch, Target};
    use crate::store::Tables;
    use crate::views::Views;

    fn paths(views: &Views) -> Vec<(Vec<u8>, Vec<u8>)> {
        let txn = views.database().begin_read().unwrap();
        let table = txn.open_table(crate::store::PATHS).unwrap();
        table.iter().unwrap().map(|e| e.unwrap()).map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).collect()
    }

    #[test]
    fn the_last_write_of_a_key_wins_across_runs_and_memory() {
        let views = Views::in_memory().unwrap();
        let txn = views.database().begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            let mut batch = Batch::default();
            let key = |k: &str| k.as_bytes().to_vec();
            batch.put(Target::Paths, key("a"), b"1".to_vec());
            batch.put(Target::Paths, key("b"), b"1".to_vec());
            batch.put(Target::Paths, key("c"), b"1".to_vec());
            batch.spill().unwrap();
            batch.put(Target::Paths, key("a"), b"2".to_vec());
            batch.remove(Target::Paths, key("b"));
            batch.put(Target::Paths, key("d"), b"2".to_vec());
            batch.spill().unwrap();
            batch.put(Target::Paths, key("d"), b"3".to_vec());
            batch.remove(Target::Paths, key("c"));
            batch.put(Target::Paths, key("e"), b"3".to_vec());
            batch.flush(&mut t).unwrap();
        }
        txn.commit().unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = [("a", "2"), ("d", "3"), ("e", "3")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(paths(&views), expected);
    }
}
