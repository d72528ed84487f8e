//! The questions: `paths`, `findings` (and `findings show`), `review`, `delta`, `scopes`,
//! `baselines` and `rules`.

use std::io::Write;

use anyhow::bail;
use serde_json::json;
use sv0_domain::Timestamp;
use sv0_projections::{FindingStatus, PathFilter};
use sv0_service::{AsOf, Service};

use crate::output::*;
use crate::{BaselinesArgs, DeltaArgs, EXIT_OK, FindingsArgs, PathsArgs, ReviewArgs, RulesArgs, render};

pub(crate) async fn paths(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: PathsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let filter = PathFilter {
        scope: args.scope.as_deref().map(|s| service.scope(&tenant, s)).transpose()?,
        workload: args.workload,
        identity: args.identity,
        destination: args.destination,
        domain: args.domain,
        grade: args.grade,
        egress: args.egress,
        owner_state: args.owner_state,
    };
    let as_of = args.as_of.as_deref().map(AsOf::parse).transpose()?;
    let (mut paths, posture) = service.query_paths_with_posture(&tenant, &filter, as_of).await?;
    let total = paths.len();
    if let Some(limit) = args.limit {
        paths.truncate(limit);
    }
    if args.json {
        // A scope's paths come with its posture digest: what `approve --posture` names.
        match &posture {
            Some(p) => print_json(
                out,
                &json!({
                    "tenant": tenant,
                    "scope": p.scope,
                    "posture_digest": p.digest,
                    "log_position": p.position,
                    "total": total,
                    "paths": paths,
                }),
            )?,
            None => print_json(out, &paths)?,
        }
        return Ok(EXIT_OK);
    }
    let what =
        filter.scope.as_ref().map_or_else(|| format!("tenant {tenant}"), |s| format!("scope {s} of tenant {tenant}"));
    let when = args.as_of.as_ref().map_or_else(String::new, |a| format!(" as of {a}"));
    let shown = if paths.len() < total { format!(" (first {} shown)", paths.len()) } else { String::new() };
    writeln!(out, "{total} authority path(s) in {what}{when}{shown}")?;
    if !paths.is_empty() {
        writeln!(out, "{}", render::paths(&paths))?;
    }
    if let Some(p) = posture {
        writeln!(out, "{}", posture_line(&p, args.as_of.is_some()))?;
    }
    Ok(EXIT_OK)
}

pub(crate) fn findings(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: FindingsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    // Acknowledgements fall due against the tenant's latest scan time: the log's clock.
    let at = service.views().tenant_state(&tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
    if let Some(crate::FindingsCommand::Show(show)) = &args.command {
        return finding_show(service, &tenant, show, at, out);
    }
    let scope = args.scope.as_deref().map(|s| service.scope(&tenant, s)).transpose()?;
    let mut records = service.findings(&tenant, scope.as_ref())?;
    if !args.all {
        records.retain(|r| r.status == FindingStatus::Open);
    }
    // Most urgent first.
    records.sort_by(|a, b| {
        (a.finding.severity, &a.finding.rule_id, &a.finding.finding_id).cmp(&(
            b.finding.severity,
            &b.finding.rule_id,
            &b.finding.finding_id,
        ))
    });
    if args.sarif {
        print_json(out, &crate::report::sarif(tenant.as_str(), &records, at))?;
        return Ok(EXIT_OK);
    }
    if args.junit {
        write!(out, "{}", crate::report::junit(tenant.as_str(), &records, at))?;
        return Ok(EXIT_OK);
    }
    let posture = scope.as_ref().map(|s| service.posture(&tenant, s)).transpose()?;
    if args.json {
        let listed: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r)?;
                value["lifecycle"] = json!(r.lifecycle(at));
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        // A scope's findings come with its posture digest: what `approve --posture` names.
        match &posture {
            Some(p) => print_json(
                out,
                &json!({
                    "tenant": tenant,
                    "scope": p.scope,
                    "posture_digest": p.digest,
                    "log_position": p.position,
                    "findings": listed,
                }),
            )?,
            None => print_json(out, &listed)?,
        }
        return Ok(EXIT_OK);
    }
    writeln!(out, "{} finding(s)", records.len())?;
    if !records.is_empty() {
        render::findings_to(out, &records, at)?;
        writeln!(out)?;
    }
    if let Some(p) = posture {
        writeln!(out, "{}", posture_line(&p, false))?;
    }
    Ok(EXIT_OK)
}

