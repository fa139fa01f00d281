//! Workloads as the controllers and the kubelet make them: Deployments get a ReplicaSet and
//! pods, StatefulSets pods `<name>-<ordinal>`, Jobs a pod that completes or fails, and pods
//! report what a kubelet reports (container waiting reasons, readiness), from the image's
//! contract and the namespace's Secrets and ConfigMaps.

mod common;

use common::within;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use miracolix_e2e::kubelet::Contracts;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use serde_json::{Value, json};

const NS: &str = "default";

/// An image whose process needs `API_KEY`, runs as the named user `app` (uid 1000), writes
/// `/data` and serves `/health` on 8080.
fn server() -> (TestApiServer, kube::Client) {
    let contracts = Contracts::from_json(
        &json!([{
            "image": "app", "repository": "example.org/app", "source": "example/app@v1",
            "user": {"declared": "app", "uid": 1000},
            "writes": [{"path": "/data", "kind": "dir"}],
            "required": [{"name": "API_KEY", "secret": true, "message": "API_KEY is not set"}],
            "ports": [8080],
            "endpoints": [{"path": "/health", "port": 8080}],
        }])
        .to_string(),
    )
    .expect("contracts");
    let server = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
        contracts,
        ..Config::default()
    });
    let client = server.client();
    (server, client)
}

fn pod_spec(run_as_user: Option<i64>, with_key: bool) -> Value {
    let mut env = vec![];
    if with_key {
        env.push(json!({"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "app", "key": "key"}}}));
    }
    let mut sc = json!({"runAsNonRoot": true});
    if let Some(u) = run_as_user {
        sc["runAsUser"] = json!(u);
    }
    json!({
        "securityContext": sc,
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{
            "name": "app", "image": "example.org/app@sha256:aaaa",
            "env": env,
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
            "securityContext": {"readOnlyRootFilesystem": true},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
    })
}

fn deployment(name: &str, spec: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }))
    .expect("deployment")
}

async fn pods_of(client: &kube::Client, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods")
        .items
}

fn waiting_reason(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

async fn create_secret(client: &kube::Client) {
    let s: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "app", "namespace": NS}, "data": {"key": "a2V5"}}))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &s)
        .await
        .expect("secret created");
}

#[tokio::test]
async fn a_deployment_gets_a_replica_set_and_ready_pods() {
    let (_s, client) = server();
    create_secret(&client).await;
    let api = Api::<Deployment>::namespaced(client.clone(), NS);
    api.create(
        &PostParams::default(),
        &deployment("web", pod_spec(Some(1000), true)),
    )
    .await
    .expect("created");
    let d = within(
        "deployment ready",
        await_condition(api, "web", |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                == Some(2)
        }),
    )
    .await
    .expect("watch")
    .expect("exists");
    let uid = d.metadata.uid.clone().expect("uid");
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("replicasets")
        .items;
    assert_eq!(rs.len(), 1);
    assert!(rs[0].metadata.owner_references.as_ref().expect("owner")[0].uid == uid);
    let pods = pods_of(&client, "web").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let st = p.status.as_ref().expect("status");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st.container_statuses.as_ref().expect("cs")[0].ready);
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(
            p.metadata
                .labels
                .as_ref()
                .expect("labels")
                .contains_key("pod-template-hash")
        );
    }
}

#[tokio::test]
async fn pods_report_what_the_kubelet_reports_and_retry_when_the_secret_appears() {
    let (_s, client) = server();
    // No numeric user for a named image user: the kubelet cannot verify non-root.
    let api = Api::<Deployment>::namespaced(client.clone(), NS);
    api.create(
        &PostParams::default(),
        &deployment("named", pod_spec(None, true)),
    )
    .await
    .expect("created");
    let pods = pods_of(&client, "named").await;
    assert!(!pods.is_empty());
    assert_eq!(
        waiting_reason(&pods[0]).as_deref(),
        Some("CreateContainerConfigError")
    );
    let d = api.get("named").await.expect("deployment");
    assert_eq!(d.status.and_then(|s| s.ready_replicas), None);

    // The Secret is missing: the same reason, naming the Secret.
    api.create(
        &PostParams::default(),
        &deployment("keyed", pod_spec(Some(1000), true)),
    )
    .await
    .expect("created");
    let pods = pods_of(&client, "keyed").await;
    let cs = &pods[0]
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("cs")[0];
    let waiting = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(
        waiting.reason.as_deref(),
        Some("CreateContainerConfigError")
    );
    assert_eq!(waiting.message.as_deref(), Some("secret \"app\" not found"));
    // Created later: the kubelet retries and the pods become ready.
    create_secret(&client).await;
    within(
        "ready after the secret appears",
        await_condition(api.clone(), "keyed", |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                == Some(2)
        }),
    )
    .await
    .expect("watch");

    // A required setting missing: the process exits with its message.
    api.create(
        &PostParams::default(),
        &deployment("nokey", pod_spec(Some(1000), false)),
    )
    .await
    .expect("created");
    let pods = pods_of(&client, "nokey").await;
    let cs = &pods[0]
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("cs")[0];
    assert_eq!(
        waiting_reason(&pods[0]).as_deref(),
        Some("CrashLoopBackOff")
    );
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(last.exit_code, 1);
    assert!(
        last.message
            .as_deref()
            .is_some_and(|m| m.contains("API_KEY is not set"))
    );
}

#[tokio::test]
async fn statefulset_pods_are_named_by_ordinal() {
    let (_s, client) = server();
    create_secret(&client).await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": NS},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec(Some(1000), true)}},
    }))
    .expect("sts");
    Api::<StatefulSet>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &sts)
        .await
        .expect("created");
    let mut names: Vec<String> = pods_of(&client, "db")
        .await
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1"]);
}

#[tokio::test]
async fn jobs_complete_or_fail() {
    let (_s, client) = server();
    create_secret(&client).await;
    let api = Api::<Job>::namespaced(client.clone(), NS);
    let job = |name: &str, key: bool| -> Job {
        let mut spec = pod_spec(Some(1000), key);
        spec["restartPolicy"] = json!("Never");
        serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}))
        .expect("job")
    };
    api.create(&PostParams::default(), &job("ok", true))
        .await
        .expect("job");
    within(
        "job completes",
        await_condition(api.clone(), "ok", conditions::is_job_completed()),
    )
    .await
    .expect("watch");
    let pods = pods_of(&client, "ok").await;
    assert_eq!(
        pods[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );

    api.create(&PostParams::default(), &job("bad", false))
        .await
        .expect("job");
    let failed = within(
        "job fails",
        await_condition(api, "bad", |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
        }),
    )
    .await
    .expect("watch")
    .expect("job");
    let c = failed
        .status
        .expect("status")
        .conditions
        .expect("conditions");
    let f = c.iter().find(|c| c.type_ == "Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("BackoffLimitExceeded"));
}

#[tokio::test]
async fn a_bare_pod_runs_or_says_why_not() {
    let (_s, client) = server();
    let api = Api::<Pod>::namespaced(client.clone(), NS);
    let pod = |name: &str| -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": pod_spec(Some(1000), true)}))
        .expect("pod")
    };
    api.create(&PostParams::default(), &pod("early"))
        .await
        .expect("pod");
    let p = api.get("early").await.expect("pod");
    assert_eq!(
        waiting_reason(&p).as_deref(),
        Some("CreateContainerConfigError")
    );
    create_secret(&client).await;
    api.create(&PostParams::default(), &pod("late"))
        .await
        .expect("pod");
    within(
        "pod running",
        await_condition(api, "late", conditions::is_pod_running()),
    )
    .await
    .expect("watch");
}
