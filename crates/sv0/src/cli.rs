//! The command line: every command, its arguments and their help (clap). Path arguments are
//! parsed by `PathArg`, relative to the caller's directory (`sv0 serve` runs commands for
//! clients of its socket, in their directories).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod evidence;
pub use evidence::*;

/// Is it safe to deploy this? Authority paths, baselines, deltas and signed evidence.
#[derive(Debug, Parser)]
#[command(name = "sv0", version, about, long_about = None)]
pub struct Cli {
    /// Where the log, views and keys live [default: the user's data directory, e.g. ~/.local/share/sv0]
    #[arg(value_parser = PathArg, long, global = true, help_heading = "Global options", env = "SV0_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tenant to act on; may be left out when the data holds one tenant
    #[arg(long, global = true, help_heading = "Global options", env = "SV0_TENANT")]
    pub tenant: Option<String>,
    /// The event log: `embedded` (in --data-dir) or nats://HOST:PORT[,HOST:PORT...] for JetStream
    /// (credentials from SV0_NATS_CREDS, SV0_NATS_USER/SV0_NATS_PASSWORD or SV0_NATS_TOKEN)
    #[arg(long, global = true, help_heading = "Global options", env = "SV0_LOG", value_name = "LOG")]
    pub log: Option<String>,
    /// Replicas of the JetStream stream when SV0 creates it (3 for a three-node cluster)
    #[arg(long, global = true, help_heading = "Global options", env = "SV0_LOG_REPLICAS", default_value_t = 1)]
    pub log_replicas: usize,
    /// Leave sealing evidence packs to a separate `sv0 sign` process
    #[arg(long, global = true, help_heading = "Global options", env = "SV0_NO_SEAL")]
    pub no_seal: bool,
    /// The views' page cache, in MiB (more speeds up a server's queries over a large tenant)
    #[arg(long, global = true, help_heading = "Global options", env = "SV0_VIEWS_CACHE_MB", default_value_t = (sv0_log::file::VIEWS_CACHE_BYTES >> 20) as u32, value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub views_cache_mb: u32,
    /// Log progress to standard error (-v info, -vv debug)
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tell the whole assurance story over a bundled example tenant, in a fresh data directory
    Demo(DemoArgs),
    /// Import scans, list them, show what each changed, release one a breaker held
    #[command(subcommand)]
    Scan(ScanCommand),
    /// Show or set a tenant's policy: evidence window, owner silence limit, internal hosts,
    /// classification rules, deletion breakers (recorded as an event on the log)
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Write a synthetic tenant (or a rescan of one) in the snapshot format
    Synth(SynthArgs),
    /// List authority paths (Workload → Identity → Destination → Domain)
    Paths(PathsArgs),
    /// List findings (all scopes unless --scope); --sarif and --junit for CI systems
    Findings(FindingsArgs),
    /// Print the rule catalogue: id, version, maturity, title, OWASP Agentic Top 10 ids
    Rules(RulesArgs),
    /// Continuous drift monitoring: import the snapshot sources on a schedule and report each
    /// baselined scope's drift and disposition (until stopped, or --ticks times)
    Watch(WatchArgs),
    /// Everything to read before approving a scope: paths, counts by grade, egress and
    /// ownership, open findings, governance conditions, evidence gaps, the baseline in force,
    /// and the posture digest to approve
    Review(ReviewArgs),
    /// What-if: read a deployment's plan (Terraform JSON plan or ARM what-if) and show the
    /// authority paths it will create or remove in a scope, against the approved baseline, with
    /// the plan resource behind each; appends nothing
    Whatif(WhatifArgs),
    /// Approve the current posture of a scope as its next baseline
    Approve(ApproveArgs),
    /// Show the path-level delta of a scope against its approved baseline
    Delta(DeltaArgs),
    /// List the baseline versions of a tenant
    Baselines(BaselinesArgs),
    /// List what --scope can name: the tenant's projects and tags (with how many workloads each
    /// selects) and its baselined scopes
    Scopes(JsonArgs),
    /// Verify evidence pack chains: from the log, or offline from exported files
    Verify(VerifyArgs),
    /// Export evidence
    #[command(subcommand)]
    Export(ExportCommand),
    /// Merkle proofs from the tenant's pack transparency log (RFC 9162), verifiable offline
    #[command(subcommand)]
    Proof(ProofCommand),
    /// The pack signing key: generate it, rotate it (recorded on every tenant's chain), export
    /// the public keys with their validity ranges for offline verification
    #[command(subcommand)]
    Keys(KeysCommand),
    /// API bearer tokens: create (printed once), revoke, list
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Deployment gate for any CI: ask a running `sv0 serve` for a sync of the deployment, wait,
    /// print a Markdown summary; exit 0 approved, 1 review or rejected, 2 error
    Gate(GateArgs),
    /// Refold the views from the log, from an empty database
    Rebuild,
    /// Write an audit replay: the log as it stood at a time or position, with every view, into
    /// a new directory that every read command can then query with --data-dir
    Replay(ReplayArgs),
    /// Measure throughput: the loop on a synthetic tenant (in a temporary directory), or with
    /// --log nats://... JetStream publish, append and fold rates against a scratch server
    Bench(BenchArgs),
    /// Print SOC signals (CloudEvents JSON, one per line) derived from the log
    Signals(SignalsArgs),
    /// Run the projector: follow the log and fold it into the views of --data-dir (until stopped);
    /// on JetStream it also publishes signals to sv0.signals.<tenant>.<type>
    Project(ShardArgs),
    /// Run the signer: follow the log and seal every new assessment into its tenant's pack chain
    Sign(ShardArgs),
    /// Run the service: health, readiness and metrics over HTTP, with the projector and (unless
    /// --no-seal) the signer in the same process — the whole of SV0 on a laptop
    Serve(ServeArgs),
}

