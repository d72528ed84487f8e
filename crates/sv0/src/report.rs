//! The rule catalogue and findings in the formats other tools read: a Markdown catalogue (the
//! committed `docs/rules.md` is this output, checked by a test), SARIF 2.1.0 for code-scanning
//! views and JUnit XML for CI test reports.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sv0_domain::Timestamp;
use sv0_domain::findings::{CATALOGUE, Rule, Severity};
use sv0_projections::{FindingRecord, Lifecycle};

/// The SARIF level of a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// The catalogue as Markdown: a summary table, then one section per rule.
pub fn rules_markdown() -> String {
    let mut md = String::new();
    md.push_str("# SV0 rule catalogue\n\n");
    md.push_str(
        "Generated from the code by `sv0 rules --markdown` (`crates/domain/src/findings.rs`); a test fails when\n\
         this file and the code disagree. A finding's id is stable: the same rule on the same subject always\n\
         gives the same id. Every finding lists the paths and source records behind it and the exact change\n\
         that removes it. OWASP ids are from the OWASP Top 10 for Agentic Applications (2026).\n\n",
    );
    md.push_str("| id | version | kind | maturity | severity | title | OWASP |\n|---|---|---|---|---|---|---|\n");
    for rule in &CATALOGUE {
        let _ = writeln!(
            md,
            "| [{id}](#{anchor}) | {version} | {kind} | {maturity} | {severity} | {title} | {owasp} |",
            id = rule.id,
            anchor = rule.id.to_ascii_lowercase(),
            version = rule.version,
            kind = rule.kind.as_str(),
            maturity = rule.maturity.as_str(),
            severity = rule.severity.as_str(),
            title = rule.title,
            owasp = rule.owasp.join(", "),
        );
    }
    for rule in &CATALOGUE {
        let _ = write!(
            md,
            "\n## {id}\n\n**{title}** (version {version}, {kind} rule, {maturity}, {severity}; OWASP {owasp})\n\n\
             - Why it matters: {why}\n- Triggered by: {trigger}\n- Remediation: {remediation}\n",
            id = rule.id,
            title = rule.title,
            version = rule.version,
            kind = rule.kind.as_str(),
            maturity = rule.maturity.as_str(),
            severity = rule.severity.as_str(),
            owasp = if rule.owasp.is_empty() { "-".to_string() } else { rule.owasp.join(", ") },
            why = rule.why,
            trigger = rule.trigger,
            remediation = rule.remediation,
        );
    }
    md
}

/// One rule as a SARIF `reportingDescriptor`.
fn sarif_rule(rule: &Rule) -> Value {
    let mut tags: Vec<&str> = vec![rule.kind.as_str(), "security"];
    tags.extend(rule.owasp.iter().copied());
    json!({
        "id": rule.id,
        "name": rule.title,
        "shortDescription": { "text": rule.title },
        "fullDescription": { "text": rule.why },
        "help": {
            "text": format!("Triggered by: {}. Remediation: {}.", rule.trigger, rule.remediation),
            "markdown": format!("**Triggered by:** {}\n\n**Remediation:** {}", rule.trigger, rule.remediation),
        },
        "defaultConfiguration": { "level": level(rule.severity) },
        "properties": {
            "tags": tags,
            "version": rule.version.to_string(),
            "maturity": rule.maturity.as_str(),
            "owasp": rule.owasp,
        },
    })
}

