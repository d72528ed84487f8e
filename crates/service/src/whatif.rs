//! What-if: a plan's predicted delta against a scope's baseline, before the deployment runs.
//! Nothing is appended to the log and no view is written: the plan is laid over the views in a
//! read transaction (`Views::whatif`).

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sv0_connectors::plan::{self, Change, PlanContext, Skipped};
use sv0_domain::delta::{self, DeltaEntry};
use sv0_domain::disposition::Disposition;
use sv0_domain::findings::Finding;
use sv0_domain::intent::IntentItem;
use sv0_domain::model::Destination;
use sv0_domain::scope::Scope;
use sv0_domain::{InvalidInput, TenantId};
use sv0_log::EventLog;
use sv0_projections::{FindingStatus, Views};

use crate::error::ServiceError;
use crate::service::Queries;

/// One predicted change, with the plan resources that cause it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PredictedEntry {
    /// The delta entry.
    #[serde(flatten)]
    pub entry: DeltaEntry,
    /// The plan addresses (Terraform) or resource ids (ARM) behind it.
    pub caused_by: Vec<String>,
}

/// A what-if of one plan on one scope.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WhatIfReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The scope.
    pub scope: Scope,
    /// `terraform <format_version>` or `arm what-if`.
    pub plan_format: String,
    /// `sha256:<hex>` of the plan file's bytes.
    pub plan_digest: String,
    /// The plan's changes SV0 models.
    pub changes: Vec<Change>,
    /// Its changed resources SV0 does not model, with why.
    pub skipped: Vec<Skipped>,
    /// Resources the plan leaves unchanged.
    pub unchanged: usize,
    /// The baseline the prediction is against (`None`: the scope was never approved, and the
    /// prediction is against its paths now).
    pub baseline_version: Option<u32>,
    /// The predicted delta: against the baseline, so drift already there is listed too.
    pub entries: Vec<PredictedEntry>,
    /// Findings the plan would open in the scope.
    pub findings_opened: Vec<Finding>,
    /// What the gates would decide after the plan.
    pub disposition: Disposition,
    /// The scope's paths now and after the plan.
    pub paths_before: usize,
    /// After.
    pub paths_after: usize,
    /// Workloads whose paths the plan reaches (recomputed).
    pub workloads_recomputed: usize,
    /// The log position the prediction stands on.
    pub log_position: u64,
}

/// The tenant as a plan prediction reads it.
struct ViewsContext<'a> {
    views: &'a Views,
    tenant: &'a TenantId,
}

impl PlanContext for ViewsContext<'_> {
    fn destinations_below(&self, arm_id: &str) -> Vec<Destination> {
        self.views.destinations_below(self.tenant, arm_id).unwrap_or_default()
    }
    fn destination(&self, id: &str) -> Option<Destination> {
        if id.starts_with('/') {
            let lower = id.trim_end_matches('/').to_ascii_lowercase();
            return self
                .views
                .destinations_below(self.tenant, &lower)
                .ok()?
                .into_iter()
                .find(|d| d.id.to_ascii_lowercase() == lower);
        }
        self.views.entity(self.tenant, sv0_domain::snapshot::EntityList::Destinations, id).ok().flatten()
    }
    fn workloads_below(&self, prefix: &str) -> Vec<String> {
        self.views
            .entity_ids_with_prefix(self.tenant, sv0_domain::snapshot::EntityList::Workloads, prefix, usize::MAX)
            .unwrap_or_default()
    }
    fn has_identity(&self, id: &str) -> bool {
        self.views
            .entity::<sv0_domain::model::Identity>(self.tenant, sv0_domain::snapshot::EntityList::Identities, id)
            .ok()
            .flatten()
            .is_some()
    }
}

/// The additions a plan causes, as the intent `sv0 approve --plan` declares: one item per
/// predicted new or widened path the plan is behind (drift already in the scope is not the
/// plan's, and is not declared), with the plan address and, for an identity the plan creates,
/// its name (the deployed identity is recognised by it).
pub fn planned_intent(report: &WhatIfReport) -> Vec<IntentItem> {
    use sv0_domain::delta::DeltaKind;
    let mut out: Vec<IntentItem> = Vec::new();
    for predicted in &report.entries {
        let e = &predicted.entry;
        let addition = matches!(
            e.kind,
            DeltaKind::NewPath
                | DeltaKind::NewSensitivePath
                | DeltaKind::PermissionsExpanded
                | DeltaKind::NewIdentity
                | DeltaKind::NewEgressBoundary
        );
        if !addition || predicted.caused_by.is_empty() {
            continue;
        }
        let permissions =
            if e.added_permissions.is_empty() { e.permissions.clone() } else { e.added_permissions.clone() };
        let planned = e.identity.id.starts_with(sv0_domain::intent::PLANNED);
        let item = IntentItem {
            workload: Some(e.workload.id.clone()),
            identity: Some(e.identity.id.clone()),
            destination: Some(e.destination.id.clone()),
            permissions,
            note: Some(format!("planned by {}", predicted.caused_by.join(", "))),
            identity_name: planned.then(|| e.identity.name.clone()),
            planned_by: predicted.caused_by.first().cloned(),
        };
        match out
            .iter_mut()
            .find(|i| i.workload == item.workload && i.identity == item.identity && i.destination == item.destination)
        {
            Some(known) => {
                known.permissions.extend(item.permissions);
                known.permissions.sort();
                known.permissions.dedup();
            }
            None => out.push(item),
        }
    }
    out
}

