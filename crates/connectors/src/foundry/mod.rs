//! Azure AI Foundry: every project of every Foundry resource the credentials can see, read
//! from Azure Resource Manager (accounts, projects with their managed identities, connections
//! with their auth type and, for a service principal, its client id), and each project's
//! agents (the workloads) with their model and tools (OpenAPI, Azure Function, file search,
//! code interpreter, Bing grounding, MCP, Azure AI Search and other connection-backed tools)
//! from the project's data-plane endpoint, with run steps as execution evidence of tool use.
//!
//! Which identity a tool runs as follows the connection's `authType`: `ServicePrincipal` runs
//! as the service principal whose `appId` is `credentials.clientId`; `AAD` as the project's (or
//! account's) managed identity; `ManagedIdentity` as the identity of `credentials.clientId`;
//! key-style types (`ApiKey`, `AccountKey`, `CustomKeys`, `SAS`, `AccessKey`, `PAT`) as the
//! key. Function tools run in the caller's code and connected agents are other agents, so
//! neither adds a path of its own.

use std::collections::BTreeMap;

use serde_json::Value;
use sv0_domain::model::{
    Credential, CredentialKind, Destination, DestinationKind, Grant, GrantSource, IdentityKind, Permission,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination, bare_identity};
use crate::json::{host_of, object_id, str, unix_seconds};
use crate::source::{Call, Ledger, Listing, Paging, Service, Source};
use crate::{ConnectorError, Settings};

mod agents;

use agents::*;

const ARM_API: &str = "api-version=2025-06-01";

const API_VERSION: &str = "api-version=2025-05-01";

const ACCOUNTS: &str = "arm.cognitiveServicesAccounts";

const PROJECTS: &str = "arm.foundryProjects";

const CONNECTIONS: &str = "foundry.connections";

const AGENTS: &str = "foundry.agents";

const THREADS: &str = "foundry.threads";

const RUNS: &str = "foundry.runs";

const STEPS: &str = "foundry.runSteps";

/// The field that names the project (its ARM id) on the data-plane items of an export
/// directory holding several projects; live, SV0 sets it on each item it reads.
pub const PROJECT_FIELD: &str = "projectId";

/// The Foundry responses the conversion reads.
#[derive(Debug, Default)]
pub struct FoundryData {
    /// Cognitive Services accounts (`kind: AIServices` are Foundry resources).
    pub accounts: Vec<Value>,
    /// Projects of those accounts (ARM).
    pub projects: Vec<Value>,
    /// Connections of the projects and accounts (ARM, with `authType` and credentials' ids).
    pub connections: Vec<Value>,
    /// Agents (`assistants`), each naming its project in `projectId` when there are several.
    pub agents: Vec<Value>,
    /// Run steps, each naming its project in `projectId` when there are several.
    pub run_steps: Vec<Value>,
}

