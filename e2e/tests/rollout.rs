//! Release rollout across sites against the test API server, with a manual clock: waves and
//! maintenance windows gate upgrades, a release whose image never becomes ready is rolled back,
//! a tampered release changes nothing. Then the attacks of docs/security.md, each written as the
//! attack: an old release recreated under the running name, new digests re-signed under it, a
//! forged status, a tenant halting other namespaces, a revoked release, a removed signing key.
//!
//! Reconciles are driven directly (no background controller), so every step is deterministic.

mod repo;

use repo::{docs, root};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{
    ComponentRelease, DizSite, ReleaseFormat, ReleaseRevocation, ReleaseRevocationSpec, conditions,
};
use miracolix_operator::clock::ManualClock;
use miracolix_operator::controller::certification::Certifier;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::plan::fingerprint;
use miracolix_operator::release::{
    SigningKey, TrustDir, TrustStore, TrustedKey, sign_release, sign_revocation,
};
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

fn demo_key() -> SigningKey {
    let pem = std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
    SigningKey::from_pem(&pem, "demo").expect("demo key")
}

/// A signed ComponentRelease on `stable` from the example: `version`, `waves`, FLARE's digest
/// made of `flare` (unique per release), no upgrade path.
fn signed_release(
    name: &str,
    version: &str,
    waves: Value,
    flare: char,
    key: &SigningKey,
    key_id: &str,
) -> Value {
    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"] = json!({"name": name});
    rel["spec"]["version"] = json!(version);
    rel["spec"]["components"]["flare"]["digest"] =
        json!(format!("sha256:{}", flare.to_string().repeat(64)));
    rel["spec"]["rollout"] = json!({"progressDeadline": "30m", "waves": waves});
    if let Some(spec) = rel["spec"].as_object_mut() {
        spec.remove("compatibility");
    }
    let mut typed: ComponentRelease = serde_json::from_value(rel).expect("release");
    typed.spec.signature = Some(sign_release(&typed.spec, key, key_id).expect("signs"));
    let mut v = serde_json::to_value(&typed).expect("json");
    if let Some(m) = v["metadata"].as_object_mut() {
        m.retain(|k, _| k == "name");
    }
    v.as_object_mut().expect("obj").remove("status");
    v
}

/// The fingerprint the operator gives a release document.
fn fingerprint_of(release: &Value) -> String {
    let typed: ComponentRelease = serde_json::from_value(release.clone()).expect("release");
    fingerprint(&typed.spec, ReleaseFormat::V2).expect("canonical")
}

impl World {
    fn new(start: &str) -> Self {
        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
        Self::with_certifier(start, |_| Arc::new(trust))
    }

