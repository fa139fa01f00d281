//! Release rollout across sites against the test API server, with a manual clock: waves and
//! maintenance windows gate upgrades, a release whose image never becomes ready is rolled back at
//! the first site and goes no further, a tampered release changes nothing.
//!
//! Reconciles are driven directly (no background controller), so every step is deterministic.

mod repo;

use repo::{docs, root};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{ComponentRelease, DizSite, conditions};
use miracolix_operator::clock::ManualClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::{SigningKey, TrustStore, sign_release};
use serde_json::{Value, json};

const KEY_ID: &str = "miracolix-demo-2026";

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

struct World {
    server: TestApiServer,
    client: Client,
    clock: ManualClock,
    ctx: Arc<Context>,
}

impl World {
    fn new(start: &str) -> Self {
        let server = TestApiServer::with_config(Config {
            contracts: miracolix_e2e::kubelet::Contracts::from_json(
                &miracolix_operator::catalog::contract::contracts_json(),
            )
            .expect("the catalogue's contracts parse"),
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            for crd in miracolix_operator::yaml::from_multi_doc::<Value>(&text).expect("yaml") {
                server.create(crd).expect("CRD installs");
            }
        }
        let clock = ManualClock::new(at(start));
        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
        let ctx = Arc::new(Context::new(
            server.client_as("miracolix-operator"),
            Arc::new(trust),
            Arc::new(clock.clone()),
        ));
        let client = server.client_as("e2e-test");
        Self {
            server,
            client,
            clock,
            ctx,
        }
    }

    /// Publishes a release on `stable`, signed with the demo key unless `tamper` is set (then the
    /// content is changed after signing). `flare_digest_byte` makes FLARE's digest unique.
    fn publish(&self, version: &str, waves: Value, flare_digest_byte: char, tamper: bool) {
        let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
        rel["metadata"] = json!({"name": format!("miracolix-{version}")});
        rel["spec"]["version"] = json!(version);
        rel["spec"]["components"]["flare"]["digest"] = json!(format!(
            "sha256:{}",
            flare_digest_byte.to_string().repeat(64)
        ));
        rel["spec"]["rollout"] = json!({"progressDeadline": "30m", "waves": waves});
        let mut typed: ComponentRelease = serde_json::from_value(rel).expect("release");
        let pem =
            std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
        let key = SigningKey::from_pem(&pem, "demo").expect("demo key");
        typed.spec.signature = Some(sign_release(&typed.spec, &key, KEY_ID).expect("signs"));
        if tamper {
            typed
                .spec
                .components
                .get_mut("blaze")
                .expect("blaze")
                .digest = format!("sha256:{}", "d".repeat(64));
        }
        let mut v = serde_json::to_value(&typed).expect("json");
        if let Some(m) = v["metadata"].as_object_mut() {
            m.retain(|k, _| k == "name");
        }
        v.as_object_mut().expect("obj").remove("status");
        self.server.create(v).expect("release created");
    }

    async fn add_site(&self, name: &str, labels: Value, window: Value) {
        self.server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .expect("namespace");
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": name, "namespace": name, "labels": labels},
            "spec": {
                "siteId": name,
                "release": {"channel": "stable"},
                "components": {"blaze": {"resources": "small"}, "flare": {"resources": "small"}},
                "maintenanceWindow": window,
            },
        }))
        .expect("site");
        Api::<DizSite>::namespaced(self.client.clone(), name)
            .create(&PostParams::default(), &site)
            .await
            .expect("site created");
    }

    async fn site(&self, name: &str) -> DizSite {
        Api::<DizSite>::namespaced(self.client.clone(), name)
            .get(name)
            .await
            .expect("site")
    }

    /// Reconciles until nothing changes any more (bounded), like the controller would on the
    /// events its own writes cause.
    async fn settle(&self, name: &str) -> DizSite {
        let mut last = String::new();
        for _ in 0..8 {
            let site = self.site(name).await;
            let rv = site.resource_version().unwrap_or_default();
            if rv == last {
                return site;
            }
            last = rv;
            tokio::time::timeout(
                Duration::from_secs(10),
                controller::dizsite::reconcile(Arc::new(site), self.ctx.clone()),
            )
            .await
            .expect("reconcile finishes")
            .expect("reconcile succeeds");
        }
        panic!("site {name} did not settle after 8 reconciles");
    }

    async fn flare_image(&self, ns: &str) -> String {
        let d = Api::<Deployment>::namespaced(self.client.clone(), ns)
            .get(&format!("{ns}-flare"))
            .await
            .expect("flare deployment");
        d.spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers[0].image.clone())
            .unwrap_or_default()
    }
}

