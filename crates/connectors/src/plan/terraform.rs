//! Terraform JSON plans (`terraform show -json`): the changes to role assignments, identities,
//! credentials, app role assignments and AI Foundry connections, resolved through the plan's
//! configuration and prior state.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::arm::{self};
use crate::json::str;

use super::*;

/// Expressions of every resource of the configuration, by module-qualified address.
pub(super) fn config_index(module: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    for resource in module.get("resources").and_then(Value::as_array).into_iter().flatten() {
        if let Some(address) = str(resource, "address") {
            out.insert(format!("{prefix}{address}"), resource.get("expressions").cloned().unwrap_or(Value::Null));
        }
    }
    for (name, call) in module.get("module_calls").and_then(Value::as_object).into_iter().flatten() {
        if let Some(child) = call.get("module") {
            config_index(child, &format!("{prefix}module.{name}."), out);
        }
    }
}

/// An address without instance keys: `module.a["x"].t.n[0]` → `module.a.t.n`.
pub(super) fn without_keys(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0;
    for c in address.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The resource address a reference names (`azurerm_user_assigned_identity.agent.principal_id`
/// → `azurerm_user_assigned_identity.agent`; `data.x.y.z` → `data.x.y`), module-qualified.
pub(super) fn referenced_resource(reference: &str, module: &str) -> Option<String> {
    let plain = without_keys(reference);
    let parts: Vec<&str> = plain.split('.').collect();
    let take = match parts.first() {
        Some(&"data") => 3,
        Some(&"var" | &"local" | &"module" | &"each" | &"count" | &"path" | &"terraform") => return None,
        _ => 2,
    };
    (parts.len() >= take).then(|| format!("{module}{}", parts[..take].join(".")))
}

pub(super) struct Terraform<'a> {
    /// The plan's `timestamp` (RFC 3339), the base of relative end dates.
    timestamp: Option<String>,
    config: BTreeMap<String, Value>,
    /// Resource address (without keys) → its change.
    changes: BTreeMap<String, &'a Value>,
    /// Resource address (without keys) → its values in the prior state (data sources too).
    prior: BTreeMap<String, &'a Value>,
}

impl Terraform<'_> {
    /// The value of `attribute` after the change: known, or the planned resource it comes from.
    fn value(&self, rc: &Value, attribute: &str) -> Option<Resolved> {
        let change = rc.get("change")?;
        if let Some(v) = change.get("after").and_then(|a| a.get(attribute)).and_then(Value::as_str) {
            return Some(Resolved::Known(v.to_string()));
        }
        let unknown = change.get("after_unknown").and_then(|u| u.get(attribute)).and_then(Value::as_bool) == Some(true);
        if !unknown {
            return None;
        }
        let module = str(rc, "module_address").map(|m| format!("{}.", without_keys(m))).unwrap_or_default();
        let address = without_keys(str(rc, "address")?);
        let refs = self.config.get(&address)?.get(attribute)?.get("references")?.as_array()?;
        let first = refs.first()?.as_str()?;
        let target = referenced_resource(first, &module)?;
        Some(Resolved::From { address: target, reference: first.to_string() })
    }

    /// Whether the plan creates, replaces or updates the resource at `address` (so that a value
    /// of it unknown until apply is one this apply decides).
    fn will_set(&self, address: &str) -> bool {
        self.changes.get(address).is_some_and(|rc| {
            rc.pointer("/change/actions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| matches!(x.as_str(), Some("create" | "update"))))
        })
    }

    /// The values of the resource at `address`: planned (`after`), else in the prior state.
    fn values_of(&self, address: &str) -> Option<&Value> {
        self.changes
            .get(address)
            .and_then(|rc| rc.pointer("/change/after"))
            .filter(|v| !v.is_null())
            .or_else(|| self.prior.get(address).copied())
    }
}

/// A value after the plan.
pub(super) enum Resolved {
    Known(String),
    /// Unknown until apply; the configuration says it comes from `address`.
    From {
        address: String,
        reference: String,
    },
}

pub(super) fn actions(rc: &Value) -> Vec<String> {
    rc.pointer("/change/actions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn terraform(doc: &Value) -> Result<Plan, PlanError> {
    let version = str(doc, "format_version").unwrap_or("").to_string();
    if version.split('.').next() != Some("1") {
        return Err(PlanError::UnsupportedVersion(if version.is_empty() { "(none)".into() } else { version }));
    }
    let mut config = BTreeMap::new();
    if let Some(root) = doc.pointer("/configuration/root_module") {
        config_index(root, "", &mut config);
    }
    let empty = Vec::new();
    let changes_list = doc.get("resource_changes").and_then(Value::as_array).unwrap_or(&empty);
    let mut prior = BTreeMap::new();
    collect_state(doc.pointer("/prior_state/values/root_module"), &mut prior);
    let tf = Terraform {
        timestamp: str(doc, "timestamp").map(str::to_string),
        config,
        changes: changes_list.iter().filter_map(|rc| Some((without_keys(str(rc, "address")?), rc))).collect(),
        prior,
    };
    let mut plan =
        Plan { format: format!("terraform {version}"), changes: Vec::new(), skipped: Vec::new(), unchanged: 0 };
    for rc in changes_list {
        let address = str(rc, "address").unwrap_or("?").to_string();
        let kind = str(rc, "type").unwrap_or("?").to_string();
        let skip = |plan: &mut Plan, reason: String| {
            plan.skipped.push(Skipped { address: address.clone(), resource_type: kind.clone(), reason })
        };
        if str(rc, "mode") == Some("data") {
            continue;
        }
        let acts = actions(rc);
        let action = match acts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["no-op"] | ["read"] | [] => {
                plan.unchanged += 1;
                continue;
            }
            ["create"] => Action::Create,
            ["update"] => Action::Update,
            ["delete"] => Action::Delete,
            ["delete", "create"] | ["create", "delete"] => Action::Replace,
            ["forget"] => {
                skip(&mut plan, "forgotten: Terraform stops managing it, and it stays in Azure as it is".into());
                continue;
            }
            other => {
                skip(&mut plan, format!("actions {other:?} are not ones Terraform documents"));
                continue;
            }
        };
        let provider = str(rc, "provider_name").unwrap_or("").to_ascii_lowercase();
        let known_provider =
            ["hashicorp/azurerm", "hashicorp/azuread", "azure/azapi"].iter().any(|p| provider.ends_with(p));
        if !known_provider {
            skip(&mut plan, format!("provider {provider}: SV0 reads the azurerm, azuread and azapi providers"));
            continue;
        }
        // A deletion is read from `before`; everything else from `after`.
        let side = if action == Action::Delete { "/change/before" } else { "/change/after" };
        let values = rc.pointer(side).cloned().unwrap_or(Value::Null);
        match tf_resource(&tf, rc, &kind, &values, action) {
            Ok(Some(resource)) => plan.changes.push(Change { address: address.clone(), action, resource }),
            Ok(None) => skip(&mut plan, format!("{kind} changes no authority path SV0 models")),
            Err(reason) => skip(&mut plan, reason),
        }
    }
    plan.skipped.sort();
    Ok(plan)
}

/// Resource values of a state's module tree, by address (without keys).
pub(super) fn collect_state<'a>(module: Option<&'a Value>, out: &mut BTreeMap<String, &'a Value>) {
    let Some(module) = module else { return };
    for r in module.get("resources").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(address), Some(values)) = (str(r, "address"), r.get("values")) {
            out.insert(without_keys(address), values);
        }
    }
    for child in module.get("child_modules").and_then(Value::as_array).into_iter().flatten() {
        collect_state(Some(child), out);
    }
}

