//! Azure RBAC through Azure Resource Manager: role assignments at every scope level
//! (management group, subscription, resource group, resource) with their role definitions'
//! `actions` and `dataActions` (less `notActions` and `notDataActions`) normalised to
//! read/write/delete/execute/admin; a data-plane role assigned above the data it opens is
//! granted on each container, vault or model account below its scope; resources and resource
//! groups for their tags and managed identities (which resource runs as which identity);
//! blob containers with their metadata; diagnostic settings, which decide whether a data
//! resource's access can ever be confirmed; and `StorageBlobLogs` from Log Analytics as
//! execution evidence.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sv0_domain::model::{
    Binding, Destination, DestinationKind, Grant, GrantSource, IdentityKind, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination};
use crate::json::{object_id, str};
use crate::source::{Call, Ledger, Listing, Paging, Service, Source};
use crate::{ConnectorError, Settings};

mod logs;
mod roles;

pub use logs::*;
pub use roles::*;

const ROLE_API: &str = "api-version=2022-04-01";

const RESOURCE_API: &str = "api-version=2021-04-01";

const STORAGE_API: &str = "api-version=2023-05-01";

const DIAGNOSTICS_API: &str = "api-version=2021-05-01-preview";

const WORKSPACE_API: &str = "api-version=2023-09-01";

const MANAGEMENT_GROUP_API: &str = "api-version=2020-05-01";

const SUBSCRIPTIONS: &str = "arm.subscriptions";

const ROLE_ASSIGNMENTS: &str = "arm.roleAssignments";

const ROLE_DEFINITIONS: &str = "arm.roleDefinitions";

const RESOURCES: &str = "arm.resources";

const RESOURCE_GROUPS: &str = "arm.resourceGroups";

const CONTAINERS: &str = "arm.blobContainers";

const DIAGNOSTICS: &str = "arm.diagnosticSettings";

const WORKSPACES: &str = "arm.logAnalyticsWorkspaces";

const DESCENDANTS: &str = "arm.managementGroupDescendants";

const BLOB_LOGS: &str = "arm.storageBlobLogs";

/// The ARM and Log Analytics responses the conversion reads. The lists that only a live or
/// exported ARM read gives (AzureHound has none of them) are `None` when not read.
#[derive(Debug, Default)]
pub struct ArmData {
    /// `subscriptions`.
    pub subscriptions: Vec<Value>,
    /// `roleAssignments` (raw ARM objects).
    pub role_assignments: Vec<Value>,
    /// `roleDefinitions`.
    pub role_definitions: Vec<Value>,
    /// `resources` (generic resource list: id, type, kind, tags, identity).
    pub resources: Vec<Value>,
    /// `resourcegroups`.
    pub resource_groups: Vec<Value>,
    /// Blob containers of every storage account, and whether every account's were read.
    pub containers: Option<(Vec<Value>, bool)>,
    /// Diagnostic settings of the data resources, and whether every resource's were read.
    pub diagnostic_settings: Option<(Vec<Value>, bool)>,
    /// Log Analytics workspaces (to tell which ones SV0 reads), when they were read completely.
    pub workspaces: Option<Vec<Value>>,
    /// The workspaces SV0 queries (customer ids or ARM ids).
    pub read_workspaces: Vec<String>,
    /// Descendants of management groups, each naming its group in `managementGroup`.
    pub management_group_descendants: Vec<Value>,
    /// `StorageBlobLogs` query rows; `None` when no workspace was queried.
    pub blob_logs: Option<Vec<Value>>,
}

