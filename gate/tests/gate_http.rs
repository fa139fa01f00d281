//! The gate over real HTTP: a FLARE stub (hyper) answers true counts, the gate runs on loopback,
//! and a plain hyper client calls it as the DSF process or a broker would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::jwk::JwkSet;
use miracolix_gate::auth::{
    Authenticator, CallersConfig, ClientCertificates, OidcConfig, StaticToken, token_sha256,
};
use miracolix_gate::executor::Executor;
use miracolix_gate::mechanism::Rules;
use miracolix_gate::store::Store;
use miracolix_gate::{Gate, GateConfig, MtlsListener};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::signature::KeyPair;

const QUERY: &str = r#"{"version":"http://to_be_decided.com/draft-1/schema#","inclusionCriteria":[[{"termCodes":[{"code":"E11","system":"http://fhir.de/CodeSystem/bfarm/icd-10-gm","display":"Diabetes"}]}]]}"#;

/// What the stub FLARE saw and answers.
#[derive(Default)]
struct Flare {
    count: AtomicU64,
    calls: AtomicUsize,
}

async fn start_flare(flare: Arc<Flare>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let flare = flare.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let flare = flare.clone();
                    async move {
                        flare.calls.fetch_add(1, Ordering::SeqCst);
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let answer = match (path.as_str(), ct.as_str(), body) {
                            ("/query/execute", "application/sq+json", Ok(b))
                                if b.windows(3).any(|w| w == b"E99") =>
                            {
                                // FLARE's mapping error shape.
                                let mut r = Response::new(Full::new(Bytes::from_static(
                                    br#"{"error":"no mapping for E99"}"#,
                                )));
                                *r.status_mut() = StatusCode::BAD_REQUEST;
                                r
                            }
                            ("/query/execute", "application/sq+json", Ok(_)) => {
                                Response::new(Full::new(Bytes::from(
                                    flare.count.load(Ordering::SeqCst).to_string(),
                                )))
                            }
                            _ => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

struct Harness {
    api: SocketAddr,
    ops: SocketAddr,
    /// The query API over mTLS (direct-broker mode).
    mtls: SocketAddr,
    flare: Arc<Flare>,
    flare_addr: SocketAddr,
    dir: PathBuf,
    signing: ring::signature::Ed25519KeyPair,
    pki: Arc<Pki>,
}

/// Certificates made for one test: the broker CA the gate trusts, a CA it does not, and the
/// gate's own server certificate (issued by a third CA the clients trust).
struct Pki {
    broker_ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    other_ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    server_ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    server: Leaf,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("CA")
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dns: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> Leaf {
    let mut params = rcgen::CertificateParams::new(vec![dns.to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, dns);
    params.extended_key_usages = vec![usage];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("signed");
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

impl Pki {
    fn new() -> Self {
        let server_ca = ca("site server CA");
        let server = leaf(
            &server_ca,
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        Self {
            broker_ca: ca("broker CA"),
            other_ca: ca("someone else's CA"),
            server_ca,
            server,
        }
    }

    fn client(&self, trusted_ca: bool, dns: &str) -> Leaf {
        let issuer = if trusted_ca {
            &self.broker_ca
        } else {
            &self.other_ca
        };
        leaf(issuer, dns, rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }
}

const ISSUER: &str = "https://keycloak.example/realms/broker";
const AUDIENCE: &str = "miracolix-gate";

/// The allowed broker's certificate name.
const BROKER: &str = "broker.example.org";

async fn start(name: &str, config: GateConfig) -> Harness {
    let flare = Arc::new(Flare::default());
    let flare_addr = start_flare(flare.clone()).await;
    let dir = std::env::temp_dir().join(format!("gate-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    launch(flare, flare_addr, dir, Arc::new(Pki::new()), config).await
}

/// A gate on `dir` (a fresh one, or the state of a stopped gate: a restart).
async fn launch(
    flare: Arc<Flare>,
    flare_addr: SocketAddr,
    dir: PathBuf,
    pki: Arc<Pki>,
    config: GateConfig,
) -> Harness {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let signing = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.public_key().as_ref());
    let jwks: JwkSet = serde_json::from_value(serde_json::json!({
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]
    }))
    .expect("jwks");
    let auth = Authenticator::new(
        CallersConfig {
            tokens: vec![StaticToken {
                requester: "dsf".into(),
                sha256: token_sha256("dsf-token"),
                token_file: None,
            }],
            oidc: Some(OidcConfig {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                jwks_file: String::new(),
                requester_claim: "azp".into(),
                allowed: vec!["broker".into()],
            }),
            client_certificates: Some(ClientCertificates {
                allowed: vec![BROKER.into()],
            }),
        },
        Some(jwks),
    )
    .expect("auth");
    let gate = Gate::new(
        config,
        auth,
        Executor::new(
            &format!("http://{flare_addr}"),
            std::time::Duration::from_secs(10),
        ),
        Store::open(&dir.join("state.db")).expect("store"),
        &dir.join("audit.jsonl"),
        ChaCha20Rng::seed_from_u64(42),
    )
    .expect("gate");
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mtls = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let acceptor = miracolix_gate::tls::acceptor(
        &miracolix_gate::tls::TlsMaterial {
            cert_chain: pki.server.cert.as_bytes(),
            key: pki.server.key.as_bytes(),
            client_ca: pki.broker_ca.pem().as_bytes(),
        },
        &miracolix_gate::tls::Names {
            cert_chain: "tls.crt",
            key: "tls.key",
            client_ca: "ca.crt",
        },
    )
    .expect("TLS config");
    let (api_addr, ops_addr, mtls_addr) = (
        api.local_addr().expect("a"),
        ops.local_addr().expect("o"),
        mtls.local_addr().expect("m"),
    );
    tokio::spawn(gate.serve_with_mtls(
        api,
        ops,
        Some(MtlsListener {
            listener: mtls,
            acceptor,
        }),
        std::future::pending(),
    ));
    Harness {
        api: api_addr,
        ops: ops_addr,
        mtls: mtls_addr,
        flare,
        flare_addr,
        dir,
        signing,
        pki,
    }
}

/// An error with its sources: hyper's "connection error" hides the TLS alert behind it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Harness {
    /// Another gate on the same state directory (the old one keeps listening, as a pod being
    /// replaced would until killed; the test only talks to the new one).
    async fn restart(&self, config: GateConfig) -> Harness {
        launch(
            self.flare.clone(),
            self.flare_addr,
            self.dir.clone(),
            self.pki.clone(),
            config,
        )
        .await
    }

    /// POST a query over mTLS with `client` (certificate and key, PEM) or none. `Err` when the
    /// TLS handshake or the exchange fails (the gate refused the connection).
    async fn post_mtls(
        &self,
        client: Option<&Leaf>,
        token: Option<&str>,
    ) -> Result<(StatusCode, String), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.pki.server_ca.der().clone())
            .expect("server CA");
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match client {
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")],
                    PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.mtls)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").expect("name");
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(conn);
        let mut req = Request::post("/query/execute")
            .header("host", "localhost")
            .header("content-type", "application/sq+json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(QUERY))).expect("req"))
            .await
            .map_err(|e| format!("request: {}", chain(&e)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn jwt(&self, azp: &str, aud: &str) -> String {
        // A compact JWS signed with ring directly (EdDSA over "header.claims"), so the test does
        // not trust the same library it tests to produce the token.
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let exp = chrono::Utc::now().timestamp() + 300;
        let signing_input = format!(
            "{}.{}",
            b64(&serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})),
            b64(&serde_json::json!({"iss": ISSUER, "aud": aud, "azp": azp, "exp": exp}))
        );
        let sig = self.signing.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }

    async fn post(&self, token: Option<&str>, body: &str) -> (StatusCode, Option<String>, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = Request::post(format!("http://{}/query/execute", self.api))
            .header("content-type", "application/sq+json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = client
            .request(
                req.body(Full::new(Bytes::from(body.to_string())))
                    .expect("req"),
            )
            .await
            .expect("gate answers");
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get_ops(&self, path: &str) -> (StatusCode, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let resp = client
            .get(format!("http://{}{path}", self.ops).parse().expect("uri"))
            .await
            .expect("ops answers");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

const MII: GateConfig = GateConfig {
    rules: Rules {
        epsilon: 0.5,
        round_to: 10,
        suppress_below: 5,
    },
    requests_per_hour: 999,
    daily_epsilon_budget: 50.0,
};

#[tokio::test]
async fn answers_like_flare_with_noise_cache_and_audit() {
    let h = start("answers", MII).await;
    h.flare.count.store(1234, Ordering::SeqCst);
    let (code, _, first) = h.post(Some("dsf-token"), QUERY).await;
    assert_eq!(code, StatusCode::OK, "{first}");
    // FLARE's shape: a bare number the DSF process parses with \d+.
    let released: u64 = first.trim().parse().expect("a bare count");
    assert_eq!(released % 10, 0, "rounded: {released}");
    assert!(
        released.abs_diff(1234) <= 60,
        "noise of scale 2 stays small: {released}"
    );

    // Repeats (even reformatted) return the same answer and spend nothing.
    let reformatted = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(QUERY).expect("json"),
    )
    .expect("pretty");
    for body in [QUERY, reformatted.as_str(), QUERY] {
        let (code, _, again) = h.post(Some("dsf-token"), body).await;
        assert_eq!((code, again.as_str()), (StatusCode::OK, first.as_str()));
    }
    // New data (true count changed): a new draw is allowed.
    h.flare.count.store(3, Ordering::SeqCst);
    let (code, _, small) = h.post(Some("dsf-token"), QUERY).await;
    assert_eq!(code, StatusCode::OK);
    assert!(["0", "10"].contains(&small.trim()), "small counts: {small}");

    let audit = h.audit();
    let outcomes: Vec<&str> = audit
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        outcomes,
        ["released", "cached", "cached", "cached", "released"]
    );
    assert_eq!(audit[0]["requester"], "dsf");
    assert_eq!(audit[0]["epsilon"], 0.5);
    assert_eq!(audit[1]["epsilon"], 0.0);
    assert_eq!(audit[0]["released"].as_u64(), Some(released));
    // Nothing about patients or the true count: not the query text, not 1234.
    let raw = std::fs::read_to_string(h.dir.join("audit.jsonl")).expect("audit");
    assert!(!raw.contains("E11") && !raw.contains("1234"), "{raw}");

    let (code, metrics) = h.get_ops("/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        metrics.contains(r#"miracolix_gate_queries_total{requester="dsf",outcome="cached"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"miracolix_gate_epsilon_spent_total{requester="dsf"} 1.0"#),
        "{metrics}"
    );
    assert_eq!(h.get_ops("/healthz").await.0, StatusCode::OK);
    assert_eq!(h.get_ops("/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn refuses_unknown_callers_and_bad_queries() {
    let h = start("refuse", MII).await;
    h.flare.count.store(50, Ordering::SeqCst);
    let (code, _, body) = h.post(None, QUERY).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        h.post(Some("guess"), QUERY).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A valid JWT for the wrong audience, and one of a client not on the allow list.
    assert_eq!(
        h.post(Some(&h.jwt("broker", "other")), QUERY).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (code, _, body) = h.post(Some(&h.jwt("stranger", AUDIENCE)), QUERY).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        h.flare.calls.load(Ordering::SeqCst),
        0,
        "refused callers never reach FLARE"
    );
    // The allowed broker gets an answer.
    let (code, _, body) = h.post(Some(&h.jwt("broker", AUDIENCE)), QUERY).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Every refused login is audited, with the name the caller claimed and never the token.
    let refused: Vec<(String, String, Option<String>)> = h
        .audit()
        .iter()
        .filter(|e| e["requester"] == "")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or("").to_string(),
                e["requester"].as_str().unwrap_or("?").to_string(),
                e["claimed"].as_str().map(str::to_string),
            )
        })
        .collect();
    let line = |outcome: &str, claimed: Option<&str>| {
        (
            outcome.to_string(),
            String::new(),
            claimed.map(str::to_string),
        )
    };
    assert_eq!(
        refused,
        [
            line("unauthenticated", None),
            line("unauthenticated", None),
            line("unauthenticated", Some("broker")),
            line("forbidden", Some("stranger")),
        ]
    );
    let raw = std::fs::read_to_string(h.dir.join("audit.jsonl")).expect("audit");
    assert!(
        !raw.contains("guess") && !raw.contains("dsf-token") && !raw.contains("eyJ"),
        "no credential in the audit log: {raw}"
    );

    let (code, _, body) = h
        .post(Some("dsf-token"), r#"{"inclusionCriteria":[]}"#)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("inclusionCriteria"), "{body}");
    // FLARE's own mapping error comes back as 400 with FLARE's reason.
    let (code, _, body) = h
        .post(Some("dsf-token"), &QUERY.replace("E11", "E99"))
        .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::BAD_REQUEST, r#"{"error":"no mapping for E99"}"#)
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let h = start(
        "rate",
        GateConfig {
            requests_per_hour: 2,
            ..MII
        },
    )
    .await;
    h.flare.count.store(50, Ordering::SeqCst);
    assert_eq!(h.post(Some("dsf-token"), QUERY).await.0, StatusCode::OK);
    assert_eq!(h.post(Some("dsf-token"), QUERY).await.0, StatusCode::OK);
    let (code, retry, body) = h.post(Some("dsf-token"), QUERY).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let secs: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((3500..=3600).contains(&secs), "{secs}");
    assert_eq!(
        h.flare.calls.load(Ordering::SeqCst),
        2,
        "the refused query never reached FLARE"
    );
    // Another requester is not affected.
    assert_eq!(
        h.post(Some(&h.jwt("broker", AUDIENCE)), QUERY).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn budget_exhaustion_refuses_new_queries_but_serves_repeats() {
    let h = start(
        "budget",
        GateConfig {
            daily_epsilon_budget: 1.0,
            ..MII
        },
    )
    .await;
    h.flare.count.store(200, Ordering::SeqCst);
    let q = |code: &str| QUERY.replace("E11", code);
    assert_eq!(h.post(Some("dsf-token"), &q("E10")).await.0, StatusCode::OK);
    let (_, _, answered) = h.post(Some("dsf-token"), &q("E12")).await;
    let (code, retry, body) = h.post(Some("dsf-token"), &q("E13")).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("privacy budget exhausted"), "{body}");
    assert!(retry.expect("Retry-After").parse::<u64>().expect("secs") <= 86_400);
    let (code, _, again) = h.post(Some("dsf-token"), &q("E12")).await;
    assert_eq!((code, again), (StatusCode::OK, answered));
    let last = h.audit().pop().expect("audit");
    assert_eq!(last["outcome"], "cached");
}

#[tokio::test]
async fn rate_window_survives_a_restart() {
    let config = GateConfig {
        requests_per_hour: 3,
        ..MII
    };
    let h = start("rate-restart", config).await;
    h.flare.count.store(50, Ordering::SeqCst);
    for i in 0..3 {
        let (code, _, body) = h.post(Some("dsf-token"), QUERY).await;
        assert_eq!(code, StatusCode::OK, "query {i}: {body}");
    }
    let restarted = h.restart(config).await;
    let (code, retry, body) = restarted.post(Some("dsf-token"), QUERY).await;
    assert_eq!(
        code,
        StatusCode::TOO_MANY_REQUESTS,
        "the 4th query within the hour, after a restart: {body}"
    );
    let secs: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((3500..=3600).contains(&secs), "{secs}");
    assert_eq!(h.flare.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn mtls_admits_only_certified_allowed_brokers() {
    let h = start(
        "mtls",
        GateConfig {
            requests_per_hour: 1,
            ..MII
        },
    )
    .await;
    h.flare.count.store(420, Ordering::SeqCst);

    // A certificate of the broker CA with the allowed name: answered.
    let broker = h.pki.client(true, BROKER);
    let (code, body) = h
        .post_mtls(Some(&broker), None)
        .await
        .expect("the trusted broker connects");
    assert_eq!(code, StatusCode::OK, "{body}");
    let released: u64 = body.trim().parse().expect("a bare count");
    assert_eq!(released % 10, 0, "{released}");

    // No certificate (even with a valid token), or the allowed name from another CA: the
    // handshake fails and no HTTP is served.
    // (TLS 1.3: the client learns of the refusal from the server's alert on its first read.)
    let no_cert = h.post_mtls(None, Some("dsf-token")).await;
    assert!(
        no_cert
            .as_ref()
            .is_err_and(|e| e.contains("CertificateRequired")),
        "no client certificate: {no_cert:?}"
    );
    let forged = h.pki.client(false, BROKER);
    let forged = h.post_mtls(Some(&forged), None).await;
    assert!(
        forged.as_ref().is_err_and(|e| e.contains("UnknownCA")),
        "a certificate of another CA: {forged:?}"
    );

    // Certified by the broker CA but not on the allow list: 403, and the bearer token it also
    // sends does not help (on this listener the certificate is the caller).
    let stranger = h.pki.client(true, "stranger.example.org");
    let (code, body) = h
        .post_mtls(Some(&stranger), Some("dsf-token"))
        .await
        .expect("a certified stranger connects");
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");

    // The certificate's requester has the same per-requester rate limit as everyone.
    let (code, body) = h
        .post_mtls(Some(&broker), None)
        .await
        .expect("the trusted broker connects");
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");

    assert_eq!(
        h.flare.calls.load(Ordering::SeqCst),
        1,
        "only the allowed broker's first query reached FLARE"
    );
    let audit: Vec<(String, String, Option<String>)> = h
        .audit()
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or("").to_string(),
                e["requester"].as_str().unwrap_or("").to_string(),
                e["claimed"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        audit,
        [
            ("released".into(), BROKER.into(), None),
            (
                "forbidden".into(),
                String::new(),
                Some("stranger.example.org".into())
            ),
            ("rate-limited".into(), BROKER.into(), None),
        ]
    );
    let (_, metrics) = h.get_ops("/metrics").await;
    assert!(
        metrics
            .contains(r#"miracolix_gate_queries_total{requester="",outcome="unauthenticated"} 2"#),
        "the two refused handshakes are counted: {metrics}"
    );
}

#[test]
fn mtls_configuration_errors_name_the_input() {
    let pki = Pki::new();
    let names = miracolix_gate::tls::Names {
        cert_chain: "tls.crt",
        key: "tls.key",
        client_ca: "ca.crt",
    };
    let ca = pki.broker_ca.pem();
    let material = |cert: &str, key: &str, ca: &str| {
        miracolix_gate::tls::acceptor(
            &miracolix_gate::tls::TlsMaterial {
                cert_chain: cert.as_bytes(),
                key: key.as_bytes(),
                client_ca: ca.as_bytes(),
            },
            &names,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(material(&pki.server.cert, &pki.server.key, "").contains("ca.crt"));
    assert!(material("", &pki.server.key, &ca).contains("tls.crt"));
    assert!(material(&pki.server.cert, "", &ca).contains("tls.key"));
    // A key that is not the certificate's.
    let other = pki.client(true, BROKER);
    assert!(!material(&pki.server.cert, &other.key, &ca).is_empty());
    assert!(material(&pki.server.cert, &pki.server.key, &ca).is_empty());
}
