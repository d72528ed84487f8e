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

/// `sv0 serve` logs each request (method, route template, status, time; never a token or a
/// query string) and says when it stops; `sv0 paths | head` ends quietly, exit 0.
#[test]
fn serve_logs_requests_without_secrets_and_says_when_it_stops_and_a_closed_pipe_is_quiet() {
    use std::io::BufRead;
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let stderr = dir.join("serve.err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sv0"))
        .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .env_remove("SV0_TRACE")
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("serving on http://").unwrap().to_string();
    assert_eq!(get(&addr, "/healthz").0, 200);
    let secret = "sv0_not-a-real-token-but-secret";
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /api/v1/paths?cursor=abc HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 401") || response.starts_with("HTTP/1.1 401"), "{response}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    assert!(rest.last().is_some_and(|l| l.starts_with("stopped serving")), "{rest:?}");
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("method=GET") && log.contains("route=/healthz") && log.contains("status=200"), "{log}");
    assert!(log.contains("route=/api/v1/paths") && log.contains("status=401"), "{log}");
    assert!(!log.contains(secret) && !log.contains("cursor=abc"), "a secret or a query string was logged: {log}");

    // A reader that closes the pipe early: no "Broken pipe", exit 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sv0"))
        .args(["--data-dir", data.to_str().unwrap(), "findings", "--all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("Broken pipe"), "{output:?}");
}
