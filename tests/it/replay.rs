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
    // Before the log's first record SV0 knew nothing: said, not answered with an empty list.
    let (code, none) = sv0_in(&replay, &["paths", "--as-of", "2000-01-01T00:00:00Z", "--json"]);
    assert_eq!(code, 2, "{none}");
    assert!(none.contains("is before the log's first record"), "{none}");
}

/// "As of" is the log's recording time (what SV0 knew then): a time before the log's first
/// record or a position that is not on the log selects nothing and is refused, exit 2, with
/// the log's recording-time and scan-time ranges; `--as-of` on `findings`, `delta`,
/// `baselines` and `review` answers exactly as a replay directory up to that point does.
#[test]
fn as_of_refuses_points_off_the_log_and_answers_every_question_as_a_replay_does() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    for (args, says) in [
        (&["paths", "--as-of", "2026-03-03T15:00:00Z"][..], "2026-03-03T15:00:00Z is before the log's first record"),
        (&["findings", "--as-of", "99999"], "log position 99999 is not on the log"),
        (&["baselines", "--as-of", "0"], "log position 0 is not on the log"),
        (&["replay", "--until", "2026-03-03T15:00:00Z", "--out", "/nonexistent/x"], "before the log's first record"),
    ] {
        let (code, out) = sv0_in(&data, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
        assert!(out.contains("its scans were observed 2026-03-02T09:00:00Z to"), "{args:?}: {out}");
    }
    let replay = dir.join("replay");
    let (code, out) = sv0_in(&data, &["replay", "--until", "12", "--out", replay.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("The log holds positions 1 to"), "{out}");
    let scope = "project:HR-Automation";
    for question in [
        &["findings", "--all", "--json"][..],
        &["delta", "--scope", scope, "--json"],
        &["baselines", "--json"],
        &["review", "--scope", scope, "--json"],
        &["paths", "--json"],
    ] {
        let (code, expected) = sv0_in(&replay, question);
        assert_eq!(code, 0, "{question:?}: {expected}");
        let mut args = question.to_vec();
        args.extend(["--as-of", "12"]);
        let (code, answer) = sv0_in(&data, &args);
        assert_eq!(code, 0, "{question:?}: {answer}");
        assert_eq!(answer, expected, "{question:?} as of 12 differs from the replay's answer");
        let (_, now) = sv0_in(&data, question);
        if question[0] != "paths" {
            assert_ne!(now, expected, "{question:?}: the demo changes after position 12");
        }
    }
    let (_, table) = sv0_in(&data, &["findings", "--as-of", "12"]);
    assert!(table.starts_with("as of 12: the log up to position 12. The log holds positions 1 to"), "{table}");
}
