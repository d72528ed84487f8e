//! Applying a scan to the views:
//!
//! 1. reassemble it from its chunks (or reject it whole);
//! 2. diff its entities against the stored ones under its coverage: what it read completely and
//!    did not see is removed; what it read with failures and did not see is kept, unobserved;
//!    what it did not read, or what lies outside a targeted scan's scope, is left alone;
//! 3. trip the entity breaker if it removes too much of a list;
//! 4. write the entity changes and find the workloads they reach (plus those whose evidence
//!    left the window or whose owners went silent since the last scan);
//! 5. trip the path breaker if those workloads would lose too many paths (the entity changes
//!    are undone and the scan is held);
//! 6. recompute the paths and findings of those workloads only, and the credential, identity
//!    and destination findings their changes touch;
//! 7. record the scan, its entity diff and its assessment.

use redb::ReadableTable;
use sv0_domain::TenantId;
use sv0_domain::assessment::{AssessmentKind, ScanAssessment, ScanRef};
use sv0_domain::events::{Event, ScanCompleted, ScanQuarantined, ScanReleased, ScanStarted};
use sv0_domain::policy::Policy;
use sv0_domain::snapshot::{Entities, EntityList};
use tracing::{info, warn};

use crate::assess::store_assessment;
use crate::error::ProjectionError;
use crate::pathstore::{self};
use crate::records::{ScanRecord, ScanStatus};
use crate::store::{self, get, put};
use crate::store::{REGO_STATE, ScanFold, Tables, entity_ids, policy, rego_state, t_key, t_prefix, tenant_state};

mod diff;
mod reach;
mod recompute;

use diff::*;
pub(crate) use diff::{ChangeKind, Merge, stored_all};
use reach::*;
pub(crate) use recompute::*;

/// `policy.approved`: the policy waiting for a second person is in force, when the approver
/// is not the person who set it and approved the policy that is set. Anything else (an event
/// a log writer forged, a race with a newer `policy.set`) changes nothing.
pub(crate) fn policy_approved(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    event: &Event,
    approved: &sv0_domain::events::PolicyApproved,
) -> Result<(), ProjectionError> {
    let by = sv0_domain::events::Actor::principal_of(&event.meta.actor);
    let current = policy(t, tenant)?;
    match rego_state(t, tenant)?.after_approval(current.rego.as_ref(), &approved.digest, by) {
        Ok(rego) => put(&mut t.policies, &t_key(tenant, &[REGO_STATE]), &rego),
        Err(why) => {
            tracing::warn!(%tenant, %why, "policy.approved changes nothing");
            Ok(())
        }
    }
}

/// Reassembles a scan from its pending rows; `Err` says why it cannot be applied. Each chunk
/// is decoded, hashed and encoded into entity rows in turn, so memory holds the rows and one
/// chunk, never the decoded scan whole.
fn reassemble(
    t: &Tables<'_>,
    tenant: &TenantId,
    completed: &ScanCompleted,
) -> Result<Result<(ScanStarted, Scanned), String>, ProjectionError> {
    let started: Option<ScanStarted> =
        get(&t.scans_pending, "scans_pending", &t_key(tenant, &[completed.scan_id.as_bytes()]))?;
    let Some(started) = started else {
        return Ok(Err("no scan.started event precedes scan.completed".to_string()));
    };
    let (mut scanned, mut hasher, mut chunks) = (Scanned::default(), sv0_codec::EntitiesHasher::default(), 0u64);
    let prefix = t_prefix(tenant, &[completed.scan_id.as_bytes()]);
    let end = store::prefix_end(&prefix);
    for entry in t.scan_chunks.range(prefix.as_slice()..end.as_slice())? {
        let chunk: Entities = store::decode("scan_chunks", &store::unpack("scan_chunks", entry?.1.value())?)?;
        hasher.add(&chunk).map_err(ProjectionError::Encode)?;
        scanned.add(chunk)?;
        chunks += 1;
    }
    if chunks != u64::from(completed.chunk_count) {
        return Ok(Err(format!("expected {} chunk(s), found {chunks}", completed.chunk_count)));
    }
    if scanned.count != completed.entity_count {
        return Ok(Err(format!("expected {} entities, found {}", completed.entity_count, scanned.count)));
    }
    if hasher.finish() != completed.snapshot_digest {
        return Ok(Err("snapshot digest does not match the chunks".to_string()));
    }
    if let Some(base) = &started.coverage.base_scan {
        let latest = tenant_state(t, tenant)?.map(|s| s.last_scan_id).unwrap_or_default();
        if *base != latest {
            return Ok(Err(format!(
                "it is a delta of scan {base}, but the tenant's latest applied scan is {}",
                if latest.is_empty() { "none" } else { latest.as_str() }
            )));
        }
    }
    Ok(Ok((started, scanned)))
}

