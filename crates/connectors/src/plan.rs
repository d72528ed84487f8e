//! Infrastructure-as-code plans: what a deployment *will* change, read before it runs.
//!
//! Two formats, each as its vendor documents it:
//! - Terraform's JSON plan (`terraform show -json plan.out`,
//!   <https://developer.hashicorp.com/terraform/internals/json-format>): `format_version` 1.x,
//!   `resource_changes[]` with `change.actions`, `before`, `after` and `after_unknown`, and the
//!   unevaluated `configuration` whose expression `references` name the resource a value unknown
//!   until apply comes from.
//! - Azure Resource Manager what-if (`az deployment group|sub what-if --no-pretty-print`, or the
//!   REST `WhatIfOperationResult`,
//!   <https://learn.microsoft.com/rest/api/resources/deployments/what-if>): `changes[]` (or
//!   `properties.changes[]`) with `resourceId`, `changeType`, `before` and `after`.
//!
//! `read` turns a plan into `Change`s SV0 models, and lists every resource it does not model as
//! skipped, with why: nothing is dropped silently. `predict` turns the changes into an `Overlay`
//! of planned entities through the same ARM conversion the azure-rbac connector uses, so a
//! planned role assignment becomes the grants a scan would later find.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};
use sv0_domain::model::{Destination, DestinationKind, Grant, GrantSource, IdentityKind};
use sv0_domain::overlay::Overlay;
use sv0_domain::snapshot::EntityList;
use thiserror::Error;

use crate::arm::{self, ArmData};
use crate::collect::{Collected, bare_identity};
use crate::json::{object_id, str};

/// Largest plan read, in bytes.
pub const MAX_PLAN_BYTES: usize = 64 * 1024 * 1024;

/// A plan SV0 cannot read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    /// Not JSON at all.
    #[error("the plan is not JSON: {0}")]
    NotJson(String),
    /// JSON, but neither format.
    #[error(
        "the plan is neither a Terraform JSON plan (`terraform show -json plan.out`: format_version, resource_changes) nor an ARM what-if result (`az deployment ... what-if --no-pretty-print`: changes)"
    )]
    UnknownFormat,
    /// A Terraform plan of a major format version SV0 does not read.
    #[error(
        "the Terraform plan has format_version {0}: this sv0 reads format 1.x (Terraform's JSON output promises to change the major version only for incompatible changes)"
    )]
    UnsupportedVersion(String),
    /// An ARM what-if that reports a failure instead of changes.
    #[error("the what-if result reports status {status}: {detail}")]
    Failed {
        /// `status`.
        status: String,
        /// `error.message`, or what there is.
        detail: String,
    },
    /// Larger than `MAX_PLAN_BYTES`.
    #[error("the plan is {0} bytes; at most {MAX_PLAN_BYTES} are read")]
    TooLarge(usize),
}

/// What a plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Created.
    Create,
    /// Changed in place.
    Update,
    /// Deleted.
    Delete,
    /// Deleted and created again.
    Replace,
}

/// A principal a plan names: known now, or created by the plan (named by its address until
/// apply gives it an object id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// An object id.
    Known(String),
    /// The resource of the plan that creates it.
    Planned(String),
}

impl Principal {
    /// The identity id SV0 uses: the object id, or `planned:<address>`.
    pub fn id(&self) -> String {
        match self {
            Principal::Known(id) => object_id(id),
            Principal::Planned(address) => format!("planned:{address}"),
        }
    }
}

/// A resource SV0 models, as the plan will leave it (or as it was, for a deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// An Azure role assignment.
    RoleAssignment {
        /// Its ARM id when known.
        id: Option<String>,
        /// The scope it is assigned at.
        scope: String,
        /// The role definition's GUID.
        role: String,
        /// Who holds it.
        principal: Principal,
    },
    /// A user-assigned managed identity (or another principal the plan creates).
    Identity {
        /// Its name.
        name: String,
        /// Its principal.
        principal: Principal,
    },
    /// A storage account (its tags classify its containers).
    StorageAccount {
        /// ARM id.
        id: String,
        /// Tags.
        tags: BTreeMap<String, String>,
    },
    /// A blob container.
    StorageContainer {
        /// ARM id.
        id: String,
        /// Metadata (classifies it too).
        metadata: BTreeMap<String, String>,
    },
    /// A password or certificate of a service principal.
    Credential {
        /// Its key id when known.
        id: Option<String>,
        /// The service principal it authenticates.
        principal: Principal,
        /// `password` or `certificate`.
        certificate: bool,
        /// When it stops working (milliseconds since the epoch).
        expires_at: i64,
    },
    /// A Microsoft Graph (or other API) app role assigned to a service principal.
    AppRoleAssignment {
        /// Its id when known.
        id: Option<String>,
        /// Who holds it.
        principal: Principal,
        /// The app role's value, e.g. `User.Read.All`.
        role: String,
        /// Whether the resource is Microsoft Graph.
        graph: bool,
        /// The resource service principal's object id (when not Graph).
        resource: Option<String>,
    },
}

