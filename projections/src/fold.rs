//! The fold: how each event changes the views. Pure in the sense that matters: the same events
//! in the same order give the same rows, byte for byte; no clock, no randomness, no IO but the
//! views' own write transaction.

use std::collections::BTreeSet;

use sv0_domain::TenantId;
use sv0_domain::assessment::{ApprovalAssessment, AssessmentKind, PostureSummary};
use sv0_domain::events::{
    ApprovalRecorded, Event, EventFragment, EventPayload, KeyRegistered, KeyRotated, PackSealed, ScanChunk,
    ScanStarted, TokenIssued, TokenRevoked,
};
use sv0_log::Record;
use tracing::warn;

use crate::assess::{settle_delta_findings, store_assessment};
use crate::error::ProjectionError;
use crate::records::{Baseline, BaselineHead, FindingAck, KeyRecord, PackHead, TenantState, TokenRecord};
use crate::scan;
use crate::store::{self, ScanFold, Tables, get, put, scan_raw, t_key, t_prefix};

/// Whether an event may stand on the subject it was appended on: its tenant's, and the one its
/// type belongs to (scans on `<tenant>.scan`, tokens on `<tenant>.token`, packs and keys on
/// `<tenant>.pack`, ...). The fold trusts the subject, which the log's permissions guard (see
/// `ops/nats/`), not the payload, which whoever appends writes.
pub(crate) fn subject_allows(subject: &str, tenant: &TenantId, payload: &EventPayload) -> bool {
    let Some(rest) = subject.strip_prefix(tenant.as_str()).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    match payload {
        EventPayload::ScanStarted(_)
        | EventPayload::ScanChunk(_)
        | EventPayload::ScanCompleted(_)
        | EventPayload::ScanQuarantined(_)
        | EventPayload::ScanReleased(_) => rest == "scan",
        EventPayload::ApprovalRecorded(_) => rest.starts_with("approval."),
        EventPayload::KeyRegistered(_) | EventPayload::KeyRotated(_) | EventPayload::PackSealed(_) => {
            rest == "pack" || rest == "key"
        }
        EventPayload::PolicySet(_) | EventPayload::PolicyApproved(_) => rest == "policy",
        EventPayload::TokenIssued(_) | EventPayload::TokenRevoked(_) => rest == "token",
        EventPayload::FindingsAcknowledged(_) => rest == "finding",
        EventPayload::CheckpointTimestamped(_) => rest == "timestamp",
        // Checked when the pieces make the whole event.
        EventPayload::Fragment(_) => true,
    }
}

