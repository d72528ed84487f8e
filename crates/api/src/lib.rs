//! SV0's HTTP surface.
//!
//! `/api/v1` (`routes`): the authenticated API, every route reading or acting on the tenant of
//! the caller's bearer token (`auth`), errors as RFC 9457 problem+json (`problem`), described
//! by the OpenAPI 3.1 document at `/api/v1/openapi.json`.
//!
//! At the root, outside `/api/v1` and without authentication, what every process serves:
//!
//! - `GET /healthz`: the process is up (200);
//! - `GET /readyz`: the log answers and the views are within `READY_LAG` events of its head
//!   (200 with the positions as JSON; 503 otherwise);
//!
//! `GET /metrics` (Prometheus text: log head, views position, lag, packs sealed and findings
//! open, requests by method, route and status) is served only on a listener of its own
//! (`metrics_router`, `sv0 serve --metrics-listen`), so that the API's port shows nothing
//! without a token; tenants are labels only when the operator asks for them.
//!
//! `router` builds them over any `EventLog` and the views the process folds.

pub mod auth;
pub mod azure_devops;
pub mod github;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod problem;
pub mod replays;
pub mod routes;
pub mod syncs;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use sv0_log::EventLog;
use sv0_service::{Queries, Service};

/// The largest request body (a pushed snapshot) by default.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The largest body of every route but those that take snapshots and plans (`POST /scans`,
/// `/whatif`, `/approvals`) and the webhooks'.
pub const SMALL_BODY: usize = 64 * 1024;

/// The largest body of `PUT /policy` (a Rego policy is at most 256 KiB).
pub const POLICY_BODY: usize = 1024 * 1024;

/// Connections served at once; a connection beyond them is closed as it is accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may take, its body included (a 64 MiB snapshot at 1 MB/s fits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Views further behind the log head than this are not ready.
pub const READY_LAG: u64 = 1_000;

/// What the handlers read and act through.
pub struct ApiState<L: EventLog> {
    /// Every read (paths, delta, proofs, signals, readiness) goes through these queries over
    /// the process's log and views, so that it never waits for a command in progress.
    pub queries: Queries<L>,
    /// Commands (imports, approvals) go through one service sharing the log and the views; it
    /// does not seal (the process's signer does).
    pub commands: tokio::sync::Mutex<Service<L>>,
    /// Failed authentications per client address.
    pub failures: auth::FailedAuth,
    /// The largest request body accepted (snapshots and plans).
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Whether `/metrics` shows series per tenant (the tenants' names) or totals only.
    pub metrics_tenant_labels: bool,
    /// Audit replays: one at a time per tenant, the last few kept.
    pub replays: replays::Replays,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default: the peer is
    /// the client, and the header is ignored).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// What a sync reads: the snapshot a collector keeps current, or connectors.
    pub sync_source: Option<syncs::SyncSource>,
    /// The syncs of this process.
    pub syncs: syncs::Syncs,
    /// Requests served.
    pub requests: Arc<metrics::RequestMetrics>,
    /// The GitHub App taking deployment protection webhooks, when configured.
    pub github: Option<Arc<github::GitHubApp>>,
    /// Azure DevOps collection URLs a callback check may name.
    pub azure_devops: Vec<String>,
    /// Outbound HTTP (callbacks).
    pub http: reqwest::Client,
    /// Provider JWTs accepted as bearer tokens, when configured.
    pub oidc: Option<Arc<oidc::OidcVerifier>>,
    /// Signed-in browsers of the review screens.
    pub sessions: web::session::Sessions,
    /// Sign-in to the review screens through the identity provider, when `[oidc]` names its
    /// endpoints.
    pub sso: Option<Arc<web::sso::Sso>>,
    /// The Overview's tenant-wide facts, kept while the views stand still.
    pub overview_facts: web::overview::FactsCache,
}

impl<L: EventLog + Clone> ApiState<L> {
    /// State over a service's log and views; commands use a second, non-sealing service.
    pub fn new(service: &Service<L>) -> ApiState<L> {
        let commands = Service::from(Queries::clone(service)).without_sealing();
        ApiState {
            queries: Queries::clone(service),
            commands: tokio::sync::Mutex::new(commands),
            failures: auth::FailedAuth::default(),
            max_body: MAX_BODY,
            max_connections: MAX_CONNECTIONS,
            metrics_tenant_labels: false,
            replays: replays::Replays::default(),
            trusted_proxies: Vec::new(),
            sync_source: None,
            syncs: syncs::Syncs::default(),
            requests: Arc::default(),
            github: None,
            azure_devops: Vec::new(),
            // Callbacks go where the configuration says, never where a redirect points.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .user_agent(concat!("sv0/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            oidc: None,
            sessions: web::session::Sessions::default(),
            sso: None,
            overview_facts: web::overview::FactsCache::default(),
        }
    }
}

/// The operational routes and `/api/v1`.
pub fn router<L: EventLog + Clone>(state: Arc<ApiState<L>>) -> Router {
    let mut api: Router<Arc<ApiState<L>>> =
        Router::new().route("/openapi.json", get(|| async { axum::Json(openapi::document()) }));
    let mut paths: std::collections::BTreeMap<&str, MethodRouter<Arc<ApiState<L>>>> = Default::default();
    let max_body = state.max_body;
    for (spec, handler) in routes::method_routers::<L>() {
        // The caller is authenticated from the headers before anything reads the body, and
        // must hold the route's permission.
        let guard = axum::middleware::from_fn_with_state((Arc::clone(&state), spec.permission), authenticate::<L>);
        let mut handler = handler.route_layer(guard);
        let limit = body_limit(spec, max_body);
        if limit != SMALL_BODY {
            handler = handler.layer(DefaultBodyLimit::max(limit));
        }
        let entry = paths.remove(spec.path).unwrap_or_default();
        paths.insert(spec.path, entry.merge(handler));
    }
    for (path, method_router) in paths {
        api = api.route(path, method_router);
    }
    let requests = Arc::clone(&state.requests);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<L>))
        .route("/integrations/github/deployment-protection", post(github::deployment_protection::<L>))
        .route("/integrations/azure-devops/check", post(azure_devops::check::<L>))
        .nest("/api/v1", api.fallback(|| async { problem::Problem::not_found("no such route") }))
        .merge(web::router::<L>())
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .route_layer(axum::middleware::from_fn_with_state(requests, metrics::track))
        .layer(axum::middleware::from_fn(bounded_in_time))
        .with_state(state)
}