/// Reads every Foundry project the credentials can see and adds what it saw to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    if !source.has(Service::Arm) {
        return Err(ConnectorError::Setup(
            "foundry finds its projects through Azure Resource Manager: it needs the ARM base URL".into(),
        ));
    }
    declare(out);
    let arm = |api, path: String| Call::get(api, Service::Arm, path, Paging::Arm);
    // The subscriptions the azure-rbac connector read, else listed here (an export directory
    // holds every account in one file).
    let (subscriptions, complete): (Vec<String>, bool) = match (&out.subscriptions, source.is_export()) {
        (_, true) => (Vec::new(), true),
        (Some(ids), false) => (ids.clone(), true),
        (None, false) => {
            let listing: Listing = crate::arm::subscriptions(source, ledger).await;
            let complete = listing.complete || !settings.subscriptions.is_empty();
            (crate::arm::subscription_ids(&listing.items, settings), complete)
        }
    };
    let each = |api: &'static str, paths: Vec<String>| -> Vec<Call> {
        if source.is_export() {
            vec![arm(api, String::new())]
        } else {
            paths.into_iter().map(|p| arm(api, p)).collect()
        }
    };
    let paths = subscriptions
        .iter()
        .map(|s| format!("/subscriptions/{s}/providers/Microsoft.CognitiveServices/accounts?{ARM_API}"))
        .collect();
    if !complete {
        ledger.skipped(ACCOUNTS, "arm.subscriptions was not read completely");
    }
    let accounts = source.list_each(ACCOUNTS, each(ACCOUNTS, paths), ledger).await;
    let foundry_accounts: Vec<&Value> = accounts.items.iter().filter(|a| is_foundry(a)).collect();
    let paths =
        foundry_accounts.iter().filter_map(|a| str(a, "id")).map(|id| format!("{id}/projects?{ARM_API}")).collect();
    if !accounts.complete {
        ledger.skipped(PROJECTS, "arm.cognitiveServicesAccounts was not read completely");
    }
    let projects = source.list_each(PROJECTS, each(PROJECTS, paths), ledger).await;
    let mut paths: Vec<String> =
        projects.items.iter().filter_map(|p| str(p, "id")).map(|id| format!("{id}/connections?{ARM_API}")).collect();
    paths.extend(foundry_accounts.iter().filter_map(|a| str(a, "id")).map(|id| format!("{id}/connections?{ARM_API}")));
    if !projects.complete {
        ledger.skipped(CONNECTIONS, "arm.foundryProjects was not read completely");
    }
    let connections = source.list_each(CONNECTIONS, each(CONNECTIONS, paths), ledger).await;
    let endpoints: Vec<(String, String)> = projects
        .items
        .iter()
        .filter_map(|p| Some((str(p, "id")?.to_ascii_lowercase(), project_endpoint(p, &accounts.items)?)))
        .collect();
    let data_plane = |api: &'static str, suffix: &str| -> Vec<Call> {
        if source.is_export() {
            return vec![Call::get(api, Service::Foundry, String::new(), Paging::Cursor)];
        }
        endpoints
            .iter()
            .map(|(project, endpoint)| {
                Call::get(api, Service::Foundry, format!("{endpoint}{suffix}"), Paging::Cursor)
                    .tagged(PROJECT_FIELD, project.clone())
            })
            .collect()
    };
    if !projects.complete {
        ledger.skipped(AGENTS, "arm.foundryProjects was not read completely");
    }
    let agents = source
        .list_each(AGENTS, data_plane(AGENTS, &format!("/assistants?{API_VERSION}&limit=100&order=asc")), ledger)
        .await;
    let steps = if source.is_export() {
        source.list_each(STEPS, data_plane(STEPS, ""), ledger).await.items
    } else {
        out.uses(THREADS, &[EntityList::Evidence]);
        out.uses(RUNS, &[EntityList::Evidence]);
        let threads =
            source.list_each(THREADS, data_plane(THREADS, &format!("/threads?{API_VERSION}&limit=100")), ledger).await;
        let since = settings.observed_at.add_days(-i64::from(settings.evidence_days));
        let endpoint_of = |item: &Value| -> Option<&str> {
            let project = str(item, PROJECT_FIELD)?;
            endpoints.iter().find(|(p, _)| p == project).map(|(_, e)| e.as_str())
        };
        let calls = threads
            .items
            .iter()
            .filter_map(|t| Some((endpoint_of(t)?, str(t, "id")?, str(t, PROJECT_FIELD)?)))
            .map(|(endpoint, thread, project)| {
                Call::get(
                    RUNS,
                    Service::Foundry,
                    format!("{endpoint}/threads/{thread}/runs?{API_VERSION}&limit=100"),
                    Paging::Cursor,
                )
                .tagged(PROJECT_FIELD, project.to_string())
            })
            .collect();
        let runs = source.list_each(RUNS, calls, ledger).await;
        let calls = runs
            .items
            .iter()
            .filter(|r| unix_seconds(r, "created_at").is_none_or(|at| at >= since))
            .filter_map(|r| Some((endpoint_of(r)?, str(r, "thread_id")?, str(r, "id")?, str(r, PROJECT_FIELD)?)))
            .map(|(endpoint, thread, run, project)| {
                Call::get(
                    STEPS,
                    Service::Foundry,
                    format!("{endpoint}/threads/{thread}/runs/{run}/steps?{API_VERSION}&limit=100"),
                    Paging::Cursor,
                )
                .tagged(PROJECT_FIELD, project.to_string())
            })
            .collect();
        if !threads.complete || !runs.complete {
            ledger.skipped(STEPS, "the threads or runs were not read completely");
        }
        source.list_each(STEPS, calls, ledger).await.items
    };
    let data = FoundryData {
        accounts: accounts.items,
        projects: projects.items,
        connections: connections.items,
        agents: agents.items,
        run_steps: steps,
    };
    convert(&data, out);
    Ok(())
}

