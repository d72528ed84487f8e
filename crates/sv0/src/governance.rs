//! `sv0 scan list|diff|release|unobserved` and `sv0 policy show|set`.

use std::io::Write;

use anyhow::Context;
use serde_json::json;
use sv0_domain::policy::Policy;
use sv0_domain::{InvalidInput, Timestamp};
use sv0_log::EventLog;
use sv0_projections::EntityDiff;
use sv0_service::Service;

use crate::output::{explain, print_json};
use crate::{EXIT_OK, PolicyCommand, PolicySetArgs, ScanCommand, render};

/// Largest policy file `policy set --file` reads.
const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// `sv0 scan ...` but `import`.
pub async fn scan(
    service: &mut Service<impl EventLog>,
    tenant: Option<&str>,
    command: ScanCommand,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    // An import or a run may start a tenant; the other commands need one with data.
    match command {
        ScanCommand::Import(args) => crate::scan::import(service, tenant, args, out).await,
        ScanCommand::Run(args) => crate::scan::scan_run_on(service, &args, tenant, out).await,
        ScanCommand::List(args) => {
            let tenant = service.tenant(tenant)?;
            let scans = service.scans(&tenant)?;
            if args.json {
                print_json(out, &scans)?;
                return Ok(EXIT_OK);
            }
            writeln!(out, "{} scan(s) of tenant {tenant}", scans.len())?;
            if !scans.is_empty() {
                let mut t = render::table(&[
                    "Scan",
                    "Status",
                    "Observed at",
                    "Trigger",
                    "Entities",
                    "Removed",
                    "Paths",
                    "Note",
                ]);
                for s in &scans {
                    let note = match (&s.released_by, &s.reason) {
                        (Some(by), _) => format!("released by {by}"),
                        (None, Some(reason)) => reason.clone(),
                        (None, None) => String::new(),
                    };
                    t.add_row(vec![
                        s.scan_id.clone(),
                        s.status.as_str().to_string(),
                        s.observed_at.map_or_else(String::new, |at| at.to_rfc3339()),
                        s.trigger.map_or_else(String::new, |t| t.as_str().to_string()),
                        s.entity_count.to_string(),
                        format!("{} entities, {} paths", s.removed_entities, s.removed_paths),
                        s.paths_total.to_string(),
                        note,
                    ]);
                }
                writeln!(out, "{t}")?;
            }
            let held: Vec<_> = scans.iter().filter(|s| s.status == sv0_projections::ScanStatus::Quarantined).collect();
            for s in held {
                writeln!(
                    out,
                    "scan {} is quarantined. Review it with `sv0 scan diff {0}`; apply it with `sv0 scan release {0} --note \"...\"`",
                    s.scan_id
                )?;
            }
            Ok(EXIT_OK)
        }
        ScanCommand::Diff(args) => {
            let tenant = service.tenant(tenant)?;
            let scan = service.scan(&tenant, &args.id)?;
            let diff = service.views().scan_diff(&tenant, &args.id)?;
            if args.json {
                print_json(out, &json!({ "scan": scan, "diff": diff }))?;
                return Ok(EXIT_OK);
            }
            let Some(diff) = diff else {
                writeln!(
                    out,
                    "scan {} is {}: it changed nothing{}",
                    scan.scan_id,
                    scan.status.as_str(),
                    scan.reason.map_or_else(String::new, |r| format!(" ({r})"))
                )?;
                return Ok(EXIT_OK);
            };
            let (added, changed, removed, unobserved) = diff.counts();
            writeln!(
                out,
                "scan {} ({}): {added} added, {changed} changed, {removed} removed, {unobserved} unobserved",
                scan.scan_id,
                scan.status.as_str()
            )?;
            print_diff(&diff, out)?;
            Ok(EXIT_OK)
        }
        ScanCommand::Release(args) => {
            let tenant = service.tenant(tenant)?;
            let releaser = crate::config::principal(service.data_dir())?;
            let scan = service
                .release_scan(
                    &tenant,
                    &args.id,
                    &args.note,
                    &sv0_domain::events::Actor::host(&releaser),
                    Timestamp::now(),
                )
                .await
                .map_err(|e| explain(e, format!("scan {} was not released", args.id)))?;
            if args.json {
                print_json(out, &scan)?;
                return Ok(EXIT_OK);
            }
            match scan.status {
                sv0_projections::ScanStatus::Applied => writeln!(
                    out,
                    "scan {} released by {releaser} and applied: {} entities and {} paths removed; {} paths now",
                    scan.scan_id, scan.removed_entities, scan.removed_paths, scan.paths_total
                )?,
                status => writeln!(
                    out,
                    "scan {} released by {releaser} but {}: a newer scan was applied since, so it changes nothing",
                    scan.scan_id,
                    status.as_str()
                )?,
            }
            Ok(EXIT_OK)
        }
        ScanCommand::Unobserved(args) => {
            let tenant = service.tenant(tenant)?;
            let entities = service.views().unobserved(&tenant)?;
            if args.json {
                let rows: Vec<_> = entities
                    .iter()
                    .map(|(list, id, since)| json!({ "list": list, "id": id, "unobserved_since": since }))
                    .collect();
                print_json(out, &rows)?;
                return Ok(EXIT_OK);
            }
            writeln!(
                out,
                "{} entit(ies) kept although unobserved (their list was read with failures)",
                entities.len()
            )?;
            if !entities.is_empty() {
                let mut t = render::table(&["List", "Id", "Unobserved since"]);
                for (list, id, since) in &entities {
                    t.add_row(vec![list.clone(), id.clone(), since.to_rfc3339()]);
                }
                writeln!(out, "{t}")?;
            }
            Ok(EXIT_OK)
        }
    }
}

