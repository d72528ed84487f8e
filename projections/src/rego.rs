//! Customer disposition policies in Rego (the `regorus` engine). The input document is what
//! `sv0 export opa-input` prints; the policy (package `sv0`) defines `decision` and optionally
//! `reasons`. A policy that fails, decides nothing or decides something else than the three
//! decisions gives `rejected` with the error as its reason: never an approval. The engine is
//! built without clock, network or randomness builtins, so evaluation in the fold is
//! deterministic.
//!
//! A policy is a tenant admin's code, so it never runs in SV0's own process: each evaluation
//! runs in a worker process (the `sv0` executable with `__rego-eval`) that caps its own address
//! space and CPU time, and that the caller kills at a wall-clock deadline. A policy that
//! allocates without end (`numbers.range(0, 100000000000)`) or loops costs one worker, never
//! the server, the fold or another tenant, and is a failed policy: `rejected`, with the reason.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sv0_domain::TenantId;
use sv0_domain::assessment::PostureSummary;
use sv0_domain::delta::{DeltaEntry, Verification};
use sv0_domain::disposition::{Decision, Disposition, Reason};
use sv0_domain::intent::IntentStatus;
use sv0_domain::paths::AuthorityPath;
use sv0_domain::policy::{RegoMode, RegoPolicy};

use crate::records::{FindingRecord, FindingStatus};

/// The rule id of reasons a policy gives without one, and of policy errors.
pub const POLICY_RULE: &str = "policy";

/// What a scope's disposition is decided from.
pub struct DispositionInput<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// Canonical scope text.
    pub scope: &'a str,
    /// The baseline version compared against.
    pub baseline_version: u32,
    /// The scope's paths now.
    pub paths: &'a [AuthorityPath],
    /// The scope's findings (open ones are passed to the policy).
    pub findings: &'a [FindingRecord],
    /// The delta against the baseline.
    pub delta: &'a [DeltaEntry],
    /// The verification, for a remediation rescan.
    pub verification: Option<&'a Verification>,
    /// The built-in rules' disposition (with the rollback advice).
    pub builtin: &'a Disposition,
}

/// The input document a Rego policy sees.
pub fn input_document(input: &DispositionInput<'_>) -> Value {
    let open: Vec<&FindingRecord> = input.findings.iter().filter(|r| r.status == FindingStatus::Open).collect();
    json!({
        "tenant": input.tenant,
        "scope": input.scope,
        "baseline_version": input.baseline_version,
        "posture": PostureSummary::of(input.paths),
        "paths": input.paths,
        "findings": open,
        "delta": input.delta,
        "verification": input.verification,
        "rollback": input.builtin.rollback,
        "builtin": { "decision": input.builtin.decision, "reasons": input.builtin.reasons },
    })
}

/// Checks that a policy compiles, for `sv0 policy set`: a bad policy is refused before it
/// reaches the log.
pub fn check(source: &str) -> Result<(), String> {
    let mut engine = regorus::Engine::new();
    let package = engine.add_policy("policy.rego".to_string(), source.to_string()).map_err(|e| e.to_string())?;
    if package != "data.sv0" {
        return Err(format!("the policy's package is {package}; it must be `package sv0`"));
    }
    Ok(())
}

/// The built-in rules' disposition of a delta, with the rollback advice.
pub fn builtin(delta: &[DeltaEntry], paths: &[AuthorityPath], verification: Option<&Verification>) -> Disposition {
    sv0_domain::disposition::decide(delta, sv0_domain::delta::rollback(delta, paths), verification)
}

/// How the reason of a disposition whose Rego policy failed begins.
const FAILED: &str = "the Rego policy failed, so nothing is approved: ";

/// Whether a disposition is that of a Rego policy that failed to decide (an error, or a breach
/// of the worker's limits, which may not recur): not a result to keep for a later scan.
pub(crate) fn policy_failed(disposition: &Disposition) -> bool {
    disposition.reasons.iter().any(|r| r.rule == POLICY_RULE && r.text.starts_with(FAILED))
}

