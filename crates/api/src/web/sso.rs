//! Sign-in to the review screens through the identity provider configured under `[oidc]`: the
//! OAuth 2.0 authorization code flow with PKCE (RFC 7636, `S256`).
//!
//! `GET /login/oidc` makes a `state` and a code verifier, keeps them here for ten minutes (one
//! use), binds the browser to the `state` with a cookie, and sends it to the provider's
//! authorization endpoint. `GET /login/oidc/callback` accepts the code only with the same
//! `state` from the same browser, redeems it at the token endpoint with the verifier, and
//! opens a session with the access token (else the ID token) — verified exactly as a bearer
//! JWT is (`OidcVerifier`: issuer, audience, lifetime, signature, roles). The session then
//! lives as long as that token does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sv0_log::EventLog;

use super::session::{SESSION_COOKIE, SetCookie, cookie, csrf_matches, random_hex};
use super::{Page, WebError, html_headers, layout};
use crate::ApiState;
use crate::auth::authenticate_token;
use crate::oidc::OidcConfig;
use crate::problem::Problem;

/// The cookie binding a browser to the sign-in it started.
pub const OIDC_COOKIE: &str = "sv0_oidc";

/// Where that cookie is sent: the sign-in's routes only.
const OIDC_PATH: &str = "/login/oidc";

/// How long a started sign-in waits for the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);

/// Sign-ins waiting at once, at most.
const MAX_PENDING: usize = 10_000;

/// The provider's endpoints and this client, from `[oidc]`.
pub struct Sso {
    authorize: reqwest::Url,
    token: reqwest::Url,
    client_id: String,
    client_secret: Option<String>,
    redirect: String,
    scope: String,
    // Keyed by the SHA-256 of the state; ordered maps only.
    pending: Mutex<BTreeMap<[u8; 32], (String, Instant)>>,
}

/// An endpoint must be `https`, but for a provider on this machine (tests, a local proxy).
fn endpoint(name: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("[oidc] {name} {url:?} is not a URL: {e}"))?;
    let local = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !local {
        return Err(format!("[oidc] {name} {url} is not https: sign-in codes and tokens never travel in the clear"));
    }
    Ok(parsed)
}

impl Sso {
    /// The sign-in `[oidc]` configures, if it names an authorization endpoint.
    pub fn from_config(config: &OidcConfig) -> Result<Option<Sso>, String> {
        let Some(authorize) = &config.authorization_endpoint else { return Ok(None) };
        let missing = |what: &str| format!("[oidc] has an authorization_endpoint but no {what}");
        let token = config.token_endpoint.as_deref().ok_or_else(|| missing("token_endpoint"))?;
        let redirect = config
            .redirect_url
            .clone()
            .ok_or_else(|| missing("redirect_url (this server's /login/oidc/callback as browsers reach it)"))?;
        let client_secret = match &config.client_secret_file {
            None => None,
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read [oidc] client_secret_file {}: {e}", file.display()))?
                    .trim()
                    .to_string(),
            ),
        };
        Ok(Some(Sso {
            authorize: endpoint("authorization_endpoint", authorize)?,
            token: endpoint("token_endpoint", token)?,
            client_id: config.client_id.clone().unwrap_or_else(|| config.audience.clone()),
            client_secret,
            redirect,
            scope: config.scope.clone().unwrap_or_else(|| format!("openid profile {}/.default", config.audience)),
            pending: Mutex::default(),
        }))
    }

    fn remember(&self, state: &str, verifier: String) {
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, (_, at)| now.duration_since(*at) < PENDING_FOR);
        while pending.len() >= MAX_PENDING {
            let Some(oldest) = pending.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) else { break };
            pending.remove(&oldest);
        }
        pending.insert(Sha256::digest(state.as_bytes()).into(), (verifier, now));
    }

    /// The verifier of a started sign-in, once.
    fn take(&self, state: &str) -> Option<String> {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        let (verifier, at) = pending.remove(&key)?;
        (at.elapsed() < PENDING_FOR).then_some(verifier)
    }
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn sso<L: EventLog>(state: &ApiState<L>) -> Result<&Sso, WebError> {
    state
        .sso
        .as_deref()
        .ok_or_else(|| WebError(Problem::not_found("sign-in through an identity provider is not configured")))
}

