//! Opening a redb file so that damage at rest is found, not trusted.
//!
//! redb keeps a Merkle tree of XXH3-128 checksums over every page, but a plain open verifies
//! none of them: a flipped bit gives a wrong answer, or a panic deep in a B-tree. Verifying the
//! whole file costs about 0.7 s per GB, too much for every command on a large tenant, so SV0
//! verifies a file on open unless it is exactly as SV0 left it:
//!
//! - when the last handle of a file closes cleanly, a stamp beside it (`<file>.intact`, 0600)
//!   records its device, inode, length, modification and change times;
//! - an open whose stamp matches trusts the file; any other open (no stamp, a crash, a copy, a
//!   restore, a write by any other program: each changes the change time, which user space
//!   cannot set back) verifies every page first and refuses a file that fails with a
//!   `FileError::Damaged` naming it;
//! - anything that finds damage later (a value that does not decode, a panic in the storage
//!   engine) removes the stamp with `distrust`, so the next open verifies;
//! - `sv0 verify` removes the stamps first, so it always verifies both files in full.
//!
//! A file this process may not write (a read-only mount, a copy handed to an auditor, an audit
//! replay) opens through `ReadOnlyOverlay`: reads come from the file, writes (the fold catching
//! up, redb's own bookkeeping) stay in memory and vanish on close, so queries answer exactly
//! and the file is never modified. It is always verified page by page.
//!
//! A stamp is a promise about this host's file system, not a security control: a process that
//! can write the data directory can also write the stamp (and the files themselves). Damage
//! that does not go through the file system (a disk's bit rot under an unchanged inode) is
//! found by `sv0 verify` and by the log's record checksums, which are checked on every read.
//!
//! The views are compacted when their last handle closes after this process grew their use of
//! the disk by a large share (`COMPACT_AFTER_GROWTH`): a first scan's fold leaves a third or
//! more of the file free (its staged chunks and the pages its commits replaced), which redb
//! reuses for later writes but never gives back to the disk on its own. Growth is counted in
//! blocks written, not in the file's length: redb doubles the length of a file below 4 GiB
//! whenever it needs room, and the part never written takes no disk (a sparse file), so a
//! rescan that doubles the length without writing much does not pay for a compaction.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, DatabaseError, StorageBackend, StorageError};
use thiserror::Error;
use tracing::{info, warn};

/// Why a redb file could not be opened.
#[derive(Debug, Error)]
pub enum FileError {
    /// Another process holds the file.
    #[error("{} is in use by another process", path.display())]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but holds no byte: it was truncated.
    #[error("{} is empty (0 bytes): it was truncated", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file's pages do not match their checksums, or it is cut short.
    #[error("{} is damaged: {detail}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// redb could not open the file for another reason.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: DatabaseError,
    },
}

/// The embedded log's page cache.
pub const LOG_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The views' page cache unless `set_views_cache_bytes` says otherwise: big enough for the
/// B-tree pages every fold and query walks, small enough that importing a million paths stays
/// near 2 GiB (docs/performance.md).
pub const VIEWS_CACHE_BYTES: usize = 256 * 1024 * 1024;

static VIEWS_CACHE: AtomicUsize = AtomicUsize::new(VIEWS_CACHE_BYTES);

/// Sets, for the whole process, the page cache of views files opened from now on (a server
/// with memory to spare may give its views more).
pub fn set_views_cache_bytes(bytes: usize) {
    VIEWS_CACHE.store(bytes, Ordering::Relaxed);
}

/// What a file is to SV0, which decides what damage to it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A cache (the views): when its last commit does not verify, going back to the commit
    /// before is safe, since what it lost is refolded.
    Cache,
    /// The source of truth (the log): an empty file is a truncated one, never a new log; and
    /// going back past its last commit would silently drop acknowledged events, so a last
    /// commit that does not verify on a file SV0 closed cleanly is damage. After a crash (no
    /// stamp) the commit may be a torn write that was never acknowledged, and redb's rollback
    /// is the recovery.
    SourceOfTruth,
}

/// An open redb database that stamps its file when it is closed cleanly.
pub struct CheckedDatabase {
    db: Option<Database>,
    path: Mutex<Option<PathBuf>>,
    read_only: bool,
    /// The file's disk use when it opened, for a cache compacted on close after it grew.
    compact_from: Option<u64>,
}

