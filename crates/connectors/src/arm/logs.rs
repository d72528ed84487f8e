//! Execution evidence from ARM: diagnostic settings (which logs are enabled, so which paths
//! can reach grade A) and storage blob logs read from Log Analytics.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sv0_domain::model::{Evidence, LogState};

use crate::collect::Collected;
use crate::json::{array, object_id, str, time};

use super::*;

/// What a data resource's diagnostic settings send, per the categories Azure Monitor documents
/// for it: blob services `StorageRead`, `StorageWrite`, `StorageDelete`; key vaults
/// `AuditEvent`; Cognitive Services `Audit` and `RequestResponse`. The category groups `audit`
/// ("all resource logs that record customer interactions with data") and `allLogs` cover them.
pub(super) fn data_categories(kind: DataResource) -> &'static [&'static str] {
    match kind {
        DataResource::Storage => &["StorageRead", "StorageWrite", "StorageDelete"],
        DataResource::KeyVault => &["AuditEvent"],
        DataResource::CognitiveServices => &["Audit", "RequestResponse"],
    }
}

/// Where a resource's data-access logs go, from its diagnostic settings.
#[derive(Debug, Default)]
pub(super) struct Sinks {
    /// Log Analytics workspaces (ARM ids, lower-case), with the setting's name.
    workspaces: BTreeSet<(String, String)>,
    /// Storage accounts and event hubs (ids).
    elsewhere: BTreeSet<String>,
}

