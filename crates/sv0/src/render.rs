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

/// `read/write` style permission text.
pub fn permissions(list: &[Permission]) -> String {
    list.iter().map(Permission::as_str).collect::<Vec<_>>().join("/")
}

/// A table of paths.
pub fn paths(paths: &[AuthorityPath]) -> Table {
    let mut t = table(&["Workload", "Identity", "Destination", "Domain", "Permissions", "Grade", "Egress", "Owner"]);
    for p in paths {
        let domain = if p.domain.sensitive { format!("{} (sensitive)", p.domain.name) } else { p.domain.name.clone() };
        t.add_row(vec![
            p.workload.name.clone(),
            p.identity.name.clone(),
            p.destination.name.clone(),
            domain,
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

/// A table of findings.
pub fn findings(records: &[FindingRecord], at: Timestamp) -> Table {
    let mut t = table(&["Finding", "Rule", "Severity", "Status", "Summary", "Acknowledged"]);
    for r in records {
        let ack = r
            .acknowledgement
            .as_ref()
            .map_or_else(String::new, |a| format!("by {} until {}", a.by, date(&a.due.to_rfc3339())));
        t.add_row(vec![
            r.finding.finding_id.clone(),
            r.finding.rule_id.clone(),
            r.finding.severity.as_str().to_string(),
            r.lifecycle(at).as_str().to_string(),
            r.finding.summary.clone(),
            ack,
        ]);
    }
    t
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
    let mut t = table(&["Change", "Workload", "Identity", "Destination", "Domain", "Permissions", "Grade", "Flag"]);
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
            e.workload.name.clone(),
            e.identity.name.clone(),
            e.destination.name.clone(),
            e.domain.name.clone(),
            perms,
            grade,
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