pub(super) fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// A principal named by `attribute`: known, or created by the plan.
pub(super) fn tf_principal(
    tf: &Terraform<'_>,
    rc: &Value,
    values: &Value,
    attribute: &str,
    action: Action,
) -> Result<Principal, String> {
    if action == Action::Delete {
        return str(values, attribute)
            .map(|p| Principal::Known(p.to_string()))
            .ok_or_else(|| format!("no {attribute}"));
    }
    match tf.value(rc, attribute) {
        Some(Resolved::Known(id)) => Ok(Principal::Known(id)),
        Some(Resolved::From { address, reference }) if tf.will_set(&address) => {
            // `azuread_service_principal.x.id` is `/servicePrincipals/<object id>`; either way
            // the principal is the one the plan creates.
            let _ = reference;
            Ok(Principal::Planned(address))
        }
        Some(Resolved::From { address, .. }) => {
            Err(format!("{attribute} is unknown until apply and comes from {address}, which this plan does not change"))
        }
        None => Err(format!("{attribute} is neither known nor computed from a planned resource")),
    }
}

pub(super) fn tf_resource(
    tf: &Terraform<'_>,
    rc: &Value,
    kind: &str,
    values: &Value,
    action: Action,
) -> Result<Option<Resource>, String> {
    Ok(Some(match kind {
        "azurerm_role_assignment" => {
            let scope = match (action, tf.value(rc, "scope")) {
                (Action::Delete, _) => str(values, "scope").map(str::to_string),
                (_, Some(Resolved::Known(s))) => Some(s),
                (_, Some(Resolved::From { address, .. })) => planned_id(tf, &address),
                _ => None,
            }
            .ok_or("the scope is unknown until apply and not a resource this plan creates")?;
            if let Some(address) = scope.strip_prefix("planned:") {
                return Err(format!("the scope is {address}, whose id only apply decides"));
            }
            let role = match (str(values, "role_definition_id"), str(values, "role_definition_name")) {
                (Some(id), _) => id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase(),
                (None, Some(name)) => arm::builtin_role_guid(name)
                    .ok_or_else(|| format!("role {name:?} is not a built-in role SV0 knows; give role_definition_id"))?
                    .to_string(),
                (None, None) => return Err("names no role definition".into()),
            };
            let principal = tf_principal(tf, rc, values, "principal_id", action)?;
            // A replaced assignment's new id is decided at apply; the one it replaces is `before`'s.
            let id = str(values, "id").or_else(|| match action {
                Action::Replace => rc.pointer("/change/before").and_then(|b| str(b, "id")),
                _ => None,
            });
            Resource::RoleAssignment { id: id.map(str::to_string), scope, role, principal }
        }
        "azurerm_user_assigned_identity" => {
            let name = str(values, "name").unwrap_or("user-assigned identity").to_string();
            let principal = match str(values, "principal_id") {
                Some(id) => Principal::Known(id.to_string()),
                None if action == Action::Delete => return Err("the deleted identity has no principal_id".into()),
                None => Principal::Planned(without_keys(str(rc, "address").unwrap_or(""))),
            };
            Resource::Identity { name, principal }
        }
        "azuread_service_principal" => {
            let name = str(values, "display_name").unwrap_or("service principal").to_string();
            let principal = match str(values, "object_id") {
                Some(id) => Principal::Known(id.to_string()),
                None if action == Action::Delete => return Err("the deleted service principal has no object_id".into()),
                None => Principal::Planned(without_keys(str(rc, "address").unwrap_or(""))),
            };
            Resource::Identity { name, principal }
        }
        "azurerm_storage_account" => {
            let Some(id) = str(values, "id")
                .map(str::to_string)
                .or_else(|| planned_id(tf, &without_keys(str(rc, "address").unwrap_or(""))))
            else {
                return Err("its id is unknown until apply".into());
            };
            Resource::StorageAccount { id, tags: string_map(values.get("tags")) }
        }
        "azurerm_storage_container" => {
            let Some(id) = str(values, "id")
                .map(str::to_string)
                .or_else(|| planned_id(tf, &without_keys(str(rc, "address").unwrap_or(""))))
            else {
                return Err("its storage account is unknown until apply".into());
            };
            Resource::StorageContainer { id, metadata: string_map(values.get("metadata")) }
        }
        "azuread_app_role_assignment" => {
            let principal = tf_principal(tf, rc, values, "principal_object_id", action)?;
            let role = app_role_name(tf, rc, values).ok_or(
                "the app role is neither a Microsoft Graph role SV0 knows by id nor named through app_role_ids[\"...\"]",
            )?;
            let resource = str(values, "resource_object_id").map(str::to_string);
            let graph = resource_is_graph(tf, rc, resource.as_deref());
            Resource::AppRoleAssignment { id: str(values, "id").map(str::to_string), principal, role, graph, resource }
        }
        "azuread_service_principal_password" | "azuread_service_principal_certificate" => {
            let principal = tf_principal(tf, rc, values, "service_principal_id", action)?;
            // `service_principal_id` is the `/servicePrincipals/<object id>` form.
            let principal = match principal {
                Principal::Known(id) => Principal::Known(id.trim_start_matches("/servicePrincipals/").to_string()),
                planned => planned,
            };
            let expires_at = credential_end(tf, values)
                .ok_or("its end date is decided at apply (neither end_date nor end_date_relative is in the plan)")?;
            Resource::Credential {
                id: str(values, "key_id").map(str::to_string),
                principal,
                certificate: kind == "azuread_service_principal_certificate",
                expires_at,
            }
        }
        "azurerm_cognitive_account" => {
            let address = without_keys(str(rc, "address").unwrap_or(""));
            let id = match (str(values, "id"), action) {
                (Some(id), _) => id.to_string(),
                (None, Action::Delete) => return Err("the deleted account has no id".into()),
                (None, _) => planned_id(tf, &address).unwrap_or_else(|| format!("planned:{address}")),
            };
            let mut properties = json!({});
            if let Some(subdomain) = str(values, "custom_subdomain_name") {
                properties["customSubDomainName"] = json!(subdomain);
            }
            if let Some(projects) = values.get("project_management_enabled").and_then(Value::as_bool) {
                properties["allowProjectManagement"] = json!(projects);
            }
            // azurerm writes the identity block as a one-element list.
            let identity = values.get("identity").and_then(Value::as_array).and_then(|a| a.first()).map(|i| {
                json!({"type": i.get("type").cloned().unwrap_or(Value::Null), "principalId": i.get("principal_id").cloned().unwrap_or(Value::Null)})
            });
            Resource::Foundry {
                level: FoundryLevel::Account,
                name: str(values, "name").unwrap_or_else(|| id.rsplit('/').next().unwrap_or(&id)).to_string(),
                identity: system_identity(identity.as_ref(), &address, action),
                id,
                arm_kind: str(values, "kind").map(str::to_string),
                properties,
            }
        }
        "azapi_resource" => return azapi(tf, rc, values, action),
        "azuread_application" | "azurerm_resource_group" | "azurerm_cognitive_deployment" => return Ok(None),
        other => return Err(format!("{other} is not a resource SV0 models yet")),
    }))
}

