//! Overview (`/`): every scope with its baseline state, the tenant's posture drawn by grade,
//! egress and ownership, open findings by severity, the scans and the latest signals.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use maud::html;
use sv0_domain::findings::Severity;
use sv0_log::EventLog;

use super::layout::{self, Nav, encode, with_as_of};
use super::{AsOfQuery, Page, Viewer, WebError, query};

/// Signals shown.
const RECENT_SIGNALS: usize = 10;

/// Scans shown.
const RECENT_SCANS: usize = 10;

/// What the Overview reads across the whole tenant: the scopes never approved and the latest
/// signals. It changes only when the views move, so it is kept per tenant with the views'
/// position and read again only after the log moved.
#[derive(Clone)]
pub(crate) struct Facts {
    unbaselined: Vec<String>,
    signals: Vec<sv0_service::signals::Signal>,
}

/// The `Facts` of each tenant, with the views' position they were read at.
#[derive(Default)]
pub struct FactsCache(std::sync::Mutex<std::collections::BTreeMap<sv0_domain::TenantId, (u64, Facts)>>);

fn facts<L: EventLog>(queries: &sv0_service::Queries<L>, tenant: &sv0_domain::TenantId) -> Result<Facts, WebError> {
    let known = queries.known_scopes(tenant)?;
    let unbaselined = known
        .projects
        .keys()
        .chain(known.tags.keys())
        .filter(|s| !known.baselined.contains_key(s.as_str()))
        .cloned()
        .collect();
    let mut signals = queries.latest_signals(tenant, RECENT_SIGNALS)?;
    // Newest first.
    signals.reverse();
    Ok(Facts { unbaselined, signals })
}

/// The tenant's facts now (from the cache while the views stand still), or as of a replay.
fn current_facts<L: EventLog>(
    viewer: &Viewer<L>,
    queries: &sv0_service::Queries<L>,
    historical: bool,
) -> Result<Facts, WebError> {
    let tenant = viewer.tenant();
    if historical {
        return facts(queries, tenant);
    }
    let position = queries.views().checkpoint()?;
    let cache = &viewer.s.overview_facts.0;
    if let Some((at, kept)) = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(tenant)
        && *at == position
    {
        return Ok(kept.clone());
    }
    let fresh = facts(queries, tenant)?;
    cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(tenant.clone(), (position, fresh.clone()));
    Ok(fresh)
}

pub(crate) async fn overview<L: EventLog + Clone>(
    viewer: Viewer<L>,
    q: Result<Query<AsOfQuery>, QueryRejection>,
) -> Page {
    let q = query(q)?;
    let (queries, history) = viewer.queries(q.as_of.as_deref()).await?;
    let tenant = viewer.tenant();
    let views = queries.views();
    let state = views.tenant_state(tenant)?;
    let (posture, open) = state.map(|s| (s.posture, s.open)).unwrap_or_default();
    let heads = views.baselines(tenant)?;
    let mut baselined = Vec::new();
    for head in &heads {
        let approved = views.baseline_approval(tenant, &head.scope, head.version)?;
        baselined.push((head, approved));
    }
    let Facts { unbaselined, signals } = current_facts(&viewer, &queries, history.is_some())?;
    let mut scans = views.scans(tenant)?;
    scans.sort_by_key(|s| s.completed_seq);
    let mut applied: Vec<_> = scans.iter().filter(|s| s.applied_seq.is_some()).collect();
    applied.sort_by_key(|s| s.applied_seq);
    let series: Vec<_> = applied.iter().filter_map(|s| s.observed_at.map(|at| (at, s.paths_total))).collect();
    let h = history.as_ref();
    let body = html! {
        section aria-labelledby="posture" {
            h2 id="posture" { "Posture" }
            div.cards {
                div.card { div.big { (posture.paths_total) } "authority paths" }
                div.card { div.big { (posture.sensitive_paths) } "into sensitive data" }
                div.card { div.big { (open.total()) } "open findings" }
                div.card { div.big { (posture.evidence_gaps) } "paths that can never be confirmed (execution logs off)" }
            }
            (layout::posture_bars(&posture, ["By evidence grade", "By egress class", "By ownership"]))
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
                @for severity in [Severity::Critical, Severity::High, Severity::Medium, Severity::Low] {
                    li { (layout::severity(severity.as_str())) " " strong { (open.of(severity)) } }
                }
                li { "evidence gaps " strong { (open.evidence_gaps) } }
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
                            td {
                                @if let Some(t) = scan.trigger { (t.as_str()) }
                                @if scan.mode == Some(sv0_domain::snapshot::CoverageMode::Delta) { " · delta" }
                            }
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
                @for signal in &signals {
                    li { code { (signal.signal_type.name()) } " " (signal.subject) " · " (layout::time(signal.time)) }
                }
            }
        }
    };
    super::html(layout::page(&viewer.frame("Overview", Nav::Overview, h), body))
}
