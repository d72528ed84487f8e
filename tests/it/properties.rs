//! Property tests of the fold: for random sequences of rescans (grants changed, entities
//! dropped, partial, unread and targeted coverage, time moving on), approvals, releases of
//! quarantined scans and policy changes over a small synthetic tenant, (1) rebuilding from an
//! empty database gives the incremental views, and (2) replaying the log to the position
//! reached after any step gives the views as they were live at that step, and (3) after every
//! rescan and release the incrementally recomputed paths and findings equal those of a full
//! recomputation of every workload (which a policy event forces), and (4) folding the log with
//! every scope assessment computed afresh gives the views whose assessments were taken from
//! scope memos wherever nothing they were computed from had changed.

use proptest::prelude::*;
use sv0_domain::Timestamp;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{ApiCoverage, ApiStatus, Coverage, CoverageMode, EntityList, ScanTrigger, Snapshot};
use sv0_log::EventLog;
use sv0_projections::{PathFilter, ScanStatus, Views};
use sv0_service::{AsOf, Service};
use sv0_synth::synthetic;
use sv0_tests::TempDir;

#[derive(Debug, Clone)]
enum Op {
    /// A rescan `days` after the previous one with `change` % of grants changed (seeded); the
    /// snapshot sent may drop entities and declare partial, unread or targeted coverage.
    Scan { seed: u64, change: u8, days: i64, drop: u8, coverage: u8, trigger: u8 },
    /// An approval of one workload's paths, or of everything.
    Approve { workload: Option<usize> },
    /// A person releases the latest quarantined scan.
    Release,
    /// The evidence window changes.
    Policy { window: u32 },
    /// A person acknowledges the `nth` open finding (modulo their number).
    Acknowledge { nth: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u64..1000, 0u8..6, 0i64..40, 0u8..6, 0u8..5, 0u8..4)
            .prop_map(|(seed, change, days, drop, coverage, trigger)| Op::Scan { seed, change, days, drop, coverage, trigger }),
        1 => proptest::option::of(0usize..3).prop_map(|workload| Op::Approve { workload }),
        1 => Just(Op::Release),
        1 => (1u32..60).prop_map(|window| Op::Policy { window }),
        1 => (0usize..1000).prop_map(|nth| Op::Acknowledge { nth }),
    ]
}

fn trigger(n: u8) -> ScanTrigger {
    [ScanTrigger::Manual, ScanTrigger::Scheduled, ScanTrigger::Deployment, ScanTrigger::Remediation][n as usize % 4]
}

fn api(lists: Vec<EntityList>, status: ApiStatus) -> ApiCoverage {
    ApiCoverage { name: format!("{status:?}"), lists, status, error: None }
}

/// What the connector sends for the tenant's true state `truth`.
pub(crate) fn sent(truth: &Snapshot, dropped: u8, coverage: u8) -> Snapshot {
    let mut s = truth.clone();
    match dropped {
        1 => drop(s.grants.drain(..3.min(s.grants.len()))),
        2 => s.grants.truncate(s.grants.len() / 2), // trips the entity breaker
        3 => drop(s.bindings.pop()),                // a third of the paths: the path breaker
        4 => drop(s.evidence.drain(..s.evidence.len() / 3)),
        _ => {}
    }
    let rest = |skip: &[EntityList]| EntityList::ALL.iter().copied().filter(|l| !skip.contains(l)).collect();
    s.scan.coverage = match coverage {
        1 => Some(Coverage {
            mode: CoverageMode::Full,
            targets: vec![],
            base_scan: None,
            apis: vec![
                api(rest(&[EntityList::Grants]), ApiStatus::Succeeded),
                api(vec![EntityList::Grants], ApiStatus::Failed),
            ],
        }),
        2 => Some(Coverage {
            mode: CoverageMode::Full,
            targets: vec![],
            base_scan: None,
            apis: vec![api(rest(&[EntityList::Evidence]), ApiStatus::Succeeded)],
        }),
        3 => {
            let target = s.workloads.first().map(|w| w.id.clone()).unwrap_or_default();
            s.workloads.retain(|w| w.id == target);
            s.bindings.retain(|b| b.workload == target);
            let identities: Vec<String> = s.bindings.iter().map(|b| b.identity.clone()).collect();
            s.identities.retain(|i| identities.contains(&i.id));
            s.credentials.retain(|c| identities.contains(&c.identity));
            s.grants.retain(|g| identities.contains(&g.identity));
            s.evidence.retain(|e| e.identity.as_ref().is_some_and(|i| identities.contains(i)));
            Some(Coverage {
                mode: CoverageMode::Targeted,
                targets: vec![target],
                base_scan: None,
                apis: vec![api(rest(&[]), ApiStatus::Succeeded)],
            })
        }
        _ => None,
    };
    s
}

