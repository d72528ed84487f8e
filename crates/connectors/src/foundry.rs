//! Azure AI Foundry Agent Service: agents (the workloads) with their model and tools (OpenAPI,
//! Azure Function, file search, code interpreter, Bing grounding, MCP, Azure AI Search and other
//! connection-backed tools), the project's connections, which identity each tool runs as (the
//! project's managed identity, or a connection's key or identity), and run steps as execution
//! evidence of tool use. Function tools run in the caller's code and connected agents are other
//! agents, so neither adds a path of its own.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{
    Binding, Credential, CredentialKind, Destination, DestinationKind, EgressClass, Evidence, Grant, GrantSource,
    IdentityKind, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::EntityList;

use crate::collect::{Collected, bare_destination, bare_identity};
use crate::json::{array, host_of, object_id, str, unix_seconds};
use crate::source::{Call, Ledger, Paging, Service, Source};
use crate::{ConnectorError, Settings};

const API_VERSION: &str = "api-version=2025-05-01";
const AGENTS: &str = "foundry.agents";
const CONNECTIONS: &str = "foundry.connections";
const THREADS: &str = "foundry.threads";
const RUNS: &str = "foundry.runs";
const STEPS: &str = "foundry.runSteps";

/// The Foundry responses the conversion reads.
#[derive(Debug, Default)]
pub struct FoundryData {
    /// Agents (`assistants`).
    pub agents: Vec<Value>,
    /// Project connections.
    pub connections: Vec<Value>,
    /// Run steps.
    pub run_steps: Vec<Value>,
}

/// Reads a Foundry project and adds what it saw to `out`.
pub async fn collect(
    source: &Source,
    settings: &Settings,
    ledger: &Ledger,
    out: &mut Collected,
) -> Result<(), ConnectorError> {
    if !source.has(Service::Foundry) {
        return Err(ConnectorError::Setup(
            "foundry needs the project endpoint: --base-url foundry=https://<resource>.services.ai.azure.com/api/projects/<project>"
                .into(),
        ));
    }
    declare(out);
    let get = |api, path: String, paging| Call::get(api, Service::Foundry, path, paging);
    let agents = source
        .list(get(AGENTS, format!("/assistants?{API_VERSION}&limit=100&order=asc"), Paging::Cursor), ledger)
        .await;
    let connections = source.list(get(CONNECTIONS, format!("/connections?{API_VERSION}"), Paging::Arm), ledger).await;
    let steps = if source.is_export() {
        source.list(get(STEPS, String::new(), Paging::Cursor), ledger).await.items
    } else {
        out.uses(THREADS, &[EntityList::Evidence]);
        out.uses(RUNS, &[EntityList::Evidence]);
        let threads =
            source.list(get(THREADS, format!("/threads?{API_VERSION}&limit=100"), Paging::Cursor), ledger).await;
        let since = settings.observed_at.add_days(-i64::from(settings.evidence_days));
        let calls = threads
            .items
            .iter()
            .filter_map(|t| str(t, "id"))
            .map(|t| get(RUNS, format!("/threads/{t}/runs?{API_VERSION}&limit=100"), Paging::Cursor))
            .collect();
        let runs = source.list_each(RUNS, calls, ledger).await;
        let calls = runs
            .items
            .iter()
            .filter(|r| unix_seconds(r, "created_at").is_none_or(|at| at >= since))
            .filter_map(|r| Some((str(r, "thread_id")?, str(r, "id")?)))
            .map(|(t, r)| get(STEPS, format!("/threads/{t}/runs/{r}/steps?{API_VERSION}&limit=100"), Paging::Cursor))
            .collect();
        if !threads.complete || !runs.complete {
            ledger.skipped(STEPS, "the threads or runs were not read completely");
        }
        source.list_each(STEPS, calls, ledger).await.items
    };
    let project = settings.foundry_project.clone().unwrap_or_else(|| match source {
        Source::Live(live) => live
            .base_url(Service::Foundry)
            .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
            .unwrap_or("foundry")
            .to_string(),
        Source::Export(_) => "foundry".to_string(),
    });
    let host = settings.foundry_host.clone().or_else(|| match source {
        Source::Live(live) => live.base_url(Service::Foundry).and_then(host_of),
        Source::Export(_) => None,
    });
    let data = FoundryData { agents: agents.items, connections: connections.items, run_steps: steps };
    convert(&data, &project, host.as_deref(), settings.foundry_principal_id.as_deref(), out);
    Ok(())
}

/// The lists each Foundry API fills.
pub fn declare(out: &mut Collected) {
    use EntityList::*;
    out.uses(AGENTS, &[Workloads, Bindings, Grants, Destinations]);
    out.uses(CONNECTIONS, &[Identities, Credentials, Grants, Destinations]);
    out.uses(STEPS, &[Evidence]);
}

/// What one tool of one agent reaches, as whom.
struct Reach {
    tool_type: String,
    identity: String,
    destination: String,
}

