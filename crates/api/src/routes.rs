//! The `/api/v1` routes. `ROUTES` is the one list of them: the router is built from it, the
//! OpenAPI document is generated from it, and the route matrix test walks it, so none of the
//! three can drift from the others. Every route authenticates first, then reads its input, so
//! a caller without a valid token learns nothing about the request it sent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sv0_domain::access::Permission;
use sv0_domain::events::Acknowledgement;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::scope::Scope;
use sv0_domain::{TenantId, Timestamp};
use sv0_log::EventLog;
use sv0_projections::{Baseline, BaselineHead, FindingRecord, FindingStatus, PathFilter, ScanRecord};
use sv0_service::signals::CloudEvent;

use crate::ApiState;
use crate::auth::{Caller, authorize};
use crate::openapi::{replies, replies_text, takes};
use crate::problem::Problem;

/// One route: what the router serves, the OpenAPI document describes and the matrix tests.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// `GET`, `POST` or `PUT`.
    pub method: &'static str,
    /// The path under `/api/v1`, with `{name}` parameters.
    pub path: &'static str,
    /// What the caller's roles must permit.
    pub permission: Permission,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters it takes.
    pub query: &'static [&'static str],
    /// The request body, when it takes one: the type that reads it, and an example.
    pub request: Option<crate::openapi::Body>,
    /// The body of success: the type that writes it.
    pub response: crate::openapi::Body,
    /// The status of success.
    pub success: u16,
}

const PAGE: &[&str] = &["limit", "cursor"];

// Examples of request bodies, in the OpenAPI document; the tests check each against its schema
// and send it.
fn ack_example() -> Value {
    json!({ "acknowledge": [{ "finding_id": "F-3f9a1c2b7d4e", "due": "2027-03-31" }], "note": "accepted until the Q1 rotation" })
}

fn sync_example() -> Value {
    json!({
        "scope": "project:HR-Automation",
        "environment": "production",
        "repository": "contoso/hr-onboarding",
        "run_id": "8812345",
        "commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "trigger": "pre_deployment",
    })
}

fn snapshot_example() -> Value {
    serde_json::from_str(include_str!("../../sv0/demo/contoso-1-initial.json")).unwrap_or(Value::Null)
}

fn plan_example() -> Value {
    json!({ "format_version": "1.2", "terraform_version": "1.9.5", "resource_changes": [] })
}

fn approval_example() -> Value {
    json!({
        "scope": "project:HR-Automation",
        "note": "reviewed with the HR platform team",
        "acknowledge": [{ "finding_id": "F-3f9a1c2b7d4e", "due": "2027-03-31" }],
        "posture_digest": "sha256:5d41402abc4b2a76b9719d911017c592ae4a1b6e1e7a2c9f0b3d8e6f1a2b3c4d@118",
    })
}

fn token_example() -> Value {
    json!({ "name": "soc-reader", "principal": "soc@contoso.example", "roles": ["viewer"], "expires_at": "2027-06-30T00:00:00Z" })
}

fn policy_example() -> Value {
    serde_json::to_value(sv0_domain::policy::Policy::default()).unwrap_or(Value::Null)
}

