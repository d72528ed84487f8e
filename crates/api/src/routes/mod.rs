//! The `/api/v1` routes. `ROUTES` is the one list of them: the router is built from it, the
//! OpenAPI document is generated from it, and the route matrix test walks it, so none of the
//! three can drift from the others. Every route authenticates first, then reads its input, so
//! a caller without a valid token learns nothing about the request it sent.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query};
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

mod admin;
mod approvals;
mod evidence;
mod posture;
mod replay;
mod scans;

use crate::auth::Caller;
mod body;

use crate::problem::Problem;
pub use admin::{IssueBody, IssuedToken, PolicySet};
pub use approvals::{
    AckBody, AcknowledgeBody, Acknowledged, ApprovalBody, ApprovalView, PolicyApprovalBody, PolicyApproved,
};
pub use body::{Body, replies, replies_text, takes};
pub(crate) use evidence::pack_of;
pub use evidence::{DsseEnvelope, DsseSignature, PackSummary};
pub(crate) use replay::replayed;
pub use scans::PlanBody;

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
    pub request: Option<Body>,
    /// The body of success: the type that writes it.
    pub response: Body,
    /// The largest body it reads.
    pub body_limit: BodyLimit,
    /// The status of success.
    pub success: u16,
}

/// How large a route's request body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `SMALL_BODY`: small JSON requests (and none).
    Small,
    /// `POLICY_BODY`: a tenant's policy, Rego included.
    Policy,
    /// `--max-body`: snapshots, plans and approvals carrying a plan.
    Snapshot,
}

/// The one table of routes: each entry names its method, path and handler, and the rest of its
/// `RouteSpec`. It expands to `ROUTES` (what the OpenAPI document, the route matrix test and
/// the router read) and to `method_routers` (each route's handler, in the same order), so a
/// route is added in one place.
macro_rules! routes {
    ($( $method:ident $path:literal => $module:ident :: $handler:ident { $( $field:ident : $value:expr ),* $(,)? } ),* $(,)?) => {
        /// Every `/api/v1` route.
        pub const ROUTES: &[RouteSpec] = &[
            $( RouteSpec { method: method_name!($method), path: $path, $( $field: $value ),* } ),*
        ];

        /// Each route of `ROUTES` with its handler.
        pub(crate) fn method_routers<L: EventLog + Clone>()
            -> Vec<(&'static RouteSpec, axum::routing::MethodRouter<Arc<ApiState<L>>>)> {
            let handlers = [$( axum::routing::$method($module::$handler::<L>) ),*];
            ROUTES.iter().zip(handlers).collect()
        }
    };
}

macro_rules! method_name {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
    (put) => {
        "PUT"
    };
}

