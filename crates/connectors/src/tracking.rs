//! Vendor change tracking between the rounds of `sv0 watch`: a collection that the vendor can
//! report changes of is read whole once, and afterwards only what changed since is asked for
//! and applied to the copy kept from the last round, so the vendor's work grows with the change.
//!
//! Microsoft Graph's delta queries (learn.microsoft.com/graph/delta-query-overview) track
//! `servicePrincipals` and `applications`:
//! - A full round asks for the current `@odata.deltaLink` first (`delta?$deltaToken=latest`,
//!   "sync from now", so nothing that changes during the full read is missed; a change seen
//!   twice is applied twice, harmlessly), then lists the collection as without tracking.
//! - A tracked round follows the kept link through its pages. A created item comes whole, an
//!   updated one with at least its changed properties (laid over the kept copy), a removed one
//!   as its `id` and `@removed`. Navigation properties are not tracked, so the owners of a new
//!   item are read apart (`/{id}/owners`), and an owner added to or removed from an existing
//!   item is seen at the next full round.
//! - `410 Gone` or an expired sync state (`syncStateNotFound`) reads the collection whole again.
//! - Any other failure, of the changes or of a new item's owners, leaves the kept copy and link
//!   as they were (the next round asks again from the same link) and fails the API for this
//!   round, so the scan is partial and removes nothing the API would have shown.
//!
//! What is kept lives in the watch's memory only: a restarted watch begins with a full round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::json::str;
use crate::schema::Field;
use crate::source::{Call, Changes, Ledger, Listing, Paging, Service, Source};

/// The changes of a delta query are records with an id; the rest is checked after merging.
const CHANGE_KEYS: &[Field] = &[Field::Key("id")];
/// The field each owner read apart carries, naming the item it owns.
const OWNER_OF: &str = "sv0OwnerOf";

/// What the connectors keep between rounds to read only what changed.
#[derive(Default)]
pub struct Tracking {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether this round reads every collection whole.
    full: bool,
    collections: BTreeMap<&'static str, Collection>,
    reads: BTreeMap<&'static str, Read>,
}

/// One collection as last read: its items by lower-cased id, and the link that asks the vendor
/// what changed since.
struct Collection {
    link: String,
    items: BTreeMap<String, Value>,
}

/// How a collection was read in the latest round.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "read", rename_all = "snake_case")]
pub enum Read {
    /// Whole, and tracked from then on (`tracked: false` when the vendor gave no delta link).
    Full {
        /// Whether a delta link was kept for the next round.
        tracked: bool,
    },
    /// Only the changes since the previous round.
    Changes {
        /// Items created or updated.
        changed: usize,
        /// Items removed.
        removed: usize,
    },
    /// The vendor asked for a full read (its reason), which followed.
    Resync {
        /// The vendor's answer.
        reason: String,
    },
    /// The changes could not be read; the collection is partial this round.
    Failed {
        /// Why.
        error: String,
    },
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let sizes: BTreeMap<_, _> = state.collections.iter().map(|(api, c)| (*api, c.items.len())).collect();
        f.debug_struct("Tracking").field("full", &state.full).field("collections", &sizes).finish()
    }
}

impl Tracking {
    /// Nothing tracked yet: the first round reads everything.
    pub fn new() -> Tracking {
        Tracking::default()
    }

    /// Starts a round; a `full` one reads every collection whole, and tracking starts again
    /// from what it reads.
    pub fn begin_round(&self, full: bool) {
        let mut state = self.lock();
        state.full = full;
        state.reads.clear();
    }

    /// How each tracked collection was read in the round, by API.
    pub fn reads(&self) -> BTreeMap<&'static str, Read> {
        self.lock().reads.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, api: &'static str, read: Read) {
        self.lock().reads.insert(api, read);
    }
}

/// A Microsoft Graph collection that delta queries track, listed with its items' owners.
pub(crate) struct GraphCollection {
    /// The API (`graph.servicePrincipals`).
    pub api: &'static str,
    /// The collection under `/v1.0` (`servicePrincipals`).
    pub resource: &'static str,
    /// The owner fields read (`id,displayName,...`).
    pub owner_fields: &'static str,
}

impl GraphCollection {
    fn call(&self, path: String) -> Call {
        Call::get(self.api, Service::Graph, path, Paging::OData)
    }

    /// The full read: `/v1.0/<resource>?$top=999&$expand=owners($select=...)`.
    fn full(&self) -> Call {
        self.call(format!("/v1.0/{}?$top=999&$expand=owners($select={})", self.resource, self.owner_fields))
    }

    /// A delta query: the current link (`$deltaToken=latest`), or what changed since `link`.
    fn changes(&self, link: Option<&str>) -> Call {
        let path =
            link.map(str::to_string).unwrap_or_else(|| format!("/v1.0/{}/delta?$deltaToken=latest", self.resource));
        self.call(path).keys(CHANGE_KEYS)
    }

    /// One item's owners: `/v1.0/<resource>/{id}/owners?$select=...`.
    fn owners(&self, id: &str) -> Call {
        self.call(format!("/v1.0/{}/{id}/owners?$select={}", self.resource, self.owner_fields))
            .keys(CHANGE_KEYS)
            .tagged(OWNER_OF, id)
    }
}

