//! Human-readable tables. Names in tables, ids in `--json`.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use sv0_domain::Timestamp;
use sv0_domain::delta::DeltaEntry;
use sv0_domain::findings::Rule;
use sv0_domain::model::Permission;
use sv0_domain::paths::AuthorityPath;
use sv0_projections::{Baseline, FindingRecord};

/// A table in SV0's house style.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

/// A table whose node cells hold a name and, under it, an id (`named`): rows are ruled apart so
/// that a row's two lines read as one path.
fn ruled(header: &[&str]) -> Table {
    let mut table = table(header);
    table.load_style(comfy_table::presets::UTF8_FULL);
    table
}

/// `read/write` style permission text.
pub fn permissions(list: &[Permission]) -> String {
    list.iter().map(Permission::as_str).collect::<Vec<_>>().join("/")
}

/// A table of paths.
pub fn paths(paths: &[AuthorityPath]) -> Table {
    let mut t = ruled(&[
        "Workload\nid",
        "Identity\nid",
        "Destination\nid",
        "Domain\nid",
        "Permissions",
        "Grade",
        "Egress",
        "Owner",
    ]);
    for p in paths {
        let domain = if p.domain.sensitive { format!("{} (sensitive)", p.domain.name) } else { p.domain.name.clone() };
        t.add_row(vec![
            named(&p.workload.name, &p.workload.id),
            named(&p.identity.name, &p.identity.id),
            named(&p.destination.name, &p.destination.id),
            named(&domain, &p.domain.id),
            permissions(&p.permissions),
            p.grade.to_string(),
            p.egress.to_string(),
            p.owner_state.to_string(),
        ]);
    }
    if let Some(column) = t.column_mut(5) {
        column.set_cell_alignment(CellAlignment::Center);
    }
    t
}

/// A cell naming a node: its name, and under it the id that the filters (`--workload`,
/// `--identity`, `--destination`, `--domain`) and declared intents take, when that differs.
fn named(name: &str, id: &str) -> String {
    if name == id || name.is_empty() { id.to_string() } else { format!("{name}\n{id}") }
}

/// A table of findings.
pub fn findings(records: &[FindingRecord], at: Timestamp) -> String {
    let mut out = Vec::new();
    // Writing into memory does not fail.
    let _ = findings_to(&mut out, records, at);
    String::from_utf8_lossy(&out).into_owned()
}

/// The findings table written row by row as it is formatted: the memory it takes beyond the
/// records is one row's (a table of 300,000 findings built whole took gigabytes), in the look
/// of the other tables.
pub fn findings_to(out: &mut dyn std::io::Write, records: &[FindingRecord], at: Timestamp) -> std::io::Result<()> {
    const HEADER: [&str; 7] = ["Finding", "Rule", "Severity", "Status", "Summary", "Remediation", "Acknowledged"];
    let row = |r: &FindingRecord| -> [String; 7] {
        let remediation = match r.finding.remediation.as_slice() {
            [] => String::new(),
            [one] => one.text.clone(),
            [first, rest @ ..] => {
                format!("{} (+{} more: `sv0 findings show {}`)", first.text, rest.len(), r.finding.finding_id)
            }
        };
        let ack = r
            .acknowledgement
            .as_ref()
            .map_or_else(String::new, |a| format!("by {} until {}", a.by, date(&a.due.to_rfc3339())));
        [
            r.finding.finding_id.clone(),
            r.finding.rule_id.clone(),
            r.finding.severity.as_str().to_string(),
            r.lifecycle(at).as_str().to_string(),
            r.finding.summary.replace(['\n', '\r'], " "),
            remediation.replace(['\n', '\r'], " "),
            ack,
        ]
    };
    // Column widths: a first pass that keeps only numbers.
    let mut widths = HEADER.map(|h| h.chars().count());
    for r in records {
        for (w, cell) in widths.iter_mut().zip(row(r)) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule = |left: &str, fill: &str, mid: &str, right: &str| -> String {
        let cells: Vec<String> = widths.iter().map(|w| fill.repeat(w + 2)).collect();
        format!("{left}{}{right}", cells.join(mid))
    };
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count()))).collect();
        format!("│{}│", padded.join("┆"))
    };
    writeln!(out, "{}", rule("┌", "─", "┬", "┐"))?;
    writeln!(out, "{}", line(&HEADER.map(str::to_string)))?;
    writeln!(out, "{}", rule("╞", "═", "╪", "╡"))?;
    for r in records {
        writeln!(out, "{}", line(&row(r)))?;
    }
    write!(out, "{}", rule("└", "─", "┴", "┘"))
}

