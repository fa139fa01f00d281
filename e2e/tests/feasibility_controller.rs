//! The FeasibilityEndpoint controller against the test API server: Stalled with the reason while
//! the site is missing or runs no FLARE, then the gate's objects and Ready; deleting the endpoint
//! removes the gate (garbage collection by owner reference) but not the site nor the gate's state
//! volume (the audit log).

mod repo;

use repo::root;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{
    ComponentRelease, DizSite, FeasibilityEndpoint, conditions, reasons,
};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{Context, Scope, feasibility};
use miracolix_operator::release::trust::TrustStore;
use serde_json::json;

const NS: &str = "diz-marburg";
const DIGEST: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000aa";

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 20s waiting for: {what}"),
    }
}

async fn wait_reason(
    api: &Api<FeasibilityEndpoint>,
    type_: &str,
    status: &str,
    reason: &str,
) -> FeasibilityEndpoint {
    let (t, s, r) = (type_.to_string(), status.to_string(), reason.to_string());
    let cond = await_condition(
        api.clone(),
        "marburg",
        move |o: Option<&FeasibilityEndpoint>| {
            o.and_then(|e| e.status.as_ref())
                .and_then(|st| conditions::find(&st.conditions, &t))
                .is_some_and(|c| c.status == s && c.reason == r)
        },
    );
    match tokio::time::timeout(Duration::from_secs(20), cond).await {
        Ok(found) => found.expect("watch").expect("endpoint exists"),
        Err(_) => {
            let now = api.get("marburg").await.ok().and_then(|e| e.status);
            let deployment = Api::<Deployment>::namespaced(api.clone().into_client(), NS)
                .get_opt("marburg-gate")
                .await
                .ok()
                .flatten()
                .and_then(|d| d.status);
            let pods =
                Api::<k8s_openapi::api::core::v1::Pod>::namespaced(api.clone().into_client(), NS)
                    .list(&Default::default())
                    .await
                    .map(|l| l.items.into_iter().map(|p| p.status).collect::<Vec<_>>());
            eprintln!("pods: {pods:?}");
            let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(
                api.clone().into_client(),
                NS,
            )
            .list(&Default::default())
            .await
            .map(|l| l.items.into_iter().map(|e| e.note).collect::<Vec<_>>());
            eprintln!("events: {events:?}");
            panic!(
                "timed out after 20s waiting for {type_}={status} ({reason}); status: {now:?}; gate Deployment: {deployment:?}"
            )
        }
    }
}

/// The test API server with the CRDs and the site's namespace.
fn start_server() -> TestApiServer {
    // The simulated kubelet holds the gate's pod to the operator image's `gate` contract
    // (catalog::own_image): Ready below means the pod as built would start.
    let server = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
        contracts: repo::catalogue_contracts(),
        ..Config::default()
    });
    for crd in std::fs::read_dir(root().join("crds")).expect("crds") {
        let path = crd.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("crd");
        for doc in miracolix_operator::yaml::from_multi_doc(&text).expect("yaml") {
            server.create(doc).expect("CRD installs");
        }
    }
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .expect("namespace");
    server
}

fn gate_release(name: &str) -> ComponentRelease {
    let image = |repo: &str| json!({"repository": repo, "digest": DIGEST, "version": "1"});
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
        "metadata": {"name": name},
        "spec": {"version": "2026.9", "channel": "candidate", "components": {
            "blaze": image("ghcr.io/samply/blaze"),
            "flare": image("ghcr.io/medizininformatik-initiative/flare"),
            "miracolix-gate": image("ghcr.io/miracum/miracolix-operator"),
        }},
    }))
    .expect("release")
}

fn marburg_endpoint() -> FeasibilityEndpoint {
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "FeasibilityEndpoint",
        "metadata": {"name": "marburg", "namespace": NS},
        "spec": {
            "siteRef": {"name": "marburg"},
            "privacy": {"epsilon": 0.25, "suppressBelow": 10},
            "portal": {
                "dsfFhirUrl": "https://dsf.example/fhir",
                "organizationIdentifier": "ukgm.de",
                "clientCertificateSecretRef": {"name": "dsf-cert"}
            }
        },
    }))
    .expect("endpoint")
}

fn operator_context(server: &TestApiServer) -> Arc<Context> {
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    Arc::new(Context::new(
        server.client_as("miracolix-operator"),
        Arc::new(trust),
        Arc::new(SystemClock),
    ))
}

