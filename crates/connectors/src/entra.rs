//! Microsoft Entra ID through Microsoft Graph: service principals (managed identities and agent
//! identities among them) with their credentials and owners, applications, app role
//! assignments (permission names resolved through the resource's `appRoles`), delegated
//! permission grants, directory role assignments, and service-principal and managed-identity
//! sign-ins as execution evidence naming the credential used.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{
    Binding, ClassificationRule, Consent, Credential, CredentialKind, Destination, DestinationKind, Evidence, Grant,
    GrantSource, Identity, IdentityKind, Owner, OwnerStatus, Permission, Presence, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination};
use crate::json::{array, bool, object_id, str, time};
use crate::source::{Call, Ledger, Paging, Service, Source, encode_query_value};
use crate::tracking::{self, GraphCollection};
use crate::{ConnectorError, Settings};

/// Microsoft Graph's application id (the resource of Graph permissions).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Microsoft's own tenants: first-party applications are homed there and are not "foreign".
const MICROSOFT_TENANTS: [&str; 2] = ["f8cdef31-a31e-4b4a-93e4-5f571e91255a", "72f988bf-86f1-41af-91ab-2d7cd011db47"];

const OWNER_FIELDS: &str = "id,displayName,userPrincipalName,accountEnabled";

/// The Graph responses the conversion reads (live, exported or from AzureHound).
#[derive(Debug, Default)]
pub struct GraphData {
    /// `servicePrincipals`, each with its `owners` when expanded.
    pub service_principals: Vec<Value>,
    /// `applications`, each with its `owners` when expanded.
    pub applications: Vec<Value>,
    /// `appRoleAssignments` of service principals.
    pub app_role_assignments: Vec<Value>,
    /// `oauth2PermissionGrants`.
    pub oauth2_permission_grants: Vec<Value>,
    /// `roleManagement/directory/roleDefinitions`.
    pub role_definitions: Vec<Value>,
    /// `roleManagement/directory/roleAssignments`.
    pub role_assignments: Vec<Value>,
    /// `auditLogs/signIns` of service principals and managed identities.
    pub sign_ins: Vec<Value>,
    /// Owners' user records (`accountEnabled`, `employeeLeaveDateTime`, `userPrincipalName`).
    pub owner_accounts: Vec<Value>,
    /// Owners' `signInActivity`.
    pub owner_activity: Vec<Value>,
    /// Whether every page of `servicePrincipals` was read: then a principal that is not among
    /// them no longer exists in the directory.
    pub service_principals_complete: bool,
}

/// Graph's `$filter=id in (...)` takes at most 15 values.
const IDS_PER_FILTER: usize = 15;

