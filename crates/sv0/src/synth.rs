//! `sv0 synth`: synthetic tenants and rescans in the snapshot format.

use std::io::{BufWriter, Write};

use anyhow::Context;
use sv0_domain::Timestamp;
use sv0_domain::snapshot::Snapshot;
use sv0_synth::synthetic;

use crate::{EXIT_OK, SynthArgs};

/// Largest snapshot `--rescan-of` reads.
const MAX_SNAPSHOT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Parses `1%`, `0.5%` or `1`.
fn percent(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    let value: f64 = number.parse().with_context(|| format!("--change {text:?} is not a share such as 1%"))?;
    anyhow::ensure!((0.0..=100.0).contains(&value), "--change must be between 0% and 100%, not {text}");
    Ok(value)
}

/// Writes the tenant or rescan `args` asks for.
pub fn run(args: &SynthArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    if let (Some(dir), Some(identities)) = (&args.vendor_export, args.identities) {
        anyhow::ensure!(identities > 0, "--identities must be at least 1");
        let started = std::time::Instant::now();
        let written = sv0_synth::vendor_export::write(dir, identities, args.seed)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        writeln!(
            out,
            "wrote a synthetic tenant of {} identities in vendor formats to {}: {} items in {} files, {:.1} MB, {:.1} s",
            written.identities,
            dir.display(),
            written.items,
            written.files,
            written.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        )?;
        writeln!(
            out,
            "read it with: sv0 scan run --connector entra --connector azure-rbac --connector servicenow --connector foundry --from-export {}",
            dir.display()
        )?;
        return Ok(EXIT_OK);
    }
    let out_file = args.out.as_ref().context("--out is required")?;
    let snapshot = match &args.rescan_of {
        Some(base_file) => {
            let share = percent(&args.change)?;
            let size =
                std::fs::metadata(base_file).with_context(|| format!("cannot read {}", base_file.display()))?.len();
            anyhow::ensure!(
                size <= MAX_SNAPSHOT_BYTES,
                "{} is larger than {MAX_SNAPSHOT_BYTES} bytes",
                base_file.display()
            );
            let bytes = std::fs::read(base_file).with_context(|| format!("cannot read {}", base_file.display()))?;
            let base: Snapshot =
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not a snapshot", base_file.display()))?;
            drop(bytes);
            let at = base.scan.observed_at.add_days(1);
            let next = synthetic::rescan(&base, share, args.seed, at)?;
            let changed = ((base.grants.len() as f64) * share / 100.0).round() as usize;
            writeln!(
                out,
                "rescan of {} observed at {}: {changed} of {} grants changed",
                base_file.display(),
                at.to_rfc3339(),
                base.grants.len()
            )?;
            if let (Some(base_scan), Some(delta_out)) = (&args.delta_of, &args.delta_out) {
                let delta = next.delta_since(&base, base_scan);
                write_snapshot(delta_out, &delta)?;
                writeln!(
                    out,
                    "wrote {}: a delta scan of {base_scan} with {} changed or new grants and {} deletions; import it after the base with `sv0 scan import {0}`",
                    delta_out.display(),
                    delta.grants.len(),
                    delta.deleted.len(),
                )?;
            }
            next
        }
        None => {
            let paths = args.paths.context("--paths is required without --rescan-of")?;
            anyhow::ensure!(paths > 0, "--paths must be at least 1");
            let at = Timestamp::parse(synthetic::OBSERVED_AT)?;
            let snapshot = synthetic::tenant(paths, args.seed, at)?;
            writeln!(
                out,
                "synthetic tenant {} (seed {}): {} workloads, {} identities, {} destinations, {} grants (about {paths} paths), {} evidence records",
                synthetic::TENANT,
                args.seed,
                snapshot.workloads.len(),
                snapshot.identities.len(),
                snapshot.destinations.len(),
                snapshot.grants.len(),
                snapshot.evidence.len()
            )?;
            snapshot
        }
    };
    write_snapshot(out_file, &snapshot)?;
    writeln!(out, "wrote {}; import it with `sv0 scan import {0}`", out_file.display())?;
    Ok(EXIT_OK)
}

fn write_snapshot(path: &std::path::Path, snapshot: &Snapshot) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut writer, snapshot)?;
    writer.flush().with_context(|| format!("cannot write {}", path.display()))
}
