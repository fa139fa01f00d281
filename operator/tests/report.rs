//! `miracolix-operator report` end to end: a DizSite reconciled on the test API server (its
//! status says what runs), a stub Blaze answering `_summary=count`, and an in-process hub
//! (`miracolix_hub::testing`). The key comes from `report keygen`, its registration entry is
//! what the hub is configured with.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{repo_root as root, temp_dir};
use http_body_util::{BodyExt, Empty, Full};
use kube::api::{Api, PostParams};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_hub::access::Access;
use miracolix_hub::sites::{Registry, SitesConfig};
use miracolix_hub::store::SqliteStore;
use miracolix_hub::{Hub, HubConfig};
use miracolix_operator::api::DizSite;
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::TrustStore;
use miracolix_operator::report::{self, HttpClient, Posted, Retry};
use serde_json::{Value, json};

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    miracolix_operator::yaml::from_multi_doc(&text).expect("yaml")
}

/// The example release and one reporting site, reconciled until its status names the release.
async fn cluster() -> TestApiServer {
    let server = TestApiServer::with_config(Config {
        contracts: miracolix_e2e::kubelet::Contracts::from_json(
            &miracolix_operator::catalog::contract::contracts_json(),
        )
        .expect("the catalogue's contracts parse"),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
        for crd in docs(&entry.expect("entry").path()) {
            server.create(crd).expect("crd");
        }
    }
    for rel in docs(&root().join("examples/10-release-miracolix-2026.1.yaml")) {
        server.create(rel).expect("release");
    }
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diz"}}))
        .expect("ns");
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "erlangen", "namespace": "diz"},
        "spec": {"siteId": "erlangen", "release": {"channel": "stable"},
                 "components": {"blaze": {"resources": "small"}},
                 "reporting": {"hubUrl": "https://hub.miracum.example"}},
    }))
    .expect("site");
    let api: Api<DizSite> = Api::namespaced(server.client(), "diz");
    api.create(&PostParams::default(), &site)
        .await
        .expect("create");
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let ctx = Arc::new(Context::new(
        server.client(),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    for _ in 0..3 {
        ctx.cache()
            .wait_consistent(&server.client())
            .await
            .expect("caches catch up");
        let s = api.get("erlangen").await.expect("get");
        controller::dizsite::reconcile(Arc::new(s), ctx.clone())
            .await
            .expect("reconcile");
    }
    let s = api.get("erlangen").await.expect("get");
    assert!(
        s.status
            .as_ref()
            .is_some_and(|st| st.current_release_fingerprint.is_some()),
        "the site runs a release: {:?}",
        s.status
    );
    server
}

/// A Blaze that answers `GET /fhir/<Type>?_summary=count` with a searchset Bundle of the given
/// total, and records the paths it was asked.
async fn blaze_stub(counts: BTreeMap<&'static str, u64>) -> (String, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counts = counts.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let counts = counts.clone();
                    let log = log.clone();
                    async move {
                        let uri = req.uri().clone();
                        log.lock().expect("log").push(uri.to_string());
                        let t = uri.path().trim_start_matches("/fhir/");
                        let answer = match (uri.query(), counts.get(t)) {
                            (Some("_summary=count"), Some(n)) => http::Response::builder()
                                .status(200)
                                .header("Content-Type", "application/fhir+json")
                                .body(Full::new(Bytes::from(
                                    json!({"resourceType": "Bundle", "type": "searchset", "total": n})
                                        .to_string(),
                                ))),
                            _ => http::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new())),
                        };
                        Ok::<_, std::convert::Infallible>(answer.expect("response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/fhir"), asked)
}

