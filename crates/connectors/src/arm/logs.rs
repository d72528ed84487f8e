//! Execution evidence from ARM: diagnostic settings (which logs are enabled, so which paths
//! can reach grade A) and storage blob logs read from Log Analytics.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{Evidence, LogState};

use crate::collect::Collected;
use crate::json::{array, object_id, str, time};

use super::*;

/// What a data resource's diagnostic settings send, per the categories Azure Monitor documents
/// for it: blob services `StorageRead`, `StorageWrite`, `StorageDelete`; key vaults
/// `AuditEvent`; Cognitive Services `Audit` and `RequestResponse`. The category groups `audit`
/// ("all resource logs that record customer interactions with data") and `allLogs` cover them.
pub(super) fn data_categories(kind: DataResource) -> &'static [&'static str] {
    match kind {
        DataResource::Storage => &["StorageRead", "StorageWrite", "StorageDelete"],
        DataResource::KeyVault => &["AuditEvent"],
        DataResource::CognitiveServices => &["Audit", "RequestResponse"],
    }
}

/// Where a resource's data-access logs go, from its diagnostic settings.
#[derive(Debug, Default)]
pub(super) struct Sinks {
    /// Log Analytics workspaces (ARM ids, lower-case), with the setting's name.
    workspaces: BTreeSet<(String, String)>,
    /// Storage accounts and event hubs (ids).
    elsewhere: BTreeSet<String>,
}

