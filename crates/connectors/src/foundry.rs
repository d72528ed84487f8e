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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{
    Binding, Credential, CredentialKind, Destination, DestinationKind, EgressClass, Evidence, Grant, GrantSource,
    IdentityKind, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination, bare_identity};
use crate::json::{array, host_of, object_id, str, unix_seconds};
use crate::source::{Call, Ledger, Listing, Paging, Service, Source};
use crate::{ConnectorError, Settings};

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

/// The agents of one project: their workloads, the project identity they run as, and what
/// each tool reaches as whom; run steps as evidence.
fn agents_of(
    project: &Project,
    agents: &[&Value],
    steps: &[&Value],
    connections: &BTreeMap<String, RunsAs>,
    out: &mut Collected,
) {
    // A tool naming a connection the listing did not return (it failed, or the connection is
    // gone) still runs as that connection: bind to its identity, known only by name.
    let unknown: std::cell::RefCell<BTreeSet<String>> = Default::default();
    let connection = |reference: &str| -> RunsAs {
        let name = reference.rsplit_once("/connections/").map(|(_, n)| n).unwrap_or(reference);
        connections.get(&name.to_ascii_lowercase()).cloned().unwrap_or_else(|| {
            unknown.borrow_mut().insert(name.to_string());
            RunsAs::Identity(format!("foundry-connection:{}/{}/{name}", project.account, project.name), String::new())
        })
    };

    let mut reach: BTreeMap<String, Vec<Reach>> = BTreeMap::new();
    for agent in agents {
        let Some(agent_id) = str(agent, "id") else { continue };
        let workload = format!("foundry:{}/{}/{agent_id}", project.account, project.name);
        out.workload(Workload {
            id: workload.clone(),
            name: str(agent, "name").unwrap_or(agent_id).to_string(),
            kind: WorkloadKind::FoundryAgent,
            project: Some(project.name.clone()),
            tags: agent
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
            owners: Vec::new(),
        });
        // The tools run in the project, as its managed identity: the agent holds that identity's
        // standing authority. What each tool reaches is the agent's own, through an agent
        // identity, so that agents of one project do not share each other's tools.
        let agent_name = str(agent, "name").unwrap_or(agent_id);
        let agent_identity = format!("foundry-agent:{}/{}/{agent_id}", project.account, project.name);
        out.identity(bare_identity(
            agent_identity.clone(),
            format!("{agent_name} tools (as the {} project identity)", project.name),
            IdentityKind::AgentIdentity,
        ));
        out.binding(Binding {
            id: format!("{workload}|{}", project.identity),
            workload: workload.clone(),
            identity: project.identity.clone(),
            tool: Some("project identity".into()),
        });
        let mut tools = Tools { out, workload: &workload, agent_id, reach: Vec::new() };
        // The model: prompts go to the deployment, as the project's identity.
        if let Some(model) = str(agent, "model").or_else(|| agent.get("definition").and_then(|d| str(d, "model"))) {
            let destination = format!("foundry-model:{}/{}/{model}", project.account, project.name);
            tools.out.destination(Destination {
                service: Some(format!("foundry:{}/{}", project.account, project.name)),
                host: Some(project.host.clone()),
                egress: Some(EgressClass::LlmApi),
                ..bare_destination(
                    destination.clone(),
                    format!("model deployment {model}"),
                    DestinationKind::LlmDeployment,
                )
            });
            tools.add("model", model, &agent_identity, &destination, vec![Permission::Execute], "model deployment");
        }
        let definition = agent.get("definition").unwrap_or(agent);
        let resources = agent.get("tool_resources").or_else(|| definition.get("tool_resources"));
        for tool in array(definition, "tools") {
            let Some(tool_type) = str(tool, "type") else { continue };
            let body = tool.get(tool_type).unwrap_or(tool);
            match tool_type {
                "code_interpreter" => {
                    let destination = format!("foundry-tool:{}/{}/code_interpreter", project.account, project.name);
                    tools.sandbox(&destination, "code interpreter sandbox", DestinationKind::Other);
                    tools.add(
                        tool_type,
                        tool_type,
                        &agent_identity,
                        &destination,
                        vec![Permission::Execute],
                        "code interpreter",
                    );
                }
                "file_search" => {
                    let stores: Vec<&str> = resources
                        .and_then(|r| r.get("file_search"))
                        .map(|f| array(f, "vector_store_ids").iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    for store in stores {
                        let destination = format!("foundry-vector-store:{}/{}/{store}", project.account, project.name);
                        tools.sandbox(&destination, &format!("vector store {store}"), DestinationKind::Database);
                        tools.add(
                            tool_type,
                            store,
                            &agent_identity,
                            &destination,
                            vec![Permission::Read],
                            "file search",
                        );
                    }
                }
                "openapi" => {
                    let name = str(body, "name").unwrap_or("openapi");
                    let url = body
                        .get("spec")
                        .map(|s| array(s, "servers"))
                        .and_then(|s| s.first())
                        .and_then(|s| str(s, "url"))
                        .unwrap_or("");
                    let destination = format!("foundry-openapi:{}/{}/{name}", project.account, project.name);
                    tools.out.destination(Destination {
                        host: host_of(url),
                        ..bare_destination(
                            destination.clone(),
                            if url.is_empty() { name.to_string() } else { url.to_string() },
                            DestinationKind::HttpEndpoint,
                        )
                    });
                    let auth = body.get("auth");
                    let auth_type = auth.and_then(|a| str(a, "type")).unwrap_or("anonymous");
                    let identity = match auth_type {
                        "connection" | "project_connection" => {
                            find_connection(auth.unwrap_or(tool)).map(|c| connection(&c)).and_then(|c| match c {
                                RunsAs::Identity(identity, _) => Some(identity),
                                RunsAs::Agent(_) => None,
                            })
                        }
                        _ => None,
                    }
                    .unwrap_or_else(|| agent_identity.clone());
                    let audience = auth.and_then(|a| a.get("security_scheme")).and_then(|s| str(s, "audience"));
                    let role = match audience {
                        Some(audience) => format!("openapi ({auth_type}, audience {audience})"),
                        None => format!("openapi ({auth_type})"),
                    };
                    tools.add(tool_type, name, &identity, &destination, vec![Permission::Execute], &role);
                }
                "azure_function" => {
                    let name = body.get("function").and_then(|f| str(f, "name")).unwrap_or("function");
                    for (binding, permission) in
                        [("input_binding", Permission::Write), ("output_binding", Permission::Read)]
                    {
                        let Some(queue) = body.get(binding).and_then(|b| b.get("storage_queue")) else { continue };
                        let endpoint = str(queue, "queue_service_endpoint").unwrap_or("");
                        let queue_name = str(queue, "queue_name").unwrap_or("");
                        let queue_host = host_of(endpoint);
                        let destination = format!("queue:{}/{queue_name}", queue_host.as_deref().unwrap_or(endpoint));
                        let account =
                            queue_host.as_deref().and_then(|h| h.split('.').next()).map(|a| format!("storage:{a}"));
                        tools.out.destination(Destination {
                            service: account,
                            host: queue_host,
                            ..bare_destination(
                                destination.clone(),
                                format!("queue {queue_name}"),
                                DestinationKind::Queue,
                            )
                        });
                        let tool = format!("{name}/{queue_name}");
                        tools.add(
                            tool_type,
                            &tool,
                            &agent_identity,
                            &destination,
                            vec![permission],
                            "azure function queue",
                        );
                    }
                }
                "bing_grounding" | "bing_custom_search" => {
                    if let Some(runs_as) = find_connection(body).map(|c| connection(&c)) {
                        tools.through(tool_type, tool_type, &agent_identity, runs_as);
                        continue;
                    }
                    let destination = "foundry-bing:api.bing.microsoft.com".to_string();
                    tools.out.destination(Destination {
                        host: Some("api.bing.microsoft.com".into()),
                        egress: Some(EgressClass::ExternalHttp),
                        ..bare_destination(
                            destination.clone(),
                            "Grounding with Bing Search",
                            DestinationKind::HttpEndpoint,
                        )
                    });
                    tools.add(
                        tool_type,
                        tool_type,
                        &agent_identity,
                        &destination,
                        vec![Permission::Execute],
                        "bing grounding",
                    );
                }
                "mcp" => {
                    let label = str(body, "server_label").unwrap_or("mcp");
                    if let Some(runs_as) = find_connection(body).map(|c| connection(&c)) {
                        tools.through(tool_type, label, &agent_identity, runs_as);
                        continue;
                    }
                    let url = str(body, "server_url").unwrap_or("");
                    let destination = format!("foundry-mcp:{}/{}/{label}", project.account, project.name);
                    tools.out.destination(Destination {
                        host: host_of(url),
                        ..bare_destination(
                            destination.clone(),
                            format!("MCP server {label} {url}").trim().to_string(),
                            DestinationKind::HttpEndpoint,
                        )
                    });
                    tools.add(tool_type, label, &agent_identity, &destination, vec![Permission::Execute], "mcp server");
                }
                "function" | "connected_agent" => {}
                _ => {
                    // Azure AI Search, SharePoint, Fabric and other connection-backed tools: what
                    // the connection reaches, as the connection.
                    let mut references = Vec::new();
                    collect_connections(body, &mut references);
                    if tool_type == "azure_ai_search"
                        && let Some(search) = resources.and_then(|r| r.get("azure_ai_search"))
                    {
                        collect_connections(search, &mut references);
                    }
                    for reference in references {
                        let runs_as = connection(&reference);
                        tools.through(tool_type, &reference, &agent_identity, runs_as);
                    }
                }
            }
        }
        let found = tools.reach;
        reach.insert(agent_id.to_string(), found);
    }

    for name in unknown.into_inner() {
        out.stub_identity(
            &format!("foundry-connection:{}/{}/{name}", project.account, project.name),
            &format!("connection {name} (not read)"),
            IdentityKind::ApiKey,
        );
    }
    for step in steps {
        run_step(step, &format!("{}/{}", project.account, project.name), &reach, out);
    }
}

/// Adds an agent's tool: the binding of the agent to the identity, and that identity's grant.
struct Tools<'a> {
    out: &'a mut Collected,
    workload: &'a str,
    agent_id: &'a str,
    reach: Vec<Reach>,
}

