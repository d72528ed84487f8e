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
//! A stamp is a promise about this host's file system, not a security control: a process that
//! can write the data directory can also write the stamp (and the files themselves). Damage
//! that does not go through the file system (a disk's bit rot under an unchanged inode) is
//! found by `sv0 verify` and by the log's record checksums, which are checked on every read.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, DatabaseError, StorageError};
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
}

impl CheckedDatabase {
    /// A database with no file (in memory): nothing to stamp.
    pub fn in_memory(db: Database) -> CheckedDatabase {
        CheckedDatabase { db: Some(db), path: Mutex::new(None) }
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
/// closed it cleanly and nothing changed it since, verified page by page otherwise.
pub fn open(path: &Path, create: bool, rollback: Rollback) -> Result<CheckedDatabase, FileError> {
    let path_buf = path.to_path_buf();
    let existing = std::fs::metadata(path).ok();
    if existing.as_ref().is_some_and(|m| m.len() == 0) && rollback == Rollback::RefusedAfterCleanClose {
        return Err(FileError::Empty { path: path_buf });
    }
    let stamp = read_stamp(path);
    let trusted = existing.is_some() && stamp.is_some() && stamp == current_stamp(path);
    let had_stamp = stamp.is_some();
    // A stamp is good for one open: a crash from here on must not leave it standing.
    remove_stamp(path);

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
    let opened = catch_unwind(AssertUnwindSafe(|| if create { builder.create(path) } else { builder.open(path) }));
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
    Ok(CheckedDatabase { db: Some(db), path: Mutex::new(Some(path_buf)) })
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
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
