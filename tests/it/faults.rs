//! Faults the JetStream shape must survive, each against real nats-server processes and real
//! `sv0` processes: a projector killed mid-scan, two racing signers, a cluster member killed
//! while a client appends, a single server stopped and restarted under a producer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sv0::backend::{AnyLog, LogTarget};
use sv0_domain::Timestamp;
use sv0_domain::ids::TenantId;
use sv0_domain::scope::Scope;
use sv0_log::{AppendError, EventLog, Expected, NewEvent};
use sv0_log_nats::{Credentials, JetStreamLog, StreamSettings};
use sv0_projections::Views;
use sv0_service::import::new_event;
use sv0_service::{Service, pack_event};
use sv0_signer::PackSigner;
use sv0_tests::TempDir;
use sv0_tests::nats::{NatsCluster, NatsServer};

use crate::{DEMO_SNAPSHOTS, block_on, demo_snapshot};

/// A running `sv0 project` or `sv0 sign`, whose progress lines are read as they come.
pub(crate) struct Sv0Process {
    child: Child,
    /// Where the process writes its log (shown when a test fails).
    log_file: PathBuf,
    lines: Receiver<String>,
    position: u64,
}

impl Sv0Process {
    fn start(data_dir: &Path, url: &str, command: &str) -> Sv0Process {
        Sv0Process::start_with(data_dir, url, &[command])
    }

    /// `sv0 --data-dir DATA_DIR --log URL ARGS...`, its progress lines read as they come.
    pub(crate) fn start_with(data_dir: &Path, url: &str, args: &[&str]) -> Sv0Process {
        let log_file = data_dir.with_extension("log");
        let stderr = std::fs::File::create(&log_file).expect("create the process log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sv0"))
            .args(["--data-dir", data_dir.to_str().unwrap(), "--log", url])
            .args(args)
            .env("SV0_TRACE", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start sv0");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Sv0Process { child, log_file, lines, position: 0 }
    }

    /// Waits until the process reports its views at `at_least` or beyond.
    pub(crate) fn wait_position(&mut self, at_least: u64) -> u64 {
        self.wait_position_within(at_least, Duration::from_secs(120))
    }

    /// `wait_position` with a deadline of `within`.
    fn wait_position_within(&mut self, at_least: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        while self.position < at_least {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("sv0 did not reach position {at_least} (at {})", self.position));
            if let Some(n) = line.rsplit(' ').next().and_then(|n| n.parse().ok()) {
                self.position = n;
            }
        }
        self.position
    }

    /// Waits for the next progress line.
    fn next_position(&mut self) -> u64 {
        let line = self.lines.recv_timeout(Duration::from_secs(120)).expect("progress line");
        if let Some(n) = line.rsplit(' ').next().and_then(|n| n.parse().ok()) {
            self.position = n;
        }
        self.position
    }

    /// Reads the progress lines printed so far, without waiting.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(n) = line.rsplit(' ').next().and_then(|n| n.parse().ok()) {
                self.position = n;
            }
        }
    }

    /// Fails the test when the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll sv0") {
            panic!("sv0 exited with {status}");
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait for sv0");
        assert!(status.success(), "sv0 ended with {status}");
    }
}

impl Drop for Sv0Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.log_file.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

async fn jetstream(url: &str, replicas: usize) -> JetStreamLog {
    let settings = StreamSettings { replicas, ..StreamSettings::default() };
    JetStreamLog::connect(url, Credentials::None, settings).await.expect("connect to JetStream")
}

/// A command-side service on JetStream that leaves sealing to `sv0 sign`.
async fn commands(dir: &Path, url: &str) -> Service<AnyLog> {
    let target = LogTarget::JetStream { url: url.to_string(), replicas: 1 };
    sv0::backend::open(dir, &target).await.expect("open service").without_sealing()
}

