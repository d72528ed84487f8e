//! The fold: how each event changes the views. Pure in the sense that matters: the same events
//! in the same order give the same rows, byte for byte; no clock, no randomness, no IO but the
//! views' own write transaction.

use std::collections::{BTreeMap, BTreeSet};

use redb::{Table, WriteTransaction};
use serde::Serialize;
use sv0_domain::assessment::{
    ApprovalAssessment, Assessment, AssessmentKind, FindingMovement, PostureSummary, ScanAssessment, ScanRef,
    ScopeAssessment,
};
use sv0_domain::delta;
use sv0_domain::events::{
    ApprovalRecorded, Event, EventFragment, EventPayload, KeyRegistered, PackSealed, ScanChunk, ScanCompleted,
    ScanStarted,
};
use sv0_domain::findings;
use sv0_domain::paths::{AuthorityPath, compute_paths};
use sv0_domain::snapshot::{Entities, ScanTrigger};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::Record;
use tracing::warn;

use crate::error::ProjectionError;
use crate::records::{
    Baseline, BaselineHead, FindingAck, FindingRecord, FindingStatus, PackHead, ScanRecord, ScanStatus, TenantState,
};
use crate::store::{self, get, key, prefix, put, scan, scan_raw};

/// Every view table, open in one write transaction.
pub(crate) struct Tables<'t> {
    pub checkpoints: Table<'t, &'static [u8], &'static [u8]>,
    scans_pending: Table<'t, &'static [u8], &'static [u8]>,
    scan_chunks: Table<'t, &'static [u8], &'static [u8]>,
    scans: Table<'t, &'static [u8], &'static [u8]>,
    entities: Table<'t, &'static [u8], &'static [u8]>,
    paths: Table<'t, &'static [u8], &'static [u8]>,
    paths_by_workload: Table<'t, &'static [u8], &'static [u8]>,
    tenants: Table<'t, &'static [u8], &'static [u8]>,
    findings: Table<'t, &'static [u8], &'static [u8]>,
    baselines: Table<'t, &'static [u8], &'static [u8]>,
    baseline_versions: Table<'t, &'static [u8], &'static [u8]>,
    scope_flags: Table<'t, &'static [u8], &'static [u8]>,
    assessments: Table<'t, &'static [u8], &'static [u8]>,
    assessment_cursor: Table<'t, &'static [u8], &'static [u8]>,
    packs: Table<'t, &'static [u8], &'static [u8]>,
    pack_heads: Table<'t, &'static [u8], &'static [u8]>,
    keys: Table<'t, &'static [u8], &'static [u8]>,
    fragments: Table<'t, &'static [u8], &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, ProjectionError> {
        Ok(Tables {
            checkpoints: txn.open_table(store::CHECKPOINTS)?,
            scans_pending: txn.open_table(store::SCANS_PENDING)?,
            scan_chunks: txn.open_table(store::SCAN_CHUNKS)?,
            scans: txn.open_table(store::SCANS)?,
            entities: txn.open_table(store::ENTITIES)?,
            paths: txn.open_table(store::PATHS)?,
            paths_by_workload: txn.open_table(store::PATHS_BY_WORKLOAD)?,
            tenants: txn.open_table(store::TENANTS)?,
            findings: txn.open_table(store::FINDINGS)?,
            baselines: txn.open_table(store::BASELINES)?,
            baseline_versions: txn.open_table(store::BASELINE_VERSIONS)?,
            scope_flags: txn.open_table(store::SCOPE_FLAGS)?,
            assessments: txn.open_table(store::ASSESSMENTS)?,
            assessment_cursor: txn.open_table(store::ASSESSMENT_CURSOR)?,
            packs: txn.open_table(store::PACKS)?,
            pack_heads: txn.open_table(store::PACK_HEADS)?,
            keys: txn.open_table(store::KEYS)?,
            fragments: txn.open_table(store::FRAGMENTS)?,
        })
    }
}

