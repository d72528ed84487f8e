//! `sv0 gate`: the deployment gate for GitLab or any CI. It asks a running `sv0 serve` for a
//! sync of the deployment, polls it, prints a Markdown summary, writes a JUnit report if asked,
//! and exits 0 when the scope is approved, 1 when it needs review or is rejected (or the scan
//! was held by a deletion breaker), 2 on any error or when the wait runs out.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::load::{Connection, authority, get_request, post_json};
use crate::{EXIT_ERROR, EXIT_NO, EXIT_OK, GateArgs};

/// The token: from `--token-file`, else from `SV0_TOKEN`; never from the command line.
fn token(args: &GateArgs) -> anyhow::Result<String> {
    let token = match &args.token_file {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
        None => std::env::var("SV0_TOKEN").context("give the API token in SV0_TOKEN or --token-file FILE")?,
    };
    Ok(token.trim().to_string())
}

async fn call(authority: &str, request: &[u8]) -> anyhow::Result<(u16, Value)> {
    let mut connection = Connection::open(authority).await?;
    let (status, body) = connection.get(request).await?;
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "detail": String::from_utf8_lossy(&body) }));
    Ok((status, value))
}

/// Runs the gate.
pub async fn run(args: &GateArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    match gate(args, out).await {
        Ok(code) => Ok(code),
        Err(e) => {
            writeln!(out, "## SV0 deployment gate: error\n\n{e:#}")?;
            if let Some(file) = &args.junit {
                std::fs::write(file, junit(args, "error", &format!("{e:#}")))
                    .with_context(|| format!("cannot write {}", file.display()))?;
            }
            Ok(EXIT_ERROR)
        }
    }
}

async fn gate(args: &GateArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let authority = authority(&args.url)?;
    let token = token(args)?;
    let request = json!({
        "scope": args.scope,
        "environment": args.environment,
        "repository": args.repository,
        "run_id": args.run_id,
        "commit": args.commit,
        "targets": args.targets,
        "trigger": if args.after_deployment { "deployment" } else { "pre_deployment" },
    });
    if let Some(plan) = &args.plan {
        return whatif_gate(args, &authority, &token, plan, out).await;
    }
    let (status, started) =
        call(&authority, &post_json(&authority, "/api/v1/syncs", &token, &serde_json::to_vec(&request)?)).await?;
    if status != 202 {
        bail!("POST /api/v1/syncs answered {status}: {}", started["detail"].as_str().unwrap_or_default());
    }
    let id = started["sync_id"].as_str().context("the sync has no id")?.to_string();
    let deadline = Instant::now() + args.wait;
    let sync = loop {
        let (status, sync) = call(&authority, &get_request(&authority, &format!("/api/v1/syncs/{id}"), &token)).await?;
        if status != 200 {
            bail!("GET /api/v1/syncs/{id} answered {status}: {}", sync["detail"].as_str().unwrap_or_default());
        }
        if !matches!(sync["status"].as_str(), Some("pending" | "running")) {
            break sync;
        }
        if Instant::now() >= deadline {
            bail!("sync {id} did not finish within {}", humantime::format_duration(args.wait));
        }
        tokio::time::sleep(
            args.poll.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(50)),
        )
        .await;
    };
    let (verdict, code) = match (sync["status"].as_str(), sync["disposition"]["decision"].as_str()) {
        (Some("completed"), Some("approved")) => ("approved", EXIT_OK),
        (Some("completed"), Some(decision)) => (decision, EXIT_NO),
        (Some("completed"), None) => bail!(
            "sync {id} completed without a disposition: {}",
            sync["error"].as_str().unwrap_or("the scope has no approved baseline")
        ),
        (Some("quarantined"), _) => ("quarantined", EXIT_NO),
        (status, _) => {
            bail!("sync {id} {}: {}", status.unwrap_or("ended"), sync["error"].as_str().unwrap_or("no reason given"))
        }
    };
    let summary = markdown(args, &sync, verdict);
    write!(out, "{summary}")?;
    if let Some(file) = &args.junit {
        std::fs::write(file, junit(args, verdict, &summary))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(code)
}

