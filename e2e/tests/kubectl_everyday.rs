//! Everyday admin commands with the real kubectl against the test API server, as people meet
//! kube-apiserver 1.33 with them: `describe` and `events` showing the operator's Events,
//! generators (`kubectl create configmap|secret|namespace|deployment`) that send protobuf,
//! `explain` from OpenAPI v3, `get -o wide` and `get all`. Skips (with a printed reason) where
//! kubectl is not installed.

mod kubectl;
mod repo;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kubectl::{KUBECTL, Kubectl, kubectl_137};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, reasons};
use miracolix_operator::clock::ManualClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::TrustStore;
use repo::{docs, root};
use serde_json::{Value, json};

const NS: &str = "diz-giessen";
const SITE: &str = "giessen";

/// A server with the operator's CRDs, the example release and one site the operator has
/// reconciled until it stopped changing: its Events are written through `events.k8s.io/v1`.
async fn reconciled_site() -> TestApiServer {
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
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let clock = ManualClock::new("2026-03-02T10:00:00Z".parse().expect("time"));
    let ctx = Arc::new(Context::new(
        server.client_as("miracolix-operator"),
        Arc::new(trust),
        Arc::new(clock),
    ));
    let sites: Api<DizSite> = Api::namespaced(server.client_as("e2e-test"), NS);
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": SITE, "namespace": NS},
        "spec": {"siteId": SITE, "release": {"name": "miracolix-2026.1"},
            "components": {"blaze": {"resources": "small"}}},
    }))
    .expect("site");
    sites
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    let mut last = String::new();
    for _ in 0..8 {
        let site = sites.get(SITE).await.expect("site");
        if site.resource_version().unwrap_or_default() == last {
            return server;
        }
        last = site.resource_version().unwrap_or_default();
        tokio::time::timeout(
            Duration::from_secs(10),
            controller::reconcile_dizsite(Arc::new(site), ctx.clone()),
        )
        .await
        .expect("reconcile finishes")
        .expect("reconcile succeeds");
    }
    panic!("the site did not settle after 8 reconciles");
}

/// The lines of `describe`'s `Events:` section.
fn events_section(describe: &str) -> Vec<&str> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .skip(1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_events_show_the_operators_events() {
    for bin in [Path::new(KUBECTL), &kubectl_137()] {
        let server = reconciled_site().await;
        let Some(k) = Kubectl::serve("site-events", bin, server).await else {
            continue;
        };
        // What the operator wrote, through events.k8s.io.
        let written = k
            .ok(&[
                "get",
                "events.v1.events.k8s.io",
                "-n",
                NS,
                "-o",
                "jsonpath={range .items[*]}{.reason}/{.regarding.name}/{.reportingController}{\"\\n\"}{end}",
            ])
            .await;
        assert!(
            written.contains(&format!("{}/{SITE}/", reasons::APPLIED)),
            "{written}"
        );
        let describe = k.ok(&["describe", "dizsite", SITE, "-n", NS]).await;
        let events = events_section(&describe);
        assert!(
            events
                .iter()
                .any(|l| l.contains("Normal") && l.contains(reasons::APPLIED)),
            "{} describe lists the operator's Events:\n{describe}",
            bin.display()
        );
        let listed = k
            .ok(&["events", "-n", NS, "--for", &format!("dizsite/{SITE}")])
            .await;
        assert!(
            listed
                .lines()
                .any(|l| l.contains("Normal") && l.contains(reasons::APPLIED)
                    && l.contains(&format!("DizSite/{SITE}"))),
            "{} events --for lists them:\n{listed}",
            bin.display()
        );
        // The core view is the same object: one uid and resourceVersion for both groups.
        let core = k
            .ok(&["get", "events.v1.", "-n", NS, "-o", "jsonpath={range .items[*]}{.metadata.uid}@{.metadata.resourceVersion}:{.message}{\"\\n\"}{end}"])
            .await;
        let new = k
            .ok(&["get", "events.v1.events.k8s.io", "-n", NS, "-o", "jsonpath={range .items[*]}{.metadata.uid}@{.metadata.resourceVersion}:{.note}{\"\\n\"}{end}"])
            .await;
        assert_eq!(core, new);
        // Deleting through one group deletes the other's view.
        let name = k
            .ok(&["get", "events.v1.", "-n", NS, "-o", "jsonpath={.items[0].metadata.name}"])
            .await;
        k.ok(&["delete", "events.v1.events.k8s.io", &name, "-n", NS])
            .await;
        let (found, _, err) = k.run(&["get", "events.v1.", &name, "-n", NS]).await;
        assert!(!found && err.contains("NotFound"), "{err}");
    }
}
