//! The data directory: where an installation keeps its log, views, keys and configuration.
//!
//! ```text
//! <data-dir>/
//!   log.redb         the embedded event log (the source of truth)
//!   views.redb       projections; disposable, `sv0 rebuild` refolds them from the log
//!   keys/            signing.key (PKCS#8, 0600) and signing.pub.pem; the directory is 0700
//!   sv0.toml         configuration (optional; read by the `sv0` binary)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::ServiceError;

/// The file that marks a data directory as an audit replay.
const REPLAY_MARKER: &str = "REPLAY.json";

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    read_only: bool,
}

impl DataDir {
    /// Creates the directory if needed.
    pub fn create(root: impl AsRef<Path>) -> Result<DataDir, ServiceError> {
        let root = root.as_ref().to_path_buf();
        let existed = root.exists();
        fs::create_dir_all(&root).map_err(|source| ServiceError::DataDir { path: root.clone(), source })?;
        if !existed {
            // Only the host's user reads the log, the views and the keys.
            restrict(&root, 0o700).map_err(|source| ServiceError::DataDir { path: root.clone(), source })?;
        }
        // An audit replay is read-only by definition: its files are opened so that nothing can
        // write to them.
        let read_only = root.join(REPLAY_MARKER).exists();
        Ok(DataDir { root, read_only })
    }

    /// Whether the directory's files are opened read-only whatever the file system allows.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Forgets that the log and the views closed cleanly, so that their next open checks every
    /// page (`sv0_log::file`). Nothing is removed in a read-only directory, whose files are
    /// always checked.
    pub fn distrust_files(&self) {
        if !self.read_only {
            sv0_log::file::distrust(&self.log_path());
            sv0_log::file::distrust(&self.views_path());
        }
    }

    /// Makes the data directory's own files (the log, the views) readable by the host's user
    /// only (0600), as they are created with the process's umask.
    pub fn restrict_files(&self) -> Result<(), ServiceError> {
        if self.read_only {
            return Ok(());
        }
        for path in [self.log_path(), self.views_path()] {
            if path.is_file() {
                restrict(&path, 0o600).map_err(|source| ServiceError::DataDir { path: path.clone(), source })?;
            }
        }
        Ok(())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.redb")
    }

    /// The views file.
    pub fn views_path(&self) -> PathBuf {
        self.root.join("views.redb")
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("sv0.toml")
    }

    /// The marker of an audit replay directory (`sv0 replay`), which is read-only.
    pub fn replay_marker(&self) -> PathBuf {
        self.root.join(REPLAY_MARKER)
    }

    /// The audit replay this directory holds, if it is one.
    pub fn replay(&self) -> Option<serde_json::Value> {
        let text = fs::read_to_string(self.replay_marker()).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Sets a path's permission bits (Unix; elsewhere the platform's defaults stand).
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}
