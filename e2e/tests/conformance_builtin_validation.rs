//! Built-in kinds are decoded, defaulted and validated as kube-apiserver 1.33 does: unknown
//! fields pruned (warned about, or refused under Strict), JSON types checked, quantities stored
//! canonically, `SetDefaults_*` applied, and the Go validation's 422s with its messages. With the
//! real kubectl where that is how people meet it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{api_error, server};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use miracolix_e2e::apiserver::http::write_kubeconfig;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use serde_json::{Value, json};

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "resources": {"requests": {"cpu": "0.5", "memory": "1.5Gi"},
                        "limits": {"cpu": 1, "memory": "2048Mi"}}}]},
            },
        },
    })
}

/// `v` with `value` at `pointer` (whose parent exists).
fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(key.to_string(), value);
        }
        Some(Value::Array(a)) => a[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{parent} does not exist"),
    }
    v
}

async fn create_raw(
    client: &kube::Client,
    path: &str,
    query: &str,
    body: &Value,
) -> (u16, Vec<String>, Value) {
    let req = http::Request::post(format!("{path}{query}"))
        .header("Content-Type", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(body).expect("json"),
        ))
        .expect("request");
    let resp = client.send(req).await.expect("send");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn invalid_deployments_get_kube_apiservers_422() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let cases = [
        (
            with(deployment("neg"), "/spec/replicas", json!(-3)),
            "Deployment.apps \"neg\" is invalid: spec.replicas: Invalid value: -3: must be greater than or equal to 0",
            "spec.replicas",
        ),
        (
            with(
                deployment("mismatch"),
                "/spec/selector",
                json!({"matchLabels": {"app": "other"}}),
            ),
            "Deployment.apps \"mismatch\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"mismatch\"}: `selector` does not match template `labels`",
            "spec.template.metadata.labels",
        ),
        (
            with(
                deployment("never"),
                "/spec/template/spec/restartPolicy",
                json!("Never"),
            ),
            "Deployment.apps \"never\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.template.spec.restartPolicy",
        ),
        (
            with(
                deployment("port"),
                "/spec/template/spec/containers/0/ports/0/containerPort",
                json!(70000),
            ),
            "Deployment.apps \"port\" is invalid: spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.template.spec.containers[0].ports[0].containerPort",
        ),
        (
            with(
                deployment("req"),
                "/spec/template/spec/containers/0/resources/requests/cpu",
                json!("2"),
            ),
            "Deployment.apps \"req\" is invalid: spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.template.spec.containers[0].resources.requests[cpu]",
        ),
        (
            with(
                deployment("labels"),
                "/metadata/labels",
                json!({"bad key!": "x"}),
            ),
            "Deployment.apps \"labels\" is invalid: metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels",
        ),
    ];
    for (obj, message, field) in cases {
        let d: Deployment = serde_json::from_value(obj).expect("typed");
        let err = api_error(
            api.create(&PostParams::default(), &d)
                .await
                .expect_err(message),
        );
        assert_eq!(
            (err.code, err.reason.as_str()),
            (422, "Invalid"),
            "{message}"
        );
        assert_eq!(err.message, message);
        let causes = err.details.expect("details").causes;
        assert_eq!(
            causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
            [field],
            "{message}"
        );
    }
    // Without a selector (the typed client would refuse to serialise it).
    let mut no_selector = deployment("nosel");
    no_selector["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("selector");
    let (code, _, body) = create_raw(&client, DEPLOYMENTS, "", &no_selector).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "Deployment.apps \"nosel\" is invalid: spec.selector: Required value"
    );
}

