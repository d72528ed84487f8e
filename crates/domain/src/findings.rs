//! Findings: deterministic rules over entities and paths. A finding has a stable id (the same
//! rule on the same subject always gives the same id), lists the paths and source records
//! behind it, and says exactly what to change.
//!
//! `CATALOGUE` lists every rule with why it matters, what triggers it and how to fix it;
//! `docs/rules.md` is generated from it (`sv0 rules --markdown`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, stable_hash};
use crate::model::{
    Binding, Consent, Credential, CredentialKind, Destination, EgressClass, Grant, GrantSource, Identity, IdentityKind,
    Permission, Presence,
};
use crate::paths::{AuthorityPath, Grade, GrantRef, NodeRef, OwnerState};
use crate::remediation::{self, RemediationAction};

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now: the change can alter access control over sensitive data.
    Critical,
    /// Act before deploying.
    High,
    /// Act soon.
    Medium,
    /// Hygiene.
    Low,
}

impl Severity {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// One entity (workload, identity, credential) and the records around it.
    Entity,
    /// One authority path, or a workload's paths together.
    Path,
    /// Paths that can never reach grade A.
    Gap,
    /// A scope's delta against its approved baseline, or a remediation rescan's verification:
    /// these rules decide the scope's disposition rather than open findings.
    Delta,
}

impl RuleKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Entity => "entity",
            RuleKind::Path => "path",
            RuleKind::Gap => "gap",
            RuleKind::Delta => "delta",
        }
    }
}

/// How settled a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Maturity {
    /// Its matching may still change; its findings deserve a second look.
    Experimental,
    /// Its matching is settled; its findings can gate a deployment.
    Stable,
}

impl Maturity {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Maturity::Experimental => "experimental",
            Maturity::Stable => "stable",
        }
    }
}

/// A rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rule {
    /// Stable id, e.g. `SV0-P001`.
    pub id: &'static str,
    /// Rule version; bumped when what it matches changes.
    pub version: u32,
    /// What it looks at.
    pub kind: RuleKind,
    /// How settled it is.
    pub maturity: Maturity,
    /// One-line title.
    pub title: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// OWASP Top 10 for Agentic Applications (2026) ids it maps to.
    pub owasp: &'static [&'static str],
    /// Why it matters, in a sentence or two.
    pub why: &'static str,
    /// The records that trigger it.
    pub trigger: &'static str,
    /// The remediation, naming the record to change.
    pub remediation: &'static str,
}

/// A workload with authority but no accountable owner.
pub const UNOWNED_WORKLOAD: Rule = Rule {
    id: "SV0-E001",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "workload with authority has no accountable owner",
    severity: Severity::Medium,
    owasp: &["ASI10"],
    why: "Nobody answers for what an unowned agent does, approves its changes or notices when it goes rogue.",
    trigger: "a workload record with paths whose owners are missing (orphaned), or all disabled, departed or silent past the policy's limit (decayed)",
    remediation: "assign an active owner to the workload record",
};

/// A secret that never expires or lives longer than `LONG_LIVED_DAYS`.
pub const LONG_LIVED_SECRET: Rule = Rule {
    id: "SV0-E002",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "long-lived or never-expiring secret",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "A password or API key that lives for years is the credential most often leaked and least often noticed.",
    trigger: "a password or API key credential with no expiry, or valid for more than 180 days",
    remediation: "rotate the credential record: replace it with a federated credential or a secret valid at most 180 days",
};

/// A disabled identity that still holds grants.
pub const DISABLED_WITH_GRANTS: Rule = Rule {
    id: "SV0-E003",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "disabled identity still holds grants",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Re-enabling the identity, by mistake or by an attacker, restores all of its authority at once.",
    trigger: "an identity record with `enabled: false` and at least one grant record",
    remediation: "remove each grant record of the identity",
};

/// A credential past its expiry that is still registered.
pub const EXPIRED_CREDENTIAL: Rule = Rule {
    id: "SV0-E004",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "expired credential still present",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Expired credentials left in place hide which secrets are really in use and are often renewed instead of removed.",
    trigger: "a credential record whose `expires_at` is before the scan's time",
    remediation: "delete the credential record from the identity",
};

/// An identity with grants and no activity for `UNUSED_DAYS`.
pub const UNUSED_IDENTITY: Rule = Rule {
    id: "SV0-E005",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Experimental,
    title: "identity unused for 90 days still holds grants",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "Standing authority nobody uses is pure exposure: removing it costs nothing and shrinks every path through the identity.",
    trigger: "an enabled identity record with grant records whose latest evidence record (sign-in or execution log) is more than 90 days before the scan; an identity with no evidence at all is an evidence gap, not proof of disuse, and is not flagged",
    remediation: "remove each grant record of the identity, or disable the identity",
};

/// A privileged directory role or an application permission that can escalate.
pub const PRIVILEGED_ROLE: Rule = Rule {
    id: "SV0-E006",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "privileged directory role or directory-wide application permission",
    severity: Severity::High,
    owasp: &["ASI03"],
    why: "A directory role such as Application Administrator, or a Graph permission such as RoleManagement.ReadWrite.Directory, lets the agent grant itself any other authority.",
    trigger: "a grant record from a directory role assignment naming a privileged role, or an app role assignment naming a privileged Microsoft Graph permission",
    remediation: "remove the directory role or app role assignment record, and grant a narrower role at the resource instead",
};

/// Delegated permissions consented for the whole tenant.
pub const TENANT_WIDE_CONSENT: Rule = Rule {
    id: "SV0-E007",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "tenant-wide consent to delegated permissions",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "An administrator's consent for all principals lets the agent act as any user of the tenant within the consented scopes.",
    trigger: "an OAuth2 permission grant record with `consent: all_principals`",
    remediation: "revoke the OAuth2 permission grant record and consent per user or for named groups",
};

/// An identity homed in another tenant that holds grants here.
pub const FOREIGN_IDENTITY: Rule = Rule {
    id: "SV0-E008",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "identity from another tenant holds grants",
    severity: Severity::Medium,
    owasp: &["ASI03", "ASI04"],
    why: "The credentials of a multi-tenant app live in another organisation: whoever controls that tenant controls this authority.",
    trigger: "an identity record with a `home_tenant` and at least one grant record",
    remediation: "remove the identity's grant records, or replace the external app with one registered in this tenant",
};

/// One identity used by several workloads.
pub const SHARED_IDENTITY: Rule = Rule {
    id: "SV0-E009",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "identity shared by several workloads",
    severity: Severity::Medium,
    owasp: &["ASI03", "ASI10"],
    why: "Each workload inherits the union of what all of them need, and no log can tell which one acted.",
    trigger: "an identity record bound by run-as binding records to more than one workload",
    remediation: "give each workload its own identity: remove the extra run-as binding records",
};

