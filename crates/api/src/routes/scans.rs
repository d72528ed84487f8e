//! Scans and syncs: pushed snapshots, scans run for a deployment, and what a plan would change.

use super::*;

pub(super) fn sync_example() -> Value {
    json!({
        "scope": "project:HR-Automation",
        "environment": "production",
        "repository": "contoso/hr-onboarding",
        "run_id": "8812345",
        "commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "trigger": "pre_deployment",
    })
}

pub(super) fn snapshot_example() -> Value {
    serde_json::from_str(include_str!("../../../sv0/demo/contoso-1-initial.json")).unwrap_or(Value::Null)
}

pub(super) fn plan_example() -> Value {
    json!({ "format_version": "1.2", "terraform_version": "1.9.5", "resource_changes": [] })
}

pub(crate) async fn scans<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let scans = s.queries.views().scans(&c.tenant)?;
    page(scans, |r| r.scan_id.clone(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn scan<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let id = safe_id(&id)?;
    let scan = s.queries.views().scans(&c.tenant)?.into_iter().find(|r| r.scan_id == id);
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

pub(crate) async fn push_scan<L: EventLog>(
    ask: Ask<L>,
    q: Result<Query<PushQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller.clone();
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
pub(crate) struct WhatIfQuery {
    scope: String,
}

pub(crate) async fn whatif<L: EventLog>(
    ask: Ask<L>,
    q: Result<Query<WhatIfQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    json_body(&ask.headers)?;
    let bytes = body(bytes, s.max_body)?;
    let scope = scope_of(&q.scope)?;
    // The plan is folded over the views and the policy runs: off the async threads.
    let state = Arc::clone(s);
    let report = tokio::task::spawn_blocking(move || state.queries.whatif(&c.tenant, &scope, &bytes))
        .await
        .map_err(Problem::internal)??;
    ok(report)
}

pub(crate) async fn start_sync<L: EventLog + Clone + Send + Sync + 'static>(
    ask: Ask<L>,
    bytes: Result<Bytes, BytesRejection>,
) -> Reply {
    let c = ask.caller.clone();
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let id = safe_id(&id)?;
    match s.syncs.get(&c.tenant, id) {
        Some(record) => ok(record),
        None => Err(Problem::not_found(format!("no sync {id}"))),
    }
}

/// `POST /whatif`: a deployment plan, as JSON: a Terraform plan (`terraform show -json`) or an
/// ARM what-if result (`WhatIfOperationResult`).
#[derive(JsonSchema)]
#[schemars(transparent)]
pub struct PlanBody(pub serde_json::Map<String, Value>);