/// Reads Entra ID and adds what it saw to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    if !source.has(Service::Graph) {
        return Err(ConnectorError::Setup("entra needs the Microsoft Graph base URL".into()));
    }
    declare(out);
    let get = |api, path: String| Call::get(api, Service::Graph, path, Paging::OData);
    let tracking = settings.tracking.as_deref();
    // Listed with their owners; between full rounds of a watch, only what changed.
    let owned = |api, resource| GraphCollection { api, resource, owner_fields: OWNER_FIELDS };
    let sps = tracking::read(source, tracking, owned("graph.servicePrincipals", "servicePrincipals"), ledger).await;
    let apps = tracking::read(source, tracking, owned("graph.applications", "applications"), ledger).await;
    // App role assignments are listed per resource: only a service principal that defines app
    // roles can be the resource of one, so a tenant of 100k principals needs calls for the few
    // hundred APIs among them, not for every principal.
    let calls = if source.is_export() {
        vec![get("graph.appRoleAssignments", String::new())]
    } else {
        sps.items
            .iter()
            .filter(|sp| !array(sp, "appRoles").is_empty())
            .filter_map(|sp| str(sp, "id"))
            .map(|id| {
                get("graph.appRoleAssignments", format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo?$top=999"))
            })
            .collect()
    };
    if !sps.complete {
        ledger.skipped("graph.appRoleAssignments", "graph.servicePrincipals was not read completely");
    }
    let assignments = source.list_each("graph.appRoleAssignments", calls, ledger).await;
    let grants =
        source.list(get("graph.oauth2PermissionGrants", "/v1.0/oauth2PermissionGrants?$top=999".into()), ledger).await;
    let definitions = source
        .list(get("graph.directoryRoleDefinitions", "/v1.0/roleManagement/directory/roleDefinitions".into()), ledger)
        .await;
    let role_assignments = source
        .list(get("graph.directoryRoleAssignments", "/v1.0/roleManagement/directory/roleAssignments".into()), ledger)
        .await;
    let since = settings.observed_at.add_days(-i64::from(settings.evidence_days)).to_rfc3339();
    let filter = format!(
        "createdDateTime ge {since} and signInEventTypes/any(t: t eq 'servicePrincipal' or t eq 'managedIdentity')"
    );
    let sign_ins = source
        .list(
            get("graph.signIns", format!("/beta/auditLogs/signIns?$filter={}&$top=999", encode_query_value(&filter))),
            ledger,
        )
        .await;
    // Owners' accounts, read apart from their sign-in activity: signInActivity needs
    // AuditLog.Read.All and a P1/P2 licence, and Graph refuses the whole request without them.
    let owner_ids: Vec<String> = owner_user_ids(sps.items.iter().chain(&apps.items));
    let users = |api: &'static str, select: &str| -> Vec<Call> {
        if source.is_export() {
            return vec![get(api, String::new())];
        }
        owner_ids
            .chunks(IDS_PER_FILTER)
            .map(|ids| {
                let list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
                let filter = encode_query_value(&format!("id in ({list})"));
                get(api, format!("/v1.0/users?$filter={filter}&$select={select}"))
            })
            .collect()
    };
    let accounts = source
        .list_each(
            "graph.ownerAccounts",
            users("graph.ownerAccounts", "id,userPrincipalName,accountEnabled,employeeLeaveDateTime"),
            ledger,
        )
        .await;
    let activity = source
        .list_each("graph.ownerSignInActivity", users("graph.ownerSignInActivity", "id,signInActivity"), ledger)
        .await;
    let data = GraphData {
        service_principals: sps.items,
        applications: apps.items,
        app_role_assignments: assignments.items,
        oauth2_permission_grants: grants.items,
        role_definitions: definitions.items,
        role_assignments: role_assignments.items,
        sign_ins: sign_ins.items,
        owner_accounts: accounts.items,
        owner_activity: activity.items,
        service_principals_complete: sps.complete,
    };
    convert(&data, settings, out);
    Ok(())
}

/// The object ids of the users who own service principals or applications, sorted.
fn owner_user_ids<'a>(holders: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for holder in holders {
        for owner in array(holder, "owners") {
            let is_user = str(owner, "@odata.type").is_none_or(|t| t.ends_with(".user"));
            if let (true, Some(id)) = (is_user, str(owner, "id")) {
                ids.insert(object_id(id));
            }
        }
    }
    ids.into_iter().collect()
}

/// The lists each Graph API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    out.uses(
        "graph.servicePrincipals",
        &[Identities, Credentials, Owners, Workloads, Bindings, Domains, ClassificationRules],
    );
    out.uses("graph.applications", &[Credentials, Owners]);
    out.uses("graph.appRoleAssignments", &[Grants, Destinations]);
    out.uses("graph.oauth2PermissionGrants", &[Grants, Destinations]);
    out.uses("graph.directoryRoleDefinitions", &[Grants]);
    out.uses("graph.directoryRoleAssignments", &[Grants, Destinations]);
    out.uses("graph.signIns", &[Evidence]);
    out.uses("graph.ownerAccounts", &[Owners]);
    out.uses("graph.ownerSignInActivity", &[Owners]);
}

/// What the conversion knows of each resource service principal.
struct Resource<'a> {
    name: String,
    is_graph: bool,
    roles: BTreeMap<String, &'a str>,
}