/// Several live secrets on one identity.
pub const SECRET_SPRAWL: Rule = Rule {
    id: "SV0-E010",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Experimental,
    title: "several active secrets on one identity",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Rotation that adds a secret without removing the old one leaves several valid keys, each of which must be guarded.",
    trigger: "an identity with more than one password or API key credential record that has not expired",
    remediation: "delete every credential record of the identity but the newest",
};

/// A person's account runs a workload.
pub const USER_RUNS_WORKLOAD: Rule = Rule {
    id: "SV0-E011",
    version: 2,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "a person's user account runs a workload",
    severity: Severity::High,
    owasp: &["ASI03"],
    why: "The agent acts with everything the person can do, and its actions are logged as the person's.",
    trigger: "an identity read from its own record (not `presence: inferred`) of kind `user` bound to a workload by a run-as binding record",
    remediation: "run the workload as a managed or agent identity: replace the run-as binding record",
};

/// A workload runs as a static API key.
pub const STATIC_KEY_IDENTITY: Rule = Rule {
    id: "SV0-E012",
    version: 2,
    kind: RuleKind::Entity,
    maturity: Maturity::Experimental,
    title: "workload runs as a static API key",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "A static key cannot be bound to the workload, carries no sign-in logs and is copied wherever the workload is.",
    trigger: "an identity read from its own record (not `presence: inferred`) of kind `api_key` bound to a workload by a run-as binding record",
    remediation: "replace the run-as binding record with a managed identity or a federated credential",
};

/// A service principal nobody owns that holds standing authority.
pub const ORPHANED_SERVICE_PRINCIPAL: Rule = Rule {
    id: "SV0-E013",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "service principal with no owner holds grants",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "Nobody is accountable for an application nobody owns: its secrets are not rotated, its grants are never reviewed, and no one notices when it is abused, whether or not a known workload runs as it.",
    trigger: "a service principal record of this tenant, read from the directory, with no owner on it or its application registration, and at least one grant record that acts without a signed-in user (an application permission, an Azure or directory role assignment, a connection)",
    remediation: "assign an owner to the application registration, or remove the grant records",
};

/// A role assignment whose principal no longer exists.
pub const DANGLING_ASSIGNMENT: Rule = Rule {
    id: "SV0-E014",
    version: 1,
    kind: RuleKind::Entity,
    maturity: Maturity::Stable,
    title: "role assignment to a principal that no longer exists",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "An assignment left behind by a deleted principal grants nothing today, but hides the real assignments in every review and is what an attacker restoring or re-creating the principal would inherit.",
    trigger: "an identity record with `presence: deleted` (the directory was read completely and holds no such principal) and the grant records that still name it",
    remediation: "delete each role assignment record that names the deleted principal",
};

/// Write, delete or admin reach into a sensitive domain.
pub const SENSITIVE_WRITE: Rule = Rule {
    id: "SV0-P001",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "write or delete reach into a sensitive domain",
    severity: Severity::High,
    owasp: &["ASI03"],
    why: "An agent that can change or destroy sensitive records turns any prompt injection into data tampering.",
    trigger: "a path into a sensitive data domain whose permissions include write, delete or admin, and the grant records that confer them",
    remediation: "remove the grant records that confer write, delete or admin, or replace them with read-only ones",
};

/// A workload that can read a sensitive domain and send data to a model or external endpoint.
pub const SENSITIVE_EGRESS: Rule = Rule {
    id: "SV0-P002",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "sensitive data can leave through model or external egress",
    severity: Severity::Medium,
    owasp: &["ASI03", "ASI10"],
    why: "Read access to sensitive data plus a path to a model or an external endpoint is everything an exfiltration needs.",
    trigger: "a workload with a path reading a sensitive domain and a path with `llm_api` or `external_http` egress",
    remediation: "review the egress destination record: confirm the flow, or remove the workload's access to it",
};

/// Standing (grade C) authority into a sensitive domain: a least-privilege candidate.
pub const UNUSED_SENSITIVE: Rule = Rule {
    id: "SV0-P003",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "standing authority into a sensitive domain never exercised",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Authority to sensitive data that no evidence shows in use is the first thing least privilege removes.",
    trigger: "a grade C path (no execution or activity evidence in the window) into a sensitive data domain",
    remediation: "remove the grant records of the path",
};

/// A grant at a wildcard, tenant, management group or subscription scope.
pub const BROAD_SCOPE: Rule = Rule {
    id: "SV0-P004",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "authority granted at a wildcard or subscription-wide scope",
    severity: Severity::High,
    owasp: &["ASI03"],
    why: "A role assigned at the subscription, a management group or `*` reaches every resource created there later, not just the one the agent needs.",
    trigger: "a grant record on the path whose scope is `/`, contains `*`, or is a whole subscription or management group",
    remediation: "remove the broad grant record and assign the role at the destination's own scope",
};

/// Confirmed activity on a path nobody owns.
pub const UNOWNED_ACTIVE_PATH: Rule = Rule {
    id: "SV0-P005",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "grade A path with no accountable owner",
    severity: Severity::High,
    owasp: &["ASI10"],
    why: "Evidence shows the authority in use, and nobody is accountable for that use.",
    trigger: "a grade A path whose owner state is orphaned or decayed",
    remediation: "assign an active owner to the path's workload record",
};

/// Authority to change who has access.
pub const ADMIN_REACH: Rule = Rule {
    id: "SV0-P006",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "admin authority over a destination",
    severity: Severity::Medium,
    owasp: &["ASI03"],
    why: "Admin lets the agent change the destination's access control, including granting itself more.",
    trigger: "a path whose permissions include admin, and the grant records that confer it",
    remediation: "remove the grant records that confer admin, or replace them with data-plane roles",
};

/// Write access to an external endpoint.
pub const EXTERNAL_WRITE: Rule = Rule {
    id: "SV0-P007",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Experimental,
    title: "write access to an external endpoint",
    severity: Severity::Medium,
    owasp: &["ASI02", "ASI10"],
    why: "A workload that can push data to an endpoint outside the organisation can move anything it reads there.",
    trigger: "a path with `external_http` egress whose permissions include write, delete or admin",
    remediation: "remove the grant or connection records that confer write on the external destination",
};

/// Write access where nothing says what the data is.
pub const UNCLASSIFIED_WRITE: Rule = Rule {
    id: "SV0-P008",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Experimental,
    title: "write access to unclassified data",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Without a data domain nobody can tell whether this write reach is harmless or touches regulated data.",
    trigger: "a path into the `unclassified` domain whose permissions include write, delete or admin",
    remediation: "classify the destination record (a data-domain tag or a classification rule)",
};

/// Sensitive data whose use can never be confirmed.
pub const SENSITIVE_UNAUDITABLE: Rule = Rule {
    id: "SV0-P009",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Stable,
    title: "sensitive data path that can never be audited",
    severity: Severity::Medium,
    owasp: &["ASI10"],
    why: "With execution logs off, nobody can later tell whether or how the agent used its access to sensitive data.",
    trigger: "a path into a sensitive data domain whose destination record has execution logs disabled",
    remediation: "enable the execution logs of the destination record",
};

