//! Delta scans: a scan that names only what changed since its base scan (changed and new
//! entities, and deletions) gives the views the equivalent full scan gives; one whose base is
//! not the tenant's latest applied scan, or that refers to entities nobody has, is refused and
//! changes nothing, whether it comes through the service or straight onto the log.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sv0_domain::snapshot::{ApiCoverage, ApiStatus, CoverageMode, Deletion, EntityList, Snapshot};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_projections::{ScanStatus, Views};
use sv0_service::{AsOf, Service};
use sv0_synth::synthetic;
use sv0_tests::TempDir;

type Embedded = Service<sv0_log::EmbeddedLog>;

fn at(day: i64) -> Timestamp {
    Timestamp::parse(synthetic::OBSERVED_AT).unwrap().add_days(day)
}

async fn import(service: &mut Embedded, snapshot: &Snapshot) -> String {
    let report = service.import_snapshot(&serde_json::to_vec(snapshot).unwrap(), None).await.unwrap();
    let record = report.scan.expect("the scan was folded");
    assert_eq!(record.status, ScanStatus::Applied, "{record:?}");
    report.scan_id
}

/// The tables whose rows say what the tenant looks like: entities, paths, findings and their
/// indexes, baselines and policy; and the tenant state without which scan it last applied.
/// (Scan records, assessments and packs name the scans, which differ by construction.)
fn tenant_views(views: &Views, tenant: &TenantId) -> BTreeMap<String, Vec<sv0_projections::store::Row>> {
    const SAME: [&str; 13] = [
        "entities",
        "entity_index",
        "unobserved",
        "paths",
        "path_index",
        "path_fingerprints",
        "digest_buckets",
        "findings",
        "findings_by_workload",
        "baselines",
        "baseline_versions",
        "delta_findings",
        "policies",
    ];
    let mut out: BTreeMap<String, Vec<sv0_projections::store::Row>> =
        views.dump().unwrap().into_iter().filter(|(table, _)| SAME.contains(&table.as_str())).collect();
    let mut state = views.tenant_state(tenant).unwrap().expect("scanned");
    state.last_scan_id.clear();
    out.insert("tenant_state".into(), vec![(Vec::new(), format!("{state:?}").into_bytes())]);
    out
}

