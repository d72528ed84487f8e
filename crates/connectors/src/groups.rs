//! Grants held by groups reach the service principals in them: an Azure role assignment or an
//! app role assignment to a group is expanded into one grant per service-principal member
//! (transitive members: nested groups count), each naming the assignment and the group. The
//! record to change is still the group's assignment, or the membership.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{Grant, IdentityKind};
use sv0_domain::snapshot::EntityList;

use crate::collect::Collected;
use crate::json::{object_id, str};
use crate::source::{Call, Ledger, Paging, Service, Source};

/// The API that lists group members. In an export directory, `graph.groupMembers.json` holds
/// the members of every group, each item naming its group in `groupId`.
pub const API: &str = "graph.groupMembers";

/// Reads the service-principal members of every group that holds a grant (one call per group)
/// and expands the group grants.
pub async fn collect(source: &Source, ledger: &Ledger, out: &mut Collected) {
    if out.group_grants.is_empty() {
        return;
    }
    out.uses(API, &[EntityList::Grants, EntityList::Identities]);
    let groups: BTreeSet<String> = out.group_grants.iter().map(|g| g.identity.clone()).collect();
    let calls: Vec<Call> = if source.is_export() {
        vec![Call::get(API, Service::Graph, String::new(), Paging::OData)]
    } else if source.has(Service::Graph) {
        // An OData cast on transitiveMembers is an advanced query: Graph requires
        // `ConsistencyLevel: eventual` and `$count=true` with it.
        groups
            .into_iter()
            .map(|group| {
                let path = format!(
                    "/v1.0/groups/{group}/transitiveMembers/microsoft.graph.servicePrincipal?$count=true&$select=id,displayName&$top=999"
                );
                Call::get(API, Service::Graph, path, Paging::OData)
                    .header("ConsistencyLevel", "eventual")
                    .tagged("groupId", group)
            })
            .collect()
    } else {
        ledger.skipped(API, "no Microsoft Graph base URL to read the members of groups holding grants");
        Vec::new()
    };
    let listing = source.list_each(API, calls, ledger).await;
    expand(&listing.items, listing.complete, out);
}

/// Expands the group grants over `members` (items naming `groupId` and the member's `id`;
/// members that are not service principals are skipped). With `complete`, a group without
/// members in the listing has no service-principal member; otherwise its members were not read.
pub fn expand(members: &[Value], complete: bool, out: &mut Collected) {
    let mut by_group: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for member in members {
        let (Some(group), Some(id)) = (str(member, "groupId"), str(member, "id")) else { continue };
        if str(member, "@odata.type").is_some_and(|t| !t.ends_with("servicePrincipal")) {
            continue;
        }
        let name = str(member, "displayName").unwrap_or(id).to_string();
        by_group.entry(object_id(group)).or_default().insert(object_id(id), name);
    }
    for grant in std::mem::take(&mut out.group_grants) {
        let Some(members) = by_group.get(&grant.identity) else {
            out.note(if complete {
                "grants to groups with no service-principal member (users only)"
            } else {
                "grants to groups whose members could not be read (graph.groupMembers failed)"
            });
            continue;
        };
        for (member, name) in members {
            out.stub_principal(member, name, IdentityKind::ServicePrincipal);
            out.grant(Grant {
                id: format!("{}#member:{member}", grant.id),
                identity: member.clone(),
                role: format!("{} (through group {})", grant.role, grant.identity),
                ..grant.clone()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sv0_domain::model::{GrantSource, Permission};

    fn group_grant(group: &str) -> Grant {
        Grant {
            id: format!("assignment-{group}"),
            identity: group.to_string(),
            destination: "d".into(),
            permissions: vec![Permission::Read],
            source: GrantSource::AzureRoleAssignment,
            role: "Reader".into(),
            scope: "/".into(),
            consent: None,
        }
    }

    /// What the warning about a group's grants says depends on what was read: a group whose
    /// members were read and hold no service principal is not a group whose members are unknown.
    #[test]
    fn the_groups_warning_says_what_was_not_read() {
        let members =
            [json!({"id": "sp-1", "groupId": "g-with-sp", "@odata.type": "#microsoft.graph.servicePrincipal"})];
        for (complete, note) in [
            (true, "grants to groups with no service-principal member (users only)"),
            (false, "grants to groups whose members could not be read (graph.groupMembers failed)"),
        ] {
            let mut out = Collected::default();
            out.group_grant(group_grant("g-with-sp"));
            out.group_grant(group_grant("g-users-only"));
            expand(&members, complete, &mut out);
            assert!(out.grants.contains_key("assignment-g-with-sp#member:sp-1"));
            let (_, dropped, _) = out.finish();
            assert_eq!(dropped.get(note), Some(&1), "{dropped:?}");
        }
    }
}
