//! What a record of each API is: the fields the conversion relies on, with the type the vendor
//! documents for them. A page holding an item that is not such a record (a scalar, a null, an
//! object without its key fields or with a field of the wrong type) fails its API, so that the
//! list it fills is read as partial and nothing of it is removed, instead of the item being
//! skipped silently and whatever only it held being deleted.
//!
//! docs/connectors.md cites the reference page of each API.

use serde_json::Value;

/// A field of a record, by its path (`properties.principalId` looks inside `properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A non-empty string (or a ServiceNow reference `{"value": "..."}`): the record's id or a
    /// reference to another record.
    Key(&'static str),
    /// Present: a string, possibly empty, or a ServiceNow value object (the Table API returns
    /// every requested field).
    Text(&'static str),
    /// Present: an array.
    List(&'static str),
    /// Present: an object or null.
    Object(&'static str),
    /// Absent, null or a string (or a ServiceNow value object).
    MaybeText(&'static str),
    /// Absent, null or an array.
    MaybeList(&'static str),
    /// Absent, null or an object.
    MaybeObject(&'static str),
    /// Absent, null or a boolean (ServiceNow writes `"true"`/`"false"`).
    MaybeBool(&'static str),
}

impl Field {
    /// The field's path.
    pub fn path(&self) -> &'static str {
        match self {
            Field::Key(p)
            | Field::Text(p)
            | Field::List(p)
            | Field::Object(p)
            | Field::MaybeText(p)
            | Field::MaybeList(p)
            | Field::MaybeObject(p)
            | Field::MaybeBool(p) => p,
        }
    }

    /// Whether every record carries the field.
    pub fn required(&self) -> bool {
        matches!(self, Field::Key(_) | Field::Text(_) | Field::List(_) | Field::Object(_))
    }

    /// Checks the field of one record; the error says what was found.
    fn check(&self, record: &Value) -> Result<(), String> {
        let mut at = Some(record);
        for part in self.path().split('.') {
            at = at.and_then(|v| v.get(part));
        }
        let text = |v: &Value, empty_ok: bool| match v {
            Value::String(s) => empty_ok || !s.is_empty(),
            Value::Object(map) => map.get("value").and_then(Value::as_str).is_some_and(|s| empty_ok || !s.is_empty()),
            _ => false,
        };
        let ok = match (self, at) {
            (Field::Key(_), Some(v)) => text(v, false),
            (Field::Text(_), Some(v)) => text(v, true),
            (Field::List(_), Some(v)) => v.is_array(),
            (Field::Object(_), Some(v)) => v.is_object() || v.is_null(),
            (Field::MaybeText(_), None | Some(Value::Null)) => true,
            (Field::MaybeText(_), Some(v)) => text(v, true),
            (Field::MaybeList(_), None | Some(Value::Null)) => true,
            (Field::MaybeList(_), Some(v)) => v.is_array(),
            (Field::MaybeObject(_), None | Some(Value::Null)) => true,
            (Field::MaybeObject(_), Some(v)) => v.is_object(),
            (Field::MaybeBool(_), None | Some(Value::Null) | Some(Value::Bool(_))) => true,
            (Field::MaybeBool(_), Some(v)) => crate::json::bool(&serde_json::json!({ "b": v }), "b").is_some(),
            (_, None) => false,
        };
        if ok {
            return Ok(());
        }
        let wanted = match self {
            Field::Key(_) => "a non-empty string",
            Field::Text(_) | Field::MaybeText(_) => "a string",
            Field::List(_) | Field::MaybeList(_) => "an array",
            Field::Object(_) | Field::MaybeObject(_) => "an object",
            Field::MaybeBool(_) => "a boolean",
        };
        Err(format!("{} should be {wanted}, found {}", self.path(), at.map(kind_of).unwrap_or("nothing")))
    }
}

/// Checks that every item is a record of the schema.
pub fn check(items: &[Value], fields: &[Field]) -> Result<(), String> {
    for (index, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(format!("item {} is {}, not a record", index + 1, kind_of(item)));
        }
        for field in fields {
            field.check(item).map_err(|e| format!("item {}: {e}", index + 1))?;
        }
    }
    Ok(())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

use Field::*;

/// The record of each API (by its name in coverage and in export directories).
pub fn of(api: &str) -> &'static [Field] {
    match api {
        "graph.servicePrincipals" => &[
            Key("id"),
            Key("appId"),
            List("owners"),
            List("appRoles"),
            List("passwordCredentials"),
            List("keyCredentials"),
            MaybeText("servicePrincipalType"),
            MaybeText("displayName"),
            MaybeText("appOwnerOrganizationId"),
            MaybeBool("accountEnabled"),
            MaybeList("alternativeNames"),
        ],
        "graph.applications" => &[
            Key("id"),
            Key("appId"),
            List("owners"),
            List("passwordCredentials"),
            List("keyCredentials"),
            MaybeList("federatedIdentityCredentials"),
        ],
        "graph.appRoleAssignments" => {
            &[Key("id"), Key("principalId"), Key("resourceId"), Key("appRoleId"), MaybeText("principalType")]
        }
        "graph.oauth2PermissionGrants" => {
            &[Key("id"), Key("clientId"), Key("resourceId"), Key("consentType"), Text("scope")]
        }
        "graph.directoryRoleDefinitions" => &[Key("id"), Key("displayName"), MaybeList("rolePermissions")],
        "graph.directoryRoleAssignments" => &[Key("id"), Key("principalId"), Key("roleDefinitionId")],
        "graph.signIns" => &[
            Key("id"),
            Key("createdDateTime"),
            MaybeText("servicePrincipalId"),
            MaybeText("appId"),
            MaybeText("resourceId"),
            MaybeText("resourceServicePrincipalId"),
            MaybeText("azureResourceId"),
            MaybeText("servicePrincipalCredentialKeyId"),
            MaybeObject("status"),
        ],
        "graph.ownerAccounts" => &[Key("id"), MaybeBool("accountEnabled"), MaybeText("employeeLeaveDateTime")],
        "graph.ownerSignInActivity" => &[Key("id"), MaybeObject("signInActivity")],
        "graph.groupMembers" => &[Key("id"), Key("groupId")],
        "arm.subscriptions" => &[Key("subscriptionId"), MaybeText("displayName")],
        "arm.roleAssignments" => &[
            Key("id"),
            Key("properties.principalId"),
            Key("properties.scope"),
            Key("properties.roleDefinitionId"),
            MaybeText("properties.principalType"),
        ],
        "arm.roleDefinitions" => &[Key("id"), Key("properties.roleName"), List("properties.permissions")],
        "arm.resources" => &[
            Key("id"),
            Key("type"),
            MaybeText("name"),
            MaybeText("kind"),
            MaybeObject("tags"),
            MaybeObject("identity"),
        ],
        "arm.resourceGroups" => &[Key("id"), MaybeObject("tags")],
        "arm.blobContainers" => {
            &[Key("id"), Key("name"), MaybeObject("properties"), MaybeObject("properties.metadata")]
        }
        "arm.diagnosticSettings" => &[
            Key("id"),
            Key("name"),
            Object("properties"),
            MaybeList("properties.logs"),
            MaybeText("properties.workspaceId"),
        ],
        "arm.logAnalyticsWorkspaces" => &[Key("id"), Key("name"), Key("properties.customerId")],
        "arm.managementGroupDescendants" => &[Key("id"), Key("type"), Key("managementGroup")],
        "arm.storageBlobLogs" => &[Key("AccountName"), Key("TimeGenerated"), MaybeText("RequesterObjectId")],
        "arm.cognitiveServicesAccounts" => {
            &[Key("id"), Key("name"), MaybeText("kind"), MaybeObject("identity"), MaybeObject("properties")]
        }
        "arm.foundryProjects" => &[Key("id"), Key("name"), MaybeObject("identity"), MaybeObject("properties")],
        "foundry.connections" => &[
            Key("id"),
            Key("name"),
            Key("properties.authType"),
            MaybeText("properties.category"),
            MaybeText("properties.target"),
            MaybeObject("properties.credentials"),
        ],
        "foundry.agents" => &[
            Key("id"),
            Key("model"),
            List("tools"),
            MaybeText("name"),
            MaybeObject("tool_resources"),
            MaybeObject("metadata"),
        ],
        "foundry.threads" => &[Key("id")],
        "foundry.runs" => &[Key("id"), Key("thread_id")],
        "foundry.runSteps" => &[Key("id"), Key("assistant_id"), Object("step_details"), MaybeText("status")],
        "servicenow.users" => {
            &[Key("sys_id"), Key("user_name"), MaybeText("name"), MaybeBool("active"), MaybeBool("locked_out")]
        }
        "servicenow.userRoles" => &[Key("sys_id"), Key("user"), Key("role"), MaybeText("state")],
        "servicenow.acls" => &[Key("sys_id"), Key("name"), Key("operation")],
        "servicenow.aclRoles" => &[Key("sys_id"), Key("sys_security_acl"), Key("sys_user_role")],
        "servicenow.oauthEntities" => &[Key("sys_id"), Text("user"), MaybeText("name"), MaybeText("sys_created_on")],
        "servicenow.restMessages" => &[
            Key("sys_id"),
            Text("basic_auth_profile"),
            Text("oauth2_profile"),
            MaybeText("rest_endpoint"),
            MaybeText("name"),
            MaybeText("authentication_type"),
        ],
        "servicenow.transactions" => {
            &[Key("sys_id"), Key("url"), Key("sys_created_by"), Key("sys_created_on"), MaybeText("type")]
        }
        _ => &[],
    }
}
