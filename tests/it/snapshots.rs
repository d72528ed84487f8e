//! Bad snapshots get a clear error and change nothing: the log's head stays where it was.

use serde_json::{Value, json};
use sv0_log::EventLog;
use sv0_service::Service;
use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, sv0_in};

fn demo_json() -> Value {
    serde_json::from_slice(&demo_snapshot(DEMO_SNAPSHOTS[0])).unwrap()
}

/// Imports `bytes` into a data directory that already holds one scan; asserts the import
/// fails with a message containing each of `expect` and that the log did not move.
fn check(bytes: &[u8], expect: &[&str]) {
    let dir = TempDir::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let head = rt.block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        let head = service.log().head().await.unwrap();
        let err = service.import_snapshot(bytes, None).await.unwrap_err();
        let message = format!("{err}");
        for want in expect {
            assert!(message.contains(want), "error {message:?} lacks {want:?}");
        }
        assert_eq!(service.log().head().await.unwrap(), head, "the log did not move");
        head
    });
    // The CLI says the same, exits 2, and appends nothing either.
    let file = dir.join("bad.json");
    std::fs::write(&file, bytes).unwrap();
    let (code, out) = sv0_in(dir.path(), &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing was appended"), "{out}");
    rt.block_on(async {
        let service = Service::open(dir.path()).await.unwrap();
        assert_eq!(service.log().head().await.unwrap(), head);
    });
}

fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut doc = demo_json();
    edit(&mut doc);
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn malformed_json_is_refused_with_its_position() {
    check(b"{\"schema_version\": 1, \"tenant\": ", &["snapshot is not valid", "line 1"]);
    check(b"", &["snapshot is not valid"]);
    check(b"[1, 2, 3]", &["snapshot is not valid"]);
}

#[test]
fn unknown_references_are_named() {
    let bytes = with(|doc| {
        doc["grants"][0]["identity"] = json!("no-such-identity");
        doc["bindings"][1]["workload"] = json!("ghost-workload");
    });
    check(
        &bytes,
        &["invalid snapshot: 2 problems:", "refers to unknown identity \"no-such-identity\"", "ghost-workload"],
    );
}

/// Every problem of a bad snapshot is listed, in the error and, with `--json`, as a JSON list;
/// nothing is appended.
#[test]
fn every_problem_of_a_bad_snapshot_is_listed() {
    let bytes = with(|doc| {
        for (n, grant) in doc["grants"].as_array_mut().unwrap().iter_mut().enumerate() {
            grant["identity"] = json!(format!("no-such-identity-{n}"));
        }
    });
    let grants = demo_json()["grants"].as_array().unwrap().len();
    assert!(grants >= 3, "the demo has {grants} grants");
    let dir = sv0_tests::TempDir::new();
    let file = dir.join("bad.json");
    std::fs::write(&file, &bytes).unwrap();
    let data = dir.join("data");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    for n in 0..grants {
        assert!(out.contains(&format!("no-such-identity-{n}\"")), "problem {n} is not listed: {out}");
    }
    assert!(!out.contains("more)"), "{out}");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["imported"], false);
    assert_eq!(report["problems"].as_array().unwrap().len(), grants, "{report}");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", "--json", dir.join("missing.json").to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(crate::log_events(&data).is_empty(), "nothing appended");
}

/// Fields of the wrong type are all listed too, each at its JSON path, the first with its line
/// and column (the reader stops at the first; the snapshot's JSON Schema finds the rest).
#[test]
fn every_wrongly_typed_field_of_a_snapshot_is_listed() {
    let bytes = with(|doc| {
        doc["scan"]["observed_at"] = json!(42);
        doc["grants"][0]["permissions"] = json!("read");
        doc["grants"][1]["identity"] = json!(7);
        doc["surprise"] = json!(true);
    });
    let dir = sv0_tests::TempDir::new();
    let file = dir.join("bad.json");
    std::fs::write(&file, &bytes).unwrap();
    let data = dir.join("data");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let problems: Vec<&str> = report["problems"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("(line "), "the first keeps its position: {problems:#?}");
    for path in ["at scan.observed_at:", "at grants[0].permissions:", "at grants[1].identity:", "surprise"] {
        assert!(problems.iter().any(|p| p.contains(path)), "{path} is not listed: {problems:#?}");
    }
    // One bad field: the reader's message alone, as before.
    let one = with(|doc| doc["grants"][1]["identity"] = json!(7));
    check(&one, &["at grants[1].identity:", "(line "]);
}

#[test]
fn duplicate_ids_are_named() {
    let bytes = with(|doc| {
        let first = doc["workloads"][0].clone();
        doc["workloads"].as_array_mut().unwrap().push(first);
    });
    check(&bytes, &["duplicate id \"asst_hr_onboarding\""]);
}

#[test]
fn unknown_fields_and_values_are_refused() {
    check(&with(|doc| doc["workloads"][0]["colour"] = json!("blue")), &["unknown field `colour`"]);
    check(&with(|doc| doc["grants"][0]["permissions"] = json!(["read", "fly"])), &["unknown variant `fly`"]);
    check(&with(|doc| doc["tenant"] = json!("Contoso Ltd")), &["invalid tenant id"]);
    check(&with(|doc| doc["scan"]["observed_at"] = json!("yesterday")), &["invalid time"]);
}

#[test]
fn an_unknown_schema_version_is_refused() {
    check(&with(|doc| doc["schema_version"] = json!(2)), &["unsupported schema_version 2"]);
}

#[test]
fn importing_the_same_snapshot_twice_appends_nothing_the_second_time() {
    let dir = TempDir::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let first = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        assert!(!first.duplicate);
        let head = service.log().head().await.unwrap();
        let again = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.scan_id, first.scan_id);
        assert_eq!(service.log().head().await.unwrap(), head);
    });
}

#[test]
fn the_snapshot_schema_is_generated_from_the_code() {
    let generated =
        serde_json::to_string_pretty(&schemars::schema_for!(sv0_domain::snapshot::Snapshot)).unwrap() + "\n";
    let path = crate::repo_root().join("schemas/snapshot.schema.json");
    if std::env::var_os("SV0_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed =
        std::fs::read_to_string(&path).expect("schemas/snapshot.schema.json; run with SV0_BLESS=1 to create it");
    assert_eq!(committed, generated, "schemas/snapshot.schema.json is stale: run SV0_BLESS=1 cargo test --test it");
}
