//! API bearer tokens: issued and revoked by events, stored only as the SHA-256 of their secret.
//!
//! A token reads `sv0_<id>_<secret>`: 16 hex digits of public id (how the token is found) and
//! 64 hex digits (32 random bytes) of secret. Authentication finds the id, hashes the secret and
//! compares the hashes in constant time; a revoked token, an unknown id and a wrong secret are
//! refused alike.

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use sv0_domain::access::Role;
use sv0_domain::events::{Actor, Event, EventPayload, TokenIssued, TokenRevoked, derived_id};
use sv0_domain::{InvalidInput, TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_projections::TokenRecord;

use crate::import::new_event;
use crate::{Service, ServiceError};

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "sv0_";

/// A token just issued: the only time its text exists outside the caller's hands.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IssuedToken {
    /// The record the views keep (no secret).
    pub record: TokenRecord,
    /// The bearer token.
    #[serde(skip)]
    pub token: String,
}

/// A token as shown to people and over the API: everything but its secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TokenView {
    /// Public id.
    pub token_id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// A name for people.
    pub name: String,
    /// Who acts with it.
    pub principal: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// Who issued it.
    pub issued_by: String,
    /// When.
    pub issued_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// By whom.
    pub revoked_by: Option<String>,
    /// When it stops authenticating (`None`: until revoked).
    pub expires_at: Option<Timestamp>,
}

impl From<&TokenRecord> for TokenView {
    fn from(r: &TokenRecord) -> TokenView {
        TokenView {
            token_id: r.token_id.clone(),
            tenant: r.tenant.clone(),
            name: r.name.clone(),
            principal: r.principal.clone(),
            roles: r.roles.clone(),
            issued_by: r.issued_by.clone(),
            issued_at: r.issued_at,
            revoked_at: r.revoked_at,
            revoked_by: r.revoked_by.clone(),
            expires_at: r.expires_at,
        }
    }
}

/// Why a bearer token was refused. Deliberately coarse: the caller learns only that it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not of the token format.
    Malformed,
    /// Unknown, revoked or wrong.
    Invalid,
}

impl<L: EventLog> Service<L> {
    /// Issues a token for `tenant` and returns it once.
    pub async fn issue_token(
        &mut self,
        tenant: &TenantId,
        name: &str,
        principal: &str,
        roles: Vec<Role>,
        expires_at: Option<Timestamp>,
        actor: &Actor,
    ) -> Result<IssuedToken, ServiceError> {
        if expires_at.is_some_and(|at| at <= Timestamp::now()) {
            return Err(InvalidInput::new("a token's expiry must be in the future").into());
        }
        if roles.is_empty() {
            return Err(InvalidInput::new("a token needs at least one role (--role)").into());
        }
        if name.trim().is_empty() || principal.trim().is_empty() {
            return Err(InvalidInput::new("a token needs a name and a principal").into());
        }
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        let mut random = [0u8; 40];
        getrandom::fill(&mut random).map_err(|_| ServiceError::Random)?;
        let token_id = hex::encode(&random[..8]);
        let secret = hex::encode(&random[8..]);
        random.fill(0);
        let issued = TokenIssued {
            token_id: token_id.clone(),
            name: name.to_string(),
            principal: principal.to_string(),
            roles,
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            expires_at,
        };
        let event = token_event(tenant, actor, EventPayload::TokenIssued(issued), &token_id);
        let seq = self.log.append(&format!("{tenant}.token"), Expected::Any, vec![new_event(&event)?]).await?.last();
        self.views.catch_up(&self.log, Some(seq)).await?;
        let record =
            self.views.token(&token_id)?.filter(|r| r.tenant == *tenant).ok_or_else(|| {
                ServiceError::Conflict(format!("token id {token_id} was taken; issue the token again"))
            })?;
        Ok(IssuedToken { record, token: format!("{TOKEN_PREFIX}{token_id}_{secret}") })
    }

    /// Revokes a tenant's token, named by its id or its name.
    pub async fn revoke_token(
        &mut self,
        tenant: &TenantId,
        token: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<TokenRecord, ServiceError> {
        let tokens = self.views.tokens(tenant)?;
        let matching: Vec<&TokenRecord> =
            tokens.iter().filter(|t| t.revoked_at.is_none() && (t.token_id == token || t.name == token)).collect();
        let record = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => return Err(InvalidInput::new(format!("tenant {tenant} has no active token {token:?}")).into()),
            _ => {
                return Err(InvalidInput::new(format!(
                    "several active tokens of tenant {tenant} are named {token:?}; revoke one by its id"
                ))
                .into());
            }
        };
        let revoked = TokenRevoked { token_id: record.token_id.clone(), reason: reason.to_string() };
        let event = token_event(tenant, actor, EventPayload::TokenRevoked(revoked), &record.token_id);
        let seq = self.log.append(&format!("{tenant}.token"), Expected::Any, vec![new_event(&event)?]).await?.last();
        self.views.catch_up(&self.log, Some(seq)).await?;
        Ok(self.views.token(&record.token_id)?.unwrap_or(record))
    }

    /// A tenant's tokens (never their secrets).
    pub fn tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, ServiceError> {
        Ok(self.views.tokens(tenant)?)
    }
}

/// Checks a bearer token against the views: the token's record when it is active and its
/// secret matches.
pub fn authenticate(views: &sv0_projections::Views, token: &str) -> Result<TokenRecord, Refusal> {
    let (token_id, secret) = parse(token).ok_or(Refusal::Malformed)?;
    let record = views.token(token_id).ok().flatten();
    let presented = Sha256::digest(secret.as_bytes());
    let now = Timestamp::now();
    // The hash is compared even when the id is unknown, so both refusals cost the same.
    let stored = record.as_ref().and_then(|r| hex::decode(&r.secret_sha256).ok()).unwrap_or_else(|| vec![0; 32]);
    let matches: bool = stored.ct_eq(presented.as_slice()).into();
    match record {
        Some(record) if matches && record.revoked_at.is_none() && record.expires_at.is_none_or(|at| now < at) => {
            Ok(record)
        }
        _ => Err(Refusal::Invalid),
    }
}

/// `(id, secret)` of a well-formed token.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_of(id, 16) && hex_of(secret, 64)).then_some((id, secret))
}

fn token_event(tenant: &TenantId, actor: &Actor, payload: EventPayload, token_id: &str) -> Event {
    let label = payload.event_type();
    let event_id = derived_id("sv0.token.v1", tenant, &[token_id.as_bytes(), label.as_bytes()]);
    Event::by(event_id, tenant, Timestamp::now(), actor, payload)
}
