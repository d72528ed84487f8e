//! Signing keys: created on first use, kept in a file only the owner can read, never logged.
//!
//! A key's id is the lowercase hex SHA-256 of its raw 32-byte ed25519 public key. Public keys
//! travel as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), which OpenSSL, cosign and Python's
//! `cryptography` read as they are.
//!
//! Keys are rotated by events, and each key has a validity range per tenant: the pack indexes
//! of that tenant's chain it may sign. A key file written by `sv0 keys export` carries the
//! ranges as explanatory text before each PEM block (RFC 7468 allows text outside the
//! encapsulation boundaries), one line per range:
//!
//! ```text
//! sv0-valid: tenant=contoso from=1 to=41
//! -----BEGIN PUBLIC KEY-----
//! ```
//!
//! `to` is inclusive and absent while the key is current. A key with no such line is valid
//! everywhere; a key with lines is valid only inside them.

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
use sv0_domain::events::{KeyRegistered, KeyRotated};
use thiserror::Error;
use tracing::info;

use crate::pkcs11::{Pkcs11Config, TokenKey};

/// Name of the private key file in the key directory.
pub const PRIVATE_KEY_FILE: &str = "signing.key";
/// Name of the public key file in the key directory.
pub const PUBLIC_KEY_FILE: &str = "signing.pub.pem";
/// The key a rotation in progress moves to; it replaces `PRIVATE_KEY_FILE` once the rotation
/// is recorded for every tenant, so its presence means a rotation to finish.
pub const NEXT_KEY_FILE: &str = "signing.next.key";
/// Which key of the PKCS #11 token is current (its `CKA_ID`, hex), when the key is in a token.
pub const TOKEN_KEY_FILE: &str = "signing.pkcs11";
/// The token key a rotation in progress moves to.
pub const NEXT_TOKEN_KEY_FILE: &str = "signing.next.pkcs11";
/// The prefix of a validity line in a public key file.
pub const VALIDITY_PREFIX: &str = "sv0-valid:";

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
    /// The PKCS #11 token cannot be used: module, token, PIN, key or signature.
    #[error("PKCS #11 token: {0}")]
    Token(String),
}

/// The hex key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A private signing key and its id. Its `Debug` shows only the id.
pub struct PackSigner {
    key: Holder,
    verifying: VerifyingKey,
    key_id: String,
}

/// Where the private key is: in memory (from a file) or in a PKCS #11 token.
enum Holder {
    File(SigningKey),
    Token(TokenKey),
}

impl fmt::Debug for PackSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl PackSigner {
    /// Wraps a key (tests and tools; the service loads keys with `load_or_create`).
    pub fn from_signing_key(key: SigningKey) -> PackSigner {
        let verifying = key.verifying_key();
        PackSigner { key: Holder::File(key), key_id: key_id(&verifying), verifying }
    }

    fn from_token((key, verifying): (TokenKey, VerifyingKey)) -> PackSigner {
        PackSigner { key: Holder::Token(key), key_id: key_id(&verifying), verifying }
    }

    /// True when the key is held in a PKCS #11 token.
    pub fn in_token(&self) -> bool {
        matches!(self.key, Holder::Token(_))
    }

    /// Loads the key in `dir`, creating the directory (0700) and a new key (0600) if absent.
    pub fn load_or_create(dir: &Path) -> Result<PackSigner, KeyError> {
        let path = dir.join(PRIVATE_KEY_FILE);
        if path.exists() {
            return PackSigner::load(&path);
        }
        let signer = PackSigner::create(dir, &path)?;
        signer.write_public(dir)?;
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
        self.verifying
    }

    /// Writes the public key as SPKI PEM next to the private key (`PUBLIC_KEY_FILE`).
    fn write_public(&self, dir: &Path) -> Result<(), KeyError> {
        let public = dir.join(PUBLIC_KEY_FILE);
        fs::write(&public, self.public_key_pem()).map_err(|source| KeyError::Io { path: public, source })
    }

