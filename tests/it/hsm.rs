//! Signing keys in a PKCS #11 token, against SoftHSM2 (Debian's `softhsm2`, installed by the
//! test command when absent). Each test initialises its own token in a temporary token
//! directory and runs `sv0` as a separate process, so that the module's configuration
//! (`SOFTHSM2_CONF`) and its one-per-process initialisation stay the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use sv0_tests::TempDir;

/// A SoftHSM2 token directory with one initialised token.
pub struct SoftHsm {
    /// Holds the token directory for the test's life.
    pub _dir: TempDir,
    pub conf: PathBuf,
    pub module: PathBuf,
    /// The slot SoftHSM2 reassigned the initialised token to.
    pub slot: u64,
}

pub const TOKEN: &str = "sv0-test";
pub const PIN: &str = "246810";

impl SoftHsm {
    pub fn start() -> SoftHsm {
        let module = std::env::var_os("SV0_SOFTHSM_MODULE").map(PathBuf::from).unwrap_or_else(|| {
            ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .expect("SoftHSM2 is installed (ops/test.sh installs it), or SV0_SOFTHSM_MODULE names it")
        });
        let dir = TempDir::new();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        let output = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "13579246"])
            .output()
            .expect("softhsm2-util runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        let slot = said
            .split("reassigned to slot ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no slot in softhsm2-util's answer: {said}"));
        SoftHsm { _dir: dir, conf, module, slot }
    }

    /// `sv0 --data-dir DATA ARGS` as its own process, with the token's configuration and `pin`
    /// in `SV0_TEST_PIN`; returns the exit code and its standard output and error.
    pub fn sv0(&self, data: &Path, pin: &str, args: &[&str]) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_sv0"))
            .env("SOFTHSM2_CONF", &self.conf)
            .env("SV0_TEST_PIN", pin)
            .env("SV0_PRINCIPAL", "pat.admin@contoso.example")
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .output()
            .expect("sv0 runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }

    /// `[signing]` naming this token, the PIN from `SV0_TEST_PIN`.
    pub fn configure(&self, data: &Path, token: &str) {
        std::fs::write(
            data.join("sv0.toml"),
            format!(
                "[signing]\npkcs11_module = \"{}\"\ntoken_label = \"{token}\"\nkey_label = \"sv0-pack-signing\"\npin_env = \"SV0_TEST_PIN\"\n",
                self.module.display()
            ),
        )
        .unwrap();
    }
}

fn snapshot(name: &str) -> String {
    crate::repo_root().join("crates/sv0/demo").join(name).to_str().unwrap().to_string()
}