/// A resource's system-assigned managed identity (ARM's `identity` object): its principal id
/// when known, else the planned principal of the resource at `address` when the plan gives it
/// one.
pub(super) fn system_identity(identity: Option<&Value>, address: &str, action: Action) -> Option<Principal> {
    let identity = identity?;
    if let Some(principal) = str(identity, "principalId") {
        return Some(Principal::Known(principal.to_string()));
    }
    let kind = str(identity, "type")?.to_ascii_lowercase().replace(' ', "");
    (kind.split(',').any(|k| k == "systemassigned") && action != Action::Delete)
        .then(|| Principal::Planned(address.to_string()))
}

/// An `azapi_resource`: its `body` is the ARM request body, so it reads as ARM what-if reads
/// the resource (its `type` without the `@api-version`, its id from `parent_id` and `name`
/// when apply decides it, and azapi's `identity` block as ARM's `identity`).
pub(super) fn azapi(
    tf: &Terraform<'_>,
    rc: &Value,
    values: &Value,
    action: Action,
) -> Result<Option<Resource>, String> {
    let full_type = str(values, "type").ok_or("names no type")?;
    let kind = full_type.split('@').next().unwrap_or(full_type);
    let address = without_keys(str(rc, "address").unwrap_or(""));
    let id = match (str(values, "id"), action) {
        (Some(id), _) => id.to_string(),
        (None, Action::Delete) => return Err("the deleted resource has no id".into()),
        (None, _) => planned_id(tf, &address)
            .ok_or("its id is unknown until apply, and neither its parent_id nor a resource of this plan gives it")?,
    };
    // azapi 2.x writes `body` as an object; 1.x as a JSON string.
    let mut arm = match values.get("body") {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_else(|_| json!({})),
        Some(body) => body.clone(),
        None => json!({}),
    };
    if !arm.is_object() {
        arm = json!({});
    }
    if let Some(identity) = values.get("identity").and_then(Value::as_array).and_then(|a| a.first()) {
        arm["identity"] = json!({
            "type": identity.get("type").cloned().unwrap_or(Value::Null),
            "principalId": identity.get("principal_id").cloned().unwrap_or(Value::Null),
        });
    }
    for key in ["name", "tags"] {
        if let Some(v) = values.get(key) {
            arm[key] = v.clone();
        }
    }
    // A principal unknown until apply: the planned resource the body's expression refers to.
    let module = str(rc, "module_address").map(|m| format!("{}.", without_keys(m))).unwrap_or_default();
    let planned = |_: &str| -> Option<Principal> {
        let refs = tf.config.get(&address)?.get("body")?.get("references")?.as_array()?;
        let target = refs
            .iter()
            .filter_map(Value::as_str)
            .filter(|r| r.to_ascii_lowercase().contains("principal"))
            .find_map(|r| referenced_resource(r, &module))?;
        tf.will_set(&target).then_some(Principal::Planned(target))
    };
    arm_resource(&id, kind, &arm, action, &planned, &address)
}