/// Converts Graph responses into entities.
pub fn convert(data: &GraphData, settings: &Settings, out: &mut Collected) {
    graph_domains(out);
    let apps: BTreeMap<String, &Value> =
        data.applications.iter().filter_map(|a| Some((str(a, "appId")?.to_ascii_lowercase(), a))).collect();
    let mut resources: BTreeMap<String, Resource> = BTreeMap::new();
    let mut directory = BTreeSet::new();
    let activity = owner_activity(data, settings);
    for sp in &data.service_principals {
        let Some(id) = str(sp, "id").map(object_id) else { continue };
        let app_id = str(sp, "appId").unwrap_or("").to_ascii_lowercase();
        let is_graph = app_id == GRAPH_APP_ID;
        if !app_id.is_empty() {
            out.app_ids.insert(app_id.clone(), id.clone());
        }
        directory.insert(id.clone());
        let roles = array(sp, "appRoles")
            .iter()
            .filter_map(|r| Some((object_id(str(r, "id")?), str(r, "value").or_else(|| str(r, "displayName"))?)))
            .collect();
        resources
            .insert(id.clone(), Resource { name: str(sp, "displayName").unwrap_or(&id).to_string(), is_graph, roles });
        service_principal(sp, &id, apps.get(&app_id).copied(), settings, &activity, out);
    }
    if data.service_principals_complete {
        out.directory = Some(directory);
    }
    for assignment in &data.app_role_assignments {
        app_role_assignment(assignment, &resources, out);
    }
    for grant in &data.oauth2_permission_grants {
        permission_grant(grant, &resources, out);
    }
    directory_roles(data, out);
    let principals: BTreeSet<String> = resources.keys().cloned().collect();
    for sign_in in &data.sign_ins {
        evidence(sign_in, &resources, &principals, out);
    }
}

/// What the owners' user records say, by object id: the account state, the departure and the
/// last sign-in.
#[derive(Debug, Default, Clone)]
struct Activity {
    enabled: Option<bool>,
    departed: bool,
    last_sign_in: Option<sv0_domain::Timestamp>,
}

fn owner_activity(data: &GraphData, settings: &Settings) -> BTreeMap<String, Activity> {
    let mut out: BTreeMap<String, Activity> = BTreeMap::new();
    for user in &data.owner_accounts {
        let Some(id) = str(user, "id").map(object_id) else { continue };
        let entry = out.entry(id).or_default();
        entry.enabled = bool(user, "accountEnabled");
        // A leave date in the past (at the scan's time) means the person has left.
        entry.departed = graph_time(user, "employeeLeaveDateTime").is_some_and(|at| at <= settings.observed_at);
    }
    for user in &data.owner_activity {
        let Some(id) = str(user, "id").map(object_id) else { continue };
        let Some(activity) = user.get("signInActivity") else { continue };
        let last = ["lastSuccessfulSignInDateTime", "lastSignInDateTime", "lastNonInteractiveSignInDateTime"]
            .iter()
            .filter_map(|key| graph_time(activity, key))
            .max();
        out.entry(id).or_default().last_sign_in = last;
    }
    out
}

/// A Graph time; Graph writes "never" as `""`, `null` or `0001-01-01T00:00:00Z`.
fn graph_time(value: &Value, key: &str) -> Option<sv0_domain::Timestamp> {
    time(value, key).filter(|at| at.0 > 0)
}

/// The data domains Graph permissions reach, by resource area.
fn graph_domains(out: &mut Collected) {
    const AREAS: [(&str, &str, &str, bool); 9] = [
        ("User", "directory", "Employee Directory", false),
        ("Group", "directory", "Employee Directory", false),
        ("Directory", "directory", "Employee Directory", false),
        ("Mail", "mail", "Mail and Chat", true),
        ("Chat", "mail", "Mail and Chat", true),
        ("ChannelMessage", "mail", "Mail and Chat", true),
        ("Calendars", "mail", "Mail and Chat", true),
        ("Files", "files", "Files and Sites", true),
        ("Sites", "files", "Files and Sites", true),
    ];
    for (area, domain, name, sensitive) in AREAS {
        out.domain(domain, name, sensitive);
        out.rules.insert(
            format!("graph:{area}"),
            ClassificationRule {
                id: format!("graph:{area}"),
                tag: "graph_resource".into(),
                value: area.into(),
                domain: domain.into(),
            },
        );
    }
}

