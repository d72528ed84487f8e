//! Declared intent: the additions a deployment says it will bring, approved together with the
//! baseline. After the deployment, every addition is `intended` (an item of the approved
//! intent covers it), `unintended` (an intent was declared and does not cover it) or
//! `unreviewed` (no intent was declared). SV0 never guesses which: a change nobody declared is
//! never "expected".
//!
//! The format (`schemas/intent.schema.json`) is a JSON list of items, each naming what the
//! deployment will add by identity and/or destination (and optionally workload), with the
//! permissions it may carry:
//!
//! ```json
//! [{"identity": "mi-hr", "destination": "graph/User", "permissions": ["read"],
//!   "note": "the onboarding agent reads employee profiles"}]
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::model::Permission;
use crate::paths::AuthorityPath;

/// Largest intent accepted, in items.
pub const MAX_INTENT_ITEMS: usize = 10_000;

/// One declared addition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntentItem {
    /// The workload that will gain the authority (its id; a trailing `*` matches a prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The identity that will hold it (its id; a trailing `*` matches a prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The destination it reaches (its id; a trailing `*` matches a prefix, e.g. every
    /// container of one storage account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The permissions the addition may carry: a path is covered when all of its new
    /// permissions are among these.
    pub permissions: Vec<Permission>,
    /// Why, in words, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether an addition was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// An item of the approved intent covers it.
    Intended,
    /// An intent was approved and no item covers it.
    Unintended,
    /// The baseline's approval declared no intent: nobody said whether it was meant.
    Unreviewed,
}

impl IntentStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            IntentStatus::Intended => "intended",
            IntentStatus::Unintended => "unintended",
            IntentStatus::Unreviewed => "unreviewed",
        }
    }
}

fn matches(pattern: Option<&str>, id: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => match p.strip_suffix('*') {
            Some(prefix) => id.starts_with(prefix),
            None => p == id,
        },
    }
}

impl IntentItem {
    /// Whether this item covers `permissions` (the new ones) on `path`.
    pub fn covers(&self, path: &AuthorityPath, permissions: &[Permission]) -> bool {
        matches(self.workload.as_deref(), &path.workload.id)
            && matches(self.identity.as_deref(), &path.identity.id)
            && matches(self.destination.as_deref(), &path.destination.id)
            && permissions.iter().all(|p| self.permissions.contains(p))
    }
}

/// Largest number of broad items (naming neither an exact identity nor an exact destination)
/// an intent may hold: each is tried against every addition.
pub const MAX_BROAD_ITEMS: usize = 100;

fn exact(pattern: Option<&str>) -> Option<&str> {
    pattern.filter(|p| !p.ends_with('*'))
}

/// An intent indexed for matching: the items that could cover a path are found by its
/// identity and destination, so matching costs the items about that identity or destination
/// plus the (at most `MAX_BROAD_ITEMS`) broad ones, not the whole intent, per addition.
#[derive(Debug, Default)]
pub struct IntentIndex<'a> {
    by_identity: BTreeMap<&'a str, Vec<&'a IntentItem>>,
    by_destination: BTreeMap<&'a str, Vec<&'a IntentItem>>,
    broad: Vec<&'a IntentItem>,
}

impl<'a> IntentIndex<'a> {
    /// Indexes `items`.
    pub fn new(items: &'a [IntentItem]) -> IntentIndex<'a> {
        let mut index = IntentIndex::default();
        for item in items {
            match (exact(item.identity.as_deref()), exact(item.destination.as_deref())) {
                (Some(identity), _) => index.by_identity.entry(identity).or_default().push(item),
                (None, Some(destination)) => index.by_destination.entry(destination).or_default().push(item),
                (None, None) => index.broad.push(item),
            }
        }
        index
    }

    fn covers(&self, path: &AuthorityPath, permissions: &[Permission]) -> bool {
        let named = |map: &BTreeMap<&'a str, Vec<&'a IntentItem>>, key: &str| -> bool {
            map.get(key).is_some_and(|items| items.iter().any(|i| i.covers(path, permissions)))
        };
        named(&self.by_identity, &path.identity.id)
            || named(&self.by_destination, &path.destination.id)
            || self.broad.iter().any(|i| i.covers(path, permissions))
    }
}

/// The status of an addition: `permissions` are what it adds to `path`; `intent` is the
/// baseline's declared intent, indexed (`None`: none was declared).
pub fn status(intent: Option<&IntentIndex<'_>>, path: &AuthorityPath, permissions: &[Permission]) -> IntentStatus {
    match intent {
        None => IntentStatus::Unreviewed,
        Some(index) if index.covers(path, permissions) => IntentStatus::Intended,
        Some(_) => IntentStatus::Unintended,
    }
}

/// Checks a declared intent: every item names an identity or a destination and at least one
/// permission, patterns are not empty, and there are at most `MAX_INTENT_ITEMS`.
pub fn validate(items: &[IntentItem]) -> Result<(), InvalidInput> {
    if items.len() > MAX_INTENT_ITEMS {
        return Err(InvalidInput::new(format!(
            "the intent has {} items; at most {MAX_INTENT_ITEMS} are accepted",
            items.len()
        )));
    }
    let broad = items
        .iter()
        .filter(|i| exact(i.identity.as_deref()).is_none() && exact(i.destination.as_deref()).is_none())
        .count();
    if broad > MAX_BROAD_ITEMS {
        return Err(InvalidInput::new(format!(
            "the intent has {broad} items naming neither an exact identity nor an exact destination; at most {MAX_BROAD_ITEMS} are accepted"
        )));
    }
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        if item.identity.is_none() && item.destination.is_none() {
            return Err(InvalidInput::new(format!(
                "intent item {n} names neither an identity nor a destination, so it would cover any path"
            )));
        }
        if item.permissions.is_empty() {
            return Err(InvalidInput::new(format!("intent item {n} names no permission, so it covers nothing")));
        }
        for (field, value) in
            [("workload", &item.workload), ("identity", &item.identity), ("destination", &item.destination)]
        {
            if value.as_deref().is_some_and(|v| v.trim_end_matches('*').is_empty()) {
                return Err(InvalidInput::new(format!("intent item {n} has an empty {field}")));
            }
        }
    }
    Ok(())
}
