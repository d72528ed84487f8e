//! Azure DevOps "Invoke REST API" checks: `POST /integrations/azure-devops/check`.
//!
//! The check's Generic service connection authenticates with an SV0 token (as the password of
//! Basic auth, or as a bearer token); the body names the scope (`{"scope": ..., "environment":
//! ...}`). Two modes, as Azure DevOps offers:
//!
//! - **ApiResponse** (no callback headers): the answer, within Azure DevOps' 3 s, is the scope's
//!   disposition now, read from the views: `{"status": "approved" | "requires_review" |
//!   "rejected" | "no_baseline", ...}`, for the success criterion `eq(root['status'],
//!   'approved')`.
//! - **Callback** (the `PlanUrl`, `ProjectId`, `HubName`, `PlanId`, `JobId`, `TaskInstanceId` and
//!   `AuthToken` headers): `200` at once, a sync of the deployment, then the `TaskCompleted`
//!   event (`succeeded` when approved, else `failed`) posted to the plan's events endpoint with
//!   the job's `AuthToken`. Only collection URLs listed in `[azure_devops]` of `sv0.toml` are
//!   called back.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sv0_domain::access::Permission;
use sv0_domain::scope::Scope;
use sv0_log::EventLog;
use tracing::{info, warn};

use crate::ApiState;
use crate::problem::Problem;
use crate::syncs::{SyncRequest, SyncStatus};

/// What the check sends in its body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    scope: String,
    environment: Option<String>,
    repository: Option<String>,
    run_id: Option<String>,
    commit: Option<String>,
}

/// The plan a callback check reports to.
#[derive(Debug, Clone)]
struct Plan {
    events_url: String,
    job_id: String,
    task_id: String,
    token: String,
}

/// Basic auth with the token as password (Generic service connection), or a bearer token.
fn bearer_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, password)| password.to_string()));
    if let Some(token) = basic
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        out.insert(header::AUTHORIZATION, value);
    }
    out
}

fn plan(headers: &HeaderMap, allowed: &[String]) -> Result<Option<Plan>, Problem> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let Some(plan_url) = get("PlanUrl") else { return Ok(None) };
    let fields = ["ProjectId", "HubName", "PlanId", "JobId", "TaskInstanceId", "AuthToken"];
    let mut values = Vec::new();
    for name in fields {
        values.push(
            get(name).ok_or_else(|| Problem::invalid_request(format!("a callback check needs the {name} header")))?,
        );
    }
    let base = format!("{}/", plan_url.trim_end_matches('/'));
    if !allowed.iter().any(|a| crate::url_within(a, &base)) {
        return Err(Problem::forbidden(format!(
            "{plan_url} is not an Azure DevOps collection this server calls back ([azure_devops] collection_urls)"
        )));
    }
    let safe = |v: &str| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !values[..5].iter().all(|v| safe(v)) {
        return Err(Problem::invalid_request("a plan header holds characters an id cannot"));
    }
    Ok(Some(Plan {
        events_url: format!(
            "{base}{}/_apis/distributedtask/hubs/{}/plans/{}/events?api-version=2.0-preview.1",
            values[0], values[1], values[2]
        ),
        job_id: values[3].to_string(),
        task_id: values[4].to_string(),
        token: values[5].to_string(),
    }))
}