/// Applies one event.
pub(crate) fn apply(t: &mut Tables<'_>, record: &Record, event: &Event) -> Result<(), ProjectionError> {
    let tenant = &event.meta.tenant_id;
    let seq = record.seq;
    match &event.payload {
        EventPayload::ScanStarted(started) => scan_started(t, tenant, started),
        EventPayload::ScanChunk(chunk) => scan_chunk(t, tenant, chunk),
        EventPayload::ScanCompleted(completed) => scan_completed(t, tenant, seq, event, completed),
        EventPayload::ApprovalRecorded(approval) => approval_recorded(t, tenant, seq, event, approval),
        EventPayload::KeyRegistered(registered) => key_registered(t, tenant, registered),
        EventPayload::PackSealed(sealed) => pack_sealed(t, tenant, seq, sealed),
        EventPayload::Fragment(fragment) => fragment_received(t, record, tenant, fragment),
    }
}

/// Keeps a piece of a fragmented event; when the last piece arrives, applies the whole event
/// at this record's position. An event is never applied from some of its pieces.
fn fragment_received(
    t: &mut Tables<'_>,
    record: &Record,
    tenant: &TenantId,
    fragment: &EventFragment,
) -> Result<(), ProjectionError> {
    let of = fragment.of.to_hex();
    let invalid = |reason: String| ProjectionError::Event {
        seq: record.seq,
        source: sv0_codec::EventError::InvalidPayload { event_type: "event.fragment".to_string(), reason },
    };
    if fragment.index >= fragment.count {
        return Err(invalid(format!("piece {} of {} of event {of}", fragment.index, fragment.count)));
    }
    let piece_prefix = t_prefix(tenant, &[of.as_bytes()]);
    let piece_key = t_key(tenant, &[of.as_bytes(), &fragment.index.to_be_bytes()]);
    t.fragments.insert(piece_key.as_slice(), fragment.bytes.0.as_slice())?;
    let pieces = scan_raw(&t.fragments, &piece_prefix)?;
    if pieces.len() < fragment.count as usize {
        return Ok(());
    }
    store::remove_prefix(&mut t.fragments, &piece_prefix)?;
    let bytes: Vec<u8> = pieces.into_iter().flat_map(|(_, piece)| piece).collect();
    let whole = sv0_codec::decode_event(&bytes).map_err(|source| ProjectionError::Event { seq: record.seq, source })?;
    if whole.meta.event_id != fragment.of
        || &whole.meta.tenant_id != tenant
        || matches!(whole.payload, EventPayload::Fragment(_))
    {
        return Err(invalid(format!("the pieces of {of} do not make that event")));
    }
    apply(t, record, &whole)
}

fn t_key(tenant: &TenantId, rest: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    parts.extend_from_slice(rest);
    key(&parts)
}

fn t_prefix(tenant: &TenantId, rest: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![tenant.as_str().as_bytes()];
    parts.extend_from_slice(rest);
    prefix(&parts)
}

fn scan_started(t: &mut Tables<'_>, tenant: &TenantId, started: &ScanStarted) -> Result<(), ProjectionError> {
    put(&mut t.scans_pending, &t_key(tenant, &[started.scan_id.as_bytes()]), started)
}

fn scan_chunk(t: &mut Tables<'_>, tenant: &TenantId, chunk: &ScanChunk) -> Result<(), ProjectionError> {
    let index = chunk.index.to_be_bytes();
    put(&mut t.scan_chunks, &t_key(tenant, &[chunk.scan_id.as_bytes(), &index]), &chunk.entities)
}

