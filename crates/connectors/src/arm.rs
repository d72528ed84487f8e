//! Azure RBAC through Azure Resource Manager: role assignments at every scope level
//! (management group, subscription, resource group, resource) with their role definitions'
//! actions and dataActions normalised to read/write/delete/execute/admin; resources and
//! resource groups for their tags (data-domain hints) and managed identities (which resource
//! runs as which identity); and `StorageBlobLogs` query results from Log Analytics as
//! execution evidence.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sv0_domain::model::{
    Binding, ClassificationRule, Destination, DestinationKind, Evidence, Grant, GrantSource, IdentityKind, LogState,
    Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination};
use crate::json::{array, object_id, slug, str, time};
use crate::source::{Call, Ledger, Paging, Service, Source};
use crate::{ConnectorError, Settings};

const ROLE_API: &str = "api-version=2022-04-01";
const RESOURCE_API: &str = "api-version=2021-04-01";

/// The ARM and Log Analytics responses the conversion reads.
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
    let get = |api, path: String| Call::get(api, Service::Arm, path, Paging::Arm);
    let subscriptions =
        source.list(get("arm.subscriptions", "/subscriptions?api-version=2022-12-01".into()), ledger).await;
    let mut ids: Vec<String> = if settings.subscriptions.is_empty() {
        subscriptions.items.iter().filter_map(|s| str(s, "subscriptionId").map(str::to_string)).collect()
    } else {
        settings.subscriptions.clone()
    };
    ids.sort();
    ids.dedup();
    let each = |api: &'static str, suffix: &str| -> Vec<Call> {
        if source.is_export() {
            vec![get(api, String::new())]
        } else {
            ids.iter().map(|s| get(api, format!("/subscriptions/{s}{suffix}"))).collect()
        }
    };
    if !subscriptions.complete && settings.subscriptions.is_empty() {
        for api in ["arm.roleAssignments", "arm.roleDefinitions", "arm.resources", "arm.resourceGroups"] {
            ledger.skipped(api, "arm.subscriptions was not read completely");
        }
    }
    let assignments = source
        .list_each(
            "arm.roleAssignments",
            each("arm.roleAssignments", &format!("/providers/Microsoft.Authorization/roleAssignments?{ROLE_API}")),
            ledger,
        )
        .await;
    let definitions = source
        .list_each(
            "arm.roleDefinitions",
            each("arm.roleDefinitions", &format!("/providers/Microsoft.Authorization/roleDefinitions?{ROLE_API}")),
            ledger,
        )
        .await;
    let resources =
        source.list_each("arm.resources", each("arm.resources", &format!("/resources?{RESOURCE_API}")), ledger).await;
    let groups = source
        .list_each("arm.resourceGroups", each("arm.resourceGroups", &format!("/resourcegroups?{RESOURCE_API}")), ledger)
        .await;
    let blob_logs = if source.is_export() || !settings.log_analytics_workspaces.is_empty() {
        out.uses("arm.storageBlobLogs", &[EntityList::Evidence]);
        let query = blob_log_query(settings.evidence_days);
        let calls = if source.is_export() {
            vec![Call::get("arm.storageBlobLogs", Service::LogAnalytics, String::new(), Paging::Table)]
        } else {
            settings
                .log_analytics_workspaces
                .iter()
                .map(|w| Call {
                    api: "arm.storageBlobLogs",
                    service: Service::LogAnalytics,
                    path: format!("/v1/workspaces/{w}/query"),
                    paging: Paging::Table,
                    body: Some(json!({ "query": query })),
                    tag: None,
                })
                .collect()
        };
        let listing = source.list_each("arm.storageBlobLogs", calls, ledger).await;
        Some(listing.items)
    } else {
        None
    };
    let data = ArmData {
        subscriptions: subscriptions.items,
        role_assignments: assignments.items,
        role_definitions: definitions.items,
        resources: resources.items,
        resource_groups: groups.items,
        blob_logs,
    };
    convert(&data, out);
    Ok(())
}