/// Whether a Cognitive Services account is a Foundry resource (it holds projects).
fn is_foundry(account: &Value) -> bool {
    str(account, "kind").is_some_and(|k| k.eq_ignore_ascii_case("AIServices"))
        || account.get("properties").and_then(|p| crate::json::bool(p, "allowProjectManagement")) == Some(true)
}

/// A project's data-plane endpoint: the one ARM lists for it, else the documented form
/// `https://<account subdomain>.services.ai.azure.com/api/projects/<project>`.
fn project_endpoint(project: &Value, accounts: &[Value]) -> Option<String> {
    let listed = project
        .get("properties")
        .and_then(|p| p.get("endpoints"))
        .and_then(Value::as_object)
        .and_then(|e| e.values().filter_map(Value::as_str).find(|u| u.contains("/api/projects/")));
    if let Some(url) = listed {
        return Some(url.trim_end_matches('/').to_string());
    }
    let id = str(project, "id")?.to_ascii_lowercase();
    let account_id = id.split("/projects/").next()?;
    let account = accounts.iter().find(|a| str(a, "id").is_some_and(|i| i.eq_ignore_ascii_case(account_id)))?;
    let subdomain =
        account.get("properties").and_then(|p| str(p, "customSubDomainName")).or_else(|| str(account, "name"))?;
    Some(format!(
        "https://{}.services.ai.azure.com/api/projects/{}",
        subdomain.to_ascii_lowercase(),
        str(project, "name")?
    ))
}

/// The lists each Foundry API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    // Everything Foundry shows hangs off its accounts and projects, and run steps off agents.
    let everything = [Workloads, Bindings, Identities, Credentials, Grants, Destinations, Evidence];
    out.uses(ACCOUNTS, &everything);
    out.uses(PROJECTS, &everything);
    out.uses(CONNECTIONS, &[Identities, Credentials, Grants, Destinations, Bindings]);
    out.uses(AGENTS, &[Workloads, Bindings, Grants, Destinations, Identities, Credentials, Evidence]);
    out.uses(STEPS, &[Evidence]);
}

/// What one tool of one agent reaches, as whom.
struct Reach {
    tool_type: String,
    identity: String,
    destination: String,
}

/// A project as the conversion sees it.
struct Project {
    /// Lower-case ARM id.
    id: String,
    name: String,
    account: String,
    /// The identity tools with Entra ID (`AAD`) connections and the project's own tools run as.
    identity: String,
    /// The account's managed identity, when it has one.
    account_identity: Option<String>,
    host: String,
}

/// Who a connection's tool acts as: an identity (with the connection's own grant on its
/// target when the credential itself is the authority), or the agent's own identity.
#[derive(Debug, Clone)]
enum RunsAs {
    /// This identity, reaching this destination (empty when the connection was not read).
    Identity(String, String),
    /// The calling agent's own identity (agentic identity connections, and no authentication).
    Agent(String),
}

/// Converts Foundry responses into entities.
pub fn convert(data: &FoundryData, out: &mut Collected) {
    let projects = projects(data, out);
    let single = (projects.len() == 1).then(|| projects[0].id.clone());
    for project in &projects {
        let connections = connections(data, project, out);
        let mine = |item: &&Value| match str(item, PROJECT_FIELD) {
            Some(p) => p.eq_ignore_ascii_case(&project.id),
            None => single.as_deref() == Some(project.id.as_str()),
        };
        let agents: Vec<&Value> = data.agents.iter().filter(mine).collect();
        let steps: Vec<&Value> = data.run_steps.iter().filter(mine).collect();
        agents_of(project, &agents, &steps, &connections, out);
    }
    let orphans = data.agents.iter().filter(|a| str(a, PROJECT_FIELD).is_none()).count();
    if single.is_none() && orphans > 0 {
        for _ in 0..orphans {
            out.note("Foundry agents naming no project (an export of several projects must set projectId)");
        }
    }
}

