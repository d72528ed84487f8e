//! Approving a scope: planning an approval (every check, nothing recorded), recording it
//! bound to the posture reviewed, and the posture digest itself.

use std::collections::BTreeSet;

use sv0_domain::events::{Acknowledgement, ApprovalRecorded, Event, EventMeta, EventPayload, derived_id};
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{AppendError, EventLog, Expected, Seq};
use sv0_projections::{Baseline, FindingStatus, ScanRecord, Views};
use tracing::info;

use crate::error::ServiceError;
use crate::import::log_records;

use super::*;

/// What an approval recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalReport {
    /// The new baseline.
    pub baseline: Baseline,
    /// Its log position.
    pub seq: Seq,
}

/// What an approver reviewed: a posture digest, and the log position it stood at when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// `sha256:...` as a posture read gave it.
    pub digest: String,
    /// The log position of that read.
    pub position: Option<u64>,
}

impl Reviewed {
    /// Parses `sha256:<hex>` or `sha256:<hex>@<position>` (as `sv0 review` prints it).
    pub fn parse(text: &str) -> Result<Reviewed, sv0_domain::InvalidInput> {
        let (digest, position) = match text.trim().split_once('@') {
            Some((d, p)) => (
                d,
                Some(p.parse::<u64>().map_err(|_| {
                    sv0_domain::InvalidInput::new(format!("posture {text:?}: the part after @ is not a log position"))
                })?),
            ),
            None => (text.trim(), None),
        };
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(sv0_domain::InvalidInput::new(format!(
                "posture {text:?} is not a posture digest such as sha256:<64 hex digits> (see `sv0 review --scope ...`)"
            )));
        }
        Ok(Reviewed { digest: digest.to_string(), position })
    }

    /// `parse`, with the log position given apart (a form's or a request's field) taking the
    /// place of one after `@`.
    pub fn parse_at(text: &str, position: Option<u64>) -> Result<Reviewed, sv0_domain::InvalidInput> {
        let reviewed = Reviewed::parse(text)?;
        Ok(Reviewed { position: position.or(reviewed.position), ..reviewed })
    }
}

/// An approval as a person asks for it.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Their notes.
    pub note: String,
    /// Findings accepted with a due date.
    pub acknowledged: Vec<Acknowledgement>,
    /// The additions the deployment declares.
    pub intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// The posture they reviewed; the approval is refused if the posture has changed since.
    pub posture: Option<Reviewed>,
    /// Who approves, as they authenticated: the baseline's approver is its principal.
    pub by: sv0_domain::events::Actor,
    /// The digest of the plan the intent was predicted from.
    pub plan_digest: Option<String>,
    /// Record a new version even when it would lock exactly what the baseline in force locks.
    pub force: bool,
}

impl Approval {
    /// Declares the additions a plan's what-if predicts as intent (next to any declared
    /// already) and records the plan's digest; returns how many were declared.
    pub fn declare_plan(&mut self, report: &crate::whatif::WhatIfReport) -> usize {
        let planned = crate::whatif::planned_intent(report);
        let declared = planned.len();
        self.intent.get_or_insert_with(Vec::new).extend(planned);
        self.plan_digest = Some(report.plan_digest.clone());
        declared
    }
}

/// What an approval would lock (`Service::plan_approval`), checked as the approval itself is.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ApprovalPlan {
    /// The scope (canonical).
    pub scope: String,
    /// The baseline version it would record.
    pub version: u32,
    /// The posture it would lock and the log position it stands at.
    pub posture_digest: String,
    /// The log position.
    pub posture_seq: Seq,
    /// The paths it would lock.
    pub paths: Vec<AuthorityPath>,
    /// Findings acknowledged, with their due dates.
    pub acknowledged: Vec<Acknowledgement>,
    /// Open findings of the scope it would leave unacknowledged.
    pub unacknowledged: Vec<sv0_projections::FindingRecord>,
    /// Additions declared as intended (`None`: no intent).
    pub intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// Ids of every open finding of the scope (what the baseline records as open).
    #[serde(skip)]
    pub open_findings: Vec<String>,
    /// The log position of the approval of the baseline in force, if any: the append expects
    /// it to be the scope's last approval.
    #[serde(skip)]
    pub head_approval_seq: Option<u64>,
}

/// A scope's posture now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    /// The scope.
    pub scope: Scope,
    /// `paths::posture_digest` of the paths and open findings.
    pub digest: String,
    /// The log position the views stand at.
    pub position: u64,
    /// The scope's paths.
    pub paths: Vec<AuthorityPath>,
    /// Ids of its open findings, sorted.
    pub open_findings: Vec<String>,
}

