//! Evidence packs: exported chains verify offline with only the public key; changing one byte,
//! dropping a pack or reordering two makes verification fail and name the pack.

use std::path::{Path, PathBuf};

use sv0_tests::TempDir;

use crate::{sv0, sv0_in};

/// Runs the demo and exports its packs; returns (temp dir, data dir, export dir).
fn exported() -> (TempDir, PathBuf, PathBuf) {
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
    assert!(out.contains("missing") || out.contains("out of order"), "{out}");
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
    let with_checkpoint = |export: &Path, checkpoint: &Path| {
        sv0(&[
            "verify",
            "--packs",
            export.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--json",
        ])
    };
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
