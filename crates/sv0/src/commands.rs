//! One function per command: parse what clap could not, call the service, print.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use sv0_service::{AsOf, Freshness, Service, VerifyMode};

use crate::backend::LogTarget;

use crate::approve::*;
use crate::output::*;
use crate::queries::*;
use crate::verify::*;
use crate::{Cli, Command, EXIT_OK, ExportCommand, PolicyCommand, ProofCommand, ScanCommand};

use crate::scan::scan_run;

/// Runs the commands that open no data directory here (`Command::opens_data_dir`); `None` for
/// every other command.
async fn standalone(cli: &Cli, out: &mut dyn Write) -> Option<anyhow::Result<u8>> {
    if cli.command.opens_data_dir() {
        return None;
    }
    let target = || LogTarget::parse(cli.log.as_deref(), cli.log_replicas);
    Some(match &cli.command {
        Command::Verify(args) => {
            let (Some(dir), Some(key)) = (&args.packs, &args.public_key) else { return None };
            verify_offline(dir, key, args.checkpoint.as_deref(), args.tsa_cert.as_deref(), args.json, out)
        }
        Command::Gate(args) => crate::gate::run(args, out).await,
        Command::Demo(args) => match target() {
            Ok(target) => crate::demo::run(cli.data_dir.clone(), &target, args.json, out).await,
            Err(e) => Err(e),
        },
        Command::Synth(args) => crate::synth::run(args, out),
        Command::Rules(args) => rules(args, out),
        Command::Bench(args) => match target() {
            Ok(target) => bench(args, &target, out).await,
            Err(e) => Err(e),
        },
        _ => return None,
    })
}

/// `sv0 bench`: a load test of a server, the vendor connectors, a synthetic snapshot, or the
/// fold at scale on the log `target` names.
async fn bench(args: &crate::BenchArgs, target: &LogTarget, out: &mut dyn Write) -> anyhow::Result<u8> {
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
    match target {
        LogTarget::Embedded => crate::bench::run(args.paths, args.skip_replay, args.json, out).await,
        LogTarget::JetStream { url, replicas } => {
            crate::bench::run_jetstream(url, *replicas, args.events, args.json, out).await
        }
    }
}

/// Runs one parsed command.
pub async fn dispatch(cli: Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    sv0_log::file::set_views_cache_bytes(cli.views_cache_mb as usize * 1024 * 1024);
    if let Some(result) = standalone(&cli, out).await {
        return result;
    }
    let data_dir = match &cli.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    let target = LogTarget::parse(cli.log.as_deref(), cli.log_replicas)?;
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
    let mut service = crate::backend::open(&data_dir, &target)
        .await
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let writing =
        cli.command.writes() || matches!(cli.command, Command::Project(_) | Command::Sign(_) | Command::Serve(_));
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
    let config = crate::config::read(service.data_dir())?;
    service = crate::config::apply(service, &config)?;
    let shard = match &cli.command {
        Command::Project(shard) | Command::Sign(shard) => shard.shard()?,
        Command::Serve(args) => args.shard.shard()?,
        _ => None,
    };
    if let Some(shard) = shard {
        service.bind_shard(&shard)?;
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
    service: &mut Service<crate::backend::AnyLog>,
    console: &mut dyn Console,
) -> anyhow::Result<()> {
    match command {
        // Rebuilding folds the whole log into a fresh file anyway.
        // Verification folds what it needs itself and reports a damaged log as its verdict.
        Command::Project(_) | Command::Sign(_) | Command::Serve(_) | Command::Rebuild | Command::Verify(_) => {}
        command if command.writes() => {
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

/// `prepare` then `execute`, as a function `sv0 serve` hands to its local socket
/// (`crate::local::Execute`), so that the socket does not depend on the commands it runs.
pub(crate) fn prepare_and_execute<'a>(
    cli: Cli,
    service: &'a mut Service<crate::backend::AnyLog>,
    console: &'a mut dyn Console,
    out: &'a mut dyn Write,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<u8>> + 'a>> {
    Box::pin(async move {
        prepare(&cli.command, service, console).await?;
        execute(cli, service, console, out).await
    })
}

/// Runs a command on an open, prepared service: in this process, or in `sv0 serve` for a
/// client of its local socket.
pub(crate) async fn execute(
    cli: Cli,
    service: &mut Service<crate::backend::AnyLog>,
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
        // They open no data directory: `dispatch` runs them before it opens one, and the local
        // socket never forwards them; should one get here, it runs as it would have there.
        Command::Demo(_) | Command::Bench(_) | Command::Synth(_) | Command::Rules(_) | Command::Gate(_) => {
            match standalone(&cli, out).await {
                Some(result) => result,
                None => bail!("this command opens no data directory"),
            }
        }
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
            let subjects = args
                .subject
                .iter()
                .map(|s| sv0_signer::attestation::Subject::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let attestations = service.attestations(&tenant, &subjects, args.deployment.as_deref())?;
            let mut lines = String::new();
            for envelope in &attestations.envelopes {
                lines.push_str(&serde_json::to_string(envelope)?);
                lines.push('\n');
            }
            std::fs::write(&args.out, lines).with_context(|| format!("cannot write {}", args.out.display()))?;
            writeln!(
                out,
                "wrote {} attestation(s) of tenant {tenant} to {} ({} of deployments)",
                attestations.envelopes.len(),
                args.out.display(),
                attestations.deployments
            )?;
            for id in &attestations.without_subject {
                writeln!(
                    out,
                    "deployment {id} named no full commit id: no deployment attestation for it (name its artifact with --subject NAME=sha256:HEX --deployment '{id}')"
                )?;
            }
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
            let (count, stamps) = service.export_packs(&tenant, &args.out).await?;
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
            if stamps > 0 {
                writeln!(
                    out,
                    "wrote {stamps} RFC 3161 timestamp(s) of checkpoints (timestamp-NNNNNN.txt, .tsq, .tsr)"
                )?;
            }
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
            let mut shutdown = std::pin::pin!(crate::serve::shutdown_signal());
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
        Command::Serve(args) => crate::serve::serve(service, args, tenant, cli.no_seal, prepare_and_execute, out).await,
        Command::Project(_) => crate::serve::project_or_sign(service, false, out).await,
        Command::Sign(_) => crate::serve::project_or_sign(service, true, out).await,
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

pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("sv0")).context("no user data directory is known on this system. Pass --data-dir")
}
