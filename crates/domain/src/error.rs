//! Errors of the domain crate: invalid input, described for the person who wrote it.

use thiserror::Error;

/// One value that does not satisfy the model's rules (a malformed id, time or selector).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct InvalidInput {
    message: String,
}

impl InvalidInput {
    /// Wraps a message; lowercase, no trailing period, a hint as a full sentence if any.
    pub fn new(message: impl Into<String>) -> InvalidInput {
        InvalidInput { message: message.into() }
    }
}

/// A snapshot that cannot be imported. Every problem found is listed, so that one run tells
/// the author everything to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid snapshot: {}", summary(.problems))]
pub struct SnapshotInvalid {
    /// Each problem, naming the list and the id it concerns.
    pub problems: Vec<String>,
}

fn summary(problems: &[String]) -> String {
    match problems {
        [] => "no problems recorded".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}
