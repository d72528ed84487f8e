//! The transparency log of a tenant's packs: an RFC 6962 / 9162 Merkle tree whose leaves are
//! the packs' SHA-256 digests (32 bytes each) in chain order, with inclusion proofs for any
//! pack, consistency proofs between any two sizes, and checkpoints signed as C2SP notes with
//! the pack signing key. Everything is derived from the packs on the log, so any process with
//! the views (or an auditor with the exported packs) gets the same tree.

use serde::Serialize;
use sv0_domain::InvalidInput;
use sv0_domain::TenantId;
use sv0_domain::events::PackSealed;
use sv0_log::EventLog;
use sv0_signer::checkpoint::Checkpoint;
use sv0_signer::merkle::{Hash, Tree};

use crate::{Queries, Service, ServiceError};

/// An inclusion proof of one pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InclusionProof {
    /// The pack.
    pub pack_id: String,
    /// Its digest (`sha256:<hex>`): the leaf's data is these 32 bytes.
    pub pack_digest: String,
    /// Its leaf index, from 0 (the pack's chain index minus one).
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// SHA-256(0x00 ‖ digest bytes), hex.
    pub leaf_hash: String,
    /// The tree's root, hex.
    pub root: String,
    /// The audit path, leaf to root, hex.
    pub audit_path: Vec<String>,
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ConsistencyProof {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// The older root, hex.
    pub old_root: String,
    /// The newer root, hex.
    pub new_root: String,
    /// The proof, hex.
    pub proof: Vec<String>,
}

/// The origin line of a tenant's checkpoints.
pub fn origin(tenant: &TenantId) -> String {
    sv0_signer::checkpoint::origin(tenant.as_str())
}

/// The leaf data of a pack: the 32 bytes of its digest.
pub fn pack_leaf(pack: &PackSealed) -> Result<Hash, InvalidInput> {
    sv0_signer::merkle::pack_leaf(&pack.digest)
        .ok_or_else(|| InvalidInput::new(format!("pack {} has a malformed digest {}", pack.pack_id, pack.digest)))
}

/// The tree of packs, in chain order.
pub fn tree_of(packs: &[PackSealed]) -> Result<Tree, InvalidInput> {
    let mut tree = Tree::new();
    for pack in packs {
        tree.push(pack_leaf(pack)?);
    }
    Ok(tree)
}

impl<L: EventLog> Queries<L> {
    fn pack_tree(&self, tenant: &TenantId) -> Result<(Vec<PackSealed>, Tree), ServiceError> {
        let packs = self.views.packs(tenant)?;
        let tree = tree_of(&packs)?;
        Ok((packs, tree))
    }

    /// The inclusion proof of a pack (by id, or by its chain index from 1) in the tenant's tree
    /// now.
    pub fn inclusion_proof(&self, tenant: &TenantId, pack: &str) -> Result<InclusionProof, ServiceError> {
        let (packs, tree) = self.pack_tree(tenant)?;
        let found = packs
            .iter()
            .position(|p| p.pack_id == pack || pack.parse::<u64>().is_ok_and(|n| n == p.index))
            .ok_or_else(|| {
                InvalidInput::new(format!("tenant {tenant} has no pack {pack} (give a pack id or a chain index)"))
            })?;
        let index = found as u64;
        let path = tree.inclusion_proof(index, tree.size()).map_err(|e| InvalidInput::new(e.to_string()))?;
        Ok(InclusionProof {
            pack_id: packs[found].pack_id.clone(),
            pack_digest: packs[found].digest.clone(),
            leaf_index: index,
            tree_size: tree.size(),
            leaf_hash: hex::encode(tree.leaf(index).unwrap_or_default()),
            root: hex::encode(tree.root()),
            audit_path: path.iter().map(hex::encode).collect(),
        })
    }

    /// The consistency proof between the tenant's tree at two sizes.
    pub fn consistency_proof(&self, tenant: &TenantId, old: u64, new: u64) -> Result<ConsistencyProof, ServiceError> {
        let (_, tree) = self.pack_tree(tenant)?;
        let proof = tree.consistency_proof(old, new).map_err(|e| InvalidInput::new(e.to_string()))?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: hex::encode(tree.root_at(old)),
            new_root: hex::encode(tree.root_at(new)),
            proof: proof.iter().map(hex::encode).collect(),
        })
    }
}

impl<L: EventLog> Service<L> {
    /// The tenant's checkpoint now, signed with this data directory's pack signing key under
    /// the key name of the origin.
    pub fn checkpoint(&mut self, tenant: &TenantId) -> Result<String, ServiceError> {
        Ok(self.signed_checkpoint(tenant)?.0)
    }

