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

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, DatabaseError, StorageBackend, StorageError};
use thiserror::Error;
use tracing::warn;

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

/// What a failed last commit means for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// The file is a cache (the views): when its last commit does not verify, going back to
    /// the commit before is safe; what it lost is refolded.
    Allowed,
    /// The file is the source of truth (the log): going back would silently drop events that
    /// were acknowledged, so a last commit that does not verify on a file SV0 closed cleanly is
    /// damage. After a crash (no stamp) the commit may be a torn write that was never
    /// acknowledged, and redb's rollback is the recovery.
    RefusedAfterCleanClose,
}

/// An open redb database that stamps its file when it is closed cleanly.
pub struct CheckedDatabase {
    db: Option<Database>,
    path: Mutex<Option<PathBuf>>,
    read_only: bool,
}

impl CheckedDatabase {
    /// A database with no file (in memory): nothing to stamp.
    pub fn in_memory(db: Database) -> CheckedDatabase {
        CheckedDatabase { db: Some(db), path: Mutex::new(None), read_only: false }
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

impl Drop for CheckedDatabase {
    fn drop(&mut self) {
        // Close first: redb writes its allocator state on a clean close.
        drop(self.db.take());
        let path = self.path.lock().ok().and_then(|p| p.clone());
        if let Some(path) = path
            && !std::thread::panicking()
            && let Err(e) = write_stamp(&path)
        {
            warn!(path = %path.display(), error = %e, "cannot record that the file closed cleanly; the next open verifies it");
        }
    }
}

/// Opens (or, with `create`, creates) the redb file at `path`: trusted if its stamp says SV0
/// closed it cleanly and nothing changed it since, verified page by page otherwise. A file
/// this process may not write, or any file when `read_only` is asked for, opens read-only
/// (`ReadOnlyOverlay`).
pub fn open(path: &Path, create: bool, rollback: Rollback, read_only: bool) -> Result<CheckedDatabase, FileError> {
    let path_buf = path.to_path_buf();
    let existing = std::fs::metadata(path).ok();
    if existing.as_ref().is_some_and(|m| m.len() == 0) && rollback == Rollback::RefusedAfterCleanClose {
        return Err(FileError::Empty { path: path_buf });
    }
    let overlay = match existing {
        Some(_) if read_only || !writable(path) => Some(ReadOnlyOverlay::open(path)?),
        _ => None,
    };
    let stamp = if overlay.is_some() { None } else { read_stamp(path) };
    let trusted = existing.is_some() && stamp.is_some() && stamp == current_stamp(path);
    let had_stamp = stamp.is_some();
    if overlay.is_none() {
        // A stamp is good for one open: a crash from here on must not leave it standing.
        remove_stamp(path);
    }

    let fell_back = Arc::new(AtomicBool::new(false));
    let mut builder = Database::builder();
    if !trusted {
        builder.set_check_integrity_on_open(true);
        let refuse = rollback == Rollback::RefusedAfterCleanClose && had_stamp;
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
    let read_only = overlay.is_some();
    let opened = catch_unwind(AssertUnwindSafe(|| match overlay {
        Some(overlay) => builder.create_with_backend(overlay),
        None if create => builder.create(path),
        None => builder.open(path),
    }));
    let damaged = |detail: String| FileError::Damaged { path: path_buf.clone(), detail };
    let db = match opened {
        Err(panic) => {
            return Err(damaged(format!("the storage engine failed reading it ({})", panic_message(&*panic))));
        }
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => return Err(FileError::InUse { path: path_buf }),
        Ok(Err(DatabaseError::RepairAborted)) => {
            return Err(damaged("its last commit does not verify, and the file was closed cleanly".to_string()));
        }
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(detail)))) => {
            return Err(damaged(format!("its pages do not match their checksums (redb: {detail})")));
        }
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(damaged("it is cut short (truncated)".to_string()));
        }
        Ok(Err(source)) => return Err(FileError::Open { path: path_buf, source }),
    };
    if fell_back.load(Ordering::SeqCst) {
        warn!(path = %path.display(), "the file's last commit did not verify; it went back to the commit before");
    }
    // A read-only file is never stamped: nothing here may write beside it.
    let path = if read_only { None } else { Some(path_buf) };
    Ok(CheckedDatabase { db: Some(db), path: Mutex::new(path), read_only })
}

/// Whether this process may write the file (not a read-only mount, not another user's file).
fn writable(path: &Path) -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem),
    }
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

    /// One page as it stands: written, or from the file (zeros past what is visible).
    fn page(&self, state: &OverlayState, number: u64) -> std::io::Result<Box<[u8]>> {
        if let Some(page) = state.pages.get(&number) {
            return Ok(page.clone());
        }
        let mut page = vec![0u8; OVERLAY_PAGE as usize].into_boxed_slice();
        let start = number * OVERLAY_PAGE;
        let visible = state.file_visible.saturating_sub(start).min(OVERLAY_PAGE) as usize;
        if visible > 0 {
            self.file.read_exact_at(&mut page[..visible], start)?;
        }
        Ok(page)
    }
}

impl StorageBackend for ReadOnlyOverlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.state()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.state()?;
        let end = offset.checked_add(out.len() as u64).ok_or_else(|| std::io::Error::other("offset overflows"))?;
        if end > state.len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        let mut at = offset;
        while at < end {
            let number = at / OVERLAY_PAGE;
            let within = (at % OVERLAY_PAGE) as usize;
            let n = ((OVERLAY_PAGE as usize) - within).min((end - at) as usize);
            let done = (at - offset) as usize;
            match state.pages.get(&number) {
                Some(page) => out[done..done + n].copy_from_slice(&page[within..within + n]),
                None => {
                    let visible = state.file_visible.saturating_sub(at).min(n as u64) as usize;
                    if visible > 0 {
                        self.file.read_exact_at(&mut out[done..done + visible], at)?;
                    }
                    out[done + visible..done + n].fill(0);
                }
            }
            at += n as u64;
        }
        Ok(())
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
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| std::io::Error::other("offset overflows"))?;
        let mut at = offset;
        while at < end {
            let number = at / OVERLAY_PAGE;
            let within = (at % OVERLAY_PAGE) as usize;
            let n = ((OVERLAY_PAGE as usize) - within).min((end - at) as usize);
            let mut page = self.page(&state, number)?;
            let done = (at - offset) as usize;
            page[within..within + n].copy_from_slice(&data[done..done + n]);
            state.pages.insert(number, page);
            at += n as u64;
        }
        state.len = state.len.max(end);
        Ok(())
    }
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
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
            ) => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove the file's clean-close stamp"),
    }
}

fn read_stamp(path: &Path) -> Option<String> {
    std::fs::read_to_string(stamp_path(path)).ok()
}

#[cfg(unix)]
fn current_stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "sv0-intact-1 {} {} {} {}.{} {}.{}\n",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn current_stamp(_path: &Path) -> Option<String> {
    // No change time to rely on: every open verifies.
    None
}

fn write_stamp(path: &Path) -> std::io::Result<()> {
    let Some(stamp) = current_stamp(path) else { return Ok(()) };
    let target = stamp_path(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&target)?;
    std::io::Write::write_all(&mut file, stamp.as_bytes())
}