/// Findings as one SARIF 2.1.0 log. Resolved findings are left out; acknowledged ones carry an
/// accepted external suppression naming the approver and the due date.
pub fn sarif(tenant: &str, records: &[FindingRecord], at: Timestamp) -> Value {
    let results: Vec<Value> = records
        .iter()
        .filter(|r| r.lifecycle(at) != Lifecycle::Resolved)
        .map(|r| {
            let f = &r.finding;
            let lifecycle = r.lifecycle(at);
            let mut result = json!({
                "ruleId": f.rule_id,
                "ruleIndex": CATALOGUE.iter().position(|rule| rule.id == f.rule_id),
                "level": level(f.severity),
                "message": { "text": f.summary },
                "locations": [{
                    "logicalLocations": [{
                        "name": f.subject,
                        "fullyQualifiedName": format!("{tenant}/{}", f.subject),
                        "kind": "resource",
                    }],
                }],
                "partialFingerprints": { "sv0FindingId/v1": f.finding_id },
                "properties": {
                    "findingId": f.finding_id,
                    "tenant": tenant,
                    "severity": f.severity.as_str(),
                    "lifecycle": lifecycle.as_str(),
                    "workloads": f.workloads,
                    "pathIds": f.path_ids,
                    "records": f.records,
                    "remediation": f.remediation.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(),
                },
            });
            if let (Lifecycle::Acknowledged, Some(ack)) = (lifecycle, &r.acknowledgement) {
                result["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": format!("acknowledged by {} until {}", ack.by, ack.due),
                }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "SV0",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": CATALOGUE.iter().map(sarif_rule).collect::<Vec<_>>(),
                },
            },
            "automationDetails": { "id": format!("sv0/{tenant}/") },
            "results": results,
        }],
    })
}

/// Escapes text for an XML attribute or element.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write other control characters, nor U+FFFE and U+FFFF.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Findings as a JUnit XML report: one test suite per rule, one failing test case per open or
/// overdue finding, one skipped test case per acknowledged finding, and one passing test case
/// for a rule with no finding, so CI systems show what was checked as well as what failed.
pub fn junit(tenant: &str, records: &[FindingRecord], at: Timestamp) -> String {
    let mut suites = String::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for rule in &CATALOGUE {
        let mine: Vec<&FindingRecord> =
            records.iter().filter(|r| r.finding.rule_id == rule.id && r.lifecycle(at) != Lifecycle::Resolved).collect();
        let mut cases = String::new();
        let (mut suite_failures, mut suite_skipped) = (0, 0);
        for r in &mine {
            let f = &r.finding;
            let _ = writeln!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml(&format!("sv0.{tenant}.{}", rule.id)),
                xml(&format!("{} {}", f.finding_id, f.subject))
            );
            match (r.lifecycle(at), &r.acknowledgement) {
                (Lifecycle::Acknowledged, Some(ack)) => {
                    suite_skipped += 1;
                    let _ = writeln!(
                        cases,
                        "      <skipped message=\"{}\"/>",
                        xml(&format!("acknowledged by {} until {}", ack.by, ack.due))
                    );
                }
                (lifecycle, _) => {
                    suite_failures += 1;
                    let prefix = if lifecycle == Lifecycle::Overdue { "overdue: " } else { "" };
                    let mut body = format!("{}\n\nRemediation:\n", f.summary);
                    for action in &f.remediation {
                        let _ = writeln!(body, "- {}", action.text);
                    }
                    let _ = write!(body, "\nRecords: {}\nPaths: {}", f.records.join(", "), f.path_ids.join(", "));
                    let _ = writeln!(
                        cases,
                        "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                        f.severity.as_str(),
                        xml(&format!("{prefix}{}", f.summary)),
                        xml(&body)
                    );
                }
            }
            cases.push_str("    </testcase>\n");
        }
        let count = mine.len().max(1);
        if mine.is_empty() {
            let _ = writeln!(
                cases,
                "    <testcase classname=\"{}\" name=\"no findings\"/>",
                xml(&format!("sv0.{tenant}.{}", rule.id))
            );
        }
        tests += count;
        failures += suite_failures;
        skipped += suite_skipped;
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{count}\" failures=\"{suite_failures}\" errors=\"0\" skipped=\"{suite_skipped}\">\n{cases}  </testsuite>\n",
            xml(&format!("{} {}", rule.id, rule.title))
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n{suites}</testsuites>\n",
        xml(&format!("sv0 findings of {tenant}"))
    )
}

#[cfg(test)]
mod tests {
    /// What XML 1.0 cannot hold (controls, U+FFFE, U+FFFF) is replaced, so reports stay
    /// well-formed whatever a name holds.
    #[test]
    fn xml_text_holds_no_character_xml_forbids() {
        assert_eq!(super::xml("a\u{fffe}b\u{ffff}c\u{1}d\te<"), "a\u{fffd}b\u{fffd}c\u{fffd}d\te&lt;");
    }
}
