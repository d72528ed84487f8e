//! Signing keys held in a PKCS #11 token (an HSM, or SoftHSM2 in tests): the ed25519 key is
//! generated inside the token (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, sensitive, never extractable)
//! and signs through `CKM_EDDSA`; no file on the host can sign. The key directory keeps only
//! which token key is current (`signing.pkcs11`: its `CKA_ID`, hex) and, during a rotation,
//! which is next (`signing.next.pkcs11`), plus the public key as before.
//!
//! The PIN comes from a file (owner-only) or an environment variable, never from `sv0.toml`
//! itself, and is never logged. Every signature the token returns is verified with the key's
//! public half before it is used.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

use crate::keys::KeyError;

/// The DER of the Ed25519 curve's object identifier (1.3.101.112), as `CKA_EC_PARAMS`.
const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// `[signing]` of `sv0.toml` when the key is in a PKCS #11 token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The token's PKCS #11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub pkcs11_module: PathBuf,
    /// The token, by its label (the usual way).
    pub token_label: Option<String>,
    /// Or by slot id.
    pub slot: Option<u64>,
    /// The label given to the keys SV0 creates (default `sv0-pack-signing`).
    pub key_label: Option<String>,
    /// A file holding the user PIN (readable by its owner only).
    pub pin_file: Option<PathBuf>,
    /// Or the environment variable holding it.
    pub pin_env: Option<String>,
}

impl Pkcs11Config {
    fn key_label(&self) -> &str {
        self.key_label.as_deref().unwrap_or("sv0-pack-signing")
    }

    fn pin(&self) -> Result<AuthPin, KeyError> {
        let text = match (&self.pin_file, &self.pin_env) {
            (Some(file), None) => {
                crate::keys::check_private(file)?;
                std::fs::read_to_string(file).map_err(|source| KeyError::Io { path: file.clone(), source })?
            }
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| KeyError::Token(format!("the PIN variable {var} is not set")))?
            }
            _ => return Err(KeyError::Token("give the token's PIN with exactly one of pin_file and pin_env".into())),
        };
        Ok(AuthPin::from(text.trim_end_matches(['\n', '\r']).to_string()))
    }
}

/// One module loaded and initialised per process: PKCS #11 allows one `C_Initialize`.
fn context(module: &Path) -> Result<Pkcs11, KeyError> {
    static MODULES: OnceLock<Mutex<BTreeMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = modules.get(module) {
        return Ok(loaded.clone());
    }
    let failed = |e: CkError| KeyError::Token(format!("cannot load the PKCS #11 module {}: {e}", module.display()));
    let pkcs11 = Pkcs11::new(module).map_err(failed)?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e)),
    }
    modules.insert(module.to_path_buf(), pkcs11.clone());
    Ok(pkcs11)
}

fn token_error(what: &str) -> impl FnOnce(CkError) -> KeyError + '_ {
    move |e| KeyError::Token(format!("{what}: {e}"))
}

/// A logged-in read-write session on the configured token.
fn open(config: &Pkcs11Config) -> Result<Session, KeyError> {
    let pkcs11 = context(&config.pkcs11_module)?;
    let slots = pkcs11.get_slots_with_initialized_token().map_err(token_error("cannot list the token slots"))?;
    let slot: Slot = match (&config.token_label, config.slot) {
        (Some(label), None) => slots
            .into_iter()
            .find(|s| pkcs11.get_token_info(*s).is_ok_and(|info| info.label().trim_end() == label))
            .ok_or_else(|| {
                KeyError::Token(format!(
                    "no initialised token labelled {label:?} in {}",
                    config.pkcs11_module.display()
                ))
            })?,
        (None, Some(id)) => slots.into_iter().find(|s| s.id() == id).ok_or_else(|| {
            KeyError::Token(format!("no initialised token in slot {id} of {}", config.pkcs11_module.display()))
        })?,
        _ => return Err(KeyError::Token("name the token with exactly one of token_label and slot".into())),
    };
    let session = pkcs11.open_rw_session(slot).map_err(token_error("cannot open a session on the token"))?;
    match session.login(UserType::User, Some(&config.pin()?)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(KeyError::Token("the token refused the PIN (CKR_PIN_INCORRECT)".into()))
        }
        Err(e) => Err(token_error("cannot log in to the token")(e)),
    }
}

