//! The rules of the authority model, one test each: grades and their decay, evidence gaps,
//! ownership states, domains and provenance, path identity.

use std::collections::BTreeMap;

use super::*;
use crate::model::{DestinationKind, GrantSource, IdentityKind, LogState, WorkloadKind};

const NOW: &str = "2026-03-02T09:00:00Z";

fn now() -> Timestamp {
    Timestamp::parse(NOW).unwrap()
}

/// One workload running as one identity with one grant on a storage container, owned by an
/// active owner; tests change what they need.
fn tenant() -> Entities {
    Entities {
        domains: vec![
            DataDomain { id: "finance".into(), name: "Finance".into(), sensitive: true },
            DataDomain { id: "public".into(), name: "Public".into(), sensitive: false },
        ],
        classification_rules: vec![ClassificationRule {
            id: "rule-public".into(),
            tag: "class".into(),
            value: "public".into(),
            domain: "public".into(),
        }],
        owners: vec![Owner {
            id: "alex@contoso.com".into(),
            name: "Alex".into(),
            status: OwnerStatus::Active,
            last_active_at: Some(now().add_days(-1)),
        }],
        workloads: vec![Workload {
            id: "agent".into(),
            name: "Agent".into(),
            kind: WorkloadKind::FoundryAgent,
            project: Some("p".into()),
            tags: BTreeMap::new(),
            owners: vec!["alex@contoso.com".into()],
        }],
        identities: vec![Identity {
            id: "mi".into(),
            name: "mi-agent".into(),
            kind: IdentityKind::ManagedIdentity,
            enabled: true,
            home_tenant: None,
            owners: vec![],
            presence: Default::default(),
        }],
        credentials: vec![],
        destinations: vec![Destination {
            id: "container".into(),
            name: "invoices".into(),
            kind: DestinationKind::StorageContainer,
            service: Some("storage:stfinance".into()),
            host: Some("stfinance.blob.core.windows.net".into()),
            domain: Some("finance".into()),
            egress: None,
            tags: BTreeMap::new(),
            execution_logs: Some(LogState::Enabled),
            execution_log_source: Some("diagnostic logs on stfinance".into()),
        }],
        grants: vec![Grant {
            id: "ra-1".into(),
            identity: "mi".into(),
            destination: "container".into(),
            permissions: vec![Permission::Read],
            source: GrantSource::AzureRoleAssignment,
            role: "Storage Blob Data Reader".into(),
            scope: "container".into(),
            consent: None,
        }],
        bindings: vec![Binding { id: "run-as-1".into(), workload: "agent".into(), identity: "mi".into(), tool: None }],
        evidence: vec![],
        deleted: vec![],
    }
}

fn evidence(id: &str, days_ago: i64) -> Evidence {
    Evidence {
        id: id.into(),
        source: "storage_blob_logs".into(),
        at: now().add_days(-days_ago),
        identity: None,
        workload: None,
        destination: None,
        service: None,
        credential: None,
    }
}

fn only_path(entities: &Entities, at: Timestamp) -> AuthorityPath {
    let mut paths = compute_paths(entities, at, &Policy::default());
    assert_eq!(paths.len(), 1, "{paths:#?}");
    paths.remove(0)
}

#[test]
fn grade_a_needs_a_record_naming_both_the_identity_and_the_destination_inside_the_window() {
    let mut t = tenant();
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        destination: Some("container".into()),
        ..evidence("log-1", 3)
    });
    let path = only_path(&t, now());
    assert_eq!(path.grade, Grade::A);
    assert_eq!(path.grade_evidence.as_deref(), Some("log-1"));
    assert_eq!(path.grade_expires_at, Some(now().add_days(-3).add_days(30)));
    // The latest of several records is the one kept.
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        destination: Some("container".into()),
        ..evidence("log-2", 1)
    });
    assert_eq!(only_path(&t, now()).grade_evidence.as_deref(), Some("log-2"));
}

