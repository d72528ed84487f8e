//! One function per command: parse what clap could not, call the service, print.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use sv0_domain::events::Acknowledgement;
use sv0_domain::snapshot::ScanTrigger;
use sv0_domain::{InvalidInput, Timestamp};
use sv0_projections::{FindingStatus, PathFilter};
use sv0_service::{Approval, AsOf, Freshness, LogTarget, Reviewed, Service, ServiceError, VerifyMode};
use sv0_signer::{KeyRing, entries_from_dir, verify_chain};

use crate::{
    ApproveArgs, BaselinesArgs, Cli, Command, DeltaArgs, EXIT_NO, EXIT_OK, ExportCommand, FindingsArgs, ImportArgs,
    PathsArgs, PolicyCommand, ProofCommand, ReviewArgs, RulesArgs, ScanCommand, WhatifArgs, render,
};

/// Largest snapshot file `scan import` reads.
pub(crate) const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

/// Where a command's notes (standard error) and questions go: the user's terminal, or the
/// client of `sv0 serve`'s local socket (`crate::local`).
pub(crate) trait Console {
    /// Writes a note for standard error (one or more lines, without the last newline).
    fn note(&mut self, text: &str) -> std::io::Result<()>;
    /// Whether a person can answer questions.
    fn interactive(&self) -> bool;
    /// Asks a yes/no question; no answer (end of input) is "no".
    fn confirm(&mut self, question: &str) -> std::io::Result<bool>;
}

/// This process's own standard error and input.
pub(crate) struct Terminal;

impl Console for Terminal {
    fn note(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{text}")
    }

    fn interactive(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        let mut stderr = std::io::stderr();
        write!(stderr, "{question} [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
    }
}

/// Runs one parsed command.
pub async fn dispatch(cli: Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    if let Command::Verify(args) = &cli.command
        && let (Some(dir), Some(key)) = (&args.packs, &args.public_key)
    {
        // Offline verification touches no data directory at all.
        return verify_offline(dir, key, args.checkpoint.as_deref(), args.json, out);
    }
    if let Command::Gate(args) = &cli.command {
        // The gate talks to a server; it touches no data directory.
        return crate::gate::run(args, out).await;
    }
    let data_dir = match &cli.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    let target = LogTarget::parse(cli.log.as_deref(), cli.log_replicas)?;
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(cli.data_dir.clone(), &target, args.json, out).await;
    }
    if let Command::Synth(args) = &cli.command {
        return crate::synth::run(args, out);
    }
    if let Command::Rules(args) = &cli.command {
        return rules(args, out);
    }
    if let Command::Bench(args) = &cli.command {
        if let Some(url) = &args.http {
            return crate::load::run(args, url, out).await;
        }
        if let Some(identities) = args.vendor_identities {
            return crate::bench::vendor(identities, args.json, out).await;
        }
        if let Some(file) = &args.snapshot_out {
            crate::bench::write_snapshot(args.paths, file)?;
            writeln!(out, "wrote a synthetic snapshot of about {} paths to {}", args.paths, file.display())?;
            return Ok(EXIT_OK);
        }
        return match &target {
            LogTarget::Embedded => crate::bench::run(args.paths, args.skip_replay, args.json, out).await,
            LogTarget::JetStream { url, replicas } => {
                crate::bench::run_jetstream(url, *replicas, args.events, args.json, out).await
            }
        };
    }
    if target == LogTarget::Embedded && !creates_data(&cli.command) && !data_dir.join("log.redb").exists() {
        // A mistyped --data-dir must not become a new, empty database that answers "nothing".
        bail!(
            "{} holds no SV0 data (no log.redb): check --data-dir (or SV0_DATA_DIR), or start one with \
             `sv0 demo` or `sv0 scan import FILE`",
            data_dir.display()
        );
    }
    if let Command::Verify(args) = &cli.command
        && !args.quick
    {
        // Verification trusts no clean-close stamp: both files are checked page by page.
        sv0_service::DataDir::create(&data_dir)?.distrust_files();
    }
    if matches!(cli.command, Command::Rebuild) {
        // Views folded from another log cannot be opened; rebuilding replaces them anyway.
        let views = sv0_service::DataDir::create(&data_dir)?.views_path();
        if views.exists() {
            std::fs::remove_file(&views).with_context(|| format!("cannot remove {}", views.display()))?;
        }
    }
    if let Command::Scan(ScanCommand::Run(args)) = &cli.command {
        return scan_run(args, cli.tenant.as_deref(), &data_dir, &target, cli.no_seal, out).await;
    }
    let mut service = Service::open_target(&data_dir, &target)
        .await
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let writing = writes(&cli.command) || matches!(cli.command, Command::Project | Command::Sign | Command::Serve(_));
    if let Some(replay) = service.data_dir().replay() {
        if writing {
            bail!(
                "{} is an audit replay (log up to position {}): it is read-only",
                data_dir.display(),
                replay["until_position"]
            );
        }
        service = service.without_sealing();
    } else if service.is_read_only() {
        if writing || matches!(cli.command, Command::Rebuild) {
            bail!(
                "{} is read-only here (a read-only mount, a full disk, or files this user may not write): queries and `sv0 verify` answer from it, nothing can be written",
                data_dir.display()
            );
        }
        service = service.without_sealing();
    }
    if cli.no_seal {
        service = service.without_sealing();
    }
    let console = &mut Terminal;
    prepare(&cli.command, &mut service, console).await?;
    execute(cli, &mut service, console, out).await
}

/// Brings the views up to date for a command: read-only commands only catch them up; commands
/// that write also seal pending packs (when the service seals); the long-running processes do
/// their own.
pub(crate) async fn prepare(
    command: &Command,
    service: &mut Service<sv0_service::AnyLog>,
    console: &mut dyn Console,
) -> anyhow::Result<()> {
    match command {
        // Rebuilding folds the whole log into a fresh file anyway.
        // Verification folds what it needs itself and reports a damaged log as its verdict.
        Command::Project | Command::Sign | Command::Serve(_) | Command::Rebuild | Command::Verify(_) => {}
        command if writes(command) => {
            service.sync().await.context("cannot bring the views and packs up to date")?;
        }
        _ => match service.catch_up_for_query().await? {
            Freshness::Current => {}
            Freshness::InMemory(why) => console.note(&format!(
                "warning: the views cannot be saved here ({:#}); this answer was folded in memory",
                anyhow::Error::new(why)
            ))?,
            Freshness::Behind { behind, why } => console.note(&format!(
                "warning: the views could not be brought up to date ({:#}); answering from the views as they stand, {behind} event(s) behind the log",
                anyhow::Error::new(why)
            ))?,
        },
    }
    Ok(())
}

