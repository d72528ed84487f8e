//! The rule catalogue: every rule fires on its triggering record, stays silent otherwise and
//! names the record to change. Entity rules run through the whole fold (scan in, finding open;
//! trigger removed, finding resolved), since each one reaches its subject its own way; path
//! rules are decided on one path alone and are tested on paths directly. Also: the catalogue
//! doc matches the code, and findings print as SARIF and JUnit.

use std::collections::BTreeSet;

use serde_json::Value;
use sv0_domain::Timestamp;
use sv0_domain::findings::{self, CATALOGUE, Finding, RuleKind};
use sv0_domain::model::{
    Binding, Consent, Credential, CredentialKind, EgressClass, Grant, GrantSource, IdentityKind, Permission, Presence,
};
use sv0_domain::paths::{AuthorityPath, DomainRef, Grade, GrantRef, NodeRef, OwnerState};
use sv0_domain::snapshot::Snapshot;
use sv0_projections::{FindingRecord, FindingStatus, Lifecycle};
use sv0_service::Service;
use sv0_synth::synthetic;
use sv0_tests::TempDir;

use crate::sv0;

fn at(day: i64) -> Timestamp {
    Timestamp::parse(synthetic::OBSERVED_AT).unwrap().add_days(day)
}

/// A small synthetic tenant: 4 workloads, 8 identities.
fn base() -> Snapshot {
    synthetic::tenant(400, 11, at(0)).unwrap()
}

/// An entity rule's trigger: the change to the base tenant, the finding's subject, and the
/// record its remediation must name.
struct Trigger {
    rule: &'static str,
    subject: String,
    record: String,
}

fn enabled_identity(s: &Snapshot, kind: IdentityKind) -> String {
    s.identities.iter().find(|i| i.kind == kind && i.enabled).unwrap().id.clone()
}

/// Applies one rule's trigger to `s`.
fn trigger(s: &mut Snapshot, rule: &'static str) -> Trigger {
    let now = s.scan.observed_at;
    let sp = enabled_identity(s, IdentityKind::ServicePrincipal);
    let mi = enabled_identity(s, IdentityKind::ManagedIdentity);
    let destination = s.grants.iter().find(|g| g.identity == sp).unwrap().destination.clone();
    let on = |kind: &str, id: &str, record: &str| Trigger {
        rule,
        subject: format!("{kind}:{id}"),
        record: record.to_string(),
    };
    let extra_grant = |id: &str, source: GrantSource, role: &str, consent: Option<Consent>| Grant {
        id: id.to_string(),
        identity: sp.clone(),
        destination: destination.clone(),
        permissions: vec![Permission::Read],
        source,
        role: role.to_string(),
        scope: "tenant".to_string(),
        consent,
    };
    match rule {
        "SV0-E001" => {
            let workload = s.workloads.iter_mut().find(|w| !w.owners.is_empty()).unwrap();
            workload.owners.clear();
            let id = workload.id.clone();
            // Without the workload's owners, its identities' owners are its paths'.
            let bound: Vec<String> =
                s.bindings.iter().filter(|b| b.workload == id).map(|b| b.identity.clone()).collect();
            for identity in s.identities.iter_mut().filter(|i| bound.contains(&i.id)) {
                identity.owners.clear();
            }
            on("workload", &id, &id)
        }
        "SV0-E002" | "SV0-E004" => {
            let credential = s.credentials.iter_mut().find(|c| c.identity == sp).unwrap();
            credential.expires_at = if rule == "SV0-E002" { None } else { Some(now.add_days(-1)) };
            let id = credential.id.clone();
            on("credential", &id, &id)
        }
        "SV0-E003" => {
            s.identities.iter_mut().find(|i| i.id == sp).unwrap().enabled = false;
            let grant = s.grants.iter().find(|g| g.identity == sp).unwrap().id.clone();
            on("identity", &sp, &grant)
        }
        "SV0-E005" => {
            let identity = s.evidence.iter().find_map(|e| e.identity.clone()).unwrap();
            for evidence in s.evidence.iter_mut().filter(|e| e.identity.as_deref() == Some(identity.as_str())) {
                evidence.at = now.add_days(-120);
            }
            let grant = s.grants.iter().find(|g| g.identity == identity).unwrap().id.clone();
            on("identity", &identity, &grant)
        }
        "SV0-E006" => {
            s.grants.push(extra_grant(
                "dra-1",
                GrantSource::DirectoryRoleAssignment,
                "Application Administrator",
                None,
            ));
            on("identity", &sp, "dra-1")
        }
        "SV0-E007" => {
            s.grants.push(extra_grant(
                "oauth2-1",
                GrantSource::Oauth2PermissionGrant,
                "Mail.Read",
                Some(Consent::AllPrincipals),
            ));
            on("identity", &sp, "oauth2-1")
        }
        "SV0-E008" => {
            s.identities.iter_mut().find(|i| i.id == sp).unwrap().home_tenant = Some("partner.example".into());
            let grant = s.grants.iter().find(|g| g.identity == sp).unwrap().id.clone();
            on("identity", &sp, &grant)
        }
        "SV0-E009" => {
            let own = s.bindings.iter().find(|b| b.identity == mi).unwrap().workload.clone();
            let other = s.workloads.iter().find(|w| w.id != own).unwrap().id.clone();
            s.bindings.push(Binding {
                id: "zz-shared-binding".into(),
                workload: other,
                identity: mi.clone(),
                tool: None,
            });
            on("identity", &mi, "zz-shared-binding")
        }
        "SV0-E010" => {
            s.credentials.push(Credential {
                id: "secret-second".into(),
                identity: sp.clone(),
                kind: CredentialKind::Password,
                created_at: Some(now.add_days(-400)),
                expires_at: Some(now.add_days(30)),
            });
            // The older of the two is the one to delete.
            on("identity", &sp, "secret-second")
        }
        "SV0-E011" | "SV0-E012" => {
            let kind = if rule == "SV0-E011" { IdentityKind::User } else { IdentityKind::ApiKey };
            s.identities.iter_mut().find(|i| i.id == mi).unwrap().kind = kind;
            let binding = s.bindings.iter().find(|b| b.identity == mi).unwrap().id.clone();
            on("identity", &mi, &binding)
        }
        "SV0-E013" => {
            s.identities.iter_mut().find(|i| i.id == sp).unwrap().owners.clear();
            let grant = s.grants.iter().find(|g| g.identity == sp).unwrap().id.clone();
            on("identity", &sp, &grant)
        }
        "SV0-E014" => {
            s.identities.iter_mut().find(|i| i.id == sp).unwrap().presence = Presence::Deleted;
            let grant = s.grants.iter().find(|g| g.identity == sp).unwrap().id.clone();
            on("identity", &sp, &grant)
        }
        other => panic!("no trigger written for {other}"),
    }
}

