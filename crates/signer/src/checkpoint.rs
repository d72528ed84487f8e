//! Checkpoints of the pack log in the C2SP `tlog-checkpoint` format, signed as C2SP
//! `signed-note`s with Ed25519: what Trillian/Tessera, the Go checksum database, Sigsum and the
//! witness network read.
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, standard base64>
//!
//! — <key name> <base64(4-byte key id ‖ 64-byte signature)>
//! ```
//!
//! The signature is Ed25519 over the note text (the first three lines, each ending in a
//! newline); the key id is the first four bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keys::PackSigner;
use crate::merkle::Hash;

/// The signature line's lead: an em dash and a space.
const SIGNATURE_LEAD: &str = "\u{2014} ";
/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// Why a checkpoint does not parse or verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The note is not a checkpoint.
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    /// No signature of the expected key, or a signature that does not verify.
    #[error("the checkpoint carries no valid signature of key {0}")]
    Unsigned(String),
}

/// The origin line of a tenant's checkpoints (also the name their signature is made under).
pub fn origin(tenant: &str) -> String {
    format!("sv0/{tenant}/packs")
}

/// A tree head: origin, size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `sv0/contoso/packs`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// The note key id of a named Ed25519 key.
pub fn note_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

impl Checkpoint {
    /// The note text that is signed.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// The signed note, signed by `signer` under the key name `name` (a token key can fail).
    pub fn sign(&self, signer: &PackSigner, name: &str) -> Result<String, crate::KeyError> {
        let signature = signer.sign(self.text().as_bytes())?;
        Ok(self.sign_with(name, &signer.verifying_key(), |_| signature))
    }

    /// The signed note, with a signing function (for test vectors and other key holders).
    pub fn sign_with(&self, name: &str, key: &VerifyingKey, sign: impl FnOnce(&[u8]) -> Signature) -> String {
        let text = self.text();
        let signature = sign(text.as_bytes());
        let mut blob = note_key_id(name, key).to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIGNATURE_LEAD}{name} {}\n", STANDARD.encode(blob))
    }

    /// Parses a signed note and verifies the signature of the key `name`; signatures of other
    /// keys are ignored, as the format requires.
    pub fn verify(note: &str, name: &str, key: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
        let malformed = |why: &str| CheckpointError::Malformed(why.to_string());
        let (text, signatures) =
            note.split_once("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let text = format!("{text}\n");
        let mut lines = text.lines();
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| malformed("no tree size line"))?;
        if size_line.len() > 1 && size_line.starts_with('0') {
            return Err(malformed("the tree size has a leading zero"));
        }
        let size: u64 = size_line.parse().map_err(|_| malformed("the tree size is not a decimal number"))?;
        let root_line = lines.next().ok_or_else(|| malformed("no root hash line"))?;
        let root: Hash = STANDARD
            .decode(root_line)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("the root hash is not 32 bytes of base64"))?;
        let id = note_key_id(name, key);
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIGNATURE_LEAD) else { continue };
            let Some((signer, blob)) = rest.split_once(' ') else { continue };
            if signer != name {
                continue;
            }
            let Ok(blob) = STANDARD.decode(blob) else { continue };
            if blob.len() != 68 || blob[..4] != id {
                continue;
            }
            let Ok(signature) = Signature::from_slice(&blob[4..]) else { continue };
            // Strictly, as packs are: no small-order keys, no non-canonical signatures.
            if key.verify_strict(text.as_bytes(), &signature).is_ok() {
                return Ok(Checkpoint { origin: origin.to_string(), size, root });
            }
        }
        Err(CheckpointError::Unsigned(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier;

    use super::*;

    /// A checkpoint "signed" for the small-order identity key (R = identity, s = 0), which a
    /// lax ed25519 verification accepts for any text, is refused.
    #[test]
    fn a_signature_for_a_small_order_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("the identity point decodes");
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let signature = Signature::from_bytes(&forged);
        let checkpoint = Checkpoint { origin: "sv0.example/contoso".into(), size: 3, root: [7; 32] };
        assert!(weak.verify(checkpoint.text().as_bytes(), &signature).is_ok(), "the lax check accepts it");
        let note = checkpoint.sign_with("sv0", &weak, |_| signature);
        assert!(matches!(Checkpoint::verify(&note, "sv0", &weak), Err(CheckpointError::Unsigned(_))));
    }
}
