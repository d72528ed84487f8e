//! Exposure Brief (`/scopes/{scope}`): what an analyst reviews before approving a scope — the
//! sensitive domains it reaches and by which paths, the grade mix, egress, ownership, findings,
//! governance conditions and evidence gaps — and, for approvers, the approve form bound to the
//! posture digest on the page. Delta (`/scopes/{scope}/delta`): after a deployment, what
//! changed against the baseline, intended or not, with remediation and verification.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use sv0_domain::Timestamp;
use sv0_domain::access::Permission;
use sv0_domain::events::Acknowledgement;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_log::EventLog;

use super::layout::{self, Nav, encode, with_as_of};
use super::{Page, Viewer, WebError, field, form, query, scope_of};
use crate::problem::Problem;

/// Paths per page of the brief.
const PAGE_PATHS: usize = 100;

/// Paths shown per sensitive domain in the blast radius (the rest through the domain filter).
const RADIUS_PATHS: usize = 20;

/// The brief's query: history point, filters, page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BriefQuery {
    as_of: Option<String>,
    grade: Option<String>,
    domain: Option<String>,
    egress: Option<String>,
    identity: Option<String>,
    page: Option<usize>,
    approved: Option<u32>,
}

fn matches(path: &AuthorityPath, q: &BriefQuery) -> bool {
    let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == have);
    is(&q.grade, path.grade.as_str())
        && is(&q.domain, &path.domain.id)
        && is(&q.egress, path.egress.as_str())
        && is(&q.identity, &path.identity.id)
}

