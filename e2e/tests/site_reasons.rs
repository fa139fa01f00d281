//! The reasons a DizSite reports, provoked one by one against the test API server: its life from
//! install through upgrade, rollback and deletion, requests the API server refuses (as RBAC or a
//! webhook would), and releases a site cannot run. Each reason asserted here is one
//! `docs/conditions.md` documents (`operator/tests/condition_reasons.rs` checks that every
//! documented reason is asserted somewhere).
//!
//! Reconciles are driven directly with a manual clock, as in `rollout.rs`, so every step is
//! deterministic.

mod repo;

use repo::{docs, root};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::SignedDuration;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, FaultCode, Faults, TestApiServer, WorkloadTiming};
use miracolix_operator::api::reasons;
use miracolix_operator::api::{ComponentRelease, DizSite, conditions};
use miracolix_operator::clock::ManualClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::{SigningKey, TrustStore, sign_release};
use serde_json::{Value, json};

const KEY_ID: &str = "miracolix-demo-2026";
const NS: &str = "diz-giessen";
const SITE: &str = "giessen";

struct World {
    server: TestApiServer,
    client: Client,
    clock: ManualClock,
    ctx: Arc<Context>,
}

impl World {
    fn new() -> Self {
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
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .expect("namespace");
        for doc in docs("examples/10-release-miracolix-2026.1.yaml") {
            server.create(doc).expect("example release");
        }
        let clock = ManualClock::new("2026-03-02T10:00:00Z".parse().expect("time"));
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

    /// Publishes release `version` on `stable`, signed with the demo key (no waves). FLARE's
    /// digest is made of `flare_digest_byte`, so a failing image can be told apart.
    fn publish(&self, version: &str, flare_digest_byte: char) {
        let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
        rel["metadata"] = json!({"name": format!("miracolix-{version}")});
        rel["spec"]["version"] = json!(version);
        rel["spec"]["components"]["flare"]["digest"] = json!(format!(
            "sha256:{}",
            flare_digest_byte.to_string().repeat(64)
        ));
        rel["spec"]["rollout"] = json!({"progressDeadline": "30m"});
        // The example's signed upgrade path starts at 2025.2; these releases follow 2026.1.
        if let Some(spec) = rel["spec"].as_object_mut() {
            spec.remove("compatibility");
        }
        let mut typed: ComponentRelease = serde_json::from_value(rel).expect("release");
        let pem =
            std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
        let key = SigningKey::from_pem(&pem, "demo").expect("demo key");
        typed.spec.signature = Some(sign_release(&typed.spec, &key, KEY_ID).expect("signs"));
        let mut v = serde_json::to_value(&typed).expect("json");
        if let Some(m) = v["metadata"].as_object_mut() {
            m.retain(|k, _| k == "name");
        }
        v.as_object_mut().expect("obj").remove("status");
        self.server.create(v).expect("release created");
    }

    fn sites(&self) -> Api<DizSite> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn add_site(&self, release: Value) {
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": SITE, "namespace": NS},
            "spec": {
                "siteId": SITE,
                "release": release,
                "components": {"blaze": {"resources": "small"}, "flare": {"resources": "small"}},
            },
        }))
        .expect("site");
        self.sites()
            .create(&PostParams::default(), &site)
            .await
            .expect("site created");
    }

    async fn site(&self) -> DizSite {
        self.sites().get(SITE).await.expect("site")
    }

    async fn patch_spec(&self, spec: Value) {
        self.sites()
            .patch(
                SITE,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("spec patched");
    }

    /// One reconcile of the current object, as the controller runs it (with its metrics).
    async fn reconcile(&self) -> Result<(), controller::dizsite::Error> {
        // The caches must hold what the test just changed before a reconcile reads them.
        self.ctx
            .cache()
            .wait_consistent(&self.client)
            .await
            .expect("caches catch up");
        let site = Arc::new(self.site().await);
        tokio::time::timeout(
            Duration::from_secs(10),
            controller::reconcile_dizsite(site, self.ctx.clone()),
        )
        .await
        .expect("reconcile finishes")
        .map(|_| ())
    }

    /// Reconciles until the site stops changing (bounded), like the controller on the events
    /// its own writes cause.
    async fn settle(&self) -> DizSite {
        let mut last = String::new();
        for _ in 0..8 {
            let site = self.site().await;
            let rv = site.resource_version().unwrap_or_default();
            if rv == last {
                return site;
            }
            last = rv;
            self.reconcile().await.expect("reconcile succeeds");
        }
        panic!("the site did not settle after 8 reconciles");
    }

    /// The reasons of the Events published about the site so far, with their type.
    async fn events(&self) -> Vec<(String, String)> {
        Api::<Event>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.type_.unwrap_or_default()))
            .collect()
    }

    fn error_metric(&self, reason: &str) -> bool {
        self.ctx.metrics.render().contains(&format!(
            "miracolix_reconcile_errors_total{{kind=\"DizSite\",reason=\"{reason}\"}}"
        ))
    }

    /// Deletes the site and runs its cleanup.
    async fn delete_site(&self) {
        self.sites()
            .delete(SITE, &DeleteParams::default())
            .await
            .expect("delete");
        self.reconcile().await.expect("cleanup succeeds");
        assert!(
            self.sites().get_opt(SITE).await.expect("get").is_none(),
            "the finalizer is gone and the site with it"
        );
    }
}