/// Reads Azure RBAC and adds what it saw to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    if !source.has(Service::Arm) {
        return Err(ConnectorError::Setup("azure-rbac needs the Azure Resource Manager base URL".into()));
    }
    declare(out);
    let subscriptions = subscriptions(source, ledger).await;
    let ids = subscription_ids(&subscriptions.items, settings);
    out.subscriptions = Some(ids.clone());
    let each = |api: &'static str, suffix: &str| -> Vec<Call> {
        if source.is_export() {
            vec![get(api, String::new())]
        } else {
            ids.iter().map(|s| get(api, format!("/subscriptions/{s}{suffix}"))).collect()
        }
    };
    if !subscriptions.complete && settings.subscriptions.is_empty() {
        for api in [ROLE_ASSIGNMENTS, ROLE_DEFINITIONS, RESOURCES, RESOURCE_GROUPS, WORKSPACES] {
            ledger.skipped(api, "arm.subscriptions was not read completely");
        }
    }
    let list = |api, suffix: String| {
        let calls = each(api, &suffix);
        async move { source.list_each(api, calls, ledger).await }
    };
    let assignments =
        list(ROLE_ASSIGNMENTS, format!("/providers/Microsoft.Authorization/roleAssignments?{ROLE_API}")).await;
    let definitions =
        list(ROLE_DEFINITIONS, format!("/providers/Microsoft.Authorization/roleDefinitions?{ROLE_API}")).await;
    let resources = list(RESOURCES, format!("/resources?{RESOURCE_API}")).await;
    let groups = list(RESOURCE_GROUPS, format!("/resourcegroups?{RESOURCE_API}")).await;
    let workspaces =
        list(WORKSPACES, format!("/providers/Microsoft.OperationalInsights/workspaces?{WORKSPACE_API}")).await;
    let containers = fan_out(source, ledger, CONTAINERS, &resources, |r| {
        is_type(r, "microsoft.storage/storageaccounts")
            .then(|| format!("{}/blobServices/default/containers?{STORAGE_API}", str(r, "id").unwrap_or("")))
    })
    .await;
    let diagnostics = fan_out(source, ledger, DIAGNOSTICS, &resources, |r| {
        let id = str(r, "id")?;
        let uri = match data_kind(r)? {
            DataResource::Storage => format!("{id}/blobServices/default"),
            DataResource::KeyVault | DataResource::CognitiveServices => id.to_string(),
        };
        Some(format!("{uri}/providers/Microsoft.Insights/diagnosticSettings?{DIAGNOSTICS_API}"))
    })
    .await;
    let descendants = descendants(source, ledger, &assignments, &definitions).await;
    let blob_logs = blob_logs(source, settings, ledger, out).await;
    let data = ArmData {
        subscriptions: subscriptions.items,
        role_assignments: assignments.items,
        role_definitions: definitions.items,
        resources: resources.items,
        resource_groups: groups.items,
        containers: Some((containers.items, containers.complete)),
        diagnostic_settings: Some((diagnostics.items, diagnostics.complete)),
        workspaces: workspaces.complete.then_some(workspaces.items),
        read_workspaces: settings.log_analytics_workspaces.clone(),
        management_group_descendants: descendants,
        blob_logs,
    };
    convert(&data, out);
    Ok(())
}

fn get(api: &'static str, path: String) -> Call {
    Call::get(api, Service::Arm, path, Paging::Arm)
}

/// The subscriptions the credentials can see (also read by the foundry connector).
pub async fn subscriptions(source: &Source, ledger: &Ledger) -> Listing {
    source.list(get(SUBSCRIPTIONS, "/subscriptions?api-version=2022-12-01".into()), ledger).await
}

/// The subscriptions to read: the configured ones, else every one listed.
pub fn subscription_ids(listed: &[Value], settings: &Settings) -> Vec<String> {
    let mut ids: Vec<String> = if settings.subscriptions.is_empty() {
        listed.iter().filter_map(|s| str(s, "subscriptionId").map(str::to_string)).collect()
    } else {
        settings.subscriptions.clone()
    };
    ids.sort();
    ids.dedup();
    ids
}

/// One call per resource `path_of` names (a storage account's containers, a data resource's
/// diagnostic settings); an export directory holds them all in one file.
async fn fan_out(
    source: &Source,
    ledger: &Ledger,
    api: &'static str,
    resources: &Listing,
    path_of: impl Fn(&Value) -> Option<String>,
) -> Listing {
    if source.is_export() {
        return source.list_each(api, vec![get(api, String::new())], ledger).await;
    }
    if !resources.complete {
        ledger.skipped(api, "arm.resources was not read completely");
    }
    let calls = resources.items.iter().filter_map(&path_of).map(|path| get(api, path)).collect();
    let mut listing = source.list_each(api, calls, ledger).await;
    listing.complete &= resources.complete;
    listing
}

/// The descendants of every management group a data-plane role is assigned at, so that the
/// role reaches the data in the group's subscriptions.
async fn descendants(source: &Source, ledger: &Ledger, assignments: &Listing, definitions: &Listing) -> Vec<Value> {
    let roles = role_index(&definitions.items);
    let groups: BTreeSet<String> = assignments
        .items
        .iter()
        .filter_map(|a| {
            let properties = a.get("properties")?;
            let role = roles.get(&guid_tail(str(properties, "roleDefinitionId")?))?;
            let scope = str(properties, "scope")?;
            (!role.1.data.is_empty()).then(|| management_group(scope))?
        })
        .collect();
    if groups.is_empty() {
        return Vec::new();
    }
    let calls = if source.is_export() {
        vec![get(DESCENDANTS, String::new())]
    } else {
        groups
            .into_iter()
            .map(|group| {
                let path = format!(
                    "/providers/Microsoft.Management/managementGroups/{group}/descendants?{MANAGEMENT_GROUP_API}"
                );
                get(DESCENDANTS, path).tagged("managementGroup", group)
            })
            .collect()
    };
    source.list_each(DESCENDANTS, calls, ledger).await.items
}

