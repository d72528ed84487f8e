//! The log conformance suite against the embedded (redb) backend.

use sv0_log::EmbeddedLog;
use sv0_tests::TempDir;

sv0_log::conformance_suite!(embedded, || async {
    let dir = TempDir::new();
    let log = EmbeddedLog::open_with_limit(dir.join("log.redb"), 64 * 1024).expect("open log");
    (log, dir)
});

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_with_a_clear_error() {
    let dir = TempDir::new();
    let _first = EmbeddedLog::open(dir.join("log.redb")).unwrap();
    match EmbeddedLog::open(dir.join("log.redb")) {
        Err(e @ sv0_log::OpenError::InUse { .. }) => assert!(e.to_string().contains("in use")),
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("a second open must fail"),
    }
}

#[tokio::test]
async fn the_log_survives_a_reopen() {
    use sv0_log::{EventLog, Expected, NewEvent};
    let dir = TempDir::new();
    {
        let log = EmbeddedLog::open(dir.join("log.redb")).unwrap();
        let event = NewEvent { event_id: [1; 16], data: b"kept".to_vec() };
        log.append("t.scan", Expected::NoEvents, vec![event]).await.unwrap();
    }
    let log = EmbeddedLog::open(dir.join("log.redb")).unwrap();
    assert_eq!(log.head().await.unwrap(), 1);
    assert_eq!(log.subject_head("t.scan").await.unwrap(), Some(1));
    assert_eq!(log.read(1, None, 10).await.unwrap()[0].data, b"kept");
}

/// The same suite, unchanged, against a real single-node JetStream server.
mod jetstream {
    use sv0_log_nats::{Credentials, JetStreamLog, StreamSettings};
    use sv0_tests::nats::NatsServer;

    sv0_log::conformance_suite!(single_node, || async {
        let server = tokio::task::spawn_blocking(NatsServer::start).await.expect("start nats-server");
        let settings = StreamSettings { max_event_size: 64 * 1024, ..StreamSettings::default() };
        let log = JetStreamLog::connect(&server.url(), Credentials::None, settings).await.expect("connect");
        (log, server)
    });

