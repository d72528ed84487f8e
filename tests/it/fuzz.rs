//! Bounded fuzzing of everything SV0 parses from outside (issue 16): the event decoder,
//! canonical CBOR, snapshot JSON, the vendor converters, IaC plans and exported packs. Each
//! target starts from a committed corpus — the golden vectors, the demo's snapshots, the
//! vendors' fixtures, the plans, a pack export, and `tests/data/fuzz/` (inputs that once broke
//! something, kept as regressions) — and mutates it (bytes flipped, cut, spliced; JSON values
//! replaced by others); every input must give a value or a clear error, never a panic.
//! `SV0_FUZZ_CASES` sets the cases per target (CI runs the default, 200).

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::Value;

use crate::{DEMO_SNAPSHOTS, demo_snapshot, repo_root};

fn cases() -> u32 {
    std::env::var("SV0_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
}

fn files_in(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with(suffix)).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The regressions of a target: `tests/data/fuzz/<target>-*`.
fn regressions(target: &str) -> Vec<Vec<u8>> {
    files_in("tests/data/fuzz", "")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{target}-"))))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn event_corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = files_in("schemas/vectors", ".cbor.hex")
        .into_iter()
        .map(|p| hex::decode(std::fs::read_to_string(p).unwrap().trim()).unwrap())
        .collect();
    out.extend(regressions("event"));
    out
}

fn snapshot_corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = DEMO_SNAPSHOTS.iter().map(|n| demo_snapshot(n)).collect();
    out.extend(regressions("snapshot"));
    out
}

fn plan_corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> =
        files_in("tests/data/plans", ".json").into_iter().map(|p| std::fs::read(p).unwrap()).collect();
    out.extend(regressions("plan"));
    out
}

fn azurehound_corpus() -> Vec<Vec<u8>> {
    let mut out = vec![std::fs::read(repo_root().join("tests/data/connectors/azurehound.json")).unwrap()];
    out.extend(regressions("azurehound"));
    out
}

fn foundry_corpus() -> Vec<Vec<u8>> {
    let root = repo_root().join("tests/data/connectors/foundry-finance");
    let read = |p: &str| -> Value { serde_json::from_slice(&std::fs::read(root.join(p)).unwrap()).unwrap() };
    let doc = serde_json::json!({
        "accounts": read("common/arm.cognitiveServicesAccounts.json")["value"],
        "projects": read("common/arm.foundryProjects.json")["value"],
        "connections": read("after/foundry.connections.json")["value"],
        "agents": read("after/foundry.agents.json")["data"],
        "run_steps": read("common/foundry.runSteps.json")["data"],
    });
    let mut out = vec![serde_json::to_vec(&doc).unwrap()];
    out.extend(regressions("foundry"));
    out
}

fn pack_corpus() -> Vec<Vec<u8>> {
    // A pack as `sv0 export packs` writes it, from a sealed pack of the golden vectors.
    let sealed = event_corpus()
        .into_iter()
        .filter_map(|b| sv0_codec::decode_event(&b).ok())
        .find_map(|e| match e.payload {
            sv0_domain::events::EventPayload::PackSealed(p) => Some(p),
            _ => None,
        })
        .expect("a pack.sealed vector");
    let file = sv0_signer::pack::PackFile::from_sealed(&sealed).unwrap();
    let mut out = vec![serde_json::to_vec(&file).unwrap()];
    out.extend(regressions("pack"));
    out
}

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Cut { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Splice { from: usize, len: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(from, len, to)| Mutation::Splice { from, len, to }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len().max(1);
        match m {
            Mutation::Flip { at, bit } => {
                if !bytes.is_empty() {
                    let i = at % n;
                    bytes[i] ^= 1 << bit;
                }
            }
            Mutation::Cut { at } => bytes.truncate(at % n),
            Mutation::Insert { at, bytes: b } => {
                let i = (at % n).min(bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Splice { from, len, to } => {
                if !bytes.is_empty() {
                    let start = from % bytes.len();
                    let piece: Vec<u8> = bytes[start..(start + len).min(bytes.len())].to_vec();
                    let i = to % bytes.len();
                    bytes.splice(i..i, piece);
                }
            }
        }
    }
    bytes
}

/// A JSON value with its `nth` node (in document order) replaced by `with`.
fn replace_node(value: &mut Value, nth: &mut usize, with: &Value) -> bool {
    if *nth == 0 {
        *value = with.clone();
        return true;
    }
    *nth -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|v| replace_node(v, nth, with)),
        Value::Object(fields) => fields.values_mut().any(|v| replace_node(v, nth, with)),
        _ => false,
    }
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(Value::String("/subscriptions/../../providers/x".into())),
        Just(Value::String("\u{fffe}\u{0}".into())),
    ]
}