    /// A world whose operator certifies with what `certifier` builds from the world's clock.
    fn with_certifier(
        start: &str,
        certifier: impl FnOnce(&ManualClock) -> Arc<dyn Certifier>,
    ) -> Self {
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
        let clock = ManualClock::new(at(start));
        let ctx = Arc::new(Context::new(
            server.client_as("miracolix-operator"),
            certifier(&clock),
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
        let name = format!("miracolix-{version}");
        let mut v = signed_release(
            &name,
            version,
            waves,
            flare_digest_byte,
            &demo_key(),
            KEY_ID,
        );
        if tamper {
            v["spec"]["components"]["blaze"]["digest"] =
                json!(format!("sha256:{}", "d".repeat(64)));
        }
        self.server.create(v).expect("release created");
    }

    async fn delete_release(&self, name: &str) {
        Api::<ComponentRelease>::all(self.client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .expect("release deleted");
    }

    /// Event reasons published about the site in `ns`.
    async fn event_reasons(&self, ns: &str) -> Vec<(String, String)> {
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    async fn workload_versions(&self, ns: &str) -> Vec<String> {
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .iter()
            .map(|d| d.resource_version().unwrap_or_default())
            .collect()
    }

    async fn add_site(&self, name: &str, labels: Value, window: Value) {
        self.add_site_with(name, labels, window, json!({"channel": "stable"}))
            .await;
    }

    async fn add_site_with(&self, name: &str, labels: Value, window: Value, release: Value) {
        self.server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .expect("namespace");
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": name, "namespace": name, "labels": labels},
            "spec": {
                "siteId": name,
                "release": release,
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
            // The caches must hold what the test just changed before a reconcile reads them.
            self.ctx
                .cache()
                .wait_consistent(&self.client)
                .await
                .expect("caches catch up");
            let site = self.site(name).await;
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

    // Marburg's wave and window are open. Erlangen's failure does not halt it: Erlangen is
    // another namespace, and a tenant must not be able to stop a release for everyone (a
    // release manager does that with a signed revocation). Marburg's own health gate protects
    // it: it upgrades, is not ready within the deadline, and rolls back by itself.
    w.clock.set(at("2026-02-11T21:00:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "Upgrading", "{:?}", up_to_date(&m));
    w.clock.advance(SignedDuration::from_mins(31));
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));
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

fn status_of(site: &DizSite) -> miracolix_operator::api::DizSiteStatus {
    site.status.clone().expect("status")
}

/// Attack (issue 11, HIGH): delete the running release and recreate its name with the validly
/// signed content of an older release. A release is its content: the site does not move back,
/// by channel or by pin, and no image changes. Editing the running release in place is refused
/// by the API server (CEL transition rule).
#[tokio::test]
async fn recreating_an_old_signed_release_under_the_running_name_changes_no_image() {
    let w = World::new("2026-01-20T12:00:00Z");
    let all = json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]);
    w.publish("2026.1", all.clone(), 'a', false);
    w.add_site("marburg", json!({}), json!(null)).await;
    w.settle("marburg").await;
    w.publish("2026.2", all.clone(), 'b', false);
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));
    let running_fp = status_of(&m)
        .current_release_fingerprint
        .expect("fingerprint");
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));

    // In place: refused at the door.
    let edit = Api::<ComponentRelease>::all(w.client.clone())
        .patch(
            "miracolix-2026.2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"components": {"flare": {
                "digest": format!("sha256:{}", "a".repeat(64))}}}})),
        )
        .await;
    let err = edit.expect_err("the signed content is immutable");
    assert!(err.to_string().contains("immutable"), "{err}");

    // Delete and recreate: 2026.1's signed content under the name miracolix-2026.2.
    let old = signed_release(
        "miracolix-2026.2",
        "2026.1",
        all.clone(),
        'a',
        &demo_key(),
        KEY_ID,
    );
    w.delete_release("miracolix-2026.2").await;
    w.server.create(old).expect("recreated");
    let before = w.workload_versions("marburg").await;
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "WouldDowngrade", "{:?}", up_to_date(&m));
    assert_eq!(
        status_of(&m).current_release_fingerprint.as_deref(),
        Some(running_fp.as_str())
    );
    assert_eq!(
        w.workload_versions("marburg").await,
        before,
        "no workload touched"
    );
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));

    // Pinning the recreated name does not help either.
    Api::<DizSite>::namespaced(w.client.clone(), "marburg")
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"release": {"channel": null, "name": "miracolix-2026.2"}}}),
            ),
        )
        .await
        .expect("pin");
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "WouldDowngrade", "{:?}", up_to_date(&m));
    assert_eq!(
        w.workload_versions("marburg").await,
        before,
        "no workload touched"
    );
    // The condition names the one way back: an annotation with the exact fingerprint.
    assert!(
        up_to_date(&m)
            .2
            .contains("diz.miracum.org/allow-downgrade-to=")
    );
}

/// Attack (issue 11, HIGH): new digests re-signed under the running name used to redeploy every
/// site at once. Now it is a new release (another fingerprint) and goes through the waves, the
/// maintenance window and the health gate; the rollback restores the previous content although
/// its ComponentRelease object no longer exists (the rollout record keeps the signed copy).
#[tokio::test]
async fn new_digests_re_signed_under_the_running_name_go_through_waves_windows_and_the_health_gate()
{
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish("2026.2", json!([]), 'b', false);
    w.add_site(
        "marburg",
        json!({}),
        json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).0, "True");
    let old_fp = status_of(&m)
        .current_release_fingerprint
        .expect("fingerprint");

    w.server.add_failing_image("c".repeat(64));
    let resigned = signed_release(
        "miracolix-2026.2",
        "2026.2",
        json!([{"name": "pilot", "sites": ["erlangen"], "notBefore": "2026-02-01T00:00:00Z"},
               {"name": "rest", "sites": ["mainz"], "notBefore": "2026-02-08T00:00:00Z"}]),
        'c',
        &demo_key(),
        KEY_ID,
    );
    let new_fp = fingerprint_of(&resigned);
    assert_ne!(new_fp, old_fp);
    w.delete_release("miracolix-2026.2").await;
    w.server.create(resigned).expect("re-signed");

    // Marburg is in no wave, so it goes with the last one.
    w.clock.set(at("2026-02-02T21:00:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "WaitingForWave", "{:?}", up_to_date(&m));
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));
    w.clock.set(at("2026-02-08T12:00:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "WaitingForMaintenanceWindow");
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));
    w.clock.set(at("2026-02-08T20:30:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "Upgrading", "{:?}", up_to_date(&m));
    assert_eq!(
        status_of(&m).target_release_fingerprint.as_deref(),
        Some(new_fp.as_str())
    );
    assert!(w.flare_image("marburg").await.contains(&"c".repeat(64)));
    // The health gate: not ready within 30m, back to the old content.
    w.clock.advance(SignedDuration::from_mins(31));
    let m = w.settle("marburg").await;
    let st = status_of(&m);
    assert_eq!(
        st.current_release_fingerprint.as_deref(),
        Some(old_fp.as_str())
    );
    assert!(st.failed_releases.iter().any(|f| f.fingerprint == new_fp));
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).1, "Held");
}

