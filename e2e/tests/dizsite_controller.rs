//! The DizSite controller against the test API server, in-process: create → ready, disable,
//! drift, pause, deletion with Retain and Delete, dangling and uncertified releases, no-op resync.

mod repo;

use repo::{docs, root};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{ComponentRelease, DizSite, conditions};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope};
use miracolix_operator::release::trust::TrustStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const OPERATOR: &str = "miracolix-operator";
const NS: &str = "diz-marburg";

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 20s waiting for: {what}"),
    }
}

struct Harness {
    server: TestApiServer,
    client: Client,
    /// The running controller's context (its caches and metrics).
    ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// A server with the CRDs, the demo-signed example release and the namespace; the operator
    /// running in-process with its own client (so its requests can be told apart).
    async fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let server = TestApiServer::with_config(Config {
            contracts: repo::catalogue_contracts(),
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        for crd in std::fs::read_dir(root().join("crds")).expect("crds") {
            let path = crd.expect("entry").path();
            for doc in docs(
                path.strip_prefix(root())
                    .expect("rel")
                    .to_str()
                    .expect("utf8"),
            ) {
                server.create(doc).expect("CRD installs");
            }
        }
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .expect("namespace");
        for doc in docs("examples/10-release-miracolix-2026.1.yaml") {
            server.create(doc).expect("release");
        }
        let client = server.client_as("e2e-test");
        let ctx = context(&server);
        let mut h = Self {
            server,
            client,
            ctx: ctx.clone(),
            stop: None,
            task: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run_dizsite(ctx, Scope::AllNamespaces, async {
            let _ = rx.await;
        }));
        h.stop = Some(tx);
        h.task = Some(task);
        h
    }

    /// A fresh operator's context (new caches), as after a restart.
    fn context(&self) -> Arc<Context> {
        context(&self.server)
    }

    async fn stop_controller(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within("operator shutdown", task)
                .await
                .expect("operator task");
        }
    }

    fn sites(&self) -> Api<DizSite> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create_site(&self, spec: Value) -> DizSite {
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": "marburg", "namespace": NS},
            "spec": spec,
        }))
        .expect("site");
        self.sites()
            .create(&PostParams::default(), &site)
            .await
            .expect("site created")
    }

    async fn wait_condition(&self, type_: &str, status: &str) -> DizSite {
        let (t, s) = (type_.to_string(), status.to_string());
        let cond = await_condition(self.sites(), "marburg", move |o: Option<&DizSite>| {
            o.and_then(|o| o.status.as_ref()).is_some_and(|st| {
                conditions::find(&st.conditions, &t).is_some_and(|c| c.status == s)
                    && st.observed_generation == o.and_then(|o| o.metadata.generation)
            })
        });
        match tokio::time::timeout(Duration::from_secs(60), cond).await {
            Ok(got) => got.expect("watch").expect("site exists"),
            Err(_) => {
                let now = self.sites().get_opt("marburg").await.ok().flatten();
                panic!(
                    "timed out after 60s waiting for DizSite {type_}={status}; the site is now:\n{}",
                    serde_json::to_string_pretty(&now).unwrap_or_default()
                )
            }
        }
    }

    /// The operator's requests other than watches, as `verb resource/subresource name`.
    fn operator_requests(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.user_agent.contains(OPERATOR) && r.verb != "watch")
            .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
            .collect()
    }

    /// Successful DizSite reconciles of the running controller so far.
    fn reconciles(&self) -> u64 {
        self.ctx
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with("miracolix_reconcile_total{kind=\"DizSite\",result=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn operator_writes(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.user_agent.contains(OPERATOR) && r.is_write())
            .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
            .collect()
    }

    async fn stop(mut self) {
        self.stop_controller().await;
    }
}

fn context(server: &TestApiServer) -> Arc<Context> {
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    Arc::new(Context::new(
        server.client_as(OPERATOR),
        Arc::new(trust),
        Arc::new(SystemClock),
    ))
}

fn marburg() -> Value {
    json!({
        "siteId": "marburg",
        "release": {"name": "miracolix-2026.1"},
        "components": {
            "blaze": {"resources": "small"},
            "flare": {"resources": "small"},
        },
    })
}

