//! Audit replay: `sv0 replay --until T --out DIR` writes the log as it stood at T, with every
//! projection, into DIR, which every read command then queries; on both backends.

use serde_json::Value;
use sv0_tests::TempDir;
use sv0_tests::nats::NatsServer;

use crate::{sv0, sv0_in};

/// Runs the demo, then replays it up to the approval of baseline v1 and checks what the
/// replay shows. `log` is the `--log` value, if any.
fn replay_story(dir: &TempDir, log: Option<&str>) {
    let data = dir.join("data");
    let mut args = vec!["--data-dir", data.to_str().unwrap()];
    if let Some(log) = log {
        args.extend(["--log", log]);
    }
    let run = |extra: &[&str]| {
        let mut all = args.clone();
        all.extend_from_slice(extra);
        sv0(&all)
    };
    let (code, out) = run(&["demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let tenant = doc["tenant"].as_str().unwrap().to_string();
    let v1_position = doc["baseline_versions"][0]["log_position"].as_u64().unwrap();

    let replay = dir.join("replay");
    let (code, out) = run(&["replay", "--until", &v1_position.to_string(), "--out", replay.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("up to position {v1_position}")), "{out}");

    let (code, out) = sv0_in(&replay, &["--tenant", &tenant, "baselines", "--json"]);
    assert_eq!(code, 0, "{out}");
    let baselines: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(baselines.len(), 1, "only baseline v1 existed then");
    let (_, out) = sv0_in(&replay, &["--tenant", &tenant, "paths", "--scope", "project:HR-Automation", "--json"]);
    let read: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(read["paths"].as_array().unwrap().len(), 4, "before the deployment");
    assert!(read["posture_digest"].as_str().unwrap().starts_with("sha256:"), "{read}");
    let (code, out) = sv0_in(&replay, &["--tenant", &tenant, "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 1 pack(s)"), "the pack chain as it stood: {out}");
    // The replay is read-only.
    let (code, out) = sv0_in(&replay, &["approve", "--scope", "project:HR-Automation", "--note", "late"]);
    assert_eq!(code, 2);
    assert!(out.contains("audit replay") && out.contains("read-only"), "{out}");
    // And it refuses to overwrite anything.
    let (code, out) = run(&["replay", "--until", "1", "--out", replay.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.contains("not empty"), "{out}");
}

#[test]
fn a_replay_of_the_embedded_log_answers_as_of_that_moment() {
    replay_story(&TempDir::new(), None);
}

#[test]
fn a_replay_of_a_jetstream_log_answers_as_of_that_moment() {
    let server = NatsServer::start();
    replay_story(&TempDir::new(), Some(&server.url()));
}

#[test]
fn a_replay_by_time_keeps_the_recording_times() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let replay = dir.join("replay");
    let (code, out) = sv0_in(&data, &["replay", "--until", "2100-01-01T00:00:00Z", "--out", replay.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // Everything was recorded before 2100: the replay is the whole log, times included.
    let (_, all) = sv0_in(&data, &["paths", "--as-of", "2100-01-01T00:00:00Z", "--json"]);
    let (_, replayed) = sv0_in(&replay, &["paths", "--as-of", "2100-01-01T00:00:00Z", "--json"]);
    assert_eq!(all, replayed);
    let (_, none) = sv0_in(&replay, &["paths", "--as-of", "2000-01-01T00:00:00Z", "--json"]);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&none).unwrap().len(), 0);
}
