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
    /// A field SV0 reads is missing or of another JSON type than the format documents.
    #[error("the plan is not well formed: at {path}: expected {expected}")]
    Malformed {
        /// The field's JSON path (`resource_changes[2].change.actions`).
        path: String,
        /// What the format documents there.
        expected: &'static str,
    },
    /// Larger than `MAX_PLAN_BYTES`.
    #[error("the plan is {0} bytes; at most {MAX_PLAN_BYTES} are read")]
    TooLarge(usize),
}

/// What a plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// A Foundry resource (a Cognitive Services account), project or connection, in ARM's shape.
    Foundry {
        /// Which of the three.
        level: FoundryLevel,
        /// ARM id; `planned:<address>` for an account whose id only apply decides.
        id: String,
        /// Its name.
        name: String,
        /// Its system-assigned managed identity, when it has one.
        identity: Option<Principal>,
        /// ARM `kind` (of an account: `AIServices` is a Foundry resource).
        arm_kind: Option<String>,
        /// ARM `properties` (of a connection: `authType`, `category`, `target`,
        /// `credentials.clientId`).
        properties: Value,
    },
}

/// Which Foundry resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FoundryLevel {
    /// `Microsoft.CognitiveServices/accounts`.
    Account,
    /// `Microsoft.CognitiveServices/accounts/projects`.
    Project,
    /// `.../accounts/connections` or `.../accounts/projects/connections`.
    Connection,
}

/// One change of the plan SV0 models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Change {
    /// Terraform address (`module.agent.azurerm_role_assignment.finance_writer`) or ARM id.
    pub address: String,
    /// What happens.
    pub action: Action,
    /// The resource.
    pub resource: Resource,
}

/// A resource of the plan SV0 does not model, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    /// Address or ARM id.
    pub address: String,
    /// Its type.
    pub resource_type: String,
    /// Why.
    pub reason: String,
}

/// A plan as SV0 understands it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    let doc: Value = sv0_codec::json::from_slice(bytes).map_err(|e| PlanError::NotJson(e.to_string()))?;
    if doc.get("format_version").is_some() || doc.get("resource_changes").is_some() {
        terraform_shape(&doc)?;
        terraform(&doc)
    } else if doc.get("changes").is_some()
        || doc.pointer("/properties/changes").is_some()
        || doc.get("status").is_some()
    {
        what_if_shape(&doc)?;
        what_if(&doc)
    } else {
        Err(PlanError::UnknownFormat)
    }
}

// ---- Shapes -----------------------------------------------------------------------------------

/// A JSON type a field must have.
#[derive(Clone, Copy)]
enum Shape {
    String,
    Array,
    Object,
    Strings,
}

impl Shape {
    fn fits(self, value: &Value) -> bool {
        match self {
            Shape::String => value.is_string(),
            Shape::Array => value.is_array(),
            Shape::Object => value.is_object(),
            Shape::Strings => value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        }
    }

    fn words(self) -> &'static str {
        match self {
            Shape::String => "a string",
            Shape::Array => "an array",
            Shape::Object => "an object",
            Shape::Strings => "an array of strings",
        }
    }
}

/// Checks that `field` of `value` (at JSON path `at`) has `shape`; `required`: that it is there.
fn field(value: &Value, at: &str, field: &str, shape: Shape, required: bool) -> Result<(), PlanError> {
    let path = if at.is_empty() { field.to_string() } else { format!("{at}.{field}") };
    match value.get(field) {
        Some(v) if shape.fits(v) => Ok(()),
        None if !required => Ok(()),
        _ => Err(PlanError::Malformed { path, expected: shape.words() }),
    }
}

/// The fields of a Terraform JSON plan SV0 reads have the types Terraform documents
/// (developer.hashicorp.com/terraform/internals/json-format): a plan that breaks one is
/// refused with the field's path instead of its resources being skipped in silence.
fn terraform_shape(doc: &Value) -> Result<(), PlanError> {
    field(doc, "", "format_version", Shape::String, false)?;
    field(doc, "", "resource_changes", Shape::Array, false)?;
    field(doc, "", "configuration", Shape::Object, false)?;
    field(doc, "", "prior_state", Shape::Object, false)?;
    for (n, rc) in doc.get("resource_changes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("resource_changes[{n}]");
        if !rc.is_object() {
            return Err(PlanError::Malformed { path: at, expected: "an object" });
        }
        field(rc, &at, "address", Shape::String, true)?;
        field(rc, &at, "type", Shape::String, true)?;
        field(rc, &at, "mode", Shape::String, false)?;
        field(rc, &at, "provider_name", Shape::String, false)?;
        field(rc, &at, "change", Shape::Object, true)?;
        field(&rc["change"], &format!("{at}.change"), "actions", Shape::Strings, true)?;
    }
    Ok(())
}

