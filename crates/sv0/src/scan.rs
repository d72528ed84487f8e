//! `sv0 scan import` (a snapshot file) and `sv0 scan run` (the connectors, then an import).

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::json;
use sv0_domain::snapshot::ScanTrigger;
use sv0_service::{Service, ServiceError};

use crate::backend::LogTarget;

use crate::output::*;
use crate::{EXIT_OK, ImportArgs};

/// Largest snapshot file `scan import` reads.
pub(crate) const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

pub(crate) async fn import(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ImportArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let size = std::fs::metadata(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?.len();
    if size > MAX_SNAPSHOT_BYTES {
        bail!("{} is {size} bytes; snapshots are limited to {MAX_SNAPSHOT_BYTES} bytes", args.file.display());
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let trigger = args.trigger.map(ScanTrigger::from);
    let not_imported = || format!("{} was not imported", args.file.display());
    let snapshot = match sv0_service::import::parse_snapshot(&bytes) {
        Ok(snapshot) => snapshot,
        Err(e @ (ServiceError::Snapshot(_) | ServiceError::SnapshotJson(_))) if args.json => {
            // Every problem, for a machine: the snapshot's author fixes them in one go.
            let problems = match &e {
                ServiceError::Snapshot(invalid) => invalid.problems.clone(),
                other => vec![other.to_string()],
            };
            print_json(out, &json!({ "imported": false, "file": args.file, "problems": problems }))?;
            return Ok(crate::EXIT_ERROR);
        }
        Err(e) => return Err(explain(e, not_imported())),
    };
    // A snapshot of another tenant than the one named is refused, as the API refuses one of
    // another tenant than the token's.
    if let Some(named) = tenant
        && named != snapshot.tenant.as_str()
    {
        bail!(
            "{}; nothing was appended: the snapshot is of tenant {}, and --tenant (or SV0_TENANT) names {named}",
            not_imported(),
            snapshot.tenant
        );
    }
    // The file's bytes are not needed while the scan is folded: free them first.
    drop(bytes);
    let snapshot = if args.delta { service.as_delta(snapshot)? } else { snapshot };
    let report = service.import_parsed(snapshot, trigger, None).await.map_err(|e| explain(e, not_imported()))?;
    print_import(out, &report, args.json, None)
}

/// Prints what an import appended (with `extra` fields merged into the JSON).
pub(crate) fn print_import(
    out: &mut dyn Write,
    report: &sv0_service::ImportReport,
    as_json: bool,
    extra: Option<serde_json::Value>,
) -> anyhow::Result<u8> {
    if as_json {
        let mut value = json!({
                "tenant": report.tenant,
                "scan_id": report.scan_id,
                "duplicate": report.duplicate,
                "first_seq": report.first_seq,
                "last_seq": report.last_seq,
                "chunks": report.chunk_count,
                "entities": report.entity_count,
                "status": report.scan.as_ref().map(|s| format!("{:?}", s.status).to_lowercase()),
                "paths_total": report.scan.as_ref().map(|s| s.paths_total),
                "removed_paths": report.scan.as_ref().map(|s| s.removed_paths),
                "mode": report.scan.as_ref().and_then(|s| s.mode),
        });
        if let (Some(serde_json::Value::Object(extra)), Some(map)) = (extra, value.as_object_mut()) {
            map.extend(extra);
        }
        print_json(out, &value)?;
        return Ok(EXIT_OK);
    }
    if report.duplicate {
        writeln!(out, "scan {} of tenant {} is already on the log; nothing appended", report.scan_id, report.tenant)?;
    } else {
        writeln!(
            out,
            "imported {}scan {} of tenant {}: {} entities in {} chunk(s), log positions {}..{}",
            if report.scan.as_ref().and_then(|s| s.mode) == Some(sv0_domain::snapshot::CoverageMode::Delta) {
                "delta "
            } else {
                ""
            },
            report.scan_id,
            report.tenant,
            report.entity_count,
            report.chunk_count,
            report.first_seq,
            report.last_seq
        )?;
    }
    match &report.scan {
        Some(scan) if scan.status == sv0_projections::ScanStatus::Applied => {
            writeln!(out, "{} authority paths now", scan.paths_total)?;
        }
        Some(scan) => writeln!(out, "scan rejected: {}", scan.reason.clone().unwrap_or_default())?,
        None => {}
    }
    Ok(EXIT_OK)
}

/// What `scan run` read from its sources: the snapshot, validated, and each API's outcome.
pub(crate) struct SourcesRead {
    entities: sv0_domain::snapshot::ValidSnapshot,
    outcomes: serde_json::Value,
}

/// Runs `scan run`'s connectors (settings from `config`), writes `--out` and prints each
/// API's outcome; `None` for a dry run, which imports nothing.
pub(crate) async fn read_sources(
    args: &crate::ScanRunArgs,
    tenant: Option<&str>,
    config: &crate::config::Config,
    out: &mut dyn Write,
) -> anyhow::Result<Option<SourcesRead>> {
    let connectors = config.connectors.clone().unwrap_or_default();
    let trigger = ScanTrigger::from(args.trigger);
    let result =
        crate::connect::run_connectors(&args.source, args.observed_at.as_deref(), trigger, tenant, &connectors, None)
            .await?;
    if let Some(path) = &args.out {
        let bytes = serde_json::to_vec_pretty(&result.snapshot)?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let outcomes = crate::connect::outcomes_json(&result);
    if !args.json {
        crate::connect::print_outcomes(out, &result)?;
    }
    let entities = result.snapshot.validate().map_err(|e| {
        anyhow::anyhow!("the connectors assembled a snapshot that does not validate, so nothing was imported: {e}")
    })?;
    if args.dry_run {
        if args.json {
            print_json(out, &outcomes)?;
        } else {
            writeln!(out, "dry run: {} entities read; nothing imported", entities.entities.len())?;
        }
        return Ok(None);
    }
    Ok(Some(SourcesRead { entities, outcomes }))
}

/// Imports what `scan run` read into an open, prepared service.
pub(crate) async fn import_read(
    service: &mut Service<impl sv0_log::EventLog>,
    read: SourcesRead,
    config: &crate::config::Config,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let report = service
        .import_parsed(read.entities, None, None)
        .await
        .map_err(|e| explain(e, "the scan was not imported".to_string()))?;
    // Classification is a decision: it takes effect through the policy, not from the file.
    if let Some(configured) = config.classification.as_ref().map(|c| c.classification())
        && service.policy(&report.tenant)?.classification != configured
    {
        tracing::warn!(
            "[classification] of sv0.toml is not the policy in force; paths are classified by the policy: record it with `sv0 policy set`"
        );
    }
    print_import(out, &report, json, Some(read.outcomes))
}

/// `sv0 scan run` on a data directory: the sources are read before the directory is opened
/// (a long read holds no lock, and a dry run needs no directory).
pub(crate) async fn scan_run(
    args: &crate::ScanRunArgs,
    tenant: Option<&str>,
    data_dir: &std::path::Path,
    target: &LogTarget,
    no_seal: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let config = if data_dir.exists() {
        crate::config::read(&sv0_service::DataDir::create(data_dir)?)?
    } else {
        Default::default()
    };
    let Some(read) = read_sources(args, tenant, &config, out).await? else { return Ok(EXIT_OK) };
    let mut service = crate::backend::open(data_dir, target)
        .await
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    if service.data_dir().replay().is_some() {
        bail!("{} is an audit replay: it is read-only", data_dir.display());
    }
    if no_seal {
        service = service.without_sealing();
    }
    let mut service = crate::config::apply(service, &config)?;
    service.sync().await.context("cannot bring the views and packs up to date")?;
    import_read(&mut service, read, &config, args.json, out).await
}

/// `sv0 scan run` on a service already open and prepared (as `sv0 scan` subcommands run).
pub(crate) async fn scan_run_on(
    service: &mut Service<impl sv0_log::EventLog>,
    args: &crate::ScanRunArgs,
    tenant: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let config = crate::config::read(service.data_dir())?;
    let Some(read) = read_sources(args, tenant, &config, out).await? else { return Ok(EXIT_OK) };
    import_read(service, read, &config, args.json, out).await
}
