//! Assessments: after a scan or an approval, each baselined scope's posture is judged against
//! its baseline (`assess_scopes`) and the assessment stored for sealing (`store_assessment`);
//! what a scope selects (`scope_workloads`, `scope_paths`, `scope_findings`).

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;
use sv0_domain::TenantId;
use sv0_domain::assessment::{
    ApprovalAssessment, Assessment, AssessmentKind, PostureSummary, ScanAssessment, ScopeAssessment,
};
use sv0_domain::delta;
use sv0_domain::events::Event;
use sv0_domain::findings::Finding;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{EntityList, ScanTrigger};

use crate::error::ProjectionError;
use crate::findingstore;
use crate::graph::{entity_key, index_lookup};
use crate::pathstore;
use crate::records::{Baseline, BaselineHead, Drift, FindingRecord, FindingStatus};
use crate::store::{self, ScanFold, Tables, entity_ids, get, put, scan, scan_raw, t_key, t_prefix};

/// Compares every baselined scope of the tenant with its baseline.
pub(crate) fn assess_scopes(
    t: &mut Tables<'_>,
    fold: &mut ScanFold<'_>,
    trigger: ScanTrigger,
) -> Result<Vec<ScopeAssessment>, ProjectionError> {
    let (tenant, seq, now) = (fold.tenant, fold.seq, fold.now);
    let heads: Vec<BaselineHead> = scan(&t.baselines, "baselines", &t_prefix(tenant, &[]))?;
    let policy = store::policy(t, tenant)?;
    let rego = store::rego_state(t, tenant)?;
    let mut out = Vec::new();
    for head in heads {
        let scope_key = head.scope.key();
        let version_key = t_key(tenant, &[scope_key.as_bytes(), &head.version.to_be_bytes()]);
        let Some(baseline) = get::<Baseline>(&t.baseline_versions, "baseline_versions", &version_key)? else {
            continue;
        };
        let scope_paths = scope_paths(&t.entities, &t.entity_index, &t.paths, tenant, &head.scope)?;
        let findings = scope_findings(
            &t.entities,
            &t.entity_index,
            &t.findings_by_workload,
            &t.findings,
            &t.finding_groups,
            tenant,
            &head.scope,
        )?
        .into_iter()
        .filter(|r| !sv0_domain::findings::from_delta(&r.finding))
        .collect::<Vec<_>>();
        let entries = baseline.delta(&scope_paths, &findings);
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
        let builtin = crate::rego::builtin(&entries, &scope_paths, verification.as_ref());
        let input = crate::rego::DispositionInput {
            tenant,
            scope: &head.scope.canonical(),
            baseline_version: head.version,
            paths: &scope_paths,
            findings: &findings,
            delta: &entries,
            verification: verification.as_ref(),
            builtin: &builtin,
        };
        let disposition = crate::rego::disposition(rego.in_force.as_ref(), &input);
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
            posture: PostureSummary::of(&scope_paths),
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
    put(&mut t.assessments, &t_key(tenant, &[&seq.to_be_bytes()]), &assessment)?;
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
    let mut ids = BTreeSet::new();
    let mut out = BTreeMap::new();
    for workload in scope_workloads(entities, entity_index, tenant, scope)? {
        let p = t_prefix(tenant, &[workload.as_bytes()]);
        for (k, _) in scan_raw(by_workload, &p)? {
            ids.insert(k[p.len()..].to_vec());
        }
        out.extend(findingstore::group(groups, tenant, &workload)?);
    }
    for id in ids {
        if let Some(record) = store::get_compact::<FindingRecord>(findings, "findings", &t_key(tenant, &[&id]))? {
            out.insert(record.finding.finding_id.clone(), record);
        }
    }
    Ok(out.into_values().collect())
}

/// The paths of a scope's workloads, sorted by path id.
pub(crate) fn scope_paths(
    entities: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    entity_index: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    paths: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<Vec<AuthorityPath>, ProjectionError> {
    let mut out = Vec::new();
    for workload in scope_workloads(entities, entity_index, tenant, scope)? {
        out.extend(pathstore::of_workload(paths, tenant, &workload, None)?);
    }
    out.sort_by(|a, b| a.path_id.cmp(&b.path_id));
    Ok(out)
}
