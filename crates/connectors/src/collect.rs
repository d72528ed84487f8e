//! What the connectors read, merged by id, and made self-consistent: every reference in the
//! snapshot resolves, and what could not be resolved is counted, not guessed.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::model::{
    Binding, ClassificationRule, Credential, DataDomain, Destination, DestinationKind, Evidence, Grant, Identity,
    IdentityKind, LogState, Owner, Presence, Workload,
};
use sv0_domain::snapshot::{Entities, EntityList};

/// A destination of which only the id, name and kind are known.
pub fn bare_destination(id: impl Into<String>, name: impl Into<String>, kind: DestinationKind) -> Destination {
    Destination {
        id: id.into(),
        name: name.into(),
        kind,
        service: None,
        host: None,
        domain: None,
        egress: None,
        tags: BTreeMap::new(),
        execution_logs: None,
        execution_log_source: None,
    }
}

/// An enabled identity of this tenant without owners, read from its own record.
pub fn bare_identity(id: impl Into<String>, name: impl Into<String>, kind: IdentityKind) -> Identity {
    Identity {
        id: id.into(),
        name: name.into(),
        kind,
        enabled: true,
        home_tenant: None,
        owners: Vec::new(),
        presence: Presence::Recorded,
    }
}

/// Entities by id (so that the snapshot is sorted and deterministic whatever order the pages
/// came in), and the lists each API fills.
#[derive(Debug, Default)]
pub struct Collected {
    /// Data domains.
    pub domains: BTreeMap<String, DataDomain>,
    /// Classification rules.
    pub rules: BTreeMap<String, ClassificationRule>,
    /// Owners.
    pub owners: BTreeMap<String, Owner>,
    /// Workloads.
    pub workloads: BTreeMap<String, Workload>,
    /// Identities.
    pub identities: BTreeMap<String, Identity>,
    /// Credentials.
    pub credentials: BTreeMap<String, Credential>,
    /// Destinations.
    pub destinations: BTreeMap<String, Destination>,
    /// Grants.
    pub grants: BTreeMap<String, Grant>,
    /// Bindings.
    pub bindings: BTreeMap<String, Binding>,
    /// Evidence.
    pub evidence: BTreeMap<String, Evidence>,
    /// Identities only inferred (from an RBAC principal id or a configured project identity):
    /// a record read from Entra replaces them.
    stubs: BTreeSet<String>,
    /// The lists each API fills, for the coverage record.
    pub apis: BTreeMap<&'static str, BTreeSet<EntityList>>,
    /// Grants held by groups (the identity field names the group), expanded into the group's
    /// service-principal members by `groups::expand`.
    pub group_grants: Vec<Grant>,
    /// Records left out before `finish`, by reason.
    notes: BTreeMap<String, u64>,
    /// Entra application (client) ids → service principal object ids, for records that name
    /// an application (a Foundry connection's `clientId`, a sign-in's `appId`).
    pub app_ids: BTreeMap<String, String>,
    /// Every service principal of the directory, when its listing was read completely: a
    /// directory object referred to but not among them no longer exists.
    pub directory: Option<BTreeSet<String>>,
    /// Inferred identities that are directory objects (by object id), as opposed to keys or
    /// connections known only by name.
    directory_refs: BTreeSet<String>,
    /// The Azure subscriptions read, when the azure-rbac connector listed them.
    pub subscriptions: Option<Vec<String>>,
    /// Execution-log state of every destination of a service (`storage:<account>`,
    /// `keyvault:<vault>`), with the log source in words, from diagnostic settings and logs.
    pub log_states: BTreeMap<String, (LogState, String)>,
}

impl Collected {
    /// Declares that `api` fills `lists`.
    pub fn uses(&mut self, api: &'static str, lists: &[EntityList]) {
        self.apis.entry(api).or_default().extend(lists.iter().copied());
    }

    /// An identity read from its source of record (replaces an inferred one).
    pub fn identity(&mut self, identity: Identity) {
        self.stubs.remove(&identity.id);
        self.identities.insert(identity.id.clone(), identity);
    }

    /// An identity known only by id, unless a real record exists.
    pub fn stub_identity(&mut self, id: &str, name: &str, kind: IdentityKind) {
        if !self.identities.contains_key(id) {
            self.stubs.insert(id.to_string());
            self.identities
                .insert(id.to_string(), Identity { presence: Presence::Inferred, ..bare_identity(id, name, kind) });
        }
    }

