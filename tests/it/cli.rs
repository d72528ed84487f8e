//! The CLI: commands a user types, their exit codes and the clear errors of wrong use.

use std::path::Path;

use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, sv0, sv0_in};

/// A data directory with the first demo scan imported and an approver configured.
fn scanned() -> TempDir {
    let dir = TempDir::new();
    let file = dir.join("scan.json");
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[0])).unwrap();
    let (code, out) = sv0_in(&dir.join("data"), &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("9 authority paths now"), "{out}");
    dir
}

fn configure_approver(data: &Path, principal: &str) {
    std::fs::write(data.join("sv0.toml"), format!("[identity]\nprincipal = \"{principal}\"\n")).unwrap();
}

fn log_head(data: &Path) -> u64 {
    use sv0_log::EventLog;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { sv0_log::EmbeddedLog::open(data.join("log.redb")).unwrap().head().await.unwrap() })
}

#[test]
fn help_lists_the_commands() {
    let (code, out) = sv0(&["--help"]);
    assert_eq!(code, 0);
    for command in ["demo", "scan", "paths", "findings", "approve", "delta", "verify", "export", "rebuild", "scopes"] {
        assert!(out.contains(command), "help lacks {command}: {out}");
    }
    // A command's help lists its own options apart from the global ones.
    let (code, out) = sv0(&["findings", "--help"]);
    assert_eq!(code, 0);
    let (own, global) = out.split_once("Global options:").unwrap_or_else(|| panic!("{out}"));
    assert!(own.contains("--scope") && own.contains("--as-of") && !own.contains("--log "), "{out}");
    for flag in ["--data-dir", "--tenant", "--log ", "--log-replicas", "--no-seal"] {
        assert!(global.contains(flag), "{flag} is not under Global options: {out}");
    }
}

/// The one message for a date that is not one, wherever a date is taken.
pub const DATE_WORDS: &str = "use YYYY-MM-DD (e.g. 2026-03-15) or an RFC 3339 time";