/// Grants whose authority other grants on the path already confer.
pub const REDUNDANT_GRANT: Rule = Rule {
    id: "SV0-P010",
    version: 1,
    kind: RuleKind::Path,
    maturity: Maturity::Experimental,
    title: "redundant grant: the path's authority is already granted by another record",
    severity: Severity::Low,
    owasp: &["ASI03"],
    why: "Overlapping grants survive each other's removal, so remediating one leaves the authority in place.",
    trigger: "a grant record on a path whose permissions are all conferred by the path's other grant records",
    remediation: "remove the redundant grant record",
};

/// Paths to a destination that can never reach grade A: its execution logs are disabled.
pub const EVIDENCE_GAP: Rule = Rule {
    id: "SV0-G001",
    version: 2,
    kind: RuleKind::Gap,
    maturity: Maturity::Stable,
    title: "execution logs disabled: paths can never be confirmed",
    severity: Severity::Low,
    owasp: &["ASI10"],
    why: "Below grade A, a path is only inferred or standing; with logs disabled no scan can ever confirm it.",
    trigger: "a destination record with `execution_logs: disabled` (no data-access log is collected) or `unread` (it is collected where SV0 does not read it) and paths to it below grade A",
    remediation: "enable the destination's execution log source, or have SV0 read the workspace it goes to",
};

/// A delta rule: what a scope's delta entries of some kind mean for its disposition.
const fn delta_rule(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    why: &'static str,
    trigger: &'static str,
    remediation: &'static str,
) -> Rule {
    Rule {
        id,
        version: 1,
        kind: RuleKind::Delta,
        maturity: Maturity::Stable,
        title,
        severity,
        owasp: &["ASI03", "ASI10"],
        why,
        trigger,
        remediation,
    }
}

/// A new path into a sensitive domain.
pub const DELTA_SENSITIVE_PATH: Rule = delta_rule(
    "SV0-D001",
    "new path into a sensitive domain (requires review)",
    Severity::High,
    "The deployment gave a workload access to sensitive data the approver never saw.",
    "a `new_sensitive_path` delta entry",
    "revoke the grant records of the path (e.g. remove the role assignment), or approve the posture as a new baseline",
);
/// Grade A on a path nobody approved.
pub const DELTA_UNAPPROVED_EXECUTION: Rule = delta_rule(
    "SV0-D002",
    "grade A execution on an unapproved path (rejected)",
    Severity::High,
    "Evidence shows authority the approver never saw already in use: this is an incident, not a review item.",
    "a new or expanded path delta entry with grade A",
    "roll the deployment back, revoke the path's grant records and investigate the execution records",
);
/// Permissions gained on an approved path.
pub const DELTA_EXPANDED: Rule = delta_rule(
    "SV0-D003",
    "expanded permissions on an approved path (requires review)",
    Severity::Medium,
    "The identity gained roles beyond what was approved; the workload can stay, the excess should go.",
    "a `permissions_expanded` delta entry",
    "remove the newly added grant records; the identity and workload stay",
);
/// A new egress boundary.
pub const DELTA_EGRESS: Rule = delta_rule(
    "SV0-D004",
    "new egress boundary (requires review)",
    Severity::Medium,
    "The workload can now send data somewhere (an external endpoint, a model) it could not before.",
    "a `new_egress_boundary` or `egress_changed` delta entry",
    "remove the outbound connection or API credential record",
);
/// A new identity.
pub const DELTA_IDENTITY: Rule = delta_rule(
    "SV0-D005",
    "new identity created (requires review)",
    Severity::Medium,
    "A deployment that provisions an unexpected service principal adds authority nobody approved.",
    "a `new_identity` delta entry",
    "disable or delete the identity record",
);
/// A long-lived credential appeared.
pub const DELTA_CREDENTIAL: Rule = delta_rule(
    "SV0-D006",
    "credential exposure (requires review)",
    Severity::Medium,
    "A long-lived secret appeared for the scope's workloads since the approval.",
    "a `credential_exposure` delta entry",
    "rotate the credential record and configure short-lived token issuance instead",
);
/// A new workload without an owner, or ownership lost.
pub const DELTA_OWNERSHIP: Rule = delta_rule(
    "SV0-D007",
    "ownership gap (requires review)",
    Severity::Medium,
    "A workload with nobody accountable should not proceed; govern it, do not revoke it.",
    "an `ownership_gap` delta entry, or an `ownership_changed` entry to orphaned or decayed",
    "assign an active owner to the workload record before it proceeds",
);
/// Surgical remediation impractical.
pub const DELTA_ROLLBACK: Rule = delta_rule(
    "SV0-D008",
    "full rollback advised (rejected)",
    Severity::High,
    "A wildcard or subscription-wide grant, used unapproved authority, or far more undeclared than intended paths make path-by-path revocation impractical.",
    "the delta's rollback advice (any of its three cases)",
    "roll the deployment back, then rescan and verify against the approved baseline",
);
/// Any other flagged delta entry.
pub const DELTA_FLAGGED: Rule = delta_rule(
    "SV0-D009",
    "other flagged change (requires review)",
    Severity::Low,
    "A change carries a flag (write reach, external egress, an ownership gap) that no more specific rule covers.",
    "a flagged delta entry of any other kind",
    "apply the entry's remediation, or approve the posture as a new baseline",
);
/// An addition nobody declared.
pub const DELTA_UNDECLARED: Rule = delta_rule(
    "SV0-D010",
    "addition not declared in the approved intent (requires review)",
    Severity::Medium,
    "The team, not the tool, tells intended changes from unintended ones: an addition the approval did not declare has been reviewed by nobody.",
    "a new path, expanded permissions, a new identity or a new egress boundary whose delta entry is `unintended` (an intent was approved and does not cover it) or `unreviewed` (the approval declared no intent)",
    "remove the addition's grant records, or approve the posture again with an intent that declares it",
);
/// A remediation rescan that does not match the baseline.
pub const VERIFICATION_MISMATCH: Rule = delta_rule(
    "SV0-V001",
    "remediation rescan does not match the approved baseline (requires review)",
    Severity::High,
    "The fix did not return the posture to what was approved; the remaining differences are listed.",
    "a remediation rescan whose verification finds paths that break the match (undeclared additions, removals, other flagged changes)",
    "apply the remaining remediation and rescan",
);

