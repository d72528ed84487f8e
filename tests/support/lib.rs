//! Shared support for SV0's integration tests (`tests/it`): temporary directories and the
//! harness that starts real `nats-server` processes (`nats`).

pub mod nats;

use std::path::PathBuf;

/// A temporary directory removed when dropped.
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    /// Creates an empty directory under the system temp dir.
    pub fn new() -> TempDir {
        TempDir { dir: tempfile::Builder::new().prefix("sv0-test-").tempdir().expect("create temp dir") }
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}
