//! Rules decided on a path (`PATH_RULES`, a table of rule and function) and on a workload's
//! paths together.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{EgressClass, Permission};
use crate::paths::{AuthorityPath, Grade, GrantRef, NodeRef, OwnerState};
use crate::remediation::{self};

use super::*;

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

/// The findings of one workload, from its paths: unowned workload and sensitive egress about
/// the workload, and every rule about one path.
pub fn workload_findings(paths: &[AuthorityPath]) -> Vec<Finding> {
    let mut sorted: Vec<Seen<'_>> = paths.iter().map(Seen::of_path).collect();
    sorted.sort_by(|a, b| a.path_id.cmp(b.path_id));
    let mut out: Vec<Finding> = unowned_workload(&sorted).into_iter().collect();
    for path in paths {
        out.extend(path_findings(path));
    }
    sensitive_egress(&sorted, &mut out);
    out
}

/// What the rules about a whole workload read of one of its paths: a few fields of it, so a
/// workload's paths can be kept as facts beside them and its findings decided again without
/// reading the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFacts {
    /// The path.
    pub path_id: String,
    /// Its workload.
    pub workload: NodeRef,
    /// Whether someone is accountable for it.
    pub owner_state: OwnerState,
    /// The workload's owners as the path names them.
    pub owners: Vec<String>,
    /// The domain's name, when the path reads sensitive data.
    pub sensitive_read: Option<String>,
    /// Where the path lets data leave, when it does.
    pub exit: Option<Exit>,
}

/// A path whose destination lets data leave: to an LLM API or an external HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The egress class.
    pub egress: EgressClass,
    /// The destination.
    pub destination: NodeRef,
    /// The grants behind the path.
    pub grants: Vec<String>,
}

impl PathFacts {
    /// The facts of a path.
    pub fn of(path: &AuthorityPath) -> PathFacts {
        let seen = Seen::of_path(path);
        PathFacts {
            path_id: path.path_id.clone(),
            workload: path.workload.clone(),
            owner_state: path.owner_state,
            owners: path.owners.clone(),
            sensitive_read: seen.sensitive_read.map(str::to_string),
            exit: seen.exit.map(|(egress, destination, grants)| Exit {
                egress,
                destination: destination.clone(),
                grants: grants.into_iter().map(str::to_string).collect(),
            }),
        }
    }
}

/// A way out: the egress class, the destination and the grants of a path that lets data leave.
type WayOut<'a> = (EgressClass, &'a NodeRef, Vec<&'a str>);

/// What the rules about a whole workload read of one of its paths, borrowed from the path or
/// from its kept [`PathFacts`].
struct Seen<'a> {
    path_id: &'a str,
    workload: &'a NodeRef,
    owner_state: OwnerState,
    owners: &'a [String],
    /// The domain's name, when the path reads sensitive data.
    sensitive_read: Option<&'a str>,
    /// Its way out, when the path lets data leave.
    exit: Option<WayOut<'a>>,
}

impl<'a> Seen<'a> {
    fn of_path(path: &'a AuthorityPath) -> Seen<'a> {
        Seen {
            path_id: &path.path_id,
            workload: &path.workload,
            owner_state: path.owner_state,
            owners: &path.owners,
            sensitive_read: (path.domain.sensitive && path.permissions.contains(&Permission::Read))
                .then_some(path.domain.name.as_str()),
            exit: matches!(path.egress, EgressClass::LlmApi | EgressClass::ExternalHttp)
                .then(|| (path.egress, &path.destination, path.grants.iter().map(|g| g.id.as_str()).collect())),
        }
    }

    fn of_facts(facts: &'a PathFacts) -> Seen<'a> {
        Seen {
            path_id: &facts.path_id,
            workload: &facts.workload,
            owner_state: facts.owner_state,
            owners: &facts.owners,
            sensitive_read: facts.sensitive_read.as_deref(),
            exit: facts
                .exit
                .as_ref()
                .map(|e| (e.egress, &e.destination, e.grants.iter().map(String::as_str).collect())),
        }
    }
}

/// The findings about a whole workload (unowned workload, sensitive egress), from the facts of
/// all of its paths sorted by path id: [`workload_findings`] without the rules about one path.
pub fn whole_workload_findings(paths: &[PathFacts]) -> Vec<Finding> {
    let seen: Vec<Seen<'_>> = paths.iter().map(Seen::of_facts).collect();
    let mut out: Vec<Finding> = unowned_workload(&seen).into_iter().collect();
    sensitive_egress(&seen, &mut out);
    out
}

fn unowned_workload(paths: &[Seen<'_>]) -> Option<Finding> {
    let first = paths.first()?;
    let workload = first.workload;
    if first.owner_state != OwnerState::Assigned {
        let mut f = finding(
            &UNOWNED_WORKLOAD,
            format!("workload:{}", workload.id),
            format!("workload {} is {} and holds {} authority path(s)", workload.name, first.owner_state, paths.len()),
        );
        f.workloads.push(workload.id.clone());
        f.path_ids = paths.iter().map(|p| p.path_id.to_string()).collect();
        f.records = vec![workload.id.clone()];
        f.records.extend(first.owners.iter().cloned());
        f.remediation.push(remediation::assign_owner(workload));
        return Some(f);
    }
    None
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
pub(super) fn remove_grants<'a>(f: &mut Finding, grants: impl IntoIterator<Item = &'a GrantRef>, identity: &NodeRef) {
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

fn sensitive_egress(workload_paths: &[Seen<'_>], out: &mut Vec<Finding>) {
    let Some(first) = workload_paths.first() else { return };
    let workload_id = first.workload.id.as_str();
    let reads: Vec<(&Seen<'_>, &str)> = workload_paths.iter().filter_map(|p| Some((p, p.sensitive_read?))).collect();
    let exits: Vec<(&Seen<'_>, &WayOut<'_>)> =
        workload_paths.iter().filter_map(|p| Some((p, p.exit.as_ref()?))).collect();
    if reads.is_empty() || exits.is_empty() {
        return;
    }
    let domains: BTreeSet<&str> = reads.iter().map(|(_, domain)| *domain).collect();
    let egress: BTreeSet<&str> = exits.iter().map(|(_, (egress, _, _))| egress.as_str()).collect();
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
    f.path_ids = reads
        .iter()
        .map(|(p, _)| p.path_id)
        .chain(exits.iter().map(|(p, _)| p.path_id))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    f.records = exits
        .iter()
        .flat_map(|(_, (_, _, grants))| grants.iter().map(|g| g.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for (path, (egress, destination, _)) in &exits {
        f.remediation.push(remediation::action(
            "review_destination",
            &destination.id,
            format!(
                "confirm that {} may send {} data to {} ({}), or remove its access",
                path.workload.name, reads[0].1, destination.name, egress
            ),
        ));
    }
    out.push(f);
}
