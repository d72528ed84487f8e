//! A tenant's policy: the settings the rules depend on. It is set by a `policy.set` event, so a
//! replay folds every scan with the policy that was in force then, whatever the configuration
//! is today.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::error::InvalidInput;
use crate::model::{ClassificationRule, DataDomain};

/// Longest evidence window or owner silence limit a policy may set, in days (ten years).
pub const MAX_DAYS: u32 = 3_650;

/// The settings SV0's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Evidence older than this many days before a scan does not count (grades decay).
    pub evidence_window_days: u32,
    /// An owner silent for longer than this many days is decayed.
    pub owner_silence_days: u32,
    /// Host suffixes of the organisation's own endpoints (egress `internal`), e.g. `contoso.com`.
    pub internal_host_suffixes: Vec<String>,
    /// Classification rules of the tenant, applied before the scan's own (by id order).
    pub classification_rules: Vec<ClassificationRule>,
    /// Deletion circuit breakers.
    pub breaker: BreakerPolicy,
    /// A scope drifts from its baseline when a scan's delta breaks the match on at least this
    /// many paths (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_threshold: Option<u32>,
    /// A Rego policy that replaces or extends the built-in disposition rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<RegoPolicy>,
    /// How resource tags classify data (`[classification]` of sv0.toml).
    #[serde(default, skip_serializing_if = "Classification::is_default")]
    pub classification: Classification,
    /// The most authority paths one scan's fold may compute (`DEFAULT_FOLD_BUDGET_PATHS` when
    /// unset): a scan past it is quarantined with the reason, before the work, instead of
    /// stalling every later command; `sv0 scan release` applies it anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold_budget_paths: Option<u64>,
}

/// The fold budget when the policy sets none: five times the largest tenant SV0 is measured at.
pub const DEFAULT_FOLD_BUDGET_PATHS: u64 = 5_000_000;

/// How resource tags classify the data behind a destination: configuration, not code, so that
/// each organisation's own tagging scheme decides, and recorded in the policy so that a replay
/// classifies as the policy in force then did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    /// Tag keys whose value names a data domain, in order of precedence; matched without
    /// regard to case (Azure tag names are case-insensitive).
    pub tag_keys: Vec<String>,
    /// Tag values mapped to a domain id, matched without regard to case; a value not listed
    /// names the domain with its own slug (`Customer PII` → `customer-pii`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// The domains classification can name, with display name and sensitivity. A domain a tag
    /// or rule names that is not listed here (nor in the scan) is created, named after the tag
    /// value, not sensitive.
    pub domains: Vec<DataDomain>,
}

/// The tag keys classified by default: SV0's own and the Cloud Adoption Framework's.
pub const DEFAULT_TAG_KEYS: [&str; 3] = ["data-domain", "DataClassification", "Classification"];

impl Default for Classification {
    fn default() -> Classification {
        let domain = |id: &str, name: &str, sensitive: bool| DataDomain {
            id: id.to_string(),
            name: name.to_string(),
            sensitive,
        };
        Classification {
            tag_keys: DEFAULT_TAG_KEYS.iter().map(|k| k.to_string()).collect(),
            values: BTreeMap::new(),
            domains: vec![
                domain("finance", "Finance", true),
                domain("hr", "HR", true),
                domain("payroll", "Payroll", true),
                domain("customer-pii", "Customer PII", true),
                domain("pii", "PII", true),
                domain("phi", "PHI", true),
                domain("legal", "Legal", true),
                domain("source-code", "Source Code", true),
                // The Cloud Adoption Framework's DataClassification values.
                domain("highly-confidential", "Highly Confidential", true),
                domain("confidential", "Confidential", true),
                domain("restricted", "Restricted", true),
                domain("general", "General", false),
                domain("public", "Public", false),
                domain("non-business", "Non-business", false),
            ],
        }
    }
}

impl Classification {
    /// Whether this is the built-in classification (left out of encoded policies, so policies
    /// recorded before classification was configurable decode to it).
    pub fn is_default(&self) -> bool {
        *self == Classification::default()
    }

