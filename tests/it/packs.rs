//! Evidence packs: exported chains verify offline with only the public key; changing one byte,
//! dropping a pack or reordering two makes verification fail and name the pack.

use std::path::{Path, PathBuf};

use sv0_tests::TempDir;

use crate::{sv0, sv0_in};

/// Runs the demo and exports its packs; returns (temp dir, data dir, export dir).
pub(crate) fn exported() -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let export = dir.join("audit");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    (dir, data, export)
}

fn pack_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn verify_offline(export: &Path) -> (u8, String) {
    let key = export.join("public-key.pem");
    sv0(&["verify", "--packs", export.to_str().unwrap(), "--public-key", key.to_str().unwrap()])
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn exported_packs_verify_offline_and_sort_in_chain_order() {
    let (_dir, _data, export) = exported();
    let files = pack_files(&export);
    assert_eq!(files.len(), 5);
    for (n, file) in files.iter().enumerate() {
        assert!(file_name(file).starts_with(&format!("{:06}-pk-", n + 1)), "{}", file.display());
    }
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 5 pack(s) of tenant contoso"), "{out}");
}

/// `export packs` also writes the chain's signed checkpoint and prints the public key's
/// fingerprint to compare out of band, and a verify command line without `//`; a pack left out
/// of the directory is then noticed against the checkpoint.
#[test]
fn export_writes_the_checkpoint_and_prints_the_key_fingerprint() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let export = format!("{}/", dir.join("audit").display());
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", &export]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("public-key.pem and checkpoint.txt"), "{out}");
    let key = sv0_signer::KeyRing::from_pem_file(&dir.join("audit").join("public-key.pem")).unwrap();
    let id = sv0_signer::keys::key_id(key.keys().next().unwrap());
    assert!(out.contains(&format!("public key fingerprint: sha256:{id}")), "{out}");
    let line = out.lines().find(|l| l.starts_with("verify offline: ")).unwrap();
    assert!(!line.contains("//"), "{line}");
    let args: Vec<&str> = line.trim_start_matches("verify offline: sv0 ").split(' ').collect();
    let (code, verified) = sv0(&args);
    assert_eq!(code, 0, "{verified}");
    assert!(verified.contains("chain intact: 5 pack(s)"), "{verified}");
    // Packs saved from the API under any names (here: in reverse chain order) verify as well.
    for (n, file) in pack_files(&dir.join("audit")).into_iter().enumerate() {
        std::fs::rename(&file, dir.join("audit").join(format!("download-{}.json", 9 - n))).unwrap();
    }
    let (code, verified) = sv0(&args);
    assert_eq!(code, 0, "{verified}");
    assert!(verified.contains("chain intact: 5 pack(s)"), "{verified}");
    std::fs::remove_file(pack_files(&dir.join("audit")).pop().unwrap()).unwrap();
    let (code, verified) = sv0(&args);
    assert_eq!(code, 1, "a pack left out is noticed against the checkpoint: {verified}");
}

#[test]
fn changing_one_byte_of_a_pack_breaks_the_chain_at_that_pack() {
    // One byte in the signed content, one in the stated digest, one in the signature.
    let cases: [(usize, &str, &str, &str); 3] = [
        (1, "\"riley.chen@contoso.example\"", "\"riley.chen@contoso.exampl3\"", "digest mismatch"),
        (2, "\"digest\": \"sha256:", "\"digest\": \"sha257:", "digest mismatch"),
        (3, "\"signature\": \"", "\"signature\": \"/", "signature"),
    ];
    for (index, from, to, reason) in cases {
        let (_dir, _data, export) = exported();
        let file = pack_files(&export)[index].clone();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{} lacks {from}", file.display());
        let tampered = if from.ends_with(": \"") {
            // Replace the first character after the quote, keeping the length.
            let at = text.find(from).unwrap() + from.len();
            let mut bytes = text.into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        } else {
            text.replacen(from, to, 1)
        };
        std::fs::write(&file, tampered).unwrap();
        let (code, out) = verify_offline(&export);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("pack {} ({}", index + 1, file_name(&file))), "names the pack: {out}");
        assert!(out.contains(reason), "says why ({reason}): {out}");
    }
}

