//! Property tests of the fold: for random sequences of scans and approvals over a small
//! synthetic tenant, (1) rebuilding from an empty database gives the incremental views, and
//! (2) replaying the log to the position reached after any step gives the views as they were
//! live at that step.

use proptest::prelude::*;
use sv0_domain::Timestamp;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::ScanTrigger;
use sv0_log::EventLog;
use sv0_projections::Views;
use sv0_service::synthetic::synthetic_snapshot;
use sv0_service::{AsOf, Service};
use sv0_tests::TempDir;

#[derive(Debug, Clone)]
enum Op {
    /// A rescan: which 1 % of grants moved, why it ran, how many days after the start.
    Scan { variant: u64, trigger: u8, day: i64 },
    /// An approval of one workload's paths, or of everything.
    Approve { workload: Option<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..4, 0u8..4, 0i64..90).prop_map(|(variant, trigger, day)| Op::Scan { variant, trigger, day }),
        1 => proptest::option::of(0usize..2).prop_map(|workload| Op::Approve { workload }),
    ]
}

fn trigger(n: u8) -> ScanTrigger {
    [ScanTrigger::Manual, ScanTrigger::Scheduled, ScanTrigger::Deployment, ScanTrigger::Remediation][n as usize % 4]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn rebuild_and_replay_to_any_step_equal_the_live_views(ops in proptest::collection::vec(op(), 1..7)) {
        let dir = TempDir::new();
        crate::block_on(async {
            let mut service = Service::open(dir.path()).await.unwrap();
            let first = serde_json::to_vec(&synthetic_snapshot(200, 0, "2026-03-01T00:00:00Z").unwrap()).unwrap();
            let tenant = service.import_snapshot(&first, None).await.unwrap().tenant;
            let mut steps = vec![(service.log().head().await.unwrap(), service.views().dump().unwrap())];
            let start = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
            for op in &ops {
                match op {
                    Op::Scan { variant, trigger: t, day } => {
                        let at = start.add_days(*day).to_rfc3339();
                        let snapshot = serde_json::to_vec(&synthetic_snapshot(200, *variant, &at).unwrap()).unwrap();
                        service.import_snapshot(&snapshot, Some(trigger(*t))).await.unwrap();
                    }
                    Op::Approve { workload } => {
                        let scope = match workload {
                            Some(n) => Scope::parse(&format!("workload:workload-{n:07}")).unwrap(),
                            None => Scope::all(),
                        };
                        service.approve(&tenant, &scope, "property", vec![], "prop@example.com", start).await.unwrap();
                    }
                }
                steps.push((service.log().head().await.unwrap(), service.views().dump().unwrap()));
            }
            let rebuilt = Views::in_memory().unwrap();
            rebuilt.catch_up(service.log(), None).await.unwrap();
            assert_eq!(&rebuilt.dump().unwrap(), &steps.last().unwrap().1, "rebuild differs from incremental");
            for (head, live) in &steps {
                let (reached, replayed) = service.replay(AsOf::Position(*head)).await.unwrap();
                assert_eq!(reached, *head);
                assert_eq!(&replayed.dump().unwrap(), live, "replay to position {head} differs from the live views then");
            }
        });
    }
}
