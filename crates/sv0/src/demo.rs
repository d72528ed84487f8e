//! `sv0 demo`: the assurance loop told over a bundled example tenant (Contoso), in a fresh
//! data directory that is kept afterwards so every other command can be tried on it.
//!
//! The story's times are fixed (2–3 March 2026) so that two runs produce the same log
//! contents, the same assessments and the same pack digests (signatures differ only by key).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;
use sv0_domain::assessment::ScopeAssessment;
use sv0_domain::delta::{DeltaEntry, Verification};
use sv0_domain::events::Acknowledgement;
use sv0_domain::scope::Scope;
use sv0_domain::{TenantId, Timestamp};
use sv0_projections::{Baseline, FindingRecord, FindingStatus};
use sv0_service::{Approval, ImportReport, Reviewed, Service};

use crate::backend::{AnyLog, LogTarget};
use sv0_signer::{KeyRing, entries_from_dir, verify_chain};

use crate::{EXIT_NO, EXIT_OK, render};

const INITIAL: &str = include_str!("../demo/contoso-1-initial.json");
const DEPLOYMENT: &str = include_str!("../demo/contoso-2-deployment.json");
const REMEDIATION: &str = include_str!("../demo/contoso-3-remediation.json");
/// The onboarding release's Terraform plan: the three Graph reads, nothing in Finance.
pub const PLAN: &str = include_str!("../demo/contoso-2-plan.json");

/// The scope the analyst reviews.
pub const SCOPE: &str = "project:HR-Automation";
/// The approver written into the demo's configuration.
pub const APPROVER: &str = "riley.chen@contoso.example";

fn at(text: &str) -> anyhow::Result<Timestamp> {
    Ok(Timestamp::parse(text)?)
}

/// Everything the story produced, for the JSON document and the tests.
struct Story {
    data_dir: PathBuf,
    tenant: TenantId,
    scope: Scope,
    scans: Vec<ImportReport>,
    review_paths: Vec<sv0_domain::paths::AuthorityPath>,
    review_findings: Vec<FindingRecord>,
    baselines: Vec<Baseline>,
    delta: Vec<DeltaEntry>,
    disposition: sv0_domain::disposition::Disposition,
    verification: Verification,
    remediated_paths: usize,
    packs: usize,
    head_digest: String,
    head_pack_id: String,
    chain_intact: bool,
    offline_intact: bool,
    export_dir: PathBuf,
}

/// Runs the demo in `data_dir` (which must be new or empty) or in a new temporary directory.
pub async fn run(data_dir: Option<PathBuf>, target: &LogTarget, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = prepare_dir(data_dir)?;
    let story = tell(&dir, target, if json { None } else { Some(out) }).await?;
    if json {
        print_json(&story, out)?;
    }
    Ok(if story.chain_intact && story.offline_intact { EXIT_OK } else { EXIT_NO })
}

fn prepare_dir(data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match data_dir {
        Some(dir) => dir,
        None => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            std::env::temp_dir().join(format!("sv0-demo-{}-{nanos}", std::process::id()))
        }
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty: the demo needs a new data directory so that it does not mix with other data",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("sv0.toml"), format!("[identity]\nprincipal = \"{APPROVER}\"\n"))?;
    Ok(dir)
}

/// Acknowledges every open finding of the review: entity findings by 15 March, path findings
/// by 31 March, as the analyst in the source document does.
fn acknowledgements(findings: &[FindingRecord]) -> anyhow::Result<Vec<Acknowledgement>> {
    findings
        .iter()
        .filter(|r| r.status == FindingStatus::Open)
        .map(|r| {
            let due = if r.finding.rule_id.starts_with("SV0-E") { "2026-03-15" } else { "2026-03-31" };
            Ok(Acknowledgement { finding_id: r.finding.finding_id.clone(), due: Timestamp::parse_date(due)? })
        })
        .collect()
}

fn scope_assessment(
    service: &Service<AnyLog>,
    tenant: &TenantId,
    seq: u64,
    scope: &Scope,
) -> anyhow::Result<ScopeAssessment> {
    service
        .views()
        .assessment(tenant, seq)?
        .and_then(|a| a.scan)
        .and_then(|s| s.scopes.into_iter().find(|s| s.scope == scope.canonical()))
        .context("the rescan was not assessed against the baseline")
}

