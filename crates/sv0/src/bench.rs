//! `sv0 bench`: throughput of the whole loop on a synthetic tenant of a chosen size, in a
//! temporary data directory on the embedded log. Each stage is timed separately so that the
//! figures can be compared with the machine's limits (docs/performance.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use sv0_domain::model::{
    Binding, ClassificationRule, Credential, CredentialKind, DataDomain, Destination, DestinationKind, Evidence, Grant,
    GrantSource, Identity, IdentityKind, Owner, OwnerStatus, Permission, Workload, WorkloadKind,
};
use sv0_domain::paths::PathPolicy;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{ScanInfo, ScanTrigger, Snapshot};
use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_service::Service;
use sv0_service::import::{parse_snapshot, scan_events};

use crate::render;

/// Grants (and so paths) per workload in the synthetic tenant.
const GRANTS_PER_WORKLOAD: usize = 10;
/// Workloads per project; a scope is one project.
const WORKLOADS_PER_PROJECT: usize = 100;

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A synthetic tenant with about `paths` authority paths; `variant` changes 1 % of the grants.
pub fn synthetic_snapshot(paths: usize, variant: u64, observed_at: &str) -> anyhow::Result<Snapshot> {
    let workloads = paths.div_ceil(GRANTS_PER_WORKLOAD).max(1);
    let destinations = (paths / 50).max(GRANTS_PER_WORKLOAD * 2);
    let at = Timestamp::parse(observed_at)?;
    let mut rng = Rng(42);
    let domains = [
        ("finance", "Finance", true),
        ("hr", "HR", true),
        ("pii", "Customer PII", true),
        ("directory", "Employee Directory", false),
        ("itsm", "IT Service Management", false),
        ("public", "Public", false),
    ];
    let domain_list: Vec<DataDomain> = domains
        .iter()
        .map(|(id, name, sensitive)| DataDomain { id: id.to_string(), name: name.to_string(), sensitive: *sensitive })
        .collect();
    let rules = domains
        .iter()
        .map(|(id, _, _)| ClassificationRule {
            id: format!("rule-{id}"),
            tag: "data-domain".to_string(),
            value: id.to_string(),
            domain: id.to_string(),
        })
        .collect();
    let owners: Vec<Owner> = (0..50)
        .map(|n| Owner {
            id: format!("owner-{n:02}@example.com"),
            name: format!("Owner {n}"),
            status: if n % 10 == 0 { OwnerStatus::Departed } else { OwnerStatus::Active },
            last_active_at: Some(at.add_days(-(n as i64))),
        })
        .collect();
    let kinds = [
        (DestinationKind::StorageContainer, "storage"),
        (DestinationKind::GraphApi, "graph"),
        (DestinationKind::ServicenowTable, "servicenow"),
        (DestinationKind::LlmDeployment, "aoai"),
        (DestinationKind::HttpEndpoint, "http"),
        (DestinationKind::Database, "sql"),
    ];
    let destination_list: Vec<Destination> = (0..destinations)
        .map(|n| {
            let (kind, service) = kinds[n % kinds.len()];
            Destination {
                id: format!("/subscriptions/0000/resourceGroups/rg-{}/providers/dest-{n:07}", n % 97),
                name: format!("{service}-{n:07}"),
                kind,
                service: Some(format!("{service}:{}", n % 13)),
                host: None,
                domain: None,
                egress: None,
                tags: BTreeMap::from([("data-domain".to_string(), domains[n % domains.len()].0.to_string())]),
            }
        })
        .collect();
    let mut workload_list = Vec::with_capacity(workloads);
    let mut identities = Vec::with_capacity(workloads);
    let mut credentials = Vec::with_capacity(workloads);
    let mut bindings = Vec::with_capacity(workloads);
    let mut grants = Vec::with_capacity(workloads * GRANTS_PER_WORKLOAD);
    let mut evidence = Vec::new();
    for w in 0..workloads {
        let workload_id = format!("workload-{w:07}");
        let identity_id = format!("identity-{w:07}");
        workload_list.push(Workload {
            id: workload_id.clone(),
            name: format!("Agent {w}"),
            kind: WorkloadKind::FoundryAgent,
            project: Some(format!("project-{:04}", w / WORKLOADS_PER_PROJECT)),
            tags: BTreeMap::new(),
            owners: if w % 17 == 0 { vec![] } else { vec![owners[w % owners.len()].id.clone()] },
        });
        identities.push(Identity {
            id: identity_id.clone(),
            name: format!("mi-agent-{w}"),
            kind: IdentityKind::ManagedIdentity,
            enabled: true,
            home_tenant: None,
            owners: vec![],
        });
        credentials.push(Credential {
            id: format!("secret-{w:07}"),
            identity: identity_id.clone(),
            kind: CredentialKind::Password,
            created_at: Some(at.add_days(-30)),
            expires_at: Some(at.add_days(if w % 5 == 0 { 700 } else { 60 })),
        });
        bindings.push(Binding {
            id: format!("run-as-{w:07}"),
            workload: workload_id.clone(),
            identity: identity_id.clone(),
            tool: None,
        });
        let start = rng.below(destinations);
        for g in 0..GRANTS_PER_WORKLOAD {
            let d = (start + g * 7) % destinations;
            let grant_n = w * GRANTS_PER_WORKLOAD + g;
            // The variant moves 1 % of grants to other destinations: a small rescan change.
            let d = if variant > 0 && grant_n % 100 == (variant as usize % 100) { (d + 1) % destinations } else { d };
            let permissions = match grant_n % 4 {
                0 => vec![Permission::Read, Permission::Write],
                1 => vec![Permission::Execute],
                _ => vec![Permission::Read],
            };
            grants.push(Grant {
                id: format!("/subscriptions/0000/providers/Microsoft.Authorization/roleAssignments/ra-{grant_n:09}"),
                identity: identity_id.clone(),
                destination: destination_list[d].id.clone(),
                permissions,
                source: GrantSource::AzureRoleAssignment,
                role: "Synthetic Role".to_string(),
                scope: destination_list[d].id.clone(),
            });
            if grant_n.is_multiple_of(5) {
                evidence.push(Evidence {
                    id: format!("log-{grant_n:09}"),
                    source: "storage_blob_logs".to_string(),
                    at: at.add_days(-(rng.below(60) as i64)),
                    identity: Some(identity_id.clone()),
                    workload: None,
                    destination: Some(destination_list[d].id.clone()),
                    service: None,
                });
            }
        }
    }
    Ok(Snapshot {
        schema_version: sv0_domain::snapshot::SNAPSHOT_SCHEMA_VERSION,
        tenant: TenantId::new("bench")?,
        scan: ScanInfo {
            connector: "bench".to_string(),
            observed_at: at,
            trigger: ScanTrigger::Scheduled,
            deployment: None,
        },
        domains: domain_list,
        classification_rules: rules,
        owners,
        workloads: workload_list,
        identities,
        credentials,
        destinations: destination_list,
        grants,
        bindings,
        evidence,
    })
}