/// The review document of a scope, as text: what the analyst reads, then the digest to approve.
pub fn review(r: &sv0_service::review::Review, at: Timestamp) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let counts = |map: &std::collections::BTreeMap<String, usize>| {
        map.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(out, "Review of scope {} of tenant {} (log position {})", r.scope, r.tenant, r.log_position);
    let _ = match &r.baseline {
        Some(b) => writeln!(
            out,
            "Baseline in force: v{} ({}), approved by {} at {}, {} path(s); {}",
            b.version,
            b.state.as_str(),
            b.approver,
            b.approved_at,
            b.paths,
            match b.intent_items {
                Some(n) => format!("{n} intended addition(s) declared"),
                None => "no intent declared".to_string(),
            }
        ),
        None => writeln!(out, "Baseline in force: none (the scope was never approved)"),
    };
    let c = &r.counts;
    let _ = writeln!(out, "\n{} path(s), {} into a sensitive domain", c.paths, c.sensitive);
    let _ = writeln!(out, "  by grade:     {}", counts(&c.by_grade));
    let _ = writeln!(out, "  by egress:    {}", counts(&c.by_egress));
    let _ = writeln!(out, "  by ownership: {}", counts(&c.by_owner_state));
    if !r.paths.is_empty() {
        let _ = writeln!(out, "{}", paths(&r.paths));
    }
    let _ = writeln!(out, "\n{} open finding(s)", r.findings.len());
    if !r.findings.is_empty() {
        let _ = writeln!(out, "{}", findings(&r.findings, at));
    }
    let _ = writeln!(out, "\nGovernance conditions:{}", if r.governance.is_empty() { " none" } else { "" });
    for g in &r.governance {
        let _ = writeln!(out, "  • {} — {} ({}): {}", g.condition, g.title, g.rule, g.findings.join(", "));
    }
    let _ = writeln!(out, "\nEvidence gaps: {}", r.evidence_gaps.summary);
    let _ = writeln!(out, "\nPosture: {}@{}", r.posture_digest, r.log_position);
    let _ = writeln!(
        out,
        "Approve exactly this: sv0 approve --scope {} --posture {}@{} --note ... [--intent FILE]",
        r.scope, r.posture_digest, r.log_position
    );
    out
}

