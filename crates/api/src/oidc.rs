//! OIDC sign-in: bearer tokens that are JWTs from an identity provider (Entra ID and others)
//! instead of SV0 tokens. A JWT is accepted when its RS256 signature verifies with a key of
//! the provider's JWKS (by `kid`), its `iss` and `aud` are the configured ones, and it is
//! within `nbf`..`exp` (a minute of leeway). The principal is a configured claim, or by
//! default the issuer and the immutable `oid` (else `sub`): `<issuer>#<oid>` — never a name a
//! user can change (`preferred_username`); the roles are the values of the roles claim (Entra
//! app roles `SV0.Viewer`, `SV0.Approver`, ... or bare role names); the tenant is the
//! configured one.
//!
//! Keys come from a JWKS file or an `https` URL. A JWT naming a key the set does not hold makes
//! the verifier read the set again — at most once per `REFRESH_INTERVAL`, so that a stream of
//! made-up key ids costs nothing — which is how a provider's key rotation is followed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;
use serde_json::Value;
use sv0_domain::TenantId;
use sv0_domain::access::Role;

/// Leeway on `exp` and `nbf`, in seconds.
const LEEWAY: i64 = 60;

/// The shortest time between two reads of the key set for unknown key ids.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Keys by id: RSA modulus and exponent, big-endian.
type Keys = BTreeMap<String, (Vec<u8>, Vec<u8>)>;

/// Where the keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    File(std::path::PathBuf),
    Url(String, reqwest::Client),
}

impl KeySource {
    fn name(&self) -> String {
        match self {
            KeySource::File(path) => path.display().to_string(),
            KeySource::Url(url, _) => url.clone(),
        }
    }

    async fn text(&self) -> Result<String, String> {
        match self {
            KeySource::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string()),
            KeySource::Url(url, http) => {
                let response = http.get(url).send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("answered {}", response.status()));
                }
                response.text().await.map_err(|e| e.to_string())
            }
        }
    }
}

/// The RSA signing keys with a `kid` of a JWKS document.
fn parse_keys(text: &str) -> Result<Keys, String> {
    let jwks: Jwks = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = BTreeMap::new();
    for key in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
        let (Some(kid), Some(n), Some(e)) = (key.kid, key.n, key.e) else { continue };
        let decode = |v: &str| URL_SAFE_NO_PAD.decode(v.trim_end_matches('='));
        if let (Ok(n), Ok(e)) = (decode(&n), decode(&e)) {
            keys.insert(kid, (n, e));
        }
    }
    if keys.is_empty() {
        return Err("no RSA signing key with a kid".into());
    }
    Ok(keys)
}

/// Why the OIDC configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcSetupError {
    /// The JWKS could not be fetched or read.
    #[error("cannot load the OIDC signing keys from {from}: {reason}")]
    Keys {
        /// File or URL.
        from: String,
        /// Why.
        reason: String,
    },
    /// The configuration is not usable.
    #[error("[oidc] in sv0.toml: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Verifies provider JWTs.
#[derive(Debug)]
pub struct OidcVerifier {
    issuer: String,
    audience: String,
    tenant: TenantId,
    /// The claim naming the principal, when configured (else `<issuer>#<oid or sub>`).
    principal_claim: Option<String>,
    roles_claim: String,
    keys: Arc<RwLock<Keys>>,
    source: KeySource,
    /// When the keys were last read again for an unknown key id.
    refreshed: Arc<Mutex<Option<Instant>>>,
}

/// A verified caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// Who.
    pub principal: String,
    /// The tenant.
    pub tenant: TenantId,
    /// Its roles.
    pub roles: Vec<Role>,
    /// The token's `sub` (or `jti` when it has none).
    pub subject: String,
    /// The issuer that signed it.
    pub issuer: String,
}

