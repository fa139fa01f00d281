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
            listed.lines().any(|l| l.contains("Normal")
                && l.contains(reasons::APPLIED)
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
            .ok(&[
                "get",
                "events.v1.",
                "-n",
                NS,
                "-o",
                "jsonpath={.items[0].metadata.name}",
            ])
            .await;
        k.ok(&["delete", "events.v1.events.k8s.io", &name, "-n", NS])
            .await;
        let (found, _, err) = k.run(&["get", "events.v1.", &name, "-n", NS]).await;
        assert!(!found && err.contains("NotFound"), "{err}");
    }
}

/// kubectl's generators send protobuf: the objects are stored as kube-apiserver stores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_create_built_in_objects_from_protobuf() {
    for bin in [Path::new(KUBECTL), &kubectl_137()] {
        let Some(k) = Kubectl::start_with("generators", bin).await else {
            continue;
        };
        k.ok(&["create", "namespace", "team"]).await;
        k.ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            "team",
            "--from-literal=mode=fast",
            "--from-literal=empty=",
        ])
        .await;
        k.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "team",
            "--from-literal=password=s3cr3t",
        ])
        .await;
        k.ok(&[
            "create",
            "deployment",
            "web",
            "-n",
            "team",
            "--image=nginx:1",
            "--replicas=0",
            "--port=8080",
        ])
        .await;
        k.ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "team",
            "--tcp=80:8080",
        ])
        .await;
        k.ok(&["create", "serviceaccount", "robot", "-n", "team"])
            .await;
        k.ok(&[
            "create",
            "role",
            "reader",
            "-n",
            "team",
            "--verb=get,list",
            "--resource=pods",
        ])
        .await;
        k.ok(&[
            "create",
            "rolebinding",
            "robot-reads",
            "-n",
            "team",
            "--role=reader",
            "--serviceaccount=team:robot",
        ])
        .await;
        k.ok(&["create", "job", "once", "-n", "team", "--image=busybox:1"])
            .await;
        k.ok(&[
            "create",
            "cronjob",
            "nightly",
            "-n",
            "team",
            "--image=busybox:1",
            "--schedule=0 3 * * *",
        ])
        .await;
        let s = &k.server;
        let get = |group: &str, plural: &str, name: &str| {
            s.object(group, plural, "team", name)
                .unwrap_or_else(|| panic!("{} created {plural}/{name}", bin.display()))
        };
        let ns = s
            .object("", "namespaces", "", "team")
            .expect("namespace created");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        let cm = get("", "configmaps", "settings");
        assert_eq!(cm["data"], json!({"mode": "fast", "empty": ""}), "{cm}");
        // Created by kubectl-create, as kubectl asked (`fieldManager=kubectl-create`).
        assert_eq!(
            cm["metadata"]["managedFields"][0]["manager"],
            "kubectl-create"
        );
        let secret = get("", "secrets", "creds");
        assert_eq!(secret["data"], json!({"password": "czNjcjN0"}), "{secret}");
        let deploy = get("apps", "deployments", "web");
        assert_eq!(
            deploy["spec"]["replicas"], 0,
            "a pointer's zero is kept: {deploy}"
        );
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0],
            // As sent, plus the defaults kube-apiserver applies (SetDefaults_Container,
            // SetDefaults_ContainerPort).
            json!({"name": "nginx", "image": "nginx:1", "resources": {},
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}),
            "{deploy}"
        );
        assert!(
            deploy["spec"].get("paused").is_none(),
            "zero non-pointers are left out"
        );
        let svc = get("", "services", "web");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}),
            "{svc}"
        );
        let binding = get("rbac.authorization.k8s.io", "rolebindings", "robot-reads");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "team"}])
        );
        let cron = get("batch", "cronjobs", "nightly");
        assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
        // What kubectl prints back is read from the JSON answer.
        let out = k
            .ok(&[
                "get",
                "cm",
                "settings",
                "-n",
                "team",
                "-o",
                "jsonpath={.data.mode}",
            ])
            .await;
        assert_eq!(out, "fast");
        k.ok(&["delete", "namespace", "team"]).await;
    }
}

