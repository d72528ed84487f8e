//! Rules decided on an entity and the records around it: identities (`IDENTITY_RULES`, a
//! table of rule and function), credentials and destinations.

use std::collections::BTreeSet;

use crate::ids::Timestamp;
use crate::model::{
    Binding, Consent, Credential, CredentialKind, Destination, Grant, GrantSource, Identity, IdentityKind, Presence,
};
use crate::paths::{GrantRef, NodeRef};
use crate::remediation::{self};

use super::*;

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

/// The ids of the findings `identity_findings` decides for an identity.
pub fn identity_subjects(identity: &str) -> Vec<String> {
    let subject = format!("identity:{identity}");
    identity_rule_ids().map(|rule| finding_id(rule, &subject)).collect()
}

/// The ids of the findings `credential_findings` decides for a credential.
pub fn credential_subjects(credential: &str) -> Vec<String> {
    let subject = format!("credential:{credential}");
    [&LONG_LIVED_SECRET, &EXPIRED_CREDENTIAL].iter().map(|rule| finding_id(rule.id, &subject)).collect()
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

/// A rule decided on an identity: its finding, when the identity and its records trigger it.
type IdentityRule = fn(&IdentityFacts<'_>) -> Option<Finding>;

/// The rules decided on an identity and the records around it, each with the function that
/// decides it, in the order their findings are listed.
const IDENTITY_RULES: [(&Rule, IdentityRule); 11] = [
    (&DANGLING_ASSIGNMENT, dangling_assignment),
    (&ORPHANED_SERVICE_PRINCIPAL, orphaned_service_principal),
    (&DISABLED_WITH_GRANTS, disabled_with_grants),
    (&UNUSED_IDENTITY, unused_identity),
    (&PRIVILEGED_ROLE, privileged_role),
    (&TENANT_WIDE_CONSENT, tenant_wide_consent),
    (&FOREIGN_IDENTITY, foreign_identity),
    (&SHARED_IDENTITY, shared_identity),
    (&SECRET_SPRAWL, secret_sprawl),
    (&USER_RUNS_WORKLOAD, user_runs_workload),
    (&STATIC_KEY_IDENTITY, static_key_identity),
];

/// The findings of an identity: disabled or unused with grants, privileged role, tenant-wide
/// consent, homed in another tenant, shared by workloads, several secrets, a person's account
/// or a static key running a workload. A principal that no longer exists is only a dangling
/// assignment: the other rules speak of an identity that does.
pub fn identity_findings(facts: &IdentityFacts<'_>) -> Vec<Finding> {
    let [(_, dangling), others @ ..] = &IDENTITY_RULES;
    if let Some(f) = dangling(facts) {
        return vec![f];
    }
    others.iter().filter_map(|(_, rule)| rule(facts)).collect()
}

/// The subjects `identity_findings` decides for an identity.
fn identity_rule_ids() -> impl Iterator<Item = &'static str> {
    IDENTITY_RULES.iter().map(|(rule, _)| rule.id)
}

fn dangling_assignment(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let (identity, grants) = (facts.identity, facts.grants);
    if identity.presence != Presence::Deleted || grants.is_empty() {
        return None;
    }
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
    Some(f)
}

fn orphaned_service_principal(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let (identity, name) = (facts.identity, &facts.identity.name);
    let standing: Vec<&Grant> =
        facts.grants.iter().filter(|g| g.source != GrantSource::Oauth2PermissionGrant).collect();
    if identity.kind != IdentityKind::ServicePrincipal
        || identity.presence != Presence::Recorded
        || identity.home_tenant.is_some()
        || !identity.owners.is_empty()
        || standing.is_empty()
    {
        return None;
    }
    let mut f = facts.finding(
        &ORPHANED_SERVICE_PRINCIPAL,
        format!("service principal {name} has no owner on it or its application and holds {} grant(s)", standing.len()),
    );
    f.records.push(identity.id.clone());
    f.remediation.push(remediation::action(
        "assign_owner",
        &identity.id,
        format!("assign an accountable owner to the application of service principal {name} ({})", identity.id),
    ));
    facts.remove_grants(&mut f, standing);
    Some(f)
}

fn disabled_with_grants(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let grants = facts.grants;
    if facts.identity.enabled || grants.is_empty() {
        return None;
    }
    let mut f = facts.finding(
        &DISABLED_WITH_GRANTS,
        format!("disabled identity {} still holds {} grant(s)", facts.identity.name, grants.len()),
    );
    f.workloads.clear();
    f.path_ids.clear();
    facts.remove_grants(&mut f, grants);
    Some(f)
}

fn unused_identity(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let grants = facts.grants;
    let last = facts.last_activity.filter(|last| *last < facts.now.add_days(-UNUSED_DAYS))?;
    if !facts.identity.enabled || grants.is_empty() {
        return None;
    }
    // The date, not "N days ago": a finding's content changes only when its facts do.
    let mut f = facts.finding(
        &UNUSED_IDENTITY,
        format!(
            "identity {} has not been active since {}, more than {UNUSED_DAYS} days, and still holds {} grant(s)",
            facts.identity.name,
            last.date(),
            grants.len()
        ),
    );
    facts.remove_grants(&mut f, grants);
    Some(f)
}

fn privileged_role(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let privileged: Vec<&Grant> = facts.grants.iter().filter(|g| is_privileged(g)).collect();
    if privileged.is_empty() {
        return None;
    }
    let roles: BTreeSet<&str> = privileged.iter().map(|g| g.role.as_str()).collect();
    let mut f = facts.finding(
        &PRIVILEGED_ROLE,
        format!("identity {} holds {}", facts.identity.name, roles.into_iter().collect::<Vec<_>>().join(", ")),
    );
    facts.remove_grants(&mut f, privileged);
    Some(f)
}

fn tenant_wide_consent(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let tenant_wide: Vec<&Grant> = facts
        .grants
        .iter()
        .filter(|g| g.source == GrantSource::Oauth2PermissionGrant && g.consent == Some(Consent::AllPrincipals))
        .collect();
    if tenant_wide.is_empty() {
        return None;
    }
    let scopes: BTreeSet<&str> = tenant_wide.iter().map(|g| g.role.as_str()).collect();
    let mut f = facts.finding(
        &TENANT_WIDE_CONSENT,
        format!(
            "identity {} holds tenant-wide consent to {}",
            facts.identity.name,
            scopes.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );
    facts.remove_grants(&mut f, tenant_wide);
    Some(f)
}

fn foreign_identity(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let home = facts.identity.home_tenant.as_deref()?;
    let grants = facts.grants;
    if grants.is_empty() {
        return None;
    }
    let mut f = facts.finding(
        &FOREIGN_IDENTITY,
        format!("identity {} is homed in tenant {home} and holds {} grant(s) here", facts.identity.name, grants.len()),
    );
    facts.remove_grants(&mut f, grants);
    Some(f)
}

/// The workloads an identity runs, by id.
fn workloads_run<'a>(facts: &IdentityFacts<'a>) -> BTreeSet<&'a str> {
    facts.bindings.iter().map(|b| b.workload.as_str()).collect()
}

