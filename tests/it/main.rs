//! SV0's one integration test binary. Each module covers one area end to end with real parts:
//! the redb-backed log, redb views, real ed25519 keys, the CLI run in-process.

// Tests state what must hold with `unwrap` and `expect`: a failure is the test's report.
#![allow(clippy::unwrap_used)]

mod api;
mod browser;
mod cli;
mod codec;
mod connectors;
mod delta;
mod delta_scans;
mod disposition;
mod fake_http;
mod faults;
mod fidelity;
mod fuzz;
mod hardening;
mod hsm;
mod integrity;
mod intent;
mod log;
mod merkle;
mod model;
mod packs;
mod properties;
mod replay;
mod rules;
mod serve;
mod shards;
mod signals;
mod snapshots;
mod story;
mod synthetic;
mod timestamps;
mod tsa;
mod views;
mod web;
mod webdriver;
mod whatif;

use std::path::{Path, PathBuf};

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A bundled demo snapshot.
pub fn demo_snapshot(name: &str) -> Vec<u8> {
    let path = repo_root().join("crates/sv0/demo").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every event on a data directory's (embedded) log, decoded.
pub fn log_events(data: &Path) -> Vec<sv0_domain::events::Event> {
    block_on(async {
        use sv0_log::EventLog;
        let service = sv0_service::Service::open(data).await.unwrap();
        let records = service.log().read(1, None, 1_000_000).await.unwrap();
        records.iter().map(|r| sv0_codec::decode_event(&r.data).unwrap()).collect()
    })
}

/// The three demo snapshots in story order.
pub const DEMO_SNAPSHOTS: [&str; 3] =
    ["contoso-1-initial.json", "contoso-2-deployment.json", "contoso-3-remediation.json"];

/// Runs the CLI in-process; returns its exit code and standard output.
pub fn sv0(args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["sv0"];
    argv.extend_from_slice(args);
    let code = match sv0::run(argv, &mut out) {
        Ok(code) => code,
        Err(e) => {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&format!("error: {e:#}"));
            return (sv0::EXIT_ERROR, text);
        }
    };
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Runs the CLI against a data directory.
pub fn sv0_in(dir: &Path, args: &[&str]) -> (u8, String) {
    let dir = dir.to_str().expect("utf-8 temp path");
    let mut all = vec!["--data-dir", dir];
    all.extend_from_slice(args);
    sv0(&all)
}

/// Starts `sv0 <global> serve --listen 127.0.0.1:0 <serve args>`, reads the first `n` lines
/// it prints, and drains the rest so that it never blocks on a full pipe.
fn spawn_serve_reading(global: &[&str], serve: &[&str], n: usize) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sv0"))
        .args(global)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sv0 serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first: Vec<String> =
        (0..n).map(|_| lines.next().expect("sv0 serve printed too little").expect("read sv0 serve's output")).collect();
    std::thread::spawn(move || for _ in lines {});
    (child, first)
}

/// The address a `serving on http://...` (or `metrics on http://.../metrics`) line names.
fn served_at(line: &str, lead: &str, tail: &str) -> String {
    line.strip_prefix(lead).and_then(|l| l.strip_suffix(tail)).unwrap_or_else(|| panic!("{line}")).to_string()
}

/// Starts `sv0 <global> serve --listen 127.0.0.1:0 <extra>` and returns the process and the
/// address it serves on.
pub fn spawn_serve(global: &[&str], extra: &[&str]) -> (std::process::Child, String) {
    let (child, lines) = spawn_serve_reading(global, extra, 1);
    (child, served_at(&lines[0], "serving on http://", ""))
}

/// `spawn_serve` with `/metrics` on a listener of its own: (child, API address, metrics address).
pub fn spawn_serve_with_metrics(global: &[&str], extra: &[&str]) -> (std::process::Child, String, String) {
    let mut serve = vec!["--metrics-listen", "127.0.0.1:0"];
    serve.extend_from_slice(extra);
    let (child, lines) = spawn_serve_reading(global, &serve, 2);
    (child, served_at(&lines[0], "serving on http://", ""), served_at(&lines[1], "metrics on http://", "/metrics"))
}

/// Runs a future on a fresh multi-threaded runtime. Tests are plain `#[test]`s so that they can
/// also run the CLI, which builds its own runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
