//! Verification of the pack chains recorded on the log.

use sv0_domain::TenantId;
use sv0_domain::events::PackSealed;
use sv0_log::Seq;
use sv0_projections::Views;
use sv0_signer::{BrokenLink, ChainReport, KeyRing, entries_from_sealed, verify_chain};

use crate::error::ServiceError;

/// How current the views a query reads are (`Service::catch_up_for_query`).
#[derive(Debug)]
pub enum Freshness {
    /// Folded up to the log's head and saved.
    Current,
    /// Folded up to the log's head in memory only: the views cannot be written here (why).
    InMemory(ServiceError),
    /// As they stand, `behind` events behind the log: they could not be brought up to date
    /// (why).
    Behind {
        /// Events on the log not in the views.
        behind: Seq,
        /// Why.
        why: ServiceError,
    },
}

/// How `Service::verify` establishes what each pack should seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Fold the whole log into scratch views and compare every pack with the assessment that
    /// replay gives (what `sv0 verify` does).
    Replay,
    /// Compare with the assessments in the views as they stand, caught up first
    /// (`sv0 verify --quick`): as good as the views are.
    Quick,
}

/// The verdict on the log: damage found while reading it, and each tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerdict {
    /// A log record that could not be read back as written: its position and what is wrong.
    /// The chains are not verified past it.
    pub damaged: Option<(Seq, String)>,
    /// Each tenant's chain.
    pub chains: Vec<ChainVerdict>,
    /// With `VerifyMode::Replay`, the view tables whose content differs from the replay's at
    /// the same log position (empty when every table matches): the views a query reads are
    /// wrong and `sv0 rebuild` replaces them. `None` when not compared.
    pub views_differ: Option<Vec<String>>,
}

impl LogVerdict {
    /// Whether the log and every chain verified, and the views match the replay if compared.
    pub fn intact(&self) -> bool {
        self.damaged.is_none()
            && self.chains.iter().all(|c| c.result.is_ok())
            && self.views_differ.as_ref().is_none_or(Vec::is_empty)
    }

    pub(crate) fn damaged(seq: Seq, reason: String) -> LogVerdict {
        LogVerdict { damaged: Some((seq, reason)), chains: Vec::new(), views_differ: None }
    }
}

/// The verdict on one tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    /// The tenant.
    pub tenant: TenantId,
    /// `pack.sealed` events of the tenant on the log: those in the chain and those left out.
    pub on_log: usize,
    /// Intact, or the first broken link.
    pub result: Result<ChainReport, BrokenLink>,
}

/// A tenant's packs and keys as recorded on the log.
pub(crate) struct RecordedChain {
    /// The tenant.
    pub tenant: TenantId,
    /// `pack.sealed` events with their positions, in log order.
    pub packs: Vec<(Seq, PackSealed)>,
    /// Keys registered on the log.
    pub keys: KeyRing,
    /// Pack events on the chain's subjects that are not part of it (they do not extend it, or
    /// the chain's key did not sign them), with why: only a writer other than the signers
    /// appends such events, so verification reports them.
    pub refused: Vec<(Seq, String, String)>,
    /// The chain's RFC 3161 tokens (`checkpoint.timestamped` on its timestamp subject), in log
    /// order.
    pub timestamps: Vec<sv0_domain::events::CheckpointTimestamped>,
}

/// Verifies each chain cryptographically, then checks that every pack seals exactly the
/// assessment a replay of the log produces for its position.
pub(crate) fn verify_chains(views: &Views, chains: Vec<RecordedChain>) -> Result<Vec<ChainVerdict>, ServiceError> {
    let mut verdicts = Vec::new();
    for RecordedChain { tenant, packs, keys, refused, .. } in chains {
        let on_log = packs.len() + refused.len();
        let entries = entries_from_sealed(&packs);
        let mut result = verify_chain(&entries, &keys);
        if result.is_ok()
            && let Some(broken) = content_mismatch(views, &tenant, &packs)?
        {
            result = Err(broken);
        }
        if result.is_ok()
            && let Some((seq, pack_id, why)) = refused.first()
        {
            result = Err(BrokenLink {
                position: packs.len() + 1,
                source: format!("log position {seq}"),
                pack_id: Some(pack_id.clone()),
                reason: format!(
                    "{} pack event(s) on the chain's subject are not part of the chain ({why}): the log holds packs no signer of this chain sealed",
                    refused.len()
                ),
            });
        }
        verdicts.push(ChainVerdict { tenant, on_log, result });
    }
    Ok(verdicts)
}

fn content_mismatch(
    views: &Views,
    tenant: &TenantId,
    packs: &[(Seq, PackSealed)],
) -> Result<Option<BrokenLink>, ServiceError> {
    for (position, (seq, sealed)) in packs.iter().enumerate() {
        let body: serde_json::Value = serde_json::from_str(&sealed.body)?;
        let replayed = views.assessment(tenant, sealed.assessed_seq)?;
        let matches = match &replayed {
            Some(assessment) => body.get("assessment") == Some(&serde_json::to_value(assessment)?),
            None => false,
        };
        if !matches {
            return Ok(Some(BrokenLink {
                position: position + 1,
                source: format!("log position {seq}"),
                pack_id: Some(sealed.pack_id.clone()),
                reason: format!(
                    "sealed content differs from the assessment a replay of the log gives for position {}",
                    sealed.assessed_seq
                ),
            }));
        }
    }
    Ok(None)
}