    /// The domain a destination's tags name, and the tag (`tag:<key>=<value>`) that named it:
    /// the first configured key the tags carry with a non-empty value.
    pub fn classify(&self, tags: &BTreeMap<String, String>) -> Option<(String, String, String)> {
        for key in &self.tag_keys {
            let Some((tag, value)) = tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else { continue };
            let mapped = self.values.iter().find(|(v, _)| v.eq_ignore_ascii_case(value.trim())).map(|(_, d)| d.clone());
            let domain = mapped.unwrap_or_else(|| slug(value));
            if !domain.is_empty() {
                return Some((domain, value.trim().to_string(), format!("tag:{tag}={value}")));
            }
        }
        None
    }

    /// A domain this classification defines.
    pub fn domain(&self, id: &str) -> Option<&DataDomain> {
        self.domains.iter().find(|d| d.id == id)
    }

    fn validate(&self) -> Result<(), InvalidInput> {
        let mut keys = std::collections::BTreeSet::new();
        for key in &self.tag_keys {
            if key.trim().is_empty() || key.trim() != key {
                return Err(InvalidInput::new(format!(
                    "classification tag key {key:?} is empty or has spaces around it"
                )));
            }
            if !keys.insert(key.to_ascii_lowercase()) {
                return Err(InvalidInput::new(format!(
                    "classification tag key {key:?} is listed twice (tag names are case-insensitive)"
                )));
            }
        }
        if !self.values.is_empty() && self.tag_keys.is_empty() {
            return Err(InvalidInput::new(
                "classification values are mapped but no tag key is classified, so no value could ever match",
            ));
        }
        let mut values = std::collections::BTreeSet::new();
        for (value, domain) in &self.values {
            if value.trim().is_empty() {
                return Err(InvalidInput::new("a classification value is empty"));
            }
            if !values.insert(value.trim().to_ascii_lowercase()) {
                return Err(InvalidInput::new(format!(
                    "classification value {value:?} is mapped twice (values match without regard to case), so one mapping would never apply"
                )));
            }
            if domain.is_empty() || slug(domain) != *domain {
                return Err(InvalidInput::new(format!(
                    "classification value {value:?} maps to {domain:?}, which is not a domain id such as finance or customer-pii"
                )));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for domain in &self.domains {
            if domain.id.is_empty() || slug(&domain.id) != domain.id || domain.name.trim().is_empty() {
                return Err(InvalidInput::new(format!(
                    "classification domain {:?} needs an id such as finance and a name",
                    domain.id
                )));
            }
            if !ids.insert(domain.id.as_str()) {
                return Err(InvalidInput::new(format!("classification domain {:?} is defined twice", domain.id)));
            }
        }
        Ok(())
    }
}

/// A lower-case id made of letters, digits and dashes (`Customer PII` → `customer-pii`).
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Largest Rego policy source accepted, in bytes.
pub const MAX_REGO_BYTES: usize = 256 * 1024;

/// A customer's disposition policy in Rego (package `sv0`): it defines `decision`
/// (`"approved"`, `"requires_review"` or `"rejected"`) and optionally `reasons` (strings or
/// objects with `rule`, `text` and `path_ids`), over the input document `sv0 export opa-input`
/// prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegoPolicy {
    /// Whether the policy replaces the built-in rules or adds to them.
    pub mode: RegoMode,
    /// The policy's source text.
    pub source: String,
}

impl RegoPolicy {
    /// `sha256:<hex>` of the mode and the source: what an approver approves.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.mode.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(self.source.as_bytes());
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// Whether the policy can turn a built-in `requires_review` or `rejected` into `approved`
    /// (a `replace` policy can; an `extend` one only ever tightens).
    pub fn can_loosen(&self) -> bool {
        self.mode == RegoMode::Replace
    }
}

/// Which Rego policy decides a tenant's dispositions. A policy that only tightens (`extend`)
/// is in force as soon as it is set; one that can loosen (`replace`) only once a second person,
/// an approver other than the one who set it, approved it (`policy.approved`). Until then the
/// policy in force before stays in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegoState {
    /// The policy deciding dispositions now.
    pub in_force: Option<RegoPolicy>,
    /// Who approved it, for a policy that needed an approval.
    pub approved_by: Option<String>,
    /// A policy set and waiting for a second person's approval.
    pub pending: Option<PendingRego>,
}

