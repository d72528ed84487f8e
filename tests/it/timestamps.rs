//! RFC 3161 trusted time against a real TSA (`openssl ts -reply` on loopback, `tsa.rs`): the
//! signer timestamps each new checkpoint, `sv0 export packs` writes the tokens beside the packs,
//! `sv0 verify --tsa-cert` reports when each pack existed by, and `openssl ts -verify` accepts
//! what SV0 stored. The tamper matrix: a token for another checkpoint, a pack inserted after a
//! timestamped checkpoint, a TSA nobody trusts, a TSA whose certificate had expired, a forged
//! token; and a TSA that is down delays the token, never the pack.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sv0_tests::TempDir;

use crate::tsa::{POLICY, Tsa};
use crate::{sv0, sv0_in};

fn configure(data: &Path, tsa: &Tsa) {
    std::fs::write(
        data.join("sv0.toml"),
        format!("[timestamping]\nurl = \"{}/tsr\"\npolicy = \"{POLICY}\"\ntimeout_secs = 20\n", tsa.url),
    )
    .unwrap();
}

/// The demo's data directory with the TSA configured: (temp dir, data dir).
fn demo_with(tsa: &Tsa) -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    configure(&data, tsa);
    (dir, data)
}

/// A snapshot that makes one more pack: the demo's last scan, a day later, as a scheduled scan.
fn another_scan(dir: &Path) -> PathBuf {
    let text = String::from_utf8(crate::demo_snapshot("contoso-3-remediation.json")).unwrap();
    let text = text.replace("2026-03-03T16:30:00Z", "2026-03-04T16:30:00Z").replace("\"remediation\"", "\"scheduled\"");
    let file = dir.join("later.json");
    std::fs::write(&file, text).unwrap();
    file
}

fn verify(export: &Path, tsa_cert: &Path) -> (u8, String) {
    let key = export.join("public-key.pem");
    sv0(&[
        "verify",
        "--packs",
        export.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
        "--tsa-cert",
        tsa_cert.to_str().unwrap(),
    ])
}

fn openssl_verify(export: &Path, stem: &str, ca: &Path) -> (bool, String) {
    openssl_verify_at(export, stem, ca, None)
}