/// The snapshot with the story's tenant.
fn snapshot(raw: &str, tenant: &str) -> anyhow::Result<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_str(raw)?;
    value["tenant"] = serde_json::Value::String(tenant.to_string());
    Ok(serde_json::to_vec(&value)?)
}

/// The tenant the story uses: `contoso` on a fresh embedded log; on a shared JetStream log a
/// tenant of its own per run, so that runs never meet.
fn story_tenant(target: &LogTarget) -> String {
    match target {
        LogTarget::Embedded => "contoso".to_string(),
        LogTarget::JetStream { .. } => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("contoso-{:08x}", (nanos as u64) ^ u64::from(std::process::id()))
        }
    }
}

async fn tell(dir: &Path, target: &LogTarget, mut out: Option<&mut dyn Write>) -> anyhow::Result<Story> {
    macro_rules! say {
        ($($arg:tt)*) => {
            if let Some(out) = out.as_mut() {
                writeln!(out, $($arg)*)?;
            }
        };
    }
    let mut service = crate::backend::open(dir, target).await?;
    let tenant_name = story_tenant(target);
    let scope = Scope::parse(SCOPE)?;
    let approver = crate::config::principal(service.data_dir())?;

    // 1. The scan.
    let scan1 = service.import_snapshot(&snapshot(INITIAL, &tenant_name)?, None).await?;
    let tenant = scan1.tenant.clone();
    let all_paths = scan1.scan.as_ref().map_or(0, |s| s.paths_total);
    say!("SV0 demo: is it safe to deploy this?  (tenant {tenant}, data in {})", dir.display());
    say!("");
    say!(
        "① Scan imported: {} ({} entities) → {all_paths} authority paths in the tenant",
        scan1.scan_id,
        scan1.entity_count
    );
    say!("");

    // 2. Review and approval.
    let review_paths = service.paths(&tenant, Some(&scope), None).await?;
    let review_findings: Vec<FindingRecord> =
        service.findings(&tenant, Some(&scope))?.into_iter().filter(|r| r.status == FindingStatus::Open).collect();
    say!("② Review of scope {scope}: {} paths, {} open findings", review_paths.len(), review_findings.len());
    say!("{}", render::paths(&review_paths));
    let scanned_at = service.views().tenant_state(&tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
    say!("{}", render::findings(&review_findings, scanned_at));
    let acks = acknowledgements(&review_findings)?;
    let reviewed = service.posture(&tenant, &scope)?;
    // The release's plan, judged before anything is deployed; its additions are the intent.
    let whatif = service.whatif(&tenant, &scope, PLAN.as_bytes())?;
    say!(
        "   What-if of the release's plan ({}, {}): {} new path(s) predicted, nothing recorded",
        whatif.plan_format,
        whatif.plan_digest,
        whatif.entries.iter().filter(|e| e.entry.kind.is_new_path()).count()
    );
    for e in &whatif.entries {
        say!(
            "   • {} → {} ({}): {}",
            e.entry.workload.name,
            e.entry.destination.name,
            render::permissions(&e.entry.permissions),
            e.caused_by.join(", ")
        );
    }
    let intent = sv0_service::whatif::planned_intent(&whatif);
    let declared = intent.len();
    let v1 = service
        .approve_with(
            &tenant,
            &scope,
            Approval {
                note: "Reviewed with the HR platform team before the onboarding release; hygiene findings accepted with owners and due dates. The release adds three Microsoft Graph reads, nothing else.".to_string(),
                acknowledged: acks,
                intent: Some(intent),
                posture: Some(Reviewed { digest: reviewed.digest.clone(), position: Some(reviewed.position) }),
                by: sv0_domain::events::Actor::host(&approver),
                plan_digest: Some(whatif.plan_digest.clone()),
                force: false,
            },
            at("2026-03-02T10:15:00Z")?,
        )
        .await?;
    say!(
        "   Approved: baseline v{} locked by {} at {} ({} paths, {} findings acknowledged, the plan's {declared} additions declared as intent)",
        v1.baseline.version,
        v1.baseline.approver,
        v1.baseline.approved_at,
        v1.baseline.paths.len(),
        v1.baseline.acknowledged.len()
    );
    say!("   Posture approved: {}@{}", reviewed.digest, reviewed.position);
    say!("");

    // 3. The deployment's rescan and its delta.
    let scan2 = service.import_snapshot(&snapshot(DEPLOYMENT, &tenant_name)?, None).await?;
    let delta_report = service.delta(&tenant, &scope)?;
    let new_paths = delta_report.entries.iter().filter(|e| e.kind.is_new_path()).count();
    let flagged: Vec<&DeltaEntry> = delta_report.entries.iter().filter(|e| e.flagged).collect();
    say!(
        "③ Deployment rescan (contoso/hr-agents run 8812 → production): {new_paths} new authority paths against baseline v{}, {} flagged",
        delta_report.baseline_version,
        flagged.len()
    );
    say!("{}", render::delta(&delta_report.entries));
    say!("   Disposition: {}", delta_report.disposition.decision);
    for reason in &delta_report.disposition.reasons {
        say!("   • {} ({}): {}", reason.rule, reason.decision, reason.text);
    }
    let undeclared: Vec<FindingRecord> = service
        .findings(&tenant, Some(&scope))?
        .into_iter()
        .filter(|r| r.status == FindingStatus::Open && sv0_domain::findings::from_delta(&r.finding))
        .collect();
    say!("   Findings opened for what the release did not declare:");
    for r in &undeclared {
        say!(
            "   • {} {} ({}): {}",
            r.finding.finding_id,
            r.finding.rule_id,
            r.finding.severity.as_str(),
            r.finding.summary
        );
    }
    say!("   Remediation (SV0 is read-only: make these changes in Azure, then rescan):");
    for entry in &flagged {
        for action in &entry.remediation_actions {
            say!("   • {}", action.text);
        }
    }
    say!("");
    let remediated_paths = flagged.len();

    // 4. The remediation rescan, its verification, and the new baseline.
    let scan3 = service.import_snapshot(&snapshot(REMEDIATION, &tenant_name)?, None).await?;
    let assessed = scope_assessment(&service, &tenant, scan3.last_seq, &scope)?;
    let verification = assessed.verification.context("the remediation rescan carries no verification")?;
    let remaining = service.delta(&tenant, &scope)?;
    say!(
        "④ Remediation rescan: {} flagged paths gone; verification: {}",
        verification.resolved.len(),
        verification.summary
    );
    say!("{}", render::delta(&remaining.entries));
    let reviewed = service.posture(&tenant, &scope)?;
    let v2 = service
        .approve_with(
            &tenant,
            &scope,
            Approval {
                note: "Graph profile read (User.Read.All, ProfilePhoto.Read.All, People.Read.All) is what the onboarding release declared; Finance access removed and verified.".to_string(),
                acknowledged: Vec::new(),
                intent: None,
                posture: Some(Reviewed { digest: reviewed.digest, position: Some(reviewed.position) }),
                by: sv0_domain::events::Actor::host(&approver),
                plan_digest: None,
                force: false,
            },
            at("2026-03-03T16:45:00Z")?,
        )
        .await?;
    say!(
        "   Approved: baseline v{} locked by {} at {} ({} paths)",
        v2.baseline.version,
        v2.baseline.approver,
        v2.baseline.approved_at,
        v2.baseline.paths.len()
    );
    say!("");

    // 5. Evidence.
    let verdicts = service.verify(Some(&tenant), sv0_service::VerifyMode::Replay).await?.chains;
    let report = verdicts.into_iter().next().context("no pack chain was recorded")?.result;
    let chain_intact = report.is_ok();
    let export_dir = dir.join("export");
    let (packs, _) = service.export_packs(&tenant, &export_dir).await?;
    let ring = KeyRing::from_pem_file(&export_dir.join("public-key.pem"))?;
    let offline = verify_chain(&entries_from_dir(&export_dir)?, &ring);
    let offline_intact = offline.is_ok();
    let head = service.views().pack_head(&tenant)?.context("no pack was sealed")?;
    let baselines = service.views().baseline_history(&tenant, &scope)?;
    let mut table = render::table(&["Pack", "Kind", "Log positions", "Digest"]);
    for (n, sealed) in service.views().packs(&tenant)?.iter().enumerate() {
        let body: serde_json::Value = serde_json::from_str(&sealed.body)?;
        table.add_row(vec![
            format!("{} {}", n + 1, sealed.pack_id),
            body["kind"].as_str().unwrap_or("-").to_string(),
            format!("{}..{}", body["log_range"]["from"], body["log_range"]["to"]),
            sealed.digest.clone(),
        ]);
    }
    say!("⑤ Evidence: {packs} packs sealed, SHA-256 chained and ed25519-signed");
    say!("{table}");
    match (&report, &offline) {
        (Ok(_), Ok(offline)) => say!(
            "   Verified: the chain on the log and the {} exported files (offline, public key only) are intact",
            offline.packs
        ),
        (Err(broken), _) | (_, Err(broken)) => say!("   Verification FAILED at {broken}"),
    }
    say!("");
    let on = match target {
        LogTarget::Embedded => format!("--data-dir {}", dir.display()),
        LogTarget::JetStream { url, .. } => format!("--data-dir {} --log {url} --tenant {tenant}", dir.display()),
    };
    say!("Try next:");
    say!("  sv0 {on} paths --scope {SCOPE}");
    say!("  sv0 {on} paths --scope {SCOPE} --as-of {}", v1.seq);
    say!("  sv0 {on} verify");
    say!("  sv0 verify --packs {0} --public-key {0}/public-key.pem", export_dir.display());
    if out.is_some() {
        // The review screens: a token to sign in with, as the approver (who may also read the
        // evidence), for 30 days.
        let roles = vec![sv0_domain::access::Role::Approver, sv0_domain::access::Role::Auditor];
        let expires = Timestamp::now().add_days(30);
        let host = sv0_domain::events::Actor::host(&approver);
        let issued = service.issue_token(&tenant, "demo-reviewer", &approver, roles, Some(expires), &host).await?;
        say!("");
        say!("Review screens: run `sv0 {on} serve`, open http://127.0.0.1:8080/ and sign in with this token");
        say!("(approver and auditor, for 30 days; `sv0 {on} tokens revoke demo-reviewer` ends it):");
        say!("  {}", issued.token);
    }

    Ok(Story {
        data_dir: dir.to_path_buf(),
        tenant,
        scope,
        scans: vec![scan1, scan2, scan3],
        review_paths,
        review_findings,
        baselines,
        delta: delta_report.entries,
        disposition: delta_report.disposition,
        verification,
        remediated_paths,
        packs,
        head_digest: head.digest,
        head_pack_id: head.pack_id,
        chain_intact,
        offline_intact,
        export_dir,
    })
}

fn print_json(story: &Story, out: &mut dyn Write) -> anyhow::Result<()> {
    let scans: Vec<_> = story
        .scans
        .iter()
        .map(|s| {
            json!({
                "scan_id": s.scan_id,
                "trigger": s.scan.as_ref().and_then(|r| r.trigger),
                "observed_at": s.scan.as_ref().and_then(|r| r.observed_at),
                "log_positions": [s.first_seq, s.last_seq],
                "paths_total": s.scan.as_ref().map(|r| r.paths_total),
            })
        })
        .collect();
    let baselines: Vec<_> = story
        .baselines
        .iter()
        .map(|b| {
            json!({
                "scope": b.scope,
                "version": b.version,
                "approver": b.approver,
                "approved_at": b.approved_at,
                "note": b.note,
                "paths": b.paths.len(),
                "acknowledged": b.acknowledged,
                "log_position": b.approval_seq,
                "posture_digest": b.posture_digest,
                "intent": b.intent,
                "plan_digest": b.plan_digest,
            })
        })
        .collect();
    let document = json!({
        "tenant": story.tenant,
        "data_dir": story.data_dir,
        "scope": story.scope,
        "scans": scans,
        "review": {
            "paths": story.review_paths,
            "findings": story.review_findings,
        },
        "baseline_versions": baselines,
        "delta": story.delta,
        "disposition": story.disposition,
        "remediated_paths": story.remediated_paths,
        "verification": story.verification,
        "packs": {
            "count": story.packs,
            "head_digest": story.head_digest,
            "head_pack_id": story.head_pack_id,
            "chain_intact": story.chain_intact,
            "offline_verified": story.offline_intact,
            "export_dir": story.export_dir,
        },
    });
    crate::output::print_json(out, &document)
}