/// The projects, each with the identity its tools run as.
fn projects(data: &FoundryData, out: &mut Collected) -> Vec<Project> {
    let mut projects = Vec::new();
    for project in &data.projects {
        let (Some(id), Some(name)) = (str(project, "id"), str(project, "name")) else { continue };
        let id = id.to_ascii_lowercase();
        let account_id = id.split("/projects/").next().unwrap_or(&id).to_string();
        let account = data.accounts.iter().find(|a| str(a, "id").is_some_and(|i| i.eq_ignore_ascii_case(&account_id)));
        let account_name =
            account.and_then(|a| str(a, "name")).unwrap_or_else(|| account_id.rsplit('/').next().unwrap_or(""));
        let principal =
            |v: Option<&Value>| v.and_then(|v| v.get("identity")).and_then(|i| str(i, "principalId")).map(object_id);
        let account_identity = principal(account);
        for (identity, label) in [
            (principal(Some(project)), format!("{name} project")),
            (account_identity.clone(), format!("{account_name} account")),
        ] {
            if let Some(identity) = identity {
                out.stub_principal(&identity, &format!("{label} managed identity"), IdentityKind::ManagedIdentity);
            }
        }
        let identity = match principal(Some(project)).or(account_identity.clone()) {
            Some(identity) => identity,
            None => {
                // A project without a managed identity: its tools act as nothing Entra knows.
                let stub = format!("foundry-project:{account_name}/{name}");
                out.stub_identity(
                    &stub,
                    &format!("{name} project (no managed identity)"),
                    IdentityKind::ManagedIdentity,
                );
                stub
            }
        };
        let host = project_endpoint(project, &data.accounts)
            .and_then(|e| host_of(&e))
            .unwrap_or_else(|| format!("{account_name}.services.ai.azure.com"));
        projects.push(Project {
            id,
            name: name.to_string(),
            account: account_name.to_string(),
            identity,
            account_identity,
            host,
        });
    }
    projects
}

/// The connections a project's tools can use (its own, then its account's), by lower-case
/// name, with whom each runs as.
fn connections(data: &FoundryData, project: &Project, out: &mut Collected) -> BTreeMap<String, RunsAs> {
    let account_id = project.id.split("/projects/").next().unwrap_or(&project.id).to_string();
    let mut found = BTreeMap::new();
    for connection in &data.connections {
        let (Some(id), Some(name)) = (str(connection, "id"), str(connection, "name")) else { continue };
        let id = id.to_ascii_lowercase();
        let own = id.starts_with(&format!("{}/connections/", project.id));
        let shared = id.starts_with(&format!("{account_id}/connections/"));
        if !own && !shared {
            continue;
        }
        let key = name.to_ascii_lowercase();
        if shared && found.contains_key(&key) {
            continue;
        }
        // An account's connection is each of its projects' (with that project's key identity):
        // one grant per project, expanded from the connection's id as role assignments are.
        let grant = if own { id.clone() } else { format!("{id}#projects/{}", project.name.to_ascii_lowercase()) };
        found.insert(key, connection_runs_as(connection, &id, &grant, name, project, out));
    }
    found
}