/// Decides each data resource's execution-log state from its diagnostic settings: `disabled`
/// when no setting sends its data-access categories anywhere; `unread` when they go only where
/// SV0 does not read (another workspace, a storage account, an event hub); `enabled` when they
/// reach a workspace SV0 queries. Key vaults and model accounts are only ever `disabled`: SV0
/// queries only `StorageBlobLogs`, so logs that do exist leave their state unknown.
pub(super) fn log_states(data: &ArmData, settings: &[Value], complete: bool, out: &mut Collected) {
    let kinds: BTreeMap<String, DataResource> = data
        .resources
        .iter()
        .filter_map(|r| Some((str(r, "id")?.trim_end_matches('/').to_ascii_lowercase(), data_kind(r)?)))
        .collect();
    let mut sinks: BTreeMap<String, Sinks> = BTreeMap::new();
    for setting in settings {
        let Some(id) = str(setting, "id") else { continue };
        let lower = id.to_ascii_lowercase();
        let resource = lower
            .split_once("/providers/microsoft.insights/diagnosticsettings/")
            .or_else(|| lower.split_once("/diagnosticsettings/"))
            .map(|(r, _)| r.trim_end_matches("/blobservices/default").to_string());
        let Some(resource) = resource else { continue };
        let Some(kind) = kinds.get(&resource).copied() else { continue };
        let properties = setting.get("properties").unwrap_or(setting);
        let categories = data_categories(kind);
        let sends = array(properties, "logs").iter().any(|log| {
            crate::json::bool(log, "enabled") == Some(true)
                && (str(log, "category").is_some_and(|c| categories.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    || str(log, "categoryGroup")
                        .is_some_and(|g| g.eq_ignore_ascii_case("audit") || g.eq_ignore_ascii_case("allLogs")))
        });
        let entry = sinks.entry(resource).or_default();
        if !sends {
            continue;
        }
        if let Some(workspace) = str(properties, "workspaceId") {
            entry.workspaces.insert((workspace.to_ascii_lowercase(), str(setting, "name").unwrap_or("").to_string()));
        }
        for key in ["storageAccountId", "eventHubAuthorizationRuleId", "marketplacePartnerId"] {
            if let Some(sink) = str(properties, key) {
                entry.elsewhere.insert(sink.to_string());
            }
        }
    }
    // Workspace ARM id → (name, customer id), to tell the ones SV0 queries.
    let workspaces: Option<BTreeMap<String, (String, String)>> = data.workspaces.as_ref().map(|items| {
        items
            .iter()
            .filter_map(|w| {
                let id = str(w, "id")?.to_ascii_lowercase();
                let customer = w.get("properties").and_then(|p| str(p, "customerId"))?.to_ascii_lowercase();
                Some((id, (str(w, "name").unwrap_or("").to_string(), customer)))
            })
            .collect()
    });
    let read = |arm_id: &str| -> Option<bool> {
        if data.read_workspaces.iter().any(|r| r.eq_ignore_ascii_case(arm_id)) {
            return Some(true);
        }
        let (_, customer) = workspaces.as_ref()?.get(arm_id)?;
        Some(data.read_workspaces.iter().any(|r| r.eq_ignore_ascii_case(customer)))
    };
    for resource in &data.resources {
        let (Some(kind), Some(id)) = (data_kind(resource), str(resource, "id")) else { continue };
        let lower = id.trim_end_matches('/').to_ascii_lowercase();
        let name = str(resource, "name").unwrap_or(&lower).to_string();
        let categories = data_categories(kind).join(", ");
        let (what, service) = match kind {
            DataResource::Storage => (
                format!("the blob service of storage account {name}"),
                format!("storage:{}", name.to_ascii_lowercase()),
            ),
            DataResource::KeyVault => (format!("key vault {name}"), format!("keyvault:{}", name.to_ascii_lowercase())),
            DataResource::CognitiveServices => (
                format!("Cognitive Services account {name}"),
                format!("cognitiveservices:{}", name.to_ascii_lowercase()),
            ),
        };
        let sink = sinks.get(&lower);
        let sends = sink.is_some_and(|s| !s.workspaces.is_empty() || !s.elsewhere.is_empty());
        let state = match sink {
            // No setting of this resource was found although the listing was incomplete:
            // unknown, not disabled.
            None if !complete => None,
            _ if !sends => Some((
                LogState::Disabled,
                format!(
                    "a diagnostic setting on {what} sending {categories} (or the category group audit) to a Log Analytics workspace SV0 reads"
                ),
            )),
            _ if kind != DataResource::Storage => None,
            Some(s) => unread_or_enabled(s, &what, &categories, &read, workspaces.as_ref()),
            None => None,
        };
        if let Some(state) = state {
            out.log_states.insert(service, state);
        }
    }
}

/// The state of a storage account whose data-access logs are sent somewhere: `enabled` when a
/// workspace SV0 queries gets them, unknown when a workspace cannot be told, else `unread`,
/// naming where they go.
pub(super) fn unread_or_enabled(
    sinks: &Sinks,
    what: &str,
    categories: &str,
    read: &dyn Fn(&str) -> Option<bool>,
    workspaces: Option<&BTreeMap<String, (String, String)>>,
) -> Option<(LogState, String)> {
    let reached: Vec<(&(String, String), Option<bool>)> = sinks.workspaces.iter().map(|w| (w, read(&w.0))).collect();
    if reached.iter().any(|(_, r)| *r == Some(true)) {
        return Some((LogState::Enabled, format!("the {categories} logs {what} sends to Log Analytics")));
    }
    if reached.iter().any(|(_, r)| r.is_none()) {
        return None;
    }
    if let Some(((workspace, setting), _)) = reached.first() {
        let (label, customer) = workspaces
            .and_then(|w| w.get(workspace.as_str()))
            .cloned()
            .unwrap_or_else(|| (workspace.rsplit('/').next().unwrap_or("").to_string(), String::new()));
        return Some((
            LogState::Unread,
            format!(
                "the {categories} logs that diagnostic setting {setting} sends from {what} to Log Analytics workspace {label} (workspace id {customer}): add it to [connectors] log_analytics_workspaces"
            ),
        ));
    }
    let sink = sinks.elsewhere.iter().next().cloned().unwrap_or_default();
    Some((
        LogState::Unread,
        format!(
            "the {categories} logs {what} sends only to {sink}: send them to a Log Analytics workspace SV0 reads ([connectors] log_analytics_workspaces)"
        ),
    ))
}

/// `StorageBlobLogs` rows (summarised by SV0's query, or raw) as evidence of an identity acting
/// on a storage account, and on the container when it is known.
pub(super) fn blob_evidence(rows: &[Value], resources: &[Value], out: &mut Collected) {
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
    // Accounts whose logs answered have execution logs SV0 reads.
    for account in seen_accounts {
        out.log_states.insert(
            format!("storage:{account}"),
            (LogState::Enabled, format!("the blob logs (StorageBlobLogs) of storage account {account}")),
        );
    }
}

#[cfg(test)]
mod tests {
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
