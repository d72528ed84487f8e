//! The people's side of the rules: a tenant's policy (`policy.set`), and the deletion circuit
//! breakers' record (`scan.quarantined`) and release (`scan.released`). All of them are
//! events, so a replay folds every scan under the policy and the releases of its time.

use sv0_domain::events::{Actor, Event, EventMeta, EventPayload, PolicySet, ScanQuarantined, ScanReleased, derived_id};
use sv0_domain::policy::Policy;
use sv0_domain::{InvalidInput, TenantId, Timestamp};
use sv0_log::{AppendError, EventLog, Expected, Seq};
use sv0_projections::{ScanRecord, ScanStatus};
use tracing::info;

use crate::error::ServiceError;
use crate::import::new_event;
use crate::service::{Queries, Service};

/// Actor of the events SV0 records on its own.
const SYSTEM_ACTOR: &str = "sv0:breaker";

/// What `set_policy` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    /// The policy now in force.
    pub policy: Policy,
    /// Log position of its `policy.set`.
    pub seq: Seq,
}

impl<L: EventLog> Queries<L> {
    /// The tenant's policy in force (the default until one is set).
    pub fn policy(&self, tenant: &TenantId) -> Result<Policy, ServiceError> {
        Ok(self.views.policy(tenant)?)
    }

    /// Which Rego policy decides the tenant's dispositions, and which waits for an approval.
    pub fn rego_state(&self, tenant: &TenantId) -> Result<sv0_domain::policy::RegoState, ServiceError> {
        Ok(self.views.rego_state(tenant)?)
    }

    /// The tenant's scans, oldest first.
    pub fn scans(&self, tenant: &TenantId) -> Result<Vec<ScanRecord>, ServiceError> {
        let mut scans = self.views.scans(tenant)?;
        scans.sort_by_key(|s| (s.completed_seq, s.scan_id.clone()));
        Ok(scans)
    }

    /// One scan, or a clear error naming the known ones.
    pub fn scan(&self, tenant: &TenantId, scan_id: &str) -> Result<ScanRecord, ServiceError> {
        self.views.scans(tenant)?.into_iter().find(|s| s.scan_id == scan_id).ok_or_else(|| {
            ServiceError::Input(InvalidInput::new(format!(
                "tenant {tenant} has no scan {scan_id:?}. List its scans with `sv0 scan list`"
            )))
        })
    }
}

