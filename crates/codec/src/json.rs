//! Reading JSON that a user or a vendor supplies (snapshots, API bodies, policies, intents,
//! export pages), with errors a person can act on: the JSON path of the first bad field
//! (`grants[3].permissions[0]`), its line and column, and serde's wording translated into JSON's
//! (no `u32`, `struct ScanInfo` or `sequence` in a message).

use std::fmt;

use serde::de::DeserializeOwned;

/// Why a JSON document could not be read as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JsonError {
    /// The JSON path of the field at fault (`scan.observed_at`, `grants[3]`); empty for the
    /// document itself.
    pub path: String,
    /// What is wrong, in JSON's words.
    pub message: String,
    /// 1-based line of the fault (0 when not known).
    pub line: usize,
    /// 1-based column of the fault (0 when not known).
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "at {}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if self.line > 0 {
            write!(f, " (line {}, column {})", self.line, self.column)?;
        }
        Ok(())
    }
}

/// Reads `bytes` as one JSON document of type `T` (nothing may follow it but whitespace).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut parser).map_err(|e| {
        let path = e.path().to_string();
        // `?` stands for a key serde_path_to_error never saw (the document broke off first).
        let path = path.trim_end_matches('?').trim_end_matches('.');
        let path = if path == "." { String::new() } else { path.to_string() };
        describe(path, e.inner(), bytes)
    })?;
    parser.end().map_err(|e| describe(String::new(), &e, bytes))?;
    Ok(value)
}

/// A `serde_json` error at `path`, in JSON's words.
fn describe(path: String, error: &serde_json::Error, bytes: &[u8]) -> JsonError {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    // serde_json appends " at line L column C"; the position is kept apart.
    let text = match text.rfind(" at line ") {
        Some(at) if line > 0 => text[..at].to_string(),
        _ => text,
    };
    let message = if text == "expected value" && names_a_value(bytes, line, column) {
        // serde_json's answer when an enum (a name) is given a number, a boolean, null or an
        // array: the token is a JSON value, just not a name.
        "invalid type: expected one of the documented names, as a string".to_string()
    } else {
        plain_words(&text)
    };
    JsonError { path, message, line, column }
}

/// Whether the character at (line, column) starts a JSON value (so that "expected value" there
/// is a type error, not a syntax error).
fn names_a_value(bytes: &[u8], line: usize, column: usize) -> bool {
    let Some(text) = bytes.split(|b| *b == b'\n').nth(line.saturating_sub(1)) else { return false };
    let at = column.saturating_sub(1);
    matches!(text.get(at), Some(b'0'..=b'9' | b'-' | b't' | b'f' | b'n' | b'[' | b'"'))
}

/// Rewrites serde's words for types ("u32", "struct ScanInfo", "a sequence", "floating point")
/// into JSON's, and says what an integer field accepts.
pub fn plain_words(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let fraction = found.starts_with("floating point");
            return format!("{lead}{}, expected {}", found_words(found), expected_words(expected, fraction));
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((length, expected)) = rest.split_once(", expected ")
    {
        return format!("invalid length {length}, expected {}", expected_words(expected, false));
    }
    message.to_string()
}

/// serde's `Unexpected` in JSON's words.
fn found_words(found: &str) -> String {
    match found {
        "sequence" => "array".to_string(),
        "map" => "object".to_string(),
        "unit value" => "null".to_string(),
        _ => match found.strip_prefix("floating point ") {
            Some(number) => format!("number {number} with a fraction or an exponent"),
            None => found.to_string(),
        },
    }
}

/// serde's `Expected` in JSON's words.
fn expected_words(expected: &str, fraction: bool) -> String {
    let integer = |range: String| {
        let written = if fraction { ", written without a decimal point or an exponent" } else { "" };
        format!("an integer from {range}{written}")
    };
    match expected {
        "u8" => integer(format!("0 to {}", u8::MAX)),
        "u16" => integer(format!("0 to {}", u16::MAX)),
        "u32" => integer(format!("0 to {}", u32::MAX)),
        "u64" | "usize" | "u128" => integer(format!("0 to {}", u64::MAX)),
        "i8" => integer(format!("{} to {}", i8::MIN, i8::MAX)),
        "i16" => integer(format!("{} to {}", i16::MIN, i16::MAX)),
        "i32" => integer(format!("{} to {}", i32::MIN, i32::MAX)),
        "i64" | "isize" | "i128" => integer(format!("{} to {}", i64::MIN, i64::MAX)),
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "an array".to_string(),
        "a map" => "an object".to_string(),
        "a borrowed string" | "path string" => "a string".to_string(),
        "option" => "a value or null".to_string(),
        "unit" => "null".to_string(),
        "variant identifier" | "field identifier" => "a name (a string)".to_string(),
        _ => {
            if expected.starts_with("struct variant ") || expected.starts_with("struct ") {
                "an object".to_string()
            } else if expected.starts_with("tuple struct ") || expected.starts_with("tuple variant ") {
                "an array".to_string()
            } else if expected.starts_with("enum ") {
                "one of the documented names, as a string".to_string()
            } else if let Some(size) = expected.strip_prefix("a tuple of size ") {
                format!("an array of {size} items")
            } else {
                expected.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scan {
        version: u32,
        scan: Inner,
        kinds: Vec<Kind>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Inner {
        at: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Agent,
    }

    fn error(text: &str) -> String {
        from_slice::<Scan>(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field_in_json_words() {
        assert_eq!(
            error(r#"{"version": 1.0, "scan": {"at": "x"}, "kinds": []}"#),
            "at version: invalid type: number `1.0` with a fraction or an exponent, expected an integer from 0 to \
             4294967295, written without a decimal point or an exponent (line 1, column 15)"
        );
        assert_eq!(
            error(r#"{"version": -1, "scan": {"at": "x"}, "kinds": []}"#),
            "at version: invalid value: integer `-1`, expected an integer from 0 to 4294967295 (line 1, column 14)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": "x", "kinds": []}"#),
            "at scan: invalid type: string \"x\", expected an object (line 1, column 26)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": {}}"#),
            "at kinds: invalid type: object, expected an array (line 1, column 45)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": [3]}"#),
            "at kinds[0]: invalid type: expected one of the documented names, as a string (line 1, column 47)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": ["robot"]}"#),
            "at kinds[0]: unknown variant `robot`, expected `agent` (line 1, column 53)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": [], "tags": []}"#),
            "at tags: invalid type: array, expected an object (line 1, column 57)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": [], "tags": {"a": 1}}"#),
            "at tags.a: invalid type: integer `1`, expected a string (line 1, column 64)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": [], "extra": 1}"#),
            "at extra: unknown field `extra`, expected one of `version`, `scan`, `kinds`, `tags` (line 1, column 56)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": [], }"#),
            "trailing comma (line 1, column 50)"
        );
        assert_eq!(error(r#"{"version": 1, "kinds": [] "#), "EOF while parsing an object (line 1, column 27)");
        assert_eq!(
            error(r#"{"version": 1, "kinds": [null]"#),
            "at kinds[0]: invalid type: expected one of the documented names, as a string (line 1, column 26)"
        );
        assert_eq!(
            error(r#"{"version": 1, "scan": {"at": "x"}, "kinds": []} x"#),
            "trailing characters (line 1, column 50)"
        );
        for message in [error(r#"{"version": 1}"#), error(r#"{"version": 1, "scan": 1, "kinds": [], "extra": 1}"#)] {
            for rust in ["u32", "struct", "sequence", "Inner", "Scan", "Kind"] {
                assert!(!message.contains(rust), "{message}");
            }
        }
    }
}
