//! ServiceNow through the Table API: integration users (`web_service_access_only`,
//! `internal_integration_user`) with their roles, the tables those roles reach through
//! table-level ACLs, OAuth application registry entries (the external integrations that run as
//! those users), and outbound REST messages (their endpoints are egress). Tables are classified
//! into data domains by a built-in table map that `[servicenow.classification]` extends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{
    Binding, ClassificationRule, Credential, CredentialKind, Destination, DestinationKind, EgressClass, Evidence,
    Grant, GrantSource, Identity, IdentityKind, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination, bare_identity};
use crate::json::{bool, display, host_of, str, time};
use crate::source::{Call, Ledger, Paging, Service, Source};
use crate::{ConnectorError, Settings};
use sv0_domain::policy::slug;

/// Built-in table → (domain id, domain name, sensitive).
const TABLE_DOMAINS: [(&str, &str, &str, bool); 14] = [
    ("sys_user", "directory", "Employee Directory", false),
    ("sys_user_group", "directory", "Employee Directory", false),
    ("incident", "itsm", "IT Service Management", false),
    ("problem", "itsm", "IT Service Management", false),
    ("change_request", "itsm", "IT Service Management", false),
    ("sc_request", "itsm", "IT Service Management", false),
    ("sc_req_item", "itsm", "IT Service Management", false),
    ("cmdb_ci", "itsm", "IT Service Management", false),
    ("sn_hr_core_case", "hr", "HR", true),
    ("sn_hr_core_profile", "hr", "HR", true),
    ("customer_account", "customer-pii", "Customer PII", true),
    ("customer_contact", "customer-pii", "Customer PII", true),
    ("csm_consumer", "customer-pii", "Customer PII", true),
    ("fm_expense_line", "finance", "Finance", true),
];

const USERS: &str = "servicenow.users";
const ROLES: &str = "servicenow.userRoles";
const ACLS: &str = "servicenow.acls";
const ACL_ROLES: &str = "servicenow.aclRoles";
const OAUTH: &str = "servicenow.oauthEntities";
const REST: &str = "servicenow.restMessages";
const TRANSACTIONS: &str = "servicenow.transactions";

/// The Table API responses the conversion reads.
#[derive(Debug, Default)]
pub struct ServiceNowData {
    /// `sys_user` rows of integration users.
    pub users: Vec<Value>,
    /// `sys_user_has_role` rows.
    pub user_roles: Vec<Value>,
    /// `sys_security_acl` rows (active, record ACLs).
    pub acls: Vec<Value>,
    /// `sys_security_acl_role` rows.
    pub acl_roles: Vec<Value>,
    /// `oauth_entity` rows.
    pub oauth_entities: Vec<Value>,
    /// `sys_rest_message` rows.
    pub rest_messages: Vec<Value>,
    /// `syslog_transaction` rows of REST calls (`type=rest`) in the evidence window.
    pub transactions: Vec<Value>,
}

fn table(api: &'static str, table: &str, query: &str, fields: &str) -> Call {
    Call::get(
        api,
        Service::ServiceNow,
        format!(
            "/api/now/table/{table}?sysparm_query={query}%5EORDERBYsys_id&sysparm_fields={fields}\
             &sysparm_display_value=all&sysparm_exclude_reference_link=true&sysparm_limit=1000"
        ),
        Paging::LinkHeader,
    )
}