fn drop_pending(t: &mut Tables<'_>, tenant: &TenantId, scan_id: &str) -> Result<(), ProjectionError> {
    t.scans_pending.remove(t_key(tenant, &[scan_id.as_bytes()]).as_slice())?;
    store::remove_prefix(&mut t.scan_chunks, &t_prefix(tenant, &[scan_id.as_bytes()]))
}

/// `scan.completed`: apply the scan, or reject it, or hold it.
pub(crate) fn scan_completed(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    completed: &ScanCompleted,
) -> Result<(), ProjectionError> {
    match reassemble(t, tenant, completed)? {
        Err(reason) => {
            warn!(%tenant, seq, scan_id = %completed.scan_id, %reason, "scan rejected");
            drop_pending(t, tenant, &completed.scan_id)?;
            let record = ScanRecord {
                scan_id: completed.scan_id.clone(),
                status: ScanStatus::Rejected,
                reason: Some(reason),
                completed_seq: seq,
                applied_seq: None,
                quarantine_seq: None,
                released_by: None,
                trigger: None,
                mode: None,
                observed_at: None,
                entity_count: completed.entity_count,
                removed_entities: 0,
                removed_paths: 0,
                paths_total: 0,
            };
            put(&mut t.scans, &t_key(tenant, &[completed.scan_id.as_bytes()]), &record)
        }
        Ok((started, scanned)) => {
            apply(t, tenant, (seq, event), Arrived { completed, started: &started, scanned }, None)
        }
    }
}

/// `scan.quarantined`: the record that the breaker's decision was written down.
pub(crate) fn scan_quarantined(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    quarantined: &ScanQuarantined,
) -> Result<(), ProjectionError> {
    let key = t_key(tenant, &[quarantined.scan_id.as_bytes()]);
    if let Some(mut record) = get::<ScanRecord>(&t.scans, "scans", &key)? {
        record.quarantine_seq.get_or_insert(seq);
        put(&mut t.scans, &key, &record)?;
    }
    Ok(())
}

/// `scan.released`: a person applies a held scan, unless a newer scan was applied since.
pub(crate) fn scan_released(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    released: &ScanReleased,
) -> Result<(), ProjectionError> {
    let key = t_key(tenant, &[released.scan_id.as_bytes()]);
    let Some(record) = get::<ScanRecord>(&t.scans, "scans", &key)? else {
        warn!(%tenant, seq, scan_id = %released.scan_id, "release of an unknown scan ignored");
        return Ok(());
    };
    if record.status != ScanStatus::Quarantined {
        warn!(%tenant, seq, scan_id = %released.scan_id, "release of a scan that is not quarantined ignored");
        return Ok(());
    }
    let newer = tenant_state(t, tenant)?.is_some_and(|s| s.last_scan_seq > record.completed_seq);
    let completed: Option<ScanCompleted> =
        get(&t.scans_pending, "scans_pending", &held_key(tenant, &released.scan_id))?;
    let held = match completed {
        Some(completed) if !newer => match reassemble(t, tenant, &completed)? {
            Ok((started, scanned)) => Some((completed, started, scanned)),
            Err(_) => None,
        },
        _ => None,
    };
    let Some((completed, started, scanned)) = held else {
        drop_pending(t, tenant, &released.scan_id)?;
        t.scans_pending.remove(held_key(tenant, &released.scan_id).as_slice())?;
        let record =
            ScanRecord { status: ScanStatus::Superseded, released_by: Some(released.released_by.clone()), ..record };
        return put(&mut t.scans, &key, &record);
    };
    t.scans_pending.remove(held_key(tenant, &released.scan_id).as_slice())?;
    apply(t, tenant, (seq, event), Arrived { completed: &completed, started: &started, scanned }, Some(released))
}

