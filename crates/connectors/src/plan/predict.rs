//! What a plan's changes predict for the tenant: the authority paths they would add, as
//! entities to fold over the views (`predict`, through a `PlanContext`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sv0_domain::model::{Destination, DestinationKind, Grant, GrantSource, IdentityKind};
use sv0_domain::overlay::Overlay;
use sv0_domain::snapshot::EntityList;

use crate::arm::{self, ArmData};
use crate::collect::{Collected, bare_identity};

use super::*;

/// What a prediction needs of the tenant as it stands.
pub trait PlanContext {
    /// The destinations at or below an ARM id, compared case-insensitively.
    fn destinations_below(&self, arm_id: &str) -> Vec<Destination>;
    /// The destination with this id (an ARM id compared case-insensitively).
    fn destination(&self, id: &str) -> Option<Destination>;
    /// Whether the tenant has this identity.
    fn has_identity(&self, id: &str) -> bool;
    /// The ids of the tenant's workloads that start with `prefix` (the agents of a Foundry
    /// account or project: `foundry:<account>/<project>/`).
    fn workloads_below(&self, prefix: &str) -> Vec<String>;
}

/// A plan as planned entities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prediction {
    /// The planned entities and removals.
    pub overlay: Overlay,
    /// Entity id (grant, identity, destination; ARM ids lower-case) → the plan address that
    /// creates, changes or deletes it.
    pub causes: BTreeMap<String, String>,
}

