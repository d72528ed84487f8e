//! Assessments: after a scan or an approval, each baselined scope's posture is judged against
//! its baseline (`assess_scopes`, which reuses a scope's last result while nothing it was
//! computed from changed: `ScopeMemo`, `stamp`) and the assessment stored for sealing
//! (`store_assessment`); what a scope selects (`scope_workloads`, `scope_findings`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sv0_domain::TenantId;
use sv0_domain::assessment::{
    ApprovalAssessment, Assessment, AssessmentKind, PostureSummary, ScanAssessment, ScopeAssessment,
};
use sv0_domain::delta::{self, DeltaEntry, Verification};
use sv0_domain::disposition::Disposition;
use sv0_domain::events::Event;
use sv0_domain::findings::Finding;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::policy::{Policy, RegoState};
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{EntityList, ScanTrigger};

use crate::error::ProjectionError;
use crate::findingstore;
use crate::graph::{entity_key, index_lookup};
use crate::pathstore;
use crate::records::{Baseline, BaselineHead, Drift, FindingRecord, FindingStatus};
use crate::store::{self, ScanFold, Tables, entity_ids, get, put, scan, scan_raw, t_key, t_prefix};

/// Whether a scope's assessment is taken from its memo when nothing it was computed from has
/// changed (the default). Tests turn this off to compute every assessment afresh: memos are
/// written the same way either way, so the views differ only if a memo was stale.
static REUSE_MEMOS: AtomicBool = AtomicBool::new(true);

/// Sets, for the whole process, whether scope assessments are taken from their memos.
pub fn set_scope_memos(reuse: bool) {
    REUSE_MEMOS.store(reuse, Ordering::Relaxed);
}

/// What a scope's last computed assessment was computed from, and what it gave. A later step
/// takes it as it is while what decides it besides paths and findings (the policy, the Rego
/// state, the baseline version and the workloads the scope selects: `inputs`) is the same, and
/// no event after `seq` changed those workloads' paths or findings (`stamp`). So a rescan reads
/// the paths of the scopes its changes reach, not of every baselined scope.
#[derive(Serialize, Deserialize)]
struct ScopeMemo {
    inputs: Vec<u8>,
    seq: u64,
    posture: PostureSummary,
    delta: Vec<DeltaEntry>,
    verification: Option<Verification>,
    disposition: Disposition,
}

/// SHA-256 of what decides every scope's assessment of a tenant besides its paths and
/// findings, as far as `memo_inputs` takes it for one scope.
fn tenant_inputs(policy: &Policy, rego: &RegoState) -> Result<Sha256, ProjectionError> {
    let mut hasher = Sha256::new();
    hasher.update(store::encode(policy)?);
    hasher.update(store::encode(rego)?);
    Ok(hasher)
}

/// `ScopeMemo::inputs` of a scope: the tenant's inputs, the baseline version and the workloads.
fn memo_inputs(tenant: &Sha256, version: u32, workloads: &BTreeSet<String>) -> Vec<u8> {
    let mut hasher = tenant.clone();
    hasher.update(version.to_be_bytes());
    for workload in workloads {
        // Length-prefixed: no two sets hash alike by where their ids break.
        hasher.update((workload.len() as u64).to_be_bytes());
        hasher.update(workload.as_bytes());
    }
    hasher.finalize().to_vec()
}

/// Records that the step at `seq` changed the stored paths or findings of `workloads`.
pub(crate) fn stamp<'w>(
    t: &mut Tables<'_>,
    tenant: &TenantId,
    seq: u64,
    workloads: impl IntoIterator<Item = &'w String>,
) -> Result<(), ProjectionError> {
    for workload in workloads {
        put(&mut t.workload_stamps, &t_key(tenant, &[workload.as_bytes()]), &seq)?;
    }
    Ok(())
}

