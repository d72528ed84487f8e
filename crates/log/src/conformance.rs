//! The conformance suite: what every `EventLog` backend must do, written once and run unchanged
//! against each backend with `conformance_suite!`.
//!
//! ```ignore
//! sv0_log::conformance_suite!(embedded, || async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let log = EmbeddedLog::open_with_limit(dir.path().join("log.redb"), 64 * 1024).unwrap();
//!     (log, dir) // the second value is kept alive for the test's duration
//! });
//! ```
//!
//! Each check gets a fresh, empty log whose event size limit is at least
//! `MIN_LIMIT_FOR_SUITE` and at most `MAX_LIMIT_FOR_SUITE` bytes.

// A test suite (run against each backend): a failed `unwrap` is its report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;

use crate::contract::{AppendError, EventLog, Expected, NewEvent, Seq};

/// Smallest event size limit the suite needs.
pub const MIN_LIMIT_FOR_SUITE: usize = 4 * 1024;
/// Largest event size limit the suite can test (it builds one event just over the limit).
pub const MAX_LIMIT_FOR_SUITE: usize = 8 * 1024 * 1024;

/// Generates one `#[tokio::test]` per check for a backend. `$make` is a closure returning a
/// future of `(log, guard)`; the guard (a temp dir, a server handle) lives as long as the test.
#[macro_export]
macro_rules! conformance_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_suite!(@tests $make;
                append_then_read_in_order,
                batches_are_in_order_and_contiguous,
                duplicate_event_ids_are_ignored,
                retried_batch_succeeds_whatever_expected_says,
                expected_position_is_enforced_per_subject,
                conflict_writes_nothing,
                concurrent_appends_with_one_expectation_have_one_winner,
                read_ranges_and_limits,
                read_up_to_a_time,
                subscribe_catches_up_then_follows,
                oversized_event_is_refused,
                invalid_subjects_and_batches_are_refused,
                recorded_times_never_decrease,
                identity_is_stable
            );
        }
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let (log, _guard) = ($make)().await;
            $crate::conformance::$check(&log).await;
        }
    )*};
}

fn event(n: u32) -> NewEvent {
    let mut event_id = [0u8; 16];
    event_id[..4].copy_from_slice(&n.to_be_bytes());
    event_id[15] = 0x5a;
    NewEvent { event_id, data: format!("event {n}").into_bytes() }
}

async fn append_ok<L: EventLog>(log: &L, subject: &str, expected: Expected, events: Vec<NewEvent>) -> Vec<Seq> {
    match log.append(subject, expected, events).await {
        Ok(appended) => appended.positions,
        Err(e) => panic!("append to {subject} failed: {e}"),
    }
}

async fn all<L: EventLog>(log: &L) -> Vec<(Seq, String, Vec<u8>)> {
    log.read(1, None, usize::MAX).await.expect("read").into_iter().map(|r| (r.seq, r.subject, r.data)).collect()
}

/// Appended events read back in order, with positions from 1, subjects and bytes intact.
pub async fn append_then_read_in_order<L: EventLog>(log: &L) {
    assert_eq!(log.head().await.unwrap(), 0, "a fresh log is empty");
    assert_eq!(append_ok(log, "t1.scan", Expected::Any, vec![event(1)]).await, vec![1]);
    assert_eq!(append_ok(log, "t1.approval", Expected::Any, vec![event(2)]).await, vec![2]);
    assert_eq!(append_ok(log, "t2.scan", Expected::Any, vec![event(3)]).await, vec![3]);
    let records = log.read(1, None, 100).await.unwrap();
    assert_eq!(records.len(), 3);
    for (n, record) in records.iter().enumerate() {
        let want = event(n as u32 + 1);
        assert_eq!(record.seq, n as u64 + 1);
        assert_eq!(record.event_id, want.event_id);
        assert_eq!(record.data, want.data);
    }
    let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["t1.scan", "t1.approval", "t2.scan"]);
    assert_eq!(log.head().await.unwrap(), 3);
}

/// A batch from one writer gets contiguous positions, in order.
pub async fn batches_are_in_order_and_contiguous<L: EventLog>(log: &L) {
    append_ok(log, "t.a", Expected::Any, vec![event(1)]).await;
    let positions = append_ok(log, "t.b", Expected::Any, (2..=6).map(event).collect()).await;
    assert_eq!(positions, vec![2, 3, 4, 5, 6]);
    assert_eq!(log.subject_head("t.b").await.unwrap(), Some(6));
    assert_eq!(log.head().await.unwrap(), 6);
}