    /// The tenant's checkpoint now, with the tree's size and its root (hex).
    pub(crate) fn signed_checkpoint(&mut self, tenant: &TenantId) -> Result<(String, u64, String), ServiceError> {
        let (_, tree) = self.pack_tree(tenant)?;
        let checkpoint = Checkpoint { origin: origin(tenant), size: tree.size(), root: tree.root() };
        let name = checkpoint.origin.clone();
        let note = checkpoint.sign(self.chain_signer(tenant)?, &name)?;
        Ok((note, tree.size(), hex::encode(tree.root())))
    }
}

/// What `attestations` gives: the envelopes, and the deployment assessments it could not attest.
#[derive(Debug, Clone, Default)]
pub struct Attestations {
    /// DSSE envelopes, in chain order.
    pub envelopes: Vec<sv0_signer::attestation::Envelope>,
    /// Deployment attestations among them.
    pub deployments: usize,
    /// Deployments assessed that named no full commit id and were given no `--subject`: an
    /// in-toto subject needs a digest, so none was written for them.
    pub without_subject: Vec<String>,
}

impl<L: EventLog> Service<L> {
    /// The tenant's packs as in-toto attestations in DSSE envelopes, in chain order: each pack's
    /// Statement; for a scan assessment, one SLSA VSA per scope disposition; and for a
    /// deployment assessment, one authority-assessment Statement per scope disposition whose
    /// subject is the deployment: its full commit id and, for the deployment `deployment` (by
    /// its `deployment_id`; the latest deployment assessed when none is named), the artifacts
    /// in `subjects`.
    pub fn attestations(
        &mut self,
        tenant: &TenantId,
        subjects: &[sv0_signer::attestation::Subject],
        deployment: Option<&str>,
    ) -> Result<Attestations, ServiceError> {
        use sv0_signer::attestation::{
            Subject, authority_assessments, deployment_statement, pack_statement, sign_statement, vsa_statement,
        };
        let packs = self.views.packs(tenant)?;
        let mut bodies = Vec::with_capacity(packs.len());
        for pack in &packs {
            let body: serde_json::Value = serde_json::from_str(&pack.body)?;
            // A pack sealed by an older release may not read as today's body: it still gets its
            // Statement and gate summaries, and no deployment attestation.
            let deployments = match <sv0_signer::PackBody as serde::Deserialize>::deserialize(&body) {
                Ok(typed) => authority_assessments(&typed, &pack.digest),
                Err(e) => {
                    tracing::warn!(pack = %pack.pack_id, error = %e, "a pack body this release does not read: no deployment attestation for it");
                    Vec::new()
                }
            };
            bodies.push((body, deployments));
        }
        let named = match deployment {
            Some(id) => {
                if !bodies.iter().flat_map(|(_, d)| d).any(|d| d.deployment_id == id) {
                    return Err(InvalidInput::new(format!("no deployment {id} was assessed in tenant {tenant}")).into());
                }
                Some(id.to_string())
            }
            None => bodies.iter().rev().flat_map(|(_, d)| d).next().map(|d| d.deployment_id.clone()),
        };
        if !subjects.is_empty() && named.is_none() {
            return Err(InvalidInput::new(format!(
                "--subject names a deployment's artifacts, but no deployment was assessed in tenant {tenant}"
            ))
            .into());
        }
        let mut out = Attestations::default();
        if packs.is_empty() {
            return Ok(out);
        }
        let signer = self.chain_signer(tenant)?;
        for (pack, (body, deployments)) in packs.iter().zip(&bodies) {
            out.envelopes.push(sign_statement(signer, &pack_statement(&pack.pack_id, &pack.digest, body))?);
            let assessment = &body["assessment"];
            let time = assessment["occurred_at"].as_str().unwrap_or_default();
            for scope in assessment["scan"]["scopes"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let Some(decision) = scope["disposition"]["decision"].as_str() else { continue };
                let uri = format!("sv0:{tenant}/{}", scope["scope"].as_str().unwrap_or_default());
                out.envelopes
                    .push(sign_statement(signer, &vsa_statement(&pack.pack_id, &pack.digest, time, &uri, decision))?);
            }
            for predicate in deployments {
                let deployment = &predicate.deployment;
                let mut statement_subjects: Vec<Subject> = deployment
                    .commit
                    .as_deref()
                    .and_then(|commit| Subject::of_commit(deployment.repository.as_deref(), commit))
                    .into_iter()
                    .collect();
                if named.as_deref() == Some(predicate.deployment_id.as_str()) {
                    statement_subjects.extend(subjects.iter().cloned());
                }
                if statement_subjects.is_empty() {
                    if !out.without_subject.contains(&predicate.deployment_id) {
                        out.without_subject.push(predicate.deployment_id.clone());
                    }
                    continue;
                }
                out.envelopes.push(sign_statement(signer, &deployment_statement(&statement_subjects, predicate))?);
                out.deployments += 1;
            }
        }
        Ok(out)
    }
}