/// An ed25519 key in a token, with a session that can use it.
pub struct TokenKey {
    session: Mutex<Session>,
    private: ObjectHandle,
    id: Vec<u8>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("id", &hex::encode(&self.id)).finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Generates a new key pair inside the token; returns it with its public key.
    pub fn generate(config: &Pkcs11Config) -> Result<(TokenKey, VerifyingKey), KeyError> {
        let session = open(config)?;
        let mut id = vec![0u8; 16];
        getrandom::fill(&mut id).map_err(|_| KeyError::Random)?;
        let label = config.key_label().as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label),
            Attribute::Id(id.clone()),
        ];
        let (public, private) = session
            .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_template, &private_template)
            .map_err(token_error("the token cannot generate an ed25519 key (CKM_EC_EDWARDS_KEY_PAIR_GEN)"))?;
        let verifying = public_key(&session, public)?;
        Ok((TokenKey { session: Mutex::new(session), private, id }, verifying))
    }

    /// The key with `CKA_ID` `id` in the token.
    pub fn load(config: &Pkcs11Config, id: &[u8]) -> Result<(TokenKey, VerifyingKey), KeyError> {
        let session = open(config)?;
        let find = |class: ObjectClass, what: &str| -> Result<ObjectHandle, KeyError> {
            let found = session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::Id(id.to_vec()),
                ])
                .map_err(token_error("cannot search the token"))?;
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(KeyError::Token(format!("the token holds no ed25519 {what} with id {}", hex::encode(id)))),
                _ => Err(KeyError::Token(format!("the token holds several keys with id {}", hex::encode(id)))),
            }
        };
        let private = find(ObjectClass::PRIVATE_KEY, "private key")?;
        let verifying = public_key(&session, find(ObjectClass::PUBLIC_KEY, "public key")?)?;
        Ok((TokenKey { session: Mutex::new(session), private, id: id.to_vec() }, verifying))
    }

    /// Destroys the private key with `CKA_ID` `id` (a key a rotation retired): from then on it
    /// cannot sign, whoever holds the PIN. The public key object stays.
    pub fn destroy_private(config: &Pkcs11Config, id: &[u8]) -> Result<(), KeyError> {
        let session = open(config)?;
        let found = session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id.to_vec())])
            .map_err(token_error("cannot search the token"))?;
        for handle in found {
            session.destroy_object(handle).map_err(token_error("the token did not destroy the retired key"))?;
        }
        Ok(())
    }

    /// The key's `CKA_ID`.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Signs through `CKM_EDDSA` (pure Ed25519) and checks the signature with `public`.
    pub fn sign(&self, message: &[u8], public: &VerifyingKey) -> Result<Signature, KeyError> {
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let bytes = session.sign(&mechanism, self.private, message).map_err(token_error("the token did not sign"))?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|_| KeyError::Token(format!("the token returned {} bytes, not a signature", bytes.len())))?;
        public
            .verify_strict(message, &signature)
            .map_err(|_| KeyError::Token("the token's signature does not verify with its public key".into()))?;
        Ok(signature)
    }
}

/// The 32-byte public key of a token's public key object: `CKA_EC_POINT` is the DER OCTET
/// STRING of the key (PKCS #11 3.0), or the raw 32 bytes in some tokens.
fn public_key(session: &Session, public: ObjectHandle) -> Result<VerifyingKey, KeyError> {
    let attributes =
        session.get_attributes(public, &[AttributeType::EcPoint]).map_err(token_error("cannot read the public key"))?;
    let point = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(point) => Some(point),
            _ => None,
        })
        .ok_or_else(|| KeyError::Token("the token's public key has no CKA_EC_POINT".into()))?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        raw if raw.len() == 32 => raw,
        _ => return Err(KeyError::BadPublicKey(format!("the token's CKA_EC_POINT is {} bytes", point.len()))),
    };
    let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::BadPublicKey("not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| KeyError::BadPublicKey("the token's public key is not on the curve".into()))
}
