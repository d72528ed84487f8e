//! Audit replays through the API: folding a tenant's history is the costliest thing a caller
//! can ask for, so each tenant runs one at a time, and the last few answers are kept by
//! (tenant, log position) — a replay at a position never changes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use sv0_domain::TenantId;
use sv0_projections::Views;

/// Replays kept at once (each is an in-memory fold of one tenant's history).
pub const KEPT: usize = 4;

/// A kept replay: (tenant, log position) and its views.
type Kept = ((TenantId, u64), Arc<Views>);

/// The replays running and the ones kept.
#[derive(Default)]
pub struct Replays {
    running: Mutex<BTreeSet<TenantId>>,
    kept: Mutex<Vec<Kept>>,
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replays").finish_non_exhaustive()
    }
}

/// A replay in progress: the tenant's slot is free again when it is dropped.
pub struct Running<'a> {
    replays: &'a Replays,
    tenant: TenantId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.replays.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.tenant);
    }
}

impl Replays {
    /// The replay of `tenant` at `position`, when it is kept.
    pub fn cached(&self, tenant: &TenantId, position: u64) -> Option<Arc<Views>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|((t, p), _)| t == tenant && *p == position).map(|(_, v)| Arc::clone(v))
    }

    /// Takes the tenant's replay slot, or `None` while another replay of it runs.
    pub fn start(&self, tenant: &TenantId) -> Option<Running<'_>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(tenant.clone()).then(|| Running { replays: self, tenant: tenant.clone() })
    }

    /// Keeps a replay's answer, forgetting the oldest beyond `KEPT`.
    pub fn keep(&self, tenant: &TenantId, position: u64, views: Arc<Views>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|((t, p), _)| !(t == tenant && *p == position));
        kept.push(((tenant.clone(), position), views));
        if kept.len() > KEPT {
            kept.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One replay per tenant at a time; another tenant is not held up; answers are kept by
    /// (tenant, position), the oldest forgotten first.
    #[test]
    fn one_replay_per_tenant_at_a_time_and_the_last_few_kept() {
        let replays = Replays::default();
        let a = TenantId::new("contoso").unwrap();
        let b = TenantId::new("fabrikam").unwrap();
        let first = replays.start(&a).expect("free");
        assert!(replays.start(&a).is_none(), "a second replay of the same tenant waits");
        let other = replays.start(&b).expect("another tenant is not held up");
        drop(first);
        assert!(replays.start(&a).is_some(), "the slot is free once the replay ends");
        drop(other);
        let views = Arc::new(Views::in_memory().unwrap());
        for position in 0..=KEPT as u64 {
            replays.keep(&a, position, Arc::clone(&views));
        }
        assert!(replays.cached(&a, 0).is_none(), "the oldest is forgotten");
        assert!(replays.cached(&a, KEPT as u64).is_some());
        assert!(replays.cached(&b, KEPT as u64).is_none(), "kept per tenant");
    }
}
