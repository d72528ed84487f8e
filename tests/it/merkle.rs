//! The pack log's Merkle tree against published vectors (the Certificate Transparency test
//! tree's leaves and roots), every inclusion and consistency proof of small trees, proofs of a
//! large tree, and C2SP checkpoints against a vector signed with the RFC 8032 test key.

use ed25519_dalek::{Signer, SigningKey};
use sv0_signer::checkpoint::{Checkpoint, CheckpointError, note_key_id};
use sv0_signer::merkle::{self, Hash, Tree, leaf_hash, verify_consistency, verify_inclusion};

/// The CT test tree's leaf data.
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// MTH of the first n leaves, n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn ct_tree() -> Tree {
    Tree::from_leaf_hashes(LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())))
}

#[test]
fn roots_match_the_certificate_transparency_test_tree() {
    let tree = ct_tree();
    for (n, root) in ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(tree.root_at(n as u64)), *root, "root of the first {n} leaves");
    }
    assert_eq!(merkle::empty_root(), h(ROOTS[0]));
}

#[test]
fn proofs_match_the_published_paths() {
    let tree = ct_tree();
    let inclusion = tree.inclusion_proof(5, 7).unwrap();
    let expected = [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ];
    assert_eq!(inclusion.iter().map(hex::encode).collect::<Vec<_>>(), expected);
    let consistency = tree.consistency_proof(3, 7).unwrap();
    let expected = [
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
    ];
    assert_eq!(consistency.iter().map(hex::encode).collect::<Vec<_>>(), expected);
    let consistency = tree.consistency_proof(4, 8).unwrap();
    assert_eq!(
        consistency.iter().map(hex::encode).collect::<Vec<_>>(),
        ["6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
    );
}

#[test]
fn every_proof_of_every_small_tree_verifies_and_a_tampered_one_does_not() {
    let tree = ct_tree();
    for n in 1..=8u64 {
        let root = tree.root_at(n);
        for m in 0..n {
            let leaf = tree.leaf(m).unwrap();
            let path = tree.inclusion_proof(m, n).unwrap();
            verify_inclusion(m, n, &leaf, &path, &root).unwrap_or_else(|e| panic!("inclusion {m} in {n}: {e}"));
            let other = tree.leaf((m + 1) % n).unwrap();
            if n > 1 {
                assert!(verify_inclusion(m, n, &other, &path, &root).is_err(), "another leaf at {m} of {n}");
            }
            if let Some(first) = path.first() {
                let mut bad = path.clone();
                bad[0] = leaf_hash(first);
                assert!(verify_inclusion(m, n, &leaf, &bad, &root).is_err());
                assert!(verify_inclusion(m, n, &leaf, &path[1..], &root).is_err(), "a shortened path");
            }
        }
        for m in 1..=n {
            let proof = tree.consistency_proof(m, n).unwrap();
            verify_consistency(m, n, &tree.root_at(m), &root, &proof)
                .unwrap_or_else(|e| panic!("consistency {m} to {n}: {e}"));
            if m < n {
                assert!(verify_consistency(m, n, &leaf_hash(b"wrong"), &root, &proof).is_err());
                let mut wrong = tree.clone();
                wrong.push(leaf_hash(b"extra"));
                assert!(verify_consistency(m, n, &tree.root_at(m), &wrong.root_at(n + 1), &proof).is_err());
            }
        }
    }
    assert!(tree.inclusion_proof(8, 8).is_err());
    assert!(tree.consistency_proof(0, 3).is_err());
    assert!(tree.consistency_proof(5, 9).is_err());
}

#[test]
fn a_large_tree_gives_short_proofs_that_verify() {
    let tree = Tree::from_leaf_hashes((0..100_000u32).map(|n| leaf_hash(&n.to_be_bytes())));
    let root = tree.root();
    for index in [0u64, 1, 4_095, 65_536, 99_998, 99_999] {
        let path = tree.inclusion_proof(index, tree.size()).unwrap();
        assert!(path.len() <= 17);
        verify_inclusion(index, tree.size(), &tree.leaf(index).unwrap(), &path, &root).unwrap();
    }
    let proof = tree.consistency_proof(77_777, 100_000).unwrap();
    verify_consistency(77_777, 100_000, &tree.root_at(77_777), &root, &proof).unwrap();
}

/// The RFC 8032 TEST 1 key.
fn test_key() -> SigningKey {
    SigningKey::from_bytes(&h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
}

#[test]
fn checkpoints_are_c2sp_signed_notes() {
    let key = test_key();
    let name = "example.com/evidence-log";
    assert_eq!(hex::encode(note_key_id(name, &key.verifying_key())), "50ab55f5");
    let checkpoint = Checkpoint { origin: name.to_string(), size: 8, root: h(ROOTS[8]) };
    let note = checkpoint.sign_with(name, &key.verifying_key(), |text| key.sign(text));
    let expected = "example.com/evidence-log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u{2014} example.com/evidence-log UKtV9XKE955abx9Y5TyyamAzP1ZZWpVDzcg80klibEI/ZmQqMxg7Q32TMDQdISA0usCGyJehJrABGd5SSAEZztGb+A8=\n";
    assert_eq!(note, expected);
    assert_eq!(Checkpoint::verify(&note, name, &key.verifying_key()).unwrap(), checkpoint);

    // Another key's signature line is ignored; a changed size or another key fails.
    let extra = format!("{note}\u{2014} witness.example AAAAAA==\n");
    assert_eq!(Checkpoint::verify(&extra, name, &key.verifying_key()).unwrap(), checkpoint);
    let forged = note.replacen("\n8\n", "\n9\n", 1);
    assert!(matches!(Checkpoint::verify(&forged, name, &key.verifying_key()), Err(CheckpointError::Unsigned(_))));
    let other = SigningKey::from_bytes(&[7; 32]);
    assert!(Checkpoint::verify(&note, name, &other.verifying_key()).is_err());
    assert!(matches!(
        Checkpoint::verify("no blank line", name, &key.verifying_key()),
        Err(CheckpointError::Malformed(_))
    ));
}

/// Runs the independent Python verifier on a proof document; true when it verifies.
fn python_verifies(kind: &str, doc: &serde_json::Value) -> bool {
    let dir = sv0_tests::TempDir::new();
    let file = dir.join("proof.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let script = crate::repo_root().join("tests/interop/rfc9162_verify.py");
    let status = std::process::Command::new("python3").arg(script).arg(kind).arg(&file).status().expect("python3 runs");
    status.success()
}

#[test]
fn the_demo_packs_proofs_and_checkpoint_verify_offline_and_independently() {
    let dir = sv0_tests::TempDir::new();
    let data = dir.join("data");
    let (code, out) = crate::sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");

    let (code, out) = crate::sv0_in(&data, &["proof", "inclusion", "3", "--json"]);
    assert_eq!(code, 0, "{out}");
    let inclusion: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inclusion["tree_size"], 5);
    assert_eq!(inclusion["leaf_index"], 2);
    let hexes =
        |v: &serde_json::Value| -> Vec<Hash> { v.as_array().unwrap().iter().map(|x| h(x.as_str().unwrap())).collect() };
    let digest = hex::decode(inclusion["pack_digest"].as_str().unwrap().trim_start_matches("sha256:")).unwrap();
    let leaf = leaf_hash(&digest);
    assert_eq!(hex::encode(leaf), inclusion["leaf_hash"]);
    let root = h(inclusion["root"].as_str().unwrap());
    verify_inclusion(2, 5, &leaf, &hexes(&inclusion["audit_path"]), &root).unwrap();
    assert!(python_verifies("inclusion", &inclusion), "an independent verifier accepts the inclusion proof");
    let mut tampered = inclusion.clone();
    tampered["leaf_index"] = serde_json::json!(1);
    assert!(!python_verifies("inclusion", &tampered));

    let (code, out) = crate::sv0_in(&data, &["proof", "consistency", "2", "5", "--json"]);
    assert_eq!(code, 0, "{out}");
    let consistency: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(consistency["new_root"], inclusion["root"]);
    let old_root = h(consistency["old_root"].as_str().unwrap());
    verify_consistency(2, 5, &old_root, &root, &hexes(&consistency["proof"])).unwrap();
    assert!(python_verifies("consistency", &consistency));

    // The checkpoint is signed with the pack key the data directory publishes.
    let (code, note) = crate::sv0_in(&data, &["export", "checkpoint"]);
    assert_eq!(code, 0, "{note}");
    let pem = std::fs::read_to_string(data.join("keys").join("signing.pub.pem")).unwrap();
    let key =
        <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&pem).unwrap();
    let checkpoint = Checkpoint::verify(&note, "sv0/contoso/packs", &key).unwrap();
    assert_eq!((checkpoint.size, checkpoint.root), (5, root));

    for args in
        [&["proof", "inclusion", "nope"][..], &["proof", "consistency", "0", "5"], &["proof", "consistency", "3", "9"]]
    {
        let (code, out) = crate::sv0_in(&data, args);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
}

#[test]
fn dsse_envelopes_match_the_golden_vector_and_verify() {
    use sv0_signer::attestation::{Envelope, INTOTO_PAYLOAD_TYPE, envelope_with, verify_envelope};
    let key = test_key();
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"pack","digest":{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}],"predicateType":"https://example.com/EvidencePack/v1","predicate":{}}"#;
    assert_eq!(payload.len(), 227);
    let envelope = envelope_with(INTOTO_PAYLOAD_TYPE, payload, &key.verifying_key(), |pae| key.sign(pae));
    assert_eq!(envelope.signatures[0].keyid, "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9");
    assert_eq!(
        envelope.signatures[0].sig,
        "QZUBBLHmNIQWSPgUKqwtPFWEvJVFYUchvlWiyH2/ky/BdBY5+us1CTpmzVAdISnaCpI+ZkqmfAOiEsPR+FwlDQ=="
    );
    assert_eq!(verify_envelope(&envelope, &key.verifying_key()).unwrap(), payload);
    let mut altered = payload.to_vec();
    altered[2] = b'T';
    // The altered payload under the original signature.
    let mut tampered = envelope_with(INTOTO_PAYLOAD_TYPE, &altered, &key.verifying_key(), |pae| key.sign(pae));
    tampered.signatures.clone_from(&envelope.signatures);
    assert!(verify_envelope(&tampered, &key.verifying_key()).is_err());
    let retyped = Envelope { payload_type: "application/json".into(), ..envelope.clone() };
    assert!(verify_envelope(&retyped, &key.verifying_key()).is_err(), "the payload type is signed and checked");
}