/// `sha256:<hex>` of bytes.
pub fn plan_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl<L: EventLog> Queries<L> {
    /// Predicts what `plan_bytes` (a Terraform JSON plan or an ARM what-if result) would do to
    /// `scope`: the paths it creates or removes, against the scope's baseline, with the plan
    /// resource behind each, the findings it would open and the disposition the gates would
    /// give. Appends nothing.
    pub fn whatif(&self, tenant: &TenantId, scope: &Scope, plan_bytes: &[u8]) -> Result<WhatIfReport, ServiceError> {
        let plan = plan::read(plan_bytes).map_err(|e| ServiceError::from(InvalidInput::new(e.to_string())))?;
        let log_position = self.views.checkpoint()?;
        let prediction = plan::predict(&plan, &ViewsContext { views: &self.views, tenant });
        let predicted = self.views.whatif(tenant, scope, &prediction.overlay)?;
        let findings = self.judged_findings(tenant, scope)?;
        let baseline = self.views.baseline(tenant, scope, None)?;
        let entries = match &baseline {
            Some(b) => b.delta(&predicted.after, &findings),
            None => delta::compute(&predicted.before, &predicted.after, None),
        };
        let entries: Vec<PredictedEntry> = entries
            .into_iter()
            .map(|entry| {
                let mut caused_by = BTreeSet::new();
                // A path the plan creates or changes is in `after`; one it removes only in `before`.
                let path = predicted
                    .after
                    .iter()
                    .find(|p| p.path_id == entry.path_id)
                    .or_else(|| predicted.before.iter().find(|p| p.path_id == entry.path_id));
                if let Some(path) = path {
                    for grant in &path.grants {
                        let lower = grant.id.to_ascii_lowercase();
                        let base = lower.split('#').next().unwrap_or(&lower);
                        caused_by.extend(prediction.causes.get(&grant.id).cloned());
                        caused_by.extend(prediction.causes.get(base).cloned());
                    }
                    caused_by.extend(prediction.causes.get(&path.identity.id).cloned());
                    caused_by.extend(prediction.causes.get(&path.destination.id.to_ascii_lowercase()).cloned());
                }
                PredictedEntry { entry, caused_by: caused_by.into_iter().collect() }
            })
            .collect();
        let open: BTreeSet<&str> = findings
            .iter()
            .filter(|r| r.status == FindingStatus::Open)
            .map(|r| r.finding.finding_id.as_str())
            .collect();
        let mut findings_opened = Vec::new();
        for workload in &predicted.recomputed {
            let of: Vec<_> = predicted.after.iter().filter(|p| &p.workload.id == workload).cloned().collect();
            findings_opened.extend(
                sv0_domain::findings::workload_findings(&of)
                    .into_iter()
                    .filter(|f| !open.contains(f.finding_id.as_str())),
            );
        }
        // Credentials the plan creates are judged as a scan would judge them then.
        let now = self.views.tenant_state(tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
        for credential in &prediction.overlay.upserts.credentials {
            let name = self
                .views
                .entity::<sv0_domain::model::Identity>(
                    tenant,
                    sv0_domain::snapshot::EntityList::Identities,
                    &credential.identity,
                )?
                .map_or_else(|| credential.identity.clone(), |i| i.name);
            let paths: Vec<sv0_domain::findings::PathOf> = predicted
                .after
                .iter()
                .filter(|p| p.identity.id == credential.identity)
                .map(|p| sv0_domain::findings::PathOf { path_id: p.path_id.clone(), workload: p.workload.id.clone() })
                .collect();
            findings_opened.extend(
                sv0_domain::findings::credential_findings(credential, &name, &paths, now)
                    .into_iter()
                    .filter(|f| !open.contains(f.finding_id.as_str())),
            );
        }
        findings_opened.sort_by(|a, b| a.finding_id.cmp(&b.finding_id));
        let plain: Vec<DeltaEntry> = entries.iter().map(|e| e.entry.clone()).collect();
        let builtin = sv0_projections::rego::builtin(&plain, &predicted.after, None);
        let rego = self.views.rego_state(tenant)?;
        let canonical = scope.canonical();
        let disposition = sv0_projections::rego::disposition(
            rego.in_force.as_ref(),
            &sv0_projections::rego::DispositionInput {
                tenant,
                scope: &canonical,
                baseline_version: baseline.as_ref().map_or(0, |b| b.version),
                paths: &predicted.after,
                findings: &findings,
                delta: &plain,
                verification: None,
                builtin: &builtin,
            },
        );
        Ok(WhatIfReport {
            tenant: tenant.clone(),
            scope: scope.clone(),
            plan_format: plan.format,
            plan_digest: plan_digest(plan_bytes),
            changes: plan.changes,
            skipped: plan.skipped,
            unchanged: plan.unchanged,
            baseline_version: baseline.map(|b| b.version),
            entries,
            findings_opened,
            disposition,
            paths_before: predicted.before.len(),
            paths_after: predicted.after.len(),
            workloads_recomputed: predicted.recomputed.len(),
            log_position,
        })
    }
}
