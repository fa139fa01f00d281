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
use miracolix_gate::auth::{Authenticator, CallersConfig, OidcConfig, StaticToken, token_sha256};
use miracolix_gate::executor::Executor;
use miracolix_gate::mechanism::Rules;
use miracolix_gate::store::Store;
use miracolix_gate::{Gate, GateConfig};
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
    flare: Arc<Flare>,
    dir: PathBuf,
    signing: ring::signature::Ed25519KeyPair,
}

const ISSUER: &str = "https://keycloak.example/realms/broker";
const AUDIENCE: &str = "miracolix-gate";

async fn start(name: &str, config: GateConfig) -> Harness {
    let flare = Arc::new(Flare::default());
    let flare_addr = start_flare(flare.clone()).await;
    let dir = std::env::temp_dir().join(format!("gate-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");

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
    let (api_addr, ops_addr) = (api.local_addr().expect("a"), ops.local_addr().expect("o"));
    tokio::spawn(gate.serve(api, ops, std::future::pending()));
    Harness {
        api: api_addr,
        ops: ops_addr,
        flare,
        dir,
        signing,
    }
}

impl Harness {
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