fn held_key(tenant: &TenantId, scan_id: &str) -> Vec<u8> {
    t_key(tenant, &[scan_id.as_bytes(), b"completed"])
}

/// A scan whose chunks have all arrived: its first and last events and its entities.
struct Arrived<'a> {
    completed: &'a ScanCompleted,
    started: &'a ScanStarted,
    scanned: Scanned,
}

/// Applies a scan completed by the event at `seq` (`released` says who released it, which
/// skips the breakers).
fn apply(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    (seq, event): (u64, &Event),
    scan: Arrived<'_>,
    released: Option<&ScanReleased>,
) -> Result<(), ProjectionError> {
    let Arrived { completed, started, scanned } = scan;
    let policy = policy(t, tenant)?;
    let now = started.observed_at;
    let mut fold = ScanFold::new(t, tenant, seq, now)?;
    let previous = (!fold.state.last_scan_id.is_empty()).then_some(fold.state.last_observed_at);
    let changes = diff(t, tenant, scanned, started)?;
    let diff_record = entity_diff(&changes, previous.is_none());
    let removed_entities = diff_record.counts().2;
    let record_key = t_key(tenant, &[started.scan_id.as_bytes()]);
    let paths_total_before = fold.state.paths_total;
    let hold = |t: &mut Tables<'_>, reason: String, removed_paths: u64| -> Result<(), ProjectionError> {
        info!(%tenant, seq, scan_id = %started.scan_id, %reason, "scan quarantined by a deletion circuit breaker");
        put(&mut t.scans_pending, &held_key(tenant, &started.scan_id), completed)?;
        let record = ScanRecord {
            scan_id: started.scan_id.clone(),
            status: ScanStatus::Quarantined,
            reason: Some(reason),
            completed_seq: seq,
            applied_seq: None,
            quarantine_seq: None,
            released_by: None,
            trigger: Some(started.trigger),
            mode: Some(started.coverage.mode),
            observed_at: Some(now),
            entity_count: completed.entity_count,
            removed_entities,
            removed_paths,
            paths_total: paths_total_before,
        };
        put(&mut t.scans, &record_key, &record)
    };
    if released.is_none() {
        for list in EntityList::ALL {
            let (_, removed) = diff_record.added_and_removed(list);
            let existing = fold.state.entities.get(list.name()).copied().unwrap_or(0);
            if policy.breaker.trips(removed, existing) {
                let reason = format!(
                    "it would remove {removed} of {existing} {} (the breaker allows {} %)",
                    list.name(),
                    policy.breaker.max_removed_percent
                );
                return hold(t, reason, 0);
            }
        }
    }
    write_changes(t, tenant, &changes, now, false)?;
    let reached = reach(t, tenant, &changes, previous, now, &policy)?;
    let selections = reached.selections(t, tenant)?;
    let budget = released.is_none().then(|| policy.fold_budget());
    let budget_reason = |budget: u64| {
        format!(
            "its fold would compute more than {budget} paths (the policy's fold budget, `sv0 policy set --fold-budget-paths`); `sv0 scan release` applies it anyway"
        )
    };
    // A first scan's paths are counted before any is built, so that its changes (every entity's
    // bytes) need not be kept through the recompute; a later scan's are kept anyway (the path
    // breaker may undo them), and the recompute counts as it goes (`recompute`).
    if let Some(budget) = budget.filter(|_| paths_total_before == 0)
        && over_budget(t, tenant, &selections, budget)?
    {
        write_changes(t, tenant, &changes, now, true)?;
        return hold(t, budget_reason(budget), 0);
    }
    // The changes themselves are kept through the recompute only if the path breaker may yet
    // undo them.
    let undo = (released.is_none() && paths_total_before > 0).then_some(changes);
    // The path breaker counts what the recompute removes, before any of it is written.
    let recomputed = recompute(t, &mut fold, &policy, &selections, budget.filter(|_| undo.is_some()))?;
    if let (true, Some(changes), Some(budget)) = (recomputed.over_budget, undo.as_ref(), budget) {
        write_changes(t, tenant, changes, now, true)?;
        return hold(t, budget_reason(budget), 0);
    }
    let lost = recomputed.removed();
    if let Some(changes) = undo.as_ref().filter(|_| policy.breaker.trips(lost, paths_total_before)) {
        write_changes(t, tenant, changes, now, true)?;
        let reason = format!(
            "it would remove {lost} of {paths_total_before} paths (the breaker allows {} %)",
            policy.breaker.max_removed_percent
        );
        return hold(t, reason, lost);
    }
    let writer = recomputed.write(t, &mut fold, reached.around)?;
    let digest = pathstore::refresh_digest(&t.path_fingerprints, &mut t.digest_buckets, tenant, &writer.dirty_buckets)?;
    // Each baselined scope against its baseline; its undeclared additions open findings, so
    // this comes before the tenant's finding count is stored.
    let scopes = crate::assess::assess_scopes(t, &mut fold, started.trigger)?;
    let ScanFold { mut state, mut movement, .. } = fold;
    for list in EntityList::ALL {
        let (added, removed) = diff_record.added_and_removed(list);
        if added + removed > 0 {
            let count = state.entities.entry(list.name().to_string()).or_default();
            *count = (*count + added).saturating_sub(removed);
        }
    }
    state.last_scan_id = started.scan_id.clone();
    state.last_scan_seq = seq;
    state.last_observed_at = now;
    put(&mut t.tenants, &t_key(tenant, &[]), &state)?;
    put(&mut t.scan_diffs, &record_key, &diff_record)?;
    drop_pending(t, tenant, &started.scan_id)?;
    let existing: Option<ScanRecord> = get(&t.scans, "scans", &record_key)?;
    let record = ScanRecord {
        scan_id: started.scan_id.clone(),
        status: ScanStatus::Applied,
        reason: None,
        completed_seq: existing.as_ref().map_or(seq, |r| r.completed_seq),
        applied_seq: Some(seq),
        quarantine_seq: existing.as_ref().and_then(|r| r.quarantine_seq),
        released_by: released.map(|r| r.released_by.clone()),
        trigger: Some(started.trigger),
        mode: Some(started.coverage.mode),
        observed_at: Some(now),
        entity_count: completed.entity_count,
        removed_entities,
        removed_paths: writer.removed,
        paths_total: state.paths_total,
    };
    put(&mut t.scans, &record_key, &record)?;

    movement.open = state.open.total();
    movement.opened.sort();
    movement.resolved.sort();
    let mut posture = state.posture.clone();
    posture.path_set_digest = digest;
    let assessment = ScanAssessment {
        scan: ScanRef {
            scan_id: started.scan_id.clone(),
            connector: started.connector.clone(),
            trigger: started.trigger,
            observed_at: now,
            deployment: started.deployment.clone(),
        },
        posture,
        findings: movement,
        scopes,
    };
    store_assessment(t, tenant, seq, event, AssessmentKind::for_trigger(started.trigger), Some(assessment), None)
}

