//! The OpenAPI 3.1 document at `/api/v1/openapi.json`, generated from `routes::ROUTES`: each
//! route's request and response schemas come from the Rust types that read and write its
//! bodies (`schemars`, JSON Schema 2020-12 as OpenAPI 3.1 uses it), request bodies carry an
//! example, and each route names its permission and the roles that hold it.

use serde_json::{Value, json};

use crate::problem::ProblemDetails;
use crate::routes::ROUTES;

/// Where the document puts the schemas it generates.
const DEFINITIONS: &str = "/components/schemas";

/// The OpenAPI 3.1 document of `ROUTES`, with each route's permission and the roles that hold
/// it (`x-sv0-permission`, `x-sv0-roles`).
pub fn document() -> Value {
    use sv0_domain::access::Role;
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = DEFINITIONS.into())
        .into_generator();
    let problem_schema = generator.subschema_for::<ProblemDetails>();
    let problem = json!({ "$ref": "#/components/responses/Problem" });
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let roles: Vec<&str> = Role::ALL.into_iter().filter(|r| r.permits(route.permission)).map(Role::name).collect();
        let mut parameters: Vec<Value> = route
            .query
            .iter()
            .map(|name| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } }))
            .collect();
        for part in route.path.split('/').filter(|p| p.starts_with('{')) {
            let name = part.trim_matches(['{', '}']);
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        let mut content = serde_json::Map::new();
        content.insert(
            route.response.content_type.to_string(),
            json!({ "schema": (route.response.schema)(&mut generator) }),
        );
        if route.path == "/keys" {
            content.insert("application/x-pem-file".into(), json!({ "schema": { "type": "string" } }));
        }
        let mut responses = json!({
            route.success.to_string(): { "description": route.summary, "content": content },
            "400": problem, "401": problem, "403": problem, "404": problem, "429": problem,
        });
        if route.method != "GET" {
            responses["409"] = problem.clone();
            responses["413"] = problem.clone();
            responses["415"] = problem.clone();
            responses["422"] = problem.clone();
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route.method, route.path),
            "security": [{ "bearer": [] }],
            "parameters": parameters,
            "responses": responses,
            "x-sv0-permission": route.permission,
            "x-sv0-roles": roles,
        });
        if let Some(request) = &route.request {
            let mut media = json!({ "schema": (request.schema)(&mut generator) });
            if let Some(example) = request.example {
                media["example"] = example();
            }
            operation["requestBody"] = json!({ "required": true, "content": { request.content_type: media } });
        }
        let item = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation;
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SV0 API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Is it safe to deploy this? Authority paths, findings, baselines, deltas and signed evidence of the caller's tenant. Every route takes a bearer token (`sv0 tokens create`); errors are RFC 9457 problem+json. Lists are pages: `items`, and `next_cursor` to pass as `cursor` for the next page.",
        },
        "servers": [{ "url": "/api/v1" }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas,
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details; `type` is stable per error",
                    "content": { "application/problem+json": { "schema": problem_schema } },
                },
            },
        },
    })
}

/// `GET /packs/{id}/dsse` → `get_packs_id_dsse`: an identifier generators can use as a name.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.push_str(&part.trim_matches(['{', '}']).replace('-', "_"));
    }
    id
}