/// The check.
pub(crate) async fn check<L: EventLog + Clone + Send + Sync + 'static>(
    State(state): State<Arc<ApiState<L>>>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
) -> Result<Response, Problem> {
    let headers = bearer_headers(request.headers());
    // The caller first, from the headers; only then the body.
    let caller = crate::auth::authorize(
        state.queries.views(),
        state.oidc.as_deref(),
        &state.failures,
        &headers,
        crate::client_ip(&state.trusted_proxies, addr.ip(), &headers),
        Permission::Read,
    )?;
    let body = axum::body::to_bytes(request.into_body(), crate::SMALL_BODY)
        .await
        .map_err(|_| Problem::too_large(crate::SMALL_BODY))?;
    let request: CheckBody =
        sv0_codec::json::from_slice(&body).map_err(|e| Problem::invalid_request(format!("invalid check body: {e}")))?;
    let scope = Scope::parse(&request.scope).map_err(|e| Problem::invalid_request(e.to_string()))?;
    let Some(plan) = plan(&headers, &state.azure_devops)? else {
        // ApiResponse: the disposition now, from the views alone.
        let reader = Arc::clone(&state);
        let (tenant, asked) = (caller.tenant.clone(), scope.clone());
        let delta = tokio::task::spawn_blocking(move || reader.queries.delta(&tenant, &asked))
            .await
            .map_err(Problem::internal)?;
        let answer = match delta {
            Ok(delta) => json!({
                "status": delta.disposition.decision,
                "scope": scope,
                "baseline_version": delta.baseline_version,
                "changes": delta.entries.len(),
                "flagged": delta.entries.iter().filter(|e| e.flagged).count(),
                "summary": delta.verification.summary,
                "reasons": delta.disposition.reasons.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
            }),
            Err(sv0_service::ServiceError::NoBaseline { .. }) => json!({
                "status": "no_baseline",
                "scope": scope,
                "summary": "the scope has no approved baseline",
            }),
            Err(e) => return Err(e.into()),
        };
        return Ok((StatusCode::OK, axum::Json(answer)).into_response());
    };
    if !caller.roles.iter().any(|r| r.permits(Permission::Sync)) {
        return Err(Problem::forbidden(
            "a callback check runs a scan: the token needs the pipeline, analyst or admin role",
        ));
    }
    let sync = crate::syncs::start(
        &state,
        &caller.tenant,
        &caller.principal,
        SyncRequest {
            scope: Some(request.scope.clone()),
            environment: request.environment,
            repository: request.repository,
            run_id: request.run_id,
            commit: request.commit,
            targets: Vec::new(),
            // An Azure DevOps check holds the stage before it runs.
            trigger: Some(sv0_domain::snapshot::ScanTrigger::PreDeployment),
        },
    )?;
    let sync_id = sync.sync_id.clone();
    let tenant = caller.tenant.clone();
    let state2 = Arc::clone(&state);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60 * 60);
        let approved = loop {
            match state2.syncs.get(&tenant, &sync.sync_id) {
                Some(r) if r.status.finished() => {
                    break r.status == SyncStatus::Completed
                        && r.disposition
                            .as_ref()
                            .is_some_and(|d| d.decision == sv0_domain::disposition::Decision::Approved);
                }
                _ if tokio::time::Instant::now() >= deadline => break false,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        if let Err(e) = task_completed(&state2.http, &plan, approved).await {
            warn!(error = %e, "the Azure DevOps check callback failed");
        }
    });
    Ok((StatusCode::OK, axum::Json(json!({ "sync_id": sync_id }))).into_response())
}

/// Posts `TaskCompleted` to the plan.
async fn task_completed(http: &reqwest::Client, plan: &Plan, approved: bool) -> Result<(), String> {
    let result = if approved { "succeeded" } else { "failed" };
    let response = http
        .post(&plan.events_url)
        .bearer_auth(&plan.token)
        .json(&json!({ "name": "TaskCompleted", "taskId": plan.task_id, "jobId": plan.job_id, "result": result }))
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", plan.events_url))?;
    if !response.status().is_success() {
        return Err(format!("POST {} answered {}", plan.events_url, response.status()));
    }
    info!(result, "answered an Azure DevOps check");
    Ok(())
}

/// `[azure_devops]` of `sv0.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureDevOpsConfig {
    /// The organisation URLs (`$(system.CollectionUri)`, e.g. `https://dev.azure.com/contoso/`)
    /// a check may ask to be called back at; any other is refused, so that a token holder
    /// cannot make SV0 send requests elsewhere.
    pub collection_urls: Vec<String>,
}
