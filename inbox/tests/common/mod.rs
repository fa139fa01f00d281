//! What the inbox's tests share: keys, a configuration, the inbox on loopback with a manual
//! clock, a stub HTTP target (decision target, webhook) that can fail on purpose, and a tiny SMTP
//! sink.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use miracolix_inbox::client::HttpClient;
use miracolix_inbox::config::InboxConfig;
use miracolix_inbox::proposal::{CentralKeys, public_raw, seal};
use miracolix_inbox::session::Session;
use miracolix_inbox::store::SqliteStore;
use miracolix_inbox::{Inbox, Parts};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::Future;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The throw-away PostgreSQL server of the store tests, shared with the hub's.
#[allow(unused_imports)]
pub use miracolix_service::pg_test_server as postgres;

pub const SITE: &str = "erlangen";
pub const MEMBERS: [&str; 3] = [
    "anna@uk-erlangen.de",
    "ben@uk-erlangen.de",
    "carla@uk-erlangen.de",
];

/// The DIZ staff member of the test configuration (`diz.members`).
pub const DIZ: &str = "diz@uk-erlangen.de";

pub fn keypair() -> Ed25519KeyPair {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
    Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("parse")
}

/// The clock the inbox reads; tests move it.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: &str) -> Self {
        Self(Arc::new(Mutex::new(
            DateTime::parse_from_rfc3339(start)
                .expect("time")
                .with_timezone(&Utc),
        )))
    }
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

/// `config.json` as the controller writes it, pointing at the test's targets.
pub fn config(
    decisions: &str,
    webhook: Option<&str>,
    smtp_port: Option<u16>,
    issuer: Option<&str>,
    inbox_base: &str,
) -> InboxConfig {
    let mut notifications = Vec::new();
    if let Some(w) = webhook {
        notifications.push(json!({"name": "ticket-system", "webhook": {"url": w, "tokenFile": token_file()}, "events": []}));
    }
    if smtp_port.is_some() {
        notifications.push(json!({"name": "uac-mailbox", "email": "uac@uk-erlangen.de", "events": ["ProposalReceived", "DeadlineApproaching"]}));
    }
    let value = json!({
        "siteId": SITE,
        "inbox": SITE,
        "uac": {
            "members": MEMBERS.iter().map(|m| json!({"name": m.split('@').next().unwrap_or(m), "email": m})).collect::<Vec<_>>(),
            "oidcGroup": null,
            "quorum": 3,
            "reviewDeadlineSeconds": 14 * 86_400,
        },
        "diz": {"members": [{"name": "Dora DIZ", "email": DIZ}], "oidcGroup": null},
        "decisions": {"url": decisions, "organizationIdentifier": "uk-erlangen.de"},
        "notifications": notifications,
        "smtp": smtp_port.map(|p| json!({"host": "127.0.0.1", "port": p, "from": "diz@uk-erlangen.de", "starttls": false})),
        "oidc": issuer.map(|i| json!({"issuerUrl": i, "clientId": "inbox", "clientSecretFile": "/unused", "redirectUrl": format!("{inbox_base}/inbox/auth/callback"), "groupsClaim": "groups"})),
        "basePath": "/inbox",
    });
    InboxConfig::parse(value.to_string().as_bytes()).expect("config")
}

pub const WEBHOOK_TOKEN: &str = "s3cret-webhook-token";

fn token_file() -> String {
    let path = std::env::temp_dir().join(format!("inbox-webhook-token-{}", std::process::id()));
    std::fs::write(&path, format!("{WEBHOOK_TOKEN}\n")).expect("token file");
    path.display().to_string()
}

pub struct Running {
    pub inbox: Inbox,
    pub api: SocketAddr,
    pub ops: SocketAddr,
    pub central: Ed25519KeyPair,
    pub decision_public: Vec<u8>,
    pub clock: ManualClock,
}

pub async fn start(config: InboxConfig, clock: ManualClock) -> Running {
    start_with(config, clock, None).await
}

pub async fn start_with(
    config: InboxConfig,
    clock: ManualClock,
    listener: Option<tokio::net::TcpListener>,
) -> Running {
    let central = keypair();
    let decision = keypair();
    let decision_public = public_raw(&decision);
    let c = clock.clone();
    let inbox = Inbox::new(Parts {
        config,
        keys: CentralKeys::from_raw([("fdpg-2026".to_string(), public_raw(&central))]),
        store: Box::new(SqliteStore::in_memory().expect("store")),
        decision_key: decision,
        session_secret: b"a test session secret of 32 bytes at least".to_vec(),
        oidc_client_secret: Some("client-secret".into()),
        http: HttpClient::new(Duration::from_secs(10)).expect("client"),
        clock: Arc::new(move || c.now()),
    })
    .expect("inbox");
    let api = match listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    };
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (api_addr, ops_addr) = (
        api.local_addr().expect("addr"),
        ops.local_addr().expect("addr"),
    );
    tokio::spawn(inbox.clone().serve(api, ops, std::future::pending()));
    Running {
        inbox,
        api: api_addr,
        ops: ops_addr,
        central,
        decision_public,
        clock,
    }
}

pub fn proposal(id: &str, sites: &[&str]) -> Value {
    json!({
        "id": id,
        "title": "Diabetes and kidney function 2015–2025",
        "summary": "Retrospective cohort: HbA1c and eGFR trajectories of adults with type 2 diabetes.",
        "applicant": {"name": "Dr. Eva Example", "institution": "Universitätsklinikum Musterstadt"},
        "requestedData": ["Person", "Diagnose (ICD-10-GM E11)", "Laborbefund (HbA1c, eGFR)"],
        "sites": sites,
        "issuedAt": "2026-11-01T08:00:00Z",
    })
}

/// The envelope the central office posts: `proposal` signed with `key` as key id `fdpg-2026`.
pub fn envelope(key: &Ed25519KeyPair, proposal: &Value) -> Value {
    json!(seal(key, "fdpg-2026", proposal.to_string().as_bytes()))
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request; the answer's status, headers and body as JSON (or as a string when not JSON).
pub async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, hyper::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client().request(req.body(Full::new(Bytes::from(body))).expect("request")),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {url}: no answer within 20 s"))
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

pub fn member(email: &str) -> Session {
    Session {
        subject: email.into(),
        email: email.into(),
        name: email.split('@').next().unwrap_or(email).into(),
        groups: vec![],
        expires: 4_102_444_800, // 2100-01-01
    }
}

/// What a stub HTTP target received, and how many requests it still fails.
#[derive(Default)]
pub struct Target {
    pub requests: Mutex<Vec<(hyper::HeaderMap, Bytes)>>,
    pub fail_next: AtomicUsize,
}

/// Serves every connection on `listener` with `handler` (the test's stub servers).
pub async fn serve_one<H, F>(listener: tokio::net::TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let answer = handler(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub async fn start_target(target: Arc<Target>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_one(listener, move |req: Request<Incoming>| {
        let target = target.clone();
        async move {
            let headers = req.headers().clone();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            target.requests.lock().expect("lock").push((headers, body));
            let fail = target
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let mut r = Response::new(Full::new(Bytes::from_static(if fail {
                b"down for maintenance"
            } else {
                b"{}"
            })));
            *r.status_mut() = if fail {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            r
        }
    }));
    format!("http://{addr}/decisions")
}

/// A minimal SMTP server (RFC 5321's happy path) that keeps every message's DATA.
pub async fn start_smtp_sink(messages: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let messages = messages.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            messages
                                .lock()
                                .expect("lock")
                                .push(data.take().unwrap_or_default());
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    port
}