fn up_to_date(site: &DizSite) -> (String, String, String) {
    let st = site.status.as_ref().expect("status");
    let c = conditions::find(&st.conditions, conditions::RELEASE_UP_TO_DATE)
        .expect("ReleaseUpToDate condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn current(site: &DizSite) -> Option<String> {
    site.status.as_ref().and_then(|s| s.current_release.clone())
}

#[tokio::test]
async fn releases_move_through_waves_and_windows_and_a_failing_one_is_rolled_back() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish(
        "2026.1",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'a',
        false,
    );
    // Erlangen: pilot wave by siteId, window 02:00-06:00 Berlin (01:00-05:00 UTC in winter).
    w.add_site(
        "erlangen",
        json!({}),
        json!({"schedule": "0 2 * * *", "duration": "4h", "timeZone": "Europe/Berlin"}),
    )
    .await;
    // Marburg: consortium wave by label, window 20:00-23:00 UTC.
    w.add_site(
        "marburg",
        json!({"diz.miracum.org/rollout": "consortium"}),
        json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    for s in ["erlangen", "marburg"] {
        let site = w.settle(s).await;
        assert_eq!(
            current(&site).as_deref(),
            Some("miracolix-2026.1"),
            "{s}: first install"
        );
        assert!(conditions::is_true(
            &site.status.expect("st").conditions,
            conditions::READY
        ));
    }

    let waves = json!([
        {"name": "pilot", "sites": ["erlangen"], "notBefore": "2026-02-02T00:00:00Z"},
        {"name": "consortium", "siteSelector": {"matchLabels": {"diz.miracum.org/rollout": "consortium"}},
         "notBefore": "2026-02-09T00:00:00Z"},
    ]);
    w.publish("2026.2", waves.clone(), 'b', false);

    // Before the pilot wave: nobody moves.
    w.clock.set(at("2026-02-01T12:00:00Z"));
    let e = w.settle("erlangen").await;
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.1"));
    assert_eq!(up_to_date(&e).1, "WaitingForWave", "{:?}", up_to_date(&e));

    // Pilot wave open, but Erlangen's window is closed.
    w.clock.set(at("2026-02-02T12:00:00Z"));
    let e = w.settle("erlangen").await;
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.1"));
    assert_eq!(
        up_to_date(&e).1,
        "WaitingForMaintenanceWindow",
        "{:?}",
        up_to_date(&e)
    );
    assert!(
        up_to_date(&e).2.contains("2026-02-03T01:00:00"),
        "{:?}",
        up_to_date(&e)
    );

    // Inside the window: Erlangen upgrades; Marburg waits for its wave.
    w.clock.set(at("2026-02-03T01:30:00Z"));
    let e = w.settle("erlangen").await;
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.2"));
    assert_eq!(up_to_date(&e).0, "True");
    assert!(w.flare_image("erlangen").await.contains(&"b".repeat(64)));
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));
    assert_eq!(up_to_date(&m).1, "WaitingForWave");

    // Consortium wave open and Marburg's window open: Marburg upgrades.
    w.clock.set(at("2026-02-09T21:00:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));

    // 2026.3 ships a FLARE image that never becomes ready.
    w.server.add_failing_image("c".repeat(64));
    w.publish(
        "2026.3",
        json!([{"name": "pilot", "sites": ["erlangen"], "notBefore": "2026-02-10T00:00:00Z"},
               {"name": "consortium", "siteSelector": {"matchLabels": {"diz.miracum.org/rollout": "consortium"}},
                "notBefore": "2026-02-10T00:00:00Z"}]),
        'c',
        false,
    );
    w.clock.set(at("2026-02-11T01:30:00Z"));
    let e = w.settle("erlangen").await;
    let st = e.status.clone().expect("status");
    assert_eq!(
        st.target_release.as_deref(),
        Some("miracolix-2026.3"),
        "upgrade started"
    );
    assert_eq!(up_to_date(&e).1, "Upgrading");
    // Past the 30m progress deadline: rolled back to 2026.2, and remembered as failed.
    w.clock.advance(SignedDuration::from_mins(31));
    let e = w.settle("erlangen").await;
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.2"));
    let st = e.status.clone().expect("status");
    assert!(st.target_release.is_none());
    assert!(
        st.failed_releases
            .iter()
            .any(|f| f.name == "miracolix-2026.3")
    );
    assert!(
        w.flare_image("erlangen").await.contains(&"b".repeat(64)),
        "old image back"
    );
    let rolled_back_event = w.server.requests().iter().any(|r| {
        r.resource == "events" && r.is_write() && r.user_agent.contains("miracolix-operator")
    });
    assert!(rolled_back_event, "events were published");
    // It stays rolled back on later reconciles, even inside the window.
    let e = w.settle("erlangen").await;
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.2"));
    assert_eq!(up_to_date(&e).1, "Held");

    // Marburg's wave and window are open, but the release failed at Erlangen: it goes no further.
    w.clock.set(at("2026-02-11T21:00:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));
    assert_eq!(up_to_date(&m).1, "Held", "{:?}", up_to_date(&m));
    assert!(
        up_to_date(&m).2.contains("erlangen"),
        "{:?}",
        up_to_date(&m)
    );
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));

    // The image problem is fixed where the image is built (same digest, now healthy), and the
    // site admin asks for a retry: Erlangen upgrades again, inside its window, the failed entry
    // is dropped from the status (a status write that removes a list entry), and the retry
    // annotation is cleared.
    w.server.clear_failing_images();
    Api::<DizSite>::namespaced(w.client.clone(), "erlangen")
        .patch(
            "erlangen",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
                "diz.miracum.org/retry-release": "miracolix-2026.3"}}})),
        )
        .await
        .expect("retry annotation");
    w.clock.set(at("2026-02-12T01:30:00Z"));
    let e = w.settle("erlangen").await;
    let st = e.status.clone().expect("status");
    assert_eq!(current(&e).as_deref(), Some("miracolix-2026.3"), "{st:?}");
    assert!(
        st.failed_releases
            .iter()
            .all(|f| f.name != "miracolix-2026.3"),
        "{:?}",
        st.failed_releases
    );
    assert!(
        !e.annotations()
            .contains_key("diz.miracum.org/retry-release"),
        "the retry annotation is cleared"
    );
    assert!(w.flare_image("erlangen").await.contains(&"c".repeat(64)));
}