#[test]
fn grade_b_from_activity_toward_the_service_or_the_workloads_run_on_the_destination() {
    let mut t = tenant();
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        service: Some("storage:stfinance".into()),
        credential: None,
        ..evidence("signin", 2)
    });
    let path = only_path(&t, now());
    assert_eq!((path.grade, path.grade_evidence.as_deref()), (Grade::B, Some("signin")));

    let mut t = tenant();
    t.evidence.push(Evidence {
        workload: Some("agent".into()),
        destination: Some("container".into()),
        ..evidence("run-7", 2)
    });
    let path = only_path(&t, now());
    assert_eq!((path.grade, path.grade_evidence.as_deref()), (Grade::B, Some("run-7")));

    // Activity of another identity, or toward another service, proves nothing about this path.
    let mut t = tenant();
    t.evidence.push(Evidence {
        identity: Some("other".into()),
        destination: Some("container".into()),
        ..evidence("x", 1)
    });
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        service: Some("storage:other".into()),
        credential: None,
        ..evidence("y", 1)
    });
    assert_eq!(only_path(&t, now()).grade, Grade::C);
}

#[test]
fn grade_c_is_standing_authority_only() {
    let path = only_path(&tenant(), now());
    assert_eq!((path.grade, path.grade_evidence.clone(), path.grade_expires_at), (Grade::C, None, None));
}

#[test]
fn grades_decay_when_the_evidence_leaves_the_window_by_scan_time_not_wall_clock() {
    let mut t = tenant();
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        destination: Some("container".into()),
        ..evidence("log-1", 10)
    });
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        service: Some("storage:stfinance".into()),
        credential: None,
        ..evidence("signin", 25)
    });
    assert_eq!(only_path(&t, now()).grade, Grade::A);
    // 21 days later the exact record is 31 days old, out of the 30-day window, and the sign-in
    // (46 days old) cannot hold B either.
    assert_eq!(only_path(&t, now().add_days(20)).grade, Grade::A, "10 + 20 = 30 days: still inside");
    assert_eq!(only_path(&t, now().add_days(21)).grade, Grade::C, "both records are older than the window");
    let narrow = Policy { evidence_window_days: 5, ..Policy::default() };
    assert_eq!(compute_paths(&t, now(), &narrow)[0].grade, Grade::C, "a 5-day window ignores a 10-day-old record");
    // Evidence dated after the scan does not count: 11 days earlier only the sign-in existed.
    let path = only_path(&t, now().add_days(-11));
    assert_eq!((path.grade, path.grade_evidence.as_deref()), (Grade::B, Some("signin")));
}

#[test]
fn an_evidence_gap_is_a_path_below_a_whose_destination_logs_are_off() {
    let mut t = tenant();
    let gap = |t: &Entities, state: LogState| {
        let mut t = t.clone();
        t.destinations[0].execution_logs = Some(state);
        let path = only_path(&t, now());
        assert!(path.evidence_gap);
        crate::findings::evidence_gap_finding(
            &t.destinations[0],
            &[crate::findings::PathOf { path_id: path.path_id.clone(), workload: "agent".into() }],
        )
        .expect("a gap finding")
    };
    let finding = gap(&t, LogState::Disabled);
    assert_eq!(finding.rule_id, "SV0-G001");
    assert_eq!(finding.summary, "enable diagnostic logs on stfinance to close 1 evidence gap(s) on invoices");
    // Logs collected where SV0 does not read them: still a gap, closed by reading them.
    let finding = gap(&t, LogState::Unread);
    assert!(finding.summary.starts_with("have SV0 read diagnostic logs on stfinance"), "{}", finding.summary);
    // Logs on, or unknown: no gap.
    t.destinations[0].execution_logs = None;
    assert!(!only_path(&t, now()).evidence_gap);
    // A path already at grade A has no gap to close.
    t.destinations[0].execution_logs = Some(LogState::Disabled);
    t.evidence.push(Evidence {
        identity: Some("mi".into()),
        destination: Some("container".into()),
        ..evidence("l", 1)
    });
    assert!(!only_path(&t, now()).evidence_gap);
}

#[test]
fn ownership_states_assigned_orphaned_and_decayed() {
    assert_eq!(only_path(&tenant(), now()).owner_state, OwnerState::Assigned);

    let mut t = tenant();
    t.workloads[0].owners.clear();
    let path = only_path(&t, now());
    assert_eq!((path.owner_state, path.owners.len()), (OwnerState::Orphaned, 0));
    // Without workload owners, the identity's owners count.
    t.identities[0].owners = vec!["alex@contoso.com".into()];
    assert_eq!(only_path(&t, now()).owner_state, OwnerState::Assigned);

    for (status, last_active_days_ago) in
        [(OwnerStatus::Disabled, 1), (OwnerStatus::Departed, 1), (OwnerStatus::Active, 91)]
    {
        let mut t = tenant();
        t.owners[0].status = status;
        t.owners[0].last_active_at = Some(now().add_days(-last_active_days_ago));
        assert_eq!(
            only_path(&t, now()).owner_state,
            OwnerState::Decayed,
            "{status:?}, silent {last_active_days_ago} days"
        );
    }
    // An owner who is not in the snapshot cannot be held accountable either.
    let mut t = tenant();
    t.workloads[0].owners = vec!["ghost@contoso.com".into()];
    assert_eq!(only_path(&t, now()).owner_state, OwnerState::Decayed);
    // Silence is measured at scan time: the same owner decays as scans move on.
    assert_eq!(only_path(&tenant(), now().add_days(91)).owner_state, OwnerState::Decayed);
}

