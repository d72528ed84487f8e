//! The `sv0` command: the CLI definition and the glue between it, `sv0_service::Service` and
//! the tables of `render`. `run` is the whole program; `main.rs` only maps its result to an
//! exit code, so tests drive the CLI in-process.
//!
//! Exit codes: 0 success; 1 the answer is "no" (a broken pack chain); 2 an error.

mod approve;
pub mod backend;
mod bench;
mod cli;
mod commands;
mod config;
mod connect;
mod demo;
mod gate;
mod governance;
mod keys;
mod load;
mod local;
mod output;
mod queries;
mod render;
mod report;
mod scan;
mod serve;
mod synth;
mod verify;
mod watch;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

pub use cli::*;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when the answer is "no": a chain does not verify.
pub const EXIT_NO: u8 = 1;
/// Exit code for errors.
pub const EXIT_ERROR: u8 = 2;

/// Runs the program with these arguments, writing results to `out`. Returns the exit code;
/// errors are returned for `main` to print.
pub fn run<I, T>(args: I, out: &mut dyn Write) -> anyhow::Result<u8>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            write!(out, "{e}")?;
            return Ok(EXIT_OK);
        }
        Err(e) => return Err(e.into()),
    };
    init_logging(cli.verbose);
    let data_dir = cli.data_dir.clone().or_else(|| commands::default_data_dir().ok());
    // While `sv0 serve` holds the data directory, the command runs in it.
    if let Some(server) = data_dir.as_deref().and_then(|dir| local::server_for(&cli, dir)) {
        return local::forward(server, args, &cli, &mut output::Terminal, out);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // A storage engine reading a damaged page may panic; the command then ends with an error
    // (exit 2), never an abort, and the data directory's files are checked page by page by the
    // next command, which names the damaged one.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(commands::dispatch(cli, out)))) {
        Ok(result) => result,
        Err(panic) => {
            let message = sv0_log::file::panic_message(&*panic);
            let Some(dir) = data_dir else {
                anyhow::bail!("sv0 stopped on an internal failure: {message}");
            };
            sv0_service::DataDir::create(&dir)?.distrust_files();
            anyhow::bail!(
                "sv0 stopped on an internal failure ({message}). If a file of {} is damaged, the next command checks log.redb and views.redb page by page and names it; `sv0 verify` checks both now",
                dir.display()
            )
        }
    }
}

fn init_logging(verbose: u8) {
    // `sv0 serve` logs each request (method, route, status, time) at the default level.
    let default = match verbose {
        0 => "warn,sv0::requests=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SV0_TRACE")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second initialisation (tests run the CLI many times in one process) is harmless.
    // Colours only on a terminal: a log file or a pipe gets plain `key=value` text.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
