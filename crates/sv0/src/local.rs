//! The CLI beside `sv0 serve`: while a server holds an embedded data directory (its files are
//! locked), the CLI's commands on that directory run inside the server instead, through a
//! local socket in the directory (`sv0.sock`, mode 0600, and only a client of the host user
//! that owns it is served). The client sends its command line, working directory and tenant;
//! the server runs the command on its own log and views, as the host operator, and streams
//! back standard output, standard error, questions for the terminal and the exit code.
//!
//! Frames, both ways: one kind byte, a big-endian `u32` length, that many bytes.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sv0_api::ApiState;
use sv0_service::Service;

use crate::backend::AnyLog;

use crate::output::Console;
use crate::{Cli, Command, KeysCommand, ScanCommand};

/// The socket's name in the data directory.
pub const SOCKET: &str = "sv0.sock";

/// Client → server: the request (JSON), then answers to questions (`y` or `n`).
const REQUEST: u8 = b'R';
const ANSWER: u8 = b'A';
/// Server → client: standard output, standard error, a question, the end (JSON).
const STDOUT: u8 = b'O';
const STDERR: u8 = b'E';
const QUESTION: u8 = b'Q';
const EXIT: u8 = b'X';

/// The largest frame either side reads: a command line, a question, a chunk of output.
const MAX_FRAME: usize = 1 << 20;
/// Commands the server runs for clients at once.
const MAX_SESSIONS: usize = 8;
/// How long the server waits for a client's request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The client's version: a server of another version refuses.
    version: String,
    /// The command line, program name first.
    args: Vec<String>,
    /// Where relative paths on the command line start.
    cwd: PathBuf,
    /// `--tenant` or `SV0_TENANT` as the client read them.
    tenant: Option<String>,
    /// Whether the client's user can answer questions on a terminal.
    interactive: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Exit {
    code: u8,
    /// The error and its causes, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    error: Vec<String>,
}

fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

/// The server holding `data_dir`, when the command would use it with the embedded log and a
/// server answers on the directory's socket. A socket left by a server that is gone answers
/// nothing: the command then runs here, as ever.
pub(crate) fn server_for(cli: &Cli, data_dir: &Path) -> Option<UnixStream> {
    let embedded = cli.log.as_deref().is_none_or(|log| log == "embedded");
    if !embedded || !cli.command.opens_data_dir() {
        return None;
    }
    let path = data_dir.join(SOCKET);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.file_type().is_socket() {
        return None;
    }
    UnixStream::connect(&path).ok()
}

/// Runs the command in the server at the other end of `stream`: its output goes to `out`, its
/// notes to standard error, its questions to this terminal. The exit code is the command's.
pub(crate) fn forward(
    mut stream: UnixStream,
    args: Vec<OsString>,
    cli: &Cli,
    console: &mut dyn Console,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let args = args
        .into_iter()
        .map(|a| a.into_string().map_err(|a| anyhow::anyhow!("the argument {a:?} is not UTF-8")))
        .collect::<anyhow::Result<Vec<String>>>()
        .context("cannot pass this command line to `sv0 serve`")?;
    let request = Request {
        version: env!("CARGO_PKG_VERSION").to_string(),
        args,
        cwd: std::env::current_dir().context("cannot read the working directory")?,
        tenant: cli.tenant.clone(),
        interactive: console.interactive(),
    };
    let lost = "the connection to `sv0 serve` was lost; the command may or may not have run (check with a query)";
    write_frame(&mut stream, REQUEST, &serde_json::to_vec(&request)?).context(lost)?;
    loop {
        let (kind, payload) = read_frame(&mut stream).context(lost)?;
        match kind {
            STDOUT => out.write_all(&payload)?,
            STDERR => console.note(&String::from_utf8_lossy(&payload))?,
            QUESTION => {
                let yes = console.confirm(&String::from_utf8_lossy(&payload))?;
                write_frame(&mut stream, ANSWER, if yes { b"y" } else { b"n" }).context(lost)?;
            }
            EXIT => {
                out.flush()?;
                let exit: Exit = serde_json::from_slice(&payload).context(lost)?;
                let mut causes = exit.error.into_iter().rev();
                return match causes.next() {
                    None => Ok(exit.code),
                    Some(innermost) => Err(causes.fold(anyhow::anyhow!(innermost), |e, outer| e.context(outer))),
                };
            }
            other => bail!("`sv0 serve` sent a frame of unknown kind {other}; is it another version of sv0?"),
        }
    }
}

