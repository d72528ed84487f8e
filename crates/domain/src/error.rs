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

/// Problems printed in full; past this many the rest are counted (`scan import --json` and the
/// API's `problems` list every one).
const PROBLEMS_SHOWN: usize = 100;

fn summary(problems: &[String]) -> String {
    match problems {
        [] => "no problems recorded".to_string(),
        [one] => one.clone(),
        many => {
            let mut text = format!("{} problems:", many.len());
            for problem in many.iter().take(PROBLEMS_SHOWN) {
                text.push_str("\n  - ");
                text.push_str(problem);
            }
            if many.len() > PROBLEMS_SHOWN {
                text.push_str(&format!(
                    "\n  ... and {} more (`sv0 scan import --json` lists every one)",
                    many.len() - PROBLEMS_SHOWN
                ));
            }
            text
        }
    }
}
