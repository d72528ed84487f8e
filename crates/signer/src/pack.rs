//! Evidence packs: an assessment, chained to the tenant's previous pack, hashed and signed.
//!
//! The signed bytes are the body's RFC 8785 (JCS) canonical JSON: keys sorted, no whitespace,
//! integers only. `digest = "sha256:" + hex(SHA-256(body bytes))`. The signature is ed25519 over
//! the DSSE pre-authentication encoding `PAE(PAYLOAD_TYPE, body bytes)`, so each pack is also a
//! valid DSSE envelope payload. Anyone can recompute both from an exported file with a JCS
//! library, SHA-256 and an ed25519 verifier; see `schemas/pack.md`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sv0_domain::assessment::{Assessment, AssessmentKind};
use sv0_domain::events::PackSealed;
use sv0_domain::ids::stable_hash;
use thiserror::Error;

use crate::keys::PackSigner;

/// The body format.
pub const PACK_FORMAT: &str = "sv0.pack.v1";
/// The exported file format.
pub const PACK_FILE_FORMAT: &str = "sv0.pack-file.v1";
/// DSSE payload type of a pack body.
pub const PAYLOAD_TYPE: &str = "application/vnd.sv0.pack+json";

/// Why a pack could not be built.
#[derive(Debug, Error)]
pub enum SealError {
    /// The body could not be serialised as canonical JSON.
    #[error("cannot canonicalise the pack body")]
    Canonical(#[source] serde_json::Error),
    /// The key could not sign (a PKCS #11 token that is gone or refuses).
    #[error("cannot sign the pack")]
    Key(#[from] crate::KeyError),
}

/// The log positions a pack accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogRange {
    /// First position.
    pub from: u64,
    /// Last position (the assessed event).
    pub to: u64,
}

/// What a pack seals; the signed bytes are this value's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PackBody {
    /// `sv0.pack.v1`.
    pub format: String,
    /// Pack id.
    pub pack_id: String,
    /// Position in the tenant's chain, from 1.
    pub index: u64,
    /// The tenant.
    pub tenant: String,
    /// What the assessment is about.
    pub kind: AssessmentKind,
    /// Log positions covered.
    pub log_range: LogRange,
    /// The previous pack of the tenant (none for the first).
    pub previous_pack_id: Option<String>,
    /// Its digest.
    pub previous_digest: Option<String>,
    /// The key that signs this pack.
    pub key_id: String,
    /// The assessment.
    pub assessment: Assessment,
}

/// The tenant's chain head a new pack links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// Index of the head pack.
    pub index: u64,
    /// Its id.
    pub pack_id: String,
    /// Its digest.
    pub digest: String,
}

/// The id of the pack at `index` of a tenant's chain sealing the assessed event.
pub fn pack_id(tenant: &str, index: u64, assessed_event: &str) -> String {
    format!("pk-{}", stable_hash("sv0.pack-id.v1", &[tenant, &index.to_string(), assessed_event], 24))
}

/// DSSE pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Canonical JSON (RFC 8785) of a value.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(value)
}

/// Builds, hashes and signs the pack sealing `assessment` after `previous`.
pub fn seal(
    assessment: &Assessment,
    previous: Option<&ChainLink>,
    signer: &PackSigner,
) -> Result<PackSealed, SealError> {
    let index = previous.map_or(1, |p| p.index + 1);
    let tenant = assessment.tenant.as_str().to_string();
    let body = PackBody {
        format: PACK_FORMAT.to_string(),
        pack_id: pack_id(&tenant, index, &assessment.assessed_event.to_hex()),
        index,
        tenant,
        kind: assessment.kind,
        log_range: LogRange { from: assessment.log_from, to: assessment.assessed_seq },
        previous_pack_id: previous.map(|p| p.pack_id.clone()),
        previous_digest: previous.map(|p| p.digest.clone()),
        key_id: signer.key_id().to_string(),
        assessment: assessment.clone(),
    };
    let bytes = canonical_json(&body).map_err(SealError::Canonical)?;
    let signature = signer.sign(&pae(PAYLOAD_TYPE, &bytes))?;
    Ok(PackSealed {
        pack_id: body.pack_id,
        index,
        assessed_seq: assessment.assessed_seq,
        digest: digest(&bytes),
        previous_pack_id: body.previous_pack_id,
        previous_digest: body.previous_digest,
        key_id: body.key_id,
        signature: STANDARD.encode(signature.to_bytes()),
        // JCS output is UTF-8 JSON text.
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// A pack as exported to a file: readable JSON, verifiable with no database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// `sv0.pack-file.v1`.
    pub format: String,
    /// Pack id.
    pub pack_id: String,
    /// Position in the chain.
    pub index: u64,
    /// `sha256:<hex>` of the body's canonical JSON.
    pub digest: String,
    /// The signing key's id.
    pub key_id: String,
    /// DSSE payload type the signature covers.
    pub payload_type: String,
    /// Base64 ed25519 signature over `PAE(payload_type, canonical body)`.
    pub signature: String,
    /// The body.
    pub body: serde_json::Value,
}

impl PackFile {
    /// The exported form of a sealed pack.
    pub fn from_sealed(sealed: &PackSealed) -> Result<PackFile, serde_json::Error> {
        Ok(PackFile {
            format: PACK_FILE_FORMAT.to_string(),
            pack_id: sealed.pack_id.clone(),
            index: sealed.index,
            digest: sealed.digest.clone(),
            key_id: sealed.key_id.clone(),
            payload_type: PAYLOAD_TYPE.to_string(),
            signature: sealed.signature.clone(),
            body: serde_json::from_str(&sealed.body)?,
        })
    }

    /// The file name that sorts in chain order: `000001-<pack id>.json`.
    pub fn file_name(&self) -> String {
        format!("{:06}-{}.json", self.index, self.pack_id)
    }
}

/// Refuses JSON in which an object names a member twice (I-JSON, RFC 7493; RFC 8785 requires
/// it of what it canonicalises): a reader that keeps the first would see another document than
/// one that keeps the last, so a signature over one must not pass for the other.
pub fn check_unique_names(text: &str) -> Result<(), String> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

    struct Unique;

    impl<'de> serde::de::DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Unique)
        }
    }

    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::BTreeSet::new();
            while let Some(name) = map.next_key::<String>()? {
                if !seen.insert(name.clone()) {
                    return Err(serde::de::Error::custom(format!("the member {name:?} appears twice in one object")));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
    }

    let mut d = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(Unique, &mut d).map_err(|e| e.to_string())?;
    d.end().map_err(|e| e.to_string())
}
