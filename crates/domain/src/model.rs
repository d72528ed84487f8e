//! The entities a scan observes: workloads, identities, credentials, destinations, data
//! domains, classification rules, grants, run-as bindings, owners and execution evidence.
//!
//! These structs are at once the hand-writable snapshot format (JSON, see
//! `schemas/snapshot.schema.json`) and the payload of scan events (CBOR).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;

/// Something that acts autonomously: a Foundry agent, a ServiceNow flow, a function app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Stable id in the source system.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What sort of workload this is.
    pub kind: WorkloadKind,
    /// The project or application it belongs to (e.g. a Foundry project); scopes select on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Free-form labels; scopes select on them with `tag:KEY=VALUE`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Ids of the owners accountable for it (see `owners`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
}

/// Kinds of workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// An Azure AI Foundry agent.
    FoundryAgent,
    /// A ServiceNow flow or integration.
    ServicenowIntegration,
    /// An Azure Function app or similar.
    FunctionApp,
    /// A Logic App or other workflow.
    Workflow,
    /// Anything else that acts on its own.
    Other,
}

/// What a workload acts as: a service principal, managed identity, integration user, API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Stable id in the source system (e.g. the Entra object id).
    pub id: String,
    /// Display name.
    pub name: String,
    /// What sort of identity this is.
    pub kind: IdentityKind,
    /// False when the source system has disabled the identity.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// The tenant the identity is homed in, when it is not the scanned tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_tenant: Option<String>,
    /// Ids of the owners accountable for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// How the scan knows the identity: from its own record (the default), only from a
    /// reference to it, or as gone from a directory that was read completely.
    #[serde(default, skip_serializing_if = "Presence::is_recorded")]
    pub presence: Presence,
}

/// How a scan knows an identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Its own record was read (a directory object, an integration user, a connection): its
    /// name, state and owners are as the source system keeps them.
    #[default]
    Recorded,
    /// Only a reference to it was read (a role assignment's principal id, a configured project
    /// identity): its state and owners are unknown.
    Inferred,
    /// The directory was read completely and holds no such principal: whatever still refers to
    /// it (a role assignment) is dangling.
    Deleted,
}

impl Presence {
    /// Whether this is the default, `recorded`.
    pub fn is_recorded(&self) -> bool {
        *self == Presence::Recorded
    }
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Kinds of identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// An Entra ID service principal (application identity).
    ServicePrincipal,
    /// An Azure managed identity.
    ManagedIdentity,
    /// An Entra agent identity.
    AgentIdentity,
    /// A ServiceNow integration user or similar account.
    IntegrationUser,
    /// A bare API key.
    ApiKey,
    /// A human user account used by automation.
    User,
}

/// A secret or certificate of an identity, with its lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Stable id (e.g. the key id of a password credential).
    pub id: String,
    /// The identity it authenticates.
    pub identity: String,
    /// What sort of credential this is.
    pub kind: CredentialKind,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When it stops working; absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A client secret.
    Password,
    /// A certificate.
    Certificate,
    /// A federated credential (no secret at rest).
    Federated,
    /// An API key.
    ApiKey,
}

/// What an identity can act on: a storage container, Graph API, a ServiceNow table, an LLM
/// deployment, an external HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Stable id (e.g. an ARM resource id).
    pub id: String,
    /// Display name.
    pub name: String,
    /// What sort of destination this is.
    pub kind: DestinationKind,
    /// The service it belongs to (e.g. `storage:stfinance01`, `graph`); activity of an
    /// identity toward the service is grade-B evidence for every destination of that service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The endpoint host, for egress classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The data domain behind it, when the source labels it directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// An explicit egress class, overriding the rule table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressClass>,
    /// Resource tags; classification rules match on them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Whether a log source that names the identity acting on this destination is enabled
    /// (what grade A needs): `enabled`, `disabled`, or absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_logs: Option<LogState>,
    /// The log source to enable, in words, e.g. `diagnostic logs (StorageBlobLogs) on storage
    /// account stfinance01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_log_source: Option<String>,
}

/// Whether a log source is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogState {
    /// Records are collected.
    Enabled,
    /// No records are collected: no path to the destination can reach grade A.
    Disabled,
    /// Records are collected where SV0 does not read them (another Log Analytics workspace, a
    /// storage account or an event hub): no path can reach grade A until SV0 reads them.
    Unread,
}

impl LogState {
    /// Whether no record that could prove grade A reaches SV0.
    pub fn blind(&self) -> bool {
        matches!(self, LogState::Disabled | LogState::Unread)
    }
}

/// Kinds of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A blob container or file share.
    StorageContainer,
    /// A whole storage account.
    StorageAccount,
    /// A Microsoft Graph resource collection (users, groups, mail...).
    GraphApi,
    /// A ServiceNow table.
    ServicenowTable,
    /// A model deployment (Azure OpenAI, Foundry).
    LlmDeployment,
    /// An HTTP endpoint reached by a tool or outbound message.
    HttpEndpoint,
    /// A database.
    Database,
    /// A queue or topic.
    Queue,
    /// Anything else.
    Other,
}

/// Where data can leave the organisational boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EgressClass {
    /// A model API: prompts carry data to the model provider.
    LlmApi,
    /// Cloud object storage.
    CloudStorage,
    /// An HTTP endpoint outside the organisation.
    ExternalHttp,
    /// Stays within the organisation's systems.
    Internal,
}