fn policy_approval_example() -> Value {
    json!({ "digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "note": "the stricter Finance rules, reviewed" })
}

/// Every `/api/v1` route.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: "GET",
        path: "/paths",
        permission: Permission::Read,
        summary: "Authority paths of the caller's tenant, filtered; pages of a scope or workload in row order (workload, identity, path id), others by path id",
        query: &[
            "scope",
            "workload",
            "identity",
            "destination",
            "domain",
            "grade",
            "egress",
            "owner_state",
            "limit",
            "cursor",
        ],
        request: None,
        response: replies::<Page<AuthorityPath>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/findings",
        permission: Permission::Read,
        summary: "Findings (of a scope, of a status), by finding id",
        query: &["scope", "status", "limit", "cursor"],
        request: None,
        response: replies::<Page<FindingRecord>>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/findings/acknowledgements",
        permission: Permission::Acknowledge,
        summary: "Accept open findings until a date, as the authenticated caller",
        query: &[],
        request: Some(takes::<AcknowledgeBody>(ack_example)),
        response: replies::<Acknowledged>(),
        success: 201,
    },
    RouteSpec {
        method: "GET",
        path: "/scopes",
        permission: Permission::Read,
        summary: "Scopes with an approved baseline: version, state, drift",
        query: PAGE,
        request: None,
        response: replies::<Page<BaselineHead>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/scans",
        permission: Permission::Read,
        summary: "Scans, by scan id",
        query: PAGE,
        request: None,
        response: replies::<Page<ScanRecord>>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/syncs",
        permission: Permission::Sync,
        summary: "Run a scan now for a deployment (scope, environment, repository, run_id, commit): 202 with a sync id",
        query: &[],
        request: Some(takes::<crate::syncs::SyncRequest>(sync_example)),
        response: replies::<crate::syncs::SyncRecord>(),
        success: 202,
    },
    RouteSpec {
        method: "GET",
        path: "/syncs/{id}",
        permission: Permission::Read,
        summary: "A sync: pending, running, completed, quarantined or failed; when completed, the scope's disposition and delta summary",
        query: &[],
        request: None,
        response: replies::<crate::syncs::SyncRecord>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/scans/{id}",
        permission: Permission::Read,
        summary: "One scan: status, coverage, counts",
        query: &[],
        request: None,
        response: replies::<ScanRecord>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/scans",
        permission: Permission::Scan,
        summary: "Push a snapshot (JSON, schemas/snapshot.schema.json) of the caller's tenant",
        query: &["trigger"],
        request: Some(takes::<sv0_domain::snapshot::Snapshot>(snapshot_example)),
        response: replies::<sv0_service::ImportReport>(),
        success: 201,
    },
    RouteSpec {
        method: "GET",
        path: "/baselines",
        permission: Permission::Read,
        summary: "Every version of every scope's baseline, by scope then version",
        query: &["scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<Baseline>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/approvals",
        permission: Permission::Read,
        summary: "Approvals recorded (one per baseline version), with approver and time",
        query: &["scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<ApprovalView>>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/whatif",
        permission: Permission::Read,
        summary: "What-if: the body is a deployment's plan (Terraform JSON plan or ARM what-if result); the answer is the paths it would create or remove in the scope against its baseline, the plan resource behind each, the findings it would open and the disposition. Records nothing",
        query: &["scope"],
        request: Some(takes::<PlanBody>(plan_example)),
        response: replies::<sv0_service::whatif::WhatIfReport>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/review",
        permission: Permission::Read,
        summary: "Everything to read before approving a scope: paths, counts by grade, egress and ownership, open findings, governance conditions, evidence gaps, the baseline in force and the posture_digest to approve",
        query: &["scope"],
        request: None,
        response: replies::<sv0_service::review::Review>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/approvals",
        permission: Permission::Approve,
        summary: "Approve a scope's posture as the authenticated caller: a new baseline version",
        query: &[],
        request: Some(takes::<ApprovalBody>(approval_example)),
        response: replies::<sv0_service::ApprovalReport>(),
        success: 201,
    },
    RouteSpec {
        method: "GET",
        path: "/delta",
        permission: Permission::Read,
        summary: "A scope's path-level delta against its baseline, with verification and disposition",
        query: &["scope"],
        request: None,
        response: replies::<sv0_service::DeltaReport>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/signals",
        permission: Permission::Read,
        summary: "SOC signals (CloudEvents) after a log position",
        query: &["limit", "cursor"],
        request: None,
        response: replies::<Page<CloudEvent>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/packs",
        permission: Permission::Evidence,
        summary: "Evidence packs, in chain order",
        query: PAGE,
        request: None,
        response: replies::<Page<PackSummary>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/packs/{id}",
        permission: Permission::Evidence,
        summary: "One pack as exported (id or chain index)",
        query: &[],
        request: None,
        response: replies::<sv0_signer::PackFile>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/packs/{id}/dsse",
        permission: Permission::Evidence,
        summary: "One pack as a DSSE envelope (its own signature over the PAE of its body)",
        query: &[],
        request: None,
        response: replies::<DsseEnvelope>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/proofs/inclusion/{id}",
        permission: Permission::Evidence,
        summary: "RFC 9162 inclusion proof of a pack in the tenant's pack tree",
        query: &[],
        request: None,
        response: replies::<sv0_service::transparency::InclusionProof>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/proofs/consistency",
        permission: Permission::Evidence,
        summary: "RFC 9162 consistency proof between two tree sizes",
        query: &["old", "new"],
        request: None,
        response: replies::<sv0_service::transparency::ConsistencyProof>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/replay/paths",
        permission: Permission::Evidence,
        summary: "Paths as the log stood at a position or time (as_of), folded afresh from the log",
        query: &["as_of", "scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<AuthorityPath>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/replay/findings",
        permission: Permission::Evidence,
        summary: "Findings as the log stood at a position or time (as_of), folded afresh from the log",
        query: &["as_of", "scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<FindingRecord>>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/tokens",
        permission: Permission::Administer,
        summary: "The tenant's API tokens (never their secrets)",
        query: PAGE,
        request: None,
        response: replies::<Page<sv0_service::tokens::TokenView>>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/tokens",
        permission: Permission::Administer,
        summary: "Issue a token (shown once); approver tokens are issued on the host only",
        query: &[],
        request: Some(takes::<IssueBody>(token_example)),
        response: replies::<IssuedToken>(),
        success: 201,
    },
    RouteSpec {
        method: "POST",
        path: "/tokens/{id}/revoke",
        permission: Permission::Administer,
        summary: "Revoke a token of the tenant",
        query: &[],
        request: None,
        response: replies::<sv0_service::tokens::TokenView>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/policy",
        permission: Permission::Read,
        summary: "The tenant's policy in force (evidence window, owner silence, breakers, Rego)",
        query: &[],
        request: None,
        response: replies::<sv0_domain::policy::Policy>(),
        success: 200,
    },
    RouteSpec {
        method: "PUT",
        path: "/policy",
        permission: Permission::Administer,
        summary: "Replace the tenant's policy (recorded as an event; every path and finding is re-decided)",
        query: &[],
        request: Some(takes::<sv0_domain::policy::Policy>(policy_example)),
        response: replies::<PolicySet>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/policy/approvals",
        permission: Permission::Read,
        summary: "Which Rego policy decides the tenant's dispositions, and which waits for a second person's approval",
        query: &[],
        request: None,
        response: replies::<sv0_domain::policy::RegoState>(),
        success: 200,
    },
    RouteSpec {
        method: "POST",
        path: "/policy/approvals",
        permission: Permission::Approve,
        summary: "Approve the Rego policy waiting for approval ({\"digest\", \"note\"}); not by the person who set it",
        query: &[],
        request: Some(takes::<PolicyApprovalBody>(policy_approval_example)),
        response: replies::<PolicyApproved>(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/checkpoint",
        permission: Permission::Evidence,
        summary: "The pack tree's checkpoint, a C2SP signed note (text/plain)",
        query: &[],
        request: None,
        response: replies_text(),
        success: 200,
    },
    RouteSpec {
        method: "GET",
        path: "/keys",
        permission: Permission::Evidence,
        summary: "Public keys with their validity ranges (JSON, or the key file with format=pem)",
        query: &["format"],
        request: None,
        response: replies::<Vec<sv0_projections::KeyRecord>>(),
        success: 200,
    },
];

type Reply = Result<Response, Problem>;

/// The state and who is asking: every route's first argument.
pub(crate) struct Ask<L: EventLog> {
    s: Arc<ApiState<L>>,
    headers: HeaderMap,
    addr: SocketAddr,
    /// The caller the route's authentication layer admitted.
    caller: Option<Caller>,
}

impl<L: EventLog> axum::extract::FromRequestParts<Arc<ApiState<L>>> for Ask<L> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState<L>>,
    ) -> Result<Ask<L>, Problem> {
        let ConnectInfo(addr) =
            ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await.map_err(Problem::internal)?;
        let caller = parts.extensions.get::<Caller>().cloned();
        Ok(Ask { s: Arc::clone(state), headers: parts.headers.clone(), addr, caller })
    }
}

impl<L: EventLog> Ask<L> {
    /// The caller, if the token permits `permission`.
    fn caller(&self, permission: Permission) -> Result<Caller, Problem> {
        if let Some(caller) = &self.caller {
            return crate::auth::permit(caller.clone(), permission);
        }
        let client = crate::client_ip(&self.s.trusted_proxies, self.addr.ip(), &self.headers);
        authorize(&self.s.views, self.s.oidc.as_deref(), &self.s.failures, &self.headers, client, permission)
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(t)| t).map_err(|e| Problem::invalid_request(e.body_text()))
}

fn ok(value: impl Serialize) -> Reply {
    Ok(Json(value).into_response())
}

fn scope_of(text: &str) -> Result<Scope, Problem> {
    Scope::parse(text).map_err(|e| Problem::invalid_request(e.to_string()))
}

/// An id in a path: short and of a safe alphabet, never a path of its own.
fn safe_id(id: &str) -> Result<&str, Problem> {
    let fine = !id.is_empty()
        && id.len() <= 200
        && !id.contains("..")
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@=-".contains(&b));
    if fine { Ok(id) } else { Err(Problem::invalid_request(format!("{id:?} is not a valid id"))) }
}

/// A page of `items` (sorted by `key`) after `cursor`: `{items, next_cursor}`. The cursor is
/// the hex of the last key served.
fn page<T: Serialize>(items: Vec<T>, key: impl Fn(&T) -> String, limit: Option<usize>, cursor: Option<&str>) -> Reply {
    let limit = limit_of(limit)?;
    let after = cursor_of(cursor)?;
    let start = match &after {
        Some(after) => items.partition_point(|item| key(item).as_str() <= after.as_str()),
        None => 0,
    };
    let rest = items.len().saturating_sub(start);
    let taken: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = (rest > limit).then(|| hex::encode(key(&taken[taken.len() - 1])));
    ok(Page { items: taken, next_cursor: next, posture_digest: None, log_position: None })
}

/// A page of a list: serialised straight from the items, with no intermediate JSON tree.
#[derive(Serialize, JsonSchema)]
pub struct Page<T> {
    /// The items of this page, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// On the first page of a scope's paths or findings: the scope's posture digest, what an
    /// approval's `posture_digest` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_digest: Option<String>,
    /// With `posture_digest`: the log position the posture stands at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_position: Option<u64>,
}

/// `reply` (a page) with the posture of `scope` added, when a scope was asked for.
async fn with_posture<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    scope: Option<&Scope>,
    reply: Response,
) -> Reply {
    let Some(scope) = scope else { return Ok(reply) };
    let posture = s.reader.posture(tenant, scope)?;
    let mut reply = reply;
    let bytes = axum::body::to_bytes(std::mem::take(reply.body_mut()), usize::MAX).await.map_err(Problem::internal)?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(Problem::internal)?;
    value["posture_digest"] = json!(posture.digest);
    value["log_position"] = json!(posture.position);
    ok(value)
}

/// A page size: 100 by default, at most 1,000.
fn limit_of(limit: Option<usize>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::invalid_request("limit must be between 1 and 1000"))
    }
}