#[test]
fn owner_state_since_survives_recomputation_until_the_state_changes() {
    let t = tenant();
    let lookup = MemoryGraph::new(&t);
    let earlier = now().add_days(-40);
    let first =
        compute_workload_paths(&lookup, "agent", now(), &Policy::default(), &|_| Some((OwnerState::Assigned, earlier)));
    assert_eq!(first[0].owner_state_since, earlier, "same state: the start is kept");
    let changed =
        compute_workload_paths(&lookup, "agent", now(), &Policy::default(), &|_| Some((OwnerState::Orphaned, earlier)));
    assert_eq!(changed[0].owner_state_since, now(), "a new state starts at this scan");
}

#[test]
fn domains_come_from_the_label_then_policy_rules_then_scan_rules_else_unclassified() {
    let mut t = tenant();
    let path = only_path(&t, now());
    assert_eq!((path.domain.id.as_str(), path.domain.sensitive), ("finance", true));
    assert_eq!(path.classified_by.as_deref(), Some("label"));

    t.destinations[0].domain = None;
    t.destinations[0].tags.insert("class".into(), "public".into());
    let path = only_path(&t, now());
    assert_eq!((path.domain.id.as_str(), path.classified_by.as_deref()), ("public", Some("rule-public")));

    let mut policy = Policy::default();
    policy.classification_rules.push(ClassificationRule {
        id: "policy-finance".into(),
        tag: "class".into(),
        value: "public".into(),
        domain: "finance".into(),
    });
    let path = &compute_paths(&t, now(), &policy)[0];
    assert_eq!((path.domain.id.as_str(), path.classified_by.as_deref()), ("finance", Some("policy-finance")));

    t.destinations[0].tags.clear();
    let path = only_path(&t, now());
    assert_eq!(
        (path.domain.id.as_str(), path.domain.sensitive, path.classified_by.clone()),
        (UNCLASSIFIED, false, None)
    );
}

#[test]
fn a_path_keeps_the_records_that_produce_it_and_merges_grants_to_one_destination() {
    let mut t = tenant();
    t.grants.push(Grant {
        id: "ra-2".into(),
        permissions: vec![Permission::Write, Permission::Read],
        role: "Storage Blob Data Contributor".into(),
        ..t.grants[0].clone()
    });
    let path = only_path(&t, now());
    assert_eq!(path.permissions, vec![Permission::Read, Permission::Write]);
    assert_eq!(path.grants.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["ra-1", "ra-2"]);
    assert_eq!(path.bindings, ["run-as-1"]);
    assert_eq!(path.egress, EgressClass::CloudStorage);
    assert!(!path.egress_rule.is_empty());
}

#[test]
fn path_identity_is_structural_and_the_fingerprint_ignores_volatile_values() {
    let t = tenant();
    let a = only_path(&t, now());
    let later = only_path(&t, now().add_days(1));
    assert_eq!(a.path_id, path_id("agent", "mi", "container", "finance"));
    assert_eq!(a.fingerprint, later.fingerprint, "a later scan time alone changes nothing compared");
    let mut renamed = t.clone();
    renamed.destinations[0].name = "renamed".into();
    assert_eq!(only_path(&renamed, now()).fingerprint, a.fingerprint);
    let mut more = t.clone();
    more.grants[0].permissions.push(Permission::Delete);
    let changed = only_path(&more, now());
    assert_eq!(changed.path_id, a.path_id);
    assert_ne!(changed.fingerprint, a.fingerprint, "permissions are compared");
}

#[test]
fn a_disabled_binding_target_or_missing_destination_gives_no_path() {
    let mut t = tenant();
    t.grants[0].destination = "nowhere".into();
    assert!(compute_paths(&t, now(), &Policy::default()).is_empty());
}