/// `report keygen` into `dir`: the Secret's two files, and the registration entry.
fn keygen(dir: &Path) -> Value {
    std::fs::create_dir_all(dir).expect("dir");
    let reg = dir.join("registration.json");
    let out = Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
        .args([
            "report",
            "keygen",
            "--site",
            "erlangen",
            "--key-id",
            "erlangen-test",
        ])
        .arg("--registration-file")
        .arg(&reg)
        .output()
        .expect("keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: Value =
        miracolix_operator::yaml::from_multi_doc(&String::from_utf8_lossy(&out.stdout))
            .expect("the Secret is YAML")
            .remove(0);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "erlangen-report-key");
    for file in ["private-key.pem", "key-id"] {
        std::fs::write(
            dir.join(file),
            secret["stringData"][file]
                .as_str()
                .expect("file in the Secret"),
        )
        .expect("write");
    }
    let entry: Value =
        serde_json::from_str(&std::fs::read_to_string(&reg).expect("registration")).expect("json");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&entry.to_string()),
        "the registration entry is printed too"
    );
    entry
}

fn registry(entry: &Value) -> Registry {
    let config: SitesConfig =
        serde_json::from_value(json!({"sites": [entry]})).expect("the hub's sites config");
    Registry::new(config).expect("registry")
}

async fn get(url: &str) -> Value {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let res = client
        .get(url.parse().expect("uri"))
        .await
        .expect("the hub answers");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
}

async fn metrics(ops: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let res = client
        .get(format!("{ops}/metrics").parse().expect("uri"))
        .await
        .expect("ops answers");
    String::from_utf8_lossy(&res.into_body().collect().await.expect("body").to_bytes()).into()
}

fn accepted(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("miracolix_hub_reports_total{") && l.contains("outcome=\"accepted\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The command as the CronJob runs it (its settings as environment variables), against the
/// served test API server.
fn run_report(kubeconfig: &Path, hub: &str, blaze: &str, keys: &Path) -> std::process::Output {
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
            .arg("report")
            .env("KUBECONFIG", kubeconfig)
            .env("REPORT_SITE", "erlangen")
            .env("REPORT_NAMESPACE", "diz")
            .env("REPORT_HUB_URL", hub)
            .env("REPORT_BLAZE_URL", blaze)
            .env("REPORT_KEY_FILE", keys.join("private-key.pem"))
            .env("REPORT_KEY_ID_FILE", keys.join("key-id"))
            .env(
                "REPORT_RESOURCE_TYPES",
                "Patient,Condition,Specimen,Consent",
            )
            .env("REPORT_ATTEMPTS", "2")
            .env("REPORT_RETRY_DELAY_MS", "10")
            .output()
    })
    .expect("report runs")
}

fn kubeconfig(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: site\n  cluster:\n    server: {url}\n\
             contexts:\n- name: site\n  context:\n    cluster: site\n    user: test\n\
             current-context: site\nusers:\n- name: test\n  user:\n    token: test\n"
        ),
    )
    .expect("kubeconfig");
    path
}

fn counts() -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("Patient", 48_000),
        ("Condition", 2),
        ("Specimen", 0),
        ("Consent", 7),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_obfuscated_counts_and_a_wrong_key_is_refused() {
    let dir = temp_dir("operator-report-command");
    let server = cluster().await;
    let served = server
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let kubeconfig = kubeconfig(&dir, &served.url());
    let (blaze, asked) = blaze_stub(counts()).await;
    let entry = keygen(&dir.join("key"));
    let hub = Hub::new(
        HubConfig::default(),
        registry(&entry),
        Access::Public,
        SqliteStore::open(&dir.join("hub.db")).expect("store"),
    );
    let (api, ops) = miracolix_hub::testing::serve(hub).await.expect("hub");
    let (hub_url, ops) = (format!("http://{api}"), format!("http://{ops}"));

    let out = run_report(&kubeconfig, &hub_url, &blaze, &dir.join("key"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("report accepted"), "{stdout}");
    assert_eq!(
        asked.lock().expect("log").len(),
        4,
        "one count request per resource type"
    );
    let matrix = get(&format!("{hub_url}/api/v1/matrix")).await;
    let row = &matrix["sites"][0];
    assert_eq!(row["siteId"], "erlangen", "{matrix}");
    assert_eq!(row["release"]["name"], "miracolix-2026.1", "{matrix}");
    assert!(
        row["components"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "blaze")),
        "{matrix}"
    );
    assert_eq!(accepted(&metrics(&ops).await), 1);

    // Another key under the registered key id: the hub refuses the signature, the command
    // names the hub's reason and fails.
    let wrong = dir.join("wrong");
    keygen(&wrong);
    let out = run_report(&kubeconfig, &hub_url, &blaze, &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(miracolix_operator::cli::EXIT_ERROR)),
        "{stderr}"
    );
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("bad-signature"),
        "{stderr}"
    );
    assert_eq!(accepted(&metrics(&ops).await), 1, "nothing more stored");

    // A hub that does not answer: retried, then a failure naming the attempts.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let out = run_report(&kubeconfig, &dead_url, &blaze, &dir.join("key"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("after 2 attempt(s)"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Idempotence at a fixed time: the same envelope posted again is a duplicate, a second run of
