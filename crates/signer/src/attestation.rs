//! Packs as in-toto attestations: an in-toto Statement v1 per pack (subject = the pack and its
//! SHA-256 digest, predicate = the pack body) and, for scan assessments with a scope
//! disposition, a SLSA Verification Summary Attestation (`PASSED` when the scope is approved,
//! `FAILED` otherwise), each in a DSSE envelope signed with Ed25519 over the exact
//! pre-authentication encoding `PAE("application/vnd.in-toto+json", statement bytes)`. Key ids
//! are the hex SHA-256 of the raw public key, as for packs.
//!
//! A deployment assessment (a scan a deployment ran: before it, after it, or to verify its
//! remediation) also gives, per baselined scope, a Statement whose subject is the deployment
//! (its full commit id, or the artifacts named with `--subject`) and whose predicate is
//! `https://sv0.dev/attestation/authority-assessment/v1` (`schemas/authority-assessment.schema.json`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use sv0_domain::assessment::AssessmentKind;
use sv0_domain::delta::DeltaKind;
use sv0_domain::disposition::Decision;
use sv0_domain::snapshot::DeploymentRef;

use crate::keys::{PackSigner, key_id};
use crate::pack::{PackBody, pae};

/// DSSE payload type of an in-toto Statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SV0's predicate type: the pack body.
pub const PACK_PREDICATE_TYPE: &str = "https://sv0.dev/evidence-pack/v1";
/// The SLSA Verification Summary Attestation predicate type.
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// The verifier id in VSAs.
pub const VERIFIER_ID: &str = "https://sv0.dev/sv0";

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvelopeSignature {
    /// Hex SHA-256 of the raw public key (a hint, never trusted for security).
    pub keyid: String,
    /// Base64 Ed25519 signature over the PAE.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the exact payload bytes.
    pub payload: String,
    /// The payload type the signature covers.
    pub payload_type: String,
    /// Signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope does not verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttestationError {
    /// The payload or a signature is not base64.
    #[error("the envelope is malformed: {0}")]
    Malformed(&'static str),
    /// The payload type is not an in-toto Statement.
    #[error("unsupported payload type {0}")]
    PayloadType(String),
    /// No signature verifies with the key.
    #[error("no signature of the envelope verifies with key {0}")]
    Signature(String),
    /// A `--subject` is not `NAME=sha256:HEX`.
    #[error("a subject is NAME=sha256:HEX: {0}")]
    Subject(&'static str),
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).ok()
}

/// Wraps payload bytes in an envelope signed by `sign`.
pub fn envelope_with(
    payload_type: &str,
    payload: &[u8],
    key: &VerifyingKey,
    sign: impl FnOnce(&[u8]) -> Signature,
) -> Envelope {
    let signature = sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature { keyid: key_id(key), sig: STANDARD.encode(signature.to_bytes()) }],
    }
}

/// A Statement signed by the pack signer (a token key can fail).
pub fn sign_statement(signer: &PackSigner, statement: &Value) -> Result<Envelope, crate::KeyError> {
    let payload = statement.to_string().into_bytes();
    let signature = signer.sign(&pae(INTOTO_PAYLOAD_TYPE, &payload))?;
    Ok(envelope_with(INTOTO_PAYLOAD_TYPE, &payload, &signer.verifying_key(), |_| signature))
}

/// Verifies an envelope with a key and returns the exact verified payload bytes (parse these,
/// never a re-encoding). Base64 may be standard or URL-safe, as DSSE requires.
pub fn verify_envelope(envelope: &Envelope, key: &VerifyingKey) -> Result<Vec<u8>, AttestationError> {
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(AttestationError::PayloadType(envelope.payload_type.clone()));
    }
    let payload = decode_base64(&envelope.payload).ok_or(AttestationError::Malformed("payload is not base64"))?;
    let message = pae(&envelope.payload_type, &payload);
    for signature in &envelope.signatures {
        let Some(bytes) = decode_base64(&signature.sig) else { continue };
        let Ok(signature) = Signature::from_slice(&bytes) else { continue };
        if key.verify_strict(&message, &signature).is_ok() {
            return Ok(payload);
        }
    }
    Err(AttestationError::Signature(key_id(key)))
}