/// Recomputes every workload of the tenant (a policy event with the same policy does) and
/// checks that no path or finding changes: what the rescan recomputed incrementally is what a
/// full recomputation gives.
async fn incremental_equals_full<L: EventLog>(service: &mut Service<L>, tenant: &sv0_domain::TenantId, at: Timestamp) {
    let paths = service.views().query_paths(tenant, &PathFilter::default()).unwrap();
    let findings = service.findings(tenant, None).unwrap();
    service.set_policy(tenant, Ok, &sv0_domain::events::Actor::host("oracle@example.com"), at).await.unwrap();
    let full = service.views().query_paths(tenant, &PathFilter::default()).unwrap();
    assert_eq!(paths.len(), full.len(), "incremental and full recomputation give different path counts");
    for (incremental, full) in paths.iter().zip(&full) {
        assert_eq!(incremental, full, "a path differs from its full recomputation");
    }
    let recomputed = service.findings(tenant, None).unwrap();
    if findings != recomputed {
        let index = |list: &[sv0_projections::FindingRecord]| -> std::collections::BTreeMap<String, String> {
            list.iter().map(|r| (r.finding.finding_id.clone(), format!("{r:?}"))).collect()
        };
        let (before, after) = (index(&findings), index(&recomputed));
        let differing: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|id| before.get(*id) != after.get(*id))
            .map(|id| format!("{id}:\n  incremental {:?}\n  full        {:?}", before.get(id), after.get(id)))
            .collect();
        panic!("findings differ from a full recomputation:\n{}", differing.join("\n"));
    }
    open_counts_match_the_findings(service.views(), tenant, &recomputed);
}

/// The open findings the fold counts by severity are those the findings table holds open.
fn open_counts_match_the_findings(
    views: &Views,
    tenant: &sv0_domain::TenantId,
    findings: &[sv0_projections::FindingRecord],
) {
    let mut counted = sv0_projections::OpenFindings::default();
    for record in findings.iter().filter(|r| r.status == sv0_projections::FindingStatus::Open) {
        counted.open(&record.finding);
    }
    let kept = views.tenant_state(tenant).unwrap().unwrap_or_default().open;
    assert_eq!(kept, counted, "the fold's open-finding counts differ from the findings it holds open");
}

proptest! {
    // Twelve cases in the suite; `PROPTEST_CASES=500` explores further.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]

    #[test]
    fn rebuild_and_replay_to_any_step_equal_the_live_views(ops in proptest::collection::vec(op(), 1..8)) {
        check(&ops);
    }
}

