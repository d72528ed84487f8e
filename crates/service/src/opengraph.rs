//! Paths as a BloodHound OpenGraph document, so that teams who look at attack paths in
//! BloodHound can look at SV0's authority paths there too.
//!
//! Nodes: workloads (`SV0Workload`), identities (`SV0Identity`), destinations
//! (`SV0Destination`) and data domains (`SV0DataDomain`), every one also of kind `SV0Base`.
//! Edges: `SV0RunsAs` (workload → identity), `SV0CanReach` (identity → destination, with the
//! permissions, grade and egress of the strongest path over it) and `SV0Holds` (destination →
//! data domain). Ids are prefixed by kind, so a workload and an identity never collide;
//! properties are strings, numbers, booleans or arrays of strings, as OpenGraph requires.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sv0_domain::paths::AuthorityPath;

/// The source kind every node also carries.
pub const SOURCE_KIND: &str = "SV0Base";

fn node(kind: &str, id: &str, name: &str, extra: Value) -> Value {
    let mut properties = json!({ "name": name, "objectid": id });
    if let (Some(p), Value::Object(more)) = (properties.as_object_mut(), extra) {
        p.extend(more);
    }
    json!({ "id": format!("{kind}:{id}"), "kinds": [kind, SOURCE_KIND], "properties": properties })
}

fn edge(kind: &str, start: String, end: String, properties: Value) -> Value {
    json!({
        "kind": kind,
        "start": { "value": start, "match_by": "id" },
        "end": { "value": end, "match_by": "id" },
        "properties": properties,
    })
}

/// What the paths over one identity → destination pair add up to.
#[derive(Default)]
struct Reach {
    permissions: Vec<String>,
    grade: String,
    egress: String,
    path_ids: Vec<String>,
}

/// A unit enum's serialised name (`"A"`, `"llm_api"`, `"write"`).
fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The OpenGraph document of `paths`. Nodes and edges are in id order, so the same paths give
/// the same bytes.
pub fn document(paths: &[AuthorityPath]) -> Value {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    let mut reach: BTreeMap<(String, String), Reach> = BTreeMap::new();
    for p in paths {
        let workload = format!("SV0Workload:{}", p.workload.id);
        let identity = format!("SV0Identity:{}", p.identity.id);
        let destination = format!("SV0Destination:{}", p.destination.id);
        let domain = format!("SV0DataDomain:{}", p.domain.id);
        nodes.entry(workload.clone()).or_insert_with(|| {
            node("SV0Workload", &p.workload.id, &p.workload.name, json!({ "owner_state": p.owner_state }))
        });
        nodes
            .entry(identity.clone())
            .or_insert_with(|| node("SV0Identity", &p.identity.id, &p.identity.name, json!({})));
        nodes.entry(destination.clone()).or_insert_with(|| {
            node("SV0Destination", &p.destination.id, &p.destination.name, json!({ "egress": p.egress }))
        });
        nodes.entry(domain.clone()).or_insert_with(|| {
            node("SV0DataDomain", &p.domain.id, &p.domain.name, json!({ "sensitive": p.domain.sensitive }))
        });
        edges
            .entry(("SV0RunsAs".into(), workload.clone(), identity.clone()))
            .or_insert_with(|| edge("SV0RunsAs", workload, identity.clone(), json!({ "bindings": p.bindings })));
        edges.entry(("SV0Holds".into(), destination.clone(), domain.clone())).or_insert_with(|| {
            edge(
                "SV0Holds",
                destination.clone(),
                domain,
                json!({ "classified_by": p.classified_by.clone().unwrap_or_default() }),
            )
        });
        let grade = text(&p.grade);
        let entry =
            reach.entry((identity, destination)).or_insert_with(|| Reach { grade: grade.clone(), ..Reach::default() });
        entry.permissions.extend(p.permissions.iter().map(text));
        // Grades order A < B < C as text: the strongest evidence is the smallest.
        if grade < entry.grade {
            entry.grade = grade;
        }
        entry.egress = text(&p.egress);
        entry.path_ids.push(p.path_id.clone());
    }
    for ((identity, destination), mut r) in reach {
        r.permissions.sort();
        r.permissions.dedup();
        r.path_ids.sort();
        let properties =
            json!({ "permissions": r.permissions, "grade": r.grade, "egress": r.egress, "path_ids": r.path_ids });
        edges.insert(
            ("SV0CanReach".into(), identity.clone(), destination.clone()),
            edge("SV0CanReach", identity, destination, properties),
        );
    }
    json!({
        "metadata": { "source_kind": SOURCE_KIND },
        "graph": { "nodes": nodes.into_values().collect::<Vec<_>>(), "edges": edges.into_values().collect::<Vec<_>>() },
    })
}
