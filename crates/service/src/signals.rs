//! Signals for SOC consumers: findings opened and resolved, drift detected, verification passed
//! or failed, baselines approved. They are derived from the assessments the views fold, so they
//! can always be regenerated from the log, and a regenerated signal has the same id.
//!
//! Each signal is a CloudEvents 1.0 event in structured JSON mode:
//!
//! ```json
//! {"specversion":"1.0","id":"sig-…","source":"urn:sv0:tenant:contoso",
//!  "type":"io.sv0.drift.detected","subject":"project:HR-Automation",
//!  "time":"2026-03-03T14:00:00Z","datacontenttype":"application/json","data":{…}}
//! ```
//!
//! On JetStream `sv0-log-nats` publishes them to the subject `sv0.signals.<tenant>.<type>` (e.g.
//! `sv0.signals.contoso.drift.detected`) of the `SV0_SIGNALS` stream, with the signal id as
//! `Nats-Msg-Id`. `sv0 signals` prints the same events as JSON lines on any backend.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sv0_domain::assessment::Assessment;
use sv0_domain::delta::breaks_match;
use sv0_domain::ids::stable_hash;
use sv0_domain::{TenantId, Timestamp};
use sv0_projections::FindingRecord;

/// Kinds of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignalType {
    /// A finding opened.
    FindingOpened,
    /// A finding was resolved.
    FindingResolved,
    /// A scope's posture no longer matches its approved baseline.
    DriftDetected,
    /// A remediation rescan verified the return to the baseline.
    VerificationPassed,
    /// A remediation rescan did not return to the baseline.
    VerificationFailed,
    /// A baseline was approved.
    BaselineApproved,
}

impl SignalType {
    /// The dotted name: the end of the CloudEvents type and of the NATS subject.
    pub fn name(&self) -> &'static str {
        match self {
            SignalType::FindingOpened => "finding.opened",
            SignalType::FindingResolved => "finding.resolved",
            SignalType::DriftDetected => "drift.detected",
            SignalType::VerificationPassed => "verification.passed",
            SignalType::VerificationFailed => "verification.failed",
            SignalType::BaselineApproved => "baseline.approved",
        }
    }
}

/// One signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Stable id: the same assessment always gives the same ids.
    pub id: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The kind.
    pub signal_type: SignalType,
    /// What it is about (a finding id or a scope).
    pub subject: String,
    /// When the assessed fact happened.
    pub time: Timestamp,
    /// The log position of the assessment it comes from.
    pub assessed_seq: u64,
    /// The details.
    pub data: Value,
}

impl Signal {
    /// The CloudEvents 1.0 structured-mode JSON of the signal.
    pub fn cloudevent(&self) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".to_string(),
            id: self.id.clone(),
            source: format!("urn:sv0:tenant:{}", self.tenant),
            kind: format!("io.sv0.{}", self.signal_type.name()),
            subject: self.subject.clone(),
            time: self.time.to_rfc3339(),
            datacontenttype: "application/json".to_string(),
            sv0logposition: self.assessed_seq,
            data: self.data.clone(),
        }
    }
}

/// A signal as a CloudEvents 1.0 event (JSON format), as SOC tools receive it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Stable per (assessment, type, subject): a redelivery has the same id.
    pub id: String,
    /// `urn:sv0:tenant:<tenant>`.
    pub source: String,
    /// `io.sv0.<signal type>`, e.g. `io.sv0.drift.detected`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the signal is about: a scope, a path, a finding.
    pub subject: String,
    /// When the assessment was made (RFC 3339).
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The log position of the assessment that raised it.
    pub sv0logposition: u64,
    /// The signal's details, by type.
    pub data: Value,
}