/// Turns a plan's changes into an overlay on the tenant: role assignments through the ARM
/// conversion (data roles opened on each container below their scope, existing or planned),
/// app roles as the Entra connector grants them, planned identities as inferred ones.
pub fn predict(plan: &Plan, ctx: &dyn PlanContext) -> Prediction {
    let mut overlay = Overlay::default();
    let mut causes = BTreeMap::new();
    let mut data = ArmData { containers: Some((Vec::new(), true)), ..ArmData::default() };
    let mut known_containers = BTreeSet::new();
    let mut collected = Collected::default();
    for change in &plan.changes {
        match (&change.resource, change.action) {
            (Resource::RoleAssignment { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Grants, &id.to_ascii_lowercase());
                    causes.insert(id.to_ascii_lowercase(), change.address.clone());
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::RoleAssignment { id, scope, role, principal }, _) => {
                let assignment = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(assignment.to_ascii_lowercase(), change.address.clone());
                if change.action == Action::Replace
                    && let Some(id) = id
                {
                    overlay.remove(EntityList::Grants, &id.to_ascii_lowercase());
                }
                data.role_assignments.push(json!({
                    "id": assignment,
                    "properties": {
                        "principalId": principal.id(),
                        "scope": scope,
                        "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                        "principalType": "ServicePrincipal",
                    }
                }));
                for existing in ctx.destinations_below(&scope.to_ascii_lowercase()) {
                    if existing.kind == DestinationKind::StorageContainer
                        && known_containers.insert(existing.id.clone())
                        && let Some((containers, _)) = data.containers.as_mut()
                    {
                        containers.push(json!({"id": existing.id, "properties": {"metadata": existing.tags}}));
                    }
                }
                if let Principal::Planned(address) = principal {
                    causes.insert(principal.id(), address.clone());
                }
            }
            (Resource::Identity { principal, .. }, Action::Delete) => {
                overlay.remove(EntityList::Identities, &principal.id());
                overlay.identities.insert(principal.id());
            }
            (Resource::Identity { name, principal }, _) => {
                if !ctx.has_identity(&principal.id()) {
                    let kind = IdentityKind::ManagedIdentity;
                    collected.identity(bare_identity(principal.id(), name.clone(), kind));
                    causes.insert(principal.id(), change.address.clone());
                }
            }
            (Resource::StorageAccount { id, tags }, action) => {
                overlay.destinations.insert(id.to_ascii_lowercase());
                if action != Action::Delete {
                    data.resources.push(json!({"id": id, "type": "Microsoft.Storage/storageAccounts", "tags": tags}));
                    // Containers below an account inherit its tags: the planned ones too.
                    for existing in ctx.destinations_below(&id.to_ascii_lowercase()) {
                        overlay.destinations.insert(existing.id.clone());
                        let mut d = existing.clone();
                        for (k, v) in tags {
                            d.tags.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                        overlay.upserts.destinations.push(d);
                    }
                }
            }
            (Resource::StorageContainer { id, .. }, Action::Delete) => {
                overlay.remove(EntityList::Destinations, &id.to_ascii_lowercase());
                overlay.destinations.insert(id.to_ascii_lowercase());
            }
            (Resource::StorageContainer { id, metadata }, _) => {
                let lower = id.to_ascii_lowercase();
                overlay.destinations.insert(lower.clone());
                causes.insert(lower.clone(), change.address.clone());
                if known_containers.insert(lower.clone())
                    && let Some((containers, _)) = data.containers.as_mut()
                {
                    containers.push(json!({"id": lower, "properties": {"metadata": metadata}}));
                }
            }
            (Resource::Credential { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Credentials, id);
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::Credential { id, principal, certificate, expires_at }, _) => {
                let credential_id = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(credential_id.clone(), change.address.clone());
                overlay.identities.insert(principal.id());
                overlay.upserts.credentials.push(sv0_domain::model::Credential {
                    id: credential_id,
                    identity: principal.id(),
                    kind: if *certificate {
                        sv0_domain::model::CredentialKind::Certificate
                    } else {
                        sv0_domain::model::CredentialKind::Password
                    },
                    created_at: None,
                    expires_at: Some(sv0_domain::Timestamp(*expires_at)),
                });
            }
            // Foundry resources are converted together below, as the Foundry connector would.
            (Resource::Foundry { .. }, _) => {}
            (Resource::AppRoleAssignment { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Grants, id);
                    causes.insert(id.clone(), change.address.clone());
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::AppRoleAssignment { id, principal, role, graph, resource }, _) => {
                let grant_id = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(grant_id.clone(), change.address.clone());
                // The holder, as the conversion needs it (the tenant's own record is kept).
                collected.stub_principal(&principal.id(), &principal.id(), IdentityKind::ServicePrincipal);
                let destination = if *graph {
                    crate::entra::graph_destination(role, &mut collected)
                } else {
                    let resource = resource.clone().unwrap_or_else(|| "unknown".into());
                    let id = format!("entra-app:{resource}");
                    collected.destination(crate::collect::bare_destination(
                        id.clone(),
                        id.clone(),
                        DestinationKind::Other,
                    ));
                    id
                };
                collected.grant(Grant {
                    id: grant_id,
                    identity: principal.id(),
                    destination,
                    permissions: crate::entra::permission_verbs(role),
                    source: GrantSource::AppRoleAssignment,
                    role: role.clone(),
                    scope: if *graph { "Microsoft Graph".into() } else { resource.clone().unwrap_or_default() },
                    consent: None,
                });
            }
        }
    }
    arm::convert(&data, &mut collected);
    let (mut entities, _, _) = collected.finish();
    let foundry = foundry_entities(&plan.changes, ctx, &mut overlay, &mut causes);
    entities.grants.extend(foundry.grants);
    entities.identities.extend(foundry.identities);
    entities.destinations.extend(foundry.destinations);
    entities.credentials.extend(foundry.credentials);
    for mut grant in entities.grants {
        // The tenant's own record of a destination keeps its id, whatever case the plan used.
        if let Some(existing) = ctx.destination(&grant.destination) {
            grant.destination = existing.id;
        }
        let base = grant.id.split('#').next().unwrap_or(&grant.id).to_string();
        if let Some(address) = causes.get(&base).cloned() {
            causes.insert(grant.id.clone(), address);
        }
        overlay.upserts.grants.push(grant);
    }
    for identity in entities.identities {
        if !ctx.has_identity(&identity.id) {
            overlay.upserts.identities.push(identity);
        }
    }
    for destination in entities.destinations {
        // What the tenant already has keeps its record (and classification); a planned
        // container or account is new.
        if ctx.destination(&destination.id).is_none()
            && !overlay.upserts.destinations.iter().any(|d| d.id == destination.id)
        {
            overlay.upserts.destinations.push(destination);
        }
    }
    overlay.upserts.credentials.extend(entities.credentials);
    overlay.upserts.workloads.extend(entities.workloads);
    overlay.upserts.bindings.extend(entities.bindings);
    overlay.touch_upserts();
    Prediction { overlay, causes }
}

/// A Foundry id's account id and, at or below a project, the project's name.
fn foundry_parent(id: &str) -> (String, Option<String>) {
    let lower = id.to_ascii_lowercase();
    if let Some(at) = lower.find("/projects/") {
        let rest = &id[at + "/projects/".len()..];
        return (id[..at].to_string(), Some(rest.split('/').next().unwrap_or(rest).to_string()));
    }
    match lower.find("/connections/") {
        Some(at) => (id[..at].to_string(), None),
        None => (id.to_string(), None),
    }
}

/// The planned Foundry accounts, projects and connections, converted as the Foundry connector
/// converts what ARM lists: system identities, and each connection's identity with its grant on
/// the target. The agents are not in a plan (they are data-plane objects): those the tenant has
/// below a changed project or account are recomputed, so an agent whose tool names a connection
/// the plan creates reaches its target. A project identity SV0 cannot name (a project this plan
/// does not declare, known only by the agents bound to it) is not guessed: the grants of its
/// Entra-authenticated connections are not predicted. Deleting an account or project deletes
/// its agents; deleting a connection, its grant.
fn foundry_entities(
    changes: &[Change],
    ctx: &dyn PlanContext,
    overlay: &mut Overlay,
    causes: &mut BTreeMap<String, String>,
) -> sv0_domain::snapshot::Entities {
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    for change in changes {
        if let Resource::Foundry { level: FoundryLevel::Account, id, name, .. } = &change.resource {
            accounts.insert(id.to_ascii_lowercase(), name.clone());
        }
    }
    let account_name = |account_id: &str| {
        accounts
            .get(&account_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| account_id.rsplit('/').next().unwrap_or(account_id).to_string())
    };
    let mut data = crate::foundry::FoundryData::default();
    let mut projects: BTreeMap<String, Value> = BTreeMap::new();
    let mut stand_ins: BTreeMap<String, Value> = BTreeMap::new();
    for change in changes {
        let Resource::Foundry { level, id, name, identity, arm_kind, properties } = &change.resource else { continue };
        let (account_id, project) = foundry_parent(id);
        let account = account_name(&account_id);
        let prefix = match &project {
            Some(p) => format!("foundry:{account}/{p}/"),
            None => format!("foundry:{account}/"),
        };
        let below = ctx.workloads_below(&prefix);
        overlay.workloads.extend(below.iter().cloned());
        causes.insert(id.to_ascii_lowercase(), change.address.clone());
        if change.action == Action::Delete {
            match level {
                FoundryLevel::Connection => overlay.remove(EntityList::Grants, &id.to_ascii_lowercase()),
                _ => below.iter().for_each(|w| overlay.remove(EntityList::Workloads, w)),
            }
            continue;
        }
        if let Some(principal) = identity {
            causes.insert(principal.id(), change.address.clone());
        }
        let identity = identity.as_ref().map(|p| json!({"principalId": p.id()}));
        match level {
            FoundryLevel::Account => data.accounts.push(
                json!({"id": id, "name": name, "kind": arm_kind, "identity": identity, "properties": properties}),
            ),
            FoundryLevel::Project => {
                projects.insert(
                    id.to_ascii_lowercase(),
                    json!({"id": id, "name": name, "identity": identity, "properties": properties}),
                );
            }
            FoundryLevel::Connection => {
                data.connections.push(json!({"id": id, "name": name, "properties": properties}));
                // The projects whose tools can use it: its own, or each of its account's that
                // has agents (a project the plan declares is converted anyway).
                let names: BTreeSet<String> = match project {
                    Some(p) => BTreeSet::from([p]),
                    None => below
                        .iter()
                        .filter_map(|w| w.strip_prefix(&prefix)?.split('/').next().map(str::to_string))
                        .collect(),
                };
                for p in names {
                    let project_id = format!("{account_id}/projects/{p}");
                    stand_ins.insert(project_id.to_ascii_lowercase(), json!({"id": project_id, "name": p}));
                }
            }
        }
    }
    for (id, stand_in) in stand_ins {
        projects.entry(id).or_insert(stand_in);
    }
    data.projects = projects.into_values().collect();
    let mut collected = Collected::default();
    crate::foundry::convert(&data, &mut collected);
    let (mut entities, _, _) = collected.finish();
    let unnamed = |identity: &str| identity.starts_with("foundry-project:") && !ctx.has_identity(identity);
    entities.grants.retain(|g| !unnamed(&g.identity));
    entities.identities.retain(|i| !unnamed(&i.id));
    entities
}
