//! SV0's HTTP surface. For now the operational endpoints every process serves, outside
//! `/api/v1` and without authentication:
//!
//! - `GET /healthz`: the process is up (200);
//! - `GET /readyz`: the log answers and the views are within `READY_LAG` events of its head
//!   (200 with the positions as JSON; 503 otherwise);
//! - `GET /metrics`: Prometheus text — log head, views position, lag, packs sealed and
//!   findings open per tenant.
//!
//! `router` builds them over any `EventLog` and the views the process folds.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sv0_log::EventLog;
use sv0_projections::{FindingStatus, Views};

/// Views further behind the log head than this are not ready.
pub const READY_LAG: u64 = 1_000;

/// What the handlers read.
pub struct ApiState<L: EventLog> {
    /// The log.
    pub log: L,
    /// The views this process folds.
    pub views: Views,
}

/// The operational routes.
pub fn router<L: EventLog + Clone>(state: Arc<ApiState<L>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<L>))
        .route("/metrics", get(metrics::<L>))
        .with_state(state)
}

async fn positions<L: EventLog>(state: &ApiState<L>) -> Result<(u64, u64), String> {
    let head = tokio::time::timeout(Duration::from_secs(2), state.log.head())
        .await
        .map_err(|_| "the log did not answer within 2 s".to_string())?
        .map_err(|e| format!("the log is unreachable: {e}"))?;
    let views = state.views.checkpoint().map_err(|e| format!("the views are unreadable: {e}"))?;
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
    let tenants = state.views.tenants().unwrap_or_default();
    let mut packs = Vec::new();
    let mut findings = Vec::new();
    for tenant in &tenants {
        let label = format!("{{tenant=\"{tenant}\"}}");
        let sealed = state.views.pack_head(tenant).ok().flatten().map_or(0, |h| h.index);
        packs.push((label.clone(), sealed));
        let open = state
            .views
            .findings(tenant, None)
            .map(|all| all.iter().filter(|r| r.status == FindingStatus::Open).count() as u64)
            .unwrap_or(0);
        findings.push((label, open));
    }
    gauge("sv0_packs_sealed", "Evidence packs in the tenant's chain.", packs);
    gauge("sv0_findings_open", "Open findings of the tenant.", findings);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve<L: EventLog + Clone>(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState<L>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