/// The key a cursor names (the hex of the last key of the previous page).
fn cursor_of(cursor: Option<&str>) -> Result<Option<String>, Problem> {
    cursor
        .map(|c| {
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Problem::invalid_request("cursor is not one this API gave"))
        })
        .transpose()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathsQuery {
    scope: Option<String>,
    workload: Option<String>,
    identity: Option<String>,
    destination: Option<String>,
    domain: Option<String>,
    grade: Option<String>,
    egress: Option<String>,
    owner_state: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(crate) async fn paths<L: EventLog>(ask: Ask<L>, q: Result<Query<PathsQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let filter = PathFilter {
        scope: q.scope.as_deref().map(scope_of).transpose()?,
        workload: q.workload,
        identity: q.identity,
        destination: q.destination,
        domain: q.domain,
        grade: q.grade,
        egress: q.egress,
        owner_state: q.owner_state,
    };
    let limit = limit_of(q.limit)?;
    let after = cursor_of(q.cursor.as_deref())?;
    let (paths, next) = s.views.query_paths_page(&c.tenant, &filter, after.as_deref(), limit).map_err(|e| match e {
        sv0_projections::ProjectionError::Invalid(reason) => Problem::invalid_request(reason),
        other => Problem::from(other),
    })?;
    let next_cursor = next.map(hex::encode);
    // The posture digest covers the whole scope: it is computed for the first page only, so
    // that paging through a large scope does not recompute it per page.
    match filter.scope.as_ref().filter(|_| q.cursor.is_none()) {
        Some(scope) => {
            let posture = s.reader.posture(&c.tenant, scope)?;
            ok(Page {
                items: paths,
                next_cursor,
                posture_digest: Some(posture.digest),
                log_position: Some(posture.position),
            })
        }
        None => ok(Page { items: paths, next_cursor, posture_digest: None, log_position: None }),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingsQuery {
    scope: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(crate) async fn findings<L: EventLog>(ask: Ask<L>, q: Result<Query<FindingsQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let scope = q.scope.as_deref().map(scope_of).transpose()?;
    let status = match q.status.as_deref() {
        None => None,
        Some("open") => Some(FindingStatus::Open),
        Some("resolved") => Some(FindingStatus::Resolved),
        Some(other) => return Err(Problem::invalid_request(format!("unknown status {other:?}: open or resolved"))),
    };
    let mut records = s.views.findings(&c.tenant, scope.as_ref())?;
    records.retain(|r| status.is_none_or(|s| r.status == s));
    records.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    let reply = page(records, |r| r.finding.finding_id.clone(), q.limit, q.cursor.as_deref())?;
    let first = q.cursor.is_none();
    with_posture(s, &c.tenant, scope.as_ref().filter(|_| first), reply).await
}

pub(crate) async fn scopes<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let mut heads = s.views.baselines(&c.tenant)?;
    heads.sort_by_key(|h| h.scope.to_string());
    page(heads, |h| h.scope.to_string(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn scans<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let scans = s.views.scans(&c.tenant)?;
    page(scans, |r| r.scan_id.clone(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn scan<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let id = safe_id(&id)?;
    let scan = s.views.scans(&c.tenant)?.into_iter().find(|r| r.scan_id == id);
    match scan {
        Some(scan) => ok(scan),
        None => Err(Problem::not_found(format!("no scan {id}"))),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushQuery {
    trigger: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TenantOf {
    tenant: String,
}

fn json_body(headers: &HeaderMap) -> Result<(), Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json { Ok(()) } else { Err(Problem::unsupported_media_type()) }
}

fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(limit)
        } else {
            Problem::invalid_request(e.body_text())
        }
    })
}

pub(crate) async fn push_scan<L: EventLog>(
    ask: Ask<L>,
    q: Result<Query<PushQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller(Permission::Scan)?;
    let s = &ask.s;
    let q = query(q)?;
    json_body(&ask.headers)?;
    let bytes = body(bytes, s.max_body)?;
    let trigger = q
        .trigger
        .as_deref()
        .map(|t| {
            serde_json::from_value(json!(t)).map_err(|_| Problem::invalid_request(format!("unknown trigger {t:?}")))
        })
        .transpose()?;
    // The snapshot must be of the caller's tenant; nothing is appended otherwise.
    let named: TenantOf = sv0_codec::json::from_slice(&bytes)
        .map_err(|e| Problem::invalid_snapshot(format!("snapshot is not valid: {e}")))?;
    if named.tenant != c.tenant.as_str() {
        return Err(Problem::forbidden(format!(
            "the snapshot is of tenant {}, the token of tenant {}",
            named.tenant, c.tenant
        )));
    }
    let report = s.commands.lock().await.import_pushed(&bytes, trigger, &c.actor()).await?;
    let status = if report.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(report)).into_response())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopedPage {
    scope: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Every baseline version of the tenant (of one scope), by scope then version.
fn versions<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    scope: Option<&str>,
) -> Result<Vec<sv0_projections::Baseline>, Problem> {
    let scopes: Vec<Scope> = match scope {
        Some(text) => vec![scope_of(text)?],
        None => s.views.baselines(tenant)?.into_iter().map(|h| h.scope).collect(),
    };
    let mut out = Vec::new();
    for scope in scopes {
        out.extend(s.views.baseline_history(tenant, &scope)?);
    }
    Ok(out)
}

fn version_key(b: &sv0_projections::Baseline) -> String {
    format!("{}\u{0}{:010}", b.scope, b.version)
}

pub(crate) async fn baselines<L: EventLog>(ask: Ask<L>, q: Result<Query<ScopedPage>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let mut all = versions(s, &c.tenant, q.scope.as_deref())?;
    all.sort_by_key(version_key);
    page(all, version_key, q.limit, q.cursor.as_deref())
}

/// One approval: a baseline version of a scope, who locked it and what with.
#[derive(Serialize, JsonSchema)]
pub struct ApprovalView {
    scope: String,
    baseline_version: u32,
    approver: String,
    approved_at: Timestamp,
    note: String,
    acknowledged: Vec<Acknowledgement>,
    paths: usize,
    /// The posture digest approved (none before issue 14) and the position it stood at.
    posture_digest: Option<String>,
    posture_seq: u64,
    /// The declared intent; `null`: none was declared.
    intent: Option<Vec<sv0_domain::intent::IntentItem>>,
}

pub(crate) async fn approvals<L: EventLog>(ask: Ask<L>, q: Result<Query<ScopedPage>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let mut all = versions(s, &c.tenant, q.scope.as_deref())?;
    all.sort_by_key(version_key);
    let keyed: Vec<(String, ApprovalView)> = all
        .iter()
        .map(|b| {
            (
                version_key(b),
                ApprovalView {
                    scope: b.scope.to_string(),
                    baseline_version: b.version,
                    approver: b.approver.clone(),
                    approved_at: b.approved_at,
                    note: b.note.clone(),
                    acknowledged: b.acknowledged.clone(),
                    paths: b.paths.len(),
                    posture_digest: b.posture_digest.clone(),
                    posture_seq: b.posture_seq,
                    intent: b.intent.clone(),
                },
            )
        })
        .collect();
    let reply = page(keyed, |(k, _)| k.clone(), q.limit, q.cursor.as_deref())?;
    strip_keys(reply).await
}

/// `POST /approvals`: lock the scope's current posture as its next baseline version.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    scope: String,
    note: String,
    #[serde(default)]
    acknowledge: Vec<AckBody>,
    /// When given, it must be the authenticated principal.
    approver: Option<String>,
    /// The posture reviewed (`GET /review`'s `posture_digest`): refused with 409 when the
    /// posture is no longer that.
    posture_digest: Option<String>,
    /// The log position the reviewed posture stood at, to name what changed since.
    log_position: Option<u64>,
    /// The additions the deployment declares (schemas/intent.schema.json).
    intent: Option<Vec<sv0_domain::intent::IntentItem>>,
    /// The deployment's plan (a Terraform JSON plan or an ARM what-if result, as JSON): the
    /// additions it predicts are declared as intent, with the digest of the plan as sent.
    plan: Option<Value>,
    /// Record a new version even when it would lock exactly what the baseline in force does.
    #[serde(default)]
    force: bool,
}

/// An open finding accepted until a date.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    finding_id: String,
    /// `YYYY-MM-DD` or RFC 3339.
    due: String,
}

pub(crate) async fn approve<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller(Permission::Approve)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, s.max_body)?;
    let request: ApprovalBody =
        sv0_codec::json::from_slice(&bytes).map_err(|e| Problem::invalid_request(format!("invalid approval: {e}")))?;
    if let Some(claimed) = &request.approver
        && *claimed != c.principal
    {
        return Err(Problem::forbidden(format!(
            "the approval claims approver {claimed}, but the token authenticates {}; approvals record the caller",
            c.principal
        )));
    }
    let scope = scope_of(&request.scope)?;
    let acks = acks(&request.acknowledge)?;
    let posture = request
        .posture_digest
        .as_deref()
        .map(|d| {
            sv0_service::Reviewed::parse(d)
                .map(|r| sv0_service::Reviewed { position: request.log_position.or(r.position), ..r })
        })
        .transpose()
        .map_err(|e| Problem::invalid_request(e.to_string()))?;
    if posture.is_none() && request.log_position.is_some() {
        return Err(Problem::invalid_request("log_position names the position of a posture_digest; give both"));
    }
    let mut intent = request.intent;
    let mut plan_digest = None;
    if let Some(plan) = &request.plan {
        let bytes = serde_json::to_vec(plan).map_err(Problem::internal)?;
        let report = s.reader.whatif(&c.tenant, &scope, &bytes)?;
        intent.get_or_insert_with(Vec::new).extend(sv0_service::whatif::planned_intent(&report));
        plan_digest = Some(report.plan_digest);
    }
    let approval = sv0_service::Approval {
        note: request.note,
        acknowledged: acks,
        intent,
        posture,
        by: c.actor(),
        plan_digest,
        force: request.force,
    };
    let report = s.commands.lock().await.approve_with(&c.tenant, &scope, approval, Timestamp::now()).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeltaQuery {
    scope: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatIfQuery {
    scope: String,
}

pub(crate) async fn whatif<L: EventLog>(
    ask: Ask<L>,
    q: Result<Query<WhatIfQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    json_body(&ask.headers)?;
    let bytes = body(bytes, s.max_body)?;
    let scope = scope_of(&q.scope)?;
    // The plan is folded over the views and the policy runs: off the async threads.
    let state = Arc::clone(s);
    let report = tokio::task::spawn_blocking(move || state.reader.whatif(&c.tenant, &scope, &bytes))
        .await
        .map_err(Problem::internal)??;
    ok(report)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    scope: String,
}

pub(crate) async fn review<L: EventLog>(ask: Ask<L>, q: Result<Query<ReviewQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let scope = scope_of(&q.scope)?;
    ok(s.reader.review(&c.tenant, &scope)?)
}

pub(crate) async fn delta<L: EventLog>(ask: Ask<L>, q: Result<Query<DeltaQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let scope = scope_of(&q.scope)?;
    // A tenant's Rego policy runs (in its worker) while the delta is decided: off the async
    // threads.
    let state = Arc::clone(s);
    let tenant = c.tenant.clone();
    let report =
        tokio::task::spawn_blocking(move || state.reader.delta(&tenant, &scope)).await.map_err(Problem::internal)??;
    ok(report)
}

pub(crate) async fn signals<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let q = query(q)?;
    let signals = s.reader.signals_after(Some(&c.tenant), 0)?;
    // Keyed by log position, zero-padded so that keys sort as numbers.
    let keyed: Vec<(String, CloudEvent)> =
        signals.iter().map(|sig| (format!("{:020}", sig.assessed_seq), sig.cloudevent())).collect();
    let reply = page(keyed, |(k, _)| k.clone(), q.limit, q.cursor.as_deref())?;
    strip_keys(reply).await
}

/// Turns a page of `(key, value)` pairs into a page of values.
async fn strip_keys(mut reply: Response) -> Reply {
    let bytes = axum::body::to_bytes(std::mem::take(reply.body_mut()), usize::MAX).await.map_err(Problem::internal)?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(Problem::internal)?;
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = item.get(1).cloned().unwrap_or(Value::Null);
        }
    }
    ok(value)
}