/// The posture of a scope in `views`: its paths, its open findings, their digest and the log
/// position the views stand at.
pub fn posture_of(views: &Views, tenant: &TenantId, scope: &Scope) -> Result<Posture, ServiceError> {
    let position = views.checkpoint()?;
    let paths = views.paths(tenant, Some(scope))?;
    let open_findings: Vec<String> = views
        .findings(tenant, Some(scope))?
        .into_iter()
        .filter(|r| r.status == FindingStatus::Open)
        .map(|r| r.finding.finding_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let digest = sv0_domain::paths::posture_digest(&paths, open_findings.iter().map(String::as_str));
    Ok(Posture { scope: scope.clone(), digest, position, paths, open_findings })
}

impl<L: EventLog> Queries<L> {
    /// The posture of a scope now: its paths, its open findings, their digest and the log
    /// position they stand at.
    pub fn posture(&self, tenant: &TenantId, scope: &Scope) -> Result<Posture, ServiceError> {
        posture_of(&self.views, tenant, scope)
    }

    /// What changed the tenant's posture after log position `since` (when known), in words
    /// for a refusal: the scans applied since, newest last; without a position, the latest.
    fn changes_since(&self, tenant: &TenantId, since: Option<u64>) -> Result<String, ServiceError> {
        let mut scans: Vec<ScanRecord> =
            self.views.scans(tenant)?.into_iter().filter(|s| s.applied_seq.is_some()).collect();
        scans.sort_by_key(|s| s.applied_seq);
        let described = |s: &ScanRecord| {
            format!(
                "scan {} ({}{}) at log position {}",
                s.scan_id,
                s.trigger.map(|t| t.as_str()).unwrap_or("manual"),
                s.observed_at.map(|t| format!(", observed {}", t.to_rfc3339())).unwrap_or_default(),
                s.applied_seq.unwrap_or_default()
            )
        };
        Ok(match since {
            Some(position) => {
                let after: Vec<String> =
                    scans.iter().filter(|s| s.applied_seq.is_some_and(|a| a > position)).map(described).collect();
                if after.is_empty() {
                    format!("; since log position {position} the tenant's policy or findings changed")
                } else {
                    format!("; applied since log position {position}: {}", after.join(", "))
                }
            }
            None => scans.last().map(|s| format!("; the latest change: {}", described(s))).unwrap_or_default(),
        })
    }
}

impl<L: EventLog> Service<L> {
    /// Records an approval of a scope's current posture by `approver` at `approved_at`.
    pub async fn approve(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        note: &str,
        acknowledged: Vec<Acknowledgement>,
        approver: &str,
        approved_at: Timestamp,
    ) -> Result<ApprovalReport, ServiceError> {
        let request = Approval {
            note: note.to_string(),
            acknowledged,
            intent: None,
            posture: None,
            by: sv0_domain::events::Actor::host(approver),
            plan_digest: None,
            force: false,
        };
        self.approve_with(tenant, scope, request, approved_at).await
    }

    /// Records an approval of a scope's posture as a new baseline version: refused when the
    /// posture is no longer the one the approver reviewed (`request.posture`), with the
    /// additions the deployment declared (`request.intent`).
    pub async fn approve_with(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        request: Approval,
        approved_at: Timestamp,
    ) -> Result<ApprovalReport, ServiceError> {
        let approver = request.by.principal.as_str();
        if self.sealing {
            self.signer()?;
        }
        let plan = self.plan_approval(tenant, scope, &request, approved_at).await?;
        let expected = plan.head_approval_seq.map_or(Expected::NoEvents, Expected::LastSeq);
        let ApprovalPlan { version, posture_digest: digest, posture_seq, paths, acknowledged, open_findings, .. } =
            plan;
        let scope_key = scope.key();
        let event = Event {
            meta: EventMeta {
                event_id: derived_id("sv0.approval.v1", tenant, &[scope_key.as_bytes(), &version.to_be_bytes()]),
                tenant_id: tenant.clone(),
                occurred_at: approved_at,
                actor: request.by.actor.clone(),
                causation_id: None,
                correlation_id: None,
                credential: request.by.credential.clone(),
            },
            payload: EventPayload::ApprovalRecorded(ApprovalRecorded {
                scope: scope.clone(),
                baseline_version: version,
                approver: approver.to_string(),
                note: request.note.clone(),
                acknowledged,
                posture_seq,
                paths,
                open_findings,
                posture_digest: Some(digest),
                intent: request.intent.clone(),
                plan_digest: request.plan_digest.clone(),
            }),
        };
        let subject = format!("{tenant}.approval.{scope_key}");
        let records = log_records(&event, self.log.max_event_size())?;
        let appended = match self.log.append(&subject, expected, records).await {
            Ok(appended) => appended,
            Err(AppendError::Conflict { .. }) => {
                return Err(ServiceError::Conflict(format!(
                    "another approval of scope {} was recorded first. Review the posture again and approve the new baseline",
                    scope.canonical()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if appended.duplicates > 0 {
            return Err(ServiceError::Conflict(format!(
                "baseline v{version} of scope {} was already approved",
                scope.canonical()
            )));
        }
        self.sync_after(appended.last()).await?;
        let baseline = self
            .views
            .baseline(tenant, scope, Some(version))?
            .ok_or_else(|| ServiceError::Conflict("the approval was not applied".to_string()))?;
        info!(%tenant, scope = %scope, version, approver, "baseline approved");
        Ok(ApprovalReport { baseline, seq: appended.last() })
    }

    /// What approving `request` would lock, with every check the approval makes: a note, a
    /// scope with paths, the posture reviewed (when given), acknowledgements of open findings
    /// due no earlier than the day of the approval, and something new to lock (unless
    /// `request.force`). Appends nothing (`approve --dry-run`).
    pub async fn plan_approval(
        &mut self,
        tenant: &TenantId,
        scope: &Scope,
        request: &Approval,
        approved_at: Timestamp,
    ) -> Result<ApprovalPlan, ServiceError> {
        if request.note.trim().is_empty() {
            return Err(ServiceError::Input(sv0_domain::InvalidInput::new(
                "an approval needs a note: what was reviewed, and why it is acceptable",
            )));
        }
        refuse_past_dues(&request.acknowledged, approved_at)?;
        if let Some(intent) = &request.intent {
            sv0_domain::intent::validate(intent)?;
        }
        let posture_seq = self.sync().await?;
        let Posture { paths, open_findings, digest, .. } = self.posture(tenant, scope)?;
        if paths.is_empty() {
            return Err(ServiceError::EmptyScope { tenant: tenant.to_string(), scope: scope.canonical() });
        }
        if let Some(reviewed) = &request.posture
            && reviewed.digest != digest
        {
            return Err(ServiceError::PostureChanged {
                scope: scope.canonical(),
                reviewed: reviewed.digest.clone(),
                current: digest,
                position: posture_seq,
                changes: self.changes_since(tenant, reviewed.position)?,
            });
        }
        let open: BTreeSet<String> = open_findings.into_iter().collect();
        for ack in &request.acknowledged {
            if !open.contains(&ack.finding_id) {
                return Err(ServiceError::UnknownFinding {
                    finding_id: ack.finding_id.clone(),
                    scope: scope.canonical(),
                });
            }
        }
        let mut acknowledged = request.acknowledged.clone();
        acknowledged.sort();
        let head = self.views.baseline(tenant, scope, None)?;
        if let Some(head) = &head
            && !request.force
            && head.posture_digest.as_deref() == Some(digest.as_str())
            && head.acknowledged == acknowledged
            && head.intent == request.intent
        {
            return Err(ServiceError::Conflict(format!(
                "scope {} is already approved exactly so: baseline v{} locks this posture ({digest}) with the same \
                 acknowledgements and intent. Nothing was recorded; approve with --force (API: \"force\": true) to \
                 record a new version anyway",
                scope.canonical(),
                head.version
            )));
        }
        let acked: BTreeSet<&str> = acknowledged.iter().map(|a| a.finding_id.as_str()).collect();
        let unacknowledged = self
            .views
            .findings(tenant, Some(scope))?
            .into_iter()
            .filter(|r| open.contains(&r.finding.finding_id) && !acked.contains(r.finding.finding_id.as_str()))
            .collect();
        Ok(ApprovalPlan {
            scope: scope.canonical(),
            version: head.as_ref().map_or(1, |b| b.version + 1),
            posture_digest: digest,
            posture_seq,
            paths,
            acknowledged,
            unacknowledged,
            intent: request.intent.clone(),
            open_findings: open.into_iter().collect(),
            head_approval_seq: head.as_ref().map(|b| b.approval_seq),
        })
    }
}
