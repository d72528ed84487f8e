//! Errors as RFC 9457 problem details (`application/problem+json`), each with a stable `type`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sv0_service::ServiceError;
use tracing::error;

/// The prefix of every problem type.
pub const PROBLEM_BASE: &str = "https://sv0.dev/problems/";

/// One problem: an HTTP status, a stable type, a title and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The status code.
    pub status: StatusCode,
    /// The stable type, after `PROBLEM_BASE`.
    pub kind: &'static str,
    /// The type's title.
    pub title: &'static str,
    /// What happened this time.
    pub detail: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
    /// Every problem found, when there were several (a snapshot's, each naming its field).
    pub problems: Vec<String>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, kind, title, detail: detail.into(), retry_after: None, problems: Vec::new() }
    }

    /// No bearer token.
    pub fn missing_token() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "missing-token",
            "Authentication required",
            "send Authorization: Bearer <token>",
        )
    }

    /// Not a bearer token of SV0's format.
    pub fn malformed_token() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "malformed-token",
            "Malformed token",
            "the Authorization header is not Bearer sv0_<id>_<secret>",
        )
    }

    /// Unknown, revoked or wrong.
    pub fn invalid_token() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            "Invalid token",
            "the token is unknown, revoked or wrong",
        )
    }

    /// A webhook whose signature does not verify (or is missing).
    pub fn invalid_signature() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-signature",
            "Invalid signature",
            "the X-Hub-Signature-256 HMAC of the body does not verify",
        )
    }

    /// A webhook delivery received before.
    pub fn replayed(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "replayed-delivery", "Replayed delivery", detail)
    }

    /// Too many failed attempts from one address.
    pub fn too_many_failures(retry_after: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-authentications",
            "Too many failed authentications",
            format!("too many failed authentications from this address; try again in {retry_after} s"),
        );
        p.retry_after = Some(retry_after);
        p
    }

    /// The token's roles do not permit the route.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not permitted", detail)
    }

    /// Nothing of the caller's tenant has this id.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// A request that cannot be understood.
    pub fn invalid_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", detail)
    }

    /// A snapshot that cannot be imported.
    pub fn invalid_snapshot(detail: impl Into<String>) -> Problem {
        let detail = detail.into();
        let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-snapshot", "Invalid snapshot", &detail);
        Problem { problems: vec![detail], ..problem }
    }

    /// A body larger than the route takes.
    pub fn too_large(limit: usize) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("the body exceeds the limit of {limit} bytes"),
        )
    }

    /// The same work for the same tenant is already running.
    pub fn busy(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "busy", "Busy", detail)
    }

    /// A request that took longer than the server allows (a slow client).
    pub fn request_timeout(seconds: u64) -> Problem {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!("the request was not complete within {seconds} s"),
        )
    }

    /// A body of another content type than JSON.
    pub fn unsupported_media_type() -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as Content-Type: application/json",
        )
    }

    /// The state the request depends on moved, or does not exist yet.
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// Something failed on our side; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Problem {
        error!(%detail, "request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request failed; see the server's log",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDetails {
            kind: format!("{PROBLEM_BASE}{}", self.kind),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            problems: self.problems,
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sv0\""));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Problem {
        match e {
            ServiceError::Input(e) => Problem::invalid_request(e.to_string()),
            ServiceError::Snapshot(invalid) => {
                let detail = invalid.to_string();
                Problem { problems: invalid.problems, ..Problem::invalid_snapshot(detail) }
            }
            ServiceError::SnapshotJson(_) | ServiceError::EntityTooLarge { .. } => {
                Problem::invalid_snapshot(e.to_string())
            }
            ServiceError::EmptyScope { .. } | ServiceError::UnknownFinding { .. } => {
                Problem::invalid_request(e.to_string())
            }
            ServiceError::NoBaseline { .. }
            | ServiceError::Conflict(_)
            | ServiceError::PostureChanged { .. }
            | ServiceError::KeyNotInChain { .. }
            | ServiceError::NoKey => Problem::conflict(e.to_string()),
            ServiceError::Tenant(_) => Problem::not_found(e.to_string()),
            other => Problem::internal(other),
        }
    }
}

impl From<sv0_projections::ProjectionError> for Problem {
    fn from(e: sv0_projections::ProjectionError) -> Problem {
        Problem::internal(e)
    }
}

/// The error body of every route: RFC 9457 problem details.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ProblemDetails {
    /// Stable per error: `https://sv0.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The title of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// Every problem found, when the request had several (a snapshot's problems, each naming
    /// the field at fault).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}
