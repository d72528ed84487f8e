//! OIDC sign-in: bearer tokens that are JWTs from an identity provider (Entra ID and others)
//! instead of SV0 tokens. A JWT is accepted when its RS256 signature verifies with a key of
//! the provider's JWKS (by `kid`), its `iss` and `aud` are the configured ones, and it is
//! within `nbf`..`exp` (a minute of leeway). The principal is a configured claim
//! (`preferred_username` by default); the roles are the values of the roles claim (Entra app
//! roles `SV0.Viewer`, `SV0.Approver`, ... or bare role names); the tenant is the configured one.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;
use serde_json::Value;
use sv0_domain::TenantId;
use sv0_domain::access::Role;
use sv0_service::OidcConfig;

/// Leeway on `exp` and `nbf`, in seconds.
const LEEWAY: i64 = 60;

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

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
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
    principal_claim: String,
    roles_claim: String,
    // By key id; RSA modulus and exponent, big-endian.
    keys: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
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
        let (from, text) = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), None) => (
                file.display().to_string(),
                std::fs::read_to_string(file)
                    .map_err(|e| OidcSetupError::Keys { from: file.display().to_string(), reason: e.to_string() })?,
            ),
            (None, Some(url)) => {
                let keys = |reason: String| OidcSetupError::Keys { from: url.clone(), reason };
                let response = http.get(url).send().await.map_err(|e| keys(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(keys(format!("answered {}", response.status())));
                }
                (url.clone(), response.text().await.map_err(|e| keys(e.to_string()))?)
            }
            _ => return Err(OidcSetupError::Invalid("give exactly one of jwks_file and jwks_url".into())),
        };
        let jwks: Jwks = serde_json::from_str(&text)
            .map_err(|e| OidcSetupError::Keys { from: from.clone(), reason: e.to_string() })?;
        let mut keys = BTreeMap::new();
        for key in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            let (Some(kid), Some(n), Some(e)) = (key.kid, key.n, key.e) else { continue };
            let decode = |v: &str| URL_SAFE_NO_PAD.decode(v.trim_end_matches('='));
            if let (Ok(n), Ok(e)) = (decode(&n), decode(&e)) {
                keys.insert(kid, (n, e));
            }
        }
        if keys.is_empty() {
            return Err(OidcSetupError::Keys { from, reason: "no RSA signing key with a kid".into() });
        }
        Ok(OidcVerifier {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            tenant: TenantId::new(&config.tenant).map_err(|e| OidcSetupError::Invalid(e.to_string()))?,
            principal_claim: config.principal_claim.clone().unwrap_or_else(|| "preferred_username".into()),
            roles_claim: config.roles_claim.clone().unwrap_or_else(|| "roles".into()),
            keys,
        })
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
        let (n, e) = self.keys.get(kid).ok_or_else(|| format!("unknown signing key {kid}"))?;
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
        let principal = claims[&self.principal_claim]
            .as_str()
            .or_else(|| claims["sub"].as_str())
            .ok_or("no principal claim")?
            .to_string();
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
