//! `sv0 bench`: throughput of the whole loop on a synthetic tenant of a chosen size, in a
//! temporary data directory on the embedded log. Each stage is timed separately so that the
//! figures can be compared with the machine's limits (docs/performance.md).

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::ScanTrigger;
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_projections::PathFilter;
use sv0_service::Service;
use sv0_service::import::{parse_snapshot, scan_events};
use sv0_synth::synthetic::synthetic_snapshot;

use crate::render;

struct Measurement {
    stage: &'static str,
    seconds: f64,
    count: f64,
    unit: &'static str,
}

fn stages_json(m: &[Measurement]) -> Vec<serde_json::Value> {
    m.iter().map(|x| json!({"stage": x.stage, "seconds": x.seconds, "rate": x.rate(), "unit": x.unit})).collect()
}

fn stages_table(m: &[Measurement]) -> comfy_table::Table {
    let mut table = render::table(&["Stage", "Seconds", "Throughput"]);
    for x in m {
        table.add_row(vec![x.stage.to_string(), format!("{:.4}", x.seconds), format!("{:.0} {}", x.rate(), x.unit)]);
    }
    table
}

impl Measurement {
    fn since(stage: &'static str, started: Instant, count: f64, unit: &'static str) -> Measurement {
        Measurement { stage, seconds: started.elapsed().as_secs_f64(), count, unit }
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.count / self.seconds } else { 0.0 }
    }
}