/// The Statement of a pack: subject = the pack id and its body's SHA-256.
pub fn pack_statement(pack_id: &str, digest: &str, body: &Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": pack_id, "digest": { "sha256": digest.trim_start_matches("sha256:") } }],
        "predicateType": PACK_PREDICATE_TYPE,
        "predicate": body,
    })
}

/// A gate decision as a SLSA VSA about a pack: `resource_uri` names the scope, `decision` is
/// the disposition (`approved` passes).
pub fn vsa_statement(pack_id: &str, digest: &str, time_verified: &str, resource_uri: &str, decision: &str) -> Value {
    let sha = digest.trim_start_matches("sha256:");
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": pack_id, "digest": { "sha256": sha } }],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": { "id": VERIFIER_ID },
            "timeVerified": time_verified,
            "resourceUri": resource_uri,
            "policy": { "uri": "https://sv0.dev/policy/disposition/v1" },
            "inputAttestations": [{ "uri": format!("sv0:pack/{pack_id}"), "digest": { "sha256": sha } }],
            "verificationResult": if decision == "approved" { "PASSED" } else { "FAILED" },
            "verifiedLevels": [format!("SV0_DISPOSITION_{}", decision.to_ascii_uppercase())],
        },
    })
}

/// The predicate type of a deployment's authority assessment.
pub const AUTHORITY_ASSESSMENT_PREDICATE_TYPE: &str = "https://sv0.dev/attestation/authority-assessment/v1";

/// What a deployment attestation is about: an artifact or commit by name and digest (an in-toto
/// ResourceDescriptor with `name` and `digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The artifact or repository name.
    pub name: String,
    /// Digests by algorithm: `sha256` (lowercase hex, 64 digits) for an artifact, `gitCommit`
    /// (the full 40- or 64-digit hex commit id) for a commit.
    pub digest: std::collections::BTreeMap<String, String>,
}

impl Subject {
    /// `NAME=sha256:HEX`, as `--subject` takes it.
    pub fn parse(text: &str) -> Result<Subject, AttestationError> {
        let (name, digest) = text.split_once('=').ok_or(AttestationError::Subject("expected NAME=sha256:HEX"))?;
        let hex = digest.strip_prefix("sha256:").ok_or(AttestationError::Subject("the digest must be sha256:HEX"))?;
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(AttestationError::Subject("the name is empty or holds control characters"));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AttestationError::Subject("a sha256 digest is 64 hex digits"));
        }
        Ok(Subject { name: name.to_string(), digest: [("sha256".to_string(), hex.to_ascii_lowercase())].into() })
    }

    /// The commit a deployment names, when it is a full commit id (an abbreviated one is not a
    /// digest, and is not attested as one).
    pub fn of_commit(repository: Option<&str>, commit: &str) -> Option<Subject> {
        let full = matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        full.then(|| Subject {
            name: repository.unwrap_or("commit").to_string(),
            digest: [("gitCommit".to_string(), commit.to_ascii_lowercase())].into(),
        })
    }
}

/// The verdict of a remediation rescan, as a deployment attestation carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationResult {
    /// `PASSED` when the posture matches the baseline (plus only intended additions).
    pub result: String,
    /// The posture is the baseline plus only intended additions.
    pub matches_baseline: bool,
    /// The posture is exactly the baseline.
    pub exact_match: bool,
    /// Paths that still break the match.
    pub unexpected_paths: u64,
    /// One sentence.
    pub summary: String,
}

