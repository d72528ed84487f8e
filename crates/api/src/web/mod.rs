//! The review screens: server-rendered HTML for the people who review and approve, served by
//! `sv0 serve` next to `/api/v1` from the same `Queries` (no second source of truth).
//!
//! | route | screen |
//! |---|---|
//! | `GET /` | Overview: every scope's baseline state, the tenant's posture, scans, signals |
//! | `GET /scopes/{scope}` | Exposure Brief, and the approve form for approvers |
//! | `POST /scopes/{scope}/approve` | records the approval (CSRF token, posture digest) |
//! | `POST /scopes/{scope}/whatif` | the plan's what-if before approving, the form filled in again |
//! | `GET /scopes/{scope}/delta` | the delta after a deployment, remediation, verification |
//! | `GET /paths/{id}` | Path Detail: the four hops and their provenance |
//! | `GET /evidence` | the pack chain; downloads of packs (JSON, DSSE), inclusion proofs, keys, a signed checkpoint, in-toto attestations |
//! | `GET /login`, `POST /login`, `POST /logout` | sign-in with an SV0 token (or a provider JWT) |
//!
//! Every screen but the evidence takes `?as_of=` (a log position or an RFC 3339 time) and shows the
//! tenant as a replay of the log up to that point, marked as historical, without forms.
//! **Invariants:** every page reads only the signed-in caller's tenant, with the permissions of
//! the caller's roles (the API's table); every form carries the session's CSRF token and is
//! refused without it; every response carries a strict Content-Security-Policy (no script, no
//! inline style).

mod brief;
mod evidence;
pub mod layout;
pub mod overview;
mod path;
pub mod session;
pub mod sso;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use sv0_domain::TenantId;
use sv0_domain::access::Permission;
use sv0_log::EventLog;
use sv0_service::Queries;

use crate::ApiState;
use crate::auth::{Caller, authenticate_token, permit};
use crate::problem::Problem;
// A query string or a scope that does not parse is a 400 page, as it is a 400 of the API.
pub(crate) use crate::routes::{query, scope_of};
use layout::{Frame, History, Nav};
use session::{LOGIN_COOKIE, SESSION_COOKIE, Session, SetCookie, cookie, csrf_matches};

/// The Content-Security-Policy of every screen: nothing but this origin's style sheet, no
/// script, no frames, forms only to this origin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The screens' routes (merged into the server's router).
pub fn router<L: EventLog + Clone>() -> Router<Arc<ApiState<L>>> {
    Router::new()
        .route("/", get(overview::overview::<L>))
        .route("/scopes/{scope}", get(brief::brief::<L>))
        .route("/scopes/{scope}/approve", post(brief::approve::<L>))
        .route("/scopes/{scope}/whatif", post(brief::whatif::<L>))
        .route("/scopes/{scope}/delta", get(brief::delta::<L>))
        .route("/paths/{id}", get(path::path::<L>))
        .route("/evidence", get(evidence::evidence::<L>))
        .route("/evidence/packs/{id}", get(evidence::pack::<L>))
        .route("/evidence/packs/{id}/dsse", get(evidence::dsse::<L>))
        .route("/evidence/keys.pem", get(evidence::keys::<L>))
        .route("/evidence/checkpoint", get(evidence::checkpoint::<L>))
        .route("/evidence/attestations", get(evidence::attestations::<L>))
        .route("/evidence/proofs/{id}", get(evidence::proof::<L>))
        .route("/login", get(login_form::<L>).post(login::<L>))
        .route("/login/oidc", get(sso::begin::<L>))
        .route("/login/oidc/callback", get(sso::callback::<L>))
        .route("/logout", post(logout::<L>))
        .route("/static/sv0.css", get(css))
        .layer(axum::middleware::from_fn(secure_headers))
}

/// Sets the security headers of every screen.
async fn secure_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], layout::CSS)
        .into_response()
}

/// An error shown as a page, with the status of the API's problem.
pub(crate) struct WebError(Problem);

impl From<Problem> for WebError {
    fn from(problem: Problem) -> WebError {
        WebError(problem)
    }
}

impl From<sv0_service::ServiceError> for WebError {
    fn from(e: sv0_service::ServiceError) -> WebError {
        WebError(e.into())
    }
}

impl From<sv0_projections::ProjectionError> for WebError {
    fn from(e: sv0_projections::ProjectionError) -> WebError {
        WebError(sv0_service::ServiceError::from(e).into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let problem = self.0;
        let body = layout::bare(
            problem.title,
            html! {
                div.error role="alert" { p { (problem.detail) } }
                p { a href="/" { "Back to the overview" } }
            },
        );
        (problem.status, html_headers(), body.into_string()).into_response()
    }
}

pub(crate) type Page = Result<Response, WebError>;

fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

/// A rendered page.
pub(crate) fn html(markup: Markup) -> Page {
    Ok((StatusCode::OK, html_headers(), markup.into_string()).into_response())
}

/// The signed-in caller of a screen: its session, authenticated again on every request.
pub(crate) struct Viewer<L: EventLog> {
    pub s: Arc<ApiState<L>>,
    pub caller: Caller,
    pub session: Session,
}

impl<L: EventLog> axum::extract::FromRequestParts<Arc<ApiState<L>>> for Viewer<L> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState<L>>,
    ) -> Result<Viewer<L>, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| state.sessions.find(&value))
            .ok_or_else(to_login)?;
        // A token revoked or expired since sign-in ends the session here.
        let caller =
            authenticate_token(state.queries.views(), state.oidc.as_deref(), &session.token).map_err(|_| to_login())?;
        let caller = permit(caller, Permission::Read).map_err(|p| WebError(p).into_response())?;
        Ok(Viewer { s: Arc::clone(state), caller, session })
    }
}