/// A Terraform JSON plan of `n` role assignments (Reader) from the identities of `scope_paths`
/// to destinations of `other_paths`: what a deployment of one project's agents would add.
fn bench_plan(
    scope_paths: &[sv0_domain::paths::AuthorityPath],
    other_paths: &[sv0_domain::paths::AuthorityPath],
    n: usize,
) -> Vec<u8> {
    let identities: Vec<&str> = scope_paths
        .iter()
        .map(|p| p.identity.id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let destinations: Vec<&str> =
        other_paths.iter().map(|p| p.destination.id.as_str()).filter(|d| d.starts_with('/')).collect();
    let changes: Vec<serde_json::Value> = (0..n)
        .filter(|_| !identities.is_empty() && !destinations.is_empty())
        .map(|i| {
            json!({
                "address": format!("module.agents.azurerm_role_assignment.bench[{i}]"),
                "module_address": "module.agents",
                "mode": "managed",
                "type": "azurerm_role_assignment",
                "name": "bench",
                "index": i,
                "provider_name": "registry.terraform.io/hashicorp/azurerm",
                "change": {
                    "actions": ["create"],
                    "before": null,
                    "after": {
                        "principal_id": identities[i % identities.len()],
                        "role_definition_name": "Reader",
                        "scope": destinations[(i * 7) % destinations.len()],
                    },
                    "after_unknown": {"id": true, "name": true, "role_definition_id": true},
                },
            })
        })
        .collect();
    serde_json::to_vec(&json!({"format_version": "1.2", "resource_changes": changes})).unwrap_or_default()
}

/// Runs the benchmark for a tenant of about `paths` paths.
pub async fn run(paths: usize, skip_replay: bool, json_out: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("sv0-bench-{}-{paths}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&dir, paths, skip_replay, json_out, out).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The connector pipeline on a synthetic tenant of `identities` identities: vendor JSON read
/// and converted from an export directory, validated, then imported and folded into paths.
pub async fn vendor(identities: usize, json_out: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("sv0-bench-vendor-{}-{identities}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = measure_vendor(&dir, identities, json_out, out).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure_vendor(
    dir: &std::path::Path,
    identities: usize,
    json_out: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    use sv0_connectors::{ConnectorKind, NoProgress, Settings, source::ExportDir, source::Source};
    let export = dir.join("export");
    let mut m = Vec::new();
    let t = Instant::now();
    let written = sv0_synth::vendor_export::write(&export, identities, 42)?;
    m.push(Measurement::since(
        "write the vendor export (not part of the pipeline)",
        t,
        written.bytes as f64 / 1e6,
        "MB/s",
    ));

    let started = Instant::now();
    let settings = Settings {
        tenant: TenantId::new(sv0_synth::synthetic::TENANT)?,
        azure_tenant_id: None,
        observed_at: Timestamp::parse(sv0_synth::synthetic::OBSERVED_AT)?,
        trigger: ScanTrigger::Manual,
        evidence_days: 30,
        subscriptions: Vec::new(),
        log_analytics_workspaces: Vec::new(),
        servicenow_classification: Default::default(),
        servicenow_host: Some("contoso.service-now.com".into()),
        tracking: None,
    };
    let kinds = [ConnectorKind::Entra, ConnectorKind::AzureRbac, ConnectorKind::ServiceNow, ConnectorKind::Foundry];
    let source = Source::Export(ExportDir::open(&export)?);
    let scan = sv0_connectors::scan(&kinds, &source, &settings, std::sync::Arc::new(NoProgress)).await?;
    m.push(Measurement::since("read + convert vendor JSON (4 connectors)", started, written.items as f64, "items/s"));
    let t = Instant::now();
    let snapshot = scan.snapshot.validate()?;
    let entities = snapshot.entities.len();
    m.push(Measurement::since("validate the snapshot", t, entities as f64, "entities/s"));
    let t = Instant::now();
    let mut service = Service::open(&dir.join("data")).await?;
    let report = service.import_parsed(snapshot, None, None).await?;
    let paths = report.scan.as_ref().map_or(0, |s| s.paths_total);
    m.push(Measurement::since("import: encode, append, fold into paths", t, paths as f64, "paths/s"));
    let total = started.elapsed().as_secs_f64();
    if json_out {
        let doc = json!({
            "identities": written.identities,
            "vendor_items": written.items,
            "vendor_bytes": written.bytes,
            "entities": entities,
            "paths": paths,
            "vendor_json_to_paths_seconds": total,
            "stages": stages_json(&m),
        });
        crate::output::print_json(out, &doc)?;
    } else {
        writeln!(
            out,
            "vendor-format tenant: {} identities, {} items in {} files ({:.1} MB) → {entities} entities, {paths} paths",
            written.identities,
            written.items,
            written.files,
            written.bytes as f64 / 1e6
        )?;
        writeln!(out, "{}", stages_table(&m))?;
        writeln!(out, "vendor JSON to materialised paths: {total:.1} s")?;
    }
    Ok(crate::EXIT_OK)
}

async fn measure(
    dir: &std::path::Path,
    paths: usize,
    skip_replay: bool,
    json_out: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let mut m = Vec::new();
    // The rescan is the same tenant a day later with 1 % of its grants changed (what
    // `sv0 synth --rescan-of FILE --change 1%` writes).
    let at = Timestamp::parse(sv0_synth::synthetic::OBSERVED_AT)?;
    let base = sv0_synth::synthetic::tenant(paths, 42, at)?;
    let second = sv0_synth::synthetic::rescan(&base, 1.0, 1, at.add_days(1))?;
    // A further 1 % a day later, sent as a delta of the rescan (its base scan id is known once
    // the rescan is imported).
    let third = sv0_synth::synthetic::rescan(&second, 1.0, 2, at.add_days(2))?;
    let mut delta_scan = third.delta_since(&second, "");
    // Right after it (the same observed time, as a deployment's rescan minutes later: no
    // evidence leaves the window meanwhile), the 1,000-path workload alone rescanned with 1 %
    // of its grants changed.
    let heavy_workload = sv0_synth::synthetic::targeted(&third, "workload-0000000");
    let targeted = sv0_synth::synthetic::rescan(&heavy_workload, 1.0, 3, at.add_days(2))?;
    // Three more of them, once fifty more projects are baselined: the first (not timed) computes
    // every new scope's first assessment, which leaves its memo; the second assesses only the
    // scopes it reaches (scope memos), the third every scope afresh.
    let warm_rescan = sv0_synth::synthetic::rescan(&targeted, 1.0, 4, at.add_days(2))?;
    let memo_rescan = sv0_synth::synthetic::rescan(&warm_rescan, 1.0, 5, at.add_days(2))?;
    let fresh_rescan = sv0_synth::synthetic::rescan(&memo_rescan, 1.0, 6, at.add_days(2))?;
    drop((third, heavy_workload));
    let second = serde_json::to_vec(&second)?;
    let first = serde_json::to_vec(&base)?;
    drop(base);
    let mut service = Service::open(dir).await?;
    let max = service.log().max_event_size();

    let t = Instant::now();
    let snapshot = parse_snapshot(&first)?;
    let entities = snapshot.entities.len();
    m.push(Measurement::since("parse + validate snapshot", t, entities as f64, "entities/s"));
    let t = Instant::now();
    let scan = scan_events(snapshot, None, max, None)?;
    let events = scan.events.len();
    let bytes: usize = scan.events.iter().map(|e| e.data.len()).sum();
    m.push(Measurement::since("encode scan events (canonical CBOR)", t, bytes as f64 / 1e6, "MB/s"));
    let t = Instant::now();
    // On the tenant's scan subject, as `sv0 scan import` appends: the fold ignores an event on a
    // subject its tenant does not own.
    let subject = format!("{}.scan", sv0_synth::synthetic::TENANT);
    service.log().append(&subject, Expected::Any, scan.events).await?;
    m.push(Measurement::since("append to embedded log (1 txn, fsync)", t, bytes as f64 / 1e6, "MB/s"));
    let t = Instant::now();
    service.catch_up().await?;
    let tenant = TenantId::new(sv0_synth::synthetic::TENANT)?;
    let total_paths = service.views().tenant_state(&tenant)?.map_or(0, |s| s.paths_total);
    m.push(Measurement::since("fold first scan into views", t, total_paths as f64, "paths/s"));
    let t = Instant::now();
    let sealed = service.seal_pending().await?;
    service.catch_up().await?;
    m.push(Measurement::since("seal scan assessment", t, sealed as f64, "packs/s"));

    let scope = Scope::parse("project:project-0000")?;
    let project = PathFilter { scope: Some(scope.clone()), ..PathFilter::default() };
    m.push(mean_query(service.views(), &tenant, "query: one project's paths (scope index)", &project)?);
    let workload = PathFilter { workload: Some("workload-0000000".to_string()), ..PathFilter::default() };
    m.push(mean_query(service.views(), &tenant, "query: one workload's paths", &workload)?);
    let domain =
        PathFilter { domain: Some("finance".to_string()), grade: Some("A".to_string()), ..PathFilter::default() };
    m.push(mean_query(service.views(), &tenant, "query: grade A into one domain (class index)", &domain)?);
    let t = Instant::now();
    let review = service.review(&tenant, &scope)?;
    m.push(Measurement::since(
        "review document of one project (posture digest)",
        t,
        review.paths.len() as f64,
        "paths/s",
    ));
    let t = Instant::now();
    let everything = service.posture(&tenant, &Scope::parse("all")?)?;
    m.push(Measurement::since(
        "posture digest of the whole tenant (scope all)",
        t,
        everything.paths.len() as f64,
        "paths/s",
    ));
    drop(everything);
    let t = Instant::now();
    let approval = service
        .approve(&tenant, &scope, "bench", Vec::new(), "bench@example.com", Timestamp::parse("2026-03-02T10:00:00Z")?)
        .await?;
    m.push(Measurement::since("approve one project (fold + seal)", t, approval.baseline.paths.len() as f64, "paths/s"));
    // The heavy workload (1,000 paths) as a scope of its own, for the delta of a 1,000-path scope.
    let heavy = Scope::parse("workload:workload-0000000")?;
    service
        .approve(&tenant, &heavy, "bench", Vec::new(), "bench@example.com", Timestamp::parse("2026-03-02T10:00:00Z")?)
        .await?;

    // Every workload and path rule over the stored paths, workload by workload (what a full
    // evaluation reads and decides, without writing).
    let t = Instant::now();
    let mut evaluated = 0usize;
    let mut found = 0usize;
    for workload in service.views().workloads(&tenant)? {
        let filter = PathFilter { workload: Some(workload.id.clone()), ..PathFilter::default() };
        let paths = service.views().query_paths(&tenant, &filter)?;
        evaluated += paths.len();
        found += sv0_domain::findings::workload_findings(&paths).len();
    }
    m.push(Measurement::since(
        "rules: every workload and path rule over the stored paths",
        t,
        evaluated as f64,
        "paths/s",
    ));
    // A policy event with the same policy: the fold recomputes every path and decides every
    // finding again (workload, path, identity, credential, destination rules).
    let t = Instant::now();
    service
        .set_policy(
            &tenant,
            Ok,
            &sv0_domain::events::Actor::host("bench@example.com"),
            Timestamp::parse("2026-03-02T11:00:00Z")?,
        )
        .await?;
    m.push(Measurement::since(
        "full re-evaluation: every path and finding (policy event)",
        t,
        total_paths as f64,
        "paths/s",
    ));

    let t = Instant::now();
    let report = service.import_snapshot(&second, Some(ScanTrigger::Deployment)).await?;
    let changed = service.delta(&tenant, &scope)?.entries.len();
    m.push(Measurement::since("rescan, 1% of grants moved (import + fold + seal)", t, total_paths as f64, "paths/s"));
    let t = Instant::now();
    let delta = service.delta(&tenant, &scope)?;
    m.push(Measurement::since("delta of one project", t, delta.entries.len().max(1) as f64, "entries/s"));
    let t = Instant::now();
    let heavy_delta = service.delta(&tenant, &heavy)?;
    m.push(Measurement::since(
        "delta + disposition of one 1,000-path workload scope",
        t,
        heavy_delta.paths.len() as f64,
        "paths/s",
    ));
    m.extend(page_stages(&mut service, &tenant, &heavy).await?);
    let plan = bench_plan(&delta.paths, &heavy_delta.paths, 50);
    let t = Instant::now();
    let whatif = service.whatif(&tenant, &scope, &plan)?;
    m.push(Measurement::since(
        "what-if: a 50-resource Terraform plan on one project",
        t,
        whatif.changes.len() as f64,
        "resources/s",
    ));
    if let Some(coverage) = delta_scan.scan.coverage.as_mut() {
        coverage.base_scan = Some(report.scan_id.clone());
    }
    let sent = (delta_scan.grants.len() + delta_scan.deleted.len(), "changes/s");
    let stage = "delta scan, 1% of grants moved (import + fold + seal)";
    m.push(applied_scan(&mut service, delta_scan, ScanTrigger::Scheduled, stage, sent).await?);
    let grants = (targeted.grants.len(), "grants/s");
    let stage = "targeted rescan of the 1,000-path workload (import + fold + seal)";
    m.push(applied_scan(&mut service, targeted, ScanTrigger::Deployment, stage, grants).await?);
    m.extend(many_scopes(&mut service, &tenant, [warm_rescan, memo_rescan, fresh_rescan]).await?);

    if !skip_replay {
        let head = service.log().head().await?;
        let t = Instant::now();
        let (_, replayed) = service.replay(sv0_service::AsOf::Position(head)).await?;
        m.push(Measurement::since("replay whole log into memory", t, head as f64, "events/s"));
        drop(replayed);
    }
    let t = Instant::now();
    let verdicts = service.verify(Some(&tenant), sv0_service::VerifyMode::Quick).await?.chains;
    let packs = verdicts.first().and_then(|v| v.result.as_ref().ok()).map_or(0, |r| r.packs);
    m.push(Measurement::since("verify --quick: chain on the log against the views", t, packs as f64, "packs/s"));

    m.extend(signing_stages(dir)?);

    // The pack transparency log at a million leaves: building it, then inclusion and
    // consistency proofs (each verified, outside the timing).
    let t = Instant::now();
    let tree = sv0_signer::merkle::Tree::from_leaf_hashes(
        (0..1_000_000u32).map(|n| sv0_signer::merkle::leaf_hash(&n.to_be_bytes())),
    );
    m.push(Measurement::since("transparency log: build a 1M-leaf tree", t, 1e6, "leaves/s"));
    let size = tree.size();
    let indexes: Vec<u64> = (0..1_000u64).map(|n| n * 997 % size).collect();
    let t = Instant::now();
    let proofs: Vec<_> =
        indexes.iter().map(|&i| tree.inclusion_proof(i, size)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
    m.push(Measurement::since("transparency log: inclusion proof, 1M leaves", t, proofs.len() as f64, "proofs/s"));
    let t = Instant::now();
    let consistency: Vec<_> = (1..=1_000u64)
        .map(|n| tree.consistency_proof(n * 999, size))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    m.push(Measurement::since(
        "transparency log: consistency proof, 1M leaves",
        t,
        consistency.len() as f64,
        "proofs/s",
    ));
    let root = tree.root();
    for (i, path) in indexes.iter().zip(&proofs) {
        sv0_signer::merkle::verify_inclusion(*i, size, &tree.leaf(*i).unwrap_or_default(), path, &root)
            .map_err(anyhow::Error::msg)?;
    }
    drop(tree);

    // What the files take on disk once closed: closing compacts views that this run grew
    // (sv0_log::file), as every command that writes them does.
    let (log_path, views_path) = (service.data_dir().log_path(), service.data_dir().views_path());
    let t = Instant::now();
    drop(service);
    m.push(Measurement::since("close (compacts the views)", t, 1.0, "closes/s"));
    let disk_use = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| sv0_log::file::disk_use(&m));
    let (log_size, views_size) = (disk_use(&log_path), disk_use(&views_path));
    // Where the views' pages go, table by table (opened again once closed and compacted).
    let tables = sv0_projections::Views::open(&views_path)?.table_bytes()?;
    if json_out {
        let stages = stages_json(&m);
        let doc = json!({
            "paths": total_paths,
            "entities": entities,
            "scan_events": events,
            "scan_bytes": bytes,
            "rescan_delta_entries": changed,
            "findings_of_workload_and_path_rules": found,
            "rescan_chunks": report.chunk_count,
            "log_bytes": log_size,
            "views_bytes": views_size,
            "views_table_bytes": tables.iter().map(|(name, bytes)| json!({ "table": name, "bytes": bytes })).collect::<Vec<_>>(),
            "peak_rss_bytes": peak_rss(),
            "stages": stages,
        });
        crate::output::print_json(out, &doc)?;
    } else {
        writeln!(
            out,
            "synthetic tenant: {total_paths} paths, {entities} entities, scan of {events} events / {:.1} MB; log {:.1} MB, views {:.1} MB",
            bytes as f64 / 1e6,
            log_size as f64 / 1e6,
            views_size as f64 / 1e6
        )?;
        let largest: Vec<String> =
            tables.iter().take(10).map(|(name, bytes)| format!("{name} {:.1}", *bytes as f64 / 1e6)).collect();
        writeln!(out, "views by table (MB, largest ten): {}", largest.join(", "))?;
        writeln!(out, "{}", stages_table(&m))?;
        writeln!(out, "the rescan changed {changed} path entries in the benchmarked project")?;
        if let Some(rss) = peak_rss() {
            writeln!(out, "peak RSS of the whole bench: {:.2} GiB", rss as f64 / f64::from(1u32 << 30))?;
        }
    }
    let intact = verdicts.iter().all(|v| v.result.is_ok());
    anyhow::ensure!(intact, "the chain did not verify");
    Ok(crate::EXIT_OK)
}

/// Up to fifty more projects baselined, then three targeted rescans of the 1,000-path workload:
/// `warm` (not timed) gives each new scope its first assessment and memo; `memo` takes the
/// assessments of the scopes it does not reach from their memos; `fresh` assesses every
/// baselined scope afresh (what every rescan did before scope memos).
async fn many_scopes(
    service: &mut Service<sv0_log::EmbeddedLog>,
    tenant: &TenantId,
    [warm, memo, fresh]: [sv0_domain::snapshot::Snapshot; 3],
) -> anyhow::Result<Vec<Measurement>> {
    let projects: std::collections::BTreeSet<String> =
        service.views().workloads(tenant)?.into_iter().filter_map(|w| w.project).collect();
    let at = Timestamp::parse("2026-03-03T10:00:00Z")?;
    for project in projects.iter().filter(|p| *p != "project-0000").take(50) {
        let scope = Scope::parse(&format!("project:{project}"))?;
        service.approve(tenant, &scope, "bench", Vec::new(), "bench@example.com", at).await?;
    }
    let scopes = service.views().baselines(tenant)?.len();
    let grants = (warm.grants.len(), "grants/s");
    applied_scan(service, warm, ScanTrigger::Deployment, "targeted rescan, first after the approvals", grants).await?;
    let mut m = Vec::new();
    let grants = (memo.grants.len(), "grants/s");
    let stage = "targeted rescan, 1,000-path workload, more scopes baselined (scope memos)";
    m.push(applied_scan(service, memo, ScanTrigger::Deployment, stage, grants).await?);
    sv0_projections::set_scope_memos(false);
    let grants = (fresh.grants.len(), "grants/s");
    let stage = "the same, every baselined scope assessed afresh";
    let afresh = applied_scan(service, fresh, ScanTrigger::Deployment, stage, grants).await;
    sv0_projections::set_scope_memos(true);
    m.push(afresh?);
    tracing::info!(scopes, "scopes baselined for the targeted rescans");
    Ok(m)
}

/// Imports `snapshot` as a scan that must be applied, timed as `stage` (`count` of `unit`).
async fn applied_scan(
    service: &mut Service<sv0_log::EmbeddedLog>,
    snapshot: sv0_domain::snapshot::Snapshot,
    trigger: ScanTrigger,
    stage: &'static str,
    (count, unit): (usize, &'static str),
) -> anyhow::Result<Measurement> {
    let t = Instant::now();
    let applied = service.import_parsed(snapshot.validate()?, Some(trigger), None).await?;
    anyhow::ensure!(
        applied.scan.as_ref().is_some_and(|s| s.status == sv0_projections::ScanStatus::Applied),
        "{stage}: the scan was not applied: {:?}",
        applied.scan
    );
    Ok(Measurement::since(stage, t, count as f64, unit))
}

/// This process's peak resident set size (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The review screens as a browser asks for them, through the server's router and a signed-in
/// session: the Overview and the Exposure Brief of the 1,000-path scope, each the 95th
/// percentile of 20 requests after a first one, which is timed on its own: it finds no
/// cached facts, as the first request after the log moved does.
async fn page_stages(
    service: &mut Service<sv0_log::EmbeddedLog>,
    tenant: &TenantId,
    heavy: &Scope,
) -> anyhow::Result<Vec<Measurement>> {
    use tower::ServiceExt as _;
    const RUNS: usize = 20;
    let actor = sv0_domain::events::Actor::host("bench@example.com");
    let roles = vec![sv0_domain::access::Role::Approver];
    let issued = service.issue_token(tenant, "bench-reviewer", "bench@example.com", roles, None, &actor).await?;
    let state = std::sync::Arc::new(sv0_api::ApiState::new(service));
    let (session, _) = state.sessions.open(issued.token).map_err(|p| anyhow::anyhow!(p.detail))?;
    let router = sv0_api::router(std::sync::Arc::clone(&state));
    let brief = format!("/scopes/{}", heavy.canonical());
    let mut out = Vec::new();
    for (first, stage, uri) in [
        ("screen: Overview, first request (cold)", "screen: Overview, p95 of 20 (HTML)", "/"),
        (
            "screen: Exposure Brief, first request (cold)",
            "screen: Exposure Brief of the 1,000-path scope, p95 of 20",
            brief.as_str(),
        ),
    ] {
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let request = axum::http::Request::get(uri)
                .header("cookie", format!("sv0_session={session}"))
                .body(axum::body::Body::empty())?;
            let t = Instant::now();
            let response = router.clone().oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            anyhow::ensure!(status == 200, "{uri} answered {status}: {}", String::from_utf8_lossy(&body));
            let seconds = t.elapsed().as_secs_f64();
            if run == 0 {
                out.push(Measurement { stage: first, seconds, count: 1.0, unit: "pages/s" });
            } else {
                times.push(seconds);
            }
        }
        times.sort_by(f64::total_cmp);
        let p95 = times[(times.len() * 95).div_ceil(100) - 1];
        out.push(Measurement { stage, seconds: p95, count: 1.0, unit: "pages/s" });
    }
    Ok(out)
}

/// Times a path query (the mean of several runs, after one warm-up run).
fn mean_query(
    views: &sv0_projections::Views,
    tenant: &TenantId,
    stage: &'static str,
    filter: &PathFilter,
) -> anyhow::Result<Measurement> {
    const RUNS: u32 = 20;
    let found = views.query_paths(tenant, filter)?.len();
    let t = Instant::now();
    for _ in 0..RUNS {
        std::hint::black_box(views.query_paths(tenant, filter)?);
    }
    let seconds = t.elapsed().as_secs_f64() / f64::from(RUNS);
    Ok(Measurement { stage, seconds, count: found as f64, unit: "paths/s" })
}

/// Writes a synthetic snapshot to a file, for other tools.
pub fn write_snapshot(paths: usize, file: &std::path::Path) -> anyhow::Result<()> {
    let snapshot = synthetic_snapshot(paths, 0, "2026-03-02T09:00:00Z")?;
    let bytes = serde_json::to_vec(&snapshot)?;
    std::fs::write(file, bytes).with_context(|| format!("cannot write {}", file.display()))
}

/// `sv0 bench --log nats://...`: raw JetStream publish rate, SV0's append rate through the
/// `EventLog` in the same run, and the projector's fold rate from JetStream into redb.
pub async fn run_jetstream(
    url: &str,
    replicas: usize,
    events: usize,
    json_out: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    use sv0_domain::events::{Event, EventMeta, EventPayload, KeyRegistered};
    use sv0_log_nats::{Credentials, JetStreamLog, StreamSettings};

    let settings = StreamSettings { replicas, ..StreamSettings::default() };
    let log = JetStreamLog::connect(url, Credentials::from_env(), settings).await?;
    anyhow::ensure!(
        log.head().await? == 0,
        "the log at {url} already holds events: point `sv0 bench --log` at a scratch server, it appends benchmark events"
    );
    let size = 300;
    let mut m = Vec::new();

    let raw = sv0_log_nats::bench::raw_publish(log.context(), replicas, events, size, 1024).await?;
    m.push(Measurement {
        stage: "raw JetStream publish (async-nats, Nats-Msg-Id, 1024 in flight)",
        seconds: raw.as_secs_f64(),
        count: events as f64,
        unit: "events/s",
    });

    // Real events of about the same size, so that the projector can fold them afterwards.
    let tenant = TenantId::new("bench")?;
    let mut batch = Vec::with_capacity(events);
    for n in 0..events {
        let event = Event {
            meta: EventMeta {
                event_id: sv0_domain::EventId::derive("sv0.bench.v1", &[&(n as u64).to_be_bytes()]),
                tenant_id: tenant.clone(),
                occurred_at: Timestamp(0),
                actor: "system:bench".to_string(),
                causation_id: None,
                correlation_id: None,
                credential: None,
            },
            payload: EventPayload::KeyRegistered(KeyRegistered {
                key_id: format!("{n:064x}"),
                algorithm: "ed25519".to_string(),
                public_key: format!("{:064x}", n as u64 * 7),
                valid_from: None,
            }),
        };
        batch.push(sv0_service::import::new_event(&event)?);
    }
    let bytes: usize = batch.iter().map(|e| e.data.len()).sum();
    let t = Instant::now();
    for chunk in batch.chunks(1024) {
        log.append("bench.key", Expected::Any, chunk.to_vec()).await?;
    }
    m.push(Measurement::since("SV0 EventLog::append, batches of 1024 (no expectation)", t, events as f64, "events/s"));
    let ratio = m[1].rate() / m[0].rate().max(1.0);

    let dir = std::env::temp_dir().join(format!("sv0-bench-js-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let views = sv0_projections::Views::open(dir.join("views.redb"))?;
    let t = Instant::now();
    let reached = views.catch_up(&log, None).await?;
    m.push(Measurement::since("projector fold from JetStream into redb (key events)", t, reached as f64, "events/s"));

    // The same views, already at the log's head, fold the scan: only the scan is timed.
    drop(views);
    let target = crate::backend::LogTarget::JetStream { url: url.to_string(), replicas };
    let mut service = crate::backend::open(&dir, &target).await?.without_sealing();
    let snapshot = serde_json::to_vec(&synthetic_snapshot(10_000, 0, "2026-03-02T09:00:00Z")?)?;
    let t = Instant::now();
    let report = service.import_snapshot(&snapshot, None).await?;
    let paths = report.scan.map_or(0, |s| s.paths_total);
    m.push(Measurement::since("import + fold a 10k-path scan from JetStream", t, paths as f64, "paths/s"));
    let _ = std::fs::remove_dir_all(&dir);

    if json_out {
        let stages = stages_json(&m);
        let doc = json!({
            "server": log.server_version().to_string(),
            "events": events,
            "event_bytes": bytes / events.max(1),
            "append_to_raw_ratio": ratio,
            "stages": stages,
        });
        crate::output::print_json(out, &doc)?;
    } else {
        writeln!(
            out,
            "nats-server {} ({replicas} replica(s)), {events} events of ~{} bytes",
            log.server_version(),
            bytes / events.max(1)
        )?;
        writeln!(out, "{}", stages_table(&m))?;
        writeln!(out, "SV0 appends at {:.0} % of the raw publish rate", ratio * 100.0)?;
    }
    Ok(crate::EXIT_OK)
}

/// Packs signed and verified against the raw ed25519 rate of the same run: raw signatures of a
/// pack-sized message, sealing small packs (canonical JSON, SHA-256, ed25519 over the PAE), and
/// verifying a 100k-pack chain offline (every digest, link and signature).
fn signing_stages(dir: &std::path::Path) -> anyhow::Result<Vec<Measurement>> {
    use sv0_domain::assessment::{Assessment, AssessmentKind};
    let mut m = Vec::new();
    let signer = sv0_signer::PackSigner::load_or_create(&dir.join("bench-keys"))?;
    let message = vec![0x5a; 600];
    let t = Instant::now();
    for _ in 0..20_000 {
        std::hint::black_box(signer.sign(std::hint::black_box(&message))?);
    }
    m.push(Measurement::since("ed25519: raw signatures of 600 bytes", t, 20_000.0, "signatures/s"));
    let signature = signer.sign(&message)?;
    let key = signer.verifying_key();
    let t = Instant::now();
    for _ in 0..20_000 {
        std::hint::black_box(key.verify_strict(std::hint::black_box(&message), &signature))?;
    }
    m.push(Measurement::since(
        "ed25519: raw strict verifications of 600 bytes, one core",
        t,
        20_000.0,
        "verifications/s",
    ));
    let tenant = TenantId::new("bench")?;
    let assessment = |n: u64| Assessment {
        kind: AssessmentKind::ScanAssessment,
        tenant: tenant.clone(),
        assessed_event: sv0_domain::EventId([(n % 251) as u8; 16]),
        assessed_seq: n,
        log_from: n,
        occurred_at: Timestamp(1_772_000_000_000 + n as i64),
        scan: None,
        approval: None,
    };
    let t = Instant::now();
    let mut packs = Vec::with_capacity(100_000);
    let mut previous: Option<sv0_signer::ChainLink> = None;
    for n in 1..=100_000u64 {
        let sealed = sv0_signer::seal(&assessment(n), previous.as_ref(), &signer)?;
        previous = Some(sv0_signer::ChainLink {
            index: sealed.index,
            pack_id: sealed.pack_id.clone(),
            digest: sealed.digest.clone(),
        });
        packs.push((n, sealed));
    }
    m.push(Measurement::since("seal small packs (canonical JSON + SHA-256 + ed25519)", t, 100_000.0, "packs/s"));
    let mut ring = sv0_signer::KeyRing::new();
    ring.add(signer.verifying_key());
    let t = Instant::now();
    let entries = sv0_signer::entries_from_sealed(&packs);
    m.push(Measurement::since("read 100k packs (parse each body)", t, 100_000.0, "packs/s"));
    let t = Instant::now();
    let report = sv0_signer::verify_chain(&entries, &ring).map_err(|b| anyhow::anyhow!("bench chain broken: {b}"))?;
    m.push(Measurement::since("verify a 100k-pack chain offline (read packs)", t, report.packs as f64, "packs/s"));
    Ok(m)
}