/// The Kusto query SV0 runs for storage evidence: one row per account, container, identity
/// and operation, with the last time it happened.
pub fn blob_log_query(days: u32) -> String {
    format!(
        "StorageBlobLogs | where TimeGenerated > ago({days}d) and isnotempty(RequesterObjectId) and StatusCode < 400 \
         | extend Container = tostring(split(trim_start('/', tostring(parse_url(Uri).Path)), '/')[0]) \
         | summarize TimeGenerated = max(TimeGenerated), Operations = count() by AccountName, Container, RequesterObjectId, OperationName"
    )
}

/// The lists each ARM API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    out.uses("arm.subscriptions", &[Grants, Destinations]);
    out.uses("arm.roleAssignments", &[Grants, Destinations, Identities]);
    out.uses("arm.roleDefinitions", &[Grants]);
    out.uses("arm.resources", &[Workloads, Bindings, Destinations, Domains, ClassificationRules]);
    out.uses("arm.resourceGroups", &[Destinations]);
}

/// Converts ARM responses into entities.
pub fn convert(data: &ArmData, out: &mut Collected) {
    let subscription_names: BTreeMap<String, String> = data
        .subscriptions
        .iter()
        .filter_map(|s| Some((str(s, "subscriptionId")?.to_ascii_lowercase(), str(s, "displayName")?.to_string())))
        .collect();
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for resource in data.resources.iter().chain(&data.resource_groups) {
        if let Some(id) = str(resource, "id") {
            tags.insert(id.to_ascii_lowercase(), string_map(resource.get("tags")));
        }
    }
    let definitions: BTreeMap<String, &Value> =
        data.role_definitions.iter().filter_map(|d| Some((guid_tail(str(d, "id")?), d))).collect();
    for assignment in &data.role_assignments {
        role_assignment(assignment, &definitions, &tags, &subscription_names, out);
    }
    for resource in &data.resources {
        resource_identities(resource, out);
    }
    if let Some(rows) = &data.blob_logs {
        blob_evidence(rows, &data.resources, out);
    }
}

/// A JSON object of strings as a map (ARM tags).
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

/// Built-in roles AzureHound exports without definitions: name and normalised permissions.
fn builtin_role(guid: &str) -> Option<(&'static str, &'static [Permission])> {
    use Permission::*;
    const ALL: &[Permission] = &[Read, Write, Delete, Execute, Admin];
    const CONTRIBUTE: &[Permission] = &[Read, Write, Delete, Execute];
    Some(match guid {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" => ("Owner", ALL),
        "b24988ac-6180-42a0-ab88-20f7382dd24c" => ("Contributor", CONTRIBUTE),
        "acdd72a7-3385-48ef-bd42-f606fba81ae7" => ("Reader", &[Read]),
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9" => ("User Access Administrator", &[Read, Admin]),
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1" => ("Storage Blob Data Reader", &[Read]),
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe" => ("Storage Blob Data Contributor", &[Read, Write, Delete]),
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b" => ("Storage Blob Data Owner", &[Read, Write, Delete, Admin]),
        "19e7f393-937e-4f77-808e-94535e297925" => ("Storage Queue Data Reader", &[Read]),
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88" => ("Storage Queue Data Contributor", &[Read, Write, Delete]),
        "00482a5a-887f-4fb3-b363-3b7fe8e74483" => ("Key Vault Administrator", ALL),
        "4633458b-17de-408a-b874-0445c86b69e6" => ("Key Vault Secrets User", &[Read]),
        "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd" => ("Cognitive Services OpenAI User", &[Read, Execute]),
        _ => return None,
    })
}

/// Normalised permissions of a role definition's `permissions` blocks.
///
/// Each action's last segment gives its verb (`read`, `write`, `delete`, `action` → execute,
/// `*` → all four); `listKeys/action` also reads and writes data (shared-key access). Admin
/// means the role can write role assignments, which `notActions` can take away.
pub fn role_permissions(blocks: &[Value]) -> Vec<Permission> {
    let mut set = BTreeSet::new();
    for block in blocks {
        let not: Vec<&str> = array(block, "notActions").iter().filter_map(Value::as_str).collect();
        let actions: Vec<&str> = array(block, "actions").iter().filter_map(Value::as_str).collect();
        for action in actions
            .iter()
            .chain(array(block, "dataActions").iter().filter_map(Value::as_str).collect::<Vec<_>>().iter())
        {
            set.extend(action_verbs(action));
        }
        let probe = "Microsoft.Authorization/roleAssignments/write";
        if actions.iter().any(|a| glob(a, probe)) && !not.iter().any(|n| glob(n, probe)) {
            set.insert(Permission::Admin);
        }
    }
    set.into_iter().collect()
}

