//! The consortium loop's release half (issue 16): one hub, two operators on two test API
//! servers, each following the hub's feed. A release published to the feed reaches both sites,
//! each through its own maintenance window (a manual clock, no waiting); a tampered entry never
//! reaches a cluster; the hub going down leaves both on the last good feed and says so; a
//! release created by hand under a feed entry's name is never overwritten.
//!
//! The followers are driven round by round with `Follower::step` (one fetch, plan, apply), and
//! the sites with direct reconciles, so every step is deterministic; one test runs the
//! follower's own loop.

mod repo;

use repo::{docs, root};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_hub::access::Access;
use miracolix_hub::feed::{EntryKind, EntryVerifier, Refusal, VerifiedEntry};
use miracolix_hub::store::SqliteStore;
use miracolix_hub::{Hub, HubConfig};
use miracolix_operator::api::{ComponentRelease, DizSite, conditions, reasons};
use miracolix_operator::cli::hub::FeedVerifier;
use miracolix_operator::clock::ManualClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::feed::plan::{FEED_LABEL, FEED_URL_ANNOTATION};
use miracolix_operator::feed::{FeedConfig, Follower, Round};
use miracolix_operator::release::{SigningKey, TrustStore, sign_release};
use serde_json::{Value, json};

const KEY_ID: &str = "miracolix-demo-2026";

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn demo_key() -> SigningKey {
    let pem = std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
    SigningKey::from_pem(&pem, "demo").expect("demo key")
}

/// A signed ComponentRelease `miracolix-<version>` on `stable` from the example, for every
/// site at once, FLARE's digest made of `flare` (unique per release).
fn signed_release(version: &str, flare: char) -> Value {
    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"] = json!({"name": format!("miracolix-{version}")});
    rel["spec"]["version"] = json!(version);
    rel["spec"]["components"]["flare"]["digest"] =
        json!(format!("sha256:{}", flare.to_string().repeat(64)));
    rel["spec"]["rollout"] = json!({"progressDeadline": "30m",
        "waves": [{"name": "all", "siteSelector": {"matchLabels": {}}}]});
    if let Some(spec) = rel["spec"].as_object_mut() {
        spec.remove("compatibility");
    }
    let mut typed: ComponentRelease = serde_json::from_value(rel).expect("release");
    typed.spec.signature = Some(sign_release(&typed.spec, &demo_key(), KEY_ID).expect("signs"));
    let mut v = serde_json::to_value(&typed).expect("json");
    if let Some(m) = v["metadata"].as_object_mut() {
        m.retain(|k, _| k == "name");
    }
    v.as_object_mut().expect("obj").remove("status");
    v
}

/// The same release with Blaze's digest changed after signing.
fn tampered(mut release: Value, name: &str) -> Value {
    release["metadata"]["name"] = json!(name);
    release["spec"]["components"]["blaze"]["digest"] = json!(format!("sha256:{}", "d".repeat(64)));
    release
}

/// The feed directory the hub serves.
struct FeedDir(PathBuf);

impl FeedDir {
    fn new(test: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("feed-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("feed dir");
        Self(dir)
    }

    fn publish(&self, file: &str, manifest: &Value) {
        std::fs::write(
            self.0.join(file),
            serde_json::to_vec_pretty(manifest).expect("json"),
        )
        .expect("write feed file");
    }
}

/// A hub that serves whatever it is given (a compromised hub, or someone between hub and site):
/// the operators' own verification is all that stands between its feed and their clusters.
struct PassThrough;

impl EntryVerifier for PassThrough {
    fn verify(&self, _origin: &str, bytes: &[u8]) -> Result<VerifiedEntry, Refusal> {
        let manifest: Value = serde_json::from_slice(bytes).map_err(|e| Refusal {
            reason: "NotAManifest".into(),
            message: e.to_string(),
        })?;
        let kind = if manifest["kind"] == "ReleaseRevocation" {
            EntryKind::Revocation
        } else {
            EntryKind::Release
        };
        Ok(VerifiedEntry {
            kind,
            name: manifest["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .into(),
            manifest,
        })
    }
}

/// A hub on loopback, on a runtime of its own: stopping it ends every connection at once (an
/// outage), and it can come back on the same address.
struct RunningHub {
    hub: Hub,
    addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl RunningHub {
    fn start(dir: &Path, verifier: Arc<dyn EntryVerifier>) -> Self {
        let hub = Hub::new(
            HubConfig::default(),
            miracolix_hub::testing::demo_registry(&[]).expect("registry"),
            Access::Public,
            SqliteStore::in_memory().expect("store"),
        )
        .with_feed(dir.to_path_buf(), verifier)
        .expect("feed loads");
        let mut running = Self {
            hub,
            addr: "127.0.0.1:0".parse().expect("addr"),
            rt: None,
        };
        running.up();
        running
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.addr, miracolix_hub::feed::PATH)
    }