fn pack_of<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    id: &str,
) -> Result<sv0_domain::events::PackSealed, Problem> {
    let id = safe_id(id)?;
    let packs = s.views.packs(tenant)?;
    let found = match id.parse::<u64>() {
        Ok(index) => packs.into_iter().find(|p| p.index == index),
        Err(_) => packs.into_iter().find(|p| p.pack_id == id),
    };
    found.ok_or_else(|| Problem::not_found(format!("no pack {id}")))
}

/// One sealed pack of the tenant's chain.
#[derive(Serialize, JsonSchema)]
pub struct PackSummary {
    index: u64,
    pack_id: String,
    digest: String,
    key_id: String,
    assessed_seq: u64,
}

pub(crate) async fn packs<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let q = query(q)?;
    let packs: Vec<PackSummary> = s
        .views
        .packs(&c.tenant)?
        .into_iter()
        .map(|p| PackSummary {
            index: p.index,
            pack_id: p.pack_id,
            digest: p.digest,
            key_id: p.key_id,
            assessed_seq: p.assessed_seq,
        })
        .collect();
    page(packs, |p| format!("{:020}", p.index), q.limit, q.cursor.as_deref())
}

pub(crate) async fn pack<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let sealed = pack_of(s, &c.tenant, &id)?;
    ok(sv0_signer::PackFile::from_sealed(&sealed).map_err(Problem::internal)?)
}