/// Attack (issue 11, LOW): someone with `dizsites/status` rights claims the site runs an older
/// release and that an upgrade to an uncertified one is in flight. Nothing is deployed from the
/// status; the site stays healthy, the status is restored and an Event says so.
#[tokio::test]
async fn a_forged_status_deploys_nothing_and_the_site_recovers_with_an_event() {
    let w = World::new("2026-01-20T12:00:00Z");
    let all = json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]);
    w.publish("2026.1", all.clone(), 'a', false);
    w.add_site("marburg", json!({}), json!(null)).await;
    w.settle("marburg").await;
    w.publish("2026.2", all.clone(), 'b', false);
    w.publish("2026.9", all, 'e', true);
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));
    let before = w.workload_versions("marburg").await;

    Api::<DizSite>::namespaced(w.client.clone(), "marburg")
        .patch_status(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "currentRelease": "miracolix-2026.1",
                "currentReleaseFingerprint": null,
                "targetRelease": "miracolix-2026.9",
                "previousRelease": "miracolix-2026.1",
                "upgradeStartedAt": "2026-01-01T00:00:00Z",
            }})),
        )
        .await
        .expect("forged status");
    let m = w.settle("marburg").await;
    let st = status_of(&m);
    assert_eq!(st.current_release.as_deref(), Some("miracolix-2026.2"));
    assert_eq!(st.target_release, None);
    assert_eq!(up_to_date(&m).0, "True", "{:?}", up_to_date(&m));
    assert_eq!(
        w.workload_versions("marburg").await,
        before,
        "no workload touched"
    );
    assert!(w.flare_image("marburg").await.contains(&"b".repeat(64)));
    let events = w.event_reasons("marburg").await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "StatusCorrected" && note.contains("miracolix-2026.9")),
        "{events:?}"
    );
}

/// Attack (issue 11, LOW): a tenant whose site fails (or whose status says so) must not halt a
/// release for the sites of other namespaces.
#[tokio::test]
async fn a_site_cannot_halt_a_release_for_other_namespaces() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish("2026.1", json!([]), 'a', false);
    w.add_site("tenant", json!({}), json!(null)).await;
    w.add_site("marburg", json!({}), json!(null)).await;
    w.settle("tenant").await;
    w.settle("marburg").await;
    let release = signed_release(
        "miracolix-2026.2",
        "2026.2",
        json!([]),
        'b',
        &demo_key(),
        KEY_ID,
    );
    let fp = fingerprint_of(&release);
    w.server.create(release).expect("release");
    Api::<DizSite>::namespaced(w.client.clone(), "tenant")
        .patch_status(
            "tenant",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failedReleases": [{
                "name": "miracolix-2026.2", "fingerprint": fp,
                "reason": "forged", "at": "2026-01-20T00:00:00Z"}]}})),
        )
        .await
        .expect("forged failure");
    let m = w.settle("marburg").await;
    assert_eq!(
        current(&m).as_deref(),
        Some("miracolix-2026.2"),
        "{:?}",
        up_to_date(&m)
    );
    // The tenant only holds itself back.
    let t = w.settle("tenant").await;
    assert_eq!(up_to_date(&t).1, "Held", "{:?}", up_to_date(&t));
}

fn revocation(name: &str, fingerprints: Vec<String>, immediate: bool, signed: bool) -> Value {
    let mut spec = ReleaseRevocationSpec {
        fingerprints,
        reason: "CVE-2026-0001 in flare".into(),
        immediate,
        signature: None,
        signatures: Vec::new(),
    };
    if signed {
        spec.signature = Some(sign_revocation(&spec, &demo_key(), KEY_ID).expect("signs"));
    }
    let mut v = serde_json::to_value(ReleaseRevocation::new(name, spec)).expect("json");
    if let Some(m) = v["metadata"].as_object_mut() {
        m.retain(|k, _| k == "name");
    }
    v
}