/// Which tenants `sv0 serve`, `project` and `sign` fold: on JetStream several of them, each
/// with its own --data-dir, split an installation's tenants between them. The choice is
/// recorded in the views; views that fold other tenants are refused.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Fold only these tenants (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "T1,T2", conflicts_with = "shard")]
    pub tenants: Vec<String>,
    /// Fold only the tenants of shard K of N (1 ≤ K ≤ N), by a stable hash of the tenant id
    #[arg(long, value_name = "K/N", value_parser = sv0_projections::Shard::parse_hash)]
    pub shard: Option<sv0_projections::Shard>,
}

impl ShardArgs {
    /// The shard named, if any.
    pub fn shard(&self) -> anyhow::Result<Option<sv0_projections::Shard>> {
        if !self.tenants.is_empty() {
            let tenants = self
                .tenants
                .iter()
                .map(|t| sv0_domain::TenantId::new(t.trim()).map_err(|e| anyhow::anyhow!("--tenants {t}: {e}")))
                .collect::<anyhow::Result<_>>()?;
            return Ok(Some(sv0_projections::Shard::Tenants(tenants)));
        }
        Ok(self.shard.clone())
    }
}

/// `sv0 serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The tenants this server folds and answers for
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080", env = "SV0_LISTEN")]
    pub listen: String,
    /// Failed authentications a client address may make per minute before it gets 429
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub auth_failures_per_minute: u32,
    /// The largest request body accepted, in bytes (a pushed snapshot or a plan; other routes
    /// take 64 KiB, a policy 1 MiB)
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_body: usize,
    /// Serve `/metrics` (Prometheus) on this address; off unless given (the API's port does not
    /// serve it)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Label `/metrics` series with tenant names (totals only otherwise)
    #[arg(long)]
    pub metrics_tenant_labels: bool,
    /// A reverse proxy in front of the server (repeatable): from it, the client is the last
    /// address of `X-Forwarded-For` (the header is ignored from anyone else)
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Connections served at once; one more is closed as it is accepted
    #[arg(long, default_value_t = sv0_api::MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// The snapshot a collector keeps current: what `POST /api/v1/syncs` imports
    #[arg(value_parser = PathArg, long, value_name = "FILE", conflicts_with = "sync_connectors")]
    pub sync_snapshot: Option<PathBuf>,
    /// Syncs run this connector (repeatable), live with sv0.toml's [connectors] settings and
    /// secrets from the environment, or over --sync-from-export
    #[arg(long = "sync-connector", value_enum, value_name = "CONNECTOR")]
    pub sync_connectors: Vec<ConnectorArg>,
    /// With --sync-connector: read this export directory instead of the live APIs
    #[arg(value_parser = PathArg, long, value_name = "DIR", requires = "sync_connectors")]
    pub sync_from_export: Option<PathBuf>,
}