/// A views file whose disk use this process grew by at least this many bytes, and by at least
/// half its use at open, is compacted when it closes. Compaction walks the whole file (one to
/// four seconds per GB here, with or without anything to move), so smaller growth is left to be
/// reused by later writes: a 1 % delta scan copies about a third of a tenant's pages once
/// (redb writes a changed page anew and frees the old one at the commit), and those freed
/// pages take the next scan's copies, so the file settles near one and a half times its data.
/// Growth that is all data (a first scan, whose staged chunks are packed) is not walked
/// either: at least this much of its disk use, and an eighth of it, must be free pages.
pub const COMPACT_AFTER_GROWTH: u64 = 64 * 1024 * 1024;

/// The bytes of a file using `disk_use` bytes that no page of the database holds, as redb
/// counts its allocated pages; `None` when redb cannot tell.
fn free_bytes(db: &Database, disk_use: u64) -> Option<u64> {
    let txn = db.begin_write().ok()?;
    let stats = txn.stats().ok()?;
    let held = stats.allocated_pages().saturating_mul(stats.page_size() as u64);
    txn.abort().ok()?;
    Some(disk_use.saturating_sub(held))
}

impl CheckedDatabase {
    /// A database with no file (in memory): nothing to stamp.
    pub fn in_memory(db: Database) -> CheckedDatabase {
        CheckedDatabase { db: Some(db), path: Mutex::new(None), read_only: false, compact_from: None }
    }

    /// Whether the file is read-only here: what is written stays in memory and is lost on close.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The file was renamed (a rebuilt file swapped in): stamp the new name on close.
    pub fn renamed(&self, to: &Path) {
        if let Ok(mut path) = self.path.lock() {
            *path = Some(to.to_path_buf());
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        // Present from construction until `drop`.
        self.db.as_ref().expect("database present until drop")
    }
}

impl std::ops::Deref for CheckedDatabase {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.database()
    }
}

impl CheckedDatabase {
    /// Compacts the file when this process grew its disk use by `COMPACT_AFTER_GROWTH` and by
    /// half. Best effort: a failure (a reader still open, a full disk) leaves the file as it was.
    fn compact_if_grown(&mut self, path: &Path) {
        let (Some(from), Some(db)) = (self.compact_from, self.db.as_mut()) else { return };
        let Ok(now) = std::fs::metadata(path).map(|m| disk_use(&m)) else { return };
        if now < from.saturating_add(COMPACT_AFTER_GROWTH.max(from / 2)) {
            return;
        }
        // redb extends the file ahead of its pages, and the part never written takes no disk:
        // what compaction can give back is the disk the file uses beyond its pages.
        let free = free_bytes(db, now).unwrap_or(now);
        if free < COMPACT_AFTER_GROWTH.max(now / 8) {
            info!(path = %path.display(), disk_use = now, free, "the views file grew with data, not free pages: not compacted");
            return;
        }
        let started = std::time::Instant::now();
        match db.compact() {
            Ok(_) => {
                let after = std::fs::metadata(path).map_or(now, |m| disk_use(&m));
                info!(path = %path.display(), before = now, free, after, seconds = started.elapsed().as_secs_f64(), "compacted the views file");
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot compact the views file; its free pages are reused by later writes")
            }
        }
    }
}

impl Drop for CheckedDatabase {
    fn drop(&mut self) {
        let path = self.path.lock().ok().and_then(|p| p.clone());
        if let Some(path) = &path
            && !std::thread::panicking()
        {
            self.compact_if_grown(path);
        }
        // Close first: redb writes its allocator state on a clean close.
        drop(self.db.take());
        if let Some(path) = path
            && !std::thread::panicking()
            && let Err(e) = write_stamp(&path)
            && !cannot_write(&e)
        {
            warn!(path = %path.display(), error = %e, "cannot record that the file closed cleanly; the next open verifies it");
        }
    }
}

/// Opens (or creates) the redb file at `path`: trusted if its stamp says SV0 closed it
/// cleanly and nothing changed it since, verified page by page otherwise. An existing file
/// opens read-only (`ReadOnlyOverlay`) when `read_only` asks for it, when this process may
/// not write it, or when its disk is full (so that queries still answer: a file left needing
/// repair by a commit that failed for space cannot be repaired in place).
pub fn open(path: &Path, role: Role, read_only: bool) -> Result<CheckedDatabase, FileError> {
    let existing = std::fs::metadata(path).ok();
    if role == Role::SourceOfTruth && existing.as_ref().is_some_and(|m| m.len() == 0) {
        return Err(FileError::Empty { path: path.to_path_buf() });
    }
    if read_only && existing.is_some() {
        return open_overlay(path, role);
    }
    let stamp = read_stamp(path);
    let trusted = existing.as_ref().zip(stamp.as_ref()).is_some_and(|(m, s)| *s == stamp_of(m));
    // A stamp is good for one open: a crash from here on must not leave it standing.
    remove_stamp(path);
    let opened = open_checked(path, role, trusted, stamp.is_some(), |builder| builder.create(path));
    match opened {
        Err(FileError::Open { source: DatabaseError::Storage(StorageError::Io(e)), .. })
            if existing.is_some() && cannot_write(&e) =>
        {
            open_overlay(path, role)
        }
        other => other.map(|db| CheckedDatabase {
            db: Some(db),
            path: Mutex::new(Some(path.to_path_buf())),
            read_only: false,
            compact_from: (role == Role::Cache).then(|| existing.as_ref().map_or(0, disk_use)),
        }),
    }
}