impl<L: EventLog> Service<L> {
    /// Replaces the tenant's policy with `edit` applied to the one in force. Two people editing
    /// at once cannot silently overwrite each other: the second append fails with a conflict.
    pub async fn set_policy(
        &mut self,
        tenant: &TenantId,
        edit: impl FnOnce(Policy) -> Result<Policy, InvalidInput>,
        by: &Actor,
        at: Timestamp,
    ) -> Result<PolicyReport, ServiceError> {
        let subject = format!("{tenant}.policy");
        // The head is read before the policy it guards, so a policy set in between conflicts.
        let head = self.log.subject_head(&subject).await?;
        self.sync().await?;
        let policy = edit(self.views.policy(tenant)?)?;
        policy.validate()?;
        if let Some(rego) = &policy.rego {
            sv0_projections::rego::check(&rego.source)
                .map_err(|e| InvalidInput::new(format!("the Rego policy does not compile: {e}")))?;
            // It runs, within its limits, on every scope it will decide, before it is recorded.
            if let Err(why) = self.dry_run_policy(tenant, rego)? {
                return Err(InvalidInput::new(format!(
                    "the Rego policy fails when it runs, so it would reject everything: {why}"
                ))
                .into());
            }
        }
        let body = serde_json::to_vec(&policy).map_err(|e| InvalidInput::new(e.to_string()))?;
        let event = Event::by(
            derived_id("sv0.policy.v1", tenant, &[&head.unwrap_or(0).to_be_bytes(), &body]),
            tenant,
            at,
            by,
            EventPayload::PolicySet(PolicySet { policy: policy.clone() }),
        );
        let expected = head.map_or(Expected::NoEvents, Expected::LastSeq);
        let appended = match self.log.append(&subject, expected, vec![new_event(&event)?]).await {
            Ok(appended) => appended,
            Err(AppendError::Conflict { .. }) => {
                return Err(ServiceError::Conflict(format!(
                    "the policy of tenant {tenant} was changed by someone else first. Review it with `sv0 policy show` and set it again"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.sync_after(appended.last()).await?;
        info!(%tenant, actor = %by.actor, seq = appended.last(), "policy set");
        Ok(PolicyReport { policy: self.views.policy(tenant)?, seq: appended.last() })
    }

    /// A second person approves the Rego policy waiting for approval (one that can loosen the
    /// built-in decision): from this event on it decides the tenant's dispositions. `digest` is
    /// the policy the approver reviewed (`sv0 policy show`); the approver must not be the person
    /// who set it. Callers check that `by` may approve (the approver role).
    pub async fn approve_policy(
        &mut self,
        tenant: &TenantId,
        digest: &str,
        note: &str,
        by: &Actor,
        at: Timestamp,
    ) -> Result<(sv0_domain::policy::RegoState, Seq), ServiceError> {
        if note.trim().is_empty() {
            return Err(InvalidInput::new("an approval of a policy needs a --note saying why it may decide").into());
        }
        let subject = format!("{tenant}.policy");
        let head = self.log.subject_head(&subject).await?;
        self.sync().await?;
        let state = self.views.rego_state(tenant)?;
        let current = self.views.policy(tenant)?;
        // The same checks the fold makes, so that a refusal is an error here, not a no-op there.
        state.after_approval(current.rego.as_ref(), digest, &by.principal)?;
        let event = Event::by(
            derived_id("sv0.policy.approved.v1", tenant, &[&head.unwrap_or(0).to_be_bytes(), digest.as_bytes()]),
            tenant,
            at,
            by,
            EventPayload::PolicyApproved(sv0_domain::events::PolicyApproved {
                digest: digest.to_string(),
                approved_by: by.principal.clone(),
                note: note.to_string(),
            }),
        );
        let expected = head.map_or(Expected::NoEvents, Expected::LastSeq);
        let appended = match self.log.append(&subject, expected, vec![new_event(&event)?]).await {
            Ok(appended) => appended,
            Err(AppendError::Conflict { .. }) => {
                return Err(ServiceError::Conflict(format!(
                    "the policy of tenant {tenant} changed while you approved it. Review it with `sv0 policy show` and approve again"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.sync_after(appended.last()).await?;
        info!(%tenant, approver = %by.principal, digest, seq = appended.last(), "policy approved");
        Ok((self.views.rego_state(tenant)?, appended.last()))
    }

    /// Writes down a breaker's decision on the log (`scan.quarantined`) for a scan the views
    /// hold, so that auditors and SOC consumers see it as an event. The decision itself is the
    /// fold's and needs no event to be reproduced; the record is appended once (its id is
    /// derived from the scan).
    pub async fn record_quarantine(&mut self, tenant: &TenantId, scan: &ScanRecord) -> Result<Seq, ServiceError> {
        if scan.status != ScanStatus::Quarantined || scan.quarantine_seq.is_some() {
            return Ok(scan.quarantine_seq.unwrap_or(0));
        }
        let event = Event {
            meta: EventMeta {
                event_id: derived_id("sv0.scan.quarantined.v1", tenant, &[scan.scan_id.as_bytes()]),
                tenant_id: tenant.clone(),
                occurred_at: scan.observed_at.unwrap_or_default(),
                actor: SYSTEM_ACTOR.to_string(),
                causation_id: None,
                correlation_id: None,
                credential: None,
            },
            payload: EventPayload::ScanQuarantined(ScanQuarantined {
                scan_id: scan.scan_id.clone(),
                reason: scan.reason.clone().unwrap_or_default(),
                removed_entities: scan.removed_entities,
                removed_paths: scan.removed_paths,
            }),
        };
        let appended = self.log.append(&format!("{tenant}.scan"), Expected::Any, vec![new_event(&event)?]).await?;
        info!(%tenant, scan_id = %scan.scan_id, seq = appended.last(), "scan quarantine recorded");
        self.sync_after(appended.last()).await
    }

    /// A person releases a quarantined scan: it is applied now, as if it had not tripped the
    /// breaker, unless a newer scan was applied meanwhile (then it is marked superseded and
    /// nothing changes). Returns the scan as the views now hold it.
    pub async fn release_scan(
        &mut self,
        tenant: &TenantId,
        scan_id: &str,
        note: &str,
        by: &Actor,
        at: Timestamp,
    ) -> Result<ScanRecord, ServiceError> {
        let releaser = by.principal.as_str();
        if note.trim().is_empty() {
            return Err(InvalidInput::new("a release needs a --note saying why the removals are real").into());
        }
        if self.sealing {
            self.signer()?;
        }
        self.sync().await?;
        let scan = self.scan(tenant, scan_id)?;
        if scan.status != ScanStatus::Quarantined {
            return Err(ServiceError::Conflict(format!(
                "scan {scan_id} is {}, not quarantined: there is nothing to release",
                scan.status.as_str()
            )));
        }
        self.record_quarantine(tenant, &scan).await?;
        let event = Event::by(
            derived_id("sv0.scan.released.v1", tenant, &[scan_id.as_bytes()]),
            tenant,
            at,
            by,
            EventPayload::ScanReleased(ScanReleased {
                scan_id: scan_id.to_string(),
                released_by: releaser.to_string(),
                note: note.to_string(),
            }),
        );
        let appended = self.log.append(&format!("{tenant}.scan"), Expected::Any, vec![new_event(&event)?]).await?;
        if appended.duplicates > 0 {
            return Err(ServiceError::Conflict(format!("scan {scan_id} was already released")));
        }
        self.sync_after(appended.last()).await?;
        info!(%tenant, scan_id, releaser, seq = appended.last(), "scan released");
        self.scan(tenant, scan_id)
    }
}

impl<L: EventLog> Service<L> {
    /// Records that `by` accepts open findings of the tenant until their dates (triage outside
    /// an approval). Every finding must be open; nothing is appended otherwise.
    pub async fn acknowledge_findings(
        &mut self,
        tenant: &TenantId,
        acknowledged: Vec<sv0_domain::events::Acknowledgement>,
        actor: &Actor,
        note: &str,
        at: Timestamp,
    ) -> Result<Seq, ServiceError> {
        if acknowledged.is_empty() {
            return Err(InvalidInput::new("name at least one finding to acknowledge").into());
        }
        crate::service::refuse_past_dues(&acknowledged, at)?;
        self.views.catch_up(&self.log, None).await?;
        let open: std::collections::BTreeSet<String> = self
            .views
            .findings(tenant, None)?
            .into_iter()
            .filter(|r| r.status == sv0_projections::FindingStatus::Open)
            .map(|r| r.finding.finding_id)
            .collect();
        for ack in &acknowledged {
            if !open.contains(&ack.finding_id) {
                return Err(
                    InvalidInput::new(format!("finding {} is not open in tenant {tenant}", ack.finding_id)).into()
                );
            }
        }
        let by = actor.principal.as_str();
        let mut parts: Vec<Vec<u8>> = vec![by.as_bytes().to_vec(), at.0.to_be_bytes().to_vec()];
        for ack in &acknowledged {
            parts.push(ack.finding_id.as_bytes().to_vec());
            parts.push(ack.due.0.to_be_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let payload = EventPayload::FindingsAcknowledged(sv0_domain::events::FindingsAcknowledged {
            acknowledged,
            by: by.to_string(),
            note: note.to_string(),
        });
        let event = Event::by(derived_id("sv0.ack.v1", tenant, &refs), tenant, at, actor, payload);
        let seq = self
            .log
            .append(&format!("{tenant}.finding"), sv0_log::Expected::Any, vec![crate::import::new_event(&event)?])
            .await?
            .last();
        self.views.catch_up(&self.log, Some(seq)).await?;
        Ok(seq)
    }
}
