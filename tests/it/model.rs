//! The authority model through the whole fold: coverage-aware scans that never lose good data,
//! both deletion breakers with release, ownership and grades over time, the policy event.

use std::collections::BTreeSet;
use sv0_domain::events::Actor;

use sv0_domain::paths::{AuthorityPath, Grade, OwnerState};
use sv0_domain::snapshot::{ApiCoverage, ApiStatus, Coverage, CoverageMode, EntityList, Snapshot};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::EventLog;
use sv0_projections::{PathFilter, ScanRecord, ScanStatus, Views};
use sv0_service::Service;
use sv0_synth::synthetic;

type EmbeddedLogService = Service<sv0_log::EmbeddedLog>;
use sv0_tests::TempDir;

fn at(day: i64) -> Timestamp {
    Timestamp::parse(synthetic::OBSERVED_AT).unwrap().add_days(day)
}

/// A tenant of about 2,000 paths: 20 workloads, 40 identities, 100 destinations.
fn base() -> Snapshot {
    synthetic::tenant(2_000, 5, at(0)).unwrap()
}

fn later(snapshot: &Snapshot, day: i64) -> Snapshot {
    let mut next = snapshot.clone();
    next.scan.observed_at = at(day);
    next
}

fn coverage(failed: &[EntityList]) -> Coverage {
    let mut apis = vec![ApiCoverage {
        name: "everything else".into(),
        lists: EntityList::ALL.iter().copied().filter(|l| !failed.contains(l)).collect(),
        status: ApiStatus::Succeeded,
        error: None,
    }];
    if !failed.is_empty() {
        apis.push(ApiCoverage {
            name: "arm.roleAssignments".into(),
            lists: failed.to_vec(),
            status: ApiStatus::Failed,
            error: Some("429 Too Many Requests".into()),
        });
    }
    Coverage { mode: CoverageMode::Full, targets: vec![], base_scan: None, apis }
}

async fn import(service: &mut EmbeddedLogService, snapshot: &Snapshot) -> ScanRecord {
    let report = service.import_snapshot(&serde_json::to_vec(snapshot).unwrap(), None).await.unwrap();
    report.scan.expect("the scan was folded")
}

/// A service over a fresh data directory with the base tenant imported.
async fn scanned(dir: &TempDir) -> (EmbeddedLogService, Snapshot) {
    let mut service = Service::open(dir.path()).await.unwrap();
    let first = base();
    import(&mut service, &first).await;
    (service, first)
}

fn tenant() -> TenantId {
    TenantId::new(synthetic::TENANT).unwrap()
}

fn paths(service: &EmbeddedLogService) -> Vec<AuthorityPath> {
    service.views().paths(&tenant(), None).unwrap()
}

fn ids(paths: &[AuthorityPath]) -> BTreeSet<String> {
    paths.iter().map(|p| p.path_id.clone()).collect()
}

async fn assert_rebuild_equals(service: &EmbeddedLogService) {
    let rebuilt = Views::in_memory().unwrap();
    rebuilt.catch_up(service.log(), None).await.unwrap();
    assert_eq!(rebuilt.dump().unwrap(), service.views().dump().unwrap(), "a rebuild differs from the live views");
}

