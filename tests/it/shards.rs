//! Tenant-sharded projectors on JetStream: three `sv0 project --shard K/3` over a three-node
//! cluster fold each tenant exactly once between them; a server of one shard answers only its
//! tenants; views folded for one shard are refused to another.

use std::collections::BTreeSet;

use sv0_domain::TenantId;
use sv0_projections::{Shard, Views};
use sv0_synth::synthetic;
use sv0_tests::TempDir;
use sv0_tests::nats::NatsCluster;

use crate::faults::Sv0Process;

const TENANTS: usize = 9;

/// The JetStream log's head.
fn log_head(url: &str) -> u64 {
    crate::block_on(async {
        use sv0_log::EventLog;
        let settings = sv0_log_nats::StreamSettings::default();
        let log = sv0_log_nats::JetStreamLog::connect(url, sv0_log_nats::Credentials::None, settings).await.unwrap();
        log.head().await.unwrap()
    })
}

#[test]
fn three_projectors_fold_each_tenant_exactly_once_and_each_shard_serves_only_its_tenants() {
    let cluster = NatsCluster::start();
    let url = cluster.url();
    let dir = TempDir::new();
    // Nine tenants' scans on the log, appended by a command-side process with its own views.
    let tenants: Vec<TenantId> = (0..TENANTS).map(|n| TenantId::new(format!("tenant-{n}")).unwrap()).collect();
    let writer = dir.join("writer");
    for tenant in &tenants {
        let at = sv0_domain::Timestamp::parse(synthetic::OBSERVED_AT).unwrap();
        let mut snapshot = synthetic::tenant(120, 3, at).unwrap();
        snapshot.tenant = tenant.clone();
        let file = dir.join(&format!("{tenant}.json"));
        std::fs::write(&file, serde_json::to_vec(&snapshot).unwrap()).unwrap();
        let (code, out) =
            crate::sv0_in(&writer, &["--log", url.as_str(), "--no-seal", "scan", "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
    }
    let head = log_head(&url);

    let shards: Vec<String> = (1..=3).map(|k| format!("{k}/3")).collect();
    let mut folded: Vec<BTreeSet<String>> = Vec::new();
    for shard in &shards {
        let data = dir.join(&format!("shard-{}", &shard[..1]));
        let mut projector = Sv0Process::start_with(&data, &url, &["project", "--shard", shard]);
        projector.wait_position(head);
        projector.terminate();
        let views = Views::open(data.join("views.redb")).unwrap();
        assert_eq!(views.shard().unwrap(), Some(Shard::parse_hash(shard).unwrap()), "the views record their shard");
        folded.push(views.tenants().unwrap().iter().map(|t| t.to_string()).collect());
    }
    for tenant in &tenants {
        let holders: Vec<usize> = (0..3).filter(|i| folded[*i].contains(tenant.as_str())).collect();
        assert_eq!(holders.len(), 1, "{tenant} is folded by exactly one shard: {folded:?}");
        assert_eq!(holders[0] as u32 + 1, Shard::hash_index(tenant.as_str(), 3), "{tenant} is where its hash says");
    }
    assert!(folded.iter().all(|f| !f.is_empty()), "nine tenants spread over all three shards: {folded:?}");
    // Or by name.
    let named = dir.join("named");
    let mut projector = Sv0Process::start_with(&named, &url, &["project", "--tenants", "tenant-0,tenant-4"]);
    projector.wait_position(head);
    projector.terminate();
    let views = Views::open(named.join("views.redb")).unwrap();
    let names: Vec<String> = views.tenants().unwrap().iter().map(|t| t.to_string()).collect();
    assert_eq!(names, ["tenant-0", "tenant-4"]);

    // Views folded for shard 1 are not reused for shard 2, nor for every tenant by a server.
    let first = dir.join("shard-1");
    let (code, out) = crate::sv0_in(&first, &["--log", url.as_str(), "project", "--shard", "2/3"]);
    assert_ne!(code, 0);
    assert!(out.contains("these views fold shard 1/3, not shard 2/3"), "{out}");
    // Nor does shard 1's directory take a scan of a tenant it does not fold.
    let stranger = folded[1].iter().next().unwrap().clone();
    let file = dir.join(&format!("{stranger}.json"));
    let args = ["--log", url.as_str(), "--no-seal", "scan", "import", file.to_str().unwrap()];
    let head_before = log_head(&url);
    let (code, out) = crate::sv0_in(&first, &args);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("fold shard 1/3, which does not hold tenant {stranger}")), "{out}");
    let head_after = log_head(&url);
    assert_eq!(head_after, head_before, "nothing was appended");

    // A server of shard 1 answers its tenants' tokens and knows nothing of the others'.
    let inside = folded[0].iter().next().unwrap().clone();
    let outside = folded[1].iter().next().unwrap().clone();
    let token = |tenant: &str| {
        let principal = format!("reader@{tenant}.example");
        let args = ["--log", url.as_str(), "--tenant", tenant, "tokens", "create", "--principal", &principal];
        let (code, out) = crate::sv0_in(&writer, &[&args[..], &["--name", "reader", "--role", "viewer"]].concat());
        assert_eq!(code, 0, "{out}");
        out.lines().last().unwrap().to_string()
    };
    let (inside_token, outside_token) = (token(&inside), token(&outside));
    let global = ["--data-dir", first.to_str().unwrap(), "--log", url.as_str(), "--no-seal"];
    let (mut server, addr) = crate::spawn_serve(&global, &["--shard", "1/3"]);
    let get = |token: &str| {
        let auth = format!("Bearer {token}");
        crate::api::request(&addr, "GET", "/api/v1/paths?limit=1", &[("Authorization", auth.as_str())], b"")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mine = loop {
        let reply = get(&inside_token);
        if reply.status == 200 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(get(&outside_token).status, 401, "another shard's tenant is unknown here");
    let _ = server.kill();
    let _ = server.wait();
}
