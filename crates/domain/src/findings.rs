//! Findings: deterministic rules over entities and paths. A finding has a stable id (the same
//! rule on the same subject always gives the same id), lists the paths and source records
//! behind it, and says exactly what to change.
//!
//! This is the first rule set; the rule catalogue issue grows it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, stable_hash};
use crate::model::{Credential, CredentialKind, Destination, EgressClass, Grant, Identity, Permission};
use crate::paths::{AuthorityPath, Grade, GrantRef, NodeRef, OwnerState};
use crate::remediation::{self, RemediationAction};
use crate::snapshot::Entities;

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act before deploying.
    High,
    /// Act soon.
    Medium,
    /// Hygiene.
    Low,
}

impl Severity {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, e.g. `SV0-P001`.
    pub id: &'static str,
    /// Rule version; bumped when what it matches changes.
    pub version: u32,
    /// One-line title.
    pub title: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// OWASP Top 10 for Agentic Applications (2026) ids it maps to.
    pub owasp: &'static [&'static str],
}

/// A workload with authority but no accountable owner.
pub const UNOWNED_WORKLOAD: Rule = Rule {
    id: "SV0-E001",
    version: 1,
    title: "workload with authority has no accountable owner",
    severity: Severity::Medium,
    owasp: &["ASI10"],
};

/// A secret that never expires or lives longer than `LONG_LIVED_DAYS`.
pub const LONG_LIVED_SECRET: Rule = Rule {
    id: "SV0-E002",
    version: 1,
    title: "long-lived or never-expiring secret",
    severity: Severity::Medium,
    owasp: &["ASI03"],
};

/// A disabled identity that still holds grants.
pub const DISABLED_WITH_GRANTS: Rule = Rule {
    id: "SV0-E003",
    version: 1,
    title: "disabled identity still holds grants",
    severity: Severity::Low,
    owasp: &["ASI03"],
};

/// Write, delete or admin reach into a sensitive domain.
pub const SENSITIVE_WRITE: Rule = Rule {
    id: "SV0-P001",
    version: 1,
    title: "write or delete reach into a sensitive domain",
    severity: Severity::High,
    owasp: &["ASI03"],
};

/// A workload that can read a sensitive domain and send data to a model or external endpoint.
pub const SENSITIVE_EGRESS: Rule = Rule {
    id: "SV0-P002",
    version: 1,
    title: "sensitive data can leave through model or external egress",
    severity: Severity::Medium,
    owasp: &["ASI03", "ASI10"],
};

/// Standing (grade C) authority into a sensitive domain: a least-privilege candidate.
pub const UNUSED_SENSITIVE: Rule = Rule {
    id: "SV0-P003",
    version: 1,
    title: "standing authority into a sensitive domain never exercised",
    severity: Severity::Low,
    owasp: &["ASI03"],
};

/// Paths to a destination that can never reach grade A: its execution logs are disabled.
pub const EVIDENCE_GAP: Rule = Rule {
    id: "SV0-G001",
    version: 1,
    title: "execution logs disabled: paths can never be confirmed",
    severity: Severity::Low,
    owasp: &["ASI10"],
};

/// Every rule, in id order.
pub const CATALOGUE: [Rule; 7] = [
    UNOWNED_WORKLOAD,
    LONG_LIVED_SECRET,
    DISABLED_WITH_GRANTS,
    EVIDENCE_GAP,
    SENSITIVE_WRITE,
    SENSITIVE_EGRESS,
    UNUSED_SENSITIVE,
];

/// Secrets valid longer than this many days are long-lived.
pub const LONG_LIVED_DAYS: i64 = 180;

/// One rule's result on one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: the same rule on the same subject always gives the same id.
    pub finding_id: String,
    /// The rule.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// What it is about, e.g. `workload:agent-hr-onboarding`.
    pub subject: String,
    /// A specific sentence about this subject.
    pub summary: String,
    /// Workloads concerned (scopes select findings through them).
    pub workloads: Vec<String>,
    /// Paths behind the finding.
    pub path_ids: Vec<String>,
    /// Source records behind the finding.
    pub records: Vec<String>,
    /// What to change.
    pub remediation: Vec<RemediationAction>,
}