/// Whether a step after `seq` changed the paths or findings of any of `workloads`.
fn changed_since(
    t: &Tables<'_>,
    tenant: &TenantId,
    workloads: &BTreeSet<String>,
    seq: u64,
) -> Result<bool, ProjectionError> {
    for workload in workloads {
        let stamp: Option<u64> = get(&t.workload_stamps, "workload_stamps", &t_key(tenant, &[workload.as_bytes()]))?;
        if stamp.is_some_and(|stamp| stamp > seq) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A scope's paths (sorted by path id) and its findings other than undeclared additions.
fn scope_contents(
    t: &Tables<'_>,
    tenant: &TenantId,
    workloads: &BTreeSet<String>,
) -> Result<(Vec<AuthorityPath>, Vec<FindingRecord>), ProjectionError> {
    let paths = paths_of(&t.paths, tenant, workloads)?;
    let findings = findings_of(&t.findings_by_workload, &t.findings, &t.finding_groups, tenant, workloads)?
        .into_iter()
        .filter(|r| !sv0_domain::findings::from_delta(&r.finding))
        .collect();
    Ok((paths, findings))
}

/// Compares every baselined scope of the tenant with its baseline, reading the paths and
/// findings only of the scopes whose memo does not stand (`ScopeMemo`).
pub(crate) fn assess_scopes(
    t: &mut Tables<'_>,
    fold: &mut ScanFold<'_>,
    trigger: ScanTrigger,
) -> Result<Vec<ScopeAssessment>, ProjectionError> {
    let (tenant, seq, now) = (fold.tenant, fold.seq, fold.now);
    stamp(t, tenant, seq, &fold.touched)?;
    let heads: Vec<BaselineHead> = scan(&t.baselines, "baselines", &t_prefix(tenant, &[]))?;
    let policy = store::policy(t, tenant)?;
    let rego = store::rego_state(t, tenant)?;
    let decided_by = tenant_inputs(&policy, &rego)?;
    let reuse = REUSE_MEMOS.load(Ordering::Relaxed);
    let mut out = Vec::new();
    for head in heads {
        let scope_key = head.scope.key();
        let version_key = t_key(tenant, &[scope_key.as_bytes(), &head.version.to_be_bytes()]);
        // A baseline holds every path approved: its row is decoded only when the delta is
        // computed.
        let Some(baseline) = t.baseline_versions.get(version_key.as_slice())? else {
            continue;
        };
        let workloads = scope_workloads(&t.entities, &t.entity_index, tenant, &head.scope)?;
        let memo_key = t_key(tenant, &[scope_key.as_bytes()]);
        let inputs = memo_inputs(&decided_by, head.version, &workloads);
        let memo = match get::<ScopeMemo>(&t.scope_memos, "scope_memos", &memo_key)? {
            Some(memo) if memo.inputs == inputs && !changed_since(t, tenant, &workloads, memo.seq)? => Some(memo),
            _ => None,
        };
        let mut contents = None;
        let entries = match memo.as_ref().filter(|_| reuse) {
            Some(memo) => memo.delta.clone(),
            None => {
                let baseline: Baseline = store::decode_big("baseline_versions", baseline.value())?;
                let (paths, findings) = scope_contents(t, tenant, &workloads)?;
                let entries = baseline.delta(&paths, &findings);
                contents = Some((paths, findings));
                entries
            }
        };
        drop(baseline);
        let undeclared = sv0_domain::delta::undeclared_additions(&head.scope.canonical(), head.version, &entries);
        settle_delta_findings(t, fold, &scope_key, undeclared)?;
        let flags_key = t_key(tenant, &[scope_key.as_bytes()]);
        let flagged_now: Vec<String> = entries
            .iter()
            .filter(|e| e.flagged)
            .map(|e| e.path_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let verification = match trigger {
            // The flags of the deployment stay what remediation is measured against (until the
            // next deployment or approval), so a second remediation rescan, and `sv0 delta`
            // after it, still count what was resolved since the deployment.
            ScanTrigger::Remediation => {
                let before: Vec<String> = get(&t.scope_flags, "scope_flags", &flags_key)?.unwrap_or_default();
                Some(delta::verify(head.version, &entries, &before))
            }
            ScanTrigger::PreDeployment | ScanTrigger::Deployment => {
                put(&mut t.scope_flags, &flags_key, &flagged_now)?;
                None
            }
            ScanTrigger::Manual | ScanTrigger::Scheduled => None,
        };
        // The disposition reads the paths too: a memo of another verification does not stand.
        let memo = memo.filter(|memo| memo.verification == verification);
        let (posture, disposition) = match memo.as_ref().filter(|_| reuse) {
            Some(memo) => (memo.posture.clone(), memo.disposition.clone()),
            None => {
                let (paths, findings) = match contents {
                    Some(contents) => contents,
                    None => scope_contents(t, tenant, &workloads)?,
                };
                let builtin = crate::rego::builtin(&entries, &paths, verification.as_ref());
                let input = crate::rego::DispositionInput {
                    tenant,
                    scope: &head.scope.canonical(),
                    baseline_version: head.version,
                    paths: &paths,
                    findings: &findings,
                    delta: &entries,
                    verification: verification.as_ref(),
                    builtin: &builtin,
                };
                (PostureSummary::of(&paths), crate::rego::disposition(rego.in_force.as_ref(), &input))
            }
        };
        // A policy that failed to decide is asked again by the next scan.
        if memo.is_none() && !crate::rego::policy_failed(&disposition) {
            let memo = ScopeMemo {
                inputs,
                seq,
                posture: posture.clone(),
                delta: entries.clone(),
                verification: verification.clone(),
                disposition: disposition.clone(),
            };
            put(&mut t.scope_memos, &memo_key, &memo)?;
        }
        // Approved → drifted when the delta breaks the match on at least the policy's number of
        // paths; back to approved when a later scan (a verified remediation) matches again.
        let breaking = entries
            .iter()
            .filter(|e| delta::breaks_match(e))
            .map(|e| e.path_id.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let drifted = (breaking > 0 && breaking >= u64::from(policy.drift_threshold_paths())).then(|| Drift {
            since_seq: head.drifted.as_ref().map_or(seq, |d| d.since_seq),
            since: head.drifted.as_ref().map_or(now, |d| d.since),
            paths: breaking,
            decision: disposition.decision,
        });
        if drifted != head.drifted {
            let head_key = t_key(tenant, &[scope_key.as_bytes()]);
            put(&mut t.baselines, &head_key, &BaselineHead { drifted, ..head.clone() })?;
        }
        out.push(ScopeAssessment {
            scope: head.scope.canonical(),
            baseline_version: head.version,
            posture,
            delta: entries,
            verification,
            disposition: Some(disposition),
        });
    }
    Ok(out)
}

/// Moves a scope's undeclared-addition findings through their lifecycle: `current` are open
/// now, the scope's others (from its last assessment) are resolved.
pub(crate) fn settle_delta_findings(
    t: &mut Tables<'_>,
    fold: &mut ScanFold<'_>,
    scope_key: &str,
    current: Vec<Finding>,
) -> Result<(), ProjectionError> {
    let (tenant, seq, now) = (fold.tenant, fold.seq, fold.now);
    let list_key = t_key(tenant, &[scope_key.as_bytes()]);
    let before: Vec<String> = get(&t.delta_findings, "delta_findings", &list_key)?.unwrap_or_default();
    let now_open: BTreeSet<String> = current.iter().map(|f| f.finding_id.clone()).collect();
    for finding in current {
        let key = t_key(tenant, &[finding.finding_id.as_bytes()]);
        let existing: Option<FindingRecord> = store::get_compact(&t.findings, "findings", &key)?;
        let next = match existing {
            // Open as it was: nothing to write.
            Some(old) if old.status == FindingStatus::Open && old.finding == finding => continue,
            Some(old) if old.status == FindingStatus::Open => {
                fold.state.open.close(&old.finding);
                fold.state.open.open(&finding);
                FindingRecord { finding, ..old }
            }
            _ => {
                fold.movement.opened.push(finding.finding_id.clone());
                fold.state.open.open(&finding);
                FindingRecord::opened(finding, seq, now)
            }
        };
        for workload in &next.finding.workloads {
            let index = t_key(tenant, &[workload.as_bytes(), next.finding.finding_id.as_bytes()]);
            t.findings_by_workload.insert(index.as_slice(), [].as_slice())?;
        }
        store::put_compact(&mut t.findings, &key, &next)?;
    }
    for id in before.iter().filter(|id| !now_open.contains(*id)) {
        let key = t_key(tenant, &[id.as_bytes()]);
        let Some(old) = store::get_compact::<FindingRecord>(&t.findings, "findings", &key)? else { continue };
        if old.status != FindingStatus::Open {
            continue;
        }
        fold.movement.resolved.push(id.clone());
        fold.state.open.close(&old.finding);
        store::put_compact(&mut t.findings, &key, &old.resolved(seq, now))?;
    }
    if now_open.is_empty() {
        t.delta_findings.remove(list_key.as_slice())?;
    } else {
        put(&mut t.delta_findings, &list_key, &now_open.into_iter().collect::<Vec<_>>())?;
    }
    Ok(())
}

pub(crate) fn store_assessment(
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
    store::put_big(&mut t.assessments, &t_key(tenant, &[&seq.to_be_bytes()]), &assessment)?;
    put(&mut t.assessment_cursor, &cursor_key, &seq)
}

/// The workloads a scope selects, from the entity indexes.
pub(crate) fn scope_workloads(
    entities: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    index: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<BTreeSet<String>, ProjectionError> {
    use sv0_domain::scope::Selector;
    let mut out = BTreeSet::new();
    for selector in scope.selectors() {
        match selector {
            Selector::All => out.extend(entity_ids(entities, tenant, EntityList::Workloads)?),
            Selector::Workload(id) => {
                if entities.get(entity_key(tenant, EntityList::Workloads, id).as_slice())?.is_some() {
                    out.insert(id.clone());
                }
            }
            Selector::Project(name) => {
                out.extend(index_lookup(index, tenant, "workload.project", name)?.into_iter().map(|(id, _)| id));
            }
            Selector::Tag(k, v) => {
                out.extend(
                    index_lookup(index, tenant, "workload.tag", &format!("{k}={v}"))?.into_iter().map(|(id, _)| id),
                );
            }
        }
    }
    Ok(out)
}

/// The findings of a scope's workloads, by finding id.
pub(crate) fn scope_findings(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    entity_index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    by_workload: &impl ReadableTable<&'static [u8], &'static [u8]>,
    findings: &impl ReadableTable<&'static [u8], &'static [u8]>,
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<Vec<FindingRecord>, ProjectionError> {
    findings_of(by_workload, findings, groups, tenant, &scope_workloads(entities, entity_index, tenant, scope)?)
}

/// The findings of `workloads`, by finding id.
fn findings_of(
    by_workload: &impl ReadableTable<&'static [u8], &'static [u8]>,
    findings: &impl ReadableTable<&'static [u8], &'static [u8]>,
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workloads: &BTreeSet<String>,
) -> Result<Vec<FindingRecord>, ProjectionError> {
    let mut ids = BTreeSet::new();
    let mut out = BTreeMap::new();
    for workload in workloads {
        let p = t_prefix(tenant, &[workload.as_bytes()]);
        for (k, _) in scan_raw(by_workload, &p)? {
            ids.insert(k[p.len()..].to_vec());
        }
        out.extend(findingstore::group(groups, tenant, workload)?);
    }
    for id in ids {
        if let Some(record) = store::get_compact::<FindingRecord>(findings, "findings", &t_key(tenant, &[&id]))? {
            out.insert(record.finding.finding_id.clone(), record);
        }
    }
    Ok(out.into_values().collect())
}

/// The paths of `workloads`, sorted by path id.
fn paths_of(
    paths: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workloads: &BTreeSet<String>,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for workload in workloads {
        out.extend(pathstore::of_workload(paths, tenant, workload, None)?);
    }
    out.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    Ok(out)
}
