//! The ProposalInbox controller against the test API server: Stalled naming the field while its
//! site has no login, Stalled naming the Secret its pod cannot mount, then Ready with every object
//! and the counts the inbox's summary reports; deleting the inbox removes its objects (garbage
//! collection by owner reference) but keeps its data volume.
//!
//! The test API server runs no pods, so the summary comes from a stub HTTP server on 127.0.0.1,
//! reached through the controller's injectable resolver (docs/testing.md); the request it serves
//! is the controller's real HTTP request.

mod repo;

use repo::root;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{ComponentRelease, DizSite, ProposalInbox, conditions, reasons};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::inbox::summary::HttpSummary;
use miracolix_operator::controller::{Context, Scope, inbox};
use miracolix_operator::release::trust::TrustStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "diz-leipzig";
const DIGEST: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000bb";
const SUMMARY: &str = r#"{"counts": {"DIZ_CHECK": 2, "UAC_APPROVED": 1}, "overdue": 1, "lastDecisionAt": "2026-11-28T09:30:00Z", "notifications": [{"name": "uac-mailbox", "failures": 3, "lastError": "550 mailbox unavailable"}]}"#;

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 30s waiting for: {what}"),
    }
}

/// A stub of the inbox's ops port: answers every request with [`SUMMARY`] and counts the
/// requests for `/api/v1/summary`.
async fn stub_summary_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                if head.starts_with("GET /api/v1/summary ") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{SUMMARY}",
                    SUMMARY.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

async fn wait_for(
    api: &Api<ProposalInbox>,
    what: &str,
    test: impl Fn(&ProposalInbox) -> bool + Send + 'static,
) -> ProposalInbox {
    let cond = await_condition(api.clone(), "leipzig", move |o: Option<&ProposalInbox>| {
        o.is_some_and(&test)
    });
    match tokio::time::timeout(Duration::from_secs(30), cond).await {
        Ok(found) => found.expect("watch").expect("inbox exists"),
        Err(_) => {
            let now = api.get("leipzig").await.ok().and_then(|e| e.status);
            panic!("timed out after 30s waiting for {what}; status: {now:#?}")
        }
    }
}

fn condition<'a>(
    inbox: &'a ProposalInbox,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    inbox
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
}

fn has(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> impl Fn(&ProposalInbox) -> bool {
    move |i| condition(i, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

fn secret(name: &str, data: serde_json::Value) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": data,
    }))
    .expect("secret")
}

/// A test API server with the CRDs, a release pinning the inbox, and the DizSite `leipzig`
/// running it, with an ingress and no login.
async fn cluster_with_site() -> (TestApiServer, kube::Client) {
    let server = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
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
    let client = server.client_as("e2e-test");
    let image = |repo: &str| json!({"repository": repo, "digest": DIGEST, "version": "1"});
    let release: ComponentRelease = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
        "metadata": {"name": "inbox-test"},
        "spec": {"version": "2026.9", "channel": "candidate", "components": {
            "blaze": image("ghcr.io/samply/blaze"),
            "miracolix-inbox": image("ghcr.io/miracum/miracolix-operator"),
        }},
    }))
    .expect("release");
    Api::<ComponentRelease>::all(client.clone())
        .create(&PostParams::default(), &release)
        .await
        .expect("release created");

    let sites: Api<DizSite> = Api::namespaced(client.clone(), NS);
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "leipzig", "namespace": NS},
        "spec": {
            "siteId": "leipzig", "release": {"name": "inbox-test"}, "components": {"blaze": {}},
            "ingress": {"host": "diz.uniklinikum-leipzig.de", "tls": {"secretName": "diz-tls"}},
        },
    }))
    .expect("site");
    sites
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    sites
        .patch_status(
            "leipzig",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"currentRelease": "inbox-test"}})),
        )
        .await
        .expect("site status");

    (server, client)
}

