//! Right answers on a real tenant: the connectors read the vendors' data the way the vendors
//! mean it. A Foundry + Entra + Azure tenant served in Microsoft's own wire formats
//! (`tests/data/connectors/foundry-finance`, built from the published example responses cited
//! in docs/connectors.md) is scanned before a deployment, after it and after its remediation;
//! every export file of the contoso fixture is damaged in every way a page can be damaged, and
//! no scan that read a list incompletely removes anything of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;
use sv0_connectors::source::{ExportDir, Source};
use sv0_connectors::{ConnectorKind, NoProgress, Settings};
use sv0_domain::snapshot::{ApiStatus, EntityList, ScanTrigger, Snapshot};
use sv0_domain::{TenantId, Timestamp};
use sv0_tests::TempDir;

use crate::connectors::{Fake, TENANT_ID, fake_over, sv0_process};
use crate::{repo_root, sv0_in};

const FABRIKAM: &str = "3c7f1a2e-5b9d-4e6a-8f0c-1d2e3f4a5b6c";
const SUBSCRIPTION: &str = "/subscriptions/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/resourcegroups/rg-payments-ai";
const PROJECT_MI: &str = "b2f3d4e5-1111-4c6d-9e7f-8091a2b3c4d5";
const SYNC_SP: &str = "d4a5b6c7-2222-4d8e-9f0a-1b2c3d4e5f60";
const SCOPE: &str = "project:payments-agents";

fn finance(state: &str) -> Vec<PathBuf> {
    let root = repo_root().join("tests/data/connectors/foundry-finance");
    vec![root.join(state), root.join("common")]
}

/// The lower-case id of a role assignment of the fixture.
fn assignment(scope: &str, name: &str) -> String {
    format!("{SUBSCRIPTION}/providers/{scope}/providers/microsoft.authorization/roleassignments/{name}")
}

const FINANCE_ACCOUNT: &str = "microsoft.storage/storageaccounts/stfinledger";

/// A data directory for the fabrikam tenant served by `fake`.
fn fabrikam_dir(fake: &Fake) -> TempDir {
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("sv0.toml"),
        format!(
            "[identity]\nprincipal = \"ciso@fabrikam.com\"\n\n[connectors]\nazure_tenant_id = \"{FABRIKAM}\"\nauthority_url = \"{}\"\nlog_analytics_workspaces = [\"c3a1b2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d\"]\n",
            fake.url
        ),
    )
    .unwrap();
    dir
}

/// `sv0 scan run` of Entra, Azure RBAC and Foundry, live against the fake.
fn scan(fake: &Fake, dir: &Path, trigger: &str, at: &str) -> Value {
    let args = [
        "--tenant",
        "fabrikam",
        "scan",
        "run",
        "--connector",
        "entra",
        "--connector",
        "azure-rbac",
        "--connector",
        "foundry",
        "--base-url",
        fake.url.as_str(),
        "--observed-at",
        at,
        "--trigger",
        trigger,
        "--json",
    ];
    let (code, stdout, stderr) = sv0_process(dir, &args, None);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["apis"].as_array().unwrap().iter().all(|a| a["failed"] == 0), "{report:#}");
    report
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--tenant", "fabrikam"];
    all.extend_from_slice(args);
    let (code, out) = sv0_in(dir, &all);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn paths(dir: &Path) -> Vec<Value> {
    json(dir, &["paths", "--json"]).as_array().cloned().unwrap()
}

fn path<'a>(paths: &'a [Value], identity: &str, destination_suffix: &str) -> &'a Value {
    paths
        .iter()
        .find(|p| {
            p["identity"]["id"] == identity && p["destination"]["id"].as_str().unwrap().ends_with(destination_suffix)
        })
        .unwrap_or_else(|| panic!("no path of {identity} to …{destination_suffix}"))
}

fn findings(dir: &Path) -> Vec<Value> {
    json(dir, &["findings", "--all", "--json"]).as_array().cloned().unwrap()
}

fn finding<'a>(findings: &'a [Value], rule: &str, about: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["finding"]["rule_id"] == rule && f["finding"].to_string().contains(about))
        .unwrap_or_else(|| panic!("no {rule} about {about} in {findings:#?}"))
}