fn signal(assessment: &Assessment, signal_type: SignalType, subject: &str, data: Value) -> Signal {
    let id = stable_hash(
        "sv0.signal.v1",
        &[assessment.tenant.as_str(), &assessment.assessed_event.to_hex(), signal_type.name(), subject],
        32,
    );
    Signal {
        id: format!("sig-{id}"),
        tenant: assessment.tenant.clone(),
        signal_type,
        subject: subject.to_string(),
        time: assessment.occurred_at,
        assessed_seq: assessment.assessed_seq,
        data,
    }
}

/// The signals an assessment gives, in a fixed order. `findings` are the tenant's finding
/// records by id, for the details of opened and resolved findings.
pub fn signals_for(assessment: &Assessment, findings: &BTreeMap<String, FindingRecord>) -> Vec<Signal> {
    let mut out = Vec::new();
    if let Some(scan) = &assessment.scan {
        // Only what the log up to this assessment fixes: a finding's summary, paths and
        // remediation change with later scans, and a signal must read the same whenever and
        // wherever it is derived (the ids are the same, so a sink keeps the first copy). The
        // current details are one `sv0 findings` (or API) call away, by `finding_id`.
        let finding_data = |id: &str| match findings.get(id) {
            Some(record) => json!({
                "finding_id": id,
                "rule_id": record.finding.rule_id,
                "title": record.finding.title,
                "severity": record.finding.severity,
                "subject": record.finding.subject,
                "scan_id": scan.scan.scan_id,
            }),
            None => json!({ "finding_id": id, "scan_id": scan.scan.scan_id }),
        };
        for id in &scan.findings.opened {
            out.push(signal(assessment, SignalType::FindingOpened, id, finding_data(id)));
        }
        for id in &scan.findings.resolved {
            out.push(signal(assessment, SignalType::FindingResolved, id, finding_data(id)));
        }
        for scope in &scan.scopes {
            let drifted: Vec<Value> = scope
                .delta
                .iter()
                .filter(|e| breaks_match(e))
                .map(|e| {
                    json!({
                        "kind": e.kind,
                        "path_id": e.path_id,
                        "workload": e.workload.name,
                        "identity": e.identity.name,
                        "destination": e.destination.name,
                        "domain": e.domain.name,
                        "flags": e.flags,
                        "intent": e.intent,
                        "severity": e.severity,
                        "remediation": e.remediation,
                    })
                })
                .collect();
            if !drifted.is_empty() {
                let data = json!({
                    "scope": scope.scope,
                    "baseline_version": scope.baseline_version,
                    "trigger": scan.scan.trigger,
                    "deployment": scan.scan.deployment,
                    "changes": drifted,
                });
                out.push(signal(assessment, SignalType::DriftDetected, &scope.scope, data));
            }
            if let Some(verification) = &scope.verification {
                let signal_type = if verification.matches_baseline {
                    SignalType::VerificationPassed
                } else {
                    SignalType::VerificationFailed
                };
                let data = json!({ "scope": scope.scope, "verification": verification });
                out.push(signal(assessment, signal_type, &scope.scope, data));
            }
        }
    }
    if let Some(approval) = &assessment.approval {
        let data = json!({
            "scope": approval.scope,
            "baseline_version": approval.baseline_version,
            "approver": approval.approver,
            "note": approval.note,
            "paths_total": approval.posture.paths_total,
            "path_set_digest": approval.posture.path_set_digest,
            "acknowledged": approval.acknowledged,
        });
        out.push(signal(assessment, SignalType::BaselineApproved, &approval.scope, data));
    }
    out
}

/// Where signals go.
pub trait SignalSink {
    /// Publishes signals, all or none acknowledged.
    fn publish(&self, signals: &[Signal]) -> impl std::future::Future<Output = Result<(), crate::ServiceError>> + Send;
}

/// No sink: signals are only derived on demand (`sv0 signals`).
pub struct NoSignals;

impl SignalSink for NoSignals {
    async fn publish(&self, _signals: &[Signal]) -> Result<(), crate::ServiceError> {
        Ok(())
    }
}