/// Runs `ops` against a fresh service and checks the three properties after every step.
fn check(ops: &[Op]) {
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let start = Timestamp::parse(synthetic::OBSERVED_AT).unwrap();
        let mut truth = synthetic::tenant(300, 42, start).unwrap();
        let tenant = service.import_snapshot(&serde_json::to_vec(&truth).unwrap(), None).await.unwrap().tenant;
        let mut steps = vec![(service.log().head().await.unwrap(), service.views().dump().unwrap())];
        for op in ops {
            match op {
                Op::Scan { seed, change, days, drop, coverage, trigger: t } => {
                    let at = truth.scan.observed_at.add_days(*days);
                    truth = synthetic::rescan(&truth, f64::from(*change), *seed, at).unwrap();
                    let snapshot = serde_json::to_vec(&sent(&truth, *drop, *coverage)).unwrap();
                    service.import_snapshot(&snapshot, Some(trigger(*t))).await.unwrap();
                    incremental_equals_full(&mut service, &tenant, start).await;
                }
                Op::Approve { workload } => {
                    let scope = match workload {
                        Some(n) => Scope::parse(&format!("workload:workload-{n:07}")).unwrap(),
                        None => Scope::all(),
                    };
                    // A scope may have no paths left after drops; that refusal is fine.
                    let _ = service.approve(&tenant, &scope, "property", vec![], "prop@example.com", start).await;
                }
                Op::Release => {
                    let held =
                        service.scans(&tenant).unwrap().into_iter().rev().find(|s| s.status == ScanStatus::Quarantined);
                    if let Some(held) = held {
                        service
                            .release_scan(
                                &tenant,
                                &held.scan_id,
                                "property",
                                &sv0_domain::events::Actor::host("prop@example.com"),
                                start,
                            )
                            .await
                            .unwrap();
                        incremental_equals_full(&mut service, &tenant, start).await;
                    }
                }
                Op::Policy { window } => {
                    service
                        .set_policy(
                            &tenant,
                            |mut p| {
                                p.evidence_window_days = *window;
                                Ok(p)
                            },
                            &sv0_domain::events::Actor::host("prop@example.com"),
                            start,
                        )
                        .await
                        .unwrap();
                }
                Op::Acknowledge { nth } => {
                    let open: Vec<String> = service
                        .findings(&tenant, None)
                        .unwrap()
                        .into_iter()
                        .filter(|r| r.status == sv0_projections::FindingStatus::Open)
                        .map(|r| r.finding.finding_id)
                        .collect();
                    if !open.is_empty() {
                        let ack = sv0_domain::events::Acknowledgement {
                            finding_id: open[nth % open.len()].clone(),
                            due: start.add_days(400),
                        };
                        let by = sv0_domain::events::Actor::host("prop@example.com");
                        service.acknowledge_findings(&tenant, vec![ack], &by, "property", start).await.unwrap();
                    }
                }
            }
            steps.push((service.log().head().await.unwrap(), service.views().dump().unwrap()));
        }
        let rebuilt = Views::in_memory().unwrap();
        rebuilt.catch_up(service.log(), None).await.unwrap();
        assert_eq!(&rebuilt.dump().unwrap(), &steps.last().unwrap().1, "rebuild differs from incremental");
        // Every scope assessment computed afresh: a stale memo shows as a different assessment.
        sv0_projections::set_scope_memos(false);
        let fresh = Views::in_memory().unwrap();
        let caught_up = fresh.catch_up(service.log(), None).await;
        sv0_projections::set_scope_memos(true);
        caught_up.unwrap();
        assert_eq!(&fresh.dump().unwrap(), &steps.last().unwrap().1, "a scope memo was taken where it did not stand");
        for (head, live) in &steps {
            let (reached, replayed) = service.replay(AsOf::Position(*head)).await.unwrap();
            assert_eq!(reached, *head);
            assert_eq!(&replayed.dump().unwrap(), live, "replay to position {head} differs from the live views then");
        }
    });
}

