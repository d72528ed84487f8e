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

fn plan_file(name: &str) -> std::path::PathBuf {
    crate::repo_root().join("tests/data/plans").join(name)
}

/// A data directory with the demo's first scan, approved with the release's declared intent.
fn approved() -> TempDir {
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sv0.toml"), "[identity]\nprincipal = \"riley@contoso.example\"\n").unwrap();
    let first = dir.join("first.json");
    std::fs::write(&first, demo_snapshot(DEMO_SNAPSHOTS[0])).unwrap();
    assert_eq!(crate::sv0_in(&data, &["scan", "import", first.to_str().unwrap()]).0, 0);
    let intent = dir.join("intent.json");
    std::fs::write(&intent, demo_snapshot("contoso-intent.json")).unwrap();
    let (code, out) = crate::sv0_in(
        &data,
        &["approve", "--scope", "project:HR-Automation", "--note", "v1", "--intent", intent.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    dir
}

#[test]
fn a_terraform_plan_is_read_as_documented_and_what_is_not_modelled_is_listed() {
    let plan = sv0_connectors::plan::read(&std::fs::read(plan_file("terraform-hr-release.json")).unwrap()).unwrap();
    assert_eq!(plan.format, "terraform 1.2");
    assert_eq!(plan.unchanged, 1, "the no-op resource group");
    let addresses: Vec<(&str, sv0_connectors::plan::Action)> =
        plan.changes.iter().map(|c| (c.address.as_str(), c.action)).collect();
    use sv0_connectors::plan::{Action, Principal, Resource};
    assert_eq!(
        addresses,
        [
            ("module.hr_agent.azurerm_role_assignment.finance_ledgers", Action::Create),
            ("module.hr_agent.azurerm_user_assigned_identity.reconciler", Action::Create),
            ("module.hr_agent.azurerm_role_assignment.reconciler_invoices", Action::Create),
            ("module.hr_agent.azuread_service_principal_password.indexer", Action::Create),
            ("azurerm_role_assignment.old_reader", Action::Delete),
        ]
    );
    // principal_id is unknown until apply: the configuration's reference (module-local) names
    // the identity the plan creates.
    let Resource::RoleAssignment { principal, role, .. } = &plan.changes[2].resource else { panic!() };
    assert_eq!(*principal, Principal::Planned("module.hr_agent.azurerm_user_assigned_identity.reconciler".into()));
    assert_eq!(role, "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", "Storage Blob Data Reader by name");
    // A password's end date relative to the plan's timestamp (17520h = 730 days).
    let Resource::Credential { principal, expires_at, .. } = &plan.changes[3].resource else { panic!() };
    assert_eq!(*principal, Principal::Known("a1c93e55-2f7b-4d06-8e4a-6b1f0c2d3e44".into()));
    let planned_at = sv0_domain::Timestamp::parse("2026-03-02T16:00:00Z").unwrap();
    assert_eq!(*expires_at, planned_at.add_days(730).0);
    let skipped: Vec<(&str, &str)> = plan.skipped.iter().map(|s| (s.address.as_str(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().any(|(a, r)| *a == "aws_s3_bucket.logs" && r.contains("provider")), "{skipped:?}");
    assert!(skipped.iter().any(|(a, r)| *a == "azurerm_key_vault.secrets" && r.contains("not a resource SV0 models")));

    for (body, says) in [
        (&b"not json"[..], "not JSON"),
        (br#"{"format_version": "2.0", "resource_changes": []}"#, "format 1.x"),
        (br#"{"hello": "world"}"#, "neither a Terraform JSON plan"),
        (br#"{"status": "Failed", "error": {"message": "InvalidTemplate"}}"#, "InvalidTemplate"),
    ] {
        let e = sv0_connectors::plan::read(body).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn an_arm_what_if_result_is_read_as_documented() {
    let plan = sv0_connectors::plan::read(&std::fs::read(plan_file("arm-whatif-finance.json")).unwrap()).unwrap();
    assert_eq!(plan.format, "arm what-if");
    assert_eq!(plan.unchanged, 1);
    use sv0_connectors::plan::Resource;
    let kinds: Vec<&str> = plan
        .changes
        .iter()
        .map(|c| match &c.resource {
            Resource::RoleAssignment { .. } => "role",
            Resource::Identity { .. } => "identity",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["role", "identity", "identity"]);
    let Resource::RoleAssignment { scope, role, .. } = &plan.changes[0].resource else { panic!() };
    assert!(scope.ends_with("/containers/ledgers"), "{scope}");
    assert_eq!(role, "ba92f5b4-2d11-453d-a403-e96b0029c9fe");
    assert_eq!(plan.skipped.len(), 1);
    assert!(plan.skipped[0].reason.contains("microsoft.keyvault/vaults"), "{:?}", plan.skipped);
}

#[test]
fn sv0_whatif_predicts_the_plans_paths_with_their_cause_and_the_deployment_confirms_them() {
    let dir = approved();
    let data = dir.join("data");
    let plan = plan_file("terraform-hr-release.json");
    let head = crate::log_events(&data).len();
    let (code, out) = crate::sv0_in(
        &data,
        &["whatif", "--scope", "project:HR-Automation", "--plan", plan.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(crate::log_events(&data).len(), head, "a what-if appends nothing");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["baseline_version"], 1);
    assert!(report["plan_digest"].as_str().unwrap().starts_with("sha256:"));
    let entries = report["entries"].as_array().unwrap();
    let ledgers = entries
        .iter()
        .find(|e| e["destination"]["name"].as_str().unwrap().ends_with("ledgers"))
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(ledgers["kind"], "new_sensitive_path");
    assert_eq!(ledgers["permissions"], serde_json::json!(["read", "write", "delete"]));
    assert_eq!(ledgers["grade"], "C");
    assert_eq!(ledgers["flagged"], true);
    assert_eq!(ledgers["intent"], "unintended");
    assert_eq!(ledgers["caused_by"], serde_json::json!(["module.hr_agent.azurerm_role_assignment.finance_ledgers"]));
    assert_eq!(report["disposition"]["decision"], "requires_review");
    assert!(
        report["findings_opened"].as_array().unwrap().iter().any(|f| f["rule_id"] == "SV0-P001"),
        "a sensitive write would open: {report:#}"
    );
    assert!(
        report["findings_opened"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "SV0-E002" && f["summary"].as_str().unwrap().contains("sp-hr-doc-indexer")),
        "a two-year secret would open a long-lived secret finding: {report:#}"
    );
    let (code, text) =
        crate::sv0_in(&data, &["whatif", "--scope", "project:HR-Automation", "--plan", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("module.hr_agent.azurerm_role_assignment.finance_ledgers"), "{text}");
    assert!(text.contains("aws_s3_bucket.logs"), "skipped resources are listed: {text}");

    // Removals are predicted too, with the resource that deletes them.
    let finance: serde_json::Value = serde_json::from_str(
        &crate::sv0_in(
            &data,
            &["whatif", "--scope", "project:Finance-Ops", "--plan", plan.to_str().unwrap(), "--json"],
        )
        .1,
    )
    .unwrap();
    assert!(finance["baseline_version"].is_null(), "never approved: against its paths now");
    let removed: Vec<&serde_json::Value> =
        finance["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "removed_path").collect();
    assert_eq!(removed.len(), 1, "{finance:#}");
    assert_eq!(removed[0]["workload"]["name"], "Finance Reconciler");
    assert_eq!(removed[0]["caused_by"], serde_json::json!(["azurerm_role_assignment.old_reader"]));

    // The deployment happens (the demo's, which grants the same ledgers access): the predicted
    // path is the real one, id for id.
    let deployment = dir.join("deployment.json");
    std::fs::write(&deployment, demo_snapshot(DEMO_SNAPSHOTS[1])).unwrap();
    assert_eq!(crate::sv0_in(&data, &["scan", "import", deployment.to_str().unwrap()]).0, 0);
    let delta: serde_json::Value =
        serde_json::from_str(&crate::sv0_in(&data, &["delta", "--scope", "project:HR-Automation", "--json"]).1)
            .unwrap();
    assert!(
        delta["delta"].as_array().unwrap().iter().any(|e| e["path_id"] == ledgers["path_id"]),
        "the predicted path id is the deployed one: {delta:#}"
    );

    // A plan SV0 cannot read changes nothing and says why.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, br#"{"format_version": "2.0"}"#).unwrap();
    let (code, out) =
        crate::sv0_in(&data, &["whatif", "--scope", "project:HR-Automation", "--plan", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("format 1.x"), "{out}");
}

#[test]
fn approving_with_the_plan_declares_what_it_predicts_and_the_delta_tells_planned_from_unplanned() {
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("sv0.toml"), "[identity]\nprincipal = \"riley@contoso.example\"\n").unwrap();
    let import = |n: usize| {
        let file = dir.join(&format!("scan-{n}.json"));
        std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[n])).unwrap();
        let (code, out) = crate::sv0_in(&data, &["scan", "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
    };
    import(0);
    let plan = plan_file("terraform-hr-release.json");
    let (code, out) = crate::sv0_in(
        &data,
        &[
            "approve",
            "--scope",
            "project:HR-Automation",
            "--note",
            "release 42 as planned",
            "--plan",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 planned addition(s) declared as intent") && out.contains("2 resource(s) skipped"), "{out}");
    let approval = crate::log_events(&data)
        .into_iter()
        .rfind(|e| matches!(e.payload, sv0_domain::events::EventPayload::ApprovalRecorded(_)))
        .unwrap();
    let sv0_domain::events::EventPayload::ApprovalRecorded(recorded) = approval.payload else { unreachable!() };
    let digest = sv0_service::whatif::plan_digest(&std::fs::read(&plan).unwrap());
    assert_eq!(recorded.plan_digest.as_deref(), Some(digest.as_str()));
    let intent = recorded.intent.unwrap();
    assert_eq!(intent.len(), 1);
    assert_eq!(intent[0].planned_by.as_deref(), Some("module.hr_agent.azurerm_role_assignment.finance_ledgers"));

    // The demo's deployment: the planned ledgers write is intended; the invoices write and the
    // Graph reads were not in the plan.
    import(1);
    let (_, out) = crate::sv0_in(&data, &["delta", "--scope", "project:HR-Automation", "--json"]);
    let delta: serde_json::Value = serde_json::from_str(&out).unwrap();
    let status = |suffix: &str| -> String {
        delta["delta"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["destination"]["name"].as_str().unwrap().ends_with(suffix))
            .map(|e| e["intent"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{delta:#}"))
    };
    assert_eq!(status("ledgers"), "intended");
    assert_eq!(status("invoices"), "unintended");
    assert_eq!(status("/people"), "unintended");
    assert!(delta["planned_missing"].as_array().unwrap().is_empty());

    // The remediation rescan removes both Finance writes: the planned one is now missing.
    let file = dir.join("remediation.json");
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[2])).unwrap();
    let (code, out) = crate::sv0_in(&data, &["scan", "import", file.to_str().unwrap(), "--trigger", "remediation"]);
    assert_eq!(code, 0, "{out}");
    let (_, text) = crate::sv0_in(&data, &["delta", "--scope", "project:HR-Automation"]);
    assert!(text.contains("1 planned addition(s) that did not appear"), "{text}");
    assert!(text.contains("module.hr_agent.azurerm_role_assignment.finance_ledgers"), "{text}");
}
