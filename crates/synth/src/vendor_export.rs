//! Synthetic tenants in the vendors' own formats: an export directory of Microsoft Graph, Azure
//! Resource Manager, Log Analytics, ServiceNow Table API and Foundry responses, paged as the
//! services page them, that `sv0 scan run --from-export DIR` reads. For demos and for the
//! benchmark of the whole pipeline, vendor JSON to materialised paths.
//!
//! The shape per 100 identities: 30 managed identities, each the identity of a function app,
//! Logic App or web app holding one to four storage role assignments (a fifth also a Graph
//! permission); one agent identity; 69 application service principals, half with an app
//! registration (secrets, some certificates, owners), 40 % holding Graph application
//! permissions, 10 % delegated grants, 1 % directory roles. A quarter of identities signed in
//! within the last 30 days. Per 40 identities one storage account (two containers, a data-domain
//! tag on four in five); per 200 one Foundry agent; per 500 one ServiceNow integration user.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{Value, json};
use sv0_domain::Timestamp;

use crate::synthetic::{DOMAINS, Rng};

/// What was written.
#[derive(Debug, Clone, Copy, Default)]
pub struct VendorExport {
    /// Service principals (identities) in Graph.
    pub identities: usize,
    /// Items written over every file.
    pub items: usize,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

const TENANT_ID: &str = "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f0";
const GRAPH_SP: &str = "00000000-0000-4000-8000-00000000a000";
const PROJECT_MI: &str = "00000000-0000-4000-8000-00000000b000";
const GRAPH_ROLES: [&str; 12] = [
    "User.Read.All",
    "Group.Read.All",
    "Mail.Read",
    "Mail.Send",
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Directory.Read.All",
    "Application.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "Calendars.Read",
    "Chat.Read.All",
];
const BLOB_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
const BLOB_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// A deterministic GUID for item `index` of a kind.
fn guid(kind: u32, index: usize) -> String {
    let mut rng = Rng::new(index as u64, u64::from(kind) + 1);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// Writes items as pages of `size` into `<api>.json`, `<api>.2.json`, ...
struct Writer<'a> {
    dir: &'a Path,
    stats: VendorExport,
}

impl Writer<'_> {
    fn pages(
        &mut self,
        api: &str,
        items: Vec<Value>,
        size: usize,
        wrap: impl Fn(Vec<Value>, bool) -> Value,
    ) -> std::io::Result<()> {
        let count = items.len();
        let mut chunks: Vec<Vec<Value>> = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunks.push(items.by_ref().take(size).collect());
        }
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let last = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let name = if i == 0 { format!("{api}.json") } else { format!("{api}.{}.json", i + 1) };
            let path = self.dir.join(name);
            let mut out = BufWriter::new(File::create(&path)?);
            serde_json::to_writer(&mut out, &wrap(chunk, i + 1 < last))?;
            out.flush()?;
            self.stats.files += 1;
            self.stats.bytes += std::fs::metadata(&path)?.len();
        }
        self.stats.items += count;
        Ok(())
    }

    fn graph(&mut self, api: &str, items: Vec<Value>) -> std::io::Result<()> {
        self.pages(api, items, 999, |value, more| {
            let mut page = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata", "value": value });
            if more {
                page["@odata.nextLink"] = json!("https://graph.microsoft.com/v1.0/next?$skiptoken=X");
            }
            page
        })
    }

    fn arm(&mut self, api: &str, items: Vec<Value>) -> std::io::Result<()> {
        self.pages(api, items, 1000, |value, more| {
            let mut page = json!({ "value": value });
            if more {
                page["nextLink"] = json!("https://management.azure.com/next?$skipToken=X");
            }
            page
        })
    }

    fn servicenow(&mut self, api: &str, items: Vec<Value>) -> std::io::Result<()> {
        self.pages(api, items, 1000, |value, _| json!({ "result": value }))
    }

    fn cursor(&mut self, api: &str, items: Vec<Value>) -> std::io::Result<()> {
        self.pages(api, items, 100, |value, more| {
            let first = value.first().and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
            let last = value.last().and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
            json!({ "object": "list", "data": value, "first_id": first, "last_id": last, "has_more": more })
        })
    }
}

fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// Writes a synthetic tenant of about `identities` service principals into `dir` (created if
/// needed), with a `meta.json` naming the tenant and when it was read.
pub fn write(dir: &Path, identities: usize, seed: u64) -> std::io::Result<VendorExport> {
    std::fs::create_dir_all(dir)?;
    let n = identities.max(10);
    let observed = Timestamp::parse(crate::synthetic::OBSERVED_AT).unwrap_or_default();
    let mut rng = Rng::new(seed, 41);
    let mut w = Writer { dir, stats: VendorExport { identities: n, ..Default::default() } };

    let subscriptions: Vec<String> = (0..n.div_ceil(20_000)).map(|i| guid(1, i)).collect();
    let groups: Vec<(String, &str)> = (0..(n / 200).max(1))
        .map(|i| {
            let sub = &subscriptions[i % subscriptions.len()];
            (format!("/subscriptions/{sub}/resourceGroups/rg-app-{i:05}"), DOMAINS[i % DOMAINS.len()].1)
        })
        .collect();
    let accounts: Vec<(String, String)> = (0..(n / 40).max(1))
        .map(|i| {
            let (group, _) = &groups[i % groups.len()];
            let name = format!("st{i:06}data");
            (format!("{group}/providers/Microsoft.Storage/storageAccounts/{name}"), name)
        })
        .collect();
    let users: Vec<Value> = (0..(n / 20).max(3))
        .map(|i| {
            json!({"@odata.type": "#microsoft.graph.user", "id": guid(2, i), "displayName": format!("User {i}"),
                   "userPrincipalName": format!("user{i}@contoso.example"), "accountEnabled": i % 12 != 0})
        })
        .collect();

    // Microsoft Graph and the service principals.
    let role_id = |r: usize| guid(3, r);
    let mut sps = vec![json!({
        "id": GRAPH_SP, "appId": "00000003-0000-0000-c000-000000000000", "displayName": "Microsoft Graph",
        "servicePrincipalType": "Application", "accountEnabled": true,
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a", "keyCredentials": [], "passwordCredentials": [],
        "appRoles": GRAPH_ROLES.iter().enumerate().map(|(r, v)| json!({"id": role_id(r), "value": v, "displayName": v,
            "allowedMemberTypes": ["Application"], "isEnabled": true})).collect::<Vec<_>>(),
        "owners": []
    })];
    let mut apps = Vec::new();
    let mut assignments = Vec::new();
    let mut grants = Vec::new();
    let mut role_assignments_dir = Vec::new();
    let mut sign_ins = Vec::new();
    let mut resources = Vec::new();
    let mut rbac = Vec::new();
    let mut blob_rows = Vec::new();
    for i in 0..n - 2 {
        let id = guid(4, i);
        let app_id = guid(5, i);
        let bucket = i % 100;
        let owners: Vec<Value> = (0..rng.below(3)).map(|_| users[rng.below(users.len())].clone()).collect();
        let mut sp = json!({"id": id, "appId": app_id, "accountEnabled": !rng.chance(3), "keyCredentials": [],
                            "passwordCredentials": [], "appRoles": [], "owners": []});
        if bucket < 30 {
            // A managed identity: the system-assigned identity of an app that acts on its own.
            let (group, _) = &groups[i % groups.len()];
            let (provider, kind, name) = match i % 3 {
                0 => ("Microsoft.Web/sites", "functionapp", format!("func-{i:06}")),
                1 => ("Microsoft.Logic/workflows", "", format!("logic-{i:06}")),
                _ => ("Microsoft.Web/sites", "app", format!("app-{i:06}")),
            };
            let resource = format!("{group}/providers/{provider}/{name}");
            sp["displayName"] = json!(name);
            sp["servicePrincipalType"] = json!("ManagedIdentity");
            sp["alternativeNames"] = json!(["isExplicit=False", resource]);
            resources.push(
                json!({"id": resource, "name": name, "type": provider, "kind": kind, "location": "westeurope",
                "tags": {"owner": format!("user{}@contoso.example", i % users.len())},
                "identity": {"type": "SystemAssigned", "principalId": id, "tenantId": TENANT_ID}}),
            );
            for k in 0..1 + rng.below(4) {
                let (account, _) = &accounts[rng.below(accounts.len())];
                let (scope, role) = match rng.below(4) {
                    0 => (account.clone(), BLOB_READER),
                    1 => (format!("{account}/blobServices/default/containers/c{}", rng.below(2)), BLOB_CONTRIBUTOR),
                    2 => (format!("{account}/blobServices/default/containers/c{}", rng.below(2)), BLOB_READER),
                    _ => (groups[rng.below(groups.len())].0.clone(), CONTRIBUTOR),
                };
                let guid = guid(6, i * 8 + k);
                rbac.push(json!({"id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"),
                    "name": guid, "type": "Microsoft.Authorization/roleAssignments",
                    "properties": {"roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", subscriptions[0]),
                        "principalId": id, "principalType": "ServicePrincipal", "scope": scope, "createdOn": "2025-09-01T10:00:00Z"}}));
                if scope.contains("/containers/") && rng.chance(20) {
                    let account_name = scope.split('/').nth(8).unwrap_or("").to_string();
                    let container = scope.rsplit('/').next().unwrap_or("").to_string();
                    blob_rows.push(json!([
                        account_name,
                        container,
                        id,
                        "GetBlob",
                        rfc3339(observed.add_days(-(rng.below(30) as i64))),
                        1 + rng.below(500)
                    ]));
                }
            }
            if rng.chance(20) {
                assignments.push(app_role(i, &id, &name, 0));
            }
        } else if bucket == 30 {
            sp["@odata.type"] = json!("#microsoft.graph.agentIdentity");
            sp["displayName"] = json!(format!("agent-{i:06}"));
            sp["servicePrincipalType"] = json!("ServiceIdentity");
            sp["owners"] = json!(owners);
            assignments.push(app_role(i, &id, &format!("agent-{i:06}"), rng.below(GRAPH_ROLES.len())));
        } else {
            let name = format!("app-registration-{i:06}");
            sp["displayName"] = json!(name);
            sp["servicePrincipalType"] = json!("Application");
            sp["appOwnerOrganizationId"] = json!(if rng.chance(10) { guid(7, i) } else { TENANT_ID.to_string() });
            sp["owners"] = json!(owners);
            if bucket % 2 == 0 {
                let start = observed.add_days(-(rng.below(900) as i64));
                let mut password = vec![json!({"keyId": guid(8, i), "displayName": "client secret",
                    "startDateTime": rfc3339(start), "endDateTime": rfc3339(start.add_days(if rng.chance(30) { 3650 } else { 365 }))})];
                if rng.chance(15) {
                    password.push(json!({"keyId": guid(9, i), "displayName": "rotation", "startDateTime": rfc3339(start.add_days(300)),
                        "endDateTime": rfc3339(start.add_days(665))}));
                }
                let certificates: Vec<Value> = if rng.chance(30) {
                    vec![json!({"keyId": guid(10, i), "type": "AsymmetricX509Cert", "usage": "Verify",
                        "startDateTime": rfc3339(start), "endDateTime": rfc3339(start.add_days(730))})]
                } else {
                    Vec::new()
                };
                apps.push(
                    json!({"id": guid(11, i), "appId": app_id, "displayName": name, "signInAudience": "AzureADMyOrg",
                    "passwordCredentials": password, "keyCredentials": certificates,
                    "owners": (0..rng.below(2)).map(|_| users[rng.below(users.len())].clone()).collect::<Vec<_>>()}),
                );
            }
            if rng.chance(40) {
                for r in 0..1 + rng.below(3) {
                    assignments.push(app_role(i * 4 + r, &id, &name, rng.below(GRAPH_ROLES.len())));
                }
            }
            if rng.chance(10) {
                grants.push(json!({"id": format!("grant-{i:06}"), "clientId": id, "consentType": if rng.chance(50) { "AllPrincipals" } else { "Principal" },
                    "principalId": Value::Null, "resourceId": GRAPH_SP, "scope": "User.Read Mail.Read"}));
            }
            if rng.chance(1) {
                role_assignments_dir.push(json!({"id": format!("dra-{i:06}"), "principalId": id,
                    "roleDefinitionId": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "directoryScopeId": "/"}));
            }
        }
        if rng.chance(25) {
            let key = if bucket >= 31 && bucket % 2 == 0 { Some(guid(8, i)) } else { None };
            sign_ins.push(json!({"id": guid(12, i), "createdDateTime": rfc3339(observed.add_days(-(rng.below(30) as i64))),
                "appId": app_id, "servicePrincipalId": id, "servicePrincipalCredentialKeyId": key,
                "resourceId": "00000003-0000-0000-c000-000000000000", "resourceServicePrincipalId": GRAPH_SP,
                "resourceDisplayName": "Microsoft Graph", "azureResourceId": "",
                "signInEventTypes": [if bucket < 30 { "managedIdentity" } else { "servicePrincipal" }], "status": {"errorCode": 0}}));
        }
        sps.push(sp);
    }
    sps.push(json!({"id": PROJECT_MI, "appId": guid(13, 0), "displayName": "contoso-agents", "servicePrincipalType": "ManagedIdentity",
        "accountEnabled": true, "alternativeNames": ["isExplicit=False",
        format!("{}/providers/Microsoft.CognitiveServices/accounts/contoso-ai/projects/contoso-agents", groups[0].0)],
        "keyCredentials": [], "passwordCredentials": [], "appRoles": [], "owners": []}));
    for (k, (account, _)) in accounts.iter().take(3).enumerate() {
        rbac.push(json!({"id": format!("{account}/providers/Microsoft.Authorization/roleAssignments/{}", guid(14, k)),
            "properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{BLOB_READER}"),
                "principalId": PROJECT_MI, "principalType": "ServicePrincipal", "scope": account}}));
    }
    w.graph("graph.servicePrincipals", sps)?;
    w.graph("graph.applications", apps)?;
    w.graph("graph.appRoleAssignments", assignments)?;
    w.graph("graph.oauth2PermissionGrants", grants)?;
    w.graph(
        "graph.directoryRoleDefinitions",
        vec![json!({"id": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "displayName": "Application Administrator", "isBuiltIn": true,
            "templateId": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
            "rolePermissions": [{"allowedResourceActions": ["microsoft.directory/applications/credentials/update"]}]})],
    )?;
    w.graph("graph.directoryRoleAssignments", role_assignments_dir)?;
    w.graph("graph.signIns", sign_ins)?;
    // The owners' user records: a departure date for one in 25, sign-in activity for all.
    w.graph(
        "graph.ownerAccounts",
        users
            .iter()
            .enumerate()
            .map(|(i, u)| json!({"id": u["id"], "userPrincipalName": u["userPrincipalName"], "accountEnabled": u["accountEnabled"],
                "employeeLeaveDateTime": if i % 25 == 24 { json!(rfc3339(observed.add_days(-10))) } else { Value::Null }}))
            .collect(),
    )?;
    w.graph(
        "graph.ownerSignInActivity",
        users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                json!({"id": u["id"], "signInActivity": {
                "lastSignInDateTime": rfc3339(observed.add_days(-((i * 7 % 200) as i64))),
                "lastNonInteractiveSignInDateTime": "0001-01-01T00:00:00Z", "lastSuccessfulSignInDateTime": ""}})
            })
            .collect(),
    )?;

    // Azure Resource Manager and the storage logs.
    w.arm(
        "arm.subscriptions",
        subscriptions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({"id": format!("/subscriptions/{s}"), "subscriptionId": s, "tenantId": TENANT_ID,
                "displayName": format!("Subscription {i}"), "state": "Enabled"})
            })
            .collect(),
    )?;
    let definition = |id: &str, name: &str, actions: Value, data: Value| {
        json!({"id": format!("/providers/Microsoft.Authorization/roleDefinitions/{id}"), "name": id,
            "properties": {"roleName": name, "type": "BuiltInRole", "permissions": [{"actions": actions, "notActions":
                if name == "Contributor" { json!(["Microsoft.Authorization/*/Write", "Microsoft.Authorization/*/Delete"]) } else { json!([]) },
                "dataActions": data, "notDataActions": []}]}})
    };
    w.arm(
        "arm.roleDefinitions",
        vec![
            definition(
                BLOB_READER,
                "Storage Blob Data Reader",
                json!(["Microsoft.Storage/storageAccounts/blobServices/containers/read"]),
                json!(["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]),
            ),
            definition(
                BLOB_CONTRIBUTOR,
                "Storage Blob Data Contributor",
                json!(["Microsoft.Storage/storageAccounts/blobServices/containers/write"]),
                json!([
                    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
                ]),
            ),
            definition(CONTRIBUTOR, "Contributor", json!(["*"]), json!([])),
            definition(READER, "Reader", json!(["*/read"]), json!([])),
        ],
    )?;
    // Groups of managed identities holding a role on a resource group.
    let mut members = Vec::new();
    for g in 0..(n / 1000).max(1) {
        let group = guid(15, g);
        let (scope, _) = &groups[g % groups.len()];
        rbac.push(json!({"id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}", guid(16, g)),
            "properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
                "principalId": group, "principalType": "Group", "scope": scope}}));
        for m in 0..5 {
            let member = (g * 100 + m * 20) % (n - 2);
            if member % 100 < 30 {
                members.push(json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": guid(4, member), "groupId": group}));
            }
        }
    }
    w.graph("graph.groupMembers", members)?;
    w.arm("arm.roleAssignments", rbac)?;
    let workspace = format!("{}/providers/Microsoft.OperationalInsights/workspaces/law-security", groups[0].0);
    let workspace_id = guid(17, 0);
    let mut containers = Vec::new();
    let mut diagnostics = Vec::new();
    for (i, (account, name)) in accounts.iter().enumerate() {
        let mut tags = json!({});
        if i % 5 != 0 {
            let (domain, _, _) = DOMAINS[i % DOMAINS.len()];
            // Half as the Cloud Adoption Framework spells it, half as SV0's own key.
            tags = if i % 2 == 0 { json!({"data-domain": domain}) } else { json!({"DataClassification": domain}) };
        }
        resources.push(
            json!({"id": account, "name": name, "type": "Microsoft.Storage/storageAccounts", "kind": "StorageV2",
            "location": "westeurope", "tags": tags}),
        );
        for c in 0..2 {
            containers.push(
                json!({"id": format!("{account}/blobServices/default/containers/c{c}"), "name": format!("c{c}"),
                "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
                "properties": {"publicAccess": "None", "leaseState": "Available", "hasLegalHold": false}}),
            );
        }
        // Three accounts in four send their blob logs to the workspace SV0 reads.
        if i % 4 != 3 {
            diagnostics.push(json!({"id": format!("{}/blobservices/default/providers/microsoft.insights/diagnosticSettings/to-law", account.to_ascii_lowercase()),
                "type": "Microsoft.Insights/diagnosticSettings", "name": "to-law",
                "properties": {"workspaceId": workspace, "logs": [{"categoryGroup": "audit", "enabled": true,
                    "retentionPolicy": {"enabled": false, "days": 0}}], "metrics": []}}));
        }
    }
    let foundry_account = format!("{}/providers/Microsoft.CognitiveServices/accounts/contoso-ai", groups[0].0);
    let project = format!("{foundry_account}/projects/contoso-agents");
    w.arm("arm.resources", resources)?;
    w.arm("arm.blobContainers", containers)?;
    w.arm("arm.diagnosticSettings", diagnostics)?;
    w.arm(
        "arm.logAnalyticsWorkspaces",
        vec![json!({"id": workspace, "name": "law-security", "type": "Microsoft.OperationalInsights/workspaces",
            "location": "westeurope", "properties": {"customerId": workspace_id, "retentionInDays": 90}})],
    )?;
    w.arm(
        "arm.cognitiveServicesAccounts",
        vec![json!({"id": foundry_account, "name": "contoso-ai", "type": "Microsoft.CognitiveServices/accounts",
            "kind": "AIServices", "location": "swedencentral", "sku": {"name": "S0"},
            "properties": {"customSubDomainName": "contoso-ai", "allowProjectManagement": true}})],
    )?;
    w.arm(
        "arm.foundryProjects",
        vec![json!({"id": project, "name": "contoso-agents", "type": "Microsoft.CognitiveServices/accounts/projects",
            "identity": {"type": "SystemAssigned", "principalId": PROJECT_MI, "tenantId": TENANT_ID},
            "properties": {"endpoints": {"AI Foundry API": "https://contoso-ai.services.ai.azure.com/api/projects/contoso-agents"}}})],
    )?;
    w.arm(
        "arm.resourceGroups",
        groups
            .iter()
            .map(|(id, _)| json!({"id": id, "name": id.rsplit('/').next(), "location": "westeurope", "tags": {}}))
            .collect(),
    )?;
    let columns = ["AccountName", "Container", "RequesterObjectId", "OperationName", "TimeGenerated", "Operations"];
    let table = json!({"tables": [{"name": "PrimaryResult",
        "columns": columns.iter().map(|c| json!({"name": c, "type": "string"})).collect::<Vec<_>>(), "rows": blob_rows}]});
    w.stats.items += table["tables"][0]["rows"].as_array().map(Vec::len).unwrap_or(0);
    std::fs::write(dir.join("arm.storageBlobLogs.json"), serde_json::to_vec(&table)?)?;
    w.stats.files += 1;

    // ServiceNow.
    let sn_users = (n / 500).max(3);
    let tables = ["incident", "change_request", "sn_hr_core_case", "customer_contact", "fm_expense_line", "sys_user"];
    let roles = ["itil", "sn_hr_core.basic", "sn_customerservice_agent", "financial_mgmt_user", "user_admin"];
    let value = |v: String| json!({"value": v, "display_value": v});
    w.servicenow(
        "servicenow.users",
        (0..sn_users)
            .map(|i| json!({"sys_id": value(format!("snu{i:08}")), "user_name": value(format!("svc_integration_{i}")),
                "active": value((i % 15 != 0).to_string()), "locked_out": value("false".into()),
                "web_service_access_only": value((i % 2 == 0).to_string()), "internal_integration_user": value((i % 2 == 1).to_string())}))
            .collect(),
    )?;
    w.servicenow(
        "servicenow.userRoles",
        (0..sn_users * 2)
            .map(|i| json!({"sys_id": value(format!("snr{i:08}")), "user": value(format!("snu{:08}", i / 2)),
                "role": {"value": format!("role{}", (i * 7) % roles.len()), "display_value": roles[(i * 7) % roles.len()]},
                "state": value("active".into())}))
            .collect(),
    )?;
    let mut acls = Vec::new();
    let mut acl_roles = Vec::new();
    for (t, table) in tables.iter().enumerate() {
        for (o, operation) in ["read", "write", "delete"].iter().enumerate() {
            let id = format!("acl{t}{o}");
            acls.push(json!({"sys_id": value(id.clone()), "name": value(table.to_string()),
                "operation": {"value": operation, "display_value": operation}, "type": value("record".into()), "active": value("true".into())}));
            acl_roles.push(json!({"sys_id": value(format!("ar{t}{o}")), "sys_security_acl": value(id),
                "sys_user_role": {"value": format!("role{}", t % roles.len()), "display_value": roles[t % roles.len()]}}));
        }
    }
    w.servicenow("servicenow.acls", acls)?;
    w.servicenow("servicenow.aclRoles", acl_roles)?;
    w.servicenow(
        "servicenow.oauthEntities",
        (0..sn_users / 2)
            .map(|i| json!({"sys_id": value(format!("sno{i:08}")), "name": value(format!("Integration client {i}")),
                "type": value("client".into()), "active": value("true".into()), "user": value(format!("snu{:08}", i * 2)),
                "sys_created_on": value("2024-02-01 10:00:00".into())}))
            .collect(),
    )?;
    w.servicenow(
        "servicenow.restMessages",
        (0..(n / 1000).max(1))
            .map(|i| json!({"sys_id": value(format!("snm{i:08}")), "name": value(format!("Outbound {i}")),
                "rest_endpoint": value(format!("https://api.vendor{}.example/v1/hook", i % 17)), "authentication_type": value("basic".into()),
                "basic_auth_profile": value(format!("snp{:04}", i % 9)), "oauth2_profile": value(String::new())}))
            .collect(),
    )?;

    w.servicenow(
        "servicenow.transactions",
        (0..sn_users)
            .filter(|i| i % 3 == 0)
            .map(|i| json!({"sys_id": value(format!("snt{i:08}")), "url": value(format!("/api/now/table/{}", tables[i % tables.len()])),
                "sys_created_by": value(format!("svc_integration_{i}")), "type": value("rest".into()),
                "sys_created_on": value(format!("{} 10:00:00", observed.add_days(-3).date()))}))
            .collect(),
    )?;

    // Foundry.
    let agents = (n / 200).max(2);
    w.cursor(
        "foundry.agents",
        (0..agents)
            .map(|i| {
                let mut tools = vec![json!({"type": "code_interpreter"})];
                if i % 2 == 0 {
                    tools.push(json!({"type": "openapi", "openapi": {"name": format!("api_{i}"),
                        "spec": {"openapi": "3.0.1", "servers": [{"url": format!("https://api{}.contoso.example", i % 23)}], "paths": {}},
                        "auth": {"type": "managed_identity", "security_scheme": {"audience": "api://contoso"}}}}));
                }
                if i % 3 == 0 {
                    tools.push(json!({"type": "bing_grounding", "bing_grounding": {"search_configurations": [{"connection_id": "bing"}]}}));
                }
                json!({"id": format!("asst_{i:06}"), "object": "assistant", "created_at": 1_760_000_000 + i,
                    "name": format!("agent-{i}"), "model": if i % 4 == 0 { "gpt-4o" } else { "gpt-4o-mini" }, "tools": tools,
                    "metadata": {"team": format!("team-{}", i % 12)}})
            })
            .collect(),
    )?;
    w.arm(
        "foundry.connections",
        vec![
            json!({"id": format!("{project}/connections/bing"), "name": "bing", "type": "Microsoft.CognitiveServices/accounts/projects/connections",
                "properties": {"category": "GroundingWithBingSearch", "target": "https://api.bing.microsoft.com/", "authType": "ApiKey"}}),
            json!({"id": format!("{project}/connections/aoai"), "name": "aoai", "type": "Microsoft.CognitiveServices/accounts/projects/connections",
                "properties": {"category": "AzureOpenAI", "target": "https://contoso-aoai.openai.azure.com/", "authType": "AAD"}}),
        ],
    )?;
    let at = (observed.0 / 1000) - 86_400;
    w.cursor(
        "foundry.runSteps",
        (0..agents / 2)
            .map(|i| json!({"id": format!("step_{i:06}"), "object": "thread.run.step", "assistant_id": format!("asst_{:06}", i * 2),
                "type": "tool_calls", "status": "completed", "created_at": at, "completed_at": at + 5,
                "step_details": {"type": "tool_calls", "tool_calls": [{"id": format!("call_{i}"), "type": "code_interpreter"}]}}))
            .collect(),
    )?;

    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_vec_pretty(&json!({
            "tenant": crate::synthetic::TENANT,
            "observed_at": crate::synthetic::OBSERVED_AT,
            "azure_tenant_id": TENANT_ID,
            "servicenow_host": "contoso.service-now.com",
            "log_analytics_workspaces": [workspace_id],
        }))?,
    )?;
    Ok(w.stats)
}

/// A Graph application permission held by a service principal.
fn app_role(index: usize, principal: &str, name: &str, role: usize) -> Value {
    json!({"id": format!("ara-{principal}-{role}-{index}"), "appRoleId": guid(3, role), "principalId": principal,
        "principalType": "ServicePrincipal", "principalDisplayName": name, "resourceId": GRAPH_SP,
        "resourceDisplayName": "Microsoft Graph", "createdDateTime": "2025-06-01T12:00:00Z"})
}
