//! The disposition through the CLI and the fold: the built-in rules after a deployment, a
//! customer's Rego policy replacing or extending them over the input `sv0 export opa-input`
//! prints, and a policy that fails giving `rejected`, never an approval.

use std::path::Path;

use serde_json::Value;
use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, sv0_in};

const SCOPE: &str = "project:HR-Automation";

/// A new data directory (`<dir>/data`) whose approver is riley@contoso.example.
fn fresh() -> TempDir {
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sv0.toml"), "[identity]\nprincipal = \"riley@contoso.example\"\n").unwrap();
    dir
}

/// Imports the demo's snapshot number `n` into `<dir>/data`.
fn import(dir: &TempDir, n: usize) {
    let file = dir.join(&format!("scan-{n}.json"));
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[n])).unwrap();
    let (code, out) = sv0_in(&dir.join("data"), &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// Writes the demo's declared intent (the three Graph reads) next to the data directory.
fn intent_file(dir: &TempDir) -> String {
    let file = dir.join("intent.json");
    std::fs::write(&file, demo_snapshot("contoso-intent.json")).unwrap();
    file.to_str().unwrap().to_string()
}

/// The demo tenant approved with the release's declared intent (the three Graph reads), then
/// the deployment scanned: 5 new paths, the 2 into Finance unintended.
fn deployed() -> TempDir {
    let dir = fresh();
    import(&dir, 0);
    let intent = intent_file(&dir);
    let (code, out) =
        sv0_in(&dir.join("data"), &["approve", "--scope", SCOPE, "--note", "baseline", "--intent", &intent]);
    assert_eq!(code, 0, "{out}");
    import(&dir, 1);
    dir
}

fn delta(data: &Path) -> Value {
    let (code, out) = sv0_in(data, &["delta", "--scope", SCOPE, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn set_rego(data: &Path, dir: &TempDir, source: &str, mode: &str) -> (u8, String) {
    let file = dir.join("policy.rego");
    std::fs::write(&file, source).unwrap();
    sv0_in(data, &["policy", "set", "--rego", file.to_str().unwrap(), "--rego-mode", mode])
}

/// Runs `sv0` in the data directory as `principal` (the host operator's configured identity).
fn as_person(data: &Path, principal: &str, args: &[&str]) -> (u8, String) {
    std::fs::write(data.join("sv0.toml"), format!("[identity]\nprincipal = \"{principal}\"\n")).unwrap();
    let result = sv0_in(data, args);
    std::fs::write(data.join("sv0.toml"), "[identity]\nprincipal = \"riley@contoso.example\"\n").unwrap();
    result
}

/// The digest of the Rego policy waiting for a second person's approval.
fn pending_digest(data: &Path) -> String {
    let (code, out) = sv0_in(data, &["policy", "show"]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.contains("waiting for approval")).unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().find(|w| w.starts_with("sha256:")).unwrap().to_string()
}

/// A second approver approves the policy waiting.
fn approve_policy(data: &Path) {
    let digest = pending_digest(data);
    let (code, out) =
        as_person(data, "sam@contoso.example", &["policy", "approve", "--digest", &digest, "--note", "reviewed"]);
    assert_eq!(code, 0, "{out}");
}

fn rules(disposition: &Value) -> Vec<String> {
    disposition["reasons"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap().to_string()).collect()
}

const FINANCE_IS_REJECTED: &str = r#"package sv0

default decision := "approved"

decision := "rejected" if {
    some e in input.delta
    e.domain.name == "Finance"
}

reasons contains {"rule": "ORG-FIN-1", "text": "no agent may reach Finance data", "path_ids": [e.path_id]} if {
    some e in input.delta
    e.domain.name == "Finance"
}
"#;

#[test]
fn a_deployment_into_finance_requires_review_and_the_opa_input_shows_why() {
    let dir = deployed();
    let data = dir.join("data");
    let doc = delta(&data);
    assert_eq!(doc["disposition"]["decision"], "requires_review");
    assert_eq!(rules(&doc["disposition"]), ["SV0-D001", "SV0-D010"]);

    let (code, out) = sv0_in(&data, &["export", "opa-input", "--scope", SCOPE]);
    assert_eq!(code, 0, "{out}");
    let input: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(input["scope"], SCOPE);
    assert_eq!(input["baseline_version"], 1);
    assert_eq!(input["delta"].as_array().unwrap().len(), 5);
    assert_eq!(input["paths"].as_array().unwrap().len(), 9);
    assert_eq!(input["builtin"]["decision"], "requires_review");
    assert!(input["findings"].as_array().unwrap().iter().all(|f| f["status"] == "open"));
    assert!(input["posture"]["paths_total"].as_u64().is_some(), "{}", input["posture"]);
}

#[test]
fn a_rego_policy_replaces_or_extends_the_built_in_rules() {
    let dir = deployed();
    let data = dir.join("data");
    let (code, out) = set_rego(&data, &dir, FINANCE_IS_REJECTED, "replace");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Rego (replaces the built-in rules"), "{out}");
    assert!(out.contains("waiting for approval"), "{out}");
    // A replacing policy decides nothing until a second person approves it.
    assert_eq!(delta(&data)["disposition"]["decision"], "requires_review");
    let digest = pending_digest(&data);
    let (code, out) = sv0_in(&data, &["policy", "approve", "--digest", &digest, "--note", "mine"]);
    assert_eq!(code, 2, "the person who set it cannot approve it: {out}");
    assert!(out.contains("second person"), "{out}");
    approve_policy(&data);
    let doc = delta(&data);
    assert_eq!(doc["disposition"]["decision"], "rejected");
    assert_eq!(rules(&doc["disposition"]), ["ORG-FIN-1", "ORG-FIN-1"]);
    let finance: Vec<&Value> =
        doc["delta"].as_array().unwrap().iter().filter(|e| e["domain"]["name"] == "Finance").collect();
    let named: Vec<&str> =
        doc["disposition"]["reasons"].as_array().unwrap().iter().map(|r| r["path_ids"][0].as_str().unwrap()).collect();
    assert_eq!(named.len(), finance.len());

    // Extending: a lenient policy cannot loosen the built-in decision.
    let (code, out) = set_rego(&data, &dir, "package sv0\n\ndefault decision := \"approved\"\n", "extend");
    assert_eq!(code, 0, "{out}");
    assert_eq!(delta(&data)["disposition"]["decision"], "requires_review");
    // ...and a strict one tightens it, its reasons after the built-in ones.
    let (code, out) = set_rego(&data, &dir, FINANCE_IS_REJECTED, "extend");
    assert_eq!(code, 0, "{out}");
    let doc = delta(&data);
    assert_eq!(doc["disposition"]["decision"], "rejected");
    assert_eq!(rules(&doc["disposition"])[0], "SV0-D001");

    // The fold decides the same way: the next scan's sealed assessment carries it.
    let file = dir.join("remediation.json");
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[2])).unwrap();
    let (code, out) = sv0_in(&data, &["scan", "import", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    crate::block_on(async {
        let service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let assessments = service.views().assessments_after(&tenant, 0).unwrap();
        let last = assessments.last().unwrap().scan.as_ref().unwrap();
        let disposition = last.scopes[0].disposition.as_ref().unwrap();
        // The remediation removed the Finance paths: the strict policy has nothing to reject.
        assert_eq!(disposition.decision, sv0_domain::disposition::Decision::Approved, "{disposition:?}");
    });

    // Back to the built-in rules.
    let (code, out) = sv0_in(&data, &["policy", "set", "--no-rego"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the built-in rules"), "{out}");
}

#[test]
fn a_policy_that_does_not_compile_is_refused_and_changes_nothing() {
    let dir = deployed();
    let data = dir.join("data");
    let (_, before) = sv0_in(&data, &["policy", "show", "--json"]);
    for (source, says) in [
        ("package sv0\n\ndecision := \n", "does not compile"),
        ("package other\n\ndefault decision := \"approved\"\n", "must be `package sv0`"),
        ("   \n", "empty"),
    ] {
        let (code, out) = set_rego(&data, &dir, source, "replace");
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(says), "{out}");
    }
    let (_, after) = sv0_in(&data, &["policy", "show", "--json"]);
    assert_eq!(before, after);
}

#[test]
fn a_policy_that_fails_when_it_runs_is_refused_before_it_is_recorded() {
    let dir = deployed();
    let data = dir.join("data");
    // `policy set` runs a policy on every baselined scope before recording it: one that fails
    // is refused, and nothing changes.
    let (_, before) = sv0_in(&data, &["policy", "show", "--json"]);
    for (source, says) in [
        ("package sv0\n\ndecision := 42\n", "not a string"),
        ("package sv0\n\ndecision := \"ship it\"\n", "none of approved"),
        ("package sv0\n\ndecision := \"approved\" if { false }\n", "decided nothing"),
        // No clock in the engine: time comes from events, so a policy cannot read the wall clock.
        ("package sv0\n\ndecision := \"approved\" if { time.now_ns() > 0 }\n", "fails when it runs"),
        (
            "package sv0\n\ndecision := \"approved\" if { count(input.delta) > 0 }\ndecision := \"rejected\" if { count(input.delta) > 0 }\n",
            "fails when it runs",
        ),
        // A memory bomb costs one worker process, within its limits.
        ("package sv0\n\ndefault decision := \"approved\"\nn := count(numbers.range(0, 100000000000))\n", "limits"),
    ] {
        for mode in ["replace", "extend"] {
            let (code, out) = set_rego(&data, &dir, source, mode);
            assert_eq!(code, 2, "{source}: {out}");
            assert!(out.contains(says), "{source}: {out}");
        }
    }
    let (_, after) = sv0_in(&data, &["policy", "show", "--json"]);
    assert_eq!(before, after);
}

/// A policy that passed `policy set`'s checks but fails on the log (a process that can write
/// to the log appended it, or the data changed): a failed policy is `rejected` with the reason,
/// never a crash of the reads, the fold or `sv0 rebuild`, and `policy set` replaces it.
#[test]
fn a_policy_bomb_on_the_log_rejects_and_stops_nothing() {
    let dir = deployed();
    let data = dir.join("data");
    let bomb = "package sv0\n\ndefault decision := \"approved\"\nn := count(numbers.range(0, 100000000000))\ndecision := \"approved\" if { n > 0 }\n";
    crate::block_on(async {
        use sv0_log::EventLog;
        let service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let mut policy = service.policy(&tenant).unwrap();
        policy.rego = Some(sv0_domain::policy::RegoPolicy {
            mode: sv0_domain::policy::RegoMode::Extend,
            source: bomb.to_string(),
        });
        let event = sv0_domain::events::Event::by(
            sv0_domain::EventId([7; 16]),
            &tenant,
            sv0_domain::Timestamp::now(),
            &sv0_domain::events::Actor::host("mallory@contoso.example"),
            sv0_domain::events::EventPayload::PolicySet(sv0_domain::events::PolicySet { policy }),
        );
        let record = sv0_service::import::new_event(&event).unwrap();
        service.log().append(&format!("{tenant}.policy"), sv0_log::Expected::Any, vec![record]).await.unwrap();
    });
    let doc = delta(&data);
    assert_eq!(doc["disposition"]["decision"], "rejected", "{}", doc["disposition"]);
    let text = doc["disposition"]["reasons"].as_array().unwrap().last().unwrap()["text"].as_str().unwrap();
    assert!(text.contains("limits"), "{text}");
    // The fold evaluates it too, for the next scan, and keeps no memo of the failure: the scan
    // after asks the policy again. A rebuild folds everything again.
    let memos = || {
        let views = sv0_projections::Views::open(data.join("views.redb")).unwrap();
        views.dump().unwrap().remove("scope_memos").unwrap_or_default()
    };
    let before = memos();
    import(&dir, 2);
    assert_eq!(memos(), before, "a failed policy's disposition is not kept as a scope memo");
    let (code, out) = sv0_in(&data, &["rebuild"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(delta(&data)["disposition"]["decision"], "rejected");
    // The way out works on the data directory as it is.
    let (code, out) = sv0_in(&data, &["policy", "set", "--no-rego"]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(delta(&data)["disposition"]["decision"], "rejected");
}

/// An admin's approve-everything policy changes no verdict on its own; approved by a second
/// person it decides, but never approves flagged reach into sensitive data nobody declared.
#[test]
fn an_admins_approve_all_policy_needs_an_approver_and_never_approves_flagged_finance_writes() {
    let dir = deployed();
    let data = dir.join("data");
    assert_eq!(delta(&data)["disposition"]["decision"], "requires_review");
    let (code, out) = set_rego(&data, &dir, "package sv0\n\ndefault decision := \"approved\"\n", "replace");
    assert_eq!(code, 0, "{out}");
    assert_eq!(delta(&data)["disposition"]["decision"], "requires_review", "not in force yet");
    approve_policy(&data);
    let doc = delta(&data);
    assert_eq!(doc["disposition"]["decision"], "requires_review", "{}", doc["disposition"]);
    let last = doc["disposition"]["reasons"].as_array().unwrap().last().unwrap().clone();
    assert!(last["text"].as_str().unwrap().contains("cannot approve flagged reach"), "{last}");
    // An approval of another policy than the one waiting, or with nothing waiting, is refused.
    let (code, out) =
        as_person(&data, "sam@contoso.example", &["policy", "approve", "--digest", "sha256:00", "--note", "x"]);
    assert_eq!(code, 2, "{out}");
}

fn baselines(data: &Path) -> Vec<Value> {
    let (code, out) = sv0_in(data, &["baselines", "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_baseline_drifts_when_a_scan_breaks_it_and_a_new_approval_supersedes_it() {
    let dir = deployed();
    let data = dir.join("data");
    let listed = baselines(&data);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "drifted", "{:#}", listed[0]);
    assert_eq!(listed[0]["drifted"]["paths"], 2, "the two Finance writes break the match");
    assert_eq!(listed[0]["drifted"]["decision"], "requires_review");
    let (_, table) = sv0_in(&data, &["baselines"]);
    assert!(table.contains("drifted since"), "{table}");

    // Re-assessment: a new approval supersedes the drifted version.
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "re-assessed"]);
    assert_eq!(code, 0, "{out}");
    let listed = baselines(&data);
    let states: Vec<(u64, &str)> =
        listed.iter().map(|b| (b["version"].as_u64().unwrap(), b["state"].as_str().unwrap())).collect();
    assert_eq!(states, [(1, "superseded"), (2, "approved")]);
    assert_eq!(listed[1]["approver"], "riley@contoso.example");
    assert!(listed[1]["drifted"].is_null());
}

#[test]
fn a_drift_under_the_threshold_leaves_the_baseline_approved() {
    let dir = fresh();
    let data = dir.join("data");
    import(&dir, 0);
    let (code, out) = sv0_in(&data, &["policy", "set", "--drift-threshold", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("on 3 path(s) or more"), "{out}");
    let intent = intent_file(&dir);
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "baseline", "--intent", &intent]);
    assert_eq!(code, 0, "{out}");
    import(&dir, 1);
    assert_eq!(baselines(&data)[0]["state"], "approved", "2 breaking paths are under a threshold of 3");
    let (code, out) = sv0_in(&data, &["policy", "set", "--drift-threshold", "0"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn sv0_watch_imports_its_sources_each_round_and_reports_drift() {
    let dir = fresh();
    let data = dir.join("data");
    let source = dir.join("collector.json");
    std::fs::write(&source, demo_snapshot(DEMO_SNAPSHOTS[0])).unwrap();
    let source_arg = source.to_str().unwrap();
    let (code, out) = sv0_in(&data, &["watch", "--every", "1s", "--snapshot", source_arg, "--ticks", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported scan"), "{out}");
    let (code, out) = sv0_in(&data, &["approve", "--scope", SCOPE, "--note", "baseline"]);
    assert_eq!(code, 0, "{out}");

    // The collector rewrites its file with the deployed tenant; a broken source next to it is
    // reported every round and does not stop the watch.
    std::fs::write(&source, demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, b"{ not json").unwrap();
    let started = std::time::Instant::now();
    let (code, out) = sv0_in(
        &data,
        &[
            "watch",
            "--every",
            "1s",
            "--snapshot",
            source_arg,
            "--snapshot",
            broken.to_str().unwrap(),
            "--ticks",
            "2",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "two rounds are an interval apart");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |round: u64, key: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["round"] == round && !l[key].is_null()).collect()
    };
    assert_eq!(of(1, "source")[0]["imported"], true);
    assert!(of(1, "source")[1]["error"].as_str().unwrap().contains("not valid"), "{out}");
    assert!(of(1, "source")[1]["source"].as_str().unwrap().ends_with("broken.json"));
    assert_eq!(of(2, "source")[0]["imported"], false, "an unchanged source appends nothing");
    for round in [1, 2] {
        let scope = of(round, "scope");
        assert_eq!(scope.len(), 1);
        assert_eq!(scope[0]["state"], "drifted");
        assert_eq!(scope[0]["disposition"], "requires_review");
        // Approved without a declared intent: all five additions are unreviewed, not only the
        // two Finance writes.
        assert_eq!(scope[0]["drifted"]["paths"], 5);
    }

    // The scheduled scan raised a drift signal for SOC consumers.
    let (code, out) = sv0_in(&data, &["signals"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("io.sv0.drift.detected"), "{out}");

    let (code, out) = sv0_in(&data, &["watch", "--every", "0s", "--snapshot", source_arg]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("at least 1s"), "{out}");
}

#[test]
fn an_acknowledged_finding_becomes_overdue_when_a_later_scan_passes_its_due_date() {
    let dir = fresh();
    let data = dir.join("data");
    let secret = |data: &Path| -> Value {
        let (code, out) = sv0_in(data, &["findings", "--all", "--json"]);
        assert_eq!(code, 0, "{out}");
        let all: Vec<Value> = serde_json::from_str(&out).unwrap();
        all.into_iter().find(|f| f["finding"]["rule_id"] == "SV0-E002").expect("the demo has a long-lived secret")
    };
    import(&dir, 0);
    let open = secret(&data);
    assert_eq!(open["lifecycle"], "open");
    let id = open["finding"]["finding_id"].as_str().unwrap();
    // Due the day after the first scan: the deployment scan, later, passes it. (Approved on
    // the day of the first scan: an acknowledgement due before the approval is refused.)
    crate::block_on(async {
        let mut service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let scope = sv0_domain::scope::Scope::parse(SCOPE).unwrap();
        let at = |t: &str| sv0_domain::Timestamp::parse(t).unwrap();
        let ack = sv0_domain::events::Acknowledgement { finding_id: id.to_string(), due: at("2026-03-03T00:00:00Z") };
        let past = service
            .approve(
                &tenant,
                &scope,
                "baseline",
                vec![ack.clone()],
                "riley@contoso.example",
                at("2026-03-04T10:00:00Z"),
            )
            .await
            .unwrap_err();
        assert!(past.to_string().contains("is due 2026-03-03, which is before today (2026-03-04)"), "{past}");
        service
            .approve(&tenant, &scope, "baseline", vec![ack], "riley@contoso.example", at("2026-03-02T10:00:00Z"))
            .await
            .unwrap();
    });
    assert_eq!(secret(&data)["lifecycle"], "acknowledged");
    import(&dir, 1);
    let overdue = secret(&data);
    assert_eq!(overdue["lifecycle"], "overdue", "{overdue:#}");
    assert_eq!(overdue["acknowledgement"]["by"], "riley@contoso.example");
    let (_, sarif) = sv0_in(&data, &["findings", "--sarif"]);
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    let result = sarif["runs"][0]["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == "SV0-E002").unwrap();
    assert!(result.get("suppressions").is_none(), "an overdue acknowledgement no longer suppresses");
}