/// Every rule: entity, gap, path, then delta and verification rules, each group in id order.
pub const CATALOGUE: [Rule; 36] = [
    UNOWNED_WORKLOAD,
    LONG_LIVED_SECRET,
    DISABLED_WITH_GRANTS,
    EXPIRED_CREDENTIAL,
    UNUSED_IDENTITY,
    PRIVILEGED_ROLE,
    TENANT_WIDE_CONSENT,
    FOREIGN_IDENTITY,
    SHARED_IDENTITY,
    SECRET_SPRAWL,
    USER_RUNS_WORKLOAD,
    STATIC_KEY_IDENTITY,
    ORPHANED_SERVICE_PRINCIPAL,
    DANGLING_ASSIGNMENT,
    EVIDENCE_GAP,
    SENSITIVE_WRITE,
    SENSITIVE_EGRESS,
    UNUSED_SENSITIVE,
    BROAD_SCOPE,
    UNOWNED_ACTIVE_PATH,
    ADMIN_REACH,
    EXTERNAL_WRITE,
    UNCLASSIFIED_WRITE,
    SENSITIVE_UNAUDITABLE,
    REDUNDANT_GRANT,
    DELTA_SENSITIVE_PATH,
    DELTA_UNAPPROVED_EXECUTION,
    DELTA_EXPANDED,
    DELTA_EGRESS,
    DELTA_IDENTITY,
    DELTA_CREDENTIAL,
    DELTA_OWNERSHIP,
    DELTA_ROLLBACK,
    DELTA_FLAGGED,
    DELTA_UNDECLARED,
    VERIFICATION_MISMATCH,
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.id == id)
}

/// An identity's latest evidence older than this many days makes it unused.
pub const UNUSED_DAYS: i64 = 90;

/// Directory roles that can grant other authority (Microsoft Entra built-in roles).
pub const PRIVILEGED_DIRECTORY_ROLES: &[&str] = &[
    "Global Administrator",
    "Privileged Role Administrator",
    "Privileged Authentication Administrator",
    "Application Administrator",
    "Cloud Application Administrator",
    "Hybrid Identity Administrator",
    "Security Administrator",
    "User Administrator",
    "Authentication Administrator",
    "Conditional Access Administrator",
    "Directory Writers",
    "Groups Administrator",
    "Exchange Administrator",
    "SharePoint Administrator",
    "Intune Administrator",
];

/// Microsoft Graph application permissions that can grant other authority or reach every user.
pub const PRIVILEGED_APP_PERMISSIONS: &[&str] = &[
    "RoleManagement.ReadWrite.Directory",
    "AppRoleAssignment.ReadWrite.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "Directory.ReadWrite.All",
    "Policy.ReadWrite.ConditionalAccess",
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "ServicePrincipalEndpoint.ReadWrite.All",
];

/// Secrets valid longer than this many days are long-lived.
pub const LONG_LIVED_DAYS: i64 = 180;

/// The instants at which a credential's findings can change with time alone: its expiry
/// (expired, no longer an active secret) and, for a secret whose creation is unknown, the last
/// instant at which its remaining life still counts as long-lived (whole days past
/// `LONG_LIVED_DAYS`). A finding flips when the scan's time moves from one side of an instant
/// to the other, with the instant itself on either side; the projector re-decides credentials
/// whose instants fall between two scans, both ends included.
pub fn credential_instants(credential: &Credential) -> Vec<Timestamp> {
    let Some(expires) = credential.expires_at else { return Vec::new() };
    let mut out = vec![expires];
    if credential.created_at.is_none() {
        out.push(expires.add_days(-(LONG_LIVED_DAYS + 1)));
    }
    out
}

/// One rule's result on one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable id: the same rule on the same subject always gives the same id.
    pub finding_id: String,
    /// The rule.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// What it is about, e.g. `workload:agent-hr-onboarding`.
    pub subject: String,
    /// A specific sentence about this subject.
    pub summary: String,
    /// Workloads concerned (scopes select findings through them).
    pub workloads: Vec<String>,
    /// Paths behind the finding.
    pub path_ids: Vec<String>,
    /// Source records behind the finding.
    pub records: Vec<String>,
    /// What to change.
    pub remediation: Vec<RemediationAction>,
}

/// The stable id of a finding.
pub fn finding_id(rule_id: &str, subject: &str) -> String {
    format!("F-{}", stable_hash("sv0.finding.v1", &[rule_id, subject], 12))
}

fn finding(rule: &Rule, subject: String, summary: String) -> Finding {
    Finding {
        finding_id: finding_id(rule.id, &subject),
        rule_id: rule.id.to_string(),
        title: rule.title.to_string(),
        severity: rule.severity,
        subject,
        summary,
        workloads: Vec::new(),
        path_ids: Vec::new(),
        records: Vec::new(),
        remediation: Vec::new(),
    }
}

/// Whether a finding was opened by a scope's delta (an undeclared addition) rather than by the
/// tenant's entities and paths.
pub fn from_delta(finding: &Finding) -> bool {
    finding.rule_id == DELTA_UNDECLARED.id
}

/// The findings of a scope's delta after a deployment: one per path that an undeclared
/// addition (`unintended` or `unreviewed` entries: a new path, expanded permissions, a new
/// identity, a new egress boundary) reaches, of rule `SV0-D010`. Its subject names the scope,
/// so the same path in two scopes under two baselines gives two findings. Each lists the path,
/// the records to change and, as the last resort, approving it with a declared intent.
pub fn undeclared_additions(scope: &str, baseline_version: u32, entries: &[crate::delta::DeltaEntry]) -> Vec<Finding> {
    use crate::intent::IntentStatus;
    let mut by_path: BTreeMap<&str, Vec<&crate::delta::DeltaEntry>> = BTreeMap::new();
    for e in entries {
        if matches!(e.intent, Some(IntentStatus::Unintended | IntentStatus::Unreviewed)) {
            by_path.entry(e.path_id.as_str()).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for (path_id, group) in by_path {
        let first = group[0];
        let unintended = group.iter().any(|e| e.intent == Some(IntentStatus::Unintended));
        let added: BTreeSet<Permission> = group.iter().flat_map(|e| e.added_permissions.iter().copied()).collect();
        let added: Vec<&str> = added.iter().map(Permission::as_str).collect();
        let why = if unintended {
            format!("the intent approved with baseline v{baseline_version} does not declare it")
        } else {
            format!("baseline v{baseline_version} was approved without a declared intent")
        };
        let gained = if added.is_empty() { "authority".to_string() } else { added.join("/") };
        let mut f = finding(
            &DELTA_UNDECLARED,
            format!("scope:{scope}|path:{path_id}"),
            format!(
                "{} gained {gained} on {} ({}) as {} after baseline v{baseline_version} of {scope}, and {why}",
                first.workload.name, first.destination.name, first.domain.name, first.identity.name
            ),
        );
        f.severity = group.iter().filter_map(|e| e.severity).min().unwrap_or(Severity::Low);
        f.workloads.push(first.workload.id.clone());
        f.path_ids.push(path_id.to_string());
        for action in group.iter().flat_map(|e| &e.remediation_actions) {
            if !f.remediation.iter().any(|a| a.record_id == action.record_id && a.text == action.text) {
                if !f.records.contains(&action.record_id) {
                    f.records.push(action.record_id.clone());
                }
                f.remediation.push(action.clone());
            }
        }
        f.remediation.push(remediation::action(
            "declare_intent",
            path_id,
            format!(
                "or, if {} is meant to hold it, approve scope {scope} again with an intent that declares it (sv0 approve --intent)",
                first.workload.name
            ),
        ));
        out.push(f);
    }
    out
}

/// A path, by id, with its workload: what entity findings list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathOf {
    /// The path.
    pub path_id: String,
    /// Its workload.
    pub workload: String,
}

/// How a rule about one path decides.
type PathRule = fn(&AuthorityPath) -> Option<Finding>;

/// The rules decided on one path alone, with how: they change only when that path does.
const PATH_RULES: [(&Rule, PathRule); 9] = [
    (&SENSITIVE_WRITE, sensitive_write),
    (&UNUSED_SENSITIVE, unused_sensitive),
    (&BROAD_SCOPE, broad_scope),
    (&UNOWNED_ACTIVE_PATH, unowned_active_path),
    (&ADMIN_REACH, admin_reach),
    (&EXTERNAL_WRITE, external_write),
    (&UNCLASSIFIED_WRITE, unclassified_write),
    (&SENSITIVE_UNAUDITABLE, sensitive_unauditable),
    (&REDUNDANT_GRANT, redundant_grant),
];

/// The rules decided on an identity and the records around it.
const IDENTITY_RULES: [&Rule; 11] = [
    &DISABLED_WITH_GRANTS,
    &ORPHANED_SERVICE_PRINCIPAL,
    &DANGLING_ASSIGNMENT,
    &UNUSED_IDENTITY,
    &PRIVILEGED_ROLE,
    &TENANT_WIDE_CONSENT,
    &FOREIGN_IDENTITY,
    &SHARED_IDENTITY,
    &SECRET_SPRAWL,
    &USER_RUNS_WORKLOAD,
    &STATIC_KEY_IDENTITY,
];

/// The subjects whose findings `workload_findings` decides for a workload with these paths.
pub fn workload_subjects<'a>(workload: &str, path_ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids = vec![
        finding_id(UNOWNED_WORKLOAD.id, &format!("workload:{workload}")),
        finding_id(SENSITIVE_EGRESS.id, &format!("workload:{workload}")),
    ];
    for path in path_ids {
        ids.extend(path_subjects(path));
    }
    ids
}