#[tokio::test]
async fn wrong_json_types_and_bad_quantities_are_decode_errors() {
    let (_s, client) = server();
    let (code, _, body) = create_raw(
        &client,
        DEPLOYMENTS,
        "",
        &with(deployment("t"), "/spec/replicas", json!("3")),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
    );
    let (code, _, body) = create_raw(
        &client,
        DEPLOYMENTS,
        "",
        &with(
            deployment("q"),
            "/spec/template/spec/containers/0/resources/requests/cpu",
            json!("half"),
        ),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
}

#[tokio::test]
async fn unknown_fields_are_pruned_warned_about_or_refused() {
    let (s, client) = server();
    let obj = |name: &str| with(deployment(name), "/spec/foo", json!(1));
    let (code, warnings, _) = create_raw(&client, DEPLOYMENTS, "", &obj("warn")).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.foo\"""#]);
    let stored = s
        .object("apps", "deployments", "default", "warn")
        .expect("stored");
    assert!(stored["spec"].get("foo").is_none(), "pruned");

    let (code, warnings, _) = create_raw(
        &client,
        DEPLOYMENTS,
        "?fieldValidation=Ignore",
        &obj("ignore"),
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty());

    let (code, _, body) = create_raw(
        &client,
        DEPLOYMENTS,
        "?fieldValidation=Strict",
        &obj("strict"),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
    );
    assert!(
        s.object("apps", "deployments", "default", "strict")
            .is_none()
    );

    // Metadata and nested objects are pruned too.
    let nested = with(
        with(deployment("nested"), "/metadata/colour", json!("red")),
        "/spec/template/spec/containers/0/sidecar",
        json!(true),
    );
    let (code, warnings, _) = create_raw(&client, DEPLOYMENTS, "", &nested).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.template.spec.containers[0].sidecar\"""#,
            r#"299 - "unknown field \"metadata.colour\"""#,
        ]
    );
}

#[tokio::test]
async fn quantities_are_canonical_and_defaults_are_filled_in() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let d: Deployment = serde_json::from_value(deployment("web")).expect("typed");
    let stored = serde_json::to_value(
        api.create(&PostParams::default(), &d)
            .await
            .expect("created"),
    )
    .expect("json");
    let spec = &stored["spec"];
    let c = &spec["template"]["spec"]["containers"][0];
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1536Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}})
    );
    // apps/v1 SetDefaults_Deployment, core/v1 SetDefaults_PodSpec and SetDefaults_Container.
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");

    let svc: Api<Service> = Api::default_namespaced(client.clone());
    let s: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
    .expect("svc");
    let created = svc.create(&PostParams::default(), &s).await.expect("svc");
    let spec = created.spec.clone().expect("spec");
    let ip = spec.cluster_ip.clone().expect("cluster IP allocated");
    assert!(
        ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11"),
        "{ip}"
    );
    assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
    // A replace without the cluster IP keeps it (patchAllocatedValues).
    let mut again = created.clone();
    if let Some(spec) = again.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    let replaced = svc
        .replace("web", &PostParams::default(), &again)
        .await
        .expect("replace");
    assert_eq!(replaced.spec.and_then(|s| s.cluster_ip), Some(ip.clone()));
    // ...and may not change it.
    if let Some(spec) = again.spec.as_mut() {
        spec.cluster_ip = Some("10.96.0.99".to_string());
    }
    again.metadata.resource_version = None;
    let err = api_error(
        svc.replace("web", &PostParams::default(), &again)
            .await
            .expect_err("immutable"),
    );
    assert_eq!(
        err.message,
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.96.0.99\": field is immutable"
    );
}

/// Server-side apply of a manifest the server canonicalises and defaults: the applier owns only
/// what it sent, and applying the same manifest again changes nothing.
#[tokio::test]
async fn re_applying_a_defaulted_manifest_is_a_no_op() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let pp = PatchParams::apply("manifests").force();
    let first = api
        .patch("web", &pp, &Patch::Apply(deployment("web")))
        .await
        .expect("apply");
    let fields = serde_json::to_value(&first.metadata.managed_fields).expect("json");
    let owned = fields.to_string();
    assert!(
        !owned.contains("f:replicas"),
        "replicas is defaulted, not applied: {owned}"
    );
    assert!(!owned.contains("f:revisionHistoryLimit"), "{owned}");
    assert!(!owned.contains("f:imagePullPolicy"), "{owned}");
    assert!(owned.contains("f:cpu"), "{owned}");
    // The simulated deployment controller writes the status meanwhile; read what is stored now.
    let before = api.get("web").await.expect("get");
    let second = api
        .patch("web", &pp, &Patch::Apply(deployment("web")))
        .await
        .expect("re-apply");
    assert_eq!(
        before.metadata.resource_version, second.metadata.resource_version,
        "the same manifest again changes nothing"
    );
    assert_eq!(first.metadata.generation, second.metadata.generation);
}

#[tokio::test]
async fn configmaps_and_services_follow_their_own_name_rules() {
    let (_s, client) = server();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "a.b"}, "data": {"bad key": "1", "good.key": "2"}}),
    )
    .expect("cm");
    let err = api_error(
        cms.create(&PostParams::default(), &cm)
            .await
            .expect_err("422"),
    );
    assert_eq!(
        err.message,
        "ConfigMap \"a.b\" is invalid: data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    // A Service name is a DNS-1035 label: no dots, no leading digit.
    let svc: Api<Service> = Api::default_namespaced(client);
    let s: Service = serde_json::from_value(json!({"metadata": {"name": "a.b"},
        "spec": {"ports": [{"port": 80}]}}))
    .expect("svc");
    let err = api_error(
        svc.create(&PostParams::default(), &s)
            .await
            .expect_err("422"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(
            "Service \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"
        ),
        "{}",
        err.message
    );
}

// --- with the real kubectl ---------------------------------------------------------------------

const KUBECTL: &str = "/usr/bin/kubectl";

struct Kubectl {
    dir: PathBuf,
    _server: TestApiServer,
    _handle: miracolix_e2e::apiserver::http::ServerHandle,
}

impl Kubectl {
    async fn start(name: &str) -> Option<Self> {
        if !Path::new(KUBECTL).exists() {
            println!("skipped: {KUBECTL} not installed");
            return None;
        }
        let server = TestApiServer::with_config(Config {
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        let handle = server
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let dir =
            std::env::temp_dir().join(format!("miracolix-builtin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_kubeconfig(&dir.join("kubeconfig"), &handle.url(), Some("test-token"))
            .expect("kubeconfig");
        Some(Self {
            dir,
            _server: server,
            _handle: handle,
        })
    }

    async fn apply(&self, file: &str, manifest: &Value, extra: &[&str]) -> (bool, String) {
        let path = self.dir.join(file);
        std::fs::write(&path, serde_json::to_vec(manifest).expect("json")).expect("manifest");
        let out = common::within(
            "kubectl apply",
            tokio::process::Command::new(KUBECTL)
                .arg("apply")
                .arg("-f")
                .arg(&path)
                .args(extra)
                .env("KUBECONFIG", self.dir.join("kubeconfig"))
                .env("HOME", &self.dir)
                .arg("--cache-dir")
                .arg(self.dir.join("cache"))
                .output(),
        )
        .await
        .expect("kubectl runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

#[tokio::test]
async fn kubectl_apply_of_an_invalid_deployment_fails_with_the_servers_message() {
    let Some(k) = Kubectl::start("invalid").await else {
        return;
    };
    let (ok, out) = k
        .apply(
            "bad.json",
            &with(deployment("bad"), "/spec/replicas", json!(-3)),
            &[],
        )
        .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "The Deployment \"bad\" is invalid: spec.replicas: Invalid value: -3: must be greater than or equal to 0"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_refuses_unknown_fields_under_strict_and_warns_otherwise() {
    let Some(k) = Kubectl::start("unknown").await else {
        return;
    };
    let manifest = |name: &str| with(deployment(name), "/spec/foo", json!(1));
    let (ok, out) = k
        .apply("strict.json", &manifest("strict"), &["--validate=strict"])
        .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("strict decoding error: unknown field \"spec.foo\""),
        "{out}"
    );
    let (ok, out) = k
        .apply("warn.json", &manifest("warn"), &["--validate=warn"])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("Warning: unknown field \"spec.foo\""), "{out}");
    assert!(out.contains("deployment.apps/warn created"), "{out}");
}