/// A policy that can loosen the built-in decision, set and not yet approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PendingRego {
    /// Its digest (`RegoPolicy::digest`).
    pub digest: String,
    /// Who set it (the principal of the `policy.set` event).
    pub set_by: String,
    /// Log position of its `policy.set`.
    pub set_seq: u64,
}

impl RegoState {
    /// The state after `policy.set` of a policy with `rego`, by `by`, at log position `seq`.
    pub fn after_set(&self, rego: Option<&RegoPolicy>, by: &str, seq: u64) -> RegoState {
        match rego {
            None => RegoState::default(),
            Some(p) if !p.can_loosen() => RegoState { in_force: Some(p.clone()), approved_by: None, pending: None },
            // Another setting of the policy changed; the Rego policy in force is the same one.
            Some(p) if self.in_force.as_ref() == Some(p) => RegoState { pending: None, ..self.clone() },
            Some(p) => RegoState {
                pending: Some(PendingRego { digest: p.digest(), set_by: by.to_string(), set_seq: seq }),
                ..self.clone()
            },
        }
    }

    /// The state after `by` approved the policy of digest `digest`, `current` being the one set.
    /// Refused (with why) when nothing waits, the digest is another policy's, or the approver
    /// is the person who set it.
    pub fn after_approval(
        &self,
        current: Option<&RegoPolicy>,
        digest: &str,
        by: &str,
    ) -> Result<RegoState, InvalidInput> {
        let Some(pending) = &self.pending else {
            return Err(InvalidInput::new("no Rego policy is waiting for an approval"));
        };
        let Some(current) = current.filter(|c| c.digest() == pending.digest) else {
            return Err(InvalidInput::new("the policy waiting for approval is no longer the one set"));
        };
        if pending.digest != digest {
            return Err(InvalidInput::new(format!(
                "the policy waiting for approval is {}, not {digest}: review it again",
                pending.digest
            )));
        }
        if pending.set_by == by {
            return Err(InvalidInput::new(format!(
                "{by} set this policy: a policy that can approve needs a second person's approval"
            )));
        }
        Ok(RegoState { in_force: Some(current.clone()), approved_by: Some(by.to_string()), pending: None })
    }
}

/// How a Rego policy combines with the built-in disposition rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegoMode {
    /// The stricter of the built-in decision and the policy's wins; reasons of both are listed.
    Extend,
    /// The policy's decision is the disposition; the built-in reasons are its input only.
    Replace,
}

impl RegoMode {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RegoMode::Extend => "extend",
            RegoMode::Replace => "replace",
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            evidence_window_days: 30,
            owner_silence_days: 90,
            internal_host_suffixes: Vec::new(),
            classification_rules: Vec::new(),
            breaker: BreakerPolicy::default(),
            drift_threshold: None,
            rego: None,
            classification: Classification::default(),
            fold_budget_paths: None,
        }
    }
}

impl Policy {
    /// Paths a delta must break the match on for the scope to count as drifted.
    pub fn drift_threshold_paths(&self) -> u32 {
        self.drift_threshold.unwrap_or(1).max(1)
    }

    /// The most paths one scan's fold may compute.
    pub fn fold_budget(&self) -> u64 {
        self.fold_budget_paths.unwrap_or(DEFAULT_FOLD_BUDGET_PATHS).max(1)
    }

