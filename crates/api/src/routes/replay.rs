//! Audit replays: paths and findings as the log stood at a position or time.

use super::*;

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
pub(crate) async fn replayed<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    as_of: &str,
) -> Result<std::sync::Arc<sv0_projections::Views>, Problem> {
    let as_of = sv0_service::AsOf::parse(as_of).map_err(|e| Problem::invalid_request(e.to_string()))?;
    let until = s.queries.position_of(as_of).await?;
    if let Some(views) = s.replays.cached(tenant, until) {
        return Ok(views);
    }
    let Some(_running) = s.replays.start(tenant) else {
        return Err(Problem::busy(format!(
            "a replay of tenant {tenant} is running; ask again when it is done (answers are kept by position)"
        )));
    };
    let views = std::sync::Arc::new(s.queries.replay_tenant(tenant, until).await?);
    s.replays.keep(tenant, until, std::sync::Arc::clone(&views));
    Ok(views)
}

pub(crate) async fn replay_paths<L: EventLog>(ask: Ask<L>, q: Result<Query<ReplayQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let filter = PathFilter { scope: q.scope.as_deref().map(scope_of).transpose()?, ..PathFilter::default() };
    let views = replayed(s, &c.tenant, &q.as_of).await?;
    let paths = views.query_paths(&c.tenant, &filter)?;
    page(paths, |p| p.path_id.clone(), q.limit, q.cursor.as_deref())
}

pub(crate) async fn replay_findings<L: EventLog>(ask: Ask<L>, q: Result<Query<ReplayQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let scope = q.scope.as_deref().map(scope_of).transpose()?;
    let views = replayed(s, &c.tenant, &q.as_of).await?;
    let mut records = views.findings(&c.tenant, scope.as_ref())?;
    records.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    page(records, |r| r.finding.finding_id.clone(), q.limit, q.cursor.as_deref())
}