/// `GET /login/oidc`: off to the provider.
pub(crate) async fn begin<L: EventLog>(State(state): State<std::sync::Arc<ApiState<L>>>) -> Page {
    let sso = sso(&state)?;
    let login = random_hex()?;
    let verifier = random_hex()?;
    let mut url = sso.authorize.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &sso.client_id)
        .append_pair("redirect_uri", &sso.redirect)
        .append_pair("scope", &sso.scope)
        .append_pair("state", &login)
        .append_pair("code_challenge", &challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    sso.remember(&login, verifier);
    let mut response = Redirect::to(url.as_str()).into_response();
    // Lax: the provider's redirect back is a cross-site navigation, which a Strict cookie misses.
    SetCookie::new(OIDC_COOKIE, &login).lax_under(OIDC_PATH).max_age(PENDING_FOR).add_to(&mut response)?;
    Ok(response)
}

/// The provider's redirect back.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
struct Tokens {
    access_token: Option<String>,
    id_token: Option<String>,
}

/// `GET /login/oidc/callback`: the code, redeemed with the verifier, opens a session.
pub(crate) async fn callback<L: EventLog>(
    State(state): State<std::sync::Arc<ApiState<L>>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    q: Result<Query<Callback>, QueryRejection>,
) -> Page {
    let sso = sso(&state)?;
    let q = crate::routes::query(q)?;
    let refuse = |why: String| WebError(Problem::forbidden(format!("not signed in: {why}")));
    if let Some(error) = &q.error {
        return Err(refuse(format!(
            "the identity provider said {error}: {}",
            q.error_description.as_deref().unwrap_or("")
        )));
    }
    let (Some(code), Some(login)) = (q.code.as_deref(), q.state.as_deref()) else {
        return Err(WebError(Problem::invalid_request("the callback needs code and state")));
    };
    let bound = cookie(&headers, OIDC_COOKIE).unwrap_or_default();
    if !csrf_matches(&bound, login) {
        return Err(refuse("this sign-in was not started in this browser".into()));
    }
    let verifier = sso.take(login).ok_or_else(|| refuse("the sign-in expired or was already used".into()))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", sso.redirect.as_str()),
        ("client_id", sso.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(secret) = &sso.client_secret {
        form.push(("client_secret", secret.as_str()));
    }
    let body = reqwest::Url::parse_with_params("http://form.invalid/", &form)
        .map_err(Problem::internal)?
        .query()
        .unwrap_or_default()
        .to_string();
    let reply = state
        .http
        .post(sso.token.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| refuse(format!("the token endpoint is unreachable: {e}")))?;
    let status = reply.status();
    let bytes = reply.bytes().await.map_err(|e| refuse(format!("the token endpoint's answer broke off: {e}")))?;
    if !status.is_success() {
        return Err(refuse(format!("the token endpoint refused the code ({status})")));
    }
    let tokens: Tokens = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(format!("the token endpoint's answer is not a token response: {e}")))?;
    let verified = [tokens.access_token, tokens.id_token].into_iter().flatten().find_map(|token| {
        authenticate_token(state.queries.views(), state.oidc.as_deref(), &token).ok().map(|caller| (token, caller))
    });
    let (token, caller) =
        verified.ok_or_else(|| refuse("no token from the provider passes the [oidc] checks".into()))?;
    tracing::info!(target: "sv0::requests", principal = %caller.principal, tenant = %caller.tenant, "signed in through the identity provider");
    let (session, _) = state.sessions.open(token)?;
    // A page of this site moves on to the overview: the session cookie is Strict, and the
    // navigation that brought the browser here started at the provider.
    let page = layout::bare(
        "Signed in",
        html! {
            meta http-equiv="refresh" content="0;url=/";
            p { "Signed in as " (caller.principal) ". " a href="/" { "Continue to the overview" } }
        },
    );
    let mut response = (StatusCode::OK, html_headers(), page.into_string()).into_response();
    SetCookie::new(SESSION_COOKIE, &session).secure(super::https(&state, peer, &headers)).add_to(&mut response)?;
    SetCookie::removal(OIDC_COOKIE).lax_under(OIDC_PATH).add_to(&mut response)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B's example: the verifier and its S256 challenge.
    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn endpoints_are_https_unless_on_this_machine() {
        assert!(endpoint("token_endpoint", "http://login.example/token").is_err());
        assert!(endpoint("token_endpoint", "http://127.0.0.1:9/token").is_ok());
        assert!(endpoint("token_endpoint", "https://login.example/token").is_ok());
    }
}
