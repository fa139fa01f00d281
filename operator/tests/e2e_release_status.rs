//! `release status` over several kubeconfig contexts, each a separate test API server (as each
//! hospital runs its own cluster), plus one unreachable context.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use kube::api::{Api, PostParams};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::DizSite;
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context};
use miracolix_operator::release::TrustStore;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf()
}

fn docs(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    miracolix_operator::yaml::from_multi_doc(&text).expect("yaml")
}

/// A cluster with the CRDs, the example release and one site reconciled to Ready.
async fn cluster(site_id: &str) -> TestApiServer {
    let server = TestApiServer::with_config(Config {
        contracts: miracolix_e2e::kubelet::Contracts::from_json(
            &miracolix_operator::catalog::contract::contracts_json(),
        )
        .expect("the catalogue's contracts parse"),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
        for crd in docs(&entry.expect("entry").path()) {
            server.create(crd).expect("crd");
        }
    }
    for rel in docs(&root().join("examples/10-release-miracolix-2026.1.yaml")) {
        server.create(rel).expect("release");
    }
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diz"}}))
        .expect("ns");
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": site_id, "namespace": "diz"},
        "spec": {"siteId": site_id, "release": {"channel": "stable"},
                 "components": {"blaze": {"resources": "small"}}},
    }))
    .expect("site");
    let api: Api<DizSite> = Api::namespaced(server.client(), "diz");
    api.create(&PostParams::default(), &site)
        .await
        .expect("create");
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let ctx = Arc::new(Context::new(
        server.client(),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    for _ in 0..3 {
        ctx.cache()
            .wait_consistent(&server.client())
            .await
            .expect("caches catch up");
        let s = api.get(site_id).await.expect("get");
        controller::dizsite::reconcile(Arc::new(s), ctx.clone())
            .await
            .expect("reconcile");
    }
    server
}

fn kubeconfig(contexts: &[(&str, String)]) -> String {
    let mut clusters = String::new();
    let mut ctxs = String::new();
    for (name, url) in contexts {
        clusters.push_str(&format!("- name: {name}\n  cluster:\n    server: {url}\n"));
        ctxs.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: test\n"
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{ctxs}current-context: {}\n\
         users:\n- name: test\n  user:\n    token: test\n",
        contexts[0].0
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_the_consortium_matrix_across_contexts() {
    let erlangen = cluster("erlangen").await;
    let dresden = cluster("dresden").await;
    let h1 = erlangen
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let h2 = dresden
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    // A port nothing listens on: bind, note, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let dir = std::env::temp_dir().join(format!("miracolix-release-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        kubeconfig(&[
            ("uk-erlangen", h1.url()),
            ("ukd-dresden", h2.url()),
            ("down", dead_url),
        ]),
    )
    .expect("write");

    let run = |format: &str| {
        let out = tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
                .args(["release", "status", "-o", format])
                .env("KUBECONFIG", &path)
                .output()
        })
        .expect("runs");
        // One context is down: the rows of the others are printed, and the exit status says
        // the report is incomplete.
        assert_eq!(
            out.status.code(),
            Some(i32::from(
                miracolix_operator::cli::release_status::EXIT_UNREACHABLE
            )),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: Value = serde_json::from_str(&run("json")).expect("json output");
    let rows = json.as_array().expect("array of rows");
    let row = |ctx: &str| {
        rows.iter()
            .find(|r| r["context"] == ctx)
            .unwrap_or_else(|| panic!("no row for {ctx}: {json}"))
    };
    assert_eq!(row("uk-erlangen")["siteId"], "erlangen", "{json}");
    assert_eq!(row("uk-erlangen")["current"], "miracolix-2026.1", "{json}");
    assert_eq!(row("ukd-dresden")["siteId"], "dresden", "{json}");
    assert!(
        row("ukd-dresden")["state"]
            .as_str()
            .unwrap_or_default()
            .contains("True"),
        "{json}"
    );
    assert!(
        row("down")["state"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Unreachable"),
        "{json}"
    );
    let table = run("table");
    for needle in [
        "uk-erlangen",
        "ukd-dresden",
        "erlangen",
        "dresden",
        "miracolix-2026.1",
        "Unreachable",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