    /// `ops/nats/permissions.conf` on a real server: each process's NATS user appends only its
    /// own subjects (a collector scans, a signer packs), every user reads the log, and none but
    /// the admin can create or delete the stream.
    #[tokio::test]
    async fn nats_users_may_append_only_their_own_subjects() {
        use std::time::Duration;
        use sv0_log::{EventLog, Expected, NewEvent};
        use sv0_tests::nats::test_password;
        let server = tokio::task::spawn_blocking(NatsServer::start_with_permissions).await.expect("start nats-server");
        let as_user = |user: &str| Credentials::UserPassword(user.to_string(), test_password(user));
        let event = |n: u8| NewEvent { event_id: [n; 16], data: vec![n] };
        let admin = JetStreamLog::connect(&server.url(), as_user("admin"), StreamSettings::default()).await.unwrap();
        admin.append("contoso.policy", Expected::Any, vec![event(1)]).await.unwrap();

        let connect = |user: &'static str| {
            let url = server.url();
            async move { JetStreamLog::connect(&url, as_user(user), StreamSettings::default()).await.unwrap() }
        };
        // A refused publish is never acknowledged: it fails or times out (3 s here; a permitted
        // one is given 30 s, for a loaded machine).
        let may = |log: &JetStreamLog, subject: &'static str, n: u8, expected: bool| {
            let log = log.clone();
            let wait = Duration::from_secs(if expected { 30 } else { 3 });
            async move {
                tokio::time::timeout(wait, log.append(subject, Expected::Any, vec![event(n)]))
                    .await
                    .is_ok_and(|r| r.is_ok())
                    == expected
            }
        };
        let collector = connect("collector").await;
        assert!(may(&collector, "contoso.scan", 2, true).await, "a collector appends scans");
        assert!(may(&collector, "contoso.token", 3, false).await, "a collector cannot issue tokens");
        assert!(may(&collector, "contoso.pack", 4, false).await, "nor seal packs");
        let signer = connect("signer").await;
        assert!(may(&signer, "contoso.pack", 5, true).await, "a signer seals packs");
        assert!(may(&signer, "contoso.timestamp", 9, true).await, "and stores their checkpoints' timestamps");
        assert!(may(&collector, "contoso.timestamp", 10, false).await, "which a collector cannot");
        assert!(may(&signer, "contoso.scan", 6, false).await, "a signer cannot push scans");
        let api = connect("api").await;
        assert!(may(&api, "contoso.approval.project-hr", 7, true).await);
        assert!(may(&api, "contoso.other", 8, false).await, "the API appends only its kinds");
        // Every user reads the whole log (what each appended, nothing of the refused).
        for log in [&collector, &signer, &api] {
            let read = log.read(1, None, 100).await.unwrap();
            let subjects: Vec<&str> = read.iter().map(|r| r.subject.as_str()).collect();
            assert_eq!(
                subjects,
                ["contoso.policy", "contoso.scan", "contoso.pack", "contoso.timestamp", "contoso.approval.project-hr"]
            );
        }
        // A user other than the admin cannot create the stream (here: another one).
        let other = StreamSettings { name: "SV0_OTHER".into(), ..StreamSettings::default() };
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            JetStreamLog::connect(&server.url(), as_user("collector"), other),
        )
        .await;
        assert!(!matches!(refused, Ok(Ok(_))), "a collector created a stream");
    }

    /// The client blocks a publish past 5,000 unacknowledged ones until an ack is awaited: one
    /// call that pipelines more than that (a large bulk batch, a first scan's signals) must
    /// await acks as it goes instead of waiting on itself forever.
    #[tokio::test]
    async fn more_publishes_in_one_call_than_the_clients_ack_limit_complete() {
        use sv0_log::{EventLog, Expected, NewEvent};
        let server = tokio::task::spawn_blocking(NatsServer::start).await.expect("start nats-server");
        let log = JetStreamLog::connect(&server.url(), Credentials::None, StreamSettings::default()).await.unwrap();
        let events: Vec<NewEvent> = (0..6_000u32)
            .map(|n| {
                let mut event_id = [0u8; 16];
                event_id[..4].copy_from_slice(&n.to_be_bytes());
                NewEvent { event_id, data: n.to_be_bytes().to_vec() }
            })
            .collect();
        let appended =
            tokio::time::timeout(std::time::Duration::from_secs(60), log.append("t.bulk", Expected::Any, events))
                .await
                .expect("a 6,000-event bulk append finishes")
                .unwrap();
        assert_eq!(appended.positions.len(), 6_000);
        assert_eq!(log.head().await.unwrap(), 6_000);

        let signals: Vec<sv0_log_nats::SignalMessage> = (0..6_000)
            .map(|n| sv0_log_nats::SignalMessage {
                id: format!("sig-{n}"),
                tenant: "t".to_string(),
                kind: "finding_opened".to_string(),
                payload: b"{}".to_vec(),
            })
            .collect();
        tokio::time::timeout(std::time::Duration::from_secs(60), log.publish_signals(&signals))
            .await
            .expect("6,000 signals are published")
            .unwrap();
        let mut stream = log.context().get_stream("SV0_SIGNALS").await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 6_000);
    }
}

/// A views file is compacted on close when it grew and holds free pages, not when it grew
/// with data alone (a first scan): compaction walks the whole file whatever it moves.
#[test]
fn a_cache_is_compacted_on_close_for_its_free_pages_not_for_its_data() {
    use sv0_log::file::{Role, disk_use, open};
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    let dir = TempDir::new();
    let row = vec![7u8; 64 * 1024];
    let rows = 2_000u64; // 128 MiB, past the growth that calls for a look
    let fill = |path: &std::path::Path, keep: u64| {
        let db = open(path, Role::Cache, false).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(T).expect("table");
            for n in 0..rows {
                t.insert(n, row.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(T).expect("table");
            for n in keep..rows {
                t.remove(n).expect("remove");
            }
        }
        txn.commit().expect("commit");
        // A commit frees the pages the one before released.
        db.begin_write().expect("write").commit().expect("commit");
        std::fs::metadata(path).expect("metadata").len()
    };
    let size = |path: &std::path::Path| disk_use(&std::fs::metadata(path).expect("metadata"));

    // Compaction ends by cutting the file to its last page: a file left as long as it was
    // before it closed was not compacted.
    let data = dir.join("data.redb");
    let open_length = fill(&data, rows);
    assert_eq!(std::fs::metadata(&data).expect("metadata").len(), open_length, "compacted");
    assert!(size(&data) >= rows * row.len() as u64, "{}", size(&data));

    let freed = dir.join("freed.redb");
    let open_length = fill(&freed, rows / 10);
    assert!(std::fs::metadata(&freed).expect("metadata").len() < open_length / 4, "not compacted");
    assert!(size(&freed) < rows * row.len() as u64 / 4, "{}", size(&freed));
    let db = open(&freed, Role::Cache, false).expect("reopen");
    let txn = redb::ReadableDatabase::begin_read(&*db).expect("read");
    assert_eq!(redb::ReadableTableMetadata::len(&txn.open_table(T).expect("table")).expect("len"), rows / 10);
}