impl Tools<'_> {
    /// A connection-backed tool: bound to the connection's identity, or, when the connection
    /// runs as the calling agent, the agent's identity reaching the connection's target.
    fn through(&mut self, tool_type: &str, name: &str, agent_identity: &str, runs_as: RunsAs) {
        match runs_as {
            RunsAs::Identity(identity, target) => self.bind(tool_type, name, &identity, &target),
            RunsAs::Agent(target) => {
                self.add(tool_type, name, agent_identity, &target, vec![Permission::Execute], "connection as the agent")
            }
        }
    }

    fn sandbox(&mut self, id: &str, name: &str, kind: DestinationKind) {
        self.out.destination(Destination {
            id: id.to_string(),
            name: name.to_string(),
            kind,
            service: None,
            host: None,
            domain: None,
            egress: Some(EgressClass::Internal),
            tags: Default::default(),
            execution_logs: None,
            execution_log_source: None,
        });
    }

    /// The agent uses `identity` for a tool that reaches `destination` (granted elsewhere, e.g.
    /// by the connection).
    fn bind(&mut self, tool_type: &str, name: &str, identity: &str, destination: &str) {
        let tool = format!("{tool_type}:{name}");
        self.out.binding(Binding {
            id: format!("{}|{identity}|{tool}", self.workload),
            workload: self.workload.to_string(),
            identity: identity.to_string(),
            tool: Some(tool),
        });
        self.reach.push(Reach {
            tool_type: tool_type.to_string(),
            identity: identity.to_string(),
            destination: destination.to_string(),
        });
    }

    /// `bind`, plus the grant of the tool's destination to `identity`.
    fn add(
        &mut self,
        tool_type: &str,
        name: &str,
        identity: &str,
        destination: &str,
        permissions: Vec<Permission>,
        role: &str,
    ) {
        self.bind(tool_type, name, identity, destination);
        let tool = format!("{tool_type}:{name}");
        self.out.grant(Grant {
            id: format!("{}/{tool}", self.workload),
            identity: identity.to_string(),
            destination: destination.to_string(),
            permissions,
            source: GrantSource::Connection,
            role: role.to_string(),
            scope: format!("agent {}", self.agent_id),
            consent: None,
        });
    }
}

