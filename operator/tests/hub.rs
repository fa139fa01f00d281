//! The consortium hub as `miracolix-operator` runs it: the feed checked with the operator's own
//! release certification (real signatures from examples/), and `release status --hub` reading the
//! matrix from an in-process hub.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use miracolix_hub::access::Access;
use miracolix_hub::report::{self, ComponentHealth, ReleaseRef, Report};
use miracolix_hub::sites::{KeyEntry, Registry, SiteEntry, SitesConfig};
use miracolix_hub::store::SqliteStore;
use miracolix_hub::{Hub, HubConfig};
use miracolix_operator::api::ComponentRelease;
use miracolix_operator::cli::hub::{FeedVerifier, NOT_A_MANIFEST};
use miracolix_operator::release::{self, TrustStore};
use miracolix_service::token::{StaticToken, token_sha256};
use ring::signature::Ed25519KeyPair;
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

fn site_key(i: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[i + 1; 32]).expect("key")
}

const SITES: [&str; 3] = ["dresden", "erlangen", "marburg"];

fn registry() -> Registry {
    Registry::new(SitesConfig {
        sites: SITES
            .iter()
            .enumerate()
            .map(|(i, s)| SiteEntry {
                site_id: s.to_string(),
                display_name: None,
                keys: vec![KeyEntry {
                    key_id: format!("{s}-2026"),
                    ed25519: report::public_key_base64(&site_key(i as u8)),
                }],
            })
            .collect(),
    })
    .expect("registry")
}

/// Starts `hub` on loopback; returns its base URL.
async fn serve(hub: Hub) -> String {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", api.local_addr().expect("addr"));
    tokio::spawn(hub.serve(api, ops, std::future::pending()));
    url
}

async fn get(url: &str) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let res = client
        .get(url.parse().expect("uri"))
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
        let report = Report {
            site_id: site.to_string(),
            sequence: 1,
            generated_at: chrono::Utc::now(),
            release: ReleaseRef {
                name: "miracolix-2026.1".into(),
                fingerprint: "ab".repeat(32),
            },
            components: vec![ComponentHealth {
                name: "blaze".into(),
                version: Some("0.30.2".into()),
                ready: i == 0,
            }],
            data_map: [("Patient".to_string(), 1200)].into(),
        };
        let signed = report::sign_report(&report, &format!("{site}-2026"), &site_key(i as u8))
            .expect("sign");
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let req = http::Request::post(format!("{base}/api/v1/reports"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(
                serde_json::to_vec(&signed).expect("json"),
            )))
            .expect("request");
        let res = client.request(req).await.expect("post");
        assert_eq!(res.status(), 201);
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