#[tokio::test]
async fn inbox_stalls_on_login_and_secrets_then_runs_and_deletion_keeps_its_data() {
    let (server, client) = cluster_with_site().await;
    let sites: Api<DizSite> = Api::namespaced(client.clone(), NS);

    // Every Secret but the session secret.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for s in [
        secret(
            "inbox-central-keys",
            json!({"central.pem": "-----BEGIN PUBLIC KEY-----\n"}),
        ),
        secret(
            "inbox-decision-key",
            json!({"key.pem": "-----BEGIN PRIVATE KEY-----\n"}),
        ),
        secret("oidc-client", json!({"client-secret": "s3cret"})),
        secret("smtp-login", json!({"username": "inbox", "password": "pw"})),
    ] {
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("Secret");
    }

    let inboxes: Api<ProposalInbox> = Api::namespaced(client.clone(), NS);
    let inbox_obj: ProposalInbox = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ProposalInbox",
        "metadata": {"name": "leipzig", "namespace": NS},
        "spec": {
            "siteRef": {"name": "leipzig"},
            "uac": {"oidcGroup": "diz-uac", "quorum": 2},
            "decisions": {"dsfFhirUrl": "https://dsf.example/fhir", "organizationIdentifier": "forschen-fuer-gesundheit.de"},
            "notifications": [{"name": "uac-mailbox", "email": "uac@uniklinikum-leipzig.de"}],
            "smtp": {"host": "smtp.uniklinikum-leipzig.de", "from": "inbox@uniklinikum-leipzig.de", "credentialsSecretRef": {"name": "smtp-login"}},
            "centralKeysSecretRef": {"name": "inbox-central-keys"},
            "decisionKeySecretRef": {"name": "inbox-decision-key", "key": "key.pem"},
            "sessionSecretRef": {"name": "inbox-session", "key": "secret"}
        },
    }))
    .expect("inbox");
    inboxes
        .create(&PostParams::default(), &inbox_obj)
        .await
        .expect("inbox created");

    // The controller runs in-process with its own identity; the summary comes from the stub.
    let (stub, hits) = stub_summary_server().await;
    let resolved = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = resolved.clone();
    let summaries = HttpSummary::with_resolver(Arc::new(move |ns: &str, name: &str| {
        seen.lock().expect("lock").push(format!("{ns}/{name}"));
        stub.clone()
    }));
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    let ctx = Arc::new(
        Context::new(
            server.client_as("miracolix-operator"),
            Arc::new(trust),
            Arc::new(SystemClock),
        )
        .with_inbox_summaries(Arc::new(summaries)),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(inbox::run(ctx, Scope::Namespace(NS.into()), async {
        let _ = rx.await;
    }));

    // 1. The site has no login: Stalled naming the site's field, nothing deployed.
    let stalled = wait_for(
        &inboxes,
        "Stalled (InboxLoginMissing)",
        has(conditions::STALLED, "True", reasons::INBOX_LOGIN_MISSING),
    )
    .await;
    let msg = &condition(&stalled, conditions::STALLED)
        .expect("Stalled")
        .message;
    assert!(msg.contains("spec.auth.oidc"), "{msg}");
    assert_eq!(
        condition(&stalled, conditions::READY).map(|c| c.status.as_str()),
        Some("False")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    assert!(
        deployments
            .get_opt("leipzig-inbox")
            .await
            .expect("get")
            .is_none(),
        "a stalled inbox deploys nothing"
    );
    let warnings = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .expect("events");
    assert!(
        warnings
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some(reasons::INBOX_LOGIN_MISSING)),
        "a Warning Event with the reason"
    );

    // 2. The site gets a login (the inbox watches its site): deployed, but the session Secret
    //    is missing, which the kubelet reports and the inbox names.
    sites
        .patch(
            "leipzig",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"auth": {"oidc": {
                "issuerUrl": "https://login.uniklinikum-leipzig.de/realms/diz",
                "clientId": "diz-leipzig",
                "clientSecretRef": {"name": "oidc-client", "key": "client-secret"}
            }}}})),
        )
        .await
        .expect("site login");
    let missing = wait_for(
        &inboxes,
        "Stalled (InboxSecretMissing)",
        has(conditions::STALLED, "True", reasons::INBOX_SECRET_MISSING),
    )
    .await;
    let msg = &condition(&missing, conditions::STALLED)
        .expect("Stalled")
        .message;
    assert!(
        msg.contains("spec.sessionSecretRef") && msg.contains("inbox-session"),
        "{msg}"
    );

    // 3. The Secret appears: the pod starts, Ready, and the status carries the summary.
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "inbox-session",
                json!({"secret": "0123456789abcdef0123456789abcdef"}),
            ),
        )
        .await
        .expect("session Secret");
    let ready = wait_for(&inboxes, "Ready with the summary's counts", |i| {
        has(conditions::READY, "True", reasons::READY_REASON)(i)
            && i.status.as_ref().is_some_and(|s| !s.counts.is_empty())
    })
    .await;
    let st = ready.status.clone().expect("status");
    assert_eq!(st.observed_generation, ready.metadata.generation);
    assert_eq!(st.counts.get("DIZ_CHECK"), Some(&2));
    assert_eq!(st.counts.get("UAC_APPROVED"), Some(&1));
    assert_eq!(st.overdue, Some(1));
    assert_eq!(
        st.last_decision_time.as_deref(),
        Some("2026-11-28T09:30:00Z")
    );
    assert_eq!(st.notifications.len(), 1);
    assert_eq!(
        (
            st.notifications[0].name.as_str(),
            st.notifications[0].failures
        ),
        ("uac-mailbox", 3)
    );
    assert_eq!(st.summary_error, None);
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "the stub served the summary"
    );
    assert!(
        resolved
            .lock()
            .expect("lock")
            .iter()
            .all(|r| r == &format!("{NS}/leipzig")),
        "the resolver is asked for this inbox"
    );
    assert_eq!(
        condition(&ready, conditions::STALLED).map(|c| c.status.as_str()),
        Some("False")
    );

    // Every object.
    let deployment = deployments.get("leipzig-inbox").await.expect("Deployment");
    let pod = deployment
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some(format!("ghcr.io/miracum/miracolix-operator@{DIGEST}").as_str())
    );
    assert_eq!(
        pod.containers[0].args.as_deref(),
        Some(&["inbox".to_string()][..])
    );
    Api::<Service>::namespaced(client.clone(), NS)
        .get("leipzig-inbox")
        .await
        .expect("Service");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("leipzig-inbox")
        .await
        .expect("ConfigMap");
    let cfg: serde_json::Value =
        serde_json::from_str(&cm.data.expect("data")["config.json"]).expect("config");
    assert_eq!(cfg["siteId"], "leipzig");
    assert_eq!(
        cfg["oidc"]["redirectUrl"],
        "https://diz.uniklinikum-leipzig.de/inbox/auth/callback"
    );
    Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .get("leipzig-inbox")
        .await
        .expect("NetworkPolicy");
    let ingress = Api::<Ingress>::namespaced(client.clone(), NS)
        .get("leipzig-inbox")
        .await
        .expect("Ingress");
    let tls = ingress.spec.and_then(|s| s.tls).expect("tls");
    assert_eq!(tls[0].secret_name.as_deref(), Some("diz-tls"));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let claim = claims.get("leipzig-inbox-data").await.expect("data volume");
    assert_eq!(
        claim.metadata.owner_references, None,
        "the data outlives the inbox"
    );

    // 4. Deleting the inbox removes the service, not the site and not the data.
    inboxes
        .delete("leipzig", &DeleteParams::foreground())
        .await
        .expect("delete");
    let gone = await_condition(deployments, "leipzig-inbox", |o: Option<&Deployment>| {
        o.is_none()
    });
    within("inbox Deployment garbage-collected", gone)
        .await
        .expect("watch");
    let gone = await_condition(inboxes.clone(), "leipzig", |o: Option<&ProposalInbox>| {
        o.is_none()
    });
    within("inbox deleted", gone).await.expect("watch");
    sites.get("leipzig").await.expect("the site stays");
    claims
        .get("leipzig-inbox-data")
        .await
        .expect("the inbox's data volume stays");

    let _ = tx.send(());
    within("controller shutdown", task).await.expect("task");
}