fn condition(site: &DizSite, type_: &str) -> Condition {
    site.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", site.status))
}

fn has_event(events: &[(String, String)], reason: &str, type_: &str) -> bool {
    events.iter().any(|(r, t)| r == reason && t == type_)
}

/// Install, upgrade, a failed upgrade and its rollback, and deletion with `Retain`.
#[tokio::test]
async fn a_sites_life_is_told_in_documented_reasons() {
    let w = World::new();
    w.add_site(json!({"name": "miracolix-2026.1"})).await;
    let site = w.settle().await;
    let ready = condition(&site, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", reasons::READY_REASON)
    );
    assert_eq!(
        condition(&site, conditions::RELEASE_UP_TO_DATE).reason,
        reasons::UP_TO_DATE
    );
    assert_eq!(
        condition(&site, conditions::RELEASE_CERTIFIED).reason,
        reasons::VERIFIED
    );
    let events = w.events().await;
    assert!(has_event(&events, reasons::APPLIED, "Normal"), "{events:?}");
    assert!(
        has_event(&events, reasons::UPGRADED, "Normal"),
        "{events:?}"
    );

    // An upgrade to a good release: Upgrading, then Upgraded.
    w.publish("2026.2", 'b');
    w.patch_spec(json!({"release": {"name": "miracolix-2026.2"}}))
        .await;
    w.reconcile().await.expect("upgrade starts");
    let site = w.site().await;
    let up = condition(&site, conditions::RELEASE_UP_TO_DATE);
    assert_eq!(
        (up.status.as_str(), up.reason.as_str()),
        ("False", reasons::UPGRADING)
    );
    assert!(has_event(&w.events().await, reasons::UPGRADING, "Normal"));
    let site = w.settle().await;
    assert_eq!(
        condition(&site, conditions::RELEASE_UP_TO_DATE).reason,
        reasons::UP_TO_DATE
    );

    // An upgrade whose FLARE image never starts: ComponentsFailing, then RolledBack past the
    // progress deadline, then Held.
    w.server.add_failing_image("c".repeat(64));
    w.publish("2026.3", 'c');
    w.patch_spec(json!({"release": {"name": "miracolix-2026.3"}}))
        .await;
    let site = w.settle().await;
    assert_eq!(
        condition(&site, conditions::READY).reason,
        reasons::COMPONENTS_FAILING
    );
    w.clock.advance(SignedDuration::from_mins(31));
    w.reconcile().await.expect("rollback");
    let site = w.site().await;
    let up = condition(&site, conditions::RELEASE_UP_TO_DATE);
    assert_eq!(
        (up.status.as_str(), up.reason.as_str()),
        ("False", reasons::ROLLED_BACK),
        "{}",
        up.message
    );
    assert!(has_event(
        &w.events().await,
        reasons::ROLLED_BACK,
        "Warning"
    ));
    let site = w.settle().await;
    assert_eq!(
        condition(&site, conditions::RELEASE_UP_TO_DATE).reason,
        reasons::HELD
    );
    assert_eq!(
        site.status.and_then(|s| s.current_release).as_deref(),
        Some("miracolix-2026.2")
    );

    w.delete_site().await;
    assert!(has_event(
        &w.events().await,
        reasons::DATA_RETAINED,
        "Normal"
    ));
}