/// `sv0 findings show ID`: one finding in full.
pub(crate) fn finding_show(
    service: &Service<impl sv0_log::EventLog>,
    tenant: &sv0_domain::TenantId,
    show: &crate::FindingShowArgs,
    at: Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let records = service.findings(tenant, None)?;
    let Some(r) = records.iter().find(|r| r.finding.finding_id == show.id) else {
        let ids = records.iter().map(|r| r.finding.finding_id.as_str());
        bail!(
            "no finding {} in tenant {tenant}{} (`sv0 findings --all` lists them)",
            show.id,
            sv0_service::scopes::did_you_mean(&show.id, ids)
        );
    };
    if show.json {
        let mut value = serde_json::to_value(r)?;
        value["lifecycle"] = json!(r.lifecycle(at));
        print_json(out, &value)?;
        return Ok(EXIT_OK);
    }
    let f = &r.finding;
    writeln!(out, "{} {} ({}): {}", f.finding_id, f.rule_id, f.severity.as_str(), f.title)?;
    writeln!(out, "status:    {}", r.lifecycle(at).as_str())?;
    writeln!(out, "subject:   {}", f.subject)?;
    writeln!(out, "summary:   {}", f.summary)?;
    writeln!(out, "opened:    {} (log position {})", r.opened_at, r.opened_seq)?;
    if let (Some(at), Some(seq)) = (r.resolved_at, r.resolved_seq) {
        writeln!(out, "resolved:  {at} (log position {seq})")?;
    }
    if let Some(a) = &r.acknowledgement {
        writeln!(out, "acknowledged by {} on {}, until {}", a.by, a.at, a.due.date())?;
    }
    writeln!(out, "workloads: {}", f.workloads.join(", "))?;
    writeln!(out, "paths:     {}", f.path_ids.join(", "))?;
    writeln!(out, "records:   {}", f.records.join(", "))?;
    writeln!(out, "remediation:")?;
    for action in &f.remediation {
        writeln!(out, "  - {} ({} {})", action.text, action.action, action.record_id)?;
    }
    Ok(EXIT_OK)
}

pub(crate) fn rules(args: &RulesArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    use sv0_domain::findings::CATALOGUE;
    if args.json {
        print_json(out, &CATALOGUE.as_slice())?;
    } else if args.markdown {
        write!(out, "{}", crate::report::rules_markdown())?;
    } else {
        writeln!(out, "{} rules", CATALOGUE.len())?;
        writeln!(out, "{}", render::rules(&CATALOGUE))?;
    }
    Ok(EXIT_OK)
}

/// The posture line under a scope's paths or findings; a historical one (`--as-of`) is for
/// comparing with an approval's digest, not for approving.
pub(crate) fn posture_line(p: &sv0_service::Posture, historical: bool) -> String {
    if historical {
        return format!("posture of scope {} at log position {}: {}", p.scope, p.position, p.digest);
    }
    format!(
        "posture of scope {}: {}@{} (approve exactly this with `sv0 approve --scope {} --posture {}@{}`)",
        p.scope, p.digest, p.position, p.scope, p.digest, p.position
    )
}