/// Whether `url` is at or below `base`: the same scheme, host and port, no user info, and
/// `base`'s path segments leading `url`'s. Both are parsed as URLs (so `..` segments are
/// resolved before comparing), and a path holding an encoded dot, slash or backslash
/// (`%2e`, `%2f`, `%5c`), which a server may decode into one, is refused.
pub fn url_within(base: &str, url: &str) -> bool {
    let (Ok(base), Ok(url)) = (reqwest::Url::parse(base), reqwest::Url::parse(url)) else { return false };
    let lower = url.path().to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "\\"].iter().any(|bad| lower.contains(bad)) {
        return false;
    }
    let segments = |u: &reqwest::Url| -> Vec<String> {
        u.path_segments().map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
    };
    let (base_path, path) = (segments(&base), segments(&url));
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && path.len() >= base_path.len()
        && path[..base_path.len()] == base_path[..]
}

/// `/metrics` (and `/healthz`), for a listener of their own: the operator's, not the API's.
pub fn metrics_router<L: EventLog + Clone>(state: Arc<ApiState<L>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::<L>))
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .with_state(state)
}

/// The largest body a route takes.
pub(crate) fn body_limit(spec: &routes::RouteSpec, max_body: usize) -> usize {
    match spec.body_limit {
        routes::BodyLimit::Snapshot => max_body,
        routes::BodyLimit::Policy => POLICY_BODY,
        routes::BodyLimit::Small => SMALL_BODY,
    }
}

/// Refuses a caller whose token does not permit the route's permission, from the headers
/// alone: an anonymous or forbidden request is answered before its body is read.
async fn authenticate<L: EventLog>(
    State((state, permission)): State<(Arc<ApiState<L>>, sv0_domain::access::Permission)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth::authorize(
        state.queries.views(),
        state.oidc.as_deref(),
        &state.failures,
        request.headers(),
        client_ip(&state.trusted_proxies, addr.ip(), request.headers()),
        permission,
    ) {
        Ok(caller) => {
            // The handler takes the caller from here: the token is checked once per request.
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => problem.into_response(),
    }
}

/// The client a request comes from: the peer, or — only when the peer is a trusted proxy —
/// the address that proxy appended last to `X-Forwarded-For` (what the client wrote there
/// itself comes before it and is never believed).
pub fn client_ip(
    trusted: &[std::net::IpAddr],
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
        .and_then(|v| v.parse().ok())
        .unwrap_or(peer)
}

/// Answers 408 to a request not complete within `REQUEST_TIMEOUT` (a body sent slowly).
async fn bounded_in_time(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => problem::Problem::request_timeout(REQUEST_TIMEOUT.as_secs()).into_response(),
    }
}

