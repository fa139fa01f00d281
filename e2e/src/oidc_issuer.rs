//! A development OIDC issuer for the proposal inbox's tests and `make demo` (never part of the
//! product): discovery, JWKS (one Ed25519 key made at start), an authorize endpoint with a
//! one-field login form (the e-mail address, like a real IdP's login page, without a password),
//! and a token endpoint that checks the client id and secret, the code, the redirect URI and the
//! PKCE verifier before it returns an EdDSA-signed ID token with `email`, `name`, `groups` and the
//! login's `nonce`. Used in process by inbox/tests/inbox_chromium.rs and as the binary
//! `miracolix-dev-issuer` by scripts/demo-inbox.sh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::convert::Infallible;
use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

/// The client the issuer knows, and the groups every login gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
    #[error("cannot make the signing key")]
    Key,
}

struct Grant {
    email: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Issuer {
    base: String,
    client: Client,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    grants: Mutex<HashMap<String, Grant>>,
}

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn params(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

impl Issuer {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = params(req.uri().query().unwrap_or(""));
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        match path.as_str() {
            "/.well-known/openid-configuration" => answer(
                StatusCode::OK,
                "application/json",
                json!({
                    "issuer": self.base,
                    "authorization_endpoint": format!("{}/authorize", self.base),
                    "token_endpoint": format!("{}/token", self.base),
                    "jwks_uri": format!("{}/jwks", self.base),
                })
                .to_string(),
            ),
            "/jwks" => answer(
                StatusCode::OK,
                "application/json",
                json!({"keys": [{
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "test-key",
                    "x": URL_SAFE_NO_PAD.encode(&self.public),
                }]})
                .to_string(),
            ),
            "/authorize" => {
                let field = |k: &str| escape(query.get(k).map(String::as_str).unwrap_or(""));
                if query.get("client_id") != Some(&self.client.id)
                    || query.get("code_challenge_method").map(String::as_str) != Some("S256")
                {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "bad authorization request".into(),
                    );
                }
                answer(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    format!(
                        "<!doctype html><html lang=\"en\"><head><title>Test IdP</title></head><body><main><h1>Test IdP login</h1>\
<form method=\"get\" action=\"/login\"><label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\">\
<input type=\"hidden\" name=\"state\" value=\"{}\"><input type=\"hidden\" name=\"nonce\" value=\"{}\">\
<input type=\"hidden\" name=\"redirect_uri\" value=\"{}\"><input type=\"hidden\" name=\"code_challenge\" value=\"{}\">\
<button type=\"submit\" id=\"sign-in\">Sign in</button></form></main></body></html>",
                        field("state"),
                        field("nonce"),
                        field("redirect_uri"),
                        field("code_challenge")
                    ),
                )
            }
            "/login" => {
                let get = |k: &str| query.get(k).cloned().unwrap_or_default();
                let mut raw = [0u8; 16];
                if SystemRandom::new().fill(&mut raw).is_err() {
                    return answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        "no randomness".into(),
                    );
                }
                let code = URL_SAFE_NO_PAD.encode(raw);
                self.grants
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        code.clone(),
                        Grant {
                            email: get("email"),
                            nonce: get("nonce"),
                            challenge: get("code_challenge"),
                            redirect_uri: get("redirect_uri"),
                        },
                    );
                let Ok(mut to) = url::Url::parse(&get("redirect_uri")) else {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "redirect_uri is no URL".into(),
                    );
                };
                to.query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", &get("state"));
                let mut r = answer(StatusCode::SEE_OTHER, "text/plain", String::new());
                if let Ok(v) = header::HeaderValue::from_str(to.as_str()) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            "/token" => {
                let form = params(&String::from_utf8_lossy(&body));
                let get = |k: &str| form.get(k).cloned().unwrap_or_default();
                let grant = self
                    .grants
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&get("code"));
                let Some(grant) = grant else {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "application/json",
                        json!({"error": "invalid_grant"}).to_string(),
                    );
                };
                let challenge = URL_SAFE_NO_PAD.encode(
                    ring::digest::digest(&ring::digest::SHA256, get("code_verifier").as_bytes())
                        .as_ref(),
                );
                if get("client_id") != self.client.id
                    || get("client_secret") != self.client.secret
                    || challenge != grant.challenge
                    || get("redirect_uri") != grant.redirect_uri
                    || get("grant_type") != "authorization_code"
                {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "application/json",
                        json!({"error": "invalid_client or PKCE mismatch"}).to_string(),
                    );
                }
                let now = chrono::Utc::now().timestamp();
                let claims = json!({
                    "iss": self.base, "aud": self.client.id, "sub": grant.email, "email": grant.email,
                    "name": grant.email.split('@').next().unwrap_or(""), "groups": self.client.groups,
                    "nonce": grant.nonce, "iat": now, "exp": now + 300,
                });
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some("test-key".into());
                let Ok(token) =
                    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8))
                else {
                    return answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        "cannot sign".into(),
                    );
                };
                answer(
                    StatusCode::OK,
                    "application/json",
                    json!({"access_token": "unused", "token_type": "Bearer", "id_token": token})
                        .to_string(),
                )
            }
            _ => answer(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
        }
    }
}

/// Serves the issuer on `listener` (bound to loopback) until the task is dropped; its URL, the
/// `iss` of its tokens, is `http://localhost:<port>`.
pub fn serve(
    listener: tokio::net::TcpListener,
    client: Client,
) -> Result<(String, impl Future<Output = ()>), IssuerError> {
    let port = listener.local_addr().map_err(IssuerError::Bind)?.port();
    let base = format!("http://localhost:{port}");
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| IssuerError::Key)?;
    let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| IssuerError::Key)?;
    let issuer = Arc::new(Issuer {
        base: base.clone(),
        client,
        pkcs8: doc.as_ref().to_vec(),
        public: key.public_key().as_ref().to_vec(),
        grants: Mutex::new(HashMap::new()),
    });
    let run = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let issuer = issuer.clone();
                    async move { Ok::<_, Infallible>(issuer.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    Ok((base, run))
}

/// Starts the issuer on a free loopback port in a task and returns its URL.
pub async fn start(client: Client) -> Result<String, IssuerError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(IssuerError::Bind)?;
    let (base, run) = serve(listener, client)?;
    tokio::spawn(run);
    Ok(base)
}