/// Appending an id already in the log appends nothing and reports the first position.
pub async fn duplicate_event_ids_are_ignored<L: EventLog>(log: &L) {
    append_ok(log, "t.scan", Expected::Any, vec![event(1), event(2)]).await;
    let again = log.append("t.scan", Expected::Any, vec![event(2)]).await.unwrap();
    assert_eq!(again.positions, vec![2]);
    assert_eq!(again.duplicates, 1);
    let mixed = log.append("t.scan", Expected::Any, vec![event(1), event(3)]).await.unwrap();
    assert_eq!(mixed.positions, vec![1, 3]);
    assert_eq!(mixed.duplicates, 1);
    assert_eq!(log.head().await.unwrap(), 3, "only the new event was appended");
}

/// A retry of a batch that already landed succeeds even though its expectation is stale.
pub async fn retried_batch_succeeds_whatever_expected_says<L: EventLog>(log: &L) {
    let batch = vec![event(1), event(2)];
    append_ok(log, "t.pack", Expected::NoEvents, batch.clone()).await;
    let retry = log.append("t.pack", Expected::NoEvents, batch).await.unwrap();
    assert_eq!(retry.positions, vec![1, 2]);
    assert_eq!(retry.duplicates, 2);
}

/// `NoEvents` and `LastSeq` are checked against the subject, not the whole log.
pub async fn expected_position_is_enforced_per_subject<L: EventLog>(log: &L) {
    append_ok(log, "t.pack", Expected::NoEvents, vec![event(1)]).await;
    append_ok(log, "t.other", Expected::NoEvents, vec![event(2)]).await;
    match log.append("t.pack", Expected::NoEvents, vec![event(3)]).await {
        Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, Some(1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The last position of t.pack is 1, even though the log's head is 2.
    assert_eq!(append_ok(log, "t.pack", Expected::LastSeq(1), vec![event(4)]).await, vec![3]);
    match log.append("t.pack", Expected::LastSeq(1), vec![event(5)]).await {
        Err(AppendError::Conflict { actual, expected, .. }) => {
            assert_eq!(actual, Some(3));
            assert_eq!(expected, Expected::LastSeq(1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match log.append("t.fresh", Expected::LastSeq(1), vec![event(6)]).await {
        Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, None),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(append_ok(log, "t.pack", Expected::Any, vec![event(7)]).await, vec![4]);
    assert_eq!(log.subject_head("t.pack").await.unwrap(), Some(4));
    assert_eq!(log.subject_head("t.none").await.unwrap(), None);
}

/// A refused append leaves the log exactly as it was.
pub async fn conflict_writes_nothing<L: EventLog>(log: &L) {
    append_ok(log, "t.pack", Expected::NoEvents, vec![event(1)]).await;
    let before = all(log).await;
    assert!(log.append("t.pack", Expected::NoEvents, vec![event(2), event(3)]).await.is_err());
    assert_eq!(all(log).await, before);
    // The refused ids were not recorded either: they can be appended later.
    assert_eq!(append_ok(log, "t.pack", Expected::LastSeq(1), vec![event(2)]).await, vec![2]);
}

/// Many writers racing with the same expectation: exactly one wins, the chain does not fork.
pub async fn concurrent_appends_with_one_expectation_have_one_winner<L: EventLog>(log: &L) {
    append_ok(log, "t.pack", Expected::NoEvents, vec![event(1)]).await;
    let attempts = (0..8u32).map(|n| log.append("t.pack", Expected::LastSeq(1), vec![event(100 + n)]));
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(AppendError::Conflict { .. }))).count();
    assert_eq!(winners, 1, "results: {results:?}");
    assert_eq!(conflicts, 7);
    assert_eq!(log.head().await.unwrap(), 2);
}

/// `read` honours `from`, `to` and `limit`.
pub async fn read_ranges_and_limits<L: EventLog>(log: &L) {
    append_ok(log, "t.scan", Expected::Any, (1..=10).map(event).collect()).await;
    let seqs = |records: Vec<crate::Record>| records.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(log.read(4, Some(6), 100).await.unwrap()), vec![4, 5, 6]);
    assert_eq!(seqs(log.read(8, None, 100).await.unwrap()), vec![8, 9, 10]);
    assert_eq!(seqs(log.read(1, None, 3).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(log.read(0, Some(2), 100).await.unwrap()), vec![1, 2]);
    assert!(log.read(11, None, 100).await.unwrap().is_empty());
    assert!(log.read(6, Some(5), 100).await.unwrap().is_empty());
}

/// `seq_at(T)` is the last position recorded at or before T.
pub async fn read_up_to_a_time<L: EventLog>(log: &L) {
    assert_eq!(log.seq_at(i64::MAX).await.unwrap(), 0);
    append_ok(log, "t.scan", Expected::Any, vec![event(1), event(2)]).await;
    let first = log.read(1, None, 10).await.unwrap();
    let t1 = first[1].recorded_at;
    tokio::time::sleep(Duration::from_millis(20)).await;
    append_ok(log, "t.scan", Expected::Any, vec![event(3)]).await;
    let t3 = log.read(3, None, 1).await.unwrap()[0].recorded_at;
    assert!(t3 > t1, "a later append is recorded later");
    assert_eq!(log.seq_at(t1).await.unwrap(), 2);
    assert_eq!(log.seq_at(t3 - 1).await.unwrap(), 2);
    assert_eq!(log.seq_at(t3).await.unwrap(), 3);
    assert_eq!(log.seq_at(t1 - 60_000).await.unwrap(), 0);
}

/// A subscriber gets the history, then new events as they land.
pub async fn subscribe_catches_up_then_follows<L: EventLog>(log: &L) {
    append_ok(log, "t.scan", Expected::Any, (1..=3).map(event).collect()).await;
    let mut stream = log.subscribe(2);
    assert_eq!(next_seq(&mut stream).await, 2);
    assert_eq!(next_seq(&mut stream).await, 3);
    append_ok(log, "t.scan", Expected::Any, vec![event(4)]).await;
    append_ok(log, "t.other", Expected::Any, vec![event(5), event(6)]).await;
    assert_eq!(next_seq(&mut stream).await, 4);
    assert_eq!(next_seq(&mut stream).await, 5);
    assert_eq!(next_seq(&mut stream).await, 6);
}

async fn next_seq(stream: &mut futures::stream::BoxStream<'static, Result<crate::Record, crate::ReadError>>) -> Seq {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("subscription delivered nothing for 10 s")
        .expect("subscription ended")
        .expect("subscription failed")
        .seq
}

/// An event over the size limit is refused and nothing is written.
pub async fn oversized_event_is_refused<L: EventLog>(log: &L) {
    let max = log.max_event_size();
    assert!((MIN_LIMIT_FOR_SUITE..=MAX_LIMIT_FOR_SUITE).contains(&max), "limit {max} outside the suite's range");
    let mut big = event(1);
    big.data = vec![7u8; max + 1];
    match log.append("t.scan", Expected::Any, vec![event(2), big]).await {
        Err(AppendError::TooLarge { size, .. }) => assert_eq!(size, max + 1),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(log.head().await.unwrap(), 0);
    let mut fits = event(3);
    fits.data = vec![7u8; max - 1024];
    append_ok(log, "t.scan", Expected::Any, vec![fits]).await;
}

/// Bad subjects, empty batches and repeated ids within a batch are refused.
pub async fn invalid_subjects_and_batches_are_refused<L: EventLog>(log: &L) {
    for subject in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "é"] {
        match log.append(subject, Expected::Any, vec![event(1)]).await {
            Err(AppendError::InvalidSubject(_)) => {}
            other => panic!("subject {subject:?}: expected InvalidSubject, got {other:?}"),
        }
    }
    assert!(matches!(log.append("t.scan", Expected::Any, vec![]).await, Err(AppendError::EmptyBatch)));
    assert!(matches!(
        log.append("t.scan", Expected::Any, vec![event(1), event(1)]).await,
        Err(AppendError::DuplicateInBatch)
    ));
    assert_eq!(log.head().await.unwrap(), 0);
}

/// Recording times never go backwards along the log.
pub async fn recorded_times_never_decrease<L: EventLog>(log: &L) {
    for n in 1..=20 {
        append_ok(log, "t.scan", Expected::Any, vec![event(n)]).await;
    }
    let records = log.read(1, None, 100).await.unwrap();
    assert!(records.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
}

/// The log names itself the same way every time it is asked.
pub async fn identity_is_stable<L: EventLog>(log: &L) {
    let first = log.identity().await.unwrap();
    assert!(!first.is_empty());
    append_ok(log, "t.scan", Expected::Any, vec![event(1)]).await;
    assert_eq!(log.identity().await.unwrap(), first);
}
