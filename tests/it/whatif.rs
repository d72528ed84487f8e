//! What-if (issue 15): a planned change laid over the current views predicts the paths the
//! deployment will create, without writing anything; the real deployment's scan then gives the
//! same paths for what was planned.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::overlay::Overlay;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{Entities, EntityList, Snapshot};
use sv0_log::EventLog;
use sv0_service::Service;
use sv0_tests::TempDir;

use crate::{DEMO_SNAPSHOTS, demo_snapshot};

fn entities(n: usize) -> Entities {
    let snapshot: Snapshot = serde_json::from_slice(&demo_snapshot(DEMO_SNAPSHOTS[n])).unwrap();
    snapshot.validate().unwrap().entities
}

/// The overlay that turns `from` into `to`: every entity of `to` that is new or different is
/// an upsert, every id of `from` missing in `to` a removal. Evidence is left out: a plan
/// creates none.
fn overlay_between(from: &Entities, to: &Entities) -> Overlay {
    fn diff<E: serde::Serialize + Clone>(
        list: EntityList,
        from: &[E],
        to: &[E],
        id: impl Fn(&E) -> &str,
        upserts: &mut Vec<E>,
        overlay_removed: &mut Vec<(EntityList, String)>,
    ) {
        let before: BTreeMap<&str, serde_json::Value> =
            from.iter().map(|e| (id(e), serde_json::to_value(e).unwrap())).collect();
        let after: BTreeSet<&str> = to.iter().map(&id).collect();
        for e in to {
            if before.get(id(e)) != Some(&serde_json::to_value(e).unwrap()) {
                upserts.push(e.clone());
            }
        }
        for gone in before.keys().filter(|k| !after.contains(*k)) {
            overlay_removed.push((list, gone.to_string()));
        }
    }
    let mut o = Overlay::default();
    let mut removed = Vec::new();
    diff(EntityList::Workloads, &from.workloads, &to.workloads, |e| &e.id, &mut o.upserts.workloads, &mut removed);
    diff(EntityList::Identities, &from.identities, &to.identities, |e| &e.id, &mut o.upserts.identities, &mut removed);
    diff(
        EntityList::Destinations,
        &from.destinations,
        &to.destinations,
        |e| &e.id,
        &mut o.upserts.destinations,
        &mut removed,
    );
    diff(EntityList::Grants, &from.grants, &to.grants, |e| &e.id, &mut o.upserts.grants, &mut removed);
    diff(EntityList::Bindings, &from.bindings, &to.bindings, |e| &e.id, &mut o.upserts.bindings, &mut removed);
    diff(EntityList::Domains, &from.domains, &to.domains, |e| &e.id, &mut o.upserts.domains, &mut removed);
    for (list, id) in removed {
        if list == EntityList::Grants {
            let grant = from.grants.iter().find(|g| g.id == id).unwrap();
            o.identities.insert(grant.identity.clone());
        }
        o.remove(list, &id);
    }
    o.touch_upserts();
    o
}

#[test]
fn a_plan_laid_over_the_views_predicts_the_deployments_paths_and_writes_nothing() {
    crate::block_on(async {
        let dir = TempDir::new();
        let mut service = Service::open(dir.path()).await.unwrap();
        service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[0]), None).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let scope = Scope::parse("project:HR-Automation").unwrap();
        let overlay = overlay_between(&entities(0), &entities(1));
        assert!(!overlay.is_empty());

        let head = service.log().head().await.unwrap();
        let dump = service.views().dump().unwrap();
        let whatif = service.views().whatif(&tenant, &scope, &overlay).unwrap();
        assert_eq!(service.log().head().await.unwrap(), head, "a what-if appends nothing");
        assert_eq!(service.views().dump().unwrap(), dump, "and writes no view");
        assert_eq!(whatif.before, service.views().paths(&tenant, Some(&scope)).unwrap());
        assert_eq!(whatif.recomputed, ["asst_hr_onboarding"], "only the workload the plan reaches");

        // The deployment happens: its scan gives the paths the what-if predicted.
        service.import_snapshot(&demo_snapshot(DEMO_SNAPSHOTS[1]), None).await.unwrap();
        let real = service.views().paths(&tenant, Some(&scope)).unwrap();
        let shape = |paths: &[sv0_domain::paths::AuthorityPath]| -> Vec<(String, Vec<sv0_domain::model::Permission>)> {
            paths.iter().map(|p| (p.path_id.clone(), p.permissions.clone())).collect()
        };
        assert_eq!(shape(&whatif.after), shape(&real));
        assert_eq!(whatif.after.len(), whatif.before.len() + 5);
        // What the plan creates has no evidence yet: standing authority only.
        let new: Vec<_> =
            whatif.after.iter().filter(|p| !whatif.before.iter().any(|b| b.path_id == p.path_id)).collect();
        assert!(new.iter().all(|p| p.grade == sv0_domain::paths::Grade::C), "{new:#?}");
    });
}