/// The disposition under a tenant's Rego policy, or the built-in one when it has none.
pub fn disposition(policy: Option<&RegoPolicy>, input: &DispositionInput<'_>) -> Disposition {
    let Some(policy) = policy else { return input.builtin.clone() };
    let decided = match evaluate(&policy.source, &input_document(input)) {
        Ok(decided) => decided,
        Err(error) => {
            return Disposition {
                decision: Decision::Rejected,
                reasons: vec![Reason {
                    rule: POLICY_RULE.to_string(),
                    decision: Decision::Rejected,
                    text: format!("{FAILED}{error}"),
                    path_ids: Vec::new(),
                }],
                rollback: input.builtin.rollback.clone(),
            };
        }
    };
    match policy.mode {
        RegoMode::Replace => {
            let (decision, mut reasons) = decided;
            // Even an approved replacement never approves reach into sensitive data nobody
            // declared: that stays a person's decision.
            let sensitive: Vec<String> = input
                .delta
                .iter()
                .filter(|e| e.flagged && e.severity.is_some() && e.intent != Some(IntentStatus::Intended))
                .map(|e| e.path_id.clone())
                .collect();
            if decision == Decision::Approved && !sensitive.is_empty() {
                reasons.push(Reason {
                    rule: POLICY_RULE.to_string(),
                    decision: Decision::RequiresReview,
                    text: format!(
                        "the policy approved, but a replacing policy cannot approve flagged reach into sensitive data ({} path(s)): a person reviews it",
                        sensitive.len()
                    ),
                    path_ids: sensitive,
                });
                return Disposition {
                    decision: Decision::RequiresReview,
                    reasons,
                    rollback: input.builtin.rollback.clone(),
                };
            }
            Disposition { decision, reasons, rollback: input.builtin.rollback.clone() }
        }
        RegoMode::Extend => {
            let (decision, extra) = decided;
            let mut reasons = input.builtin.reasons.clone();
            reasons.extend(extra);
            Disposition {
                decision: decision.max(input.builtin.decision),
                reasons,
                rollback: input.builtin.rollback.clone(),
            }
        }
    }
}

/// The argument that makes the `sv0` executable a Rego worker.
pub const WORKER_ARG: &str = "__rego-eval";

/// Largest answer read from a worker.
const MAX_WORKER_OUTPUT: u64 = 16 * 1024 * 1024;

/// How long and how much memory one evaluation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time, from the worker's start to its answer.
    pub time: Duration,
    /// Address space of the worker, in bytes.
    pub memory: u64,
}

impl Limits {
    /// For a request of `bytes` (policy and input document): 2 s and 512 MiB for the policy,
    /// plus what reading the input needs (40 ms per MB, and 16 bytes of memory per byte: the
    /// engine's values are several times the JSON), at most 60 s and 16 GiB.
    pub fn for_request(bytes: usize) -> Limits {
        let bytes = bytes as u64;
        Limits {
            time: Duration::from_millis((2_000 + bytes / 25_000).min(60_000)),
            memory: (512 * 1024 * 1024 + bytes.saturating_mul(16)).min(16 * 1024 * 1024 * 1024),
        }
    }
}

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Sets the executable policies are evaluated in (an `sv0` binary). Without it, SV0 uses its
/// own executable when that is `sv0`, else the `sv0` built beside it (a test binary in
/// `target/<profile>/deps`).
pub fn set_worker(path: PathBuf) {
    let _ = WORKER.set(path);
}

fn worker_path() -> Result<PathBuf, String> {
    if let Some(path) = WORKER.get() {
        return Ok(path.clone());
    }
    // Found once per process: every evaluation starts the same executable.
    let found = find_worker()?;
    Ok(WORKER.get_or_init(|| found).clone())
}

fn find_worker() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find SV0's executable: {e}"))?;
    let name = format!("sv0{}", std::env::consts::EXE_SUFFIX);
    if exe.file_name().is_some_and(|n| n == name.as_str()) {
        return Ok(exe);
    }
    exe.ancestors().skip(1).take(2).map(|dir| dir.join(&name)).find(|candidate| candidate.is_file()).ok_or_else(|| {
        "no sv0 executable to evaluate the policy in (a program embedding SV0 calls rego::set_worker)".into()
    })
}

/// Evaluates a policy over an input document in a bounded worker, as the fold will: `Err` says
/// why it fails (it would give `rejected`).
pub fn try_policy(policy: &RegoPolicy, input: &Value) -> Result<Decision, String> {
    evaluate(&policy.source, input).map(|(decision, _)| decision)
}

/// Evaluates `data.sv0` over the input in a bounded worker: the decision and the policy's
/// reasons, or why the policy failed.
fn evaluate(source: &str, input: &Value) -> Result<(Decision, Vec<Reason>), String> {
    let request = serde_json::to_vec(&json!({"source": source, "input": input})).map_err(|e| e.to_string())?;
    let package = run_worker(&request, Limits::for_request(request.len()))?;
    decide(&package)
}

