//! SV0's one integration test binary. Each module covers one area end to end with real parts:
//! the redb-backed log, redb views, real ed25519 keys.

mod codec;
mod log;
