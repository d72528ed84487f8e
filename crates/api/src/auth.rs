//! Who is calling: the bearer token, checked against the views, and what its roles permit.
//! Failed attempts are counted per client network (an IPv4 address, an IPv6 /64); past the
//! limit (`FAILURE_LIMIT` by default) in `FAILURE_WINDOW` the network's failing attempts get 429
//! until the window ends. Only failures are limited: a valid token works from a blocked network,
//! so an attacker sharing a user's address (a NAT, a proxy) cannot lock the user out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use sv0_domain::TenantId;
use sv0_domain::access::{Permission, Role};
use sv0_projections::Views;
use sv0_service::tokens::{Refusal, TOKEN_PREFIX, authenticate};

use crate::oidc::OidcVerifier;

use crate::problem::Problem;

/// Failed authentications an address may make per window, by default.
pub const FAILURE_LIMIT: u32 = 20;
/// The window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id.
    pub token_id: String,
    /// What it authenticated with, as events record it: `token:<id>` or
    /// `oidc:<issuer>#<subject>`.
    pub credential: String,
    /// The one tenant it acts for.
    pub tenant: TenantId,
    /// Who it is: what approvals and scans record.
    pub principal: String,
    /// Its roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// The caller as events record it: `api:<principal>` with its credential.
    pub fn actor(&self) -> sv0_domain::events::Actor {
        sv0_domain::events::Actor::api(&self.principal, self.credential.clone())
    }
}

/// Failed authentications per client address.
#[derive(Debug)]
pub struct FailedAuth {
    limit: u32,
    // Not hashed, signed or compared: a HashMap's order does not matter here.
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Default for FailedAuth {
    fn default() -> FailedAuth {
        FailedAuth::with_limit(FAILURE_LIMIT)
    }
}

impl FailedAuth {
    /// Allows `limit` failures per address per `FAILURE_WINDOW`.
    pub fn with_limit(limit: u32) -> FailedAuth {
        FailedAuth { limit, windows: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `addr` may try again, when it is blocked.
    pub(crate) fn blocked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = windows.get(&network(addr))?;
        let ends = *start + FAILURE_WINDOW;
        (*count >= self.limit && now < ends).then(|| (ends - now).as_secs().max(1))
    }

    pub(crate) fn fail(&self, addr: IpAddr, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = windows.entry(network(addr)).or_insert((now, 0));
        if now >= entry.0 + FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        // Forget windows long over, so the map stays small.
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now < *start + FAILURE_WINDOW);
        }
    }
}

/// What failures are counted against: the address, or for IPv6 its /64 (one host's share of
/// a network; an attacker rotating addresses inside it is one client).
fn network(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The caller of a request, if its token (an SV0 token, or with OIDC configured a provider's
/// JWT) is valid and permits `permission`.
pub fn authorize(
    views: &Views,
    oidc: Option<&OidcVerifier>,
    failures: &FailedAuth,
    headers: &HeaderMap,
    addr: IpAddr,
    permission: Permission,
) -> Result<Caller, Problem> {
    let now = Instant::now();
    // A failing attempt from a blocked network gets 429 (and does not extend the block); a
    // valid token is served wherever it comes from.
    let blocked = failures.blocked(addr, now);
    let refuse = |problem: Problem| match blocked {
        Some(retry_after) => Problem::too_many_failures(retry_after),
        None => {
            failures.fail(addr, now);
            problem
        }
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| refuse(Problem::missing_token()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| refuse(Problem::malformed_token()))?;
    let caller = authenticate_token(views, oidc, token).map_err(refuse)?;
    permit(caller, permission)
}

/// The caller a token (an SV0 token, or with OIDC configured a provider's JWT) authenticates,
/// whatever it may do. Failures are not counted here: `authorize` and the sign-in of the
/// review screens count them per client.
pub fn authenticate_token(views: &Views, oidc: Option<&OidcVerifier>, token: &str) -> Result<Caller, Problem> {
    let caller = match oidc {
        Some(oidc) if !token.starts_with(TOKEN_PREFIX) && token.matches('.').count() == 2 => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let identity = oidc.verify(token, now).map_err(|reason| {
                tracing::debug!(%reason, "a provider JWT was refused");
                Problem::invalid_token()
            })?;
            Caller {
                token_id: format!("oidc:{}", identity.subject),
                credential: format!("oidc:{}#{}", identity.issuer, identity.subject),
                tenant: identity.tenant,
                principal: identity.principal,
                roles: identity.roles,
            }
        }
        _ => {
            let record = authenticate(views, token).map_err(|refusal| match refusal {
                Refusal::Malformed => Problem::malformed_token(),
                Refusal::Invalid => Problem::invalid_token(),
            })?;
            Caller {
                credential: format!("token:{}", record.token_id),
                token_id: record.token_id,
                tenant: record.tenant,
                principal: record.principal,
                roles: record.roles,
            }
        }
    };
    Ok(caller)
}

/// The caller, if one of its roles permits `permission`.
pub fn permit(caller: Caller, permission: Permission) -> Result<Caller, Problem> {
    if !caller.roles.iter().any(|role| role.permits(permission)) {
        let roles: Vec<&str> = caller.roles.iter().map(|r| r.name()).collect();
        return Err(Problem::forbidden(format!(
            "the token's role(s) [{}] do not permit this ({permission:?})",
            roles.join(", ")
        )));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 clients are counted per /64; IPv4 (and IPv4-mapped IPv6) per address.
    #[test]
    fn failures_count_per_ipv4_address_and_ipv6_64() {
        let failures = FailedAuth::with_limit(2);
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        failures.fail(a, now);
        failures.fail(b, now);
        assert!(failures.blocked(a, now).is_some(), "two failures in one /64 block it");
        assert!(failures.blocked(b, now).is_some());
        assert!(failures.blocked(other, now).is_none(), "the next /64 is another client");
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        failures.fail(v4, now);
        failures.fail(mapped, now);
        assert!(failures.blocked(v4, now).is_some(), "an IPv4-mapped address is the IPv4 client");
        assert!(failures.blocked("192.0.2.8".parse().unwrap(), now).is_none());
        assert!(failures.blocked(a, now + FAILURE_WINDOW).is_none(), "the block ends with its window");
    }
}