#[derive(Debug, Clone)]
struct Step {
    seed: u64,
    change: u8,
    days: i64,
    /// What the connector sends of the truth (`properties::sent`): entities dropped, and
    /// partial, unread or targeted coverage.
    drop: u8,
    coverage: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (0u64..1000, 0u8..8, 0i64..40, 0u8..6, 0u8..5).prop_map(|(seed, change, days, drop, coverage)| Step {
        seed,
        change,
        days,
        drop,
        coverage,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(6),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_delta_scan_gives_the_views_the_equivalent_full_scan_gives(steps in proptest::collection::vec(step(), 1..6)) {
        equivalent(&steps);
    }

    #[test]
    fn a_full_scan_sent_as_a_delta_gives_the_views_the_full_scan_gives(steps in proptest::collection::vec(step(), 1..6)) {
        sent_as_delta(&steps);
    }
}

/// One service takes what the connector sends whole, the other converted by `as_delta` (what
/// `sv0 scan import --delta` and `sv0 watch` do), through dropped entities, failed and unread
/// APIs, targeted scans and the breakers they trip: after each step their views agree.
fn sent_as_delta(steps: &[Step]) {
    let (full_dir, delta_dir) = (TempDir::new(), TempDir::new());
    crate::block_on(async {
        let mut full = Service::open(full_dir.path()).await.unwrap();
        let mut delta = Service::open(delta_dir.path()).await.unwrap();
        let mut truth = synthetic::tenant(300, 42, at(0)).unwrap();
        import(&mut full, &truth).await;
        import(&mut delta, &truth).await;
        let tenant = TenantId::new(synthetic::TENANT).unwrap();
        for Step { seed, change, days, drop, coverage } in steps {
            truth =
                synthetic::rescan(&truth, f64::from(*change), *seed, truth.scan.observed_at.add_days(*days)).unwrap();
            let sent = crate::properties::sent(&truth, *drop, *coverage);
            let whole = full.import_snapshot(&serde_json::to_vec(&sent).unwrap(), None).await.unwrap();
            let converted = delta.as_delta(sent.validate().unwrap()).unwrap();
            let targeted = *coverage == 3;
            let stays_whole = converted.scan.coverage.as_ref().is_none_or(|c| c.mode != CoverageMode::Delta);
            assert_eq!(stays_whole, targeted, "only a targeted scan stays whole");
            let applied = delta.import_parsed(converted, None, None).await.unwrap();
            let status = |r: &sv0_service::ImportReport| r.scan.as_ref().map(|s| s.status);
            assert_eq!(status(&applied), status(&whole), "the delta and the full scan fare alike");
            assert_eq!(
                tenant_views(full.views(), &tenant),
                tenant_views(delta.views(), &tenant),
                "the full scan sent as a delta gives different views"
            );
        }
    });
}

/// One service takes every rescan whole, the other as a delta of its previous scan: after each
/// step their views agree, and the delta service's views rebuild and replay to the same rows.
fn equivalent(steps: &[Step]) {
    let (full_dir, delta_dir) = (TempDir::new(), TempDir::new());
    crate::block_on(async {
        let mut full = Service::open(full_dir.path()).await.unwrap();
        let mut delta = Service::open(delta_dir.path()).await.unwrap();
        let mut truth = synthetic::tenant(400, 7, at(0)).unwrap();
        import(&mut full, &truth).await;
        let mut base_scan = import(&mut delta, &truth).await;
        let tenant = TenantId::new(synthetic::TENANT).unwrap();
        let mut live = vec![(delta.log().head().await.unwrap(), delta.views().dump().unwrap())];
        for Step { seed, change, days, .. } in steps {
            let next =
                synthetic::rescan(&truth, f64::from(*change), *seed, truth.scan.observed_at.add_days(*days)).unwrap();
            import(&mut full, &next).await;
            let previous = std::mem::take(&mut base_scan);
            base_scan = import(&mut delta, &next.delta_since(&truth, &previous)).await;
            // An empty delta at its base's time appends nothing, like a duplicate, and names its
            // base (`Service::import_snapshot`); any other is recorded as a delta.
            let scans = delta.scans(&tenant).unwrap();
            let last = scans.iter().find(|s| s.scan_id == base_scan).unwrap();
            if base_scan != previous {
                assert_eq!(
                    last.mode,
                    Some(sv0_domain::snapshot::CoverageMode::Delta),
                    "the scan records that it was a delta"
                );
            }
            assert_eq!(
                tenant_views(full.views(), &tenant),
                tenant_views(delta.views(), &tenant),
                "the delta scan and the full scan give different views"
            );
            live.push((delta.log().head().await.unwrap(), delta.views().dump().unwrap()));
            truth = next;
        }
        let rebuilt = Views::in_memory().unwrap();
        rebuilt.catch_up(delta.log(), None).await.unwrap();
        assert_eq!(&rebuilt.dump().unwrap(), &live.last().unwrap().1, "rebuild differs from the live views");
        for (head, rows) in &live {
            let (_, replayed) = delta.replay(AsOf::Position(*head)).await.unwrap();
            assert_eq!(&replayed.dump().unwrap(), rows, "replay to {head} differs from the live views then");
        }
    });
}

/// A tenant with two applied full scans, and the delta from the second to a third state (its
/// base still to be named).
async fn two_scans(dir: &TempDir) -> (Embedded, String, String, Snapshot) {
    let mut service = Service::open(dir.path()).await.unwrap();
    let first = synthetic::tenant(300, 3, at(0)).unwrap();
    let one = import(&mut service, &first).await;
    let second = synthetic::rescan(&first, 5.0, 1, at(1)).unwrap();
    let two = import(&mut service, &second).await;
    let third = synthetic::rescan(&second, 5.0, 2, at(2)).unwrap();
    (service, one, two, third.delta_since(&second, "placeholder"))
}

fn based_on(mut delta: Snapshot, base: &str) -> Snapshot {
    delta.scan.coverage.as_mut().unwrap().base_scan = Some(base.to_string());
    delta
}

#[test]
fn a_delta_scan_whose_base_is_not_the_latest_scan_is_refused_and_changes_nothing() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, one, two, delta) = two_scans(&dir).await;
        let head = service.log().head().await.unwrap();
        let before = service.views().dump().unwrap();
        // (The first scan's diff counts what it added; later diffs name it.)
        let tenant = TenantId::new(synthetic::TENANT).unwrap();
        let first = service.views().scan_diff(&tenant, &one).unwrap().unwrap();
        assert!(first.added.is_empty() && first.first_scan["grants"] > 100, "{:?}", first.first_scan);
        let second = service.views().scan_diff(&tenant, &two).unwrap().unwrap();
        assert!(second.first_scan.is_empty() && !second.added["grants"].is_empty());

