//! Signing keys: created on first use, kept in a file only the owner can read, never logged.
//!
//! A key's id is the lowercase hex SHA-256 of its raw 32-byte ed25519 public key. Public keys
//! travel as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), which OpenSSL, cosign and Python's
//! `cryptography` read as they are.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use sv0_domain::events::KeyRegistered;
use thiserror::Error;
use tracing::info;

/// Name of the private key file in the key directory.
pub const PRIVATE_KEY_FILE: &str = "signing.key";
/// Name of the public key file in the key directory.
pub const PUBLIC_KEY_FILE: &str = "signing.pub.pem";

/// Why a key could not be loaded, created or used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("cannot access key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The private key file is not a PKCS#8 ed25519 key.
    #[error("{path} is not a PKCS#8 PEM ed25519 private key")]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A public key is not an SPKI PEM (or hex) ed25519 key.
    #[error("not an ed25519 public key: {0}")]
    BadPublicKey(String),
    /// The private key file can be read by others.
    #[error("{path} can be read by other users (mode {mode:o}). Run `chmod 600 {path}`")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no randomness.
    #[error("cannot get randomness for a new key")]
    Random,
}

/// The hex key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A private signing key and its id. Its `Debug` shows only the id.
pub struct PackSigner {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for PackSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl PackSigner {
    /// Wraps a key (tests and tools; the service loads keys with `load_or_create`).
    pub fn from_signing_key(key: SigningKey) -> PackSigner {
        let key_id = key_id(&key.verifying_key());
        PackSigner { key, key_id }
    }

    /// Loads the key in `dir`, creating the directory (0700) and a new key (0600) if absent.
    pub fn load_or_create(dir: &Path) -> Result<PackSigner, KeyError> {
        let path = dir.join(PRIVATE_KEY_FILE);
        if path.exists() {
            return PackSigner::load(&path);
        }
        create_private_dir(dir)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|_| KeyError::BadPrivateKey { path: path.clone() })?;
        write_new_file(&path, pem.as_bytes(), 0o600)?;
        let signer = PackSigner::from_signing_key(key);
        let public = dir.join(PUBLIC_KEY_FILE);
        fs::write(&public, signer.public_key_pem()).map_err(|source| KeyError::Io { path: public, source })?;
        info!(key_id = %signer.key_id, "created a new pack signing key");
        Ok(signer)
    }

    /// Loads a PKCS#8 PEM private key, refusing a file others can read.
    pub fn load(path: &Path) -> Result<PackSigner, KeyError> {
        check_private(path)?;
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let key =
            SigningKey::from_pkcs8_pem(&text).map_err(|_| KeyError::BadPrivateKey { path: path.to_path_buf() })?;
        Ok(PackSigner::from_signing_key(key))
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.verifying_key())
    }

    /// The event that registers this key.
    pub fn registration(&self) -> KeyRegistered {
        KeyRegistered {
            key_id: self.key_id.clone(),
            algorithm: "ed25519".to_string(),
            public_key: hex::encode(self.verifying_key().as_bytes()),
        }
    }

    /// Signs bytes (the DSSE pre-authentication encoding of a pack body).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

/// SPKI PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    // Encoding a 32-byte ed25519 key as SPKI cannot fail.
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Public keys by id: everything verification needs.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds a key.
    pub fn add(&mut self, key: VerifyingKey) {
        self.keys.insert(key_id(&key), key);
    }

    /// Adds a key from SPKI PEM text.
    pub fn add_pem(&mut self, pem: &str) -> Result<(), KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        self.add(key);
        Ok(())
    }

    /// Reads a file of one or more PEM public keys.
    pub fn from_pem_file(path: &Path) -> Result<KeyRing, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let mut ring = KeyRing::new();
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        for block in text.split(BEGIN).filter(|b| !b.trim().is_empty()) {
            ring.add_pem(&format!("{BEGIN}{block}"))?;
        }
        if ring.is_empty() {
            return Err(KeyError::BadPublicKey(format!("{} holds no PEM public key", path.display())));
        }
        Ok(ring)
    }

    /// Adds a key registered on the log; its id must match its bytes.
    pub fn add_registered(&mut self, registered: &KeyRegistered) -> Result<(), KeyError> {
        let bytes: [u8; 32] = hex::decode(&registered.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::BadPublicKey(format!("key {} is not 32 hex bytes", registered.key_id)))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        if key_id(&key) != registered.key_id {
            return Err(KeyError::BadPublicKey(format!("key id {} does not match its key", registered.key_id)));
        }
        self.add(key);
        Ok(())
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    /// Every key, by id.
    pub fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.values()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: dir.to_path_buf(), source };
    fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn check_private(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = fs::metadata(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path: path.to_path_buf(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