/// `sv0 replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The moment: an RFC 3339 time or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub until: String,
    /// The new directory to write
    #[arg(value_parser = PathArg, long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `sv0 signals`.
#[derive(Debug, Args)]
pub struct SignalsArgs {
    /// Only signals of assessments after this log position
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Keep printing new signals as they happen (until stopped)
    #[arg(long)]
    pub follow: bool,
}

/// `sv0 bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Approximate number of authority paths in the synthetic tenant
    #[arg(long, default_value_t = 10_000)]
    pub paths: usize,
    /// With --log nats://...: events to publish (point it at a scratch server)
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Only write the synthetic snapshot to this file
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub snapshot_out: Option<PathBuf>,
    /// Benchmark the whole connector pipeline instead: a synthetic tenant of this many
    /// identities in vendor formats, read and converted from its export, then imported
    #[arg(long, value_name = "N")]
    pub vendor_identities: Option<usize>,
    /// Skip replaying the whole log into memory (minutes and gigabytes at a million paths)
    #[arg(long)]
    pub skip_replay: bool,
    /// Load-test a running `sv0 serve` at this base URL (http://HOST:PORT) instead: pages of a
    /// path query, from keep-alive connections
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// With --http: a file holding a token of the tenant
    #[arg(value_parser = PathArg, long, value_name = "FILE", requires = "http")]
    pub token_file: Option<PathBuf>,
    /// With --http: the scope whose paths are paged
    #[arg(long, default_value = "workload:workload-0000000", requires = "http")]
    pub scope: String,
    /// With --http: paths per page
    #[arg(long, default_value_t = 100, requires = "http")]
    pub page: usize,
    /// With --http: connections kept busy at once
    #[arg(long, default_value_t = 64, requires = "http")]
    pub concurrency: usize,
    /// With --http: how long to run
    #[arg(long, default_value_t = 20, requires = "http")]
    pub seconds: u64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print one JSON document instead of tables
    #[arg(long)]
    pub json: bool,
}

/// `sv0 scan ...`.
#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// Validate a snapshot file and append its scan to the log
    Import(ImportArgs),
    /// Read the source systems with connectors (live, or from exported API responses) and
    /// import what they saw as one scan
    Run(ScanRunArgs),
    /// List a tenant's scans: applied, rejected, quarantined or superseded
    List(JsonArgs),
    /// Show what one scan changed, entity by entity: added, changed, removed, unobserved
    Diff(ScanDiffArgs),
    /// Apply a scan a deletion breaker quarantined (recorded as an event with its actor)
    Release(ScanReleaseArgs),
    /// List entities kept although the last scans could not see them (partial coverage)
    Unobserved(JsonArgs),
}