pub(crate) async fn pack_dsse<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    use base64::Engine as _;
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let sealed = pack_of(s, &c.tenant, &id)?;
    ok(DsseEnvelope {
        payload_type: sv0_signer::PAYLOAD_TYPE.to_string(),
        payload: base64::engine::general_purpose::STANDARD.encode(sealed.body.as_bytes()),
        signatures: vec![DsseSignature { keyid: sealed.key_id, sig: sealed.signature }],
    })
}

/// A pack as a DSSE envelope (https://github.com/secure-systems-lab/dsse).
#[derive(Serialize, JsonSchema)]
pub struct DsseEnvelope {
    /// The pack's media type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The pack body, base64.
    pub payload: String,
    /// The signer's signature over the DSSE pre-authentication encoding.
    pub signatures: Vec<DsseSignature>,
}

/// One DSSE signature.
#[derive(Serialize, JsonSchema)]
pub struct DsseSignature {
    /// The signing key's id (`sv0 keys list`).
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

pub(crate) async fn inclusion<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let sealed = pack_of(s, &c.tenant, &id)?;
    let proof = s.reader.inclusion_proof(&c.tenant, &sealed.pack_id)?;
    ok(proof)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    old: u64,
    new: u64,
}

pub(crate) async fn consistency<L: EventLog>(ask: Ask<L>, q: Result<Query<ConsistencyQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let q = query(q)?;
    let proof = s.reader.consistency_proof(&c.tenant, q.old, q.new)?;
    ok(proof)
}

