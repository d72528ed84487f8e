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

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::json::object_id;

mod predict;
mod terraform;
mod what_if;

use terraform::{string_map, system_identity};
use what_if::arm_resource;

pub use predict::*;

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
        terraform::terraform(&doc)
    } else if doc.get("changes").is_some()
        || doc.pointer("/properties/changes").is_some()
        || doc.get("status").is_some()
    {
        what_if_shape(&doc)?;
        what_if::what_if(&doc)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;
    use sv0_domain::model::Destination;
    use sv0_domain::snapshot::EntityList;

    use super::terraform::*;
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