/// The fields of an ARM what-if result SV0 reads have the types the REST reference documents
/// (WhatIfOperationResult: `status`, `changes[].resourceId`, `changes[].changeType`).
fn what_if_shape(doc: &Value) -> Result<(), PlanError> {
    field(doc, "", "status", Shape::String, false)?;
    let (at, changes) = match doc.get("properties") {
        Some(properties) if doc.get("changes").is_none() => {
            field(doc, "", "properties", Shape::Object, true)?;
            ("properties.changes", properties.get("changes"))
        }
        _ => ("changes", doc.get("changes")),
    };
    let Some(changes) = changes else { return Ok(()) };
    let changes = changes.as_array().ok_or(PlanError::Malformed { path: at.to_string(), expected: "an array" })?;
    for (n, change) in changes.iter().enumerate() {
        let at = format!("{at}[{n}]");
        if !change.is_object() {
            return Err(PlanError::Malformed { path: at, expected: "an object" });
        }
        field(change, &at, "resourceId", Shape::String, true)?;
        field(change, &at, "changeType", Shape::String, true)?;
        field(change, &at, "before", Shape::Object, false).or_else(|e| null_or(change, "before", e))?;
        field(change, &at, "after", Shape::Object, false).or_else(|e| null_or(change, "after", e))?;
    }
    Ok(())
}