    /// The public key as SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.verifying_key())
    }

    /// The event that registers this key for a chain from pack `valid_from` on.
    pub fn registration(&self, valid_from: u64) -> KeyRegistered {
        KeyRegistered {
            key_id: self.key_id.clone(),
            algorithm: "ed25519".to_string(),
            public_key: hex::encode(self.verifying_key().as_bytes()),
            valid_from: Some(valid_from),
        }
    }

    /// The event that makes this key replace `retired` for a chain from pack `valid_from` on.
    pub fn rotation(&self, retired: &str, valid_from: u64, reason: &str) -> KeyRotated {
        KeyRotated {
            retired_key_id: retired.to_string(),
            key_id: self.key_id.clone(),
            algorithm: "ed25519".to_string(),
            public_key: hex::encode(self.verifying_key().as_bytes()),
            valid_from,
            reason: reason.to_string(),
        }
    }

    /// Creates the key a rotation moves to (`NEXT_KEY_FILE`, 0600), or loads the one an
    /// interrupted rotation left.
    pub fn create_next(dir: &Path) -> Result<PackSigner, KeyError> {
        let path = dir.join(NEXT_KEY_FILE);
        if path.exists() {
            return PackSigner::load(&path);
        }
        PackSigner::create(dir, &path)
    }

    /// A new key, written to `path` (0600) in the private directory `dir` (0700).
    fn create(dir: &Path, path: &Path) -> Result<PackSigner, KeyError> {
        create_private_dir(dir)?;
        let key = PackSigner::generate()?;
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|_| KeyError::BadPrivateKey { path: path.to_path_buf() })?;
        write_new_file(path, pem.as_bytes(), 0o600)?;
        Ok(PackSigner::from_signing_key(key))
    }

    /// The key of an unfinished rotation, if there is one.
    pub fn load_next(dir: &Path) -> Result<Option<PackSigner>, KeyError> {
        let path = dir.join(NEXT_KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        PackSigner::load(&path).map(Some)
    }

    /// Ends a rotation: the next key replaces the current one (an atomic rename, so the retired
    /// private key is gone) and its public key is written next to it.
    pub fn promote_next(dir: &Path) -> Result<PackSigner, KeyError> {
        let next = dir.join(NEXT_KEY_FILE);
        let signer = PackSigner::load(&next)?;
        let current = dir.join(PRIVATE_KEY_FILE);
        fs::rename(&next, &current).map_err(|source| KeyError::Io { path: current.clone(), source })?;
        signer.write_public(dir)?;
        info!(key_id = %signer.key_id, "the rotated pack signing key is now current");
        Ok(signer)
    }

    fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// Signs bytes (the DSSE pre-authentication encoding of a pack body). A file key cannot
    /// fail; a token can (removed, logged out), and its signature is checked before use.
    pub fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        match &self.key {
            Holder::File(key) => Ok(key.sign(message)),
            Holder::Token(key) => key.sign(message, &self.verifying),
        }
    }
}

/// SPKI PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    // Encoding a 32-byte ed25519 key as SPKI cannot fail.
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Where a key may sign in one tenant's chain: pack indexes `from..=to` (`to` absent while the
/// key is current).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Validity {
    /// The tenant whose chain this range is of.
    pub tenant: String,
    /// The first pack index.
    pub from: u64,
    /// The last pack index, inclusive.
    pub to: Option<u64>,
}

impl Validity {
    fn covers(&self, tenant: &str, index: u64) -> bool {
        self.tenant == tenant && self.from <= index && self.to.is_none_or(|to| index <= to)
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(to) => write!(f, "packs {}..={} of tenant {}", self.from, to, self.tenant),
            None => write!(f, "packs {}.. of tenant {}", self.from, self.tenant),
        }
    }
}