/// When a planned credential expires: `end_date` (RFC 3339), or `end_date_relative` (a Go
/// duration such as `8760h`) after the plan's `timestamp`.
pub(super) fn credential_end(tf: &Terraform<'_>, values: &Value) -> Option<i64> {
    if let Some(end) = str(values, "end_date") {
        return sv0_domain::Timestamp::parse(end).ok().map(|t| t.0);
    }
    let relative = str(values, "end_date_relative")?;
    let base = sv0_domain::Timestamp::parse(tf.timestamp.as_deref()?).ok()?;
    Some(base.0.saturating_add(go_duration_ms(relative)?))
}

/// A Go duration (`8760h`, `90h30m`, `1h0m0s`) in milliseconds.
pub(super) fn go_duration_ms(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        total = total.checked_add(n.checked_mul(match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        })?)?;
    }
    number.is_empty().then_some(total)
}

/// The id a resource the plan creates will have, when its parts are known: a container is
/// `<storage_account_id>/blobServices/default/containers/<name>`.
pub(super) fn planned_id(tf: &Terraform<'_>, address: &str) -> Option<String> {
    let rc = tf.changes.get(address)?;
    let after = rc.pointer("/change/after")?;
    if let Some(id) = str(after, "id") {
        return Some(id.to_string());
    }
    match str(rc, "type")? {
        "azurerm_storage_container" => {
            let account = match tf.value(rc, "storage_account_id")? {
                Resolved::Known(id) => id,
                Resolved::From { address, .. } => planned_id(tf, &address)?,
            };
            Some(format!("{account}/blobServices/default/containers/{}", str(after, "name")?))
        }
        // Its resource group's id is rarely in a plan: the account is known by its address.
        "azurerm_cognitive_account" => Some(format!("planned:{address}")),
        "azapi_resource" => {
            let kind = str(after, "type")?.split('@').next()?.to_string();
            let parent = match tf.value(rc, "parent_id")? {
                Resolved::Known(id) => id,
                Resolved::From { address, .. } => planned_id(tf, &address)?,
            };
            let name = str(after, "name").map(str::to_string).unwrap_or_else(|| format!("planned:{address}"));
            Some(child_id(&parent, &kind, &name))
        }
        _ => None,
    }
}

