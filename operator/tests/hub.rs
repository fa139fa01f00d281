//! The consortium hub as `miracolix-operator` runs it: the feed checked with the operator's own
//! release certification (real signatures from examples/), and `release status --hub` reading the
//! matrix from an in-process hub.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use miracolix_hub::access::Access;
use miracolix_hub::report;
use miracolix_hub::sites::Registry;
use miracolix_hub::store::SqliteStore;
use miracolix_hub::testing;
use miracolix_hub::{Hub, HubConfig};
use miracolix_operator::api::ComponentRelease;
use miracolix_operator::cli::hub::{FeedVerifier, NOT_A_MANIFEST};
use miracolix_operator::release::{self, TrustStore};
use miracolix_service::token::{StaticToken, token_sha256};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("operator-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

const SITES: [&str; 3] = ["dresden", "erlangen", "marburg"];

fn registry() -> Registry {
    testing::demo_registry(&SITES).expect("registry")
}

/// Starts `hub` on loopback; returns its base URL.
async fn serve(hub: Hub) -> String {
    let (api, _) = testing::serve(hub).await.expect("serve");
    format!("http://{api}")
}

async fn get(url: &str) -> (u16, Bytes) {
    get_as(url, None).await
}

/// GET with `Authorization: Bearer <token>` when a token is given.
async fn get_as(url: &str, token: Option<&str>) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let res = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("the hub answers");
    let status = res.status().as_u16();
    (
        status,
        res.into_body().collect().await.expect("body").to_bytes(),
    )
}

#[tokio::test]
async fn the_feed_serves_only_releases_the_operator_certifies() {
    let feed = temp_dir("feed");
    let signed = std::fs::read_to_string(root().join("examples/10-release-miracolix-2026.1.yaml"))
        .expect("example release");
    std::fs::write(feed.join("10-release.yaml"), &signed).expect("write");
    // The same release with one image digest changed after signing.
    let tampered = signed.replacen(
        "sha256:99edc58b00c2b3ade9478d9b9aabfed163751a024d07853ce202891b5a4ae463",
        "sha256:00edc58b00c2b3ade9478d9b9aabfed163751a024d07853ce202891b5a4ae463",
        1,
    );
    assert_ne!(
        tampered, signed,
        "the example's blaze digest changed; update this test"
    );
    std::fs::write(
        feed.join("20-tampered.yaml"),
        tampered.replace("name: miracolix-2026.1", "name: tampered"),
    )
    .expect("write");
    std::fs::copy(
        root().join("examples/invalid/release-garbage-signature.yaml"),
        feed.join("30-garbage.yaml"),
    )
    .expect("copy");
    std::fs::write(feed.join("40-not-yaml.json"), "{").expect("write");

    let trusted = root().join("examples/trusted-keys");
    let verifier = FeedVerifier::open(&trusted, 1).expect("trusted keys");
    let hub = Hub::new(
        HubConfig::default(),
        registry(),
        Access::Public,
        SqliteStore::in_memory().expect("store"),
    )
    .with_feed(feed.clone(), Arc::new(verifier))
    .expect("feed");
    let base = serve(hub).await;

    let (status, body) = get(&format!("{base}/feed/v1")).await;
    assert_eq!(status, 200);
    let feed_doc: Value = serde_json::from_slice(&body).expect("json");
    let releases = feed_doc["releases"].as_array().expect("releases");
    assert_eq!(releases.len(), 1, "{feed_doc}");
    assert_eq!(releases[0]["metadata"]["name"], "miracolix-2026.1");

    // What a follower will do with it: certify it again, from the served JSON.
    let served: ComponentRelease =
        serde_json::from_value(releases[0].clone()).expect("a ComponentRelease");
    let trust = TrustStore::from_dir(&trusted).expect("keys");
    assert!(
        release::verify(&served.spec, &trust).is_certified(),
        "the served manifest still verifies"
    );

    let refused = FeedVerifier::open(&trusted, 1).expect("keys");
    let reasons: Vec<String> = ["20-tampered.yaml", "30-garbage.yaml", "40-not-yaml.json"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(feed.join(f)).expect("read");
            miracolix_hub::feed::EntryVerifier::verify(&refused, f, &bytes)
                .expect_err("refused")
                .reason
        })
        .collect();
    assert_eq!(reasons, ["BadSignature", NOT_A_MANIFEST, NOT_A_MANIFEST]);
    let _ = std::fs::remove_dir_all(&feed);
}

/// Posts a signed report of `site` (demo key `i`) generated now; returns the status.
async fn post_report(base: &str, i: usize, site: &str, sequence: u64, ready: bool) -> u16 {
    let mut report = testing::sample_report(site, sequence, chrono::Utc::now());
    report.components[0].ready = ready;
    let signed = report::sign_report(
        &report,
        &testing::demo_key_id(site),
        &testing::demo_key(i).expect("key"),
    )
    .expect("sign");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let req = http::Request::post(format!("{base}/api/v1/reports"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(
            serde_json::to_vec(&signed).expect("json"),
        )))
        .expect("request");
    client.request(req).await.expect("post").status().as_u16()
}

