//! A component a signed release defines (XNAT in `examples/11-release-miracolix-imaging-2026.1.yaml`)
//! against the test API server, whose simulated kubelet enforces the definition's image contract
//! exactly as it enforces the built-in components' contracts: the example site becomes Ready with
//! XNAT in its status like any built-in component, a pod that breaks the contract does not start,
//! and a name the release does not define stalls the site with the field named.

mod repo;

use repo::{docs, root};

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::kubelet::{Contracts, Objects, check_pod};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{ComponentRelease, DizSite, conditions, reasons};
use miracolix_operator::catalog::{self, ResolvedRelease, SiteInput};
use miracolix_operator::cli::contracts::{ContractsArgs, run as contracts_json};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope};
use miracolix_operator::release::trust::TrustStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const RELEASE: &str = "examples/11-release-miracolix-imaging-2026.1.yaml";
const SITE: &str = "examples/23-site-magdeburg.yaml";
const NS: &str = "diz-magdeburg";

/// The catalogue's contracts and those of the components the imaging release defines, as
/// `miracolix-operator contracts --release` prints them for `make demo`.
fn contracts() -> Contracts {
    let json = contracts_json(&ContractsArgs {
        releases: vec![root().join(RELEASE)],
    })
    .expect("contracts");
    Contracts::from_json(&json).expect("contracts parse")
}

#[test]
fn the_definitions_contract_is_handed_to_the_kubelet() {
    let c = contracts();
    let xnat = c
        .for_image("harbor.miracum.org/imaging/xnat-web@sha256:abc")
        .expect("XNAT's contract is known by its repository");
    assert_eq!(xnat.user.uid, Some(1000));
    assert!(xnat.writes.iter().any(|w| w.path == "/data/xnat/archive"));
    assert!(
        xnat.required
            .iter()
            .any(|r| r.name == "XNAT_DATASOURCE_PASSWORD")
    );
}