/// Runs a parsed command on an open service (`commands::prepare_and_execute`): handed in by
/// `sv0 serve`, so that this module does not depend on the commands it runs.
pub(crate) type Execute = for<'a> fn(
    Cli,
    &'a mut Service<AnyLog>,
    &'a mut dyn Console,
    &'a mut dyn Write,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<u8>> + 'a>>;

/// The socket of a serving data directory; removed when dropped (the server stops).
pub(crate) struct Listening {
    path: PathBuf,
}

impl Listening {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on the data directory's socket until `stopped` turns true, running clients'
/// commands on `state`'s log and views.
pub(crate) fn listen(
    data_dir: &Path,
    state: Arc<ApiState<AnyLog>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    execute: Execute,
) -> anyhow::Result<Listening> {
    let path = data_dir.join(SOCKET);
    match std::fs::symlink_metadata(&path) {
        // Left by a server that is gone: this process holds the directory's lock now.
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(&path)?,
        Ok(_) => bail!("{} exists and is not a socket: move it away", path.display()),
        Err(_) => {}
    }
    let listener =
        tokio::net::UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
    let listening = Listening { path: path.clone() };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    // The socket belongs to the user running the server; a client of any other user (who could
    // reach it between `bind` and `chmod`, or as root) is turned away.
    let owner = std::fs::metadata(&path)?.uid();
    let sessions = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Handle::current();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = async { let _ = stopped.wait_for(|stop| *stop).await; } => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "local socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            let Ok(stream) = stream.into_std() else { continue };
            if uid != Some(owner) {
                tracing::warn!(?uid, "local socket: a client of another user was refused");
                continue;
            }
            let state = Arc::clone(&state);
            let sessions = Arc::clone(&sessions);
            let runtime = runtime.clone();
            std::thread::spawn(move || session(stream, &state, &sessions, &runtime, execute));
        }
    });
    Ok(listening)
}

/// Serves one client: reads its request, runs the command, sends the end.
fn session(
    mut stream: UnixStream,
    state: &ApiState<AnyLog>,
    sessions: &AtomicUsize,
    runtime: &tokio::runtime::Handle,
    execute: Execute,
) {
    let result = (|| -> anyhow::Result<u8> {
        stream.set_nonblocking(false)?;
        if sessions.fetch_add(1, Ordering::SeqCst) >= MAX_SESSIONS {
            bail!("`sv0 serve` is running {MAX_SESSIONS} commands for the CLI already; try again");
        }
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let (kind, payload) = read_frame(&mut stream)?;
        if kind != REQUEST {
            bail!("expected a request");
        }
        stream.set_read_timeout(None)?;
        let request: Request = serde_json::from_slice(&payload).context("an unreadable request")?;
        let mut console = Remote { stream: stream.try_clone()?, interactive: request.interactive };
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, Output(stream.try_clone()?));
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(run_for_client(request, state, &mut console, &mut out, execute))
        }))
        .unwrap_or_else(|panic| {
            Err(anyhow::anyhow!("sv0 serve stopped this command on an internal failure: {}", {
                sv0_log::file::panic_message(&*panic)
            }))
        });
        out.flush()?;
        code
    })();
    sessions.fetch_sub(1, Ordering::SeqCst);
    let exit = match result {
        Ok(code) => Exit { code, error: Vec::new() },
        Err(e) => Exit { code: crate::EXIT_ERROR, error: e.chain().map(|c| c.to_string()).collect() },
    };
    if let Ok(payload) = serde_json::to_vec(&exit) {
        let _ = write_frame(&mut stream, EXIT, &payload);
    }
}

/// Runs a client's command on the server's log and views, as the host operator. Commands that
/// append wait for the API's command lock (one command at a time, as over HTTP); queries do not.
async fn run_for_client(
    request: Request,
    state: &ApiState<AnyLog>,
    console: &mut Remote,
    out: &mut dyn Write,
    execute: Execute,
) -> anyhow::Result<u8> {
    let ours = env!("CARGO_PKG_VERSION");
    if request.version != ours {
        bail!(
            "this data directory is served by sv0 {ours}, and this is sv0 {}: use the same version, or stop `sv0 serve`",
            request.version
        );
    }
    let mut cli = crate::parse_relative_to(&request.cwd, &request.args)?;
    cli.tenant = request.tenant;
    if let Some(why) = not_beside_a_server(&cli.command) {
        bail!("{} is held by `sv0 serve`: {why}", state.queries.data_dir().root().display());
    }
    tracing::info!(target: "sv0::requests", command = %request.args.get(1).map_or("", String::as_str), "local socket");
    if cli.command.writes() {
        let mut commands = state.commands.lock().await;
        execute(cli, &mut commands, console, out).await
    } else {
        let mut reader = Service::from(state.queries.clone()).without_sealing();
        execute(cli, &mut reader, console, out).await
    }
}