fn service_principal(
    sp: &Value,
    id: &str,
    app: Option<&Value>,
    settings: &Settings,
    activity: &BTreeMap<String, Activity>,
    out: &mut Collected,
) {
    let odata_type = str(sp, "@odata.type").unwrap_or("");
    let kind = if odata_type.ends_with("agentIdentity") {
        IdentityKind::AgentIdentity
    } else if str(sp, "servicePrincipalType").is_some_and(|t| t.eq_ignore_ascii_case("ManagedIdentity")) {
        IdentityKind::ManagedIdentity
    } else {
        IdentityKind::ServicePrincipal
    };
    let home = str(sp, "appOwnerOrganizationId").map(|t| t.to_ascii_lowercase());
    let home_tenant = match (&home, &settings.azure_tenant_id) {
        (Some(home), Some(ours)) if !home.eq_ignore_ascii_case(ours) && !MICROSOFT_TENANTS.contains(&home.as_str()) => {
            Some(home.clone())
        }
        _ => None,
    };
    let mut owners = Vec::new();
    for owner in array(sp, "owners").iter().chain(app.map(|a| array(a, "owners")).unwrap_or(&[])) {
        if let Some(mut record) = owner_of(owner) {
            if let Some(known) = str(owner, "id").map(object_id).and_then(|o| activity.get(&o)) {
                if known.enabled == Some(false) {
                    record.status = OwnerStatus::Disabled;
                }
                if known.departed {
                    record.status = OwnerStatus::Departed;
                }
                record.last_active_at = known.last_sign_in.or(record.last_active_at);
            }
            owners.push(record.id.clone());
            out.owner(record);
        }
    }
    let name = str(sp, "displayName").unwrap_or(id).to_string();
    out.identity(Identity {
        id: id.to_string(),
        name: name.clone(),
        kind,
        enabled: bool(sp, "accountEnabled").unwrap_or(true),
        home_tenant,
        owners,
        presence: Presence::Recorded,
    });
    for holder in std::iter::once(sp).chain(app) {
        for (key, kind) in
            [("passwordCredentials", CredentialKind::Password), ("keyCredentials", CredentialKind::Certificate)]
        {
            for credential in array(holder, key) {
                let Some(key_id) = str(credential, "keyId").map(object_id) else { continue };
                out.credential(Credential {
                    id: key_id,
                    identity: id.to_string(),
                    kind,
                    created_at: time(credential, "startDateTime"),
                    expires_at: time(credential, "endDateTime"),
                });
            }
        }
        for fic in array(holder, "federatedIdentityCredentials") {
            let Some(fic_id) = str(fic, "id").map(object_id) else { continue };
            out.credential(Credential {
                id: fic_id,
                identity: id.to_string(),
                kind: CredentialKind::Federated,
                created_at: None,
                expires_at: None,
            });
        }
    }
    // A system-assigned managed identity names its resource: that resource runs as it.
    if kind == IdentityKind::ManagedIdentity {
        let names = array(sp, "alternativeNames");
        let system = names.iter().any(|n| n.as_str().is_some_and(|s| s.eq_ignore_ascii_case("isExplicit=False")));
        let resource = names.iter().filter_map(Value::as_str).find(|n| n.starts_with('/'));
        if let (true, Some(resource)) = (system, resource)
            && let Some(workload) = crate::arm::workload_for_resource(resource, &name, Default::default())
        {
            out.binding(Binding {
                id: format!("{}|{id}", workload.id),
                workload: workload.id.clone(),
                identity: id.to_string(),
                tool: None,
            });
            out.workload(workload);
        }
    }
    // An agent identity is the identity of one agent: the agent is the workload.
    if kind == IdentityKind::AgentIdentity {
        let workload = format!("entra-agent:{id}");
        out.workload(Workload {
            id: workload.clone(),
            name,
            kind: WorkloadKind::Other,
            project: None,
            tags: Default::default(),
            owners: out.identities.get(id).map(|i| i.owners.clone()).unwrap_or_default(),
        });
        out.binding(Binding { id: format!("{workload}|{id}"), workload, identity: id.to_string(), tool: None });
    }
}

