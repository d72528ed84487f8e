//! The tenant's entities as the views keep them, their secondary indexes, and `StoredGraph`,
//! the `GraphLookup` that path computation reads them through.
//!
//! Entity rows: `ENTITIES (tenant, list, id) → entity` (canonical CBOR, packed: `entity_row`). Index rows:
//! `ENTITY_INDEX (tenant, index, value, id) → payload`, one family per relation a rescan must
//! follow to find the workloads a change reaches:
//!
//! | index | value | payload |
//! |---|---|---|
//! | `binding.workload` | workload | identity |
//! | `binding.identity` | identity | workload |
//! | `grant.identity` | identity | |
//! | `credential.identity` | identity | |
//! | `evidence.identity` | identity | |
//! | `evidence.workload` | workload | |
//! | `evidence.time` | time (16 hex digits of ms) | |
//! | `workload.owner` / `identity.owner` | owner | |
//! | `workload.project` | project | |
//! | `workload.tag` | `key=value` | |
//!
//! Which identities reach a destination is not indexed here: a changed destination selects
//! the paths through it, which the path index (`pathstore`, `destination`) already lists.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sv0_domain::TenantId;
use sv0_domain::model::{
    Binding, ClassificationRule, Credential, DataDomain, Destination, Evidence, Grant, Identity, Owner, Workload,
};
use sv0_domain::paths::GraphLookup;
use sv0_domain::snapshot::{Entities, EntityList};

use crate::batch::{Batch, Target};
use crate::error::ProjectionError;
use crate::store::{self, key, prefix};

/// Any one entity, with the list it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnyEntity {
    Domain(DataDomain),
    Rule(ClassificationRule),
    Owner(Owner),
    Workload(Workload),
    Identity(Identity),
    Credential(Credential),
    Destination(Destination),
    Grant(Grant),
    Binding(Binding),
    Evidence(Evidence),
}

fn decode<E: DeserializeOwned>(bytes: &[u8]) -> Result<E, ProjectionError> {
    store::decode("entities", bytes)
}

/// An entity's row: its canonical CBOR, packed (`store::pack`). A grant's id, scope and
/// destination share long ARM prefixes, a third of its bytes. Scans compare entities by their
/// canonical bytes, never by rows, so the compressor's output is never relied on.
pub(crate) fn entity_row(canonical: &[u8]) -> Vec<u8> {
    store::pack(canonical)
}

/// The canonical CBOR an entity row holds.
pub(crate) fn canonical(row: &[u8]) -> Result<Vec<u8>, ProjectionError> {
    store::unpack("entities", row)
}

/// Decodes an entity row.
pub(crate) fn decode_row<E: DeserializeOwned>(row: &[u8]) -> Result<E, ProjectionError> {
    decode(&canonical(row)?)
}

/// One stored entity, by list and id.
pub(crate) fn get_entity<E: DeserializeOwned>(
    entities: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    list: EntityList,
    id: &str,
) -> Result<Option<E>, ProjectionError> {
    match entities.get(entity_key(tenant, list, id).as_slice())? {
        Some(row) => Ok(Some(decode_row(row.value())?)),
        None => Ok(None),
    }
}

impl AnyEntity {
    pub(crate) fn decode(list: EntityList, bytes: &[u8]) -> Result<AnyEntity, ProjectionError> {
        Ok(match list {
            EntityList::Domains => AnyEntity::Domain(decode(bytes)?),
            EntityList::ClassificationRules => AnyEntity::Rule(decode(bytes)?),
            EntityList::Owners => AnyEntity::Owner(decode(bytes)?),
            EntityList::Workloads => AnyEntity::Workload(decode(bytes)?),
            EntityList::Identities => AnyEntity::Identity(decode(bytes)?),
            EntityList::Credentials => AnyEntity::Credential(decode(bytes)?),
            EntityList::Destinations => AnyEntity::Destination(decode(bytes)?),
            EntityList::Grants => AnyEntity::Grant(decode(bytes)?),
            EntityList::Bindings => AnyEntity::Binding(decode(bytes)?),
            EntityList::Evidence => AnyEntity::Evidence(decode(bytes)?),
        })
    }