struct Measurement {
    stage: &'static str,
    seconds: f64,
    count: f64,
    unit: &'static str,
}

impl Measurement {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.count / self.seconds } else { 0.0 }
    }
}

/// Runs the benchmark for a tenant of about `paths` paths.
pub async fn run(paths: usize, json_out: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("sv0-bench-{}-{paths}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&dir, paths, json_out, out).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(dir: &std::path::Path, paths: usize, json_out: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut m = Vec::new();
    let first = serde_json::to_vec(&synthetic_snapshot(paths, 0, "2026-03-02T09:00:00Z")?)?;
    let second = serde_json::to_vec(&synthetic_snapshot(paths, 1, "2026-03-03T09:00:00Z")?)?;
    let mut service = Service::open(dir).await?;
    let max = service.log().max_event_size();

    let t = Instant::now();
    let snapshot = parse_snapshot(&first)?;
    let entities = snapshot.entities.len();
    m.push(Measurement {
        stage: "parse + validate snapshot",
        seconds: t.elapsed().as_secs_f64(),
        count: entities as f64,
        unit: "entities/s",
    });
    let t = Instant::now();
    let scan = scan_events(snapshot, None, PathPolicy::default(), max)?;
    let events = scan.events.len();
    let bytes: usize = scan.events.iter().map(|e| e.data.len()).sum();
    m.push(Measurement {
        stage: "encode scan events (canonical CBOR)",
        seconds: t.elapsed().as_secs_f64(),
        count: bytes as f64 / 1e6,
        unit: "MB/s",
    });
    let t = Instant::now();
    service.log().append("bench.scan", Expected::Any, scan.events).await?;
    m.push(Measurement {
        stage: "append to embedded log (1 txn, fsync)",
        seconds: t.elapsed().as_secs_f64(),
        count: bytes as f64 / 1e6,
        unit: "MB/s",
    });
    let t = Instant::now();
    service.catch_up().await?;
    let tenant = TenantId::new("bench")?;
    let total_paths = service.views().tenant_state(&tenant)?.map_or(0, |s| s.paths_total);
    m.push(Measurement {
        stage: "fold first scan into views",
        seconds: t.elapsed().as_secs_f64(),
        count: total_paths as f64,
        unit: "paths/s",
    });
    let t = Instant::now();
    let sealed = service.seal_pending().await?;
    service.catch_up().await?;
    m.push(Measurement {
        stage: "seal scan assessment",
        seconds: t.elapsed().as_secs_f64(),
        count: sealed as f64,
        unit: "packs/s",
    });

    let scope = Scope::parse("project:project-0000")?;
    let t = Instant::now();
    let approval = service
        .approve(&tenant, &scope, "bench", Vec::new(), "bench@example.com", Timestamp::parse("2026-03-02T10:00:00Z")?)
        .await?;
    m.push(Measurement {
        stage: "approve one project (fold + seal)",
        seconds: t.elapsed().as_secs_f64(),
        count: approval.baseline.paths.len() as f64,
        unit: "paths/s",
    });

    let t = Instant::now();
    let report = service.import_snapshot(&second, Some(ScanTrigger::Deployment)).await?;
    let changed = service.delta(&tenant, &scope)?.entries.len();
    m.push(Measurement {
        stage: "rescan, 1% of grants moved (import + fold + seal)",
        seconds: t.elapsed().as_secs_f64(),
        count: total_paths as f64,
        unit: "paths/s",
    });
    let t = Instant::now();
    let delta = service.delta(&tenant, &scope)?;
    m.push(Measurement {
        stage: "delta of one project",
        seconds: t.elapsed().as_secs_f64(),
        count: delta.entries.len().max(1) as f64,
        unit: "entries/s",
    });

    let head = service.log().head().await?;
    let t = Instant::now();
    let (_, replayed) = service.replay(sv0_service::AsOf::Position(head)).await?;
    m.push(Measurement {
        stage: "replay whole log into memory",
        seconds: t.elapsed().as_secs_f64(),
        count: head as f64,
        unit: "events/s",
    });
    drop(replayed);
    let t = Instant::now();
    let verdicts = service.verify(Some(&tenant)).await?;
    let packs = verdicts.first().and_then(|v| v.result.as_ref().ok()).map_or(0, |r| r.packs);
    m.push(Measurement {
        stage: "verify chain on the log (with replay check)",
        seconds: t.elapsed().as_secs_f64(),
        count: packs as f64,
        unit: "packs/s",
    });

    let log_size = std::fs::metadata(service.data_dir().log_path()).map_or(0, |m| m.len());
    let views_size = std::fs::metadata(service.data_dir().views_path()).map_or(0, |m| m.len());
    if json_out {
        let stages: Vec<_> = m
            .iter()
            .map(|x| json!({"stage": x.stage, "seconds": x.seconds, "rate": x.rate(), "unit": x.unit}))
            .collect();
        let doc = json!({
            "paths": total_paths,
            "entities": entities,
            "scan_events": events,
            "scan_bytes": bytes,
            "rescan_delta_entries": changed,
            "rescan_chunks": report.chunk_count,
            "log_bytes": log_size,
            "views_bytes": views_size,
            "stages": stages,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "synthetic tenant: {total_paths} paths, {entities} entities, scan of {events} events / {:.1} MB; log {:.1} MB, views {:.1} MB",
            bytes as f64 / 1e6,
            log_size as f64 / 1e6,
            views_size as f64 / 1e6
        )?;
        let mut table = render::table(&["Stage", "Seconds", "Throughput"]);
        for x in &m {
            table.add_row(vec![
                x.stage.to_string(),
                format!("{:.3}", x.seconds),
                format!("{:.0} {}", x.rate(), x.unit),
            ]);
        }
        writeln!(out, "{table}")?;
        writeln!(out, "the rescan changed {changed} path entries in the benchmarked project")?;
    }
    let intact = verdicts.iter().all(|v| v.result.is_ok());
    anyhow::ensure!(intact, "the chain did not verify");
    Ok(crate::EXIT_OK)
}

/// Writes a synthetic snapshot to a file, for other tools.
pub fn write_snapshot(paths: usize, file: &std::path::Path) -> anyhow::Result<()> {
    let snapshot = synthetic_snapshot(paths, 0, "2026-03-02T09:00:00Z")?;
    let bytes = serde_json::to_vec(&snapshot)?;
    std::fs::write(file, bytes).with_context(|| format!("cannot write {}", file.display()))
}