/// The ARM id of a resource of type `kind` named `name` in `parent`: a child type
/// (`Microsoft.CognitiveServices/accounts/projects`) below its parent resource, a top-level one
/// below the provider of its resource group, subscription or tenant.
pub(super) fn child_id(parent: &str, kind: &str, name: &str) -> String {
    let parent = parent.trim_end_matches('/');
    let segments: Vec<&str> = kind.split('/').collect();
    match segments.as_slice() {
        [namespace, top] => format!("{parent}/providers/{namespace}/{top}/{name}"),
        [.., last] => format!("{parent}/{last}/{name}"),
        [] => format!("{parent}/{name}"),
    }
}

/// The app role an assignment gives: `app_role_ids["User.Read.All"]` in the configuration,
/// or a Microsoft Graph role known by id.
pub(super) fn app_role_name(tf: &Terraform<'_>, rc: &Value, values: &Value) -> Option<String> {
    if let Some(id) = str(values, "app_role_id")
        && let Some(name) = graph_role_name(id)
    {
        return Some(name.to_string());
    }
    let address = without_keys(str(rc, "address")?);
    let refs = tf.config.get(&address)?.get("app_role_id")?.get("references")?.as_array()?;
    refs.iter().filter_map(Value::as_str).find_map(|r| {
        let (_, rest) = r.split_once("app_role_ids[\"")?;
        rest.split_once("\"]").map(|(name, _)| name.to_string())
    })
}