/// Reassembles a scan from its pending rows; any inconsistency rejects the whole scan.
fn reassemble(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    completed: &ScanCompleted,
) -> Result<Result<(ScanStarted, Entities), String>, ProjectionError> {
    let scan_key = t_key(tenant, &[completed.scan_id.as_bytes()]);
    let started: Option<ScanStarted> = get(&t.scans_pending, "scans_pending", &scan_key)?;
    let chunk_prefix = t_prefix(tenant, &[completed.scan_id.as_bytes()]);
    let chunks: Vec<Entities> = scan(&t.scan_chunks, "scan_chunks", &chunk_prefix)?;
    t.scans_pending.remove(scan_key.as_slice())?;
    store::remove_prefix(&mut t.scan_chunks, &chunk_prefix)?;

    let Some(started) = started else {
        return Ok(Err("no scan.started event precedes scan.completed".to_string()));
    };
    if chunks.len() != completed.chunk_count as usize {
        return Ok(Err(format!("expected {} chunk(s), found {}", completed.chunk_count, chunks.len())));
    }
    let entities = Entities::merge(chunks);
    if entities.len() as u64 != completed.entity_count {
        return Ok(Err(format!("expected {} entities, found {}", completed.entity_count, entities.len())));
    }
    let digest = sv0_codec::entities_digest(&entities).map_err(ProjectionError::Encode)?.digest;
    if digest != completed.snapshot_digest {
        return Ok(Err("snapshot digest does not match the chunks".to_string()));
    }
    Ok(Ok((started, entities)))
}

fn scan_completed(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    completed: &ScanCompleted,
) -> Result<(), ProjectionError> {
    let scan_key = t_key(tenant, &[completed.scan_id.as_bytes()]);
    let (started, entities) = match reassemble(t, tenant, completed)? {
        Ok(parts) => parts,
        Err(reason) => {
            warn!(%tenant, seq, scan_id = %completed.scan_id, %reason, "scan rejected");
            let record = ScanRecord {
                scan_id: completed.scan_id.clone(),
                status: ScanStatus::Rejected,
                reason: Some(reason),
                completed_seq: seq,
                trigger: None,
                observed_at: None,
                entity_count: completed.entity_count,
                paths_total: 0,
            };
            return put(&mut t.scans, &scan_key, &record);
        }
    };

    write_entities(t, tenant, &entities)?;
    let paths = compute_paths(&entities, started.observed_at, &started.policy);
    write_paths(t, tenant, &paths)?;
    let movement = update_findings(t, tenant, seq, started.observed_at, &entities, &paths)?;

    let state = TenantState {
        last_scan_id: started.scan_id.clone(),
        last_scan_seq: seq,
        last_observed_at: started.observed_at,
        paths_total: paths.len() as u64,
    };
    put(&mut t.tenants, &t_key(tenant, &[]), &state)?;
    let record = ScanRecord {
        scan_id: started.scan_id.clone(),
        status: ScanStatus::Applied,
        reason: None,
        completed_seq: seq,
        trigger: Some(started.trigger),
        observed_at: Some(started.observed_at),
        entity_count: completed.entity_count,
        paths_total: paths.len() as u64,
    };
    put(&mut t.scans, &scan_key, &record)?;

    let scopes = assess_scopes(t, tenant, started.trigger, &entities, &paths)?;
    let assessment = ScanAssessment {
        scan: ScanRef {
            scan_id: started.scan_id.clone(),
            connector: started.connector.clone(),
            trigger: started.trigger,
            observed_at: started.observed_at,
            deployment: started.deployment.clone(),
        },
        posture: PostureSummary::of(&paths),
        findings: movement,
        scopes,
    };
    store_assessment(t, tenant, seq, event, AssessmentKind::for_trigger(started.trigger), Some(assessment), None)
}