#[test]
fn dropping_a_pack_breaks_the_chain_at_the_next_one() {
    let (_dir, _data, export) = exported();
    let files = pack_files(&export);
    std::fs::remove_file(&files[2]).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("pack 3 ({}", file_name(&files[3]))), "{out}");
    assert!(out.contains("missing"), "{out}");
}

#[test]
fn reordering_two_packs_breaks_the_chain() {
    let (_dir, _data, export) = exported();
    let files = pack_files(&export);
    // Swap the contents of packs 2 and 4, keeping the file names.
    let second = std::fs::read(&files[1]).unwrap();
    let fourth = std::fs::read(&files[3]).unwrap();
    std::fs::write(&files[1], fourth).unwrap();
    std::fs::write(&files[3], second).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("pack 2 ({}", file_name(&files[1]))), "{out}");
    assert!(out.contains("named as pack 2, it holds pack 4"), "{out}");
}

#[test]
fn a_pack_signed_by_another_key_is_refused() {
    let (_dir, _data, export) = exported();
    let (_other_dir, _other_data, other_export) = exported();
    let (code, out) = verify_offline_with(&export, &other_export.join("public-key.pem"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pack 1") && out.contains("unknown key"), "{out}");
}

fn verify_offline_with(export: &Path, key: &Path) -> (u8, String) {
    sv0(&["verify", "--packs", export.to_str().unwrap(), "--public-key", key.to_str().unwrap()])
}

#[test]
fn verify_from_the_log_detects_a_forged_pack() {
    use sv0_domain::events::{Event, EventPayload};
    use sv0_log::{EventLog, Expected};

    let (_dir, data, _export) = exported();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let service = sv0_service::Service::open(&data).await.unwrap();
        let head = service.log().subject_head("contoso.pack").await.unwrap().unwrap();
        // Re-sign pack 5's body with a different key and append it as pack 6: the log accepts
        // the event (it is well-formed and extends the chain), verification must not.
        let last = service.views().packs(&sv0_domain::TenantId::new("contoso").unwrap()).unwrap().pop().unwrap();
        let forger = sv0_signer::PackSigner::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let mut assessment: sv0_domain::assessment::Assessment = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(&last.body).unwrap()["assessment"].clone(),
        )
        .unwrap();
        assessment.assessed_seq += 1000;
        let link =
            sv0_signer::ChainLink { index: last.index, pack_id: last.pack_id.clone(), digest: last.digest.clone() };
        let forged = sv0_signer::seal(&assessment, Some(&link), &forger).unwrap();
        let event = Event {
            meta: sv0_domain::events::EventMeta {
                event_id: sv0_domain::EventId([9; 16]),
                tenant_id: sv0_domain::TenantId::new("contoso").unwrap(),
                occurred_at: sv0_domain::Timestamp(0),
                actor: "system:forger".to_string(),
                causation_id: None,
                correlation_id: None,
                credential: None,
            },
            payload: EventPayload::PackSealed(forged),
        };
        let data = sv0_codec::encode_event(&event).unwrap();
        service
            .log()
            .append("contoso.pack", Expected::LastSeq(head), vec![sv0_log::NewEvent { event_id: [9; 16], data }])
            .await
            .unwrap();
    });
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at pack 6") && out.contains("unknown key"), "{out}");
}

#[test]
fn a_checkpoint_detects_a_truncated_chain_that_verifies_on_its_own() {
    let (dir, data, export) = exported();
    let checkpoint = dir.join("checkpoint.txt");
    let (code, out) = sv0_in(&data, &["export", "checkpoint", "--out", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let key = export.join("public-key.pem");
    let with_checkpoint =
        |export: &Path, checkpoint: &Path| verify_with_checkpoint(export, &key, checkpoint, &["--json"]);
    let (code, out) = with_checkpoint(&export, &checkpoint);
    assert_eq!(code, 0, "{out}");

    // Dropping the newest pack leaves a chain whose every link verifies...
    let files = pack_files(&export);
    std::fs::remove_file(files.last().unwrap()).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 0, "a truncated chain is intact link by link: {out}");
    // ...but not the checkpoint the auditor kept.
    let (code, out) = with_checkpoint(&export, &checkpoint);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["broken"]["position"], 5);
    assert!(report["broken"]["reason"].as_str().unwrap().contains("truncated"), "{out}");

    // A checkpoint signed by another key is a usage error, not a verdict.
    let forged = dir.join("forged.txt");
    let text = std::fs::read_to_string(&checkpoint).unwrap().replacen("\n5\n", "\n4\n", 1);
    std::fs::write(&forged, text).unwrap();
    let (code, out) = with_checkpoint(&export, &forged);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a checkpoint signed"), "{out}");
}