pub(crate) async fn checkpoint<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let note = s.commands.lock().await.checkpoint(&c.tenant)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeysQuery {
    format: Option<String>,
}

pub(crate) async fn keys<L: EventLog>(ask: Ask<L>, q: Result<Query<KeysQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let q = query(q)?;
    match q.format.as_deref() {
        None | Some("json") => ok(s.views.keys(&c.tenant)?),
        Some("pem") => {
            let pem = s.reader.export_keys(&c.tenant).await?;
            Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
        }
        Some(other) => Err(Problem::invalid_request(format!("unknown format {other:?}: json or pem"))),
    }
}

pub(crate) async fn start_sync<L: EventLog + Clone + Send + Sync + 'static>(
    ask: Ask<L>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller(Permission::Sync)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, crate::SMALL_BODY)?;
    let request: crate::syncs::SyncRequest = sv0_codec::json::from_slice(&bytes)
        .map_err(|e| Problem::invalid_request(format!("invalid sync request: {e}")))?;
    let record = crate::syncs::start(s, &c.tenant, &c.principal, request)?;
    let location = format!("/api/v1/syncs/{}", record.sync_id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(record)).into_response())
}

pub(crate) async fn sync<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    let id = safe_id(&id)?;
    match s.syncs.get(&c.tenant, id) {
        Some(record) => ok(record),
        None => Err(Problem::not_found(format!("no sync {id}"))),
    }
}

