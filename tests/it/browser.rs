//! The review screens in a real headless Chromium, over the whole story: an analyst and an
//! approver review the HR scope, the approver approves it with an acknowledgement and the
//! release's plan, the deployment scan shows the two unintended Finance writes with their
//! remediation, the remediation rescan shows them resolved, and an auditor downloads the packs
//! and the keys from the Evidence screen and verifies them offline. Every screen is
//! photographed under `target/tmp/screenshots/`.

use std::path::{Path, PathBuf};

use sv0_tests::TempDir;

use crate::api::{Server, request, token};
use crate::webdriver::Browser;
use crate::{DEMO_SNAPSHOTS, demo_snapshot, repo_root, sv0, sv0_in};

const HR: &str = "/scopes/project:HR-Automation";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// No serious or critical accessibility violation on the page (axe-core, WCAG 2.1 A and AA).
fn accessible(browser: &Browser, screen: &str) {
    let violations = browser.serious_accessibility_violations();
    assert!(violations.is_empty(), "{screen}: {violations:#?}");
}

fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/login"));
    accessible(browser, "sign-in");
    browser.find("#token").type_text(token);
    let at = browser.find("main form button[type=submit]").click_to_navigate();
    assert_eq!(at, format!("{base}/"), "signed in, the overview opens: {}", browser.text());
}

fn sign_out(browser: &Browser, base: &str) {
    let at = browser.find("form.signout button").click_to_navigate();
    assert_eq!(at, format!("{base}/login"));
}