    /// The index rows of the entity: (index, value, payload).
    pub(crate) fn index_entries(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        match self {
            AnyEntity::Workload(w) => {
                for owner in &w.owners {
                    out.push(("workload.owner", owner.clone(), String::new()));
                }
                if let Some(project) = &w.project {
                    out.push(("workload.project", project.clone(), String::new()));
                }
                for (k, v) in &w.tags {
                    out.push(("workload.tag", format!("{k}={v}"), String::new()));
                }
            }
            AnyEntity::Identity(i) => {
                for owner in &i.owners {
                    out.push(("identity.owner", owner.clone(), String::new()));
                }
            }
            AnyEntity::Binding(b) => {
                out.push(("binding.workload", b.workload.clone(), b.identity.clone()));
                out.push(("binding.identity", b.identity.clone(), b.workload.clone()));
            }
            AnyEntity::Grant(g) => {
                out.push(("grant.identity", g.identity.clone(), String::new()));
            }
            AnyEntity::Credential(c) => {
                out.push(("credential.identity", c.identity.clone(), String::new()));
                // When its findings can change by time alone.
                for at in sv0_domain::findings::credential_instants(c) {
                    out.push(("credential.time", time_key(at.0), String::new()));
                }
            }
            AnyEntity::Evidence(e) => {
                if let Some(identity) = &e.identity {
                    out.push(("evidence.identity", identity.clone(), String::new()));
                }
                if let Some(workload) = &e.workload {
                    out.push(("evidence.workload", workload.clone(), String::new()));
                }
                out.push(("evidence.time", time_key(e.at.0), String::new()));
            }
            AnyEntity::Destination(d) => {
                // ARM ids are case-insensitive: a plan names a resource in whatever case its
                // author wrote; this finds the destination whatever case the scan gave it.
                if d.id.starts_with('/') {
                    out.push(("destination.arm", d.id.to_ascii_lowercase(), String::new()));
                }
            }
            AnyEntity::Domain(_) | AnyEntity::Rule(_) | AnyEntity::Owner(_) => {}
        }
        out
    }
}

/// A sortable text form of a time: 16 hex digits of the milliseconds, offset so that times
/// before 1970 sort too.
pub(crate) fn time_key(ms: i64) -> String {
    format!("{:016x}", (ms as u64) ^ (1 << 63))
}

/// A scan's entity rows by list: `(id, canonical bytes)` in id order.
pub(crate) type ScanRows = BTreeMap<EntityList, Vec<(String, Vec<u8>)>>;

/// A scan's (or one chunk's) entities as encoded entity rows, by list, each list in the order
/// given.
pub(crate) fn scan_rows(entities: &Entities) -> Result<ScanRows, ProjectionError> {
    fn add<E: Serialize>(
        out: &mut ScanRows,
        list: EntityList,
        items: &[E],
        id: impl Fn(&E) -> &str,
    ) -> Result<(), ProjectionError> {
        if !items.is_empty() {
            let rows = items.iter().map(|item| Ok((id(item).to_string(), store::encode(item)?)));
            out.insert(list, rows.collect::<Result<_, ProjectionError>>()?);
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    add(&mut out, EntityList::Domains, &entities.domains, |e| &e.id)?;
    add(&mut out, EntityList::ClassificationRules, &entities.classification_rules, |e| &e.id)?;
    add(&mut out, EntityList::Owners, &entities.owners, |e| &e.id)?;
    add(&mut out, EntityList::Workloads, &entities.workloads, |e| &e.id)?;
    add(&mut out, EntityList::Identities, &entities.identities, |e| &e.id)?;
    add(&mut out, EntityList::Credentials, &entities.credentials, |e| &e.id)?;
    add(&mut out, EntityList::Destinations, &entities.destinations, |e| &e.id)?;
    add(&mut out, EntityList::Grants, &entities.grants, |e| &e.id)?;
    add(&mut out, EntityList::Bindings, &entities.bindings, |e| &e.id)?;
    add(&mut out, EntityList::Evidence, &entities.evidence, |e| &e.id)?;
    Ok(out)
}

/// The key of an entity row.
pub(crate) fn entity_key(tenant: &TenantId, list: EntityList, id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), list.name().as_bytes(), id.as_bytes()])
}