/// A case proptest found: the last scan passes, by one day, the instant 90 days after an
/// identity's last activity, which was exactly the previous scan's time minus 90 days.
#[test]
fn an_identity_falls_silent_exactly_one_scan_after_the_limit() {
    check(&[
        Op::Scan { seed: 0, change: 0, days: 10, drop: 0, coverage: 0, trigger: 0 },
        Op::Scan { seed: 0, change: 0, days: 25, drop: 5, coverage: 0, trigger: 1 },
        Op::Scan { seed: 18, change: 2, days: 10, drop: 1, coverage: 2, trigger: 0 },
        Op::Scan { seed: 693, change: 2, days: 34, drop: 4, coverage: 2, trigger: 2 },
        Op::Scan { seed: 346, change: 4, days: 1, drop: 5, coverage: 4, trigger: 3 },
    ]);
}

/// A rescan that changes nothing of a baselined scope takes the scope's assessment from its
/// memo (its row stays as the scan that computed it wrote it); one that changes the scope's
/// paths computes it again. (Another scope's memo may fall with it: the findings about a
/// destination both reach list the paths of both.) (That a memo taken gives what a fresh computation gives is the
/// property test's fourth property.)
#[test]
fn a_scope_is_assessed_again_only_when_its_paths_or_findings_change() {
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let start = Timestamp::parse(synthetic::OBSERVED_AT).unwrap();
        let truth = synthetic::tenant(300, 42, start).unwrap();
        let tenant = service.import_snapshot(&serde_json::to_vec(&truth).unwrap(), None).await.unwrap().tenant;
        let scopes = ["workload-0000001", "workload-0000002"].map(|w| Scope::parse(&format!("workload:{w}")).unwrap());
        for scope in &scopes {
            service.approve(&tenant, scope, "memo", vec![], "prop@example.com", start).await.unwrap();
        }
        let memo = |views: &Views, scope: &Scope| -> Vec<u8> {
            let key = scope.key();
            let dump = views.dump().unwrap();
            let rows = dump.get("scope_memos").expect("the scope_memos table");
            let row = rows.iter().find(|(k, _)| k.windows(key.len()).any(|w| w == key.as_bytes()));
            row.map(|(_, v)| v.clone()).expect("a memo of the scope")
        };
        let paths_of = |views: &Views, workload: &str| {
            let filter = PathFilter { workload: Some(workload.to_string()), ..PathFilter::default() };
            views.query_paths(&tenant, &filter).unwrap()
        };

        // A rescan a day later that changes no grant: both scopes assessed, their memos written.
        let truth = synthetic::rescan(&truth, 0.0, 1, start.add_days(1)).unwrap();
        service.import_snapshot(&serde_json::to_vec(&truth).unwrap(), Some(ScanTrigger::Scheduled)).await.unwrap();
        let before = scopes.each_ref().map(|s| memo(service.views(), s));
        let paths_before = paths_of(service.views(), "workload-0000002");

        // The second workload alone rescanned as it was: nothing to assess again.
        let unchanged = synthetic::targeted(&truth, "workload-0000002");
        service.import_snapshot(&serde_json::to_vec(&unchanged).unwrap(), Some(ScanTrigger::Scheduled)).await.unwrap();
        assert_eq!(scopes.each_ref().map(|s| memo(service.views(), s)), before, "both memos stood");

        // Then with every grant of it moved.
        let moved = synthetic::rescan(&unchanged, 100.0, 7, start.add_days(1)).unwrap();
        service.import_snapshot(&serde_json::to_vec(&moved).unwrap(), Some(ScanTrigger::Scheduled)).await.unwrap();
        assert_ne!(paths_of(service.views(), "workload-0000002"), paths_before, "the rescan changed the scope's paths");
        assert_ne!(memo(service.views(), &scopes[1]), before[1], "the changed scope was assessed again");

        // Its assessment is still in the sealed record, as before.
        let last = service.views().assessments_after(&tenant, 0).unwrap().pop().expect("an assessment");
        let assessed: std::collections::BTreeSet<String> =
            last.scan.expect("a scan assessment").scopes.into_iter().map(|s| s.scope).collect();
        assert_eq!(assessed, scopes.iter().map(Scope::canonical).collect());
    })
}
