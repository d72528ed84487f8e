//! ARM what-if results (`WhatIfOperationResult`): the same changes as ARM resource ids.

use serde_json::{Value, json};

use crate::json::str;

use super::*;

pub(super) fn what_if(doc: &Value) -> Result<Plan, PlanError> {
    if let Some(status) = str(doc, "status")
        && !status.eq_ignore_ascii_case("Succeeded")
    {
        let detail = doc.pointer("/error/message").and_then(Value::as_str).unwrap_or("no error message").to_string();
        return Err(PlanError::Failed { status: status.to_string(), detail });
    }
    let changes = doc
        .get("changes")
        .or_else(|| doc.pointer("/properties/changes"))
        .and_then(Value::as_array)
        .ok_or(PlanError::UnknownFormat)?;
    let mut plan = Plan { format: "arm what-if".into(), changes: Vec::new(), skipped: Vec::new(), unchanged: 0 };
    for change in changes {
        let id = str(change, "resourceId").unwrap_or("?").to_string();
        let action = match str(change, "changeType").unwrap_or("") {
            "Create" => Action::Create,
            "Modify" | "Deploy" => Action::Update,
            "Delete" => Action::Delete,
            "NoChange" | "Ignore" => {
                plan.unchanged += 1;
                continue;
            }
            other => {
                let why = str(change, "unsupportedReason").unwrap_or("");
                plan.skipped.push(Skipped {
                    address: id.clone(),
                    resource_type: arm_type(&id),
                    reason: format!("change type {other} is not one SV0 can predict {why}").trim_end().to_string(),
                });
                continue;
            }
        };
        let values = if action == Action::Delete { change.get("before") } else { change.get("after") };
        let values = values.filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
        let kind = str(&values, "type").map(str::to_string).unwrap_or_else(|| arm_type(&id));
        let planned = |expression: &str| created_identity(expression, changes);
        match arm_resource(&id, &kind, &values, action, &planned, &id) {
            Ok(Some(resource)) => plan.changes.push(Change { address: id, action, resource }),
            Ok(None) => plan.skipped.push(Skipped {
                address: id,
                resource_type: kind.clone(),
                reason: format!("{kind} changes no authority path SV0 models"),
            }),
            Err(reason) => plan.skipped.push(Skipped { address: id, resource_type: kind, reason }),
        }
    }
    plan.skipped.sort();
    Ok(plan)
}

/// The resource type an ARM id names: `.../providers/Microsoft.Storage/storageAccounts/x` →
/// `Microsoft.Storage/storageAccounts`.
pub(super) fn arm_type(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    let Some(at) = parts.iter().rposition(|p| p.eq_ignore_ascii_case("providers")) else { return "?".into() };
    let rest = &parts[at + 1..];
    let mut out = vec![rest.first().copied().unwrap_or("?")];
    out.extend(rest.iter().skip(1).step_by(2));
    out.join("/")
}

/// The identity a what-if's unresolved template expression (`[reference(...).principalId]`;
/// what-if cannot evaluate `reference()`) names: one this deployment creates (a user-assigned
/// identity, or the system identity of a Foundry account or project), whose name the expression
/// quotes (else merely contains).
pub(super) fn created_identity(expression: &str, all: &[Value]) -> Option<Principal> {
    const HOLDERS: [&str; 3] =
        ["/microsoft.managedidentity/userassignedidentities/", "/microsoft.cognitiveservices/accounts/", "/projects/"];
    let created: Vec<&str> = all
        .iter()
        .filter(|c| str(c, "changeType") == Some("Create"))
        .filter_map(|c| str(c, "resourceId"))
        .filter(|r| {
            let lower = r.to_ascii_lowercase();
            HOLDERS.iter().any(|h| lower.contains(h))
                && !lower.contains("/connections/")
                && !lower.contains("/deployments/")
        })
        .collect();
    let name = |r: &&str| r.rsplit('/').next().unwrap_or(r).to_string();
    let quoted = created.iter().find(|r| expression.contains(&format!("'{}'", name(r))));
    let found = quoted.or_else(|| created.iter().find(|r| expression.contains(&name(r))))?;
    Some(Principal::Planned(found.to_string()))
}