/// The predicate of `https://sv0.dev/attestation/authority-assessment/v1`: one deployment
/// assessment of one baselined scope, and the evidence pack that seals it. The first ten fields
/// are the source document's; counts are the scope's paths after the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorityAssessment {
    /// The tenant.
    pub tenant_id: String,
    /// The deployment: `REPOSITORY#RUN_ID` from the sync (the run id alone without a repository),
    /// or the scan id when the deployment named no run.
    pub deployment_id: String,
    /// When the assessed scan happened (RFC 3339, UTC).
    pub assessment_time: String,
    /// Paths of the scope.
    pub authority_paths_total: u64,
    /// Grade A paths (confirmed execution).
    pub grade_a_paths: u64,
    /// Grade B paths (inferred).
    pub grade_b_paths: u64,
    /// Grade C paths (standing authority).
    pub grade_c_paths: u64,
    /// Paths of the scope that its approved baseline does not hold.
    pub new_paths_since_baseline: u64,
    /// `approved`, `requires_review` or `rejected`.
    pub disposition: Decision,
    /// Lowercase hex SHA-256 of the evidence pack's body (its canonical JSON bytes).
    pub evidence_pack_sha256: String,
    /// The evidence pack's id.
    pub evidence_pack_id: String,
    /// The assessment kind: `pre_deployment_assessment`, `post_deployment_delta` or
    /// `verification`.
    pub assessment_kind: String,
    /// The scan assessed.
    pub scan_id: String,
    /// The scope judged.
    pub scope: String,
    /// The baseline version the scope was compared with.
    pub baseline_version: u32,
    /// The deployment as the sync described it.
    pub deployment: DeploymentRef,
    /// The remediation verdict, for a remediation rescan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationResult>,
}

/// The deployment assessment predicates of one pack: one per baselined scope with a
/// disposition, for a scan a deployment ran (before it, after it, or to verify its remediation).
/// Other packs give none.
pub fn authority_assessments(body: &PackBody, digest: &str) -> Vec<AuthorityAssessment> {
    let assessment = &body.assessment;
    let kind = assessment.kind;
    let deploying = matches!(
        kind,
        AssessmentKind::PreDeploymentAssessment | AssessmentKind::PostDeploymentDelta | AssessmentKind::Verification
    );
    let Some(scan) = assessment.scan.as_ref().filter(|_| deploying) else { return Vec::new() };
    let reference = &scan.scan;
    let deployment = reference.deployment.clone().unwrap_or_default();
    let deployment_id = match (&deployment.repository, &deployment.run_id) {
        (Some(repository), Some(run)) => format!("{repository}#{run}"),
        (None, Some(run)) => run.clone(),
        _ => reference.scan_id.clone(),
    };
    scan.scopes
        .iter()
        .filter_map(|scope| {
            let disposition = scope.disposition.as_ref()?;
            let new_paths: std::collections::BTreeSet<&str> = scope
                .delta
                .iter()
                .filter(|e| matches!(e.kind, DeltaKind::NewPath | DeltaKind::NewSensitivePath))
                .map(|e| e.path_id.as_str())
                .collect();
            let grades = &scope.posture.by_grade;
            Some(AuthorityAssessment {
                tenant_id: body.tenant.clone(),
                deployment_id: deployment_id.clone(),
                assessment_time: assessment.occurred_at.to_rfc3339(),
                authority_paths_total: scope.posture.paths_total,
                grade_a_paths: grades.a,
                grade_b_paths: grades.b,
                grade_c_paths: grades.c,
                new_paths_since_baseline: new_paths.len() as u64,
                disposition: disposition.decision,
                evidence_pack_sha256: digest.trim_start_matches("sha256:").to_string(),
                evidence_pack_id: body.pack_id.clone(),
                assessment_kind: kind.as_str().to_string(),
                scan_id: reference.scan_id.clone(),
                scope: scope.scope.clone(),
                baseline_version: scope.baseline_version,
                deployment: deployment.clone(),
                verification: scope.verification.as_ref().map(|v| VerificationResult {
                    result: if v.matches_baseline { "PASSED" } else { "FAILED" }.to_string(),
                    matches_baseline: v.matches_baseline,
                    exact_match: v.exact_match,
                    unexpected_paths: v.unexpected.len() as u64,
                    summary: v.summary.clone(),
                }),
            })
        })
        .collect()
}

/// The Statement of a deployment assessment: subject = the deployment (its commit, or the
/// artifacts named), predicate = the assessment.
pub fn deployment_statement(subjects: &[Subject], predicate: &AuthorityAssessment) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": AUTHORITY_ASSESSMENT_PREDICATE_TYPE,
        "predicate": predicate,
    })
}
