//! Evidence packs and the keys that sign them.
//!
//! - `pack`: `seal` turns an `Assessment` into a `PackSealed` event: canonical JSON body
//!   (RFC 8785) → SHA-256 digest → chained to the previous pack → ed25519 over the DSSE
//!   pre-authentication encoding. `PackFile` is the exported, self-contained form.
//! - `keys`: `PackSigner` (the private key, created on first use with 0600 permissions, never
//!   logged, replaced by a rotation) and `KeyRing` (public keys by id with their validity
//!   ranges per tenant chain, all that verification needs).
//! - `verify`: `verify_chain` checks a whole chain offline and names the first broken link.
//! - `attestation`: packs as in-toto Statements (and SLSA VSAs for gate decisions) in DSSE
//!   envelopes.
//! - `timestamp`: RFC 3161 requests for checkpoints, and the offline verification of a TSA's
//!   token (CMS signature, ESS certificate, key usage, chain to trusted certificates, validity).
//! - `merkle`: the RFC 6962 / 9162 tree over a tenant's pack digests, with inclusion and
//!   consistency proofs; `checkpoint`: its tree heads as C2SP signed notes.

pub mod attestation;
pub mod checkpoint;
pub mod keys;
pub mod merkle;
pub mod pack;
pub mod pkcs11;
pub mod timestamp;
pub mod verify;

pub use keys::{KeyError, KeyRing, KeyStore, PackSigner, Validity, key_id, public_key_pem};
pub use pack::{ChainLink, PAYLOAD_TYPE, PackBody, PackFile, SealError, seal};
pub use verify::{BrokenLink, ChainEntry, ChainReport, entries_from_dir, entries_from_sealed, verify_chain};