/// Whom one connection's tools act as, following its `authType`, and what it reaches.
fn connection_runs_as(
    connection: &Value,
    id: &str,
    grant: &str,
    name: &str,
    project: &Project,
    out: &mut Collected,
) -> RunsAs {
    let properties = connection.get("properties").unwrap_or(connection);
    let category = str(properties, "category").unwrap_or("Custom").to_string();
    let auth = str(properties, "authType").unwrap_or("None").to_string();
    let target = str(properties, "target").unwrap_or("");
    let client_id = properties.get("credentials").and_then(|c| str(c, "clientId")).map(|c| c.to_ascii_lowercase());
    let by_app = |out: &mut Collected, client: &str, kind: IdentityKind| -> String {
        match out.app_ids.get(client) {
            Some(object) => object.clone(),
            None => {
                // Entra was not read, or holds no such application: the identity is known by
                // its client id only.
                let stub = format!("entra-app-id:{client}");
                out.stub_identity(&stub, &format!("application {client}"), kind);
                stub
            }
        }
    };
    let key_identity = |out: &mut Collected, kind: IdentityKind, credential: CredentialKind| -> String {
        let identity = format!("foundry-connection:{}/{}/{name}", project.account, project.name);
        out.identity(bare_identity(identity.clone(), format!("connection {name} ({auth})"), kind));
        out.credential(Credential {
            id: format!("{identity}/credential"),
            identity: identity.clone(),
            kind: credential,
            created_at: None,
            expires_at: crate::json::time(properties, "expiryTime"),
        });
        identity
    };
    let identity = match auth.to_ascii_lowercase().as_str() {
        "serviceprincipal" => match &client_id {
            Some(client) => by_app(out, client, IdentityKind::ServicePrincipal),
            None => {
                out.note("ServicePrincipal connections without credentials.clientId");
                return RunsAs::Identity(
                    format!("foundry-connection:{}/{}/{name}", project.account, project.name),
                    String::new(),
                );
            }
        },
        "managedidentity" => match &client_id {
            Some(client) => by_app(out, client, IdentityKind::ManagedIdentity),
            None => project.identity.clone(),
        },
        "aad" | "projectmanagedidentity" => project.identity.clone(),
        "accountmanagedidentity" => project.account_identity.clone().unwrap_or_else(|| project.identity.clone()),
        "agenticidentitytoken"
        | "agenticuser"
        | "agenticidentity"
        | "userentratoken"
        | "agentuserimpersonation"
        | "none" => return RunsAs::Agent(target_of(id, target, &category, out)),
        "apikey" | "accountkey" | "customkeys" | "sas" | "delegatedsas" | "accesskey" | "pat" => {
            key_identity(out, IdentityKind::ApiKey, CredentialKind::ApiKey)
        }
        "usernamepassword" => key_identity(out, IdentityKind::IntegrationUser, CredentialKind::Password),
        "oauth2" => key_identity(out, IdentityKind::ServicePrincipal, CredentialKind::Password),
        _ => {
            out.note("Foundry connections of an auth type SV0 does not know");
            return RunsAs::Agent(target_of(id, target, &category, out));
        }
    };
    // With a key, the connection is the authority over its target; with an Entra identity it
    // only lets the tool call the target with that identity's token, and what the identity may
    // do there is its own role assignments'.
    let entra = matches!(
        auth.to_ascii_lowercase().as_str(),
        "serviceprincipal" | "managedidentity" | "aad" | "projectmanagedidentity" | "accountmanagedidentity"
    );
    let destination = target_of(id, target, &category, out);
    out.grant(Grant {
        id: grant.to_string(),
        identity: identity.clone(),
        destination: destination.clone(),
        permissions: if entra { vec![Permission::Execute] } else { category_permissions(&category) },
        source: GrantSource::Connection,
        role: format!("{category} connection ({auth})"),
        scope: name.to_string(),
        consent: None,
    });
    RunsAs::Identity(identity, destination)
}

/// The destination a connection's target is.
fn target_of(id: &str, target: &str, category: &str, out: &mut Collected) -> String {
    let kind = match category.to_ascii_lowercase().as_str() {
        "azureopenai" | "aiservices" | "serverless" | "openai" | "cognitiveservice" => DestinationKind::LlmDeployment,
        "azureblob" | "azurestorageaccount" | "adlsgen2" | "azureonelake" => DestinationKind::StorageAccount,
        "cognitivesearch" | "azureaisearch" | "azuresqldb" | "cosmosdb" | "azurepostgresdb" | "azuremysqldb" => {
            DestinationKind::Database
        }
        _ => DestinationKind::HttpEndpoint,
    };
    let destination =
        if target.is_empty() { format!("foundry-target:{id}") } else { format!("foundry-target:{target}") }
            .to_ascii_lowercase();
    out.destination(Destination {
        host: host_of(target),
        ..bare_destination(
            destination.clone(),
            if target.is_empty() { id.rsplit('/').next().unwrap_or(id) } else { target },
            kind,
        )
    });
    destination
}