async fn names<K>(client: &Client) -> Vec<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut v: Vec<String> = Api::<K>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    v.sort();
    v
}

/// Someone else (another field manager, forced) changes FLARE's image: drift the operator
/// must take back.
async fn drift_flare_image(deployments: &Api<Deployment>) {
    deployments
        .patch(
            "marburg-flare",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "spec": {"template": {"spec": {"containers": [{"name": "flare", "image": "evil/flare:latest"}]}}}
            })),
        )
        .await
        .expect("drift");
}

#[tokio::test]
async fn site_becomes_ready_and_a_noop_resync_writes_nothing() {
    let mut h = Harness::start().await;
    h.create_site(marburg()).await;
    let site = h.wait_condition(conditions::READY, "True").await;
    let st = site.status.expect("status");
    assert_eq!(st.current_release.as_deref(), Some("miracolix-2026.1"));
    let blaze = st
        .components
        .iter()
        .find(|c| c.name == "blaze")
        .expect("blaze status");
    assert!(blaze.enabled);
    assert_eq!(blaze.ready_replicas, 1);
    assert!(
        blaze
            .image
            .as_deref()
            .is_some_and(|i| i.contains("@sha256:")),
        "{blaze:?}"
    );
    assert_eq!(names::<StatefulSet>(&h.client).await, vec!["marburg-blaze"]);
    assert!(
        names::<Deployment>(&h.client)
            .await
            .contains(&"marburg-flare".to_string())
    );
    assert!(
        names::<Service>(&h.client)
            .await
            .contains(&"marburg-blaze".to_string())
    );

    // A resync of an unchanged site, reconciled directly so that nothing else runs meanwhile,
    // by a fresh operator (new caches): its first reconcile reads each child once (the caches
    // hold trimmed objects; a child is compared field by field once per content), and writes
    // nothing.
    h.stop_controller().await;
    let ctx = h.context();
    ctx.cache()
        .wait_consistent(&h.client)
        .await
        .expect("the caches catch up with the API server");
    let site = h.sites().get("marburg").await.expect("site");
    h.server.clear_requests();
    controller::dizsite::reconcile(Arc::new(site.clone()), ctx.clone())
        .await
        .expect("first reconcile succeeds");
    assert_eq!(
        renders(&ctx),
        1,
        "a new operator renders the site on its first reconcile"
    );
    let first = h.operator_requests();
    assert!(
        !first.is_empty() && first.iter().all(|r| r.starts_with("get ")),
        "after a restart, children are read once to verify them, never written: {first:?}"
    );
    assert_eq!(
        h.operator_writes(),
        Vec::<String>::new(),
        "a no-op reconcile must not write"
    );

    // Steady state: the next no-op reconcile makes no request at all; it reads the caches.
    h.server.clear_requests();
    let action = controller::dizsite::reconcile(Arc::new(site), ctx.clone())
        .await
        .expect("reconcile succeeds");
    assert_eq!(
        h.operator_requests(),
        Vec::<String>::new(),
        "a no-op reconcile at steady state makes no API request but the watches"
    );
    assert_eq!(
        renders(&ctx),
        1,
        "nothing the render reads changed and the children are as applied: no render"
    );

    // Drift after a skipped render: the next reconcile sees the child's content changed in
    // its cache, renders and takes the field back.
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    drift_flare_image(&deployments).await;
    ctx.cache()
        .wait_consistent(&h.client)
        .await
        .expect("the caches see the drift");
    let site = h.sites().get("marburg").await.expect("site");
    controller::dizsite::reconcile(Arc::new(site), ctx.clone())
        .await
        .expect("reconcile after drift succeeds");
    assert_eq!(renders(&ctx), 2, "drift makes the reconcile render");
    let image = deployments
        .get("marburg-flare")
        .await
        .expect("flare")
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers[0].image.clone())
        .unwrap_or_default();
    assert!(image.contains("@sha256:"), "drift taken back: {image}");
    assert_ne!(
        format!("{action:?}"),
        "",
        "requeues for the periodic resync"
    );
}

