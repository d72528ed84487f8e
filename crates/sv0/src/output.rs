//! Where a command writes: standard output (`emit`, `print_json`), its notes and questions
//! (`Console`: this terminal, or a client of `sv0 serve`'s socket), and errors explained.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sv0_service::ServiceError;

use crate::EXIT_OK;

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

/// Adds "nothing was appended" to errors of commands that failed before appending.
pub(crate) fn explain(error: ServiceError, what: String) -> anyhow::Error {
    if matches!(error, ServiceError::NotApplied { .. }) {
        anyhow::Error::new(error)
    } else {
        anyhow::Error::new(error).context(format!("{what}; nothing was appended"))
    }
}
