//! The catalogue: every rule with why it matters, what triggers it and how to fix it
//! (`CATALOGUE`, from which `docs/rules.md` is generated).

use super::*;

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