/// Applies one event.
pub(crate) fn apply(t: &mut Tables<'_>, record: &Record, event: &Event) -> Result<(), ProjectionError> {
    let tenant = &event.meta.tenant_id;
    let seq = record.seq;
    if !subject_allows(&record.subject, tenant, &event.payload) {
        warn!(
            seq,
            subject = %record.subject,
            %tenant,
            event_type = event.payload.event_type(),
            "an event on a subject it does not belong to is ignored"
        );
        return Ok(());
    }
    match &event.payload {
        EventPayload::ScanStarted(started) => scan_started(t, tenant, started),
        EventPayload::ScanChunk(chunk) => scan_chunk(t, tenant, chunk),
        EventPayload::ScanCompleted(completed) => scan::scan_completed(t, tenant, seq, event, completed),
        EventPayload::ScanQuarantined(quarantined) => scan::scan_quarantined(t, tenant, seq, quarantined),
        EventPayload::ScanReleased(released) => scan::scan_released(t, tenant, seq, event, released),
        EventPayload::PolicySet(set) => scan::policy_set(t, tenant, seq, event, &set.policy),
        EventPayload::PolicyApproved(approved) => scan::policy_approved(t, tenant, event, approved),
        EventPayload::ApprovalRecorded(approval) => approval_recorded(t, tenant, seq, event, approval),
        EventPayload::KeyRegistered(registered) => key_registered(t, tenant, seq, registered),
        EventPayload::KeyRotated(rotated) => key_rotated(t, tenant, seq, rotated),
        EventPayload::TokenIssued(issued) => token_issued(t, tenant, seq, event, issued),
        EventPayload::TokenRevoked(revoked) => token_revoked(t, tenant, seq, event, revoked),
        EventPayload::FindingsAcknowledged(acked) => {
            acknowledge(t, tenant, seq, &acked.acknowledged, &acked.by, event.meta.occurred_at)
        }
        EventPayload::PackSealed(sealed) => pack_sealed(t, tenant, seq, sealed),
        // Tokens are evidence read from the log itself (export, verification); no view needs them.
        EventPayload::CheckpointTimestamped(_) => Ok(()),
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
    // A piece no signer or importer writes (whoever else can append did) is left out, never a
    // reason to stop folding every tenant.
    let ignored = |reason: String| {
        warn!(seq = record.seq, %tenant, %reason, "event.fragment ignored");
        Ok(())
    };
    if fragment.index >= fragment.count || fragment.count > sv0_domain::events::MAX_FRAGMENTS {
        return ignored(format!(
            "piece {} of {} of event {of} (at most {} pieces)",
            fragment.index,
            fragment.count,
            sv0_domain::events::MAX_FRAGMENTS
        ));
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
    let whole = match sv0_codec::decode_event(&bytes) {
        Ok(whole) => whole,
        Err(e) => return ignored(format!("the pieces of {of} do not decode: {e}")),
    };
    if whole.meta.event_id != fragment.of
        || &whole.meta.tenant_id != tenant
        || matches!(whole.payload, EventPayload::Fragment(_))
    {
        return ignored(format!("the pieces of {of} do not make that event"));
    }
    apply(t, record, &whole)
}

fn scan_started(t: &mut Tables<'_>, tenant: &TenantId, started: &ScanStarted) -> Result<(), ProjectionError> {
    put(&mut t.scans_pending, &t_key(tenant, &[started.scan_id.as_bytes()]), started)
}

/// Stages a chunk until its scan completes, packed: a scan's chunks are written once and
/// removed when it is applied, and the pages they held are left free in the views, so they
/// take a tenth of the room their canonical CBOR would (a 1M-path scan: 433 MB).
fn scan_chunk(t: &mut Tables<'_>, tenant: &TenantId, chunk: &ScanChunk) -> Result<(), ProjectionError> {
    let index = chunk.index.to_be_bytes();
    let row = store::pack(&store::encode(&chunk.entities)?);
    t.scan_chunks.insert(t_key(tenant, &[chunk.scan_id.as_bytes(), &index]).as_slice(), row.as_slice())?;
    Ok(())
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
        posture_digest: approval.posture_digest.clone(),
        intent: approval.intent.clone(),
        plan_digest: approval.plan_digest.clone(),
    };
    let version_key = t_key(tenant, &[scope_key.as_bytes(), &approval.baseline_version.to_be_bytes()]);
    store::put_big(&mut t.baseline_versions, &version_key, &baseline)?;
    let new_head = BaselineHead {
        scope: approval.scope.clone(),
        version: approval.baseline_version,
        approval_seq: seq,
        drifted: None,
    };
    put(&mut t.baselines, &head_key, &new_head)?;
    t.scope_flags.remove(head_key.as_slice())?;
    // The approval takes the posture as it is: what nobody had declared is now approved.
    if let Some(state) = get::<TenantState>(&t.tenants, "tenants", &t_key(tenant, &[]))? {
        let now = event.meta.occurred_at;
        let mut fold = ScanFold::at(tenant, seq, now, state);
        settle_delta_findings(t, &mut fold, &scope_key, Vec::new())?;
        fold.store_state(t)?;
    }

    acknowledge(t, tenant, seq, &approval.acknowledged, &approval.approver, event.meta.occurred_at)?;

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
        posture_digest: approval.posture_digest.clone(),
        posture_seq: approval.posture_seq,
        intent: approval.intent.clone(),
        plan_digest: approval.plan_digest.clone(),
    };
    store_assessment(t, tenant, seq, event, AssessmentKind::Approval, None, Some(assessment))
}

fn key_registered(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    registered: &KeyRegistered,
) -> Result<(), ProjectionError> {
    let key = t_key(tenant, &[registered.key_id.as_bytes()]);
    if get::<KeyRecord>(&t.keys, "keys", &key)?.is_some() {
        // Registered again (a signer restarted before it saw its first registration): the
        // first registration stands.
        return Ok(());
    }
    let record = KeyRecord {
        key_id: registered.key_id.clone(),
        algorithm: registered.algorithm.clone(),
        public_key: registered.public_key.clone(),
        valid_from: registered.valid_from.unwrap_or(1),
        valid_to: None,
        replaced_by: None,
        rotation_reason: None,
        registered_seq: seq,
        retired_seq: None,
    };
    put(&mut t.keys, &key, &record)
}

