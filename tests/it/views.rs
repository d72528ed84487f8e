//! Projections: rebuilding from an empty database gives the incremental views entry for entry;
//! batch boundaries do not matter; a replay to a position or time gives the posture as it stood.

use sv0_domain::scope::Scope;
use sv0_log::EventLog;
use sv0_projections::{ScanStatus, Views};
use sv0_service::{AsOf, Service};
use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, sv0};

/// A data directory holding the whole demo story: scans, approvals, packs.
fn demo_dir() -> TempDir {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    dir
}

#[test]
fn rebuild_equals_incremental_entry_for_entry() {
    let dir = demo_dir();
    crate::block_on(async {
        let service = Service::open(dir.join("data")).await.unwrap();
        let incremental = service.views().dump().unwrap();

        let rebuilt = Views::in_memory().unwrap();
        rebuilt.catch_up(service.log(), None).await.unwrap();
        let rebuilt = rebuilt.dump().unwrap();

        assert_eq!(incremental.keys().collect::<Vec<_>>(), rebuilt.keys().collect::<Vec<_>>(), "same tables");
        for (table, rows) in &incremental {
            let other = &rebuilt[table];
            assert_eq!(rows.len(), other.len(), "table {table}: row count");
            for (n, (row, other_row)) in rows.iter().zip(other).enumerate() {
                assert_eq!(row.0, other_row.0, "table {table}, row {n}: key");
                assert_eq!(row.1, other_row.1, "table {table}, row {n}: value bytes");
            }
        }
        for table in ["paths", "findings", "baseline_versions", "assessments", "packs"] {
            assert!(!incremental[table].is_empty(), "table {table} is exercised by the story");
        }
    })
}

#[test]
fn one_event_per_transaction_gives_the_same_views_as_large_batches() {
    let dir = demo_dir();
    crate::block_on(async {
        let service = Service::open(dir.join("data")).await.unwrap();
        let head = service.log().head().await.unwrap();
        let records = service.log().read(1, None, usize::MAX).await.unwrap();
        assert_eq!(records.len() as u64, head);

        let one_by_one = Views::in_memory().unwrap();
        for record in &records {
            one_by_one.apply(std::slice::from_ref(record)).unwrap();
        }
        // A redelivered batch is skipped: the checkpoint already covers it.
        one_by_one.apply(&records).unwrap();
        let all_at_once = Views::in_memory().unwrap();
        all_at_once.apply(&records).unwrap();
        assert_eq!(one_by_one.dump().unwrap(), all_at_once.dump().unwrap());
        assert_eq!(one_by_one.checkpoint().unwrap(), head);
    })
}

#[test]
fn sv0_rebuild_refolds_the_views_file() {
    let dir = demo_dir();
    let data = dir.join("data");
    let dump = || crate::block_on(async { Service::open(&data).await.unwrap().views().dump().unwrap() });
    let before = dump();
    let (code, out) = crate::sv0_in(&data, &["rebuild"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(dump(), before);
}

#[test]
fn paths_as_of_a_position_or_time_show_the_posture_then() {
    let dir = TempDir::new();
    let after_first = crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let first = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        let tenant = first.tenant.clone();
        let scope = Scope::parse("project:HR-Automation").unwrap();
        let after_first = service.log().head().await.unwrap();
        // The log's clock has millisecond resolution: make the second scan land visibly later.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let between = sv0_domain::Timestamp::now();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[1]), None).await.unwrap();

        let now = service.paths(&tenant, Some(&scope), None).await.unwrap();
        assert_eq!(now.len(), 9, "4 approved-era paths plus 5 from the deployment");
        let then = service.paths(&tenant, Some(&scope), Some(AsOf::Position(after_first))).await.unwrap();
        assert_eq!(then.len(), 4);
        let at_time = service.paths(&tenant, Some(&scope), Some(AsOf::Time(between))).await.unwrap();
        assert_eq!(at_time, then);
        let before_anything = service
            .paths(&tenant, None, Some(AsOf::Time(sv0_domain::Timestamp::parse("2020-01-01T00:00:00Z").unwrap())))
            .await
            .unwrap_err();
        assert!(before_anything.to_string().contains("is before the log's first record"), "{before_anything}");
        after_first
    });
    // The CLI takes the position form too.
    let data = dir.path().to_str().unwrap();
    let position = after_first.to_string();
    let (code, out) =
        sv0(&["--data-dir", data, "paths", "--scope", "project:HR-Automation", "--as-of", &position, "--json"]);
    assert_eq!(code, 0, "{out}");
    let read: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(read["paths"].as_array().unwrap().len(), 4);
    assert_eq!(read["log_position"], after_first);
}

#[test]
fn a_scan_split_into_many_chunks_gives_the_same_paths() {
    crate::block_on(async {
        let whole = TempDir::new();
        let mut service = Service::open(whole.path()).await.unwrap();
        let report = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[1]), None).await.unwrap();
        assert_eq!(report.chunk_count, 1);
        let tenant = report.tenant.clone();
        let expected = service.paths(&tenant, None, None).await.unwrap();

        let chunked = TempDir::new();
        let data_dir = sv0_service::DataDir::create(chunked.path()).unwrap();
        let log = sv0_log::EmbeddedLog::open_with_limit(data_dir.log_path(), 4 * 1024).unwrap();
        let views = Views::open(data_dir.views_path()).unwrap();
        let mut small = Service::with_parts(data_dir, log, views);
        let report = small.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[1]), None).await.unwrap();
        assert!(report.chunk_count >= 4, "{} chunks", report.chunk_count);
        assert_eq!(report.scan.unwrap().status, ScanStatus::Applied);
        assert_eq!(small.paths(&tenant, None, None).await.unwrap(), expected);
    })
}

