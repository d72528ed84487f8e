//! Packs as in-toto attestations: an in-toto Statement v1 per pack (subject = the pack and its
//! SHA-256 digest, predicate = the pack body) and, for scan assessments with a scope
//! disposition, a SLSA Verification Summary Attestation (`PASSED` when the scope is approved,
//! `FAILED` otherwise), each in a DSSE envelope signed with Ed25519 over the exact
//! pre-authentication encoding `PAE("application/vnd.in-toto+json", statement bytes)`. Key ids
//! are the hex SHA-256 of the raw public key, as for packs.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::keys::{PackSigner, key_id};
use crate::pack::pae;

/// DSSE payload type of an in-toto Statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SV0's predicate type: the pack body.
pub const PACK_PREDICATE_TYPE: &str = "https://sv0.dev/evidence-pack/v1";
/// The SLSA Verification Summary Attestation predicate type.
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// The verifier id in VSAs.
pub const VERIFIER_ID: &str = "https://sv0.dev/sv0";

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvelopeSignature {
    /// Hex SHA-256 of the raw public key (a hint, never trusted for security).
    pub keyid: String,
    /// Base64 Ed25519 signature over the PAE.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the exact payload bytes.
    pub payload: String,
    /// The payload type the signature covers.
    pub payload_type: String,
    /// Signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope does not verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttestationError {
    /// The payload or a signature is not base64.
    #[error("the envelope is malformed: {0}")]
    Malformed(&'static str),
    /// The payload type is not an in-toto Statement.
    #[error("unsupported payload type {0}")]
    PayloadType(String),
    /// No signature verifies with the key.
    #[error("no signature of the envelope verifies with key {0}")]
    Signature(String),
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).ok()
}

/// Wraps payload bytes in an envelope signed by `sign`.
pub fn envelope_with(
    payload_type: &str,
    payload: &[u8],
    key: &VerifyingKey,
    sign: impl FnOnce(&[u8]) -> Signature,
) -> Envelope {
    let signature = sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature { keyid: key_id(key), sig: STANDARD.encode(signature.to_bytes()) }],
    }
}

/// A Statement signed by the pack signer.
pub fn sign_statement(signer: &PackSigner, statement: &Value) -> Envelope {
    let payload = statement.to_string().into_bytes();
    envelope_with(INTOTO_PAYLOAD_TYPE, &payload, &signer.verifying_key(), |pae| signer.sign(pae))
}

/// Verifies an envelope with a key and returns the exact verified payload bytes (parse these,
/// never a re-encoding). Base64 may be standard or URL-safe, as DSSE requires.
pub fn verify_envelope(envelope: &Envelope, key: &VerifyingKey) -> Result<Vec<u8>, AttestationError> {
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(AttestationError::PayloadType(envelope.payload_type.clone()));
    }
    let payload = decode_base64(&envelope.payload).ok_or(AttestationError::Malformed("payload is not base64"))?;
    let message = pae(&envelope.payload_type, &payload);
    for signature in &envelope.signatures {
        let Some(bytes) = decode_base64(&signature.sig) else { continue };
        let Ok(signature) = Signature::from_slice(&bytes) else { continue };
        if key.verify_strict(&message, &signature).is_ok() {
            return Ok(payload);
        }
    }
    Err(AttestationError::Signature(key_id(key)))
}

/// The Statement of a pack: subject = the pack id and its body's SHA-256.
pub fn pack_statement(pack_id: &str, digest: &str, body: &Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": pack_id, "digest": { "sha256": digest.trim_start_matches("sha256:") } }],
        "predicateType": PACK_PREDICATE_TYPE,
        "predicate": body,
    })
}

/// A gate decision as a SLSA VSA about a pack: `resource_uri` names the scope, `decision` is
/// the disposition (`approved` passes).
pub fn vsa_statement(pack_id: &str, digest: &str, time_verified: &str, resource_uri: &str, decision: &str) -> Value {
    let sha = digest.trim_start_matches("sha256:");
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": pack_id, "digest": { "sha256": sha } }],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": { "id": VERIFIER_ID },
            "timeVerified": time_verified,
            "resourceUri": resource_uri,
            "policy": { "uri": "https://sv0.dev/policy/disposition/v1" },
            "inputAttestations": [{ "uri": format!("sv0:pack/{pack_id}"), "digest": { "sha256": sha } }],
            "verificationResult": if decision == "approved" { "PASSED" } else { "FAILED" },
            "verifiedLevels": [format!("SV0_DISPOSITION_{}", decision.to_ascii_uppercase())],
        },
    })
}