/// `openssl ts -verify`, the certificates checked at `at` (Unix seconds) instead of now.
fn openssl_verify_at(export: &Path, stem: &str, ca: &Path, at: Option<i64>) -> (bool, String) {
    let mut command = std::process::Command::new("openssl");
    if let Some(at) = at {
        command.args(["ts", "-verify", "-attime", &at.to_string()]);
    } else {
        command.args(["ts", "-verify"]);
    }
    let output = command
        .arg("-queryfile")
        .arg(export.join(format!("{stem}.tsq")))
        .arg("-in")
        .arg(export.join(format!("{stem}.tsr")))
        .arg("-CAfile")
        .arg(ca)
        .output()
        .expect("openssl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The demo's chain gets a token over its checkpoint of 5 packs, then, after one more scan, over
/// the checkpoint of 6: both export, verify with the TSA's root, and `openssl ts -verify`
/// accepts them. Then each tampering is refused with its reason.
#[test]
fn checkpoints_are_timestamped_by_a_real_tsa_and_verify_offline_and_with_openssl() {
    let tsa = Tsa::start();
    let (dir, data) = demo_with(&tsa);
    // A command that writes (here a token) seals nothing new but timestamps the checkpoint.
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tsa.stamped.load(Ordering::SeqCst), 1);
    let (code, out) = sv0_in(&data, &["scan", "import", another_scan(dir.path()).to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tsa.stamped.load(Ordering::SeqCst), 2);
    // Nothing new to timestamp: no request.
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tsa.stamped.load(Ordering::SeqCst), 2);

    let export = dir.join("audit");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 2 RFC 3161 timestamp(s)"), "{out}");
    for stem in ["timestamp-000005", "timestamp-000006"] {
        for ext in ["txt", "tsq", "tsr"] {
            assert!(export.join(format!("{stem}.{ext}")).exists(), "{stem}.{ext}");
        }
        // The independent check: OpenSSL's own verifier (chain to the root, imprint, nonce,
        // policy from the stored request).
        let (ok, text) = openssl_verify(&export, stem, &tsa.ca());
        assert!(ok && text.contains("Verification: OK"), "{stem}: {text}");
    }
    let (code, out) = verify(&export, &tsa.ca());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact: 6 pack(s)"), "{out}");
    assert!(out.contains("timestamp timestamp-000005: packs 1-5 existed no later than 20"), "{out}");
    assert!(out.contains("CN=SV0 Test TSA"), "{out}");
    assert_eq!(out.matches("existed no later than").count(), 2 + 6, "{out}");
    let (code, out) = sv0(&[
        "verify",
        "--packs",
        export.to_str().unwrap(),
        "--public-key",
        export.join("public-key.pem").to_str().unwrap(),
        "--tsa-cert",
        tsa.ca().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["timestamps"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["timestamps"][0]["policy"], POLICY);
    assert!(report["trusted_time"][5]["existed_no_later_than"].is_string(), "{report}");
    // Without --tsa-cert the tokens are named, not trusted.
    let key = export.join("public-key.pem");
    let (code, out) = sv0(&["verify", "--packs", export.to_str().unwrap(), "--public-key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 timestamped checkpoint(s) not checked"), "{out}");

    // A token for another checkpoint: checkpoint 5's files with checkpoint 6's token.
    let swapped = dir.join("swapped");
    copy_dir(&export, &swapped);
    std::fs::copy(export.join("timestamp-000006.tsr"), swapped.join("timestamp-000005.tsr")).unwrap();
    let (code, out) = verify(&swapped, &tsa.ca());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("timestamps BROKEN: timestamp-000005.tsr") && out.contains("message imprint"), "{out}");
    let (ok, _) = openssl_verify(&swapped, "timestamp-000005", &tsa.ca());
    assert!(!ok, "openssl refuses it too");

    // A TSA nobody trusts: another authority's root.
    let other = Tsa::start();
    let (code, out) = verify(&export, &other.ca());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the TSA is not trusted"), "{out}");

    // A forged token: the TSTInfo's time moved back a year. Its GeneralizedTime (tag 0x18,
    // 15 bytes, "YYYYMMDDHHMMSSZ") is the only one in the token: certificates and the signing
    // time attribute use UTCTime (tag 0x17) before 2050.
    let forged = dir.join("forged");
    copy_dir(&export, &forged);
    let mut token = std::fs::read(export.join("timestamp-000005.tsr")).unwrap();
    let at = token.windows(4).position(|w| w == [0x18, 0x0f, b'2', b'0']).expect("the TSTInfo's genTime");
    token[at + 5] -= 1;
    std::fs::write(forged.join("timestamp-000005.tsr"), &token).unwrap();
    let (code, out) = verify(&forged, &tsa.ca());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("timestamp-000005.tsr") && out.contains("signed message digest"), "{out}");

    // A backdated pack: whoever holds the signing key re-seals the chain with a pack inserted
    // at position 3, after checkpoint 5 was timestamped. Every link and signature verifies; the
    // tokens do not cover these packs.
    let backdated = dir.join("backdated");
    copy_dir(&export, &backdated);
    let signer = sv0_signer::PackSigner::load_or_create(&data.join("keys")).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&backdated)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("0000"))
        .collect();
    files.sort();
    let mut assessments: Vec<sv0_domain::assessment::Assessment> = files
        .iter()
        .map(|f| {
            let file: sv0_signer::PackFile = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            serde_json::from_value::<sv0_signer::PackBody>(file.body).unwrap().assessment
        })
        .collect();
    let mut inserted = assessments[1].clone();
    inserted.assessed_event = sv0_domain::EventId([7; 16]);
    assessments.insert(2, inserted);
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    let mut link: Option<sv0_signer::ChainLink> = None;
    for assessment in &assessments {
        let sealed = sv0_signer::seal(assessment, link.as_ref(), &signer).unwrap();
        link = Some(sv0_signer::ChainLink {
            index: sealed.index,
            pack_id: sealed.pack_id.clone(),
            digest: sealed.digest.clone(),
        });
        let file = sv0_signer::PackFile::from_sealed(&sealed).unwrap();
        std::fs::write(backdated.join(file.file_name()), serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    }
    let key = backdated.join("public-key.pem");
    let (code, out) = sv0(&["verify", "--packs", backdated.to_str().unwrap(), "--public-key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "the re-sealed chain is intact on its own: {out}");
    let (code, out) = verify(&backdated, &tsa.ca());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("timestamp-000005: the packs are not the ones timestamped")
            && out.contains("do not hash to the checkpoint's root"),
        "{out}"
    );
}

/// The TSA being down delays the token, never the pack; the next round timestamps the
/// checkpoint then current. A TSA that refuses the policy asked for is the same: no token.
#[test]
fn a_tsa_that_is_down_delays_the_token_never_the_pack() {
    let tsa = Tsa::start();
    let (dir, data) = demo_with(&tsa);
    tsa.down.store(true, Ordering::SeqCst);
    let (code, out) = sv0_in(&data, &["scan", "import", another_scan(dir.path()).to_str().unwrap()]);
    assert_eq!(code, 0, "the scan is imported and sealed while the TSA is down: {out}");
    let export = dir.join("audit");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 6 pack(s)") && !out.contains("timestamp"), "{out}");
    let (code, out) = verify(&export, &tsa.ca());
    assert_eq!(code, 2, "asking for trusted time where there is none is an error: {out}");
    assert!(out.contains("holds no timestamped checkpoint"), "{out}");

    tsa.down.store(false, Ordering::SeqCst);
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 1 RFC 3161 timestamp(s)"), "{out}");
    let (code, out) = verify(&export, &tsa.ca());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("packs 1-6 existed no later than"), "{out}");

    // A policy the TSA does not serve: it answers with a rejection, and nothing is stored.
    std::fs::write(
        data.join("sv0.toml"),
        format!("[timestamping]\nurl = \"{}/tsr\"\npolicy = \"1.2.3.4.5\"\n", tsa.url),
    )
    .unwrap();
    let (code, out) = sv0_in(&data, &["scan", "import", another_scan_later(dir.path()).to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 7 pack(s)") && out.contains("wrote 1 RFC 3161 timestamp(s)"), "{out}");
    // A policy that is not an object identifier is a configuration error, named.
    std::fs::write(data.join("sv0.toml"), format!("[timestamping]\nurl = \"{}/tsr\"\npolicy = \"gold\"\n", tsa.url))
        .unwrap();
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("invalid TSA policy \"gold\""), "{out}");
}

fn another_scan_later(dir: &Path) -> PathBuf {
    let file = another_scan(dir);
    let text = std::fs::read_to_string(&file).unwrap().replace("2026-03-04T16:30:00Z", "2026-03-05T16:30:00Z");
    let later = dir.join("later-still.json");
    std::fs::write(&later, text).unwrap();
    later
}

/// A token issued under a TSA certificate that had expired is refused, as is a request for
/// another message; both checked through the signer's own client against the real TSA.
#[test]
fn a_token_signed_with_an_expired_tsa_certificate_is_refused() {
    use sv0_service::timestamping::{Timestamper, TimestampingConfig};
    use sv0_signer::timestamp::{TimestampError, trusted_from_pem, verify_token};
    let config = |tsa: &Tsa| TimestampingConfig {
        url: tsa.url.clone(),
        policy: None,
        client_cert: None,
        client_key: None,
        timeout_secs: Some(20),
        ca_cert: None,
    };
    let note = b"sv0/contoso/packs\n5\nAAAA\n\n";
    let good = Tsa::start();
    let expired = Tsa::expired();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stamp = |tsa: &Tsa| runtime.block_on(Timestamper::new(config(tsa)).unwrap().stamp(note)).unwrap();

    let (request, response) = stamp(&good);
    let trusted = trusted_from_pem(&std::fs::read(good.ca()).unwrap()).unwrap();
    let info = verify_token(&request, &response, note, &trusted).unwrap();
    assert_eq!(info.policy, POLICY);
    assert!(info.tsa.contains("SV0 Test TSA"), "{info:?}");
    assert!(matches!(
        verify_token(&request, &response, b"another checkpoint", &trusted),
        Err(TimestampError::Mismatch(_))
    ));
    // A request for another message (its nonce and imprint differ) does not go with this token.
    let (other_request, _) = stamp(&good);
    assert!(matches!(verify_token(&other_request, &response, note, &trusted), Err(TimestampError::Mismatch(_))));

    let (request, response) = stamp(&expired);
    let trusted = trusted_from_pem(&std::fs::read(expired.ca()).unwrap()).unwrap();
    let refused = verify_token(&request, &response, note, &trusted).unwrap_err();
    assert!(matches!(refused, TimestampError::Expired { .. }), "{refused}");
    assert!(refused.to_string().contains("was not valid at the token's time"), "{refused}");
}

/// The golden timestamp of `schemas/vectors/packs`: the golden chain's checkpoint of 5 packs
/// (signed with the RFC 8032 TEST 2 key, which signs the chain's head) as
/// `timestamp-000005.txt`, the request and the token a real TSA (`openssl ts -reply`) gave for
/// it once (`.tsq`, `.tsr`), and that TSA's root certificate (`tsa-ca.pem`). The note is
/// reproduced byte for byte; the token verifies with `sv0 verify --tsa-cert` and with
/// `openssl ts -verify` for as long as anyone keeps it, since only the certificates' validity
/// at the token's time counts. `SV0_BLESS=1` creates the token when it is missing.
#[test]
fn the_golden_timestamp_is_reproduced_and_verifies_with_sv0_and_openssl() {
    let dir = crate::repo_root().join("schemas/vectors/packs");
    let seed: [u8; 32] =
        hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").unwrap().try_into().unwrap();
    let head_key = sv0_signer::PackSigner::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&seed));
    let entries = sv0_signer::entries_from_dir(&dir).unwrap();
    let leaves = entries
        .iter()
        .map(|e| sv0_signer::merkle::pack_leaf(&e.pack.as_ref().unwrap().digest).unwrap())
        .collect::<Vec<_>>();
    let tree = sv0_signer::merkle::Tree::from_leaf_hashes(leaves);
    let origin = "sv0/contoso/packs".to_string();
    let checkpoint =
        sv0_signer::checkpoint::Checkpoint { origin: origin.clone(), size: tree.size(), root: tree.root() };
    let note = checkpoint.sign(&head_key, &origin).unwrap();
    let stem = dir.join("timestamp-000005");
    let bless = std::env::var_os("SV0_BLESS").is_some();
    if bless {
        std::fs::write(stem.with_extension("txt"), &note).unwrap();
        if !stem.with_extension("tsr").exists() {
            let tsa = Tsa::start();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let config = sv0_service::timestamping::TimestampingConfig {
                url: tsa.url.clone(),
                policy: Some(POLICY.to_string()),
                client_cert: None,
                client_key: None,
                timeout_secs: Some(20),
                ca_cert: None,
            };
            let stamper = sv0_service::timestamping::Timestamper::new(config).unwrap();
            let (request, response) = runtime.block_on(stamper.stamp(note.as_bytes())).unwrap();
            std::fs::write(stem.with_extension("tsq"), request).unwrap();
            std::fs::write(stem.with_extension("tsr"), response).unwrap();
            std::fs::copy(tsa.ca(), dir.join("tsa-ca.pem")).unwrap();
        }
    }
    let golden = std::fs::read_to_string(stem.with_extension("txt"))
        .unwrap_or_else(|e| panic!("{}: {e}; run with SV0_BLESS=1 to create it", stem.display()));
    assert_eq!(golden, note, "the golden checkpoint differs");
    let (code, out) = verify(&dir, &dir.join("tsa-ca.pem"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("timestamp timestamp-000005: packs 1-5 existed no later than"), "{out}");
    // OpenSSL checks certificates at a time of its choosing: the token's own, so that the
    // golden file keeps verifying after the TSA's certificate expires.
    let trusted = sv0_signer::timestamp::trusted_from_pem(&std::fs::read(dir.join("tsa-ca.pem")).unwrap()).unwrap();
    let read = |ext: &str| std::fs::read(stem.with_extension(ext)).unwrap();
    let info = sv0_signer::timestamp::verify_token(&read("tsq"), &read("tsr"), note.as_bytes(), &trusted).unwrap();
    let at = info.gen_time_ms / 1000;
    let (ok, text) = openssl_verify_at(&dir, "timestamp-000005", &dir.join("tsa-ca.pem"), Some(at));
    assert!(ok && text.contains("Verification: OK"), "{text}");
}