/// the same period is "already reported", the next period is a new report; the Data Map never
/// receives a count from 1 to 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_report_per_period_whatever_is_retried() {
    let dir = temp_dir("operator-report-period");
    let server = cluster().await;
    let site = Api::<DizSite>::namespaced(server.client(), "diz")
        .get("erlangen")
        .await
        .expect("site");
    let (blaze, _) = blaze_stub(counts()).await;
    let entry = keygen(&dir.join("key"));
    let (key, key_id) = miracolix_operator::cli::report::load_key(
        &dir.join("key/private-key.pem").to_string_lossy(),
        &dir.join("key/key-id").to_string_lossy(),
    )
    .expect("key");
    let now: chrono::DateTime<chrono::Utc> = "2026-11-30T02:07:30Z".parse().expect("time");
    let hub_now = Arc::new(Mutex::new(now));
    let clock = hub_now.clone();
    let hub = Hub::new(
        HubConfig::default(),
        registry(&entry),
        Access::Public,
        SqliteStore::open(&dir.join("hub.db")).expect("store"),
    )
    .with_clock(move || *clock.lock().expect("clock"));
    let (api, ops) = miracolix_hub::testing::serve(hub).await.expect("hub");
    let (hub_url, ops) = (format!("http://{api}"), format!("http://{ops}"));
    let client = HttpClient::new(None, Duration::from_secs(10)).expect("client");
    let types: Vec<String> = counts().keys().map(|s| s.to_string()).collect();
    let retry = Retry {
        attempts: 1,
        first_delay: Duration::from_millis(1),
    };
    let run = report::Run {
        client: &client,
        blaze_url: &blaze,
        hub_url: &hub_url,
        resource_types: &types,
        interval: Duration::from_secs(3600),
        key_id: &key_id,
        key: &key,
        retry,
    };

    let (sent, posted) = report::run(&site, now, &run).await.expect("first run");
    assert_eq!(posted, Posted::Accepted);
    assert_eq!(
        sent.data_map,
        BTreeMap::from([
            ("Condition".to_string(), 5),
            ("Consent".to_string(), 7),
            ("Patient".to_string(), 48_000),
            ("Specimen".to_string(), 0),
        ]),
        "2 leaves the site as 5; 0 stays 0"
    );
    // The answer was lost: the pusher sends the same envelope again.
    let signed = miracolix_hub::report::sign_report(&sent, &key_id, &key).expect("sign");
    let again = report::post(&client, &hub_url, &signed, retry)
        .await
        .expect("retry");
    assert_eq!(again, Posted::Duplicate);
    // The Job's pod ran again later in the same hour: the hub has this period already.
    let later = now + chrono::Duration::minutes(40);
    *hub_now.lock().expect("clock") = later;
    let (rerun, posted) = report::run(&site, later, &run).await.expect("rerun");
    assert_eq!(posted, Posted::AlreadyReported);
    assert_eq!(rerun.sequence, sent.sequence);
    assert_eq!(
        accepted(&metrics(&ops).await),
        1,
        "one report for the period"
    );
    // The next period is a new report.
    let next = now + chrono::Duration::hours(1);
    *hub_now.lock().expect("clock") = next;
    let (_, posted) = report::run(&site, next, &run).await.expect("next period");
    assert_eq!(posted, Posted::Accepted);
    assert_eq!(accepted(&metrics(&ops).await), 2);
    std::fs::remove_dir_all(&dir).ok();
}