fn packs_verified(hsm: &SoftHsm, data: &Path, export: &Path) -> String {
    let _ = std::fs::remove_dir_all(export);
    let (code, out) = hsm.sv0(data, PIN, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // Offline, with only the exported public keys: no token, no data directory.
    let key = export.join("public-key.pem");
    let (code, out) =
        crate::sv0(&["verify", "--packs", export.to_str().unwrap(), "--public-key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    out
}

/// An installation moves its chain from a key file into a token by rotating (the file is then
/// gone), seals in the token, rotates again within it, and every pack verifies offline with the
/// exported public keys. A wrong PIN, a token that is not there and a module that cannot load
/// each fail with a clear error and seal nothing.
#[test]
fn packs_are_sealed_by_a_key_in_softhsm_and_rotate_within_it() {
    let hsm = SoftHsm::start();
    let dir = TempDir::new();
    let data = dir.join("data");
    let keys = data.join("keys");
    let export = dir.join("audit");
    // A key file first, as every installation before [signing].
    let (code, out) = hsm.sv0(&data, PIN, &["scan", "import", &snapshot("contoso-1-initial.json")]);
    assert_eq!(code, 0, "{out}");
    assert!(keys.join("signing.key").exists());

    hsm.configure(&data, TOKEN);
    // Until a rotation, the key file stays current.
    let (code, out) = hsm.sv0(&data, PIN, &["keys", "rotate", "--reason", "move the key into the HSM"]);
    assert_eq!(code, 0, "{out}");
    assert!(!keys.join("signing.key").exists(), "the retired key file is gone");
    let first_token_key = std::fs::read_to_string(keys.join("signing.pkcs11")).unwrap();
    assert_eq!(first_token_key.trim().len(), 32, "a 16-byte CKA_ID, hex: {first_token_key}");
    assert!(!keys.join("signing.next.pkcs11").exists());

    let (code, out) = hsm.sv0(&data, PIN, &["scan", "import", &snapshot("contoso-2-deployment.json")]);
    assert_eq!(code, 0, "{out}");
    let out = packs_verified(&hsm, &data, &export);
    assert!(out.contains("chain intact: 2 pack(s)"), "{out}");
    let ring = sv0_signer::KeyRing::from_pem_file(&export.join("public-key.pem")).unwrap();
    assert_eq!(ring.keys().count(), 2, "the file key for pack 1, the token key from pack 2");
    let second = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("000002-"))
        .unwrap();
    let second: sv0_signer::PackFile = serde_json::from_slice(&std::fs::read(second).unwrap()).unwrap();
    let token_public = std::fs::read_to_string(keys.join("signing.pub.pem")).unwrap();
    let token_public =
        <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&token_public)
            .unwrap();
    assert_eq!(second.key_id, sv0_signer::key_id(&token_public), "pack 2 is signed by the token's key");

    // A rotation within the token: a new key pair generated in it.
    let (code, out) = hsm.sv0(&data, PIN, &["keys", "rotate", "--reason", "quarterly"]);
    assert_eq!(code, 0, "{out}");
    let second_token_key = std::fs::read_to_string(keys.join("signing.pkcs11")).unwrap();
    assert_ne!(first_token_key, second_token_key);
    // The retired key was destroyed in the token: naming it again signs nothing.
    std::fs::write(keys.join("signing.pkcs11"), &first_token_key).unwrap();
    let (code, out) = hsm.sv0(&data, PIN, &["scan", "import", &snapshot("contoso-3-remediation.json")]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("holds no ed25519 private key") && out.contains("nothing was appended"), "{out}");
    std::fs::write(keys.join("signing.pkcs11"), &second_token_key).unwrap();
    let (code, out) = hsm.sv0(&data, PIN, &["scan", "import", &snapshot("contoso-3-remediation.json")]);
    assert_eq!(code, 0, "{out}");
    let out = packs_verified(&hsm, &data, &export);
    assert!(out.contains("chain intact: 3 pack(s)"), "{out}");

    // A wrong PIN: a clear error, and no pack.
    let later = dir.join("later.json");
    let text = std::fs::read_to_string(snapshot("contoso-3-remediation.json"))
        .unwrap()
        .replace("2026-03-03T16:30:00Z", "2026-03-04T16:30:00Z")
        .replace("\"remediation\"", "\"scheduled\"");
    std::fs::write(&later, text).unwrap();
    let (code, out) = hsm.sv0(&data, "000000", &["scan", "import", later.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the token refused the PIN") && out.contains("nothing was appended"), "{out}");
    // A token that is not there.
    hsm.configure(&data, "no-such-token");
    let (code, out) = hsm.sv0(&data, PIN, &["keys", "rotate", "--reason", "again"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no initialised token labelled \"no-such-token\""), "{out}");
    // A module that cannot be loaded.
    std::fs::write(
        data.join("sv0.toml"),
        "[signing]\npkcs11_module = \"/nonexistent/libpkcs11.so\"\ntoken_label = \"sv0-test\"\npin_env = \"SV0_TEST_PIN\"\n",
    )
    .unwrap();
    let (code, out) = hsm.sv0(&data, PIN, &["keys", "rotate", "--reason", "again"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cannot load the PKCS #11 module /nonexistent/libpkcs11.so"), "{out}");
    let out = packs_verified(&hsm, &data, &export);
    assert!(out.contains("chain intact: 3 pack(s)"), "nothing was sealed by the failures: {out}");
    assert_eq!(std::fs::read_to_string(keys.join("signing.pkcs11")).unwrap(), second_token_key);

    // With the token and the right PIN again, the scan is imported and sealed.
    hsm.configure(&data, TOKEN);
    let (code, out) = hsm.sv0(&data, PIN, &["scan", "import", later.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let out = packs_verified(&hsm, &data, &export);
    assert!(out.contains("chain intact: 4 pack(s)"), "{out}");

    // The PIN from a file: one others can read is refused, an owner-only one works.
    let pin_file = dir.join("token.pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let config = format!(
        "[signing]\npkcs11_module = \"{}\"\ntoken_label = \"{TOKEN}\"\npin_file = \"{}\"\n",
        hsm.module.display(),
        pin_file.display()
    );
    std::fs::write(data.join("sv0.toml"), config).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = hsm.sv0(&data, "", &["keys", "rotate", "--reason", "pin from a file"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("can be read by other users"), "{out}");
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = hsm.sv0(&data, "", &["keys", "rotate", "--reason", "pin from a file"]);
    assert_eq!(code, 0, "{out}");
    let third_token_key = std::fs::read_to_string(keys.join("signing.pkcs11")).unwrap();
    assert_ne!(third_token_key, second_token_key);

    // The token by slot id instead of label; a slot without a token is named.
    for (slot, ok) in [(hsm.slot, true), (hsm.slot.wrapping_add(1), false)] {
        std::fs::write(
            data.join("sv0.toml"),
            format!(
                "[signing]\npkcs11_module = \"{}\"\nslot = {slot}\npin_env = \"SV0_TEST_PIN\"\n",
                hsm.module.display()
            ),
        )
        .unwrap();
        let (code, out) = hsm.sv0(&data, PIN, &["keys", "rotate", "--reason", "by slot"]);
        assert_eq!(code == 0, ok, "{out}");
        if !ok {
            assert!(out.contains(&format!("no initialised token in slot {slot}")), "{out}");
        }
    }
    let out = packs_verified(&hsm, &data, &export);
    assert!(out.contains("chain intact: 4 pack(s)"), "{out}");
}