/// Re-seals the assessment of `pack` (an exported file) at the same place of the chain with
/// `signer`, as someone holding that private key could.
fn reseal(pack: &Path, previous: &Path, signer: &sv0_signer::PackSigner) -> String {
    let read = |p: &Path| serde_json::from_slice::<sv0_signer::PackFile>(&std::fs::read(p).unwrap()).unwrap();
    let (file, before) = (read(pack), read(previous));
    let assessment: sv0_domain::assessment::Assessment =
        serde_json::from_value(file.body["assessment"].clone()).unwrap();
    let link = sv0_signer::ChainLink { index: before.index, pack_id: before.pack_id, digest: before.digest };
    let sealed = sv0_signer::seal(&assessment, Some(&link), signer).unwrap();
    serde_json::to_string_pretty(&sv0_signer::PackFile::from_sealed(&sealed).unwrap()).unwrap()
}

/// After `sv0 keys rotate`, the exported key file says which packs each key may sign: the chain
/// verifies, a pack signed by the retired key after its range (someone kept the old private
/// key) is refused, and so is a pack signed by the new key before its range. The retired
/// private key is gone from the key directory.
#[test]
fn a_rotated_key_signs_only_inside_its_validity_range() {
    let (dir, data, _) = exported();
    let keys = data.join("keys");
    let stolen = dir.join("stolen.key");
    std::fs::copy(keys.join("signing.key"), &stolen).unwrap();
    let old = sv0_signer::PackSigner::load(&stolen).unwrap();

    let (code, out) = sv0_in(&data, &["keys", "rotate", "--reason", "the old key was copied"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tenant contoso: packs from 6 are signed by the new key"), "{out}");
    let new = sv0_signer::PackSigner::load(&keys.join("signing.key")).unwrap();
    assert_ne!(new.key_id(), old.key_id());
    for entry in std::fs::read_dir(&keys).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert_ne!(text, std::fs::read_to_string(&stolen).unwrap(), "the retired private key is still on disk");
    }
    let (code, out) =
        sv0_in(&data, &["approve", "--scope", "project:HR-Automation", "--note", "after rotation", "--force"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["keys", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let range = |id: &str| {
        let key = listed.as_array().unwrap().iter().find(|k| k["key_id"] == id).unwrap();
        (key["valid_from"].as_u64().unwrap(), key["valid_to"].as_u64())
    };
    assert_eq!((range(old.key_id()), range(new.key_id())), ((1, Some(5)), (6, None)));

    let export = dir.join("rotated");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let key_file = std::fs::read_to_string(export.join("public-key.pem")).unwrap();
    assert!(key_file.contains("sv0-valid: tenant=contoso from=1 to=5"), "{key_file}");
    assert!(key_file.contains("sv0-valid: tenant=contoso from=6\n"), "{key_file}");
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 6 pack(s)"), "{out}");
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 0, "{out}");
    // The new key signs checkpoints; they verify with the exported key file.
    let checkpoint = dir.join("checkpoint.txt");
    let (code, out) = sv0_in(&data, &["export", "checkpoint", "--out", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let key = export.join("public-key.pem");
    let (code, out) = verify_with_checkpoint(&export, &key, &checkpoint, &[]);
    assert_eq!(code, 0, "{out}");

    let files = pack_files(&export);
    // The retired key signs pack 6.
    let forged = reseal(&files[5], &files[4], &old);
    let original = std::fs::read_to_string(&files[5]).unwrap();
    std::fs::write(&files[5], forged).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at pack 6") && out.contains("outside its validity (packs 1..=5"), "{out}");
    std::fs::write(&files[5], original).unwrap();
    // The new key signs pack 5, before its range.
    std::fs::write(&files[4], reseal(&files[4], &files[3], &new)).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at pack 5") && out.contains("outside its validity (packs 6.."), "{out}");

    // The same checks hold on the log: a pack the retired key seals there is refused.
    let tenant = sv0_domain::TenantId::new("contoso").unwrap();
    block_on_forged_append(&data, &tenant, &old);
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at pack 7") && out.contains("outside its validity"), "{out}");
}

/// Appends to the tenant's chain on the log a pack that `signer` seals over the last pack's
/// assessment.
fn block_on_forged_append(data: &Path, tenant: &sv0_domain::TenantId, signer: &sv0_signer::PackSigner) {
    use sv0_log::{EventLog, Expected};
    crate::block_on(async {
        let service = sv0_service::Service::open(data).await.unwrap();
        let subject = format!("{tenant}.pack");
        let head = service.log().subject_head(&subject).await.unwrap().unwrap();
        let last = service.views().packs(tenant).unwrap().pop().unwrap();
        let mut assessment: sv0_domain::assessment::Assessment = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(&last.body).unwrap()["assessment"].clone(),
        )
        .unwrap();
        assessment.assessed_seq += 1000;
        let link = sv0_signer::ChainLink { index: last.index, pack_id: last.pack_id.clone(), digest: last.digest };
        let forged = sv0_signer::seal(&assessment, Some(&link), signer).unwrap();
        let event = sv0_service::pack_event(tenant, forged, assessment.assessed_event, assessment.occurred_at);
        let record = sv0_service::import::new_event(&event).unwrap();
        service.log().append(&subject, Expected::LastSeq(head), vec![record]).await.unwrap();
    });
}

/// A rotation cut short after the new key was written (nothing recorded yet) is finished by
/// the next command that seals: the chain records the rotation and stays intact.
#[test]
fn a_rotation_cut_short_is_finished_before_the_next_seal() {
    let (_dir, data, _) = exported();
    let next = sv0_signer::PackSigner::create_next(&data.join("keys")).unwrap();
    let (code, out) =
        sv0_in(&data, &["approve", "--scope", "project:HR-Automation", "--note", "after a crash", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(!data.join("keys").join(sv0_signer::keys::NEXT_KEY_FILE).exists());
    let (code, out) = sv0_in(&data, &["keys", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let current: Vec<&serde_json::Value> =
        listed.as_array().unwrap().iter().filter(|k| k["valid_to"].is_null()).collect();
    assert_eq!(current.len(), 1, "{out}");
    assert_eq!(current[0]["key_id"], next.key_id());
    assert_eq!(current[0]["valid_from"], 6);
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 0, "{out}");
}

/// A key file's validity lines are checked when read: a malformed line or one followed by no
/// key is a usage error (exit 2), not a silently unrestricted key.
#[test]
fn a_malformed_validity_line_is_an_error() {
    let (dir, _data, export) = exported();
    let key = std::fs::read_to_string(export.join("public-key.pem")).unwrap();
    for (name, text) in [
        ("bad-field", key.replace("from=1", "since=1")),
        ("bad-number", key.replace("from=1", "from=one")),
        ("dangling", format!("{key}sv0-valid: tenant=contoso from=1\n")),
    ] {
        let file = dir.join(&format!("{name}.pem"));
        std::fs::write(&file, text).unwrap();
        let (code, out) = verify_offline_with(&export, &file);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("validity line") || out.contains("followed by no key"), "{name}: {out}");
    }
}

/// The golden pack chain of `schemas/vectors/packs`: the five assessments of
/// `assessments.json` (the demo's, one note holding non-ASCII text, a quote and a tab) sealed
/// with the RFC 8032 TEST 1 key (packs 1-3) and, after a rotation, the TEST 2 key (packs 4-5);
/// and `deployment.intoto.jsonl`, the deployment attestations of its deployment assessments
/// (packs 3 and 4) about one artifact, signed with the TEST 1 key.
fn golden_chain() -> Vec<(String, String)> {
    let dir = crate::repo_root().join("schemas/vectors/packs");
    let key = |hex_seed: &str| {
        let seed: [u8; 32] = hex::decode(hex_seed).unwrap().try_into().unwrap();
        sv0_signer::PackSigner::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&seed))
    };
    let first = key("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let second = key("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
    assert_eq!(
        hex::encode(second.verifying_key().as_bytes()),
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "RFC 8032 TEST 2"
    );
    let assessments: Vec<sv0_domain::assessment::Assessment> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("assessments.json")).unwrap()).unwrap();
    let mut files = Vec::new();
    let mut deployments = String::new();
    let mut link: Option<sv0_signer::ChainLink> = None;
    for (n, assessment) in assessments.iter().enumerate() {
        let signer = if n < 3 { &first } else { &second };
        let sealed = sv0_signer::seal(assessment, link.as_ref(), signer).unwrap();
        link = Some(sv0_signer::ChainLink {
            index: sealed.index,
            pack_id: sealed.pack_id.clone(),
            digest: sealed.digest.clone(),
        });
        let file = sv0_signer::PackFile::from_sealed(&sealed).unwrap();
        files.push((file.file_name(), format!("{}\n", serde_json::to_string_pretty(&file).unwrap())));
        deployments.push_str(&golden_deployment_attestations(&sealed, &first));
    }
    files.push(("deployment.intoto.jsonl".to_string(), deployments));
    let mut ring = sv0_signer::KeyRing::new();
    for (signer, from, to) in [(&first, 1, Some(3)), (&second, 4, None)] {
        ring.add(signer.verifying_key());
        ring.restrict(signer.key_id(), sv0_signer::Validity { tenant: "contoso".into(), from, to });
    }
    files.push(("public-key.pem".to_string(), ring.to_pem()));
    files
}

/// The artifact the golden deployment shipped.
const GOLDEN_ARTIFACT: &str =
    "ghcr.io/contoso/hr-agents=sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn golden_deployment_attestations(sealed: &sv0_domain::events::PackSealed, key: &sv0_signer::PackSigner) -> String {
    use sv0_signer::attestation::{Subject, authority_assessments, deployment_statement, sign_statement};
    let body: sv0_signer::PackBody = serde_json::from_str(&sealed.body).unwrap();
    let subjects = [Subject::parse(GOLDEN_ARTIFACT).unwrap()];
    authority_assessments(&body, &sealed.digest)
        .iter()
        .map(|p| {
            format!(
                "{}\n",
                serde_json::to_string(&sign_statement(key, &deployment_statement(&subjects, p)).unwrap()).unwrap()
            )
        })
        .collect()
}

/// `tests/interop/deployment_verify.py ATTESTATIONS KEY PACK_DIR`.
pub(crate) fn deployment_verify(attestations: &Path, key: &Path, packs: &Path) -> (bool, String) {
    let output = std::process::Command::new("python3")
        .arg(crate::repo_root().join("tests/interop/deployment_verify.py"))
        .args([attestations, key, packs])
        .output()
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn python_verify(packs: &Path, key: &Path) -> (bool, String) {
    let output = std::process::Command::new("python3")
        .arg(crate::repo_root().join("tests/interop/pack_verify.py"))
        .arg(packs)
        .arg(key)
        .output()
        .expect("python3 runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Sealing is deterministic: the golden chain is reproduced byte for byte (regenerate with
/// `SV0_BLESS=1` and review the diff). `sv0 verify` and an independent verifier written from
/// `schemas/pack.md` alone (Python: its own RFC 8785 canonicalisation, SHA-256, Ed25519 from
/// RFC 8032, validity lines) both accept it, and both refuse it with one byte of a body
/// changed or a key used outside its range.
#[test]
fn the_golden_pack_chain_is_reproduced_byte_for_byte_and_verifies_independently() {
    let dir = crate::repo_root().join("schemas/vectors/packs");
    let bless = std::env::var_os("SV0_BLESS").is_some();
    for (name, text) in golden_chain() {
        let file = dir.join(&name);
        if bless {
            std::fs::write(&file, &text).unwrap();
        }
        let golden = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; run with SV0_BLESS=1 to create it", file.display()));
        assert_eq!(golden, text, "{name} differs from the golden vector");
    }
    let key = dir.join("public-key.pem");
    let (code, out) = verify_offline_with(&dir, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 5 pack(s) of tenant contoso"), "{out}");
    let (ok, out) = python_verify(&dir, &key);
    assert!(ok && out.contains("chain intact: 5 pack(s)"), "{out}");
    // The golden deployment attestations verify independently against the golden packs.
    let first = TempDir::new();
    let seed: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap().try_into().unwrap();
    std::fs::write(
        first.join("test1.pem"),
        sv0_signer::public_key_pem(&ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key()),
    )
    .unwrap();
    let (ok, out) = deployment_verify(&dir.join("deployment.intoto.jsonl"), &first.join("test1.pem"), &dir);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": verified, ").count(), 2, "{out}");

    // The demo's own export verifies independently too.
    let (_demo, _data, export) = exported();
    let (ok, out) = python_verify(&export, &export.join("public-key.pem"));
    assert!(ok, "{out}");

    let copy = TempDir::new();
    let files: Vec<PathBuf> = pack_files(&dir).into_iter().filter(|f| !f.ends_with("assessments.json")).collect();
    for file in &files {
        std::fs::copy(file, copy.join(&file_name(file))).unwrap();
    }
    std::fs::copy(&key, copy.join("public-key.pem")).unwrap();
    let fifth = copy.join(&file_name(&files[4]));
    let original = std::fs::read_to_string(&fifth).unwrap();
    std::fs::write(&fifth, original.replace("réexaminé", "reexamine")).unwrap();
    let (ok, out) = python_verify(copy.path(), &copy.join("public-key.pem"));
    assert!(!ok && out.contains("pack 5") && out.contains("digest mismatch"), "{out}");
    let (code, out) = verify_offline_with(copy.path(), &copy.join("public-key.pem"));
    assert!(code == 1 && out.contains("BROKEN at pack 5"), "{out}");
    std::fs::write(&fifth, original).unwrap();
    // The key file with the first key's range cut to packs 1-2: pack 3 is outside it.
    let narrowed = std::fs::read_to_string(&key).unwrap().replace("from=1 to=3", "from=1 to=2");
    std::fs::write(copy.join("public-key.pem"), narrowed).unwrap();
    let (ok, out) = python_verify(copy.path(), &copy.join("public-key.pem"));
    assert!(!ok && out.contains("pack 3") && out.contains("outside its validity"), "{out}");
    let (code, out) = verify_offline_with(copy.path(), &copy.join("public-key.pem"));
    assert!(code == 1 && out.contains("BROKEN at pack 3") && out.contains("outside its validity"), "{out}");
}

/// Signatures are checked across threads, but the failure reported is still the first in
/// chain order, whether it is a signature or a broken link.
#[test]
fn the_first_failure_in_chain_order_is_reported() {
    use sv0_domain::assessment::{Assessment, AssessmentKind};
    let signer = sv0_signer::PackSigner::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let tenant = sv0_domain::TenantId::new("contoso").unwrap();
    let mut packs = Vec::new();
    let mut link: Option<sv0_signer::ChainLink> = None;
    for n in 1..=12u64 {
        let assessment = Assessment {
            kind: AssessmentKind::ScanAssessment,
            tenant: tenant.clone(),
            assessed_event: sv0_domain::EventId([n as u8; 16]),
            assessed_seq: n,
            log_from: n,
            occurred_at: sv0_domain::Timestamp(1_772_000_000_000 + n as i64),
            scan: None,
            approval: None,
        };
        let sealed = sv0_signer::seal(&assessment, link.as_ref(), &signer).unwrap();
        link = Some(sv0_signer::ChainLink { index: n, pack_id: sealed.pack_id.clone(), digest: sealed.digest.clone() });
        packs.push((n, sealed));
    }
    let mut ring = sv0_signer::KeyRing::new();
    ring.add(signer.verifying_key());
    let verify = |packs: &[(u64, sv0_domain::events::PackSealed)]| {
        sv0_signer::verify_chain(&sv0_signer::entries_from_sealed(packs), &ring).map(|r| r.packs)
    };
    assert_eq!(verify(&packs), Ok(12));
    // Pack n gets the next pack's signature.
    let bad_signature = |packs: &mut Vec<(u64, sv0_domain::events::PackSealed)>, n: usize| {
        packs[n - 1].1.signature = packs[n % packs.len()].1.signature.clone();
    };
    let broken_link = |packs: &mut Vec<(u64, sv0_domain::events::PackSealed)>, n: usize| {
        packs.remove(n - 1);
    };
    let first = |packs: &[(u64, sv0_domain::events::PackSealed)]| {
        let broken = verify(packs).unwrap_err();
        (broken.position, broken.reason.contains("signature"))
    };
    // Two bad signatures, in different threads' shares: the earlier one.
    let mut two = packs.clone();
    bad_signature(&mut two, 9);
    bad_signature(&mut two, 3);
    assert_eq!(first(&two), (3, true));
    // A bad signature before a broken link, and after one.
    let mut before = packs.clone();
    bad_signature(&mut before, 2);
    broken_link(&mut before, 6);
    assert_eq!(first(&before), (2, true));
    let mut after = packs.clone();
    bad_signature(&mut after, 10);
    broken_link(&mut after, 6);
    assert_eq!(first(&after), (6, false));
}

/// A key that does not sign the tenant's chain (another installation's, on a shared log) is
/// not used for checkpoints or attestations: they would not verify with the chain's key file.
#[test]
fn checkpoints_and_attestations_are_signed_only_with_a_key_of_the_chain() {
    let (dir, data, _) = exported();
    let other = dir.join("other-keys");
    sv0_signer::PackSigner::load_or_create(&other).unwrap();
    std::fs::copy(other.join("signing.key"), data.join("keys").join("signing.key")).unwrap();
    let (code, out) = sv0_in(&data, &["export", "checkpoint"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a current key of the chain of tenant contoso"), "{out}");
    let file = dir.join("a.intoto.jsonl");
    let (code, out) = sv0_in(&data, &["export", "attestations", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(!file.exists());
}

/// A forged pack slipped into the middle of an exported chain (signed by a key the auditor does
/// not hold, linked to the pack before it, the later files renumbered) is named.
#[test]
fn an_inserted_forged_pack_is_named() {
    let (_dir, _data, export) = exported();
    let files = pack_files(&export);
    let forger = sv0_signer::PackSigner::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    let forged = reseal(&files[2], &files[1], &forger);
    let forged_name = {
        let file: sv0_signer::PackFile = serde_json::from_str(&forged).unwrap();
        file.file_name()
    };
    // Packs 3.. move one place down; the forgery takes place 3.
    for file in files[2..].iter().rev() {
        let name = file_name(file);
        let n: usize = name[..6].parse().unwrap();
        std::fs::rename(file, export.join(format!("{:06}{}", n + 1, &name[6..]))).unwrap();
    }
    std::fs::write(export.join(&forged_name), forged).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("BROKEN at pack 3 ({forged_name}")) && out.contains("unknown key"), "{out}");
}

/// The private key shows in no output: a signer's `Debug` is its id, and neither generating nor
/// rotating prints anything but public keys.
#[test]
fn the_private_key_is_never_printed() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, generated) = sv0_in(&data, &["keys", "generate"]);
    assert_eq!(code, 0, "{generated}");
    let private = std::fs::read_to_string(data.join("keys").join("signing.key")).unwrap();
    let signer = sv0_signer::PackSigner::load(&data.join("keys").join("signing.key")).unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains(signer.key_id()) && !debug.contains("SigningKey"), "{debug}");
    let snapshot = crate::repo_root().join("crates/sv0/demo").join(crate::DEMO_SNAPSHOTS[0]);
    let (code, out) = sv0_in(&data, &["scan", "import", snapshot.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // Who rotates is recorded: without a configured principal, rotation is refused.
    let (code, refused) = sv0_in(&data, &["keys", "rotate"]);
    assert!(code == 2 && refused.contains("no approver identity is configured"), "{refused}");
    std::fs::write(data.join("sv0.toml"), "[identity]\nprincipal = \"riley.chen@contoso.example\"\n").unwrap();
    let (code, rotated) = sv0_in(&data, &["keys", "rotate"]);
    assert_eq!(code, 0, "{rotated}");
    let body: String = private.lines().filter(|l| !l.starts_with("-----")).collect();
    for out in [&generated, &rotated] {
        assert!(!out.contains("PRIVATE KEY") && !out.contains(&body), "{out}");
    }
}

/// `sv0 verify --packs EXPORT --public-key KEY --checkpoint CHECKPOINT [extra]`.
fn verify_with_checkpoint(export: &Path, key: &Path, checkpoint: &Path, extra: &[&str]) -> (u8, String) {
    let mut args = vec![
        "verify",
        "--packs",
        export.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sv0(&args)
}

/// A process that can write to the log cannot extend a chain: a pack is adopted only when a
/// key registered on the chain, valid at its index, signed it. A pack with a bad signature
/// under the registered key, and one well signed by a key the chain never registered, are
/// both ignored; the chain stays as the signer sealed it.
#[test]
fn a_pack_not_signed_by_the_chains_key_is_not_adopted() {
    use base64::Engine;
    use ed25519_dalek::Signer;
    use sv0_log::EventLog;
    let (_dir, data, _) = exported();
    crate::block_on(async {
        let mut service = sv0_service::Service::open(&data).await.unwrap();
        let tenant = service.tenant(None).unwrap();
        let head = service.views().pack_head(&tenant).unwrap().unwrap();
        let registered = service.views().packs(&tenant).unwrap().last().unwrap().key_id.clone();
        let body = format!(r#"{{"decision":"approved","index":{}}}"#, head.index + 1);
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let well_signed = base64::engine::general_purpose::STANDARD
            .encode(stranger.sign(&sv0_signer::pack::pae(sv0_signer::pack::PAYLOAD_TYPE, body.as_bytes())).to_bytes());
        let forged = |key_id: &str, signature: &str, n: u8| {
            let event = sv0_domain::events::Event::by(
                sv0_domain::EventId([n; 16]),
                &tenant,
                sv0_domain::Timestamp::now(),
                &sv0_domain::events::Actor::host("mallory@contoso.example"),
                sv0_domain::events::EventPayload::PackSealed(sv0_domain::events::PackSealed {
                    pack_id: format!("forged-{n}"),
                    index: head.index + 1,
                    assessed_seq: head.assessed_seq,
                    digest: sv0_signer::pack::digest(body.as_bytes()),
                    previous_pack_id: Some(head.pack_id.clone()),
                    previous_digest: Some(head.digest.clone()),
                    key_id: key_id.to_string(),
                    signature: signature.to_string(),
                    body: body.clone(),
                }),
            );
            sv0_service::import::new_event(&event).unwrap()
        };
        let stranger_id = hex::encode([0xab; 32]);
        let subject = format!("{tenant}.pack");
        let log = service.log().clone();
        log.append(&subject, sv0_log::Expected::Any, vec![forged(&registered, &"A".repeat(88), 201)]).await.unwrap();
        log.append(&subject, sv0_log::Expected::Any, vec![forged(&stranger_id, &well_signed, 202)]).await.unwrap();
        service.sync().await.unwrap();
        let after = service.views().pack_head(&tenant).unwrap().unwrap();
        assert_eq!((after.index, &after.pack_id), (head.index, &head.pack_id), "no forged pack joined the chain");
    });
    // Verification says what the log holds: the chain is the signer's, and events no signer of
    // it sealed stand on its subject.
    let (code, out) = sv0_in(&data, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not part of the chain") && out.contains("forged-201"), "{out}");
}

/// Strict formats: a pack file naming a member twice (a reader keeping the first would see
/// another document than the signature covers), a key file repeating a validity attribute, and
/// a FIFO or a link to a device among the packs are refused — none passes, none hangs.
#[test]
fn duplicate_names_repeated_attributes_and_special_files_are_refused() {
    let (_dir, _data, export) = exported();
    let files = pack_files(&export);
    let original = std::fs::read_to_string(&files[0]).unwrap();
    let doubled = original.replacen('{', "{\"index\": 99,", 1);
    std::fs::write(&files[0], &doubled).unwrap();
    let (code, out) = verify_offline(&export);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("appears twice"), "{out}");
    std::fs::write(&files[0], &original).unwrap();
    assert_eq!(verify_offline(&export).0, 0);

    let key = export.join("public-key.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    let line = pem.lines().find(|l| l.starts_with("sv0-valid:")).unwrap().to_string();
    let repeated = dir_file(&export, "repeated-key.pem");
    std::fs::write(&repeated, pem.replace(&line, &format!("{line} to=3 to=99"))).unwrap();
    let (code, out) = verify_offline_with(&export, &repeated);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("appears twice"), "{out}");
    std::fs::remove_file(&repeated).unwrap();

    #[cfg(unix)]
    {
        let fifo = export.join("000098-fifo.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        std::os::unix::fs::symlink("/dev/zero", export.join("000099-zero.json")).unwrap();
        let started = std::time::Instant::now();
        let (code, out) = verify_offline(&export);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("not a regular file"), "{out}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "verification returned");
    }
}

fn dir_file(dir: &Path, name: &str) -> PathBuf {
    dir.parent().unwrap().join(name)
}