/// Requests the API server refuses (403, as when RBAC lacks a rule) are reported with the
/// reason of what failed: in the conditions when the operator can still write them, always in
/// the error metric, and retried.
#[tokio::test]
async fn refused_requests_are_reported_with_their_reason() {
    let w = World::new();
    w.add_site(json!({"name": "miracolix-2026.1"})).await;

    // The finalizer cannot be added.
    w.server
        .set_faults(Faults::default().refuse("patch", "dizsites", FaultCode::Forbidden));
    let err = w.reconcile().await.expect_err("refused");
    assert_eq!(err.reason(), reasons::FINALIZER_FAILED, "{err}");
    assert!(w.error_metric(reasons::FINALIZER_FAILED));

    // The workloads cannot be applied.
    w.server
        .set_faults(Faults::default().refuse("patch", "deployments", FaultCode::Forbidden));
    // kube's finalizer helper only adds the finalizer in this reconcile; the next one applies.
    w.reconcile().await.expect("the finalizer is added");
    let err = w.reconcile().await.expect_err("refused");
    assert_eq!(err.reason(), reasons::APPLY_FAILED, "{err}");
    assert!(w.error_metric(reasons::APPLY_FAILED), "not FinalizerFailed");
    let site = w.site().await;
    let ready = condition(&site, conditions::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::APPLY_FAILED)
    );
    assert!(
        ready.message.contains("injected fault: forbidden"),
        "{}",
        ready.message
    );
    assert_eq!(
        condition(&site, conditions::RECONCILING).reason,
        reasons::APPLY_FAILED
    );
    assert!(has_event(
        &w.events().await,
        reasons::APPLY_FAILED,
        "Warning"
    ));

    // A child cannot be read: children are read only when their content changed since the
    // operator last saw it match (here someone edited a Service by hand).
    w.server.clear_faults();
    w.settle().await;
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(w.client.clone(), NS)
        .patch(
            &format!("{SITE}-blaze"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"example.org/edited": "by hand"}}})),
        )
        .await
        .expect("edit the Service");
    w.server
        .set_faults(Faults::default().refuse("get", "services", FaultCode::Forbidden));
    let err = w.reconcile().await.expect_err("refused");
    assert_eq!(err.reason(), reasons::READ_FAILED, "{err}");
    assert_eq!(
        condition(&w.site().await, conditions::READY).reason,
        reasons::READ_FAILED
    );

    // Retried once the API server allows it again.
    w.server.clear_faults();
    let site = w.settle().await;
    assert!(conditions::is_true(
        &site.status.expect("status").conditions,
        conditions::READY
    ));

    // A component that is no longer wanted cannot be removed.
    w.server
        .set_faults(Faults::default().refuse("delete", "deployments", FaultCode::Forbidden));
    w.patch_spec(json!({"components": {"flare": null}})).await;
    let err = w.reconcile().await.expect_err("refused");
    assert_eq!(err.reason(), reasons::DELETE_FAILED, "{err}");
    assert_eq!(
        condition(&w.site().await, conditions::READY).reason,
        reasons::DELETE_FAILED
    );

    // The status cannot be written.
    w.server
        .set_faults(Faults::default().refuse("patch", "dizsites/status", FaultCode::Forbidden));
    let err = w.reconcile().await.expect_err("refused");
    assert_eq!(err.reason(), reasons::STATUS_WRITE_FAILED, "{err}");
    assert!(w.error_metric(reasons::STATUS_WRITE_FAILED));

    // Deleting with deletionPolicy Delete removes the data.
    w.server.clear_faults();
    w.patch_spec(json!({"deletionPolicy": "Delete"})).await;
    w.settle().await;
    w.delete_site().await;
    assert!(has_event(
        &w.events().await,
        reasons::DATA_DELETED,
        "Normal"
    ));
}

/// A release the site cannot run stalls it: none certified on its channel, or the one it pins
/// is not certified (the ComponentRelease's own reason is in the message).
#[tokio::test]
async fn unusable_releases_stall_the_site() {
    let w = World::new();
    w.add_site(json!({"channel": "candidate"})).await;
    let site = w.settle().await;
    let stalled = condition(&site, conditions::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", reasons::NO_CERTIFIED_RELEASE)
    );
    assert_eq!(
        condition(&site, conditions::READY).reason,
        reasons::NO_CERTIFIED_RELEASE
    );

    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"]["name"] = json!("tampered");
    rel["spec"]["version"] = json!("2026.1.1");
    rel["spec"]["components"]["flare"]["digest"] = json!(format!("sha256:{}", "e".repeat(64)));
    w.server.create(rel).expect("tampered release");
    w.patch_spec(json!({"release": {"channel": null, "name": "tampered"}}))
        .await;
    let site = w.settle().await;
    let stalled = condition(&site, conditions::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", reasons::RELEASE_NOT_CERTIFIED)
    );
    let certified = condition(&site, conditions::RELEASE_CERTIFIED);
    assert_eq!(
        (certified.status.as_str(), certified.reason.as_str()),
        ("False", reasons::RELEASE_NOT_CERTIFIED)
    );
    assert!(
        certified.message.contains(reasons::BAD_SIGNATURE),
        "{}",
        certified.message
    );
    assert!(has_event(
        &w.events().await,
        reasons::RELEASE_NOT_CERTIFIED,
        "Warning"
    ));
    // Nothing was deployed for a release that is not certified.
    assert!(
        w.server
            .object("apps", "deployments", NS, &format!("{SITE}-flare"))
            .is_none()
    );
}