fn print_diff(diff: &EntityDiff, out: &mut dyn Write) -> anyhow::Result<()> {
    for (list, count) in &diff.first_scan {
        writeln!(out, "added {list} ({count}): the tenant's first scan (`sv0 paths` and the API list them)")?;
    }
    for (label, lists) in [
        ("added", &diff.added),
        ("changed", &diff.changed),
        ("removed", &diff.removed),
        ("unobserved", &diff.unobserved),
    ] {
        for (list, ids) in lists {
            if ids.is_empty() {
                continue;
            }
            writeln!(out, "{label} {list} ({}):", ids.len())?;
            for id in ids.iter().take(20) {
                writeln!(out, "  {id}")?;
            }
            if ids.len() > 20 {
                writeln!(out, "  ... and {} more (--json lists all)", ids.len() - 20)?;
            }
        }
    }
    Ok(())
}

/// `sv0 policy ...`.
pub async fn policy(
    service: &mut Service<impl EventLog>,
    tenant: Option<&str>,
    command: PolicyCommand,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = match tenant {
        // A policy may be set before the tenant's first scan.
        Some(name) => sv0_domain::TenantId::new(name)?,
        None => service.tenant(None)?,
    };
    match command {
        PolicyCommand::Show(args) => {
            let policy = service.policy(&tenant)?;
            if args.json {
                print_json(out, &policy)?;
            } else {
                print_policy(&tenant, &policy, out)?;
                print_rego_state(&service.rego_state(&tenant)?, out)?;
            }
            Ok(EXIT_OK)
        }
        PolicyCommand::Approve(args) => {
            let approver = crate::config::principal(service.data_dir())?;
            let (state, seq) = service
                .approve_policy(
                    &tenant,
                    &args.digest,
                    &args.note,
                    &sv0_domain::events::Actor::host(&approver),
                    Timestamp::now(),
                )
                .await
                .map_err(|e| explain(e, "the policy was not approved".to_string()))?;
            if args.json {
                print_json(out, &json!({ "rego": state, "log_position": seq }))?;
            } else {
                writeln!(out, "Rego policy of tenant {tenant} approved by {approver} (log position {seq})")?;
                print_rego_state(&state, out)?;
            }
            Ok(EXIT_OK)
        }
        PolicyCommand::Set(args) => {
            let actor = crate::config::principal(service.data_dir())?;
            let json_out = args.json;
            let base = match &args.file {
                Some(file) => Some(read_policy(file)?),
                None => None,
            };
            // `[classification]` of sv0.toml is configuration a decision depends on: it takes
            // effect by being recorded in the policy.
            let classification = crate::config::read(service.data_dir())?.classification.map(|c| c.classification());
            let report = service
                .set_policy(
                    &tenant,
                    |current| {
                        let mut policy = edit(base.unwrap_or(current), &args)?;
                        if let Some(classification) = classification {
                            policy.classification = classification;
                        }
                        Ok(policy)
                    },
                    &sv0_domain::events::Actor::host(&actor),
                    Timestamp::now(),
                )
                .await
                .map_err(|e| explain(e, "the policy was not changed".to_string()))?;
            if json_out {
                print_json(out, &report.policy)?;
            } else {
                writeln!(out, "policy of tenant {tenant} set by {actor} (log position {}):", report.seq)?;
                print_policy(&tenant, &report.policy, out)?;
                print_rego_state(&service.rego_state(&tenant)?, out)?;
            }
            Ok(EXIT_OK)
        }
    }
}

fn read_policy(file: &std::path::Path) -> anyhow::Result<Policy> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    anyhow::ensure!(
        size <= MAX_POLICY_BYTES,
        "{} is {size} bytes; a policy file is at most {MAX_POLICY_BYTES}",
        file.display()
    );
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    sv0_codec::json::from_slice(&bytes)
        .with_context(|| format!("{} is not a policy (see `sv0 policy show --json`)", file.display()))
}

