//! Small readers over vendor JSON: every field is optional, every shape is checked.

use serde_json::Value;
use sv0_domain::Timestamp;

/// A string field (ServiceNow's `{"value": ..., "display_value": ...}` objects give `value`).
pub fn str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Object(map) => map.get("value").and_then(Value::as_str).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// A ServiceNow reference's display value (with `sysparm_display_value=all`), else its value.
pub fn display<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value.get(key)? {
        Value::Object(map) => map
            .get("display_value")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| map.get("value").and_then(Value::as_str).filter(|s| !s.is_empty())),
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A boolean field; ServiceNow writes `"true"`/`"false"`.
pub fn bool(value: &Value, key: &str) -> Option<bool> {
    match value.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "1" => Some(true),
            "false" | "False" | "0" => Some(false),
            _ => None,
        },
        Value::Object(map) => map.get("value").and_then(|v| match v {
            Value::String(s) => Some(s == "true"),
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
        _ => None,
    }
}

/// An array field (absent or not an array: empty).
pub fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// An RFC 3339 time (Graph, ARM), or a ServiceNow `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(value: &Value, key: &str) -> Option<Timestamp> {
    let text = str(value, key)?;
    Timestamp::parse(text).ok().or_else(|| {
        let (date, clock) = text.split_once(' ')?;
        Timestamp::parse(&format!("{date}T{clock}Z")).ok()
    })
}

/// A Unix time in seconds (OpenAI-style `created_at`).
pub fn unix_seconds(value: &Value, key: &str) -> Option<Timestamp> {
    let seconds = value.get(key)?.as_i64()?;
    (seconds > 0).then(|| Timestamp(seconds.saturating_mul(1000)))
}

/// An object id as SV0 keeps it: GUIDs lower-cased (AzureHound upper-cases them), other
/// ids as given.
pub fn object_id(id: &str) -> String {
    if id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        id.to_ascii_lowercase()
    } else {
        id.to_string()
    }
}

/// The host of a URL, lower-case, without port or credentials.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = authority.split(':').next()?.trim().to_ascii_lowercase();
    (!host.is_empty() && !host.contains(['$', '{', '}', ' '])).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_accept_every_vendor_spelling() {
        let v = json!({"a": "x", "b": {"value": "id1", "display_value": "Name"}, "c": "true", "t": "2026-03-01 10:00:00", "u": 1767225600});
        assert_eq!(str(&v, "a"), Some("x"));
        assert_eq!(str(&v, "b"), Some("id1"));
        assert_eq!(display(&v, "b"), Some("Name"));
        assert_eq!(bool(&v, "c"), Some(true));
        assert_eq!(time(&v, "t").map(|t| t.to_rfc3339()), Some("2026-03-01T10:00:00Z".into()));
        assert_eq!(unix_seconds(&v, "u").map(|t| t.to_rfc3339()), Some("2026-01-01T00:00:00Z".into()));
        assert_eq!(object_id("6E5A2A5B-0000-4000-8000-00000000000A"), "6e5a2a5b-0000-4000-8000-00000000000a");
        assert_eq!(host_of("https://user@API.example.com:8443/v1?x"), Some("api.example.com".into()));
        assert_eq!(host_of("${endpoint}/x"), None);
    }
}
