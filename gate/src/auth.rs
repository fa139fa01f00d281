//! Who is asking. Every answer is attributed to a requester: the rate limit, the privacy budget,
//! the answer cache and the audit log are all per requester.
//!
//! On the plain listener (in the cluster, behind the NetworkPolicy), two ways to authenticate,
//! both as `Authorization: Bearer …`:
//! - **Static tokens** for the site's DSF feasibility process. Its FLARE client can only send a
//!   fixed bearer token or basic credentials (mii-process-feasibility v1.0.0.11,
//!   `FlareWebserviceClientSpringConfig`: `client.store.auth.bearer.token`). The gate stores only
//!   the token's SHA-256, so the config Secret never holds a usable credential twice.
//! - **OIDC client-credentials JWTs** for a direct broker: signature against a JWKS, `iss`, `aud`,
//!   `exp` checked; the requester is a configured claim (`azp` by default, the OAuth client id in
//!   Keycloak's client-credentials tokens) and must be on the allow list.
//!
//!
//! On the mTLS listener (direct-broker mode, `tls.rs`) the caller is its client certificate:
//! the handshake already proved the chain to the broker CA, and the requester is the
//! certificate's DNS subject alternative name that is on `clientCertificates.allowed`
//! ([`Authenticator::authenticate_certificate`]). A bearer token sent there is ignored.

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use miracolix_service::config::{ConfigFileError, read_json};
pub use miracolix_service::token::{StaticToken, token_sha256};
use miracolix_service::token::{TokenError, TokenSet, bearer};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallersConfig {
    #[serde(default)]
    pub tokens: Vec<StaticToken>,
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Callers of the mTLS listener, by certificate.
    #[serde(default)]
    pub client_certificates: Option<ClientCertificates>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertificates {
    /// DNS names (subject alternative names) of the client certificates allowed to query; the
    /// matching name is the requester. Exact names only: a wildcard certificate matches none.
    #[serde(default)]
    pub allowed: Vec<String>,
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
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "clientCertificates.allowed[{0}] {1:?} is not a DNS name (lowercase letters, digits, '-' and '.'; no wildcard)"
    )]
    BadCertificateName(usize, String),
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
    tokens: TokenSet,
    oidc: Option<(OidcConfig, JwkSet)>,
    certificate_names: Vec<String>,
}

impl Authenticator {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: CallersConfig = read_json(path, "callers config")?;
        let jwks = match &config.oidc {
            Some(oidc) => Some(read_json(Path::new(&oidc.jwks_file), "JWKS")?),
            None => None,
        };
        Self::new(config, jwks)
    }

    pub fn new(config: CallersConfig, jwks: Option<JwkSet>) -> Result<Self, ConfigError> {
        let tokens = TokenSet::load(&config.tokens)?;
        let mut certificate_names = Vec::new();
        for (i, name) in config
            .client_certificates
            .map(|c| c.allowed)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if !is_dns_name(&name) {
                return Err(ConfigError::BadCertificateName(i, name));
            }
            certificate_names.push(name);
        }
        let oidc = config.oidc.zip(jwks);
        Ok(Self {
            tokens,
            oidc,
            certificate_names,
        })
    }

    /// The requester behind a client certificate the TLS handshake verified: the first of its
    /// DNS subject alternative names that is on the allow list. The subject's CN is not
    /// consulted (RFC 6125 §6.4.4: names belong in the SAN), and names are compared exactly, so
    /// a wildcard certificate the CA may have issued stands for no one.
    pub fn authenticate_certificate(&self, cert: &CertificateDer<'_>) -> Result<String, AuthError> {
        let names = certificate_dns_names(cert)?;
        names
            .iter()
            .find(|n| self.certificate_names.iter().any(|a| a == *n))
            .cloned()
            .ok_or_else(|| {
                AuthError::Forbidden(if names.is_empty() {
                    "(a certificate without DNS names)".into()
                } else {
                    names.join(",")
                })
            })
    }

    /// The requester behind an `Authorization` header value.
    /// The claim a JWT's requester is read from (for [`claimed_requester`]).
    pub fn requester_claim(&self) -> &str {
        self.oidc
            .as_ref()
            .map(|(o, _)| o.requester_claim.as_str())
            .unwrap_or("azp")
    }

    pub fn authenticate(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        let token = bearer(authorization).ok_or(AuthError::Missing)?;
        if let Some(requester) = self.tokens.find(token) {
            return Ok(requester.to_string());
        }
        match &self.oidc {
            Some((oidc, jwks)) if token.matches('.').count() == 2 => verify_jwt(token, oidc, jwks),
            _ => Err(AuthError::Invalid("unknown token".into())),
        }
    }
}

/// The DNS subject alternative names of a certificate, lowercased.
fn certificate_dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, AuthError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| AuthError::Invalid(format!("the client certificate cannot be read: {e}")))?;
    Ok(parsed
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect())
}

/// An allow-list entry: a DNS name, no wildcard, no trailing dot, lowercase.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Longest claimed name kept in an audit line: a caller cannot grow the log by much per request.
const MAX_CLAIMED: usize = 128;

/// The name a refused caller claimed, for the audit log, never the credential itself: the
/// `requesterClaim` of a JWT (read without verifying it, so it is only a claim), or `None` for a
/// static token (its value is the secret) and for no token at all.
pub fn claimed_requester(authorization: Option<&str>, requester_claim: &str) -> Option<String> {
    use base64::Engine;
    let header = authorization?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?
        .trim();
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let claimed = claims.get(requester_claim)?.as_str()?;
    Some(claimed.chars().take(MAX_CLAIMED).collect())
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
                client_certificates: None,
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
            Err(ConfigError::Token(TokenError::EmptyToken(0, _)))
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
            client_certificates: None,
        };
        assert!(matches!(
            Authenticator::new(config, None),
            Err(ConfigError::Token(TokenError::BadHash(0)))
        ));
    }
}