/// Only `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 scan diff`.
#[derive(Debug, Args)]
pub struct ScanDiffArgs {
    /// The scan id (see `sv0 scan list`)
    pub id: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 scan release`.
#[derive(Debug, Args)]
pub struct ScanReleaseArgs {
    /// The quarantined scan's id
    pub id: String,
    /// Why the removals are real, recorded with the release
    #[arg(long)]
    pub note: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force
    Show(JsonArgs),
    /// Change the policy: the settings given replace those in force, the rest stay. A Rego
    /// policy must run on every baselined scope first; a `replace` one decides only once a
    /// second person approves it (`sv0 policy approve`)
    Set(PolicySetArgs),
    /// Approve the Rego policy waiting for a second person (one that replaces the built-in
    /// rules and so could approve): it decides the tenant's dispositions from now on. The
    /// person who set it cannot approve it
    Approve(PolicyApproveArgs),
}

/// `sv0 policy approve`.
#[derive(Debug, Args)]
pub struct PolicyApproveArgs {
    /// The digest of the policy you reviewed (`sv0 policy show` prints it); refused if the
    /// policy waiting is another
    #[arg(long, value_name = "DIGEST")]
    pub digest: String,
    /// Why this policy may decide
    #[arg(long)]
    pub note: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 policy set`.
#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// Start from this policy file (JSON, as `sv0 policy show --json` prints) instead of the
    /// policy in force
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Evidence older than this many days no longer counts: grades decay
    #[arg(long, value_name = "DAYS")]
    pub evidence_window_days: Option<u32>,
    /// An owner silent for longer than this many days is decayed
    #[arg(long, value_name = "DAYS")]
    pub owner_silence_days: Option<u32>,
    /// Host suffix of the organisation's own endpoints (egress `internal`); repeatable; replaces
    /// the list in force
    #[arg(long = "internal-host", value_name = "SUFFIX")]
    pub internal_hosts: Vec<String>,
    /// Quarantine a scan that would remove more than this share (%) of a list or of the paths
    #[arg(long, value_name = "PERCENT")]
    pub breaker_percent: Option<u32>,
    /// ...and at least this many
    #[arg(long, value_name = "COUNT")]
    pub breaker_min: Option<u64>,
    /// A scope drifts from its baseline when a scan breaks the match on at least this many paths
    #[arg(long, value_name = "PATHS")]
    pub drift_threshold: Option<u32>,
    /// The most authority paths one scan's fold may compute; a scan past it is quarantined
    /// before the work (default 5,000,000)
    #[arg(long, value_name = "PATHS", value_parser = clap::value_parser!(u64).range(1..))]
    pub fold_budget_paths: Option<u64>,
    /// A Rego disposition policy (package sv0; defines `decision`, optionally `reasons`) over
    /// the input `sv0 export opa-input` prints
    #[arg(value_parser = PathArg, long, value_name = "FILE", conflicts_with = "no_rego")]
    pub rego: Option<PathBuf>,
    /// Whether the Rego policy extends the built-in disposition rules (the stricter decision
    /// wins) or replaces them
    #[arg(long, value_enum, default_value_t = RegoModeArg::Extend, requires = "rego")]
    pub rego_mode: RegoModeArg,
    /// Remove the Rego policy: the built-in disposition rules alone decide
    #[arg(long)]
    pub no_rego: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// How a Rego policy combines with the built-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegoModeArg {
    /// The stricter of the built-in and the policy's decision wins
    Extend,
    /// The policy's decision is the disposition
    Replace,
}

/// `sv0 synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// About how many authority paths the tenant has (1M ≈ 10k workloads, 20k identities, 50k
    /// destinations)
    #[arg(long, required_unless_present_any = ["rescan_of", "vendor_export"], conflicts_with = "vendor_export")]
    pub paths: Option<usize>,
    /// Seed: the same size and seed give the same tenant
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the snapshot
    #[arg(value_parser = PathArg, long, value_name = "FILE", required_unless_present = "vendor_export")]
    pub out: Option<PathBuf>,
    /// Write the tenant in the vendors' formats instead: a directory of Microsoft Graph, ARM,
    /// Log Analytics, ServiceNow and Foundry responses for `sv0 scan run --from-export DIR`
    #[arg(value_parser = PathArg, long, value_name = "DIR", requires = "identities", conflicts_with = "rescan_of")]
    pub vendor_export: Option<PathBuf>,
    /// With --vendor-export: how many identities (service principals) the tenant has
    #[arg(long, value_name = "N")]
    pub identities: Option<usize>,
    /// Write a rescan of this snapshot instead, a day later
    #[arg(value_parser = PathArg, long, value_name = "FILE", conflicts_with = "paths")]
    pub rescan_of: Option<PathBuf>,
    /// With --rescan-of: the share of grants changed, e.g. 1%
    #[arg(long, default_value = "1%", requires = "rescan_of")]
    pub change: String,
    /// With --rescan-of: also write the rescan as a delta scan of SCAN_ID, the id `sv0 scan
    /// import` gave the base snapshot (the changed and new entities, and the deleted ones)
    #[arg(long, value_name = "SCAN_ID", requires_all = ["rescan_of", "delta_out"])]
    pub delta_of: Option<String>,
    /// With --delta-of: where to write the delta scan
    #[arg(value_parser = PathArg, long, value_name = "FILE", requires = "delta_of")]
    pub delta_out: Option<PathBuf>,
}