/// The endpoint's site and release come from the operator's caches: once the endpoint is
/// Ready, a reconcile of it (the periodic resync) makes no API request at all.
#[tokio::test]
async fn a_noop_reconcile_of_a_ready_endpoint_makes_no_request() {
    let server = start_server();
    let client = server.client_as("e2e-test");
    Api::<ComponentRelease>::all(client.clone())
        .create(&PostParams::default(), &gate_release("gate-test"))
        .await
        .expect("release created");
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "marburg", "namespace": NS},
        "spec": {"siteId": "marburg", "release": {"name": "gate-test"},
                 "components": {"blaze": {}, "flare": {}}},
    }))
    .expect("site");
    let sites: Api<DizSite> = Api::namespaced(client.clone(), NS);
    sites
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    sites
        .patch_status(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"currentRelease": "gate-test"}})),
        )
        .await
        .expect("site status");
    // The token the gate mounts (without it its pod would not start).
    let token: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "marburg-gate-dsf-token", "namespace": NS},
        "stringData": {"token": "0123456789abcdef"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    let endpoints: Api<FeasibilityEndpoint> = Api::namespaced(client.clone(), NS);
    endpoints
        .create(&PostParams::default(), &marburg_endpoint())
        .await
        .expect("endpoint created");

    // No controller runs: each reconcile below is called directly, after the caches caught up
    // with the API server, so nothing else makes requests meanwhile.
    let ctx = operator_context(&server);
    let reconcile = || async {
        ctx.cache()
            .wait_consistent(&client)
            .await
            .expect("the caches catch up with the API server");
        let endpoint = endpoints.get("marburg").await.expect("endpoint");
        feasibility::reconcile(Arc::new(endpoint), ctx.clone())
            .await
            .expect("reconcile succeeds");
    };
    // The gate's objects are applied; its pod becomes available; the next reconcile sees it.
    reconcile().await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let available = await_condition(deployments, "marburg-gate", |d: Option<&Deployment>| {
        feasibility::available(d)
    });
    within("the gate Deployment available", available)
        .await
        .expect("watch");
    reconcile().await;
    let ready = endpoints.get("marburg").await.expect("endpoint");
    let cond = ready
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::READY))
        .expect("Ready");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", reasons::READY_REASON)
    );

    ctx.cache()
        .wait_consistent(&client)
        .await
        .expect("the caches catch up with the API server");
    server.clear_requests();
    feasibility::reconcile(Arc::new(ready), ctx.clone())
        .await
        .expect("no-op reconcile succeeds");
    let made: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.contains("miracolix-operator") && r.verb != "watch")
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    assert_eq!(
        made,
        Vec::<String>::new(),
        "a no-op reconcile of a Ready endpoint reads the caches, not the API server"
    );
}