/// `kubectl explain` from OpenAPI v3: custom resources from their CRD's schema, built-in kinds
/// from Kubernetes 1.33's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_crd_and_built_in_schemas() {
    for bin in [Path::new(KUBECTL), &kubectl_137()] {
        let server = reconciled_site().await;
        let Some(k) = Kubectl::serve("explain", bin, server).await else {
            continue;
        };
        let spec = k.ok(&["explain", "dizsite.spec"]).await;
        assert!(spec.contains("KIND:       DizSite"), "{spec}");
        assert!(spec.contains("GROUP:      diz.miracum.org"), "{spec}");
        assert!(spec.contains("VERSION:    v1alpha1"), "{spec}");
        for field in ["siteId", "release", "components"] {
            assert!(
                spec.contains(&format!("  {field}\t<")),
                "{} explain: {field}\n{spec}",
                bin.display()
            );
        }
        let recursive = k
            .ok(&["explain", "dizsite.spec.components", "--recursive"])
            .await;
        assert!(recursive.contains("  blaze\t<Object>"), "{recursive}");
        assert!(recursive.contains("    resources\t<"), "{recursive}");
        let replicas = k.ok(&["explain", "deployment.spec.replicas"]).await;
        assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
        assert!(replicas.contains("Number of desired pods."), "{replicas}");
        let meta = k.ok(&["explain", "dizsite.metadata.labels"]).await;
        assert!(meta.contains("FIELD: labels <map[string]string>"), "{meta}");
    }
}

/// `get -o wide` shows the wide columns kube-apiserver prints; `get all` lists the kinds of the
/// `all` category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_wide_and_get_all() {
    for bin in [Path::new(KUBECTL), &kubectl_137()] {
        let Some(k) = Kubectl::start_with("wide", bin).await else {
            continue;
        };
        k.ok(&["create", "namespace", "team"]).await;
        k.ok(&[
            "create",
            "deployment",
            "web",
            "-n",
            "team",
            "--image=nginx:1",
        ])
        .await;
        k.ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "team",
            "--tcp=80:8080",
        ])
        .await;
        k.ok(&["create", "configmap", "settings", "-n", "team"])
            .await;
        k.ok(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "team",
            "--timeout=10s",
        ])
        .await;
        let deploy = k.ok(&["get", "deploy", "-n", "team", "-o", "wide"]).await;
        assert_eq!(
            kubectl::header(&deploy),
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
            "{deploy}"
        );
        let row: Vec<&str> = deploy
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(row[5..], ["nginx", "nginx:1", "app=web"], "{deploy}");
        let pods = k.ok(&["get", "pods", "-n", "team", "-o", "wide"]).await;
        assert_eq!(
            kubectl::header(&pods).join(" "),
            "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
            "{pods}"
        );
        let svc = k
            .ok(&["get", "svc", "web", "-n", "team", "-o", "wide"])
            .await;
        assert_eq!(
            kubectl::header(&svc),
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ],
            "{svc}"
        );
        let rs = k.ok(&["get", "rs", "-n", "team", "-o", "wide"]).await;
        assert_eq!(
            kubectl::header(&rs)[5..],
            ["CONTAINERS", "IMAGES", "SELECTOR"],
            "{rs}"
        );
        // Without -o wide the priority-1 columns stay hidden.
        let plain = k.ok(&["get", "deploy", "-n", "team"]).await;
        assert_eq!(
            kubectl::header(&plain),
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        );
        let all = k.ok(&["get", "all", "-n", "team"]).await;
        for shown in [
            "pod/web-",
            "service/web",
            "deployment.apps/web",
            "replicaset.apps/web-",
        ] {
            assert!(
                all.contains(shown),
                "{} get all shows {shown}:\n{all}",
                bin.display()
            );
        }
        assert!(
            !all.contains("configmap"),
            "ConfigMaps are not in `all`:\n{all}"
        );
    }
}