/// What a connection of a category lets its tools do to the target.
fn category_permissions(category: &str) -> Vec<Permission> {
    match category.to_ascii_lowercase().as_str() {
        "azureblob" | "azurestorageaccount" | "adlsgen2" | "azureonelake" => vec![Permission::Read, Permission::Write],
        "cognitivesearch" | "azureaisearch" => vec![Permission::Read],
        _ => vec![Permission::Execute],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "/subscriptions/0001/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/fab-ai";

    fn connection(project: &str, name: &str, auth: &str, client: Option<&str>) -> Value {
        let mut properties =
            json!({"category": "CustomKeys", "target": format!("https://{name}.example/"), "authType": auth});
        if let Some(client) = client {
            properties["credentials"] = json!({"clientId": client});
        }
        json!({"id": format!("{ACCOUNT}/projects/{project}/connections/{name}"), "name": name, "properties": properties})
    }

    fn agent(project: &str, id: &str, connections: &[&str]) -> Value {
        let tools: Vec<Value> = connections
            .iter()
            .map(|c| json!({"type": "mcp", "mcp": {"server_label": c, "project_connection_id": c}}))
            .collect();
        json!({"id": id, "name": id, "model": "gpt-4o", "tools": tools, PROJECT_FIELD: format!("{ACCOUNT}/projects/{project}").to_ascii_lowercase()})
    }

    /// A connection runs as what its `authType` says: a service principal by its client id, the
    /// project's managed identity, a managed identity by client id, the agent itself, or a key.
    #[test]
    fn connections_run_as_the_identity_their_auth_type_names() {
        let data = FoundryData {
            accounts: vec![json!({"id": ACCOUNT, "name": "fab-ai", "kind": "AIServices",
                "identity": {"principalId": "a0000000-0000-4000-8000-00000000000a"}})],
            projects: ["alpha", "beta"]
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({"id": format!("{ACCOUNT}/projects/{p}"), "name": p,
                    "identity": {"principalId": format!("b000000{i}-0000-4000-8000-00000000000b")}})
                })
                .collect(),
            connections: vec![
                connection("alpha", "sp", "ServicePrincipal", Some("C1000000-0000-4000-8000-00000000000C")),
                connection("alpha", "aad", "AAD", None),
                connection("alpha", "umi", "ManagedIdentity", Some("c2000000-0000-4000-8000-00000000000c")),
                connection("alpha", "key", "ApiKey", None),
                connection("alpha", "agentic", "AgenticIdentityToken", None),
                connection("beta", "key", "PAT", None),
            ],
            agents: vec![
                agent("alpha", "asst_a", &["sp", "aad", "umi", "key", "agentic"]),
                agent("beta", "asst_b", &["key"]),
            ],
            run_steps: Vec::new(),
        };
        let mut out = Collected::default();
        out.app_ids
            .insert("c1000000-0000-4000-8000-00000000000c".into(), "5e000000-0000-4000-8000-00000000005e".into());
        out.app_ids
            .insert("c2000000-0000-4000-8000-00000000000c".into(), "6e000000-0000-4000-8000-00000000006e".into());
        convert(&data, &mut out);
        let bound = |workload: &str, tool: &str| -> String {
            out.bindings
                .values()
                .find(|b| b.workload.ends_with(workload) && b.tool.as_deref() == Some(&format!("mcp:{tool}")))
                .map(|b| b.identity.clone())
                .unwrap_or_else(|| panic!("{workload} {tool}: {:#?}", out.bindings))
        };
        assert_eq!(
            bound("alpha/asst_a", "sp"),
            "5e000000-0000-4000-8000-00000000005e",
            "the principal of the client id"
        );
        assert_eq!(bound("alpha/asst_a", "aad"), "b0000000-0000-4000-8000-00000000000b", "the project's identity");
        assert_eq!(bound("alpha/asst_a", "umi"), "6e000000-0000-4000-8000-00000000006e");
        assert_eq!(bound("alpha/asst_a", "agentic"), "foundry-agent:fab-ai/alpha/asst_a", "the agent itself");
        let key = bound("alpha/asst_a", "key");
        assert_eq!(out.identities[&key].kind, IdentityKind::ApiKey);
        // Only key-style connections are key identities.
        let keys: Vec<&String> =
            out.identities.values().filter(|i| i.kind == IdentityKind::ApiKey).map(|i| &i.id).collect();
        assert_eq!(
            keys,
            [&"foundry-connection:fab-ai/alpha/key".to_string(), &"foundry-connection:fab-ai/beta/key".to_string()]
        );
        // Every project is read, each agent in its own.
        assert_eq!(bound("beta/asst_b", "key"), "foundry-connection:fab-ai/beta/key");
        assert!(out.workloads.contains_key("foundry:fab-ai/beta/asst_b"));
        // An Entra-authenticated connection confers no data permission of its own.
        let sp_grant = &out.grants[&format!("{ACCOUNT}/projects/alpha/connections/sp").to_ascii_lowercase()];
        assert_eq!(sp_grant.permissions, vec![Permission::Execute]);
    }
}