/// One change of the plan SV0 models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Terraform address (`module.agent.azurerm_role_assignment.finance_writer`) or ARM id.
    pub address: String,
    /// What happens.
    pub action: Action,
    /// The resource.
    pub resource: Resource,
}

/// A resource of the plan SV0 does not model, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skipped {
    /// Address or ARM id.
    pub address: String,
    /// Its type.
    pub resource_type: String,
    /// Why.
    pub reason: String,
}

/// A plan as SV0 understands it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// `terraform <format_version>` or `arm what-if`.
    pub format: String,
    /// The changes SV0 models.
    pub changes: Vec<Change>,
    /// The changed resources it does not, with why.
    pub skipped: Vec<Skipped>,
    /// Resources the plan leaves as they are.
    pub unchanged: usize,
}

/// Microsoft Graph's application id.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Reads a plan.
pub fn read(bytes: &[u8]) -> Result<Plan, PlanError> {
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(PlanError::TooLarge(bytes.len()));
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| PlanError::NotJson(e.to_string()))?;
    if doc.get("format_version").is_some() || doc.get("resource_changes").is_some() {
        terraform(&doc)
    } else if doc.get("changes").is_some()
        || doc.pointer("/properties/changes").is_some()
        || doc.get("status").is_some()
    {
        what_if(&doc)
    } else {
        Err(PlanError::UnknownFormat)
    }
}

// ---- Terraform ------------------------------------------------------------------------------

