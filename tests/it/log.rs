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
}
