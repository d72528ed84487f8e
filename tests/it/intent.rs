//! Issue 14 through the CLI: an approval names the posture that was reviewed and the change the
//! deployment declares; additions are intended, unintended or unreviewed, never "expected";
//! undeclared additions are findings; reach into a sensitive domain drifts the baseline
//! whatever the permission; a gate's scan is a pre-deployment assessment.

use std::path::Path;

use serde_json::Value;
use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, sv0_in};

const SCOPE: &str = "project:HR-Automation";
const APPROVER: &str = "riley@contoso.example";

/// A data directory (`<dir>/data`) whose approver is riley, with the demo's first scan.
fn scanned() -> TempDir {
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sv0.toml"), format!("[identity]\nprincipal = \"{APPROVER}\"\n")).unwrap();
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[0]), None);
    dir
}

fn import(dir: &TempDir, snapshot: &[u8], trigger: Option<&str>) -> Value {
    let file = dir.join("scan.json");
    std::fs::write(&file, snapshot).unwrap();
    let mut args = vec!["scan", "import", file.to_str().unwrap(), "--json"];
    if let Some(trigger) = trigger {
        args.extend_from_slice(&["--trigger", trigger]);
    }
    let (code, out) = sv0_in(&dir.join("data"), &args);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn json(data: &Path, args: &[&str]) -> Value {
    let (code, out) = sv0_in(data, args);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn intent_file(dir: &TempDir) -> String {
    let file = dir.join("intent.json");
    std::fs::write(&file, demo_snapshot("contoso-intent.json")).unwrap();
    file.to_str().unwrap().to_string()
}

use crate::log_events as events;

#[test]
fn the_intent_schema_is_generated_from_the_code_and_the_demo_intent_follows_it() {
    let generated =
        serde_json::to_string_pretty(&schemars::schema_for!(Vec<sv0_domain::intent::IntentItem>)).unwrap() + "\n";
    let path = crate::repo_root().join("schemas/intent.schema.json");
    if std::env::var_os("SV0_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed =
        std::fs::read_to_string(&path).expect("schemas/intent.schema.json; run with SV0_BLESS=1 to create it");
    assert_eq!(committed, generated, "schemas/intent.schema.json is stale: run SV0_BLESS=1 cargo test --test it");
    let demo: Vec<sv0_domain::intent::IntentItem> =
        serde_json::from_slice(&demo_snapshot("contoso-intent.json")).unwrap();
    sv0_domain::intent::validate(&demo).unwrap();
    assert_eq!(demo.len(), 3);
}

#[test]
fn an_approval_names_the_posture_reviewed_and_is_refused_once_it_changed() {
    let dir = scanned();
    let data = dir.join("data");
    // Every posture read of the scope gives the same digest and position.
    let review = json(&data, &["review", "--scope", SCOPE, "--json"]);
    let digest = review["posture_digest"].as_str().unwrap().to_string();
    let position = review["log_position"].as_u64().unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    let paths = json(&data, &["paths", "--scope", SCOPE, "--json"]);
    let findings = json(&data, &["findings", "--scope", SCOPE, "--json"]);
    for read in [&paths, &findings] {
        assert_eq!(read["posture_digest"], digest.as_str());
        assert_eq!(read["log_position"], position);
    }
    let (_, table) = sv0_in(&data, &["paths", "--scope", SCOPE]);
    assert!(table.contains(&format!("--posture {digest}@{position}")), "{table}");

    // The deployment lands between the review and the approval: the approval is refused,
    // names the scan that changed the posture, and records nothing.
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[1]), None);
    let head = events(&data).len();
    let reviewed = format!("{digest}@{position}");
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "as reviewed", "--posture", &reviewed]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing was approved") && out.contains(&digest), "{out}");
    assert!(out.contains("(deployment, observed 2026-03-03T14:00:00Z)"), "names what changed: {out}");
    assert_eq!(events(&data).len(), head, "a refused approval appends nothing");
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "x", "--posture", "sha256:nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a posture digest"), "{out}");

    // Reviewed again, approved as reviewed: the event records the digest, the position and who
    // acted on the host.
    let review = json(&data, &["review", "--scope", SCOPE, "--json"]);
    let now = format!("{}@{}", review["posture_digest"].as_str().unwrap(), review["log_position"]);
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "as reviewed", "--posture", &now]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("posture approved: {now} (as reviewed)")), "{out}");
    let approval = events(&data)
        .into_iter()
        .rfind(|e| matches!(e.payload, sv0_domain::events::EventPayload::ApprovalRecorded(_)))
        .unwrap();
    assert_eq!(approval.meta.actor, format!("host:{APPROVER}"));
    assert_eq!(approval.meta.credential, None);
    let sv0_domain::events::EventPayload::ApprovalRecorded(recorded) = approval.payload else { panic!() };
    assert_eq!(recorded.posture_digest.as_deref(), review["posture_digest"].as_str());
    assert_eq!(recorded.posture_seq, review["log_position"].as_u64().unwrap());
    assert_eq!(recorded.intent, None);

    // Without --posture the CLI shows the digest it approved.
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "again", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("posture approved: sha256:") && out.contains("no --posture given"), "{out}");
}