/// The same on JetStream: the token is an event on the NATS log like any other, exported and
/// verified the same way.
#[test]
fn checkpoints_on_jetstream_are_timestamped_too() {
    let server = sv0_tests::nats::NatsServer::start();
    let url = server.url();
    let tsa = Tsa::start();
    let dir = TempDir::new();
    let data = dir.join("data");
    let on_nats = |args: &[&str]| {
        let mut all = vec!["--data-dir", data.to_str().unwrap(), "--log", url.as_str()];
        all.extend_from_slice(args);
        sv0(&all)
    };
    let (code, out) = on_nats(&["demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    configure(&data, &tsa);
    let (code, out) = on_nats(&["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(tsa.stamped.load(Ordering::SeqCst), 1);
    let export = dir.join("audit");
    let (code, out) = on_nats(&["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 1 RFC 3161 timestamp(s)"), "{out}");
    let (code, out) = verify(&export, &tsa.ca());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("packs 1-5 existed no later than"), "{out}");
}

/// A TSA over HTTPS that authenticates its clients: with `ca_cert` (its private root) and the
/// client certificate the token is issued; without the client certificate the handshake fails,
/// which delays the token and seals the packs as ever.
#[test]
fn a_tsa_over_https_with_client_certificates_is_asked_with_the_configured_identity() {
    let https = crate::tsa::HttpsTsa::start();
    let d = https.tsa.dir.path();
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let config = |client: bool| {
        let mut text =
            format!("[timestamping]\nurl = \"{}\"\nca_cert = \"{}\"\n", https.url, d.join("ca.pem").display());
        if client {
            text.push_str(&format!(
                "client_cert = \"{}\"\nclient_key = \"{}\"\n",
                d.join("client.pem").display(),
                d.join("client.key").display()
            ));
        }
        std::fs::write(data.join("sv0.toml"), text).unwrap();
    };
    let export = dir.join("audit");
    config(false);
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("timestamp"), "no client certificate, no token: {out}");
    config(true);
    let (code, out) = sv0_in(&data, &["tokens", "create", "--role", "viewer"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 1 RFC 3161 timestamp(s)"), "{out}");
    let (code, out) = verify(&export, &d.join("ca.pem"));
    assert_eq!(code, 0, "{out}");
}