fn edit(mut policy: Policy, args: &PolicySetArgs) -> Result<Policy, InvalidInput> {
    if let Some(days) = args.evidence_window_days {
        policy.evidence_window_days = days;
    }
    if let Some(days) = args.owner_silence_days {
        policy.owner_silence_days = days;
    }
    if !args.internal_hosts.is_empty() {
        policy.internal_host_suffixes = args.internal_hosts.clone();
    }
    if let Some(percent) = args.breaker_percent {
        policy.breaker.max_removed_percent = percent;
    }
    if let Some(count) = args.breaker_min {
        policy.breaker.min_removed = count;
    }
    if let Some(paths) = args.drift_threshold {
        policy.drift_threshold = Some(paths);
    }
    if let Some(paths) = args.fold_budget_paths {
        policy.fold_budget_paths = Some(paths);
    }
    if args.no_rego {
        policy.rego = None;
    }
    if let Some(file) = &args.rego {
        let size = std::fs::metadata(file)
            .map_err(|e| InvalidInput::new(format!("cannot read {}: {e}", file.display())))?
            .len();
        if size > sv0_domain::policy::MAX_REGO_BYTES as u64 {
            return Err(InvalidInput::new(format!(
                "{} is {size} bytes; a Rego policy is at most {}",
                file.display(),
                sv0_domain::policy::MAX_REGO_BYTES
            )));
        }
        let source = std::fs::read_to_string(file)
            .map_err(|e| InvalidInput::new(format!("cannot read {}: {e}", file.display())))?;
        let mode = match args.rego_mode {
            crate::RegoModeArg::Extend => sv0_domain::policy::RegoMode::Extend,
            crate::RegoModeArg::Replace => sv0_domain::policy::RegoMode::Replace,
        };
        policy.rego = Some(sv0_domain::policy::RegoPolicy { mode, source });
    }
    Ok(policy)
}

/// Which Rego policy decides, and which waits for a second person.
fn print_rego_state(state: &sv0_domain::policy::RegoState, out: &mut dyn Write) -> anyhow::Result<()> {
    match &state.in_force {
        Some(rego) => writeln!(
            out,
            "  deciding now:          Rego {} ({}{})",
            rego.digest(),
            rego.mode.as_str(),
            state.approved_by.as_ref().map(|by| format!(", approved by {by}")).unwrap_or_default()
        )?,
        None => writeln!(out, "  deciding now:          the built-in rules")?,
    }
    if let Some(pending) = &state.pending {
        writeln!(
            out,
            "  waiting for approval:  Rego {} set by {} (log position {}): it replaces the built-in rules, so it decides only once another approver runs `sv0 policy approve --digest {} --note \"...\"`",
            pending.digest, pending.set_by, pending.set_seq, pending.digest
        )?;
    }
    Ok(())
}

fn print_policy(tenant: &sv0_domain::TenantId, p: &Policy, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "tenant {tenant}")?;
    writeln!(
        out,
        "  evidence window:       {} days (older evidence no longer counts: grades decay)",
        p.evidence_window_days
    )?;
    writeln!(out, "  owner silence limit:   {} days (a silent owner is decayed)", p.owner_silence_days)?;
    let hosts = if p.internal_host_suffixes.is_empty() { "-".to_string() } else { p.internal_host_suffixes.join(", ") };
    writeln!(out, "  internal hosts:        {hosts}")?;
    writeln!(
        out,
        "  deletion breakers:     quarantine a scan removing more than {} % of a list or of the paths, and at least {}",
        p.breaker.max_removed_percent, p.breaker.min_removed
    )?;
    writeln!(
        out,
        "  fold budget:           quarantine a scan whose fold would compute more than {} paths",
        p.fold_budget()
    )?;
    writeln!(
        out,
        "  drift threshold:       a scope drifts when a scan breaks its baseline on {} path(s) or more",
        p.drift_threshold_paths()
    )?;
    match &p.rego {
        Some(rego) => writeln!(
            out,
            "  disposition policy:    Rego ({} the built-in rules, {} bytes)",
            if rego.mode == sv0_domain::policy::RegoMode::Extend { "extends" } else { "replaces" },
            rego.source.len()
        )?,
        None => writeln!(out, "  disposition policy:    the built-in rules (SV0-D001..D009, SV0-V001)")?,
    }
    let c = &p.classification;
    writeln!(
        out,
        "  classifying tags:      {}",
        if c.tag_keys.is_empty() { "-".to_string() } else { c.tag_keys.join(", ") }
    )?;
    for (value, domain) in &c.values {
        writeln!(out, "    value {value} → domain {domain}")?;
    }
    let sensitive: Vec<&str> = c.domains.iter().filter(|d| d.sensitive).map(|d| d.id.as_str()).collect();
    writeln!(
        out,
        "  sensitive domains:     {}",
        if sensitive.is_empty() { "-".to_string() } else { sensitive.join(", ") }
    )?;
    writeln!(out, "  classification rules:  {}", p.classification_rules.len())?;
    for rule in &p.classification_rules {
        writeln!(out, "    {}: tag {}={} → domain {}", rule.id, rule.tag, rule.value, rule.domain)?;
    }
    Ok(())
}
