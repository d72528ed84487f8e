//! Generated test data, deterministic by seed: `synthetic` builds snapshots of a tenant of any
//! size (and rescans of it that change a share of its workloads), `vendor_export` the same
//! tenant as a directory of vendor API pages (Graph, ARM, ServiceNow, Foundry) for
//! `sv0 scan run --from-export`. Used by `sv0 synth`, `sv0 bench` and the tests; nothing in
//! the service depends on it.

pub mod synthetic;
pub mod vendor_export;