/// `POST /findings/acknowledgements`: accept open findings until a date.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    acknowledge: Vec<AckBody>,
    note: String,
}

fn acks(list: &[AckBody]) -> Result<Vec<Acknowledgement>, Problem> {
    let mut out = Vec::new();
    for ack in list {
        let due = Timestamp::parse_due(&ack.due).map_err(|e| Problem::invalid_request(e.to_string()))?;
        out.push(Acknowledgement { finding_id: ack.finding_id.clone(), due });
    }
    Ok(out)
}

pub(crate) async fn acknowledge<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller(Permission::Acknowledge)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, crate::SMALL_BODY)?;
    let request: AcknowledgeBody = sv0_codec::json::from_slice(&bytes)
        .map_err(|e| Problem::invalid_request(format!("invalid acknowledgement: {e}")))?;
    let acknowledged = acks(&request.acknowledge)?;
    let seq = s
        .commands
        .lock()
        .await
        .acknowledge_findings(&c.tenant, acknowledged, &c.actor(), &request.note, Timestamp::now())
        .await?;
    Ok((StatusCode::CREATED, Json(Acknowledged { acknowledged_by: c.principal, log_position: seq })).into_response())
}

/// What an acknowledgement recorded.
#[derive(Serialize, JsonSchema)]
pub struct Acknowledged {
    /// The authenticated caller, recorded as who accepted the findings.
    pub acknowledged_by: String,
    /// Where the acknowledgement is on the log.
    pub log_position: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayQuery {
    as_of: String,
    scope: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Views folded afresh from the log up to `as_of`.
/// The caller's tenant as the log stood at `as_of`: folded from the tenant's own subjects, one
/// replay at a time per tenant (429 while one runs), the last few kept by (tenant, position).
async fn replayed<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    as_of: &str,
) -> Result<std::sync::Arc<sv0_projections::Views>, Problem> {
    let as_of = sv0_service::AsOf::parse(as_of).map_err(|e| Problem::invalid_request(e.to_string()))?;
    let until = s.reader.position_of(as_of).await?;
    if let Some(views) = s.replays.cached(tenant, until) {
        return Ok(views);
    }
    let Some(_running) = s.replays.start(tenant) else {
        return Err(Problem::busy(format!(
            "a replay of tenant {tenant} is running; ask again when it is done (answers are kept by position)"
        )));
    };
    let views = std::sync::Arc::new(s.reader.replay_tenant(tenant, until).await?);
    s.replays.keep(tenant, until, std::sync::Arc::clone(&views));
    Ok(views)
}

pub(crate) async fn replay_paths<L: EventLog>(ask: Ask<L>, q: Result<Query<ReplayQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let q = query(q)?;
    let filter = PathFilter { scope: q.scope.as_deref().map(scope_of).transpose()?, ..PathFilter::default() };
    let views = replayed(s, &c.tenant, &q.as_of).await?;
    let paths = views.query_paths(&c.tenant, &filter)?;
    page(paths, |p| p.path_id.clone(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn replay_findings<L: EventLog>(ask: Ask<L>, q: Result<Query<ReplayQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Evidence)?;
    let s = &ask.s;
    let q = query(q)?;
    let scope = q.scope.as_deref().map(scope_of).transpose()?;
    let views = replayed(s, &c.tenant, &q.as_of).await?;
    let mut records = views.findings(&c.tenant, scope.as_ref())?;
    records.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    page(records, |r| r.finding.finding_id.clone(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn tokens<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller(Permission::Administer)?;
    let s = &ask.s;
    let q = query(q)?;
    let tokens: Vec<sv0_service::tokens::TokenView> = s.views.tokens(&c.tenant)?.iter().map(Into::into).collect();
    page(tokens, |t| t.token_id.clone(), q.limit, q.cursor.as_deref())
}

/// `POST /tokens`: a token of the caller's tenant (never an approver's).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    name: String,
    principal: String,
    roles: Vec<sv0_domain::access::Role>,
    /// When the token stops authenticating (RFC 3339); none: until revoked.
    expires_at: Option<Timestamp>,
}

pub(crate) async fn issue_token<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller(Permission::Administer)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, crate::SMALL_BODY)?;
    let request: IssueBody = sv0_codec::json::from_slice(&bytes)
        .map_err(|e| Problem::invalid_request(format!("invalid token request: {e}")))?;
    // An admin cannot approve, so an admin cannot mint an approver either: approver tokens are
    // issued on the host (`sv0 tokens create`), where who holds them is decided.
    if request.roles.contains(&sv0_domain::access::Role::Approver) {
        return Err(Problem::forbidden("approver tokens are issued on the host with `sv0 tokens create`"));
    }
    let issued = s
        .commands
        .lock()
        .await
        .issue_token(&c.tenant, &request.name, &request.principal, request.roles, request.expires_at, &c.actor())
        .await?;
    let record = sv0_service::tokens::TokenView::from(&issued.record);
    Ok((StatusCode::CREATED, Json(IssuedToken { token: issued.token, record })).into_response())
}

/// A token just issued: its secret, shown this once, and its record.
#[derive(Serialize, JsonSchema)]
pub struct IssuedToken {
    /// The bearer secret; SV0 keeps only its hash.
    pub token: String,
    /// The token as `GET /tokens` lists it.
    pub record: sv0_service::tokens::TokenView,
}

pub(crate) async fn revoke_token<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller(Permission::Administer)?;
    let s = &ask.s;
    let id = safe_id(&id)?;
    if !s.views.tokens(&c.tenant)?.iter().any(|t| t.token_id == id) {
        return Err(Problem::not_found(format!("no token {id}")));
    }
    let record = s.commands.lock().await.revoke_token(&c.tenant, id, "revoked through the API", &c.actor()).await?;
    ok(sv0_service::tokens::TokenView::from(&record))
}

pub(crate) async fn policy<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    let s = &ask.s;
    ok(s.reader.policy(&c.tenant)?)
}