/// Runs one evaluation in a worker process and reads its answer (`data.sv0`).
fn run_worker(request: &[u8], limits: Limits) -> Result<Value, String> {
    let exe = worker_path()?;
    let mut child = Command::new(&exe)
        .arg(WORKER_ARG)
        .arg(limits.memory.to_string())
        .arg(limits.time.as_millis().to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the policy worker {}: {e}", exe.display()))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the policy worker has no pipes".into());
    };
    let request = request.to_vec();
    // A worker that dies early closes its input: the write fails, the exit status says why.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&request);
    });
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.take(MAX_WORKER_OUTPUT).read_to_end(&mut out);
        out
    });
    let errors = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.take(4096).read_to_end(&mut out);
        out
    });
    // A wall-clock bound on a tenant's policy, not an input to the fold. It is the one place
    // where the machine's speed can change a fold's outcome (a policy near its limit may pass
    // on a fast machine and be killed on a loaded one); the CPU-time cap is the steadier bound.
    #[allow(clippy::disallowed_methods)]
    let deadline = Instant::now() + limits.time;
    #[allow(clippy::disallowed_methods)]
    fn past(deadline: Instant) -> bool {
        Instant::now() >= deadline
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if past(deadline) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (writer.join(), reader.join(), errors.join());
                return Err(format!("the policy ran longer than its limit of {} ms", limits.time.as_millis()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                let _ = child.kill();
                return Err(format!("cannot wait for the policy worker: {e}"));
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        let said = String::from_utf8_lossy(&err);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(format!(
            "the policy exceeded its limits ({} MiB of memory, {} ms) and its worker stopped ({status}){}",
            limits.memory / (1024 * 1024),
            limits.time.as_millis(),
            if said.is_empty() { String::new() } else { format!(": {said}") }
        ));
    }
    let answer: Value =
        serde_json::from_slice(&out).map_err(|e| format!("the policy worker's answer is not JSON: {e}"))?;
    match (answer.get("package"), answer.get("error").and_then(Value::as_str)) {
        (_, Some(error)) => Err(error.to_string()),
        (Some(package), None) => Ok(package.clone()),
        (None, None) => Err("the policy worker answered nothing".into()),
    }
}

/// The worker: caps its own address space and CPU time (`argv`: memory bytes, milliseconds),
/// reads `{"source", "input"}` from standard input, and writes `{"package": data.sv0}` or
/// `{"error": ...}`. Returns the exit code.
pub fn worker_main(args: &[String]) -> i32 {
    let (Some(memory), Some(millis)) =
        (args.first().and_then(|m| m.parse::<u64>().ok()), args.get(1).and_then(|t| t.parse::<u64>().ok()))
    else {
        eprintln!("usage: sv0 {WORKER_ARG} <memory bytes> <milliseconds>");
        return 2;
    };
    let seconds = millis.div_ceil(1000) + 1;
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, memory, memory)
        .and_then(|()| rlimit::setrlimit(rlimit::Resource::CPU, seconds, seconds))
    {
        eprintln!("cannot limit the policy worker: {e}");
        return 2;
    }
    let mut text = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut text) {
        eprintln!("cannot read the request: {e}");
        return 2;
    }
    let answer = serde_json::from_slice::<Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|request| {
            let source = request.get("source").and_then(Value::as_str).ok_or("no source")?.to_string();
            let input = request.get("input").map(Value::to_string).ok_or("no input")?;
            drop(request);
            package_of(&source, &input)
        })
        .map_or_else(|error| json!({"error": error}), |package| json!({"package": package}));
    let mut stdout = std::io::stdout().lock();
    match serde_json::to_writer(&mut stdout, &answer).and_then(|()| stdout.flush().map_err(serde_json::Error::io)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write the answer: {e}");
            2
        }
    }
}

/// `data.sv0` of a policy over an input document (JSON text), in this process.
fn package_of(source: &str, input: &str) -> Result<Value, String> {
    let mut engine = regorus::Engine::new();
    engine.add_policy("policy.rego".to_string(), source.to_string()).map_err(|e| e.to_string())?;
    engine.set_input(regorus::Value::from_json_str(input).map_err(|e| e.to_string())?);
    let results = engine.eval_query("data.sv0".to_string(), false).map_err(|e| e.to_string())?;
    let mut results = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    Ok(results["result"][0]["expressions"][0]["value"].take())
}

/// The decision and reasons a policy's `data.sv0` gives.
fn decide(package: &Value) -> Result<(Decision, Vec<Reason>), String> {
    let decision = match package.get("decision") {
        None => return Err("the policy decided nothing: define `default decision := \"requires_review\"`".to_string()),
        Some(Value::String(text)) => match text.as_str() {
            "approved" => Decision::Approved,
            "requires_review" => Decision::RequiresReview,
            "rejected" => Decision::Rejected,
            other => return Err(format!("decision {other:?} is none of approved, requires_review, rejected")),
        },
        Some(other) => return Err(format!("decision is {other}, not a string")),
    };
    let mut reasons = Vec::new();
    let listed = match package.get("reasons") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => return Err(format!("reasons is {other}, not a set or an array")),
    };
    for item in listed {
        reasons.push(match item {
            Value::String(text) => Reason { rule: POLICY_RULE.to_string(), decision, text, path_ids: Vec::new() },
            Value::Object(fields) => Reason {
                rule: fields.get("rule").and_then(Value::as_str).unwrap_or(POLICY_RULE).to_string(),
                decision,
                text: fields.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
                path_ids: fields
                    .get("path_ids")
                    .and_then(Value::as_array)
                    .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            },
            other => return Err(format!("a reason is {other}, neither a string nor an object")),
        });
    }
    Ok((decision, reasons))
}