/// Converts Foundry responses into entities.
pub fn convert(data: &FoundryData, project: &str, host: Option<&str>, principal: Option<&str>, out: &mut Collected) {
    let project_identity = principal.map(object_id).unwrap_or_else(|| format!("foundry-project:{project}"));
    out.stub_identity(&project_identity, &format!("{project} project managed identity"), IdentityKind::ManagedIdentity);
    let host = host.map(str::to_string).unwrap_or_else(|| format!("{project}.services.ai.azure.com"));

    // Connections: who a connection-backed tool acts as, and what the connection reaches.
    let mut connections: BTreeMap<String, (String, String)> = BTreeMap::new();
    for connection in &data.connections {
        let Some(name) = str(connection, "name") else { continue };
        let properties = connection.get("properties").unwrap_or(connection);
        let kind = str(properties, "type").or(str(properties, "category")).unwrap_or("Custom").to_string();
        let credential_type = properties
            .get("credentials")
            .and_then(|c| str(c, "type"))
            .or(str(properties, "authType"))
            .unwrap_or("None")
            .to_ascii_lowercase();
        let target = str(properties, "target").unwrap_or("");
        let identity = if matches!(credential_type.as_str(), "aad" | "entraid" | "managedidentity") {
            project_identity.clone()
        } else {
            let id = format!("foundry-connection:{project}/{name}");
            out.identity(bare_identity(
                id.clone(),
                format!("connection {name}"),
                if credential_type == "agenticidentity" { IdentityKind::AgentIdentity } else { IdentityKind::ApiKey },
            ));
            if matches!(credential_type.as_str(), "apikey" | "customkeys" | "sas" | "accountkey") {
                out.credential(Credential {
                    id: format!("{id}/key"),
                    identity: id.clone(),
                    kind: CredentialKind::ApiKey,
                    created_at: None,
                    expires_at: None,
                });
            }
            id
        };
        let (dest_kind, permissions) = match kind.to_ascii_lowercase().as_str() {
            "azureopenai" | "aiservices" | "serverless" => (DestinationKind::LlmDeployment, vec![Permission::Execute]),
            "azureblob" | "azurestorageaccount" => {
                (DestinationKind::StorageAccount, vec![Permission::Read, Permission::Write])
            }
            "cognitivesearch" | "azureaisearch" => (DestinationKind::Database, vec![Permission::Read]),
            _ => (DestinationKind::HttpEndpoint, vec![Permission::Execute]),
        };
        let destination =
            format!("foundry-target:{}", if target.is_empty() { name } else { target }).to_ascii_lowercase();
        out.destination(Destination {
            host: host_of(target),
            ..bare_destination(
                destination.clone(),
                if target.is_empty() { name.to_string() } else { target.to_string() },
                dest_kind,
            )
        });
        out.grant(Grant {
            id: format!("foundry-connection:{project}/{name}"),
            identity: identity.clone(),
            destination: destination.clone(),
            permissions,
            source: GrantSource::Connection,
            role: format!("{kind} connection"),
            scope: name.to_string(),
            consent: None,
        });
        connections.insert(name.to_ascii_lowercase(), (identity, destination));
    }
    // A tool naming a connection the listing did not return (it failed, or the connection is
    // gone) still runs as that connection: bind to its identity, known only by name.
    let unknown: std::cell::RefCell<BTreeSet<String>> = Default::default();
    let connection = |reference: &str| -> Option<(String, String)> {
        let name = reference.rsplit_once("/connections/").map(|(_, n)| n).unwrap_or(reference);
        connections.get(&name.to_ascii_lowercase()).cloned().or_else(|| {
            unknown.borrow_mut().insert(name.to_string());
            Some((format!("foundry-connection:{project}/{name}"), String::new()))
        })
    };

    let mut reach: BTreeMap<String, Vec<Reach>> = BTreeMap::new();
    for agent in &data.agents {
        let Some(agent_id) = str(agent, "id") else { continue };
        let workload = format!("foundry:{project}/{agent_id}");
        out.workload(Workload {
            id: workload.clone(),
            name: str(agent, "name").unwrap_or(agent_id).to_string(),
            kind: WorkloadKind::FoundryAgent,
            project: Some(project.to_string()),
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
        let agent_identity = format!("foundry-agent:{project}/{agent_id}");
        out.identity(bare_identity(
            agent_identity.clone(),
            format!("{agent_name} tools (as the {project} project identity)"),
            IdentityKind::AgentIdentity,
        ));
        out.binding(Binding {
            id: format!("{workload}|{project_identity}"),
            workload: workload.clone(),
            identity: project_identity.clone(),
            tool: Some("project identity".into()),
        });
        let mut tools = Tools { out, workload: &workload, agent_id, reach: Vec::new() };
        // The model: prompts go to the deployment, as the project's identity.
        if let Some(model) = str(agent, "model").or_else(|| agent.get("definition").and_then(|d| str(d, "model"))) {
            let destination = format!("foundry-model:{project}/{model}");
            tools.out.destination(Destination {
                service: Some(format!("foundry:{project}")),
                host: Some(host.clone()),
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
                    let destination = format!("foundry-tool:{project}/code_interpreter");
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
                        let destination = format!("foundry-vector-store:{project}/{store}");
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
                    let destination = format!("foundry-openapi:{project}/{name}");
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
                            find_connection(auth.unwrap_or(tool)).and_then(|c| connection(&c)).map(|c| c.0)
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
                    if let Some((identity, target)) = find_connection(body).and_then(|c| connection(&c)) {
                        tools.bind(tool_type, tool_type, &identity, &target);
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
                    if let Some((identity, target)) = find_connection(body).and_then(|c| connection(&c)) {
                        tools.bind(tool_type, label, &identity, &target);
                        continue;
                    }
                    let url = str(body, "server_url").unwrap_or("");
                    let destination = format!("foundry-mcp:{project}/{label}");
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
                        if let Some((identity, destination)) = connection(&reference) {
                            tools.bind(tool_type, &reference, &identity, &destination);
                        }
                    }
                }
            }
        }
        let found = tools.reach;
        reach.insert(agent_id.to_string(), found);
    }

    for name in unknown.into_inner() {
        out.stub_identity(
            &format!("foundry-connection:{project}/{name}"),
            &format!("connection {name}"),
            IdentityKind::ApiKey,
        );
    }
    for step in &data.run_steps {
        run_step(step, project, &reach, out);
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