/// Reads a collection: whole without tracking (an export, a one-off scan), in a full round,
/// or when nothing is kept yet; else the changes since the previous round.
pub(crate) async fn read(
    source: &Source,
    tracking: Option<&Tracking>,
    collection: GraphCollection,
    ledger: &Ledger,
) -> Listing {
    let Some(tracking) = tracking.filter(|_| !source.is_export()) else {
        return source.list(collection.full(), ledger).await;
    };
    let api = collection.api;
    let kept = {
        let mut state = tracking.lock();
        if state.full { None } else { state.collections.remove(api) }
    };
    let mut resync = None;
    if let Some(kept) = kept {
        match source.changes(collection.changes(Some(&kept.link)), ledger).await {
            Changes::Read { items, delta_link } => {
                return apply(source, tracking, &collection, kept, items, delta_link, ledger).await;
            }
            Changes::Resync(reason) => {
                tracing::info!(api, reason, "the vendor asks for a full read; reading the collection whole");
                resync = Some(reason);
            }
            Changes::Failed(error) => return failed(tracking, api, kept, error, ledger),
        }
    }
    // Whole: the link first, so that what changes during the read is asked for next round.
    let link = match source.changes(collection.changes(None), ledger).await {
        Changes::Read { delta_link, .. } => Some(delta_link),
        Changes::Resync(reason) | Changes::Failed(reason) => {
            tracing::warn!(api, reason, "the vendor's change tracking is unavailable; the next round reads it whole");
            None
        }
    };
    let listing = source.list(collection.full(), ledger).await;
    let link = link.filter(|_| listing.complete);
    let tracked = link.is_some();
    if let Some(link) = link {
        let items = listing.items.iter().filter_map(|item| Some((str(item, "id")?.to_ascii_lowercase(), item.clone())));
        tracking.lock().collections.insert(api, Collection { link, items: items.collect() });
    }
    tracking.record(api, resync.map(|reason| Read::Resync { reason }).unwrap_or(Read::Full { tracked }));
    listing
}

/// Applies a round's changes to the kept copy (reading the owners of new items), keeps the
/// result with the new link, and returns it whole. Only the items the changes touch are
/// copied: the kept copy stays as it was until every owner is read and every touched item is
/// a valid record (the others were checked when they were read).
async fn apply(
    source: &Source,
    tracking: &Tracking,
    collection: &GraphCollection,
    mut kept: Collection,
    changes: Vec<Value>,
    delta_link: String,
    ledger: &Ledger,
) -> Listing {
    let api = collection.api;
    // Each touched item as the changes leave it (`None`: removed).
    let mut touched: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let (mut created, mut changed, mut removed) = (BTreeSet::new(), 0, 0);
    for change in changes {
        let Some(id) = str(&change, "id").map(str::to_ascii_lowercase) else { continue };
        let item = touched.entry(id.clone()).or_insert_with(|| kept.items.get(&id).cloned());
        if change.get("@removed").is_some() {
            removed += usize::from(item.take().is_some());
            created.remove(&id);
            continue;
        }
        changed += 1;
        match (item, change) {
            (Some(Value::Object(item)), Value::Object(update)) => item.extend(update),
            (item, change) => {
                created.insert(id);
                *item = Some(change);
            }
        }
    }
    // Navigation properties are not tracked: a new item's owners are read apart.
    let calls = created.iter().map(|id| collection.owners(id)).collect();
    let owners = source.list_each(api, calls, ledger).await;
    if !owners.complete {
        let error = format!("the owners of {} new item(s) could not be read", created.len());
        return failed(tracking, api, kept, error, ledger);
    }
    let mut owned: BTreeMap<String, Vec<Value>> = created.iter().map(|id| (id.clone(), Vec::new())).collect();
    for mut owner in owners.items {
        let of = owner.as_object_mut().and_then(|o| o.remove(OWNER_OF));
        if let Some(list) = of.as_ref().and_then(Value::as_str).and_then(|id| owned.get_mut(id)) {
            list.push(owner);
        }
    }
    for (id, list) in owned {
        if let Some(Some(Value::Object(item))) = touched.get_mut(&id) {
            item.insert("owners".into(), Value::Array(list));
        }
    }
    let updated: Vec<Value> = touched.values().flatten().cloned().collect();
    if let Err(error) = crate::schema::check(&updated, crate::schema::of(api)) {
        return failed(tracking, api, kept, format!("{api} after its changes is malformed: {error}"), ledger);
    }
    for (id, item) in touched {
        match item {
            Some(item) => kept.items.insert(id, item),
            None => kept.items.remove(&id),
        };
    }
    ledger.finished(api, None);
    tracking.record(api, Read::Changes { changed, removed });
    let whole = kept.items.values().cloned().collect();
    tracking.lock().collections.insert(api, Collection { link: delta_link, items: kept.items });
    Listing { items: whole, complete: true }
}

/// The changes could not be read: the kept copy and link stay for the next round, and this
/// round's read is partial (the kept items, which removes nothing).
fn failed(tracking: &Tracking, api: &'static str, kept: Collection, error: String, ledger: &Ledger) -> Listing {
    ledger.finished(api, Some(&error));
    tracking.record(api, Read::Failed { error });
    let items = kept.items.values().cloned().collect();
    tracking.lock().collections.insert(api, kept);
    Listing { items, complete: false }
}
