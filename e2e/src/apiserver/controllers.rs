//! The controllers kube-apiserver and kube-controller-manager run that clients can observe
//! right after their own writes: apiextensions' naming and establishing controllers (a new
//! CRD is served only after them) and the service account controller (a `default`
//! ServiceAccount in every namespace). They run as separate writes with their own watch
//! events, in a task started right after the request that gave them work, so a client sees
//! the create response first, exactly as against a real server (where the delay is longer).

use serde_json::{Value, json};

use super::Config;
use super::store::{ObjKey, Store};
use super::writes::{self, CRD_GROUP, CRD_PLURAL, WriteCtx};

/// Runs every controller until it has nothing left to do.
pub fn run(store: &mut Store, cfg: &Config) {
    store.controllers_pending = false;
    establish_crds(store, cfg);
    service_accounts(store, cfg);
    super::authz::aggregate_cluster_roles(store, cfg);
    // The controllers' writes set the flag again; nothing is left to do for them.
    store.controllers_pending = false;
}

/// Naming controller (acceptedNames, NamesAccepted; Established=False "Installing"), then
/// establishing controller (Established=True): two status writes, as in
/// apiextensions-apiserver. Conflicting names are not detected here.
fn establish_crds(store: &mut Store, cfg: &Config) {
    let crds: Vec<(ObjKey, Value)> = store
        .range(CRD_GROUP, CRD_PLURAL, None)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, crd) in crds {
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let mut named = crd.clone();
        if crd.pointer("/status/acceptedNames") != Some(&names)
            || !writes::condition_true(&crd, "NamesAccepted")
        {
            named["status"]["acceptedNames"] = names;
            writes::set_condition(
                &mut named,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
            if !writes::condition_true(&named, "Established") {
                writes::set_condition(
                    &mut named,
                    "Established",
                    "False",
                    "Installing",
                    "the initial names have been accepted",
                );
            }
            writes::server_write(store, cfg, &key, named.clone());
        }
        if !writes::condition_true(&named, "Established") {
            let mut established = store.get(&key).cloned().unwrap_or(named);
            writes::set_condition(
                &mut established,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            );
            writes::server_write(store, cfg, &key, established);
        }
    }
}

/// The service account controller: a `default` ServiceAccount in every active namespace.
fn service_accounts(store: &mut Store, cfg: &Config) {
    let Some(sa_res) = store.find_resource("", "v1", "serviceaccounts") else {
        return;
    };
    let namespaces: Vec<String> = store
        .list("", "namespaces", None)
        .into_iter()
        .filter(|ns| ns.pointer("/metadata/deletionTimestamp").is_none())
        .filter_map(|ns| ns.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect();
    for ns in namespaces {
        let key = ObjKey::new(&sa_res, &ns, "default");
        if store.get(&key).is_some() {
            continue;
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns}});
        // AlreadyExists cannot happen (checked above) and the namespace is active.
        let _ = writes::create(
            store,
            cfg,
            &sa_res,
            &ns,
            sa,
            &WriteCtx::internal("kube-controller-manager"),
            None,
        );
    }
}

/// What `kube-apiserver` creates at start-up (bootstrap controller and RBAC bootstrap
/// policy), before any client can connect.
pub fn bootstrap(store: &mut Store, cfg: &Config) {
    let ctx = WriteCtx::internal("kube-apiserver");
    let create = |store: &mut Store, obj: Value| {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let Some(res) = store
            .resources()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
        else {
            return;
        };
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // A fresh store holds none of these, so creating them cannot fail.
        let _ = writes::create(store, cfg, &res, &ns, obj, &ctx, None);
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            store,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    create(
        store,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
            },
        }),
    );
    let bootstrapping = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let autoupdate = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    create(
        store,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin", "labels": bootstrapping,
                "annotations": autoupdate},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        }),
    );
    create(
        store,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin", "labels": bootstrapping,
                "annotations": autoupdate},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                "name": "system:masters"}],
        }),
    );
    for obj in super::authz::bootstrap_policy() {
        create(store, obj);
    }
    run(store, cfg);
}