#[test]
fn partial_coverage_keeps_unseen_grants_and_complete_coverage_removes_them() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let before = paths(&service);

        // The grants API failed half way: ten grants are missing from the snapshot.
        let mut partial = later(&first, 1);
        let dropped: Vec<String> = partial.grants.drain(..10).map(|g| g.id).collect();
        partial.scan.coverage = Some(coverage(&[EntityList::Grants]));
        let scan = import(&mut service, &partial).await;
        assert_eq!(scan.status, ScanStatus::Applied);
        assert_eq!(scan.removed_entities, 0);
        assert_eq!(ids(&paths(&service)), ids(&before), "no path is lost to a failed API");
        let diff = service.views().scan_diff(&tenant(), &scan.scan_id).unwrap().unwrap();
        assert_eq!(diff.unobserved["grants"], dropped);
        assert!(diff.removed.is_empty());
        let unobserved = service.views().unobserved(&tenant()).unwrap();
        assert_eq!(unobserved.iter().map(|(_, id, _)| id.clone()).collect::<Vec<_>>(), dropped);
        assert!(unobserved.iter().all(|(list, _, since)| list == "grants" && *since == at(1)));

        // The next scan reads grants completely and still does not see them: now they go.
        let mut complete = later(&partial, 2);
        complete.scan.coverage = None;
        let scan = import(&mut service, &complete).await;
        assert_eq!(scan.status, ScanStatus::Applied);
        assert_eq!(scan.removed_entities, 10);
        let diff = service.views().scan_diff(&tenant(), &scan.scan_id).unwrap().unwrap();
        assert_eq!(diff.removed["grants"], dropped);
        assert!(service.views().unobserved(&tenant()).unwrap().is_empty());
        let gone: BTreeSet<String> = first
            .grants
            .iter()
            .filter(|g| dropped.contains(&g.id))
            .map(|g| (g.identity.clone(), g.destination.clone()))
            .flat_map(|(i, d)| before.iter().filter(move |p| p.identity.id == i && p.destination.id == d))
            .map(|p| p.path_id.clone())
            .collect();
        assert!(!gone.is_empty());
        let now = ids(&paths(&service));
        assert!(gone.iter().all(|id| !now.contains(id)), "the removed grants' paths are gone");
        assert_eq!(now.len(), before.len() - gone.len());
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn an_unobserved_entity_seen_again_is_no_longer_marked() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let mut partial = later(&first, 1);
        partial.grants.drain(..3);
        partial.scan.coverage = Some(coverage(&[EntityList::Grants]));
        import(&mut service, &partial).await;
        assert_eq!(service.views().unobserved(&tenant()).unwrap().len(), 3);
        import(&mut service, &later(&first, 2)).await;
        assert!(service.views().unobserved(&tenant()).unwrap().is_empty());
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn a_list_no_api_read_is_left_as_it_was() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let before = paths(&service);
        // A connector that reads everything but evidence sends none: the evidence stays.
        let mut next = later(&first, 1);
        next.evidence.clear();
        let mut cover = coverage(&[]);
        cover.apis[0].lists.retain(|l| *l != EntityList::Evidence);
        next.scan.coverage = Some(cover);
        let scan = import(&mut service, &next).await;
        assert_eq!((scan.status, scan.removed_entities), (ScanStatus::Applied, 0));
        let after = paths(&service);
        assert_eq!(ids(&after), ids(&before));
        let graded = |p: &[AuthorityPath]| p.iter().filter(|p| p.grade == Grade::A).count();
        assert_eq!(graded(&after), graded(&before), "grade-A evidence was kept");
    });
}