/// A corpus input, mutated as bytes or (for JSON) as values.
fn input(corpus: Vec<Vec<u8>>, json: bool) -> impl Strategy<Value = Vec<u8>> {
    let n = corpus.len();
    (0..n, proptest::collection::vec(mutation(), 0..4), any::<usize>(), json_scalar(), any::<bool>()).prop_map(
        move |(pick, mutations, nth, with, by_value)| {
            let seed = corpus[pick].clone();
            if json
                && by_value
                && let Ok(mut value) = serde_json::from_slice::<Value>(&seed)
            {
                let mut at = nth % 5_000;
                replace_node(&mut value, &mut at, &with);
                return serde_json::to_vec(&value).unwrap();
            }
            mutate(seed, &mutations)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// The log's event decoder, and the canonical CBOR under it.
    #[test]
    fn the_event_decoder_never_panics(bytes in input(event_corpus(), false)) {
        if let Ok(event) = sv0_codec::decode_event(&bytes) {
            // What decodes re-encodes.
            sv0_codec::encode_event(&event).unwrap();
        }
        let _ = sv0_codec::from_canonical::<ciborium::Value>(&bytes);
    }

    /// Snapshot JSON, parsed and validated as an import does.
    #[test]
    fn snapshot_json_never_panics(bytes in input(snapshot_corpus(), true)) {
        if let Ok(snapshot) = serde_json::from_slice::<sv0_domain::snapshot::Snapshot>(&bytes) {
            let _ = snapshot.validate();
        }
    }

    /// IaC plans: read and predicted over an empty tenant.
    #[test]
    fn plans_never_panic(bytes in input(plan_corpus(), true)) {
        if let Ok(plan) = sv0_connectors::plan::read(&bytes) {
            let _ = sv0_connectors::plan::predict(&plan, &Empty);
        }
    }

    /// AzureHound exports through the Entra and Azure RBAC converters.
    #[test]
    fn azurehound_exports_never_panic(bytes in input(azurehound_corpus(), true)) {
        let records: Vec<Value> = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Object(o)) => o.get("data").and_then(Value::as_array).cloned().unwrap_or_default(),
            _ => return Ok(()),
        };
        let (graph, arm, _, _) = sv0_connectors::azurehound::sort(&records);
        let mut out = sv0_connectors::collect::Collected::default();
        sv0_connectors::entra::convert(&graph, &settings(), &mut out);
        sv0_connectors::arm::convert(&arm, &mut out);
        let _ = out.finish();
    }

    /// Foundry responses through the Foundry converter.
    #[test]
    fn foundry_responses_never_panic(bytes in input(foundry_corpus(), true)) {
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else { return Ok(()) };
        let list = |k: &str| doc.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
        let data = sv0_connectors::foundry::FoundryData {
            accounts: list("accounts"),
            projects: list("projects"),
            connections: list("connections"),
            agents: list("agents"),
            run_steps: list("run_steps"),
        };
        let mut out = sv0_connectors::collect::Collected::default();
        sv0_connectors::foundry::convert(&data, &mut out);
        let _ = out.finish();
    }

    /// Exported pack files, as `sv0 verify --packs` reads them.
    #[test]
    fn pack_files_never_panic(bytes in input(pack_corpus(), true)) {
        let pack = serde_json::from_slice::<sv0_signer::pack::PackFile>(&bytes).map_err(|e| e.to_string());
        let entries = vec![sv0_signer::verify::ChainEntry { source: "fuzz".into(), pack }];
        let _ = sv0_signer::verify::verify_chain(&entries, &sv0_signer::keys::KeyRing::new());
    }
}

struct Empty;

impl sv0_connectors::plan::PlanContext for Empty {
    fn destinations_below(&self, _: &str) -> Vec<sv0_domain::model::Destination> {
        Vec::new()
    }
    fn destination(&self, _: &str) -> Option<sv0_domain::model::Destination> {
        None
    }
    fn has_identity(&self, _: &str) -> bool {
        false
    }
    fn workloads_below(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

fn settings() -> sv0_connectors::Settings {
    sv0_connectors::Settings {
        tenant: sv0_domain::TenantId::new("contoso").unwrap(),
        azure_tenant_id: None,
        observed_at: sv0_domain::Timestamp::parse("2026-11-25T09:00:00Z").unwrap(),
        trigger: sv0_domain::snapshot::ScanTrigger::Manual,
        evidence_days: 30,
        subscriptions: Vec::new(),
        log_analytics_workspaces: Vec::new(),
        servicenow_classification: Default::default(),
        servicenow_host: None,
        tracking: None,
    }
}
