//! `sv0 watch`: continuous (W3) drift monitoring. Each round imports the snapshot sources as
//! scheduled scans, which the fold compares with every approved baseline (a drift beyond the
//! policy's threshold marks the baseline drifted and asks for re-assessment; drift signals are
//! derived from the same assessments), then reports each baselined scope. A source that fails
//! (unreadable, invalid) is reported and retried next round; the watch goes on.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use sv0_connectors::tracking::Tracking;
use sv0_domain::snapshot::ScanTrigger;
use sv0_service::Service;

use crate::scan::MAX_SNAPSHOT_BYTES;
use crate::{EXIT_OK, WatchArgs};

/// Runs rounds until stopped (Ctrl-C, SIGTERM) or `--ticks` rounds have run.
pub async fn run(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: WatchArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let config = crate::config::read(service.data_dir())?.connectors.unwrap_or_default();
    // The vendors' change tracking, kept in memory between rounds: every `--full-every`th
    // round reads everything, the others ask only for what changed.
    let tracking = Arc::new(Tracking::new());
    let mut round = 0u64;
    loop {
        round += 1;
        if !args.source.connectors.is_empty() {
            let source = format!(
                "connectors {}",
                args.source.connectors.iter().map(|c| crate::connect::kind(*c).name()).collect::<Vec<_>>().join("+")
            );
            // Every `--full-every`th round sends the scan whole, the others as deltas.
            let whole = (round - 1).is_multiple_of(args.full_every);
            let line = match scan_connectors(service, tenant, &args, &config, &tracking, whole).await {
                Ok((report, failed)) => json!({
                    "round": round,
                    "source": source,
                    "scan": report.scan_id,
                    "imported": !report.duplicate,
                    "mode": report.scan.as_ref().and_then(|s| s.mode),
                    "status": report.scan.map(|s| s.status),
                    "failed_apis": failed,
                    "change_tracking": tracking.reads(),
                }),
                Err(error) => json!({ "round": round, "source": source, "error": format!("{error:#}") }),
            };
            report_source(&line, args.json, out)?;
        }
        for file in &args.snapshots {
            let line = match import(service, file).await {
                Ok(report) if report.duplicate => {
                    json!({ "round": round, "source": file, "scan": report.scan_id, "imported": false })
                }
                Ok(report) => json!({
                    "round": round,
                    "source": file,
                    "scan": report.scan_id,
                    "imported": true,
                    "status": report.scan.map(|s| s.status),
                }),
                Err(error) => json!({ "round": round, "source": file, "error": format!("{error:#}") }),
            };
            report_source(&line, args.json, out)?;
        }
        match service.tenant(tenant) {
            Ok(tenant) => {
                for head in service.views().baselines(&tenant)? {
                    let delta = service.delta(&tenant, &head.scope)?;
                    let line = json!({
                        "round": round,
                        "tenant": tenant,
                        "scope": head.scope,
                        "baseline_version": head.version,
                        "state": head.state_of(head.version),
                        "drifted": head.drifted,
                        "changes": delta.entries.len(),
                        "disposition": delta.disposition.decision,
                        "reasons": delta.disposition.reasons,
                    });
                    report_scope(&line, args.json, out)?;
                }
            }
            Err(error) => writeln!(out, "round {round}: {error}")?,
        }
        out.flush()?;
        if args.ticks.is_some_and(|ticks| round >= ticks) {
            return Ok(EXIT_OK);
        }
        tokio::select! {
            () = tokio::time::sleep(args.every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(EXIT_OK),
            () = terminated() => return Ok(EXIT_OK),
        }
    }
}

async fn import(
    service: &mut Service<impl sv0_log::EventLog>,
    file: &Path,
) -> anyhow::Result<sv0_service::ImportReport> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    anyhow::ensure!(
        size <= MAX_SNAPSHOT_BYTES,
        "{} is {size} bytes; snapshots are limited to {MAX_SNAPSHOT_BYTES}",
        file.display()
    );
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let snapshot = sv0_service::import::parse_snapshot(&bytes)?;
    drop(bytes);
    Ok(service.import_parsed(snapshot, Some(ScanTrigger::Scheduled), None).await?)
}

/// One round of the connectors: read, validate, import as a scheduled scan, `whole` or as a
/// delta of the latest applied scan. Returns the import and the APIs that failed (the scan is
/// then partial, and removes nothing they would have shown).
///
/// A delta that is overtaken before it is folded (another scan applied in between) is
/// rejected by the fold and changes nothing; the next round, a delta of whatever was applied
/// meanwhile, catches up.
async fn scan_connectors(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: &WatchArgs,
    config: &sv0_connectors::ConnectorsConfig,
    tracking: &Arc<Tracking>,
    whole: bool,
) -> anyhow::Result<(sv0_service::ImportReport, Vec<&'static str>)> {
    tracking.begin_round(whole);
    let result = crate::connect::run_connectors(
        &args.source,
        None,
        ScanTrigger::Scheduled,
        tenant,
        config,
        Some(tracking.clone()),
    )
    .await?;
    let failed = result.outcomes.iter().filter(|(_, o)| o.failed > 0).map(|(api, _)| *api).collect();
    let mut snapshot = result.snapshot.validate()?;
    if !whole {
        snapshot = service.as_delta(snapshot)?;
    }
    Ok((service.import_parsed(snapshot, Some(ScanTrigger::Scheduled), None).await?, failed))
}

fn report_source(line: &serde_json::Value, as_json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if as_json {
        serde_json::to_writer(&mut *out, line)?;
        writeln!(out)?;
        return Ok(());
    }
    let source = line["source"].as_str().unwrap_or_default();
    match (&line["error"], line["imported"].as_bool()) {
        (serde_json::Value::String(error), _) => {
            writeln!(out, "round {}: {source}: not imported: {error}", line["round"])?
        }
        (_, Some(true)) => writeln!(
            out,
            "round {}: {source}: imported scan {}",
            line["round"],
            line["scan"].as_str().unwrap_or_default()
        )?,
        _ => writeln!(
            out,
            "round {}: {source}: unchanged (scan {})",
            line["round"],
            line["scan"].as_str().unwrap_or_default()
        )?,
    }
    Ok(())
}

fn report_scope(line: &serde_json::Value, as_json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if as_json {
        serde_json::to_writer(&mut *out, line)?;
        writeln!(out)?;
        return Ok(());
    }
    let scope = line["scope"].as_str().unwrap_or_default();
    let version = &line["baseline_version"];
    let disposition = line["disposition"].as_str().unwrap_or_default();
    match line["drifted"].as_object() {
        Some(drift) => writeln!(
            out,
            "round {}: scope {scope} DRIFTED from baseline v{version} since {} ({} path(s)); disposition {disposition}: re-assess with `sv0 delta --scope {scope}` and `sv0 approve`",
            line["round"],
            drift["since"].as_str().unwrap_or_default(),
            drift["paths"],
        )?,
        None => writeln!(
            out,
            "round {}: scope {scope} matches baseline v{version} ({} change(s)); disposition {disposition}",
            line["round"], line["changes"]
        )?,
    }
    Ok(())
}

/// Resolves on SIGTERM (the way service managers stop a process); never on other platforms.
async fn terminated() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}