/// A signed revocation is honoured: the revoked release is not re-applied, the site leaves it
/// for the newest non-revoked release (even a lower version) at its next window, and a revoked
/// release is never deployed. An unsigned revocation changes nothing.
#[tokio::test]
async fn a_revoked_release_is_left_at_the_next_window_and_never_deployed() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish("2026.1", json!([]), 'a', false);
    let bad = signed_release(
        "miracolix-2026.2",
        "2026.2",
        json!([]),
        'b',
        &demo_key(),
        KEY_ID,
    );
    let bad_fp = fingerprint_of(&bad);
    w.server.create(bad).expect("release");
    w.add_site(
        "marburg",
        json!({}),
        json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.2"));

    // Anyone may create the object; unsigned, it is not honoured.
    w.server
        .create(revocation("forged", vec![bad_fp.clone()], true, false))
        .expect("created");
    let m = w.settle("marburg").await;
    assert_eq!(up_to_date(&m).0, "True", "{:?}", up_to_date(&m));

    w.server
        .create(revocation(
            "revoke-2026.2",
            vec![bad_fp.clone()],
            false,
            true,
        ))
        .expect("created");
    let before = w.workload_versions("marburg").await;
    let m = w.settle("marburg").await;
    assert_eq!(
        up_to_date(&m).1,
        "WaitingForMaintenanceWindow",
        "{:?}",
        up_to_date(&m)
    );
    assert_eq!(
        w.workload_versions("marburg").await,
        before,
        "revoked content is not re-applied"
    );
    let certified = conditions::find(&status_of(&m).conditions, conditions::RELEASE_CERTIFIED)
        .cloned()
        .expect("ReleaseCertified");
    assert_eq!(
        (certified.status.as_str(), certified.reason.as_str()),
        (
            "False",
            miracolix_operator::api::reasons::RELEASE_NOT_USABLE
        )
    );
    w.clock.set(at("2026-01-20T20:30:00Z"));
    let m = w.settle("marburg").await;
    assert_eq!(
        current(&m).as_deref(),
        Some("miracolix-2026.1"),
        "{:?}",
        up_to_date(&m)
    );
    assert!(w.flare_image("marburg").await.contains(&"a".repeat(64)));
    let events = w.event_reasons("marburg").await;
    assert!(
        events.iter().any(|(r, _)| r == "LeavingRevokedRelease"),
        "{events:?}"
    );

    // A new site is never installed with it either.
    w.add_site_with(
        "giessen",
        json!({}),
        json!(null),
        json!({"name": "miracolix-2026.2"}),
    )
    .await;
    let g = w.settle("giessen").await;
    assert_eq!(
        current(&g).as_deref(),
        Some("miracolix-2026.1"),
        "{:?}",
        up_to_date(&g)
    );
}

