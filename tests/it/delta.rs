//! Every delta kind of the source document's remediation table, each with its remediation;
//! full rollback advice in its three cases; the built-in disposition of a scope's delta.

use std::collections::BTreeSet;

use sv0_domain::delta::{self, DeltaEntry, DeltaKind};
use sv0_domain::disposition::{self, Decision};
use sv0_domain::findings::{self, Severity};
use sv0_domain::intent::{IntentItem, IntentStatus};
use sv0_domain::model::{Credential, CredentialKind, EgressClass, Permission};
use sv0_domain::paths::{self, AuthorityPath, Grade, OwnerState};

use crate::rules::{grant, node, quiet_path, sensitive, writes};

/// The path with its fingerprint brought up to date (the delta compares fingerprints).
fn fp(mut p: AuthorityPath) -> AuthorityPath {
    p.fingerprint = paths::fingerprint(&p.permissions, p.egress, p.owner_state, p.grade);
    p
}

fn base() -> AuthorityPath {
    fp(quiet_path())
}

/// A second path of the same workload and identity, to another destination.
fn other(id: &str) -> AuthorityPath {
    let mut p = quiet_path();
    p.path_id = id.to_string();
    p.destination = node(&format!("dest-{id}"));
    p.grants =
        vec![grant(&format!("grant-{id}"), &format!("/subscriptions/s/resourceGroups/rg/{id}"), &[Permission::Read])];
    fp(p)
}

fn kinds(entries: &[DeltaEntry]) -> Vec<DeltaKind> {
    entries.iter().map(|e| e.kind).collect()
}

