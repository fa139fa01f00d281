//! RBAC proven from behaviour: the operator runs its whole job against the test API server, which
//! records every request; each request must be authorized by the install's Roles, ClusterRoles and
//! bindings (evaluated as the API server's RBAC authorizer does: verb, group, resource, namespace,
//! resourceNames), and every granted (verb, group, resource) must have been used. Both install
//! modes: the namespaced default (`manifests/base/`, one Role per watched namespace) and the
//! cluster-wide opt-in (`manifests/cluster-wide/`). `scripts/chart-test.sh` checks that the Helm
//! chart renders the same RBAC in both modes.

mod repo;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope, component_release, release_revocation};
use miracolix_operator::leader::{LeaderElector, LeaseConfig};
use miracolix_operator::release::TrustStore;
use repo::{docs, root};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const OPERATOR: &str = "miracolix-operator";
/// The namespaces the namespaced base lists (manifests/base/rbac-namespaced.yaml and the
/// Deployment's `--namespace` arguments): the example sites'.
const WATCHED: [&str; 3] = ["diz-erlangen", "diz-dresden", "diz-marburg"];

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

/// One request the operator made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    verb: String,
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    /// Empty for cluster-scoped objects and cluster-wide collections.
    namespace: String,
    name: String,
}

/// Every request the operator made during a full run watching `scopes`.
async fn exercised(scopes: Vec<Scope>) -> Vec<Request> {
    let server = TestApiServer::with_config(Config {
        contracts: repo::catalogue_contracts(),
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
    let mut held_back = Vec::new();

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
            // Marburg's Mainzelliste configuration comes later: until then its pod cannot mount
            // it, and the operator reads the kubelet's FailedMount Event (list events).
            if doc["metadata"]["name"] == "mainzelliste-config" {
                held_back.push(doc);
                continue;
            }
            server
                .create(doc)
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        }
    }
    // A release whose signature does not match its content: the release controller marks it
    // uncertified and says so in a Warning Event, which (the release being cluster-scoped) goes to
    // the `default` namespace. On the candidate channel, so no site follows it.
    let mut forged = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    forged["metadata"]["name"] = json!("miracolix-2026.2-rc.1");
    forged["spec"]["version"] = json!("2026.2-rc.1");
    forged["spec"]["channel"] = json!("candidate");
    server.create(forged).expect("forged release");
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let ctx = Arc::new(
        Context::new(op.clone(), Arc::new(trust), Arc::new(SystemClock))
            .with_scopes(scopes.clone()),
    );
    let (tx, _) = broadcast::channel::<()>(1);
    let stop = |tx: &broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let sites = tokio::spawn(controller::run_dizsites(ctx.clone(), scopes, stop(&tx)));
    let releases = tokio::spawn(component_release::run(ctx.clone(), stop(&tx)));
    let revocations = tokio::spawn(release_revocation::run(ctx, stop(&tx)));
    // A revocation (unsigned: reported as not honoured, changes nothing) for its controller.
    server
        .create(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ReleaseRevocation",
            "metadata": {"name": "unsigned"},
            "spec": {"fingerprints": ["0".repeat(64)], "reason": "test"},
        }))
        .expect("revocation");
    within("revocation status", async {
        let api: Api<miracolix_operator::api::ReleaseRevocation> = Api::all(admin.clone());
        while api
            .get("unsigned")
            .await
            .expect("get")
            .status
            .is_none_or(|s| s.certified.is_none())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("marburg names the Secret it cannot mount", async {
        let api: Api<DizSite> = Api::namespaced(admin.clone(), "diz-marburg");
        loop {
            let site = api.get("marburg").await.expect("site");
            if site.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.message.contains("FailedMount"))
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for doc in held_back {
        server.create(doc).expect("the held-back Secret");
    }
    for (ns, name) in [
        ("diz-erlangen", "erlangen"),
        ("diz-dresden", "dresden"),
        ("diz-marburg", "marburg"),
    ] {
        wait_ready(&admin, ns, name).await;
    }

    // The forged release's Warning Event in `default`, then the same Warning again: someone
    // resets the release's status, the controller restores it and repeats the Event, which the
    // event recorder sends as a patch of the first (an event series).
    let operator_event = |verb: &'static str| {
        let server = &server;
        async move {
            while !server.requests().iter().any(|r| {
                r.user_agent.contains(OPERATOR)
                    && r.resource == "events"
                    && r.namespace == "default"
                    && r.verb == verb
            }) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    within("the forged release's Warning", operator_event("create")).await;
    Api::<miracolix_operator::api::ComponentRelease>::all(admin.clone())
        .patch_status(
            "miracolix-2026.2-rc.1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"reason": "Reset"}})),
        )
        .await
        .expect("reset the forged release's status");
    within("the repeated Warning", operator_event("patch")).await;

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
    within("revocation controller stops", revocations)
        .await
        .expect("revocations task");
    elector.release().await.expect("release the lease");

    server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.contains(OPERATOR) && !r.resource.is_empty())
        .map(|r| Request {
            resource: if r.subresource.is_empty() {
                r.resource
            } else {
                format!("{}/{}", r.resource, r.subresource)
            },
            verb: r.verb,
            group: r.group,
            namespace: r.namespace,
            name: r.name,
        })
        .collect()
}

/// One atom of a rule, where it applies: `namespace` None for a ClusterRole bound by a
/// ClusterRoleBinding (every namespace and cluster-scoped objects), else the Role's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    role: String,
    namespace: Option<String>,
    verb: String,
    group: String,
    resource: String,
    /// resourceNames; empty: any name.
    names: Vec<String>,
}

impl Grant {
    /// The API server's RBAC authorizer for one rule atom.
    fn allows(&self, r: &Request) -> bool {
        self.verb == r.verb
            && self.group == r.group
            && self.resource == r.resource
            && self.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
            && (self.names.is_empty() || self.names.contains(&r.name))
    }
}

/// Which install mode's objects: the namespaced base, or the base with the cluster-wide overlay
/// applied (the overlay deletes every object labelled `diz.miracum.org/rbac-scope: namespaced`
/// and adds `manifests/cluster-wide/rbac-cluster-wide.yaml`; `chart-test.sh` renders the overlay
/// with kustomize and compares it with the chart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Namespaced,
    ClusterWide,
}

fn install(mode: Mode) -> Vec<Value> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("manifests/base"))
        .expect("manifests/base/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .map(|p| {
            p.strip_prefix(root())
                .expect("relative")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if mode == Mode::ClusterWide {
        files.push("manifests/cluster-wide/rbac-cluster-wide.yaml".into());
    }
    files
        .iter()
        .flat_map(|f| docs(f))
        .filter(|d| {
            mode == Mode::Namespaced
                || d["metadata"]["labels"]["diz.miracum.org/rbac-scope"] != "namespaced"
        })
        .collect()
}

