//! Path Detail (`/paths/{id}`): the four hops drawn as a path and, for each, its provenance:
//! the records that grant the authority, the evidence behind the grade, the egress rule that
//! decided the class, ownership; the findings on the path with their exact remediation.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use maud::html;
use serde::Deserialize;
use sv0_domain::scope::Scope;
use sv0_log::EventLog;
use sv0_projections::{FindingStatus, PathFilter};

use super::layout::{self, Nav, encode, with_as_of};
use super::{Page, Viewer, WebError, query};
use crate::problem::Problem;

/// `?workload=` names the path's workload (every link the screens draw does), so that the path
/// is one range read; without it every path of the tenant is searched.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PathQuery {
    as_of: Option<String>,
    workload: Option<String>,
}

pub(crate) async fn path<L: EventLog + Clone>(
    viewer: Viewer<L>,
    Path(id): Path<String>,
    q: Result<Query<PathQuery>, QueryRejection>,
) -> Page {
    let q = query(q)?;
    let (queries, history) = viewer.queries(q.as_of.as_deref()).await?;
    let tenant = viewer.tenant();
    let views = queries.views();
    let not_found = || WebError(Problem::not_found(format!("tenant {tenant} has no path {id}")));
    let filter = PathFilter { workload: q.workload.clone(), ..PathFilter::default() };
    let found = views.query_paths(tenant, &filter)?.into_iter().find(|p| p.path_id == id);
    let path = match (found, &q.workload) {
        (Some(path), _) => path,
        // A stale or wrong hint: search everywhere.
        (None, Some(_)) => views.paths(tenant, None)?.into_iter().find(|p| p.path_id == id).ok_or_else(not_found)?,
        (None, None) => return Err(not_found()),
    };
    let scope = Scope::parse(&format!("workload:{}", path.workload.id)).map_err(|e| WebError(Problem::internal(e)))?;
    let findings: Vec<_> = views
        .findings(tenant, Some(&scope))?
        .into_iter()
        .filter(|r| r.status == FindingStatus::Open && r.finding.path_ids.contains(&path.path_id))
        .collect();
    let h = history.as_ref();
    let body = html! {
        ol.hops aria-label="The path, hop by hop" {
            li { span.hop-kind { "Workload" } strong { (path.workload.name) } br; code { (path.workload.id) } }
            li { span.hop-kind { "Identity" } strong { (path.identity.name) } br; code { (path.identity.id) } }
            li { span.hop-kind { "Destination" } strong { (path.destination.name) } br; code { (path.destination.id) } }
            li { span.hop-kind { "Data domain" } strong { (path.domain.name) } @if path.domain.sensitive { " (sensitive)" } br; code { (path.domain.id) } }
        }
        table {
            caption { "What the path is, and why" }
            tbody {
                tr { th scope="row" { "Permissions" } td { (path.permissions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) } }
                tr { th scope="row" { "Evidence grade" } td {
                    (layout::grade(path.grade.as_str()))
                    @if let Some(record) = &path.grade_evidence { " from evidence record " code { (record) } }
                    @if let Some(until) = path.grade_expires_at { ", until " (layout::time(until)) " (then it decays)" }
                    @if path.evidence_gap { br; "The destination's execution logs are off: this path cannot be confirmed until they are enabled." }
                } }
                tr { th scope="row" { "Egress" } td { (path.egress.as_str()) ", decided by rule " code { (path.egress_rule) } } }
                tr { th scope="row" { "Ownership" } td {
                    (path.owner_state.as_str()) " since " (layout::time(path.owner_state_since))
                    @if !path.owners.is_empty() { ", owners " (path.owners.join(", ")) }
                } }
                tr { th scope="row" { "Domain from" } td { (path.classified_by.as_deref().unwrap_or("the destination's label")) } }
                tr { th scope="row" { "Run-as bindings" } td { @for b in &path.bindings { code { (b) } " " } } }
                tr { th scope="row" { "Path id" } td { code { (path.path_id) } } }
            }
        }
        h2 { "Grants (the source records)" }
        table {
            thead { tr { th scope="col" { "Record" } th scope="col" { "Source" } th scope="col" { "Role" } th scope="col" { "Scope" } th scope="col" { "Permissions" } } }
            tbody {
                @for g in &path.grants {
                    tr {
                        td { code { (g.id) } }
                        td { (serde_json::to_value(g.source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                        td { (g.role) }
                        td { code { (g.scope) } }
                        td { (g.permissions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        h2 { "Findings on this path" }
        @if findings.is_empty() { p { "None open." } }
        @for r in &findings {
            h3 { (layout::severity(r.finding.severity.as_str())) " " (r.finding.title) }
            p { (r.finding.summary) }
            @for action in &r.finding.remediation {
                p { "Remediation (" (action.action) " on " code { (action.record_id) } "):" }
                pre.remediation { (action.text) }
            }
        }
        p { a href=(with_as_of(&format!("/scopes/{}", encode(&scope.canonical())), h)) { "This workload's Exposure Brief" } }
    };
    let title = format!("Path: {} → {}", path.workload.name, path.domain.name);
    super::html(layout::page(&viewer.frame(&title, Nav::Scope, h), body))
}
