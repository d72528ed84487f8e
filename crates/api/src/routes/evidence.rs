//! Signed evidence: the pack chain, DSSE envelopes, RFC 9162 proofs, the checkpoint and keys.

use super::*;

pub(crate) fn pack_of<L: EventLog>(
    s: &ApiState<L>,
    tenant: &TenantId,
    id: &str,
) -> Result<sv0_domain::events::PackSealed, Problem> {
    let id = safe_id(id)?;
    let packs = s.queries.views().packs(tenant)?;
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let packs: Vec<PackSummary> = s
        .queries
        .views()
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let sealed = pack_of(s, &c.tenant, &id)?;
    ok(sv0_signer::PackFile::from_sealed(&sealed).map_err(Problem::internal)?)
}

pub(crate) async fn pack_dsse<L: EventLog>(ask: Ask<L>, Path(id): Path<String>) -> Reply {
    let c = ask.caller.clone();
    let sealed = pack_of(&ask.s, &c.tenant, &id)?;
    ok(DsseEnvelope::of(sealed))
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

impl DsseEnvelope {
    /// A sealed pack as its envelope.
    pub fn of(sealed: sv0_domain::events::PackSealed) -> DsseEnvelope {
        use base64::Engine as _;
        DsseEnvelope {
            payload_type: sv0_signer::PAYLOAD_TYPE.to_string(),
            payload: base64::engine::general_purpose::STANDARD.encode(sealed.body.as_bytes()),
            signatures: vec![DsseSignature { keyid: sealed.key_id, sig: sealed.signature }],
        }
    }
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let sealed = pack_of(s, &c.tenant, &id)?;
    let proof = s.queries.inclusion_proof(&c.tenant, &sealed.pack_id)?;
    ok(proof)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    old: u64,
    new: u64,
}

pub(crate) async fn consistency<L: EventLog>(ask: Ask<L>, q: Result<Query<ConsistencyQuery>, QueryRejection>) -> Reply {
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    let proof = s.queries.consistency_proof(&c.tenant, q.old, q.new)?;
    ok(proof)
}

pub(crate) async fn checkpoint<L: EventLog>(ask: Ask<L>) -> Reply {
    let c = ask.caller.clone();
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
    let c = ask.caller.clone();
    let s = &ask.s;
    let q = query(q)?;
    match q.format.as_deref() {
        None | Some("json") => ok(s.queries.views().keys(&c.tenant)?),
        Some("pem") => {
            let pem = s.queries.export_keys(&c.tenant).await?;
            Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
        }
        Some(other) => Err(Problem::invalid_request(format!("unknown format {other:?}: json or pem"))),
    }
}