#[tokio::test]
async fn a_tampered_release_changes_nothing() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish(
        "2026.1",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'a',
        false,
    );
    w.add_site(
        "marburg",
        json!({}),
        json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));

    // A newer release on the channel whose content was changed after signing.
    w.publish(
        "2026.9",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'e',
        true,
    );
    w.clock.set(at("2026-02-11T21:00:00Z"));
    let before: Vec<String> = Api::<Deployment>::namespaced(w.client.clone(), "marburg")
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|d| d.resource_version().unwrap_or_default())
        .collect();
    w.server.clear_requests();
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));
    assert_eq!(
        up_to_date(&m).0,
        "True",
        "the newest certified release is still 2026.1"
    );
    let after: Vec<String> = Api::<Deployment>::namespaced(w.client.clone(), "marburg")
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|d| d.resource_version().unwrap_or_default())
        .collect();
    assert_eq!(before, after, "no workload was touched");
    let writes: Vec<_> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.contains("miracolix-operator") && r.is_write())
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert!(writes.is_empty(), "the operator wrote: {writes:?}");
}

/// A window CEL cannot see through (a range that runs backwards) is admitted, and blocks upgrades
/// with the field named in the condition and in a Warning Event instead of letting them happen
/// at any time.
#[tokio::test]
async fn a_window_that_cannot_be_evaluated_blocks_upgrades_and_names_the_field() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish(
        "2026.1",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'a',
        false,
    );
    w.add_site(
        "marburg",
        json!({}),
        json!({"schedule": "5-1 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    let m = w.settle("marburg").await;
    assert_eq!(
        current(&m).as_deref(),
        Some("miracolix-2026.1"),
        "a first install does not wait for the window"
    );
    w.publish(
        "2026.2",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'b',
        false,
    );
    w.clock.set(at("2026-02-11T20:03:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));
    let (status, reason, message) = up_to_date(&m);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidMaintenanceWindow")
    );
    assert!(
        message.contains("spec.maintenanceWindow.schedule: schedule field minute (\"5-1\"): range 5-1 runs backwards"),
        "{message}"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(w.client.clone(), "marburg");
    let events = events.list(&ListParams::default()).await.expect("events");
    assert!(
        events.items.iter().any(|e| {
            e.reason.as_deref() == Some("InvalidMaintenanceWindow")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("spec.maintenanceWindow.schedule"))
        }),
        "a Warning Event names the field: {:?}",
        events
            .items
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
}