fn index_key(tenant: &TenantId, index: &str, value: &str, id: &str) -> Vec<u8> {
    key(&[tenant.as_str().as_bytes(), index.as_bytes(), value.as_bytes(), id.as_bytes()])
}

/// Queues the writes (or, with `remove`, the deletions) of an entity's index rows.
pub(crate) fn write_index(batch: &mut Batch, tenant: &TenantId, id: &str, entity: &AnyEntity, remove: bool) {
    for (index, value, payload) in entity.index_entries() {
        let k = index_key(tenant, index, &value, id);
        if remove {
            batch.remove(Target::EntityIndex, k);
        } else {
            batch.put(Target::EntityIndex, k, payload.into_bytes());
        }
    }
}

/// `(entity id, payload)` of every index row with this index and value.
pub(crate) fn index_lookup(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    index: &str,
    value: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let p = prefix(&[tenant.as_str().as_bytes(), index.as_bytes(), value.as_bytes()]);
    Ok(store::scan_raw(table, &p)?
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k[p.len()..]).into_owned(), String::from_utf8_lossy(&v).into_owned()))
        .collect())
}

/// `(value, id, payload)` of index rows with `from < value <= to` (for time indexes).
pub(crate) fn index_range(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    index: &str,
    from_exclusive: &str,
    to_inclusive: &str,
) -> Result<Vec<(String, String, String)>, ProjectionError> {
    let base = prefix(&[tenant.as_str().as_bytes(), index.as_bytes()]);
    let mut start = base.clone();
    start.extend_from_slice(from_exclusive.as_bytes());
    start.push(1);
    let mut end = base.clone();
    end.extend_from_slice(to_inclusive.as_bytes());
    end.push(1);
    let mut out = Vec::new();
    for entry in table.range(start.as_slice()..end.as_slice())? {
        let (k, v) = entry?;
        let rest = &k.value()[base.len()..];
        if let Some(split) = rest.iter().position(|b| *b == 0) {
            out.push((
                String::from_utf8_lossy(&rest[..split]).into_owned(),
                String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
                String::from_utf8_lossy(v.value()).into_owned(),
            ));
        }
    }
    Ok(out)
}

/// `(lower-case value, entity id)` of the rows of `index` whose value is `prefix` or below it
/// (`prefix/...`): the destinations at or below an ARM id.
pub(crate) fn index_below(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    index: &str,
    below: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let base = prefix(&[tenant.as_str().as_bytes(), index.as_bytes()]);
    let mut start = base.clone();
    start.extend_from_slice(below.as_bytes());
    let mut out = Vec::new();
    for entry in table.range(start.as_slice()..)? {
        let (k, _) = entry?;
        let key = k.value();
        if !key.starts_with(&start) {
            break;
        }
        let rest = &key[base.len()..];
        let Some(split) = rest.iter().position(|b| *b == 0) else { continue };
        let value = String::from_utf8_lossy(&rest[..split]).into_owned();
        if value == below || value.as_bytes().get(below.len()) == Some(&b'/') {
            out.push((value, String::from_utf8_lossy(&rest[split + 1..]).into_owned()));
        }
    }
    Ok(out)
}

/// The workloads bound to an identity.
pub(crate) fn workloads_of_identity(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    identity: &str,
) -> Result<BTreeSet<String>, ProjectionError> {
    Ok(index_lookup(table, tenant, "binding.identity", identity)?.into_iter().map(|(_, w)| w).collect())
}