/// A what-if report as text: what the plan does, what SV0 left out, the predicted delta with
/// the plan resource behind each change, the findings it would open and the gates' decision.
pub fn whatif(r: &sv0_service::whatif::WhatIfReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let against =
        r.baseline_version.map_or_else(|| "its paths now (no baseline)".to_string(), |v| format!("baseline v{v}"));
    let _ = writeln!(
        out,
        "What-if of a {} plan ({}) on scope {} against {}: {} change(s) SV0 models, {} skipped, {} unchanged",
        r.plan_format,
        r.plan_digest,
        r.scope,
        against,
        r.changes.len(),
        r.skipped.len(),
        r.unchanged
    );
    let _ = writeln!(
        out,
        "Paths: {} now → {} after the plan ({} workload(s) recomputed); nothing was recorded",
        r.paths_before, r.paths_after, r.workloads_recomputed
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped (not modelled, so not predicted):");
        for s in &r.skipped {
            let _ = writeln!(out, "  • {} ({}): {}", s.address, s.resource_type, s.reason);
        }
    }
    let entries: Vec<DeltaEntry> = r.entries.iter().map(|e| e.entry.clone()).collect();
    let _ = writeln!(out, "\n{} predicted change(s) against {against}", entries.len());
    if !entries.is_empty() {
        let _ = writeln!(out, "{}", delta(&entries));
    }
    for e in r.entries.iter().filter(|e| !e.caused_by.is_empty()) {
        let _ = writeln!(
            out,
            "  • {} {} → {} as {}: {}",
            e.entry.kind,
            e.entry.workload.name,
            e.entry.destination.name,
            e.entry.identity.name,
            e.caused_by.join(", ")
        );
    }
    if !r.findings_opened.is_empty() {
        let _ = writeln!(out, "\nFindings the plan would open:");
        for f in &r.findings_opened {
            let _ = writeln!(out, "  • {} ({}): {}", f.rule_id, f.severity.as_str(), f.summary);
        }
    }
    let _ = writeln!(out, "\nDisposition after the plan: {}", r.disposition.decision);
    for reason in &r.disposition.reasons {
        let _ = writeln!(out, "  {} ({}): {}", reason.rule, reason.decision, reason.text);
    }
    out
}

/// The rule catalogue.
pub fn rules(rules: &[Rule]) -> Table {
    let mut t = table(&["Rule", "Version", "Kind", "Maturity", "Severity", "Title", "OWASP"]);
    for rule in rules {
        t.add_row(vec![
            rule.id.to_string(),
            rule.version.to_string(),
            rule.kind.as_str().to_string(),
            rule.maturity.as_str().to_string(),
            rule.severity.as_str().to_string(),
            rule.title.to_string(),
            rule.owasp.join(", "),
        ]);
    }
    t
}

/// A table of delta entries.
pub fn delta(entries: &[DeltaEntry]) -> Table {
    let mut t = ruled(&[
        "Change",
        "Workload\nid",
        "Identity\nid",
        "Destination\nid",
        "Domain\nid",
        "Permissions",
        "Grade",
        "Intent",
        "Flag",
    ]);
    // Flagged changes first, then by workload and destination: the order a reviewer reads in.
    let mut entries: Vec<&DeltaEntry> = entries.iter().collect();
    entries.sort_by(|a, b| {
        (!a.flagged, &a.workload.name, &a.destination.name, a.kind).cmp(&(
            !b.flagged,
            &b.workload.name,
            &b.destination.name,
            b.kind,
        ))
    });
    for e in entries {
        let perms = if e.added_permissions.is_empty() || e.added_permissions == e.permissions {
            permissions(&e.permissions)
        } else {
            format!("{} (+{})", permissions(&e.permissions), permissions(&e.added_permissions))
        };
        let grade = match e.previous_grade {
            Some(before) => format!("{before}→{}", e.grade),
            None => e.grade.to_string(),
        };
        let flag = if e.flagged { format!("⚠ {}", e.flags.join("; ")) } else { String::new() };
        t.add_row(vec![
            e.kind.to_string(),
            named(&e.workload.name, &e.workload.id),
            named(&e.identity.name, &e.identity.id),
            named(&e.destination.name, &e.destination.id),
            named(&e.domain.name, &e.domain.id),
            perms,
            grade,
            e.intent.map_or("", |i| i.as_str()).to_string(),
            flag,
        ]);
    }
    t
}

/// A table of baseline versions.
pub fn baselines(list: &[(Baseline, String)]) -> Table {
    let mut t = table(&["Scope", "Version", "State", "Approver", "Approved at", "Paths", "Acknowledged", "Note"]);
    for (b, state) in list {
        t.add_row(vec![
            b.scope.canonical(),
            format!("v{}", b.version),
            state.clone(),
            b.approver.clone(),
            b.approved_at.to_rfc3339(),
            b.paths.len().to_string(),
            b.acknowledged.len().to_string(),
            b.note.clone(),
        ]);
    }
    t
}

/// The date part of an RFC 3339 time.
pub fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}