/// Public keys by id, with their validity ranges: everything verification needs.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
    validity: BTreeMap<String, Vec<Validity>>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds a key, valid everywhere unless ranges are added for it.
    pub fn add(&mut self, key: VerifyingKey) {
        self.keys.insert(key_id(&key), key);
    }

    /// Limits a key to a range (several ranges of a key add up).
    pub fn restrict(&mut self, key_id: &str, validity: Validity) {
        let ranges = self.validity.entry(key_id.to_string()).or_default();
        if !ranges.contains(&validity) {
            ranges.push(validity);
        }
    }

    /// Adds a key from SPKI PEM text.
    pub fn add_pem(&mut self, pem: &str) -> Result<(), KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        self.add(key);
        Ok(())
    }

    /// Reads a file of one or more PEM public keys, each optionally preceded by validity lines.
    pub fn from_pem_file(path: &Path) -> Result<KeyRing, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let ring = KeyRing::from_pem_text(&text)?;
        if ring.is_empty() {
            return Err(KeyError::BadPublicKey(format!("{} holds no PEM public key", path.display())));
        }
        Ok(ring)
    }

    /// Parses PEM public keys and the validity lines before each.
    pub fn from_pem_text(text: &str) -> Result<KeyRing, KeyError> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let mut ring = KeyRing::new();
        let mut pending: Vec<(String, u64, Option<u64>)> = Vec::new();
        let mut block: Option<String> = None;
        for line in text.lines().map(str::trim) {
            match &mut block {
                Some(pem) => {
                    pem.push_str(line);
                    pem.push('\n');
                    if line == END {
                        let key = VerifyingKey::from_public_key_pem(pem)
                            .map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
                        let id = key_id(&key);
                        ring.add(key);
                        for (tenant, from, to) in pending.drain(..) {
                            ring.restrict(&id, Validity { tenant, from, to });
                        }
                        block = None;
                    }
                }
                None if line == BEGIN => block = Some(format!("{line}\n")),
                None => {
                    if let Some(rest) = line.strip_prefix(VALIDITY_PREFIX) {
                        pending.push(parse_validity(rest)?);
                    }
                }
            }
        }
        if block.is_some() {
            return Err(KeyError::BadPublicKey("a PEM block has no END line".to_string()));
        }
        if !pending.is_empty() {
            return Err(KeyError::BadPublicKey(format!("a {VALIDITY_PREFIX} line is followed by no key")));
        }
        Ok(ring)
    }

    /// The ring as a key file: each key's validity lines, then its PEM block.
    pub fn to_pem(&self) -> String {
        let mut out = String::new();
        for (id, key) in &self.keys {
            out.push_str(&format!("sv0 pack signing key {id}\n"));
            for v in self.validity(id) {
                out.push_str(&format!("{VALIDITY_PREFIX} tenant={} from={}", v.tenant, v.from));
                if let Some(to) = v.to {
                    out.push_str(&format!(" to={to}"));
                }
                out.push('\n');
            }
            out.push_str(&public_key_pem(key));
        }
        out
    }

    /// Adds a key registered on a tenant's log: valid from its first pack on, until rotated.
    pub fn add_registered(&mut self, tenant: &str, registered: &KeyRegistered) -> Result<(), KeyError> {
        let key = decode_registered(&registered.key_id, &registered.public_key)?;
        let id = key_id(&key);
        self.add(key);
        let open = self.validity(&id).iter().any(|v| v.tenant == tenant && v.to.is_none());
        if !open {
            self.restrict(
                &id,
                Validity { tenant: tenant.to_string(), from: registered.valid_from.unwrap_or(1), to: None },
            );
        }
        Ok(())
    }

    /// Applies a rotation recorded on a tenant's log: the retired key's open range ends just
    /// before `valid_from`, and the new key is valid from there on.
    pub fn add_rotated(&mut self, tenant: &str, rotated: &KeyRotated) -> Result<(), KeyError> {
        let key = decode_registered(&rotated.key_id, &rotated.public_key)?;
        if let Some(ranges) = self.validity.get_mut(&rotated.retired_key_id) {
            for v in ranges.iter_mut().filter(|v| v.tenant == tenant && v.to.is_none()) {
                // A key rotated out before it signed anything has an empty range.
                v.to = Some(rotated.valid_from.saturating_sub(1));
            }
        }
        let id = key_id(&key);
        self.add(key);
        self.restrict(&id, Validity { tenant: tenant.to_string(), from: rotated.valid_from, to: None });
        Ok(())
    }

    /// The key that may sign pack `index` of `tenant`'s chain under this id, or why there is none.
    pub fn key_for(&self, key_id: &str, tenant: &str, index: u64) -> Result<&VerifyingKey, String> {
        let key = self.keys.get(key_id).ok_or_else(|| format!("signed by unknown key {key_id}"))?;
        let ranges = self.validity(key_id);
        if ranges.is_empty() || ranges.iter().any(|v| v.covers(tenant, index)) {
            return Ok(key);
        }
        let valid: Vec<String> = ranges.iter().filter(|v| v.tenant == tenant).map(ToString::to_string).collect();
        Err(if valid.is_empty() {
            format!("signed by key {key_id}, which is not valid for tenant {tenant}")
        } else {
            format!("signed by key {key_id} outside its validity ({})", valid.join(", "))
        })
    }

    /// A key's validity ranges (none: valid everywhere).
    pub fn validity(&self, key_id: &str) -> &[Validity] {
        self.validity.get(key_id).map_or(&[], Vec::as_slice)
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

/// A registered key's bytes, checked against its id.
fn decode_registered(id: &str, public_key: &str) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = hex::decode(public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::BadPublicKey(format!("key {id} is not 32 hex bytes")))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
    if key_id(&key) != id {
        return Err(KeyError::BadPublicKey(format!("key id {id} does not match its key")));
    }
    Ok(key)
}