/// Scan triggers on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TriggerArg {
    /// Someone ran it.
    Manual,
    /// A schedule ran it.
    Scheduled,
    /// A deployment gate ran it before the deployment (seals a pre_deployment_assessment)
    #[value(name = "pre_deployment", alias = "pre-deployment")]
    PreDeployment,
    /// A deployment ran it (seals a post_deployment_delta).
    Deployment,
    /// Remediation ran it.
    Remediation,
}

impl From<TriggerArg> for sv0_domain::snapshot::ScanTrigger {
    fn from(arg: TriggerArg) -> Self {
        use sv0_domain::snapshot::ScanTrigger;
        match arg {
            TriggerArg::Manual => ScanTrigger::Manual,
            TriggerArg::Scheduled => ScanTrigger::Scheduled,
            TriggerArg::PreDeployment => ScanTrigger::PreDeployment,
            TriggerArg::Deployment => ScanTrigger::Deployment,
            TriggerArg::Remediation => ScanTrigger::Remediation,
        }
    }
}

/// `sv0 scan import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The snapshot (JSON; see schemas/snapshot.schema.json)
    #[arg(value_parser = PathArg)]
    pub file: PathBuf,
    /// Override the snapshot's `scan.trigger`
    #[arg(long, value_enum)]
    pub trigger: Option<TriggerArg>,
    /// Send a full snapshot as a delta of the tenant's latest applied scan: only the entities
    /// that changed and the deletions reach the log and the fold (a first scan, or a targeted
    /// one, is sent as it is)
    #[arg(long)]
    pub delta: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// The connectors of `sv0 scan run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConnectorArg {
    /// Microsoft Entra ID (Microsoft Graph)
    Entra,
    /// Azure RBAC (Azure Resource Manager; storage logs from Log Analytics)
    AzureRbac,
    /// ServiceNow (Table API)
    Servicenow,
    /// Azure AI Foundry Agent Service
    Foundry,
    /// AzureHound's JSON output (with --from-export FILE|DIR)
    Azurehound,
}

/// Which connectors read which source (`sv0 scan run`, `sv0 watch`).
#[derive(Debug, Clone, Args)]
pub struct ConnectorArgs {
    /// A connector to run; give several for one scan of them all
    #[arg(long = "connector", value_enum, value_name = "CONNECTOR")]
    pub connectors: Vec<ConnectorArg>,
    /// Live: the APIs' base URL, for every connector, or CONNECTOR=URL (entra, azure-rbac,
    /// log-analytics, servicenow, foundry); repeatable [default: public cloud for entra and
    /// azure-rbac, sv0.toml [connectors]]
    #[arg(long = "base-url", value_name = "URL", conflicts_with = "from_export")]
    pub base_urls: Vec<String>,
    /// Read saved API responses (or AzureHound's output file) instead of calling the APIs; see
    /// docs/connectors.md for the file names
    #[arg(value_parser = PathArg, long, value_name = "DIR")]
    pub from_export: Option<PathBuf>,
    /// Concurrent requests per API [default: 4]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Retries of a request after HTTP 429, 503, 504 or a transport error
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_retries: u32,
    /// Seconds allowed for one request
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
    /// Longest Retry-After honoured, in seconds (longer waits are cut to this)
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub max_retry_wait: u64,
}

