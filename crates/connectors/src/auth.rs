//! OAuth2 client-credentials tokens, and the secrets they are made from. Secrets come from the
//! environment or a file, never the command line, and never appear in `Debug` output or logs.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::ConnectorError;

/// A secret value; `Debug` and `Display` print `***`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A client id and secret for the client-credentials grant.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

impl ClientCredentials {
    /// Reads `<PREFIX>_CLIENT_ID` and `<PREFIX>_CLIENT_SECRET`, or `<PREFIX>_CLIENT_SECRET_FILE`
    /// (a file holding the secret), from the environment; `fallback` names a second prefix
    /// (e.g. the Azure SDKs' `AZURE`). Returns `None` when no client id is set.
    pub fn from_env(prefix: &str, fallback: Option<&str>) -> Result<Option<ClientCredentials>, ConnectorError> {
        for prefix in std::iter::once(prefix).chain(fallback) {
            let Ok(client_id) = std::env::var(format!("{prefix}_CLIENT_ID")) else { continue };
            let secret = match std::env::var(format!("{prefix}_CLIENT_SECRET_FILE")) {
                Ok(path) => read_secret_file(Path::new(&path))?,
                Err(_) => std::env::var(format!("{prefix}_CLIENT_SECRET")).map_err(|_| {
                    ConnectorError::Setup(format!(
                        "{prefix}_CLIENT_ID is set but neither {prefix}_CLIENT_SECRET nor {prefix}_CLIENT_SECRET_FILE is"
                    ))
                })?,
            };
            if client_id.trim().is_empty() || secret.trim().is_empty() {
                return Err(ConnectorError::Setup(format!("{prefix}_CLIENT_ID or its secret is empty")));
            }
            return Ok(Some(ClientCredentials {
                client_id: client_id.trim().to_string(),
                client_secret: Secret(secret),
            }));
        }
        Ok(None)
    }
}

/// Reads a secret file (trailing newline trimmed).
fn read_secret_file(path: &Path) -> Result<String, ConnectorError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectorError::Setup(format!("cannot read the secret file {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Acquires and caches bearer tokens for one service.
pub struct TokenSource {
    token_url: String,
    scope: Option<String>,
    credentials: ClientCredentials,
    cached: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// An OAuth2 error response (RFC 6749 §5.2; the Microsoft identity platform adds
/// `error_codes`, `trace_id` and `correlation_id`).
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    /// Tokens from `token_url` (e.g. `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`
    /// or `https://<instance>.service-now.com/oauth_token.do`) for `scope` (Entra:
    /// `<resource>/.default`; ServiceNow: none).
    pub fn new(token_url: String, scope: Option<String>, credentials: ClientCredentials) -> TokenSource {
        TokenSource { token_url, scope, credentials, cached: Mutex::new(None) }
    }

    /// The scope tokens are asked for.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// A valid token: the cached one, or a new one when it is about to expire or `renew` is set.
    pub async fn token(&self, client: &reqwest::Client, renew: bool) -> Result<Secret, ConnectorError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && !renew
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.client_secret.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let authority = crate::json::host_of(&self.token_url).unwrap_or_default();
        let response = client
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ConnectorError::Token(format!("cannot reach {authority}: {}", kind(&e))))?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|e| ConnectorError::Token(format!("token response: {}", kind(&e))))?;
        if !status.is_success() {
            // The identity provider's own words: `invalid_resource: AADSTS500011: The resource
            // principal named ... was not found ...`, without the trace lines that follow.
            let reason = match serde_json::from_slice::<TokenError>(&body) {
                Ok(e) => {
                    let description = e.error_description.lines().next().unwrap_or("").trim().to_string();
                    [e.error, description].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ")
                }
                Err(_) => String::new(),
            };
            let reason: String = reason.chars().take(400).collect();
            return Err(ConnectorError::Token(format!(
                "{authority} refused a token (HTTP {status}){}",
                if reason.is_empty() { String::new() } else { format!(": {reason}") }
            )));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| ConnectorError::Token(format!("{} answered without an access_token", self.token_url)))?;
        // `expires_in` is a number (Entra, ServiceNow) or a numeric string (older endpoints).
        let lifetime = parsed
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(10));
        let token = Secret(parsed.access_token);
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

fn kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credentials = ClientCredentials { client_id: "app".into(), client_secret: Secret::new("hunter2") };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