async fn positions<L: EventLog>(state: &ApiState<L>) -> Result<(u64, u64), String> {
    let head = tokio::time::timeout(Duration::from_secs(2), state.queries.log().head())
        .await
        .map_err(|_| "the log did not answer within 2 s".to_string())?
        .map_err(|e| format!("the log is unreachable: {e}"))?;
    let views = state.queries.views().checkpoint().map_err(|e| format!("the views are unreadable: {e}"))?;
    Ok((head, views))
}

async fn readyz<L: EventLog>(State(state): State<Arc<ApiState<L>>>) -> Response {
    match positions(&state).await {
        Ok((head, views)) => {
            let lag = head.saturating_sub(views);
            let body = serde_json::json!({ "log_head": head, "views_position": views, "lag": lag });
            let status = if lag <= READY_LAG { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, axum::Json(body)).into_response()
        }
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "error": reason }))).into_response()
        }
    }
}

async fn metrics<L: EventLog>(State(state): State<Arc<ApiState<L>>>) -> Response {
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, u64)>| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    if let Ok((head, views)) = positions(&state).await {
        gauge("sv0_log_head", "Position of the last event on the log.", vec![(String::new(), head)]);
        gauge(
            "sv0_views_position",
            "Last log position folded into this process's views.",
            vec![(String::new(), views)],
        );
        gauge(
            "sv0_projection_lag",
            "Events on the log not yet folded.",
            vec![(String::new(), head.saturating_sub(views))],
        );
    }
    let tenants = state.queries.views().tenants().unwrap_or_default();
    let mut packs = Vec::new();
    let mut findings = Vec::new();
    for tenant in &tenants {
        let label = format!("{{tenant=\"{tenant}\"}}");
        let sealed = state.queries.views().pack_head(tenant).ok().flatten().map_or(0, |h| h.index);
        packs.push((label.clone(), sealed));
        // The fold keeps the open count in the tenant's state: no finding is read for it.
        let open = state.queries.views().tenant_state(tenant).ok().flatten().map_or(0, |s| s.open.total());
        findings.push((label, open));
    }
    if !state.metrics_tenant_labels {
        // Totals only: the metrics name no tenant.
        packs = vec![(String::new(), packs.iter().map(|(_, n)| n).sum())];
        findings = vec![(String::new(), findings.iter().map(|(_, n)| n).sum())];
    }
    gauge("sv0_packs_sealed", "Evidence packs in the tenant's chain.", packs);
    gauge("sv0_findings_open", "Open findings of the tenant.", findings);
    text.push_str(&state.requests.exposition());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve<L: EventLog + Clone>(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState<L>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = state.max_connections;
    serve_router(listener, router(state), connections, shutdown).await
}

/// The accept loop: at most `connections` connections (one more is closed at once), each
/// with `HEADER_READ_TIMEOUT` to send its headers; on `shutdown`, the connections in flight
/// finish (at most 30 s).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, and go on serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%addr, limit = connections, "connection refused: too many connections");
            drop(stream);
            continue;
        };
        let service =
            hyper_util::service::TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(addr))));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open 30 s after shutdown were dropped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::url_within;

    /// A callback URL is compared by origin and path segments, never as a string prefix.
    #[test]
    fn callback_urls_are_compared_by_origin_and_segments() {
        let base = "https://dev.azure.com/contoso/";
        assert!(url_within(base, "https://dev.azure.com/contoso/"));
        assert!(url_within(base, "https://dev.azure.com/contoso/p-1/_apis/distributedtask"));
        for refused in [
            "https://dev.azure.com/contoso/../evil/",
            "https://dev.azure.com/contoso/%2e%2e/evil/",
            "https://dev.azure.com/contoso/%2E%2E%2Fevil/",
            "https://dev.azure.com/contoso%2f..%2fevil/",
            "https://dev.azure.com/contosoevil/",
            "https://dev.azure.com.evil.example/contoso/",
            "https://sv0@dev.azure.com/contoso/",
            "http://dev.azure.com/contoso/",
            "https://dev.azure.com:8443/contoso/",
            "https://dev.azure.com/contoso\\..\\evil/",
            "not a url",
        ] {
            assert!(!url_within(base, refused), "{refused}");
        }
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::client_ip;

    /// `X-Forwarded-For` counts only from a trusted proxy, and only the entry it appended.
    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1, 203.0.113.9".parse().unwrap());
        let stranger: std::net::IpAddr = "192.0.2.44".parse().unwrap();
        assert_eq!(client_ip(&[], stranger, &headers), stranger, "no proxy trusted: the peer");
        assert_eq!(client_ip(&[proxy], stranger, &headers), stranger, "not from the proxy: the peer");
        assert_eq!(client_ip(&[proxy], proxy, &headers), "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(client_ip(&[proxy], proxy, &axum::http::HeaderMap::new()), proxy);
    }
}