#[test]
fn a_scan_with_a_missing_chunk_is_rejected_whole() {
    crate::block_on(async {
        use sv0_log::Expected;

        let dir = TempDir::new();
        let data_dir = sv0_service::DataDir::create(dir.path()).unwrap();
        let log = sv0_log::EmbeddedLog::open_with_limit(data_dir.log_path(), 4 * 1024).unwrap();
        let views = Views::open(data_dir.views_path()).unwrap();
        let mut service = Service::with_parts(data_dir, log, views);
        service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let before = service.paths(&tenant, None, None).await.unwrap();

        // The deployment scan, with its second chunk lost on the way.
        let snapshot = sv0_service::import::parse_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
        let mut scan = sv0_service::import::scan_events(snapshot, None, 4 * 1024, None).unwrap();
        assert!(scan.chunk_count >= 3);
        scan.events.remove(2);
        service.log().append("contoso.scan", Expected::Any, scan.events).await.unwrap();
        service.sync().await.unwrap();

        let record = service.views().scans(&tenant).unwrap().into_iter().find(|r| r.scan_id == scan.scan_id).unwrap();
        assert_eq!(record.status, ScanStatus::Rejected);
        assert!(record.reason.unwrap().contains("chunk"));
        assert_eq!(service.paths(&tenant, None, None).await.unwrap(), before, "nothing of the half scan applied");
    })
}

#[test]
fn events_larger_than_a_record_travel_as_fragments_and_apply_only_when_whole() {
    use sv0_domain::events::EventPayload;
    use sv0_log::Expected;

    let dir = TempDir::new();
    crate::block_on(async {
        // A 4 KiB record limit: the approval (4 paths) and the packs do not fit one record.
        let data_dir = sv0_service::DataDir::create(dir.path()).unwrap();
        let log = sv0_log::EmbeddedLog::open_with_limit(data_dir.log_path(), 4 * 1024).unwrap();
        let views = Views::open(data_dir.views_path()).unwrap();
        let mut service = Service::with_parts(data_dir, log, views);
        let scan = service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        let tenant = scan.tenant;
        let scope = Scope::parse("project:HR-Automation").unwrap();
        let at = sv0_domain::Timestamp::parse("2026-03-02T10:15:00Z").unwrap();
        let report = service.approve(&tenant, &scope, "large", vec![], "riley@contoso.example", at).await.unwrap();
        assert_eq!(report.baseline.paths.len(), 4);

        let records = service.log().read(1, None, usize::MAX).await.unwrap();
        let fragments = records
            .iter()
            .filter(|r| matches!(sv0_codec::decode_event(&r.data).unwrap().payload, EventPayload::Fragment(_)))
            .count();
        assert!(fragments >= 4, "the approval and the packs were fragmented ({fragments} pieces)");
        let verdicts = service.verify(Some(&tenant), sv0_service::VerifyMode::Replay).await.unwrap().chains;
        assert!(verdicts[0].result.is_ok(), "{:?}", verdicts[0].result);
        assert_eq!(verdicts[0].result.as_ref().unwrap().packs, 2);

        // An approval whose last piece never arrives is never applied.
        let next = sv0_domain::events::Event {
            meta: sv0_domain::events::EventMeta {
                event_id: sv0_domain::EventId([0x77; 16]),
                tenant_id: tenant.clone(),
                occurred_at: at,
                actor: "user:riley@contoso.example".into(),
                causation_id: None,
                correlation_id: None,
                credential: None,
            },
            payload: EventPayload::ApprovalRecorded(sv0_domain::events::ApprovalRecorded {
                scope: scope.clone(),
                baseline_version: 2,
                approver: "riley@contoso.example".into(),
                note: "half".into(),
                acknowledged: vec![],
                posture_seq: 1,
                paths: report.baseline.paths.clone(),
                open_findings: vec![],
                posture_digest: None,
                intent: None,
                plan_digest: None,
            }),
        };
        let mut pieces = sv0_service::import::log_records(&next, 4 * 1024).unwrap();
        assert!(pieces.len() >= 2);
        pieces.pop();
        let subject = format!("{tenant}.approval.{}", scope.key());
        service.log().append(&subject, Expected::Any, pieces).await.unwrap();
        service.sync().await.unwrap();
        assert_eq!(service.views().baseline(&tenant, &scope, None).unwrap().unwrap().version, 1);
    });
}

#[test]
fn writes_spilled_to_sorted_runs_give_the_same_views() {
    use sv0_domain::Timestamp;
    use sv0_synth::synthetic;
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let at = Timestamp::parse(synthetic::OBSERVED_AT).unwrap();
        let base = synthetic::tenant(3_000, 5, at).unwrap();
        let next = synthetic::rescan(&base, 10.0, 6, at.add_days(1)).unwrap();
        for snapshot in [&base, &next] {
            service.import_snapshot(&serde_json::to_vec(snapshot).unwrap(), None).await.unwrap();
        }
        let expected = service.views().dump().unwrap();

        // A few hundred bytes per run: every unit of work spills, and rescans merge removals
        // and inserts of the same keys across runs.
        sv0_projections::set_spill_bytes(512);
        let spilled = Views::in_memory().unwrap();
        let result = spilled.catch_up(service.log(), None).await;
        sv0_projections::set_spill_bytes(sv0_projections::SPILL_BYTES);
        result.unwrap();
        assert_eq!(spilled.dump().unwrap(), expected);
        assert!(expected["path_index"].len() > 2_000, "one index row per path, thousands to spill");
    })
}
