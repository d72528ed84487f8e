//! Findings: deterministic rules over entities and paths. A finding has a stable id (the same
//! rule on the same subject always gives the same id), lists the paths and source records
//! behind it, and says exactly what to change.
//!
//! `CATALOGUE` lists every rule with why it matters, what triggers it and how to fix it;
//! `docs/rules.md` is generated from it (`sv0 rules --markdown`).

mod catalogue;
mod entity;
mod path;

pub use catalogue::*;
pub use entity::*;
pub use path::*;

use serde::{Deserialize, Serialize};

use crate::ids::stable_hash;
use crate::remediation::RemediationAction;

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now: the change can alter access control over sensitive data.
    Critical,
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
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// One entity (workload, identity, credential) and the records around it.
    Entity,
    /// One authority path, or a workload's paths together.
    Path,
    /// Paths that can never reach grade A.
    Gap,
    /// A scope's delta against its approved baseline, or a remediation rescan's verification:
    /// these rules decide the scope's disposition rather than open findings.
    Delta,
}

impl RuleKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Entity => "entity",
            RuleKind::Path => "path",
            RuleKind::Gap => "gap",
            RuleKind::Delta => "delta",
        }
    }
}

/// How settled a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Maturity {
    /// Its matching may still change; its findings deserve a second look.
    Experimental,
    /// Its matching is settled; its findings can gate a deployment.
    Stable,
}

impl Maturity {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Maturity::Experimental => "experimental",
            Maturity::Stable => "stable",
        }
    }
}

/// A rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rule {
    /// Stable id, e.g. `SV0-P001`.
    pub id: &'static str,
    /// Rule version; bumped when what it matches changes.
    pub version: u32,
    /// What it looks at.
    pub kind: RuleKind,
    /// How settled it is.
    pub maturity: Maturity,
    /// One-line title.
    pub title: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// OWASP Top 10 for Agentic Applications (2026) ids it maps to.
    pub owasp: &'static [&'static str],
    /// Why it matters, in a sentence or two.
    pub why: &'static str,
    /// The records that trigger it.
    pub trigger: &'static str,
    /// The remediation, naming the record to change.
    pub remediation: &'static str,
}

/// A delta rule: what a scope's delta entries of some kind mean for its disposition.
const fn delta_rule(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    why: &'static str,
    trigger: &'static str,
    remediation: &'static str,
) -> Rule {
    Rule {
        id,
        version: 1,
        kind: RuleKind::Delta,
        maturity: Maturity::Stable,
        title,
        severity,
        owasp: &["ASI03", "ASI10"],
        why,
        trigger,
        remediation,
    }
}

/// One rule's result on one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

pub(crate) fn finding(rule: &Rule, subject: String, summary: String) -> Finding {
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

/// Whether a finding was opened by a scope's delta (an undeclared addition) rather than by the
/// tenant's entities and paths.
pub fn from_delta(finding: &Finding) -> bool {
    finding.rule_id == DELTA_UNDECLARED.id
}