/// The bytes of disk a file takes (its allocated blocks; less than its length where it is
/// sparse).
pub fn disk_use(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.blocks().saturating_mul(512)
}

/// Whether an I/O error says this process cannot write here at all (as opposed to a fault).
pub fn cannot_write(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::PermissionDenied
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::FileTooLarge
    )
}

/// Opens an existing file through `ReadOnlyOverlay`, always verified, never stamped.
fn open_overlay(path: &Path, role: Role) -> Result<CheckedDatabase, FileError> {
    let overlay = ReadOnlyOverlay::open(path)?;
    let db = open_checked(path, role, false, false, move |builder| builder.create_with_backend(overlay))?;
    Ok(CheckedDatabase { db: Some(db), path: Mutex::new(None), read_only: true, compact_from: None })
}

/// Runs redb's open (`open`) with the page check unless `trusted`, catching a panic, and turns
/// what it reports into a `FileError`.
fn open_checked(
    path: &Path,
    role: Role,
    trusted: bool,
    had_stamp: bool,
    open: impl FnOnce(&mut redb::Builder) -> Result<Database, DatabaseError>,
) -> Result<Database, FileError> {
    let fell_back = Arc::new(AtomicBool::new(false));
    let mut builder = Database::builder();
    builder.set_cache_size(match role {
        // The log is appended to and read in order, each record about once: a large page cache
        // would only hold what was just written (a 1M-path first scan is 0.5 GB of records).
        Role::SourceOfTruth => LOG_CACHE_BYTES,
        Role::Cache => VIEWS_CACHE.load(Ordering::Relaxed),
    });
    if !trusted {
        builder.set_check_integrity_on_open(true);
        let refuse = role == Role::SourceOfTruth && had_stamp;
        let flag = fell_back.clone();
        // redb reports the progress of a repair; 0.3 is announced only when the last commit
        // does not verify and the file is about to go back to the commit before it.
        builder.set_repair_callback(move |session| {
            if (session.progress() - 0.3).abs() < 1e-9 {
                flag.store(true, Ordering::SeqCst);
                if refuse {
                    session.abort();
                }
            }
        });
    }
    let damaged = |detail: String| FileError::Damaged { path: path.to_path_buf(), detail };
    let db = match catch_unwind(AssertUnwindSafe(|| open(&mut builder))) {
        Err(panic) => {
            return Err(damaged(format!("the storage engine failed reading it ({})", panic_message(&*panic))));
        }
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => return Err(FileError::InUse { path: path.to_path_buf() }),
        Ok(Err(DatabaseError::RepairAborted)) => {
            return Err(damaged("its last commit does not verify, and the file was closed cleanly".to_string()));
        }
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(detail)))) => {
            return Err(damaged(format!("its pages do not match their checksums (redb: {detail})")));
        }
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(damaged("it is cut short (truncated)".to_string()));
        }
        Ok(Err(source)) => return Err(FileError::Open { path: path.to_path_buf(), source }),
    };
    if fell_back.load(Ordering::SeqCst) {
        warn!(path = %path.display(), "the file's last commit did not verify; it went back to the commit before");
    }
    Ok(db)
}

/// Bytes per page of the overlay.
const OVERLAY_PAGE: u64 = 4096;

/// A redb storage backend over a file this process does not write: reads come from the file
/// (held with a shared lock, so a writer holding it exclusively is refused), writes are kept in
/// memory page by page.
#[derive(Debug)]
pub struct ReadOnlyOverlay {
    file: std::fs::File,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    /// The storage's length as redb set it.
    len: u64,
    /// Bytes of the file below this offset are visible; past it (the file was shortened by
    /// redb and grown again) storage reads as zeros unless written.
    file_visible: u64,
    /// Pages written, by page number.
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl ReadOnlyOverlay {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> Result<ReadOnlyOverlay, FileError> {
        let fail = |source: std::io::Error| FileError::Open { path: path.to_path_buf(), source: source.into() };
        let file = std::fs::File::open(path).map_err(fail)?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(FileError::InUse { path: path.to_path_buf() }),
            // A file system without locks (some network mounts): read it anyway.
            Err(std::fs::TryLockError::Error(_)) => {}
        }
        let len = file.metadata().map_err(fail)?.len();
        Ok(ReadOnlyOverlay { file, state: Mutex::new(OverlayState { len, file_visible: len, pages: BTreeMap::new() }) })
    }

