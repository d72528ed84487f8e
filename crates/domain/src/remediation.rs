//! Remediation: the exact change, in the source system, that removes a piece of authority.
//! SV0 never performs it; it names the record to change and later proves it changed.

use serde::{Deserialize, Serialize};

use crate::model::GrantSource;
use crate::paths::{GrantRef, NodeRef};

/// One concrete change to make in a source system.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemediationAction {
    /// What to do: `remove_grant`, `assign_owner`, `rotate_credential`, `review_destination`.
    pub action: String,
    /// The id of the record to change.
    pub record_id: String,
    /// The instruction, in one sentence a person can follow.
    pub text: String,
}

/// One action of a kind (`remove_grant`, `delete_credential`, ...) on a record.
pub fn action(kind: &str, record_id: &str, text: String) -> RemediationAction {
    RemediationAction { action: kind.to_string(), record_id: record_id.to_string(), text }
}

/// The action that removes one grant from an identity.
pub fn remove_grant(grant: &GrantRef, identity: &NodeRef) -> RemediationAction {
    let GrantRef { role, scope, .. } = grant;
    // An expanded grant (`<record>#member:...`, `<record>#container:...`) is removed by
    // changing its record.
    let id = crate::model::record_of(&grant.id);
    let who = &identity.name;
    let text = match grant.source {
        GrantSource::AzureRoleAssignment => {
            format!("remove role assignment {id}: {role} for {who} on {scope}")
        }
        GrantSource::AppRoleAssignment => {
            format!("remove app role assignment {id}: {role} for {who} on {scope}")
        }
        GrantSource::Oauth2PermissionGrant => {
            format!("revoke OAuth2 permission grant {id}: {role} for {who} on {scope}")
        }
        GrantSource::ServicenowRole => {
            format!("remove role {role} from {who} (record {id}) on {scope}")
        }
        GrantSource::Connection => {
            format!("remove connection {id}: {role} used by {who} on {scope}")
        }
        GrantSource::DirectoryRoleAssignment => {
            format!("remove directory role assignment {id}: {role} for {who} on {scope}")
        }
    };
    action("remove_grant", id, text)
}

/// The action that gives a workload an accountable owner.
pub fn assign_owner(workload: &NodeRef) -> RemediationAction {
    action(
        "assign_owner",
        &workload.id,
        format!("assign an active owner to workload {} ({}) before it proceeds", workload.name, workload.id),
    )
}

/// Joins the actions' texts into one line for tables and summaries.
pub fn join(actions: &[RemediationAction]) -> Option<String> {
    if actions.is_empty() { None } else { Some(actions.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join("; ")) }
}