#[test]
fn the_review_document_lists_what_the_analyst_reads_before_approving() {
    let dir = scanned();
    let data = dir.join("data");
    let review = json(&data, &["review", "--scope", SCOPE, "--json"]);
    let counts = &review["counts"];
    assert_eq!(counts["paths"], 4);
    assert_eq!(review["paths"].as_array().unwrap().len(), 4);
    for by in ["by_grade", "by_egress", "by_owner_state"] {
        let sum: u64 = counts[by].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(sum, 4, "{by}: {counts}");
    }
    assert_eq!(counts["by_grade"], serde_json::json!({"A": 2, "B": 1, "C": 1}));
    assert_eq!(counts["by_owner_state"]["decayed"], 1);
    assert_eq!(review["findings"].as_array().unwrap().len(), 7);
    let conditions: Vec<(&str, &str)> = review["governance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["condition"].as_str().unwrap(), c["rule"].as_str().unwrap()))
        .collect();
    assert!(conditions.contains(&("long_lived_secret", "SV0-E002")), "{conditions:?}");
    assert!(conditions.contains(&("orphaned_credential", "SV0-E001")), "{conditions:?}");
    assert_eq!(review["evidence_gaps"]["without_execution_evidence"], 2);
    assert!(review["baseline"].is_null());
    let (code, text) = sv0_in(&data, &["review", "--scope", SCOPE]);
    assert_eq!(code, 0, "{text}");
    for part in
        ["by grade:     A 2, B 1, C 1", "Governance conditions:", "Evidence gaps: 2 path(s)", "Posture: sha256:"]
    {
        assert!(text.contains(part), "lacks {part:?}: {text}");
    }
    // After an approval with declared intent, the baseline in force says so.
    let intent = intent_file(&dir);
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "v1", "--intent", &intent]);
    assert_eq!(code, 0, "{out}");
    let review = json(&data, &["review", "--scope", SCOPE, "--json"]);
    assert_eq!(review["baseline"]["version"], 1);
    assert_eq!(review["baseline"]["intent_items"], 3);
    assert_eq!(review["baseline"]["state"], "approved");
    // A scope with nothing in it has nothing to review.
    let (code, out) = sv0_in(&data, &["review", "--scope", "project:Nothing-Here"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn an_intent_file_that_is_not_one_is_refused_and_records_nothing() {
    let dir = scanned();
    let data = dir.join("data");
    let head = events(&data).len();
    // Broad items are tried against every addition: their number is bounded.
    let broad = serde_json::to_string(
        &(0..101)
            .map(|n| serde_json::json!({"identity": format!("id-{n}*"), "permissions": ["read"]}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for (body, says) in [
        (broad.as_str(), "at most 100 are accepted"),
        (r#"{"identity": "x"}"#, "not a JSON list of intent items"),
        (r#"[{"permissions": ["read"]}]"#, "names neither an identity nor a destination"),
        (r#"[{"identity": "x", "permissions": []}]"#, "names no permission"),
        (r#"[{"identity": "x", "permissions": ["read"], "expires": "never"}]"#, "unknown field"),
        (r#"[{"identity": "*", "permissions": ["read"]}]"#, "empty identity"),
    ] {
        let file = dir.join("bad-intent.json");
        std::fs::write(&file, body).unwrap();
        let (code, out) =
            sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "x", "--intent", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{body}: {out}");
        assert!(out.contains(says), "{body}: {out}");
    }
    assert_eq!(events(&data).len(), head);
}

/// The demo's deployment with the onboarding identity's two Finance grants turned into read-only
/// ones (Storage Blob Data Reader): the source document's "Data Reader" example.
fn read_only_finance_deployment() -> Vec<u8> {
    let mut snapshot: Value = serde_json::from_slice(&demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
    let mut changed = 0;
    for grant in snapshot["grants"].as_array_mut().unwrap() {
        if grant["identity"] == "5f0c2a7e-91d4-4b8a-a3f6-0d2e7c4b9a11"
            && grant["destination"].as_str().unwrap().contains("stfinance01")
        {
            grant["permissions"] = serde_json::json!(["read"]);
            grant["role"] = serde_json::json!("Storage Blob Data Reader");
            changed += 1;
        }
    }
    assert_eq!(changed, 2);
    serde_json::to_vec(&snapshot).unwrap()
}

/// The first scan, approved as v1 with the demo's intent: (the directory, its data directory).
fn approved_with_intent() -> (TempDir, std::path::PathBuf) {
    let dir = scanned();
    let data = dir.join("data");
    let intent = intent_file(&dir);
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "v1", "--intent", &intent]);
    assert_eq!(code, 0, "{out}");
    (dir, data)
}

#[test]
fn a_new_read_into_finance_is_flagged_drifts_the_baseline_and_opens_findings() {
    let (dir, data) = approved_with_intent();
    import(&dir, &read_only_finance_deployment(), None);

    let delta = json(&data, &["delta", "--scope", SCOPE, "--json"]);
    let finance: Vec<&Value> =
        delta["delta"].as_array().unwrap().iter().filter(|e| e["domain"]["name"] == "Finance").collect();
    assert_eq!(finance.len(), 2, "{delta:#}");
    for entry in &finance {
        assert_eq!(entry["permissions"], serde_json::json!(["read"]));
        assert_eq!(entry["flagged"], true, "read reach into Finance is flagged: {entry}");
        assert_eq!(entry["severity"], "medium", "read is below write: {entry}");
        assert_eq!(entry["intent"], "unintended");
    }
    assert_eq!(delta["verification"]["matches_baseline"], false);
    assert_eq!(delta["verification"]["unintended"].as_array().unwrap().len(), 2);
    assert_eq!(delta["verification"]["intended_additions"].as_array().unwrap().len(), 3);
    assert_eq!(delta["disposition"]["decision"], "requires_review");

    // It drifts the baseline and tells the SOC.
    let baselines = json(&data, &["baselines", "--json"]);
    assert_eq!(baselines[0]["state"], "drifted", "{baselines:#}");
    assert_eq!(baselines[0]["drifted"]["paths"], 2);
    let (code, signals) = sv0_in(&data, &["signals"]);
    assert_eq!(code, 0, "{signals}");
    assert!(signals.contains("io.sv0.drift.detected"), "{signals}");

    // Each unintended path is a finding: rule, path, the record to change; in SARIF and JUnit too.
    let findings = json(&data, &["findings", "--json"]);
    let opened: Vec<&Value> =
        findings.as_array().unwrap().iter().filter(|f| f["finding"]["rule_id"] == "SV0-D010").collect();
    assert_eq!(opened.len(), 2, "{findings:#}");
    for f in &opened {
        assert_eq!(f["status"], "open");
        assert_eq!(f["finding"]["severity"], "medium");
        assert_eq!(f["finding"]["path_ids"].as_array().unwrap().len(), 1);
        let records = f["finding"]["records"].as_array().unwrap();
        assert!(records[0].as_str().unwrap().contains("/providers/Microsoft.Authorization/roleAssignments/"), "{f}");
        assert!(f["finding"]["summary"].as_str().unwrap().contains("does not declare it"), "{f}");
    }
    let (_, sarif) = sv0_in(&data, &["findings", "--sarif"]);
    assert!(sarif.contains("SV0-D010"), "{sarif}");
    let (_, junit) = sv0_in(&data, &["findings", "--junit"]);
    assert!(junit.contains("SV0-D010"), "{junit}");

    // The remediation rescan removes them: the findings resolve, sealed in the verification.
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[2]), Some("remediation"));
    let findings = json(&data, &["findings", "--all", "--json"]);
    let states: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["finding"]["rule_id"] == "SV0-D010")
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["resolved", "resolved"]);
    crate::block_on(async {
        let service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let last = service.views().assessments_after(&tenant, 0).unwrap().pop().unwrap();
        assert_eq!(last.kind.as_str(), "verification");
        let movement = &last.scan.as_ref().unwrap().findings;
        let ids: Vec<&str> = opened.iter().map(|f| f["finding"]["finding_id"].as_str().unwrap()).collect();
        for id in ids {
            assert!(movement.resolved.iter().any(|r| r == id), "{movement:?}");
        }
        let verification = last.scan.as_ref().unwrap().scopes[0].verification.as_ref().unwrap();
        assert!(verification.matches_baseline, "{verification:?}");
    });
}

#[test]
fn without_declared_intent_every_addition_is_unreviewed_and_nothing_matches() {
    let dir = scanned();
    let data = dir.join("data");
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "v1, no intent"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no intent declared"), "{out}");
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[1]), None);
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[2]), Some("remediation"));
    let delta = json(&data, &["delta", "--scope", SCOPE, "--json"]);
    let verification = &delta["verification"];
    // Before issue 14 this "matched baseline v1 plus 3 expected path(s)": nobody had said the
    // Graph reads were meant.
    assert_eq!(verification["matches_baseline"], false, "{verification}");
    assert_eq!(verification["unreviewed"].as_array().unwrap().len(), 3);
    assert!(verification["intended_additions"].as_array().unwrap().is_empty());
    assert!(verification["summary"].as_str().unwrap().contains("3 addition(s) no approved intent declares"));
    let (_, text) = sv0_in(&data, &["delta", "--scope", SCOPE]);
    assert!(text.contains("unreviewed") && text.contains("approve them with a declared intent"), "{text}");
}

#[test]
fn a_gate_scan_before_the_deployment_seals_a_pre_deployment_assessment() {
    // Staging → production: the staging run (commit 3f9a2c1) added its grants to the tenant;
    // the production gate, before the production job, judges the production scope against its
    // baseline with the staging run's commit. Its pack is a pre-deployment assessment, never a
    // post-deployment delta.
    let (dir, data) = approved_with_intent();
    let report = import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[1]), Some("pre_deployment"));
    let scans = json(&data, &["scan", "list", "--json"]);
    let scan = scans.as_array().unwrap().iter().find(|s| s["scan_id"] == report["scan_id"]).unwrap();
    assert_eq!(scan["trigger"], "pre_deployment", "{scan}");
    let delta = json(&data, &["delta", "--scope", SCOPE, "--json"]);
    assert_eq!(delta["disposition"]["decision"], "requires_review");
    crate::block_on(async {
        let service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let last = service.views().assessments_after(&tenant, 0).unwrap().pop().unwrap();
        assert_eq!(last.kind.as_str(), "pre_deployment_assessment");
        let scan = last.scan.as_ref().unwrap();
        assert_eq!(
            scan.scan.deployment.as_ref().unwrap().commit.as_deref(),
            Some("3f9a2c1d8e0b47a6c5f2913e7d4b8a0c6e1f2d35")
        );
        assert_eq!(scan.scopes[0].scope, SCOPE);
        let packs = service.views().packs(&tenant).unwrap();
        let body: Value = serde_json::from_str(&packs.last().unwrap().body).unwrap();
        assert_eq!(body["kind"], "pre_deployment_assessment");
    });
}

