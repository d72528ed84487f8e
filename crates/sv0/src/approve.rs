//! `sv0 approve` (and its dry run), `sv0 whatif`, and the plan and intent files they read.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use sv0_domain::events::Acknowledgement;
use sv0_domain::{InvalidInput, Timestamp};
use sv0_service::{Approval, Reviewed, Service, ServiceError};

use crate::output::*;
use crate::{ApproveArgs, EXIT_NO, EXIT_OK, WhatifArgs, render};

/// Parses `FINDING=YYYY-MM-DD`.
pub fn parse_ack(text: &str) -> Result<Acknowledgement, InvalidInput> {
    let (finding_id, due) = text
        .split_once('=')
        .ok_or_else(|| InvalidInput::new(format!("invalid --ack {text:?}: use FINDING=YYYY-MM-DD")))?;
    let due = Timestamp::parse_due(due)?;
    Ok(Acknowledgement { finding_id: finding_id.trim().to_string(), due })
}

/// `approve --dry-run`: what the approval would lock.
pub(crate) fn print_approval_plan(out: &mut dyn Write, plan: &sv0_service::ApprovalPlan) -> anyhow::Result<()> {
    writeln!(
        out,
        "dry run, nothing recorded: approving would lock baseline v{} of scope {}, posture {}@{}",
        plan.version, plan.scope, plan.posture_digest, plan.posture_seq
    )?;
    writeln!(out, "{} path(s):", plan.paths.len())?;
    for p in &plan.paths {
        writeln!(
            out,
            "  {} -> {} -> {} ({}): {} [{}]",
            p.workload.name,
            p.identity.name,
            p.destination.name,
            p.domain.name,
            render::permissions(&p.permissions),
            p.grade.as_str()
        )?;
    }
    writeln!(out, "{} finding(s) acknowledged:", plan.acknowledged.len())?;
    for ack in &plan.acknowledged {
        writeln!(out, "  {} until {}", ack.finding_id, ack.due.date())?;
    }
    writeln!(out, "{} open finding(s) left unacknowledged:", plan.unacknowledged.len())?;
    for record in &plan.unacknowledged {
        let f = &record.finding;
        writeln!(out, "  {} {} {}: {}", f.finding_id, f.severity.as_str(), f.rule_id, f.summary)?;
    }
    match &plan.intent {
        Some(items) => writeln!(out, "{} intended addition(s) declared", items.len())?,
        None => writeln!(out, "no intent declared: every later addition is unreviewed")?,
    }
    Ok(())
}