pub(crate) fn review(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ReviewArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let review = service.review(&tenant, &scope)?;
    if args.json {
        print_json(out, &review)?;
        return Ok(EXIT_OK);
    }
    let at = service.views().tenant_state(&tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
    write!(out, "{}", render::review(&review, at))?;
    Ok(EXIT_OK)
}

pub(crate) fn delta(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: DeltaArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let report = service.delta(&tenant, &scope)?;
    if args.json {
        print_json(
            out,
            &json!({
                "tenant": tenant,
                "scope": report.scope,
                "baseline_version": report.baseline_version,
                // `entries`, as the API names them; `delta` is the former name, kept for one
                // release for scripts that read it.
                "entries": report.entries,
                "delta": report.entries,
                "verification": report.verification,
                "disposition": report.disposition,
                "planned_missing": report.planned_missing,
            }),
        )?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{} change(s) in scope {} against baseline v{}; {}",
        report.entries.len(),
        report.scope,
        report.baseline_version,
        report.verification.summary
    )?;
    if !report.entries.is_empty() {
        writeln!(out, "{}", render::delta(&report.entries))?;
    }
    let undeclared: Vec<_> = report
        .entries
        .iter()
        .filter(|e| {
            matches!(
                e.intent,
                Some(sv0_domain::intent::IntentStatus::Unintended | sv0_domain::intent::IntentStatus::Unreviewed)
            )
        })
        .collect();
    if !undeclared.is_empty() {
        writeln!(
            out,
            "{} addition(s) nobody declared: remove them, or approve them with a declared intent (sv0 approve --intent FILE):",
            undeclared.len()
        )?;
        for e in &undeclared {
            writeln!(
                out,
                "  • {} {} → {} as {} ({}: {})",
                e.intent.map_or("", |i| i.as_str()),
                e.workload.name,
                e.destination.name,
                e.identity.name,
                e.kind,
                render::permissions(if e.added_permissions.is_empty() { &e.permissions } else { &e.added_permissions })
            )?;
        }
    }
    let flagged: Vec<_> =
        report.entries.iter().filter(|e| e.flagged || undeclared.iter().any(|u| std::ptr::eq(*u, *e))).collect();
    if !flagged.is_empty() {
        writeln!(out, "Remediation for the {} flagged or undeclared change(s):", flagged.len())?;
        // One record can confer several paths (an assignment above the containers it opens):
        // each change to make is listed once.
        let mut listed = std::collections::BTreeSet::new();
        for entry in flagged {
            for action in &entry.remediation_actions {
                if listed.insert((&action.record_id, &action.text)) {
                    writeln!(out, "  • {}", action.text)?;
                }
            }
        }
    }
    if !report.planned_missing.is_empty() {
        writeln!(out, "{} planned addition(s) that did not appear:", report.planned_missing.len())?;
        for item in &report.planned_missing {
            writeln!(
                out,
                "  • {} → {} ({}): {}",
                item.identity_name.as_deref().or(item.identity.as_deref()).unwrap_or("*"),
                item.destination.as_deref().unwrap_or("*"),
                render::permissions(&item.permissions),
                item.planned_by.as_deref().unwrap_or("")
            )?;
        }
    }
    let disposition = &report.disposition;
    writeln!(out, "Disposition: {}", disposition.decision)?;
    for reason in &disposition.reasons {
        writeln!(out, "  {} ({}): {}", reason.rule, reason.decision, reason.text)?;
    }
    if let Some(rollback) = &disposition.rollback {
        writeln!(out, "Full rollback advised: {}", rollback.reasons.join("; "))?;
    }
    Ok(EXIT_OK)
}

pub(crate) fn scopes(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let known = service.known_scopes(&tenant)?;
    if json {
        print_json(out, &known)?;
        return Ok(EXIT_OK);
    }
    let mut table = render::table(&["Scope", "Kind", "Selects", "Baseline"]);
    let baseline = |scope: &str| known.baselined.get(scope).map_or_else(|| "-".to_string(), |v| format!("v{v}"));
    for (kind, list) in [("project", &known.projects), ("tag", &known.tags)] {
        for (scope, workloads) in list {
            table.add_row(vec![scope.clone(), kind.to_string(), format!("{workloads} workload(s)"), baseline(scope)]);
        }
    }
    for (scope, version) in &known.baselined {
        if !known.projects.contains_key(scope) && !known.tags.contains_key(scope) {
            table.add_row(vec![scope.clone(), "baselined".to_string(), "-".to_string(), format!("v{version}")]);
        }
    }
    writeln!(
        out,
        "{} project(s), {} tag(s), {} baselined scope(s) in tenant {tenant}; also workload:ID, all, and commas for unions",
        known.projects.len(),
        known.tags.len(),
        known.baselined.len()
    )?;
    writeln!(out, "{table}")?;
    Ok(EXIT_OK)
}

pub(crate) fn baselines(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: BaselinesArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scopes = match args.scope.as_deref() {
        Some(text) => vec![service.scope(&tenant, text)?],
        None => service.views().baselines(&tenant)?.into_iter().map(|h| h.scope).collect(),
    };
    let heads = service.views().baselines(&tenant)?;
    let mut all = Vec::new();
    for scope in &scopes {
        let head = heads.iter().find(|h| &h.scope == scope);
        for version in service.views().baseline_history(&tenant, scope)? {
            let state = head.map(|h| h.state_of(version.version));
            let drifted = head.filter(|h| h.version == version.version).and_then(|h| h.drifted.clone());
            all.push((version, state, drifted));
        }
    }
    if args.json {
        let listed: Vec<serde_json::Value> = all
            .iter()
            .map(|(version, state, drifted)| {
                let mut value = serde_json::to_value(version)?;
                value["state"] = json!(state);
                value["drifted"] = json!(drifted);
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        print_json(out, &listed)?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "{} baseline version(s) in tenant {tenant}", all.len())?;
    if !all.is_empty() {
        let rows: Vec<(sv0_projections::Baseline, String)> = all
            .into_iter()
            .map(|(version, state, drifted)| {
                let mut text = state.map_or("-", |s| s.as_str()).to_string();
                if let Some(d) = drifted {
                    text = format!("{text} since {} ({} path(s), {})", d.since, d.paths, d.decision);
                }
                (version, text)
            })
            .collect();
        writeln!(out, "{}", render::baselines(&rows))?;
    }
    Ok(EXIT_OK)
}