/// Reads ServiceNow and adds what it saw to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    if !source.has(Service::ServiceNow) {
        return Err(ConnectorError::Setup(
            "servicenow needs the instance URL: --base-url servicenow=https://<instance>.service-now.com".into(),
        ));
    }
    declare(out);
    let integration = "web_service_access_only%3Dtrue%5EORinternal_integration_user%3Dtrue";
    let users = source
        .list(
            table(
                USERS,
                "sys_user",
                integration,
                "sys_id,user_name,name,active,locked_out,web_service_access_only,internal_integration_user,last_login_time",
            ),
            ledger,
        )
        .await;
    let roles = source
        .list(
            table(
                ROLES,
                "sys_user_has_role",
                "user.web_service_access_only%3Dtrue%5EORuser.internal_integration_user%3Dtrue",
                "sys_id,user,role,state,inherited",
            ),
            ledger,
        )
        .await;
    let acls = source
        .list(
            table(ACLS, "sys_security_acl", "active%3Dtrue%5Etype%3Drecord", "sys_id,name,operation,type,active"),
            ledger,
        )
        .await;
    let acl_roles = source
        .list(table(ACL_ROLES, "sys_security_acl_role", "", "sys_id,sys_security_acl,sys_user_role"), ledger)
        .await;
    let oauth = source
        .list(
            table(OAUTH, "oauth_entity", "active%3Dtrue", "sys_id,name,client_id,type,active,user,sys_created_on"),
            ledger,
        )
        .await;
    let rest = source
        .list(
            table(
                REST,
                "sys_rest_message",
                "",
                "sys_id,name,rest_endpoint,authentication_type,basic_auth_profile,oauth2_profile",
            ),
            ledger,
        )
        .await;
    // REST transactions of the integration users in the evidence window: who called which
    // table. `sys_created_by` holds the caller's user name, `url` the API path.
    let since = settings.observed_at.add_days(-i64::from(settings.evidence_days)).to_rfc3339();
    let (date, clock) = since.trim_end_matches('Z').split_once('T').unwrap_or((&since, "00:00:00"));
    let mut query = format!("type=rest^sys_created_on>=javascript:gs.dateGenerate('{date}','{clock}')");
    let names: Vec<&str> = users.items.iter().filter_map(|u| str(u, "user_name")).collect();
    if !names.is_empty() && names.len() <= 100 {
        query.push_str(&format!("^sys_created_byIN{}", names.join(",")));
    }
    let transactions = source
        .list(
            table(
                TRANSACTIONS,
                "syslog_transaction",
                &crate::source::encode_query_value(&query),
                "sys_id,url,sys_created_by,sys_created_on,type",
            ),
            ledger,
        )
        .await;
    let data = ServiceNowData {
        users: users.items,
        user_roles: roles.items,
        acls: acls.items,
        acl_roles: acl_roles.items,
        oauth_entities: oauth.items,
        rest_messages: rest.items,
        transactions: transactions.items,
    };
    let host = settings.servicenow_host.clone().or_else(|| source_host(source));
    convert(&data, settings, host.as_deref(), out);
    Ok(())
}

fn source_host(source: &Source) -> Option<String> {
    match source {
        Source::Live(live) => live.base_url(Service::ServiceNow).and_then(host_of),
        Source::Export(_) => None,
    }
}

/// The lists each ServiceNow API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    // Transactions name their user by user name: without the users, they attach to nobody.
    out.uses(USERS, &[Identities, Workloads, Bindings, Domains, ClassificationRules, Evidence]);
    out.uses(ROLES, &[Grants, Destinations]);
    out.uses(ACLS, &[Grants, Destinations]);
    out.uses(ACL_ROLES, &[Grants, Destinations]);
    out.uses(OAUTH, &[Workloads, Bindings, Credentials]);
    out.uses(REST, &[Workloads, Identities, Bindings, Destinations, Grants]);
    out.uses(TRANSACTIONS, &[Evidence]);
}