/// DizSite reconciles that rendered the site, from the operator's metrics.
fn renders(ctx: &controller::Context) -> u64 {
    ctx.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("miracolix_site_renders_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The server stores quantities canonically (`0.5` → `500m`, `1.5Gi` → `1536Mi`) and fills in
/// defaults the operator never sets; a site whose overrides are written otherwise must still
/// converge to a state where a resync writes nothing.
#[tokio::test]
async fn non_canonical_resource_overrides_still_make_a_noop_resync_write_nothing() {
    let mut h = Harness::start().await;
    h.create_site(json!({
        "siteId": "marburg",
        "release": {"name": "miracolix-2026.1"},
        "components": {
            "blaze": {"resources": "small", "resourceOverrides": {
                "requests": {"cpu": "0.5", "memory": "1.5Gi"},
                "limits": {"cpu": "1.5", "memory": "2048Mi"},
            }},
            "flare": {"resources": "small"},
        },
    }))
    .await;
    h.wait_condition(conditions::READY, "True").await;

    // What the server stores is the canonical form, so the operator's desired object (which
    // says `0.5`) and the live one (`500m`) differ textually.
    let sts: StatefulSet = Api::namespaced(h.client.clone(), NS)
        .get("marburg-blaze")
        .await
        .expect("blaze StatefulSet");
    let resources = sts
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.resources)
        .expect("blaze resources");
    let q = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(q(&resources.requests, "cpu").as_deref(), Some("500m"));
    assert_eq!(q(&resources.requests, "memory").as_deref(), Some("1536Mi"));
    assert_eq!(q(&resources.limits, "cpu").as_deref(), Some("1500m"));
    assert_eq!(q(&resources.limits, "memory").as_deref(), Some("2Gi"));

    h.stop_controller().await;
    let ctx = h.context();
    ctx.cache()
        .wait_consistent(&h.client)
        .await
        .expect("the caches catch up with the API server");
    let site = h.sites().get("marburg").await.expect("site");
    h.server.clear_requests();
    controller::dizsite::reconcile(Arc::new(site), ctx)
        .await
        .expect("reconcile succeeds");
    assert_eq!(
        h.operator_writes(),
        Vec::<String>::new(),
        "a no-op reconcile must not write, whatever form the quantities were written in"
    );
}

/// Drift on a child that is neither a Deployment nor a StatefulSet is seen by its watch and
/// repaired at once (not at the 5-minute resync), and the reconciles that do nothing make no
/// request once the site is steady.
#[tokio::test]
async fn drift_on_any_child_is_repaired_from_its_watch_and_steady_state_makes_no_requests() {
    let h = Harness::start().await;
    h.create_site(marburg()).await;
    h.wait_condition(conditions::READY, "True").await;
    let services: Api<Service> = Api::namespaced(h.client.clone(), NS);
    services
        .patch(
            "marburg-blaze",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"diz.miracum.org/component": "tampered"}}}),
            ),
        )
        .await
        .expect("tamper with the Service");
    within("the Service is restored", async {
        loop {
            let svc = services.get("marburg-blaze").await.expect("service");
            if svc
                .labels()
                .get("diz.miracum.org/component")
                .map(String::as_str)
                == Some("blaze")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // An unrelated annotation on the site triggers a reconcile of the running controller; once
    // it ran (the site's reconcile count moved), nothing but watches was requested.
    let before = h.reconciles();
    h.server.clear_requests();
    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"example.org/touched": "1"}}})),
        )
        .await
        .expect("touch");
    within("the touched site is reconciled", async {
        while h.reconciles() <= before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        h.operator_requests(),
        Vec::<String>::new(),
        "a no-op reconcile of the running controller makes no API request but the watches"
    );
    h.stop().await;
}

#[tokio::test]
async fn disabling_a_component_removes_its_objects_but_keeps_its_volume() {
    let h = Harness::start().await;
    h.create_site(marburg()).await;
    h.wait_condition(conditions::READY, "True").await;
    assert_eq!(
        names::<PersistentVolumeClaim>(&h.client).await,
        vec!["data-marburg-blaze-0"]
    );

    let mut spec = marburg();
    spec["components"]["blaze"]["enabled"] = json!(false);
    // A merge patch removes a key given as null.
    spec["components"]["flare"] = Value::Null;
    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .expect("disable");
    h.wait_condition(conditions::READY, "True").await;
    assert!(names::<StatefulSet>(&h.client).await.is_empty());
    assert!(names::<Deployment>(&h.client).await.is_empty());
    assert_eq!(
        names::<PersistentVolumeClaim>(&h.client).await,
        vec!["data-marburg-blaze-0"],
        "patient data is kept when a component is disabled"
    );
    h.stop().await;
}