/// Decides each data resource's execution-log state from its diagnostic settings: `disabled`
/// when no setting sends its data-access categories anywhere; `unread` when they go only where
/// SV0 does not read (another workspace, a storage account, an event hub); `enabled` when they
/// reach a workspace SV0 queries. Key vaults and model accounts are only ever `disabled`: SV0
/// queries only `StorageBlobLogs`, so logs that do exist leave their state unknown.
pub(super) fn log_states(data: &ArmData, settings: &[Value], complete: bool, out: &mut Collected) {
    let kinds: BTreeMap<String, DataResource> = data
        .resources
        .iter()
        .filter_map(|r| Some((str(r, "id")?.trim_end_matches('/').to_ascii_lowercase(), data_kind(r)?)))
        .collect();
    let mut sinks: BTreeMap<String, Sinks> = BTreeMap::new();
    for setting in settings {
        let Some(id) = str(setting, "id") else { continue };
        let lower = id.to_ascii_lowercase();
        let resource = lower
            .split_once("/providers/microsoft.insights/diagnosticsettings/")
            .or_else(|| lower.split_once("/diagnosticsettings/"))
            .map(|(r, _)| r.trim_end_matches("/blobservices/default").to_string());
        let Some(resource) = resource else { continue };
        let Some(kind) = kinds.get(&resource).copied() else { continue };
        let properties = setting.get("properties").unwrap_or(setting);
        let categories = data_categories(kind);
        let sends = array(properties, "logs").iter().any(|log| {
            crate::json::bool(log, "enabled") == Some(true)
                && (str(log, "category").is_some_and(|c| categories.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    || str(log, "categoryGroup")
                        .is_some_and(|g| g.eq_ignore_ascii_case("audit") || g.eq_ignore_ascii_case("allLogs")))
        });
        let entry = sinks.entry(resource).or_default();
        if !sends {
            continue;
        }
        if let Some(workspace) = str(properties, "workspaceId") {
            entry.workspaces.insert((workspace.to_ascii_lowercase(), str(setting, "name").unwrap_or("").to_string()));
        }
        for key in ["storageAccountId", "eventHubAuthorizationRuleId", "marketplacePartnerId"] {
            if let Some(sink) = str(properties, key) {
                entry.elsewhere.insert(sink.to_string());
            }
        }
    }
    // Workspace ARM id → (name, customer id), to tell the ones SV0 queries.
    let workspaces: Option<BTreeMap<String, (String, String)>> = data.workspaces.as_ref().map(|items| {
        items
            .iter()
            .filter_map(|w| {
                let id = str(w, "id")?.to_ascii_lowercase();
                let customer = w.get("properties").and_then(|p| str(p, "customerId"))?.to_ascii_lowercase();
                Some((id, (str(w, "name").unwrap_or("").to_string(), customer)))
            })
            .collect()
    });
    let read = |arm_id: &str| -> Option<bool> {
        if data.read_workspaces.iter().any(|r| r.eq_ignore_ascii_case(arm_id)) {
            return Some(true);
        }
        let (_, customer) = workspaces.as_ref()?.get(arm_id)?;
        Some(data.read_workspaces.iter().any(|r| r.eq_ignore_ascii_case(customer)))
    };
    for resource in &data.resources {
        let (Some(kind), Some(id)) = (data_kind(resource), str(resource, "id")) else { continue };
        let lower = id.trim_end_matches('/').to_ascii_lowercase();
        let name = str(resource, "name").unwrap_or(&lower).to_string();
        let categories = data_categories(kind).join(", ");
        let (what, service) = match kind {
            DataResource::Storage => (
                format!("the blob service of storage account {name}"),
                format!("storage:{}", name.to_ascii_lowercase()),
            ),
            DataResource::KeyVault => (format!("key vault {name}"), format!("keyvault:{}", name.to_ascii_lowercase())),
            DataResource::CognitiveServices => (
                format!("Cognitive Services account {name}"),
                format!("cognitiveservices:{}", name.to_ascii_lowercase()),
            ),
        };
        let sink = sinks.get(&lower);
        let sends = sink.is_some_and(|s| !s.workspaces.is_empty() || !s.elsewhere.is_empty());
        let state = match sink {
            // No setting of this resource was found although the listing was incomplete:
            // unknown, not disabled.
            None if !complete => None,
            _ if !sends => Some((
                LogState::Disabled,
                format!(
                    "a diagnostic setting on {what} sending {categories} (or the category group audit) to a Log Analytics workspace SV0 reads"
                ),
            )),
            _ if kind != DataResource::Storage => None,
            Some(s) => unread_or_enabled(s, &what, &categories, &read, workspaces.as_ref()),
            None => None,
        };
        if let Some(state) = state {
            out.log_states.insert(service, state);
        }
    }
}

/// The state of a storage account whose data-access logs are sent somewhere: `enabled` when a
/// workspace SV0 queries gets them, unknown when a workspace cannot be told, else `unread`,
/// naming where they go.
pub(super) fn unread_or_enabled(
    sinks: &Sinks,
    what: &str,
    categories: &str,
    read: &dyn Fn(&str) -> Option<bool>,
    workspaces: Option<&BTreeMap<String, (String, String)>>,
) -> Option<(LogState, String)> {
    let reached: Vec<(&(String, String), Option<bool>)> = sinks.workspaces.iter().map(|w| (w, read(&w.0))).collect();
    if reached.iter().any(|(_, r)| *r == Some(true)) {
        return Some((LogState::Enabled, format!("the {categories} logs {what} sends to Log Analytics")));
    }
    if reached.iter().any(|(_, r)| r.is_none()) {
        return None;
    }
    if let Some(((workspace, setting), _)) = reached.first() {
        let (label, customer) = workspaces
            .and_then(|w| w.get(workspace.as_str()))
            .cloned()
            .unwrap_or_else(|| (workspace.rsplit('/').next().unwrap_or("").to_string(), String::new()));
        return Some((
            LogState::Unread,
            format!(
                "the {categories} logs that diagnostic setting {setting} sends from {what} to Log Analytics workspace {label} (workspace id {customer}): add it to [connectors] log_analytics_workspaces"
            ),
        ));
    }
    let sink = sinks.elsewhere.iter().next().cloned().unwrap_or_default();
    Some((
        LogState::Unread,
        format!(
            "the {categories} logs {what} sends only to {sink}: send them to a Log Analytics workspace SV0 reads ([connectors] log_analytics_workspaces)"
        ),
    ))
}

/// `StorageBlobLogs` rows (summarised by SV0's query, or raw) as evidence of an identity acting
/// on a storage account, and on the container when it is known.
pub(super) fn blob_evidence(rows: &[Value], resources: &[Value], out: &mut Collected) {
    let accounts: BTreeMap<String, String> = resources
        .iter()
        .filter_map(|r| {
            let id = str(r, "id")?.to_ascii_lowercase();
            id.contains("/providers/microsoft.storage/storageaccounts/")
                .then(|| (id.rsplit('/').next().unwrap_or("").to_string(), id.clone()))
        })
        .collect();
    let mut seen_accounts = BTreeSet::new();
    for row in rows {
        let (Some(account), Some(requester), Some(at)) =
            (str(row, "AccountName"), str(row, "RequesterObjectId"), time(row, "TimeGenerated"))
        else {
            continue;
        };
        let account = account.to_ascii_lowercase();
        let container = str(row, "Container").map(str::to_string).or_else(|| {
            let uri = str(row, "Uri")?;
            let path = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
            path.split('/').nth(1).map(|c| c.split('?').next().unwrap_or(c).to_ascii_lowercase())
        });
        let operation = str(row, "OperationName").unwrap_or("");
        let requester = object_id(requester);
        let key = match str(row, "CorrelationId") {
            Some(correlation) => format!("blob:{correlation}:{operation}"),
            None => format!("blob:{account}/{}/{requester}/{operation}", container.as_deref().unwrap_or("")),
        };
        let destination = match (accounts.get(&account), &container) {
            (Some(id), Some(container)) => Some(format!("{id}/blobservices/default/containers/{container}")),
            _ => None,
        };
        seen_accounts.insert(account.clone());
        out.evidence(Evidence {
            id: key,
            source: "storage_blob_logs".into(),
            at,
            identity: Some(requester),
            workload: None,
            destination,
            service: Some(format!("storage:{account}")),
            credential: None,
        });
    }
    // Accounts whose logs answered have execution logs SV0 reads.
    for account in seen_accounts {
        out.log_states.insert(
            format!("storage:{account}"),
            (LogState::Enabled, format!("the blob logs (StorageBlobLogs) of storage account {account}")),
        );
    }
}

/// The Kusto query SV0 runs for storage evidence: one row per account, container, identity
/// and operation, with the last time it happened.
pub fn blob_log_query(days: u32) -> String {
    format!(
        "StorageBlobLogs | where TimeGenerated > ago({days}d) and isnotempty(RequesterObjectId) and StatusCode < 400 \
         | extend Container = tostring(split(trim_start('/', tostring(parse_url(Uri).Path)), '/')[0]) \
         | summarize TimeGenerated = max(TimeGenerated), Operations = count() by AccountName, Container, RequesterObjectId, OperationName"
    )
}