pub(crate) async fn brief<L: EventLog + Clone>(
    viewer: Viewer<L>,
    Path(scope): Path<String>,
    q: Result<Query<BriefQuery>, QueryRejection>,
) -> Page {
    let q = query(q)?;
    let scope = scope_of(&scope)?;
    let (queries, history) = viewer.queries(q.as_of.as_deref()).await?;
    let tenant = viewer.tenant();
    // A scope that selects nothing here (a typo, another tenant's name) is not found.
    let known = queries.known_scopes(tenant)?;
    let canonical = scope.canonical();
    let selects = known.projects.contains_key(&canonical)
        || known.tags.contains_key(&canonical)
        || known.baselined.contains_key(&canonical)
        || known.workloads.iter().any(|w| format!("workload:{w}") == canonical);
    if !selects {
        return Err(WebError(Problem::not_found(format!("tenant {tenant} has no scope {canonical}"))));
    }
    let review = queries.review(tenant, &scope)?;
    let h = history.as_ref();
    // The scope's paths counted as the tenant's posture is, for the same bars as the Overview.
    let summary = sv0_domain::assessment::PostureSummary::of(&review.paths);
    let g = &summary.by_grade;
    // The blast radius: each sensitive domain reached, with what reaches it.
    let mut radius: BTreeMap<(&str, &str), Vec<&AuthorityPath>> = BTreeMap::new();
    for path in review.paths.iter().filter(|p| p.domain.sensitive) {
        radius.entry((&path.domain.id, &path.domain.name)).or_default().push(path);
    }
    let shown: Vec<&AuthorityPath> = review.paths.iter().filter(|p| matches(p, &q)).collect();
    let page = q.page.unwrap_or(0);
    let pages = shown.len().div_ceil(PAGE_PATHS).max(1);
    let domains: BTreeSet<(&str, &str)> =
        review.paths.iter().map(|p| (p.domain.id.as_str(), p.domain.name.as_str())).collect();
    let identities: BTreeSet<(&str, &str)> =
        review.paths.iter().map(|p| (p.identity.id.as_str(), p.identity.name.as_str())).collect();
    let here = format!("/scopes/{}", encode(&canonical));
    let page_link = |n: usize| {
        let mut link = format!("{here}?page={n}");
        for (key, value) in
            [("grade", &q.grade), ("domain", &q.domain), ("egress", &q.egress), ("identity", &q.identity)]
        {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                link.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        with_as_of(&link, h)
    };
    let body = html! {
        @if let Some(version) = q.approved {
            div.notice role="status" { "Approved: baseline version " (version) " is locked." }
        }
        p {
            "Baseline: "
            @if let Some(b) = &review.baseline {
                "v" (b.version) " (" (format!("{:?}", b.state).to_lowercase()) "), approved by " (b.approver) " on " (layout::day(b.approved_at)) ", " (b.paths) " paths"
            } @else {
                span.state-none { "none: this scope was never approved" }
            }
            " · " a href=(format!("{here}/delta")) { "Delta against the baseline" }
        }
        section aria-labelledby="mix" {
            h2 id="mix" { "Grade mix" }
            p {
                strong { (g.a) " confirmed" } ", " strong { (g.b) " inferred" } ", "
                strong { (g.c) " standing" } " of " (summary.paths_total) " paths; " (summary.sensitive_paths) " reach sensitive data."
            }
            (layout::posture_bars(&summary, ["By evidence grade", "Egress boundaries", "Ownership"]))
        }
        section aria-labelledby="radius" {
            h2 id="radius" { "Sensitive data reachable (blast radius)" }
            @if radius.is_empty() { p { "No path of this scope reaches a sensitive domain." } }
            @for ((id, name), paths) in &radius {
                @let writes = paths.iter().filter(|p| p.modifies()).count();
                @let who: BTreeSet<&str> = paths.iter().map(|p| p.identity.name.as_str()).collect();
                h3 { (name) " " span.muted { "(" (id) ")" } }
                p { (paths.len()) " paths, " (writes) " that can change data, through " (who.iter().take(10).copied().collect::<Vec<_>>().join(", ")) @if who.len() > 10 { " and " (who.len() - 10) " more identities" } "." }
                (path_table(paths.iter().take(RADIUS_PATHS).copied(), h))
                @if paths.len() > RADIUS_PATHS {
                    p { a href=(with_as_of(&format!("{here}?domain={}#paths", encode(id)), h)) { "All " (paths.len()) " paths into " (name) } }
                }
            }
        }
        section aria-labelledby="paths" {
            h2 id="paths" { "Every path" }
            form.filters method="get" action=(here) {
                @if let Some(history) = h { input type="hidden" name="as_of" value=(history.asked); }
                label { "Grade" select name="grade" {
                    option value="" { "any" }
                    @for g in ["A", "B", "C"] { option value=(g) selected[q.grade.as_deref() == Some(g)] { (g) } }
                } }
                label { "Domain" select name="domain" {
                    option value="" { "any" }
                    @for (id, name) in &domains { option value=(id) selected[q.domain.as_deref() == Some(*id)] { (name) } }
                } }
                label { "Egress" select name="egress" {
                    option value="" { "any" }
                    @for e in sv0_domain::model::EgressClass::ALL { option value=(e.as_str()) selected[q.egress.as_deref() == Some(e.as_str())] { (e.as_str()) } }
                } }
                label { "Identity" select name="identity" {
                    option value="" { "any" }
                    @for (id, name) in &identities { option value=(id) selected[q.identity.as_deref() == Some(*id)] { (name) } }
                } }
                button type="submit" { "Filter" }
            }
            p { (shown.len()) " of " (review.paths.len()) " paths" @if pages > 1 { ", page " (page + 1) " of " (pages) } }
            (path_table(shown.iter().skip(page * PAGE_PATHS).take(PAGE_PATHS).copied(), h))
            @if pages > 1 {
                nav.pager aria-label="Pages of paths" {
                    @if page > 0 { a href=(page_link(page - 1)) rel="prev" { "Previous" } }
                    @if page + 1 < pages { a href=(page_link(page + 1)) rel="next" { "Next" } }
                }
            }
        }
        section aria-labelledby="findings" {
            h2 id="findings" { "Active findings" }
            @if review.findings.is_empty() { p { "No open finding." } }
            table {
                thead { tr { th scope="col" { "Severity" } th scope="col" { "Finding" } th scope="col" { "Remediation" } } }
                tbody {
                    @for r in &review.findings {
                        tr {
                            td { (layout::severity(r.finding.severity.as_str())) }
                            td { strong { (r.finding.title) } br; (r.finding.summary) br; code { (r.finding.finding_id) } }
                            td { @for a in &r.finding.remediation { pre.remediation { (a.text) } } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="governance" {
            h2 id="governance" { "Governance conditions" }
            @if review.governance.is_empty() { p { "None open." } }
            ul { @for cond in &review.governance { li { strong { (cond.title) } " (" (cond.condition) "): " (cond.findings.len()) " open" } } }
        }
        section aria-labelledby="gaps" {
            h2 id="gaps" { "Evidence gaps" }
            p { (review.evidence_gaps.summary) }
            ul { @for action in &review.evidence_gaps.actions { li { (action) } } }
        }
        section aria-labelledby="approve" {
            h2 id="approve" { "Approve" }
            p { "Posture digest: " code { (review.posture_digest) } " at log position " (review.log_position) "." }
            @if h.is_some() {
                p.muted { "A historical view cannot be approved." }
            } @else if viewer.may(Permission::Approve) {
                (approve_form(&here, &review, &viewer.session.csrf, &Prefill::default()))
            } @else {
                p.muted { "Only approvers can approve a scope; your roles do not include it." }
            }
        }
    };
    let title = format!("Exposure Brief: {canonical}");
    super::html(layout::page(&viewer.frame(&title, Nav::Scope, h), body))
}

fn path_table<'a>(paths: impl Iterator<Item = &'a AuthorityPath>, h: Option<&layout::History>) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Workload" } th scope="col" { "Identity" } th scope="col" { "Destination" }
                th scope="col" { "Domain" } th scope="col" { "Permissions" } th scope="col" { "Grade" } th scope="col" { "Egress" } th scope="col" { "Owner" }
            } }
            tbody {
                @for p in paths {
                    tr {
                        td { a href=(with_as_of(&format!("/paths/{}?workload={}", p.path_id, encode(&p.workload.id)), h)) { (p.workload.name) } }
                        td { (p.identity.name) }
                        td { (p.destination.name) }
                        td { (p.domain.name) }
                        td { (p.permissions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        td { (layout::grade(p.grade.as_str())) }
                        td { (p.egress.as_str()) }
                        td { (p.owner_state.as_str()) }
                    }
                }
            }
        }
    }
}

/// What an approve form shows filled in again (after a what-if preview).
#[derive(Default)]
struct Prefill {
    note: String,
    intent: String,
    plan: String,
    acks: BTreeMap<String, String>,
}

fn approve_form(here: &str, review: &sv0_service::review::Review, csrf: &str, prefill: &Prefill) -> Markup {
    html! {
        form.approve method="post" action=(format!("{here}/approve")) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="posture_digest" value=(review.posture_digest);
            input type="hidden" name="log_position" value=(review.log_position);
            label for="note" { "Note (what was reviewed, with whom)" }
            textarea id="note" name="note" required { (prefill.note) }
            @if !review.findings.is_empty() {
                fieldset {
                    legend { "Acknowledge open findings until a date" }
                    @for r in &review.findings {
                        @let id = &r.finding.finding_id;
                        p {
                            input type="checkbox" id=(format!("ack-{id}")) name="ack" value=(id) checked[prefill.acks.contains_key(id)];
                            label for=(format!("ack-{id}")) { " " (r.finding.title) " " code { (id) } }
                            " "
                            label for=(format!("due-{id}")) { "due" }
                            input type="date" id=(format!("due-{id}")) name=(format!("due:{id}")) value=[prefill.acks.get(id).filter(|d| !d.is_empty())];
                        }
                    }
                }
            }
            label for="intent" { "Declared intent (optional, JSON: the additions this deployment intends)" }
            textarea id="intent" name="intent" { (prefill.intent) }
            label for="plan" { "IaC plan (optional, a Terraform JSON plan or an ARM what-if result)" }
            textarea id="plan" name="plan" { (prefill.plan) }
            p {
                input type="checkbox" id="force" name="force" value="true";
                label for="force" { " Record a new version even if the posture is what the baseline already holds" }
            }
            p {
                button type="submit" { "Approve this posture" } " "
                button.secondary type="submit" formaction=(format!("{here}/whatif")) formnovalidate { "Preview the plan (what-if)" }
            }
        }
    }
}

/// The fields and the scope of an approver's form, after its CSRF token and the approver's
/// permission are checked.
fn approver_form<L: EventLog>(
    viewer: &Viewer<L>,
    scope: &str,
    f: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<(Vec<(String, String)>, Scope), WebError> {
    let fields = form(f)?;
    viewer.check_csrf(field(&fields, "csrf"))?;
    viewer.must(Permission::Approve)?;
    Ok((fields, scope_of(scope)?))
}

/// `POST /scopes/{scope}/approve`: the approve form.
pub(crate) async fn approve<L: EventLog + Clone>(
    viewer: Viewer<L>,
    Path(scope): Path<String>,
    f: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let (fields, scope) = approver_form(&viewer, &scope, f)?;
    let tenant = viewer.tenant().clone();
    let invalid = |text: String| WebError(Problem::invalid_request(text));
    let mut acknowledged = Vec::new();
    for (_, id) in fields.iter().filter(|(k, _)| k == "ack") {
        let due = field(&fields, &format!("due:{id}"))
            .filter(|d| !d.is_empty())
            .ok_or_else(|| invalid(format!("the acknowledgement of {id} needs a due date")))?;
        let due = Timestamp::parse_due(due).map_err(|e| invalid(e.to_string()))?;
        acknowledged.push(Acknowledgement { finding_id: id.clone(), due });
    }
    let digest = field(&fields, "posture_digest").ok_or_else(|| invalid("the form names no posture digest".into()))?;
    let position = field(&fields, "log_position").and_then(|p| p.parse::<u64>().ok());
    let posture = sv0_service::Reviewed::parse_at(digest, position).map_err(|e| invalid(e.to_string()))?;
    let filled = |name: &str| field(&fields, name).map(str::trim).filter(|t| !t.is_empty());
    let intent = filled("intent")
        .map(|text| sv0_codec::json::from_slice(text.as_bytes()))
        .transpose()
        .map_err(|e| invalid(format!("the intent is invalid: {e}")))?;
    let mut approval = sv0_service::Approval {
        note: field(&fields, "note").unwrap_or("").to_string(),
        acknowledged,
        intent,
        posture: Some(posture),
        by: viewer.caller.actor(),
        plan_digest: None,
        force: field(&fields, "force") == Some("true"),
    };
    // The plan as sent, as the preview read it: the digest recorded is the one it showed.
    if let Some(plan) = filled("plan") {
        approval.declare_plan(&viewer.s.queries.whatif(&tenant, &scope, plan.as_bytes())?);
    }
    let report = viewer.s.commands.lock().await.approve_with(&tenant, &scope, approval, Timestamp::now()).await?;
    let to = format!("/scopes/{}?approved={}", encode(&scope.canonical()), report.baseline.version);
    Ok(Redirect::to(&to).into_response())
}

/// `POST /scopes/{scope}/whatif`: the plan's what-if, shown before approving, with the approve
/// form filled in again as it was sent.
pub(crate) async fn whatif<L: EventLog + Clone>(
    viewer: Viewer<L>,
    Path(scope): Path<String>,
    f: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let (fields, scope) = approver_form(&viewer, &scope, f)?;
    let tenant = viewer.tenant();
    let plan = field(&fields, "plan").map(str::trim).unwrap_or("");
    if plan.is_empty() {
        return Err(WebError(Problem::invalid_request(
            "paste a Terraform JSON plan or an ARM what-if result to preview",
        )));
    }
    let report = viewer.s.queries.whatif(tenant, &scope, plan.as_bytes())?;
    let review = viewer.s.queries.review(tenant, &scope)?;
    let canonical = scope.canonical();
    let here = format!("/scopes/{}", encode(&canonical));
    let acks = fields
        .iter()
        .filter(|(k, _)| k == "ack")
        .map(|(_, id)| (id.clone(), field(&fields, &format!("due:{id}")).unwrap_or("").to_string()))
        .collect();
    let prefill = Prefill {
        note: field(&fields, "note").unwrap_or("").to_string(),
        intent: field(&fields, "intent").unwrap_or("").to_string(),
        plan: plan.to_string(),
        acks,
    };
    let body = html! {
        p { "Plan " code { (report.plan_digest) } " (" (report.plan_format) "): " (report.entries.len()) " predicted change(s), "
            (report.findings_opened.len()) " finding(s) it would open. Nothing is recorded until you approve." }
        table {
            caption { "What the plan would change in this scope" }
            thead { tr { th scope="col" { "Change" } th scope="col" { "Path" } th scope="col" { "Permissions" } th scope="col" { "Caused by" } } }
            tbody {
                @for e in &report.entries {
                    tr {
                        td { (e.entry.kind.as_str()) }
                        td { (e.entry.workload.name) " → " (e.entry.identity.name) " → " (e.entry.destination.name) " → " (e.entry.domain.name) }
                        td { (e.entry.permissions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        td { @for c in &e.caused_by { code { (c) } " " } }
                    }
                }
            }
        }
        @if !report.findings_opened.is_empty() {
            h2 { "Findings it would open" }
            ul { @for f in &report.findings_opened { li { (layout::severity(f.severity.as_str())) " " (f.title) ": " (f.summary) } } }
        }
        h2 id="approve" { "Approve with this plan as the declared intent" }
        p { "Posture digest: " code { (review.posture_digest) } " at log position " (review.log_position) "." }
        (approve_form(&here, &review, &viewer.session.csrf, &prefill))
    };
    let title = format!("What-if: {canonical}");
    super::html(layout::page(&viewer.frame(&title, Nav::Scope, None), body))
}

/// `GET /scopes/{scope}/delta`.
pub(crate) async fn delta<L: EventLog + Clone>(
    viewer: Viewer<L>,
    Path(scope): Path<String>,
    q: Result<Query<super::AsOfQuery>, QueryRejection>,
) -> Page {
    let q = query(q)?;
    let scope = scope_of(&scope)?;
    let (queries, history) = viewer.queries(q.as_of.as_deref()).await?;
    let h = history.as_ref();
    let tenant = viewer.tenant();
    let report = queries.delta(tenant, &scope)?;
    let canonical = scope.canonical();
    let here = format!("/scopes/{}", encode(&canonical));
    let v = &report.verification;
    let flagged: Vec<_> = report.entries.iter().filter(|e| e.flagged).collect();
    let body = html! {
        p { "Against baseline v" (report.baseline_version) ". " a href=(with_as_of(&here, h)) { "Exposure Brief" } }
        section aria-labelledby="verdict" {
            h2 id="verdict" { "Verdict" }
            p { strong { (report.disposition.decision.as_str()) } " · " (v.summary) }
            ul { @for reason in &report.disposition.reasons { li { (reason.text) } } }
            @if let Some(rollback) = &report.disposition.rollback {
                div.error role="note" {
                    strong { "Rollback advised. " }
                    @for reason in &rollback.reasons { (reason) " " }
                }
            }
            table {
                caption { "Verification of the current posture against the baseline" }
                tbody {
                    tr { th scope="row" { "Matches the baseline" } td { (if v.matches_baseline { "yes" } else { "no" }) } }
                    tr { th scope="row" { "Intended additions" } td { (v.intended_additions.len()) } }
                    tr { th scope="row" { "Unintended" } td { (v.unintended.len()) } }
                    tr { th scope="row" { "Unreviewed" } td { (v.unreviewed.len()) } }
                    tr { th scope="row" { "Resolved since the deployment" } td { (v.resolved.len()) } }
                }
            }
        }
        section aria-labelledby="remediation" {
            h2 id="remediation" { "Remediation" }
            @if flagged.is_empty() { p { "Nothing flagged: no remediation is needed." } }
            ol {
                @for e in &flagged {
                    li {
                        strong { (e.kind.as_str()) } " · " (e.workload.name) " → " (e.identity.name) " → " (e.destination.name) " → " (e.domain.name)
                        @if let Some(text) = &e.remediation { pre.remediation { (text) } }
                    }
                }
            }
        }
        section aria-labelledby="entries" {
            h2 id="entries" { "Every change (" (report.entries.len()) ")" }
            table {
                thead { tr { th scope="col" { "Change" } th scope="col" { "Path" } th scope="col" { "Intent" } th scope="col" { "Flagged" } th scope="col" { "Severity" } } }
                tbody {
                    @for e in &report.entries {
                        tr {
                            td { (e.kind.as_str()) }
                            td { a href=(with_as_of(&format!("/paths/{}?workload={}", e.path_id, encode(&e.workload.id)), h)) { (e.workload.name) " → " (e.identity.name) " → " (e.destination.name) " → " (e.domain.name) } }
                            td { @if let Some(i) = &e.intent { (i.as_str()) } }
                            td { (if e.flagged { "yes" } else { "no" }) }
                            td { @if let Some(s) = &e.severity { (layout::severity(s.as_str())) } }
                        }
                    }
                }
            }
            @if !report.planned_missing.is_empty() {
                p { (report.planned_missing.len()) " planned additions are not (or not yet) there." }
            }
        }
        @if h.is_none() {
            p { a href=(format!("{here}#approve")) { "Approve the current posture as the new baseline" } }
        }
    };
    let title = format!("Delta: {canonical}");
    super::html(layout::page(&viewer.frame(&title, Nav::Scope, h), body))
}