#[tokio::test]
async fn drift_is_restored() {
    let h = Harness::start().await;
    h.create_site(marburg()).await;
    h.wait_condition(conditions::READY, "True").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let original = deployments.get("marburg-flare").await.expect("flare");
    let image = original
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].image.clone());
    drift_flare_image(&deployments).await;
    within("drift restored", async {
        loop {
            let d = deployments.get("marburg-flare").await.expect("get");
            let now = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| p.containers[0].image.clone());
            if now == image {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn paused_site_gets_nothing_applied() {
    let h = Harness::start().await;
    let mut spec = marburg();
    spec["paused"] = json!(true);
    h.create_site(spec).await;
    let site = h.wait_condition(conditions::RECONCILING, "False").await;
    let c = conditions::find(
        &site.status.expect("status").conditions,
        conditions::RECONCILING,
    )
    .cloned()
    .expect("cond");
    assert_eq!(c.reason, "Paused");
    assert!(names::<StatefulSet>(&h.client).await.is_empty());
    assert!(names::<Deployment>(&h.client).await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn dangling_release_stalls_and_creates_nothing() {
    let h = Harness::start().await;
    let mut spec = marburg();
    spec["release"] = json!({"name": "miracolix-2099.1"});
    h.create_site(spec).await;
    let site = h.wait_condition(conditions::STALLED, "True").await;
    let c = conditions::find(
        &site.status.expect("status").conditions,
        conditions::STALLED,
    )
    .cloned()
    .expect("cond");
    assert_eq!(c.reason, "ReleaseNotFound");
    assert!(c.message.contains("miracolix-2099.1"), "{}", c.message);
    assert!(names::<StatefulSet>(&h.client).await.is_empty());
    assert!(names::<Deployment>(&h.client).await.is_empty());
    let events = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "events" && r.is_write())
        .count();
    assert!(events >= 1, "a Warning Event is published");
    h.stop().await;
}

#[tokio::test]
async fn uncertified_release_changes_nothing() {
    let h = Harness::start().await;
    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"]["name"] = json!("tampered");
    rel["spec"]["version"] = json!("2026.1.1");
    // Content changed after signing: the signature no longer matches.
    rel["spec"]["components"]["flare"]["digest"] = json!(format!("sha256:{}", "e".repeat(64)));
    h.server.create(rel).expect("tampered release");
    let mut spec = marburg();
    spec["release"] = json!({"name": "tampered"});
    h.create_site(spec).await;
    let site = h.wait_condition(conditions::STALLED, "True").await;
    let st = site.status.expect("status");
    let c = conditions::find(&st.conditions, conditions::RELEASE_CERTIFIED)
        .cloned()
        .expect("cond");
    assert_eq!(c.status, "False");
    assert!(names::<Deployment>(&h.client).await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn deletion_retains_volumes_by_default_and_deletes_them_when_asked() {
    for (policy, pvcs_left) in [("Retain", 1usize), ("Delete", 0usize)] {
        let h = Harness::start().await;
        let mut spec = marburg();
        spec["deletionPolicy"] = json!(policy);
        h.create_site(spec).await;
        h.wait_condition(conditions::READY, "True").await;
        assert_eq!(names::<PersistentVolumeClaim>(&h.client).await.len(), 1);
        h.sites()
            .delete("marburg", &DeleteParams::default())
            .await
            .expect("delete");
        within("site gone", async {
            while h.sites().get_opt("marburg").await.expect("get").is_some() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            names::<StatefulSet>(&h.client).await.is_empty(),
            "{policy}: workloads removed"
        );
        assert!(
            names::<Deployment>(&h.client).await.is_empty(),
            "{policy}: workloads removed"
        );
        assert_eq!(
            names::<PersistentVolumeClaim>(&h.client).await.len(),
            pvcs_left,
            "deletionPolicy {policy}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn render_prints_exactly_what_the_controller_applies() {
    let h = Harness::start().await;
    h.create_site(marburg()).await;
    let site = h.wait_condition(conditions::READY, "True").await;
    let releases: Vec<ComponentRelease> = docs("examples/10-release-miracolix-2026.1.yaml")
        .into_iter()
        .map(|d| serde_json::from_value(d).expect("release"))
        .collect();
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let rendered =
        miracolix_operator::cli::render::render(&site, &releases, &trust, false).expect("render");
    assert!(!rendered.is_empty());
    for doc in rendered {
        let api_version = doc["apiVersion"].as_str().expect("apiVersion");
        let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().expect("name");
        let plural = format!("{}s", kind.to_lowercase())
            .replace("policys", "policies")
            .replace("ingresss", "ingresses");
        let live = h
            .server
            .object(group, &plural, NS, name)
            .unwrap_or_else(|| panic!("{kind} {name} rendered but not applied"));
        assert!(
            miracolix_operator::controller::diff::unchanged(&doc, &live),
            "{kind} {name}: rendered object differs from the applied one"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn release_status_shows_the_certification_verdict() {
    let h = Harness::start().await;
    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"]["name"] = json!("tampered");
    rel["spec"]["version"] = json!("2026.1.1");
    rel["spec"]["components"]["flare"]["digest"] = json!(format!("sha256:{}", "e".repeat(64)));
    h.server.create(rel).expect("tampered release");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::component_release::run(h.context(), async {
        let _ = rx.await;
    }));
    let releases: Api<ComponentRelease> = Api::all(h.client.clone());
    let verdict = |name: &'static str| {
        await_condition(releases.clone(), name, |r: Option<&ComponentRelease>| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.certified.is_some())
        })
    };
    let good = within("example release verdict", verdict("miracolix-2026.1"))
        .await
        .expect("watch")
        .expect("exists");
    let st = good.status.expect("status");
    assert_eq!(st.certified, Some(true));
    assert_eq!(st.key_id.as_deref(), Some("miracolix-demo-2026"));
    let bad = within("tampered release verdict", verdict("tampered"))
        .await
        .expect("watch")
        .expect("exists");
    let st = bad.status.expect("status");
    assert_eq!(st.certified, Some(false));
    assert_eq!(st.reason.as_deref(), Some("BadSignature"));
    let warned = within("warning event", async {
        loop {
            let events =
                h.server.requests().into_iter().any(|r| {
                    r.resource == "events" && r.is_write() && r.user_agent.contains(OPERATOR)
                });
            if events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    warned.await;
    let _ = tx.send(());
    within("release controller shutdown", task)
        .await
        .expect("task");
    h.stop().await;
}

#[tokio::test]
async fn cloudnativepg_asked_for_but_not_installed_stalls_with_a_clear_message() {
    let h = Harness::start().await;
    let mut spec = marburg();
    spec["components"]["mainzelliste"] = json!({
        "apiKeySecretRef": {"name": "mainzelliste-api", "key": "api-key"},
        "configSecretRef": {"name": "mainzelliste-config", "key": "mainzelliste.docker.conf"},
        "database": {"cloudNativePG": {}}
    });
    h.create_site(spec).await;
    let site = h.wait_condition(conditions::STALLED, "True").await;
    let c = conditions::find(
        &site.status.expect("status").conditions,
        conditions::STALLED,
    )
    .cloned()
    .expect("cond");
    assert_eq!(c.reason, "CloudNativePgUnavailable");
    // What CEL cannot know (what is installed in the cluster) is refused here, naming the field.
    assert!(
        c.message
            .starts_with("spec.components.mainzelliste.database.cloudNativePG is set, but CloudNativePG is not installed"),
        "{}",
        c.message
    );
    assert!(
        names::<Deployment>(&h.client).await.is_empty(),
        "nothing applied"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let events = within("the Warning Event", async {
        loop {
            let list = events.list(&ListParams::default()).await.expect("events");
            if list
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("CloudNativePgUnavailable"))
            {
                return list.items;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        events.iter().any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.note.as_deref().is_some_and(|n| {
                    n.contains("spec.components.mainzelliste.database.cloudNativePG")
                })
        }),
        "{:?}",
        events
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
    h.stop().await;
}

/// kube-runtime's Controller relists after its watches expire (410 Gone) and keeps reconciling.
#[tokio::test]
async fn the_controller_recovers_from_a_forced_watch_expiry() {
    let h = Harness::start().await;
    h.create_site(marburg()).await;
    h.wait_condition(conditions::READY, "True").await;
    assert!(h.server.watch_count() > 0, "the controller watches");
    // Like an etcd compaction: every watch of the controller (sites, Deployments, StatefulSets,
    // releases) gets 410 at once. kube-runtime backs off once per failed stream (about 15 s in
    // all) before relisting, so this wait is longer than the others.
    h.server.expire_watches();
    let mut spec = marburg();
    spec["components"]["flare"] = Value::Null;
    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .expect("change after expiry");
    h.wait_condition(conditions::READY, "True").await;
    assert!(
        !names::<Deployment>(&h.client)
            .await
            .contains(&"marburg-flare".to_string()),
        "the change made after the 410 was reconciled"
    );
    h.stop().await;
}

/// A Secret in the site's namespace with a placeholder value for each key.
fn secret(name: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| ((*k).to_string(), json!("ZGVtbw==")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS}, "data": data})
}

/// A contract violation keeps the site NotReady with the component and the kubelet's reason
/// named: here the Secret with Mainzelliste's API key does not exist, which a kubelet reports
/// as CreateContainerConfigError. Once the site admin creates it, the kubelet retries and the
/// site becomes Ready without anything else changing.
#[tokio::test]
async fn a_missing_secret_keeps_the_site_not_ready_naming_component_and_reason() {
    let h = Harness::start().await;
    h.server
        .create(secret(
            "ml-db",
            &["host", "port", "username", "password", "database"],
        ))
        .expect("database secret");
    let mut spec = marburg();
    h.server
        .create(secret("mainzelliste-config", &["mainzelliste.docker.conf"]))
        .expect("configuration secret");
    spec["components"]["mainzelliste"] = json!({
        "apiKeySecretRef": {"name": "mainzelliste-api", "key": "api-key"},
        "configSecretRef": {"name": "mainzelliste-config", "key": "mainzelliste.docker.conf"},
        "database": {"external": {"name": "ml-db"}}
    });
    h.create_site(spec).await;
    let site = within("the site reports the failing component", async {
        loop {
            let site = h.sites().get("marburg").await.expect("site");
            let ready = site
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::READY).cloned());
            if let Some(c) = ready
                && c.reason == "ComponentsFailing"
            {
                break site;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let ready = conditions::find(&site.status.expect("status").conditions, conditions::READY)
        .cloned()
        .expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("mainzelliste")
            && ready.message.contains("CreateContainerConfigError")
            && ready
                .message
                .contains("secret \"mainzelliste-api\" not found"),
        "{}",
        ready.message
    );

    h.server
        .create(secret("mainzelliste-api", &["api-key"]))
        .expect("api key secret");
    h.wait_condition(conditions::READY, "True").await;
    h.stop().await;
}

/// A missing Secret mounted as a file (Mainzelliste's configuration) leaves the pod in
/// ContainerCreating; the kubelet names it only in a FailedMount Event, which the operator reads
/// for such pods: the site names the component and the Secret.
#[tokio::test]
async fn a_missing_secret_mounted_as_a_file_is_named_from_the_kubelets_event() {
    let h = Harness::start().await;
    for (name, keys) in [
        (
            "ml-db",
            &["host", "port", "username", "password", "database"][..],
        ),
        ("mainzelliste-api", &["api-key"][..]),
    ] {
        h.server.create(secret(name, keys)).expect("secret");
    }
    let mut spec = marburg();
    spec["components"]["mainzelliste"] = json!({
        "apiKeySecretRef": {"name": "mainzelliste-api", "key": "api-key"},
        "configSecretRef": {"name": "mainzelliste-config", "key": "mainzelliste.docker.conf"},
        "database": {"external": {"name": "ml-db"}}
    });
    h.create_site(spec).await;
    let message = within("the site names the unmountable Secret", async {
        loop {
            let site = h.sites().get("marburg").await.expect("site");
            if let Some(c) = site
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::READY).cloned())
                && c.reason == "ComponentsFailing"
                && c.message.contains("FailedMount")
            {
                break c.message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        message.contains("mainzelliste")
            && message.contains("secret \"mainzelliste-config\" not found"),
        "{message}"
    );
    h.stop().await;
}

/// A site with an ingress but no OIDC: Blaze (which logs in only through OIDC) stays off the
/// Ingress, the site says so in `Published=False` with one Warning Event, and is Ready all the
/// same; with OIDC it is published and the condition turns True.
#[tokio::test]
async fn a_site_without_oidc_names_what_stays_off_the_ingress_once() {
    let h = Harness::start().await;
    let mut spec = marburg();
    spec["ingress"] = json!({"host": "diz.uni-marburg.example", "tls": {"secretName": "diz-tls"}});
    h.create_site(spec).await;
    let site = h.wait_condition(conditions::PUBLISHED, "False").await;
    let st = site.status.expect("status");
    let published = conditions::find(&st.conditions, conditions::PUBLISHED).expect("Published");
    assert_eq!(published.reason, "LoginRequired");
    assert!(published.message.contains("/fhir"), "{}", published.message);
    h.wait_condition(conditions::READY, "True").await;
    assert!(
        names::<k8s_openapi::api::networking::v1::Ingress>(&h.client)
            .await
            .is_empty(),
        "nothing to publish: no Ingress"
    );
    let warnings = || async {
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(h.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("LoginRequired"))
            .count()
    };
    assert_eq!(warnings().await, 1, "one Warning Event");
    // Another reconcile of the unchanged site repeats nothing.
    h.ctx
        .cache()
        .wait_consistent(&h.client)
        .await
        .expect("caches catch up");
    let site = h.sites().get("marburg").await.expect("site");
    controller::dizsite::reconcile(Arc::new(site), h.ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(warnings().await, 1, "no repeated Warning");

    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"auth": {"oidc": {
                "issuerUrl": "https://login.uni-marburg.example/realms/diz",
                "clientId": "diz",
            }}}})),
        )
        .await
        .expect("OIDC added");
    let site = h.wait_condition(conditions::PUBLISHED, "True").await;
    let st = site.status.expect("status");
    let published = conditions::find(&st.conditions, conditions::PUBLISHED).expect("Published");
    assert!(published.message.contains("/fhir"), "{}", published.message);
    assert_eq!(
        names::<k8s_openapi::api::networking::v1::Ingress>(&h.client).await,
        vec!["marburg"]
    );
    h.stop().await;
}

/// `spec.reporting`: without it nothing of the reporter exists; with it the CronJob, its
/// ServiceAccount, a Role allowing only `get` on this DizSite, the binding and the
/// NetworkPolicies, and a `Reporting` condition that follows the CronJob's status; removing it
/// removes them all and the condition.
#[tokio::test]
async fn reporting_deploys_the_reporter_and_reports_its_runs() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use miracolix_operator::api::reasons;

    let h = Harness::start().await;
    h.create_site(marburg()).await;
    let site = h.wait_condition(conditions::READY, "True").await;
    let st = site.status.expect("status");
    assert!(conditions::find(&st.conditions, conditions::REPORTING).is_none());
    assert_eq!(names::<CronJob>(&h.client).await, Vec::<String>::new());
    assert_eq!(names::<Role>(&h.client).await, Vec::<String>::new());
    assert_eq!(names::<RoleBinding>(&h.client).await, Vec::<String>::new());
    assert!(
        !names::<ServiceAccount>(&h.client)
            .await
            .contains(&"marburg-reporter".to_string())
    );

    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"reporting": {"hubUrl": "https://hub.miracum.example"}}}),
            ),
        )
        .await
        .expect("turn reporting on");
    let site = h.wait_condition(conditions::REPORTING, "False").await;
    let c = conditions::find(
        &site.status.as_ref().expect("status").conditions,
        conditions::REPORTING,
    )
    .expect("Reporting")
    .clone();
    assert_eq!(c.reason, reasons::REPORT_PENDING, "{c:?}");
    let cronjob = Api::<CronJob>::namespaced(h.client.clone(), NS)
        .get("marburg-reporter")
        .await
        .expect("the reporter CronJob");
    let spec = cronjob.spec.as_ref().expect("spec");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.as_ref())
        .expect("pod");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("marburg-reporter")
    );
    let container = &pod.containers[0];
    assert_eq!(container.args.as_deref(), Some(&["report".to_string()][..]));
    assert!(
        container
            .image
            .as_deref()
            .is_some_and(|i| i.starts_with("ghcr.io/miracum/miracolix-operator@sha256:")),
        "{:?}",
        container.image
    );
    let env: std::collections::BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    assert_eq!(env["REPORT_HUB_URL"], "https://hub.miracum.example");
    assert_eq!(env["REPORT_BLAZE_URL"], "http://marburg-blaze:8080/fhir");
    let key_volume = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .expect("the key is a Secret volume");
    assert_eq!(
        key_volume.secret_name.as_deref(),
        Some("marburg-report-key")
    );
    let role = Api::<Role>::namespaced(h.client.clone(), NS)
        .get("marburg-reporter")
        .await
        .expect("Role");
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].verbs, ["get"]);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["dizsites".to_string()][..])
    );
    assert_eq!(
        rules[0].resource_names.as_deref(),
        Some(&["marburg".to_string()][..])
    );
    assert_eq!(names::<RoleBinding>(&h.client).await, ["marburg-reporter"]);
    assert!(
        names::<ServiceAccount>(&h.client)
            .await
            .contains(&"marburg-reporter".to_string())
    );
    let policies = Api::<NetworkPolicy>::namespaced(h.client.clone(), NS);
    policies
        .get("marburg-reporter")
        .await
        .expect("the reporter's NetworkPolicy");
    let blaze = policies.get("marburg-blaze").await.expect("Blaze's policy");
    let admits_reporter = blaze
        .spec
        .and_then(|s| s.ingress)
        .into_iter()
        .flatten()
        .flat_map(|r| r.from.unwrap_or_default())
        .filter_map(|p| p.pod_selector?.match_labels)
        .any(|l| l.get("diz.miracum.org/component").map(String::as_str) == Some("reporter"));
    assert!(
        admits_reporter,
        "Blaze's ingress policy admits the reporter"
    );

    // The CronJob controller records a run that succeeded: Reporting turns True.
    let at = |ago: chrono::Duration| {
        (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (scheduled, succeeded) = (
        at(chrono::Duration::hours(2)),
        at(chrono::Duration::hours(2) - chrono::Duration::seconds(4)),
    );
    Api::<CronJob>::namespaced(h.client.clone(), NS)
        .patch_status(
            "marburg-reporter",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "lastScheduleTime": scheduled,
                "lastSuccessfulTime": succeeded}})),
        )
        .await
        .expect("the CronJob's status");
    let site = h.wait_condition(conditions::REPORTING, "True").await;
    let c = conditions::find(
        &site.status.as_ref().expect("status").conditions,
        conditions::REPORTING,
    )
    .expect("Reporting")
    .clone();
    assert_eq!(c.reason, reasons::REPORTED);
    assert!(c.message.contains(&succeeded), "{}", c.message);
    // A later run that did not succeed (long past its deadline): ReportFailing.
    Api::<CronJob>::namespaced(h.client.clone(), NS)
        .patch_status(
            "marburg-reporter",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": at(chrono::Duration::hours(1))}})),
        )
        .await
        .expect("the CronJob's status");
    let site = h.wait_condition(conditions::REPORTING, "False").await;
    let c = conditions::find(
        &site.status.as_ref().expect("status").conditions,
        conditions::REPORTING,
    )
    .expect("Reporting")
    .clone();
    assert_eq!(c.reason, reasons::REPORT_FAILING, "{c:?}");

    // Off again: the reporter and the condition go.
    h.sites()
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"reporting": null}})),
        )
        .await
        .expect("turn reporting off");
    within("the reporter removed", async {
        loop {
            let gone = names::<CronJob>(&h.client).await.is_empty()
                && names::<Role>(&h.client).await.is_empty()
                && names::<RoleBinding>(&h.client).await.is_empty();
            let site = h.sites().get("marburg").await.expect("site");
            let no_condition = site
                .status
                .is_some_and(|s| conditions::find(&s.conditions, conditions::REPORTING).is_none());
            if gone && no_condition {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    h.stop().await;
}