impl<L: EventLog> Viewer<L> {
    /// Whether the caller's roles permit `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.caller.roles.iter().any(|r| r.permits(permission))
    }

    /// Refuses with 403 unless the caller's roles permit `permission`.
    pub fn must(&self, permission: Permission) -> Result<(), WebError> {
        permit(self.caller.clone(), permission).map(|_| ()).map_err(WebError)
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.caller.tenant
    }

    /// The frame of a page.
    pub fn frame<'a>(&'a self, title: &'a str, current: Nav, as_of: Option<&'a History>) -> Frame<'a> {
        Frame {
            title,
            principal: &self.caller.principal,
            tenant: self.caller.tenant.as_str(),
            csrf: &self.session.csrf,
            as_of,
            current,
        }
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), WebError> {
        if given.is_some_and(|g| csrf_matches(&self.session.csrf, g)) {
            Ok(())
        } else {
            Err(WebError(Problem::forbidden(
                "the form's CSRF token is missing or not this session's: reload the page and submit it again",
            )))
        }
    }
}

impl<L: EventLog + Clone> Viewer<L> {
    /// The queries a page reads: now, or over a replay of the tenant up to `as_of`.
    pub async fn queries(&self, as_of: Option<&str>) -> Result<(Queries<L>, Option<History>), WebError> {
        let Some(asked) = as_of.map(str::trim).filter(|a| !a.is_empty()) else {
            return Ok((self.s.queries.clone(), None));
        };
        let views = crate::routes::replayed(&self.s, &self.caller.tenant, asked).await?;
        let position = views.checkpoint()?;
        let history = History { asked: asked.to_string(), position };
        Ok((self.s.queries.over((*views).clone()), Some(history)))
    }
}

/// `?as_of=` of a screen.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AsOfQuery {
    pub as_of: Option<String>,
}

/// A form body as its fields, in order (repeated names kept).
pub(crate) fn form(f: Result<Form<Vec<(String, String)>>, FormRejection>) -> Result<Vec<(String, String)>, WebError> {
    f.map(|Form(fields)| fields).map_err(|e| WebError(Problem::invalid_request(e.body_text())))
}

/// The first value of a form field.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Whether the request came over HTTPS (from a trusted proxy that says so): cookies are
/// `Secure` then.
fn https<L: EventLog>(state: &ApiState<L>, peer: SocketAddr, headers: &HeaderMap) -> bool {
    state.trusted_proxies.contains(&peer.ip())
        && headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "https")
}

/// `GET /login`: the sign-in form, with a CSRF token in a cookie of its own.
async fn login_form<L: EventLog>(State(state): State<Arc<ApiState<L>>>) -> Page {
    let token = session::random_hex()?;
    let body = login_page(&token, None, state.sso.is_some());
    let mut response = html(body)?;
    SetCookie::new(LOGIN_COOKIE, &token).max_age(std::time::Duration::from_secs(600)).add_to(&mut response)?;
    Ok(response)
}

fn login_page(csrf: &str, error: Option<&str>, sso: bool) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            @if let Some(error) = error { div.error role="alert" { (error) } }
            @if sso {
                p { a.button href="/login/oidc" { "Sign in with your identity provider" } }
                p { "Or:" }
            }
            p { "Sign in with an SV0 token (" code { "sv0 tokens create" } " prints one), or your identity provider's token when OIDC is configured." }
            form.approve method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="off" required;
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// `POST /login`: a valid token opens a session; failures count against the client as the
/// API's do.
async fn login<L: EventLog>(
    State(state): State<Arc<ApiState<L>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    f: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let fields = form(f)?;
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !field(&fields, "csrf").is_some_and(|given| csrf_matches(&expected, given)) {
        return Err(WebError(Problem::forbidden(
            "the sign-in form's CSRF token is missing or stale: open the sign-in page again",
        )));
    }
    let addr = crate::client_ip(&state.trusted_proxies, peer.ip(), &headers);
    let now = std::time::Instant::now();
    if let Some(retry_after) = state.failures.blocked(addr, now) {
        return Err(WebError(Problem::too_many_failures(retry_after)));
    }
    let token = field(&fields, "token").unwrap_or("").trim().to_string();
    let caller = match authenticate_token(state.queries.views(), state.oidc.as_deref(), &token) {
        Ok(caller) => caller,
        Err(problem) => {
            state.failures.fail(addr, now);
            let page = login_page(&expected, Some(&format!("Not signed in: {}", problem.detail)), state.sso.is_some());
            return Ok((StatusCode::UNAUTHORIZED, html_headers(), page.into_string()).into_response());
        }
    };
    tracing::info!(target: "sv0::requests", principal = %caller.principal, tenant = %caller.tenant, "signed in to the review screens");
    let (value, _) = state.sessions.open(token)?;
    let secure = https(&state, peer, &headers);
    let mut response = Redirect::to("/").into_response();
    SetCookie::new(SESSION_COOKIE, &value).secure(secure).add_to(&mut response)?;
    SetCookie::removal(LOGIN_COOKIE).secure(secure).add_to(&mut response)?;
    Ok(response)
}

/// `POST /logout`: ends the session.
async fn logout<L: EventLog>(
    viewer: Viewer<L>,
    headers: HeaderMap,
    f: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let fields = form(f)?;
    viewer.check_csrf(field(&fields, "csrf"))?;
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        viewer.s.sessions.close(&value);
    }
    let mut response = Redirect::to("/login").into_response();
    SetCookie::removal(SESSION_COOKIE).add_to(&mut response)?;
    Ok(response)
}
