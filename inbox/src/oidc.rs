//! OIDC authorization-code login (with PKCE, state and nonce) against the site's issuer:
//! discovery, the redirect to `authorization_endpoint`, the code exchange at `token_endpoint`
//! (client secret in the body, `client_secret_post`), and the ID token checked against the
//! issuer's JWKS (signature, `iss`, `aud`, `exp`, `nonce`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::client::HttpClient;
use crate::config::Oidc;
use crate::session::{Login, Session};

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC issuer: {0}")]
    Issuer(String),
    #[error("login refused: {0}")]
    Refused(String),
}

pub struct OidcClient {
    config: Oidc,
    client_secret: String,
    http: HttpClient,
    discovery: OnceCell<Discovery>,
}

impl OidcClient {
    pub fn new(config: Oidc, client_secret: String, http: HttpClient) -> Self {
        Self {
            config,
            client_secret,
            http,
            discovery: OnceCell::new(),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let (status, body) = self
            .http
            .send(hyper::Method::GET, url, &[], Vec::new())
            .await
            .map_err(|e| OidcError::Issuer(e.to_string()))?;
        if !status.is_success() {
            return Err(OidcError::Issuer(format!("{url} answered {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| OidcError::Issuer(format!("{url}: {e}")))
    }

    /// The discovery document, fetched once (an issuer unreachable at start does not stop the
    /// inbox; the login retries).
    pub async fn discovery(&self) -> Result<&Discovery, OidcError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer_url.trim_end_matches('/')
                );
                self.get_json::<Discovery>(&url).await
            })
            .await
    }

    /// Where to send the browser, and the login to remember in a cookie.
    pub async fn start(&self, expires: i64) -> Result<(String, Login), OidcError> {
        let d = self.discovery().await?;
        let login = Login {
            state: crate::session::random_token(24),
            nonce: crate::session::random_token(24),
            verifier: crate::session::random_token(32),
            expires,
        };
        let challenge = URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA256, login.verifier.as_bytes()).as_ref(),
        );
        let mut url = url::Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcError::Issuer(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), login))
    }

    /// Exchanges the code and checks the ID token; the session lasts until `expires`.
    pub async fn finish(
        &self,
        login: &Login,
        state: &str,
        code: &str,
        expires: i64,
    ) -> Result<Session, OidcError> {
        if state != login.state {
            return Err(OidcError::Refused("state does not match the login".into()));
        }
        let d = self.discovery().await?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("client_id", &self.config.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("code_verifier", &login.verifier)
            .finish();
        let (status, body) = self
            .http
            .send(
                hyper::Method::POST,
                &d.token_endpoint,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                )],
                form.into_bytes(),
            )
            .await
            .map_err(|e| OidcError::Issuer(e.to_string()))?;
        if !status.is_success() {
            return Err(OidcError::Refused(format!(
                "token endpoint answered {status}"
            )));
        }
        #[derive(Deserialize)]
        struct Tokens {
            id_token: String,
        }
        let tokens: Tokens = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Issuer(format!("token answer: {e}")))?;
        let jwks: JwkSet = self.get_json(&d.jwks_uri).await?;
        let header = jsonwebtoken::decode_header(&tokens.id_token)
            .map_err(|e| OidcError::Refused(format!("ID token: {e}")))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::PS256 | Algorithm::EdDSA
        ) {
            return Err(OidcError::Refused(format!(
                "ID token algorithm {:?} not accepted",
                header.alg
            )));
        }
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid),
            None => jwks.keys.first(),
        }
        .ok_or_else(|| OidcError::Refused("ID token key not in the issuer's JWKS".into()))?;
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Refused(format!("JWKS key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&d.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&tokens.id_token, &key, &validation)
            .map_err(|e| OidcError::Refused(format!("ID token: {e}")))?
            .claims;
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if text("nonce").as_deref() != Some(login.nonce.as_str()) {
            return Err(OidcError::Refused("nonce does not match the login".into()));
        }
        let email = text("email")
            .ok_or_else(|| OidcError::Refused("the ID token has no email claim".into()))?;
        let groups = claims
            .get(&self.config.groups_claim)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Session {
            subject: text("sub").unwrap_or_default(),
            name: text("name").unwrap_or_else(|| email.clone()),
            email,
            groups,
            expires,
        })
    }
}