fn finding<'a>(records: &'a [FindingRecord], rule: &str, subject: &str) -> Option<&'a FindingRecord> {
    records.iter().find(|r| r.finding.rule_id == rule && r.finding.subject == subject)
}

#[test]
fn every_entity_rule_opens_on_its_trigger_names_the_record_and_resolves_when_it_is_gone() {
    let entity_rules: Vec<&str> = CATALOGUE.iter().filter(|r| r.kind == RuleKind::Entity).map(|r| r.id).collect();
    assert_eq!(entity_rules.len(), 14);
    for rule in entity_rules {
        let dir = TempDir::new();
        crate::block_on(async {
            let mut service = Service::open(dir.path()).await.unwrap();
            let tenant = {
                let report = service.import_snapshot(&serde_json::to_vec(&base()).unwrap(), None).await.unwrap();
                report.tenant
            };
            let mut triggered = base();
            triggered.scan.observed_at = at(1);
            let t = trigger(&mut triggered, rule);
            let before = service.findings(&tenant, None).unwrap();
            assert!(finding(&before, t.rule, &t.subject).is_none(), "{rule} fires on {} before its trigger", t.subject);

            service.import_snapshot(&serde_json::to_vec(&triggered).unwrap(), None).await.unwrap();
            let after = service.findings(&tenant, None).unwrap();
            let record =
                finding(&after, t.rule, &t.subject).unwrap_or_else(|| panic!("{rule} does not fire on {}", t.subject));
            assert_eq!(record.status, FindingStatus::Open);
            assert!(
                record.finding.remediation.iter().any(|a| a.record_id == t.record),
                "{rule}: the remediation does not name {}: {:?}",
                t.record,
                record.finding.remediation
            );
            assert!(record.finding.records.contains(&t.record), "{rule}: records lack {}", t.record);
            assert_eq!(findings::rule(rule).unwrap().title, record.finding.title);

            let mut fixed = base();
            fixed.scan.observed_at = at(2);
            service.import_snapshot(&serde_json::to_vec(&fixed).unwrap(), None).await.unwrap();
            let resolved = service.findings(&tenant, None).unwrap();
            assert_eq!(
                finding(&resolved, t.rule, &t.subject).map(|r| r.status),
                Some(FindingStatus::Resolved),
                "{rule} does not resolve once its trigger is gone"
            );
        });
    }
}

