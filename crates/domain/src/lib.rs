//! SV0's domain: the model, the events and the decisions, with no IO at all.
//!
//! - `snapshot` / `model`: what a scan saw (`Snapshot`, `Entities`, `Workload`, `Grant`, ...);
//! - `paths`: `compute_paths` turns entities into `AuthorityPath`s with grade, egress, owners;
//! - `findings`: the rule catalogue (`CATALOGUE`) and the rules over entities and paths;
//! - `delta`: `compute` compares a scope with its baseline, `verify` judges a rescan;
//! - `intent`: the additions an approval declares (`IntentItem`), and whether a change was meant;
//! - `disposition`: `decide` turns a scope's delta into approved / requires review / rejected;
//! - `assessment`: `Assessment`, the content an evidence pack seals;
//! - `events`: `Event` and its `EventPayload`s, the facts on the log;
//! - `scope`: `Scope`, the workloads a review covers;
//! - `access`: API roles and what each permits.

pub mod access;
pub mod assessment;
pub mod delta;
pub mod disposition;
pub mod egress;
pub mod error;
pub mod events;
pub mod findings;
pub mod ids;
pub mod intent;
pub mod model;
pub mod overlay;
pub mod paths;
pub mod policy;
pub mod remediation;
pub mod scope;
pub mod snapshot;

pub use error::{InvalidInput, SnapshotInvalid};
pub use ids::{EventId, TenantId, Timestamp};
