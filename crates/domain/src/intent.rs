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
    /// When `identity` is one a plan creates (`planned:<address>`, unknown until apply), its
    /// name: the deployed identity is recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_name: Option<String>,
    /// The plan resource that declares the addition (`sv0 approve --plan`): a planned path
    /// that does not appear after the deployment is reported as `planned_missing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<String>,
}

/// The prefix of an identity a plan creates, until apply gives it an object id.
pub const PLANNED: &str = "planned:";

/// Whether an addition was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Whether `id` matches `pattern` (a trailing `*` matches a prefix). ARM ids (`/...`) compare
/// case-insensitively, as Azure compares them.
fn matches(pattern: Option<&str>, id: &str) -> bool {
    let Some(p) = pattern else { return true };
    let arm = p.starts_with('/');
    let (p, id) = if arm { (p.to_ascii_lowercase(), id.to_ascii_lowercase()) } else { (p.to_string(), id.to_string()) };
    match p.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => p == id,
    }
}

impl IntentItem {
    /// Whether this item covers `permissions` (the new ones) on `path`.
    pub fn covers(&self, path: &AuthorityPath, permissions: &[Permission]) -> bool {
        self.names(path) && permissions.iter().all(|p| self.permissions.contains(p))
    }

    /// Whether the item names this path's workload, identity (or, for a planned identity, its
    /// name) and destination.
    fn names(&self, path: &AuthorityPath) -> bool {
        let identity = match (self.identity.as_deref(), &self.identity_name) {
            (Some(id), Some(name)) if id.starts_with(PLANNED) => path.identity.id == id || path.identity.name == *name,
            (pattern, _) => matches(pattern, &path.identity.id),
        };
        identity
            && matches(self.workload.as_deref(), &path.workload.id)
            && matches(self.destination.as_deref(), &path.destination.id)
    }

    /// Whether `path` realises this item: it names it and holds every permission the item
    /// declares (a planned path that appeared).
    pub fn realized_by(&self, path: &AuthorityPath) -> bool {
        self.names(path) && self.permissions.iter().all(|p| path.permissions.contains(p))
    }
}

/// Largest number of broad items (naming neither an exact identity nor an exact destination)
/// an intent may hold: each is tried against every addition.
pub const MAX_BROAD_ITEMS: usize = 100;

/// The key an item is indexed by: an exact id (ARM ids lower-case); none for a pattern or a
/// planned identity (whose deployed id is not known yet).
fn exact(pattern: Option<&str>) -> Option<String> {
    pattern
        .filter(|p| !p.ends_with('*') && !p.starts_with(PLANNED))
        .map(|p| if p.starts_with('/') { p.to_ascii_lowercase() } else { p.to_string() })
}

fn key(id: &str) -> String {
    if id.starts_with('/') { id.to_ascii_lowercase() } else { id.to_string() }
}

/// An intent indexed for matching: the items that could cover a path are found by its
/// identity and destination, so matching costs the items about that identity or destination
/// plus the (at most `MAX_BROAD_ITEMS`) broad ones, not the whole intent, per addition.
#[derive(Debug, Default)]
pub struct IntentIndex<'a> {
    by_identity: BTreeMap<String, Vec<&'a IntentItem>>,
    by_destination: BTreeMap<String, Vec<&'a IntentItem>>,
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
        let named = |map: &BTreeMap<String, Vec<&'a IntentItem>>, id: &str| -> bool {
            map.get(&key(id)).is_some_and(|items| items.iter().any(|i| i.covers(path, permissions)))
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