/// Whether an app role assignment's resource is Microsoft Graph: its service principal (a
/// resource or data source of the plan) has Graph's application id.
pub(super) fn resource_is_graph(tf: &Terraform<'_>, rc: &Value, resource_object_id: Option<&str>) -> bool {
    let module = str(rc, "module_address").map(|m| format!("{}.", without_keys(m))).unwrap_or_default();
    let Some(address) = str(rc, "address").map(without_keys) else { return false };
    let from_config = tf
        .config
        .get(&address)
        .and_then(|e| e.get("resource_object_id"))
        .and_then(|e| e.get("references"))
        .and_then(Value::as_array)
        .and_then(|refs| refs.first())
        .and_then(Value::as_str)
        .and_then(|r| referenced_resource(r, &module));
    if let Some(target) = from_config
        && let Some(values) = tf.values_of(&target)
    {
        let app = str(values, "client_id").or_else(|| str(values, "application_id"));
        return app.is_some_and(|a| a.eq_ignore_ascii_case(GRAPH_APP_ID));
    }
    let _ = resource_object_id;
    false
}

/// Microsoft Graph application permissions by app role id (Microsoft Graph permissions
/// reference, <https://learn.microsoft.com/graph/permissions-reference>).
pub(super) fn graph_role_name(id: &str) -> Option<&'static str> {
    Some(match id.to_ascii_lowercase().as_str() {
        "df021288-bdef-4463-88db-98f22de89214" => "User.Read.All",
        "741f803b-c850-494e-b5df-cde7c675a1ca" => "User.ReadWrite.All",
        "5b567255-7703-4780-807c-7be8301ae99b" => "Group.Read.All",
        "7ab1d382-f21e-4acd-a863-ba3e13f7da61" => "Directory.Read.All",
        "b633e1c5-b582-4048-a93e-9f11b44c7e96" => "Mail.Send",
        "810c84a8-4a9e-49e6-bf7d-12d183f40d01" => "Mail.Read",
        "332a536c-c7ef-4017-ab91-336970924f0d" => "Sites.Read.All",
        "01d4889c-1287-42c6-ac1f-5d1e02578ef6" => "Files.Read.All",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9" => "Application.ReadWrite.All",
        "06b708a9-e830-4db3-a914-8e69da51d44f" => "AppRoleAssignment.ReadWrite.All",
        "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8" => "RoleManagement.ReadWrite.Directory",
        _ => return None,
    })
}