#[test]
fn a_targeted_scan_touches_only_its_targets() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let before = paths(&service);
        let target = "workload-0000003";
        // The connector re-read one workload: its bindings, identities and their grants, one
        // grant fewer than before; nothing else is in the snapshot.
        let mut next = later(&first, 1);
        next.workloads.retain(|w| w.id == target);
        next.bindings.retain(|b| b.workload == target);
        let identities: BTreeSet<String> = next.bindings.iter().map(|b| b.identity.clone()).collect();
        next.identities.retain(|i| identities.contains(&i.id));
        next.credentials.retain(|c| identities.contains(&c.identity));
        next.grants.retain(|g| identities.contains(&g.identity));
        let revoked = next.grants.remove(0);
        next.evidence.retain(|e| e.identity.as_ref().is_some_and(|i| identities.contains(i)));
        next.scan.coverage =
            Some(Coverage { mode: CoverageMode::Targeted, targets: vec![target.to_string()], ..coverage(&[]) });
        let scan = import(&mut service, &next).await;
        assert_eq!(scan.status, ScanStatus::Applied, "{scan:?}");
        assert_eq!(scan.removed_entities, 1, "only the revoked grant");
        let after = paths(&service);
        let lost: Vec<&AuthorityPath> = before.iter().filter(|p| !ids(&after).contains(&p.path_id)).collect();
        assert_eq!(lost.len(), 1);
        assert_eq!(
            (lost[0].workload.id.as_str(), lost[0].identity.id.as_str(), lost[0].destination.id.as_str()),
            (target, revoked.identity.as_str(), revoked.destination.as_str())
        );
        let untouched = |p: &&AuthorityPath| p.workload.id != target;
        assert_eq!(
            before.iter().filter(untouched).collect::<Vec<_>>(),
            after.iter().filter(untouched).collect::<Vec<_>>(),
            "other workloads' paths are exactly as they were"
        );
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn the_entity_breaker_holds_a_mass_removal_until_a_person_releases_it() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let before = paths(&service);
        let mut next = later(&first, 1);
        let keep = next.grants.len() * 7 / 10;
        next.grants.truncate(keep);
        let held = import(&mut service, &next).await;
        assert_eq!(held.status, ScanStatus::Quarantined);
        assert!(held.reason.as_deref().unwrap().contains("grants"), "{held:?}");
        assert!(held.quarantine_seq.is_some(), "the quarantine is written down as an event");
        assert_eq!(paths(&service), before, "nothing of a held scan is applied");
        let views_then = service.views().dump().unwrap();

        // Refusals change nothing.
        let e = service.release_scan(&tenant(), &held.scan_id, " ", &Actor::host("sam"), at(1)).await.unwrap_err();
        assert!(e.to_string().contains("--note"), "{e}");
        let e = service.release_scan(&tenant(), "no-such-scan", "n", &Actor::host("sam"), at(1)).await.unwrap_err();
        assert!(e.to_string().contains("has no scan"), "{e}");
        assert_eq!(service.views().dump().unwrap(), views_then);

        let released = service
            .release_scan(&tenant(), &held.scan_id, "the team retired 30% of its grants", &Actor::host("sam"), at(1))
            .await
            .unwrap();
        assert_eq!(released.status, ScanStatus::Applied);
        assert_eq!(released.released_by.as_deref(), Some("sam"));
        assert_eq!(released.removed_entities as usize, first.grants.len() - keep);
        assert!(paths(&service).len() < before.len() * 8 / 10);
        let e = service.release_scan(&tenant(), &held.scan_id, "again", &Actor::host("sam"), at(1)).await.unwrap_err();
        assert!(e.to_string().contains("not quarantined"), "{e}");
        assert_rebuild_equals(&service).await;
    });
}

/// A rescan that changes destinations (a name, an egress class, a data domain) recomputes every
/// path through them: the paths after it are those a first scan of the same tenant computes.
#[test]
fn a_changed_destination_recomputes_every_path_through_it() {
    let (dir, fresh) = (TempDir::new(), TempDir::new());
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let mut next = later(&first, 1);
        let granted: BTreeSet<String> = next.grants.iter().map(|g| g.destination.clone()).collect();
        let domain = next.domains.last().map(|d| d.id.clone()).unwrap();
        let mut changed = 0;
        for (n, destination) in next.destinations.iter_mut().filter(|d| granted.contains(&d.id)).take(3).enumerate() {
            match n {
                0 => destination.name = format!("{} (renamed)", destination.name),
                1 => destination.egress = Some(sv0_domain::model::EgressClass::ExternalHttp),
                _ => destination.domain = Some(domain.clone()),
            }
            changed += 1;
        }
        assert_eq!(changed, 3);
        let before = paths(&service);
        import(&mut service, &next).await;
        let incremental = paths(&service);
        assert_ne!(incremental, before, "the changes reach paths");

        let mut oracle = Service::open(fresh.path()).await.unwrap();
        import(&mut oracle, &next).await;
        let computed = paths(&oracle);
        let strip = |paths: Vec<AuthorityPath>| -> Vec<AuthorityPath> {
            // Owner states are dated by the scan that saw them: a first scan dates them all now.
            paths.into_iter().map(|p| AuthorityPath { owner_state_since: at(0), ..p }).collect()
        };
        assert_eq!(strip(incremental), strip(computed), "incremental paths differ from a full computation");
    });
}