/// Why a command cannot run inside a server, if it cannot.
fn not_beside_a_server(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Serve(_) | Command::Project(_) | Command::Sign(_) | Command::Watch(_) => {
            "it folds, seals and serves this directory already; stop it first to run another long-running process here"
        }
        Command::Rebuild => "stop it before rebuilding the views",
        Command::Keys(KeysCommand::Generate(_) | KeysCommand::Rotate(_)) => {
            "its signer holds the key; stop it to generate or rotate the signing key"
        }
        Command::Scan(ScanCommand::Run(_)) => {
            "run the connectors through it with `POST /api/v1/syncs`, or stop it to run `sv0 scan run`"
        }
        _ => return None,
    })
}

/// Standard output of a client's command.
struct Output(UnixStream);

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(MAX_FRAME);
        write_frame(&mut self.0, STDOUT, &buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The client's terminal, at the other end of the socket.
struct Remote {
    stream: UnixStream,
    interactive: bool,
}

impl Console for Remote {
    fn note(&mut self, text: &str) -> std::io::Result<()> {
        write_frame(&mut self.stream, STDERR, text.as_bytes())
    }

    fn interactive(&self) -> bool {
        self.interactive
    }

    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        write_frame(&mut self.stream, QUESTION, question.as_bytes())?;
        let (kind, answer) = read_frame(&mut self.stream)?;
        Ok(kind == ANSWER && answer == b"y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console that records notes and answers every question with `answer`.
    struct Script {
        notes: Vec<String>,
        questions: Vec<String>,
        answer: bool,
    }

    impl Console for Script {
        fn note(&mut self, text: &str) -> std::io::Result<()> {
            self.notes.push(text.to_string());
            Ok(())
        }

        fn interactive(&self) -> bool {
            true
        }

        fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
            self.questions.push(question.to_string());
            Ok(self.answer)
        }
    }

    /// The client's end of one session against a server end that asks one question, writes
    /// the answer to standard output and a note to standard error, then ends as `exit` says.
    fn session_with(answer: bool, exit: Exit) -> (anyhow::Result<u8>, String, Script) {
        let (client, server) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut stream = server;
            let (kind, payload) = read_frame(&mut stream).unwrap();
            assert_eq!(kind, REQUEST);
            let request: Request = serde_json::from_slice(&payload).unwrap();
            let mut console = Remote { stream: stream.try_clone().unwrap(), interactive: request.interactive };
            let yes = console.confirm("lock it?").unwrap();
            let mut out = Output(stream.try_clone().unwrap());
            writeln!(out, "answered {}", if yes { "yes" } else { "no" }).unwrap();
            console.note(&format!("{} ran", request.args[1])).unwrap();
            write_frame(&mut stream, EXIT, &serde_json::to_vec(&exit).unwrap()).unwrap();
        });
        let cli = <crate::Cli as clap::Parser>::try_parse_from(["sv0", "paths"]).unwrap();
        let mut script = Script { notes: Vec::new(), questions: Vec::new(), answer };
        let mut out = Vec::new();
        let args = vec![OsString::from("sv0"), OsString::from("paths")];
        let result = forward(client, args, &cli, &mut script, &mut out);
        server.join().unwrap();
        (result, String::from_utf8(out).unwrap(), script)
    }

    #[test]
    fn questions_output_notes_and_exit_codes_cross_the_socket() {
        let (result, out, script) = session_with(true, Exit { code: 1, error: Vec::new() });
        assert_eq!(result.unwrap(), 1);
        assert_eq!(out, "answered yes\n");
        assert_eq!(script.questions, ["lock it?"]);
        assert_eq!(script.notes, ["paths ran"]);
        let (_, out, _) = session_with(false, Exit::default());
        assert_eq!(out, "answered no\n");
    }

    #[test]
    fn an_error_keeps_its_causes_in_order() {
        let exit = Exit { code: 2, error: vec!["cannot approve".into(), "the posture changed".into()] };
        let (result, _, _) = session_with(true, exit);
        let error = result.unwrap_err();
        let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
        assert_eq!(chain, ["cannot approve", "the posture changed"]);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_read() {
        let mut bytes = vec![STDOUT];
        bytes.extend_from_slice(&(u32::try_from(MAX_FRAME).unwrap() + 1).to_be_bytes());
        let error = read_frame(&mut bytes.as_slice()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    }
}