/// Entities a path computation reads again and again (a destination for every path to it, an
/// owner for every path of a workload), decoded once per fold step. The views do not change
/// while a cache is in use: it lives for one recomputation.
#[derive(Default)]
pub(crate) struct GraphCache {
    identities: RefCell<Cache<Identity>>,
    destinations: RefCell<Cache<Destination>>,
    domains: RefCell<Cache<DataDomain>>,
    owners: RefCell<Cache<Owner>>,
    rules: RefCell<Option<Vec<ClassificationRule>>>,
}

/// Entities by id, as read (`None`: no such row). Looked up by key and never iterated, so the
/// hash order (which `clippy.toml` keeps out of this crate otherwise) decides nothing.
#[allow(clippy::disallowed_types)]
type Cache<E> = std::collections::HashMap<String, Option<E>>;

/// A `GraphLookup` over the views' entity rows: inside a write transaction (it sees the
/// transaction's own writes) or a read transaction (a what-if).
pub(crate) struct StoredGraph<'a, R> {
    pub entities: &'a R,
    pub index: &'a R,
    pub tenant: &'a TenantId,
    pub cache: &'a GraphCache,
}

impl<R: ReadableTable<&'static [u8], &'static [u8]>> StoredGraph<'_, R> {
    fn get<E: DeserializeOwned>(&self, list: EntityList, id: &str) -> Option<E> {
        // Rows this crate wrote always decode; a damaged one reads as absent here and is
        // reported by `Views` queries and rebuilds.
        get_entity(self.entities, self.tenant, list, id).ok().flatten()
    }

    fn cached<E: DeserializeOwned + Clone>(&self, cache: &RefCell<Cache<E>>, list: EntityList, id: &str) -> Option<E> {
        if let Some(hit) = cache.borrow().get(id) {
            return hit.clone();
        }
        let value: Option<E> = self.get(list, id);
        cache.borrow_mut().insert(id.to_string(), value.clone());
        value
    }

    fn related<E: DeserializeOwned>(&self, index: &str, value: &str, list: EntityList) -> Vec<E> {
        index_lookup(self.index, self.tenant, index, value)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, _)| self.get(list, &id))
            .collect()
    }
}

impl<R: ReadableTable<&'static [u8], &'static [u8]>> GraphLookup for StoredGraph<'_, R> {
    fn workload(&self, id: &str) -> Option<Workload> {
        self.get(EntityList::Workloads, id)
    }
    fn bindings_of(&self, workload: &str) -> Vec<Binding> {
        self.related("binding.workload", workload, EntityList::Bindings)
    }
    fn identity(&self, id: &str) -> Option<Identity> {
        self.cached(&self.cache.identities, EntityList::Identities, id)
    }
    fn grants_of(&self, identity: &str) -> Vec<Grant> {
        self.related("grant.identity", identity, EntityList::Grants)
    }
    fn destination(&self, id: &str) -> Option<Destination> {
        self.cached(&self.cache.destinations, EntityList::Destinations, id)
    }
    fn domain(&self, id: &str) -> Option<DataDomain> {
        self.cached(&self.cache.domains, EntityList::Domains, id)
    }
    fn classification_rules(&self) -> Vec<ClassificationRule> {
        if let Some(rules) = self.cache.rules.borrow().as_ref() {
            return rules.clone();
        }
        let p = prefix(&[self.tenant.as_str().as_bytes(), EntityList::ClassificationRules.name().as_bytes()]);
        let rules: Vec<ClassificationRule> = store::scan_raw(self.entities, &p)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| decode_row(&v).ok())
            .collect();
        *self.cache.rules.borrow_mut() = Some(rules.clone());
        rules
    }
    fn owner(&self, id: &str) -> Option<Owner> {
        self.cached(&self.cache.owners, EntityList::Owners, id)
    }
    fn evidence_of_identity(&self, identity: &str) -> Vec<Evidence> {
        self.related("evidence.identity", identity, EntityList::Evidence)
    }
    fn evidence_of_workload(&self, workload: &str) -> Vec<Evidence> {
        self.related("evidence.workload", workload, EntityList::Evidence)
    }
}