/// An owner record from an expanded `owners` entry (a user or a service principal).
pub fn owner_of(owner: &Value) -> Option<Owner> {
    let id = str(owner, "id").map(object_id)?;
    let is_sp = str(owner, "@odata.type").is_some_and(|t| t.ends_with("servicePrincipal"));
    let key = if is_sp {
        format!("sp:{id}")
    } else {
        str(owner, "userPrincipalName").map(|u| u.to_ascii_lowercase()).unwrap_or(id.clone())
    };
    let status = if bool(owner, "accountEnabled") == Some(false) { OwnerStatus::Disabled } else { OwnerStatus::Active };
    Some(Owner {
        name: str(owner, "displayName").map(str::to_string).unwrap_or_else(|| key.clone()),
        id: key,
        status,
        last_active_at: owner.get("signInActivity").and_then(|s| time(s, "lastSignInDateTime")),
    })
}

/// The destination a permission on a resource reaches: Graph permissions by resource area
/// (`User.Read.All` → `graph/User`), other APIs as a whole.
fn permission_destination(
    resource_id: &str,
    resource: Option<&Resource>,
    permission: &str,
    out: &mut Collected,
) -> String {
    if resource.is_some_and(|r| r.is_graph) {
        graph_destination(permission, out)
    } else {
        let id = format!("entra-app:{resource_id}");
        out.destination(Destination {
            service: Some(id.clone()),
            ..bare_destination(
                id.clone(),
                resource.map(|r| r.name.as_str()).unwrap_or(resource_id).to_string(),
                DestinationKind::Other,
            )
        });
        id
    }
}

/// The Microsoft Graph destination a Graph permission reaches (`User.Read.All` → `graph/User`),
/// recorded in `out`; returns its id.
pub fn graph_destination(permission: &str, out: &mut Collected) -> String {
    let area = graph_area(permission);
    let id = format!("graph/{area}");
    out.destination(Destination {
        service: Some("graph".into()),
        host: Some("graph.microsoft.com".into()),
        tags: [("graph_resource".to_string(), area.clone())].into_iter().collect(),
        execution_log_source: Some("Microsoft Graph activity logs (MicrosoftGraphActivityLogs)".into()),
        ..bare_destination(id.clone(), format!("Microsoft Graph: {area}"), DestinationKind::GraphApi)
    });
    id
}

/// The resource area of a Graph permission: `User.Read.All` → `User`; sign-in scopes → `User`.
fn graph_area(permission: &str) -> String {
    match permission {
        "openid" | "profile" | "email" | "offline_access" => "User".into(),
        _ => permission.split('.').next().unwrap_or(permission).to_string(),
    }
}

/// Normalised permissions of a Graph or API permission name.
pub fn permission_verbs(permission: &str) -> Vec<Permission> {
    let mut set = BTreeSet::new();
    let mut parts = permission.split('.');
    let area = parts.next().unwrap_or("");
    for verb in parts {
        match verb.to_ascii_lowercase().as_str() {
            "read" | "readbasic" => {
                set.insert(Permission::Read);
            }
            "readwrite" | "accessasuser" => {
                set.extend([Permission::Read, Permission::Write]);
            }
            "write" | "create" | "invite" | "update" => {
                set.insert(Permission::Write);
            }
            "delete" => {
                set.insert(Permission::Delete);
            }
            "send" => {
                set.insert(Permission::Execute);
            }
            "manage" | "fullcontrol" => {
                set.extend([Permission::Read, Permission::Write, Permission::Delete, Permission::Admin]);
            }
            _ => {}
        }
    }
    if matches!(permission, "openid" | "profile" | "email" | "offline_access") {
        set.insert(Permission::Read);
    }
    // Writing these areas changes who can do what.
    let escalates =
        ["RoleManagement", "AppRoleAssignment", "Application", "Directory", "Policy", "ServicePrincipalEndpoint"];
    if set.contains(&Permission::Write) && escalates.contains(&area) {
        set.insert(Permission::Admin);
    }
    if set.is_empty() {
        set.insert(Permission::Execute);
    }
    set.into_iter().collect()
}