    fn state(&self) -> std::io::Result<std::sync::MutexGuard<'_, OverlayState>> {
        self.state.lock().map_err(|_| std::io::Error::other("overlay state poisoned"))
    }

    /// Copies bytes `within..within + out.len()` of page `number` as it stands into `out`:
    /// written, or from the file (zeros past what of the file is visible).
    fn fill(&self, state: &OverlayState, number: u64, within: usize, out: &mut [u8]) -> std::io::Result<()> {
        if let Some(page) = state.pages.get(&number) {
            out.copy_from_slice(&page[within..within + out.len()]);
            return Ok(());
        }
        let at = number * OVERLAY_PAGE + within as u64;
        let visible = state.file_visible.saturating_sub(at).min(out.len() as u64) as usize;
        self.file.read_exact_at(&mut out[..visible], at)?;
        out[visible..].fill(0);
        Ok(())
    }

    /// Calls `each` with the page number, the offset within it and the range of `offset..end`
    /// (relative to `offset`) that each page covers.
    fn pages(
        offset: u64,
        end: u64,
        mut each: impl FnMut(u64, usize, std::ops::Range<usize>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut at = offset;
        while at < end {
            let within = (at % OVERLAY_PAGE) as usize;
            let n = ((OVERLAY_PAGE as usize) - within).min((end - at) as usize);
            let done = (at - offset) as usize;
            each(at / OVERLAY_PAGE, within, done..done + n)?;
            at += n as u64;
        }
        Ok(())
    }
}

impl StorageBackend for ReadOnlyOverlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.state()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.state()?;
        let end = end_of(offset, out.len())?;
        if end > state.len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        ReadOnlyOverlay::pages(offset, end, |number, within, range| self.fill(&state, number, within, &mut out[range]))
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.state()?;
        if len < state.len {
            state.file_visible = state.file_visible.min(len);
            let first_gone = len.div_ceil(OVERLAY_PAGE);
            state.pages.retain(|number, _| *number < first_gone);
            let within = (len % OVERLAY_PAGE) as usize;
            if within > 0
                && let Some(page) = state.pages.get_mut(&(len / OVERLAY_PAGE))
            {
                page[within..].fill(0);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut state = self.state()?;
        let end = end_of(offset, data.len())?;
        ReadOnlyOverlay::pages(offset, end, |number, within, range| {
            if !state.pages.contains_key(&number) {
                let mut page = vec![0u8; OVERLAY_PAGE as usize].into_boxed_slice();
                self.fill(&state, number, 0, &mut page)?;
                state.pages.insert(number, page);
            }
            if let Some(page) = state.pages.get_mut(&number) {
                page[within..within + range.len()].copy_from_slice(&data[range]);
            }
            Ok(())
        })?;
        state.len = state.len.max(end);
        Ok(())
    }
}

/// The end of `len` bytes from `offset`.
fn end_of(offset: u64, len: usize) -> std::io::Result<u64> {
    offset.checked_add(len as u64).ok_or_else(|| std::io::Error::other("offset overflows"))
}

/// Forgets that `path` closed cleanly, so that its next open verifies every page: called when
/// something read from it turned out damaged.
pub fn distrust(path: &Path) {
    remove_stamp(path);
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".intact");
    PathBuf::from(name)
}

fn remove_stamp(path: &Path) {
    match std::fs::remove_file(stamp_path(path)) {
        Ok(()) => {}
        // No stamp, or a directory this process may not write: its files open read-only, and
        // a read-only open never trusts a stamp.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || cannot_write(&e) => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove the file's clean-close stamp"),
    }
}

fn read_stamp(path: &Path) -> Option<String> {
    std::fs::read_to_string(stamp_path(path)).ok()
}

/// What the stamp of a file with this metadata says.
fn stamp_of(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "sv0-intact-1 {} {} {} {}.{} {}.{}\n",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

fn write_stamp(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let stamp = stamp_of(&std::fs::metadata(path)?);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(stamp_path(path))?;
    std::io::Write::write_all(&mut file, stamp.as_bytes())
}