/// Approval guardrails: an empty note, an acknowledgement due in the past, and an approval that
/// would lock exactly what the baseline in force locks are refused, recording nothing (the last
/// unless --force); `--dry-run` shows what would be locked and records nothing.
#[test]
fn approval_guardrails_refuse_empty_notes_past_dues_and_repeats_and_dry_run_records_nothing() {
    let dir = scanned();
    let data = dir.join("data");
    configure_approver(&data, "sam.reviewer@contoso.example");
    let scope = "project:HR-Automation";
    let (_, out) = sv0_in(&data, &["findings", "--scope", scope, "--json"]);
    let read: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = read["findings"][0]["finding"]["finding_id"].as_str().unwrap().to_string();
    let head = log_head(&data);
    let past = format!("{first}=2020-01-01");
    for (args, says) in [
        (&["approve", "--scope", scope, "--note", "  "][..], "an approval needs a note"),
        (&["approve", "--scope", scope, "--note", "ok", "--ack", &past], "is due 2020-01-01, which is before today"),
        (&["approve", "--scope", scope, "--note", "ok", "--ack", &format!("{first}=15/03/2099")], DATE_WORDS),
    ] {
        let (code, out) = sv0_in(&data, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    let ack = format!("{first}=2099-01-01");
    let (code, out) = sv0_in(&data, &["approve", "--scope", scope, "--note", "ok", "--ack", &ack, "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("dry run, nothing recorded: approving would lock baseline v1 of scope project:HR-Automation"),
        "{out}"
    );
    assert!(out.contains("4 path(s):") && out.contains(&format!("{first} until 2099-01-01")), "{out}");
    assert!(out.contains("6 open finding(s) left unacknowledged:"), "{out}");
    let (code, out) =
        sv0_in(&data, &["approve", "--scope", scope, "--note", "ok", "--ack", &ack, "--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((plan["version"].as_u64(), plan["paths"].as_array().unwrap().len()), (Some(1), 4), "{plan}");
    assert_eq!(plan["unacknowledged"].as_array().unwrap().len(), 6, "{plan}");
    assert_eq!(log_head(&data), head, "refusals and dry runs record nothing");

    let (code, out) = sv0_in(&data, &["approve", "--scope", scope, "--note", "v1", "--ack", &ack]);
    assert_eq!(code, 0, "{out}");
    let head = log_head(&data);
    let (code, out) = sv0_in(&data, &["approve", "--scope", scope, "--note", "again", "--ack", &ack]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is already approved exactly so: baseline v1"), "{out}");
    assert_eq!(log_head(&data), head);
    let (code, out) =
        sv0_in(&data, &["approve", "--scope", scope, "--note", "again", "--ack", &ack, "--force", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["version"], 2);
}

/// `sv0 findings` lists the most urgent first, with the remediation to apply; `sv0 findings
/// show ID` gives one finding in full, and a mistyped id is an error naming the closest.
#[test]
fn findings_come_most_urgent_first_with_remediation_and_one_shows_in_full() {
    let dir = scanned();
    let data = dir.join("data");
    let (code, out) = sv0_in(&data, &["findings", "--json"]);
    assert_eq!(code, 0, "{out}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let rank = |f: &serde_json::Value| match f["finding"]["severity"].as_str() {
        Some("critical") => 0,
        Some("high") => 1,
        Some("medium") => 2,
        _ => 3,
    };
    let ranks: Vec<u8> = all.iter().map(rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]) && ranks[0] < ranks[ranks.len() - 1], "{ranks:?}");
    let first = &all[0]["finding"];
    let id = first["finding_id"].as_str().unwrap();
    let remedy = first["remediation"][0]["text"].as_str().unwrap();
    let (_, table) = sv0_in(&data, &["findings"]);
    assert!(table.contains("Remediation") && table.contains(remedy), "{table}");
    let (code, shown) = sv0_in(&data, &["findings", "show", id]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.starts_with(id) && shown.contains(first["title"].as_str().unwrap()), "{shown}");
    assert!(shown.contains("remediation:") && shown.contains(remedy) && shown.contains("paths:"), "{shown}");
    let (code, shown) = sv0_in(&data, &["findings", "show", id, "--json"]);
    assert_eq!(code, 0, "{shown}");
    let one: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!((one["finding"]["finding_id"].as_str(), one["lifecycle"].as_str()), (Some(id), Some("open")));
    let typo = format!("{}{}", &id[..id.len() - 1], if id.ends_with('0') { '1' } else { '0' });
    let (code, out) = sv0_in(&data, &["findings", "show", &typo]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("no finding {typo} in tenant contoso")) && out.contains(id), "{out}");
}

/// The demo scanned, an approver configured, and `sv0 findings --json` of the HR project.
fn hr_findings_with_an_approver() -> (TempDir, serde_json::Value) {
    let dir = scanned();
    configure_approver(&dir.join("data"), "sam.reviewer@contoso.example");
    let (code, out) = sv0_in(&dir.join("data"), &["findings", "--scope", "project:HR-Automation", "--json"]);
    assert_eq!(code, 0, "{out}");
    (dir, serde_json::from_str(&out).unwrap())
}

#[test]
fn approve_records_the_configured_principal_and_acknowledgements() {
    let (dir, read) = hr_findings_with_an_approver();
    let data = dir.join("data");
    let findings = read["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 7);
    assert!(read["posture_digest"].as_str().unwrap().starts_with("sha256:"), "{read}");
    let first = findings[0]["finding"]["finding_id"].as_str().unwrap().to_string();
    let ack = format!("{first}=2099-03-15");
    let (code, out) = sv0_in(
        &data,
        &["approve", "--scope", "project:HR-Automation", "--note", "ok for release 1", "--ack", &ack, "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let baseline: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(baseline["approver"], "sam.reviewer@contoso.example");
    assert_eq!(baseline["version"], 1);
    assert_eq!(baseline["note"], "ok for release 1");
    assert_eq!(baseline["acknowledged"][0]["finding_id"], first.as_str());
    assert_eq!(baseline["acknowledged"][0]["due"], "2099-03-15T00:00:00Z");
    assert_eq!(baseline["paths"].as_array().unwrap().len(), 4);

    let (_, out) = sv0_in(&data, &["findings", "--scope", "project:HR-Automation"]);
    assert!(out.contains("by sam.reviewer@contoso.example until 2099-03-15"), "{out}");
    let (code, out) = sv0_in(&data, &["delta", "--scope", "project:HR-Automation"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 change(s)") && out.contains("matches baseline v1 exactly"), "{out}");
}

/// Findings about a workload's paths live in the workload's compressed group, the others one row
/// each (projections' `findingstore`): an acknowledgement reaches either kind by id, `findings
/// show` finds both, and a rebuild from the log gives the same records.
#[test]
fn acknowledgements_reach_findings_stored_in_a_workload_group_and_alone() {
    let (dir, read) = hr_findings_with_an_approver();
    let data = dir.join("data");
    let id_of = |prefix: &str| {
        read["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["finding"]["subject"].as_str().unwrap().starts_with(prefix))
            .map(|f| f["finding"]["finding_id"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no finding about a {prefix}: {read}"))
    };
    let (grouped, alone) = (id_of("path:"), id_of("credential:"));
    let (code, before) = sv0_in(&data, &["findings", "--all", "--json"]);
    assert_eq!(code, 0, "{before}");
    let acks = [format!("{grouped}=2099-03-15"), format!("{alone}=2099-04-01")];
    let (code, out) = sv0_in(
        &data,
        &["approve", "--scope", "project:HR-Automation", "--note", "both kinds", "--ack", &acks[0], "--ack", &acks[1]],
    );
    assert_eq!(code, 0, "{out}");
    let shown = |id: &str| {
        let (code, out) = sv0_in(&data, &["findings", "show", id, "--json"]);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    for (id, due) in [(&grouped, "2099-03-15T00:00:00Z"), (&alone, "2099-04-01T00:00:00Z")] {
        let one = shown(id);
        assert_eq!(one["acknowledgement"]["by"], "sam.reviewer@contoso.example", "{one}");
        assert_eq!(one["acknowledgement"]["due"], due, "{one}");
        assert_eq!(one["status"], "open", "{one}");
    }
    let (_, after) = sv0_in(&data, &["findings", "--all", "--json"]);
    let count = |s: &str| serde_json::from_str::<Vec<serde_json::Value>>(s).unwrap().len();
    assert_eq!(count(&after), count(&before), "an acknowledgement adds or drops no finding");
    let (code, out) = sv0_in(&data, &["rebuild"]);
    assert_eq!(code, 0, "{out}");
    let (_, rebuilt) = sv0_in(&data, &["findings", "--all", "--json"]);
    assert_eq!(rebuilt, after, "a rebuild from the log gives the same findings");
}

#[test]
fn approve_without_a_configured_identity_is_refused_and_appends_nothing() {
    let dir = scanned();
    let data = dir.join("data");
    let head = log_head(&data);
    let (code, out) = sv0_in(&data, &["approve", "--scope", "project:HR-Automation", "--note", "n"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no approver identity is configured"), "{out}");
    assert_eq!(log_head(&data), head);
}

#[test]
fn approve_refuses_unknown_findings_bad_acks_and_empty_scopes() {
    let dir = scanned();
    let data = dir.join("data");
    configure_approver(&data, "sam.reviewer@contoso.example");
    let head = log_head(&data);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--scope", "project:HR-Automation", "--note", "n", "--ack", "F-000000000000=2099-03-15"],
            "is not open in scope",
        ),
        (&["--scope", "project:HR-Automation", "--note", "n", "--ack", "F-1"], "use FINDING=YYYY-MM-DD"),
        (&["--scope", "project:Nothing-Here", "--note", "n"], "selects no workload"),
        (&["--scope", "team:x", "--note", "n"], "unknown scope selector kind"),
    ];
    for (args, expect) in cases {
        let mut all = vec!["approve"];
        all.extend_from_slice(args);
        let (code, out) = sv0_in(&data, &all);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(expect), "{args:?}: {out}");
    }
    assert_eq!(log_head(&data), head);
}

/// `--tenant` (or SV0_TENANT) naming another tenant than the snapshot's refuses the import, as
/// the API refuses a snapshot of another tenant than the token's.
#[test]
fn scan_import_refuses_a_snapshot_of_another_tenant_than_named() {
    let dir = scanned();
    let data = dir.join("data");
    let head = log_head(&data);
    let file = dir.join("scan-2.json");
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
    let (code, out) = sv0_in(&data, &["--tenant", "fabrikam", "scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the snapshot is of tenant contoso, and --tenant (or SV0_TENANT) names fabrikam"), "{out}");
    assert_eq!(log_head(&data), head, "nothing appended");
    let (code, out) = sv0_in(&data, &["--tenant", "contoso", "scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// A scope, tenant or workload that selects nothing is an error naming the closest existing
/// names, never an empty answer; `sv0 scopes` lists what a scope can name.
#[test]
fn typos_are_errors_that_name_the_closest_names() {
    let dir = scanned();
    let data = dir.join("data");
    let hr = "Did you mean project:HR-Automation?";
    for (args, says) in [
        (
            &["paths", "--scope", "project:HR-Automaton"][..],
            "project:HR-Automaton selects no workload of tenant contoso",
        ),
        (&["paths", "--scope", "project:HR-Automaton"], hr),
        (&["review", "--scope", "project:hr-automation"], hr),
        (&["findings", "--scope", "tag:env=prd"], "Did you mean tag:env=prod?"),
        (&["paths", "--scope", "workload:asst_hr_onboardng"], "Did you mean workload:asst_hr_onboarding?"),
        (&["delta", "--scope", "project:Marketing"], "project:Marketing selects no workload"),
        (&["approve", "--scope", "project:HR-Automaton", "--note", "x"], hr),
        (
            &["--tenant", "contosa", "findings"],
            "tenant contosa has no data here (the tenants here: contoso). Did you mean contoso?",
        ),
    ] {
        let (code, out) = sv0_in(&data, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
        assert!(!out.contains("sv0 approve"), "{args:?}: a scope that does not exist cannot be approved: {out}");
    }
    let (code, out) = sv0_in(&data, &["scopes", "--json"]);
    assert_eq!(code, 0, "{out}");
    let known: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(known["projects"]["project:HR-Automation"], 2, "{known}");
    assert_eq!(known["tags"]["tag:env=prod"], 3, "{known}");
    let (_, table) = sv0_in(&data, &["scopes"]);
    assert!(table.contains("project:Finance-Ops") && table.contains("1 workload(s)"), "{table}");
}

#[test]
fn questions_without_data_get_hints() {
    // A directory with no SV0 data (a mistyped --data-dir) is named, and not made a database.
    let dir = TempDir::new();
    let typo = dir.join("dta");
    for command in [&["paths"][..], &["findings"], &["verify"], &["baselines"], &["tokens", "list"], &["rebuild"]] {
        let (code, out) = sv0_in(&typo, command);
        assert_eq!(code, 2, "{command:?}: {out}");
        assert!(out.contains(&format!("{} holds no SV0 data", typo.display())), "{out}");
        assert!(!typo.exists(), "{command:?} created {}", typo.display());
    }
    // Generating the signing key first starts the directory; questions then get hints.
    let (code, out) = sv0_in(&typo, &["keys", "generate"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&typo, &["paths"]);
    assert_eq!(code, 2);
    assert!(out.contains("no tenant has been scanned yet"), "{out}");
    let dir = scanned();
    let (code, out) = sv0_in(&dir.join("data"), &["delta", "--scope", "project:HR-Automation"]);
    assert_eq!(code, 2);
    assert!(out.contains("has no approved baseline") && out.contains("sv0 approve"), "{out}");
    let (code, out) = sv0_in(&dir.join("data"), &["paths", "--tenant", "fabrikam"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("tenant fabrikam has no data here (the tenants here: contoso)"), "{out}");
}

#[test]
fn the_signing_key_is_created_on_first_use_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scanned();
    let keys = dir.join("data").join("keys");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys.join("signing.key")), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let pem = std::fs::read_to_string(keys.join("signing.pub.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    // A key file others can read is refused rather than used.
    std::fs::set_permissions(keys.join("signing.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = dir.join("again.json");
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
    let (code, out) = sv0_in(&dir.join("data"), &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("can be read by other users"), "{out}");
}

#[test]
fn synth_scan_list_diff_release_policy_and_path_filters_from_the_command_line() {
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    configure_approver(&data, "sam@contoso.example");
    let tenant_file = dir.join("tenant.json");
    let rescan_file = dir.join("rescan.json");
    let (code, out) = sv0(&["synth", "--paths", "1000", "--seed", "3", "--out", tenant_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("10 workloads, 20 identities"), "{out}");
    let (code, out) = sv0(&[
        "synth",
        "--rescan-of",
        tenant_file.to_str().unwrap(),
        "--change",
        "2%",
        "--out",
        rescan_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0(&["synth", "--out", rescan_file.to_str().unwrap()]);
    assert_eq!(code, 2, "--paths or --rescan-of is needed: {out}");

    for file in [&tenant_file, &rescan_file] {
        let (code, out) = sv0_in(&data, &["scan", "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = sv0_in(&data, &["scan", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let scans: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(scans.len(), 2);
    assert!(scans.iter().all(|s| s["status"] == "applied"));
    let second = scans[1]["scan_id"].as_str().unwrap().to_string();
    let (code, out) = sv0_in(&data, &["scan", "diff", &second]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("added") && out.contains("changed") && out.contains("removed"), "{out}");
    assert!(out.contains("added grants (") && out.contains("changed grants ("), "{out}");

    // Filters: every path printed has the asked-for properties.
    let (code, out) = sv0_in(&data, &["paths", "--grade", "A", "--egress", "cloud_storage", "--json"]);
    assert_eq!(code, 0, "{out}");
    let paths: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(!paths.is_empty());
    assert!(paths.iter().all(|p| p["grade"] == "A" && p["egress"] == "cloud_storage"));
    let (code, out) = sv0_in(&data, &["paths", "--workload", "workload-0000001", "--limit", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(first 2 shown)"), "{out}");
    let (code, out) = sv0_in(&data, &["paths", "--grade", "D"]);
    assert_eq!(code, 2, "{out}");

    // The policy: shown, changed, refused when wrong.
    let (code, out) = sv0_in(&data, &["policy", "show"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("evidence window:       30 days"), "{out}");
    let (code, out) =
        sv0_in(&data, &["policy", "set", "--evidence-window-days", "7", "--internal-host", "contoso.com", "--json"]);
    assert_eq!(code, 0, "{out}");
    let policy: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(policy["evidence_window_days"], 7);
    assert_eq!(policy["internal_host_suffixes"][0], "contoso.com");
    let head = log_head(&data);
    let (code, out) = sv0_in(&data, &["policy", "set", "--breaker-percent", "0"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("max_removed_percent") && out.contains("nothing was appended"), "{out}");
    assert_eq!(log_head(&data), head);

    // A scan that removes half the grants is held; release applies it and names the releaser.
    let mut held: serde_json::Value = serde_json::from_slice(&std::fs::read(&rescan_file).unwrap()).unwrap();
    held["scan"]["observed_at"] = "2026-03-05T09:00:00Z".into();
    let grants = held["grants"].as_array_mut().unwrap();
    let half = grants.len() / 2;
    grants.truncate(half);
    let held_file = dir.join("held.json");
    std::fs::write(&held_file, serde_json::to_vec(&held).unwrap()).unwrap();
    let (code, out) = sv0_in(&data, &["scan", "import", held_file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "quarantined");
    let held_id = report["scan_id"].as_str().unwrap().to_string();
    let (_, out) = sv0_in(&data, &["scan", "list"]);
    assert!(out.contains(&format!("sv0 scan release {held_id}")), "{out}");
    let (code, out) = sv0_in(&data, &["scan", "release", &held_id]);
    assert_eq!(code, 2, "--note is required: {out}");
    let (code, out) = sv0_in(&data, &["scan", "release", &held_id, "--note", "half the grants were retired"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("released by sam@contoso.example and applied"), "{out}");
    let (code, out) = sv0_in(&data, &["scan", "release", &held_id, "--note", "again"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not quarantined"), "{out}");
}

/// The paths table shows, under each name, the id its filter takes: an identity id read off the
/// table selects that identity's paths.
#[test]
fn the_ids_that_filters_take_are_in_the_paths_table() {
    let dir = scanned();
    let data = dir.join("data");
    let (code, json) = sv0_in(&data, &["paths", "--json"]);
    assert_eq!(code, 0, "{json}");
    let paths: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let (code, table) = sv0_in(&data, &["paths"]);
    assert_eq!(code, 0, "{table}");
    let named = paths.iter().find(|p| p["identity"]["name"] != p["identity"]["id"]).expect("a named identity");
    let (name, id) = (named["identity"]["name"].as_str().unwrap(), named["identity"]["id"].as_str().unwrap());
    assert!(table.contains(name) && table.contains(id), "{table}");
    for (filter, node) in [("--workload", "workload"), ("--identity", "identity"), ("--destination", "destination")] {
        let id = named[node]["id"].as_str().unwrap();
        assert!(table.contains(id), "{node} id {id} is not in the table: {table}");
        let (code, out) = sv0_in(&data, &["paths", filter, id]);
        assert_eq!(code, 0, "{out}");
        assert!(!out.starts_with("0 authority path(s)"), "{filter} {id}: {out}");
    }
    let domain = named["domain"]["id"].as_str().unwrap();
    let (code, out) = sv0_in(&data, &["paths", "--domain", domain]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.starts_with("0 authority path(s)"), "--domain {domain}: {out}");
}

/// `sv0 bench` folds its synthetic tenant and measures every stage (a small one here; the
/// figures themselves are in docs/performance.md): it once appended on a subject the fold
/// ignores and failed with "selects no workload".
#[test]
fn bench_folds_its_synthetic_tenant_and_reports_each_stage() {
    let (code, out) = sv0(&["bench", "--paths", "2000", "--skip-replay", "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = report.to_string();
    assert!(text.contains("fold"), "{report}");
    assert!(text.contains("paths"), "{report}");
    let tables = report["views_table_bytes"].as_array().expect("the views' tables");
    assert!(tables.iter().any(|t| t["table"] == "paths" && t["bytes"].as_u64() > Some(0)), "{report}");
    for stage in ["more scopes baselined (scope memos)", "every baselined scope assessed afresh"] {
        assert!(text.contains(stage), "no stage {stage:?}: {report}");
    }
}