#[test]
fn the_path_breaker_holds_a_scan_that_removes_few_entities_but_many_paths() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let before = paths(&service);
        // Twelve run-as bindings are few entities (under the breaker's minimum of 50) but
        // carry about 30% of the paths.
        let mut next = later(&first, 1);
        next.bindings.truncate(next.bindings.len() - 12);
        let held = import(&mut service, &next).await;
        assert_eq!(held.status, ScanStatus::Quarantined, "{held:?}");
        assert!(held.reason.as_deref().unwrap().contains("paths"), "{held:?}");
        assert!(held.removed_paths > 50);
        assert_eq!(paths(&service), before);
        let released =
            service.release_scan(&tenant(), &held.scan_id, "decommissioned", &Actor::host("sam"), at(1)).await.unwrap();
        assert_eq!(released.status, ScanStatus::Applied);
        assert_eq!(paths(&service).len(), before.len() - held.removed_paths as usize);
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn releasing_a_scan_after_a_newer_one_was_applied_changes_nothing() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let mut wipe = later(&first, 1);
        wipe.grants.clear();
        let held = import(&mut service, &wipe).await;
        assert_eq!(held.status, ScanStatus::Quarantined);
        import(&mut service, &later(&first, 2)).await;
        let views_then = paths(&service);
        let released =
            service.release_scan(&tenant(), &held.scan_id, "late", &Actor::host("sam"), at(3)).await.unwrap();
        assert_eq!(released.status, ScanStatus::Superseded);
        assert_eq!(paths(&service), views_then, "an old scan never undoes newer data");
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn the_breaker_threshold_is_the_recorded_policy() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        service
            .set_policy(
                &tenant(),
                |mut p| {
                    p.breaker.max_removed_percent = 50;
                    Ok(p)
                },
                &Actor::host("sam"),
                at(0),
            )
            .await
            .unwrap();
        let mut next = later(&first, 1);
        next.grants.truncate(next.grants.len() * 7 / 10);
        assert_eq!(import(&mut service, &next).await.status, ScanStatus::Applied, "30% is under a 50% breaker");
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn ownership_changes_are_dated_by_the_scan_that_saw_them() {
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        let mut first = base();
        for owner in &mut first.owners {
            owner.status = sv0_domain::model::OwnerStatus::Active;
            owner.last_active_at = Some(at(0));
        }
        first.workloads[0].owners = vec![first.owners[0].id.clone()];
        import(&mut service, &first).await;
        let of_first = |service: &EmbeddedLogService| {
            let filter = PathFilter { workload: Some(first.workloads[0].id.clone()), ..PathFilter::default() };
            service.views().query_paths(&tenant(), &filter).unwrap()
        };
        assert!(
            of_first(&service).iter().all(|p| p.owner_state == OwnerState::Assigned && p.owner_state_since == at(0))
        );

        let mut departed = later(&first, 5);
        departed.owners[0].status = sv0_domain::model::OwnerStatus::Departed;
        import(&mut service, &departed).await;
        assert!(
            of_first(&service).iter().all(|p| p.owner_state == OwnerState::Decayed && p.owner_state_since == at(5))
        );

        import(&mut service, &later(&departed, 9)).await;
        assert!(
            of_first(&service).iter().all(|p| p.owner_state == OwnerState::Decayed && p.owner_state_since == at(5)),
            "the state's start survives rescans that do not change it"
        );

        let mut orphaned = later(&departed, 12);
        orphaned.workloads[0].owners.clear();
        // With no owner on the workload, the identities' owners are the path's.
        let bound: Vec<String> = orphaned
            .bindings
            .iter()
            .filter(|b| b.workload == orphaned.workloads[0].id)
            .map(|b| b.identity.clone())
            .collect();
        for identity in orphaned.identities.iter_mut().filter(|i| bound.contains(&i.id)) {
            identity.owners.clear();
        }
        import(&mut service, &orphaned).await;
        assert!(
            of_first(&service).iter().all(|p| p.owner_state == OwnerState::Orphaned && p.owner_state_since == at(12))
        );
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn silence_and_evidence_age_with_scan_time_even_when_nothing_changes() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, first) = scanned(&dir).await;
        let graded = |service: &EmbeddedLogService, grade: Grade| {
            let filter = PathFilter { grade: Some(grade.as_str().to_string()), ..PathFilter::default() };
            service.views().query_paths(&tenant(), &filter).unwrap().len()
        };
        assert!(graded(&service, Grade::A) > 0 && graded(&service, Grade::B) > 0);
        // The same entities, scanned 100 days later: every record is out of the window and every
        // owner has been silent for longer than the limit.
        import(&mut service, &later(&first, 100)).await;
        assert_eq!((graded(&service, Grade::A), graded(&service, Grade::B)), (0, 0));
        let all = paths(&service);
        assert!(all.iter().all(|p| p.owner_state != OwnerState::Assigned));
        assert_rebuild_equals(&service).await;
    });
}