/// `spec.database.cloudNativePG`: Stalled until CloudNativePG is installed, then its Cluster
/// (no owner: kept on deletion) and the inbox reading its URL from CloudNativePG's Secret.
#[tokio::test]
async fn a_cloudnativepg_database_waits_for_cloudnativepg_and_outlives_the_inbox() {
    let (server, client) = cluster_with_site().await;
    let inboxes: Api<ProposalInbox> = Api::namespaced(client.clone(), NS);
    let inbox_obj: ProposalInbox = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ProposalInbox",
        "metadata": {"name": "leipzig", "namespace": NS},
        "spec": {
            "siteRef": {"name": "leipzig"},
            "uac": {"oidcGroup": "diz-uac", "quorum": 2},
            "decisions": {"dsfFhirUrl": "https://dsf.example/fhir", "organizationIdentifier": "forschen-fuer-gesundheit.de"},
            "centralKeysSecretRef": {"name": "inbox-central-keys"},
            "decisionKeySecretRef": {"name": "inbox-decision-key", "key": "key.pem"},
            "sessionSecretRef": {"name": "inbox-session", "key": "secret"},
            "oidc": {
                "issuerUrl": "https://login.uniklinikum-leipzig.de/realms/diz",
                "clientId": "inbox",
                "clientSecretRef": {"name": "inbox-oidc", "key": "client-secret"}
            },
            "database": {"cloudNativePG": {"storageSize": "5Gi"}}
        },
    }))
    .expect("inbox");
    inboxes
        .create(&PostParams::default(), &inbox_obj)
        .await
        .expect("inbox created");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for s in [
        secret(
            "inbox-central-keys",
            json!({"central.pem": "-----BEGIN PUBLIC KEY-----\n"}),
        ),
        secret(
            "inbox-decision-key",
            json!({"key.pem": "-----BEGIN PRIVATE KEY-----\n"}),
        ),
        secret(
            "inbox-session",
            json!({"secret": "0123456789abcdef0123456789abcdef"}),
        ),
        secret("inbox-oidc", json!({"client-secret": "s3cret"})),
    ] {
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("Secret");
    }
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    let ctx = Arc::new(Context::new(
        server.client_as("miracolix-operator"),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(inbox::run(ctx, Scope::Namespace(NS.into()), async {
        let _ = rx.await;
    }));

    let stalled = wait_for(
        &inboxes,
        "Stalled (InboxDatabaseUnavailable)",
        has(
            conditions::STALLED,
            "True",
            reasons::INBOX_DATABASE_UNAVAILABLE,
        ),
    )
    .await;
    let msg = &condition(&stalled, conditions::STALLED)
        .expect("Stalled")
        .message;
    assert!(msg.contains("spec.database.cloudNativePG"), "{msg}");

    // CloudNativePG installed: the cluster is created. The test API server runs no CloudNativePG,
    // so its `-app` Secret never appears and the inbox stays starting.
    for doc in repo::docs("e2e/fixtures/cnpg-cluster-crd.yaml") {
        server.create(doc).expect("CloudNativePG's CRD");
    }
    // A change to the inbox makes it look again (CRDs are not among its watches).
    inboxes
        .patch(
            "leipzig",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"uac": {"quorum": 1}}})),
        )
        .await
        .expect("touch");
    wait_for(
        &inboxes,
        "Reconciling (InboxStarting)",
        has(conditions::RECONCILING, "True", reasons::INBOX_STARTING),
    )
    .await;
    let clusters: Api<kube::core::DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &miracolix_operator::catalog::database::cnpg_api_resource(),
    );
    let cluster = clusters.get("leipzig-inbox-db").await.expect("Cluster");
    assert_eq!(
        cluster.data["spec"]["bootstrap"]["initdb"]["database"],
        "inbox"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("leipzig-inbox")
        .await
        .expect("Deployment");
    let db_env = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "INBOX_DATABASE")
        .and_then(|e| e.value_from)
        .and_then(|v| v.secret_key_ref)
        .expect("from a Secret");
    assert_eq!(
        (db_env.name.as_str(), db_env.key.as_str()),
        ("leipzig-inbox-db-app", "uri")
    );

    inboxes
        .delete("leipzig", &DeleteParams::foreground())
        .await
        .expect("delete");
    let gone = await_condition(inboxes.clone(), "leipzig", |o: Option<&ProposalInbox>| {
        o.is_none()
    });
    within("inbox deleted", gone).await.expect("watch");
    clusters
        .get("leipzig-inbox-db")
        .await
        .expect("the inbox's database stays");
    let _ = tx.send(());
    within("controller shutdown", task).await.expect("task");
}
