//! Evidence (`/evidence`): the tenant's pack chain with each pack's kind, digest and signer
//! key, whether its links hold, and downloads of a pack, its DSSE envelope, the public keys
//! and an inclusion proof — what an auditor takes away to verify offline. Needs the evidence
//! permission (auditors, admins).

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use maud::html;
use sv0_domain::access::Permission;
use sv0_log::EventLog;

use super::layout::{self, Nav};
use super::{Page, Viewer, WebError};
use crate::problem::Problem;

pub(crate) async fn evidence<L: EventLog + Clone>(viewer: Viewer<L>) -> Page {
    viewer.must(Permission::Evidence)?;
    let tenant = viewer.tenant();
    let packs = viewer.s.queries.views().packs(tenant)?;
    let keys = viewer.s.queries.views().keys(tenant)?;
    // The links of the chain as the views hold them (each pack names its predecessor's id and
    // digest); `sv0 verify --packs` checks signatures and content offline.
    let mut broken = Vec::new();
    for pair in packs.windows(2) {
        if pair[1].previous_pack_id.as_deref() != Some(pair[0].pack_id.as_str())
            || pair[1].previous_digest.as_deref() != Some(pair[0].digest.as_str())
        {
            broken.push(pair[1].index);
        }
    }
    let kind = |body: &str| -> String {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_string)))
            .unwrap_or_default()
    };
    let body = html! {
        p {
            (packs.len()) " packs sealed. "
            @if broken.is_empty() {
                span.state-approved { "Every link holds" } " (each pack names its predecessor's id and digest)."
            } @else {
                span.state-drifted { "Broken links at packs " (broken.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
            }
        }
        p { "To verify offline: download the public keys and the packs, then run " code { "sv0 verify --packs DIR --public-key keys.pem" } "." }
        p {
            a href="/evidence/keys.pem" download="sv0-keys.pem" { "Public keys (PEM)" } " (" (keys.len()) ") · "
            a href="/evidence/checkpoint" download="checkpoint.txt" { "Signed checkpoint" } " (the chain's size and Merkle root, signed now) · "
            a href="/evidence/attestations" download="attestations.json" { "in-toto attestations" } " (DSSE envelopes)"
        }
        table {
            caption { "The pack chain, newest first" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Kind" } th scope="col" { "Digest" } th scope="col" { "Signer key" } th scope="col" { "Assessed" } th scope="col" { "Download" } } }
            tbody {
                @for p in packs.iter().rev() {
                    tr {
                        td { (p.index) }
                        td { (kind(&p.body)) }
                        td { code { (p.digest) } }
                        td { code { (p.key_id) } }
                        td { "log position " (p.assessed_seq) }
                        td {
                            a href=(format!("/evidence/packs/{}", p.index)) download=(format!("pack-{:06}.json", p.index)) { "pack" }
                            " · "
                            a href=(format!("/evidence/proofs/{}", p.index)) download=(format!("inclusion-{:06}.json", p.index)) { "inclusion proof" }
                            " · "
                            a href=(format!("/evidence/packs/{}/dsse", p.index)) download=(format!("pack-{:06}.dsse.json", p.index)) { "DSSE" }
                        }
                    }
                }
            }
        }
    };
    super::html(layout::page(&viewer.frame("Evidence", Nav::Evidence, None), body))
}

fn attachment(content_type: &'static str, body: String) -> Page {
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn json_file(value: &impl serde::Serialize) -> Page {
    attachment("application/json", serde_json::to_string_pretty(value).map_err(Problem::internal)?)
}

/// The pack a download names, for a caller who may read evidence.
fn sealed_pack<L: EventLog>(viewer: &Viewer<L>, id: &str) -> Result<sv0_domain::events::PackSealed, WebError> {
    viewer.must(Permission::Evidence)?;
    Ok(crate::routes::pack_of(&viewer.s, viewer.tenant(), id)?)
}

/// `GET /evidence/packs/{index or id}`: the pack file, as `sv0 export packs` writes it.
pub(crate) async fn pack<L: EventLog + Clone>(viewer: Viewer<L>, Path(id): Path<String>) -> Page {
    let sealed = sealed_pack(&viewer, &id)?;
    let file = sv0_signer::PackFile::from_sealed(&sealed).map_err(Problem::internal)?;
    json_file(&file)
}

/// `GET /evidence/packs/{index or id}/dsse`: the pack as a DSSE envelope.
pub(crate) async fn dsse<L: EventLog + Clone>(viewer: Viewer<L>, Path(id): Path<String>) -> Page {
    let sealed = sealed_pack(&viewer, &id)?;
    json_file(&crate::routes::DsseEnvelope::of(sealed))
}

/// `GET /evidence/checkpoint`: a C2SP signed note of the chain as it stands.
pub(crate) async fn checkpoint<L: EventLog + Clone>(viewer: Viewer<L>) -> Page {
    viewer.must(Permission::Evidence)?;
    let note = viewer.s.commands.lock().await.checkpoint(viewer.tenant())?;
    attachment("text/plain; charset=utf-8", note)
}

/// `GET /evidence/attestations`: every pack's in-toto statement, its gate summaries and its
/// deployment attestations (for deployments that named a full commit id), in DSSE envelopes.
pub(crate) async fn attestations<L: EventLog + Clone>(viewer: Viewer<L>) -> Page {
    viewer.must(Permission::Evidence)?;
    let attestations = viewer.s.commands.lock().await.attestations(viewer.tenant(), &[], None)?;
    json_file(&attestations.envelopes)
}

/// `GET /evidence/proofs/{index or id}`: the RFC 9162 inclusion proof of a pack.
pub(crate) async fn proof<L: EventLog + Clone>(viewer: Viewer<L>, Path(id): Path<String>) -> Page {
    let sealed = sealed_pack(&viewer, &id)?;
    let proof = viewer.s.queries.inclusion_proof(viewer.tenant(), &sealed.pack_id)?;
    json_file(&proof)
}

/// `GET /evidence/keys.pem`: every public key that signed the tenant's chain.
pub(crate) async fn keys<L: EventLog + Clone>(viewer: Viewer<L>) -> Page {
    viewer.must(Permission::Evidence)?;
    let pem = viewer.s.queries.export_keys(viewer.tenant()).await?;
    attachment("application/x-pem-file", pem)
}