fn write_token(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).expect("token");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_status_reads_the_matrix_from_the_hub() {
    let dir = temp_dir("status");
    let access = Access::tokens(&[StaticToken {
        requester: "release-managers".into(),
        sha256: token_sha256("s3cret"),
        token_file: None,
    }])
    .expect("access");
    let hub = Hub::new(
        HubConfig::default(),
        registry(),
        access,
        SqliteStore::open(&dir.join("hub.db")).expect("store"),
    );
    let base = serve(hub).await;
    for (i, site) in SITES.iter().enumerate().take(2) {
        assert_eq!(post_report(&base, i, site, 1, i == 0).await, 201);
    }

    let good = write_token(&dir, "s3cret");
    let status = |args: Vec<String>| {
        let out = tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
                .args(["release", "status"])
                .args(&args)
                .env_remove("MIRACOLIX_HUB_TOKEN_FILE")
                .output()
        })
        .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let with = |url: &str, token: &Path, output: &str| {
        vec![
            "--hub".to_string(),
            url.to_string(),
            "--hub-token-file".to_string(),
            token.display().to_string(),
            "-o".to_string(),
            output.to_string(),
        ]
    };

    let (code, out, err) = status(with(&base, &good, "json"));
    assert_eq!(code, Some(0), "{err}");
    let matrix: Value = serde_json::from_str(&out).expect("json");
    let sites = matrix["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 3);
    assert_eq!(sites[0]["siteId"], "dresden");
    assert_eq!(sites[0]["ready"], true);
    assert_eq!(sites[1]["ready"], false);
    assert_eq!(sites[2]["stale"], true, "marburg never reported");

    let (code, table, err) = status(with(&format!("{base}/"), &good, "table"));
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SITE"), "{table}");
    assert!(
        lines[1].starts_with("dresden") && lines[1].contains("Ready"),
        "{table}"
    );
    assert!(
        lines[2].contains("NotReady") && lines[2].contains("blaze 0.30.2 NOT READY"),
        "{table}"
    );
    assert!(
        lines[3].starts_with("marburg") && lines[3].contains("NeverReported"),
        "{table}"
    );

    // Wrong token: the hub answers 401, the command cannot do its work (2).
    let bad = dir.join("bad");
    std::fs::write(&bad, "wrong").expect("write");
    let (code, _, err) = status(with(&base, &bad, "json"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("401"), "{err}");

    // HTTPS to a port that speaks plain HTTP: the TLS handshake fails, unreachable (3).
    let (code, out, err) = status(with(&base.replace("http://", "https://"), &good, "json"));
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty(), "{out}");

    // Nothing listens: unreachable (3), nothing on stdout.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let (code, out, err) = status(with(&dead_url, &good, "json"));
    assert_eq!(code, Some(3), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("unreachable"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dir`/sites.json registering erlangen with demo key 0, and `dir`/readers.json with the
/// reader token "s3cret".
fn write_hub_config(dir: &Path) {
    let sites = serde_json::json!({"sites": [{"siteId": "erlangen", "keys": [{"keyId": "erlangen-2026",
        "ed25519": report::public_key_base64(&testing::demo_key(0).expect("key"))}]}]});
    std::fs::write(dir.join("sites.json"), sites.to_string()).expect("write");
    let token = write_token(dir, "s3cret");
    std::fs::write(
        dir.join("readers.json"),
        serde_json::json!({"tokens": [{"requester": "rm", "tokenFile": token}]}).to_string(),
    )
    .expect("write");
}

/// A free loopback port (bound, noted, released; the hub binds it right after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts `miracolix-operator hub` on two free loopback ports with nothing but `env` (as its
/// Deployment would) and waits, at most 30 s, until /readyz answers 200; returns (API port, ops
/// port, the process). Panics with its stderr when it exits or stays unready.
async fn spawn_hub(env: &[(&str, std::ffi::OsString)]) -> (u16, u16, std::process::Child) {
    let (api, ops) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
        .arg("hub")
        .env_clear()
        .env("HUB_LISTEN", format!("127.0.0.1:{api}"))
        .env("HUB_OPS_LISTEN", format!("127.0.0.1:{ops}"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Bounded wait for readiness (start-up is a few milliseconds; a loaded CI machine is slower).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ready = loop {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<Bytes>>();
        let probe = client
            .get(
                format!("http://127.0.0.1:{ops}/readyz")
                    .parse()
                    .expect("uri"),
            )
            .await;
        if probe.is_ok_and(|r| r.status() == 200) {
            break true;
        }
        if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    if !ready {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "the hub did not become ready within 30 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (api, ops, child)
}

/// SIGTERM, then a clean exit (status 0) within 10 s.
async fn stop_hub(mut child: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not stop within 10 s of SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0), "a clean stop on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_subcommand_serves_the_feed_and_stops_on_sigterm() {
    let dir = temp_dir("binary");
    let feed = dir.join("feed");
    std::fs::create_dir_all(&feed).expect("dir");
    std::fs::copy(
        root().join("examples/10-release-miracolix-2026.1.yaml"),
        feed.join("10-release.yaml"),
    )
    .expect("copy");
    write_hub_config(&dir);

    // Without readers and without --public-read nobody could read: refused at start (2).
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
            .args(["hub", "--sites"])
            .arg(dir.join("sites.json"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env_clear()
            .output()
    })
    .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--public-read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (api, _, child) = spawn_hub(&[
        ("HUB_STATE_DIR", dir.join("state").into_os_string()),
        ("HUB_SITES", dir.join("sites.json").into_os_string()),
        ("HUB_READERS", dir.join("readers.json").into_os_string()),
        ("HUB_FEED_DIR", feed.clone().into_os_string()),
        (
            "HUB_TRUSTED_KEYS",
            root().join("examples/trusted-keys").into_os_string(),
        ),
    ])
    .await;
    let (status, body) = get(&format!("http://127.0.0.1:{api}/feed/v1")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(doc["releases"][0]["metadata"]["name"], "miracolix-2026.1");
    let (status, _) = get(&format!("http://127.0.0.1:{api}/api/v1/matrix")).await;
    assert_eq!(status, 401, "reading needs the token");

    stop_hub(child).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The subcommand on PostgreSQL, configured only by environment as a Deployment would be
/// (`HUB_DATABASE`, `HUB_DATABASE_CA_FILE` with the server's CA): a report accepted by one run is
/// in the matrix of the next, and no SQLite file was written to the state directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_subcommand_on_postgres_keeps_reports_across_a_restart() {
    let Some(server) = miracolix_service::pg_test_server::server_or_skip() else {
        return;
    };
    let url = tokio::task::block_in_place(|| server.database("hub"));
    let dir = temp_dir("binary-pg");
    write_hub_config(&dir);
    let env = [
        ("HUB_STATE_DIR", dir.join("state").into_os_string()),
        ("HUB_SITES", dir.join("sites.json").into_os_string()),
        ("HUB_READERS", dir.join("readers.json").into_os_string()),
        ("HUB_DATABASE", url.into()),
        (
            "HUB_DATABASE_CA_FILE",
            server.ca_file.clone().into_os_string(),
        ),
    ];

    let (api, _, first) = spawn_hub(&env).await;
    let base = format!("http://127.0.0.1:{api}");
    assert_eq!(post_report(&base, 0, "erlangen", 1, true).await, 201);
    stop_hub(first).await;

    let (api, _, second) = spawn_hub(&env).await;
    let base = format!("http://127.0.0.1:{api}");
    let (status, body) = get_as(&format!("{base}/api/v1/matrix"), Some("s3cret")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let matrix: Value = serde_json::from_slice(&body).expect("json");
    let erlangen = &matrix["sites"][0];
    assert_eq!(erlangen["siteId"], "erlangen");
    assert!(
        erlangen["lastReport"].is_string(),
        "the first run's report survived the restart: {matrix}"
    );
    assert_eq!(erlangen["release"]["name"], "miracolix-2026.1");
    // The replay rule holds across the restart too.
    assert_eq!(post_report(&base, 0, "erlangen", 1, true).await, 409);
    stop_hub(second).await;
    assert!(
        !dir.join("state/hub.db").exists(),
        "with --database postgres://… no SQLite file is written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--database-ca-file` is a PostgreSQL setting: with a SQLite database the hub and the inbox
/// refuse to start (2), naming the flag, instead of ignoring it.
#[test]
fn a_database_ca_file_with_sqlite_stops_the_hub_and_the_inbox() {
    let dir = temp_dir("ca-with-sqlite");
    let runs: [(&str, Vec<String>); 2] = [
        (
            "hub",
            vec![
                "--sites".into(),
                dir.join("sites.json").display().to_string(),
                "--public-read".into(),
                "--state-dir".into(),
                dir.join("state").display().to_string(),
            ],
        ),
        (
            "inbox",
            vec![
                "--database".into(),
                format!("sqlite://{}", dir.join("inbox.db").display()),
            ],
        ),
    ];
    for (command, args) in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
            .arg(command)
            .args(&args)
            .args(["--database-ca-file", "/etc/db/ca.crt"])
            .env_clear()
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("--database-ca-file /etc/db/ca.crt"),
            "{command}: {stderr}"
        );
        assert!(
            !dir.join("state").exists() && !dir.join("inbox.db").exists(),
            "{command} wrote nothing"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