/// The rendered XNAT pod meets its contract; without a writable path or a required setting it
/// fails the way the process would.
#[test]
fn the_kubelet_holds_xnat_to_its_contract() {
    let release: ComponentRelease =
        serde_json::from_value(docs(RELEASE).remove(0)).expect("release");
    let site: DizSite = serde_json::from_value(docs(SITE).remove(0)).expect("site");
    let resolved = ResolvedRelease::of("miracolix-imaging-2026.1", &release.spec);
    let children = catalog::build(&SiteInput {
        name: "magdeburg",
        namespace: NS,
        uid: "6a1d0c2e-0000-4000-8000-000000000023",
        spec: &site.spec,
        release: &resolved,
        cnpg_available: true,
    })
    .expect("builds");
    let sts = children
        .iter()
        .find(|c| {
            c.object.metadata.name.as_deref() == Some("magdeburg-xnat")
                && c.resource.kind == "StatefulSet"
        })
        .expect("XNAT's StatefulSet");
    let pod = serde_json::to_value(&sts.object).expect("json")["spec"]["template"]["spec"].clone();
    let mut objects = Objects::default();
    for (secret, keys) in [
        (
            "magdeburg-xnat-db-app",
            vec!["host", "port", "username", "password", "dbname"],
        ),
        ("oidc-client", vec!["client-secret"]),
        ("login-proxy", vec!["cookie-secret"]),
    ] {
        objects
            .secrets
            .insert(secret.into(), keys.into_iter().map(String::from).collect());
    }
    let contracts = contracts();
    assert_eq!(check_pod(&pod, NS, &objects, &contracts), vec![]);

    // Tomcat's work directory on the read-only root.
    let mut broken = pod.clone();
    let mounts = broken["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("mounts");
    mounts.retain(|m| m["mountPath"] != "/usr/local/tomcat/work");
    let failures = check_pod(&broken, NS, &objects, &contracts);
    assert!(
        failures.iter().any(|(c, f)| c == "xnat"
            && f.message()
                .contains("/usr/local/tomcat/work: Read-only file system")),
        "{failures:?}"
    );

    // The datasource password missing.
    let mut broken = pod;
    let env = broken["containers"][0]["env"].as_array_mut().expect("env");
    env.retain(|e| e["name"] != "XNAT_DATASOURCE_PASSWORD");
    let failures = check_pod(&broken, NS, &objects, &contracts);
    assert!(
        failures
            .iter()
            .any(|(c, f)| c == "xnat" && f.message().contains("XNAT_DATASOURCE_PASSWORD")),
        "{failures:?}"
    );
}

struct Harness {
    server: TestApiServer,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start() -> Self {
        let server = TestApiServer::with_config(Config {
            contracts: contracts(),
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        for crd in std::fs::read_dir(root().join("crds")).expect("crds") {
            let path = crd.expect("entry").path();
            let rel = path
                .strip_prefix(root())
                .expect("rel")
                .to_str()
                .expect("utf8")
                .to_string();
            for doc in docs(&rel) {
                server.create(doc).expect("CRD installs");
            }
        }
        for doc in docs("e2e/fixtures/cnpg-cluster-crd.yaml") {
            server.create(doc).expect("CloudNativePG CRD");
        }
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .expect("namespace");
        for doc in docs("scripts/demo-secrets.yaml") {
            if doc.pointer("/metadata/namespace") == Some(&Value::from(NS)) {
                server.create(doc).expect("secret");
            }
        }
        for doc in docs(RELEASE) {
            server.create(doc).expect("release");
        }
        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
        let ctx = Arc::new(Context::new(
            server.client_as("miracolix-operator"),
            Arc::new(trust),
            Arc::new(SystemClock),
        ));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run_dizsite(ctx, Scope::AllNamespaces, async {
            let _ = rx.await;
        }));
        Self {
            server,
            stop: Some(tx),
            task: Some(task),
        }
    }

    fn sites(&self) -> Api<DizSite> {
        Api::namespaced(self.server.client_as("e2e-test"), NS)
    }

    async fn wait(&self, name: &str, type_: &str, status: &str) -> DizSite {
        let (t, s) = (type_.to_string(), status.to_string());
        let cond = await_condition(self.sites(), name, move |o: Option<&DizSite>| {
            o.and_then(|o| o.status.as_ref()).is_some_and(|st| {
                conditions::find(&st.conditions, &t).is_some_and(|c| c.status == s)
                    && st.observed_generation == o.and_then(|o| o.metadata.generation)
            })
        });
        match tokio::time::timeout(Duration::from_secs(60), cond).await {
            Ok(got) => got.expect("watch").expect("site exists"),
            Err(_) => {
                let now = self.sites().get_opt(name).await.ok().flatten();
                panic!(
                    "timed out after 60s waiting for DizSite {name} {type_}={status}; it is now:\n{}",
                    serde_json::to_string_pretty(&now).unwrap_or_default()
                )
            }
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

#[tokio::test]
async fn the_xnat_example_site_becomes_ready_with_xnat_in_its_status() {
    let h = Harness::start().await;
    let site: DizSite = serde_json::from_value(docs(SITE).remove(0)).expect("site");
    h.sites()
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    let ready = h.wait("magdeburg", conditions::READY, "True").await;
    let st = ready.status.expect("status");
    assert_eq!(
        st.current_release.as_deref(),
        Some("miracolix-imaging-2026.1")
    );
    let of = |name: &str| {
        st.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no status of {name}: {:#?}", st.components))
    };
    let (xnat, blaze) = (of("xnat"), of("blaze"));
    assert!(xnat.enabled && blaze.enabled);
    assert_eq!((xnat.replicas, xnat.ready_replicas), (1, 1));
    assert_eq!((blaze.replicas, blaze.ready_replicas), (1, 1));
    assert!(
        xnat.image
            .as_deref()
            .is_some_and(|i| i.starts_with("harbor.miracum.org/imaging/xnat-web@sha256:")),
        "{xnat:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_component_the_release_does_not_define_stalls_the_site() {
    let h = Harness::start().await;
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "pacs", "namespace": NS},
        "spec": {
            "siteId": "pacs",
            "release": {"name": "miracolix-imaging-2026.1"},
            "components": {"fromRelease": [{"name": "orthanc"}]},
        },
    }))
    .expect("site");
    h.sites()
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    let stalled = h.wait("pacs", conditions::STALLED, "True").await;
    let st = stalled.status.expect("status");
    let c = conditions::find(&st.conditions, conditions::STALLED).expect("Stalled");
    assert_eq!(c.reason, reasons::COMPONENT_NOT_IN_RELEASE);
    assert!(
        c.message
            .contains("spec.components.fromRelease[name=orthanc]: release miracolix-imaging-2026.1 defines no component orthanc; it defines xnat"),
        "{}",
        c.message
    );
    h.stop().await;
}
