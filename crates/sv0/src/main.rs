//! `sv0`: prints errors and maps the result of `sv0::run` to the exit code.

use std::io::Write;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: faster for the fold's many small allocations, and it
/// hands memory freed on one thread (the parsed snapshot) to the others (the fold) instead of
/// keeping it in a per-thread arena (`docs/performance.md`, 2026-12-04). Built without
/// transparent huge pages (the `no_thp` feature): the kernel zeroing each fresh 2 MiB page took
/// 45 % of a delta scan.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A Rego policy is evaluated in a bounded worker process of this executable.
    if std::env::args_os().nth(1).is_some_and(|a| a == sv0_projections::rego::WORKER_ARG) {
        let args: Vec<String> = std::env::args_os().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(u8::try_from(sv0_projections::rego::worker_main(&args)).unwrap_or(2));
    }
    let mut stdout = PipeTolerant { inner: std::io::stdout().lock(), closed: false };
    match sv0::run(std::env::args_os(), &mut stdout) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(clap_error) = error.downcast_ref::<clap::Error>() {
                let _ = clap_error.print();
                return ExitCode::from(sv0::EXIT_ERROR);
            }
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(sv0::EXIT_ERROR)
        }
    }
}

/// Standard output that a reader may close early (`sv0 findings | head`): what is written
/// after the pipe closed is dropped, and the command finishes its work and exits as it would
/// have, instead of failing half-way with "Broken pipe".
struct PipeTolerant<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for PipeTolerant<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}