    fn up(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("hub runtime");
        let bind = |addr: SocketAddr| {
            let s = tokio::net::TcpSocket::new_v4().expect("socket");
            // The same port again after an outage, past its connections in TIME_WAIT.
            s.set_reuseaddr(true).expect("reuseaddr");
            s.bind(addr).expect("bind");
            s.listen(64).expect("listen")
        };
        let _guard = rt.enter();
        let api = bind(self.addr);
        self.addr = api.local_addr().expect("addr");
        let ops = bind("127.0.0.1:0".parse().expect("addr"));
        rt.spawn(self.hub.clone().serve(api, ops, std::future::pending()));
        self.rt = Some(rt);
    }

    /// The hub goes down: its runtime ends, with every open connection.
    async fn down(&mut self) {
        if let Some(rt) = self.rt.take() {
            tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5)))
                .await
                .expect("hub stops");
        }
    }

    fn reload(&self) {
        self.hub.reload_feed().expect("feed reloads");
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One cluster with its operator (in-process, manual clock) following the hub's feed.
struct Site {
    name: &'static str,
    server: TestApiServer,
    client: Client,
    ctx: Arc<Context>,
    follower: Arc<Follower>,
}

impl Site {
    /// A cluster with the operator's CRDs and one DizSite `name` (namespace `name`) following
    /// `stable`, with the maintenance window `window`.
    async fn new(name: &'static str, clock: &ManualClock, feed_url: &str, window: Value) -> Self {
        let server = TestApiServer::with_config(Config {
            contracts: repo::catalogue_contracts(),
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            for crd in miracolix_operator::yaml::from_multi_doc::<Value>(&text).expect("yaml") {
                server.create(crd).expect("CRD installs");
            }
        }
        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
        let ctx = Arc::new(Context::new(
            server.client_as("miracolix-operator"),
            Arc::new(trust),
            Arc::new(clock.clone()),
        ));
        let follower = Arc::new(
            Follower::new(
                ctx.clone(),
                &FeedConfig {
                    url: feed_url.to_string(),
                    interval: Duration::from_millis(100),
                    ca: None,
                },
            )
            .expect("follower"),
        );
        let client = server.client_as("e2e-test");
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .expect("namespace");
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": name, "namespace": name},
            "spec": {
                "siteId": name,
                "release": {"channel": "stable"},
                "components": {"blaze": {"resources": "small"}, "flare": {"resources": "small"}},
                "maintenanceWindow": window,
            },
        }))
        .expect("site");
        Api::<DizSite>::namespaced(client.clone(), name)
            .create(&PostParams::default(), &site)
            .await
            .expect("site created");
        Self {
            name,
            server,
            client,
            ctx,
            follower,
        }
    }

    /// One round of the follower, bounded.
    async fn follow(&self) -> Round {
        tokio::time::timeout(Duration::from_secs(40), self.follower.step())
            .await
            .expect("a round of the follower finishes")
    }

    async fn dizsite(&self) -> DizSite {
        Api::<DizSite>::namespaced(self.client.clone(), self.name)
            .get(self.name)
            .await
            .expect("site")
    }

    /// Reconciles until nothing changes any more (bounded), as the controller would on the
    /// events its own writes cause.
    async fn settle(&self) -> DizSite {
        let mut last = String::new();
        for _ in 0..8 {
            let site = self.dizsite().await;
            let rv = site.resource_version().unwrap_or_default();
            if rv == last {
                return site;
            }
            last = rv;
            self.ctx
                .cache()
                .wait_consistent(&self.client)
                .await
                .expect("caches catch up");
            let site = self.dizsite().await;
            tokio::time::timeout(
                Duration::from_secs(10),
                controller::dizsite::reconcile(Arc::new(site), self.ctx.clone()),
            )
            .await
            .expect("reconcile finishes")
            .expect("reconcile succeeds");
        }
        panic!("site {} did not settle after 8 reconciles", self.name);
    }

    async fn release(&self, name: &str) -> Option<ComponentRelease> {
        Api::<ComponentRelease>::all(self.client.clone())
            .get_opt(name)
            .await
            .expect("get release")
    }

    async fn release_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Api::<ComponentRelease>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list releases")
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        names.sort();
        names
    }

    /// (reason, note) of the Warning Events about the site.
    async fn warnings(&self) -> Vec<(String, String)> {
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(self.client.clone(), self.name)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// The value of one series of the operator's metrics (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        self.ctx
            .metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn current(site: &DizSite) -> Option<String> {
    site.status.as_ref().and_then(|s| s.current_release.clone())
}

fn condition(site: &DizSite, type_: &str) -> (String, String, String) {
    let st = site.status.as_ref().expect("status");
    let c = conditions::find(&st.conditions, type_)
        .unwrap_or_else(|| panic!("{type_} condition in {:#?}", st.conditions));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Erlangen: window 02:00-06:00 Berlin (01:00-05:00 UTC in winter). Marburg: 20:00-23:00 UTC.
fn erlangen_window() -> Value {
    json!({"schedule": "0 2 * * *", "duration": "4h", "timeZone": "Europe/Berlin"})
}
fn marburg_window() -> Value {
    json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"})
}

async fn two_sites(
    test: &str,
    verifier: Arc<dyn EntryVerifier>,
) -> (FeedDir, RunningHub, ManualClock, Site, Site) {
    let dir = FeedDir::new(test);
    dir.publish("10-miracolix-2026.1.json", &signed_release("2026.1", 'a'));
    let hub = RunningHub::start(&dir.0, verifier);
    let clock = ManualClock::new(at("2026-01-20T12:00:00Z"));
    let erlangen = Site::new("erlangen", &clock, &hub.url(), erlangen_window()).await;
    let marburg = Site::new("marburg", &clock, &hub.url(), marburg_window()).await;
    (dir, hub, clock, erlangen, marburg)
}

fn real_verifier() -> Arc<dyn EntryVerifier> {
    Arc::new(FeedVerifier::open(&root().join("examples/trusted-keys"), 1).expect("trusted keys"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_to_the_feed_reaches_both_sites_through_their_windows() {
    let (dir, hub, clock, erlangen, marburg) = two_sites("windows", real_verifier()).await;

    // First install: both operators take 2026.1 from the feed, and the sites install it.
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)), "{}", s.name);
        let rel = s
            .release("miracolix-2026.1")
            .await
            .expect("applied from the feed");
        assert_eq!(
            rel.labels().get(FEED_LABEL).map(String::as_str),
            Some(format!("127.0.0.1-{}", hub.addr.port()).as_str())
        );
        assert_eq!(rel.annotations().get(FEED_URL_ANNOTATION), Some(&hub.url()));
        let site = s.settle().await;
        assert_eq!(
            current(&site).as_deref(),
            Some("miracolix-2026.1"),
            "{}",
            s.name
        );
        let (status, reason, message) = condition(&site, conditions::RELEASE_FEED);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", reasons::FEED_SYNCED),
            "{message}"
        );
        assert!(
            message.contains("1 releases and 0 revocations"),
            "{message}"
        );
        assert_eq!(
            s.metric("miracolix_feed_entries_total{outcome=\"applied\"}"),
            1.0
        );
    }

    // The consortium publishes 2026.2. Noon: both windows are closed.
    dir.publish("20-miracolix-2026.2.json", &signed_release("2026.2", 'b'));
    hub.reload();
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)), "{}", s.name);
        assert!(s.release("miracolix-2026.2").await.is_some(), "{}", s.name);
        let site = s.settle().await;
        assert_eq!(
            current(&site).as_deref(),
            Some("miracolix-2026.1"),
            "{}: outside its window",
            s.name
        );
        let (_, reason, _) = condition(&site, conditions::RELEASE_UP_TO_DATE);
        assert_eq!(reason, "WaitingForMaintenanceWindow", "{}", s.name);
    }

    // 01:30 UTC: Erlangen's window is open, Marburg's is not.
    clock.set(at("2026-01-21T01:30:00Z"));
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)));
    }
    let e = erlangen.settle().await;
    assert_eq!(
        current(&e).as_deref(),
        Some("miracolix-2026.2"),
        "erlangen: inside its window"
    );
    assert_eq!(condition(&e, conditions::RELEASE_UP_TO_DATE).0, "True");
    let m = marburg.settle().await;
    assert_eq!(
        current(&m).as_deref(),
        Some("miracolix-2026.1"),
        "marburg: outside its window"
    );
    assert_eq!(
        condition(&m, conditions::RELEASE_UP_TO_DATE).1,
        "WaitingForMaintenanceWindow"
    );

    // 20:30 UTC: Marburg's turn.
    clock.set(at("2026-01-21T20:30:00Z"));
    let m = marburg.settle().await;
    assert_eq!(
        current(&m).as_deref(),
        Some("miracolix-2026.2"),
        "marburg: inside its window"
    );

    // The unchanged feed costs a 304 and no write.
    for s in [&erlangen, &marburg] {
        assert!(s.metric("miracolix_feed_fetches_total{outcome=\"not-modified\"}") >= 1.0);
        assert!(s.metric("miracolix_feed_last_success_timestamp_seconds") > 0.0);
        assert!(
            s.warnings().await.is_empty(),
            "{}: {:?}",
            s.name,
            s.warnings().await
        );
    }
    let writes = |s: &Site| {
        s.server
            .requests()
            .iter()
            .filter(|r| {
                r.resource == "componentreleases" && r.verb == "patch" && r.subresource.is_empty()
            })
            .count()
    };
    let before = writes(&erlangen);
    assert!(matches!(erlangen.follow().await, Round::Synced(_)));
    assert_eq!(
        writes(&erlangen),
        before,
        "an unchanged feed writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_entry_never_reaches_either_cluster() {
    // The real hub leaves a tampered file out of its feed.
    let dir = FeedDir::new("tampered-hub");
    dir.publish("10-miracolix-2026.1.json", &signed_release("2026.1", 'a'));
    dir.publish(
        "20-evil.json",
        &tampered(signed_release("2026.2", 'b'), "miracolix-2026.2"),
    );
    let hub = RunningHub::start(&dir.0, real_verifier());
    let clock = ManualClock::new(at("2026-01-20T12:00:00Z"));
    let site = Site::new("erlangen", &clock, &hub.url(), erlangen_window()).await;
    assert!(matches!(site.follow().await, Round::Synced(_)));
    assert_eq!(site.release_names().await, ["miracolix-2026.1"]);

    // A compromised hub serves it anyway: each operator's own check refuses it.
    let (dir, compromised, _clock, erlangen, marburg) =
        two_sites("tampered", Arc::new(PassThrough)).await;
    dir.publish(
        "20-evil.json",
        &tampered(signed_release("2026.2", 'b'), "miracolix-2026.2"),
    );
    compromised.reload();
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)), "{}", s.name);
        assert_eq!(
            s.release_names().await,
            ["miracolix-2026.1"],
            "{}: only what verifies",
            s.name
        );
        assert_eq!(
            s.metric("miracolix_feed_entries_total{outcome=\"not-verified\"}"),
            1.0
        );
        let warnings = s.warnings().await;
        assert_eq!(warnings.len(), 1, "{}: {warnings:?}", s.name);
        assert_eq!(warnings[0].0, reasons::FEED_ENTRY_NOT_VERIFIED);
        assert!(
            warnings[0].1.contains("miracolix-2026.2") && warnings[0].1.contains("BadSignature"),
            "{}",
            warnings[0].1
        );
        let site = s.settle().await;
        let (status, reason, message) = condition(&site, conditions::RELEASE_FEED);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", reasons::FEED_ENTRIES_SKIPPED),
            "{message}"
        );
        assert!(message.contains("1 of them not applied"), "{message}");
        assert_eq!(current(&site).as_deref(), Some("miracolix-2026.1"));
        // The next round (a 304) plans the same feed again and says nothing new.
        assert!(matches!(s.follow().await, Round::Synced(_)));
        assert_eq!(
            s.warnings().await.len(),
            1,
            "{}: one Event per refused entry",
            s.name
        );
        assert_eq!(
            s.metric("miracolix_feed_entries_total{outcome=\"applied\"}"),
            1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_going_down_leaves_both_operators_on_the_last_good_feed() {
    let (_dir, mut hub, _clock, erlangen, marburg) = two_sites("outage", real_verifier()).await;
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)));
        assert_eq!(
            current(&s.settle().await).as_deref(),
            Some("miracolix-2026.1")
        );
    }

    hub.down().await;
    for s in [&erlangen, &marburg] {
        let round = s.follow().await;
        assert!(
            matches!(round, Round::FetchFailed(_)),
            "{}: {round:?}",
            s.name
        );
        assert_eq!(
            s.metric("miracolix_feed_fetch_errors_total{error=\"unreachable\"}"),
            1.0
        );
        assert_eq!(
            s.release_names().await,
            ["miracolix-2026.1"],
            "{}: nothing removed",
            s.name
        );
        let site = s.settle().await;
        let (status, reason, message) = condition(&site, conditions::RELEASE_FEED);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", reasons::FEED_UNREACHABLE),
            "{message}"
        );
        assert!(
            message
                .contains("the releases of the last good feed (fetched 2026-01-20T12:00:00Z) stay"),
            "{message}"
        );
        assert_eq!(current(&site).as_deref(), Some("miracolix-2026.1"));
        assert!(conditions::is_true(
            &site.status.expect("status").conditions,
            conditions::READY
        ));
    }

    // Back up: the next round follows it again.
    hub.up();
    for s in [&erlangen, &marburg] {
        assert!(matches!(s.follow().await, Round::Synced(_)), "{}", s.name);
        let site = s.settle().await;
        assert_eq!(
            condition(&site, conditions::RELEASE_FEED).1,
            reasons::FEED_SYNCED
        );
    }
}

