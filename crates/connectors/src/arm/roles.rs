//! Azure RBAC role definitions: which data-plane and control-plane permissions a role's
//! `actions` and `dataActions` grant, built-in roles by GUID, and wildcard matching.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::Permission;

use crate::json::{array, str};

use super::*;

/// Role definitions by GUID, with their name and normalised permissions (decided once per
/// definition, not per assignment).
pub(super) fn role_index(definitions: &[Value]) -> BTreeMap<String, (String, RolePermissions)> {
    definitions
        .iter()
        .filter_map(|d| {
            let guid = guid_tail(str(d, "id")?);
            let props = d.get("properties").unwrap_or(d);
            let name = str(props, "roleName").unwrap_or(&guid).to_string();
            Some((guid, (name, role_permissions_of(d))))
        })
        .collect()
}

/// A data plane a role's data actions open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataPlane {
    /// Blob data in storage containers.
    Blob,
    /// Secrets, keys and certificates in key vaults.
    KeyVault,
    /// Model inference and data in Cognitive Services (Azure OpenAI, Foundry) accounts.
    CognitiveServices,
    /// Another data plane (queues, tables, files...): granted at the role's scope.
    Other,
}

/// A role's normalised permissions: control-plane ones at its scope, data-plane ones on the
/// data below it, by data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePermissions {
    /// From `actions` less `notActions`.
    pub control: BTreeSet<Permission>,
    /// From `dataActions` less `notDataActions`.
    pub data: BTreeMap<DataPlane, BTreeSet<Permission>>,
}

pub(super) fn role_permissions_of(definition: &Value) -> RolePermissions {
    let properties = definition.get("properties").unwrap_or(definition);
    role_permissions(array(properties, "permissions"))
}

/// The permissions of a role definition's `permissions` blocks.
///
/// Control plane: each action's verb (`read`, `write`, `delete`, `action` → execute, `*` → all
/// four; `listKeys/action` reads and writes data with the account key); admin when the role can
/// write role assignments and `notActions` do not take it away. Data plane: the known data
/// actions (`DATA_ACTIONS`, from the built-in role definitions Azure publishes) that a
/// `dataActions` pattern matches and no `notDataActions` pattern removes; a pattern that
/// matches no known action is read by its verb.
pub fn role_permissions(blocks: &[Value]) -> RolePermissions {
    let mut out = RolePermissions::default();
    for block in blocks {
        let strings = |key: &str| -> Vec<&str> { array(block, key).iter().filter_map(Value::as_str).collect() };
        let (actions, not_actions) = (strings("actions"), strings("notActions"));
        let (data_actions, not_data_actions) = (strings("dataActions"), strings("notDataActions"));
        for action in &actions {
            if not_actions.iter().any(|n| glob(n, action)) {
                continue;
            }
            out.control.extend(action_verbs(action));
        }
        let probe = "Microsoft.Authorization/roleAssignments/write";
        if actions.iter().any(|a| glob(a, probe)) && !not_actions.iter().any(|n| glob(n, probe)) {
            out.control.insert(Permission::Admin);
        }
        for pattern in &data_actions {
            let mut matched = false;
            for (action, plane, verbs) in DATA_ACTIONS {
                if glob(pattern, action) {
                    matched = true;
                    if !not_data_actions.iter().any(|n| glob(n, action)) {
                        out.data.entry(*plane).or_default().extend(verbs.iter().copied());
                    }
                }
            }
            if !matched && !not_data_actions.iter().any(|n| glob(n, pattern)) {
                out.data.entry(plane_of(pattern)).or_default().extend(data_verbs(pattern));
            }
        }
    }
    out.data.retain(|_, verbs| !verbs.is_empty());
    out
}

/// The data plane of a data action by its provider path.
pub(super) fn plane_of(action: &str) -> DataPlane {
    let lower = action.to_ascii_lowercase();
    if lower.starts_with("microsoft.storage/storageaccounts/blobservices") {
        DataPlane::Blob
    } else if lower.starts_with("microsoft.keyvault/") {
        DataPlane::KeyVault
    } else if lower.starts_with("microsoft.cognitiveservices/") {
        DataPlane::CognitiveServices
    } else {
        DataPlane::Other
    }
}