/// Findings that time alone opens or resolves (an expiry, a secret's remaining life, an
/// identity's silence) change at the first scan past their instant, also when the instant is
/// exactly the previous scan's time: scans a whole number of days apart land on such instants.
#[test]
fn findings_that_time_alone_changes_flip_at_the_first_scan_past_their_instant() {
    let mut s = base();
    let sp = enabled_identity(&s, IdentityKind::ServicePrincipal);
    let silent = s.evidence.iter().find_map(|e| e.identity.clone()).unwrap();
    // Expires at day 1, when the second scan runs.
    s.credentials.push(Credential {
        id: "secret-expiring".into(),
        identity: sp.clone(),
        kind: CredentialKind::Password,
        created_at: Some(at(-10)),
        expires_at: Some(at(1)),
    });
    // Creation unknown: long-lived while at least 181 whole days remain, up to day 1.
    s.credentials.push(Credential {
        id: "secret-undated".into(),
        identity: sp.clone(),
        kind: CredentialKind::Password,
        created_at: None,
        expires_at: Some(at(182)),
    });
    // Last active exactly 90 days before the second scan.
    for evidence in s.evidence.iter_mut().filter(|e| e.identity.as_deref() == Some(silent.as_str())) {
        evidence.at = at(1).add_days(-findings::UNUSED_DAYS);
    }
    let expired = ("SV0-E004", "credential:secret-expiring".to_string());
    let long_lived = ("SV0-E002", "credential:secret-undated".to_string());
    let unused = ("SV0-E005", format!("identity:{silent}"));
    let half_day = Timestamp(at(1).0 + Timestamp::DAY_MS / 2);
    // (scan time, whether each finding is open then)
    let steps = [(at(0), [false, true, false]), (at(1), [false, true, false]), (half_day, [true, false, true])];
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        for (time, open) in steps {
            s.scan.observed_at = time;
            let tenant = service.import_snapshot(&serde_json::to_vec(&s).unwrap(), None).await.unwrap().tenant;
            let records = service.findings(&tenant, None).unwrap();
            for ((rule, subject), open) in [&expired, &long_lived, &unused].into_iter().zip(open) {
                let status = finding(&records, rule, subject).map(|r| r.status);
                assert_eq!(
                    status == Some(FindingStatus::Open),
                    open,
                    "{rule} on {subject} at {time:?}: {status:?}, expected open = {open}"
                );
            }
        }
    });
}

pub(crate) fn node(id: &str) -> NodeRef {
    NodeRef { id: id.to_string(), name: id.to_string() }
}

pub(crate) fn grant(id: &str, scope: &str, permissions: &[Permission]) -> GrantRef {
    GrantRef {
        id: id.to_string(),
        source: GrantSource::AzureRoleAssignment,
        role: "Storage Blob Data Reader".to_string(),
        scope: scope.to_string(),
        permissions: permissions.to_vec(),
    }
}

/// A harmless path: owned, grade B, read-only, internal, a non-sensitive classified domain, one
/// grant at the destination's own scope, logs enabled.
pub(crate) fn quiet_path() -> AuthorityPath {
    AuthorityPath {
        path_id: "p1".to_string(),
        workload: node("w1"),
        identity: node("i1"),
        destination: node("d1"),
        domain: DomainRef { id: "ops".to_string(), name: "Ops".to_string(), sensitive: false },
        permissions: vec![Permission::Read],
        egress: EgressClass::Internal,
        egress_rule: "default".to_string(),
        owner_state: OwnerState::Assigned,
        owner_state_since: at(0),
        owners: vec!["o1".to_string()],
        grade: Grade::B,
        grade_evidence: Some("log-1".to_string()),
        grade_expires_at: Some(at(20)),
        evidence_gap: false,
        grants: vec![grant("g1", "/subscriptions/s/resourceGroups/rg/providers/x/d1", &[Permission::Read])],
        bindings: vec!["b1".to_string()],
        classified_by: Some("label".to_string()),
        fingerprint: String::new(),
    }
}