    /// A directory object (service principal or managed identity) known only by its object id,
    /// unless a real record exists: when the directory's listing is complete and lacks it, it is
    /// marked deleted.
    pub fn stub_principal(&mut self, id: &str, name: &str, kind: IdentityKind) {
        self.stub_identity(id, name, kind);
        if self.stubs.contains(id) {
            self.directory_refs.insert(id.to_string());
        }
    }

    /// Whether an identity was read from its own record (not inferred).
    pub fn recorded(&self, id: &str) -> bool {
        self.identities.contains_key(id) && !self.stubs.contains(id)
    }

    /// A destination; the first record of an id wins, later ones add tags it lacks.
    pub fn destination(&mut self, destination: Destination) {
        match self.destinations.get_mut(&destination.id) {
            Some(known) => {
                for (k, v) in destination.tags {
                    known.tags.entry(k).or_insert(v);
                }
                if known.domain.is_none() {
                    known.domain = destination.domain;
                }
            }
            None => {
                self.destinations.insert(destination.id.clone(), destination);
            }
        }
    }

    /// A data domain; sensitive when any source says so.
    pub fn domain(&mut self, id: &str, name: &str, sensitive: bool) {
        let domain = self.domains.entry(id.to_string()).or_insert_with(|| DataDomain {
            id: id.to_string(),
            name: name.to_string(),
            sensitive,
        });
        domain.sensitive |= sensitive;
    }

    /// An owner; the first record of an id wins.
    pub fn owner(&mut self, owner: Owner) {
        self.owners.entry(owner.id.clone()).or_insert(owner);
    }

    /// Counts a record left out.
    pub fn note(&mut self, reason: &str) {
        *self.notes.entry(reason.to_string()).or_default() += 1;
    }

    /// A grant held by a group.
    pub fn group_grant(&mut self, grant: Grant) {
        self.group_grants.push(grant);
    }

    /// A grant.
    pub fn grant(&mut self, grant: Grant) {
        self.grants.insert(grant.id.clone(), grant);
    }

    /// A binding.
    pub fn binding(&mut self, binding: Binding) {
        self.bindings.insert(binding.id.clone(), binding);
    }

    /// A workload; the first record of an id wins.
    pub fn workload(&mut self, workload: Workload) {
        self.workloads.entry(workload.id.clone()).or_insert(workload);
    }

    /// A credential.
    pub fn credential(&mut self, credential: Credential) {
        self.credentials.insert(credential.id.clone(), credential);
    }

    /// Evidence.
    pub fn evidence(&mut self, evidence: Evidence) {
        self.evidence.insert(evidence.id.clone(), evidence);
    }