    /// Checks the settings a person gave: windows of 1 to 3,650 days, a breaker share of 1 to
    /// 100 %, host suffixes that are host names, rules with distinct non-empty ids.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        for (name, days) in
            [("evidence_window_days", self.evidence_window_days), ("owner_silence_days", self.owner_silence_days)]
        {
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(InvalidInput::new(format!("{name} must be between 1 and {MAX_DAYS}, not {days}")));
            }
        }
        if !(1..=100).contains(&self.breaker.max_removed_percent) {
            return Err(InvalidInput::new(format!(
                "breaker.max_removed_percent must be between 1 and 100, not {}",
                self.breaker.max_removed_percent
            )));
        }
        for suffix in &self.internal_host_suffixes {
            let host = suffix.trim_start_matches("*.").trim_start_matches('.');
            if host.is_empty()
                || host != host.to_ascii_lowercase()
                || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(InvalidInput::new(format!(
                    "internal host suffix {suffix:?} is not a lowercase host name such as contoso.com"
                )));
            }
        }
        if self.drift_threshold == Some(0) {
            return Err(InvalidInput::new("drift_threshold must be at least 1 path"));
        }
        if let Some(rego) = &self.rego {
            if rego.source.trim().is_empty() {
                return Err(InvalidInput::new("the Rego policy is empty"));
            }
            if rego.source.len() > MAX_REGO_BYTES {
                return Err(InvalidInput::new(format!(
                    "the Rego policy is {} bytes; at most {MAX_REGO_BYTES} are accepted",
                    rego.source.len()
                )));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut matches = std::collections::BTreeSet::new();
        for rule in &self.classification_rules {
            if rule.id.trim().is_empty() || rule.tag.trim().is_empty() || rule.domain.trim().is_empty() {
                return Err(InvalidInput::new("a classification rule needs an id, a tag and a domain"));
            }
            if !ids.insert(rule.id.as_str()) {
                return Err(InvalidInput::new(format!("classification rule id {:?} is used twice", rule.id)));
            }
            if rule.value.is_empty() {
                return Err(InvalidInput::new(format!(
                    "classification rule {:?} matches an empty tag value, which no tag carries",
                    rule.id
                )));
            }
            if slug(&rule.domain) != rule.domain {
                return Err(InvalidInput::new(format!(
                    "classification rule {:?} names domain {:?}, which is not a domain id such as finance or customer-pii",
                    rule.id, rule.domain
                )));
            }
            if !matches.insert((rule.tag.as_str(), rule.value.as_str())) {
                return Err(InvalidInput::new(format!(
                    "classification rule {:?} matches tag {}={} like an earlier rule, so it would never apply",
                    rule.id, rule.tag, rule.value
                )));
            }
        }
        self.classification.validate()
    }
}

/// When a scan removes so much that it is held for a person to release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerPolicy {
    /// A scan that would remove more than this share (percent) of a list's entities, or of the
    /// tenant's paths, is quarantined...
    pub max_removed_percent: u32,
    /// ...provided it also removes at least this many (small tenants change a lot in relative
    /// terms).
    pub min_removed: u64,
}

impl Default for BreakerPolicy {
    fn default() -> BreakerPolicy {
        BreakerPolicy { max_removed_percent: 20, min_removed: 50 }
    }
}

impl BreakerPolicy {
    /// Whether removing `removed` of `existing` trips the breaker.
    pub fn trips(&self, removed: u64, existing: u64) -> bool {
        removed >= self.min_removed.max(1) && removed * 100 > existing * u64::from(self.max_removed_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::BreakerPolicy;

    #[test]
    fn the_breaker_needs_both_a_share_and_a_count() {
        let breaker = BreakerPolicy { max_removed_percent: 20, min_removed: 50 };
        assert!(!breaker.trips(49, 100), "under the minimum count");
        assert!(breaker.trips(50, 100), "50 of 100 is over 20 %");
        assert!(!breaker.trips(100, 1_000), "10 % of a large list");
        assert!(breaker.trips(201, 1_000));
        assert!(!breaker.trips(0, 0));
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let mut policy = super::Policy::default();
        assert!(policy.validate().is_ok());
        policy.evidence_window_days = 0;
        assert!(policy.validate().unwrap_err().to_string().contains("evidence_window_days"));
        policy.evidence_window_days = 30;
        policy.internal_host_suffixes = vec!["Contoso.com".into()];
        assert!(policy.validate().unwrap_err().to_string().contains("lowercase"));
        policy.internal_host_suffixes = vec![".contoso.com".into()];
        assert!(policy.validate().is_ok());
        policy.breaker.max_removed_percent = 101;
        assert!(policy.validate().unwrap_err().to_string().contains("max_removed_percent"));
    }
}
