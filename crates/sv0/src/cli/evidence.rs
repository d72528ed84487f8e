//! The evidence and access commands' arguments: `verify`, `export`, `proof`, `keys`, `tokens`
//! and `gate`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{JsonArgs, PathArg};

/// `sv0 verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify exported pack files in this directory instead of the log (needs --public-key)
    #[arg(value_parser = PathArg, long, requires = "public_key", value_name = "DIR")]
    pub packs: Option<PathBuf>,
    /// PEM public key(s) to verify exported packs with
    #[arg(value_parser = PathArg, long, requires = "packs", value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// A checkpoint (`sv0 export checkpoint`) the packs must extend: detects a truncated chain
    /// and any pack replaced before the checkpoint's size
    #[arg(value_parser = PathArg, long, requires = "packs", value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The Time Stamping Authority certificate(s) to trust (PEM): verify every RFC 3161 token of
    /// the directory (timestamp-NNNNNN.txt/.tsq/.tsr) and report the time each pack existed by
    #[arg(value_parser = PathArg, long, requires = "packs", value_name = "CA.pem")]
    pub tsa_cert: Option<PathBuf>,
    /// The faster check: compare packs with the views as they stand instead of replaying the
    /// whole log into scratch views, and trust files SV0 closed cleanly instead of checking
    /// every page
    #[arg(long, conflicts_with = "packs")]
    pub quick: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 export ...`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a tenant's packs (one file each, in chain order) and its public key
    Packs(ExportPacksArgs),
    /// Print the input document a Rego disposition policy sees for a scope (OPA / Conftest)
    OpaInput(ExportOpaInputArgs),
    /// Print the tenant's pack log checkpoint: a C2SP signed note (origin, size, root) signed
    /// with the pack signing key
    Checkpoint(ExportCheckpointArgs),
    /// Write every pack as an in-toto Statement (and each gate decision as a SLSA VSA) in a
    /// DSSE envelope, one per line
    Attestations(ExportAttestationsArgs),
    /// Print the paths (of a scope) as a BloodHound OpenGraph document, to look at in BloodHound
    Opengraph(ExportOpengraphArgs),
}

/// `sv0 keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create this installation's signing key now (otherwise created at the first seal)
    Generate(JsonArgs),
    /// Replace the signing key: every tenant chain records the new key from its next pack on,
    /// and the old private key is destroyed
    Rotate(KeyRotateArgs),
    /// Write the tenant's public keys, each with the pack range it may sign, for
    /// `sv0 verify --packs DIR --public-key FILE`
    Export(KeyExportArgs),
    /// List the tenant's keys with their validity ranges
    List(JsonArgs),
}

/// `sv0 gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Base URL of `sv0 serve` (http://HOST:PORT)
    #[arg(long, env = "SV0_URL", value_name = "URL")]
    pub url: String,
    /// A file holding an analyst token (else the SV0_TOKEN environment variable)
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The scope the deployment is judged for
    #[arg(long)]
    pub scope: String,
    /// The environment deployed to
    #[arg(long)]
    pub environment: String,
    /// Repository deployed
    #[arg(long, env = "CI_PROJECT_PATH")]
    pub repository: Option<String>,
    /// CI run id
    #[arg(long, env = "CI_PIPELINE_ID")]
    pub run_id: Option<String>,
    /// Commit deployed
    #[arg(long, env = "CI_COMMIT_SHA")]
    pub commit: Option<String>,
    /// A targeted sync of these workloads only (repeatable) [default: a full one]
    #[arg(long = "target", value_name = "WORKLOAD")]
    pub targets: Vec<String>,
    /// How long to wait for the sync
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    /// How often to ask
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll: std::time::Duration,
    /// Also write a JUnit report here
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The gate runs after the deployment job (a post-deployment rescan, sealed as a
    /// post_deployment_delta) [default: before it, sealed as a pre_deployment_assessment]
    #[arg(long, conflicts_with = "plan")]
    pub after_deployment: bool,
    /// Judge the deployment's plan instead (Terraform JSON plan or ARM what-if): a what-if on
    /// the server, nothing scanned or recorded; exit 0 when the planned change needs no review
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

/// `sv0 tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token for a tenant; the token is printed once, alone on the last line
    Create(TokenCreateArgs),
    /// Revoke a token (by id or name): it authenticates nothing from now on
    Revoke(TokenRevokeArgs),
    /// List a tenant's tokens (never their secrets)
    List(JsonArgs),
}

