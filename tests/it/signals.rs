//! SOC signals: CloudEvents derived from the assessments, the same ids whenever they are
//! regenerated, published to `sv0.signals.<tenant>.<type>` by the projector on JetStream.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use sv0_log_nats::{Credentials, JetStreamLog, StreamSettings};
use sv0_tests::TempDir;
use sv0_tests::nats::NatsServer;

use crate::{block_on, sv0, sv0_in};

fn lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn signals_are_cloudevents_derived_from_the_story_and_stable_across_rebuilds() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["signals"]);
    assert_eq!(code, 0, "{out}");
    let events = lines(&out);
    for event in &events {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "urn:sv0:tenant:contoso");
        assert_eq!(event["datacontenttype"], "application/json");
        assert!(event["id"].as_str().unwrap().starts_with("sig-"));
        assert!(event["time"].as_str().unwrap().starts_with("2026-03-0"));
    }
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "signal ids are unique");
    let of_type = |t: &str| events.iter().filter(|e| e["type"] == t).collect::<Vec<_>>();
    assert_eq!(of_type("io.sv0.baseline.approved").len(), 2);
    let drift = of_type("io.sv0.drift.detected");
    assert_eq!(drift.len(), 1, "the deployment drifted from baseline v1");
    assert_eq!(drift[0]["subject"], "project:HR-Automation");
    let flagged = drift[0]["data"]["changes"].as_array().unwrap();
    assert_eq!(flagged.len(), 2, "the two Finance write paths");
    assert!(flagged.iter().all(|c| c["domain"] == "Finance"));
    assert!(flagged.iter().all(|c| c["intent"] == "unintended" && c["severity"] == "high"), "{flagged:?}");
    assert_eq!(of_type("io.sv0.verification.passed").len(), 1);
    assert!(of_type("io.sv0.verification.failed").is_empty());
    let opened = of_type("io.sv0.finding.opened");
    assert!(opened.iter().any(|e| e["data"]["rule_id"] == "SV0-P001" && e["data"]["severity"] == "high"));
    // A signal carries only what the log up to its assessment fixes, never details that a
    // later scan changes (which would make it depend on when it was derived).
    assert!(opened.iter().all(|e| e["data"].get("summary").is_none() && e["data"].get("path_ids").is_none()));
    assert_eq!(
        of_type("io.sv0.finding.resolved").len(),
        6,
        "Finance write and standing-authority findings resolved, and the two undeclared additions (SV0-D010)"
    );
    assert_eq!(opened.iter().filter(|e| e["data"]["rule_id"] == "SV0-D010").count(), 2);

    // Regenerated from a rebuilt projection: the same events, the same ids.
    let (code, _) = sv0_in(&data, &["rebuild"]);
    assert_eq!(code, 0);
    let (_, again) = sv0_in(&data, &["signals"]);
    assert_eq!(again, out);
    let (_, later) = sv0_in(&data, &["signals", "--since", &events[5]["sv0logposition"].to_string()]);
    assert!(lines(&later).len() < events.len());
}

#[test]
fn the_projector_publishes_signals_to_jetstream_once() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    let (code, out) = sv0(&["--data-dir", dir.join("demo").to_str().unwrap(), "--log", &url, "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let tenant = serde_json::from_str::<Value>(&out).unwrap()["tenant"].as_str().unwrap().to_string();
    let (_, expected) = sv0(&["--data-dir", dir.join("demo").to_str().unwrap(), "--log", &url, "signals"]);
    let expected = lines(&expected);

    let published = |projector_dir: &str| {
        let mut projector = std::process::Command::new(env!("CARGO_BIN_EXE_sv0"))
            .args(["--data-dir", dir.join(projector_dir).to_str().unwrap(), "--log", &url, "project"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let count = block_on(async {
            let log = JetStreamLog::connect(&url, Credentials::None, StreamSettings::default()).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(mut stream) = log.context().get_stream("SV0_SIGNALS").await {
                    let count = stream.info().await.unwrap().state.messages;
                    if count >= expected.len() as u64 {
                        // Give a second projector time to publish duplicates, if it would.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let count = stream.info().await.unwrap().state.messages;
                        let mut seen = Vec::new();
                        for seq in 1..=count {
                            let message = stream.direct_get(seq).await.unwrap();
                            let event: Value = serde_json::from_slice(&message.payload).unwrap();
                            let id = message.headers.get("Nats-Msg-Id").unwrap().as_str().to_string();
                            assert_eq!(event["id"], id.as_str(), "Nats-Msg-Id is the CloudEvents id");
                            let kind = event["type"].as_str().unwrap().trim_start_matches("io.sv0.").to_string();
                            assert_eq!(message.subject.as_str(), format!("sv0.signals.{tenant}.{kind}"));
                            seen.push(event);
                        }
                        break seen;
                    }
                }
                assert!(Instant::now() < deadline, "signals were not published within 60 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let _ = projector.kill();
        let _ = projector.wait();
        count
    };
    let first = published("projector-1");
    assert_eq!(first, expected, "the stream holds exactly the derived signals");
    // A second projector from scratch regenerates them with the same ids: nothing new is stored.
    let second = published("projector-2");
    assert_eq!(second.len(), expected.len());
}

/// The Overview's latest signals are the tail of the whole history's, read from the latest
/// assessments only.
#[test]
fn the_latest_signals_are_the_tail_of_every_signal() {
    let dir = TempDir::new();
    let data = dir.join("demo");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    block_on(async {
        let service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = sv0_domain::TenantId::new("contoso").unwrap();
        let all = service.signals_after(Some(&tenant), 0).unwrap();
        for n in [1, 3, 5, 10] {
            let latest = service.latest_signals(&tenant, n).unwrap();
            let ids = |s: &[sv0_service::signals::Signal]| s.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&latest), ids(&all[all.len() - n..]), "the latest {n}");
        }
    });
}
