//! `sv0 verify`: the log, views and pack chains of a data directory, or exported packs offline.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;
use sv0_service::{Service, VerifyMode};
use sv0_signer::{KeyRing, entries_from_dir, verify_chain};

use crate::output::*;
use crate::{EXIT_NO, EXIT_OK};

pub(crate) fn broken_json(broken: &sv0_signer::BrokenLink) -> serde_json::Value {
    json!({
        "position": broken.position,
        "source": broken.source,
        "pack_id": broken.pack_id,
        "reason": broken.reason,
    })
}

pub(crate) async fn verify_log(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    mode: VerifyMode,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = tenant.map(sv0_domain::TenantId::new).transpose()?;
    let verdict = service.verify(tenant.as_ref(), mode).await?;
    let intact = verdict.intact();
    let compared = match mode {
        VerifyMode::Replay => {
            "each pack's content compared with the assessment a replay of the whole log into scratch views gives"
        }
        VerifyMode::Quick => {
            "each pack's content compared with the assessment in the views as they stand (--quick: no replay)"
        }
    };
    let verdicts = &verdict.chains;
    if json {
        let chains: Vec<_> = verdicts
            .iter()
            .map(|v| match &v.result {
                Ok(report) => json!({
                    "tenant": v.tenant,
                    "intact": true,
                    "packs": report.packs,
                    "pack_events_on_log": v.on_log,
                    "head_digest": report.head.as_ref().map(|h| h.digest.clone()),
                }),
                Err(broken) => json!({ "tenant": v.tenant, "intact": false, "broken": broken_json(broken) }),
            })
            .collect();
        let damaged = verdict.damaged.as_ref().map(|(seq, reason)| json!({ "position": seq, "reason": reason }));
        let mode = match mode {
            VerifyMode::Replay => "replay",
            VerifyMode::Quick => "quick",
        };
        print_json(
            out,
            &json!({
                "intact": intact,
                "mode": mode,
                "log_damaged": damaged,
                "views_match": verdict.views_differ.as_ref().map(Vec::is_empty),
                "views_differ_in": verdict.views_differ,
                "chains": chains,
            }),
        )?;
    } else if let Some((seq, reason)) = &verdict.damaged {
        writeln!(
            out,
            "log BROKEN: the record at position {seq} {reason}. The log is the source of truth: restore it from a backup (docs/security.md, integrity at rest)"
        )?;
    } else if verdicts.is_empty() {
        writeln!(out, "no pack chains on the log yet")?;
    } else {
        for verdict in verdicts {
            match &verdict.result {
                Ok(report) => writeln!(
                    out,
                    "tenant {}: chain intact: {} pack(s) of the {} pack event(s) on the log, every record checksum, digest, link and signature verified, {compared}; head {}",
                    verdict.tenant,
                    report.packs,
                    verdict.on_log,
                    report.head.as_ref().map_or("-", |h| h.digest.as_str())
                )?,
                Err(broken) => writeln!(out, "tenant {}: chain BROKEN at {broken}", verdict.tenant)?,
            }
        }
    }
    if !json {
        match verdict.views_differ.as_deref() {
            Some([]) => writeln!(out, "views: every table equals the replay of the log")?,
            Some(tables) => writeln!(
                out,
                "views DIFFER from the replay of the log in {}: queries read wrong rows. Run `sv0 rebuild`",
                tables.join(", ")
            )?,
            None => {}
        }
    }
    Ok(if intact { EXIT_OK } else { EXIT_NO })
}