/// Records acknowledgements on the tenant's findings (an unknown id changes nothing), and
/// stamps the workloads they are about: their scopes' assessments are decided again.
fn acknowledge(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    acknowledged: &[sv0_domain::events::Acknowledgement],
    by: &str,
    at: sv0_domain::Timestamp,
) -> Result<(), ProjectionError> {
    let mut touched = BTreeSet::new();
    for ack in acknowledged {
        let acknowledgement = FindingAck { by: by.to_string(), due: ack.due, at };
        touched.extend(crate::findingstore::update(
            &mut t.findings,
            &mut t.finding_groups,
            &t.finding_locator,
            tenant,
            &ack.finding_id,
            |record| record.acknowledgement = Some(acknowledgement),
        )?);
    }
    crate::assess::stamp(t, tenant, seq, &touched)
}

/// A token is recorded under its id; an id already taken (by any tenant) keeps its first record.
fn token_issued(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    issued: &TokenIssued,
) -> Result<(), ProjectionError> {
    let key = issued.token_id.as_bytes();
    if get::<TokenRecord>(&t.tokens, "tokens", key)?.is_some() {
        warn!(%tenant, seq, token_id = %issued.token_id, "a second token with a taken id ignored");
        return Ok(());
    }
    let record = TokenRecord {
        token_id: issued.token_id.clone(),
        tenant: tenant.clone(),
        name: issued.name.clone(),
        principal: issued.principal.clone(),
        roles: issued.roles.clone(),
        secret_sha256: issued.secret_sha256.clone(),
        issued_by: event.meta.actor.clone(),
        issued_at: event.meta.occurred_at,
        issued_seq: seq,
        revoked_at: None,
        revoked_by: None,
        expires_at: issued.expires_at,
    };
    put(&mut t.tokens, key, &record)
}

/// A token of the event's tenant stops authenticating; another tenant's token is untouched.
fn token_revoked(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    event: &Event,
    revoked: &TokenRevoked,
) -> Result<(), ProjectionError> {
    let key = revoked.token_id.as_bytes();
    match get::<TokenRecord>(&t.tokens, "tokens", key)? {
        Some(mut record) if record.tenant == *tenant && record.revoked_at.is_none() => {
            record.revoked_at = Some(event.meta.occurred_at);
            record.revoked_by = Some(event.meta.actor.clone());
            put(&mut t.tokens, key, &record)
        }
        _ => {
            warn!(%tenant, seq, token_id = %revoked.token_id, "revocation of an unknown token ignored");
            Ok(())
        }
    }
}

/// The retired key's range ends just before the new key's; the new key is registered.
fn key_rotated(t: &mut Tables<'_>, tenant: &TenantId, seq: u64, rotated: &KeyRotated) -> Result<(), ProjectionError> {
    let retired_key = t_key(tenant, &[rotated.retired_key_id.as_bytes()]);
    if let Some(mut retired) = get::<KeyRecord>(&t.keys, "keys", &retired_key)?
        && retired.current()
    {
        retired.valid_to = Some(rotated.valid_from.saturating_sub(1));
        retired.replaced_by = Some(rotated.key_id.clone());
        retired.rotation_reason = Some(rotated.reason.clone());
        retired.retired_seq = Some(seq);
        put(&mut t.keys, &retired_key, &retired)?;
    }
    let registration = KeyRegistered {
        key_id: rotated.key_id.clone(),
        algorithm: rotated.algorithm.clone(),
        public_key: rotated.public_key.clone(),
        valid_from: Some(rotated.valid_from),
    };
    key_registered(t, tenant, seq, &registration)
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
    // Adopted only when a key registered for this chain, and valid at this index, signed it.
    let key: Option<KeyRecord> = get(&t.keys, "keys", &t_key(tenant, &[sealed.key_id.as_bytes()]))?;
    let refused = match &key {
        None => Some("its key is not registered on this chain".to_string()),
        Some(k) if sealed.index < k.valid_from || k.valid_to.is_some_and(|to| sealed.index > to) => {
            Some(format!("its key is valid for packs {}..{:?}", k.valid_from, k.valid_to))
        }
        Some(k) => sv0_signer::verify::verify_sealed(sealed, &k.public_key).err(),
    };
    if let Some(why) = refused {
        warn!(%tenant, seq, index = sealed.index, %why, "pack that does not verify ignored");
        return Ok(());
    }
    store::put_big(&mut t.packs, &t_key(tenant, &[&sealed.index.to_be_bytes()]), sealed)?;
    let new_head = PackHead {
        index: sealed.index,
        pack_id: sealed.pack_id.clone(),
        digest: sealed.digest.clone(),
        assessed_seq: sealed.assessed_seq,
        seq,
    };
    put(&mut t.pack_heads, &head_key, &new_head)
}