/// Before → after → remediated, through `sv0 scan run` against Microsoft's wire formats: the
/// deployment's second identity (a service-principal connection) and its write path into
/// Finance, the exact role assignments to remove, grades from sign-ins, the Finance domain
/// from the customer's tag, and the evidence gap of a storage account without diagnostic
/// settings.
#[test]
fn a_deployment_through_a_service_principal_connection_is_seen_graded_and_remediated() {
    let fake = fake_over(finance("before"), FABRIKAM, false);
    let dir = fabrikam_dir(&fake);
    scan(&fake, dir.path(), "manual", "2026-12-02T09:00:00Z");
    let before = paths(dir.path());
    // A managed-identity sign-in naming the model account (azureResourceId) confirms the path.
    let model = path(&before, PROJECT_MI, "/accounts/fab-payments-ai");
    assert_eq!(
        (model["grade"].as_str(), model["grade_evidence"].as_str()),
        (Some("A"), Some("signin:8c1e5a40-0d2f-4b3a-9c6e-7f8a9b0c1d00"))
    );
    // A storage account that sends its blob logs nowhere: its paths can never reach grade A.
    let scratch = path(&before, PROJECT_MI, "/stagentscratch/blobservices/default/containers/scratch");
    assert_eq!(scratch["evidence_gap"], true);
    let found = findings(dir.path());
    let gap = finding(&found, "SV0-G001", "stagentscratch/scratch");
    assert!(gap["finding"]["summary"].as_str().unwrap().contains("StorageRead"), "{gap}");
    // Hygiene the directory shows: an application nobody owns that holds a role, and an
    // assignment left behind by a deleted principal, named exactly.
    let orphan = finding(&found, "SV0-E013", "legacy-report-export");
    let legacy = format!(
        "{SUBSCRIPTION}/providers/microsoft.authorization/roleassignments/3d2e4f5a-6b7c-4180-9998-c7d6e5f40312"
    );
    assert!(orphan["finding"]["remediation"].as_array().unwrap().iter().any(|a| a["record_id"] == legacy), "{orphan}");
    let dangling = finding(&found, "SV0-E014", "dead0000-8888-4a1b-8c2d-3e4f5a6b7c8d");
    let deleted = assignment(FINANCE_ACCOUNT, "4c3d5e6f-7a8b-4291-8aa9-d8e7f6051423");
    assert_eq!(
        dangling["finding"]["remediation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["record_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [deleted.as_str()],
        "one record to delete, however many containers it reached"
    );
    let (code, out) = sv0_in(dir.path(), &["--tenant", "fabrikam", "approve", "--scope", SCOPE, "--note", "reviewed"]);
    assert_eq!(code, 0, "{out}");

    // The deployment: a tool on a ServicePrincipal connection, and two data role assignments
    // to its service principal, one on the container and one on the whole account.
    *fake.dirs.lock().unwrap() = finance("after");
    scan(&fake, dir.path(), "deployment", "2026-12-02T10:00:00Z");
    let after = paths(dir.path());
    let invoices = path(&after, SYNC_SP, "/stfinledger/blobservices/default/containers/invoices");
    assert_eq!(
        invoices["domain"]["id"], "finance",
        "DataClassification=Finance classifies the account and its containers"
    );
    assert_eq!(invoices["domain"]["sensitive"], true);
    assert_eq!(invoices["permissions"], serde_json::json!(["read", "write", "delete"]));
    // The service principal's sign-in named the storage account: A on the account, B below it.
    assert_eq!(invoices["grade"], "B", "{invoices}");
    assert_eq!(path(&after, SYNC_SP, "/storageaccounts/stfinledger")["grade"], "A");
    let container_assignment = assignment(
        &format!("{FINANCE_ACCOUNT}/blobservices/default/containers/invoices"),
        "5b4c6d7e-8f9a-43a2-9bba-e9f807162534",
    );
    let account_assignment = assignment(FINANCE_ACCOUNT, "6a5b7c8d-9e0f-44b3-acbb-fa0918273645");
    let delta = json(dir.path(), &["delta", "--scope", SCOPE, "--json"]);
    let entry = delta["delta"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path_id"] == invoices["path_id"])
        .unwrap_or_else(|| panic!("{delta:#}"));
    assert_eq!(entry["kind"], "new_sensitive_path");
    assert_eq!(entry["flagged"], true);
    let records: BTreeSet<&str> =
        entry["remediation_actions"].as_array().unwrap().iter().map(|a| a["record_id"].as_str().unwrap()).collect();
    assert_eq!(records, BTreeSet::from([container_assignment.as_str(), account_assignment.as_str()]), "{entry:#}");
    // The connection runs as the service principal its client id names: no invented API key.
    let identities: Vec<String> = after.iter().map(|p| p["identity"]["id"].as_str().unwrap().to_string()).collect();
    assert!(!identities.iter().any(|i| i.starts_with("foundry-connection:")), "{identities:?}");
    let found = findings(dir.path());
    assert!(
        !found.iter().any(|f| f["finding"]["rule_id"] == "SV0-E012"),
        "no static-key finding for an Entra connection"
    );
    assert_eq!(finding(&found, "SV0-P001", "stfinledger/invoices")["status"], "open");

    // The two assignments are removed; the remediation rescan verifies it.
    *fake.dirs.lock().unwrap() = finance("remediated");
    scan(&fake, dir.path(), "remediation", "2026-12-02T11:00:00Z");
    let remediated = paths(dir.path());
    assert!(!remediated.iter().any(|p| p["domain"]["id"] == "finance"), "{remediated:#?}");
    let found = findings(dir.path());
    assert_eq!(finding(&found, "SV0-P001", "stfinledger/invoices")["status"], "resolved");
    let delta = json(dir.path(), &["delta", "--scope", SCOPE, "--json"]);
    let entries = delta["delta"].as_array().unwrap();
    assert!(
        !entries.iter().any(|e| e["flagged"] == true && e["domain"]["id"] == "finance"),
        "nothing flagged into Finance is left: {delta:#}"
    );
    // What the deployment still adds (the connection's new service principal and its paths)
    // was approved by nobody: the baseline declared no intent, so none of it is "expected".
    let flagged: Vec<&str> =
        entries.iter().filter(|e| e["flagged"] == true).map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(flagged, ["new_identity"], "{delta:#}");
    assert!(entries.iter().all(|e| e["intent"] == "unreviewed"), "{delta:#}");
    assert_eq!(delta["verification"]["matches_baseline"], false);
}

/// Token audiences come from the cloud, and a refused token is a failed scan that names the
/// service, the scope and the identity provider's own code; nothing is imported.
#[test]
fn a_refused_token_fails_the_scan_with_the_identity_providers_words() {
    let fake = fake_over(finance("before"), FABRIKAM, false);
    *fake.refused_scope.lock().unwrap() = Some("https://api.loganalytics.io/.default".into());
    let dir = fabrikam_dir(&fake);
    let args = ["--tenant", "fabrikam", "scan", "run", "--connector", "azure-rbac", "--base-url", fake.url.as_str()];
    let (code, stdout, stderr) = sv0_process(dir.path(), &args, None);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    for expected in ["log-analytics", "https://api.loganalytics.io/.default", "AADSTS500011", "nothing was imported"] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("Trace ID"), "the trace lines are left out: {stderr}");
    assert!(!dir.path().join("log.redb").exists(), "nothing was imported");
}

/// A reader that closes the pipe early (`| head`) does not turn a finished command into an
/// error, nor stop it half-way.
#[test]
fn a_pipe_closed_early_is_not_an_error() {
    let dir = TempDir::new();
    let fixtures = repo_root().join("tests/data/connectors/contoso");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sv0"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["scan", "run", "--connector", "entra", "--connector", "azure-rbac", "--from-export"])
        .arg(&fixtures)
        .env("SV0_LOG", "embedded")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let (_, list) = sv0_in(dir.path(), &["scan", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap().as_array().map(Vec::len),
        Some(1),
        "the scan was imported: {list}"
    );
}

/// Owners' accounts and sign-in activity decide ownership; a licence Graph refuses for
/// signInActivity is recorded in coverage and takes nothing else away.
#[test]
fn owners_decay_from_their_accounts_departures_and_sign_ins() {
    let contoso = vec![repo_root().join("tests/data/connectors/contoso")];
    for refused in [false, true] {
        let fake = fake_over(contoso.clone(), TENANT_ID, false);
        if refused {
            fake.forbidden.lock().unwrap().push("graph.ownerSignInActivity");
        }
        let dir = TempDir::new();
        std::fs::write(
            dir.path().join("sv0.toml"),
            format!("[connectors]\nazure_tenant_id = \"{TENANT_ID}\"\nauthority_url = \"{}\"\n", fake.url),
        )
        .unwrap();
        let out = dir.path().join("snapshot.json");
        let args = [
            "--tenant",
            "contoso",
            "scan",
            "run",
            "--connector",
            "entra",
            "--base-url",
            fake.url.as_str(),
            "--observed-at",
            "2026-11-25T09:00:00Z",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        let (code, stdout, stderr) = sv0_process(dir.path(), &args, None);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let snapshot: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let owner = |id: &str| snapshot["owners"].as_array().unwrap().iter().find(|o| o["id"] == id).cloned().unwrap();
        let dana = owner("dana.reyes@contoso.com");
        assert_eq!(dana["status"], "departed", "employeeLeaveDateTime is before the scan: {dana}");
        assert_eq!(owner("lee.park@contoso.com")["status"], "disabled");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let activity =
            report["apis"].as_array().unwrap().iter().find(|a| a["api"] == "graph.ownerSignInActivity").unwrap();
        if refused {
            assert_eq!(activity["failed"], 1);
            assert!(activity["error"].as_str().unwrap().contains("premium license"), "{activity}");
            assert!(dana.get("last_active_at").is_none());
        } else {
            assert_eq!(dana["last_active_at"], "2026-11-14T16:41:33Z", "the latest of Graph's sign-in times");
            assert_eq!(owner("lee.park@contoso.com")["last_active_at"], "2026-03-02T09:12:00Z");
        }
        let (_, paths) = sv0_in(dir.path(), &["--tenant", "contoso", "paths", "--json"]);
        let paths: Vec<Value> = serde_json::from_str(&paths).unwrap();
        assert!(
            paths.iter().filter(|p| p["workload"]["name"] == "hr-helper-agent").all(|p| p["owner_state"] == "decayed"),
            "its only owner has left"
        );
    }
}

/// `[classification]` of sv0.toml decides which tags classify data; `sv0 policy set` records
/// it, a rule naming a new domain creates it, and a rule that could never apply is refused.
#[test]
fn the_customers_tags_classify_data_through_the_policy() {
    let fake = fake_over(finance("after"), FABRIKAM, false);
    let dir = fabrikam_dir(&fake);
    let config = std::fs::read_to_string(dir.path().join("sv0.toml")).unwrap();
    std::fs::write(
        dir.path().join("sv0.toml"),
        format!(
            "{config}\n[classification]\ntag_keys = [\"DataClassification\"]\n[classification.values]\nFinance = \"ledger\"\n\n[[classification.domain]]\nid = \"ledger\"\nname = \"General Ledger\"\nsensitive = true\n"
        ),
    )
    .unwrap();
    let (code, out) = sv0_in(dir.path(), &["--tenant", "fabrikam", "policy", "set", "--json"]);
    assert_eq!(code, 0, "{out}");
    let policy: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(policy["classification"]["tag_keys"], serde_json::json!(["DataClassification"]));
    scan(&fake, dir.path(), "manual", "2026-12-02T10:00:00Z");
    let invoices = path(&paths(dir.path()), SYNC_SP, "/containers/invoices").clone();
    assert_eq!(
        (
            invoices["domain"]["id"].as_str(),
            invoices["domain"]["name"].as_str(),
            invoices["domain"]["sensitive"].as_bool()
        ),
        (Some("ledger"), Some("General Ledger"), Some(true))
    );
    assert_eq!(invoices["classified_by"], "tag:DataClassification=Finance");

    // A policy rule naming a domain nobody defined creates it.
    let mut policy = policy;
    policy["classification_rules"] = serde_json::json!([
        {"id": "treasury", "tag": "owner", "value": "lena.fischer@fabrikam.com", "domain": "treasury"}
    ]);
    let file = dir.path().join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let (code, out) = sv0_in(dir.path(), &["--tenant", "fabrikam", "policy", "set", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let invoices = path(&paths(dir.path()), SYNC_SP, "/containers/invoices").clone();
    assert_eq!(
        (invoices["domain"]["id"].as_str(), invoices["classified_by"].as_str()),
        (Some("treasury"), Some("treasury"))
    );
    // A rule that matches what an earlier one matches would never apply: refused, nothing changes.
    policy["classification_rules"] = serde_json::json!([
        {"id": "treasury", "tag": "owner", "value": "lena.fischer@fabrikam.com", "domain": "treasury"},
        {"id": "shadowed", "tag": "owner", "value": "lena.fischer@fabrikam.com", "domain": "finance"}
    ]);
    std::fs::write(&file, policy.to_string()).unwrap();
    let (code, out) = sv0_in(dir.path(), &["--tenant", "fabrikam", "policy", "set", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("would never apply"), "{out}");
    assert_eq!(
        json(dir.path(), &["policy", "show", "--json"])["classification_rules"].as_array().map(Vec::len),
        Some(1)
    );
}

/// ServiceNow REST transactions are evidence of the integration user on the table they name.
#[test]
fn servicenow_transactions_grade_integration_users_paths() {
    let dir = TempDir::new();
    let fixtures = repo_root().join("tests/data/connectors/contoso");
    let (code, out) =
        sv0_in(dir.path(), &["scan", "run", "--connector", "servicenow", "--from-export", fixtures.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = sv0_in(dir.path(), &["--tenant", "contoso", "paths", "--json"]);
    let paths: Vec<Value> = serde_json::from_str(&out).unwrap();
    let grade = |table: &str| {
        paths
            .iter()
            .find(|p| p["destination"]["id"].as_str().unwrap().ends_with(table))
            .map(|p| p["grade"].clone())
            .unwrap()
    };
    assert_eq!(grade("/sn_hr_core_case"), "A", "a Table API call of the user on the table");
    assert_eq!(grade("/incident"), "B", "a call of the user to another API of the instance");
}

/// The contoso export read in-process: every entity of every list, with the coverage record.
fn scan_export(dir: &Path) -> Option<Snapshot> {
    let settings = Settings {
        tenant: TenantId::new("contoso").unwrap(),
        azure_tenant_id: Some(TENANT_ID.into()),
        observed_at: Timestamp::parse("2026-11-25T09:00:00Z").unwrap(),
        trigger: ScanTrigger::Manual,
        evidence_days: 30,
        subscriptions: Vec::new(),
        log_analytics_workspaces: vec!["4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d".into()],
        servicenow_classification: BTreeMap::new(),
        servicenow_host: Some("contoso.service-now.com".into()),
        tracking: None,
    };
    let kinds = [ConnectorKind::Entra, ConnectorKind::AzureRbac, ConnectorKind::ServiceNow, ConnectorKind::Foundry];
    let source = Source::Export(ExportDir::open(dir).unwrap());
    crate::block_on(sv0_connectors::scan(&kinds, &source, &settings, Arc::new(NoProgress))).ok().map(|r| r.snapshot)
}

/// Every entity id of a snapshot, by list.
fn ids(snapshot: &Snapshot) -> BTreeMap<EntityList, BTreeSet<String>> {
    let value = serde_json::to_value(snapshot).unwrap();
    EntityList::ALL
        .iter()
        .map(|list| {
            let items = value[list.name()].as_array().cloned().unwrap_or_default();
            (*list, items.iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect())
        })
        .collect()
}

/// Ways a saved page can be damaged: cut short, a record that is not one, a record without
/// (or with a wrongly typed) field, a next page announced but not saved.
fn damaged(text: &str, name: &str) -> Vec<(String, String)> {
    let mut out = vec![(format!("{name} cut in half"), text[..text.len() / 2].to_string())];
    let Ok(page) = serde_json::from_str::<Value>(text) else { return out };
    let key = ["value", "data", "result"].into_iter().find(|k| page.get(*k).is_some_and(Value::is_array));
    if let Some(key) = key {
        for (label, replacement) in
            [("null", Value::Null), ("a number", Value::from(42)), ("a string", Value::from("x"))]
        {
            let mut broken = page.clone();
            if let Some(first) = broken[key].get_mut(0) {
                *first = replacement;
                out.push((format!("{name}: the first record is {label}"), broken.to_string()));
            }
        }
        // Every field with a wrong type; every field the vendor always sends, missing.
        let api = name.split('.').take(2).collect::<Vec<_>>().join(".");
        let required: BTreeSet<&str> =
            sv0_connectors::schema::of(&api).iter().filter(|f| f.required()).map(|f| f.path()).collect();
        let fields: Vec<String> =
            page[key].get(0).and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default();
        for field in fields {
            let mut broken = page.clone();
            broken[key][0].as_object_mut().unwrap().insert(field.clone(), Value::from(7));
            out.push((format!("{name}: the first record with a number for {field}"), broken.to_string()));
        }
        for field in required {
            let mut broken = page.clone();
            let (parent, last) = field.rsplit_once('.').unwrap_or(("", field));
            let holder = if parent.is_empty() {
                broken[key].get_mut(0)
            } else {
                broken[key].get_mut(0).and_then(|r| r.pointer_mut(&format!("/{}", parent.replace('.', "/"))))
            };
            if let Some(map) = holder.and_then(Value::as_object_mut) {
                map.remove(last);
                out.push((format!("{name}: the first record without {field}"), broken.to_string()));
            }
        }
        // A next page announced, in each vendor's way, with no file for it.
        let mut more = page.clone();
        match key {
            "value" => more["@odata.nextLink"] = Value::from("https://graph.microsoft.com/v1.0/next?$skiptoken=X"),
            "data" => {
                more["has_more"] = Value::from(true);
                more["last_id"] = Value::from("zz");
            }
            _ => {}
        }
        if key != "result" && !name.contains(".2.") {
            out.push((format!("{name} announces a page that was not saved"), more.to_string()));
        }
    }
    if let Some(rows) = page.pointer("/tables/0/rows").and_then(Value::as_array)
        && !rows.is_empty()
    {
        let mut broken = page.clone();
        broken["tables"][0]["rows"][0] = Value::from(7);
        out.push((format!("{name}: a row that is not a row"), broken.to_string()));
    }
    out
}

/// No scan with a failed or incomplete read removes anything: whatever a damaged export drops
/// from a list, the coverage record says that list was read partially.
#[test]
fn no_damaged_export_removes_what_it_could_not_read() {
    let fixtures = repo_root().join("tests/data/connectors/contoso");
    let baseline = scan_export(&fixtures).expect("the intact export reads");
    let baseline_ids = ids(&baseline);
    let files: Vec<PathBuf> = {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("meta.json"))
            .collect();
        files.sort();
        files
    };
    let mut cases = 0;
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let mut variants = damaged(&text, &name);
        // The continuation of a paged list, lost.
        if !name.contains(".2.") && fixtures.join(name.replace(".json", ".2.json")).exists() {
            variants.push((format!("{name}: its second page is missing"), String::new()));
        }
        for (what, content) in variants {
            cases += 1;
            let copy = TempDir::new();
            for other in std::fs::read_dir(&fixtures).unwrap() {
                let other = other.unwrap().path();
                std::fs::copy(&other, copy.path().join(other.file_name().unwrap())).unwrap();
            }
            if what.ends_with("second page is missing") {
                std::fs::remove_file(copy.path().join(name.replace(".json", ".2.json"))).unwrap();
            } else {
                std::fs::write(copy.path().join(&name), &content).unwrap();
            }
            let Some(snapshot) = scan_export(copy.path()) else { continue };
            let coverage = snapshot.scan.coverage.clone().unwrap();
            let partial: BTreeSet<EntityList> = coverage
                .apis
                .iter()
                .filter(|a| a.status == ApiStatus::Failed)
                .flat_map(|a| a.lists.iter().copied())
                .collect();
            for (list, before) in &baseline_ids {
                let now = &ids(&snapshot)[list];
                let lost: Vec<&String> = before.difference(now).collect();
                if !lost.is_empty() && !partial.contains(list) {
                    failures
                        .push(format!("{what}: {} lost {lost:?} although every API filling it succeeded", list.name()));
                }
            }
        }
    }
    assert!(cases > 300, "{cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} damaged exports removed what they could not read:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A Terraform plan that creates a Foundry connection an agent's tool already names (an
/// `azapi_resource` of `Microsoft.CognitiveServices/accounts/projects/connections`, key
/// authentication): the what-if predicts the agent's path through it, and the scan after the
/// deployment finds that path, id for id. The plan's other Foundry resources (a project and an
/// account with system identities, a role assignment to the planned project's identity, a model
/// deployment) are modelled or listed, never dropped.
#[test]
fn a_planned_foundry_connection_is_the_path_the_scan_then_finds() {
    let root = repo_root().join("tests/data/connectors/foundry-finance");
    let staged = TempDir::new();
    // Before the deployment: the agent's new tool names `payments-ledger-sync`, which does
    // not exist yet (the agent's definition is not infrastructure; the connection is).
    let before = staged.join("before");
    std::fs::create_dir_all(&before).unwrap();
    std::fs::copy(root.join("after/foundry.agents.json"), before.join("foundry.agents.json")).unwrap();
    // The deployment creates it with a key, as the plan says.
    let after = staged.join("after");
    std::fs::create_dir_all(&after).unwrap();
    let mut connections: Value =
        serde_json::from_slice(&std::fs::read(root.join("after/foundry.connections.json")).unwrap()).unwrap();
    for c in connections["value"].as_array_mut().unwrap() {
        if c["name"] == "payments-ledger-sync" {
            c["properties"]["authType"] = "ApiKey".into();
            c["properties"].as_object_mut().unwrap().remove("credentials");
        }
    }
    std::fs::write(after.join("foundry.connections.json"), connections.to_string()).unwrap();
    std::fs::copy(root.join("after/foundry.agents.json"), after.join("foundry.agents.json")).unwrap();
    // And replaces the project's Contributor on the scratch account with Reader.
    let mut assignments: Value =
        serde_json::from_slice(&std::fs::read(root.join("before/arm.roleAssignments.json")).unwrap()).unwrap();
    for a in assignments["value"].as_array_mut().unwrap() {
        if a["name"] == "2e1f3d4c-5b6a-4079-8887-b6c5d4e3f201" {
            let new_id = a["id"].as_str().unwrap().replace("2e1f3d4c-5b6a-4079-8887-b6c5d4e3f201", SCRATCH_READER);
            a["id"] = new_id.into();
            a["name"] = SCRATCH_READER.into();
            a["properties"]["roleDefinitionId"] =
                "/subscriptions/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1".into();
        }
    }
    std::fs::write(after.join("arm.roleAssignments.json"), assignments.to_string()).unwrap();

    let fake = fake_over(vec![before, root.join("before"), root.join("common")], FABRIKAM, false);
    let dir = fabrikam_dir(&fake);
    scan(&fake, dir.path(), "manual", "2026-12-02T09:00:00Z");
    let plan = repo_root().join("tests/data/plans/terraform-foundry-connection.json");
    let report = json(dir.path(), &["whatif", "--scope", SCOPE, "--plan", plan.to_str().unwrap(), "--json"]);
    let connection = "foundry-connection:fab-payments-ai/payments-agents/payments-ledger-sync";
    let predicted: Vec<&Value> =
        report["entries"].as_array().unwrap().iter().filter(|e| e["identity"]["id"] == connection).collect();
    assert_eq!(predicted.len(), 1, "{report:#}");
    assert!(predicted[0]["kind"].as_str().unwrap().starts_with("new_"), "{report:#}");
    assert_eq!(predicted[0]["permissions"], serde_json::json!(["read", "write"]));
    assert_eq!(predicted[0]["caused_by"], serde_json::json!(["azapi_resource.ledger_sync"]));
    // The replaced assignment narrows the project's path to the scratch account.
    let scratch: Vec<&Value> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["destination"]["id"].as_str().unwrap().ends_with("/stagentscratch"))
        .collect();
    assert_eq!(scratch.len(), 1, "{report:#}");
    assert_eq!(scratch[0]["permissions"], serde_json::json!(["read"]), "{report:#}");
    assert_eq!(scratch[0]["caused_by"], serde_json::json!(["azurerm_role_assignment.scratch"]));
    let changes: Vec<(&str, &str)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["address"].as_str().unwrap(), c["resource"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("azapi_resource.ledger_sync", "foundry"),
            ("azapi_resource.review_project", "foundry"),
            ("azurerm_role_assignment.review_invoices", "role_assignment"),
            ("azurerm_role_assignment.scratch", "role_assignment"),
            ("azurerm_cognitive_account.sandbox", "foundry"),
        ],
        "{report:#}"
    );
    // The role assignment's principal is the planned project's system identity.
    assert_eq!(
        report["changes"][2]["resource"]["principal"],
        serde_json::json!({"planned": "azapi_resource.review_project"})
    );
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report:#}");
    assert_eq!(skipped[0]["address"], "azurerm_cognitive_deployment.gpt4o_mini");

    *fake.dirs.lock().unwrap() = vec![after, root.join("before"), root.join("common")];
    scan(&fake, dir.path(), "deployment", "2026-12-02T10:00:00Z");
    let found = paths(dir.path());
    let real = found.iter().find(|p| p["identity"]["id"] == connection).unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(real["path_id"], predicted[0]["path_id"], "the predicted path is the deployed one");
    assert_eq!(real["permissions"], predicted[0]["permissions"]);
    let real = found
        .iter()
        .find(|p| p["destination"]["id"].as_str().unwrap().ends_with("/stagentscratch"))
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!((&real["path_id"], &real["permissions"]), (&scratch[0]["path_id"], &scratch[0]["permissions"]));
}

const SCRATCH_READER: &str = "7b6c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d90";