impl OidcVerifier {
    /// Loads the JWKS the configuration names (a file, or a URL fetched once at start).
    pub async fn load(config: &OidcConfig, http: &reqwest::Client) -> Result<OidcVerifier, OidcSetupError> {
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), None) => KeySource::File(file.clone()),
            (None, Some(url)) => {
                // Keys that decide who may approve are not fetched over plain HTTP.
                if !url.to_ascii_lowercase().starts_with("https://") {
                    return Err(OidcSetupError::Invalid(format!("jwks_url {url} is not https")));
                }
                KeySource::Url(url.clone(), http.clone())
            }
            _ => return Err(OidcSetupError::Invalid("give exactly one of jwks_file and jwks_url".into())),
        };
        let keys = |reason: String| OidcSetupError::Keys { from: source.name(), reason };
        let keys = parse_keys(&source.text().await.map_err(keys)?).map_err(keys)?;
        Ok(OidcVerifier {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            tenant: TenantId::new(&config.tenant).map_err(|e| OidcSetupError::Invalid(e.to_string()))?,
            principal_claim: config.principal_claim.clone(),
            roles_claim: config.roles_claim.clone().unwrap_or_else(|| "roles".into()),
            keys: Arc::new(RwLock::new(keys)),
            source,
            refreshed: Arc::default(),
        })
    }

    /// The key `kid`, reading the set again first when it does not hold it (at most once per
    /// `REFRESH_INTERVAL`). A file is read at once; a URL is fetched in the background, so the
    /// JWT that asked is refused and the next one finds the key.
    fn key(&self, kid: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let known = |keys: &RwLock<Keys>| keys.read().unwrap_or_else(|e| e.into_inner()).get(kid).cloned();
        if let Some(key) = known(&self.keys) {
            return Some(key);
        }
        {
            let mut refreshed = self.refreshed.lock().unwrap_or_else(|e| e.into_inner());
            if refreshed.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
                return None;
            }
            *refreshed = Some(Instant::now());
        }
        let (keys, source) = (Arc::clone(&self.keys), self.source.clone());
        let install = move |text: Result<String, String>| match text.and_then(|t| parse_keys(&t)) {
            Ok(fresh) => *keys.write().unwrap_or_else(|e| e.into_inner()) = fresh,
            Err(reason) => tracing::warn!(from = %source.name(), %reason, "the OIDC keys could not be read again"),
        };
        match &self.source {
            KeySource::File(path) => install(std::fs::read_to_string(path).map_err(|e| e.to_string())),
            KeySource::Url(..) => {
                let source = self.source.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { install(source.text().await) });
                }
            }
        }
        known(&self.keys)
    }

    /// Verifies a JWT at time `now` (Unix seconds); the reason when it is refused.
    pub fn verify(&self, token: &str, now: i64) -> Result<OidcIdentity, String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else { return Err("not a JWT".into()) };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "not a JWT".to_string());
        let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| "not a JWT")?;
        if header["alg"] != "RS256" {
            return Err(format!("algorithm {} is not accepted", header["alg"]));
        }
        let kid = header["kid"].as_str().ok_or("the JWT names no key")?;
        let (n, e) = self.key(kid).ok_or_else(|| format!("unknown signing key {kid}"))?;
        let signed = format!("{}.{}", parts[0], parts[1]);
        RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &decode(signature)?)
            .map_err(|_| "the signature does not verify".to_string())?;
        let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| "not a JWT")?;
        if claims["iss"] != self.issuer.as_str() {
            return Err("another issuer".into());
        }
        let audience_ok = match &claims["aud"] {
            Value::String(a) => *a == self.audience,
            Value::Array(all) => all.iter().any(|a| a == self.audience.as_str()),
            _ => false,
        };
        if !audience_ok {
            return Err("another audience".into());
        }
        let exp = claims["exp"].as_i64().ok_or("no expiry")?;
        if now > exp + LEEWAY {
            return Err("expired".into());
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| now + LEEWAY < nbf) {
            return Err("not valid yet".into());
        }
        let principal = match &self.principal_claim {
            Some(claim) => claims[claim].as_str().ok_or_else(|| format!("no {claim} claim"))?.to_string(),
            None => {
                let id = claims["oid"].as_str().or_else(|| claims["sub"].as_str()).ok_or("neither oid nor sub")?;
                format!("{}#{id}", self.issuer)
            }
        };
        let mut roles: Vec<Role> = claims[&self.roles_claim]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|r| {
                let bare = r.strip_prefix("SV0.").or_else(|| r.strip_prefix("sv0.")).unwrap_or(r);
                bare.to_ascii_lowercase().parse().ok()
            })
            .collect();
        roles.sort();
        roles.dedup();
        let subject = claims["sub"].as_str().or_else(|| claims["jti"].as_str()).unwrap_or_default().to_string();
        Ok(OidcIdentity { principal, tenant: self.tenant.clone(), roles, subject, issuer: self.issuer.clone() })
    }
}

/// `[oidc]` of `sv0.toml`: JWTs of an identity provider accepted as bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` the tokens must carry, e.g. `https://login.microsoftonline.com/<tenant id>/v2.0`.
    pub issuer: String,
    /// The `aud` they must carry, e.g. `api://sv0`.
    pub audience: String,
    /// The SV0 tenant its users act for.
    pub tenant: String,
    /// The provider's signing keys (JWKS) in a file...
    pub jwks_file: Option<std::path::PathBuf>,
    /// ... or at an `https` URL, fetched when the server starts and when a JWT names a key the
    /// set does not hold.
    pub jwks_url: Option<String>,
    /// The claim naming the principal [default: `<issuer>#<oid>`, else `<issuer>#<sub>`].
    pub principal_claim: Option<String>,
    /// The claim listing roles (`SV0.Approver` or `approver`) [default: roles].
    pub roles_claim: Option<String>,
    /// The provider's authorization endpoint: with it, the review screens offer "sign in with
    /// your identity provider" (authorization code with PKCE), e.g.
    /// `https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/authorize`.
    pub authorization_endpoint: Option<String>,
    /// The provider's token endpoint, e.g. `https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token`.
    pub token_endpoint: Option<String>,
    /// The client (application) id SV0 signs in as [default: `audience`].
    pub client_id: Option<String>,
    /// A file holding the client secret, for a confidential client (PKCE alone otherwise).
    pub client_secret_file: Option<std::path::PathBuf>,
    /// This server's `/login/oidc/callback` as browsers reach it, e.g.
    /// `https://sv0.contoso.example/login/oidc/callback` (registered with the provider).
    pub redirect_url: Option<String>,
    /// The scopes asked for [default: `openid profile <audience>/.default`].
    pub scope: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that decide who may approve are never fetched over plain HTTP.
    #[tokio::test]
    async fn a_jwks_url_must_be_https() {
        let config = OidcConfig {
            issuer: "https://login.example/contoso/v2.0".into(),
            audience: "api://sv0".into(),
            tenant: "contoso".into(),
            jwks_file: None,
            jwks_url: Some("http://login.example/keys".into()),
            principal_claim: None,
            roles_claim: None,
            authorization_endpoint: None,
            token_endpoint: None,
            client_id: None,
            client_secret_file: None,
            redirect_url: None,
            scope: None,
        };
        let refused = OidcVerifier::load(&config, &reqwest::Client::new()).await.unwrap_err();
        assert!(refused.to_string().contains("is not https"), "{refused}");
    }
}
