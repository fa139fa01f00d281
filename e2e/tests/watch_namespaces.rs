//! `run --namespace a --namespace b`: one DizSite controller per namespace sharing one context;
//! sites elsewhere are left alone.

mod repo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope};
use miracolix_operator::release::trust::TrustStore;
use serde_json::{Value, json};

const OPERATOR: &str = "miracolix-operator";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf()
}

fn docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(rel)).expect(rel);
    miracolix_operator::yaml::from_multi_doc(&text).expect("yaml")
}

#[tokio::test]
async fn one_controller_per_watched_namespace_and_others_untouched() {
    let server = TestApiServer::with_config(Config {
        contracts: repo::catalogue_contracts(),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    for crd in std::fs::read_dir(root().join("crds")).expect("crds") {
        let path = crd.expect("entry").path();
        let rel = path.strip_prefix(root()).expect("rel").to_path_buf();
        for doc in docs(rel.to_str().expect("utf8")) {
            server.create(doc).expect("CRD installs");
        }
    }
    for doc in docs("examples/10-release-miracolix-2026.1.yaml") {
        server.create(doc).expect("release");
    }
    let client = server.client_as("e2e-test");
    for ns in ["diz-a", "diz-b", "diz-other"] {
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
        let site: DizSite = serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": "site", "namespace": ns},
            "spec": {"siteId": ns, "release": {"name": "miracolix-2026.1"},
                     "components": {"blaze": {"resources": "small"}}},
        }))
        .expect("site");
        Api::<DizSite>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &site)
            .await
            .expect("site created");
    }
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("key");
    let ctx = Arc::new(Context::new(
        server.client_as(OPERATOR),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    let scopes = Scope::for_namespaces(&["diz-a", "diz-b", "diz-a"]);
    assert_eq!(scopes.len(), 2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller::run_dizsites(ctx.clone(), scopes, async {
        let _ = stopped.await;
    }));

    for ns in ["diz-a", "diz-b"] {
        let ready = await_condition(
            Api::<DizSite>::namespaced(client.clone(), ns),
            "site",
            |o: Option<&DizSite>| {
                o.and_then(|o| o.status.as_ref())
                    .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY))
            },
        );
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .unwrap_or_else(|_| panic!("site in {ns} not Ready within 20s"))
            .expect("watch");
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("controllers stop in time")
        .expect("task");

    let touched_other = server
        .requests()
        .iter()
        .any(|r| r.user_agent.contains(OPERATOR) && r.namespace == "diz-other");
    assert!(!touched_other, "the unwatched namespace was touched");
    let other = Api::<DizSite>::namespaced(client, "diz-other")
        .get("site")
        .await
        .expect("site");
    assert!(other.status.is_none(), "unwatched site got a status");
    // Both controllers recorded into the shared context's metrics.
    let text = ctx.metrics.render();
    assert!(text.contains("namespace=\"diz-a\""), "{text}");
    assert!(text.contains("namespace=\"diz-b\""), "{text}");
}