/// `StorageBlobLogs` from the configured workspaces (or the export).
async fn blob_logs(source: &Source, settings: &Settings, ledger: &Ledger, out: &mut Collected) -> Option<Vec<Value>> {
    if !source.is_export() && settings.log_analytics_workspaces.is_empty() {
        return None;
    }
    out.uses(BLOB_LOGS, &[EntityList::Evidence]);
    let query = blob_log_query(settings.evidence_days);
    let calls = if source.is_export() {
        vec![Call::get(BLOB_LOGS, Service::LogAnalytics, String::new(), Paging::Table)]
    } else {
        settings
            .log_analytics_workspaces
            .iter()
            .map(|w| Call {
                body: Some(json!({ "query": query })),
                ..Call::get(BLOB_LOGS, Service::LogAnalytics, format!("/v1/workspaces/{w}/query"), Paging::Table)
            })
            .collect()
    };
    Some(source.list_each(BLOB_LOGS, calls, ledger).await.items)
}

/// The lists each ARM API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    out.uses(SUBSCRIPTIONS, &[Grants, Destinations]);
    out.uses(ROLE_ASSIGNMENTS, &[Grants, Destinations, Identities]);
    out.uses(ROLE_DEFINITIONS, &[Grants]);
    out.uses(RESOURCES, &[Workloads, Bindings, Destinations, Grants]);
    out.uses(RESOURCE_GROUPS, &[Destinations]);
    out.uses(CONTAINERS, &[Grants, Destinations]);
    out.uses(DIAGNOSTICS, &[Destinations]);
    out.uses(WORKSPACES, &[Destinations]);
}

/// Converts ARM responses into entities.
pub fn convert(data: &ArmData, out: &mut Collected) {
    if !data.management_group_descendants.is_empty() {
        out.uses(DESCENDANTS, &[EntityList::Grants, EntityList::Destinations]);
    }
    let subscription_names: BTreeMap<String, String> = data
        .subscriptions
        .iter()
        .filter_map(|s| Some((str(s, "subscriptionId")?.to_ascii_lowercase(), str(s, "displayName")?.to_string())))
        .collect();
    let inventory = Inventory::new(data);
    let definitions = role_index(&data.role_definitions);
    for assignment in &data.role_assignments {
        role_assignment(assignment, &definitions, &inventory, &subscription_names, out);
    }
    for resource in &data.resources {
        resource_identities(resource, out);
    }
    if let Some((settings, complete)) = &data.diagnostic_settings {
        log_states(data, settings, *complete, out);
    }
    if let Some(rows) = &data.blob_logs {
        blob_evidence(rows, &data.resources, out);
    }
}

/// A JSON object of strings as a map (ARM tags, container metadata).
fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The last path segment of an id, lower-case (role definitions are matched on their GUID,
/// whatever scope their id is written at).
fn guid_tail(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()
}

fn is_type(resource: &Value, kind: &str) -> bool {
    str(resource, "type").is_some_and(|t| t.eq_ignore_ascii_case(kind))
}

/// Data resources whose access a diagnostic setting can log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataResource {
    Storage,
    KeyVault,
    CognitiveServices,
}

fn data_kind(resource: &Value) -> Option<DataResource> {
    if is_type(resource, "microsoft.storage/storageaccounts") {
        Some(DataResource::Storage)
    } else if is_type(resource, "microsoft.keyvault/vaults") {
        Some(DataResource::KeyVault)
    } else if is_type(resource, "microsoft.cognitiveservices/accounts") {
        Some(DataResource::CognitiveServices)
    } else {
        None
    }
}

/// The management group a scope names, lower-case.
fn management_group(scope: &str) -> Option<String> {
    let lower = scope.trim_end_matches('/').to_ascii_lowercase();
    lower
        .strip_prefix("/providers/microsoft.management/managementgroups/")
        .filter(|g| !g.contains('/'))
        .map(str::to_string)
}