#[tokio::test]
async fn endpoint_stalls_then_runs_the_gate_and_deletion_keeps_the_site() {
    let server = start_server();
    let client = server.client_as("e2e-test");
    let image = |repo: &str| json!({"repository": repo, "digest": DIGEST, "version": "1"});
    let release: ComponentRelease = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
        "metadata": {"name": "gate-test"},
        "spec": {"version": "2026.9", "channel": "candidate", "components": {
            "blaze": image("ghcr.io/samply/blaze"),
            "flare": image("ghcr.io/medizininformatik-initiative/flare"),
            "miracolix-gate": image("ghcr.io/miracum/miracolix-operator"),
        }},
    }))
    .expect("release");
    Api::<ComponentRelease>::all(client.clone())
        .create(&PostParams::default(), &release)
        .await
        .expect("release created");

    // The site creates the token its DSF sends (docs/feasibility.md); the gate mounts it.
    let token: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "marburg-gate-dsf-token", "namespace": NS},
        "stringData": {"token": "0123456789abcdef"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    let endpoints: Api<FeasibilityEndpoint> = Api::namespaced(client.clone(), NS);
    let endpoint: FeasibilityEndpoint = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "FeasibilityEndpoint",
        "metadata": {"name": "marburg", "namespace": NS},
        "spec": {
            "siteRef": {"name": "marburg"},
            "privacy": {"epsilon": 0.25, "suppressBelow": 10},
            "portal": {
                "dsfFhirUrl": "https://dsf.example/fhir",
                "organizationIdentifier": "ukgm.de",
                "clientCertificateSecretRef": {"name": "dsf-cert"}
            }
        },
    }))
    .expect("endpoint");
    endpoints
        .create(&PostParams::default(), &endpoint)
        .await
        .expect("endpoint created");

    // The controller runs in-process with its own identity.
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    let ctx = Arc::new(Context::new(
        server.client_as("miracolix-operator"),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(feasibility::run(ctx, Scope::Namespace(NS.into()), async {
        let _ = rx.await;
    }));

    // 1. No site yet.
    let stalled = wait_reason(
        &endpoints,
        conditions::STALLED,
        "True",
        reasons::SITE_NOT_FOUND,
    )
    .await;
    let ready = conditions::find(
        &stalled.status.as_ref().expect("status").conditions,
        conditions::READY,
    )
    .expect("Ready");
    assert_eq!(ready.status, "False");

    // 2. A site without FLARE: Stalled naming the field.
    let sites: Api<DizSite> = Api::namespaced(client.clone(), NS);
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "marburg", "namespace": NS},
        "spec": {"siteId": "marburg", "release": {"name": "gate-test"}, "components": {"blaze": {}}},
    }))
    .expect("site");
    sites
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    // The controller watches sites: the new site alone triggers the next look (the next
    // requeue of a Stalled endpoint is minutes away; `wait_reason` gives up after 20 s).
    let stalled = wait_reason(
        &endpoints,
        conditions::STALLED,
        "True",
        reasons::EXECUTOR_NOT_RUN,
    )
    .await;
    let msg = &conditions::find(
        &stalled.status.as_ref().expect("status").conditions,
        conditions::STALLED,
    )
    .expect("Stalled")
    .message;
    assert!(msg.contains("spec.components.flare"), "{msg}");

    // 3. FLARE enabled, the site running the release (its status as the DizSite controller writes it).
    sites
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"components": {"blaze": {}, "flare": {}}}})),
        )
        .await
        .expect("enable flare");
    sites
        .patch_status(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"currentRelease": "gate-test-2"}})),
        )
        .await
        .expect("site status");
    // The site runs a release this API server does not have (yet): nothing pins the gate.
    wait_reason(
        &endpoints,
        conditions::STALLED,
        "True",
        reasons::GATE_IMAGE_MISSING,
    )
    .await;
    // The release appears; the controller watches releases, so nothing else need change.
    let mut second = release.clone();
    second.metadata.name = Some("gate-test-2".into());
    second.metadata.resource_version = None;
    second.metadata.uid = None;
    Api::<ComponentRelease>::all(client.clone())
        .create(&PostParams::default(), &second)
        .await
        .expect("second release created");
    // Nothing touches the endpoint: the site's changes and the new release make it Ready.
    let ready = wait_reason(&endpoints, conditions::READY, "True", reasons::READY_REASON).await;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.observed_generation),
        ready.metadata.generation,
        "observedGeneration"
    );

    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("gate Deployment");
    let pod = deployment
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some(format!("ghcr.io/miracum/miracolix-operator@{DIGEST}").as_str())
    );
    let env: Vec<(String, String)> = pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&("GATE_EPSILON".into(), "0.25".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("GATE_REQUESTS_PER_HOUR".into(), "999".into())),
        "{env:?}"
    );
    Api::<Service>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("Service");
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("ConfigMap");
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("NetworkPolicy");
    let egress = serde_json::to_string(&policy.spec.and_then(|s| s.egress)).expect("json");
    assert!(
        egress.contains("\"diz.miracum.org/component\":\"flare\""),
        "{egress}"
    );

    // 3a. The same pod without its callers config mounted does not become ready: a Deployment
    // of it (not the operator's, which would take a change back) crash-loops with the gate's
    // message.
    let mut broken_pod = deployment
        .spec
        .clone()
        .map(|s| s.template)
        .expect("template");
    if let Some(spec) = broken_pod.spec.as_mut() {
        for c in &mut spec.containers {
            if let Some(m) = c.volume_mounts.as_mut() {
                m.retain(|m| m.name != "config");
            }
        }
    }
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("app".to_string(), "broken-gate".to_string());
    if let Some(meta) = broken_pod.metadata.as_mut() {
        meta.labels = Some(labels.clone());
    }
    let broken = Deployment {
        metadata: kube::api::ObjectMeta {
            name: Some("broken-gate".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(labels),
                ..Default::default()
            },
            template: broken_pod,
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &broken)
        .await
        .expect("broken gate Deployment");
    // Watch the broken gate's pods until one reports the kubelet's CrashLoopBackOff.
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), NS);
    let crash_loop = |p: &k8s_openapi::api::core::v1::Pod| {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .find(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            })
            .cloned()
    };
    let crashing = kube::runtime::watcher(
        pods,
        kube::runtime::watcher::Config::default().labels("app=broken-gate"),
    )
    .applied_objects()
    .try_filter_map(|p| futures::future::ready(Ok(crash_loop(&p))));
    futures::pin_mut!(crashing);
    let status = within("the broken gate pod crash-looping", crashing.try_next())
        .await
        .expect("watch")
        .expect("a crash-looping container");
    // The message is what the gate prints when it cannot read its callers config.
    let said = format!("{:?} {:?}", status.state, status.last_state);
    assert!(
        said.contains("callers.json"),
        "the gate's own message: {said}"
    );
    let broken_status = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("broken-gate")
        .await
        .expect("broken gate")
        .status;
    assert_eq!(
        broken_status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
        0,
        "the broken gate is not available"
    );

    // 3b. Direct-broker mode. A bad spec.direct is refused by the API server, naming the field.
    let refused = endpoints
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"direct": {
                "host": "feasibility.ukgm.de",
                "serverCertificateSecretRef": {"name": "marburg-gate-tls"},
                "clientCaSecretRef": {"name": "broker-ca"},
                "allowedClients": ["*.forschen-fuer-gesundheit.de"],
            }}})),
        )
        .await
        .expect_err("a wildcard client name is refused");
    let refused = refused.to_string();
    assert!(
        refused.contains("spec.direct.allowedClients[0]") && refused.contains("no wildcard"),
        "{refused}"
    );
    // The site's two Secrets (the operator never reads them; the gate mounts them).
    for secret in [
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "marburg-gate-tls", "namespace": NS},
               "stringData": {"tls.crt": "PEM", "tls.key": "PEM"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "broker-ca", "namespace": NS},
               "stringData": {"ca.crt": "PEM"}}),
    ] {
        let secret: Secret = serde_json::from_value(secret).expect("secret");
        Api::<Secret>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &secret)
            .await
            .expect("Secret");
    }
    let direct = endpoints
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"direct": {
                "host": "feasibility.ukgm.de",
                "serverCertificateSecretRef": {"name": "marburg-gate-tls"},
                "clientCaSecretRef": {"name": "broker-ca"},
                "allowedClients": ["broker.forschen-fuer-gesundheit.de"],
            }}})),
        )
        .await
        .expect("direct mode on");
    let generation = direct.metadata.generation;
    let ready_again = await_condition(
        endpoints.clone(),
        "marburg",
        move |o: Option<&FeasibilityEndpoint>| {
            o.and_then(|e| e.status.as_ref()).is_some_and(|st| {
                st.observed_generation == generation
                    && conditions::find(&st.conditions, conditions::READY)
                        .is_some_and(|c| c.status == "True")
            })
        },
    );
    within("Ready with direct mode", ready_again)
        .await
        .expect("watch");
    let ingress = Api::<Ingress>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("the passthrough Ingress");
    assert_eq!(
        ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("nginx.ingress.kubernetes.io/ssl-passthrough"))
            .map(String::as_str),
        Some("true")
    );
    let rule = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .and_then(|r| r.first())
        .cloned()
        .expect("rule");
    assert_eq!(rule.host.as_deref(), Some("feasibility.ukgm.de"));
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("NetworkPolicy");
    let ingress_rules = serde_json::to_value(policy.spec.and_then(|s| s.ingress)).expect("json");
    assert_eq!(
        ingress_rules[1],
        json!({
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
            "ports": [{"port": 8443, "protocol": "TCP"}],
        }),
        "{ingress_rules}"
    );
    let service = Api::<Service>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("Service");
    assert!(
        service
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .iter()
            .any(|p| p.name.as_deref() == Some("https") && p.port == 8443),
        "the Service has the port the Ingress names"
    );
    // Direct mode off: its Ingress goes, the gate stays.
    endpoints
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"direct": null}})),
        )
        .await
        .expect("direct mode off");
    let ingresses = Api::<Ingress>::namespaced(client.clone(), NS);
    let gone = await_condition(ingresses, "marburg-gate", |o: Option<&Ingress>| o.is_none());
    within("the passthrough Ingress deleted", gone)
        .await
        .expect("watch");
    Api::<Deployment>::namespaced(client.clone(), NS)
        .get("marburg-gate")
        .await
        .expect("the gate stays");

    // 4. Deleting the endpoint removes the gate, not the site and not the audit volume.
    endpoints
        .delete("marburg", &DeleteParams::foreground())
        .await
        .expect("delete");
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let gone = await_condition(deployments, "marburg-gate", |o: Option<&Deployment>| {
        o.is_none()
    });
    within("gate Deployment garbage-collected", gone)
        .await
        .expect("watch");
    sites.get("marburg").await.expect("the site stays");
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .get("marburg-gate-state")
        .await
        .expect("the gate's state volume (audit log) stays");

    let _ = tx.send(());
    within("controller shutdown", task).await.expect("task");
}