/// `before`/`after` may be null (a created or deleted resource).
fn null_or(value: &Value, key: &str, error: PlanError) -> Result<(), PlanError> {
    if value.get(key).is_some_and(Value::is_null) { Ok(()) } else { Err(error) }
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
fn system_identity(identity: Option<&Value>, address: &str, action: Action) -> Option<Principal> {
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
fn azapi(tf: &Terraform<'_>, rc: &Value, values: &Value, action: Action) -> Result<Option<Resource>, String> {
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
fn child_id(parent: &str, kind: &str, name: &str) -> String {
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
fn arm_type(id: &str) -> String {
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
fn created_identity(expression: &str, all: &[Value]) -> Option<Principal> {
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
fn arm_resource(
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

// ---- Prediction -----------------------------------------------------------------------------

/// What a prediction needs of the tenant as it stands.
pub trait PlanContext {
    /// The destinations at or below an ARM id, compared case-insensitively.
    fn destinations_below(&self, arm_id: &str) -> Vec<Destination>;
    /// The destination with this id (an ARM id compared case-insensitively).
    fn destination(&self, id: &str) -> Option<Destination>;
    /// Whether the tenant has this identity.
    fn has_identity(&self, id: &str) -> bool;
    /// The ids of the tenant's workloads that start with `prefix` (the agents of a Foundry
    /// account or project: `foundry:<account>/<project>/`).
    fn workloads_below(&self, prefix: &str) -> Vec<String>;
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
            // Foundry resources are converted together below, as the Foundry connector would.
            (Resource::Foundry { .. }, _) => {}
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
    let (mut entities, _, _) = collected.finish();
    let foundry = foundry_entities(&plan.changes, ctx, &mut overlay, &mut causes);
    entities.grants.extend(foundry.grants);
    entities.identities.extend(foundry.identities);
    entities.destinations.extend(foundry.destinations);
    entities.credentials.extend(foundry.credentials);
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
    overlay.upserts.credentials.extend(entities.credentials);
    overlay.upserts.workloads.extend(entities.workloads);
    overlay.upserts.bindings.extend(entities.bindings);
    overlay.touch_upserts();
    Prediction { overlay, causes }
}

/// A Foundry id's account id and, at or below a project, the project's name.
fn foundry_parent(id: &str) -> (String, Option<String>) {
    let lower = id.to_ascii_lowercase();
    if let Some(at) = lower.find("/projects/") {
        let rest = &id[at + "/projects/".len()..];
        return (id[..at].to_string(), Some(rest.split('/').next().unwrap_or(rest).to_string()));
    }
    match lower.find("/connections/") {
        Some(at) => (id[..at].to_string(), None),
        None => (id.to_string(), None),
    }
}

/// The planned Foundry accounts, projects and connections, converted as the Foundry connector
/// converts what ARM lists: system identities, and each connection's identity with its grant on
/// the target. The agents are not in a plan (they are data-plane objects): those the tenant has
/// below a changed project or account are recomputed, so an agent whose tool names a connection
/// the plan creates reaches its target. A project identity SV0 cannot name (a project this plan
/// does not declare, known only by the agents bound to it) is not guessed: the grants of its
/// Entra-authenticated connections are not predicted. Deleting an account or project deletes
/// its agents; deleting a connection, its grant.
fn foundry_entities(
    changes: &[Change],
    ctx: &dyn PlanContext,
    overlay: &mut Overlay,
    causes: &mut BTreeMap<String, String>,
) -> sv0_domain::snapshot::Entities {
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    for change in changes {
        if let Resource::Foundry { level: FoundryLevel::Account, id, name, .. } = &change.resource {
            accounts.insert(id.to_ascii_lowercase(), name.clone());
        }
    }
    let account_name = |account_id: &str| {
        accounts
            .get(&account_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| account_id.rsplit('/').next().unwrap_or(account_id).to_string())
    };
    let mut data = crate::foundry::FoundryData::default();
    let mut projects: BTreeMap<String, Value> = BTreeMap::new();
    let mut stand_ins: BTreeMap<String, Value> = BTreeMap::new();
    for change in changes {
        let Resource::Foundry { level, id, name, identity, arm_kind, properties } = &change.resource else { continue };
        let (account_id, project) = foundry_parent(id);
        let account = account_name(&account_id);
        let prefix = match &project {
            Some(p) => format!("foundry:{account}/{p}/"),
            None => format!("foundry:{account}/"),
        };
        let below = ctx.workloads_below(&prefix);
        overlay.workloads.extend(below.iter().cloned());
        causes.insert(id.to_ascii_lowercase(), change.address.clone());
        if change.action == Action::Delete {
            match level {
                FoundryLevel::Connection => overlay.remove(EntityList::Grants, &id.to_ascii_lowercase()),
                _ => below.iter().for_each(|w| overlay.remove(EntityList::Workloads, w)),
            }
            continue;
        }
        if let Some(principal) = identity {
            causes.insert(principal.id(), change.address.clone());
        }
        let identity = identity.as_ref().map(|p| json!({"principalId": p.id()}));
        match level {
            FoundryLevel::Account => data.accounts.push(
                json!({"id": id, "name": name, "kind": arm_kind, "identity": identity, "properties": properties}),
            ),
            FoundryLevel::Project => {
                projects.insert(
                    id.to_ascii_lowercase(),
                    json!({"id": id, "name": name, "identity": identity, "properties": properties}),
                );
            }
            FoundryLevel::Connection => {
                data.connections.push(json!({"id": id, "name": name, "properties": properties}));
                // The projects whose tools can use it: its own, or each of its account's that
                // has agents (a project the plan declares is converted anyway).
                let names: BTreeSet<String> = match project {
                    Some(p) => BTreeSet::from([p]),
                    None => below
                        .iter()
                        .filter_map(|w| w.strip_prefix(&prefix)?.split('/').next().map(str::to_string))
                        .collect(),
                };
                for p in names {
                    let project_id = format!("{account_id}/projects/{p}");
                    stand_ins.insert(project_id.to_ascii_lowercase(), json!({"id": project_id, "name": p}));
                }
            }
        }
    }
    for (id, stand_in) in stand_ins {
        projects.entry(id).or_insert(stand_in);
    }
    data.projects = projects.into_values().collect();
    let mut collected = Collected::default();
    crate::foundry::convert(&data, &mut collected);
    let (mut entities, _, _) = collected.finish();
    let unnamed = |identity: &str| identity.starts_with("foundry-project:") && !ctx.has_identity(identity);
    entities.grants.retain(|g| !unnamed(&g.identity));
    entities.identities.retain(|i| !unnamed(&i.id));
    entities
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

    const ACCOUNT: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/fab-ai";

    /// A tenant with two agents in project `alpha` of `fab-ai`, one in `beta`.
    struct Tenant;
    impl PlanContext for Tenant {
        fn destinations_below(&self, _: &str) -> Vec<Destination> {
            Vec::new()
        }
        fn destination(&self, _: &str) -> Option<Destination> {
            None
        }
        fn has_identity(&self, _: &str) -> bool {
            false
        }
        fn workloads_below(&self, prefix: &str) -> Vec<String> {
            ["foundry:fab-ai/alpha/asst_1", "foundry:fab-ai/alpha/asst_2", "foundry:fab-ai/beta/asst_3"]
                .into_iter()
                .filter(|w| w.starts_with(prefix))
                .map(str::to_string)
                .collect()
        }
    }

    fn what_if(changes: Value) -> Plan {
        read(json!({"status": "Succeeded", "changes": changes}).to_string().as_bytes()).unwrap()
    }

    /// ARM what-if of a new Foundry project: its system identity is planned, and a role
    /// assignment whose principal is the unresolved `reference(...)` of it is that identity's.
    #[test]
    fn a_what_if_names_the_planned_project_identity_behind_a_role_assignment() {
        let project = format!("{ACCOUNT}/projects/gamma");
        let plan = what_if(json!([
            {"resourceId": project, "changeType": "Create", "after": {
                "type": "Microsoft.CognitiveServices/accounts/projects", "name": "fab-ai/gamma",
                "identity": {"type": "SystemAssigned"}, "properties": {}}},
            {"resourceId": format!("{ACCOUNT}/deployments/gpt-4o"), "changeType": "Create", "after": {
                "type": "Microsoft.CognitiveServices/accounts/deployments"}},
            {"resourceId": format!("{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/1"), "changeType": "Create", "after": {
                "type": "Microsoft.Authorization/roleAssignments", "properties": {
                    "principalId": "[reference(resourceId('Microsoft.CognitiveServices/accounts/projects', 'fab-ai', 'gamma'), '2025-06-01', 'full').identity.principalId]",
                    "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"}}},
        ]));
        let Resource::Foundry { level, name, identity, .. } = &plan.changes[0].resource else { panic!("{plan:?}") };
        assert_eq!((*level, name.as_str()), (FoundryLevel::Project, "gamma"), "the name is the id's last segment");
        assert_eq!(*identity, Some(Principal::Planned(project.clone())));
        let Resource::RoleAssignment { principal, .. } = &plan.changes[1].resource else { panic!("{plan:?}") };
        assert_eq!(*principal, Principal::Planned(project.clone()));
        assert_eq!(plan.skipped.len(), 1, "the model deployment grants nothing: {plan:?}");
        let prediction = predict(&plan, &Tenant);
        assert_eq!(prediction.causes.get(&format!("planned:{project}")), Some(&project));
    }

    /// An account-level connection with a key is the authority over its target for the tools
    /// of every project of the account; its deletion takes that grant away; deleting a project
    /// deletes its agents.
    #[test]
    fn foundry_connections_and_projects_change_what_the_agents_below_them_reach() {
        let connection = format!("{ACCOUNT}/connections/search");
        let plan = what_if(json!([
            {"resourceId": connection, "changeType": "Create", "after": {
                "type": "Microsoft.CognitiveServices/accounts/connections", "name": "search",
                "properties": {"authType": "ApiKey", "category": "CognitiveSearch", "target": "https://fab-search.search.windows.net"}}},
        ]));
        let prediction = predict(&plan, &Tenant);
        let holders: BTreeSet<&str> = prediction.overlay.upserts.grants.iter().map(|g| g.identity.as_str()).collect();
        assert_eq!(
            holders,
            BTreeSet::from(["foundry-connection:fab-ai/alpha/search", "foundry-connection:fab-ai/beta/search"])
        );
        assert_eq!(prediction.overlay.workloads.len(), 3, "every agent of the account is recomputed");

        // An Entra-authenticated connection of a project the plan does not declare runs as that
        // project's identity, which SV0 cannot name from a plan: nothing is guessed.
        let plan = what_if(json!([
            {"resourceId": format!("{ACCOUNT}/projects/alpha/connections/aoai"), "changeType": "Create", "after": {
                "type": "Microsoft.CognitiveServices/accounts/projects/connections",
                "properties": {"authType": "AAD", "category": "AzureOpenAI", "target": "https://fab-ai.openai.azure.com"}}},
        ]));
        let prediction = predict(&plan, &Tenant);
        assert!(prediction.overlay.upserts.grants.is_empty(), "{:?}", prediction.overlay.upserts.grants);
        assert!(prediction.overlay.upserts.identities.is_empty());

        let plan = what_if(json!([
            {"resourceId": format!("{ACCOUNT}/projects/alpha/connections/key"), "changeType": "Delete", "before": {
                "type": "Microsoft.CognitiveServices/accounts/projects/connections", "properties": {"authType": "ApiKey"}}},
            {"resourceId": format!("{ACCOUNT}/projects/beta"), "changeType": "Delete", "before": {
                "type": "Microsoft.CognitiveServices/accounts/projects"}},
        ]));
        let prediction = predict(&plan, &Tenant);
        let lower = format!("{ACCOUNT}/projects/alpha/connections/key").to_ascii_lowercase();
        assert!(prediction.overlay.is_removed(EntityList::Grants, &lower));
        assert!(prediction.overlay.is_removed(EntityList::Workloads, "foundry:fab-ai/beta/asst_3"));
        assert!(!prediction.overlay.is_removed(EntityList::Workloads, "foundry:fab-ai/alpha/asst_1"));
    }
}