fn app_role_assignment(assignment: &Value, resources: &BTreeMap<String, Resource>, out: &mut Collected) {
    let principal_type = str(assignment, "principalType").unwrap_or("ServicePrincipal");
    let is_group = principal_type.eq_ignore_ascii_case("Group");
    if !is_group && !principal_type.eq_ignore_ascii_case("ServicePrincipal") {
        return;
    }
    let (Some(id), Some(principal), Some(resource_id)) =
        (str(assignment, "id"), str(assignment, "principalId"), str(assignment, "resourceId"))
    else {
        return;
    };
    let (principal, resource_id) = (object_id(principal), object_id(resource_id));
    let role_id = str(assignment, "appRoleId").map(object_id).unwrap_or_default();
    let resource = resources.get(&resource_id);
    let role = match resource.and_then(|r| r.roles.get(&role_id)) {
        Some(name) => name.to_string(),
        None if role_id == "00000000-0000-0000-0000-000000000000" => "default access".to_string(),
        None => role_id.clone(),
    };
    let destination = permission_destination(&resource_id, resource, &role, out);
    let resource_name =
        str(assignment, "resourceDisplayName").or(resource.map(|r| r.name.as_str())).unwrap_or(&resource_id);
    let grant = Grant {
        id: id.to_string(),
        identity: principal,
        destination,
        permissions: permission_verbs(&role),
        source: GrantSource::AppRoleAssignment,
        role,
        scope: resource_name.to_string(),
        consent: None,
    };
    if is_group { out.group_grant(grant) } else { out.grant(grant) }
}

fn permission_grant(grant: &Value, resources: &BTreeMap<String, Resource>, out: &mut Collected) {
    let (Some(id), Some(client), Some(resource_id)) =
        (str(grant, "id"), str(grant, "clientId"), str(grant, "resourceId"))
    else {
        return;
    };
    let (client, resource_id) = (object_id(client), object_id(resource_id));
    let consent = match str(grant, "consentType") {
        Some(t) if t.eq_ignore_ascii_case("AllPrincipals") => Some(Consent::AllPrincipals),
        Some(_) => Some(Consent::Principal),
        None => None,
    };
    let resource = resources.get(&resource_id);
    for scope in str(grant, "scope").unwrap_or("").split_whitespace() {
        let destination = permission_destination(&resource_id, resource, scope, out);
        out.grant(Grant {
            id: format!("{id}/{scope}"),
            identity: client.clone(),
            destination,
            permissions: permission_verbs(scope),
            source: GrantSource::Oauth2PermissionGrant,
            role: scope.to_string(),
            scope: resource.map(|r| r.name.as_str()).unwrap_or(&resource_id).to_string(),
            consent,
        });
    }
}

fn directory_roles(data: &GraphData, out: &mut Collected) {
    let mut definitions: BTreeMap<String, &Value> = BTreeMap::new();
    for definition in &data.role_definitions {
        for key in ["id", "templateId"] {
            if let Some(id) = str(definition, key) {
                definitions.insert(object_id(id), definition);
            }
        }
    }
    let mut used = false;
    for assignment in &data.role_assignments {
        let (Some(id), Some(principal)) = (str(assignment, "id"), str(assignment, "principalId")) else { continue };
        let definition_id = str(assignment, "roleDefinitionId").map(object_id).unwrap_or_default();
        let definition = assignment.get("roleDefinition").or_else(|| definitions.get(&definition_id).copied());
        let name = definition.and_then(|d| str(d, "displayName")).unwrap_or(&definition_id).to_string();
        let actions: Vec<&str> = definition
            .map(|d| array(d, "rolePermissions"))
            .unwrap_or(&[])
            .iter()
            .flat_map(|p| array(p, "allowedResourceActions").iter().filter_map(Value::as_str))
            .collect();
        let mut permissions = BTreeSet::from([Permission::Read]);
        let modifies = |a: &&str| {
            let a = a.to_ascii_lowercase();
            ["/update", "/create", "/delete", "/alltasks", "/allproperties"].iter().any(|v| a.contains(v))
        };
        if actions.iter().any(modifies) || name.ends_with("Administrator") {
            permissions.extend([Permission::Write, Permission::Admin]);
        }
        used = true;
        out.grant(Grant {
            id: id.to_string(),
            identity: object_id(principal),
            destination: "entra/directory".into(),
            permissions: permissions.into_iter().collect(),
            source: GrantSource::DirectoryRoleAssignment,
            role: name,
            scope: str(assignment, "directoryScopeId").unwrap_or("/").to_string(),
            consent: None,
        });
    }
    if used {
        out.destination(Destination {
            service: Some("graph".into()),
            host: Some("graph.microsoft.com".into()),
            tags: [("graph_resource".to_string(), "Directory".to_string())].into_iter().collect(),
            execution_log_source: Some("Microsoft Entra audit logs".into()),
            ..bare_destination("entra/directory", "Microsoft Entra directory", DestinationKind::GraphApi)
        });
    }
}