fn shared_identity(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let name = &facts.identity.name;
    let workloads = workloads_run(facts);
    if workloads.len() <= 1 {
        return None;
    }
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
    Some(f)
}

fn secret_sprawl(facts: &IdentityFacts<'_>) -> Option<Finding> {
    let name = &facts.identity.name;
    let mut secrets: Vec<&Credential> = facts
        .credentials
        .iter()
        .filter(|c| matches!(c.kind, CredentialKind::Password | CredentialKind::ApiKey))
        .filter(|c| c.expires_at.is_none_or(|at| at >= facts.now))
        .collect();
    if secrets.len() <= 1 {
        return None;
    }
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
    Some(f)
}

fn user_runs_workload(facts: &IdentityFacts<'_>) -> Option<Finding> {
    runs_as(facts, IdentityKind::User, &USER_RUNS_WORKLOAD, "user account")
}

fn static_key_identity(facts: &IdentityFacts<'_>) -> Option<Finding> {
    runs_as(facts, IdentityKind::ApiKey, &STATIC_KEY_IDENTITY, "static API key")
}

/// A workload run as an identity of `kind` (a person's account, a static key).
fn runs_as(facts: &IdentityFacts<'_>, kind: IdentityKind, rule: &Rule, what: &str) -> Option<Finding> {
    let (identity, name) = (facts.identity, &facts.identity.name);
    // An inferred identity's kind is a guess from a reference: only its own record says it is
    // a person or a key.
    if identity.kind != kind || facts.bindings.is_empty() || identity.presence == Presence::Inferred {
        return None;
    }
    let workloads = workloads_run(facts);
    let mut f = facts.finding(
        rule,
        format!("{what} {name} runs workload(s) {}", workloads.iter().copied().collect::<Vec<_>>().join(", ")),
    );
    let mut bindings: Vec<&Binding> = facts.bindings.iter().collect();
    bindings.sort_by(|a, b| a.id.cmp(&b.id));
    for binding in bindings {
        f.records.push(binding.id.clone());
        f.remediation.push(remediation::action(
            "replace_binding",
            &binding.id,
            format!(
                "run workload {} as a managed or agent identity instead of {what} {name}: replace run-as binding {}",
                binding.workload, binding.id
            ),
        ));
    }
    Some(f)
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