pub(crate) fn sensitive(p: &mut AuthorityPath) {
    p.domain = DomainRef { id: "hr".to_string(), name: "HR".to_string(), sensitive: true };
}

pub(crate) fn writes(p: &mut AuthorityPath) {
    p.permissions = vec![Permission::Read, Permission::Write];
    p.grants[0].permissions = p.permissions.clone();
}

/// Each path rule's trigger on the quiet path, and the record its remediation must name.
fn path_trigger(rule: &str) -> (AuthorityPath, &'static str) {
    let mut p = quiet_path();
    let record = match rule {
        "SV0-P001" => {
            sensitive(&mut p);
            writes(&mut p);
            "g1"
        }
        "SV0-P003" => {
            sensitive(&mut p);
            p.grade = Grade::C;
            "g1"
        }
        "SV0-P004" => {
            p.grants[0].scope = "/subscriptions/8d3f2b1a".to_string();
            "g1"
        }
        "SV0-P005" => {
            p.grade = Grade::A;
            p.owner_state = OwnerState::Orphaned;
            "w1"
        }
        "SV0-P006" => {
            p.permissions = vec![Permission::Admin];
            p.grants[0].permissions = vec![Permission::Admin];
            "g1"
        }
        "SV0-P007" => {
            p.egress = EgressClass::ExternalHttp;
            writes(&mut p);
            "g1"
        }
        "SV0-P008" => {
            p.domain = DomainRef { id: "unclassified".to_string(), name: "Unclassified".to_string(), sensitive: false };
            writes(&mut p);
            "d1"
        }
        "SV0-P009" => {
            sensitive(&mut p);
            p.evidence_gap = true;
            "d1"
        }
        "SV0-P010" => {
            p.grants.push(grant("g2", "/subscriptions/s/resourceGroups/rg/providers/x/d1", &[Permission::Read]));
            "g2"
        }
        other => panic!("no path trigger written for {other}"),
    };
    (p, record)
}

#[test]
fn every_path_rule_fires_on_its_trigger_alone_and_names_the_record() {
    assert!(findings::path_findings(&quiet_path()).is_empty(), "the quiet path triggers nothing");
    let path_rules: Vec<&str> = CATALOGUE
        .iter()
        .filter(|r| r.kind == RuleKind::Path && r.id != findings::SENSITIVE_EGRESS.id)
        .map(|r| r.id)
        .collect();
    assert_eq!(path_rules.len(), 9);
    for rule in path_rules {
        let (path, record) = path_trigger(rule);
        let fired: Vec<Finding> = findings::path_findings(&path);
        let f = fired.iter().find(|f| f.rule_id == rule).unwrap_or_else(|| panic!("{rule} does not fire"));
        assert_eq!(f.subject, "path:p1");
        assert_eq!(f.path_ids, vec!["p1".to_string()]);
        assert_eq!(f.workloads, vec!["w1".to_string()]);
        assert!(f.remediation.iter().any(|a| a.record_id == record), "{rule}: remediation lacks {record}: {f:?}");
        assert_eq!(f.finding_id, findings::finding_id(rule, "path:p1"), "{rule}: its id is not its path's");
    }
}

#[test]
fn sensitive_egress_needs_both_a_sensitive_read_and_a_way_out() {
    let mut read = quiet_path();
    sensitive(&mut read);
    let mut out = quiet_path();
    out.path_id = "p2".to_string();
    out.destination = node("llm");
    out.egress = EgressClass::LlmApi;
    let fired = |paths: &[AuthorityPath]| {
        findings::workload_findings(paths).into_iter().filter(|f| f.rule_id == "SV0-P002").collect::<Vec<_>>()
    };
    assert!(fired(std::slice::from_ref(&read)).is_empty());
    assert!(fired(std::slice::from_ref(&out)).is_empty());
    let both = fired(&[read, out]);
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].subject, "workload:w1");
    assert!(both[0].remediation.iter().any(|a| a.record_id == "llm"));
}

#[test]
fn broad_scopes_are_recognised_and_resource_scopes_are_not() {
    for scope in [
        "/",
        "*",
        "/subscriptions/8d3f",
        "/subscriptions/8d3f/",
        "/providers/Microsoft.Management/managementGroups/mg1",
    ] {
        assert!(findings::is_broad_scope(scope), "{scope} is broad");
    }
    for scope in ["/subscriptions/8d3f/resourceGroups/rg", "HR-Automation project connection", "d1"] {
        assert!(!findings::is_broad_scope(scope), "{scope} is not broad");
    }
}

