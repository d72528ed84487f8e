//! Sessions of the review screens: a sign-in exchanges a token for an HttpOnly, SameSite=Strict
//! cookie, and every form carries the session's CSRF token.
//!
//! The session keeps the token it was opened with (in this process's memory only) and every
//! request authenticates it again, so a revoked or expired token ends its sessions at once.
//! Sessions are keyed by the SHA-256 of the cookie, so that looking one up compares digests,
//! never the secret itself; they end after `IDLE` without a request, `LIFETIME` after sign-in,
//! or at sign-out. At most `MAX_SESSIONS` are kept: the least recently used goes first.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// The session cookie.
pub const SESSION_COOKIE: &str = "sv0_session";

/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "sv0_login";

/// A session without a request for this long has ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after sign-in, however active.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Sessions kept at most; beyond, the least recently used ends.
pub const MAX_SESSIONS: usize = 10_000;

/// The open sessions of this process (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions {
    // Keyed by the cookie's SHA-256; ordered maps only, as everywhere.
    open: Mutex<BTreeMap<[u8; 32], Session>>,
}

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The token it signed in with, authenticated again on every request.
    pub token: String,
    /// The CSRF token its forms carry.
    pub csrf: String,
    opened: Instant,
    seen: Instant,
}

impl Sessions {
    /// Opens a session for `token`: the cookie value to set, and the session.
    pub fn open(&self, token: String) -> Result<(String, Session), Problem> {
        let cookie = random_hex()?;
        let now = Instant::now();
        let session = Session { token, csrf: random_hex()?, opened: now, seen: now };
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|_, s| alive(s, now));
        while open.len() >= MAX_SESSIONS {
            let Some(oldest) = open.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) else { break };
            open.remove(&oldest);
        }
        open.insert(digest(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The live session of a cookie value, marked as seen now.
    pub fn find(&self, cookie: &str) -> Option<Session> {
        let now = Instant::now();
        let key = digest(cookie);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = open.get_mut(&key)?;
        if !alive(session, now) {
            open.remove(&key);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Ends the session of a cookie value.
    pub fn close(&self, cookie: &str) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.remove(&digest(cookie));
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.seen) < IDLE && now.duration_since(session.opened) < LIFETIME
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// 32 random bytes, hex.
pub fn random_hex() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(Problem::internal)?;
    Ok(hex::encode(bytes))
}

/// Whether a form's CSRF token is the one expected (in constant time).
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
}

/// A `Set-Cookie` header of the screens: always HttpOnly; SameSite=Strict for the whole site
/// unless `lax_under` says otherwise; `Secure` when the request came over HTTPS.
pub struct SetCookie<'a> {
    name: &'a str,
    value: &'a str,
    path: &'a str,
    same_site: &'static str,
    max_age: Option<Duration>,
    secure: bool,
}

impl<'a> SetCookie<'a> {
    /// `name=value`, HttpOnly, SameSite=Strict, `Path=/`, for the session.
    pub fn new(name: &'a str, value: &'a str) -> SetCookie<'a> {
        SetCookie { name, value, path: "/", same_site: "Strict", max_age: None, secure: false }
    }

    /// Removes the cookie `name` (an empty value, `Max-Age=0`).
    pub fn removal(name: &'a str) -> SetCookie<'a> {
        SetCookie::new(name, "").max_age(Duration::ZERO)
    }

    /// Kept at most this long.
    pub fn max_age(mut self, age: Duration) -> SetCookie<'a> {
        self.max_age = Some(age);
        self
    }

    /// `Secure` when `secure`.
    pub fn secure(mut self, secure: bool) -> SetCookie<'a> {
        self.secure = secure;
        self
    }

    /// SameSite=Lax, sent only below `path`: for a cookie a cross-site navigation must carry.
    pub fn lax_under(mut self, path: &'a str) -> SetCookie<'a> {
        self.same_site = "Lax";
        self.path = path;
        self
    }

    /// Appends the header to a response.
    pub fn add_to(&self, response: &mut axum::response::Response) -> Result<(), Problem> {
        let value = axum::http::HeaderValue::from_str(&self.to_string()).map_err(Problem::internal)?;
        response.headers_mut().append(header::SET_COOKIE, value);
        Ok(())
    }
}

impl std::fmt::Display for SetCookie<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}; Path={}; HttpOnly; SameSite={}", self.name, self.value, self.path, self.same_site)?;
        if let Some(age) = self.max_age {
            write!(f, "; Max-Age={}", age.as_secs())?;
        }
        if self.secure {
            write!(f, "; Secure")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_only_and_ends_at_sign_out() {
        let sessions = Sessions::default();
        let (cookie, session) = sessions.open("sv0_token".to_string()).unwrap();
        assert_eq!(cookie.len(), 64);
        assert_eq!(sessions.find(&cookie).unwrap().csrf, session.csrf);
        assert!(sessions.find(&session.csrf).is_none(), "the CSRF token is not a session cookie");
        assert!(sessions.find("").is_none());
        sessions.close(&cookie);
        assert!(sessions.find(&cookie).is_none());
    }

    #[test]
    fn csrf_tokens_compare_whole_and_never_empty() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
        assert!(!csrf_matches("", ""));
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header_and_written_strict() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; sv0_session=xyz".parse().unwrap());
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "sv0_session").as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = SetCookie::new(SESSION_COOKIE, "v").secure(true).to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("; Secure"));
    }
}