fn action_verbs(action: &str) -> Vec<Permission> {
    let lower = action.to_ascii_lowercase();
    if lower.ends_with("/listkeys/action") {
        return vec![Permission::Read, Permission::Write];
    }
    match lower.rsplit('/').next().unwrap_or("") {
        "*" => vec![Permission::Read, Permission::Write, Permission::Delete, Permission::Execute],
        "read" => vec![Permission::Read],
        "write" => vec![Permission::Write],
        "delete" => vec![Permission::Delete],
        "action" if lower.ends_with("generateuserdelegationkey/action") => vec![],
        "action" => vec![Permission::Execute],
        _ => vec![],
    }
}

/// Case-insensitive match of an ARM action pattern (`*` matches anything) against an action.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn role_assignment(
    assignment: &Value,
    definitions: &BTreeMap<String, &Value>,
    tags: &BTreeMap<String, BTreeMap<String, String>>,
    subscription_names: &BTreeMap<String, String>,
    out: &mut Collected,
) {
    let properties = assignment.get("properties").unwrap_or(assignment);
    let (Some(id), Some(principal), Some(scope)) =
        (str(assignment, "id"), str(properties, "principalId"), str(properties, "scope"))
    else {
        return;
    };
    let principal_type = str(properties, "principalType").unwrap_or("ServicePrincipal");
    let is_group = principal_type.eq_ignore_ascii_case("Group");
    if !is_group && !principal_type.eq_ignore_ascii_case("ServicePrincipal") {
        return;
    }
    let principal = object_id(principal);
    let definition_guid = str(properties, "roleDefinitionId").map(guid_tail).unwrap_or_default();
    let (role, permissions) = match definitions.get(&definition_guid) {
        Some(definition) => {
            let props = definition.get("properties").unwrap_or(definition);
            (
                str(props, "roleName").unwrap_or(&definition_guid).to_string(),
                role_permissions(array(props, "permissions")),
            )
        }
        None => match builtin_role(&definition_guid) {
            Some((name, permissions)) => (name.to_string(), permissions.to_vec()),
            None => (definition_guid.clone(), vec![Permission::Read]),
        },
    };
    if permissions.is_empty() {
        return;
    }
    let destination = destination_for_scope(scope, tags, subscription_names);
    let destination_id = destination.id.clone();
    tag_domains(&destination.tags, out);
    out.destination(destination);
    let grant = Grant {
        id: id.to_ascii_lowercase(),
        identity: principal.clone(),
        destination: destination_id,
        permissions,
        source: GrantSource::AzureRoleAssignment,
        role,
        scope: scope.to_string(),
        consent: None,
    };
    if is_group {
        out.group_grant(grant);
    } else {
        out.stub_identity(&principal, &principal, IdentityKind::ServicePrincipal);
        out.grant(grant);
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

/// Tags that name a data domain (`data-domain`, `datadomain`, `data_domain`) become domains and
/// classification rules; a `data-sensitivity` (or `sensitivity`, `classification`) of
/// confidential, restricted, secret or sensitive marks the domain sensitive.
pub fn tag_domains(tags: &BTreeMap<String, String>, out: &mut Collected) {
    const SENSITIVE_DOMAINS: [&str; 9] =
        ["finance", "hr", "customer-pii", "pii", "phi", "health", "legal", "payroll", "source-code"];
    let sensitivity = tags
        .iter()
        .find(|(k, _)| ["data-sensitivity", "sensitivity", "classification"].contains(&k.to_ascii_lowercase().as_str()))
        .map(|(_, v)| v.to_ascii_lowercase());
    for (key, value) in tags {
        if !["data-domain", "datadomain", "data_domain"].contains(&key.to_ascii_lowercase().as_str()) {
            continue;
        }
        let domain = slug(value);
        if domain.is_empty() {
            continue;
        }
        let sensitive = SENSITIVE_DOMAINS.contains(&domain.as_str())
            || sensitivity.as_deref().is_some_and(|s| {
                ["confidential", "highly-confidential", "highly confidential", "restricted", "secret", "sensitive"]
                    .contains(&s)
            });
        out.domain(&domain, value.trim(), sensitive);
        let rule = format!("tag:{key}={value}");
        out.rules.entry(rule.clone()).or_insert(ClassificationRule {
            id: rule,
            tag: key.clone(),
            value: value.clone(),
            domain,
        });
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
        out.stub_identity(&principal, &principal, IdentityKind::ManagedIdentity);
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

/// `StorageBlobLogs` rows (summarised by SV0's query, or raw) as evidence of an identity acting
/// on a storage account, and on the container when it is known.
fn blob_evidence(rows: &[Value], resources: &[Value], out: &mut Collected) {
    let accounts: BTreeMap<String, String> = resources
        .iter()
        .filter_map(|r| {
            let id = str(r, "id")?.to_ascii_lowercase();
            id.contains("/providers/microsoft.storage/storageaccounts/")
                .then(|| (id.rsplit('/').next().unwrap_or("").to_string(), id.clone()))
        })
        .collect();
    let mut seen_accounts = BTreeSet::new();
    for row in rows {
        let (Some(account), Some(requester), Some(at)) =
            (str(row, "AccountName"), str(row, "RequesterObjectId"), time(row, "TimeGenerated"))
        else {
            continue;
        };
        let account = account.to_ascii_lowercase();
        let container = str(row, "Container").map(str::to_string).or_else(|| {
            let uri = str(row, "Uri")?;
            let path = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
            path.split('/').nth(1).map(|c| c.split('?').next().unwrap_or(c).to_ascii_lowercase())
        });
        let operation = str(row, "OperationName").unwrap_or("");
        let requester = object_id(requester);
        let key = match str(row, "CorrelationId") {
            Some(correlation) => format!("blob:{correlation}:{operation}"),
            None => format!("blob:{account}/{}/{requester}/{operation}", container.as_deref().unwrap_or("")),
        };
        let destination = match (accounts.get(&account), &container) {
            (Some(id), Some(container)) => Some(format!("{id}/blobservices/default/containers/{container}")),
            _ => None,
        };
        seen_accounts.insert(account.clone());
        out.evidence(Evidence {
            id: key,
            source: "storage_blob_logs".into(),
            at,
            identity: Some(requester),
            workload: None,
            destination,
            service: Some(format!("storage:{account}")),
            credential: None,
        });
    }
    // Accounts whose logs answered have execution logs on.
    for destination in out.destinations.values_mut() {
        if let Some(account) = destination.service.as_deref().and_then(|s| s.strip_prefix("storage:"))
            && seen_accounts.contains(account)
        {
            destination.execution_logs = Some(LogState::Enabled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_definitions_normalise_and_not_actions_remove_admin() {
        use Permission::*;
        let owner = json!([{"actions": ["*"], "notActions": []}]);
        assert_eq!(role_permissions(owner.as_array().unwrap()), vec![Read, Write, Delete, Execute, Admin]);
        let contributor = json!([{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"]}]);
        assert_eq!(role_permissions(contributor.as_array().unwrap()), vec![Read, Write, Delete, Execute]);
        let reader = json!([{"actions": ["*/read"]}]);
        assert_eq!(role_permissions(reader.as_array().unwrap()), vec![Read]);
        let blob = json!([{"actions": ["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
            "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"]}]);
        assert_eq!(role_permissions(blob.as_array().unwrap()), vec![Read, Write]);
        let keys = json!([{"actions": ["Microsoft.Storage/storageAccounts/listkeys/action"]}]);
        assert_eq!(role_permissions(keys.as_array().unwrap()), vec![Read, Write]);
        assert!(glob("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
        assert!(!glob("Microsoft.Storage/*", "Microsoft.Authorization/roleAssignments/write"));
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