pub(crate) async fn approve(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ApproveArgs,
    console: &mut dyn Console,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let acks = args.acks.iter().map(|a| parse_ack(a)).collect::<Result<Vec<_>, _>>()?;
    let posture = args.posture.as_deref().map(Reviewed::parse).transpose()?;
    let approver = crate::config::principal(service.data_dir())?;
    let mut request = Approval {
        note: args.note,
        acknowledged: acks,
        intent: args.intent.as_deref().map(read_intent).transpose()?,
        posture: posture.clone(),
        by: sv0_domain::events::Actor::host(&approver),
        plan_digest: None,
        force: args.force,
    };
    if let Some(path) = &args.plan {
        let report = service.whatif(&tenant, &scope, &read_plan(path)?)?;
        let declared = request.declare_plan(&report);
        writeln!(
            out,
            "plan {} ({}): {declared} planned addition(s) declared as intent{}",
            report.plan_digest,
            report.plan_format,
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} resource(s) skipped (see `sv0 whatif`)", report.skipped.len())
            }
        )?;
    }
    let now = Timestamp::now();
    let plan = match service.plan_approval(&tenant, &scope, &request, now).await {
        Ok(plan) => plan,
        Err(e @ ServiceError::PostureChanged { .. }) => {
            writeln!(out, "refused, nothing was approved: {e}")?;
            return Ok(EXIT_NO);
        }
        Err(e) => return Err(explain(e, "nothing was approved".to_string())),
    };
    let high: Vec<&sv0_projections::FindingRecord> = plan
        .unacknowledged
        .iter()
        .filter(|r| {
            matches!(
                r.finding.severity,
                sv0_domain::findings::Severity::High | sv0_domain::findings::Severity::Critical
            )
        })
        .collect();
    if args.dry_run {
        if args.json {
            print_json(out, &plan)?;
        } else {
            print_approval_plan(out, &plan)?;
        }
        return Ok(EXIT_OK);
    }
    if !high.is_empty() && !args.yes && console.interactive() {
        let mut list =
            format!("{} high or critical finding(s) of scope {} stay open, unacknowledged:", high.len(), plan.scope);
        for record in &high {
            list.push_str(&format!(
                "\n  {} {} {}",
                record.finding.finding_id,
                record.finding.severity.as_str(),
                record.finding.summary
            ));
        }
        console.note(&list)?;
        if !console.confirm(&format!("lock baseline v{} with them open?", plan.version))? {
            writeln!(out, "nothing was approved")?;
            return Ok(EXIT_NO);
        }
    }
    let report = match service.approve_with(&tenant, &scope, request, now).await {
        Ok(report) => report,
        Err(e @ ServiceError::PostureChanged { .. }) => {
            writeln!(out, "refused, nothing was approved: {e}")?;
            return Ok(EXIT_NO);
        }
        Err(e) => return Err(explain(e, "nothing was approved".to_string())),
    };
    let b = &report.baseline;
    if args.json {
        print_json(out, b)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "baseline v{} of scope {} locked by {} at {}: {} path(s), {} finding(s) acknowledged, {} (log position {})",
        b.version,
        b.scope,
        b.approver,
        b.approved_at,
        b.paths.len(),
        b.acknowledged.len(),
        match &b.intent {
            Some(items) => format!("{} intended addition(s) declared", items.len()),
            None => "no intent declared: every later addition is unreviewed".to_string(),
        },
        report.seq
    )?;
    let digest = b.posture_digest.as_deref().unwrap_or("-");
    match posture {
        Some(_) => writeln!(out, "posture approved: {digest}@{} (as reviewed)", b.posture_seq)?,
        None => writeln!(
            out,
            "posture approved: {digest}@{} (no --posture given: compare it with the one you reviewed)",
            b.posture_seq
        )?,
    }
    Ok(EXIT_OK)
}

/// Reads a plan file (at most `plan::MAX_PLAN_BYTES`).
pub(crate) fn read_plan(path: &Path) -> anyhow::Result<Vec<u8>> {
    let max = sv0_connectors::plan::MAX_PLAN_BYTES as u64;
    let file = std::fs::File::open(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("reading the plan {}", path.display()))?;
    if bytes.len() as u64 > max {
        anyhow::bail!(InvalidInput::new(format!("the plan {} is larger than {max} bytes", path.display())));
    }
    Ok(bytes)
}

pub(crate) fn whatif(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: WhatifArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let bytes = read_plan(&args.plan)?;
    let report = service.whatif(&tenant, &scope, &bytes)?;
    if args.json {
        print_json(out, &report)?;
        return Ok(EXIT_OK);
    }
    write!(out, "{}", render::whatif(&report))?;
    Ok(EXIT_OK)
}

/// Reads a declared intent file: a JSON list of intent items, at most 16 MiB.
pub(crate) fn read_intent(path: &Path) -> anyhow::Result<Vec<sv0_domain::intent::IntentItem>> {
    const MAX: u64 = 16 * 1024 * 1024;
    let file = std::fs::File::open(path).with_context(|| format!("reading the intent {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX + 1).read_to_string(&mut text).with_context(|| format!("reading the intent {}", path.display()))?;
    if text.len() as u64 > MAX {
        anyhow::bail!(InvalidInput::new(format!("the intent {} is larger than {MAX} bytes", path.display())));
    }
    let items: Vec<sv0_domain::intent::IntentItem> = sv0_codec::json::from_slice(text.as_bytes()).map_err(|e| {
        InvalidInput::new(format!(
            "the intent {} is not a JSON list of intent items (schemas/intent.schema.json): {e}",
            path.display()
        ))
    })?;
    sv0_domain::intent::validate(&items)?;
    Ok(items)
}