/// The first connection reference (`connection_id` or `project_connection_id`) in a tool.
fn find_connection(value: &Value) -> Option<String> {
    let mut found = Vec::new();
    collect_connections(value, &mut found);
    found.into_iter().next()
}

fn collect_connections(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("connection_id" | "project_connection_id" | "index_connection_id", Value::String(s)) => {
                        found.push(s.clone())
                    }
                    _ => collect_connections(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_connections(v, found)),
        _ => {}
    }
}

/// A run step's tool calls as evidence: the agent used the tool (and, when the agent has one
/// tool of that type, the identity and destination it reaches); a message creation step is
/// evidence of the model's use.
fn run_step(step: &Value, project: &str, reach: &BTreeMap<String, Vec<Reach>>, out: &mut Collected) {
    let (Some(step_id), Some(agent)) = (str(step, "id"), str(step, "assistant_id").or(str(step, "agent_id"))) else {
        return;
    };
    if str(step, "status").is_some_and(|s| s != "completed") {
        return;
    }
    let Some(at) = unix_seconds(step, "completed_at").or_else(|| unix_seconds(step, "created_at")) else { return };
    let workload = format!("foundry:{project}/{agent}");
    let details = step.get("step_details");
    let mut calls: Vec<(String, String)> = array(details.unwrap_or(&Value::Null), "tool_calls")
        .iter()
        .filter_map(|c| Some((str(c, "id").unwrap_or("call").to_string(), str(c, "type")?.to_string())))
        .collect();
    if details.and_then(|d| str(d, "type")) == Some("message_creation") {
        calls.push(("message".into(), "model".into()));
    }
    let tools = reach.get(agent).map(Vec::as_slice).unwrap_or(&[]);
    for (call_id, tool_type) in calls {
        let matching: Vec<&Reach> = tools.iter().filter(|r| r.tool_type == tool_type).collect();
        let identities: BTreeSet<&str> = matching.iter().map(|r| r.identity.as_str()).collect();
        let destinations: BTreeSet<&str> = matching.iter().map(|r| r.destination.as_str()).collect();
        out.evidence(Evidence {
            id: format!("foundry-step:{step_id}/{call_id}"),
            source: "foundry_run_step".into(),
            at,
            identity: (identities.len() == 1).then(|| identities.iter().next().map(|s| s.to_string())).flatten(),
            workload: Some(workload.clone()),
            destination: (destinations.len() == 1).then(|| destinations.iter().next().map(|s| s.to_string())).flatten(),
            service: None,
            credential: None,
        });
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