/// Expressions of every resource of the configuration, by module-qualified address.
fn config_index(module: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
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
fn without_keys(address: &str) -> String {
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
fn referenced_resource(reference: &str, module: &str) -> Option<String> {
    let plain = without_keys(reference);
    let parts: Vec<&str> = plain.split('.').collect();
    let take = match parts.first() {
        Some(&"data") => 3,
        Some(&"var" | &"local" | &"module" | &"each" | &"count" | &"path" | &"terraform") => return None,
        _ => 2,
    };
    (parts.len() >= take).then(|| format!("{module}{}", parts[..take].join(".")))
}

struct Terraform<'a> {
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

    /// Whether the plan creates (or replaces) the resource at `address`.
    fn creates(&self, address: &str) -> bool {
        self.changes.get(address).is_some_and(|rc| {
            rc.pointer("/change/actions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("create")))
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
enum Resolved {
    Known(String),
    /// Unknown until apply; the configuration says it comes from `address`.
    From {
        address: String,
        reference: String,
    },
}

fn actions(rc: &Value) -> Vec<String> {
    rc.pointer("/change/actions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn terraform(doc: &Value) -> Result<Plan, PlanError> {
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
fn collect_state<'a>(module: Option<&'a Value>, out: &mut BTreeMap<String, &'a Value>) {
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

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// A principal named by `attribute`: known, or created by the plan.
fn tf_principal(
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
        Some(Resolved::From { address, reference }) if tf.creates(&address) => {
            // `azuread_service_principal.x.id` is `/servicePrincipals/<object id>`; either way
            // the principal is the one the plan creates.
            let _ = reference;
            Ok(Principal::Planned(address))
        }
        Some(Resolved::From { address, .. }) => {
            Err(format!("{attribute} is unknown until apply and comes from {address}, which this plan does not create"))
        }
        None => Err(format!("{attribute} is neither known nor computed from a planned resource")),
    }
}

fn tf_resource(
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
            let role = match (str(values, "role_definition_id"), str(values, "role_definition_name")) {
                (Some(id), _) => id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase(),
                (None, Some(name)) => arm::builtin_role_guid(name)
                    .ok_or_else(|| format!("role {name:?} is not a built-in role SV0 knows; give role_definition_id"))?
                    .to_string(),
                (None, None) => return Err("names no role definition".into()),
            };
            let principal = tf_principal(tf, rc, values, "principal_id", action)?;
            Resource::RoleAssignment { id: str(values, "id").map(str::to_string), scope, role, principal }
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
        "azuread_application" | "azurerm_resource_group" => return Ok(None),
        other => return Err(format!("{other} is not a resource SV0 models yet")),
    }))
}

/// When a planned credential expires: `end_date` (RFC 3339), or `end_date_relative` (a Go
/// duration such as `8760h`) after the plan's `timestamp`.
fn credential_end(tf: &Terraform<'_>, values: &Value) -> Option<i64> {
    if let Some(end) = str(values, "end_date") {
        return sv0_domain::Timestamp::parse(end).ok().map(|t| t.0);
    }
    let relative = str(values, "end_date_relative")?;
    let base = sv0_domain::Timestamp::parse(tf.timestamp.as_deref()?).ok()?;
    Some(base.0.saturating_add(go_duration_ms(relative)?))
}

/// A Go duration (`8760h`, `90h30m`, `1h0m0s`) in milliseconds.
fn go_duration_ms(text: &str) -> Option<i64> {
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
fn planned_id(tf: &Terraform<'_>, address: &str) -> Option<String> {
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
        _ => None,
    }
}

/// The app role an assignment gives: `app_role_ids["User.Read.All"]` in the configuration,
/// or a Microsoft Graph role known by id.
fn app_role_name(tf: &Terraform<'_>, rc: &Value, values: &Value) -> Option<String> {
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
fn resource_is_graph(tf: &Terraform<'_>, rc: &Value, resource_object_id: Option<&str>) -> bool {
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
fn graph_role_name(id: &str) -> Option<&'static str> {
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

// ---- ARM what-if ----------------------------------------------------------------------------

fn what_if(doc: &Value) -> Result<Plan, PlanError> {
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
        match arm_resource(&id, &kind, &values, action, changes) {
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
fn arm_type(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    let Some(at) = parts.iter().rposition(|p| p.eq_ignore_ascii_case("providers")) else { return "?".into() };
    let rest = &parts[at + 1..];
    let mut out = vec![rest.first().copied().unwrap_or("?")];
    out.extend(rest.iter().skip(1).step_by(2));
    out.join("/")
}

fn arm_resource(
    id: &str,
    kind: &str,
    values: &Value,
    action: Action,
    all: &[Value],
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
                // An unresolved template expression (what-if cannot evaluate reference()):
                // the principal of an identity this deployment creates, when there is one.
                Some(expression) => {
                    let created = all.iter().find(|c| {
                        str(c, "changeType") == Some("Create")
                            && str(c, "resourceId").is_some_and(|r| {
                                r.to_ascii_lowercase().contains("/microsoft.managedidentity/userassignedidentities/")
                                    && expression.contains(r.rsplit('/').next().unwrap_or(r))
                            })
                    });
                    match created.and_then(|c| str(c, "resourceId")) {
                        Some(identity) => Principal::Planned(identity.to_string()),
                        None => return Err(format!("principalId {expression} is unknown until deployment")),
                    }
                }
                None => return Err("names no principalId".into()),
            };
            Resource::RoleAssignment { id: Some(id.to_string()), scope, role, principal }
        }
        "microsoft.managedidentity/userassignedidentities" => {
            let name = str(values, "name").unwrap_or_else(|| id.rsplit('/').next().unwrap_or(id)).to_string();
            let principal = match str(props, "principalId") {
                Some(p) => Principal::Known(p.to_string()),
                None if action == Action::Delete => return Err("the deleted identity has no principalId".into()),
                None => Principal::Planned(id.to_string()),
            };
            Resource::Identity { name, principal }
        }
        "microsoft.storage/storageaccounts" => {
            Resource::StorageAccount { id: id.to_string(), tags: string_map(values.get("tags")) }
        }
        "microsoft.storage/storageaccounts/blobservices/containers" => {
            Resource::StorageContainer { id: id.to_string(), metadata: string_map(props.get("metadata")) }
        }
        "microsoft.resources/resourcegroups" | "microsoft.storage/storageaccounts/blobservices" => return Ok(None),
        other => return Err(format!("{other} is not a resource type SV0 models yet")),
    }))
}

// ---- Prediction -----------------------------------------------------------------------------

/// What a prediction needs of the tenant as it stands.
pub trait PlanContext {
    /// The destinations at or below an ARM id, compared case-insensitively.
    fn destinations_below(&self, arm_id: &str) -> Vec<Destination>;
    /// The destination with this id (an ARM id compared case-insensitively).
    fn destination(&self, id: &str) -> Option<Destination>;
    /// Whether the tenant has this identity.
    fn has_identity(&self, id: &str) -> bool;
}

/// A plan as planned entities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prediction {
    /// The planned entities and removals.
    pub overlay: Overlay,
    /// Entity id (grant, identity, destination; ARM ids lower-case) → the plan address that
    /// creates, changes or deletes it.
    pub causes: BTreeMap<String, String>,
}

/// Turns a plan's changes into an overlay on the tenant: role assignments through the ARM
/// conversion (data roles opened on each container below their scope, existing or planned),
/// app roles as the Entra connector grants them, planned identities as inferred ones.
pub fn predict(plan: &Plan, ctx: &dyn PlanContext) -> Prediction {
    let mut overlay = Overlay::default();
    let mut causes = BTreeMap::new();
    let mut data = ArmData { containers: Some((Vec::new(), true)), ..ArmData::default() };
    let mut known_containers = BTreeSet::new();
    let mut collected = Collected::default();
    for change in &plan.changes {
        match (&change.resource, change.action) {
            (Resource::RoleAssignment { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Grants, &id.to_ascii_lowercase());
                    causes.insert(id.to_ascii_lowercase(), change.address.clone());
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::RoleAssignment { id, scope, role, principal }, _) => {
                let assignment = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(assignment.to_ascii_lowercase(), change.address.clone());
                if change.action == Action::Replace
                    && let Some(id) = id
                {
                    overlay.remove(EntityList::Grants, &id.to_ascii_lowercase());
                }
                data.role_assignments.push(json!({
                    "id": assignment,
                    "properties": {
                        "principalId": principal.id(),
                        "scope": scope,
                        "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                        "principalType": "ServicePrincipal",
                    }
                }));
                for existing in ctx.destinations_below(&scope.to_ascii_lowercase()) {
                    if existing.kind == DestinationKind::StorageContainer
                        && known_containers.insert(existing.id.clone())
                        && let Some((containers, _)) = data.containers.as_mut()
                    {
                        containers.push(json!({"id": existing.id, "properties": {"metadata": existing.tags}}));
                    }
                }
                if let Principal::Planned(address) = principal {
                    causes.insert(principal.id(), address.clone());
                }
            }
            (Resource::Identity { principal, .. }, Action::Delete) => {
                overlay.remove(EntityList::Identities, &principal.id());
                overlay.identities.insert(principal.id());
            }
            (Resource::Identity { name, principal }, _) => {
                if !ctx.has_identity(&principal.id()) {
                    let kind = IdentityKind::ManagedIdentity;
                    collected.identity(bare_identity(principal.id(), name.clone(), kind));
                    causes.insert(principal.id(), change.address.clone());
                }
            }
            (Resource::StorageAccount { id, tags }, action) => {
                overlay.destinations.insert(id.to_ascii_lowercase());
                if action != Action::Delete {
                    data.resources.push(json!({"id": id, "type": "Microsoft.Storage/storageAccounts", "tags": tags}));
                    // Containers below an account inherit its tags: the planned ones too.
                    for existing in ctx.destinations_below(&id.to_ascii_lowercase()) {
                        overlay.destinations.insert(existing.id.clone());
                        let mut d = existing.clone();
                        for (k, v) in tags {
                            d.tags.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                        overlay.upserts.destinations.push(d);
                    }
                }
            }
            (Resource::StorageContainer { id, .. }, Action::Delete) => {
                overlay.remove(EntityList::Destinations, &id.to_ascii_lowercase());
                overlay.destinations.insert(id.to_ascii_lowercase());
            }
            (Resource::StorageContainer { id, metadata }, _) => {
                let lower = id.to_ascii_lowercase();
                overlay.destinations.insert(lower.clone());
                causes.insert(lower.clone(), change.address.clone());
                if known_containers.insert(lower.clone())
                    && let Some((containers, _)) = data.containers.as_mut()
                {
                    containers.push(json!({"id": lower, "properties": {"metadata": metadata}}));
                }
            }
            (Resource::Credential { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Credentials, id);
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::Credential { id, principal, certificate, expires_at }, _) => {
                let credential_id = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(credential_id.clone(), change.address.clone());
                overlay.identities.insert(principal.id());
                overlay.upserts.credentials.push(sv0_domain::model::Credential {
                    id: credential_id,
                    identity: principal.id(),
                    kind: if *certificate {
                        sv0_domain::model::CredentialKind::Certificate
                    } else {
                        sv0_domain::model::CredentialKind::Password
                    },
                    created_at: None,
                    expires_at: Some(sv0_domain::Timestamp(*expires_at)),
                });
            }
            (Resource::AppRoleAssignment { id, principal, .. }, Action::Delete) => {
                if let Some(id) = id {
                    overlay.remove(EntityList::Grants, id);
                    causes.insert(id.clone(), change.address.clone());
                }
                overlay.identities.insert(principal.id());
            }
            (Resource::AppRoleAssignment { id, principal, role, graph, resource }, _) => {
                let grant_id = id.clone().unwrap_or_else(|| format!("planned:{}", change.address));
                causes.insert(grant_id.clone(), change.address.clone());
                // The holder, as the conversion needs it (the tenant's own record is kept).
                collected.stub_principal(&principal.id(), &principal.id(), IdentityKind::ServicePrincipal);
                let destination = if *graph {
                    crate::entra::graph_destination(role, &mut collected)
                } else {
                    let resource = resource.clone().unwrap_or_else(|| "unknown".into());
                    let id = format!("entra-app:{resource}");
                    collected.destination(crate::collect::bare_destination(
                        id.clone(),
                        id.clone(),
                        DestinationKind::Other,
                    ));
                    id
                };
                collected.grant(Grant {
                    id: grant_id,
                    identity: principal.id(),
                    destination,
                    permissions: crate::entra::permission_verbs(role),
                    source: GrantSource::AppRoleAssignment,
                    role: role.clone(),
                    scope: if *graph { "Microsoft Graph".into() } else { resource.clone().unwrap_or_default() },
                    consent: None,
                });
            }
        }
    }
    arm::convert(&data, &mut collected);
    let (entities, _, _) = collected.finish();
    for mut grant in entities.grants {
        // The tenant's own record of a destination keeps its id, whatever case the plan used.
        if let Some(existing) = ctx.destination(&grant.destination) {
            grant.destination = existing.id;
        }
        let base = grant.id.split('#').next().unwrap_or(&grant.id).to_string();
        if let Some(address) = causes.get(&base).cloned() {
            causes.insert(grant.id.clone(), address);
        }
        overlay.upserts.grants.push(grant);
    }
    for identity in entities.identities {
        if !ctx.has_identity(&identity.id) {
            overlay.upserts.identities.push(identity);
        }
    }
    for destination in entities.destinations {
        // What the tenant already has keeps its record (and classification); a planned
        // container or account is new.
        if ctx.destination(&destination.id).is_none()
            && !overlay.upserts.destinations.iter().any(|d| d.id == destination.id)
        {
            overlay.upserts.destinations.push(destination);
        }
    }
    overlay.upserts.workloads.extend(entities.workloads);
    overlay.upserts.bindings.extend(entities.bindings);
    overlay.touch_upserts();
    Prediction { overlay, causes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_terraform_writes_them() {
        assert_eq!(go_duration_ms("8760h"), Some(8760 * 3_600_000));
        assert_eq!(go_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(go_duration_ms("1h0m0s"), Some(3_600_000));
        assert_eq!(go_duration_ms("90d"), None, "days are not a Go duration unit");
        assert_eq!(go_duration_ms("12"), None);
    }

    #[test]
    fn addresses_lose_instance_keys_and_references_name_their_resource() {
        assert_eq!(without_keys(r#"module.a["x"].azurerm_role_assignment.b[0]"#), "module.a.azurerm_role_assignment.b");
        assert_eq!(
            referenced_resource("azurerm_user_assigned_identity.agent.principal_id", "module.m."),
            Some("module.m.azurerm_user_assigned_identity.agent".into())
        );
        assert_eq!(
            referenced_resource("data.azuread_service_principal.msgraph.object_id", ""),
            Some("data.azuread_service_principal.msgraph".into())
        );
        assert_eq!(referenced_resource("var.principal", ""), None);
    }
}