/// The stable id of a finding.
pub fn finding_id(rule_id: &str, subject: &str) -> String {
    format!("F-{}", stable_hash("sv0.finding.v1", &[rule_id, subject], 12))
}

fn finding(rule: &Rule, subject: String, summary: String) -> Finding {
    Finding {
        finding_id: finding_id(rule.id, &subject),
        rule_id: rule.id.to_string(),
        title: rule.title.to_string(),
        severity: rule.severity,
        subject,
        summary,
        workloads: Vec::new(),
        path_ids: Vec::new(),
        records: Vec::new(),
        remediation: Vec::new(),
    }
}

/// Evaluates every rule over a whole tenant; findings are sorted by id.
pub fn evaluate(entities: &Entities, paths: &[AuthorityPath], observed_at: Timestamp) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut by_workload: BTreeMap<&str, Vec<AuthorityPath>> = BTreeMap::new();
    let mut by_identity: BTreeMap<&str, Vec<PathOf>> = BTreeMap::new();
    let mut gaps_by_destination: BTreeMap<&str, Vec<PathOf>> = BTreeMap::new();
    for path in paths {
        by_workload.entry(path.workload.id.as_str()).or_default().push(path.clone());
        let of = PathOf { path_id: path.path_id.clone(), workload: path.workload.id.clone() };
        if path.evidence_gap {
            gaps_by_destination.entry(path.destination.id.as_str()).or_default().push(of.clone());
        }
        by_identity.entry(path.identity.id.as_str()).or_default().push(of);
    }
    for workload_paths in by_workload.values() {
        findings.extend(workload_findings(workload_paths));
    }
    let names: BTreeMap<&str, &str> = entities.identities.iter().map(|i| (i.id.as_str(), i.name.as_str())).collect();
    for credential in &entities.credentials {
        let name = names.get(credential.identity.as_str()).copied().unwrap_or(credential.identity.as_str());
        let related = by_identity.get(credential.identity.as_str()).map_or(&[][..], Vec::as_slice);
        findings.extend(credential_finding(credential, name, related, observed_at));
    }
    let mut grants_by_identity: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for grant in &entities.grants {
        grants_by_identity.entry(grant.identity.as_str()).or_default().push(grant);
    }
    for identity in &entities.identities {
        let grants = grants_by_identity.get(identity.id.as_str()).map_or(&[][..], Vec::as_slice);
        findings.extend(identity_finding(identity, grants));
    }
    for destination in &entities.destinations {
        let gaps = gaps_by_destination.get(destination.id.as_str()).map_or(&[][..], Vec::as_slice);
        findings.extend(evidence_gap_finding(destination, gaps));
    }
    findings.sort_by(|a, b| a.finding_id.cmp(&b.finding_id));
    findings
}

/// A path, by id, with its workload: what entity findings list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathOf {
    /// The path.
    pub path_id: String,
    /// Its workload.
    pub workload: String,
}

/// The subjects whose findings `workload_findings` decides for a workload with these paths.
pub fn workload_subjects<'a>(workload: &str, path_ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids = vec![
        finding_id(UNOWNED_WORKLOAD.id, &format!("workload:{workload}")),
        finding_id(SENSITIVE_EGRESS.id, &format!("workload:{workload}")),
    ];
    for path in path_ids {
        ids.extend(path_subjects(path));
    }
    ids
}

/// The ids of the findings about one path alone (sensitive write, unused sensitive authority):
/// they change only when that path does.
pub fn path_subjects(path_id: &str) -> [String; 2] {
    [
        finding_id(SENSITIVE_WRITE.id, &format!("path:{path_id}")),
        finding_id(UNUSED_SENSITIVE.id, &format!("path:{path_id}")),
    ]
}