/// The ids of the findings about one path alone: they change only when that path does.
pub fn path_subjects(path_id: &str) -> Vec<String> {
    let subject = format!("path:{path_id}");
    PATH_RULES.iter().map(|(rule, _)| finding_id(rule.id, &subject)).collect()
}

/// The ids of the findings `identity_findings` decides for an identity.
pub fn identity_subjects(identity: &str) -> Vec<String> {
    let subject = format!("identity:{identity}");
    IDENTITY_RULES.iter().map(|rule| finding_id(rule.id, &subject)).collect()
}

/// The ids of the findings `credential_findings` decides for a credential.
pub fn credential_subjects(credential: &str) -> Vec<String> {
    let subject = format!("credential:{credential}");
    [&LONG_LIVED_SECRET, &EXPIRED_CREDENTIAL].iter().map(|rule| finding_id(rule.id, &subject)).collect()
}

/// The findings of one workload, from its paths: unowned workload and sensitive egress about
/// the workload, and every rule about one path.
pub fn workload_findings(paths: &[AuthorityPath]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(first) = paths.first() else { return out };
    let workload = &first.workload;
    if first.owner_state != OwnerState::Assigned {
        let mut f = finding(
            &UNOWNED_WORKLOAD,
            format!("workload:{}", workload.id),
            format!("workload {} is {} and holds {} authority path(s)", workload.name, first.owner_state, paths.len()),
        );
        f.workloads.push(workload.id.clone());
        f.path_ids = paths.iter().map(|p| p.path_id.clone()).collect();
        f.records = vec![workload.id.clone()];
        f.records.extend(first.owners.iter().cloned());
        f.remediation.push(remediation::assign_owner(workload));
        out.push(f);
    }
    for path in paths {
        out.extend(path_findings(path));
    }
    sensitive_egress(paths, &mut out);
    out
}

/// The findings about one path alone.
pub fn path_findings(path: &AuthorityPath) -> Vec<Finding> {
    PATH_RULES.iter().filter_map(|(_, rule)| rule(path)).collect()
}

/// A finding about one path: its workload, the path, and the subject `path:<id>`.
fn on_path(rule: &Rule, path: &AuthorityPath, summary: String) -> Finding {
    let mut f = finding(rule, format!("path:{}", path.path_id), summary);
    f.workloads.push(path.workload.id.clone());
    f.path_ids.push(path.path_id.clone());
    f
}

/// Lists grants as records to remove.
fn remove_grants<'a>(f: &mut Finding, grants: impl IntoIterator<Item = &'a GrantRef>, identity: &NodeRef) {
    let mut named: BTreeSet<String> = f.records.iter().cloned().collect();
    for grant in grants {
        // One record may confer several grants (a group's assignment, an assignment above the
        // containers it opens): it is named once.
        let action = remediation::remove_grant(grant, identity);
        if named.insert(action.record_id.clone()) {
            f.records.push(action.record_id.clone());
            f.remediation.push(action);
        }
    }
}

/// The findings of a credential: long-lived secret, expired credential. `paths` are the paths
/// of the credential's identity.
pub fn credential_findings(
    credential: &Credential,
    identity_name: &str,
    paths: &[PathOf],
    observed_at: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let expired = credential.expires_at.is_some_and(|at| at < observed_at);
    let workloads: Vec<String> =
        paths.iter().map(|p| p.workload.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let path_ids: Vec<String> = paths.iter().map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if expired {
        let mut f = finding(
            &EXPIRED_CREDENTIAL,
            format!("credential:{}", credential.id),
            format!(
                "credential {} of identity {identity_name} expired on {} and is still registered",
                credential.id,
                credential.expires_at.map(|t| t.date()).unwrap_or_default()
            ),
        );
        f.workloads.clone_from(&workloads);
        f.path_ids.clone_from(&path_ids);
        f.records = vec![credential.id.clone(), credential.identity.clone()];
        f.remediation.push(remediation::action(
            "delete_credential",
            &credential.id,
            format!("delete expired credential {} from identity {}", credential.id, credential.identity),
        ));
        out.push(f);
    }
    if !matches!(credential.kind, CredentialKind::Password | CredentialKind::ApiKey) || expired {
        return out;
    }
    let lifetime_days = match (credential.created_at, credential.expires_at) {
        (_, None) => None,
        (Some(created), Some(expires)) => Some((expires.0 - created.0) / Timestamp::DAY_MS),
        (None, Some(expires)) => Some((expires.0 - observed_at.0) / Timestamp::DAY_MS),
    };
    if lifetime_days.is_some_and(|days| days <= LONG_LIVED_DAYS) {
        return out;
    }
    let lifetime = match (lifetime_days, credential.created_at, credential.expires_at) {
        (None, _, _) => "never expires".to_string(),
        (Some(days), Some(_), _) => format!("is valid for {days} days"),
        // Without a creation date the lifetime is counted from the scan; the summary names the
        // expiry date so that it does not change from one scan to the next.
        (Some(_), None, Some(expires)) => {
            format!("expires on {}, more than {LONG_LIVED_DAYS} days after the scan", expires.date())
        }
        (Some(days), None, None) => format!("is valid for {days} days"),
    };
    let mut f = finding(
        &LONG_LIVED_SECRET,
        format!("credential:{}", credential.id),
        format!("secret {} of identity {identity_name} {lifetime}", credential.id),
    );
    f.workloads = workloads;
    f.path_ids = path_ids;
    f.records = vec![credential.id.clone(), credential.identity.clone()];
    f.remediation.push(remediation::action("rotate_credential", &credential.id, format!(
            "rotate credential {} of identity {}: replace it with a federated credential or a secret valid at most {LONG_LIVED_DAYS} days",
            credential.id, credential.identity
        )));
    out.push(f);
    out
}

/// What the identity rules look at: an identity and the records around it.
#[derive(Debug, Clone, Copy)]
pub struct IdentityFacts<'a> {
    /// The identity.
    pub identity: &'a Identity,
    /// Its grants.
    pub grants: &'a [Grant],
    /// Its run-as bindings.
    pub bindings: &'a [Binding],
    /// Its credentials.
    pub credentials: &'a [Credential],
    /// The time of its latest evidence (sign-in or execution record), if any.
    pub last_activity: Option<Timestamp>,
    /// Its paths.
    pub paths: &'a [PathOf],
    /// The scan's time.
    pub now: Timestamp,
}

