//! RBAC proven from behaviour: the operator runs its whole job against the test API server, which
//! records every request; each (verb, group, resource) it used must be granted by the install's
//! rules (`manifests/`, which `scripts/chart-test.sh` checks against the Helm chart), and every
//! granted (verb, group, resource) must have been used.

mod repo;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope, component_release};
use miracolix_operator::leader::{LeaderElector, LeaseConfig};
use miracolix_operator::release::TrustStore;
use repo::{docs, root};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const OPERATOR: &str = "miracolix-operator";

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 60s waiting for: {what}"),
    }
}

async fn wait_ready(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<DizSite> = Api::namespaced(client.clone(), ns);
    within(
        &format!("{ns}/{name} Ready"),
        await_condition(api, name, |s: Option<&DizSite>| {
            s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
                conditions::is_true(&st.conditions, conditions::READY)
                    && st.observed_generation == s.and_then(|s| s.metadata.generation)
            })
        }),
    )
    .await
    .expect("watch");
}

/// (verb, group, resource[/subresource]) the operator used during a full run.
async fn exercised() -> BTreeSet<(String, String, String)> {
    let server = TestApiServer::with_config(Config {
        contracts: miracolix_e2e::kubelet::Contracts::from_json(
            &miracolix_operator::catalog::contract::contracts_json(),
        )
        .expect("the catalogue's contracts parse"),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    let admin = server.client_as("e2e-admin");
    let op = server.client_as(OPERATOR);
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "miracolix-system"}}))
        .expect("operator namespace");

    // Start-up: CRDs kept current, leader election (acquire, renew, release).
    miracolix_operator::crd_install::ensure_crds(&op, Duration::from_secs(10))
        .await
        .expect("CRDs applied");
    let elector = LeaderElector::new(
        op.clone(),
        LeaseConfig::new("miracolix-system", "pod-a"),
        Arc::new(SystemClock),
    )
    .expect("lease configuration");
    elector.try_acquire_or_renew().await.expect("acquire");
    elector.try_acquire_or_renew().await.expect("renew");

    for path in [
        "e2e/fixtures/cnpg-cluster-crd.yaml",
        "examples/00-namespaces.yaml",
        "scripts/demo-secrets.yaml",
        "examples/10-release-miracolix-2026.1.yaml",
        "examples/20-site-erlangen.yaml",
        "examples/21-site-dresden.yaml",
        "examples/22-site-marburg.yaml",
    ] {
        for doc in docs(path) {
            server
                .create(doc)
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        }
    }
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let ctx = Arc::new(Context::new(
        op.clone(),
        Arc::new(trust),
        Arc::new(SystemClock),
    ));
    let (tx, _) = broadcast::channel::<()>(1);
    let stop = |tx: &broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let sites = tokio::spawn(controller::run_dizsites(
        ctx.clone(),
        vec![Scope::AllNamespaces],
        stop(&tx),
    ));
    let releases = tokio::spawn(component_release::run(ctx, stop(&tx)));
    for (ns, name) in [
        ("diz-erlangen", "erlangen"),
        ("diz-dresden", "dresden"),
        ("diz-marburg", "marburg"),
    ] {
        wait_ready(&admin, ns, name).await;
    }

    // Day-2: components and the ingress removed (their objects deleted), a site deleted with its
    // data.
    let dresden: Api<DizSite> = Api::namespaced(admin.clone(), "diz-dresden");
    dresden
        .patch(
            "dresden",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ingress": null, "components": {"ohdsi": null}}})),
        )
        .await
        .expect("remove OHDSI (with its Achilles CronJob) and the ingress");
    wait_ready(&admin, "diz-dresden", "dresden").await;
    let marburg: Api<DizSite> = Api::namespaced(admin.clone(), "diz-marburg");
    marburg
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"components": {"flare": null}, "deletionPolicy": "Delete"}}),
            ),
        )
        .await
        .expect("disable flare");
    wait_ready(&admin, "diz-marburg", "marburg").await;
    marburg
        .delete("marburg", &DeleteParams::default())
        .await
        .expect("delete");
    within("marburg deleted", async {
        while marburg.get_opt("marburg").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let _ = tx.send(());
    within("controllers stop", sites).await.expect("sites task");
    within("release controller stops", releases)
        .await
        .expect("releases task");
    elector.release().await.expect("release the lease");

    server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.contains(OPERATOR) && !r.resource.is_empty())
        .map(|r| {
            let resource = if r.subresource.is_empty() {
                r.resource
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            (r.verb, r.group, resource)
        })
        .collect()
}

/// (verb, group, resource) granted by the Roles and ClusterRoles in `manifests/`.
fn granted() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let dir = root().join("manifests");
    for entry in std::fs::read_dir(&dir).expect("manifests/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "yaml") || path.ends_with("kustomization.yaml") {
            continue;
        }
        let rel = path
            .strip_prefix(root())
            .expect("relative")
            .to_string_lossy()
            .into_owned();
        for doc in docs(&rel) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if kind != "Role" && kind != "ClusterRole" {
                continue;
            }
            for rule in doc["rules"].as_array().into_iter().flatten() {
                let list = |k: &str| -> Vec<String> {
                    rule[k]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                };
                for g in list("apiGroups") {
                    for r in list("resources") {
                        for v in list("verbs") {
                            assert_ne!(v, "*", "wildcard verbs are not least privilege");
                            assert_ne!(r, "*", "wildcard resources are not least privilege");
                            out.insert((v, g.clone(), r.clone()));
                        }
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "no RBAC rules found in manifests/");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_what_the_operator_uses() {
    let used = exercised().await;
    let granted = granted();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the operator used requests its RBAC does not grant (verb, group, resource): {missing:#?}"
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "RBAC grants requests the operator never made (verb, group, resource): {unused:#?}\nused: {used:#?}"
    );
}