fn one(entries: &[DeltaEntry], kind: DeltaKind) -> &DeltaEntry {
    let found: Vec<&DeltaEntry> = entries.iter().filter(|e| e.kind == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {:?}", kinds(entries));
    found[0]
}

fn names(entry: &DeltaEntry, record: &str) -> bool {
    entry.remediation_actions.iter().any(|a| a.record_id == record)
}

#[test]
fn an_unchanged_scope_has_no_delta_and_is_approved() {
    let entries = delta::compute(&[base()], &[base()], None);
    assert!(entries.is_empty());
    let d = disposition::decide(&entries, delta::rollback(&entries, &[base()]), None);
    assert_eq!(d.decision, Decision::Approved);
    assert!(d.reasons.is_empty());
}

#[test]
fn a_new_path_is_new_sensitive_when_it_reaches_a_sensitive_domain() {
    let plain = other("p2");
    let entries = delta::compute(&[base()], &[base(), plain.clone()], None);
    assert_eq!(kinds(&entries), [DeltaKind::NewPath]);
    assert!(!entries[0].flagged, "a read path to non-sensitive data carries no risk flag");
    assert_eq!(entries[0].intent, Some(IntentStatus::Unreviewed), "but nobody declared it");
    assert!(delta::breaks_match(&entries[0]), "so it is not an expected change");
    assert!(names(&entries[0], "grant-p2"));

    let mut secret = other("p3");
    sensitive(&mut secret);
    let entries = delta::compute(&[base()], &[base(), fp(secret)], None);
    let e = one(&entries, DeltaKind::NewSensitivePath);
    assert!(names(e, "grant-p3"), "the remediation revokes the specific grant");
    let d = disposition::decide(&entries, None, None);
    assert_eq!(d.decision, Decision::RequiresReview);
    assert_eq!(d.reasons[0].rule, "SV0-D001");
    assert_eq!(d.reasons[0].path_ids, ["p3"]);
}

#[test]
fn removed_paths_and_reduced_permissions_break_the_match_but_need_no_review() {
    let mut wide = other("p2");
    writes(&mut wide);
    let entries = delta::compute(&[base(), fp(wide)], &[other("p2")], None);
    assert_eq!(kinds(&entries), [DeltaKind::RemovedPath, DeltaKind::PermissionsReduced]);
    assert_eq!(one(&entries, DeltaKind::PermissionsReduced).removed_permissions, [Permission::Write]);
    assert!(entries.iter().all(delta::breaks_match));
    assert_eq!(disposition::decide(&entries, None, None).decision, Decision::Approved);
}

#[test]
fn expanded_permissions_name_the_grant_that_added_them() {
    let mut expanded = quiet_path();
    expanded.permissions = vec![Permission::Read, Permission::Write];
    expanded.grants.push(grant("g-new", "/subscriptions/s/resourceGroups/rg/providers/x/d1", &[Permission::Write]));
    let entries = delta::compute(&[base()], &[fp(expanded)], None);
    let e = one(&entries, DeltaKind::PermissionsExpanded);
    assert_eq!(e.added_permissions, [Permission::Write]);
    assert!(names(e, "g-new") && !names(e, "g1"), "only the excess is revoked: {:?}", e.remediation_actions);
    assert_eq!(disposition::decide(&entries, None, None).reasons[0].rule, "SV0-D003");
}

#[test]
fn a_workload_reaching_a_new_egress_class_is_a_new_egress_boundary() {
    let mut model = other("p2");
    model.egress = EgressClass::LlmApi;
    let mut external = other("p3");
    external.egress = EgressClass::ExternalHttp;
    let mut external_too = other("p4");
    external_too.egress = EgressClass::ExternalHttp;
    let now = [base(), fp(model), fp(external), fp(external_too)];
    let entries = delta::compute(&[base()], &now, None);
    let boundaries: Vec<&DeltaEntry> = entries.iter().filter(|e| e.kind == DeltaKind::NewEgressBoundary).collect();
    assert_eq!(boundaries.len(), 2, "one per new class, on its first path: {:?}", kinds(&entries));
    assert_eq!(boundaries[0].path_id, "p2");
    assert!(boundaries[0].flagged, "new model egress is flagged");
    assert_eq!(boundaries[1].path_id, "p3");
    assert!(boundaries[1].flagged, "external egress is flagged");
    assert!(names(boundaries[1], "grant-p3"), "the connection's record is named");
    // A workload that already reached external endpoints gains no boundary.
    let entries = delta::compute(&[base(), fp(other("p5")), now[2].clone()], &now, None);
    assert!(entries.iter().filter(|e| e.kind == DeltaKind::NewEgressBoundary).all(|e| e.egress == EgressClass::LlmApi));
    assert_eq!(disposition::decide(&entries, None, None).reasons.iter().filter(|r| r.rule == "SV0-D004").count(), 1);
}

#[test]
fn egress_and_grade_changes_are_reported_on_the_path() {
    let mut moved = quiet_path();
    moved.egress = EgressClass::ExternalHttp;
    let entries = delta::compute(&[base()], &[fp(moved)], None);
    let e = one(&entries, DeltaKind::EgressChanged);
    assert!(e.flagged && names(e, "d1"));

    let mut used = quiet_path();
    used.grade = Grade::A;
    let entries = delta::compute(&[base()], &[fp(used)], None);
    let e = one(&entries, DeltaKind::GradeChanged);
    assert_eq!((e.previous_grade, e.grade), (Some(Grade::B), Grade::A));
    assert!(!delta::breaks_match(e));
}

#[test]
fn ownership_lost_on_a_path_and_a_new_unowned_workload_are_ownership_gaps() {
    let mut lost = quiet_path();
    lost.owner_state = OwnerState::Decayed;
    let entries = delta::compute(&[base()], &[fp(lost)], None);
    let e = one(&entries, DeltaKind::OwnershipChanged);
    assert!(e.flagged && names(e, "w1"));
    assert_eq!(disposition::decide(&entries, None, None).reasons[0].rule, "SV0-D007");

    let mut newcomer = other("p2");
    newcomer.workload = node("w2");
    newcomer.owner_state = OwnerState::Orphaned;
    let mut newcomer_too = other("p3");
    newcomer_too.workload = node("w2");
    newcomer_too.owner_state = OwnerState::Orphaned;
    let entries = delta::compute(&[base()], &[base(), fp(newcomer), fp(newcomer_too)], None);
    let e = one(&entries, DeltaKind::OwnershipGap);
    assert_eq!(e.path_id, "p2", "on the workload's first path");
    assert!(e.flagged && names(e, "w2"), "assign an owner: govern, do not revoke");
}

#[test]
fn a_path_through_an_identity_no_baseline_path_used_is_a_new_identity() {
    let mut fresh = other("p2");
    fresh.identity = node("sp-unexpected");
    let mut fresh_too = other("p3");
    fresh_too.identity = node("sp-unexpected");
    let entries = delta::compute(&[base()], &[base(), fp(fresh), fp(fresh_too)], None);
    let e = one(&entries, DeltaKind::NewIdentity);
    assert_eq!(e.path_id, "p2");
    assert!(names(e, "sp-unexpected"), "disable or delete the service principal");
    assert_eq!(disposition::decide(&entries, None, None).reasons[0].rule, "SV0-D005");
}

#[test]
fn a_long_lived_credential_the_approver_never_saw_is_a_credential_exposure() {
    let credential = Credential {
        id: "secret-9".into(),
        identity: "i1".into(),
        kind: CredentialKind::Password,
        created_at: None,
        expires_at: None,
    };
    let paths = [findings::PathOf { path_id: "p1".into(), workload: "w1".into() }];
    let exposed = findings::credential_findings(&credential, "i1", &paths, sv0_domain::Timestamp(0));
    assert_eq!(exposed.len(), 1);
    let entries = delta::credential_exposures(&exposed, &BTreeSet::new(), &[base()]);
    let e = one(&entries, DeltaKind::CredentialExposure);
    assert!(e.flagged && names(e, "secret-9"), "rotate the specific credential");
    assert_eq!(disposition::decide(&entries, None, None).reasons[0].rule, "SV0-D006");
    // Seen open or acknowledged at approval: not an exposure.
    let known: BTreeSet<String> = [exposed[0].finding_id.clone()].into();
    assert!(delta::credential_exposures(&exposed, &known, &[base()]).is_empty());
}

#[test]
fn full_rollback_is_advised_in_the_three_cases_of_the_source_document() {
    // A grant at subscription scope cascades to everything there.
    let mut broad = other("p2");
    broad.grants[0].scope = "/subscriptions/8d3f2b1a".into();
    let now = [base(), fp(broad)];
    let entries = delta::compute(&[base()], &now, None);
    let advice = delta::rollback(&entries, &now).expect("a subscription-wide grant");
    assert_eq!(advice.path_ids, ["p2"]);
    let d = disposition::decide(&entries, Some(advice), None);
    assert_eq!(d.decision, Decision::Rejected);
    assert!(d.reasons.iter().any(|r| r.rule == "SV0-D008"));

    // Grade A on a path nobody approved: the authority was already used.
    let mut used = other("p3");
    used.grade = Grade::A;
    let now = [base(), fp(used)];
    let entries = delta::compute(&[base()], &now, None);
    assert!(delta::rollback(&entries, &now).is_some());
    let d = disposition::decide(&entries, delta::rollback(&entries, &now), None);
    assert_eq!(d.decision, Decision::Rejected);
    assert!(d.reasons.iter().any(|r| r.rule == "SV0-D002"));

    // Far more undeclared paths than intended ones.
    let mut now = vec![base(), other("expected")];
    for n in 0..12 {
        let mut p = other(&format!("x{n:02}"));
        sensitive(&mut p);
        writes(&mut p);
        now.push(fp(p));
    }
    let intent = [intent_for("dest-expected", &[Permission::Read])];
    let entries = delta::compute(&[base()], &now, Some(&intent));
    let advice = delta::rollback(&entries, &now).expect("12 undeclared against 1 intended");
    assert_eq!(advice.path_ids.len(), 12);
    // A few undeclared paths are remediated surgically.
    let few = &now[..5];
    let entries = delta::compute(&[base()], few, Some(&intent));
    assert!(delta::rollback(&entries, few).is_none());
}

#[test]
fn a_remediation_rescan_that_does_not_match_requires_review() {
    let mut secret = other("p2");
    sensitive(&mut secret);
    writes(&mut secret);
    let entries = delta::compute(&[base()], &[base(), fp(secret)], None);
    let verification = delta::verify(1, &entries, &["p2".to_string()]);
    assert!(!verification.matches_baseline);
    let d = disposition::decide(&entries, None, Some(&verification));
    assert_eq!(d.decision, Decision::RequiresReview);
    assert_eq!(d.reasons.last().unwrap().rule, "SV0-V001");
    assert_eq!(d.reasons.last().unwrap().path_ids, ["p2"]);
}

/// An intent item declaring `permissions` on a destination, for any identity.
fn intent_for(destination: &str, permissions: &[Permission]) -> IntentItem {
    IntentItem {
        workload: None,
        identity: None,
        destination: Some(destination.to_string()),
        permissions: permissions.to_vec(),
        note: None,
        identity_name: None,
        planned_by: None,
    }
}

/// The source document's first remediation: "workload gained access to Finance data via a new
/// role assignment" — a Data Reader assignment. Read reach into a sensitive domain is flagged,
/// with a severity by permission.
#[test]
fn new_reach_into_a_sensitive_domain_is_flagged_whatever_the_permission() {
    let mut reader = other("p2");
    sensitive(&mut reader);
    let entries = delta::compute(&[base()], &[base(), fp(reader.clone())], None);
    let e = one(&entries, DeltaKind::NewSensitivePath);
    assert!(e.flagged, "{:?}", e.flags);
    assert_eq!(e.severity, Some(Severity::Medium));
    assert!(delta::breaks_match(e), "a read into Finance does not match its baseline");
    let mut writer = reader.clone();
    writes(&mut writer);
    let e = delta::compute(&[base()], &[base(), fp(writer)], None);
    assert_eq!(one(&e, DeltaKind::NewSensitivePath).severity, Some(Severity::High));
    let mut admin = reader;
    admin.permissions.push(Permission::Admin);
    let e = delta::compute(&[base()], &[base(), fp(admin)], None);
    assert_eq!(one(&e, DeltaKind::NewSensitivePath).severity, Some(Severity::Critical));
}

/// Every addition is intended, unintended or unreviewed; a posture matches its baseline only
/// when nothing undeclared remains.
#[test]
fn additions_are_intended_unintended_or_unreviewed_and_only_intended_ones_match() {
    let mut finance = other("p3");
    sensitive(&mut finance);
    writes(&mut finance);
    let now = [base(), other("p2"), fp(finance)];
    // No intent declared: every addition is unreviewed, and the posture does not match.
    let entries = delta::compute(&[base()], &now, None);
    let v = delta::verify(1, &entries, &[]);
    assert!(!v.matches_baseline);
    assert_eq!(v.unreviewed, ["p2", "p3"]);
    assert!(v.intended_additions.is_empty() && v.summary.contains("no approved intent declares"), "{}", v.summary);
    let d = disposition::decide(&entries, None, None);
    assert!(d.reasons.iter().any(|r| r.rule == "SV0-D010" && r.path_ids == ["p2", "p3"]), "{d:?}");
    // The graph read declared, the Finance write not: one intended, one unintended.
    let intent = [intent_for("dest-p2", &[Permission::Read])];
    let entries = delta::compute(&[base()], &now, Some(&intent));
    let status = |id: &str| entries.iter().find(|e| e.path_id == id && e.kind.is_new_path()).unwrap().intent;
    assert_eq!((status("p2"), status("p3")), (Some(IntentStatus::Intended), Some(IntentStatus::Unintended)));
    let v = delta::verify(1, &entries, &[]);
    assert!(!v.matches_baseline);
    assert_eq!((v.intended_additions.clone(), v.unintended.clone()), (vec!["p2".to_string()], vec!["p3".to_string()]));
    assert_eq!(v.expected_additions, v.intended_additions, "the former name stays for one release");
    // Once the unintended write is removed, only the intended addition is left: a match.
    let entries = delta::compute(&[base()], &now[..2], Some(&intent));
    let v = delta::verify(1, &entries, &["p3".to_string()]);
    assert!(v.matches_baseline, "{}", v.summary);
    assert_eq!(v.summary, "posture matches baseline v1 plus 1 intended path(s); 1 flagged path(s) resolved");
    assert_eq!(disposition::decide(&entries, None, Some(&v)).decision, Decision::Approved);
    // An intent covers only the permissions it names.
    let write_too = [intent_for("dest-p2", &[Permission::Write])];
    let entries = delta::compute(&[base()], &now[..2], Some(&write_too));
    assert_eq!(entries[0].intent, Some(IntentStatus::Unintended));
}
