//! `sv0 serve`: health, readiness and metrics over HTTP, with the projector and signer folding
//! the shared JetStream log in the same process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sv0_tests::TempDir;
use sv0_tests::nats::NatsServer;

use crate::{DEMO_SNAPSHOTS, sv0};

pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to sv0 serve");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn serve_reports_health_readiness_and_metrics_while_it_folds_and_seals() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    let (mut child, addr, metrics) = crate::spawn_serve_with_metrics(
        &["--data-dir", dir.join("serve").to_str().unwrap(), "--log", &url],
        &["--metrics-tenant-labels"],
    );
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&addr, "/metrics").0, 404, "the API's port does not serve metrics");

    // A command appends a scan without sealing; the service folds it and seals its pack.
    let file = dir.join("scan.json");
    std::fs::write(&file, crate::demo_snapshot(DEMO_SNAPSHOTS[0])).unwrap();
    let commands = dir.join("commands");
    let (code, out) = sv0(&[
        "--data-dir",
        commands.to_str().unwrap(),
        "--log",
        &url,
        "--no-seal",
        "scan",
        "import",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");

    let (_, findings) = sv0(&["--data-dir", commands.to_str().unwrap(), "--log", &url, "findings", "--json"]);
    let open = serde_json::from_str::<Vec<serde_json::Value>>(&findings).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&metrics, "/metrics");
        assert_eq!(status, 200);
        // Sealed, and the service's own views have folded the pack it appended (right after
        // the append the lag is briefly 2: the key registration and the pack).
        if body.contains("sv0_packs_sealed{tenant=\"contoso\"} 1") && body.contains("sv0_projection_lag 0\n") {
            assert!(body.contains(&format!("sv0_findings_open{{tenant=\"contoso\"}} {open}")), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the service did not seal the scan: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(ready["log_head"].as_u64().unwrap() >= 5, "{ready}");

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success(), "sv0 serve stops cleanly on SIGTERM");
}
