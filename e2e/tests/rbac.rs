//! RBAC proven from behaviour: the operator runs its whole job against the test API server with
//! authorization enforced, as its ServiceAccount and under exactly the install's Roles,
//! ClusterRoles and bindings, and the example sites still converge; no request of it is refused.
//! The server records every request, and every granted (verb, group, resource) must have been used
//! (evaluated with the server's own RBAC rule matcher). Both install modes: the namespaced default
//! (`manifests/base/`, one Role per watched namespace) and the cluster-wide opt-in
//! (`manifests/cluster-wide/`). Without one grant the site reports the refusal instead of Ready.
//! `scripts/chart-test.sh` checks that the Helm chart renders the same RBAC in both modes.

mod repo;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::apiserver::authz::{Attributes, PolicyRule};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions, reasons};
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

/// The operator's user: its ServiceAccount.
const OPERATOR_USER: &str = "system:serviceaccount:miracolix-system:miracolix-operator";

/// A server enforcing RBAC with the install's objects of `mode` (each passed through `edit`
/// first) and the example namespaces, and a client authenticating as the operator's
/// ServiceAccount.
fn installed(mode: Mode, edit: impl Fn(&mut Value)) -> (TestApiServer, kube::Client) {
    let server = TestApiServer::with_config(Config {
        contracts: repo::catalogue_contracts(),
        workload_timing: WorkloadTiming::Immediate,
        authorization: true,
        ..Config::default()
    });
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "miracolix-system"}}))
        .expect("operator namespace");
    for ns in docs("examples/00-namespaces.yaml") {
        server.create(ns).expect("site namespace");
    }
    // The CRDs, as the install paths create them (Helm's crds/, `kubectl apply -f crds/`): the
    // operator only keeps them current, and may not create one (an apply that creates is
    // authorized as `create`, which its RBAC does not grant on CRDs).
    let mut crd_files: Vec<_> = std::fs::read_dir(root().join("crds"))
        .expect("crds/")
        .map(|e| e.expect("entry").path())
        .collect();
    crd_files.sort();
    for path in crd_files {
        let text = std::fs::read_to_string(&path).expect("CRD file");
        for crd in miracolix_operator::yaml::from_multi_doc::<Value>(&text).expect("yaml") {
            server.create(crd).expect("CRD");
        }
    }
    for mut obj in install(mode).into_iter().filter(|o| {
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
        ]
        .contains(&o["kind"].as_str().unwrap_or_default())
    }) {
        edit(&mut obj);
        server
            .create(obj.clone())
            .unwrap_or_else(|e| panic!("{obj}: {e:?}"));
    }
    let token = server
        .service_account_token("miracolix-system", OPERATOR)
        .expect("the operator's ServiceAccount is installed");
    let op = server.client_with_token(OPERATOR, &token);
    (server, op)
}