/// The resources a data-plane role can open below a scope, and the tags each destination
/// carries.
struct Inventory {
    /// Lower-case resource id → tags (containers: their account's, overlaid by their metadata).
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Blob containers (lower-case ids), when read.
    containers: Option<BTreeSet<String>>,
    /// Key vaults and model accounts (lower-case ids).
    vaults: BTreeSet<String>,
    accounts: BTreeSet<String>,
    /// Management group → the subscriptions below it (lower-case ids).
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl Inventory {
    fn new(data: &ArmData) -> Inventory {
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for resource in data.resources.iter().chain(&data.resource_groups) {
            if let Some(id) = str(resource, "id") {
                tags.insert(id.trim_end_matches('/').to_ascii_lowercase(), string_map(resource.get("tags")));
            }
        }
        let containers = data.containers.as_ref().map(|(items, _)| {
            let mut ids = BTreeSet::new();
            for container in items {
                let Some(id) = str(container, "id").map(|i| i.trim_end_matches('/').to_ascii_lowercase()) else {
                    continue;
                };
                // A container inherits its account's tags; its own metadata wins where it says
                // the same thing.
                let account = id.split("/blobservices/").next().unwrap_or(&id).to_string();
                let mut merged = tags.get(&account).cloned().unwrap_or_default();
                let metadata = string_map(container.get("properties").and_then(|p| p.get("metadata")));
                for (key, value) in metadata {
                    merged.retain(|k, _| !k.eq_ignore_ascii_case(&key));
                    merged.insert(key, value);
                }
                tags.insert(id.clone(), merged);
                ids.insert(id);
            }
            ids
        });
        let of = |kind: &str| -> BTreeSet<String> {
            data.resources
                .iter()
                .filter(|r| is_type(r, kind))
                .filter_map(|r| str(r, "id").map(|i| i.trim_end_matches('/').to_ascii_lowercase()))
                .collect()
        };
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for item in &data.management_group_descendants {
            let (Some(group), Some(id)) = (str(item, "managementGroup"), str(item, "id")) else { continue };
            let id = id.to_ascii_lowercase();
            if id.starts_with("/subscriptions/") {
                groups.entry(group.to_ascii_lowercase()).or_default().insert(id);
            }
        }
        Inventory {
            tags,
            containers,
            vaults: of("microsoft.keyvault/vaults"),
            accounts: of("microsoft.cognitiveservices/accounts"),
            groups,
        }
    }

    /// The resources of a data plane below (or at) a scope, lower-case; `None` when they are
    /// not known (the role stays on its scope). Range queries over sorted ids: the work grows
    /// with what the scope holds, not with the tenant.
    fn below(&self, plane: DataPlane, scope: &str) -> Option<Vec<String>> {
        let scope = scope.trim_end_matches('/').to_ascii_lowercase();
        let candidates: &BTreeSet<String> = match plane {
            DataPlane::Blob => self.containers.as_ref()?,
            DataPlane::KeyVault => &self.vaults,
            DataPlane::CognitiveServices => &self.accounts,
            DataPlane::Other => return None,
        };
        // A scope inside a resource (a container's own scope, a vault's secret) is opened as itself.
        let mut ancestor = scope.as_str();
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            if candidates.contains(parent) {
                return None;
            }
            ancestor = parent;
        }
        let prefixes: Vec<String> = match management_group(&scope) {
            Some(group) => self.groups.get(&group)?.iter().cloned().collect(),
            None => vec![scope],
        };
        let mut found = Vec::new();
        for prefix in &prefixes {
            found.extend(
                candidates
                    .range(prefix.clone()..)
                    .take_while(|id| id.starts_with(prefix.as_str()))
                    .filter(|id| prefix.is_empty() || id.len() == prefix.len() || id.as_bytes()[prefix.len()] == b'/')
                    .cloned(),
            );
        }
        Some(found)
    }
}

fn role_assignment(
    assignment: &Value,
    definitions: &BTreeMap<String, (String, RolePermissions)>,
    inventory: &Inventory,
    subscription_names: &BTreeMap<String, String>,
    out: &mut Collected,
) {
    let properties = assignment.get("properties").unwrap_or(assignment);
    let (Some(id), Some(principal), Some(scope)) =
        (str(assignment, "id"), str(properties, "principalId"), str(properties, "scope"))
    else {
        return;
    };
    // principalType is an open enum: User, Group, ServicePrincipal (managed identities too),
    // ForeignGroup, Device.
    let principal_type = str(properties, "principalType").unwrap_or("ServicePrincipal");
    let is_group = principal_type.eq_ignore_ascii_case("Group");
    if !is_group && !principal_type.eq_ignore_ascii_case("ServicePrincipal") {
        out.note("role assignments to users, foreign groups or devices (not workload identities)");
        return;
    }
    let principal = object_id(principal);
    let definition_guid = str(properties, "roleDefinitionId").map(guid_tail).unwrap_or_default();
    let (role, permissions) = match definitions.get(&definition_guid) {
        Some((name, permissions)) => (name.clone(), permissions.clone()),
        None => match builtin_role(&definition_guid) {
            Some((name, permissions)) => (name.to_string(), permissions),
            None => {
                out.note("role assignments whose role definition was not read");
                return;
            }
        },
    };
    let assignment_id = id.to_ascii_lowercase();
    let mut grants: Vec<(String, Destination, BTreeSet<Permission>)> = Vec::new();
    let at_scope = destination_for_scope(scope, &inventory.tags, subscription_names);
    let mut scope_permissions = permissions.control.clone();
    for (plane, verbs) in &permissions.data {
        match inventory.below(*plane, scope) {
            // The data below the scope, each with its own path (the scope itself is one of them
            // when the role is assigned on the data resource).
            Some(targets) if !targets.is_empty() => {
                for target in targets {
                    if target == at_scope.id {
                        scope_permissions.extend(verbs.iter().copied());
                        continue;
                    }
                    let destination = destination_for_scope(&target, &inventory.tags, subscription_names);
                    grants.push((format!("{assignment_id}#{target}"), destination, verbs.clone()));
                }
            }
            // Nothing known below the scope (not listed, or the listing failed): the data
            // permissions stay on the scope, so nothing is lost.
            _ => scope_permissions.extend(verbs.iter().copied()),
        }
    }
    if !scope_permissions.is_empty() {
        grants.insert(0, (assignment_id.clone(), at_scope, scope_permissions));
    }
    for (grant_id, destination, verbs) in grants {
        let grant = Grant {
            id: grant_id,
            identity: principal.clone(),
            destination: destination.id.clone(),
            permissions: verbs.into_iter().collect(),
            source: GrantSource::AzureRoleAssignment,
            role: role.clone(),
            scope: scope.to_string(),
            consent: None,
        };
        out.destination(destination);
        if is_group {
            out.group_grant(grant);
        } else {
            out.stub_principal(&principal, &principal, IdentityKind::ServicePrincipal);
            out.grant(grant);
        }
    }
}