/// Converts Table API rows into entities.
pub fn convert(data: &ServiceNowData, settings: &Settings, instance: Option<&str>, out: &mut Collected) {
    let instance_host = instance.unwrap_or("servicenow").to_string();
    let mut classification: BTreeMap<String, (String, String, bool)> =
        TABLE_DOMAINS.iter().map(|(t, d, n, s)| (t.to_string(), (d.to_string(), n.to_string(), *s))).collect();
    for (table, domain) in &settings.servicenow_classification {
        let id = slug(domain);
        let sensitive = classification.values().any(|(d, _, s)| *d == id && *s);
        classification.insert(table.clone(), (id, domain.clone(), sensitive));
    }
    for (table, (domain, name, sensitive)) in &classification {
        out.domain(domain, name, *sensitive);
        let id = format!("servicenow-table:{table}");
        out.rules.insert(
            id.clone(),
            ClassificationRule { id, tag: "servicenow_table".into(), value: table.clone(), domain: domain.clone() },
        );
    }

    let mut users = BTreeSet::new();
    for user in &data.users {
        let Some(sys_id) = str(user, "sys_id") else { continue };
        let id = format!("servicenow-user:{sys_id}");
        let enabled = bool(user, "active").unwrap_or(true) && !bool(user, "locked_out").unwrap_or(false);
        out.identity(Identity {
            id: id.clone(),
            name: display(user, "user_name").or(display(user, "name")).unwrap_or(sys_id).to_string(),
            kind: IdentityKind::IntegrationUser,
            enabled,
            home_tenant: None,
            owners: Vec::new(),
            presence: sv0_domain::model::Presence::Recorded,
        });
        users.insert(id);
    }

    // Which operations each role has on each table, through table-level record ACLs.
    let acls: BTreeMap<&str, (String, Permission)> = data
        .acls
        .iter()
        .filter_map(|acl| {
            let name = display(acl, "name")?;
            let table = name.strip_suffix(".*").unwrap_or(name);
            if table.contains('.') || table == "*" {
                return None; // field-level ACLs do not open a table
            }
            let permission = match display(acl, "operation")?.to_ascii_lowercase().as_str() {
                "read" => Permission::Read,
                "write" | "create" => Permission::Write,
                "delete" => Permission::Delete,
                "execute" => Permission::Execute,
                _ => return None,
            };
            Some((str(acl, "sys_id")?, (table.to_string(), permission)))
        })
        .collect();
    let mut role_tables: BTreeMap<String, BTreeMap<String, BTreeSet<Permission>>> = BTreeMap::new();
    for link in &data.acl_roles {
        let (Some(acl), Some(role)) = (str(link, "sys_security_acl"), display(link, "sys_user_role")) else { continue };
        if let Some((table, permission)) = acls.get(acl) {
            role_tables.entry(role.to_string()).or_default().entry(table.clone()).or_default().insert(*permission);
        }
    }
    for held in &data.user_roles {
        let (Some(sys_id), Some(user), Some(role)) = (str(held, "sys_id"), str(held, "user"), display(held, "role"))
        else {
            continue;
        };
        if display(held, "state").is_some_and(|s| !s.eq_ignore_ascii_case("active")) {
            continue;
        }
        let identity = format!("servicenow-user:{user}");
        if role == "admin" {
            let destination = format!("servicenow:{instance_host}");
            out.destination(Destination {
                service: Some(format!("servicenow:{instance_host}")),
                host: Some(instance_host.clone()),
                egress: Some(EgressClass::Internal),
                execution_log_source: Some("ServiceNow transaction logs (syslog_transaction)".into()),
                ..bare_destination(
                    destination.clone(),
                    format!("ServiceNow instance {instance_host}"),
                    DestinationKind::Other,
                )
            });
            out.grant(Grant {
                id: sys_id.to_string(),
                identity: identity.clone(),
                destination,
                permissions: vec![Permission::Read, Permission::Write, Permission::Delete, Permission::Admin],
                source: GrantSource::ServicenowRole,
                role: role.to_string(),
                scope: "instance".into(),
                consent: None,
            });
            continue;
        }
        for (table, permissions) in role_tables.get(role).into_iter().flatten() {
            let destination = format!("servicenow-table:{instance_host}/{table}");
            out.destination(Destination {
                service: Some(format!("servicenow:{instance_host}")),
                host: Some(instance_host.clone()),
                egress: Some(EgressClass::Internal),
                tags: [("servicenow_table".to_string(), table.clone())].into_iter().collect(),
                execution_log_source: Some("ServiceNow transaction logs (syslog_transaction)".into()),
                ..bare_destination(
                    destination.clone(),
                    format!("ServiceNow table {table}"),
                    DestinationKind::ServicenowTable,
                )
            });
            out.grant(Grant {
                id: format!("{sys_id}/{table}"),
                identity: identity.clone(),
                destination,
                permissions: permissions.iter().copied().collect(),
                source: GrantSource::ServicenowRole,
                role: role.to_string(),
                scope: table.clone(),
                consent: None,
            });
        }
    }

    transaction_evidence(data, &instance_host, out);

    // OAuth clients run as their user; integration users no client names are still used by
    // some external integration.
    let mut bound = BTreeSet::new();
    for entity in &data.oauth_entities {
        let Some(sys_id) = str(entity, "sys_id") else { continue };
        let workload = format!("servicenow-oauth:{sys_id}");
        out.workload(Workload {
            id: workload.clone(),
            name: display(entity, "name").unwrap_or(sys_id).to_string(),
            kind: WorkloadKind::ServicenowIntegration,
            project: Some(format!("servicenow:{instance_host}")),
            tags: Default::default(),
            owners: Vec::new(),
        });
        if let Some(user) = str(entity, "user") {
            let identity = format!("servicenow-user:{user}");
            bound.insert(identity.clone());
            out.binding(Binding {
                id: format!("{workload}|{identity}"),
                workload: workload.clone(),
                identity: identity.clone(),
                tool: None,
            });
            out.credential(Credential {
                id: format!("{workload}/client_secret"),
                identity,
                kind: CredentialKind::Password,
                created_at: time(entity, "sys_created_on"),
                expires_at: None,
            });
        }
    }
    for identity in users.difference(&bound) {
        let name = out.identities.get(identity).map(|i| i.name.clone()).unwrap_or_default();
        let workload = format!("servicenow-integration:{}", identity.trim_start_matches("servicenow-user:"));
        out.workload(Workload {
            id: workload.clone(),
            name: format!("integration calling as {name}"),
            kind: WorkloadKind::ServicenowIntegration,
            project: Some(format!("servicenow:{instance_host}")),
            tags: Default::default(),
            owners: Vec::new(),
        });
        out.binding(Binding { id: format!("{workload}|{identity}"), workload, identity: identity.clone(), tool: None });
    }

    // Outbound REST messages: the instance calls out with the message's auth profile.
    for message in &data.rest_messages {
        let Some(sys_id) = str(message, "sys_id") else { continue };
        let endpoint = display(message, "rest_endpoint").unwrap_or("");
        let name = display(message, "name").unwrap_or(sys_id).to_string();
        let profile = str(message, "oauth2_profile").or(str(message, "basic_auth_profile"));
        let auth = display(message, "authentication_type").unwrap_or("no_authentication").to_string();
        let identity = match profile {
            Some(profile) => {
                let id = format!("servicenow-auth:{profile}");
                let label =
                    display(message, "oauth2_profile").or(display(message, "basic_auth_profile")).unwrap_or(profile);
                out.identity(bare_identity(id.clone(), format!("{auth} profile {label}"), IdentityKind::ApiKey));
                id
            }
            None => {
                let id = format!("servicenow-instance:{instance_host}");
                out.identity(bare_identity(
                    id.clone(),
                    format!("the instance {instance_host} (no credential)"),
                    IdentityKind::IntegrationUser,
                ));
                id
            }
        };
        let workload = format!("servicenow-rest:{sys_id}");
        out.workload(Workload {
            id: workload.clone(),
            name: format!("outbound REST message {name}"),
            kind: WorkloadKind::ServicenowIntegration,
            project: Some(format!("servicenow:{instance_host}")),
            tags: Default::default(),
            owners: Vec::new(),
        });
        out.binding(Binding {
            id: format!("{workload}|{identity}"),
            workload: workload.clone(),
            identity: identity.clone(),
            tool: None,
        });
        out.destination(Destination {
            host: host_of(endpoint),
            execution_log_source: Some("ServiceNow outbound HTTP logs (sys_outbound_http_log)".into()),
            ..bare_destination(
                workload.clone(),
                if endpoint.is_empty() { name.clone() } else { endpoint.to_string() },
                DestinationKind::HttpEndpoint,
            )
        });
        out.grant(Grant {
            id: workload.clone(),
            identity,
            destination: workload,
            permissions: vec![Permission::Execute],
            source: GrantSource::Connection,
            role: format!("outbound REST ({auth})"),
            scope: name,
            consent: None,
        });
    }
}