#[test]
fn the_demo_packs_export_as_verifiable_in_toto_attestations_with_gate_summaries() {
    use sv0_signer::attestation::{Envelope, verify_envelope};
    let dir = sv0_tests::TempDir::new();
    let data = dir.join("data");
    let (code, out) = crate::sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let file = dir.join("contoso.intoto.jsonl");
    let (code, out) = crate::sv0_in(&data, &["export", "attestations", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let pem = std::fs::read_to_string(data.join("keys").join("signing.pub.pem")).unwrap();
    let key =
        <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&pem).unwrap();
    let statements: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| {
            let envelope: Envelope = serde_json::from_str(line).unwrap();
            serde_json::from_slice(&verify_envelope(&envelope, &key).unwrap()).unwrap()
        })
        .collect();
    let packs: Vec<&serde_json::Value> =
        statements.iter().filter(|s| s["predicateType"] == "https://sv0.dev/evidence-pack/v1").collect();
    assert_eq!(packs.len(), 5);
    for pack in &packs {
        assert_eq!(pack["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(pack["subject"][0]["name"], pack["predicate"]["pack_id"]);
    }
    let vsas: Vec<&serde_json::Value> =
        statements.iter().filter(|s| s["predicateType"] == "https://slsa.dev/verification_summary/v1").collect();
    assert!(!vsas.is_empty());
    let results: Vec<&str> = vsas.iter().map(|v| v["predicate"]["verificationResult"].as_str().unwrap()).collect();
    assert!(results.contains(&"FAILED"), "the deployment required review: {results:?}");
    assert!(results.contains(&"PASSED"), "the verified remediation passes: {results:?}");
    for vsa in &vsas {
        assert!(vsa["predicate"]["resourceUri"].as_str().unwrap().starts_with("sv0:contoso/"));
        assert_eq!(vsa["predicate"]["verifier"]["id"], "https://sv0.dev/sv0");
    }

    // An independent implementation (Python, standard library only, Ed25519 from RFC 8032's
    // reference code) verifies every envelope, and rejects a tampered one.
    let script = crate::repo_root().join("tests/interop/dsse_verify.py");
    let python = |file: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(&script)
            .arg(file)
            .arg(data.join("keys").join("signing.pub.pem"))
            .output()
            .expect("python3 runs")
    };
    let verified = python(&file);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    let text = std::fs::read_to_string(&file).unwrap();
    let first: Envelope = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let other: Envelope = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let swapped = Envelope { signatures: other.signatures, ..first };
    let tampered = dir.join("tampered.intoto.jsonl");
    std::fs::write(&tampered, format!("{}\n", serde_json::to_string(&swapped).unwrap())).unwrap();
    assert!(!python(&tampered).status.success(), "a signature of another statement is rejected");
}

/// A deployment assessment gives an in-toto Statement whose subject is the deployment: its full
/// commit id from the scan, plus the artifacts `--subject` names for the deployment chosen
/// (the latest by default), with the `authority-assessment/v1` predicate. The independent
/// verifier recomputes the pack's digest and compares the predicate with the pack it names; a
/// predicate changed after signing, or a malformed `--subject`, is refused.
#[test]
fn deployments_export_as_authority_assessment_attestations_that_verify_independently() {
    use sv0_signer::attestation::{Envelope, verify_envelope};
    let (dir, data, packs) = crate::packs::exported();
    let file = dir.join("contoso.intoto.jsonl");
    let image = "ghcr.io/contoso/hr-agents=sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
    let (code, out) =
        crate::sv0_in(&data, &["export", "attestations", "--out", file.to_str().unwrap(), "--subject", image]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(2 of deployments)"), "{out}");
    let pem = data.join("keys").join("signing.pub.pem");
    let key = <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(
        &std::fs::read_to_string(&pem).unwrap(),
    )
    .unwrap();
    let deployments: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| {
            let envelope: Envelope = serde_json::from_str(line).unwrap();
            serde_json::from_slice::<serde_json::Value>(&verify_envelope(&envelope, &key).unwrap()).unwrap()
        })
        .filter(|s| s["predicateType"] == "https://sv0.dev/attestation/authority-assessment/v1")
        .collect();
    assert_eq!(deployments.len(), 2, "the deployment's delta and its remediation's verification");
    let (delta, verification) = (&deployments[0]["predicate"], &deployments[1]["predicate"]);
    for statement in &deployments {
        let p = &statement["predicate"];
        assert_eq!(statement["subject"][0]["name"], "contoso/hr-agents");
        assert_eq!(statement["subject"][0]["digest"]["gitCommit"], "3f9a2c1d8e0b47a6c5f2913e7d4b8a0c6e1f2d35");
        assert_eq!(statement["subject"][1]["name"], "ghcr.io/contoso/hr-agents");
        assert_eq!(
            statement["subject"][1]["digest"]["sha256"],
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "lowercased"
        );
        assert_eq!(p["tenant_id"], "contoso");
        assert_eq!(p["deployment_id"], "contoso/hr-agents#8812");
        let grades = ["grade_a_paths", "grade_b_paths", "grade_c_paths"].map(|g| p[g].as_u64().unwrap());
        assert_eq!(grades.iter().sum::<u64>(), p["authority_paths_total"].as_u64().unwrap());
        assert_eq!(p["evidence_pack_sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(delta["assessment_kind"], "post_deployment_delta");
    assert_eq!(delta["disposition"], "requires_review");
    assert!(delta["new_paths_since_baseline"].as_u64().unwrap() > 0, "{delta}");
    assert!(delta.get("verification").is_none());
    assert_eq!(verification["assessment_kind"], "verification");
    assert_eq!(verification["verification"]["result"], "PASSED", "{verification}");
    assert_eq!(verification["disposition"], "approved");

    let (ok, out) = crate::packs::deployment_verify(&file, &pem, &packs);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": verified, ").count(), 2, "{out}");
    // A predicate changed after signing: the signature and the pack both disagree.
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(&file).unwrap();
    let (mut envelope, payload) = text
        .lines()
        .map(|line| {
            let envelope: Envelope = serde_json::from_str(line).unwrap();
            let payload = String::from_utf8(STANDARD.decode(&envelope.payload).unwrap()).unwrap();
            (envelope, payload)
        })
        .find(|(_, payload)| payload.contains("authority-assessment/v1") && payload.contains("\"requires_review\""))
        .unwrap();
    envelope.payload = STANDARD.encode(payload.replace("\"requires_review\"", "\"approved\""));
    let tampered = dir.join("tampered.intoto.jsonl");
    std::fs::write(&tampered, format!("{}\n", serde_json::to_string(&envelope).unwrap())).unwrap();
    let (ok, out) = crate::packs::deployment_verify(&tampered, &pem, &packs);
    assert!(!ok && out.contains("signature does not verify") && out.contains("disposition is 'approved'"), "{out}");

    // Without --subject the commit alone is the subject; a bad --subject or an unknown
    // deployment is refused and writes nothing.
    let plain = dir.join("plain.intoto.jsonl");
    let (code, out) = crate::sv0_in(&data, &["export", "attestations", "--out", plain.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(2 of deployments)"), "{out}");
    for (args, expected) in [
        (vec!["--subject", "app=sha1:abc"], "NAME=sha256:HEX"),
        (vec!["--subject", "app=sha256:abc"], "64 hex digits"),
        (vec!["--subject", image, "--deployment", "contoso/other#1"], "no deployment contoso/other#1"),
    ] {
        let refused = dir.join("refused.intoto.jsonl");
        let mut all = vec!["export", "attestations", "--out", refused.to_str().unwrap()];
        all.extend(args);
        let (code, out) = crate::sv0_in(&data, &all);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(expected), "{out}");
        assert!(!refused.exists());
    }
}

#[test]
fn the_authority_assessment_schema_is_generated_from_the_code() {
    let generated = serde_json::to_string_pretty(&schemars::schema_for!(sv0_signer::attestation::AuthorityAssessment))
        .unwrap()
        + "\n";
    let path = crate::repo_root().join("schemas/authority-assessment.schema.json");
    if std::env::var_os("SV0_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .expect("schemas/authority-assessment.schema.json; run with SV0_BLESS=1 to create it");
    assert_eq!(committed, generated, "schemas/authority-assessment.schema.json is stale: run SV0_BLESS=1");
}