/// Attack (issue 11, LOW): a signing key leaks and is removed from the trusted-keys directory.
/// The running operator refuses the next release signed with it, without a restart; the injected
/// clock stands in for the 30 s reload interval.
#[tokio::test]
async fn a_key_removed_from_the_trusted_keys_refuses_the_next_release_without_restart() {
    // A second, uncompromised key signs the release the sites run.
    const GOOD_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIESQ+jSHLQXnqH6KrgOxEv5TQxXZvti95bKLe29ifDBS\n\
        -----END PRIVATE KEY-----\n";
    let good = SigningKey::from_pem(GOOD_PKCS8.as_bytes(), "good").expect("key");
    let dir = std::env::temp_dir().join(format!("miracolix-e2e-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(
        root().join("examples/trusted-keys/miracolix-demo-2026.pem"),
        dir.join("miracolix-demo-2026.pem"),
    )
    .expect("demo key");
    let good_pub: TrustedKey = good.public_key("consortium-b").expect("public");
    std::fs::write(dir.join("consortium-b.pem"), good_pub.to_pem()).expect("write");
    let trust_dir = dir.clone();
    let w = World::with_certifier("2026-01-20T12:00:00Z", move |clock| {
        Arc::new(TrustDir::open(&trust_dir, Arc::new(clock.clone())).expect("opens"))
    });
    w.server
        .create(signed_release(
            "miracolix-2026.1",
            "2026.1",
            json!([]),
            'a',
            &good,
            "consortium-b",
        ))
        .expect("release");
    w.add_site("marburg", json!({}), json!(null)).await;
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));

    // The demo key leaks: it is removed from the directory (the mounted Secret).
    std::fs::remove_file(dir.join("miracolix-demo-2026.pem")).expect("removed");
    w.clock.advance(SignedDuration::from_secs(30));
    w.publish("2026.2", json!([]), 'b', false);
    let before = w.workload_versions("marburg").await;
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));
    assert_eq!(
        up_to_date(&m).0,
        "True",
        "the newest certified release is still 2026.1"
    );
    assert_eq!(w.workload_versions("marburg").await, before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Attack (issue 11, MEDIUM): a second, differently built "2026.2" appears on the channel (a
/// leaked key, or a mistake). Which one runs must not depend on list order: both are refused
/// with a condition that names them, and nothing changes.
#[tokio::test]
async fn two_certified_releases_with_the_same_version_and_different_content_are_both_refused() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish("2026.1", json!([]), 'a', false);
    w.add_site("marburg", json!({}), json!(null)).await;
    w.settle("marburg").await;
    w.publish("2026.2", json!([]), 'b', false);
    w.server
        .create(signed_release(
            "shadow-2026.2",
            "2026.2",
            json!([]),
            'c',
            &demo_key(),
            KEY_ID,
        ))
        .expect("second 2026.2");
    let before = w.workload_versions("marburg").await;
    let m = w.settle("marburg").await;
    assert_eq!(current(&m).as_deref(), Some("miracolix-2026.1"));
    let (status, reason, message) = up_to_date(&m);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ConflictingReleases")
    );
    assert!(
        message.contains("shadow-2026.2") && message.contains("miracolix-2026.2"),
        "{message}"
    );
    assert_eq!(w.workload_versions("marburg").await, before);
}

/// The rollout record is the operator's: one edited into something it cannot read stalls the
/// site without applying anything, and the condition says how to recover.
#[tokio::test]
async fn an_edited_rollout_record_stalls_the_site_and_applies_nothing() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.publish("2026.1", json!([]), 'a', false);
    w.add_site("marburg", json!({}), json!(null)).await;
    w.settle("marburg").await;
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(w.client.clone(), "marburg")
        .patch(
            "marburg-rollout",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"fingerprint": "latest"}})),
        )
        .await
        .expect("record edited");
    let before = w.workload_versions("marburg").await;
    let m = w.settle("marburg").await;
    let stalled = conditions::find(&status_of(&m).conditions, conditions::STALLED)
        .cloned()
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        (
            "True",
            miracolix_operator::api::reasons::ROLLOUT_RECORD_INVALID
        )
    );
    assert!(stalled.message.contains("delete it"), "{}", stalled.message);
    assert_eq!(w.workload_versions("marburg").await, before);
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

/// kstatus: a site whose image never becomes ready is Progressing (Reconciling) with the failing
/// component named, and Stalled once that has lasted longer than the progress deadline, so
/// Argo CD and Flux stop waiting for it.
#[tokio::test]
async fn a_never_ready_image_escalates_to_stalled_past_the_progress_deadline() {
    let w = World::new("2026-01-20T12:00:00Z");
    w.server.add_failing_image("c".repeat(64));
    w.publish(
        "2026.1",
        json!([{"name": "all", "siteSelector": {"matchLabels": {}}}]),
        'c',
        false,
    );
    w.add_site(
        "marburg",
        json!({}),
        json!({"schedule": "0 20 * * *", "duration": "3h", "timeZone": "UTC"}),
    )
    .await;
    let cond = |site: &DizSite, t: &str| {
        conditions::find(&site.status.as_ref().expect("status").conditions, t)
            .cloned()
            .unwrap_or_else(|| panic!("{t}"))
    };
    let m = w.settle("marburg").await;
    let ready = cond(&m, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ComponentsFailing")
    );
    assert!(ready.message.contains("flare"), "{}", ready.message);
    assert_eq!(cond(&m, conditions::STALLED).status, "False");
    assert_eq!(cond(&m, conditions::RECONCILING).status, "True");

    w.clock.advance(SignedDuration::from_mins(31));
    let m = w.settle("marburg").await;
    let stalled = cond(&m, conditions::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ComponentsFailing")
    );
    assert!(stalled.message.contains("flare"), "{}", stalled.message);
    assert_eq!(cond(&m, conditions::RECONCILING).status, "False");
}
