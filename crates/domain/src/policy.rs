//! A tenant's policy: the settings the rules depend on. It is set by a `policy.set` event, so a
//! replay folds every scan with the policy that was in force then, whatever the configuration
//! is today.

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::model::ClassificationRule;

/// Longest evidence window or owner silence limit a policy may set, in days (ten years).
pub const MAX_DAYS: u32 = 3_650;

/// The settings SV0's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Largest Rego policy source accepted, in bytes.
pub const MAX_REGO_BYTES: usize = 256 * 1024;

/// A customer's disposition policy in Rego (package `sv0`): it defines `decision`
/// (`"approved"`, `"requires_review"` or `"rejected"`) and optionally `reasons` (strings or
/// objects with `rule`, `text` and `path_ids`), over the input document `sv0 export opa-input`
/// prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegoPolicy {
    /// Whether the policy replaces the built-in rules or adds to them.
    pub mode: RegoMode,
    /// The policy's source text.
    pub source: String,
}

/// How a Rego policy combines with the built-in disposition rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

impl Policy {
    /// Paths a delta must break the match on for the scope to count as drifted.
    pub fn drift_threshold_paths(&self) -> u32 {
        self.drift_threshold.unwrap_or(1).max(1)
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
        for rule in &self.classification_rules {
            if rule.id.trim().is_empty() || rule.tag.trim().is_empty() || rule.domain.trim().is_empty() {
                return Err(InvalidInput::new("a classification rule needs an id, a tag and a domain"));
            }
            if !ids.insert(rule.id.as_str()) {
                return Err(InvalidInput::new(format!("classification rule id {:?} is used twice", rule.id)));
            }
        }
        Ok(())
    }
}

/// When a scan removes so much that it is held for a person to release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