/// The findings of one workload, from its paths: unowned workload, sensitive write, sensitive
/// egress, unused sensitive authority.
pub fn workload_findings(paths: &[AuthorityPath]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(first) = paths.first() else { return out };
    let workload = &first.workload;
    if first.owner_state != OwnerState::Assigned {
        let mut f = finding(
            &UNOWNED_WORKLOAD,
            format!("workload:{}", workload.id),
            format!("workload {} is {} and holds {} authority path(s)", workload.name, first.owner_state, paths.len()),
        );
        f.workloads.push(workload.id.clone());
        f.path_ids = paths.iter().map(|p| p.path_id.clone()).collect();
        f.records = vec![workload.id.clone()];
        f.records.extend(first.owners.iter().cloned());
        f.remediation.push(remediation::assign_owner(workload));
        out.push(f);
    }
    for path in paths {
        sensitive_write(path, &mut out);
        unused_sensitive(path, &mut out);
    }
    sensitive_egress(paths, &mut out);
    out
}

/// The long-lived-secret finding of a credential, if it has one. `paths` are the paths of the
/// credential's identity.
pub fn credential_finding(
    credential: &Credential,
    identity_name: &str,
    paths: &[PathOf],
    observed_at: Timestamp,
) -> Option<Finding> {
    if !matches!(credential.kind, CredentialKind::Password | CredentialKind::ApiKey) {
        return None;
    }
    let lifetime_days = match (credential.created_at, credential.expires_at) {
        (_, None) => None,
        (Some(created), Some(expires)) => Some((expires.0 - created.0) / Timestamp::DAY_MS),
        (None, Some(expires)) => Some((expires.0 - observed_at.0) / Timestamp::DAY_MS),
    };
    let long_lived = lifetime_days.is_none_or(|days| days > LONG_LIVED_DAYS);
    let expired = credential.expires_at.is_some_and(|at| at < observed_at);
    if !long_lived || expired {
        return None;
    }
    let lifetime = match lifetime_days {
        None => "never expires".to_string(),
        Some(days) => format!("is valid for {days} days"),
    };
    let mut f = finding(
        &LONG_LIVED_SECRET,
        format!("credential:{}", credential.id),
        format!("secret {} of identity {identity_name} {lifetime}", credential.id),
    );
    f.workloads = paths.iter().map(|p| p.workload.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.path_ids = paths.iter().map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.records = vec![credential.id.clone(), credential.identity.clone()];
    f.remediation.push(RemediationAction {
        action: "rotate_credential".to_string(),
        record_id: credential.id.clone(),
        text: format!(
            "rotate credential {} of identity {}: replace it with a federated credential or a secret valid at most {LONG_LIVED_DAYS} days",
            credential.id, credential.identity
        ),
    });
    Some(f)
}

/// The disabled-identity-with-grants finding of an identity, if it has one.
pub fn identity_finding(identity: &Identity, grants: &[&Grant]) -> Option<Finding> {
    if identity.enabled || grants.is_empty() {
        return None;
    }
    let mut f = finding(
        &DISABLED_WITH_GRANTS,
        format!("identity:{}", identity.id),
        format!("disabled identity {} still holds {} grant(s)", identity.name, grants.len()),
    );
    f.records = grants.iter().map(|g| g.id.clone()).collect();
    let node = NodeRef { id: identity.id.clone(), name: identity.name.clone() };
    for grant in grants {
        let grant_ref = GrantRef {
            id: grant.id.clone(),
            source: grant.source,
            role: grant.role.clone(),
            scope: grant.scope.clone(),
            permissions: grant.permissions.clone(),
        };
        f.remediation.push(remediation::remove_grant(&grant_ref, &node));
    }
    Some(f)
}

/// The evidence-gap finding of a destination, if paths to it can never reach grade A.
/// `gaps` are the paths to it that are evidence gaps.
pub fn evidence_gap_finding(destination: &Destination, gaps: &[PathOf]) -> Option<Finding> {
    if gaps.is_empty() || destination.execution_logs != Some(crate::model::LogState::Disabled) {
        return None;
    }
    let source =
        destination.execution_log_source.clone().unwrap_or_else(|| format!("execution logs on {}", destination.name));
    let mut f = finding(
        &EVIDENCE_GAP,
        format!("destination:{}", destination.id),
        format!("enable {source} to close {} evidence gap(s)", gaps.len()),
    );
    f.workloads = gaps.iter().map(|p| p.workload.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.path_ids = gaps.iter().map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.records = vec![destination.id.clone()];
    f.remediation.push(RemediationAction {
        action: "enable_logging".to_string(),
        record_id: destination.id.clone(),
        text: format!("enable {source} so that the {} path(s) to {} can be confirmed", gaps.len(), destination.name),
    });
    Some(f)
}

fn sensitive_write(path: &AuthorityPath, out: &mut Vec<Finding>) {
    if !path.domain.sensitive || !path.modifies() {
        return;
    }
    let modifying: Vec<&str> = path.permissions.iter().filter(|p| p.modifies()).map(Permission::as_str).collect();
    let mut f = finding(
        &SENSITIVE_WRITE,
        format!("path:{}", path.path_id),
        format!(
            "{} can {} {} data in {} as {}",
            path.workload.name,
            modifying.join("/"),
            path.domain.name,
            path.destination.name,
            path.identity.name
        ),
    );
    f.workloads.push(path.workload.id.clone());
    f.path_ids.push(path.path_id.clone());
    for grant in path.grants.iter().filter(|g| g.permissions.iter().any(Permission::modifies)) {
        f.records.push(grant.id.clone());
        f.remediation.push(remediation::remove_grant(grant, &path.identity));
    }
    out.push(f);
}

fn unused_sensitive(path: &AuthorityPath, out: &mut Vec<Finding>) {
    if !path.domain.sensitive || path.grade != Grade::C {
        return;
    }
    let mut f = finding(
        &UNUSED_SENSITIVE,
        format!("path:{}", path.path_id),
        format!(
            "{} holds {} on {} ({}) with no execution evidence",
            path.workload.name,
            path.permissions.iter().map(Permission::as_str).collect::<Vec<_>>().join("/"),
            path.destination.name,
            path.domain.name
        ),
    );
    f.workloads.push(path.workload.id.clone());
    f.path_ids.push(path.path_id.clone());
    for grant in &path.grants {
        f.records.push(grant.id.clone());
        f.remediation.push(remediation::remove_grant(grant, &path.identity));
    }
    out.push(f);
}

fn sensitive_egress(workload_paths: &[AuthorityPath], out: &mut Vec<Finding>) {
    let Some(first) = workload_paths.first() else { return };
    let workload_id = first.workload.id.as_str();
    let reads: Vec<&AuthorityPath> =
        workload_paths.iter().filter(|p| p.domain.sensitive && p.permissions.contains(&Permission::Read)).collect();
    let exits: Vec<&AuthorityPath> =
        workload_paths.iter().filter(|p| matches!(p.egress, EgressClass::LlmApi | EgressClass::ExternalHttp)).collect();
    if reads.is_empty() || exits.is_empty() {
        return;
    }
    let domains: BTreeSet<&str> = reads.iter().map(|p| p.domain.name.as_str()).collect();
    let egress: BTreeSet<&str> = exits.iter().map(|p| p.egress.as_str()).collect();
    let mut f = finding(
        &SENSITIVE_EGRESS,
        format!("workload:{workload_id}"),
        format!(
            "{} can read {} data and reach {} egress",
            first.workload.name,
            domains.into_iter().collect::<Vec<_>>().join(", "),
            egress.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );
    f.workloads.push(workload_id.to_string());
    f.path_ids =
        reads.iter().chain(exits.iter()).map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.records =
        exits.iter().flat_map(|p| p.grants.iter().map(|g| g.id.clone())).collect::<BTreeSet<_>>().into_iter().collect();
    for path in &exits {
        f.remediation.push(RemediationAction {
            action: "review_destination".to_string(),
            record_id: path.destination.id.clone(),
            text: format!(
                "confirm that {} may send {} data to {} ({}), or remove its access",
                path.workload.name, reads[0].domain.name, path.destination.name, path.egress
            ),
        });
    }
    out.push(f);
}