/// Runs a command on an open, prepared service: in this process, or in `sv0 serve` for a
/// client of its local socket.
pub(crate) async fn execute(
    cli: Cli,
    service: &mut Service<sv0_service::AnyLog>,
    console: &mut dyn Console,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    // A question "as of" a point is answered from the log's prefix, folded in memory; the
    // answer says what point that is and what the log covers.
    if let Some((text, machine)) = as_of_arg(&cli.command) {
        let as_of = AsOf::parse(text)?;
        let coverage = service.coverage().await?;
        let at = if let Command::Paths(_) = &cli.command {
            service.position_of(as_of).await?
        } else {
            service.travel_to(as_of).await?
        };
        let note = format!("as of {text}: the log up to position {at}. {coverage}.");
        if machine {
            console.note(&note)?;
        } else {
            writeln!(out, "{note}")?;
        }
    }
    let tenant = cli.tenant.as_deref();
    match cli.command {
        Command::Watch(args) => crate::watch::run(service, tenant, args, out).await,
        Command::Demo(_) | Command::Bench(_) | Command::Synth(_) | Command::Rules(_) | Command::Gate(_) => {
            unreachable!("handled above")
        }
        Command::Scan(ScanCommand::Import(args)) => import(service, tenant, args, out).await,
        Command::Scan(command) => crate::governance::scan(service, tenant, command, out).await,
        Command::Policy(command) => crate::governance::policy(service, tenant, command, out).await,
        Command::Paths(args) => paths(service, tenant, args, out).await,
        Command::Findings(args) => findings(service, tenant, args, out),
        Command::Review(args) => review(service, tenant, args, out),
        Command::Whatif(args) => whatif(service, tenant, args, out),
        Command::Approve(args) => approve(service, tenant, args, console, out).await,
        Command::Delta(args) => delta(service, tenant, args, out),
        Command::Baselines(args) => baselines(service, tenant, args, out),
        Command::Scopes(args) => scopes(service, tenant, args.json, out),
        Command::Verify(args) => {
            let mode = if args.quick { VerifyMode::Quick } else { VerifyMode::Replay };
            verify_log(service, tenant, mode, args.json, out).await
        }
        Command::Keys(command) => crate::keys::run(service, tenant, command, out).await,
        Command::Tokens(command) => crate::keys::tokens(service, tenant, command, out).await,
        Command::Export(ExportCommand::Attestations(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let envelopes = service.attestations(&tenant)?;
            let mut lines = String::new();
            for envelope in &envelopes {
                lines.push_str(&serde_json::to_string(envelope)?);
                lines.push('\n');
            }
            std::fs::write(&args.out, lines).with_context(|| format!("cannot write {}", args.out.display()))?;
            writeln!(out, "wrote {} attestation(s) of tenant {tenant} to {}", envelopes.len(), args.out.display())?;
            Ok(EXIT_OK)
        }
        Command::Export(ExportCommand::Checkpoint(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let note = service.checkpoint(&tenant)?;
            emit(out, args.out.as_deref(), &note, &format!("the checkpoint of tenant {tenant}"))
        }
        Command::Proof(ProofCommand::Inclusion(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let proof = service.inclusion_proof(&tenant, &args.pack)?;
            if args.json {
                print_json(out, &proof)?;
            } else {
                writeln!(
                    out,
                    "pack {} is leaf {} of {} (leaf hash {})\nroot {}\naudit path:",
                    proof.pack_id, proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.root
                )?;
                for hash in &proof.audit_path {
                    writeln!(out, "  {hash}")?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Proof(ProofCommand::Consistency(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let proof = service.consistency_proof(&tenant, args.old_size, args.new_size)?;
            if args.json {
                print_json(out, &proof)?;
            } else {
                writeln!(
                    out,
                    "tree {} (root {}) is a prefix of tree {} (root {}):",
                    proof.old_size, proof.old_root, proof.new_size, proof.new_root
                )?;
                for hash in &proof.proof {
                    writeln!(out, "  {hash}")?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Export(ExportCommand::Opengraph(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let scope = args.scope.as_deref().map(|s| service.scope(&tenant, s)).transpose()?;
            let paths = service.paths(&tenant, scope.as_ref(), None).await?;
            let text = format!("{}\n", serde_json::to_string_pretty(&sv0_service::opengraph::document(&paths))?);
            emit(out, args.out.as_deref(), &text, &format!("{} path(s) of tenant {tenant} as OpenGraph", paths.len()))
        }
        Command::Export(ExportCommand::OpaInput(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let scope = service.scope(&tenant, &args.scope)?;
            let input = service.opa_input(&tenant, &scope)?;
            let text = format!("{}\n", serde_json::to_string_pretty(&input)?);
            emit(out, args.out.as_deref(), &text, &format!("the OPA input of scope {scope}"))
        }
        Command::Export(ExportCommand::Packs(args)) => {
            let tenant = service.known_tenant(tenant)?;
            let count = service.export_packs(&tenant, &args.out).await?;
            let key_file = args.out.join("public-key.pem");
            // The checkpoint fixes the chain's length and root: a verifier given it notices
            // packs left out of the directory, not only altered ones.
            let checkpoint_file = args.out.join("checkpoint.txt");
            let checkpoint = match service.checkpoint(&tenant) {
                Ok(note) => {
                    std::fs::write(&checkpoint_file, note)
                        .with_context(|| format!("cannot write {}", checkpoint_file.display()))?;
                    true
                }
                Err(e) => {
                    writeln!(out, "no checkpoint written: {e}")?;
                    false
                }
            };
            writeln!(
                out,
                "wrote {count} pack(s) of tenant {tenant}, public-key.pem{} to {}",
                if checkpoint { " and checkpoint.txt" } else { "" },
                args.out.display()
            )?;
            let ring = sv0_signer::KeyRing::from_pem_file(&key_file)?;
            for key in ring.keys() {
                writeln!(
                    out,
                    "public key fingerprint: sha256:{} (compare it with the one your organisation published, out of band)",
                    sv0_signer::keys::key_id(key)
                )?;
            }
            writeln!(
                out,
                "verify offline: sv0 verify --packs {} --public-key {}{}",
                args.out.display(),
                key_file.display(),
                if checkpoint { format!(" --checkpoint {}", checkpoint_file.display()) } else { String::new() }
            )?;
            Ok(EXIT_OK)
        }
        Command::Signals(args) => {
            let tenant = tenant.map(sv0_domain::TenantId::new).transpose()?;
            let mut since = args.since;
            let mut shutdown = std::pin::pin!(shutdown_signal());
            loop {
                for signal in service.signals_after(tenant.as_ref(), since)? {
                    writeln!(out, "{}", serde_json::to_string(&signal.cloudevent())?)?;
                    since = since.max(signal.assessed_seq);
                }
                out.flush()?;
                if !args.follow {
                    return Ok(EXIT_OK);
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(EXIT_OK),
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
                service.catch_up().await?;
            }
        }
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let metrics_listener = match &args.metrics_listen {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr} for /metrics"))?,
                ),
                None => None,
            };
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mut notices: Vec<String> = Vec::new();
            let mut state = sv0_api::ApiState::new(service);
            state.max_body = args.max_body;
            let config = service.data_dir().config()?;
            state.sync_source = match (&args.sync_snapshot, args.sync_connectors.is_empty()) {
                (Some(file), _) => Some(sv0_api::syncs::SyncSource::Snapshot(file.clone())),
                (None, false) => {
                    Some(sv0_api::syncs::SyncSource::Connectors(Arc::new(crate::connect::SyncConnectors {
                        args: crate::ConnectorArgs::new(args.sync_connectors.clone(), args.sync_from_export.clone()),
                        tenant: tenant.map(str::to_string),
                        config: config.connectors.clone().unwrap_or_default(),
                    })))
                }
                (None, true) => None,
            };
            if let Some(oidc) = &config.oidc {
                let verifier = sv0_api::oidc::OidcVerifier::load(oidc, &state.http).await?;
                notices.push(format!("OIDC sign-in: tokens of {} for tenant {}", oidc.issuer, oidc.tenant));
                state.oidc = Some(Arc::new(verifier));
            }
            if let Some(ado) = config.azure_devops {
                state.azure_devops = ado.collection_urls;
            }
            if let Some(config) = config.github {
                let app = sv0_api::github::GitHubApp::load(&config, state.http.clone())?
                    .remember_in(service.data_dir().root().join("github-deliveries"))?;
                notices.push("GitHub deployment protection rules: /integrations/github/deployment-protection".into());
                state.github = Some(Arc::new(app));
            }
            state.failures = sv0_api::auth::FailedAuth::with_limit(args.auth_failures_per_minute);
            state.max_connections = args.max_connections.max(1);
            state.metrics_tenant_labels = args.metrics_tenant_labels;
            state.trusted_proxies = args.trusted_proxies.clone();
            let state = Arc::new(state);
            // With the embedded log this process holds the directory's files: the CLI's
            // commands on it run here, through the directory's socket.
            let socket = match service.log() {
                sv0_service::AnyLog::Embedded(_) => {
                    Some(crate::local::listen(service.data_dir().root(), Arc::clone(&state), stopped.clone())?)
                }
                sv0_service::AnyLog::JetStream(_) => None,
            };
            // Supervisors and tests read the addresses from the first lines, once all listen.
            writeln!(out, "serving on http://{}", listener.local_addr()?)?;
            if let Some(l) = &metrics_listener {
                writeln!(out, "metrics on http://{}/metrics", l.local_addr()?)?;
            }
            if let Some(socket) = &socket {
                writeln!(
                    out,
                    "CLI commands on {} run through this server ({})",
                    service.data_dir().root().display(),
                    socket.path().display()
                )?;
            }
            for notice in notices {
                writeln!(out, "{notice}")?;
            }
            out.flush()?;
            if let Some(listener) = metrics_listener {
                let mut metrics_stopped = stopped.clone();
                let app = sv0_api::metrics_router(Arc::clone(&state));
                tokio::spawn(sv0_api::serve_router(listener, app, 64, async move {
                    let _ = metrics_stopped.wait_for(|stop| *stop).await;
                }));
            }
            let mut api_stopped = stopped.clone();
            let api = tokio::spawn(sv0_api::serve(listener, state, async move {
                let _ = api_stopped.wait_for(|stop| *stop).await;
            }));
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            let mut follow_stopped = stopped;
            let shutdown = async move {
                let _ = follow_stopped.wait_for(|stop| *stop).await;
            };
            let seal = !cli.no_seal;
            let mut progress = |seq: u64| {
                let _ = writeln!(out, "service: views at log position {seq}");
                let _ = out.flush();
            };
            follow(service, seal, &mut progress, shutdown).await?;
            api.await.context("the HTTP server task failed")??;
            writeln!(
                out,
                "stopped serving: views at log position {}, open requests finished",
                service.views().checkpoint()?
            )?;
            Ok(EXIT_OK)
        }
        Command::Project | Command::Sign => {
            let seal = matches!(cli.command, Command::Sign);
            let role = if seal { "signer" } else { "projector" };
            let mut last = None;
            let mut progress = |seq: u64| {
                if last != Some(seq) {
                    last = Some(seq);
                    // Supervisors and tests read progress from standard output, line by line.
                    let _ = writeln!(out, "{role}: views at log position {seq}");
                    let _ = out.flush();
                }
            };
            if seal {
                let none: Option<&sv0_service::signals::NoSignals> = None;
                service.follow(true, none, &mut progress, shutdown_signal()).await?;
            } else {
                follow(service, false, &mut progress, shutdown_signal()).await?;
            }
            Ok(EXIT_OK)
        }
        Command::Replay(args) => {
            let as_of = AsOf::parse(&args.until)?;
            let coverage = service.coverage().await?;
            let report = service.replay_to_dir(as_of, &args.out).await?;
            writeln!(out, "{coverage}.")?;
            writeln!(
                out,
                "replayed the log up to position {} ({} tenant(s)) into {}",
                report.until,
                report.tenants,
                args.out.display()
            )?;
            writeln!(
                out,
                "query it with: sv0 --data-dir {} paths | findings | baselines | verify ...",
                args.out.display()
            )?;
            Ok(EXIT_OK)
        }
        Command::Rebuild => {
            let reached = service.rebuild().await?;
            writeln!(out, "views rebuilt from the log up to position {reached}")?;
            Ok(EXIT_OK)
        }
    }
}

/// Whether a command appends to the log (and so seals, and is refused on an audit replay).
/// The `--as-of` of a query, and whether its output is for machines (JSON, SARIF, JUnit: the
/// note about the point goes to standard error).
fn as_of_arg(command: &Command) -> Option<(&str, bool)> {
    match command {
        Command::Paths(a) => Some((a.as_of.as_deref()?, a.json)),
        Command::Findings(a) => Some((a.as_of.as_deref()?, a.json || a.sarif || a.junit)),
        Command::Review(a) => Some((a.as_of.as_deref()?, a.json)),
        Command::Delta(a) => Some((a.as_of.as_deref()?, a.json)),
        Command::Baselines(a) => Some((a.as_of.as_deref()?, a.json)),
        _ => None,
    }
}

/// Whether the command may start a data directory of the embedded log: the ones that bring
/// data or set it up before the first scan (a policy, a key, a token, a server to push to).
/// Every other command needs a directory that holds a log.
fn creates_data(command: &Command) -> bool {
    matches!(
        command,
        Command::Scan(ScanCommand::Import(_) | ScanCommand::Run(_))
            | Command::Watch(_)
            | Command::Policy(PolicyCommand::Set(_))
            | Command::Keys(crate::KeysCommand::Generate(_))
            | Command::Tokens(crate::TokensCommand::Create(_))
            | Command::Serve(_)
    )
}

pub(crate) fn writes(command: &Command) -> bool {
    matches!(
        command,
        Command::Scan(ScanCommand::Import(_) | ScanCommand::Run(_) | ScanCommand::Release(_))
            | Command::Policy(PolicyCommand::Set(_))
            | Command::Approve(_)
            | Command::Watch(_)
            | Command::Keys(crate::KeysCommand::Rotate(_))
            | Command::Tokens(crate::TokensCommand::Create(_) | crate::TokensCommand::Revoke(_))
    )
}

/// Folds the log as it grows (and seals, with `seal`); a projector on JetStream also
/// publishes SOC signals.
async fn follow(
    service: &mut Service<sv0_service::AnyLog>,
    seal: bool,
    progress: &mut impl FnMut(u64),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    match service.log() {
        sv0_service::AnyLog::JetStream(log) => {
            let sink = sv0_service::signals::NatsSignals((**log).clone());
            service.follow(seal, Some(&sink), progress, shutdown).await?;
        }
        sv0_service::AnyLog::Embedded(_) => {
            let none: Option<&sv0_service::signals::NoSignals> = None;
            service.follow(seal, none, progress, shutdown).await?;
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("sv0")).context("no user data directory is known on this system. Pass --data-dir")
}

/// Writes `text` to `file` (saying so on `out`), or to `out` when there is no file.
pub(crate) fn emit(out: &mut dyn Write, file: Option<&Path>, text: &str, what: &str) -> anyhow::Result<u8> {
    match file {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
            writeln!(out, "wrote {what} to {}", file.display())?;
        }
        None => write!(out, "{text}")?,
    }
    Ok(EXIT_OK)
}

pub(crate) fn print_json<T: Serialize>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

fn broken_json(broken: &sv0_signer::BrokenLink) -> serde_json::Value {
    json!({
        "position": broken.position,
        "source": broken.source,
        "pack_id": broken.pack_id,
        "reason": broken.reason,
    })
}

/// Adds "nothing was appended" to errors of commands that failed before appending.
pub(crate) fn explain(error: ServiceError, what: String) -> anyhow::Error {
    if matches!(error, ServiceError::NotApplied { .. }) {
        anyhow::Error::new(error)
    } else {
        anyhow::Error::new(error).context(format!("{what}; nothing was appended"))
    }
}

async fn import(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ImportArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let size = std::fs::metadata(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?.len();
    if size > MAX_SNAPSHOT_BYTES {
        bail!("{} is {size} bytes; snapshots are limited to {MAX_SNAPSHOT_BYTES} bytes", args.file.display());
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let trigger = args.trigger.map(ScanTrigger::from);
    let not_imported = || format!("{} was not imported", args.file.display());
    let snapshot = match sv0_service::import::parse_snapshot(&bytes) {
        Ok(snapshot) => snapshot,
        Err(e @ (ServiceError::Snapshot(_) | ServiceError::SnapshotJson(_))) if args.json => {
            // Every problem, for a machine: the snapshot's author fixes them in one go.
            let problems = match &e {
                ServiceError::Snapshot(invalid) => invalid.problems.clone(),
                other => vec![other.to_string()],
            };
            print_json(out, &json!({ "imported": false, "file": args.file, "problems": problems }))?;
            return Ok(crate::EXIT_ERROR);
        }
        Err(e) => return Err(explain(e, not_imported())),
    };
    // A snapshot of another tenant than the one named is refused, as the API refuses one of
    // another tenant than the token's.
    if let Some(named) = tenant
        && named != snapshot.tenant.as_str()
    {
        bail!(
            "{}; nothing was appended: the snapshot is of tenant {}, and --tenant (or SV0_TENANT) names {named}",
            not_imported(),
            snapshot.tenant
        );
    }
    // The file's bytes are not needed while the scan is folded: free them first.
    drop(bytes);
    let report = service.import_parsed(snapshot, trigger, None).await.map_err(|e| explain(e, not_imported()))?;
    print_import(out, &report, args.json, None)
}

/// Prints what an import appended (with `extra` fields merged into the JSON).
fn print_import(
    out: &mut dyn Write,
    report: &sv0_service::ImportReport,
    as_json: bool,
    extra: Option<serde_json::Value>,
) -> anyhow::Result<u8> {
    if as_json {
        let mut value = json!({
                "tenant": report.tenant,
                "scan_id": report.scan_id,
                "duplicate": report.duplicate,
                "first_seq": report.first_seq,
                "last_seq": report.last_seq,
                "chunks": report.chunk_count,
                "entities": report.entity_count,
                "status": report.scan.as_ref().map(|s| format!("{:?}", s.status).to_lowercase()),
                "paths_total": report.scan.as_ref().map(|s| s.paths_total),
        });
        if let (Some(serde_json::Value::Object(extra)), Some(map)) = (extra, value.as_object_mut()) {
            map.extend(extra);
        }
        print_json(out, &value)?;
        return Ok(EXIT_OK);
    }
    if report.duplicate {
        writeln!(out, "scan {} of tenant {} is already on the log; nothing appended", report.scan_id, report.tenant)?;
    } else {
        writeln!(
            out,
            "imported scan {} of tenant {}: {} entities in {} chunk(s), log positions {}..{}",
            report.scan_id, report.tenant, report.entity_count, report.chunk_count, report.first_seq, report.last_seq
        )?;
    }
    match &report.scan {
        Some(scan) if scan.status == sv0_projections::ScanStatus::Applied => {
            writeln!(out, "{} authority paths now", scan.paths_total)?;
        }
        Some(scan) => writeln!(out, "scan rejected: {}", scan.reason.clone().unwrap_or_default())?,
        None => {}
    }
    Ok(EXIT_OK)
}

async fn paths(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: PathsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let filter = PathFilter {
        scope: args.scope.as_deref().map(|s| service.scope(&tenant, s)).transpose()?,
        workload: args.workload,
        identity: args.identity,
        destination: args.destination,
        domain: args.domain,
        grade: args.grade,
        egress: args.egress,
        owner_state: args.owner_state,
    };
    let as_of = args.as_of.as_deref().map(AsOf::parse).transpose()?;
    let (mut paths, posture) = service.query_paths_with_posture(&tenant, &filter, as_of).await?;
    let total = paths.len();
    if let Some(limit) = args.limit {
        paths.truncate(limit);
    }
    if args.json {
        // A scope's paths come with its posture digest: what `approve --posture` names.
        match &posture {
            Some(p) => print_json(
                out,
                &json!({
                    "tenant": tenant,
                    "scope": p.scope,
                    "posture_digest": p.digest,
                    "log_position": p.position,
                    "total": total,
                    "paths": paths,
                }),
            )?,
            None => print_json(out, &paths)?,
        }
        return Ok(EXIT_OK);
    }
    let what =
        filter.scope.as_ref().map_or_else(|| format!("tenant {tenant}"), |s| format!("scope {s} of tenant {tenant}"));
    let when = args.as_of.as_ref().map_or_else(String::new, |a| format!(" as of {a}"));
    let shown = if paths.len() < total { format!(" (first {} shown)", paths.len()) } else { String::new() };
    writeln!(out, "{total} authority path(s) in {what}{when}{shown}")?;
    if !paths.is_empty() {
        writeln!(out, "{}", render::paths(&paths))?;
    }
    if let Some(p) = posture {
        writeln!(out, "{}", posture_line(&p, args.as_of.is_some()))?;
    }
    Ok(EXIT_OK)
}

fn findings(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: FindingsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    // Acknowledgements fall due against the tenant's latest scan time: the log's clock.
    let at = service.views().tenant_state(&tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
    if let Some(crate::FindingsCommand::Show(show)) = &args.command {
        return finding_show(service, &tenant, show, at, out);
    }
    let scope = args.scope.as_deref().map(|s| service.scope(&tenant, s)).transpose()?;
    let mut records = service.findings(&tenant, scope.as_ref())?;
    if !args.all {
        records.retain(|r| r.status == FindingStatus::Open);
    }
    // Most urgent first.
    records.sort_by(|a, b| {
        (a.finding.severity, &a.finding.rule_id, &a.finding.finding_id).cmp(&(
            b.finding.severity,
            &b.finding.rule_id,
            &b.finding.finding_id,
        ))
    });
    if args.sarif {
        print_json(out, &crate::report::sarif(tenant.as_str(), &records, at))?;
        return Ok(EXIT_OK);
    }
    if args.junit {
        write!(out, "{}", crate::report::junit(tenant.as_str(), &records, at))?;
        return Ok(EXIT_OK);
    }
    let posture = scope.as_ref().map(|s| service.posture(&tenant, s)).transpose()?;
    if args.json {
        let listed: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r)?;
                value["lifecycle"] = json!(r.lifecycle(at));
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        // A scope's findings come with its posture digest: what `approve --posture` names.
        match &posture {
            Some(p) => print_json(
                out,
                &json!({
                    "tenant": tenant,
                    "scope": p.scope,
                    "posture_digest": p.digest,
                    "log_position": p.position,
                    "findings": listed,
                }),
            )?,
            None => print_json(out, &listed)?,
        }
        return Ok(EXIT_OK);
    }
    writeln!(out, "{} finding(s)", records.len())?;
    if !records.is_empty() {
        render::findings_to(out, &records, at)?;
        writeln!(out)?;
    }
    if let Some(p) = posture {
        writeln!(out, "{}", posture_line(&p, false))?;
    }
    Ok(EXIT_OK)
}

/// `sv0 findings show ID`: one finding in full.
fn finding_show(
    service: &Service<impl sv0_log::EventLog>,
    tenant: &sv0_domain::TenantId,
    show: &crate::FindingShowArgs,
    at: Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let records = service.findings(tenant, None)?;
    let Some(r) = records.iter().find(|r| r.finding.finding_id == show.id) else {
        let ids = records.iter().map(|r| r.finding.finding_id.as_str());
        bail!(
            "no finding {} in tenant {tenant}{} (`sv0 findings --all` lists them)",
            show.id,
            sv0_service::scopes::did_you_mean(&show.id, ids)
        );
    };
    if show.json {
        let mut value = serde_json::to_value(r)?;
        value["lifecycle"] = json!(r.lifecycle(at));
        print_json(out, &value)?;
        return Ok(EXIT_OK);
    }
    let f = &r.finding;
    writeln!(out, "{} {} ({}): {}", f.finding_id, f.rule_id, f.severity.as_str(), f.title)?;
    writeln!(out, "status:    {}", r.lifecycle(at).as_str())?;
    writeln!(out, "subject:   {}", f.subject)?;
    writeln!(out, "summary:   {}", f.summary)?;
    writeln!(out, "opened:    {} (log position {})", r.opened_at, r.opened_seq)?;
    if let (Some(at), Some(seq)) = (r.resolved_at, r.resolved_seq) {
        writeln!(out, "resolved:  {at} (log position {seq})")?;
    }
    if let Some(a) = &r.acknowledgement {
        writeln!(out, "acknowledged by {} on {}, until {}", a.by, a.at, a.due.date())?;
    }
    writeln!(out, "workloads: {}", f.workloads.join(", "))?;
    writeln!(out, "paths:     {}", f.path_ids.join(", "))?;
    writeln!(out, "records:   {}", f.records.join(", "))?;
    writeln!(out, "remediation:")?;
    for action in &f.remediation {
        writeln!(out, "  - {} ({} {})", action.text, action.action, action.record_id)?;
    }
    Ok(EXIT_OK)
}

fn rules(args: &RulesArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    use sv0_domain::findings::CATALOGUE;
    if args.json {
        print_json(out, &CATALOGUE.as_slice())?;
    } else if args.markdown {
        write!(out, "{}", crate::report::rules_markdown())?;
    } else {
        writeln!(out, "{} rules", CATALOGUE.len())?;
        writeln!(out, "{}", render::rules(&CATALOGUE))?;
    }
    Ok(EXIT_OK)
}

/// The posture line under a scope's paths or findings; a historical one (`--as-of`) is for
/// comparing with an approval's digest, not for approving.
fn posture_line(p: &sv0_service::Posture, historical: bool) -> String {
    if historical {
        return format!("posture of scope {} at log position {}: {}", p.scope, p.position, p.digest);
    }
    format!(
        "posture of scope {}: {}@{} (approve exactly this with `sv0 approve --scope {} --posture {}@{}`)",
        p.scope, p.digest, p.position, p.scope, p.digest, p.position
    )
}

fn review(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ReviewArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let review = service.review(&tenant, &scope)?;
    if args.json {
        print_json(out, &review)?;
        return Ok(EXIT_OK);
    }
    let at = service.views().tenant_state(&tenant)?.map(|s| s.last_observed_at).unwrap_or_default();
    write!(out, "{}", render::review(&review, at))?;
    Ok(EXIT_OK)
}

/// Parses `FINDING=YYYY-MM-DD`.
pub fn parse_ack(text: &str) -> Result<Acknowledgement, InvalidInput> {
    let (finding_id, due) = text
        .split_once('=')
        .ok_or_else(|| InvalidInput::new(format!("invalid --ack {text:?}: use FINDING=YYYY-MM-DD")))?;
    let due = Timestamp::parse_due(due)?;
    Ok(Acknowledgement { finding_id: finding_id.trim().to_string(), due })
}

/// `approve --dry-run`: what the approval would lock.
fn print_approval_plan(out: &mut dyn Write, plan: &sv0_service::ApprovalPlan) -> anyhow::Result<()> {
    writeln!(
        out,
        "dry run, nothing recorded: approving would lock baseline v{} of scope {}, posture {}@{}",
        plan.version, plan.scope, plan.posture_digest, plan.posture_seq
    )?;
    writeln!(out, "{} path(s):", plan.paths.len())?;
    for p in &plan.paths {
        writeln!(
            out,
            "  {} -> {} -> {} ({}): {} [{}]",
            p.workload.name,
            p.identity.name,
            p.destination.name,
            p.domain.name,
            render::permissions(&p.permissions),
            p.grade.as_str()
        )?;
    }
    writeln!(out, "{} finding(s) acknowledged:", plan.acknowledged.len())?;
    for ack in &plan.acknowledged {
        writeln!(out, "  {} until {}", ack.finding_id, ack.due.date())?;
    }
    writeln!(out, "{} open finding(s) left unacknowledged:", plan.unacknowledged.len())?;
    for record in &plan.unacknowledged {
        let f = &record.finding;
        writeln!(out, "  {} {} {}: {}", f.finding_id, f.severity.as_str(), f.rule_id, f.summary)?;
    }
    match &plan.intent {
        Some(items) => writeln!(out, "{} intended addition(s) declared", items.len())?,
        None => writeln!(out, "no intent declared: every later addition is unreviewed")?,
    }
    Ok(())
}

async fn approve(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: ApproveArgs,
    console: &mut dyn Console,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let acks = args.acks.iter().map(|a| parse_ack(a)).collect::<Result<Vec<_>, _>>()?;
    let posture = args.posture.as_deref().map(Reviewed::parse).transpose()?;
    let mut intent = args.intent.as_deref().map(read_intent).transpose()?;
    let mut plan_digest = None;
    if let Some(path) = &args.plan {
        let report = service.whatif(&tenant, &scope, &read_plan(path)?)?;
        let planned = sv0_service::whatif::planned_intent(&report);
        writeln!(
            out,
            "plan {} ({}): {} planned addition(s) declared as intent{}",
            report.plan_digest,
            report.plan_format,
            planned.len(),
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} resource(s) skipped (see `sv0 whatif`)", report.skipped.len())
            }
        )?;
        intent.get_or_insert_with(Vec::new).extend(planned);
        plan_digest = Some(report.plan_digest);
    }
    let approver = service.data_dir().principal()?;
    let request = Approval {
        note: args.note,
        acknowledged: acks,
        intent,
        posture: posture.clone(),
        by: sv0_domain::events::Actor::host(&approver),
        plan_digest,
        force: args.force,
    };
    let now = Timestamp::now();
    let plan = match service.plan_approval(&tenant, &scope, &request, now).await {
        Ok(plan) => plan,
        Err(e @ ServiceError::PostureChanged { .. }) => {
            writeln!(out, "refused, nothing was approved: {e}")?;
            return Ok(EXIT_NO);
        }
        Err(e) => return Err(explain(e, "nothing was approved".to_string())),
    };
    let high: Vec<&sv0_projections::FindingRecord> = plan
        .unacknowledged
        .iter()
        .filter(|r| {
            matches!(
                r.finding.severity,
                sv0_domain::findings::Severity::High | sv0_domain::findings::Severity::Critical
            )
        })
        .collect();
    if args.dry_run {
        if args.json {
            print_json(out, &plan)?;
        } else {
            print_approval_plan(out, &plan)?;
        }
        return Ok(EXIT_OK);
    }
    if !high.is_empty() && !args.yes && console.interactive() {
        let mut list =
            format!("{} high or critical finding(s) of scope {} stay open, unacknowledged:", high.len(), plan.scope);
        for record in &high {
            list.push_str(&format!(
                "\n  {} {} {}",
                record.finding.finding_id,
                record.finding.severity.as_str(),
                record.finding.summary
            ));
        }
        console.note(&list)?;
        if !console.confirm(&format!("lock baseline v{} with them open?", plan.version))? {
            writeln!(out, "nothing was approved")?;
            return Ok(EXIT_NO);
        }
    }
    let report = match service.approve_with(&tenant, &scope, request, now).await {
        Ok(report) => report,
        Err(e @ ServiceError::PostureChanged { .. }) => {
            writeln!(out, "refused, nothing was approved: {e}")?;
            return Ok(EXIT_NO);
        }
        Err(e) => return Err(explain(e, "nothing was approved".to_string())),
    };
    let b = &report.baseline;
    if args.json {
        print_json(out, b)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "baseline v{} of scope {} locked by {} at {}: {} path(s), {} finding(s) acknowledged, {} (log position {})",
        b.version,
        b.scope,
        b.approver,
        b.approved_at,
        b.paths.len(),
        b.acknowledged.len(),
        match &b.intent {
            Some(items) => format!("{} intended addition(s) declared", items.len()),
            None => "no intent declared: every later addition is unreviewed".to_string(),
        },
        report.seq
    )?;
    let digest = b.posture_digest.as_deref().unwrap_or("-");
    match posture {
        Some(_) => writeln!(out, "posture approved: {digest}@{} (as reviewed)", b.posture_seq)?,
        None => writeln!(
            out,
            "posture approved: {digest}@{} (no --posture given: compare it with the one you reviewed)",
            b.posture_seq
        )?,
    }
    Ok(EXIT_OK)
}

/// Reads a plan file (at most `plan::MAX_PLAN_BYTES`).
fn read_plan(path: &Path) -> anyhow::Result<Vec<u8>> {
    let max = sv0_connectors::plan::MAX_PLAN_BYTES as u64;
    let file = std::fs::File::open(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("reading the plan {}", path.display()))?;
    if bytes.len() as u64 > max {
        anyhow::bail!(InvalidInput::new(format!("the plan {} is larger than {max} bytes", path.display())));
    }
    Ok(bytes)
}

fn whatif(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: WhatifArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let bytes = read_plan(&args.plan)?;
    let report = service.whatif(&tenant, &scope, &bytes)?;
    if args.json {
        print_json(out, &report)?;
        return Ok(EXIT_OK);
    }
    write!(out, "{}", render::whatif(&report))?;
    Ok(EXIT_OK)
}

/// Reads a declared intent file: a JSON list of intent items, at most 16 MiB.
fn read_intent(path: &Path) -> anyhow::Result<Vec<sv0_domain::intent::IntentItem>> {
    const MAX: u64 = 16 * 1024 * 1024;
    let file = std::fs::File::open(path).with_context(|| format!("reading the intent {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX + 1).read_to_string(&mut text).with_context(|| format!("reading the intent {}", path.display()))?;
    if text.len() as u64 > MAX {
        anyhow::bail!(InvalidInput::new(format!("the intent {} is larger than {MAX} bytes", path.display())));
    }
    let items: Vec<sv0_domain::intent::IntentItem> = sv0_codec::json::from_slice(text.as_bytes()).map_err(|e| {
        InvalidInput::new(format!(
            "the intent {} is not a JSON list of intent items (schemas/intent.schema.json): {e}",
            path.display()
        ))
    })?;
    sv0_domain::intent::validate(&items)?;
    Ok(items)
}

fn delta(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: DeltaArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scope = service.scope(&tenant, &args.scope)?;
    let report = service.delta(&tenant, &scope)?;
    if args.json {
        print_json(
            out,
            &json!({
                "tenant": tenant,
                "scope": report.scope,
                "baseline_version": report.baseline_version,
                // `entries`, as the API names them; `delta` is the former name, kept for one
                // release for scripts that read it.
                "entries": report.entries,
                "delta": report.entries,
                "verification": report.verification,
                "disposition": report.disposition,
                "planned_missing": report.planned_missing,
            }),
        )?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{} change(s) in scope {} against baseline v{}; {}",
        report.entries.len(),
        report.scope,
        report.baseline_version,
        report.verification.summary
    )?;
    if !report.entries.is_empty() {
        writeln!(out, "{}", render::delta(&report.entries))?;
    }
    let undeclared: Vec<_> = report
        .entries
        .iter()
        .filter(|e| {
            matches!(
                e.intent,
                Some(sv0_domain::intent::IntentStatus::Unintended | sv0_domain::intent::IntentStatus::Unreviewed)
            )
        })
        .collect();
    if !undeclared.is_empty() {
        writeln!(
            out,
            "{} addition(s) nobody declared: remove them, or approve them with a declared intent (sv0 approve --intent FILE):",
            undeclared.len()
        )?;
        for e in &undeclared {
            writeln!(
                out,
                "  • {} {} → {} as {} ({}: {})",
                e.intent.map_or("", |i| i.as_str()),
                e.workload.name,
                e.destination.name,
                e.identity.name,
                e.kind,
                render::permissions(if e.added_permissions.is_empty() { &e.permissions } else { &e.added_permissions })
            )?;
        }
    }
    let flagged: Vec<_> =
        report.entries.iter().filter(|e| e.flagged || undeclared.iter().any(|u| std::ptr::eq(*u, *e))).collect();
    if !flagged.is_empty() {
        writeln!(out, "Remediation for the {} flagged or undeclared change(s):", flagged.len())?;
        // One record can confer several paths (an assignment above the containers it opens):
        // each change to make is listed once.
        let mut listed = std::collections::BTreeSet::new();
        for entry in flagged {
            for action in &entry.remediation_actions {
                if listed.insert((&action.record_id, &action.text)) {
                    writeln!(out, "  • {}", action.text)?;
                }
            }
        }
    }
    if !report.planned_missing.is_empty() {
        writeln!(out, "{} planned addition(s) that did not appear:", report.planned_missing.len())?;
        for item in &report.planned_missing {
            writeln!(
                out,
                "  • {} → {} ({}): {}",
                item.identity_name.as_deref().or(item.identity.as_deref()).unwrap_or("*"),
                item.destination.as_deref().unwrap_or("*"),
                render::permissions(&item.permissions),
                item.planned_by.as_deref().unwrap_or("")
            )?;
        }
    }
    let disposition = &report.disposition;
    writeln!(out, "Disposition: {}", disposition.decision)?;
    for reason in &disposition.reasons {
        writeln!(out, "  {} ({}): {}", reason.rule, reason.decision, reason.text)?;
    }
    if let Some(rollback) = &disposition.rollback {
        writeln!(out, "Full rollback advised: {}", rollback.reasons.join("; "))?;
    }
    Ok(EXIT_OK)
}

fn scopes(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let known = service.known_scopes(&tenant)?;
    if json {
        print_json(out, &known)?;
        return Ok(EXIT_OK);
    }
    let mut table = render::table(&["Scope", "Kind", "Selects", "Baseline"]);
    let baseline = |scope: &str| known.baselined.get(scope).map_or_else(|| "-".to_string(), |v| format!("v{v}"));
    for (kind, list) in [("project", &known.projects), ("tag", &known.tags)] {
        for (scope, workloads) in list {
            table.add_row(vec![scope.clone(), kind.to_string(), format!("{workloads} workload(s)"), baseline(scope)]);
        }
    }
    for (scope, version) in &known.baselined {
        if !known.projects.contains_key(scope) && !known.tags.contains_key(scope) {
            table.add_row(vec![scope.clone(), "baselined".to_string(), "-".to_string(), format!("v{version}")]);
        }
    }
    writeln!(
        out,
        "{} project(s), {} tag(s), {} baselined scope(s) in tenant {tenant}; also workload:ID, all, and commas for unions",
        known.projects.len(),
        known.tags.len(),
        known.baselined.len()
    )?;
    writeln!(out, "{table}")?;
    Ok(EXIT_OK)
}

fn baselines(
    service: &Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    args: BaselinesArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = service.known_tenant(tenant)?;
    let scopes = match args.scope.as_deref() {
        Some(text) => vec![service.scope(&tenant, text)?],
        None => service.views().baselines(&tenant)?.into_iter().map(|h| h.scope).collect(),
    };
    let heads = service.views().baselines(&tenant)?;
    let mut all = Vec::new();
    for scope in &scopes {
        let head = heads.iter().find(|h| &h.scope == scope);
        for version in service.views().baseline_history(&tenant, scope)? {
            let state = head.map(|h| h.state_of(version.version));
            let drifted = head.filter(|h| h.version == version.version).and_then(|h| h.drifted.clone());
            all.push((version, state, drifted));
        }
    }
    if args.json {
        let listed: Vec<serde_json::Value> = all
            .iter()
            .map(|(version, state, drifted)| {
                let mut value = serde_json::to_value(version)?;
                value["state"] = json!(state);
                value["drifted"] = json!(drifted);
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        print_json(out, &listed)?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "{} baseline version(s) in tenant {tenant}", all.len())?;
    if !all.is_empty() {
        let rows: Vec<(sv0_projections::Baseline, String)> = all
            .into_iter()
            .map(|(version, state, drifted)| {
                let mut text = state.map_or("-", |s| s.as_str()).to_string();
                if let Some(d) = drifted {
                    text = format!("{text} since {} ({} path(s), {})", d.since, d.paths, d.decision);
                }
                (version, text)
            })
            .collect();
        writeln!(out, "{}", render::baselines(&rows))?;
    }
    Ok(EXIT_OK)
}

async fn verify_log(
    service: &mut Service<impl sv0_log::EventLog>,
    tenant: Option<&str>,
    mode: VerifyMode,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = tenant.map(sv0_domain::TenantId::new).transpose()?;
    let verdict = service.verify(tenant.as_ref(), mode).await?;
    let intact = verdict.intact();
    let compared = match mode {
        VerifyMode::Replay => {
            "each pack's content compared with the assessment a replay of the whole log into scratch views gives"
        }
        VerifyMode::Quick => {
            "each pack's content compared with the assessment in the views as they stand (--quick: no replay)"
        }
    };
    let verdicts = &verdict.chains;
    if json {
        let chains: Vec<_> = verdicts
            .iter()
            .map(|v| match &v.result {
                Ok(report) => json!({
                    "tenant": v.tenant,
                    "intact": true,
                    "packs": report.packs,
                    "pack_events_on_log": v.on_log,
                    "head_digest": report.head.as_ref().map(|h| h.digest.clone()),
                }),
                Err(broken) => json!({ "tenant": v.tenant, "intact": false, "broken": broken_json(broken) }),
            })
            .collect();
        let damaged = verdict.damaged.as_ref().map(|(seq, reason)| json!({ "position": seq, "reason": reason }));
        let mode = match mode {
            VerifyMode::Replay => "replay",
            VerifyMode::Quick => "quick",
        };
        print_json(
            out,
            &json!({
                "intact": intact,
                "mode": mode,
                "log_damaged": damaged,
                "views_match": verdict.views_differ.as_ref().map(Vec::is_empty),
                "views_differ_in": verdict.views_differ,
                "chains": chains,
            }),
        )?;
    } else if let Some((seq, reason)) = &verdict.damaged {
        writeln!(
            out,
            "log BROKEN: the record at position {seq} {reason}. The log is the source of truth: restore it from a backup (docs/security.md, integrity at rest)"
        )?;
    } else if verdicts.is_empty() {
        writeln!(out, "no pack chains on the log yet")?;
    } else {
        for verdict in verdicts {
            match &verdict.result {
                Ok(report) => writeln!(
                    out,
                    "tenant {}: chain intact: {} pack(s) of the {} pack event(s) on the log, every record checksum, digest, link and signature verified, {compared}; head {}",
                    verdict.tenant,
                    report.packs,
                    verdict.on_log,
                    report.head.as_ref().map_or("-", |h| h.digest.as_str())
                )?,
                Err(broken) => writeln!(out, "tenant {}: chain BROKEN at {broken}", verdict.tenant)?,
            }
        }
    }
    if !json {
        match verdict.views_differ.as_deref() {
            Some([]) => writeln!(out, "views: every table equals the replay of the log")?,
            Some(tables) => writeln!(
                out,
                "views DIFFER from the replay of the log in {}: queries read wrong rows. Run `sv0 rebuild`",
                tables.join(", ")
            )?,
            None => {}
        }
    }
    Ok(if intact { EXIT_OK } else { EXIT_NO })
}

fn verify_offline(
    dir: &Path,
    key: &Path,
    checkpoint: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let ring = KeyRing::from_pem_file(key)?;
    let entries = entries_from_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.is_empty() {
        bail!("{} holds no pack files (NNNNNN-<pack id>.json)", dir.display());
    }
    let checkpoint = match checkpoint {
        Some(file) => {
            let note = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let origin = note.lines().next().unwrap_or_default().to_string();
            let verified =
                ring.keys().find_map(|key| sv0_signer::checkpoint::Checkpoint::verify(&note, &origin, key).ok());
            Some(verified.with_context(|| {
                format!("{} is not a checkpoint signed by a key of {}", file.display(), key.display())
            })?)
        }
        None => None,
    };
    let mut result = verify_chain(&entries, &ring);
    if let (Ok(_), Some(checkpoint)) = (&result, &checkpoint) {
        // The chain verified link by link; the checkpoint says how long it was and what it held.
        if let Err(broken) = sv0_signer::verify::extends_checkpoint(&entries, checkpoint, &dir.display().to_string()) {
            result = Err(broken);
        }
    }
    if json {
        let value = match &result {
            Ok(report) => json!({
                "intact": true,
                "tenant": report.tenant,
                "packs": report.packs,
                "head_digest": report.head.as_ref().map(|h| h.digest.clone()),
            }),
            Err(broken) => json!({ "intact": false, "broken": broken_json(broken) }),
        };
        print_json(out, &value)?;
    } else {
        match &result {
            Ok(report) => writeln!(
                out,
                "chain intact: {} pack(s) of tenant {}, every digest, link and signature verified; head {}",
                report.packs,
                report.tenant.as_deref().unwrap_or("-"),
                report.head.as_ref().map_or("-", |h| h.digest.as_str())
            )?,
            Err(broken) => writeln!(out, "chain BROKEN at {broken}")?,
        }
    }
    Ok(if result.is_ok() { EXIT_OK } else { EXIT_NO })
}

/// `sv0 scan run`: the connectors read first (the log is not held meanwhile), then the scan is
/// imported like `sv0 scan import` would.
async fn scan_run(
    args: &crate::ScanRunArgs,
    tenant: Option<&str>,
    data_dir: &std::path::Path,
    target: &LogTarget,
    no_seal: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let full = if data_dir.exists() { sv0_service::DataDir::create(data_dir)?.config()? } else { Default::default() };
    let config = full.connectors.unwrap_or_default();
    let trigger = ScanTrigger::from(args.trigger);
    let result =
        crate::connect::run_connectors(&args.source, args.observed_at.as_deref(), trigger, tenant, &config).await?;
    if let Some(path) = &args.out {
        let bytes = serde_json::to_vec_pretty(&result.snapshot)?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let outcomes = crate::connect::outcomes_json(&result);
    if !args.json {
        crate::connect::print_outcomes(out, &result)?;
    }
    let entities = result.snapshot.validate().map_err(|e| {
        anyhow::anyhow!("the connectors assembled a snapshot that does not validate, so nothing was imported: {e}")
    })?;
    if args.dry_run {
        if args.json {
            print_json(out, &outcomes)?;
        } else {
            writeln!(out, "dry run: {} entities read; nothing imported", entities.entities.len())?;
        }
        return Ok(EXIT_OK);
    }
    let mut service = Service::open_target(data_dir, target)
        .await
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    if service.data_dir().replay().is_some() {
        bail!("{} is an audit replay: it is read-only", data_dir.display());
    }
    if no_seal {
        service = service.without_sealing();
    }
    service.sync().await.context("cannot bring the views and packs up to date")?;
    let report = service
        .import_parsed(entities, None, None)
        .await
        .map_err(|e| explain(e, "the scan was not imported".to_string()))?;
    // Classification is a decision: it takes effect through the policy, not from the file.
    if let Some(configured) = full.classification.as_ref().map(|c| c.classification())
        && service.policy(&report.tenant)?.classification != configured
    {
        tracing::warn!(
            "[classification] of sv0.toml is not the policy in force; paths are classified by the policy: record it with `sv0 policy set`"
        );
    }
    print_import(out, &report, args.json, Some(outcomes))
}
