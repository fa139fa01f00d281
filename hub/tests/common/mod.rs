//! A hub on loopback with a fixed clock, registered sites with known keys, and a plain hyper
//! client, for the HTTP and browser tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use miracolix_hub::access::Access;
use miracolix_hub::feed::{EntryKind, EntryVerifier, Refusal, VerifiedEntry};
use miracolix_hub::report::{self, ComponentHealth, ReleaseRef, Report};
use miracolix_hub::sites::Registry;
use miracolix_hub::store::{ReportStore, SqliteStore};
use miracolix_hub::{Hub, HubConfig};
use miracolix_service::token::{StaticToken, token_sha256};

pub const NOW: &str = "2026-11-29T22:00:00Z";
pub const READER_TOKEN: &str = "reader-token";
pub const SITES: [&str; 4] = ["dresden", "erlangen", "magdeburg", "marburg"];

pub fn now() -> DateTime<Utc> {
    NOW.parse().expect("time")
}

pub use miracolix_hub::testing::demo_key_id;

pub fn site_key(i: usize) -> ring::signature::Ed25519KeyPair {
    miracolix_hub::testing::demo_key(i).expect("key")
}

pub fn key_id(site: &str) -> String {
    demo_key_id(site)
}

pub fn registry() -> Registry {
    miracolix_hub::testing::demo_registry(&SITES).expect("registry")
}

/// Accepts JSON files `{"kind": ..., "metadata": {"name": ...}, "verified": true}`: the hub's
/// handling of verdicts, independent of the operator's certification (which
/// operator/tests/hub_feed.rs exercises with real signatures).
pub struct FlagVerifier;

impl EntryVerifier for FlagVerifier {
    fn verify(&self, _origin: &str, bytes: &[u8]) -> Result<VerifiedEntry, Refusal> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Refusal {
            reason: "NotAManifest".into(),
            message: e.to_string(),
        })?;
        if v["verified"] != true {
            return Err(Refusal {
                reason: "BadSignature".into(),
                message: "not verified".into(),
            });
        }
        Ok(VerifiedEntry {
            kind: if v["kind"] == "ReleaseRevocation" {
                EntryKind::Revocation
            } else {
                EntryKind::Release
            },
            name: v["metadata"]["name"].as_str().unwrap_or_default().into(),
            manifest: v,
        })
    }
}

pub struct Running {
    pub hub: Hub,
    /// The hub's clock, Unix seconds (starts at [`NOW`]).
    pub clock: Arc<AtomicI64>,
    pub api: SocketAddr,
    pub ops: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Running {
    pub fn set_now(&self, at: DateTime<Utc>) {
        self.clock.store(at.timestamp(), Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Starts a hub with the four sites, reader token access (or public), a store in `dir`, and the
/// feed of `feed_dir` when given.
pub async fn start(name: &str, public: bool, feed_dir: Option<&Path>) -> Running {
    let dir = temp_dir(name);
    let store = SqliteStore::open(&dir.join("hub.db")).expect("store");
    start_with(
        dir,
        public,
        feed_dir,
        Box::new(store),
        std::future::pending(),
    )
    .await
    .0
}

/// [`start`] with a given store; the hub serves until `shutdown` completes, then the returned
/// task ends.
pub async fn start_with(
    dir: PathBuf,
    public: bool,
    feed_dir: Option<&Path>,
    store: Box<dyn ReportStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Running, tokio::task::JoinHandle<()>) {
    let access = if public {
        Access::Public
    } else {
        Access::tokens(&[StaticToken {
            requester: "release-managers".into(),
            sha256: token_sha256(READER_TOKEN),
            token_file: None,
        }])
        .expect("access")
    };
    let clock = Arc::new(AtomicI64::new(now().timestamp()));
    let read = clock.clone();
    let mut hub = Hub::new(HubConfig::default(), registry(), access, store).with_clock(move || {
        DateTime::from_timestamp(read.load(Ordering::SeqCst), 0).unwrap_or_default()
    });
    if let Some(feed) = feed_dir {
        hub = hub
            .with_feed(feed.to_path_buf(), Arc::new(FlagVerifier))
            .expect("feed");
    }
    let (api, ops, task) = miracolix_hub::testing::serve_until(hub.clone(), shutdown)
        .await
        .expect("serve");
    (
        Running {
            hub,
            clock,
            api,
            ops,
            dir,
        },
        task,
    )
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("the hub answers");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    call(Method::GET, url, headers, Vec::new()).await
}

pub fn bearer() -> String {
    format!("Bearer {READER_TOKEN}")
}

/// A report of site number `i` generated at `at`.
pub fn report(i: usize, sequence: u64, at: DateTime<Utc>, data_map: &[(&str, u64)]) -> Report {
    Report {
        site_id: SITES[i].to_string(),
        sequence,
        generated_at: at,
        release: ReleaseRef {
            name: "miracolix-2026.1".into(),
            fingerprint: "3f".repeat(32),
        },
        components: vec![
            ComponentHealth {
                name: "blaze".into(),
                version: Some("0.30.2".into()),
                ready: true,
            },
            ComponentHealth {
                name: "fhir-pseudonymizer".into(),
                version: Some("2.22.10".into()),
                ready: i != 2,
            },
        ],
        data_map: data_map.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// Signs `report` with site `i`'s key and posts it.
pub async fn post_report(running: &Running, i: usize, report: &Report) -> Answer {
    let signed = report::sign_report(report, &key_id(SITES[i]), &site_key(i)).expect("sign");
    post_body(running, serde_json::to_vec(&signed).expect("json")).await
}

pub async fn post_body(running: &Running, body: Vec<u8>) -> Answer {
    call(
        Method::POST,
        &running.url(report::PATH),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// The value of one sample of the ops listener's /metrics, 0 when absent.
pub async fn metric(running: &Running, sample: &str) -> f64 {
    let text = get(&format!("http://{}/metrics", running.ops), &[])
        .await
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Four sites' reports for the matrix, the Data Map and the page: Patient from all four,
/// Condition from three, Specimen from two (hidden), Consent from one with 0.
pub async fn seed_reports(running: &Running) {
    let at = now() - chrono::Duration::minutes(5);
    let maps: [&[(&str, u64)]; 4] = [
        &[
            ("Patient", 48_000),
            ("Condition", 260_000),
            ("Specimen", 900),
        ],
        &[
            ("Patient", 120_000),
            ("Condition", 900_000),
            ("Specimen", 5),
        ],
        &[("Patient", 35_500), ("Condition", 5), ("Consent", 0)],
        &[("Patient", 61_000), ("Observation", 5_000_000)],
    ];
    for (i, map) in maps.iter().enumerate() {
        // Marburg reported two hours ago by the hub's clock: stale in the matrix.
        let (received, generated) = if i == 3 {
            (
                now() - chrono::Duration::hours(2),
                at - chrono::Duration::hours(2),
            )
        } else {
            (now(), at)
        };
        running.set_now(received);
        let answer = post_report(running, i, &report(i, 1, generated, map)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    }
    running.set_now(now());
}