/// `tenant=T from=N [to=M]`.
fn parse_validity(text: &str) -> Result<(String, u64, Option<u64>), KeyError> {
    let bad = || KeyError::BadPublicKey(format!("not a validity line: {VALIDITY_PREFIX}{text}"));
    let (mut tenant, mut from, mut to) = (None, None, None);
    for field in text.split_whitespace() {
        let (name, value) = field.split_once('=').ok_or_else(bad)?;
        // An attribute given twice (`to=3 to=99`) is refused: which one counts is not for a
        // reader to guess.
        let twice = || KeyError::BadPublicKey(format!("{name} appears twice in {VALIDITY_PREFIX}{text}"));
        match name {
            "tenant" if tenant.is_none() => tenant = Some(value.to_string()),
            "from" if from.is_none() => from = Some(value.parse::<u64>().map_err(|_| bad())?),
            "to" if to.is_none() => to = Some(value.parse::<u64>().map_err(|_| bad())?),
            "tenant" | "from" | "to" => return Err(twice()),
            _ => return Err(bad()),
        }
    }
    match (tenant, from) {
        (Some(tenant), Some(from)) => Ok((tenant, from, to)),
        _ => Err(bad()),
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

pub(crate) fn check_private(path: &Path) -> Result<(), KeyError> {
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

/// Where this installation keeps its signing key: key files in the key directory (the
/// default), or a PKCS #11 token, in which case the key directory records only which token key
/// is current. A key file left from before the token was configured stays current until a
/// rotation moves the chain into the token (and removes the file).
#[derive(Debug, Clone, Default)]
pub enum KeyStore {
    /// `signing.key` (PKCS #8, 0600) in the key directory.
    #[default]
    Files,
    /// A key generated in, and never leaving, a PKCS #11 token.
    Pkcs11(Pkcs11Config),
}

impl KeyStore {
    /// True when there is a current key, in a file or in a token.
    pub fn has_current(&self, dir: &Path) -> bool {
        dir.join(PRIVATE_KEY_FILE).exists() || dir.join(TOKEN_KEY_FILE).exists()
    }

    /// True when a rotation was cut short: its next key exists.
    pub fn has_next(&self, dir: &Path) -> bool {
        dir.join(NEXT_KEY_FILE).exists() || dir.join(NEXT_TOKEN_KEY_FILE).exists()
    }

    /// The current key, or a new one (in the token when one is configured) when there is none.
    pub fn load_or_create(&self, dir: &Path) -> Result<PackSigner, KeyError> {
        if self.has_current(dir) {
            return self.load_current(dir);
        }
        match self {
            KeyStore::Files => PackSigner::load_or_create(dir),
            KeyStore::Pkcs11(_) => {
                let signer = self.create_token_key(dir, &dir.join(TOKEN_KEY_FILE))?;
                signer.write_public(dir)?;
                info!(key_id = %signer.key_id, "created a new pack signing key in the PKCS #11 token");
                Ok(signer)
            }
        }
    }

    /// The current key: the token's when the key directory names one, else the key file.
    pub fn load_current(&self, dir: &Path) -> Result<PackSigner, KeyError> {
        let token = dir.join(TOKEN_KEY_FILE);
        if token.exists() {
            return self.load_token(&token);
        }
        PackSigner::load(&dir.join(PRIVATE_KEY_FILE))
    }

    /// Creates the key a rotation moves to (in the token when one is configured), or loads the
    /// one an interrupted rotation left.
    pub fn create_next(&self, dir: &Path) -> Result<PackSigner, KeyError> {
        let token = dir.join(NEXT_TOKEN_KEY_FILE);
        if token.exists() {
            return self.load_token(&token);
        }
        match self {
            KeyStore::Files => PackSigner::create_next(dir),
            KeyStore::Pkcs11(_) if dir.join(NEXT_KEY_FILE).exists() => PackSigner::create_next(dir),
            KeyStore::Pkcs11(_) => self.create_token_key(dir, &token),
        }
    }

    /// The key of an unfinished rotation, if there is one.
    pub fn load_next(&self, dir: &Path) -> Result<Option<PackSigner>, KeyError> {
        let token = dir.join(NEXT_TOKEN_KEY_FILE);
        if token.exists() {
            return self.load_token(&token).map(Some);
        }
        PackSigner::load_next(dir)
    }

    /// Ends a rotation: the next key becomes current, and the key it retires can no longer
    /// sign: a retired key file is removed, a retired token key's private half is destroyed in
    /// the token (a token that refuses is logged; the rotation stands).
    pub fn promote_next(&self, dir: &Path) -> Result<PackSigner, KeyError> {
        let next = dir.join(NEXT_TOKEN_KEY_FILE);
        if !next.exists() {
            let signer = PackSigner::promote_next(dir)?;
            remove_if_present(&dir.join(TOKEN_KEY_FILE))?;
            return Ok(signer);
        }
        let signer = self.load_token(&next)?;
        let current = dir.join(TOKEN_KEY_FILE);
        let retired = fs::read_to_string(&current).ok().and_then(|text| hex::decode(text.trim()).ok());
        fs::rename(&next, &current).map_err(|source| KeyError::Io { path: current.clone(), source })?;
        remove_if_present(&dir.join(PRIVATE_KEY_FILE))?;
        if let (Some(id), KeyStore::Pkcs11(config)) = (retired, self)
            && let Err(e) = TokenKey::destroy_private(config, &id)
        {
            tracing::warn!(error = %e, retired = %hex::encode(&id), "the retired key is still in the token; destroy it there");
        }
        signer.write_public(dir)?;
        info!(key_id = %signer.key_id, "the rotated pack signing key in the PKCS #11 token is now current");
        Ok(signer)
    }

    fn config(&self, file: &Path) -> Result<&Pkcs11Config, KeyError> {
        match self {
            KeyStore::Pkcs11(config) => Ok(config),
            KeyStore::Files => Err(KeyError::Token(format!(
                "{} names a key in a PKCS #11 token, but no [signing] pkcs11_module is configured",
                file.display()
            ))),
        }
    }

    fn load_token(&self, file: &Path) -> Result<PackSigner, KeyError> {
        let config = self.config(file)?;
        let text = fs::read_to_string(file).map_err(|source| KeyError::Io { path: file.to_path_buf(), source })?;
        let id = hex::decode(text.trim())
            .map_err(|_| KeyError::Token(format!("{} does not hold a hex key id", file.display())))?;
        Ok(PackSigner::from_token(TokenKey::load(config, &id)?))
    }

    fn create_token_key(&self, dir: &Path, file: &Path) -> Result<PackSigner, KeyError> {
        let config = self.config(file)?;
        create_private_dir(dir)?;
        let signer = PackSigner::from_token(TokenKey::generate(config)?);
        let Holder::Token(key) = &signer.key else { return Err(KeyError::Token("not a token key".into())) };
        write_new_file(file, format!("{}\n", hex::encode(key.id())).as_bytes(), 0o600)?;
        Ok(signer)
    }
}

fn remove_if_present(path: &Path) -> Result<(), KeyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KeyError::Io { path: path.to_path_buf(), source }),
    }
}
