//! The real kubectl over HTTP: discovery, server-side apply, `wait`, and server-side printed
//! tables. Skips (with a printed reason) where kubectl is not installed.

mod common;

mod kubectl;

use kubectl::{Kubectl, kubectl_137};

/// The widget CRD of the conformance suites, installed with kubectl.
trait Widgets {
    async fn install_widgets(&self);
}

impl Widgets for Kubectl {
    /// Applies the widget CRD and waits until it is Established.
    async fn install_widgets(&self) {
        let crd = self.file("crd.yaml", &crd_yaml());
        self.ok(&["apply", "--server-side", "-f", &crd]).await;
        self.ok(&[
            "wait",
            "--for=condition=established",
            "crd/widgets.conformance.example.org",
            "--timeout=10s",
        ])
        .await;
    }
}

fn crd_yaml() -> String {
    serde_json::to_string_pretty(&common::widget_crd()).expect("json is yaml")
}

const WIDGET: &str = "apiVersion: conformance.example.org/v1
kind: Widget
metadata:
  name: erlangen
spec:
  siteId: erlangen
  replicas: 1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_crd_waits_and_prints_tables() {
    let Some(k) = Kubectl::start("crd").await else {
        return;
    };
    let crd = k.file("crd.yaml", &crd_yaml());
    let out = k.ok(&["apply", "--server-side", "-f", &crd]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = k
        .ok(&[
            "wait",
            "--for=condition=established",
            "crd/widgets.conformance.example.org",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let w = k.file("w.yaml", WIDGET);
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let table = k.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SITE", "READY", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("erlangen") && l.contains(" erlangen ")),
        "{table}"
    );
    // Short names and categories resolve through discovery.
    assert!(k.ok(&["get", "wd"]).await.contains("erlangen"));
    assert!(k.ok(&["get", "gadgets"]).await.contains("erlangen"));
    // Re-applying the same manifest is accepted and changes nothing.
    let before = k
        .ok(&[
            "get",
            "widget",
            "erlangen",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let after = k
        .ok(&[
            "get",
            "widget",
            "erlangen",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_validation_errors_verbatim() {
    let Some(k) = Kubectl::start("invalid").await else {
        return;
    };
    k.install_widgets().await;
    let bad = k.file(
        "bad.yaml",
        &WIDGET.replace("replicas: 1", "replicas: 3\n  maxReplicas: 2"),
    );
    let (ok, _out, err) = k.run(&["apply", "--server-side", "-f", &bad]).await;
    assert!(!ok);
    assert!(
        err.contains("replicas must not exceed maxReplicas"),
        "{err}"
    );
    let unknown = k.file(
        "unknown.yaml",
        &WIDGET.replace("replicas: 1", "replicas: 1\n  bogus: 1"),
    );
    let (ok, _out, err) = k.run(&["apply", "--server-side", "-f", &unknown]).await;
    assert!(!ok, "kubectl validates strictly by default");
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_out_deployments() {
    let Some(k) = Kubectl::start("deploy").await else {
        return;
    };
    let d = k.file(
        "d.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1
",
    );
    k.ok(&["apply", "--server-side", "-f", &d]).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=10s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    k.ok(&["scale", "deployment/web", "--replicas=3"]).await;
    let replicas = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ])
        .await;
    assert_eq!(replicas, "3");
    // The columns kube-apiserver prints for built-in kinds, as kubectl shows them.
    let header = |table: &str| -> Vec<String> {
        table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let deploys = k.ok(&["get", "deploy"]).await;
    assert_eq!(
        header(&deploys),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{deploys}"
    );
    assert!(
        deploys
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("3/3")),
        "{deploys}"
    );
    let pods = k.ok(&["get", "pods"]).await;
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert!(
        pods.lines()
            .skip(1)
            .all(|l| l.contains(" 1/1 ") && l.contains(" Running ")),
        "{pods}"
    );
    let rs = k.ok(&["get", "rs"]).await;
    assert_eq!(
        header(&rs),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{rs}"
    );
    k.ok(&["delete", "deployment", "web"]).await;
    let (_, out, err) = k.run(&["get", "deploy"]).await;
    assert!(
        out.is_empty() && err.contains("No resources found"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_dry_runs_and_diff_change_nothing() {
    let Some(k) = Kubectl::start("dry-run").await else {
        return;
    };
    k.install_widgets().await;
    let w = k.file("w.yaml", WIDGET);
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let rv = k.server.resource_version();
    let stored = k
        .server
        .object("conformance.example.org", "widgets", "default", "erlangen");

    let changed = k.file(
        "changed.yaml",
        &WIDGET.replace("replicas: 1", "replicas: 2"),
    );
    let out = k
        .ok(&["apply", "--server-side", "--dry-run=server", "-f", &changed])
        .await;
    assert!(out.contains("serverside-applied (server dry run)"), "{out}");
    let fresh = k.file(
        "fresh.yaml",
        &WIDGET.replace("name: erlangen", "name: fresh"),
    );
    let out = k
        .ok(&["apply", "--server-side", "--dry-run=server", "-f", &fresh])
        .await;
    assert!(
        out.contains("fresh serverside-applied (server dry run)"),
        "{out}"
    );

    // kubectl diff dry-runs the apply and diffs the answer against the live object; exit
    // code 1 means "differences found".
    for args in [
        vec!["diff", "--server-side", "-f", changed.as_str()],
        vec!["diff", "-f", changed.as_str()],
    ] {
        let (ok, out, err) = k.run(&args).await;
        assert!(!ok, "differences are reported with exit code 1: {out}{err}");
        assert!(
            out.lines()
                .any(|l| l.trim_start_matches('+').trim() == "replicas: 2")
                && out
                    .lines()
                    .any(|l| l.trim_start_matches('-').trim() == "replicas: 1"),
            "kubectl {}:\n{out}{err}",
            args.join(" ")
        );
    }
    let (ok, out, err) = k.run(&["diff", "--server-side", "-f", &w]).await;
    assert!(ok, "no differences for the applied manifest: {out}{err}");

    let out = k
        .ok(&["delete", "widget", "erlangen", "--dry-run=server"])
        .await;
    assert!(out.contains("deleted (server dry run)"), "{out}");

    // Every write bumps the one global resourceVersion and every watch event carries its
    // own, so an unchanged resourceVersion means nothing was written and nothing was sent.
    assert_eq!(k.server.resource_version(), rv);
    assert_eq!(
        k.server
            .object("conformance.example.org", "widgets", "default", "erlangen"),
        stored
    );
    assert!(
        k.server
            .object("conformance.example.org", "widgets", "default", "fresh")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_unknown_field_warnings_with_validate_warn() {
    let Some(k) = Kubectl::start("warn").await else {
        return;
    };
    k.install_widgets().await;
    let unknown = k.file(
        "unknown.yaml",
        &WIDGET.replace("replicas: 1", "replicas: 1\n  bogus: 1"),
    );
    let (ok, out, err) = k
        .run(&["apply", "--server-side", "--validate=warn", "-f", &unknown])
        .await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(r#"Warning: unknown field "spec.bogus""#),
        "the server's warning header is printed: {err}"
    );
    let stored = k
        .server
        .object("conformance.example.org", "widgets", "default", "erlangen")
        .expect("stored");
    assert!(stored["spec"].get("bogus").is_none(), "pruned: {stored}");
    // Ignore prunes silently.
    let other = k.file(
        "other.yaml",
        &std::fs::read_to_string(&unknown)
            .expect("read")
            .replace("name: erlangen", "name: other"),
    );
    let (ok, out, err) = k
        .run(&["apply", "--server-side", "--validate=false", "-f", &other])
        .await;
    assert!(ok, "{out}{err}");
    assert!(!err.contains("Warning"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_137_uses_aggregated_discovery() {
    let Some(k) = Kubectl::start_with("aggregated", &kubectl_137()).await else {
        return;
    };
    k.install_widgets().await;
    let w = k.file("w.yaml", WIDGET);
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let resources = k
        .ok(&["api-resources", "--api-group", "conformance.example.org"])
        .await;
    let row: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("widgets"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "widgets",
            "wd",
            "conformance.example.org/v1",
            "true",
            "Widget"
        ],
        "{resources}"
    );
    // With a fresh cache and -v=6 every request is logged: the group-version documents of
    // legacy discovery are never fetched, /apis answered everything.
    let _ = std::fs::remove_dir_all(k.dir.join("cache"));
    let (ok, out, err) = k.run(&["get", "wd", "-v=6"]).await;
    assert!(ok && out.contains("erlangen"), "{out}{err}");
    assert!(
        err.contains("/apis?timeout"),
        "aggregated /apis requested: {err}"
    );
    for legacy in [
        "/apis/conformance.example.org/v1?",
        "/api/v1?",
        "/apis/apps/v1?",
    ] {
        assert!(
            !err.contains(legacy),
            "legacy discovery {legacy} fetched: {err}"
        );
    }
    assert!(k.ok(&["get", "gadgets"]).await.contains("erlangen"));
    let out = k.ok(&["scale", "widget", "erlangen", "--replicas=3"]).await;
    assert!(out.contains("scaled"), "{out}");
}

/// `kubectl get -w` watches with `as=Table` and prints each change as a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_rows() {
    use tokio::io::AsyncBufReadExt;
    let Some(k) = Kubectl::start("watch").await else {
        return;
    };
    k.install_widgets().await;
    let w = k.file("w.yaml", WIDGET);
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let mut child = tokio::process::Command::new(&k.bin)
        .args(["get", "widgets", "-w", "--cache-dir"])
        .arg(k.dir.join("cache"))
        .env("KUBECONFIG", k.dir.join("kubeconfig"))
        .env("HOME", &k.dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl get -w");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        common::within("a line of kubectl get -w", lines.next_line())
            .await
            .expect("read")
            .expect("a line")
    };
    let header = next_line().await;
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SITE", "READY", "AGE"]
    );
    assert!(next_line().await.starts_with("erlangen"));
    let fresh = k.file(
        "fresh.yaml",
        &WIDGET.replace("name: erlangen", "name: fresh"),
    );
    k.ok(&["apply", "--server-side", "-f", &fresh]).await;
    let row = next_line().await;
    assert!(
        row.starts_with("fresh") && row.contains(" erlangen "),
        "{row}"
    );
    let _ = child.kill().await;
}