routes! {
    get "/paths" => posture::paths {
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
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/findings" => posture::findings {
        permission: Permission::Read,
        summary: "Findings (of a scope, of a status), by finding id",
        query: &["scope", "status", "limit", "cursor"],
        request: None,
        response: replies::<Page<FindingRecord>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/findings/acknowledgements" => approvals::acknowledge {
        permission: Permission::Acknowledge,
        summary: "Accept open findings until a date, as the authenticated caller",
        query: &[],
        request: Some(takes::<AcknowledgeBody>(approvals::ack_example)),
        response: replies::<Acknowledged>(),
        body_limit: BodyLimit::Small,
        success: 201,
    },
    get "/scopes" => posture::scopes {
        permission: Permission::Read,
        summary: "Scopes with an approved baseline: version, state, drift",
        query: PAGE,
        request: None,
        response: replies::<Page<BaselineHead>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/scans" => scans::scans {
        permission: Permission::Read,
        summary: "Scans, by scan id",
        query: PAGE,
        request: None,
        response: replies::<Page<ScanRecord>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/syncs" => scans::start_sync {
        permission: Permission::Sync,
        summary: "Run a scan now for a deployment (scope, environment, repository, run_id, commit): 202 with a sync id",
        query: &[],
        request: Some(takes::<crate::syncs::SyncRequest>(scans::sync_example)),
        response: replies::<crate::syncs::SyncRecord>(),
        body_limit: BodyLimit::Small,
        success: 202,
    },
    get "/syncs/{id}" => scans::sync {
        permission: Permission::Read,
        summary: "A sync: pending, running, completed, quarantined or failed; when completed, the scope's disposition and delta summary",
        query: &[],
        request: None,
        response: replies::<crate::syncs::SyncRecord>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/scans/{id}" => scans::scan {
        permission: Permission::Read,
        summary: "One scan: status, coverage, counts",
        query: &[],
        request: None,
        response: replies::<ScanRecord>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/scans" => scans::push_scan {
        permission: Permission::Scan,
        summary: "Push a snapshot (JSON, schemas/snapshot.schema.json) of the caller's tenant",
        query: &["trigger"],
        request: Some(takes::<sv0_domain::snapshot::Snapshot>(scans::snapshot_example)),
        response: replies::<sv0_service::ImportReport>(),
        body_limit: BodyLimit::Snapshot,
        success: 201,
    },
    get "/baselines" => posture::baselines {
        permission: Permission::Read,
        summary: "Every version of every scope's baseline, by scope then version",
        query: &["scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<Baseline>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/approvals" => approvals::approvals {
        permission: Permission::Read,
        summary: "Approvals recorded (one per baseline version), with approver and time",
        query: &["scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<ApprovalView>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/whatif" => scans::whatif {
        permission: Permission::Read,
        summary: "What-if: the body is a deployment's plan (Terraform JSON plan or ARM what-if result); the answer is the paths it would create or remove in the scope against its baseline, the plan resource behind each, the findings it would open and the disposition. Records nothing",
        query: &["scope"],
        request: Some(takes::<PlanBody>(scans::plan_example)),
        response: replies::<sv0_service::whatif::WhatIfReport>(),
        body_limit: BodyLimit::Snapshot,
        success: 200,
    },
    get "/review" => posture::review {
        permission: Permission::Read,
        summary: "Everything to read before approving a scope: paths, counts by grade, egress and ownership, open findings, governance conditions, evidence gaps, the baseline in force and the posture_digest to approve",
        query: &["scope"],
        request: None,
        response: replies::<sv0_service::review::Review>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/approvals" => approvals::approve {
        permission: Permission::Approve,
        summary: "Approve a scope's posture as the authenticated caller: a new baseline version",
        query: &[],
        request: Some(takes::<ApprovalBody>(approvals::approval_example)),
        response: replies::<sv0_service::ApprovalReport>(),
        body_limit: BodyLimit::Snapshot,
        success: 201,
    },
    get "/delta" => posture::delta {
        permission: Permission::Read,
        summary: "A scope's path-level delta against its baseline, with verification and disposition",
        query: &["scope"],
        request: None,
        response: replies::<sv0_service::DeltaReport>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/signals" => posture::signals {
        permission: Permission::Read,
        summary: "SOC signals (CloudEvents) after a log position",
        query: &["limit", "cursor"],
        request: None,
        response: replies::<Page<CloudEvent>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/packs" => evidence::packs {
        permission: Permission::Evidence,
        summary: "Evidence packs, in chain order",
        query: PAGE,
        request: None,
        response: replies::<Page<PackSummary>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/packs/{id}" => evidence::pack {
        permission: Permission::Evidence,
        summary: "One pack as exported (id or chain index)",
        query: &[],
        request: None,
        response: replies::<sv0_signer::PackFile>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/packs/{id}/dsse" => evidence::pack_dsse {
        permission: Permission::Evidence,
        summary: "One pack as a DSSE envelope (its own signature over the PAE of its body)",
        query: &[],
        request: None,
        response: replies::<DsseEnvelope>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/proofs/inclusion/{id}" => evidence::inclusion {
        permission: Permission::Evidence,
        summary: "RFC 9162 inclusion proof of a pack in the tenant's pack tree",
        query: &[],
        request: None,
        response: replies::<sv0_service::transparency::InclusionProof>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/proofs/consistency" => evidence::consistency {
        permission: Permission::Evidence,
        summary: "RFC 9162 consistency proof between two tree sizes",
        query: &["old", "new"],
        request: None,
        response: replies::<sv0_service::transparency::ConsistencyProof>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/replay/paths" => replay::replay_paths {
        permission: Permission::Evidence,
        summary: "Paths as the log stood at a position or time (as_of), folded afresh from the log",
        query: &["as_of", "scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<AuthorityPath>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/replay/findings" => replay::replay_findings {
        permission: Permission::Evidence,
        summary: "Findings as the log stood at a position or time (as_of), folded afresh from the log",
        query: &["as_of", "scope", "limit", "cursor"],
        request: None,
        response: replies::<Page<FindingRecord>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/tokens" => admin::tokens {
        permission: Permission::Administer,
        summary: "The tenant's API tokens (never their secrets)",
        query: PAGE,
        request: None,
        response: replies::<Page<sv0_service::tokens::TokenView>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/tokens" => admin::issue_token {
        permission: Permission::Administer,
        summary: "Issue a token (shown once); approver tokens are issued on the host only",
        query: &[],
        request: Some(takes::<IssueBody>(admin::token_example)),
        response: replies::<IssuedToken>(),
        body_limit: BodyLimit::Small,
        success: 201,
    },
    post "/tokens/{id}/revoke" => admin::revoke_token {
        permission: Permission::Administer,
        summary: "Revoke a token of the tenant",
        query: &[],
        request: None,
        response: replies::<sv0_service::tokens::TokenView>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/policy" => admin::policy {
        permission: Permission::Read,
        summary: "The tenant's policy in force (evidence window, owner silence, breakers, Rego)",
        query: &[],
        request: None,
        response: replies::<sv0_domain::policy::Policy>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    put "/policy" => admin::set_policy {
        permission: Permission::Administer,
        summary: "Replace the tenant's policy (recorded as an event; every path and finding is re-decided)",
        query: &[],
        request: Some(takes::<sv0_domain::policy::Policy>(admin::policy_example)),
        response: replies::<PolicySet>(),
        body_limit: BodyLimit::Policy,
        success: 200,
    },
    get "/policy/approvals" => approvals::policy_approvals {
        permission: Permission::Read,
        summary: "Which Rego policy decides the tenant's dispositions, and which waits for a second person's approval",
        query: &[],
        request: None,
        response: replies::<sv0_domain::policy::RegoState>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    post "/policy/approvals" => approvals::approve_policy {
        permission: Permission::Approve,
        summary: "Approve the Rego policy waiting for approval ({\"digest\", \"note\"}); not by the person who set it",
        query: &[],
        request: Some(takes::<PolicyApprovalBody>(approvals::policy_approval_example)),
        response: replies::<PolicyApproved>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/checkpoint" => evidence::checkpoint {
        permission: Permission::Evidence,
        summary: "The pack tree's checkpoint, a C2SP signed note (text/plain)",
        query: &[],
        request: None,
        response: replies_text(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
    get "/keys" => evidence::keys {
        permission: Permission::Evidence,
        summary: "Public keys with their validity ranges (JSON, or the key file with format=pem)",
        query: &["format"],
        request: None,
        response: replies::<Vec<sv0_projections::KeyRecord>>(),
        body_limit: BodyLimit::Small,
        success: 200,
    },
}

const PAGE: &[&str] = &["limit", "cursor"];

type Reply = Result<Response, Problem>;

/// The state and who is asking: every route's first argument. The route's authentication
/// layer admitted the caller and checked that its roles permit the route's `permission`
/// (`RouteSpec`), so a handler never names a permission again.
pub(crate) struct Ask<L: EventLog> {
    s: Arc<ApiState<L>>,
    headers: HeaderMap,
    /// The caller the route's authentication layer admitted.
    caller: Caller,
}

impl<L: EventLog> axum::extract::FromRequestParts<Arc<ApiState<L>>> for Ask<L> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState<L>>,
    ) -> Result<Ask<L>, Problem> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::internal("a route was served without its authentication layer"))?;
        Ok(Ask { s: Arc::clone(state), headers: parts.headers.clone(), caller })
    }
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(t)| t).map_err(|e| Problem::invalid_request(e.body_text()))
}

fn ok(value: impl Serialize) -> Reply {
    Ok(Json(value).into_response())
}

pub(crate) fn scope_of(text: &str) -> Result<Scope, Problem> {
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

/// A page of `items` (sorted by `key`) after `cursor`, served as it is.
fn page<T: Serialize>(items: Vec<T>, key: impl Fn(&T) -> String, limit: Option<usize>, cursor: Option<&str>) -> Reply {
    ok(paged(items, key, limit, cursor)?)
}

/// A page of `items` (sorted by `key`) after `cursor`: `{items, next_cursor}`. The cursor is
/// the hex of the last key served.
fn paged<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<Page<T>, Problem> {
    let limit = limit_of(limit)?;
    let after = cursor_of(cursor)?;
    let start = match &after {
        Some(after) => items.partition_point(|item| key(item).as_str() <= after.as_str()),
        None => 0,
    };
    let rest = items.len().saturating_sub(start);
    let taken: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = (rest > limit).then(|| hex::encode(key(&taken[taken.len() - 1])));
    Ok(Page::new(taken, next))
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

impl<T> Page<T> {
    /// A page without a posture.
    fn new(items: Vec<T>, next_cursor: Option<String>) -> Page<T> {
        Page { items, next_cursor, posture_digest: None, log_position: None }
    }

    /// The page with the posture of its scope (the first page of a scope's paths or findings).
    fn with_posture(self, posture: sv0_service::Posture) -> Page<T> {
        Page { posture_digest: Some(posture.digest), log_position: Some(posture.position), ..self }
    }

    /// The page with each item mapped (keyed items to the items served).
    fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            posture_digest: self.posture_digest,
            log_position: self.log_position,
        }
    }
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
        None => s.queries.views().baselines(tenant)?.into_iter().map(|h| h.scope).collect(),
    };
    let mut out = Vec::new();
    for scope in scopes {
        out.extend(s.queries.views().baseline_history(tenant, &scope)?);
    }
    Ok(out)
}

fn version_key(b: &sv0_projections::Baseline) -> String {
    format!("{}\u{0}{:010}", b.scope, b.version)
}
