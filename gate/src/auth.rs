//! Who is asking. Every answer is attributed to a requester: the rate limit, the privacy budget,
//! the answer cache and the audit log are all per requester.
//!
//! Two ways to authenticate, both as `Authorization: Bearer …`:
//! - **Static tokens** for the site's DSF feasibility process. Its FLARE client can only send a
//!   fixed bearer token or basic credentials (mii-process-feasibility v1.0.0.11,
//!   `FlareWebserviceClientSpringConfig`: `client.store.auth.bearer.token`). The gate stores only
//!   the token's SHA-256, so the config Secret never holds a usable credential twice.
//! - **OIDC client-credentials JWTs** for a direct broker: signature against a JWKS, `iss`, `aud`,
//!   `exp` checked; the requester is a configured claim (`azp` by default, the OAuth client id in
//!   Keycloak's client-credentials tokens) and must be on the allow list.
//!
//! mTLS client certificates are not implemented in the gate yet (docs/feasibility.md).

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallersConfig {
    #[serde(default)]
    pub tokens: Vec<StaticToken>,
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticToken {
    pub requester: String,
    /// Hex SHA-256 of the token.
    #[serde(default)]
    pub sha256: String,
    /// Or a file holding the token itself (a mounted Secret the site created; surrounding
    /// whitespace is ignored). Read once at start and kept only as its hash.
    #[serde(default)]
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// JWKS document (the issuer's `jwks_uri` content), mounted from a ConfigMap.
    pub jwks_file: String,
    #[serde(default = "default_claim")]
    pub requester_claim: String,
    /// Requesters (values of `requesterClaim`) allowed to query. Empty refuses every JWT.
    #[serde(default)]
    pub allowed: Vec<String>,
}

fn default_claim() -> String {
    "azp".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid callers config: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("tokens[{0}].sha256 must be 64 lowercase hex digits (or set tokenFile)")]
    BadHash(usize),
    #[error("tokens[{0}].tokenFile {1} is empty")]
    EmptyToken(usize, String),
}

/// Why a caller is refused. `Unauthenticated` maps to 401, `Forbidden` to 403.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token (send Authorization: Bearer <token>)")]
    Missing,
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    #[error("requester {0:?} is not allowed to query this site")]
    Forbidden(String),
}

/// The verifier built once from the config.
pub struct Authenticator {
    tokens: Vec<(String, [u8; 32])>,
    oidc: Option<(OidcConfig, JwkSet)>,
}

impl Authenticator {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let mut config: CallersConfig =
            serde_json::from_slice(&read(path)?).map_err(|source| ConfigError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        for (i, t) in config.tokens.iter_mut().enumerate() {
            if let Some(file) = &t.token_file {
                let raw = read(Path::new(file))?;
                let token = String::from_utf8_lossy(&raw);
                let token = token.trim();
                if token.is_empty() {
                    return Err(ConfigError::EmptyToken(i, file.clone()));
                }
                t.sha256 = token_sha256(token);
            }
        }
        let jwks = match &config.oidc {
            Some(oidc) => {
                let p = Path::new(&oidc.jwks_file);
                Some(
                    serde_json::from_slice(&read(p)?).map_err(|source| ConfigError::Parse {
                        path: oidc.jwks_file.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::new(config, jwks)
    }

    pub fn new(config: CallersConfig, jwks: Option<JwkSet>) -> Result<Self, ConfigError> {
        let mut tokens = Vec::new();
        for (i, t) in config.tokens.iter().enumerate() {
            tokens.push((
                t.requester.clone(),
                parse_hex32(&t.sha256).ok_or(ConfigError::BadHash(i))?,
            ));
        }
        let oidc = config.oidc.zip(jwks);
        Ok(Self { tokens, oidc })
    }

    /// The requester behind an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        for (requester, hash) in &self.tokens {
            // Comparing digests: timing reveals nothing about the token itself.
            if digest.as_ref() == hash {
                return Ok(requester.clone());
            }
        }
        match &self.oidc {
            Some((oidc, jwks)) if token.matches('.').count() == 2 => verify_jwt(token, oidc, jwks),
            _ => Err(AuthError::Invalid("unknown token".into())),
        }
    }
}

fn verify_jwt(token: &str, oidc: &OidcConfig, jwks: &JwkSet) -> Result<String, AuthError> {
    let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
    let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
    // Asymmetric algorithms only: an HS256 token "signed" with the public key is the classic
    // algorithm-confusion attack.
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(AuthError::Invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| AuthError::Invalid("no key in the JWKS matches the token's kid".into()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(invalid)?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&oidc.issuer]);
    validation.set_audience(&[&oidc.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data =
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(invalid)?;
    let requester = data
        .claims
        .get(&oidc.requester_claim)
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            AuthError::Invalid(format!("the token has no {} claim", oidc.requester_claim))
        })?;
    if oidc.allowed.iter().any(|a| a == requester) {
        Ok(requester.to_string())
    } else {
        Err(AuthError::Forbidden(requester.to_string()))
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// Hex SHA-256 of a token, as the config's `sha256` field wants it.
pub fn token_sha256(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token() -> Authenticator {
        Authenticator::new(
            CallersConfig {
                tokens: vec![StaticToken {
                    requester: "dsf".into(),
                    sha256: token_sha256("s3cret"),
                    token_file: None,
                }],
                oidc: None,
            },
            None,
        )
        .expect("config")
    }

    #[test]
    fn static_tokens() {
        let a = with_token();
        assert_eq!(a.authenticate(Some("Bearer s3cret")), Ok("dsf".into()));
        assert_eq!(a.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(Some("Basic czNjcmV0")),
            Err(AuthError::Missing)
        );
        assert!(matches!(
            a.authenticate(Some("Bearer wrong")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn token_file_is_read_once_and_hashed() {
        let dir = std::env::temp_dir().join(format!("gate-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("token"), "from-secret\n").expect("token");
        let config =
            serde_json::json!({"tokens": [{"requester": "dsf", "tokenFile": dir.join("token")}]});
        std::fs::write(dir.join("callers.json"), config.to_string()).expect("config");
        let a = Authenticator::load(&dir.join("callers.json")).expect("load");
        assert_eq!(a.authenticate(Some("Bearer from-secret")), Ok("dsf".into()));
        std::fs::write(dir.join("token"), " \n").expect("token");
        assert!(matches!(
            Authenticator::load(&dir.join("callers.json")),
            Err(ConfigError::EmptyToken(0, _))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_hash_names_the_entry() {
        let config = CallersConfig {
            tokens: vec![StaticToken {
                requester: "dsf".into(),
                sha256: "s3cret".into(),
                token_file: None,
            }],
            oidc: None,
        };
        assert!(matches!(
            Authenticator::new(config, None),
            Err(ConfigError::BadHash(0))
        ));
    }
}
