//! The posture of the caller's tenant: paths, findings, scopes, baselines, the review before an
//! approval, the delta after a deployment, and SOC signals.

use super::*;

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
    let c = ask.caller.clone();
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
    let (paths, next) =
        s.queries.views().query_paths_page(&c.tenant, &filter, after.as_deref(), limit).map_err(|e| match e {
            sv0_projections::ProjectionError::Invalid(reason) => Problem::invalid_request(reason),
            other => Problem::from(other),
        })?;
    let next_cursor = next.map(hex::encode);
    // The posture digest covers the whole scope: it is computed for the first page only, so
    // that paging through a large scope does not recompute it per page.
    let page = Page::new(paths, next_cursor);
    match filter.scope.as_ref().filter(|_| q.cursor.is_none()) {
        Some(scope) => ok(page.with_posture(s.queries.posture(&c.tenant, scope)?)),
        None => ok(page),
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let scope = q.scope.as_deref().map(scope_of).transpose()?;
    let status = match q.status.as_deref() {
        None => None,
        Some("open") => Some(FindingStatus::Open),
        Some("resolved") => Some(FindingStatus::Resolved),
        Some(other) => return Err(Problem::invalid_request(format!("unknown status {other:?}: open or resolved"))),
    };
    let mut records = s.queries.views().findings(&c.tenant, scope.as_ref())?;
    records.retain(|r| status.is_none_or(|s| r.status == s));
    records.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    let page = paged(records, |r| r.finding.finding_id.clone(), q.limit, q.cursor.as_deref())?;
    // The posture digest covers the whole scope: the first page only carries it.
    match scope.as_ref().filter(|_| q.cursor.is_none()) {
        Some(scope) => ok(page.with_posture(s.queries.posture(&c.tenant, scope)?)),
        None => ok(page),
    }
}

pub(crate) async fn scopes<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let mut heads = s.queries.views().baselines(&c.tenant)?;
    heads.sort_by_key(|h| h.scope.to_string());
    page(heads, |h| h.scope.to_string(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn baselines<L: EventLog>(ask: Ask<L>, q: Result<Query<ScopedPage>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let mut all = versions(s, &c.tenant, q.scope.as_deref())?;
    all.sort_by_key(version_key);
    page(all, version_key, q.limit, q.cursor.as_deref())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeltaQuery {
    scope: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    scope: String,
}

pub(crate) async fn review<L: EventLog>(ask: Ask<L>, q: Result<Query<ReviewQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let scope = scope_of(&q.scope)?;
    ok(s.queries.review(&c.tenant, &scope)?)
}

pub(crate) async fn delta<L: EventLog>(ask: Ask<L>, q: Result<Query<DeltaQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let scope = scope_of(&q.scope)?;
    // A tenant's Rego policy runs (in its worker) while the delta is decided: off the async
    // threads.
    let state = Arc::clone(s);
    let tenant = c.tenant.clone();
    let report = tokio::task::spawn_blocking(move || state.queries.delta(&tenant, &scope))
        .await
        .map_err(Problem::internal)??;
    ok(report)
}

pub(crate) async fn signals<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let signals = s.queries.signals_after(Some(&c.tenant), 0)?;
    // Keyed by log position, zero-padded so that keys sort as numbers.
    let keyed: Vec<(String, CloudEvent)> =
        signals.iter().map(|sig| (format!("{:020}", sig.assessed_seq), sig.cloudevent())).collect();
    ok(paged(keyed, |(k, _)| k.clone(), q.limit, q.cursor.as_deref())?.map(|(_, event)| event))
}