/// One row per entity, keyed `(tenant, kind, id)`.
fn entity_rows(entities: &Entities) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ProjectionError> {
    let mut rows = BTreeMap::new();
    fn add<T: Serialize>(
        rows: &mut BTreeMap<Vec<u8>, Vec<u8>>,
        kind: &str,
        items: &[T],
        id: impl Fn(&T) -> &str,
    ) -> Result<(), ProjectionError> {
        for item in items {
            rows.insert(key(&[kind.as_bytes(), id(item).as_bytes()]), store::encode(item)?);
        }
        Ok(())
    }
    add(&mut rows, "binding", &entities.bindings, |e| &e.id)?;
    add(&mut rows, "classification_rule", &entities.classification_rules, |e| &e.id)?;
    add(&mut rows, "credential", &entities.credentials, |e| &e.id)?;
    add(&mut rows, "destination", &entities.destinations, |e| &e.id)?;
    add(&mut rows, "domain", &entities.domains, |e| &e.id)?;
    add(&mut rows, "evidence", &entities.evidence, |e| &e.id)?;
    add(&mut rows, "grant", &entities.grants, |e| &e.id)?;
    add(&mut rows, "identity", &entities.identities, |e| &e.id)?;
    add(&mut rows, "owner", &entities.owners, |e| &e.id)?;
    add(&mut rows, "workload", &entities.workloads, |e| &e.id)?;
    Ok(rows)
}