/// One vocabulary for the delta: the CLI's JSON names the changes `entries`, as the API does.
/// After the remediation rescan, `sv0 delta` counts the flagged paths resolved since the
/// deployment (it said "0 flagged path(s) resolved" right after two were), and a summary never
/// speaks of 0 resolved.
#[test]
fn after_remediation_the_delta_counts_what_was_resolved_and_names_entries_as_the_api_does() {
    let (dir, data) = approved_with_intent();
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[1]), Some("deployment"));
    let delta = json(&data, &["delta", "--scope", SCOPE, "--json"]);
    assert_eq!(delta["entries"], delta["delta"], "{delta}");
    let summary = delta["verification"]["summary"].as_str().unwrap();
    assert!(!summary.contains("resolved"), "nothing is resolved yet: {summary}");
    import(&dir, &demo_snapshot(DEMO_SNAPSHOTS[2]), Some("remediation"));
    let delta = json(&data, &["delta", "--scope", SCOPE, "--json"]);
    let verification = &delta["verification"];
    assert_eq!(verification["matches_baseline"], true, "{verification}");
    assert_eq!(verification["resolved"].as_array().unwrap().len(), 2, "{verification}");
    assert!(verification["summary"].as_str().unwrap().ends_with("; 2 flagged path(s) resolved"), "{verification}");
}