/// `policy.set`: keep the policy and, for a tenant already scanned, recompute every workload
/// under it at the tenant's current time.
pub(crate) fn policy_set(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    policy: &Policy,
) -> Result<(), ProjectionError> {
    put(&mut t.policies, &t_key(tenant, &[]), policy)?;
    let by = sv0_domain::events::Actor::principal_of(&event.meta.actor);
    let rego = rego_state(t, tenant)?.after_set(policy.rego.as_ref(), by, seq);
    put(&mut t.policies, &t_key(tenant, &[REGO_STATE]), &rego)?;
    let Some(state) = tenant_state(t, tenant)? else { return Ok(()) };
    let workloads: Selections =
        entity_ids(&t.entities, tenant, EntityList::Workloads)?.into_iter().map(|w| (w, None)).collect();
    // Every entity finding is decided again too: a policy change is a full recomputation, and
    // the property tests use it as the oracle for the incremental one.
    let around = Around {
        identities: entity_ids(&t.entities, tenant, EntityList::Identities)?,
        credentials: entity_ids(&t.entities, tenant, EntityList::Credentials)?,
        destinations: entity_ids(&t.entities, tenant, EntityList::Destinations)?,
    };
    let now = state.last_observed_at;
    let mut fold = ScanFold::at(tenant, seq, now, state);
    let writer = recompute(t, &mut fold, policy, &workloads, None)?.write(t, &mut fold, around)?;
    pathstore::refresh_digest(&t.path_fingerprints, &mut t.digest_buckets, tenant, &writer.dirty_buckets)?;
    crate::assess::stamp(t, tenant, seq, &fold.touched)?;
    fold.store_state(t)
}