/// Writes what changed between the stored rows under `row_prefix` and `wanted` (keys relative
/// to the prefix): rows that differ are written, rows no longer wanted are removed.
fn sync_rows(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    row_prefix: &[u8],
    wanted: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<(), ProjectionError> {
    let existing: BTreeMap<Vec<u8>, Vec<u8>> =
        scan_raw(table, row_prefix)?.into_iter().map(|(k, v)| (k[row_prefix.len()..].to_vec(), v)).collect();
    let full = |rel: &[u8]| [row_prefix, rel].concat();
    for rel in existing.keys() {
        if !wanted.contains_key(rel) {
            table.remove(full(rel).as_slice())?;
        }
    }
    for (rel, value) in wanted {
        if existing.get(rel) != Some(value) {
            table.insert(full(rel).as_slice(), value.as_slice())?;
        }
    }
    Ok(())
}

fn write_entities(t: &mut Tables<'_>, tenant: &TenantId, entities: &Entities) -> Result<(), ProjectionError> {
    let rows = entity_rows(entities)?;
    sync_rows(&mut t.entities, &t_prefix(tenant, &[]), &rows)?;
    Ok(())
}

fn write_paths(t: &mut Tables<'_>, tenant: &TenantId, paths: &[AuthorityPath]) -> Result<(), ProjectionError> {
    let mut rows = BTreeMap::new();
    let mut index = BTreeMap::new();
    for path in paths {
        rows.insert(path.path_id.as_bytes().to_vec(), store::encode(path)?);
        index.insert(key(&[path.workload.id.as_bytes(), path.path_id.as_bytes()]), Vec::new());
    }
    sync_rows(&mut t.paths, &t_prefix(tenant, &[]), &rows)?;
    sync_rows(&mut t.paths_by_workload, &t_prefix(tenant, &[]), &index)?;
    Ok(())
}

fn update_findings(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    observed_at: Timestamp,
    entities: &Entities,
    paths: &[AuthorityPath],
) -> Result<FindingMovement, ProjectionError> {
    let current = findings::evaluate(entities, paths, observed_at);
    let existing: BTreeMap<String, FindingRecord> =
        scan::<FindingRecord>(&t.findings, "findings", &t_prefix(tenant, &[]))?
            .into_iter()
            .map(|r| (r.finding.finding_id.clone(), r))
            .collect();
    let mut movement = FindingMovement::default();
    let mut seen = BTreeSet::new();
    for finding in current {
        seen.insert(finding.finding_id.clone());
        let id = finding.finding_id.clone();
        let record = match existing.get(&id) {
            Some(old) if old.status == FindingStatus::Open => FindingRecord { finding, ..old.clone() },
            _ => {
                movement.opened.push(id.clone());
                FindingRecord {
                    finding,
                    status: FindingStatus::Open,
                    opened_seq: seq,
                    opened_at: observed_at,
                    resolved_seq: None,
                    resolved_at: None,
                    acknowledgement: None,
                }
            }
        };
        if existing.get(&id) != Some(&record) {
            put(&mut t.findings, &t_key(tenant, &[id.as_bytes()]), &record)?;
        }
    }
    for (id, old) in &existing {
        if old.status == FindingStatus::Open && !seen.contains(id) {
            movement.resolved.push(id.clone());
            let record = FindingRecord {
                status: FindingStatus::Resolved,
                resolved_seq: Some(seq),
                resolved_at: Some(observed_at),
                ..old.clone()
            };
            put(&mut t.findings, &t_key(tenant, &[id.as_bytes()]), &record)?;
        }
    }
    movement.open = seen.len() as u64;
    Ok(movement)
}

/// Compares every baselined scope of the tenant with its baseline.
fn assess_scopes(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    trigger: ScanTrigger,
    entities: &Entities,
    paths: &[AuthorityPath],
) -> Result<Vec<ScopeAssessment>, ProjectionError> {
    let heads: Vec<BaselineHead> = scan(&t.baselines, "baselines", &t_prefix(tenant, &[]))?;
    let mut out = Vec::new();
    for head in heads {
        let scope_key = head.scope.key();
        let version_key = t_key(tenant, &[scope_key.as_bytes(), &head.version.to_be_bytes()]);
        let Some(baseline) = get::<Baseline>(&t.baseline_versions, "baseline_versions", &version_key)? else {
            continue;
        };
        let in_scope: BTreeSet<&str> =
            entities.workloads.iter().filter(|w| head.scope.matches(w)).map(|w| w.id.as_str()).collect();
        let scope_paths: Vec<AuthorityPath> =
            paths.iter().filter(|p| in_scope.contains(p.workload.id.as_str())).cloned().collect();
        let entries = delta::compute(&baseline.paths, &scope_paths);
        let flags_key = t_key(tenant, &[scope_key.as_bytes()]);
        let flagged_now: Vec<String> = entries
            .iter()
            .filter(|e| e.flagged)
            .map(|e| e.path_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let verification = match trigger {
            ScanTrigger::Remediation => {
                let before: Vec<String> = get(&t.scope_flags, "scope_flags", &flags_key)?.unwrap_or_default();
                put(&mut t.scope_flags, &flags_key, &flagged_now)?;
                Some(delta::verify(head.version, &entries, &before))
            }
            ScanTrigger::Deployment => {
                put(&mut t.scope_flags, &flags_key, &flagged_now)?;
                None
            }
            ScanTrigger::Manual | ScanTrigger::Scheduled => None,
        };
        out.push(ScopeAssessment {
            scope: head.scope.canonical(),
            baseline_version: head.version,
            posture: PostureSummary::of(&scope_paths),
            delta: entries,
            verification,
        });
    }
    Ok(out)
}

fn approval_recorded(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    approval: &ApprovalRecorded,
) -> Result<(), ProjectionError> {
    let scope_key = approval.scope.key();
    let head_key = t_key(tenant, &[scope_key.as_bytes()]);
    let head: Option<BaselineHead> = get(&t.baselines, "baselines", &head_key)?;
    let expected = head.as_ref().map_or(1, |h| h.version + 1);
    if approval.baseline_version != expected {
        // The command side appends approvals with optimistic concurrency, so this only happens
        // when something else wrote the log; ignoring it is deterministic and loses nothing.
        warn!(%tenant, seq, version = approval.baseline_version, expected, "approval with an unexpected baseline version ignored");
        return Ok(());
    }
    let baseline = Baseline {
        scope: approval.scope.clone(),
        version: approval.baseline_version,
        approver: approval.approver.clone(),
        approved_at: event.meta.occurred_at,
        note: approval.note.clone(),
        acknowledged: approval.acknowledged.clone(),
        open_findings: approval.open_findings.clone(),
        paths: approval.paths.clone(),
        posture_seq: approval.posture_seq,
        approval_seq: seq,
        event_id: event.meta.event_id,
    };
    let version_key = t_key(tenant, &[scope_key.as_bytes(), &approval.baseline_version.to_be_bytes()]);
    put(&mut t.baseline_versions, &version_key, &baseline)?;
    let new_head =
        BaselineHead { scope: approval.scope.clone(), version: approval.baseline_version, approval_seq: seq };
    put(&mut t.baselines, &head_key, &new_head)?;
    t.scope_flags.remove(head_key.as_slice())?;

    for ack in &approval.acknowledged {
        let finding_key = t_key(tenant, &[ack.finding_id.as_bytes()]);
        if let Some(mut record) = get::<FindingRecord>(&t.findings, "findings", &finding_key)? {
            record.acknowledgement =
                Some(FindingAck { by: approval.approver.clone(), due: ack.due, at: event.meta.occurred_at });
            put(&mut t.findings, &finding_key, &record)?;
        }
    }

    let assessment = ApprovalAssessment {
        scope: approval.scope.canonical(),
        baseline_version: approval.baseline_version,
        approver: approval.approver.clone(),
        approved_at: event.meta.occurred_at,
        note: approval.note.clone(),
        acknowledged: approval.acknowledged.clone(),
        open_findings: approval.open_findings.clone(),
        posture: PostureSummary::of(&approval.paths),
        paths: approval.paths.clone(),
    };
    store_assessment(t, tenant, seq, event, AssessmentKind::Approval, None, Some(assessment))
}

fn store_assessment(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    kind: AssessmentKind,
    scan: Option<ScanAssessment>,
    approval: Option<ApprovalAssessment>,
) -> Result<(), ProjectionError> {
    let cursor_key = t_key(tenant, &[]);
    let previous: u64 = get(&t.assessment_cursor, "assessment_cursor", &cursor_key)?.unwrap_or(0);
    let assessment = Assessment {
        kind,
        tenant: tenant.clone(),
        assessed_event: event.meta.event_id,
        assessed_seq: seq,
        log_from: previous + 1,
        occurred_at: event.meta.occurred_at,
        scan,
        approval,
    };
    put(&mut t.assessments, &t_key(tenant, &[&seq.to_be_bytes()]), &assessment)?;
    put(&mut t.assessment_cursor, &cursor_key, &seq)
}

fn key_registered(t: &mut Tables<'_>, tenant: &TenantId, registered: &KeyRegistered) -> Result<(), ProjectionError> {
    put(&mut t.keys, &t_key(tenant, &[registered.key_id.as_bytes()]), registered)
}

fn pack_sealed(t: &mut Tables<'_>, tenant: &TenantId, seq: u64, sealed: &PackSealed) -> Result<(), ProjectionError> {
    let head_key = t_key(tenant, &[]);
    let head: Option<PackHead> = get(&t.pack_heads, "pack_heads", &head_key)?;
    let expected = head.as_ref().map_or(1, |h| h.index + 1);
    let links = sealed.previous_digest.as_deref() == head.as_ref().map(|h| h.digest.as_str());
    if sealed.index != expected || !links {
        // Signers append with optimistic concurrency on the pack subject, so only a foreign
        // writer produces this; such a pack is not part of the chain.
        warn!(%tenant, seq, index = sealed.index, expected, "pack that does not extend the chain ignored");
        return Ok(());
    }
    put(&mut t.packs, &t_key(tenant, &[&sealed.index.to_be_bytes()]), sealed)?;
    let new_head = PackHead {
        index: sealed.index,
        pack_id: sealed.pack_id.clone(),
        digest: sealed.digest.clone(),
        assessed_seq: sealed.assessed_seq,
        seq,
    };
    put(&mut t.pack_heads, &head_key, &new_head)
}