/// A successful service-principal or managed-identity sign-in as evidence, joined on the
/// vendor's fields: `servicePrincipalId` (else the client's `appId`) is the identity;
/// `azureResourceId`, when present, is the Azure resource the token was for, and names both a
/// destination (grade A on paths to that very resource) and its service (grade B on the
/// resource's other destinations); otherwise the resource application — `resourceId` is its
/// appId, `resourceServicePrincipalId` its object id — is the service (grade B);
/// `servicePrincipalCredentialKeyId` names the credential used.
fn evidence(
    sign_in: &Value,
    resources: &BTreeMap<String, Resource>,
    principals: &BTreeSet<String>,
    out: &mut Collected,
) {
    let succeeded = sign_in.get("status").and_then(|s| s.get("errorCode")).and_then(Value::as_i64).unwrap_or(0) == 0;
    let (Some(id), Some(at)) = (str(sign_in, "id"), time(sign_in, "createdDateTime")) else { return };
    if !succeeded {
        return;
    }
    let by_app = |key: &str| str(sign_in, key).and_then(|app| out.app_ids.get(&app.to_ascii_lowercase()).cloned());
    let identity = str(sign_in, "servicePrincipalId")
        .map(object_id)
        .filter(|sp| principals.contains(sp) || out.identities.contains_key(sp))
        .or_else(|| by_app("appId"))
        .or_else(|| str(sign_in, "servicePrincipalId").map(object_id));
    let Some(identity) = identity else { return };
    let resource_app = str(sign_in, "resourceId").map(|r| r.to_ascii_lowercase());
    let resource_sp = str(sign_in, "resourceServicePrincipalId").map(object_id).or_else(|| by_app("resourceId"));
    let to_graph = resource_app.as_deref() == Some(GRAPH_APP_ID)
        || resource_sp.as_ref().is_some_and(|r| resources.get(r).is_some_and(|r| r.is_graph));
    let azure_resource = str(sign_in, "azureResourceId").map(|r| r.trim_end_matches('/').to_ascii_lowercase());
    let (destination, service) = match azure_resource {
        Some(resource) if resource.starts_with('/') => {
            let service = crate::arm::destination_for_scope(&resource, &BTreeMap::new(), &BTreeMap::new()).service;
            (Some(resource), service)
        }
        _ if to_graph => (None, Some("graph".to_string())),
        _ => (None, resource_sp.filter(|r| resources.contains_key(r)).map(|r| format!("entra-app:{r}"))),
    };
    out.evidence(Evidence {
        id: format!("signin:{id}"),
        source: "entra_sign_in".into(),
        at,
        identity: Some(identity),
        workload: None,
        destination,
        service,
        credential: str(sign_in, "servicePrincipalCredentialKeyId").map(object_id),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_permission_names_normalise() {
        use Permission::*;
        assert_eq!(permission_verbs("User.Read.All"), vec![Read]);
        assert_eq!(permission_verbs("Files.ReadWrite.All"), vec![Read, Write]);
        assert_eq!(permission_verbs("Mail.Send"), vec![Execute]);
        assert_eq!(permission_verbs("RoleManagement.ReadWrite.Directory"), vec![Read, Write, Admin]);
        assert_eq!(permission_verbs("Sites.FullControl.All"), vec![Read, Write, Delete, Admin]);
        assert_eq!(permission_verbs("user_impersonation"), vec![Execute]);
        assert_eq!(permission_verbs("openid"), vec![Read]);
        assert_eq!(graph_area("Mail.Read"), "Mail");
    }
}