/// The grants of the Roles and ClusterRoles the install binds to the operator's ServiceAccount.
fn granted(mode: Mode) -> Vec<Grant> {
    let objects = install(mode);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        assert!(
            binding["subjects"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == OPERATOR
                        && s["namespace"] == "miracolix-system"
                })),
            "{binding}"
        );
        let namespace = (binding["kind"] == "RoleBinding").then(|| {
            binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == role_kind
                    && o["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || o["metadata"]["namespace"].as_str() == namespace.as_deref())
            })
            .unwrap_or_else(|| panic!("{binding} binds a role the install lacks"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        assert_ne!(verb, "*", "wildcard verbs are not least privilege");
                        assert_ne!(resource, "*", "wildcard resources are not least privilege");
                        out.push(Grant {
                            role: format!("{role_kind}/{role_name}"),
                            namespace: namespace.clone(),
                            verb,
                            group: group.clone(),
                            resource: resource.clone(),
                            names: strings(&rule["resourceNames"]),
                        });
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "no RBAC rules found in the install");
    out
}

/// Every request authorized, every grant used (a Role's atom counts as used when it authorized a
/// request in any namespace the Role is in).
fn assert_grants_equal_calls(mode: Mode, used: &[Request]) {
    let grants = granted(mode);
    let denied: Vec<&Request> = used
        .iter()
        .filter(|r| !grants.iter().any(|g| g.allows(r)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        denied.is_empty(),
        "{mode:?}: the operator made requests its RBAC does not authorize: {denied:#?}"
    );
    let unused: BTreeSet<(String, String, String, String)> = grants
        .iter()
        .filter(|g| {
            !grants
                .iter()
                .filter(|o| o.role == g.role && o.verb == g.verb && o.resource == g.resource)
                .any(|o| used.iter().any(|r| o.allows(r)))
        })
        .map(|g| {
            (
                g.role.clone(),
                g.verb.clone(),
                g.group.clone(),
                g.resource.clone(),
            )
        })
        .collect();
    assert!(
        unused.is_empty(),
        "{mode:?}: RBAC grants requests the operator never made (role, verb, group, resource): {unused:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_install_grants_exactly_what_the_operator_uses() {
    let scopes = WATCHED
        .iter()
        .map(|ns| Scope::Namespace((*ns).to_string()))
        .collect();
    let used = exercised(scopes).await;
    // The operator asked for nothing cluster-wide but its cluster-scoped kinds: no DizSite, no
    // site object outside the watched namespaces.
    let outside: Vec<&Request> = used
        .iter()
        .filter(|r| {
            let cluster_scoped = [
                "componentreleases",
                "componentreleases/status",
                "releaserevocations",
                "releaserevocations/status",
                "customresourcedefinitions",
            ]
            .contains(&r.resource.as_str());
            let own = ["miracolix-system", "default"].contains(&r.namespace.as_str());
            !cluster_scoped && !own && !WATCHED.contains(&r.namespace.as_str())
        })
        .collect();
    assert!(
        outside.is_empty(),
        "requests outside the watched namespaces: {outside:#?}"
    );
    assert_grants_equal_calls(Mode::Namespaced, &used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_install_grants_exactly_what_the_operator_uses() {
    let used = exercised(vec![Scope::AllNamespaces]).await;
    assert_grants_equal_calls(Mode::ClusterWide, &used);
}

/// The attack: a leaked operator token. Under the namespaced default it cannot touch a workload
/// outside the site namespaces; only the cluster-wide opt-in reaches kube-system.
#[test]
fn a_leaked_operator_token_reaches_only_the_listed_namespaces() {
    let patch = |resource: &str, group: &str, namespace: &str| Request {
        verb: "patch".into(),
        group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: "x".into(),
    };
    let namespaced = granted(Mode::Namespaced);
    let cluster_wide = granted(Mode::ClusterWide);
    for (resource, group) in [
        ("deployments", "apps"),
        ("networkpolicies", "networking.k8s.io"),
        ("persistentvolumeclaims", ""),
        ("dizsites", "diz.miracum.org"),
    ] {
        let in_kube_system = patch(resource, group, "kube-system");
        assert!(
            !namespaced.iter().any(|g| g.allows(&in_kube_system)),
            "namespaced install: {resource} in kube-system"
        );
        assert!(
            cluster_wide.iter().any(|g| g.allows(&in_kube_system)) || resource == "dizsites",
            "the cluster-wide opt-in is what the namespaced default avoids: {resource}"
        );
        assert!(
            namespaced
                .iter()
                .any(|g| g.allows(&patch(resource, group, "diz-erlangen")))
                || resource == "dizsites",
            "namespaced install: {resource} in a site namespace"
        );
    }
    // Reading DizSites cluster-wide (other tenants' specs) needs the opt-in too.
    let list_all = Request {
        verb: "list".into(),
        group: "diz.miracum.org".into(),
        resource: "dizsites".into(),
        namespace: String::new(),
        name: String::new(),
    };
    assert!(!namespaced.iter().any(|g| g.allows(&list_all)));
    assert!(cluster_wide.iter().any(|g| g.allows(&list_all)));
    // Never Secrets, in either mode.
    for grants in [&namespaced, &cluster_wide] {
        assert!(grants.iter().all(|g| g.resource != "secrets"));
    }
}