impl ConnectorArgs {
    /// Connectors over an export directory, or live with sv0.toml's settings, with the
    /// command line's defaults.
    pub fn new(connectors: Vec<ConnectorArg>, from_export: Option<PathBuf>) -> ConnectorArgs {
        ConnectorArgs {
            connectors,
            base_urls: Vec::new(),
            from_export,
            concurrency: None,
            max_retries: 4,
            timeout: 60,
            max_retry_wait: 60,
        }
    }
}

/// `sv0 scan run`.
#[derive(Debug, Args)]
pub struct ScanRunArgs {
    /// Which sources to read (connectors or an export).
    #[command(flatten)]
    pub source: ConnectorArgs,
    /// When the sources were read [default: now, or the export's meta.json]
    #[arg(long, value_name = "TIME")]
    pub observed_at: Option<String>,
    /// Why the scan ran
    #[arg(long, value_enum, default_value = "manual")]
    pub trigger: TriggerArg,
    /// Write the snapshot the connectors assembled to this file as well
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Read and assemble, but import nothing (with --out: write the snapshot only)
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 paths`.
#[derive(Debug, Args)]
pub struct PathsArgs {
    /// Workloads to cover: project:NAME, workload:ID, tag:KEY=VALUE or all, comma-separated
    #[arg(long)]
    pub scope: Option<String>,
    /// Only paths of this workload (id)
    #[arg(long)]
    pub workload: Option<String>,
    /// Only paths through this identity (id)
    #[arg(long)]
    pub identity: Option<String>,
    /// Only paths to this destination (id)
    #[arg(long)]
    pub destination: Option<String>,
    /// Only paths into this data domain (id, or `unclassified`)
    #[arg(long)]
    pub domain: Option<String>,
    /// Only paths of this evidence grade
    #[arg(long, value_parser = ["A", "B", "C"])]
    pub grade: Option<String>,
    /// Only paths of this egress class
    #[arg(long, value_parser = ["llm_api", "cloud_storage", "external_http", "internal"])]
    pub egress: Option<String>,
    /// Only paths of this ownership state
    #[arg(long, value_parser = ["assigned", "orphaned", "decayed"])]
    pub owner_state: Option<String>,
    /// Print at most this many paths (the count covers all)
    #[arg(long)]
    pub limit: Option<usize>,
    /// Answer as the log stood at an RFC 3339 time (the log's recording time: what SV0 knew
    /// then) or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub as_of: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 findings show`.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Everything about one finding: its paths, records, remediation and acknowledgement
    Show(FindingShowArgs),
}

/// `sv0 findings show ID`.
#[derive(Debug, Args)]
pub struct FindingShowArgs {
    /// The finding's id (F-...), as `sv0 findings` lists it
    pub id: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 findings`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FindingsArgs {
    /// One finding in full
    #[command(subcommand)]
    pub command: Option<FindingsCommand>,
    /// Restrict to a scope's workloads (all scopes when none is named)
    #[arg(long)]
    pub scope: Option<String>,
    /// Include resolved findings
    #[arg(long)]
    pub all: bool,
    /// Print JSON
    #[arg(long, group = "format")]
    pub json: bool,
    /// Print a SARIF 2.1.0 log (open, overdue and acknowledged findings)
    #[arg(long, group = "format")]
    pub sarif: bool,
    /// Print a JUnit XML report: a suite per rule, a failing case per open or overdue finding
    #[arg(long, group = "format")]
    pub junit: bool,
    /// Answer as the log stood at an RFC 3339 time (the log's recording time: what SV0 knew
    /// then) or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub as_of: Option<String>,
}

/// `sv0 watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Time between two rounds, e.g. 15m, 1h, 30s
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_every)]
    pub every: std::time::Duration,
    /// A snapshot file a collector keeps up to date; repeatable. Each round imports it as a
    /// scheduled scan (an unchanged file appends nothing)
    #[arg(value_parser = PathArg, long = "snapshot", value_name = "FILE", required_unless_present = "connectors")]
    pub snapshots: Vec<PathBuf>,
    /// Each round also runs these connectors (as `sv0 scan run` does) as a scheduled scan
    #[command(flatten)]
    pub source: ConnectorArgs,
    /// Stop after this many rounds (the first runs at once)
    #[arg(long, value_name = "N")]
    pub ticks: Option<u64>,
    /// The connectors' scan of every Nth round (the first, the N+1th, ...) is sent whole; the
    /// others as delta scans of the latest applied scan, so that the log and the fold carry
    /// only what changed. 1 sends every scan whole
    #[arg(long, value_name = "N", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..))]
    pub full_every: u64,
    /// Print one JSON object per scope per round
    #[arg(long)]
    pub json: bool,
}

