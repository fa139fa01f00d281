//! `render --from-cluster`: the release a site runs is read from its rollout record in the
//! cluster (the test API server over HTTP, through a kubeconfig), and the controller's plan
//! decides from it — the same answer `--current` gives, and a first install without a record.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use miracolix_e2e::TestApiServer;
use miracolix_operator::api::ComponentRelease;
use miracolix_operator::release::record::{Record, record_name};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_miracolix-operator");

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn render(kubeconfig: &Path, release_2: &Path, at: &str) -> Output {
    Command::new(BIN)
        .args([
            "render",
            "-f",
            s(&common::repo_root().join("examples/22-site-marburg.yaml")),
        ])
        .args([
            "--release",
            s(&common::repo_root().join("examples/10-release-miracolix-2026.1.yaml")),
            "--release",
            s(release_2),
        ])
        .args([
            "--trusted-keys",
            s(&common::repo_root().join("examples/trusted-keys")),
        ])
        .args(["--from-cluster", "--at", at])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("render runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_reads_the_running_release_from_the_sites_rollout_record() {
    let dir = std::env::temp_dir().join(format!("miracolix-render-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let release_2 = common::signed_release_2026_2(&dir);

    let server = TestApiServer::new();
    server
        .create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diz-marburg"}}),
        )
        .expect("namespace");
    let handle = server
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    token: t\n",
            handle.url()
        ),
    )
    .expect("kubeconfig");

    // No record yet: a first install, which takes the newest certified release.
    let out =
        tokio::task::block_in_place(|| render(&kubeconfig, &release_2, "2026-03-05T12:00:00Z"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&"b".repeat(64)));

    // The record says the site runs 2026.1: before its wave it stays there, after it upgrades.
    let doc: Value = miracolix_operator::yaml::from_multi_doc::<Value>(
        &std::fs::read_to_string(
            common::repo_root().join("examples/10-release-miracolix-2026.1.yaml"),
        )
        .expect("release"),
    )
    .expect("yaml")
    .remove(0);
    let current: ComponentRelease = serde_json::from_value(doc).expect("release");
    let record = Record::running("miracolix-2026.1", &current.spec);
    server
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": record_name("marburg"), "namespace": "diz-marburg"},
            "data": record.to_data()}))
        .expect("record");
    let before =
        tokio::task::block_in_place(|| render(&kubeconfig, &release_2, "2026-03-05T12:00:00Z"));
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let before = String::from_utf8_lossy(&before.stdout).into_owned();
    assert!(before.contains(common::FLARE_2026_1) && !before.contains(&"b".repeat(64)));
    let after =
        tokio::task::block_in_place(|| render(&kubeconfig, &release_2, "2026-03-10T12:00:00Z"));
    assert!(String::from_utf8_lossy(&after.stdout).contains(&"b".repeat(64)));
    let _ = std::fs::remove_dir_all(&dir);
}
