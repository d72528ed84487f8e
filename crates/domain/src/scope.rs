//! Scopes: the selection of workloads a review covers.
//!
//! A scope is a union of selectors written `project:NAME`, `workload:ID`, `tag:KEY=VALUE` or
//! `all`, separated by commas. Its canonical text (selectors sorted, duplicates removed) names
//! its baseline, so `project:B,project:A` and `project:A,project:B` are the same scope.
//! Membership is decided at evaluation time: a workload created in the project later is in
//! scope, which is exactly what post-deployment verification needs to see.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidInput;
use crate::ids::stable_hash;
use crate::model::Workload;

/// One way of selecting workloads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// Every workload of the tenant.
    All,
    /// Workloads whose `project` equals the name.
    Project(String),
    /// One workload by id.
    Workload(String),
    /// Workloads carrying the tag `key=value`.
    Tag(String, String),
}

impl Selector {
    fn parse(text: &str) -> Result<Selector, InvalidInput> {
        let text = text.trim();
        if text == "all" {
            return Ok(Selector::All);
        }
        let hint = "Use project:NAME, workload:ID, tag:KEY=VALUE or all, separated by commas.";
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| InvalidInput::new(format!("invalid scope selector {text:?}. {hint}")))?;
        if value.is_empty() {
            return Err(InvalidInput::new(format!("empty value in scope selector {text:?}. {hint}")));
        }
        match kind {
            "project" => Ok(Selector::Project(value.to_string())),
            "workload" => Ok(Selector::Workload(value.to_string())),
            "tag" => match value.split_once('=') {
                Some((key, tag_value)) if !key.is_empty() => Ok(Selector::Tag(key.to_string(), tag_value.to_string())),
                _ => Err(InvalidInput::new(format!("invalid tag selector {text:?}: use tag:KEY=VALUE"))),
            },
            other => Err(InvalidInput::new(format!("unknown scope selector kind {other:?}. {hint}"))),
        }
    }

    fn matches(&self, workload: &Workload) -> bool {
        match self {
            Selector::All => true,
            Selector::Project(name) => workload.project.as_deref() == Some(name.as_str()),
            Selector::Workload(id) => &workload.id == id,
            Selector::Tag(key, value) => workload.tags.get(key) == Some(value),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all"),
            Selector::Project(name) => write!(f, "project:{name}"),
            Selector::Workload(id) => write!(f, "workload:{id}"),
            Selector::Tag(key, value) => write!(f, "tag:{key}={value}"),
        }
    }
}

/// A set of selectors; a workload is in scope when any selector matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    selectors: Vec<Selector>,
}

impl Scope {
    /// Parses comma-separated selectors.
    pub fn parse(text: &str) -> Result<Scope, InvalidInput> {
        let mut selectors = text
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Selector::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if selectors.is_empty() {
            return Err(InvalidInput::new("empty scope: name at least one selector, e.g. project:HR-Automation"));
        }
        selectors.sort();
        selectors.dedup();
        Ok(Scope { selectors })
    }

    /// The scope that selects every workload.
    pub fn all() -> Scope {
        Scope { selectors: vec![Selector::All] }
    }

    /// The selectors, sorted.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Whether the workload is in scope.
    pub fn matches(&self, workload: &Workload) -> bool {
        self.selectors.iter().any(|s| s.matches(workload))
    }

    /// Canonical text: sorted, deduplicated selectors joined by commas.
    pub fn canonical(&self) -> String {
        self.to_string()
    }

    /// A short stable key for the scope, safe in subjects and table keys.
    pub fn key(&self) -> String {
        stable_hash("sv0.scope.v1", &[&self.canonical()], 16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, selector) in self.selectors.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{selector}")?;
        }
        Ok(())
    }
}

impl schemars::JsonSchema for Scope {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scope".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Selectors joined by ',': all, project:NAME, workload:ID or tag:KEY=VALUE, e.g. project:HR-Automation"
        })
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_order_and_duplicates() {
        let a = Scope::parse("project:B, project:A,project:B").unwrap();
        let b = Scope::parse("project:A,project:B").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical(), "project:A,project:B");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), Scope::parse("project:A").unwrap().key());
    }

    #[test]
    fn bad_selectors_are_explained() {
        for bad in ["", "project:", "team:x", "tag:=x", "HR-Automation"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
