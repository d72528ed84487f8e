//! Approvals and acknowledgements: locking a scope's posture as a baseline, accepting findings
//! until a date, and approving a tenant admin's Rego policy.

use super::*;

// Examples of request bodies, in the OpenAPI document; the tests check each against its schema
// and send it.
pub(super) fn ack_example() -> Value {
    json!({ "acknowledge": [{ "finding_id": "F-3f9a1c2b7d4e", "due": "2027-03-31" }], "note": "accepted until the Q1 rotation" })
}

pub(super) fn approval_example() -> Value {
    json!({
        "scope": "project:HR-Automation",
        "note": "reviewed with the HR platform team",
        "acknowledge": [{ "finding_id": "F-3f9a1c2b7d4e", "due": "2027-03-31" }],
        "posture_digest": "sha256:5d41402abc4b2a76b9719d911017c592ae4a1b6e1e7a2c9f0b3d8e6f1a2b3c4d@118",
    })
}

pub(super) fn policy_approval_example() -> Value {
    json!({ "digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "note": "the stricter Finance rules, reviewed" })
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
    let c = ask.caller.clone();
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
    ok(paged(keyed, |(k, _)| k.clone(), q.limit, q.cursor.as_deref())?.map(|(_, view)| view))
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
    let c = ask.caller.clone();
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
        .map(|d| sv0_service::Reviewed::parse_at(d, request.log_position))
        .transpose()
        .map_err(|e| Problem::invalid_request(e.to_string()))?;
    if posture.is_none() && request.log_position.is_some() {
        return Err(Problem::invalid_request("log_position names the position of a posture_digest; give both"));
    }
    let mut approval = sv0_service::Approval {
        note: request.note,
        acknowledged: acks,
        intent: request.intent,
        posture,
        by: c.actor(),
        plan_digest: None,
        force: request.force,
    };
    if let Some(plan) = &request.plan {
        let bytes = serde_json::to_vec(plan).map_err(Problem::internal)?;
        approval.declare_plan(&s.queries.whatif(&c.tenant, &scope, &bytes)?);
    }
    let report = s.commands.lock().await.approve_with(&c.tenant, &scope, approval, Timestamp::now()).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
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
    let c = ask.caller.clone();
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

pub(crate) async fn policy_approvals<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller.clone();
    ok(ask.s.queries.rego_state(&c.tenant)?)
}

/// `POST /policy/approvals`: `{"digest": "sha256:...", "note": "..."}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyApprovalBody {
    digest: String,
    note: String,
}

pub(crate) async fn approve_policy<L: EventLog>(ask: Ask<L>, bytes: Result<Bytes, BytesRejection>) -> Reply {
    let c = ask.caller.clone();
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
