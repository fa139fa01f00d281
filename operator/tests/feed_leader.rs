//! Only the leader follows the release feed. Two replicas of the real operator binary
//! (`run --leader-elect --feed-url`) share one Lease on the test API server; each is pointed at
//! a hub of its own, so a hub's request count says which replica fetched. While A leads, only A's
//! hub is asked (over several of its intervals, with B running and standing by); when A shuts
//! down it hands the Lease over and B's hub is asked from then on, and the release from the feed
//! is in the cluster, applied by the follower.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{repo_root as root, temp_dir};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use miracolix_e2e::{Config as ServerConfig, TestApiServer};
use miracolix_hub::access::Access;
use miracolix_hub::store::SqliteStore;
use miracolix_hub::{Hub, HubConfig};
use miracolix_operator::api::ComponentRelease;
use miracolix_operator::cli::hub::FeedVerifier;
use miracolix_operator::feed::plan::FEED_LABEL;
use serde_json::{Value, json};

const LEASE_NS: &str = "miracolix-system";

/// A hub serving the signed example release as its feed; returns it (for its metrics) and the
/// feed URL.
async fn hub(feed_dir: &Path) -> (Hub, String) {
    let verifier = FeedVerifier::open(&root().join("examples/trusted-keys"), 1).expect("keys");
    let hub = Hub::new(
        HubConfig::default(),
        miracolix_hub::testing::demo_registry(&[]).expect("registry"),
        Access::Public,
        SqliteStore::in_memory().expect("store"),
    )
    .with_feed(feed_dir.to_path_buf(), Arc::new(verifier))
    .expect("feed loads");
    let (api, _) = miracolix_hub::testing::serve(hub.clone())
        .await
        .expect("serve");
    (hub, format!("http://{api}{}", miracolix_hub::feed::PATH))
}

/// Feed requests the hub answered (full or not modified).
fn feed_requests(hub: &Hub) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, hub.metrics().registry())
        .expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("miracolix_hub_feed_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The operator binary, stopped on drop.
struct Operator(Child);

impl Operator {
    fn start(kubeconfig: &Path, pod: &str, feed_url: &str, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
            .args(["run", "--trusted-keys"])
            .arg(root().join("examples/trusted-keys"))
            .args(["--log-format", "text", "--leader-elect"])
            .args(["--probe-address", "127.0.0.1:0"])
            .args(["--metrics-address", "127.0.0.1:0"])
            .args(["--feed-url", feed_url, "--feed-interval", "200ms"])
            // Short lease timings keep a standby's retries frequent; the handover itself is
            // the leader releasing the Lease on SIGTERM.
            .args(["--lease-duration", "4s", "--renew-deadline", "3s"])
            .args(["--renew-period", "1s", "--retry-period", "200ms"])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", LEASE_NS)
            .env("RUST_LOG", "warn,miracolix_operator=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("operator starts");
        Self(child)
    }

    /// SIGTERM, as the kubelet stops a pod; waits (bounded) for the exit.
    async fn terminate(&mut self) {
        let pid = self.0.id().to_string();
        let status =
            tokio::task::block_in_place(|| Command::new("kill").args(["-TERM", &pid]).status())
                .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "the operator did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until `cond` holds; the message says what did not happen, with the logs.
async fn until(what: &str, logs: &[&Path], mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond().await {
        if Instant::now() >= deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|l| {
                    format!(
                        "--- {}\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap_or_default()
                    )
                })
                .collect();
            panic!("{what}: not within 60 s\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lease_holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), LEASE_NS)
        .get_opt("miracolix-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_follows_the_feed_and_the_next_leader_takes_over() {
    let dir = temp_dir("feed-leader-run");
    let feed = dir.join("feed");
    std::fs::create_dir_all(&feed).expect("feed dir");
    std::fs::copy(
        root().join("examples/10-release-miracolix-2026.1.yaml"),
        feed.join("10-release.yaml"),
    )
    .expect("release");
    let (hub_a, url_a) = hub(&feed).await;
    let (hub_b, url_b) = hub(&feed).await;

    let server = TestApiServer::with_config(ServerConfig::default());
    for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for crd in miracolix_operator::yaml::from_multi_doc::<Value>(&text).expect("yaml") {
            server.create(crd).expect("CRD installs");
        }
    }
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}))
        .expect("namespace");
    let handle = server
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let kubeconfig = dir.join("kubeconfig");
    miracolix_e2e::apiserver::http::write_kubeconfig(&kubeconfig, &handle.url(), None)
        .expect("kubeconfig");
    let kc = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config"),
    )
    .expect("client");
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let logs = [log_a.as_path(), log_b.as_path()];

    // A starts alone, takes the Lease and follows its hub's feed.
    let mut a = Operator::start(&kubeconfig, "pod-a", &url_a, &log_a);
    until("A leads", &logs, async || {
        lease_holder(&client).await.as_deref() == Some("pod-a")
    })
    .await;
    until("A fetches its feed", &logs, async || {
        feed_requests(&hub_a) >= 1
    })
    .await;
    let releases: Api<ComponentRelease> = Api::all(client.clone());
    until("the feed's release is applied", &logs, async || {
        releases
            .get_opt("miracolix-2026.1")
            .await
            .ok()
            .flatten()
            .is_some_and(|r| {
                r.metadata
                    .labels
                    .unwrap_or_default()
                    .contains_key(FEED_LABEL)
            })
    })
    .await;

    // B starts and stands by: over many of A's feed intervals, B's hub is never asked.
    let b = Operator::start(&kubeconfig, "pod-b", &url_b, &log_b);
    let seen = feed_requests(&hub_a);
    until("A keeps following while B stands by", &logs, async || {
        feed_requests(&hub_a) >= seen + 10
    })
    .await;
    assert_eq!(
        lease_holder(&client).await.as_deref(),
        Some("pod-a"),
        "A still leads"
    );
    assert_eq!(
        feed_requests(&hub_b),
        0,
        "the standby B fetched its feed while A led"
    );

    // A stops (hands the Lease over): B leads and follows from then on; A asks no more.
    a.terminate().await;
    let after_a = feed_requests(&hub_a);
    until("B leads", &logs, async || {
        lease_holder(&client).await.as_deref() == Some("pod-b")
    })
    .await;
    until("B fetches its feed", &logs, async || {
        feed_requests(&hub_b) >= 3
    })
    .await;
    assert_eq!(feed_requests(&hub_a), after_a, "A fetched after it stopped");
    drop(b);
    drop(handle);
    let _ = std::fs::remove_dir_all(&dir);
}