/// A query-string value, percent-encoded (scopes hold `:`, `=` and `,`).
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The gate over a plan: the server's what-if of it decides.
async fn whatif_gate(
    args: &GateArgs,
    authority: &str,
    token: &str,
    plan: &std::path::Path,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let bytes = std::fs::read(plan).with_context(|| format!("cannot read the plan {}", plan.display()))?;
    let path = format!("/api/v1/whatif?scope={}", query_value(&args.scope));
    let (status, report) = call(authority, &post_json(authority, &path, token, &bytes)).await?;
    if status != 200 {
        bail!("POST /api/v1/whatif answered {status}: {}", report["detail"].as_str().unwrap_or_default());
    }
    let decision = report["disposition"]["decision"].as_str().context("the what-if has no disposition")?.to_string();
    let code = if decision == "approved" { EXIT_OK } else { EXIT_NO };
    let summary = whatif_markdown(args, &report, &decision);
    write!(out, "{summary}")?;
    if let Some(file) = &args.junit {
        std::fs::write(file, junit(args, &decision, &summary))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(code)
}

/// The Markdown of a plan's what-if.
fn whatif_markdown(args: &GateArgs, report: &Value, decision: &str) -> String {
    let mut text = format!("## SV0 deployment gate (plan): {decision}\n\n");
    let against = match report["baseline_version"].as_u64() {
        Some(v) => format!("baseline v{v}"),
        None => "its paths now (no baseline)".to_string(),
    };
    text.push_str(&format!(
        "Scope `{}` → environment `{}` · {} plan `{}` · against {against} · nothing recorded\n\n",
        args.scope,
        args.environment,
        report["plan_format"].as_str().unwrap_or("-"),
        report["plan_digest"].as_str().unwrap_or("-"),
    ));
    let entries = report["entries"].as_array().cloned().unwrap_or_default();
    if !entries.is_empty() {
        text.push_str(
            "| change | workload | identity | destination | permissions | intent | caused by |\n|---|---|---|---|---|---|---|\n",
        );
        for e in &entries {
            let permissions: Vec<&str> =
                e["permissions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let caused: Vec<&str> = e["caused_by"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            text.push_str(&format!(
                "| {}{} | {} | {} | {} | {} | {} | {} |\n",
                if e["flagged"] == true { "⚠ " } else { "" },
                e["kind"].as_str().unwrap_or("-"),
                e["workload"]["name"].as_str().unwrap_or("-"),
                e["identity"]["name"].as_str().unwrap_or("-"),
                e["destination"]["name"].as_str().unwrap_or("-"),
                permissions.join("/"),
                e["intent"].as_str().unwrap_or("-"),
                caused.join(", ")
            ));
        }
        text.push('\n');
    }
    if let Some(skipped) = report["skipped"].as_array().filter(|s| !s.is_empty()) {
        text.push_str("### Not modelled (not predicted)\n\n");
        for s in skipped {
            text.push_str(&format!(
                "- `{}` ({}): {}\n",
                s["address"].as_str().unwrap_or("-"),
                s["resource_type"].as_str().unwrap_or("-"),
                s["reason"].as_str().unwrap_or("-")
            ));
        }
        text.push('\n');
    }
    why(&mut text, &report["disposition"]);
    text
}

/// The "Why" section of a disposition's reasons, when it gives any.
fn why(text: &mut String, disposition: &Value) {
    let Some(reasons) = disposition["reasons"].as_array().filter(|r| !r.is_empty()) else { return };
    text.push_str("### Why\n\n");
    for reason in reasons {
        text.push_str(&format!(
            "- **{}** ({}): {}\n",
            reason["decision"].as_str().unwrap_or("-"),
            reason["rule"].as_str().unwrap_or("-"),
            reason["text"].as_str().unwrap_or("-")
        ));
    }
    text.push('\n');
}

/// The Markdown a CI job log (or a merge request) shows.
fn markdown(args: &GateArgs, sync: &Value, verdict: &str) -> String {
    let mut text = format!("## SV0 deployment gate: {verdict}\n\n");
    text.push_str(&format!(
        "Scope `{}` → environment `{}` · sync `{}` · scan `{}`\n\n",
        args.scope,
        args.environment,
        sync["sync_id"].as_str().unwrap_or("-"),
        sync["scan_id"].as_str().unwrap_or("-")
    ));
    let delta = &sync["delta"];
    if delta.is_object() {
        text.push_str(&format!(
            "| against baseline v{} | |\n|---|---:|\n| changes | {} |\n| new paths | {} |\n| flagged for review | {} |\n| matches the baseline | {} |\n\n",
            delta["baseline_version"],
            delta["changes"],
            delta["new_paths"],
            delta["flagged"],
            if delta["matches_baseline"].as_bool() == Some(true) { "yes" } else { "no" }
        ));
        if let Some(summary) = delta["summary"].as_str() {
            text.push_str(&format!("{summary}\n\n"));
        }
    }
    why(&mut text, &sync["disposition"]);
    if let Some(actions) = delta["remediation"].as_array().filter(|r| !r.is_empty()) {
        text.push_str("### Remediation\n\n");
        for action in actions {
            text.push_str(&format!("- {}\n", action.as_str().unwrap_or("-")));
        }
        text.push('\n');
    }
    if verdict == "quarantined" {
        text.push_str(&format!(
            "The scan was held by a deletion breaker: {}. Release it with `sv0 scan release`.\n",
            sync["error"].as_str().unwrap_or("-")
        ));
    }
    text
}

/// A JUnit report: one case, failing unless the scope is approved.
fn junit(args: &GateArgs, verdict: &str, detail: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let name = escape(&format!("{} in {}", args.scope, args.environment));
    let outcome = match verdict {
        "approved" => String::new(),
        "error" => format!("<error message=\"sv0 gate failed\">{}</error>", escape(detail)),
        other => format!("<failure message=\"{}\">{}</failure>", escape(other), escape(detail)),
    };
    let failures = usize::from(!matches!(verdict, "approved" | "error"));
    let errors = usize::from(verdict == "error");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sv0 gate\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\">\n  <testsuite name=\"sv0 deployment gate\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\">\n    <testcase classname=\"sv0.gate\" name=\"{name}\">{outcome}</testcase>\n  </testsuite>\n</testsuites>\n"
    )
}