/// Sets the tenant's evidence window, as `sam`.
async fn set_window(
    service: &mut EmbeddedLogService,
    days: u32,
) -> Result<sv0_service::PolicyReport, sv0_service::ServiceError> {
    let window = |mut p: sv0_domain::policy::Policy| {
        p.evidence_window_days = days;
        Ok(p)
    };
    service.set_policy(&tenant(), window, &Actor::host("sam"), at(0)).await
}

#[test]
fn a_policy_change_regrades_now_and_a_replay_folds_each_scan_under_the_policy_of_its_time() {
    let dir = TempDir::new();
    crate::block_on(async {
        let (mut service, _) = scanned(&dir).await;
        let before = paths(&service);
        let head = service.log().head().await.unwrap();
        let report = set_window(&mut service, 1).await.unwrap();
        assert_eq!(report.policy.evidence_window_days, 1);
        let after = paths(&service);
        let a = |p: &[AuthorityPath]| p.iter().filter(|p| p.grade == Grade::A).count();
        assert!(a(&after) < a(&before), "a one-day window keeps fewer grade-A paths");
        let (_, then) = service.replay(sv0_service::AsOf::Position(head)).await.unwrap();
        assert_eq!(then.paths(&tenant(), None).unwrap(), before, "the replay before the change has the old grades");
        // Bad settings are refused and append nothing.
        let e = set_window(&mut service, 0).await.unwrap_err();
        assert!(e.to_string().contains("evidence_window_days"), "{e}");
        assert_eq!(service.log().head().await.unwrap(), report.seq);
        assert_rebuild_equals(&service).await;
    });
}

#[test]
fn queries_by_each_indexed_property_agree_with_filtering_every_path() {
    let dir = TempDir::new();
    crate::block_on(async {
        let mut service = Service::open(dir.path()).await.unwrap();
        import(&mut service, &base()).await;
        let all = paths(&service);
        let sample = &all[all.len() / 2];
        let filters = [
            PathFilter { workload: Some(sample.workload.id.clone()), ..PathFilter::default() },
            PathFilter { identity: Some(sample.identity.id.clone()), ..PathFilter::default() },
            PathFilter { destination: Some(sample.destination.id.clone()), ..PathFilter::default() },
            PathFilter { domain: Some(sample.domain.id.clone()), ..PathFilter::default() },
            PathFilter { grade: Some("B".into()), ..PathFilter::default() },
            PathFilter { egress: Some("llm_api".into()), ..PathFilter::default() },
            PathFilter { owner_state: Some("decayed".into()), ..PathFilter::default() },
            PathFilter {
                scope: Some(sv0_domain::scope::Scope::parse("project:project-0001").unwrap()),
                grade: Some("C".into()),
                egress: Some("cloud_storage".into()),
                ..PathFilter::default()
            },
        ];
        for filter in filters {
            let expected: Vec<&AuthorityPath> = all
                .iter()
                .filter(|p| filter.matches(p))
                .filter(|p| filter.scope.is_none() || p.workload.id.starts_with("workload-000001"))
                .collect();
            let got = service.views().query_paths(&tenant(), &filter).unwrap();
            assert!(!got.is_empty(), "{filter:?} selects something in the synthetic tenant");
            assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{filter:?}");
        }
        // Paging (as the API does) walks the same paths in the same order, whether the page is
        // read from the row keys (scope, workload, with identity) or cut from the whole result.
        let paged_filters = [
            PathFilter {
                scope: Some(sv0_domain::scope::Scope::parse("project:project-0001").unwrap()),
                ..PathFilter::default()
            },
            PathFilter { workload: Some(sample.workload.id.clone()), ..PathFilter::default() },
            PathFilter {
                workload: Some(sample.workload.id.clone()),
                identity: Some(sample.identity.id.clone()),
                ..PathFilter::default()
            },
            PathFilter { grade: Some("B".into()), ..PathFilter::default() },
        ];
        for filter in paged_filters {
            let whole = service.views().query_paths(&tenant(), &filter).unwrap();
            let mut paged = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (page, next) = service.views().query_paths_page(&tenant(), &filter, after.as_deref(), 3).unwrap();
                assert!(page.len() <= 3);
                paged.extend(page);
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            paged.sort_by(|a, b| a.path_id.cmp(&b.path_id));
            assert_eq!(paged, whole, "{filter:?}");
        }
    });
}