/// The destination an ARM scope names: a management group, subscription, resource group or
/// resource; storage, model, database, queue and vault resources get their kind, host and service.
pub fn destination_for_scope(
    scope: &str,
    tags: &BTreeMap<String, BTreeMap<String, String>>,
    subscription_names: &BTreeMap<String, String>,
) -> Destination {
    let id = scope.trim_end_matches('/').to_ascii_lowercase();
    let id = if id.is_empty() { "/".to_string() } else { id };
    let segments: Vec<&str> = scope.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let last = segments.last().copied().unwrap_or("/").to_string();
    let mut destination = Destination {
        tags: tags.get(&id).cloned().unwrap_or_default(),
        ..bare_destination(id.clone(), last.clone(), DestinationKind::Other)
    };
    let provider = lower.iter().position(|s| s == "providers");
    match (lower.as_slice(), provider) {
        ([], _) | ([_], _) if id == "/" => destination.name = "root management group".into(),
        ([p, m, _, _], _) if p == "providers" && m == "microsoft.management" => {
            destination.name = format!("management group {last}");
        }
        ([s, sub], _) if s == "subscriptions" => {
            destination.name = format!("subscription {}", subscription_names.get(sub).cloned().unwrap_or(last));
        }
        ([s, _, r, _], _) if s == "subscriptions" && r == "resourcegroups" => {
            destination.name = format!("resource group {last}");
        }
        (_, Some(at)) => {
            let path: Vec<&str> = lower[at + 1..].iter().map(String::as_str).collect();
            let names: Vec<&str> = segments[at + 1..].to_vec();
            resource_shape(&mut destination, &path, &names);
            // A container or queue inherits its account's tags.
            if destination.tags.is_empty() && path.len() > 3 {
                let account = lower[..at + 4].join("/");
                destination.tags = tags.get(&format!("/{account}")).cloned().unwrap_or_default();
            }
        }
        _ => {}
    }
    destination
}

/// Kind, host and service of a resource from its provider path (`microsoft.storage`,
/// `storageaccounts`, `name`, ...).
fn resource_shape(destination: &mut Destination, path: &[&str], names: &[&str]) {
    let name = |i: usize| names.get(i).copied().unwrap_or("");
    match path {
        ["microsoft.storage", "storageaccounts", account, rest @ ..] => {
            let account_name = name(2);
            destination.service = Some(format!("storage:{account}"));
            destination.execution_log_source =
                Some(format!("diagnostic logs (StorageBlobLogs) on storage account {account_name}"));
            match rest {
                ["blobservices", _, "containers", _] => {
                    destination.kind = DestinationKind::StorageContainer;
                    destination.host = Some(format!("{account}.blob.core.windows.net"));
                    destination.name = format!("{account_name}/{}", name(6));
                }
                ["queueservices", _, "queues", _] => {
                    destination.kind = DestinationKind::Queue;
                    destination.host = Some(format!("{account}.queue.core.windows.net"));
                    destination.name = format!("{account_name}/{}", name(6));
                }
                _ => {
                    destination.kind = DestinationKind::StorageAccount;
                    destination.host = Some(format!("{account}.blob.core.windows.net"));
                }
            }
        }
        ["microsoft.cognitiveservices", "accounts", account, ..] => {
            destination.kind = DestinationKind::LlmDeployment;
            destination.host = Some(format!("{account}.openai.azure.com"));
            destination.service = Some(format!("cognitiveservices:{account}"));
        }
        ["microsoft.sql", "servers", server, ..] => {
            destination.kind = DestinationKind::Database;
            destination.host = Some(format!("{server}.database.windows.net"));
        }
        ["microsoft.documentdb", "databaseaccounts", account, ..] => {
            destination.kind = DestinationKind::Database;
            destination.host = Some(format!("{account}.documents.azure.com"));
        }
        ["microsoft.servicebus", "namespaces", namespace, ..] => {
            destination.kind = DestinationKind::Queue;
            destination.host = Some(format!("{namespace}.servicebus.windows.net"));
        }
        ["microsoft.keyvault", "vaults", vault, ..] => {
            destination.host = Some(format!("{vault}.vault.azure.net"));
            destination.service = Some(format!("keyvault:{vault}"));
        }
        ["microsoft.web", "sites", site, ..] => {
            destination.kind = DestinationKind::HttpEndpoint;
            destination.host = Some(format!("{site}.azurewebsites.net"));
        }
        _ => {}
    }
}