/// `sv0 tokens create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A role: viewer, analyst, approver, auditor, admin (repeatable)
    #[arg(long = "role", required = true, value_name = "ROLE")]
    pub roles: Vec<String>,
    /// A name for people [default: the roles joined by '+']
    #[arg(long)]
    pub name: Option<String>,
    /// Who acts with the token: what approvals and scans record [default: the name]
    #[arg(long)]
    pub principal: Option<String>,
    /// The token stops authenticating after this long (e.g. 90d, 12h); none: until revoked
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub expires_in: Option<std::time::Duration>,
}

/// `sv0 tokens revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id or name
    pub token: String,
    /// Why (recorded on the log)
    #[arg(long, default_value = "revoked")]
    pub reason: String,
}

/// `sv0 keys rotate`.
#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// Why the key is rotated (recorded on the log)
    #[arg(long, default_value = "scheduled rotation")]
    pub reason: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 keys export`.
#[derive(Debug, Args)]
pub struct KeyExportArgs {
    /// Write to this file instead of standard output
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sv0 export opengraph`.
#[derive(Debug, Args)]
pub struct ExportOpengraphArgs {
    /// Only this scope's paths
    #[arg(long)]
    pub scope: Option<String>,
    /// Write to this file instead of standard output
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sv0 export attestations`.
#[derive(Debug, Args)]
pub struct ExportAttestationsArgs {
    /// The file to write (by convention FILE.intoto.jsonl)
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: PathBuf,
    /// An artifact the deployment shipped, as the subject of its deployment attestations
    /// (repeatable), besides the commit the sync named
    #[arg(long, value_name = "NAME=sha256:HEX")]
    pub subject: Vec<String>,
    /// The deployment the --subject artifacts belong to, by its deployment_id (REPOSITORY#RUN_ID);
    /// by default the latest deployment assessed
    #[arg(long, value_name = "DEPLOYMENT_ID", requires = "subject")]
    pub deployment: Option<String>,
}

/// `sv0 export checkpoint`.
#[derive(Debug, Args)]
pub struct ExportCheckpointArgs {
    /// Write to this file instead of standard output
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sv0 proof`.
#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// The inclusion proof (audit path) of a pack in the tenant's tree now
    Inclusion(InclusionArgs),
    /// The consistency proof between the tree at two sizes
    Consistency(ConsistencyArgs),
}

/// `sv0 proof inclusion`.
#[derive(Debug, Args)]
pub struct InclusionArgs {
    /// The pack: its id, or its chain index (from 1)
    pub pack: String,
    /// Print JSON (leaf index, tree size, leaf hash, root, audit path, as hex)
    #[arg(long)]
    pub json: bool,
}

/// `sv0 proof consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The older tree size
    pub old_size: u64,
    /// The newer tree size
    pub new_size: u64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `sv0 export opa-input`.
#[derive(Debug, Args)]
pub struct ExportOpaInputArgs {
    /// The scope (it must have an approved baseline)
    #[arg(long)]
    pub scope: String,
    /// Write to this file instead of standard output
    #[arg(value_parser = PathArg, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sv0 export packs`.
#[derive(Debug, Args)]
pub struct ExportPacksArgs {
    /// Directory to write to
    #[arg(value_parser = PathArg, long)]
    pub out: PathBuf,
}