/// An operator restarted without `--feed-url` removes the `ReleaseFeed` condition its earlier
/// run wrote (it would tell of a feed nobody follows any more); one restarted with the feed keeps
/// the condition until its own first round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_the_feed_removes_its_condition() {
    let dir = FeedDir::new("restart");
    dir.publish("10-miracolix-2026.1.json", &signed_release("2026.1", 'a'));
    let hub = RunningHub::start(&dir.0, real_verifier());
    let clock = ManualClock::new(at("2026-01-20T12:00:00Z"));
    let mut erlangen = Site::new("erlangen", &clock, &hub.url(), erlangen_window()).await;
    assert!(matches!(erlangen.follow().await, Round::Synced(_)));
    let site = erlangen.settle().await;
    assert_eq!(
        condition(&site, conditions::RELEASE_FEED).1,
        reasons::FEED_SYNCED
    );
    let restart = |followed: bool| {
        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
        let ctx = Context::new(
            erlangen.server.client_as("miracolix-operator"),
            Arc::new(trust),
            Arc::new(clock.clone()),
        );
        Arc::new(if followed {
            ctx.with_feed_followed()
        } else {
            ctx
        })
    };

    erlangen.ctx = restart(true);
    let site = erlangen.settle().await;
    assert_eq!(
        condition(&site, conditions::RELEASE_FEED).1,
        reasons::FEED_SYNCED,
        "kept until the restarted follower's first round"
    );

    erlangen.ctx = restart(false);
    let site = erlangen.settle().await;
    let st = site.status.expect("status");
    assert!(
        conditions::find(&st.conditions, conditions::RELEASE_FEED).is_none(),
        "{:#?}",
        st.conditions
    );
    assert!(conditions::is_true(&st.conditions, conditions::READY));
    assert_eq!(st.current_release.as_deref(), Some("miracolix-2026.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_a_feed_changes_nothing() {
    let (_dir, hub, clock, site, _) = two_sites("invalid", real_verifier()).await;
    assert!(matches!(site.follow().await, Round::Synced(_)));
    // The same hub's release matrix is JSON, but not a feed.
    let wrong = format!("http://{}/api/v1/matrix", hub.addr);
    let confused = Follower::new(
        site.ctx.clone(),
        &FeedConfig {
            url: wrong,
            interval: Duration::from_secs(60),
            ca: None,
        },
    )
    .expect("follower");
    let round = confused.step().await;
    assert!(matches!(round, Round::FetchFailed(_)), "{round:?}");
    assert_eq!(
        site.metric("miracolix_feed_fetch_errors_total{error=\"invalid\"}"),
        1.0
    );
    let s = site.settle().await;
    assert_eq!(
        condition(&s, conditions::RELEASE_FEED).1,
        reasons::FEED_INVALID
    );
    assert_eq!(site.release_names().await, ["miracolix-2026.1"]);
    let _ = clock;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_created_by_hand_under_a_feed_name_is_not_overwritten() {
    let (dir, hub, _clock, erlangen, marburg) = two_sites("conflict", real_verifier()).await;
    // Erlangen's admin made their own 2026.2 (validly signed, other content) before the
    // consortium published one under that name.
    let own = signed_release("2026.2", 'c');
    erlangen
        .server
        .create(own.clone())
        .expect("hand-made release");
    dir.publish("20-miracolix-2026.2.json", &signed_release("2026.2", 'b'));
    hub.reload();

    assert!(matches!(erlangen.follow().await, Round::Synced(_)));
    let kept = erlangen
        .release("miracolix-2026.2")
        .await
        .expect("still there");
    assert!(
        kept.labels().get(FEED_LABEL).is_none(),
        "not taken over by the feed"
    );
    assert_eq!(
        kept.spec.components["flare"].digest,
        own["spec"]["components"]["flare"]["digest"]
            .as_str()
            .expect("digest"),
        "its content is the hand-made one"
    );
    assert_eq!(
        erlangen.metric("miracolix_feed_entries_total{outcome=\"conflict\"}"),
        1.0
    );
    let warnings = erlangen.warnings().await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, reasons::FEED_ENTRY_CONFLICT);
    assert!(
        warnings[0].1.contains("miracolix-2026.2"),
        "{}",
        warnings[0].1
    );
    let site = erlangen.settle().await;
    assert_eq!(
        condition(&site, conditions::RELEASE_FEED).1,
        reasons::FEED_ENTRIES_SKIPPED
    );
    let managers: Vec<String> = kept
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "miracolix-operator"),
        "{managers:?}"
    );

    // Marburg has no such release: it gets the feed's.
    assert!(matches!(marburg.follow().await, Round::Synced(_)));
    let theirs = marburg.release("miracolix-2026.2").await.expect("applied");
    assert_eq!(
        theirs.spec.components["flare"].digest,
        format!("sha256:{}", "b".repeat(64))
    );
    // Marburg's admin takes a field of the feed's object (forced apply of their own): the
    // follower's apply is not forced, so the field stays theirs and the entry is a conflict.
    Api::<ComponentRelease>::all(marburg.client.clone())
        .patch(
            "miracolix-2026.2",
            &kube::api::PatchParams::apply("marburg-admin").force(),
            &kube::api::Patch::Apply(json!({
                "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
                "metadata": {"name": "miracolix-2026.2", "labels": {FEED_LABEL: "hand-edited"}},
            })),
        )
        .await
        .expect("the admin's apply");
    assert!(matches!(marburg.follow().await, Round::Synced(_)));
    let edited = marburg.release("miracolix-2026.2").await.expect("there");
    assert_eq!(edited.labels()[FEED_LABEL], "hand-edited");
    let warnings = marburg.warnings().await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, reasons::FEED_ENTRY_CONFLICT);
    assert!(
        warnings[0].1.contains("set by someone else") && warnings[0].1.contains("marburg-admin"),
        "{}",
        warnings[0].1
    );

    // Once Erlangen's admin deletes theirs, the next round applies the feed's.
    Api::<ComponentRelease>::all(erlangen.client.clone())
        .delete("miracolix-2026.2", &Default::default())
        .await
        .expect("deleted");
    assert!(matches!(erlangen.follow().await, Round::Synced(_)));
    let now = erlangen.release("miracolix-2026.2").await.expect("applied");
    assert!(now.labels().contains_key(FEED_LABEL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_loop_fetches_on_its_interval() {
    let (dir, hub, _clock, site, _) = two_sites("loop", real_verifier()).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let follower = site.follower.clone();
    let task = tokio::spawn(async move {
        follower
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    let appears = |name: &'static str| {
        let site = &site;
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                while site.release(name).await.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{name} not applied by the loop within 20s"));
        }
    };
    appears("miracolix-2026.1").await;
    dir.publish("20-miracolix-2026.2.json", &signed_release("2026.2", 'b'));
    hub.reload();
    appears("miracolix-2026.2").await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stops on shutdown")
        .expect("loop task");
}

/// HTTPS in front of `hub` (a TLS terminator on loopback with a certificate made now for
/// 127.0.0.1); returns its address and the certificate as PEM, the CA a site would be given.
async fn tls_in_front_of(hub: SocketAddr) -> (SocketAddr, String) {
    use base64::Engine;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(hub).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.cert.der());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    (addr, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_feed_is_trusted_only_with_its_ca() {
    let (_dir, hub, _clock, site, _) = two_sites("https", real_verifier()).await;
    let (tls, pem) = tls_in_front_of(hub.addr).await;
    let url = format!(
        "https://127.0.0.1:{}{}",
        tls.port(),
        miracolix_hub::feed::PATH
    );
    let ca = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("feed-https-ca.pem");
    std::fs::write(&ca, pem).expect("CA file");

    // Without --feed-ca the system's CA bundle does not know the hub's certificate.
    let untrusting = Follower::new(
        site.ctx.clone(),
        &FeedConfig {
            url: url.clone(),
            interval: Duration::from_secs(60),
            ca: None,
        },
    );
    match untrusting {
        Ok(untrusting) => match untrusting.step().await {
            Round::FetchFailed(e) => {
                assert!(e.to_string().to_lowercase().contains("certificate"), "{e}")
            }
            other => panic!("an unknown certificate must fail the fetch: {other:?}"),
        },
        // A machine without a CA bundle: the follower refuses to start instead.
        Err(e) => assert!(e.to_string().contains("TLS"), "{e}"),
    }
    assert!(site.release_names().await.is_empty());

    let trusting = Follower::new(
        site.ctx.clone(),
        &FeedConfig {
            url,
            interval: Duration::from_secs(60),
            ca: Some(ca),
        },
    )
    .expect("follower with --feed-ca");
    let round = trusting.step().await;
    assert!(matches!(round, Round::Synced(_)), "{round:?}");
    assert_eq!(site.release_names().await, ["miracolix-2026.1"]);
}
