//! Projections: the log folded into redb views.
//!
//! `Views` owns the database. `Views::catch_up` reads the log from the checkpoint and applies
//! events in batches; each batch is one write transaction that also moves the checkpoint, so an
//! event's effects and the record that it was applied commit together (exactly-once effect).
//! `fold` says what each event does:
//! - scans are reassembled from their chunks and applied only when complete and consistent
//!   (`scan.completed`), never half;
//! - the path graph (`paths`, `paths_by_workload`, `entities`) is rewritten where it changed;
//! - findings open and resolve (`findings`), approvals lock baselines (`baselines`,
//!   `baseline_versions`) and acknowledge findings;
//! - every accepted scan and every approval leaves an `Assessment` for the signer to seal;
//! - sealed packs and signing keys are indexed (`packs`, `pack_heads`, `keys`).
//!
//! Views change only through events: nothing writes them directly, and rebuilding from an
//! empty database gives identical tables.

mod assess;
mod batch;
pub mod error;
mod findingstore;
mod fold;
mod graph;
mod pathstore;
pub mod records;
pub mod rego;
mod scan;
pub mod shard;
pub mod store;
mod views;

pub use assess::set_scope_memos;
pub use batch::{SPILL_BYTES, set_spill_bytes};
pub use error::ProjectionError;
pub use records::{
    Baseline, BaselineHead, BaselineState, Drift, EntityDiff, FindingAck, FindingRecord, FindingStatus, KeyRecord,
    Lifecycle, OpenFindings, PackHead, ScanRecord, ScanStatus, TenantState, TokenRecord,
};
pub use shard::Shard;
pub use views::{BATCH_EVENTS, PathFilter, Views, WhatIf};