impl IdentityFacts<'_> {
    fn node(&self) -> NodeRef {
        NodeRef { id: self.identity.id.clone(), name: self.identity.name.clone() }
    }

    fn finding(&self, rule: &Rule, summary: String) -> Finding {
        let mut f = finding(rule, format!("identity:{}", self.identity.id), summary);
        f.workloads = self.paths.iter().map(|p| p.workload.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        f.workloads.extend(self.bindings.iter().map(|b| b.workload.clone()));
        f.workloads.sort();
        f.workloads.dedup();
        f.path_ids = self.paths.iter().map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        f
    }

    fn remove_grants<'g>(&self, f: &mut Finding, grants: impl IntoIterator<Item = &'g Grant>) {
        let node = self.node();
        for grant in grants {
            remove_grants(f, [&GrantRef::of(grant)], &node);
        }
    }
}

/// The findings of an identity: disabled or unused with grants, privileged role, tenant-wide
/// consent, homed in another tenant, shared by workloads, several secrets, a person's account
/// or a static key running a workload.
pub fn identity_findings(facts: &IdentityFacts<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let identity = facts.identity;
    let name = &identity.name;
    let grants = facts.grants;
    if identity.presence == Presence::Deleted && !grants.is_empty() {
        let records: BTreeSet<&str> = grants.iter().map(Grant::record_id).collect();
        let mut f = facts.finding(
            &DANGLING_ASSIGNMENT,
            format!("{} record(s) still name principal {}, which no longer exists", records.len(), identity.id),
        );
        f.workloads.clear();
        f.path_ids.clear();
        for grant in grants {
            let record = grant.record_id();
            if !f.records.iter().any(|r| r == record) {
                f.records.push(record.to_string());
                f.remediation.push(remediation::action(
                    "delete_grant",
                    record,
                    format!(
                        "delete {} {record} ({} on {}): its principal {} no longer exists",
                        grant.source.record_name(),
                        grant.role,
                        grant.scope,
                        identity.id
                    ),
                ));
            }
        }
        out.push(f);
        return out;
    }
    let standing: Vec<&Grant> = grants.iter().filter(|g| g.source != GrantSource::Oauth2PermissionGrant).collect();
    if identity.kind == IdentityKind::ServicePrincipal
        && identity.presence == Presence::Recorded
        && identity.home_tenant.is_none()
        && identity.owners.is_empty()
        && !standing.is_empty()
    {
        let mut f = facts.finding(
            &ORPHANED_SERVICE_PRINCIPAL,
            format!(
                "service principal {name} has no owner on it or its application and holds {} grant(s)",
                standing.len()
            ),
        );
        f.records.push(identity.id.clone());
        f.remediation.push(remediation::action(
            "assign_owner",
            &identity.id,
            format!("assign an accountable owner to the application of service principal {name} ({})", identity.id),
        ));
        facts.remove_grants(&mut f, standing);
        out.push(f);
    }
    if !identity.enabled && !grants.is_empty() {
        let mut f = facts
            .finding(&DISABLED_WITH_GRANTS, format!("disabled identity {name} still holds {} grant(s)", grants.len()));
        f.workloads.clear();
        f.path_ids.clear();
        facts.remove_grants(&mut f, grants);
        out.push(f);
    }
    if let Some(last) = facts.last_activity.filter(|last| *last < facts.now.add_days(-UNUSED_DAYS))
        && identity.enabled
        && !grants.is_empty()
    {
        // The date, not "N days ago": a finding's content changes only when its facts do.
        let mut f = facts.finding(
            &UNUSED_IDENTITY,
            format!(
                "identity {name} has not been active since {}, more than {UNUSED_DAYS} days, and still holds {} grant(s)",
                last.date(),
                grants.len()
            ),
        );
        facts.remove_grants(&mut f, grants);
        out.push(f);
    }
    let privileged: Vec<&Grant> = grants.iter().filter(|g| is_privileged(g)).collect();
    if !privileged.is_empty() {
        let roles: BTreeSet<&str> = privileged.iter().map(|g| g.role.as_str()).collect();
        let mut f = facts.finding(
            &PRIVILEGED_ROLE,
            format!("identity {name} holds {}", roles.into_iter().collect::<Vec<_>>().join(", ")),
        );
        facts.remove_grants(&mut f, privileged);
        out.push(f);
    }
    let tenant_wide: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.source == GrantSource::Oauth2PermissionGrant && g.consent == Some(Consent::AllPrincipals))
        .collect();
    if !tenant_wide.is_empty() {
        let scopes: BTreeSet<&str> = tenant_wide.iter().map(|g| g.role.as_str()).collect();
        let mut f = facts.finding(
            &TENANT_WIDE_CONSENT,
            format!(
                "identity {name} holds tenant-wide consent to {}",
                scopes.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
        facts.remove_grants(&mut f, tenant_wide);
        out.push(f);
    }
    if let Some(home) = identity.home_tenant.as_deref()
        && !grants.is_empty()
    {
        let mut f = facts.finding(
            &FOREIGN_IDENTITY,
            format!("identity {name} is homed in tenant {home} and holds {} grant(s) here", grants.len()),
        );
        facts.remove_grants(&mut f, grants);
        out.push(f);
    }
    let workloads: BTreeSet<&str> = facts.bindings.iter().map(|b| b.workload.as_str()).collect();
    if workloads.len() > 1 {
        let mut f = facts.finding(
            &SHARED_IDENTITY,
            format!(
                "identity {name} runs {} workloads: {}",
                workloads.len(),
                workloads.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        );
        // Every binding but the first (in id order) is the one to replace.
        let mut bindings: Vec<&Binding> = facts.bindings.iter().collect();
        bindings.sort_by(|a, b| a.id.cmp(&b.id));
        f.records = bindings.iter().map(|b| b.id.clone()).collect();
        for binding in bindings.iter().skip(1) {
            f.remediation.push(remediation::action(
                "replace_binding",
                &binding.id,
                format!(
                    "give workload {} its own identity: replace run-as binding {} to {name}",
                    binding.workload, binding.id
                ),
            ));
        }
        out.push(f);
    }
    let mut secrets: Vec<&Credential> = facts
        .credentials
        .iter()
        .filter(|c| matches!(c.kind, CredentialKind::Password | CredentialKind::ApiKey))
        .filter(|c| c.expires_at.is_none_or(|at| at >= facts.now))
        .collect();
    if secrets.len() > 1 {
        // The newest secret stays; ties and undated ones order by id.
        secrets.sort_by(|a, b| (b.created_at, &a.id).cmp(&(a.created_at, &b.id)));
        let mut f = facts.finding(&SECRET_SPRAWL, format!("identity {name} has {} active secrets", secrets.len()));
        f.records = secrets.iter().map(|c| c.id.clone()).collect();
        f.records.sort();
        for secret in secrets.iter().skip(1) {
            f.remediation.push(remediation::action(
                "delete_credential",
                &secret.id,
                format!("delete secret {} of identity {name}; keep only {}", secret.id, secrets[0].id),
            ));
        }
        out.push(f);
    }
    let runs_as = |kind: IdentityKind, rule: &Rule, what: &str, out: &mut Vec<Finding>| {
        // An inferred identity's kind is a guess from a reference: only its own record says
        // it is a person or a key.
        if identity.kind != kind || facts.bindings.is_empty() || identity.presence == Presence::Inferred {
            return;
        }
        let mut f = facts.finding(
            rule,
            format!("{what} {name} runs workload(s) {}", workloads.iter().copied().collect::<Vec<_>>().join(", ")),
        );
        let mut bindings: Vec<&Binding> = facts.bindings.iter().collect();
        bindings.sort_by(|a, b| a.id.cmp(&b.id));
        for binding in bindings {
            f.records.push(binding.id.clone());
            f.remediation.push(remediation::action("replace_binding", &binding.id, format!(
                    "run workload {} as a managed or agent identity instead of {what} {name}: replace run-as binding {}",
                    binding.workload, binding.id
                )));
        }
        out.push(f);
    };
    runs_as(IdentityKind::User, &USER_RUNS_WORKLOAD, "user account", &mut out);
    runs_as(IdentityKind::ApiKey, &STATIC_KEY_IDENTITY, "static API key", &mut out);
    out
}

/// Whether a grant is a privileged directory role or an escalating Graph permission.
pub fn is_privileged(grant: &Grant) -> bool {
    let named = |list: &[&str]| list.iter().any(|r| r.eq_ignore_ascii_case(grant.role.trim()));
    match grant.source {
        GrantSource::DirectoryRoleAssignment => named(PRIVILEGED_DIRECTORY_ROLES),
        GrantSource::AppRoleAssignment => named(PRIVILEGED_APP_PERMISSIONS),
        _ => false,
    }
}

/// Whether a grant's scope reaches more than one resource by construction: `/`, a wildcard,
/// a whole subscription or a management group.
pub fn is_broad_scope(scope: &str) -> bool {
    let scope = scope.trim().trim_end_matches('/');
    if scope.is_empty() || scope.contains('*') {
        return true;
    }
    let parts: Vec<&str> = scope.trim_start_matches('/').split('/').collect();
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    match lower.as_slice() {
        [subscriptions, _] if subscriptions == "subscriptions" => true,
        [providers, management, groups, _]
            if providers == "providers" && management == "microsoft.management" && groups == "managementgroups" =>
        {
            true
        }
        _ => false,
    }
}

/// The evidence-gap finding of a destination, if paths to it can never reach grade A.
/// `gaps` are the paths to it that are evidence gaps.
pub fn evidence_gap_finding(destination: &Destination, gaps: &[PathOf]) -> Option<Finding> {
    let state = destination.execution_logs.filter(|l| l.blind())?;
    if gaps.is_empty() {
        return None;
    }
    let source =
        destination.execution_log_source.clone().unwrap_or_else(|| format!("execution logs on {}", destination.name));
    // Disabled logs are switched on at the resource; logs collected elsewhere are read by SV0.
    let verb = if state == crate::model::LogState::Unread { "have SV0 read" } else { "enable" };
    let mut f = finding(
        &EVIDENCE_GAP,
        format!("destination:{}", destination.id),
        format!("{verb} {source} to close {} evidence gap(s) on {}", gaps.len(), destination.name),
    );
    f.workloads = gaps.iter().map(|p| p.workload.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.path_ids = gaps.iter().map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.records = vec![destination.id.clone()];
    f.remediation.push(remediation::action(
        "enable_logging",
        &destination.id,
        format!("{verb} {source} so that the {} path(s) to {} can be confirmed", gaps.len(), destination.name),
    ));
    Some(f)
}

fn sensitive_write(path: &AuthorityPath) -> Option<Finding> {
    if !path.domain.sensitive || !path.modifies() {
        return None;
    }
    let modifying: Vec<&str> = path.permissions.iter().filter(|p| p.modifies()).map(Permission::as_str).collect();
    let mut f = on_path(
        &SENSITIVE_WRITE,
        path,
        format!(
            "{} can {} {} data in {} as {}",
            path.workload.name,
            modifying.join("/"),
            path.domain.name,
            path.destination.name,
            path.identity.name
        ),
    );
    remove_grants(
        &mut f,
        path.grants.iter().filter(|g| g.permissions.iter().any(Permission::modifies)),
        &path.identity,
    );
    Some(f)
}

fn unused_sensitive(path: &AuthorityPath) -> Option<Finding> {
    if !path.domain.sensitive || path.grade != Grade::C {
        return None;
    }
    let mut f = on_path(
        &UNUSED_SENSITIVE,
        path,
        format!(
            "{} holds {} on {} ({}) with no execution evidence",
            path.workload.name,
            path.permissions.iter().map(Permission::as_str).collect::<Vec<_>>().join("/"),
            path.destination.name,
            path.domain.name
        ),
    );
    remove_grants(&mut f, &path.grants, &path.identity);
    Some(f)
}

fn broad_scope(path: &AuthorityPath) -> Option<Finding> {
    let broad: Vec<&GrantRef> = path.grants.iter().filter(|g| is_broad_scope(&g.scope)).collect();
    if broad.is_empty() {
        return None;
    }
    let scopes: BTreeSet<&str> = broad.iter().map(|g| g.scope.as_str()).collect();
    let mut f = on_path(
        &BROAD_SCOPE,
        path,
        format!(
            "{} reaches {} as {} through a grant at {}",
            path.workload.name,
            path.destination.name,
            path.identity.name,
            scopes.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );
    for grant in broad {
        f.records.push(grant.id.clone());
        f.remediation.push(remediation::action(
            "narrow_grant",
            &grant.id,
            format!(
                "{}; assign {} to {} at {} only",
                remediation::remove_grant(grant, &path.identity).text,
                grant.role,
                path.identity.name,
                path.destination.id
            ),
        ));
    }
    Some(f)
}

fn unowned_active_path(path: &AuthorityPath) -> Option<Finding> {
    if path.grade != Grade::A || path.owner_state == OwnerState::Assigned {
        return None;
    }
    let mut f = on_path(
        &UNOWNED_ACTIVE_PATH,
        path,
        format!(
            "{} acted on {} as {} (evidence {}) and its ownership is {}",
            path.workload.name,
            path.destination.name,
            path.identity.name,
            path.grade_evidence.as_deref().unwrap_or("-"),
            path.owner_state
        ),
    );
    f.records.push(path.workload.id.clone());
    f.records.extend(path.grade_evidence.iter().cloned());
    f.remediation.push(remediation::assign_owner(&path.workload));
    Some(f)
}

fn admin_reach(path: &AuthorityPath) -> Option<Finding> {
    if !path.permissions.contains(&Permission::Admin) {
        return None;
    }
    let mut f = on_path(
        &ADMIN_REACH,
        path,
        format!("{} can administer {} as {}", path.workload.name, path.destination.name, path.identity.name),
    );
    remove_grants(&mut f, path.grants.iter().filter(|g| g.permissions.contains(&Permission::Admin)), &path.identity);
    Some(f)
}

fn external_write(path: &AuthorityPath) -> Option<Finding> {
    if path.egress != EgressClass::ExternalHttp || !path.modifies() {
        return None;
    }
    let mut f = on_path(
        &EXTERNAL_WRITE,
        path,
        format!(
            "{} can write to external endpoint {} as {}",
            path.workload.name, path.destination.name, path.identity.name
        ),
    );
    remove_grants(
        &mut f,
        path.grants.iter().filter(|g| g.permissions.iter().any(Permission::modifies)),
        &path.identity,
    );
    Some(f)
}

fn unclassified_write(path: &AuthorityPath) -> Option<Finding> {
    if path.domain.id != crate::paths::UNCLASSIFIED || !path.modifies() {
        return None;
    }
    let mut f = on_path(
        &UNCLASSIFIED_WRITE,
        path,
        format!("{} can write to {}, whose data is not classified", path.workload.name, path.destination.name),
    );
    f.records.push(path.destination.id.clone());
    f.remediation.push(remediation::action(
        "classify_destination",
        &path.destination.id,
        format!(
            "classify destination {} ({}): tag it with its data domain or add a classification rule",
            path.destination.name, path.destination.id
        ),
    ));
    Some(f)
}

fn sensitive_unauditable(path: &AuthorityPath) -> Option<Finding> {
    if !path.domain.sensitive || !path.evidence_gap {
        return None;
    }
    let mut f = on_path(
        &SENSITIVE_UNAUDITABLE,
        path,
        format!(
            "{}'s access to {} data in {} can never be audited: its execution logs are disabled",
            path.workload.name, path.domain.name, path.destination.name
        ),
    );
    f.records.push(path.destination.id.clone());
    f.remediation.push(remediation::action(
        "enable_logging",
        &path.destination.id,
        format!("enable the execution logs of {} ({})", path.destination.name, path.destination.id),
    ));
    Some(f)
}

fn redundant_grant(path: &AuthorityPath) -> Option<Finding> {
    // From the last grant (in id order) back, a grant whose permissions the other remaining
    // grants all confer is redundant; the first of identical grants is the one kept. How many
    // remaining grants confer each permission is counted once and kept up to date, so the rule
    // is linear in the grants (after the sort), whatever one pair holds.
    let mut grants: Vec<(&GrantRef, BTreeSet<Permission>)> =
        path.grants.iter().map(|g| (g, g.permissions.iter().copied().collect())).collect();
    grants.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let mut conferring: BTreeMap<Permission, usize> = BTreeMap::new();
    for (_, permissions) in &grants {
        for p in permissions {
            *conferring.entry(*p).or_default() += 1;
        }
    }
    let mut redundant: Vec<&GrantRef> = Vec::new();
    for (grant, permissions) in grants.iter().rev() {
        // Another remaining grant confers `p` when more than this one does.
        let covered =
            !permissions.is_empty() && permissions.iter().all(|p| conferring.get(p).copied().unwrap_or(0) > 1);
        if covered {
            for p in permissions {
                if let Some(n) = conferring.get_mut(p) {
                    *n -= 1;
                }
            }
            redundant.push(grant);
        }
    }
    if redundant.is_empty() {
        return None;
    }
    redundant.reverse();
    let mut f = on_path(
        &REDUNDANT_GRANT,
        path,
        format!(
            "{} holds {} grant(s) on {} whose permissions other grants already confer",
            path.identity.name,
            redundant.len(),
            path.destination.name
        ),
    );
    remove_grants(&mut f, redundant, &path.identity);
    Some(f)
}

fn sensitive_egress(workload_paths: &[AuthorityPath], out: &mut Vec<Finding>) {
    let Some(first) = workload_paths.first() else { return };
    let workload_id = first.workload.id.as_str();
    let reads: Vec<&AuthorityPath> =
        workload_paths.iter().filter(|p| p.domain.sensitive && p.permissions.contains(&Permission::Read)).collect();
    let exits: Vec<&AuthorityPath> =
        workload_paths.iter().filter(|p| matches!(p.egress, EgressClass::LlmApi | EgressClass::ExternalHttp)).collect();
    if reads.is_empty() || exits.is_empty() {
        return;
    }
    let domains: BTreeSet<&str> = reads.iter().map(|p| p.domain.name.as_str()).collect();
    let egress: BTreeSet<&str> = exits.iter().map(|p| p.egress.as_str()).collect();
    let mut f = finding(
        &SENSITIVE_EGRESS,
        format!("workload:{workload_id}"),
        format!(
            "{} can read {} data and reach {} egress",
            first.workload.name,
            domains.into_iter().collect::<Vec<_>>().join(", "),
            egress.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );
    f.workloads.push(workload_id.to_string());
    f.path_ids =
        reads.iter().chain(exits.iter()).map(|p| p.path_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    f.records =
        exits.iter().flat_map(|p| p.grants.iter().map(|g| g.id.clone())).collect::<BTreeSet<_>>().into_iter().collect();
    for path in &exits {
        f.remediation.push(remediation::action(
            "review_destination",
            &path.destination.id,
            format!(
                "confirm that {} may send {} data to {} ({}), or remove its access",
                path.workload.name, reads[0].domain.name, path.destination.name, path.egress
            ),
        ));
    }
    out.push(f);
}