/// The workload an Azure resource with a managed identity is, when it acts on its own:
/// function and web apps, Logic Apps, automation accounts, VMs and containers. Foundry
/// (Cognitive Services) accounts are left to the foundry connector, whose agents they run.
pub fn workload_for_resource(resource_id: &str, name: &str, tags: BTreeMap<String, String>) -> Option<Workload> {
    let lower = resource_id.trim_end_matches('/').to_ascii_lowercase();
    let segments: Vec<&str> = lower.trim_matches('/').split('/').collect();
    let at = segments.iter().position(|s| *s == "providers")?;
    let provider: Vec<&str> = segments[at + 1..].to_vec();
    let kind = match provider.as_slice() {
        ["microsoft.cognitiveservices", ..] | ["microsoft.machinelearningservices", ..] => return None,
        ["microsoft.managedidentity", ..] => return None,
        ["microsoft.web", "sites", ..] => WorkloadKind::FunctionApp,
        ["microsoft.logic", ..] | ["microsoft.automation", ..] => WorkloadKind::Workflow,
        _ => WorkloadKind::Other,
    };
    let group = segments.iter().position(|s| *s == "resourcegroups").and_then(|i| segments.get(i + 1));
    let original: Vec<&str> = resource_id.trim_matches('/').split('/').collect();
    let display = if name.is_empty() { original.last().copied().unwrap_or(resource_id) } else { name };
    Some(Workload {
        id: lower.clone(),
        name: display.to_string(),
        kind,
        project: group.map(|g| {
            let i = segments.iter().position(|s| s == g).unwrap_or(0);
            original.get(i).copied().unwrap_or(g).to_string()
        }),
        tags,
        owners: Vec::new(),
    })
}

/// Resources with managed identities run as them.
fn resource_identities(resource: &Value, out: &mut Collected) {
    let (Some(id), Some(identity)) = (str(resource, "id"), resource.get("identity")) else { return };
    let mut principals: Vec<String> = Vec::new();
    if let Some(principal) = str(identity, "principalId") {
        principals.push(object_id(principal));
    }
    if let Some(assigned) = identity.get("userAssignedIdentities").and_then(Value::as_object) {
        principals.extend(assigned.values().filter_map(|v| str(v, "principalId").map(object_id)));
    }
    if principals.is_empty() {
        return;
    }
    let mut kind_hint = str(resource, "kind").unwrap_or("").to_ascii_lowercase();
    kind_hint.push(' ');
    let Some(mut workload) =
        workload_for_resource(id, str(resource, "name").unwrap_or(""), string_map(resource.get("tags")))
    else {
        return;
    };
    if workload.kind == WorkloadKind::FunctionApp && !kind_hint.contains("functionapp") {
        workload.kind = WorkloadKind::Other;
    }
    for principal in principals {
        out.stub_principal(&principal, &principal, IdentityKind::ManagedIdentity);
        out.binding(Binding {
            id: format!("{}|{principal}", workload.id),
            workload: workload.id.clone(),
            identity: principal,
            tool: None,
        });
    }
    // ARM is the resource's source of record: its kind and tags replace what Entra inferred
    // from a managed identity's alternative names.
    out.workloads.insert(workload.id.clone(), workload);
}

#[cfg(test)]
mod tests {
    use sv0_domain::model::LogState;

    use super::*;

    fn permissions(blocks: Value) -> RolePermissions {
        role_permissions(blocks.as_array().unwrap())
    }