#[test]
fn the_rule_catalogue_doc_is_generated_from_the_code() {
    let (code, generated) = sv0(&["rules", "--markdown"]);
    assert_eq!(code, 0);
    let path = crate::repo_root().join("docs/rules.md");
    if std::env::var_os("SV0_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed, generated,
        "docs/rules.md is stale: run `cargo run -p sv0 -- rules --markdown > docs/rules.md`"
    );
}

#[test]
fn the_catalogue_has_unique_ids_and_complete_entries() {
    let (code, out) = sv0(&["rules", "--json"]);
    assert_eq!(code, 0, "{out}");
    let rules: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rules.len(), CATALOGUE.len());
    let ids: BTreeSet<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rules.len(), "rule ids are unique");
    for rule in &rules {
        for field in ["id", "title", "why", "trigger", "remediation", "maturity", "kind", "severity"] {
            assert!(rule[field].as_str().is_some_and(|s| !s.is_empty()), "{rule} lacks {field}");
        }
        assert!(rule["version"].as_u64().unwrap() >= 1);
        assert!(!rule["owasp"].as_array().unwrap().is_empty(), "{rule} maps to no OWASP id");
    }
    let kinds = |kind: &str| rules.iter().filter(|r| r["kind"] == kind).count();
    assert!(kinds("entity") >= 12 && kinds("path") >= 10 && kinds("gap") >= 1);
}

/// The demo's data directory after its story: findings open, acknowledged and resolved.
fn demo() -> TempDir {
    let dir = TempDir::new();
    let (code, out) = sv0(&["--data-dir", dir.path().to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    dir
}

#[test]
fn findings_print_as_sarif_and_junit() {
    let dir = demo();
    let data = dir.path().to_str().unwrap();
    let (code, out) = sv0(&["--data-dir", data, "findings", "--json"]);
    assert_eq!(code, 0, "{out}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let lifecycle = |state: &str| listed.iter().filter(|f| f["lifecycle"] == state).count();
    assert!(lifecycle("open") > 0 && lifecycle("acknowledged") > 0, "{out}");

    let (code, out) = sv0(&["--data-dir", data, "findings", "--sarif"]);
    assert_eq!(code, 0, "{out}");
    let sarif: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), CATALOGUE.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), listed.len());
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"], "ruleIndex points at the result's rule");
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        assert!(result["partialFingerprints"]["sv0FindingId/v1"].as_str().unwrap().starts_with("F-"));
        let acknowledged = result["properties"]["lifecycle"] == "acknowledged";
        assert_eq!(result.get("suppressions").is_some(), acknowledged, "{result}");
    }

    let (code, xml) = sv0(&["--data-dir", data, "findings", "--junit"]);
    assert_eq!(code, 0, "{xml}");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
    assert_eq!(xml.matches("<testsuite ").count(), CATALOGUE.len());
    assert_eq!(xml.matches("<failure ").count(), lifecycle("open") + lifecycle("overdue"));
    assert_eq!(xml.matches("<skipped ").count(), lifecycle("acknowledged"));
    let passing = CATALOGUE.iter().filter(|r| !listed.iter().any(|f| f["finding"]["rule_id"] == r.id)).count();
    assert_eq!(xml.matches("<testcase ").count(), listed.len() + passing);
    // Text from the snapshot is escaped: no raw quote or angle bracket inside an attribute.
    for line in xml.lines().filter(|l| l.contains("message=\"")) {
        let message = line.split("message=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(!message.contains('<') && !message.contains('>'), "{line}");
    }
}

#[test]
fn an_acknowledgement_past_its_due_date_makes_the_finding_overdue() {
    let record = |due: i64, status| FindingRecord {
        finding: findings::path_findings(&path_trigger("SV0-P004").0).remove(0),
        status,
        opened_seq: 1,
        opened_at: at(0),
        resolved_seq: None,
        resolved_at: None,
        acknowledgement: Some(sv0_projections::FindingAck { by: "sam".into(), due: at(due), at: at(0) }),
    };
    assert_eq!(record(10, FindingStatus::Open).lifecycle(at(5)), Lifecycle::Acknowledged);
    assert_eq!(record(10, FindingStatus::Open).lifecycle(at(11)), Lifecycle::Overdue);
    assert_eq!(record(10, FindingStatus::Resolved).lifecycle(at(11)), Lifecycle::Resolved);
    let open = FindingRecord { acknowledgement: None, ..record(10, FindingStatus::Open) };
    assert_eq!(open.lifecycle(at(11)), Lifecycle::Open);
}