pub(crate) fn verify_offline(
    dir: &Path,
    key: &Path,
    checkpoint: Option<&Path>,
    tsa_cert: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let ring = KeyRing::from_pem_file(key)?;
    let entries = entries_from_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.is_empty() {
        bail!("{} holds no pack files (NNNNNN-<pack id>.json)", dir.display());
    }
    let checkpoint = match checkpoint {
        Some(file) => {
            let note = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let origin = note.lines().next().unwrap_or_default().to_string();
            let verified =
                ring.keys().find_map(|key| sv0_signer::checkpoint::Checkpoint::verify(&note, &origin, key).ok());
            Some(verified.with_context(|| {
                format!("{} is not a checkpoint signed by a key of {}", file.display(), key.display())
            })?)
        }
        None => None,
    };
    let trusted = match tsa_cert {
        Some(file) => {
            let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(sv0_signer::timestamp::trusted_from_pem(&pem).with_context(|| format!("{}", file.display()))?)
        }
        None => None,
    };
    let stamps = sv0_signer::timestamp::stamps_from_dir(dir)
        .with_context(|| format!("cannot read the timestamps of {}", dir.display()))?;
    if trusted.is_some() && stamps.is_empty() {
        bail!(
            "--tsa-cert was given, but {} holds no timestamped checkpoint (timestamp-NNNNNN.txt, .tsq, .tsr)",
            dir.display()
        );
    }
    let mut result = verify_chain(&entries, &ring);
    if let (Ok(_), Some(checkpoint)) = (&result, &checkpoint) {
        // The chain verified link by link; the checkpoint says how long it was and what it held.
        if let Err(broken) = sv0_signer::verify::extends_checkpoint(&entries, checkpoint, &dir.display().to_string()) {
            result = Err(broken);
        }
    }
    // Trusted time: each token vouches that the first `size` packs, as they are here, existed
    // no later than its time.
    let times = match (&result, &trusted) {
        (Ok(report), Some(trusted)) => {
            let tenant = report.tenant.clone().unwrap_or_default();
            Some(sv0_signer::verify::verify_timestamps(&entries, &tenant, &ring, &stamps, trusted))
        }
        _ => None,
    };
    let pack_times: Vec<(u64, String, Option<&sv0_signer::verify::TrustedTime>)> = match &times {
        Some(Ok(times)) => {
            // A pack existed by the earliest time of the tokens that cover it (size ≥ its
            // index): with the tokens by size, that is a minimum over a suffix, taken once.
            let mut by_size: Vec<&sv0_signer::verify::TrustedTime> = times.iter().collect();
            by_size.sort_by_key(|t| t.size);
            let mut earliest = by_size.clone();
            for i in (0..earliest.len().saturating_sub(1)).rev() {
                if earliest[i + 1].token.gen_time_ms < earliest[i].token.gen_time_ms {
                    earliest[i] = earliest[i + 1];
                }
            }
            entries
                .iter()
                .filter_map(|e| e.pack.as_ref().ok())
                .map(|p| {
                    let first = by_size.partition_point(|t| t.size < p.index);
                    (p.index, p.pack_id.clone(), earliest.get(first).copied())
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let time_text = |t: &sv0_signer::verify::TrustedTime| sv0_domain::Timestamp(t.token.gen_time_ms).to_rfc3339();
    let stamps_failed = matches!(times, Some(Err(_)));
    if json {
        let mut value = match &result {
            Ok(report) => json!({
                "intact": true,
                "tenant": report.tenant,
                "packs": report.packs,
                "head_digest": report.head.as_ref().map(|h| h.digest.clone()),
            }),
            Err(broken) => json!({ "intact": false, "broken": broken_json(broken) }),
        };
        match &times {
            Some(Ok(times)) => {
                value["timestamps"] = times
                    .iter()
                    .map(|t| json!({ "file": t.stem, "size": t.size, "time": time_text(t), "tsa": t.token.tsa, "serial": t.token.serial, "policy": t.token.policy }))
                    .collect();
                value["trusted_time"] = pack_times
                    .iter()
                    .map(|(index, id, by)| json!({ "index": index, "pack_id": id, "existed_no_later_than": by.map(time_text) }))
                    .collect();
            }
            Some(Err(why)) => {
                value["intact"] = json!(false);
                value["timestamps_broken"] = json!(why);
            }
            None => {}
        }
        print_json(out, &value)?;
    } else {
        match &result {
            Ok(report) => writeln!(
                out,
                "chain intact: {} pack(s) of tenant {}, every digest, link and signature verified; head {}",
                report.packs,
                report.tenant.as_deref().unwrap_or("-"),
                report.head.as_ref().map_or("-", |h| h.digest.as_str())
            )?,
            Err(broken) => writeln!(out, "chain BROKEN at {broken}")?,
        }
        match &times {
            Some(Ok(times)) => {
                for t in times {
                    writeln!(
                        out,
                        "timestamp {}: packs 1-{} existed no later than {} (TSA {}, serial {})",
                        t.stem,
                        t.size,
                        time_text(t),
                        t.token.tsa,
                        t.token.serial
                    )?;
                }
                for (index, id, by) in &pack_times {
                    match by {
                        Some(t) => writeln!(out, "pack {index} ({id}): existed no later than {}", time_text(t))?,
                        None => writeln!(
                            out,
                            "pack {index} ({id}): no trusted time (sealed after the last timestamped checkpoint)"
                        )?,
                    }
                }
            }
            Some(Err(why)) => writeln!(out, "timestamps BROKEN: {why}")?,
            None if !stamps.is_empty() && result.is_ok() => writeln!(
                out,
                "{} timestamped checkpoint(s) not checked: give the TSA's certificate with --tsa-cert",
                stamps.len()
            )?,
            None => {}
        }
    }
    Ok(if result.is_ok() && !stamps_failed { EXIT_OK } else { EXIT_NO })
}