        // Through the service: a clear error, nothing appended.
        let stale = serde_json::to_vec(&based_on(delta.clone(), &one)).unwrap();
        let refused = service.import_snapshot(&stale, None).await.unwrap_err().to_string();
        assert!(
            refused.contains(&format!("a delta of scan {one}"))
                && refused.contains(&format!("latest applied scan is {two}")),
            "{refused}"
        );
        assert_eq!(service.log().head().await.unwrap(), head, "nothing was appended");
        assert_eq!(service.views().dump().unwrap(), before);

        // Straight onto the log (a process that can write to it): the fold rejects the scan
        // whole and records why; nothing else changes.
        let valid = based_on(delta, &one).validate().unwrap();
        let events = sv0_service::import::scan_events(valid, None, service.log().max_event_size(), None).unwrap();
        let subject = format!("{}.scan", synthetic::TENANT);
        service.log().append(&subject, Expected::Any, events.events).await.unwrap();
        service.catch_up().await.unwrap();
        let record = service.scans(&tenant).unwrap().into_iter().find(|s| s.scan_id == events.scan_id).unwrap();
        assert_eq!(record.status, ScanStatus::Rejected);
        let reason = record.reason.unwrap();
        assert!(reason.contains(&format!("latest applied scan is {two}")), "{reason}");
        let after = service.views().dump().unwrap();
        for (table, rows) in &before {
            if !["scans", "checkpoints"].contains(&table.as_str()) {
                assert_eq!(after.get(table), Some(rows), "the rejected delta changed {table}");
            }
        }
        assert_eq!(service.views().tenant_state(&tenant).unwrap().unwrap().last_scan_id, two);
    });
}

#[test]
fn a_tenant_without_an_applied_scan_takes_no_delta() {
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service: Embedded = Service::open(dir.path()).await.unwrap();
        let first = synthetic::tenant(100, 3, at(0)).unwrap();
        let next = synthetic::rescan(&first, 5.0, 1, at(1)).unwrap();
        let delta = serde_json::to_vec(&next.delta_since(&first, "scan-000")).unwrap();
        let refused = service.import_snapshot(&delta, None).await.unwrap_err().to_string();
        assert!(refused.contains("the first scan is a full one"), "{refused}");
        assert_eq!(service.log().head().await.unwrap(), 0);
    });
}

#[test]
fn a_delta_is_checked_against_its_base_and_itself() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, _, two, delta) = two_scans(&dir).await;
        let head = service.log().head().await.unwrap();
        let delta = based_on(delta, &two);
        let refuse = |snapshot: &Snapshot| serde_json::to_vec(snapshot).unwrap();

        // A grant on an identity neither the delta nor the tenant has.
        let mut dangling = delta.clone();
        let mut grant = dangling.grants[0].clone();
        grant.id = "ra-new".into();
        grant.identity = "sp-nobody".into();
        dangling.grants.push(grant);
        let e = service.import_snapshot(&refuse(&dangling), None).await.unwrap_err().to_string();
        assert!(e.contains("grants \"ra-new\": identity refers to \"sp-nobody\", which is in neither the delta nor the tenant's identities"), "{e}");

        // An entity both held and deleted, and a reference to what it deletes.
        let mut both = delta.clone();
        let kept = both.grants[0].clone();
        both.deleted.push(Deletion { list: EntityList::Grants, id: kept.id.clone() });
        both.deleted.push(Deletion { list: EntityList::Identities, id: kept.identity.clone() });
        let e = service.import_snapshot(&refuse(&both), None).await.unwrap_err().to_string();
        assert!(e.contains("is both deleted and present") && e.contains("which it deletes"), "{e}");

        // Deletions in a full scan; a delta without its base.
        let mut full = delta.clone();
        full.scan.coverage = None;
        let e = service.import_snapshot(&refuse(&full), None).await.unwrap_err().to_string();
        assert!(e.contains("only a delta scan names deleted entities"), "{e}");
        let mut baseless = delta.clone();
        baseless.scan.coverage.as_mut().unwrap().base_scan = None;
        let e = service.import_snapshot(&refuse(&baseless), None).await.unwrap_err().to_string();
        assert!(e.contains("a delta scan names its base_scan"), "{e}");
        assert_eq!(service.log().head().await.unwrap(), head, "nothing was appended");

        // The good delta applies.
        import(&mut service, &delta).await;
    });
}