/// The verbs of a data action SV0's table does not list, from the words of its operation:
/// read-like (`read`, `get`, `list`, `export`, `backup`, `release`), write-like (`write`, `set`,
/// `add`, `create`, `update`, `import`, `move`, `restore`, `rotate`), delete-like (`delete`,
/// `purge`), access control (`manageOwnership`, `modifyPermissions`, `runAsSuperUser`); any
/// other `action` of a model account is an inference call (execute); anything else unknown
/// reads nothing and is not guessed.
pub(super) fn data_verbs(action: &str) -> Vec<Permission> {
    use Permission::*;
    let lower = action.to_ascii_lowercase();
    let segments: Vec<&str> = lower.split('/').collect();
    let last = segments.last().copied().unwrap_or("");
    let operation = if last == "action" { segments.iter().rev().nth(1).copied().unwrap_or("") } else { last };
    if operation == "*" {
        return match plane_of(action) {
            DataPlane::Blob => vec![Read, Write, Delete, Admin],
            DataPlane::CognitiveServices => vec![Read, Write, Delete, Execute],
            _ => vec![Read, Write, Delete],
        };
    }
    let has = |words: &[&str]| words.iter().any(|w| operation.starts_with(w));
    if has(&["read", "get", "list", "export", "backup", "release", "filter"]) {
        vec![Read]
    } else if has(&["write", "set", "add", "create", "update", "import", "move", "restore", "rotate", "upload"]) {
        vec![Write]
    } else if has(&["delete", "purge", "permanentdelete", "deleteblobversion"]) {
        vec![Delete]
    } else if has(&["manageownership", "modifypermissions", "runassuperuser"]) {
        vec![Admin]
    } else if last == "action" && plane_of(action) == DataPlane::CognitiveServices {
        vec![Execute]
    } else {
        vec![]
    }
}

/// Known data actions: what each one lets its holder do to the data. From the built-in role
/// definitions Azure publishes (Storage Blob Data Reader/Contributor/Owner, Storage Queue Data
/// roles, Key Vault Secrets/Crypto/Certificates roles, Cognitive Services OpenAI
/// User/Contributor, Cognitive Services User, Azure AI User), see docs/connectors.md.
pub(super) const DATA_ACTIONS: &[(&str, DataPlane, &[Permission])] = {
    use DataPlane::*;
    use Permission::*;
    &[
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", Blob, &[Read]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", Blob, &[Write]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", Blob, &[Delete]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action", Blob, &[Write]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action", Blob, &[Write]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action", Blob, &[Read]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read", Blob, &[Read]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write", Blob, &[Write]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/deleteBlobVersion/action", Blob, &[Delete]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/permanentDelete/action", Blob, &[Delete]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/manageOwnership/action", Blob, &[Admin]),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/modifyPermissions/action", Blob, &[Admin]),
        (
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action",
            Blob,
            &[Admin],
        ),
        ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/read", Other, &[Read]),
        ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/write", Other, &[Write]),
        ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/delete", Other, &[Delete]),
        ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action", Other, &[Write]),
        ("Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action", Other, &[Read, Delete]),
        ("Microsoft.KeyVault/vaults/secrets/getSecret/action", KeyVault, &[Read]),
        ("Microsoft.KeyVault/vaults/secrets/readMetadata/action", KeyVault, &[Read]),
        ("Microsoft.KeyVault/vaults/secrets/setSecret/action", KeyVault, &[Write]),
        ("Microsoft.KeyVault/vaults/secrets/delete", KeyVault, &[Delete]),
        ("Microsoft.KeyVault/vaults/secrets/backup/action", KeyVault, &[Read]),
        ("Microsoft.KeyVault/vaults/secrets/restore/action", KeyVault, &[Write]),
        ("Microsoft.KeyVault/vaults/secrets/purge/action", KeyVault, &[Delete]),
        ("Microsoft.KeyVault/vaults/keys/read", KeyVault, &[Read]),
        ("Microsoft.KeyVault/vaults/keys/create/action", KeyVault, &[Write]),
        ("Microsoft.KeyVault/vaults/keys/delete", KeyVault, &[Delete]),
        ("Microsoft.KeyVault/vaults/keys/encrypt/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/keys/decrypt/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/keys/wrap/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/keys/unwrap/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/keys/sign/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/keys/verify/action", KeyVault, &[Execute]),
        ("Microsoft.KeyVault/vaults/certificates/read", KeyVault, &[Read]),
        ("Microsoft.KeyVault/vaults/certificates/delete", KeyVault, &[Delete]),
        (
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
            CognitiveServices,
            &[Execute],
        ),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/completions/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/audio/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/search/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/realtime/action", CognitiveServices, &[Execute]),
        (
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/extensions/chat/completions/action",
            CognitiveServices,
            &[Execute],
        ),
        ("Microsoft.CognitiveServices/accounts/OpenAI/engines/completions/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/images/generations/action", CognitiveServices, &[Execute]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/read", CognitiveServices, &[Read]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/files/read", CognitiveServices, &[Read]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/files/write", CognitiveServices, &[Write]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/files/delete", CognitiveServices, &[Delete]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/stored-completions/read", CognitiveServices, &[Read]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/assistants/read", CognitiveServices, &[Read]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/assistants/write", CognitiveServices, &[Write]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/assistants/delete", CognitiveServices, &[Delete]),
        ("Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/write", CognitiveServices, &[Write]),
        ("Microsoft.CognitiveServices/accounts/AIServices/agents/read", CognitiveServices, &[Read]),
        ("Microsoft.CognitiveServices/accounts/AIServices/agents/write", CognitiveServices, &[Write]),
        ("Microsoft.CognitiveServices/accounts/AIServices/agents/delete", CognitiveServices, &[Delete]),
    ]
};