impl EgressClass {
    /// Every class, in display order.
    pub const ALL: [EgressClass; 4] =
        [EgressClass::LlmApi, EgressClass::CloudStorage, EgressClass::ExternalHttp, EgressClass::Internal];

    /// The snake_case name used in JSON and tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            EgressClass::LlmApi => "llm_api",
            EgressClass::CloudStorage => "cloud_storage",
            EgressClass::ExternalHttp => "external_http",
            EgressClass::Internal => "internal",
        }
    }
}

impl fmt::Display for EgressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The business sensitivity of data behind destinations (Finance, HR, Customer PII, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataDomain {
    /// Stable id, e.g. `finance`.
    pub id: String,
    /// Display name, e.g. `Finance`.
    pub name: String,
    /// Whether reaching this domain needs extra scrutiny.
    #[serde(default)]
    pub sensitive: bool,
}

/// Assigns a data domain to destinations that carry a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassificationRule {
    /// Stable id, kept on every path it classifies.
    pub id: String,
    /// Tag key to match on the destination.
    pub tag: String,
    /// Tag value to match.
    pub value: String,
    /// The domain to assign.
    pub domain: String,
}

/// Normalised permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read data.
    Read,
    /// Create or change data.
    Write,
    /// Delete data.
    Delete,
    /// Run or invoke.
    Execute,
    /// Change access control or configuration.
    Admin,
}

impl Permission {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Delete => "delete",
            Permission::Execute => "execute",
            Permission::Admin => "admin",
        }
    }

    /// Whether the permission changes data or access (write, delete, admin).
    pub fn modifies(&self) -> bool {
        matches!(self, Permission::Write | Permission::Delete | Permission::Admin)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity → destination with normalised permissions and the record that grants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The id of the source record (role assignment id, app role assignment id, OAuth2 grant
    /// id): the exact thing to change to remove this authority.
    pub id: String,
    /// The identity holding the grant.
    pub identity: String,
    /// The destination it reaches.
    pub destination: String,
    /// Normalised permissions.
    pub permissions: Vec<Permission>,
    /// What sort of record grants it.
    pub source: GrantSource,
    /// The role or permission name as the source system shows it
    /// (e.g. `Storage Blob Data Contributor`, `User.Read.All`).
    pub role: String,
    /// The scope the record applies at, as the source system writes it.
    pub scope: String,
    /// For a delegated OAuth2 permission grant, whom the consent covers (Microsoft Graph's
    /// `consentType`): `all_principals` is an administrator's consent for the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
}

impl Grant {
    /// The source record to change to remove this grant: its id up to the first `#`. A grant
    /// derived from a record that applies to several identities or destinations (a group's
    /// role assignment, an assignment above the containers it covers) is
    /// `<record id>#<what it was expanded to>`.
    pub fn record_id(&self) -> &str {
        record_of(&self.id)
    }
}

/// The source record of a grant id (see `Grant::record_id`).
pub fn record_of(grant_id: &str) -> &str {
    grant_id.split('#').next().unwrap_or(grant_id)
}

impl GrantSource {
    /// What the source system calls such a record, e.g. `role assignment`.
    pub fn record_name(&self) -> &'static str {
        match self {
            GrantSource::AzureRoleAssignment => "role assignment",
            GrantSource::AppRoleAssignment => "app role assignment",
            GrantSource::Oauth2PermissionGrant => "OAuth2 permission grant",
            GrantSource::ServicenowRole => "role record",
            GrantSource::Connection => "connection",
            GrantSource::DirectoryRoleAssignment => "directory role assignment",
        }
    }
}

/// Whom a delegated permission grant's consent covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Consented for every user of the tenant (`AllPrincipals`).
    AllPrincipals,
    /// Consented by or for one user (`Principal`).
    Principal,
}

/// Kinds of record that grant authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// An Azure RBAC role assignment.
    AzureRoleAssignment,
    /// A Microsoft Graph app role assignment (application permission).
    AppRoleAssignment,
    /// A delegated OAuth2 permission grant.
    Oauth2PermissionGrant,
    /// A ServiceNow role held by an integration user.
    ServicenowRole,
    /// A connection or API key configured on a workload or project.
    Connection,
    /// A Microsoft Entra directory role assignment (e.g. Application Administrator).
    DirectoryRoleAssignment,
}

/// A workload runs as an identity (optionally through one of its tools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Stable id of the binding record.
    pub id: String,
    /// The workload.
    pub workload: String,
    /// The identity it runs as.
    pub identity: String,
    /// The tool of the workload that uses this identity, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// A person or group accountable for workloads and identities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Stable id (e.g. a user principal name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the owner can still be held accountable.
    pub status: OwnerStatus,
    /// Last sign-in or activity; an owner silent longer than the decay limit is decayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<Timestamp>,
}

/// Status of an owner account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerStatus {
    /// Active account.
    Active,
    /// Disabled account.
    Disabled,
    /// The person has left the organisation.
    Departed,
}

/// An execution record: a log line that shows an identity or workload acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Stable id of the record (sign-in id, log row id, run step id).
    pub id: String,
    /// Where the record comes from (e.g. `entra_sign_in`, `storage_blob_logs`, `foundry_run_step`).
    pub source: String,
    /// When the action happened.
    pub at: Timestamp,
    /// The identity that acted, when the record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The workload whose run produced the record, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The destination acted on, when the record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The service acted on (matches `Destination::service`), when the record names only that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The credential the identity authenticated with (e.g. a sign-in's
    /// `servicePrincipalCredentialKeyId`), when the record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