fn import(data: &Path, dir: &TempDir, n: usize) {
    let file = dir.join(DEMO_SNAPSHOTS[n]);
    std::fs::write(&file, demo_snapshot(DEMO_SNAPSHOTS[n])).unwrap();
    let (code, out) = sv0_in(data, &["scan", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_reviewer_approves_sees_the_unintended_finance_writes_resolved_and_an_auditor_verifies_the_packs() {
    let dir = TempDir::new();
    let data = dir.join("data");
    import(&data, &dir, 0);
    let analyst = token(&data, "contoso", &["analyst"], "ana@contoso.example");
    let approver = token(&data, "contoso", &["approver"], "riley@contoso.example");
    let auditor = token(&data, "contoso", &["auditor"], "audrey@contoso.example");
    let server = Server::start(&data, &[]);
    let base = format!("http://{}", server.addr);
    let shots = screenshots();
    let browser = Browser::start();

    // The analyst reviews: the overview, then the scope's Exposure Brief, without the form.
    sign_in(&browser, &base, &analyst);
    let overview = browser.text();
    assert!(overview.contains("project:HR-Automation") && overview.contains("not approved yet"), "{overview}");
    browser.screenshot(&shots.join("1-overview.png"));
    accessible(&browser, "1-overview.png");
    browser.find(&format!("a[href='{HR}']")).click_to_navigate();
    let brief = browser.text();
    assert!(brief.contains("Exposure Brief: project:HR-Automation"), "{brief}");
    assert!(brief.contains("Sensitive data reachable") && brief.contains("Only approvers can approve"), "{brief}");
    assert_eq!(browser.count("form.approve"), 0);
    browser.screenshot(&shots.join("2-brief-analyst.png"));
    accessible(&browser, "2-brief-analyst.png");
    sign_out(&browser, &base);

    // The approver approves with a note, one acknowledgement and the release's plan.
    sign_in(&browser, &base, &approver);
    browser.goto(&format!("{base}{HR}"));
    browser.find("#note").type_text("Reviewed with the HR platform team before the onboarding release.");
    let ack = browser.find("input[name=ack]");
    let finding = ack.property("value").as_str().unwrap().to_string();
    ack.click();
    let due = browser.find(&format!("input[id='due-{finding}']"));
    due.type_text("01312099");
    assert_eq!(due.property("value"), "2099-01-31", "the date input took the due date");
    let plan = std::fs::read_to_string(repo_root().join("crates/sv0/demo/contoso-2-plan.json")).unwrap();
    browser.find("#plan").type_text(&plan);
    browser.screenshot(&shots.join("3-approve-form.png"));
    accessible(&browser, "3-approve-form.png");
    // The plan's what-if first: the three Graph reads it adds, nothing recorded yet; the form
    // comes back filled in as it was sent.
    let at = browser.find("form.approve button.secondary").click_to_navigate();
    assert!(at.ends_with(&format!("{HR}/whatif")), "{at}");
    let whatif = browser.text();
    assert!(whatif.contains("Nothing is recorded until you approve") && whatif.contains("Microsoft Graph"), "{whatif}");
    assert_eq!(browser.find(&format!("input[id='due-{finding}']")).property("value"), "2099-01-31");
    browser.screenshot(&shots.join("3b-whatif.png"));
    accessible(&browser, "3b-whatif.png");
    let at = browser.find("form.approve button:not(.secondary)").click_to_navigate();
    assert!(at.ends_with(&format!("{HR}?approved=1")), "{at}");
    assert!(browser.text().contains("baseline version 1 is locked"));

    // The deployment scan: two unintended Finance writes, each with its remediation.
    import(&data, &dir, 1);
    browser.goto(&format!("{base}{HR}/delta"));
    let delta = browser.text();
    assert!(delta.contains("Unintended\n2") || delta.contains("Unintended 2"), "{delta}");
    assert_eq!(browser.count("#remediation ~ ol li, section[aria-labelledby=remediation] ol li"), 2, "{delta}");
    for invoices_or_ledgers in ["stfinance01/invoices", "stfinance01/ledgers"] {
        assert!(delta.contains(invoices_or_ledgers), "{delta}");
    }
    assert!(delta.contains("remove role assignment"), "the exact remediation is on the page: {delta}");
    browser.screenshot(&shots.join("4-delta.png"));
    accessible(&browser, "4-delta.png");

    // The remediation rescan verifies: the flagged paths are gone.
    import(&data, &dir, 2);
    browser.goto(&format!("{base}{HR}/delta"));
    let verified = browser.text();
    assert!(
        verified.contains("Resolved since the deployment\n2") || verified.contains("Resolved since the deployment 2"),
        "{verified}"
    );
    assert!(verified.contains("Nothing flagged"), "{verified}");
    browser.screenshot(&shots.join("5-verification.png"));
    accessible(&browser, "5-verification.png");

    // A path, hop by hop; and the brief as it stood before the deployment, marked historical.
    browser.goto(&format!("{base}{HR}"));
    browser.find("section[aria-labelledby=paths] tbody a").click_to_navigate();
    let path = browser.text();
    assert!(path.contains("Grants (the source records)") && path.contains("Egress"), "{path}");
    browser.screenshot(&shots.join("6-path.png"));
    accessible(&browser, "6-path.png");
    browser.goto(&format!("{base}{HR}?as_of=3"));
    assert!(browser.text().contains("Historical view"));
    assert_eq!(browser.count("form.approve"), 0, "history cannot be approved");
    browser.screenshot(&shots.join("7-history.png"));
    accessible(&browser, "7-history.png");
    sign_out(&browser, &base);

    // The auditor takes the packs and the keys away and verifies them offline.
    sign_in(&browser, &base, &auditor);
    browser.goto(&format!("{base}/evidence"));
    let evidence = browser.text();
    assert!(evidence.contains("Every link holds"), "{evidence}");
    browser.screenshot(&shots.join("8-evidence.png"));
    accessible(&browser, "8-evidence.png");
    let session = browser.cookie("sv0_session").expect("the session cookie");
    let cookie = format!("sv0_session={session}");
    let download = |path: &str| {
        let reply = request(&server.addr, "GET", path, &[("Cookie", cookie.as_str())], b"");
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        reply.body
    };
    let out = dir.join("downloaded");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keys.pem"), download("/evidence/keys.pem")).unwrap();
    let packs = browser.count("table tbody tr");
    assert!(packs >= 4, "scan, approval, deployment delta and verification are sealed: {evidence}");
    for index in 1..=packs {
        let body = download(&format!("/evidence/packs/{index}"));
        let pack: serde_json::Value = serde_json::from_str(&body).unwrap();
        let name = format!("{index:06}-{}.json", pack["pack_id"].as_str().unwrap());
        std::fs::write(out.join(name), body).unwrap();
    }
    let envelope: serde_json::Value = serde_json::from_str(&download("/evidence/packs/1/dsse")).unwrap();
    assert_eq!(envelope["payloadType"], sv0_signer::PAYLOAD_TYPE);
    let attestations: serde_json::Value = serde_json::from_str(&download("/evidence/attestations")).unwrap();
    assert!(attestations.as_array().is_some_and(|a| !a.is_empty()), "{attestations}");
    let checkpoint = dir.join("checkpoint.txt");
    std::fs::write(&checkpoint, download("/evidence/checkpoint")).unwrap();
    let keys = out.join("keys.pem");
    let (code, report) = sv0(&[
        "verify",
        "--packs",
        out.to_str().unwrap(),
        "--public-key",
        keys.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "the downloaded chain verifies offline: {report}");
    // The accessibility check finds what it should: an image without a text alternative and an
    // unlabelled input are serious or critical.
    browser.goto("data:text/html,<html><body><img src='x.png'><input type='text'></body></html>");
    let found = browser.serious_accessibility_violations();
    assert!(found.iter().any(|v| v.contains("image-alt")) && found.iter().any(|v| v.contains("label")), "{found:#?}");
}
