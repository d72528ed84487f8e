//! AzureHound's JSON output (`azurehound list ... -o FILE`): `{"data": [{"kind": "AZ...",
//! "data": {...}}], "meta": {"type": "azure", ...}}`. Each record carries the raw Graph or ARM
//! object AzureHound read (ids upper-cased), so the records are sorted into the same responses
//! the entra and azure-rbac connectors read and converted by them. AzureHound reads no
//! sign-ins, storage logs or role definitions: evidence is not covered, and Azure roles are
//! named from the built-in role table.

use serde_json::Value;
use sv0_domain::snapshot::EntityList;

use crate::arm::ArmData;
use crate::collect::Collected;
use crate::entra::GraphData;
use crate::json::{array, object_id, str};
use crate::source::{Call, Ledger, Paging, Service, Source};
use crate::{ConnectorError, Settings};

const API: &str = "azurehound";

/// Reads AzureHound output and adds what it describes to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    use EntityList::*;
    out.uses(
        API,
        &[Identities, Credentials, Owners, Workloads, Bindings, Grants, Destinations, Domains, ClassificationRules],
    );
    let listing = source.list(Call::get(API, Service::Graph, String::new(), Paging::Cursor), ledger).await;
    let (mut graph, arm, members, tenant) = sort(&listing.items);
    graph.service_principals_complete = listing.complete;
    let mut settings = settings.clone();
    if settings.azure_tenant_id.is_none() {
        settings.azure_tenant_id = tenant;
    }
    crate::entra::convert(&graph, &settings, out);
    crate::arm::convert(&arm, out);
    crate::groups::expand(&members, listing.complete, out);
    Ok(())
}

/// Sorts AzureHound records into Graph and ARM responses and group members (items naming their
/// `groupId`); also returns the tenant id.
pub fn sort(records: &[Value]) -> (GraphData, ArmData, Vec<Value>, Option<String>) {
    let mut members = Vec::new();
    let mut graph = GraphData::default();
    let mut arm = ArmData::default();
    let mut tenant = None;
    let mut sp_owners: Vec<(String, Value)> = Vec::new();
    let mut app_owners: Vec<(String, Value)> = Vec::new();
    for record in records {
        let (Some(kind), Some(data)) = (str(record, "kind"), record.get("data")) else { continue };
        if tenant.is_none() {
            tenant = str(data, "tenantId").map(object_id);
        }
        match kind {
            "AZServicePrincipal" => graph.service_principals.push(data.clone()),
            "AZApp" => graph.applications.push(data.clone()),
            "AZServicePrincipalOwner" => {
                for owner in array(data, "owners") {
                    let id = str(owner, "servicePrincipalId").or(str(data, "servicePrincipalId"));
                    if let (Some(id), Some(o)) = (id, owner.get("owner")) {
                        sp_owners.push((object_id(id), o.clone()));
                    }
                }
            }
            "AZAppOwner" => {
                for owner in array(data, "owners") {
                    let id = str(owner, "appId").or(str(data, "appId"));
                    if let (Some(id), Some(o)) = (id, owner.get("owner")) {
                        app_owners.push((id.to_ascii_lowercase(), o.clone()));
                    }
                }
            }
            "AZAppRoleAssignment" => match data.get("appRoleAssignments").and_then(Value::as_array) {
                Some(list) => graph.app_role_assignments.extend(list.iter().cloned()),
                None => graph.app_role_assignments.push(data.clone()),
            },
            "AZOAuth2PermissionGrant" => graph.oauth2_permission_grants.push(data.clone()),
            "AZGroupMember" => {
                for entry in array(data, "members") {
                    let group = str(entry, "groupId").or(str(data, "groupId"));
                    if let (Some(group), Some(Value::Object(member))) = (group, entry.get("member")) {
                        let mut item = member.clone();
                        item.insert("groupId".into(), Value::String(group.to_string()));
                        members.push(Value::Object(item));
                    }
                }
            }
            "AZRole" => graph.role_definitions.push(data.clone()),
            "AZRoleAssignment" => graph.role_assignments.extend(array(data, "roleAssignments").iter().cloned()),
            "AZSubscription" => arm.subscriptions.push(data.clone()),
            "AZResourceGroup" => arm.resource_groups.push(data.clone()),
            "AZTenant" => tenant = str(data, "tenantId").map(object_id).or(tenant),
            kind if kind.ends_with("RoleAssignment") => {
                for assignee in array(data, "assignees") {
                    if let Some(raw) = assignee.get("assignee") {
                        arm.role_assignments.push(raw.clone());
                    }
                }
            }
            "AZStorageContainer" => arm.containers.get_or_insert_with(|| (Vec::new(), true)).0.push(data.clone()),
            "AZStorageAccount"
            | "AZFunctionApp"
            | "AZLogicApp"
            | "AZWebApp"
            | "AZVM"
            | "AZVMScaleSet"
            | "AZKeyVault"
            | "AZAutomationAccount"
            | "AZContainerRegistry"
            | "AZManagedCluster" => arm.resources.push(data.clone()),
            _ => {}
        }
    }
    // Owners arrive as their own records: attach them as Graph's `$expand=owners` would.
    for sp in &mut graph.service_principals {
        let id = str(sp, "id").map(object_id).unwrap_or_default();
        let owners: Vec<Value> = sp_owners.iter().filter(|(s, _)| *s == id).map(|(_, o)| o.clone()).collect();
        if !owners.is_empty()
            && let Some(map) = sp.as_object_mut()
        {
            map.insert("owners".into(), Value::Array(owners));
        }
    }
    for app in &mut graph.applications {
        let id = str(app, "appId").map(str::to_ascii_lowercase).unwrap_or_default();
        let owners: Vec<Value> = app_owners.iter().filter(|(a, _)| *a == id).map(|(_, o)| o.clone()).collect();
        if !owners.is_empty()
            && let Some(map) = app.as_object_mut()
        {
            map.insert("owners".into(), Value::Array(owners));
        }
    }
    (graph, arm, members, tenant)
}