/// REST transactions as evidence: a call of an integration user to the Table API names the
/// user and the table (grade A on that table); any other REST call names only the instance
/// (grade B on the user's tables). One record per user and table: the latest call.
fn transaction_evidence(data: &ServiceNowData, instance_host: &str, out: &mut Collected) {
    let users: BTreeMap<&str, &str> =
        data.users.iter().filter_map(|u| Some((str(u, "user_name")?, str(u, "sys_id")?))).collect();
    let mut latest: BTreeMap<(String, Option<String>), (sv0_domain::Timestamp, String)> = BTreeMap::new();
    for row in &data.transactions {
        let (Some(sys_id), Some(url), Some(user), Some(at)) =
            (str(row, "sys_id"), str(row, "url"), str(row, "sys_created_by"), time(row, "sys_created_on"))
        else {
            continue;
        };
        if display(row, "type").is_some_and(|t| !t.eq_ignore_ascii_case("rest")) {
            continue;
        }
        let Some(user_id) = users.get(user) else { continue };
        let key = (user_id.to_string(), table_of(url));
        let entry = latest.entry(key).or_insert((at, sys_id.to_string()));
        if (at, sys_id) > (entry.0, entry.1.as_str()) {
            *entry = (at, sys_id.to_string());
        }
    }
    for ((user, table), (at, sys_id)) in latest {
        out.evidence(Evidence {
            id: format!("servicenow-transaction:{sys_id}"),
            source: "servicenow_transaction".into(),
            at,
            identity: Some(format!("servicenow-user:{user}")),
            workload: None,
            destination: table.map(|t| format!("servicenow-table:{instance_host}/{t}")),
            service: Some(format!("servicenow:{instance_host}")),
            credential: None,
        });
    }
}

/// The table a REST URL acts on: `/api/now/table/<table>`, `/api/now/v2/table/<table>/<sys_id>`
/// or an import set `/api/now/import/<table>`.
fn table_of(url: &str) -> Option<String> {
    let path = url.split_once("://").map(|(_, r)| r.find('/').map(|i| &r[i..]).unwrap_or("")).unwrap_or(url);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let table = match segments.as_slice() {
        ["api", "now", "table" | "import", table, ..] => table,
        ["api", "now", version, "table" | "import", table, ..] if version.starts_with('v') => table,
        _ => return None,
    };
    let table = table.to_ascii_lowercase();
    table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_').then_some(table)
}