    /// The entities, with every reference resolved: records that refer to something no API read
    /// are left out (grants, bindings, credentials) or lose that reference (owners, evidence
    /// fields), and counted by reason.
    ///
    /// Also returns, for each list, the other lists whose records were left out because they
    /// refer into it: when that list was read partially, they are partial too (their records
    /// are not gone, only unresolved), so that the scan removes none of them.
    pub fn finish(self) -> (Entities, BTreeMap<String, u64>, BTreeMap<EntityList, BTreeSet<EntityList>>) {
        let mut spread: BTreeMap<EntityList, BTreeSet<EntityList>> = BTreeMap::new();
        let mut dropped: BTreeMap<String, u64> = self.notes.clone();
        if !self.group_grants.is_empty() {
            *dropped.entry("grants to groups whose members were never asked for".to_string()).or_default() +=
                self.group_grants.len() as u64;
        }
        let mut count = |reason: &str| *dropped.entry(reason.to_string()).or_default() += 1;
        let Collected {
            domains,
            rules,
            owners,
            mut workloads,
            mut identities,
            credentials,
            destinations,
            grants,
            bindings,
            evidence,
            stubs,
            directory,
            directory_refs,
            log_states,
            ..
        } = self;
        // A directory object that a complete listing of the directory lacks is gone.
        if let Some(directory) = &directory {
            for id in directory_refs.iter().filter(|id| stubs.contains(*id) && !directory.contains(*id)) {
                if let Some(identity) = identities.get_mut(id) {
                    identity.presence = Presence::Deleted;
                    identity.name = format!("deleted principal {id}");
                }
            }
        }
        for w in workloads.values_mut() {
            w.owners.retain(|o| owners.contains_key(o));
        }
        for i in identities.values_mut() {
            i.owners.retain(|o| owners.contains_key(o));
            i.owners.sort();
            i.owners.dedup();
        }
        let rules: Vec<ClassificationRule> = rules
            .into_values()
            .filter(|r| {
                let keep = domains.contains_key(&r.domain);
                if !keep {
                    spread.entry(EntityList::Domains).or_default().insert(EntityList::ClassificationRules);
                }
                keep
            })
            .collect();
        let destinations: Vec<Destination> = destinations
            .into_values()
            .map(|mut d| {
                if d.domain.as_ref().is_some_and(|x| !domains.contains_key(x)) {
                    d.domain = None;
                }
                if let Some((state, source)) = d.service.as_ref().and_then(|s| log_states.get(s)) {
                    d.execution_logs = Some(*state);
                    d.execution_log_source = Some(source.clone());
                }
                d
            })
            .collect();
        let destination_ids: BTreeSet<&str> = destinations.iter().map(|d| d.id.as_str()).collect();
        let mut refers = |list: EntityList, missing: Vec<(bool, EntityList)>| -> bool {
            let mut keep = true;
            for (resolves, into) in missing {
                if !resolves {
                    spread.entry(into).or_default().insert(list);
                    keep = false;
                }
            }
            keep
        };
        let grants = resolved(grants, &mut count, "grants whose identity or destination was not read", |g| {
            refers(
                EntityList::Grants,
                vec![
                    (identities.contains_key(&g.identity), EntityList::Identities),
                    (destination_ids.contains(g.destination.as_str()), EntityList::Destinations),
                ],
            )
        });
        let bindings = resolved(bindings, &mut count, "bindings whose workload or identity was not read", |b| {
            refers(
                EntityList::Bindings,
                vec![
                    (workloads.contains_key(&b.workload), EntityList::Workloads),
                    (identities.contains_key(&b.identity), EntityList::Identities),
                ],
            )
        });
        let credentials = resolved(credentials, &mut count, "credentials of identities that were not read", |c| {
            refers(EntityList::Credentials, vec![(identities.contains_key(&c.identity), EntityList::Identities)])
        });
        let credential_ids: BTreeSet<&str> = credentials.iter().map(|c| c.id.as_str()).collect();
        let evidence: Vec<Evidence> = evidence
            .into_values()
            .filter_map(|mut e| {
                if e.identity.as_ref().is_some_and(|i| !identities.contains_key(i)) {
                    e.identity = None;
                }
                if e.workload.as_ref().is_some_and(|w| !workloads.contains_key(w)) {
                    e.workload = None;
                }
                if e.destination.as_ref().is_some_and(|d| !destination_ids.contains(d.as_str())) {
                    e.destination = None;
                }
                if e.credential.as_ref().is_some_and(|c| !credential_ids.contains(c.as_str())) {
                    e.credential = None;
                }
                if e.identity.is_none() && e.workload.is_none() {
                    count("evidence naming no identity or workload that was read");
                    for into in [EntityList::Identities, EntityList::Workloads] {
                        spread.entry(into).or_default().insert(EntityList::Evidence);
                    }
                    return None;
                }
                Some(e)
            })
            .collect();
        let entities = Entities {
            domains: domains.into_values().collect(),
            classification_rules: rules,
            owners: owners.into_values().collect(),
            workloads: workloads.into_values().collect(),
            identities: identities.into_values().collect(),
            credentials,
            destinations,
            grants,
            bindings,
            evidence,
            deleted: Vec::new(),
        };
        (entities, dropped, spread)
    }
}

/// The records whose references `resolves` finds, in id order; the others are counted under
/// `reason`.
fn resolved<T>(
    records: BTreeMap<String, T>,
    count: &mut impl FnMut(&str),
    reason: &str,
    mut resolves: impl FnMut(&T) -> bool,
) -> Vec<T> {
    records
        .into_values()
        .filter(|record| {
            let keep = resolves(record);
            if !keep {
                count(reason);
            }
            keep
        })
        .collect()
}