#[test]
fn a_projector_killed_mid_scan_restarts_to_views_identical_to_a_rebuild() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    // Three large scans: the projector folds them over several transactions.
    let head = block_on(async {
        let mut service = commands(&dir.join("commands"), &url).await;
        for (variant, day) in [(0, "2026-03-01T00:00:00Z"), (1, "2026-03-02T00:00:00Z"), (2, "2026-03-03T00:00:00Z")] {
            let snapshot = sv0_synth::synthetic::synthetic_snapshot(6_000, variant, day).unwrap();
            service.import_snapshot(&serde_json::to_vec(&snapshot).unwrap(), None).await.unwrap();
        }
        service.log().head().await.unwrap()
    });
    let views_dir = dir.join("projector");
    let mut projector = Sv0Process::start(&views_dir, &url, "project");
    assert_eq!(projector.next_position(), 0);
    std::thread::sleep(Duration::from_millis(300));
    projector.kill();
    projector.drain();
    assert!(projector.position < head, "the projector must still be folding when it is killed");
    let mut projector = Sv0Process::start(&views_dir, &url, "project");
    projector.wait_position(head);
    projector.terminate();

    block_on(async {
        let log = jetstream(&url, 1).await;
        let views = Views::open(views_dir.join("views.redb")).unwrap();
        assert_eq!(views.checkpoint().unwrap(), head);
        let rebuilt = Views::in_memory().unwrap();
        rebuilt.catch_up(&log, None).await.unwrap();
        assert_eq!(views.dump().unwrap(), rebuilt.dump().unwrap(), "restarted views differ from a clean rebuild");
    });
}

#[test]
fn two_signers_racing_never_fork_a_chain() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    let mut first = Sv0Process::start(&dir.join("signer-1"), &url, "sign");
    let mut second = Sv0Process::start(&dir.join("signer-2"), &url, "sign");
    first.wait_position(0);
    second.wait_position(0);

    let (tenant, assessments) = block_on(async {
        let mut service = commands(&dir.join("commands"), &url).await;
        let scope = Scope::parse("project:HR-Automation").unwrap();
        let at = Timestamp::parse("2026-03-02T10:15:00Z").unwrap();
        let tenant = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap().tenant;
        service.approve(&tenant, &scope, "v1", vec![], "riley@contoso.example", at).await.unwrap();
        for name in &DEMO_SNAPSHOTS[1..] {
            service.import_snapshot(&demo_snapshot(name), None).await.unwrap();
        }
        service.approve(&tenant, &scope, "v2", vec![], "riley@contoso.example", at.add_days(1)).await.unwrap();
        let assessments = service.views().assessments_after(&tenant, 0).unwrap().len();
        (tenant, assessments)
    });
    assert_eq!(assessments, 5);

    // Wait until the chain holds every assessment, then check it from the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    block_on(async {
        let mut service = commands(&dir.join("check"), &url).await;
        loop {
            service.catch_up().await.unwrap();
            let sealed = service.views().pack_head(&tenant).unwrap().map_or(0, |h| h.index);
            if sealed as usize == assessments {
                break;
            }
            assert!(Instant::now() < deadline, "only {sealed} of {assessments} assessments sealed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let verdicts = service.verify(Some(&tenant), sv0_service::VerifyMode::Replay).await.unwrap().chains;
        let report = verdicts[0].result.as_ref().expect("chain intact");
        assert_eq!(report.packs, assessments, "one pack per assessment, no fork");
        // Every pack event on the log is part of the chain: no signer appended a losing pack.
        let records = service.log().read(1, None, usize::MAX).await.unwrap();
        // (Key registrations share the subject, so that a key's first pack index is exact.)
        let pack_events = records
            .iter()
            .filter(|r| r.subject == format!("{tenant}.pack"))
            .filter(|r| {
                let event = sv0_codec::decode_event(&r.data).unwrap();
                matches!(event.payload, sv0_domain::events::EventPayload::PackSealed(_))
            })
            .count();
        assert_eq!(pack_events, assessments, "a racing signer appended a pack outside the chain");
    });
    first.terminate();
    second.terminate();
}

/// What the racing signers test once caught only under load: two signers seal the same
/// assessment at the same place of the chain; the second append, made on a stale expectation,
/// must be a conflict (its pack differs: another key signed it), never taken for a retry of the
/// first. A retry of the first signer's own append still succeeds.
#[test]
fn a_second_signers_pack_for_the_same_place_conflicts_instead_of_passing_as_a_retry() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    block_on(async {
        let mut service = commands(&dir.join("commands"), &url).await;
        let tenant = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap().tenant;
        let assessment = service.views().assessments_after(&tenant, 0).unwrap().remove(0);
        let subject = format!("{tenant}.pack");
        let event_of = |keys: &str| {
            let signer = PackSigner::load_or_create(&dir.join(keys)).unwrap();
            let pack = sv0_signer::seal(&assessment, None, &signer).unwrap();
            new_event(&pack_event(&tenant, pack, assessment.assessed_event, assessment.occurred_at)).unwrap()
        };
        let (first, second) = (event_of("signer-1"), event_of("signer-2"));
        assert_ne!(first.event_id, second.event_id, "two signers' packs share an event id");
        let won = service.log().append(&subject, Expected::NoEvents, vec![first.clone()]).await.unwrap();
        match service.log().append(&subject, Expected::NoEvents, vec![second]).await {
            Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, Some(won.last())),
            other => panic!("the losing signer's pack was not a conflict: {other:?}"),
        }
        let retry = service.log().append(&subject, Expected::NoEvents, vec![first]).await.unwrap();
        assert_eq!((retry.last(), retry.duplicates), (won.last(), 1));
    });
}