#[test]
fn a_delta_whose_api_failed_keeps_what_it_says_is_deleted_as_unobserved() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, _, two, delta) = two_scans(&dir).await;
        let tenant = TenantId::new(synthetic::TENANT).unwrap();
        let mut delta = based_on(delta, &two);
        let gone: Vec<String> =
            delta.deleted.iter().filter(|d| d.list == EntityList::Grants).map(|d| d.id.clone()).collect();
        assert!(!gone.is_empty());
        let coverage = delta.scan.coverage.as_mut().unwrap();
        coverage.apis = vec![
            ApiCoverage {
                name: "everything else".into(),
                lists: EntityList::ALL.iter().copied().filter(|l| *l != EntityList::Grants).collect(),
                status: ApiStatus::Succeeded,
                error: None,
            },
            ApiCoverage {
                name: "arm.roleAssignments".into(),
                lists: vec![EntityList::Grants],
                status: ApiStatus::Failed,
                error: Some("429 Too Many Requests".into()),
            },
        ];
        import(&mut service, &delta).await;
        let views = service.views();
        for id in &gone {
            assert!(views.has_entity(&tenant, EntityList::Grants, id).unwrap(), "{id} was removed on a failed read");
        }
        let unobserved = views.unobserved(&tenant).unwrap();
        assert!(gone.iter().all(|id| unobserved.iter().any(|(_, u, _)| u == id)), "{unobserved:?}");
    });
}

#[test]
fn synth_writes_a_delta_that_sv0_imports() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let base = dir.join("base.json");
    let (code, out) = crate::sv0(&["synth", "--paths", "300", "--out", base.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", base.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let scan_id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["scan_id"].as_str().unwrap().to_string();
    let (next, delta) = (dir.join("next.json"), dir.join("delta.json"));
    let args = [
        "synth",
        "--rescan-of",
        base.to_str().unwrap(),
        "--change",
        "10%",
        "--out",
        next.to_str().unwrap(),
        "--delta-of",
        &scan_id,
        "--delta-out",
        delta.to_str().unwrap(),
    ];
    let (code, out) = crate::sv0(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("a delta scan of {scan_id}")), "{out}");
    let (code, out) = crate::sv0_in(&data, &["scan", "import", delta.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let imported: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(imported["status"], "applied", "{out}");
    assert_eq!(imported["mode"], "delta", "{out}");
    // The same delta again, now that it is the latest scan, is a duplicate, not a refusal.
    let (code, out) = crate::sv0_in(&data, &["scan", "import", delta.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    // The full rescan is a scan of the same state: applying it after the delta changes no path.
    let (code, out) = crate::sv0_in(&data, &["scan", "import", next.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let full: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(full["paths_total"], imported["paths_total"], "{out}");
    assert_eq!(full["removed_paths"], 0, "{out}");
}

#[test]
fn scan_import_delta_sends_a_full_snapshot_as_its_change() {
    let dir = TempDir::new();
    let (base, next) = (dir.join("base.json"), dir.join("next.json"));
    let (code, out) = crate::sv0(&["synth", "--paths", "400", "--out", base.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let args = ["synth", "--rescan-of", base.to_str().unwrap(), "--change", "5%", "--out", next.to_str().unwrap()];
    let (code, out) = crate::sv0(&args);
    assert_eq!(code, 0, "{out}");
    let (whole, delta) = (dir.join("whole"), dir.join("delta"));
    let import = |data: &std::path::Path, file: &std::path::Path, more: &[&str]| -> serde_json::Value {
        let mut args = vec!["scan", "import", file.to_str().unwrap(), "--json"];
        args.extend(more);
        let (code, out) = crate::sv0_in(data, &args);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str(&out).unwrap()
    };
    // A first scan has nothing to be a delta of: it goes whole.
    assert_eq!(import(&delta, &base, &["--delta"])["mode"], "full");
    import(&whole, &base, &[]);
    let full = import(&whole, &next, &[]);
    let sent = import(&delta, &next, &["--delta"]);
    assert_eq!((&sent["mode"], &sent["status"]), (&"delta".into(), &"applied".into()), "{sent}");
    assert!(
        sent["entities"].as_u64().unwrap() * 10 < full["entities"].as_u64().unwrap(),
        "the delta carries the change, not the tenant: {sent} against {full}"
    );
    assert_eq!(sent["paths_total"], full["paths_total"]);
    let paths = |data: &std::path::Path| crate::sv0_in(data, &["paths", "--json"]).1;
    assert_eq!(paths(&delta), paths(&whole), "the same paths either way");
    // Sent again, the same snapshot is nothing new.
    let again = import(&delta, &next, &["--delta"]);
    assert_eq!(again["duplicate"], true, "{again}");
}