/// One ARM resource (what-if's `after`/`before`, or an azapi body in ARM's shape) as a change
/// SV0 models. `planned` names the principal behind a `principalId` that is unknown until
/// deployment; `address` is what the resource is called in the plan (a planned system
/// identity is known by it).
pub(super) fn arm_resource(
    id: &str,
    kind: &str,
    values: &Value,
    action: Action,
    planned: &dyn Fn(&str) -> Option<Principal>,
    address: &str,
) -> Result<Option<Resource>, String> {
    let props = values.get("properties").unwrap_or(&Value::Null);
    Ok(Some(match kind.to_ascii_lowercase().as_str() {
        "microsoft.authorization/roleassignments" => {
            let scope = id
                .to_ascii_lowercase()
                .find("/providers/microsoft.authorization/roleassignments/")
                .map(|at| id[..at].to_string())
                .filter(|s| !s.is_empty())
                .or_else(|| str(props, "scope").map(str::to_string))
                .ok_or("the assignment's scope is not in its id")?;
            let role = str(props, "roleDefinitionId")
                .map(|r| r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase())
                .ok_or("names no roleDefinitionId")?;
            let principal = match str(props, "principalId") {
                Some(p) if !p.starts_with('[') => Principal::Known(p.to_string()),
                other => match (planned(other.unwrap_or("")), other) {
                    (Some(principal), _) => principal,
                    (None, Some(expression)) => {
                        return Err(format!("principalId {expression} is unknown until deployment"));
                    }
                    (None, None) => return Err("names no principalId, and no identity of the plan gives it".into()),
                },
            };
            Resource::RoleAssignment { id: Some(id.to_string()), scope, role, principal }
        }
        "microsoft.managedidentity/userassignedidentities" => {
            let name = str(values, "name").unwrap_or_else(|| id.rsplit('/').next().unwrap_or(id)).to_string();
            let principal = match str(props, "principalId") {
                Some(p) => Principal::Known(p.to_string()),
                None if action == Action::Delete => return Err("the deleted identity has no principalId".into()),
                None => Principal::Planned(address.to_string()),
            };
            Resource::Identity { name, principal }
        }
        "microsoft.storage/storageaccounts" => {
            Resource::StorageAccount { id: id.to_string(), tags: string_map(values.get("tags")) }
        }
        "microsoft.storage/storageaccounts/blobservices/containers" => {
            Resource::StorageContainer { id: id.to_string(), metadata: string_map(props.get("metadata")) }
        }
        "microsoft.cognitiveservices/accounts"
        | "microsoft.cognitiveservices/accounts/projects"
        | "microsoft.cognitiveservices/accounts/connections"
        | "microsoft.cognitiveservices/accounts/projects/connections" => {
            let level = match kind.to_ascii_lowercase().matches('/').count() {
                1 => FoundryLevel::Account,
                2 if kind.to_ascii_lowercase().ends_with("/projects") => FoundryLevel::Project,
                _ => FoundryLevel::Connection,
            };
            let identity = match level {
                FoundryLevel::Connection => None,
                _ => system_identity(values.get("identity"), address, action),
            };
            let leaf = id.rsplit('/').next().unwrap_or(id);
            Resource::Foundry {
                level,
                id: id.to_string(),
                // A child's ARM `name` may be `parent/child`; the id's last segment is the name.
                name: match level {
                    FoundryLevel::Account => str(values, "name").unwrap_or(leaf),
                    _ => leaf,
                }
                .to_string(),
                identity,
                arm_kind: str(values, "kind").map(str::to_string),
                properties: props.clone(),
            }
        }
        // A model deployment is reached by name, as the project's identity, whether it exists
        // or not; creating or deleting one grants no one anything.
        "microsoft.resources/resourcegroups"
        | "microsoft.storage/storageaccounts/blobservices"
        | "microsoft.cognitiveservices/accounts/deployments"
        | "microsoft.cognitiveservices/accounts/raipolicies" => return Ok(None),
        other => return Err(format!("{other} is not a resource type SV0 models yet")),
    }))
}
