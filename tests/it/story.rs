//! The demo story's numbers, through `sv0 demo --json`: 5 new paths after the deployment, the 2
//! Finance write paths flagged with their exact remediation, verification after remediation,
//! two baselines, five packs, and a chain that verifies.

use serde_json::Value;
use sv0_tests::TempDir;

use crate::{sv0, sv0_in};

fn demo(dir: &TempDir) -> Value {
    let data = dir.join("demo");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("demo --json is not JSON ({e}): {out}"))
}

#[test]
fn the_deployment_delta_lists_five_new_paths_and_flags_the_two_finance_writes() {
    let dir = TempDir::new();
    let doc = demo(&dir);
    assert_eq!(doc["tenant"], "contoso");
    let delta = doc["delta"].as_array().unwrap();
    assert_eq!(delta.len(), 5, "{delta:#?}");
    for entry in delta {
        let sensitive = entry["domain"]["sensitive"] == true;
        assert_eq!(entry["kind"], if sensitive { "new_sensitive_path" } else { "new_path" });
        for field in ["path_id", "workload", "identity", "destination", "domain", "permissions", "grade", "remediation"]
        {
            assert!(!entry[field].is_null(), "delta entry lacks {field}: {entry}");
        }
        assert_eq!(entry["workload"]["name"], "HR Onboarding Assistant");
        assert_eq!(entry["grade"], "C", "a new path has no execution evidence yet");
    }
    let flagged: Vec<&Value> = delta.iter().filter(|e| e["flagged"] == true).collect();
    assert_eq!(flagged.len(), 2);
    for entry in &flagged {
        assert_eq!(entry["domain"]["name"], "Finance");
        assert_eq!(entry["domain"]["sensitive"], true);
        let permissions: Vec<&str> =
            entry["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(permissions.contains(&"write"), "{permissions:?}");
        let remediation = entry["remediation"].as_str().unwrap();
        assert!(
            remediation.starts_with("remove role assignment /subscriptions/")
                && remediation.contains(": Storage Blob Data Contributor for mi-hr-onboarding-prod on /subscriptions/")
                && remediation.contains("/containers/"),
            "{remediation}"
        );
    }
    // The two Finance writes are what the release did not declare; the three Graph reads are
    // what it did.
    for entry in &flagged {
        assert_eq!(entry["intent"], "unintended", "{entry}");
        assert_eq!(entry["severity"], "high", "{entry}");
    }
    let intended: Vec<&Value> = delta.iter().filter(|e| e["intent"] == "intended").collect();
    assert_eq!(intended.len(), 3);
    for entry in intended {
        assert_eq!(entry["flagged"], false);
        assert_eq!(entry["domain"]["name"], "Employee Directory");
        assert_eq!(entry["permissions"], serde_json::json!(["read"]));
        assert!(entry["destination"]["name"].as_str().unwrap().starts_with("Microsoft Graph"));
    }
    assert_eq!(doc["remediated_paths"], 2);
    // Two new paths into Finance: a person must look before the deployment proceeds.
    assert_eq!(doc["disposition"]["decision"], "requires_review");
    let rules: Vec<&str> =
        doc["disposition"]["reasons"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["SV0-D001", "SV0-D010"]);
}

#[test]
fn the_remediation_rescan_verifies_and_two_baselines_and_five_packs_are_recorded() {
    let dir = TempDir::new();
    let doc = demo(&dir);
    // Baseline v1 declared the release plan's three Graph reads as its intent.
    let v1 = &doc["baseline_versions"][0];
    assert!(v1["plan_digest"].as_str().unwrap().starts_with("sha256:"), "{v1}");
    let planned: Vec<&str> =
        v1["intent"].as_array().unwrap().iter().map(|i| i["planned_by"].as_str().unwrap()).collect();
    assert_eq!(planned.len(), 3);
    assert!(planned.iter().all(|p| p.starts_with("module.hr_agent.azuread_app_role_assignment.")), "{planned:?}");
    let verification = &doc["verification"];
    assert_eq!(verification["matches_baseline"], true, "{verification}");
    assert_eq!(verification["exact_match"], false);
    assert_eq!(verification["baseline_version"], 1);
    assert_eq!(verification["intended_additions"].as_array().unwrap().len(), 3);
    assert_eq!(
        verification["expected_additions"], verification["intended_additions"],
        "the old name, kept one release"
    );
    assert!(verification["unintended"].as_array().unwrap().is_empty());
    assert!(verification["unreviewed"].as_array().unwrap().is_empty());
    assert_eq!(verification["resolved"].as_array().unwrap().len(), 2);
    assert!(verification["unexpected"].as_array().unwrap().is_empty());

    let baselines = doc["baseline_versions"].as_array().unwrap();
    assert_eq!(baselines.len(), 2);
    assert_eq!(baselines[0]["version"], 1);
    assert_eq!(baselines[0]["paths"], 4);
    assert_eq!(baselines[0]["approver"], "riley.chen@contoso.example");
    assert_eq!(baselines[0]["approved_at"], "2026-03-02T10:15:00Z");
    assert_eq!(baselines[0]["acknowledged"].as_array().unwrap().len(), 7);
    assert_eq!(baselines[1]["version"], 2);
    assert_eq!(baselines[1]["paths"], 7, "baseline v1 plus the 3 expected paths");

    let packs = &doc["packs"];
    assert_eq!(packs["count"], 5);
    assert_eq!(packs["chain_intact"], true);
    assert_eq!(packs["offline_verified"], true);
    assert!(packs["head_digest"].as_str().unwrap().starts_with("sha256:"));

    // The data directory is left for the user: every command works on it.
    let data = dir.join("demo");
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 5 pack(s) of the 5 pack event(s) on the log"), "{out}");
    let (code, out) = sv0_in(&data, &["delta", "--scope", "project:HR-Automation", "--json"]);
    assert_eq!(code, 0, "{out}");
    let delta: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(delta["baseline_version"], 2);
    assert_eq!(delta["delta"].as_array().unwrap().len(), 0, "after v2 the posture is the baseline");
    assert_eq!(delta["verification"]["exact_match"], true);
}

#[test]
fn the_demo_is_deterministic_apart_from_the_signing_key() {
    let first = TempDir::new();
    let second = TempDir::new();
    let a = demo(&first);
    let b = demo(&second);
    assert_eq!(a["delta"], b["delta"]);
    assert_eq!(a["verification"], b["verification"]);
    assert_eq!(a["scans"], b["scans"]);
    // Each run creates its own key, and the key id is part of every pack body, so digests
    // differ; the assessments sealed are the same, byte for byte.
    let views = |dir: &TempDir| {
        let views = sv0_projections::Views::open(dir.join("demo").join("views.redb")).unwrap();
        views.dump().unwrap().remove("assessments").unwrap()
    };
    assert_eq!(views(&first), views(&second));
}

#[test]
fn the_demo_refuses_a_data_directory_that_holds_data() {
    let dir = TempDir::new();
    std::fs::write(dir.join("something"), b"x").unwrap();
    let (code, out) = sv0(&["--data-dir", dir.path().to_str().unwrap(), "demo"]);
    assert_eq!(code, 2);
    assert!(out.contains("is not empty"), "{out}");
}

#[test]
fn the_demo_on_jetstream_tells_the_same_story() {
    let server = sv0_tests::nats::NatsServer::start();
    let dir = TempDir::new();
    let embedded = demo(&dir);
    let data = dir.join("on-jetstream");
    let url = server.url();
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "--log", &url, "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let jetstream: Value = serde_json::from_str(&out).unwrap();
    assert!(jetstream["tenant"].as_str().unwrap().starts_with("contoso-"), "a tenant of its own on a shared log");
    assert_eq!(jetstream["delta"], embedded["delta"]);
    assert_eq!(jetstream["verification"], embedded["verification"]);
    assert_eq!(jetstream["remediated_paths"], embedded["remediated_paths"]);
    assert_eq!(jetstream["packs"]["count"], 5);
    assert_eq!(jetstream["packs"]["chain_intact"], true);
    assert_eq!(jetstream["packs"]["offline_verified"], true);
    let versions = |doc: &Value| {
        doc["baseline_versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["version"].clone(), b["paths"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&jetstream), versions(&embedded));
}