pub(super) fn action_verbs(action: &str) -> Vec<Permission> {
    let lower = action.to_ascii_lowercase();
    if lower.ends_with("/listkeys/action") {
        return vec![Permission::Read, Permission::Write];
    }
    match lower.rsplit('/').next().unwrap_or("") {
        "*" => vec![Permission::Read, Permission::Write, Permission::Delete, Permission::Execute],
        "read" => vec![Permission::Read],
        "write" => vec![Permission::Write],
        "delete" => vec![Permission::Delete],
        "action" if lower.ends_with("generateuserdelegationkey/action") => vec![],
        "action" => vec![Permission::Execute],
        _ => vec![],
    }
}

/// Case-insensitive match of an ARM action pattern (`*` matches anything) against an action.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The GUIDs of the built-in roles SV0 knows, for what names a role by name (a Terraform
/// plan's `role_definition_name`).
pub(super) const BUILTIN_ROLE_GUIDS: [&str; 12] = [
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "19e7f393-937e-4f77-808e-94535e297925",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "4633458b-17de-408a-b874-0445c86b69e6",
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
];

/// The GUID of a built-in role by its name (case-insensitive).
pub fn builtin_role_guid(name: &str) -> Option<&'static str> {
    BUILTIN_ROLE_GUIDS
        .iter()
        .copied()
        .find(|guid| builtin_role(guid).is_some_and(|(n, _)| n.eq_ignore_ascii_case(name.trim())))
}

/// Built-in roles AzureHound exports without definitions: name and normalised permissions.
pub(super) fn builtin_role(guid: &str) -> Option<(&'static str, RolePermissions)> {
    use Permission::*;
    let control = |p: &[Permission]| RolePermissions { control: p.iter().copied().collect(), data: BTreeMap::new() };
    let data = |plane: DataPlane, c: &[Permission], d: &[Permission]| RolePermissions {
        control: c.iter().copied().collect(),
        data: [(plane, d.iter().copied().collect())].into_iter().collect(),
    };
    Some(match guid {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" => ("Owner", control(&[Read, Write, Delete, Execute, Admin])),
        "b24988ac-6180-42a0-ab88-20f7382dd24c" => ("Contributor", control(&[Read, Write, Delete, Execute])),
        "acdd72a7-3385-48ef-bd42-f606fba81ae7" => ("Reader", control(&[Read])),
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9" => ("User Access Administrator", control(&[Read, Admin])),
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1" => ("Storage Blob Data Reader", data(DataPlane::Blob, &[Read], &[Read])),
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe" => {
            ("Storage Blob Data Contributor", data(DataPlane::Blob, &[Read, Write, Delete], &[Read, Write, Delete]))
        }
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b" => {
            ("Storage Blob Data Owner", data(DataPlane::Blob, &[Read, Write, Delete], &[Read, Write, Delete, Admin]))
        }
        "19e7f393-937e-4f77-808e-94535e297925" => {
            ("Storage Queue Data Reader", data(DataPlane::Other, &[Read], &[Read]))
        }
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88" => {
            ("Storage Queue Data Contributor", data(DataPlane::Other, &[Read, Write, Delete], &[Read, Write, Delete]))
        }
        "00482a5a-887f-4fb3-b363-3b7fe8e74483" => (
            "Key Vault Administrator",
            data(DataPlane::KeyVault, &[Read, Write, Delete], &[Read, Write, Delete, Execute]),
        ),
        "4633458b-17de-408a-b874-0445c86b69e6" => ("Key Vault Secrets User", data(DataPlane::KeyVault, &[], &[Read])),
        "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd" => (
            "Cognitive Services OpenAI User",
            data(DataPlane::CognitiveServices, &[Read], &[Read, Write, Delete, Execute]),
        ),
        _ => return None,
    })
}
