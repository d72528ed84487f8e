//! Foundry agents: each agent's tools (connections, code interpreter, functions) as the paths
//! it can take, and run steps as execution evidence on them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{
    Binding, Destination, DestinationKind, EgressClass, Evidence, Grant, GrantSource, IdentityKind, Permission,
    Workload, WorkloadKind,
};

use crate::collect::{Collected, bare_destination, bare_identity};
use crate::json::{array, host_of, str, unix_seconds};

use super::*;

/// The agents of one project: their workloads, the project identity they run as, and what
/// each tool reaches as whom; run steps as evidence.
pub(super) fn agents_of(
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
pub(super) struct Tools<'a> {
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
pub(super) fn find_connection(value: &Value) -> Option<String> {
    let mut found = Vec::new();
    collect_connections(value, &mut found);
    found.into_iter().next()
}

pub(super) fn collect_connections(value: &Value, found: &mut Vec<String>) {
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
pub(super) fn run_step(step: &Value, project: &str, reach: &BTreeMap<String, Vec<Reach>>, out: &mut Collected) {
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
