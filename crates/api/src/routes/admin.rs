//! The tenant's administration: API tokens and the policy.

use super::*;

pub(super) fn token_example() -> Value {
    json!({ "name": "soc-reader", "principal": "soc@contoso.example", "roles": ["viewer"], "expires_at": "2027-06-30T00:00:00Z" })
}

pub(super) fn policy_example() -> Value {
    serde_json::to_value(sv0_domain::policy::Policy::default()).unwrap_or(Value::Null)
}

pub(crate) async fn tokens<L: EventLog>(ask: Ask<L>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let tokens: Vec<sv0_service::tokens::TokenView> =
        s.queries.views().tokens(&c.tenant)?.iter().map(Into::into).collect();
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
    let c = ask.caller.clone();
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let id = safe_id(&id)?;
    if !s.queries.views().tokens(&c.tenant)?.iter().any(|t| t.token_id == id) {
        return Err(Problem::not_found(format!("no token {id}")));
    }
    let record = s.commands.lock().await.revoke_token(&c.tenant, id, "revoked through the API", &c.actor()).await?;
    ok(sv0_service::tokens::TokenView::from(&record))
}

pub(crate) async fn policy<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    ok(s.queries.policy(&c.tenant)?)
}

pub(crate) async fn set_policy<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller.clone();
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