/// `sv0 export opengraph`: the paths as a BloodHound OpenGraph document. Every edge ends on a
/// node of the document, properties are primitives or arrays of them, identity → destination
/// edges are one per pair of the paths, and the same paths give the same bytes.
#[test]
fn paths_export_as_a_bloodhound_opengraph_document() {
    let dir = demo();
    let (code, text) = crate::sv0_in(dir.path(), &["export", "opengraph", "--scope", "project:HR-Automation"]);
    assert_eq!(code, 0, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["metadata"]["source_kind"], "SV0Base");
    let nodes = doc["graph"]["nodes"].as_array().unwrap();
    let ids: BTreeSet<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), nodes.len(), "node ids are unique");
    let primitive = |v: &Value| match v {
        Value::Array(items) => items.iter().all(|i| i.is_string() || i.is_number() || i.is_boolean()),
        Value::Object(_) | Value::Null => false,
        _ => true,
    };
    for node in nodes {
        assert!(node["kinds"].as_array().unwrap().contains(&Value::from("SV0Base")), "{node}");
        assert!(node["properties"].as_object().unwrap().values().all(primitive), "{node}");
    }
    let edges = doc["graph"]["edges"].as_array().unwrap();
    for edge in edges {
        for end in ["start", "end"] {
            assert!(ids.contains(edge[end]["value"].as_str().unwrap()), "{edge}");
            assert_eq!(edge[end]["match_by"], "id");
        }
        assert!(edge["properties"].as_object().unwrap().values().all(primitive), "{edge}");
    }
    let (_, paths) = crate::sv0_in(dir.path(), &["paths", "--scope", "project:HR-Automation", "--json"]);
    let paths: Value = serde_json::from_str(&paths).unwrap();
    let paths = paths.as_array().or_else(|| paths["paths"].as_array()).unwrap();
    let pairs: BTreeSet<(String, String)> = paths
        .iter()
        .map(|p| {
            (p["identity"]["id"].as_str().unwrap().to_string(), p["destination"]["id"].as_str().unwrap().to_string())
        })
        .collect();
    let reach = edges.iter().filter(|e| e["kind"] == "SV0CanReach").count();
    assert_eq!(reach, pairs.len());
    let (_, again) = crate::sv0_in(dir.path(), &["export", "opengraph", "--scope", "project:HR-Automation"]);
    assert_eq!(again, text, "the same paths give the same document");
}

#[test]
fn the_facts_kept_of_a_workloads_paths_decide_what_its_paths_decide() {
    // The fold decides the rules about a whole workload from the facts it keeps of each path
    // (`PathFacts`), so that a rescan reads one row instead of every path of the workload. Over
    // a synthetic tenant with unowned workloads and sensitive egress, they decide the same
    // findings, in the same words, as the paths themselves.
    let entities = synthetic::tenant(3_000, 5, at(0)).unwrap().validate().unwrap().entities;
    let paths = sv0_domain::paths::compute_paths(&entities, at(0), &sv0_domain::policy::Policy::default());
    let mut by_workload: std::collections::BTreeMap<&str, Vec<&AuthorityPath>> = Default::default();
    for path in &paths {
        by_workload.entry(path.workload.id.as_str()).or_default().push(path);
    }
    let mut fired = BTreeSet::new();
    for workload_paths in by_workload.values() {
        // In reverse: the rules take the first path by id, whatever order they are given.
        let owned: Vec<AuthorityPath> = workload_paths.iter().rev().map(|p| (*p).clone()).collect();
        let whole = |f: &Finding| f.subject.starts_with("workload:");
        let from_paths: Vec<Finding> = findings::workload_findings(&owned).into_iter().filter(whole).collect();
        let mut facts: Vec<findings::PathFacts> = owned.iter().map(findings::PathFacts::of).collect();
        facts.sort_by(|a, b| a.path_id.cmp(&b.path_id));
        assert_eq!(findings::whole_workload_findings(&facts), from_paths);
        fired.extend(from_paths.iter().map(|f| f.rule_id.clone()));
    }
    // Both rules about a whole workload fired somewhere, so the comparison is not vacuous.
    assert!(
        fired.contains(findings::UNOWNED_WORKLOAD.id) && fired.contains(findings::SENSITIVE_EGRESS.id),
        "{fired:?}"
    );
}