/// Appends `count` events one at a time, retrying each with the same id until acknowledged;
/// returns (event id, position) per event and how many attempts failed.
async fn append_with_retries(
    log: &JetStreamLog,
    first: u32,
    count: u32,
    mut between: impl FnMut(u32),
) -> (Vec<([u8; 16], u64)>, usize) {
    let mut acked = Vec::new();
    let mut failures = 0;
    for n in first..first + count {
        between(n);
        let mut event_id = [0u8; 16];
        event_id[..4].copy_from_slice(&n.to_be_bytes());
        let event = NewEvent { event_id, data: format!("event {n}").into_bytes() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match log.append("faults.stream", Expected::Any, vec![event.clone()]).await {
                Ok(appended) => {
                    acked.push((event_id, appended.positions[0]));
                    break;
                }
                Err(AppendError::Backend(e)) => {
                    failures += 1;
                    assert!(Instant::now() < deadline, "appends did not resume within 60 s: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(other) => panic!("unexpected append error: {other}"),
            }
        }
    }
    (acked, failures)
}

/// Every acknowledged event is in the log exactly once, at the position its acknowledgement
/// gave, and nothing else is. (An append that failed may still have landed; its retry is then
/// acknowledged as a duplicate with the original position.)
async fn assert_exactly_once(log: &JetStreamLog, acked: &[([u8; 16], u64)]) {
    let mut expected = acked.to_vec();
    expected.sort_by_key(|(_, seq)| *seq);
    expected.dedup();
    assert_eq!(expected.len(), acked.len(), "an event was acknowledged at two positions");
    let records = log.read(1, None, usize::MAX).await.unwrap();
    let ours: Vec<([u8; 16], u64)> =
        records.iter().filter(|r| r.subject == "faults.stream").map(|r| (r.event_id, r.seq)).collect();
    assert_eq!(ours, expected, "the log differs from what was acknowledged");
}

#[test]
fn a_cluster_member_killed_during_appends_loses_nothing() {
    let mut cluster = NatsCluster::start();
    let url = cluster.url();
    block_on(async {
        let log = jetstream(&url, 3).await;
        let (mut acked, _) = append_with_retries(&log, 0, 100, |_| {}).await;
        // Kill the stream's leader, so that the cluster must elect a new one under load.
        let info = log.context().get_stream("SV0_LOG").await.unwrap().get_info().await.unwrap();
        let leader = info.cluster.and_then(|c| c.leader).unwrap_or_default();
        let victim = cluster.servers.iter().position(|s| leader.ends_with(&s.name())).unwrap_or(0);
        cluster.servers[victim].kill();
        let (more, failures) = append_with_retries(&log, 100, 100, |_| {}).await;
        acked.extend(more);
        cluster.servers[victim].restart();
        cluster.servers[victim].wait_healthy();
        let (rest, _) = append_with_retries(&log, 200, 100, |_| {}).await;
        acked.extend(rest);
        assert_exactly_once(&log, &acked).await;
        println!("cluster failover: {failures} append attempts failed while the leader was down");
    });
}

#[test]
fn a_single_server_restarted_under_a_producer_loses_and_duplicates_nothing() {
    let mut server = NatsServer::start();
    let url = server.url();
    block_on(async {
        let log = jetstream(&url, 1).await;
        let (mut acked, _) = append_with_retries(&log, 0, 50, |_| {}).await;
        server.kill();
        // The producer sees the failure as a backend error it can retry, and says what failed.
        let mut event_id = [0u8; 16];
        event_id[0] = 0xee;
        let err = log
            .append("faults.stream", Expected::Any, vec![NewEvent { event_id, data: b"lost?".to_vec() }])
            .await
            .unwrap_err();
        assert!(matches!(err, AppendError::Backend(_)), "{err}");
        assert!(!format!("{err}").is_empty());
        server.restart();
        server.wait_healthy();
        let (more, failures) = append_with_retries(&log, 50, 50, |_| {}).await;
        acked.extend(more);
        // The event whose append failed while the server was down is retried with its id.
        let retried = log
            .append("faults.stream", Expected::Any, vec![NewEvent { event_id, data: b"lost?".to_vec() }])
            .await
            .unwrap();
        acked.push((event_id, retried.positions[0]));
        let again = log
            .append("faults.stream", Expected::Any, vec![NewEvent { event_id, data: b"lost?".to_vec() }])
            .await
            .unwrap();
        assert_eq!(again.duplicates, 1, "a second retry is recognised as a duplicate");
        assert_exactly_once(&log, &acked).await;
        println!("single server restart: {failures} append attempts failed while it restarted");
    });
}

/// A scan of about 200,000 paths travels as some 80 events of nearly 1 MiB each: a projector
/// killed while it folds them, and started again, catches up to the head with no new append
/// (no slow-consumer disconnect at the server's default limits, no stalled subscription).
#[test]
fn a_projector_restarted_mid_fold_of_a_200k_path_scan_catches_up_without_a_new_append() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = TempDir::new();
    let (head, tenant) = block_on(async {
        let log = jetstream(&url, 1).await;
        let snapshot = sv0_synth::synthetic::synthetic_snapshot(200_000, 0, "2026-03-01T00:00:00Z").unwrap();
        let valid = sv0_service::import::parse_snapshot(&serde_json::to_vec(&snapshot).unwrap()).unwrap();
        let tenant = valid.tenant.clone();
        let scan = sv0_service::import::scan_events(valid, None, log.max_event_size(), None).unwrap();
        let largest = scan.events.iter().map(|e| e.data.len()).max().unwrap();
        assert!(largest > 512 * 1024, "MB-sized events ({largest} bytes)");
        log.append(&format!("{tenant}.scan"), Expected::Any, scan.events).await.unwrap();
        (log.head().await.unwrap(), tenant)
    });
    let views_dir = dir.join("projector");
    let mut projector = Sv0Process::start(&views_dir, &url, "project");
    while projector.position == 0 {
        projector.next_position();
    }
    projector.kill();
    assert!(projector.position < head, "the projector must still be folding when it is killed");

    let mut projector = Sv0Process::start(&views_dir, &url, "project");
    projector.wait_position_within(head, Duration::from_secs(600));
    projector.terminate();
    let views = Views::open(views_dir.join("views.redb")).unwrap();
    assert_eq!(views.checkpoint().unwrap(), head);
    let state = views.tenant_state(&tenant).unwrap().expect("the scan was applied");
    assert!(state.paths_total > 190_000, "{} paths", state.paths_total);
}

/// Imports a snapshot, retrying while the log cannot take it (a cluster electing a leader);
/// returns the tenant.
async fn import_with_retries(service: &mut Service<AnyLog>, snapshot: &[u8]) -> (TenantId, usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut failures = 0;
    loop {
        match service.import_snapshot(snapshot, None).await {
            Ok(report) => return (report.tenant, failures),
            Err(e) => {
                failures += 1;
                assert!(Instant::now() < deadline, "imports did not resume within 90 s: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// The fault campaign's liveness case: on a three-node cluster, with `serve` (not sealing),
/// `project` and `sign` as separate processes, scans keep arriving while the stream's leader
/// is killed (SIGKILL) and, later, restarted. Every process stays up through the election and
/// the old leader's return (a stale head is transient, never an exit), and all of them
/// converge on the head with no manual step: every assessment sealed once into one intact
/// chain, the projector's views identical to a fresh fold, the server ready at the head.
#[test]
fn serve_project_and_sign_processes_stay_up_and_converge_when_the_stream_leader_is_killed() {
    let mut cluster = NatsCluster::start();
    let url = cluster.url();
    let dir = TempDir::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The stream is created with three replicas; the processes read that from it.
    let log = runtime.block_on(jetstream(&url, 3));
    let serve_dir = dir.join("serve");
    let (mut serve, addr) =
        crate::spawn_serve(&["--data-dir", serve_dir.to_str().unwrap(), "--log", &url, "--no-seal"], &[]);
    let mut projector = Sv0Process::start(&dir.join("projector"), &url, "project");
    let mut signer = Sv0Process::start(&dir.join("signer"), &url, "sign");
    projector.wait_position(0);
    signer.wait_position(0);

    let mut service = runtime.block_on(commands(&dir.join("commands"), &url));
    let mut scans = 0u64;
    let mut failures = 0;
    let mut tenant = None;
    let mut import_round = |service: &mut Service<AnyLog>, count: u64| {
        for _ in 0..count {
            let day = Timestamp::parse("2026-03-01T00:00:00Z").unwrap().add_days(scans as i64);
            let snapshot = sv0_synth::synthetic::synthetic_snapshot(400, scans, &day.to_string()).unwrap();
            let (name, failed) =
                runtime.block_on(import_with_retries(service, &serde_json::to_vec(&snapshot).unwrap()));
            tenant = Some(name);
            failures += failed;
            scans += 1;
        }
    };
    let all_running = |serve: &mut Child, processes: [&mut Sv0Process; 2]| {
        if let Some(status) = serve.try_wait().unwrap() {
            panic!("sv0 serve exited with {status}");
        }
        for process in processes {
            process.assert_running();
        }
    };

    import_round(&mut service, 3);
    let leader = runtime.block_on(async {
        let info = log.context().get_stream("SV0_LOG").await.unwrap().get_info().await.unwrap();
        info.cluster.and_then(|c| c.leader).unwrap_or_default()
    });
    let victim = cluster.servers.iter().position(|s| leader.ends_with(s.name())).expect("a stream leader");
    cluster.servers[victim].kill();
    import_round(&mut service, 3);
    all_running(&mut serve, [&mut projector, &mut signer]);
    cluster.servers[victim].restart();
    cluster.servers[victim].wait_healthy();
    // The old leader rejoins behind: keep the load on well past the moment a signer once
    // exited on its stale stream head (about 10 s after the rejoin).
    let rejoined = Instant::now();
    while rejoined.elapsed() < Duration::from_secs(15) {
        import_round(&mut service, 1);
        all_running(&mut serve, [&mut projector, &mut signer]);
        std::thread::sleep(Duration::from_millis(500));
    }

    let tenant = tenant.expect("a scan was imported");
    // Converge: every assessment sealed, the projector and the server at the head.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (head, assessments) = runtime.block_on(async {
        loop {
            all_running(&mut serve, [&mut projector, &mut signer]);
            let caught_up = service.catch_up().await;
            let head = service.log().head().await;
            if let (Ok(_), Ok(head)) = (caught_up, head) {
                let assessments = service.views().assessments_after(&tenant, 0).unwrap().len();
                let sealed = service.views().pack_head(&tenant).unwrap().map_or(0, |h| h.index) as usize;
                projector.drain();
                let ready = crate::serve::get(&addr, "/readyz");
                let served = serde_json::from_str::<serde_json::Value>(&ready.1)
                    .ok()
                    .and_then(|v| v["views_position"].as_u64())
                    .unwrap_or(0);
                if sealed == assessments && projector.position == head && served == head {
                    return (head, assessments);
                }
                assert!(
                    Instant::now() < deadline,
                    "no convergence: {sealed} of {assessments} sealed, projector at {}, server at {served}, \
                     head {head}",
                    projector.position
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    runtime.block_on(async {
        let verdicts = service.verify(Some(&tenant), sv0_service::VerifyMode::Replay).await.unwrap();
        assert!(verdicts.damaged.is_none(), "{:?}", verdicts.damaged);
        assert_eq!(verdicts.views_differ, Some(vec![]), "the commands' views differ from a replay");
        let report = verdicts.chains[0].result.as_ref().expect("chain intact");
        assert_eq!(report.packs, assessments, "one pack per assessment, no fork, none lost");
    });
    projector.terminate();
    signer.terminate();
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    assert!(serve.wait().unwrap().success(), "sv0 serve stops cleanly");
    let views = Views::open(dir.join("projector").join("views.redb")).unwrap();
    assert_eq!(views.checkpoint().unwrap(), head);
    assert_eq!(views.dump().unwrap(), service.views().dump().unwrap(), "the projector's views differ from a fold");
    println!(
        "leader failover under serve/project/sign: {scans} scans, {assessments} packs, {failures} retried imports"
    );
}