/// Every request the operator made during a full run watching `scopes` under the RBAC of `mode`.
async fn exercised(mode: Mode, scopes: Vec<Scope>) -> Vec<Attributes> {
    let (server, op) = installed(mode, |_| {});
    let admin = server.client_as("e2e-admin");

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
    // FeasibilityEndpoints: one controller per scope, as `run` starts them.
    let endpoints = tokio::spawn(futures::future::join_all(
        scopes
            .iter()
            .cloned()
            .map(|scope| controller::feasibility::run(ctx.clone(), scope, stop(&tx)))
            .collect::<Vec<_>>(),
    ));
    // ProposalInboxes: likewise.
    let inboxes = tokio::spawn(futures::future::join_all(
        scopes
            .iter()
            .cloned()
            .map(|scope| controller::inbox::run(ctx.clone(), scope, stop(&tx)))
            .collect::<Vec<_>>(),
    ));
    // The site controllers stop on their own signal: they are restarted below.
    let (sites_tx, _) = broadcast::channel::<()>(1);
    let sites = tokio::spawn(controller::run_dizsites(
        ctx.clone(),
        scopes.clone(),
        stop(&sites_tx),
    ));
    let releases = tokio::spawn(component_release::run(ctx.clone(), stop(&tx)));
    let revocations = tokio::spawn(release_revocation::run(ctx, stop(&tx)));
    // Erlangen's FeasibilityEndpoint: the example release pins no gate, so it is Stalled (status
    // patch, Warning Event) once the site runs the release.
    for doc in docs("examples/30-feasibility-erlangen.yaml") {
        server.create(doc).expect("feasibility endpoint");
    }
    // Erlangen's ProposalInbox: deployed once the site runs the release (which pins the inbox).
    for doc in docs("examples/40-inbox-erlangen.yaml") {
        server.create(doc).expect("proposal inbox");
    }
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

    // A restart: the new operator's caches hold trimmed children whose content it has not seen
    // match, so its first reconcile of each site reads every child once (get).
    let _ = sites_tx.send(());
    within("the first site controllers stop", sites)
        .await
        .expect("sites task");
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let restarted = Arc::new(
        Context::new(op.clone(), Arc::new(trust), Arc::new(SystemClock))
            .with_scopes(scopes.clone()),
    );
    let sites = tokio::spawn(controller::run_dizsites(
        restarted.clone(),
        scopes.clone(),
        stop(&tx),
    ));
    within("the restarted operator reconciles the three sites", async {
        let ok = "miracolix_reconcile_total{kind=\"DizSite\",result=\"ok\"} ";
        while restarted
            .metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(ok))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            < 3
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

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

    // A site's repeated Event is a patch in the site's namespace too: drift on one of its
    // ConfigMaps, repaired twice, repeats "applied 1 object(s)" (an event series). Made
    // explicit: with debounced reconciles no other site Event of this run repeats for certain.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), "diz-dresden");
    let managed = cms
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by"))
        .await
        .expect("ConfigMaps");
    let (cm, key, value) = managed
        .items
        .iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/component"))
                .is_none_or(|v| v != "rollout-record")
        })
        .find_map(|c| {
            let (k, v) = c.data.as_ref()?.iter().next()?;
            Some((c.metadata.name.clone()?, k.clone(), v.clone()))
        })
        .expect("a ConfigMap of the site with data");
    for round in 0..2 {
        cms.patch(
            &cm,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {key.as_str(): format!("drift {round}")}})),
        )
        .await
        .expect("drift");
        let (k, v) = (key.clone(), value.clone());
        let repaired = await_condition(
            cms.clone(),
            &cm,
            move |c: Option<&k8s_openapi::api::core::v1::ConfigMap>| {
                c.and_then(|c| c.data.as_ref())
                    .and_then(|d| d.get(&k))
                    .is_some_and(|x| *x == v)
            },
        );
        within("the drifted ConfigMap repaired", repaired)
            .await
            .expect("watch");
    }
    within("the site's repeated Event", async {
        while !server.requests().iter().any(|r| {
            r.user_agent.contains(OPERATOR)
                && r.resource == "events"
                && r.namespace == "diz-dresden"
                && r.verb == "patch"
        }) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

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

    within("the FeasibilityEndpoint's status", async {
        let api: Api<miracolix_operator::api::FeasibilityEndpoint> =
            Api::namespaced(admin.clone(), "diz-erlangen");
        while api
            .get("erlangen")
            .await
            .expect("get")
            .status
            .is_none_or(|s| s.conditions.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("the ProposalInbox is Ready", async {
        let api: Api<miracolix_operator::api::ProposalInbox> =
            Api::namespaced(admin.clone(), "diz-erlangen");
        while !api
            .get("erlangen")
            .await
            .expect("get")
            .status
            .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = tx.send(());
    within("controllers stop", sites).await.expect("sites task");
    within("inbox controllers stop", inboxes)
        .await
        .expect("inboxes task");
    within("feasibility controllers stop", endpoints)
        .await
        .expect("endpoints task");
    within("release controller stops", releases)
        .await
        .expect("releases task");
    within("revocation controller stops", revocations)
        .await
        .expect("revocations task");
    elector.release().await.expect("release the lease");

    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.user == OPERATOR_USER)
        .collect();
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| matches!(r.code, 401 | 403))
        .collect();
    assert!(
        refused.is_empty(),
        "{mode:?}: the API server refused requests of the operator: {refused:#?}"
    );
    assert!(!requests.is_empty(), "the operator made no requests");
    let mut used: Vec<Attributes> = requests.iter().flat_map(attributes_of).collect();
    used.extend(escalation_checks(&admin).await);
    used
}

/// What a request was authorized as: its verb, and `create` too for an apply that created the
/// object (kube-apiserver's patch handler authorizes that creation separately).
fn attributes_of(r: &miracolix_e2e::apiserver::RequestRecord) -> Vec<Attributes> {
    let mut out = vec![Attributes::of_record(r)];
    if r.apply_creates {
        let mut create = Attributes::of_record(r);
        create.verb = "create".to_string();
        out.push(create);
    }
    out
}

/// What kube-apiserver authorizes against the operator when it writes a Role: every rule of the
/// Role (RBAC escalation prevention, `ConfirmNoEscalation`: a writer may grant only what it
/// holds). The test API server does not make that check (docs/testing.md), so the checks of the
/// reporters' Roles the operator wrote (`get` on their own DizSite) are added here as the
/// requests they are; without them the operator's `get` on DizSites would look unused.
async fn escalation_checks(admin: &kube::Client) -> Vec<Attributes> {
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::all(admin.clone());
    let written = roles
        .list(
            &kube::api::ListParams::default()
                .labels("app.kubernetes.io/managed-by=miracolix-operator"),
        )
        .await
        .expect("the operator's Roles");
    assert!(
        !written.items.is_empty(),
        "the example sites report: the operator wrote their reporters' Roles"
    );
    let mut out = Vec::new();
    for role in written.items {
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        for rule in role.rules.unwrap_or_default() {
            for verb in &rule.verbs {
                for group in rule.api_groups.iter().flatten() {
                    for resource in rule.resources.iter().flatten() {
                        for name in rule.resource_names.iter().flatten() {
                            out.push(Attributes::resource(verb, group, resource, &ns, name));
                        }
                    }
                }
            }
        }
    }
    out
}

/// One atom of a rule, where it applies: `namespace` None for a ClusterRole bound by a
/// ClusterRoleBinding (every namespace and cluster-scoped objects), else the binding's namespace.
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
    /// The test API server's RBAC rule matcher (the one it enforces with) for one rule atom.
    fn allows(&self, r: &Attributes) -> bool {
        let rule = PolicyRule {
            verbs: vec![self.verb.clone()],
            api_groups: vec![self.group.clone()],
            resources: vec![self.resource.clone()],
            resource_names: self.names.clone(),
            non_resource_urls: Vec::new(),
        };
        self.namespace.as_ref().is_none_or(|ns| *ns == r.namespace) && rule.allows(r)
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
    /// The namespaced base with the release feed component (manifests/feed/).
    NamespacedWithFeed,
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
    if mode == Mode::NamespacedWithFeed {
        files.push("manifests/feed/rbac-feed.yaml".into());
    }
    files
        .iter()
        .flat_map(|f| docs(f))
        .filter(|d| {
            mode != Mode::ClusterWide
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
fn assert_grants_equal_calls(mode: Mode, used: &[Attributes]) {
    let grants = granted(mode);
    let denied: Vec<&Attributes> = used
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
    let used = exercised(Mode::Namespaced, scopes).await;
    // The operator asked for nothing cluster-wide but its cluster-scoped kinds: no DizSite, no
    // site object outside the watched namespaces.
    let outside: Vec<&Attributes> = used
        .iter()
        .filter(|r| {
            let cluster_scoped = [
                "componentreleases",
                "componentreleases/status",
                "releaserevocations",
                "releaserevocations/status",
                "customresourcedefinitions",
            ]
            .contains(&r.combined_resource().as_str());
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
    let used = exercised(Mode::ClusterWide, vec![Scope::AllNamespaces]).await;
    assert_grants_equal_calls(Mode::ClusterWide, &used);
}

/// The attack: a leaked operator token. Under the namespaced default it cannot touch a workload
/// outside the site namespaces; only the cluster-wide opt-in reaches kube-system.
#[test]
fn a_leaked_operator_token_reaches_only_the_listed_namespaces() {
    let patch = |resource: &str, group: &str, namespace: &str| {
        Attributes::resource("patch", group, resource, namespace, "x")
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
    let list_all = Attributes::resource("list", "diz.miracum.org", "dizsites", "", "");
    assert!(!namespaced.iter().any(|g| g.allows(&list_all)));
    assert!(cluster_wide.iter().any(|g| g.allows(&list_all)));
    // Never Secrets, in either mode.
    for grants in [&namespaced, &cluster_wide] {
        assert!(grants.iter().all(|g| g.resource != "secrets"));
    }
}

/// Enforcement has teeth: the namespaced install without `patch` on NetworkPolicies in one site's
/// namespace. The operator's server-side apply of the site's NetworkPolicies is refused with
/// kube-apiserver's 403, and the site says so (Ready=False, ApplyFailed, the API error in the
/// message) instead of becoming Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_grant_is_reported_instead_of_ready() {
    let (server, op) = installed(Mode::Namespaced, |obj| {
        if obj["kind"] != "Role" || obj["metadata"]["namespace"] != "diz-erlangen" {
            return;
        }
        let rules = obj["rules"].as_array().cloned().unwrap_or_default();
        let mut edited = Vec::new();
        for rule in rules {
            let resources = rule["resources"].as_array().cloned().unwrap_or_default();
            if !resources.contains(&json!("networkpolicies")) {
                edited.push(rule);
                continue;
            }
            let others: Vec<Value> = resources
                .into_iter()
                .filter(|r| r != "networkpolicies")
                .collect();
            if !others.is_empty() {
                let mut rest = rule.clone();
                rest["resources"] = json!(others);
                edited.push(rest);
            }
            let mut netpol = rule.clone();
            netpol["resources"] = json!(["networkpolicies"]);
            netpol["verbs"] = json!(
                rule["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| *v != "patch")
                    .collect::<Vec<_>>()
            );
            edited.push(netpol);
        }
        obj["rules"] = json!(edited);
    });
    let admin = server.client_as("e2e-admin");
    miracolix_operator::crd_install::ensure_crds(&op, Duration::from_secs(10))
        .await
        .expect("CRDs applied");
    for path in [
        "e2e/fixtures/cnpg-cluster-crd.yaml",
        "scripts/demo-secrets.yaml",
        "examples/10-release-miracolix-2026.1.yaml",
        "examples/20-site-erlangen.yaml",
    ] {
        for doc in docs(path) {
            server
                .create(doc)
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        }
    }
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let scopes = vec![Scope::Namespace("diz-erlangen".to_string())];
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
    let releases = tokio::spawn(component_release::run(ctx, stop(&tx)));

    let forbidden = format!(
        r#"is forbidden: User "{OPERATOR_USER}" cannot patch resource "networkpolicies" in API group "networking.k8s.io" in the namespace "diz-erlangen""#
    );
    let api: Api<DizSite> = Api::namespaced(admin.clone(), "diz-erlangen");
    let site = within(
        "erlangen reports the refused NetworkPolicy",
        await_condition(api, "erlangen", |s: Option<&DizSite>| {
            s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
                st.conditions.iter().any(|c| {
                    c.type_ == conditions::READY
                        && c.status == "False"
                        && c.reason == reasons::APPLY_FAILED
                        && c.message.contains("networkpolicies.networking.k8s.io")
                        && c.message.contains(&forbidden)
                })
            })
        }),
    )
    .await
    .expect("watch")
    .expect("the site exists");
    let st = site.status.expect("status");
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == conditions::RECONCILING
                && c.status == "True"
                && c.reason == reasons::APPLY_FAILED),
        "{:#?}",
        st.conditions
    );
    let refused: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.user == OPERATOR_USER && r.code == 403)
        .collect();
    assert!(
        !refused.is_empty()
            && refused
                .iter()
                .all(|r| r.verb == "patch" && r.resource == "networkpolicies"),
        "only the NetworkPolicy patches are refused: {refused:#?}"
    );

    let _ = tx.send(());
    within("controllers stop", sites).await.expect("sites task");
    within("release controller stops", releases)
        .await
        .expect("releases task");
}

/// Serves every file: the operator's own check is what keeps a tampered one out.
struct PassThrough;

impl miracolix_hub::feed::EntryVerifier for PassThrough {
    fn verify(
        &self,
        _: &str,
        bytes: &[u8],
    ) -> Result<miracolix_hub::feed::VerifiedEntry, miracolix_hub::feed::Refusal> {
        use miracolix_hub::feed::{EntryKind, Refusal, VerifiedEntry};
        let manifest: Value = serde_json::from_slice(bytes).map_err(|e| Refusal {
            reason: "NotAManifest".into(),
            message: e.to_string(),
        })?;
        Ok(VerifiedEntry {
            kind: if manifest["kind"] == "ReleaseRevocation" {
                EntryKind::Revocation
            } else {
                EntryKind::Release
            },
            name: String::new(),
            manifest,
        })
    }
}

/// The install of `mode` with two example sites and a hub whose feed holds a signed release, a
/// signed revocation and a tampered release; a follower of it authenticated as the operator.
struct FeedWorld {
    server: TestApiServer,
    hub: miracolix_hub::Hub,
    dir: std::path::PathBuf,
    follower: miracolix_operator::feed::Follower,
    ctx: Arc<Context>,
    release_json: Value,
}

impl FeedWorld {
    async fn new(mode: Mode, test: &str) -> Self {
        use miracolix_operator::api::{ComponentRelease, ReleaseRevocationSpec};
        use miracolix_operator::feed::{FeedConfig, Follower};
        use miracolix_operator::release::{SigningKey, sign_release, sign_revocation};
        let (server, op) = installed(mode, |_| {});
        miracolix_operator::crd_install::ensure_crds(&op, Duration::from_secs(10))
            .await
            .expect("CRDs applied");
        for path in [
            "examples/20-site-erlangen.yaml",
            "examples/21-site-dresden.yaml",
        ] {
            for doc in docs(path).into_iter().filter(|d| d["kind"] == "DizSite") {
                server.create(doc).expect("site");
            }
        }
        let pem =
            std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
        let key = SigningKey::from_pem(&pem, "demo").expect("demo key");
        let mut release: ComponentRelease =
            serde_json::from_value(docs("examples/10-release-miracolix-2026.1.yaml").remove(0))
                .expect("release");
        release.metadata = Default::default();
        release.metadata.name = Some("miracolix-2026.1".into());
        release.spec.signature =
            Some(sign_release(&release.spec, &key, "miracolix-demo-2026").expect("signs"));
        let mut revocation = ReleaseRevocationSpec {
            fingerprints: vec!["0".repeat(64)],
            reason: "test".into(),
            immediate: false,
            signature: None,
            signatures: Vec::new(),
        };
        revocation.signature =
            Some(sign_revocation(&revocation, &key, "miracolix-demo-2026").expect("signs"));
        let mut tampered = serde_json::to_value(&release).expect("json");
        tampered["metadata"] = json!({"name": "tampered"});
        tampered["spec"]["version"] = json!("2026.9");

        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("feed dir");
        let write = |file: &str, v: &Value| {
            std::fs::write(dir.join(file), serde_json::to_vec(v).expect("json")).expect("write")
        };
        let release_json = serde_json::to_value(&release).expect("json");
        write("10-release.json", &release_json);
        write(
            "20-revocation.json",
            &json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "ReleaseRevocation",
                "metadata": {"name": "revoke-nothing"}, "spec": revocation}),
        );
        write("30-tampered.json", &tampered);
        let hub = miracolix_hub::Hub::new(
            miracolix_hub::HubConfig::default(),
            miracolix_hub::testing::demo_registry(&[]).expect("registry"),
            miracolix_hub::access::Access::Public,
            miracolix_hub::store::SqliteStore::in_memory().expect("store"),
        )
        .with_feed(dir.clone(), Arc::new(PassThrough))
        .expect("feed");
        let (api, _) = miracolix_hub::testing::serve(hub.clone())
            .await
            .expect("hub serves");

        let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
        let scopes: Vec<Scope> = WATCHED
            .iter()
            .map(|ns| Scope::Namespace((*ns).to_string()))
            .collect();
        let ctx = Arc::new(
            Context::new(op.clone(), Arc::new(trust), Arc::new(SystemClock)).with_scopes(scopes),
        );
        let follower = Follower::new(
            ctx.clone(),
            &FeedConfig {
                url: format!("http://{api}/feed/v1"),
                interval: Duration::from_secs(60),
                ca: None,
            },
        )
        .expect("follower");
        Self {
            server,
            hub,
            dir,
            follower,
            ctx,
            release_json,
        }
    }

    fn write(&self, file: &str, v: &Value) {
        std::fs::write(self.dir.join(file), serde_json::to_vec(v).expect("json")).expect("write")
    }
}

/// The release feed's RBAC (manifests/feed/, the chart's `feed.url`) from behaviour: the
/// follower, authenticated as the operator's ServiceAccount under the namespaced install plus the
/// feed's ClusterRole, creates a release and a revocation from a hub's feed, updates the release
/// when the feed changes it, and warns the watched sites about an entry that does not verify. No
/// request is refused, and every grant of the feed's ClusterRole is used (`create` by the applies
/// that create, `patch` by every apply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_grants_exactly_what_the_follower_uses() {
    use miracolix_operator::api::ComponentRelease;
    use miracolix_operator::feed::Round;

    let mut w = FeedWorld::new(Mode::NamespacedWithFeed, "rbac-feed").await;
    let round = within("the first round", w.follower.step()).await;
    assert!(matches!(round, Round::Synced(_)), "{round:?}");
    // The feed changes the release's labels: an apply to an existing object (patch only).
    w.release_json["metadata"]["labels"] = json!({"channel": "stable"});
    w.write("10-release.json", &w.release_json);
    w.hub.reload_feed().expect("reload");
    let round = within("the second round", w.follower.step()).await;
    assert!(matches!(round, Round::Synced(_)), "{round:?}");

    let admin = w.server.client_as("e2e-admin");
    let names: Vec<String> = Api::<ComponentRelease>::all(admin.clone())
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|r| r.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["miracolix-2026.1"],
        "the tampered entry is not applied"
    );
    let warned = w.server.requests().iter().any(|r| {
        r.user == OPERATOR_USER
            && r.resource == "events"
            && r.verb == "create"
            && WATCHED.contains(&r.namespace.as_str())
    });
    assert!(warned, "a Warning Event on the watched sites");

    let requests: Vec<_> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| r.user == OPERATOR_USER)
        .collect();
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
    let used: Vec<Attributes> = requests.iter().flat_map(attributes_of).collect();
    let grants = granted(Mode::NamespacedWithFeed);
    let feed_grants: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.role == "ClusterRole/miracolix-operator-feed")
        .collect();
    let verbs: BTreeSet<(&str, &str)> = feed_grants
        .iter()
        .map(|g| (g.verb.as_str(), g.resource.as_str()))
        .collect();
    assert_eq!(
        verbs,
        [
            ("create", "componentreleases"),
            ("create", "releaserevocations"),
            ("patch", "componentreleases"),
            ("patch", "releaserevocations"),
        ]
        .into_iter()
        .collect(),
        "the feed's ClusterRole grants exactly create and patch on the two kinds"
    );
    let unused: Vec<_> = feed_grants
        .iter()
        .filter(|g| !used.iter().any(|r| g.allows(r)))
        .collect();
    assert!(
        unused.is_empty(),
        "feed grants the follower never used: {unused:#?}"
    );
    // Without the feed's ClusterRole, its applies are refused: the base grants no write of a
    // release's or revocation's spec.
    let base = granted(Mode::Namespaced);
    let applies: Vec<&Attributes> = used
        .iter()
        .filter(|r| r.subresource.is_empty() && ["create", "patch"].contains(&r.verb.as_str()))
        .filter(|r| ["componentreleases", "releaserevocations"].contains(&r.resource.as_str()))
        .collect();
    assert!(!applies.is_empty());
    assert!(applies.iter().all(|r| !base.iter().any(|g| g.allows(r))));
}

/// Without the feed's ClusterRole (the feed turned on in the operator but not in the install),
/// the API server refuses the follower's applies; it reports `FeedApplyFailed` with the 403 and
/// applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feeds_role_the_follower_reports_the_refusal() {
    use miracolix_operator::feed::Round;
    let w = FeedWorld::new(Mode::Namespaced, "rbac-no-feed-role").await;
    let round = within("a round", w.follower.step()).await;
    assert!(matches!(round, Round::ApplyFailed { .. }), "{round:?}");
    let c = w
        .ctx
        .feed_condition
        .get()
        .expect("the ReleaseFeed condition");
    assert_eq!(
        (c.status, c.reason.as_str()),
        ("False", reasons::FEED_APPLY_FAILED)
    );
    assert!(
        c.message.contains("ComponentRelease miracolix-2026.1") && c.message.contains("forbidden"),
        "{}",
        c.message
    );
    assert_eq!(
        w.ctx
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with("miracolix_feed_entries_total{outcome=\"apply-failed\"}"))
            .map(str::to_string),
        Some("miracolix_feed_entries_total{outcome=\"apply-failed\"} 2".to_string())
    );
}