fn parse_every(text: &str) -> Result<std::time::Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 15m, 1h, 30s)"))?;
    if every < std::time::Duration::from_secs(1) {
        return Err("the interval must be at least 1s".to_string());
    }
    Ok(every)
}

/// `sv0 rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Print JSON (every field of every rule)
    #[arg(long, group = "format")]
    pub json: bool,
    /// Print the catalogue as Markdown (what docs/rules.md holds)
    #[arg(long, group = "format")]
    pub markdown: bool,
}

/// `sv0 whatif`.
#[derive(Debug, Args)]
pub struct WhatifArgs {
    /// The scope judged
    #[arg(long)]
    pub scope: String,
    /// The plan: `terraform show -json plan.out` output, or `az deployment ... what-if
    /// --no-pretty-print` output
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The scope to review
    #[arg(long)]
    pub scope: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Answer as the log stood at an RFC 3339 time (the log's recording time: what SV0 knew
    /// then) or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub as_of: Option<String>,
}

/// `sv0 approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The scope approved
    #[arg(long)]
    pub scope: String,
    /// Notes recorded with the approval
    #[arg(long)]
    pub note: String,
    /// Acknowledge an open finding until a date: FINDING=YYYY-MM-DD (repeatable)
    #[arg(long = "ack", value_name = "FINDING=DUE")]
    pub acks: Vec<String>,
    /// The posture reviewed, as `sv0 review`, `sv0 paths --scope` or `sv0 findings --scope`
    /// print it (DIGEST or DIGEST@POSITION): the approval is refused (exit 1) when the posture
    /// has changed since
    #[arg(long, value_name = "DIGEST")]
    pub posture: Option<String>,
    /// The deployment's declared intent: a JSON list of the additions it is expected to bring
    /// (schemas/intent.schema.json). After the deployment, additions it covers are `intended`,
    /// every other addition `unintended`
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub intent: Option<PathBuf>,
    /// The deployment's plan (Terraform JSON plan or ARM what-if): the additions `sv0 whatif`
    /// predicts from it are declared as the intent, with the plan's digest
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Show exactly what would be locked (paths, open findings left unacknowledged,
    /// acknowledgements) and record nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Record a new version even when it would lock exactly what the baseline in force locks
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation on a terminal when high or critical findings stay open
    #[arg(long)]
    pub yes: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 delta`.
#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// The scope
    #[arg(long)]
    pub scope: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Answer as the log stood at an RFC 3339 time (the log's recording time: what SV0 knew
    /// then) or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub as_of: Option<String>,
}

/// `sv0 baselines`.
#[derive(Debug, Args)]
pub struct BaselinesArgs {
    /// Only this scope
    #[arg(long)]
    pub scope: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Answer as the log stood at an RFC 3339 time (the log's recording time: what SV0 knew
    /// then) or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    pub as_of: Option<String>,
}

std::thread_local! {
    /// The directory relative paths on a command line are taken from when it is not this
    /// process's own: the client's, for a command `sv0 serve` runs for its local socket.
    static PATH_BASE: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// The value parser of every path argument: a path, taken relative to `PATH_BASE` when that is
/// set, so that a command run by `sv0 serve` for a client reads and writes the files the
/// client named.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathArg;

impl clap::builder::TypedValueParser for PathArg {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PathBuf, clap::Error> {
        let path = clap::builder::PathBufValueParser::new().parse_ref(cmd, arg, value)?;
        Ok(PATH_BASE.with(|base| match &*base.borrow() {
            Some(base) if path.is_relative() => base.join(&path),
            _ => path,
        }))
    }
}

/// Parses a command line whose relative paths are relative to `base`.
pub(crate) fn parse_relative_to<I, T>(base: &std::path::Path, args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    PATH_BASE.with(|b| *b.borrow_mut() = Some(base.to_path_buf()));
    let parsed = Cli::try_parse_from(args);
    PATH_BASE.with(|b| *b.borrow_mut() = None);
    parsed
}

impl Command {
    /// Whether the command works on a data directory it opens here (so that, beside a server,
    /// it runs in the server): offline verification and the gate touch none, the demo makes
    /// its own, and `synth`, `rules` and `bench` need none.
    pub(crate) fn opens_data_dir(&self) -> bool {
        match self {
            Command::Verify(args) => args.packs.is_none() || args.public_key.is_none(),
            Command::Gate(_) | Command::Demo(_) | Command::Synth(_) | Command::Rules(_) | Command::Bench(_) => false,
            _ => true,
        }
    }

    /// Whether the command appends to the log (and so seals, and is refused on an audit
    /// replay).
    pub(crate) fn writes(&self) -> bool {
        matches!(
            self,
            Command::Scan(ScanCommand::Import(_) | ScanCommand::Run(_) | ScanCommand::Release(_))
                | Command::Policy(PolicyCommand::Set(_))
                | Command::Approve(_)
                | Command::Watch(_)
                | Command::Keys(KeysCommand::Rotate(_))
                | Command::Tokens(TokensCommand::Create(_) | TokensCommand::Revoke(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path argument of every command is parsed by `PathArg`, so a command that
    /// `sv0 serve` runs for a client reads and writes the client's files.
    #[test]
    fn every_path_argument_is_relative_to_the_callers_directory() {
        fn walk(cmd: &clap::Command, checked: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_value_parser().type_id() != std::any::TypeId::of::<PathBuf>() {
                    continue;
                }
                let mut lenient = cmd.clone().ignore_errors(true).subcommand_required(false);
                for other in cmd.get_arguments() {
                    lenient = lenient.mut_arg(other.get_id(), |a| a.required(false));
                }
                let mut argv = vec!["x".to_string()];
                if let Some(long) = arg.get_long() {
                    argv.push(format!("--{long}"));
                }
                argv.push("rel/file".to_string());
                PATH_BASE.with(|b| *b.borrow_mut() = Some(PathBuf::from("/client")));
                let matches = lenient.try_get_matches_from(&argv);
                PATH_BASE.with(|b| *b.borrow_mut() = None);
                let matches = matches.unwrap_or_else(|e| panic!("{} {}: {e}", cmd.get_name(), arg.get_id()));
                let parsed = matches.get_many::<PathBuf>(arg.get_id().as_str()).and_then(|mut v| v.next().cloned());
                assert_eq!(
                    parsed.as_deref(),
                    Some(std::path::Path::new("/client/rel/file")),
                    "`{} --{}` is not parsed by PathArg",
                    cmd.get_name(),
                    arg.get_id()
                );
                checked.push(format!("{} {}", cmd.get_name(), arg.get_id()));
            }
            for sub in cmd.get_subcommands() {
                walk(sub, checked);
            }
        }
        let mut root = <Cli as clap::CommandFactory>::command();
        root.build();
        let mut checked = Vec::new();
        walk(&root, &mut checked);
        assert!(checked.len() >= 30, "{checked:?}");
    }
}