    #[test]
    fn control_actions_normalise_and_not_actions_remove_admin() {
        use Permission::*;
        let owner = permissions(json!([{"actions": ["*"], "notActions": []}]));
        assert_eq!(owner.control.into_iter().collect::<Vec<_>>(), vec![Read, Write, Delete, Execute, Admin]);
        let contributor = permissions(
            json!([{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"]}]),
        );
        assert_eq!(contributor.control.into_iter().collect::<Vec<_>>(), vec![Read, Write, Delete, Execute]);
        let reader = permissions(json!([{"actions": ["*/read"]}]));
        assert_eq!(reader.control.into_iter().collect::<Vec<_>>(), vec![Read]);
        let keys = permissions(json!([{"actions": ["Microsoft.Storage/storageAccounts/listkeys/action"]}]));
        assert_eq!(keys.control.into_iter().collect::<Vec<_>>(), vec![Read, Write]);
        assert!(glob("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
        assert!(!glob("Microsoft.Storage/*", "Microsoft.Authorization/roleAssignments/write"));
    }

    /// The built-in roles as Azure publishes them (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
    #[test]
    fn built_in_data_roles_open_what_azure_says_they_open() {
        use Permission::*;
        let data = |p: &RolePermissions, plane: DataPlane| -> Vec<Permission> {
            p.data.get(&plane).map(|v| v.iter().copied().collect()).unwrap_or_default()
        };
        let blob = "Microsoft.Storage/storageAccounts/blobServices";
        let reader = permissions(
            json!([{"actions": [format!("{blob}/containers/read"), format!("{blob}/generateUserDelegationKey/action")],
            "notActions": [], "dataActions": [format!("{blob}/containers/blobs/read")], "notDataActions": []}]),
        );
        assert_eq!(
            (reader.control.iter().copied().collect::<Vec<_>>(), data(&reader, DataPlane::Blob)),
            (vec![Read], vec![Read])
        );
        let contributor = permissions(
            json!([{"actions": [format!("{blob}/containers/delete"), format!("{blob}/containers/read"),
            format!("{blob}/containers/write"), format!("{blob}/generateUserDelegationKey/action")], "notActions": [],
            "dataActions": [format!("{blob}/containers/blobs/delete"), format!("{blob}/containers/blobs/read"),
                format!("{blob}/containers/blobs/write"), format!("{blob}/containers/blobs/move/action"), format!("{blob}/containers/blobs/add/action")],
            "notDataActions": []}]),
        );
        assert_eq!(data(&contributor, DataPlane::Blob), vec![Read, Write, Delete]);
        let owner = permissions(json!([{"actions": [format!("{blob}/containers/*")],
            "dataActions": [format!("{blob}/containers/blobs/*")], "notDataActions": []}]));
        assert_eq!(data(&owner, DataPlane::Blob), vec![Read, Write, Delete, Admin], "POSIX ACLs are access control");
        // notDataActions take away what they name, and only that.
        let no_delete = permissions(json!([{"dataActions": [format!("{blob}/containers/blobs/*")],
            "notDataActions": [format!("{blob}/containers/blobs/delete"), format!("{blob}/containers/blobs/deleteBlobVersion/action"),
                format!("{blob}/containers/blobs/permanentDelete/action")]}]));
        assert_eq!(data(&no_delete, DataPlane::Blob), vec![Read, Write, Admin]);
        let openai_user = permissions(json!([{"actions": ["Microsoft.CognitiveServices/*/read"],
            "dataActions": ["Microsoft.CognitiveServices/accounts/OpenAI/*/read",
                "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
                "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action"],
            "notDataActions": ["Microsoft.CognitiveServices/accounts/OpenAI/stored-completions/read"]}]));
        assert_eq!(data(&openai_user, DataPlane::CognitiveServices), vec![Read, Execute]);
        let openai_contributor =
            permissions(json!([{"dataActions": ["Microsoft.CognitiveServices/accounts/OpenAI/*"]}]));
        assert_eq!(data(&openai_contributor, DataPlane::CognitiveServices), vec![Read, Write, Delete, Execute]);
        let secrets_user =
            permissions(json!([{"actions": [], "dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]}]));
        assert_eq!((secrets_user.control.len(), data(&secrets_user, DataPlane::KeyVault)), (0, vec![Read]));
        // An action SV0's table does not list is read by its words, never as a blanket execute.
        let unknown = permissions(json!([{"dataActions": ["Microsoft.Contoso/widgets/frobnicate/action"]}]));
        assert!(unknown.data.is_empty(), "{unknown:?}");
        assert_eq!(data_verbs("Microsoft.Contoso/widgets/export/action"), vec![Read]);
    }

    /// A data role above the data is granted on each container below its scope, management
    /// groups through their descendants; the record to change stays the assignment.
    #[test]
    fn data_roles_reach_every_container_below_their_scope() {
        let sub = "/subscriptions/0001";
        let account = format!("{sub}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stfin");
        let other = "/subscriptions/0002/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stother";
        let container = |a: &str, c: &str| json!({"id": format!("{a}/blobServices/default/containers/{c}"), "name": c});
        let assignment = |id: &str, scope: &str| {
            json!({"id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}"),
            "properties": {"principalId": "sp", "principalType": "ServicePrincipal", "scope": scope,
                "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"}})
        };
        let data = ArmData {
            resources: vec![
                json!({"id": account, "type": "Microsoft.Storage/storageAccounts", "tags": {"DataClassification": "Finance"}}),
                json!({"id": other, "type": "Microsoft.Storage/storageAccounts"}),
            ],
            containers: Some((
                vec![
                    container(&account, "invoices"),
                    json!({"id": format!("{account}/blobServices/default/containers/payroll"), "name": "payroll",
                        "properties": {"metadata": {"dataclassification": "Payroll"}}}),
                    container(other, "misc"),
                ],
                true,
            )),
            role_assignments: vec![
                assignment("a1", &account),
                assignment("g1", "/providers/Microsoft.Management/managementGroups/corp"),
            ],
            management_group_descendants: vec![
                json!({"id": "/subscriptions/0002", "type": "/subscriptions", "managementGroup": "corp"}),
            ],
            ..ArmData::default()
        };
        let mut out = Collected::default();
        convert(&data, &mut out);
        let ids: Vec<&str> = out.grants.keys().map(String::as_str).collect();
        let a1 = format!("{}/providers/microsoft.authorization/roleassignments/a1", account.to_ascii_lowercase());
        assert!(ids.contains(&a1.as_str()), "the account keeps the control-plane part: {ids:?}");
        for c in ["invoices", "payroll"] {
            let expanded = format!("{a1}#{}/blobservices/default/containers/{c}", account.to_ascii_lowercase());
            assert_eq!(out.grants[&expanded].permissions, vec![Permission::Read], "{c}");
        }
        let through_group = ids.iter().filter(|i| i.contains("/a1#") || i.contains("/g1#")).count();
        assert_eq!(
            through_group, 3,
            "the management group's assignment reaches only its subscription's container: {ids:?}"
        );
        // A container inherits its account's tags; its own metadata wins where it says the same.
        let payroll =
            &out.destinations[&format!("{}/blobservices/default/containers/payroll", account.to_ascii_lowercase())];
        assert_eq!(payroll.tags.get("dataclassification").map(String::as_str), Some("Payroll"));
        assert!(!payroll.tags.contains_key("DataClassification"), "{:?}", payroll.tags);
    }

    /// Diagnostic settings decide whether a resource's data access can ever be confirmed.
    #[test]
    fn diagnostic_settings_say_disabled_unread_or_enabled() {
        let rg = "/subscriptions/0001/resourceGroups/rg/providers";
        let storage = |name: &str| {
            json!({"id": format!("{rg}/Microsoft.Storage/storageAccounts/{name}"), "name": name,
            "type": "Microsoft.Storage/storageAccounts"})
        };
        let setting = |account: &str, workspace: &str, log: Value| {
            json!({
            "id": format!("{rg}/microsoft.storage/storageaccounts/{account}/blobservices/default/providers/microsoft.insights/diagnosticSettings/s"),
            "name": "s", "properties": {"workspaceId": workspace, "storageAccountId": null, "logs": [log]}})
        };
        let workspace = |name: &str| format!("{rg}/Microsoft.OperationalInsights/workspaces/{name}");
        let data = ArmData {
            resources: vec![storage("stnone"), storage("stread"), storage("stother"), storage("stmetrics")],
            diagnostic_settings: Some((
                vec![
                    setting("stread", &workspace("law-read"), json!({"categoryGroup": "audit", "enabled": true})),
                    setting("stother", &workspace("law-other"), json!({"category": "StorageWrite", "enabled": true})),
                    setting("stmetrics", &workspace("law-read"), json!({"category": "StorageRead", "enabled": false})),
                ],
                true,
            )),
            workspaces: Some(vec![
                json!({"id": workspace("law-read"), "name": "law-read", "properties": {"customerId": "11111111-1111-4111-8111-111111111111"}}),
                json!({"id": workspace("law-other"), "name": "law-other", "properties": {"customerId": "22222222-2222-4222-8222-222222222222"}}),
            ]),
            read_workspaces: vec!["11111111-1111-4111-8111-111111111111".into()],
            ..ArmData::default()
        };
        let mut out = Collected::default();
        convert(&data, &mut out);
        let state = |name: &str| out.log_states.get(&format!("storage:{name}")).cloned().unwrap();
        assert_eq!(state("stnone").0, LogState::Disabled);
        assert!(state("stnone").1.contains("StorageRead"), "{}", state("stnone").1);
        assert_eq!(state("stmetrics").0, LogState::Disabled, "a setting that sends nothing is no setting");
        assert_eq!(state("stread").0, LogState::Enabled);
        let (other, text) = state("stother");
        assert_eq!(other, LogState::Unread);
        assert!(text.contains("law-other") && text.contains("22222222-2222-4222-8222-222222222222"), "{text}");
    }

    #[test]
    fn scopes_at_every_level_become_destinations() {
        let none = BTreeMap::new();
        let subs = BTreeMap::from([("0001".to_string(), "Production".to_string())]);
        let d = destination_for_scope("/providers/Microsoft.Management/managementGroups/corp", &none, &subs);
        assert_eq!(d.name, "management group corp");
        let d = destination_for_scope("/subscriptions/0001", &none, &subs);
        assert_eq!(d.name, "subscription Production");
        let d = destination_for_scope("/subscriptions/0001/resourceGroups/rg-fin", &none, &subs);
        assert_eq!(d.name, "resource group rg-fin");
        let d = destination_for_scope(
            "/subscriptions/0001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/StFin/blobServices/default/containers/ledger",
            &none,
            &subs,
        );
        assert_eq!(
            (d.kind, d.host.as_deref(), d.service.as_deref()),
            (DestinationKind::StorageContainer, Some("stfin.blob.core.windows.net"), Some("storage:stfin"))
        );
        assert_eq!(d.name, "StFin/ledger");
    }
}