pub(crate) async fn policy_approvals<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller(Permission::Read)?;
    ok(ask.s.reader.rego_state(&c.tenant)?)
}

/// `POST /policy/approvals`: `{"digest": "sha256:...", "note": "..."}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyApprovalBody {
    digest: String,
    note: String,
}

pub(crate) async fn approve_policy<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller(Permission::Approve)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, crate::SMALL_BODY)?;
    let request: PolicyApprovalBody =
        sv0_codec::json::from_slice(&bytes).map_err(|e| Problem::invalid_request(format!("invalid approval: {e}")))?;
    let (state, seq) = s
        .commands
        .lock()
        .await
        .approve_policy(&c.tenant, &request.digest, &request.note, &c.actor(), Timestamp::now())
        .await?;
    ok(PolicyApproved { rego: state, log_position: seq })
}

/// The tenant's Rego policy state after an approval.
#[derive(Serialize, JsonSchema)]
pub struct PolicyApproved {
    /// The policy in force and the one awaiting approval.
    pub rego: sv0_domain::policy::RegoState,
    /// Where the approval is on the log.
    pub log_position: u64,
}

pub(crate) async fn set_policy<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller(Permission::Administer)?;
    let s = &ask.s;
    json_body(&ask.headers)?;
    let bytes = body(bytes, crate::POLICY_BODY)?;
    let policy: sv0_domain::policy::Policy =
        sv0_codec::json::from_slice(&bytes).map_err(|e| Problem::invalid_request(format!("invalid policy: {e}")))?;
    let report = s.commands.lock().await.set_policy(&c.tenant, |_| Ok(policy), &c.actor(), Timestamp::now()).await?;
    ok(PolicySet { policy: report.policy, log_position: report.seq })
}

/// The tenant's policy as recorded.
#[derive(Serialize, JsonSchema)]
pub struct PolicySet {
    /// The policy now in force (a `replace` Rego policy waits for an approver).
    pub policy: sv0_domain::policy::Policy,
    /// Where it is on the log.
    pub log_position: u64,
}

/// `POST /whatif`: a deployment plan, as JSON: a Terraform plan (`terraform show -json`) or an
/// ARM what-if result (`WhatIfOperationResult`).
#[derive(JsonSchema)]
#[schemars(transparent)]
pub struct PlanBody(pub serde_json::Map<String, Value>);
