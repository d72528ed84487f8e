//! Overview (`/`): every scope with its baseline state, the tenant's posture drawn by grade,
//! egress and ownership, open findings by severity, the scans and the latest signals.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use maud::html;
use sv0_domain::findings::Severity;
use sv0_log::EventLog;
use sv0_projections::FindingStatus;

use super::layout::{self, Nav, Part, bar, encode, with_as_of};
use super::{AsOfQuery, Page, Viewer, query};

/// Signals shown.
const RECENT_SIGNALS: usize = 10;

/// Scans shown.
const RECENT_SCANS: usize = 10;

pub(crate) async fn overview<L: EventLog + Clone>(
    viewer: Viewer<L>,
    q: Result<Query<AsOfQuery>, QueryRejection>,
) -> Page {
    let q = query(q)?;
    let (queries, history) = viewer.queries(q.as_of.as_deref()).await?;
    let tenant = viewer.tenant();
    let views = queries.views();
    let state = views.tenant_state(tenant)?;
    let posture = state.as_ref().map(|s| s.posture.clone()).unwrap_or_default();
    let heads = views.baselines(tenant)?;
    let known = queries.known_scopes(tenant)?;
    let mut baselined = Vec::new();
    for head in &heads {
        let approved = views.baseline(tenant, &head.scope, None)?;
        baselined.push((head, approved));
    }
    let unbaselined: Vec<&String> =
        known.projects.keys().chain(known.tags.keys()).filter(|s| !known.baselined.contains_key(s.as_str())).collect();
    let findings = views.findings(tenant, None)?;
    let open: Vec<_> = findings.iter().filter(|r| r.status == FindingStatus::Open).collect();
    let by_severity: Vec<(Severity, usize)> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
        .into_iter()
        .map(|s| (s, open.iter().filter(|r| r.finding.severity == s).count()))
        .collect();
    let gaps = open.iter().filter(|r| r.finding.rule_id == sv0_domain::findings::EVIDENCE_GAP.id).count();
    let mut scans = views.scans(tenant)?;
    scans.sort_by_key(|s| s.completed_seq);
    let mut applied: Vec<_> = scans.iter().filter(|s| s.applied_seq.is_some()).collect();
    applied.sort_by_key(|s| s.applied_seq);
    let series: Vec<_> = applied.iter().filter_map(|s| s.observed_at.map(|at| (at, s.paths_total))).collect();
    let signals = queries.signals_after(Some(tenant), 0)?;
    let h = history.as_ref();
    let g = &posture.by_grade;
    let e = &posture.by_egress;
    let o = &posture.by_owner_state;
    let body = html! {
        section aria-labelledby="posture" {
            h2 id="posture" { "Posture" }
            div.cards {
                div.card { div.big { (posture.paths_total) } "authority paths" }
                div.card { div.big { (posture.sensitive_paths) } "into sensitive data" }
                div.card { div.big { (open.len()) } "open findings" }
                div.card { div.big { (posture.evidence_gaps) } "paths that can never be confirmed (execution logs off)" }
            }
            (bar("By evidence grade", &[
                Part { label: "A confirmed", count: g.a, class: "a" },
                Part { label: "B inferred", count: g.b, class: "b" },
                Part { label: "C standing", count: g.c, class: "c" },
            ]))
            (bar("By egress class", &[
                Part { label: "LLM API", count: e.llm_api, class: "llm_api" },
                Part { label: "external HTTP", count: e.external_http, class: "external_http" },
                Part { label: "cloud storage", count: e.cloud_storage, class: "cloud_storage" },
                Part { label: "internal", count: e.internal, class: "internal" },
            ]))
            (bar("By ownership", &[
                Part { label: "assigned", count: o.assigned, class: "assigned" },
                Part { label: "decayed", count: o.decayed, class: "decayed" },
                Part { label: "orphaned", count: o.orphaned, class: "orphaned" },
            ]))
        }
        section aria-labelledby="scopes" {
            h2 id="scopes" { "Scopes" }
            table {
                caption { "Each scope's baseline: approved, drifted since a scan, or never approved" }
                thead { tr { th scope="col" { "Scope" } th scope="col" { "Baseline" } th scope="col" { "State" } th scope="col" { "Approved" } th scope="col" { "Delta" } } }
                tbody {
                    @for (head, approved) in &baselined {
                        @let scope = head.scope.canonical();
                        tr {
                            td { a href=(with_as_of(&format!("/scopes/{}", encode(&scope)), h)) { (scope) } }
                            td { "v" (head.version) }
                            td {
                                @if let Some(drift) = &head.drifted {
                                    span.state-drifted { "drifted" } " since " (layout::day(drift.since)) " (" (drift.paths) " paths, " (drift.decision.as_str()) ")"
                                } @else {
                                    span.state-approved { "approved" }
                                }
                            }
                            td { @if let Some(b) = approved { (layout::day(b.approved_at)) " by " (b.approver) } }
                            td { a href=(format!("/scopes/{}/delta", encode(&scope))) { "delta" } }
                        }
                    }
                    @for scope in &unbaselined {
                        tr {
                            td { a href=(with_as_of(&format!("/scopes/{}", encode(scope)), h)) { (scope) } }
                            td { "—" }
                            td { span.state-none { "not approved yet" } }
                            td {}
                            td {}
                        }
                    }
                }
            }
        }
        section aria-labelledby="findings" {
            h2 id="findings" { "Open findings" }
            ul.legend {
                @for (severity, count) in &by_severity {
                    li { (layout::severity(severity.as_str())) " " strong { (count) } }
                }
                li { "evidence gaps " strong { (gaps) } }
            }
        }
        section aria-labelledby="scans" {
            h2 id="scans" { "Scans" }
            (layout::sparkline("Paths after each applied scan", &series))
            table {
                caption { "The latest scans, newest first" }
                thead { tr { th scope="col" { "Scan" } th scope="col" { "Observed" } th scope="col" { "Trigger" } th scope="col" { "Status" } th scope="col" { "Entities" } th scope="col" { "Paths" } } }
                tbody {
                    @for scan in scans.iter().rev().take(RECENT_SCANS) {
                        tr {
                            td.mono { (scan.scan_id) }
                            td { @if let Some(at) = scan.observed_at { (layout::time(at)) } }
                            td { @if let Some(t) = scan.trigger { (t.as_str()) } }
                            td { (format!("{:?}", scan.status).to_lowercase()) @if let Some(reason) = &scan.reason { br; span.muted { (reason) } } }
                            td { (scan.entity_count) }
                            td { (scan.paths_total) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="signals" {
            h2 id="signals" { "Latest signals" }
            @if signals.is_empty() { p.muted { "No signal yet." } }
            ul {
                @for signal in signals.iter().rev().take(RECENT_SIGNALS) {
                    li { code { (signal.signal_type.name()) } " " (signal.subject) " · " (layout::time(signal.time)) }
                }
            }
        }
    };
    super::html(layout::page(&viewer.frame("Overview", Nav::Overview, h), body))
}
