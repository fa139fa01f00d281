//! Create/get/update/delete, metadata rules, selectors, status subresource.

mod common;

use common::{api_error, server, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("configmap")
}

#[tokio::test]
async fn default_namespaces_exist() {
    let (_s, client) = server();
    let ns: Api<Namespace> = Api::all(client);
    for name in ["default", "kube-system"] {
        let n = ns.get(name).await.expect("namespace exists");
        assert_eq!(n.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    }
}

#[tokio::test]
async fn create_sets_server_metadata_and_get_404s() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| !u.is_empty()));
    assert!(meta.creation_timestamp.is_some());
    assert!(meta.resource_version.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let err = api_error(api.get("missing").await.expect_err("404"));
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"missing\" not found");
}

#[tokio::test]
async fn create_twice_is_409_already_exists() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    let err = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .expect_err("409"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn generate_name_creates_unique_names() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).expect("cm");
    let a = api.create(&PostParams::default(), &obj).await.expect("a");
    let b = api.create(&PostParams::default(), &obj).await.expect("b");
    let (a, b) = (
        a.metadata.name.expect("name"),
        b.metadata.name.expect("name"),
    );
    assert!(a.starts_with("gen-") && a.len() > 4, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn create_in_missing_namespace_is_404() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::namespaced(client, "nope");
    let err = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .expect_err("404"),
    );
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn stale_update_is_409_conflict() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    let mut a = first.clone();
    a.data = Some([("k".to_string(), "1".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &a)
        .await
        .expect("fresh update");
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );
    let err = api_error(
        api.replace("a", &PostParams::default(), &a)
            .await
            .expect_err("stale"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn resource_versions_increase_globally() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    let b = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .expect("rv")
    };
    assert!(rv(&b) > rv(&a));
    let list = api.list(&ListParams::default()).await.expect("list");
    let list_rv: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("list rv");
    assert!(list_rv >= rv(&b));
}

#[tokio::test]
async fn delete_with_finalizers_waits_until_they_are_removed() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut obj = cm("f", json!({}));
    obj.metadata.finalizers = Some(vec!["example.org/keep".to_string()]);
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
    api.delete("f", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let pending = api.get("f").await.expect("still there");
    assert!(
        pending.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp set"
    );
    let remove = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "example.org/keep"},
        {"op": "remove", "path": "/metadata/finalizers/0"}]);
    let patch: json_patch::Patch = serde_json::from_value(remove).expect("patch");
    api.patch("f", &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .expect("finalizer removed");
    let err = api_error(api.get("f").await.expect_err("gone"));
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &cm("a", json!({"app": "web", "tier": "front"})),
    )
    .await
    .expect("a");
    api.create(&PostParams::default(), &cm("b", json!({"app": "db"})))
        .await
        .expect("b");
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .expect("c");
    let names = |sel: &str| {
        let api = api.clone();
        let sel = sel.to_string();
        async move {
            let mut n: Vec<String> = api
                .list(&ListParams::default().labels(&sel))
                .await
                .expect("list")
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("app=web").await, ["a"]);
    assert_eq!(names("app!=web").await, ["b", "c"]);
    assert_eq!(names("app in (web,db)").await, ["a", "b"]);
    assert_eq!(names("app notin (web)").await, ["b", "c"]);
    assert_eq!(names("tier").await, ["a"]);
    assert_eq!(names("!app").await, ["c"]);
}

#[tokio::test]
async fn field_selectors_on_name_and_namespace() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    let got = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("list");
    assert_eq!(got.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(client);
    let none = all
        .list(&ListParams::default().fields("metadata.namespace=kube-system"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
    let err = api_error(
        api.list(&ListParams::default().fields("spec.x=1"))
            .await
            .expect_err("unsupported"),
    );
    assert_eq!(err.code, 400);
}

/// Kinds with their own field-label conversion accept their fields, valued as the registry's
/// `GetAttrs` computes them (unset booleans are `false`), and refuse everything else.
#[tokio::test]
async fn field_selectors_per_kind() {
    let (_s, client) = server();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:stable"}]}}))
        .expect("pod"),
    )
    .await
    .expect("pod");
    let names = |l: kube::api::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    for (selector, expected) in [
        ("status.phase=Running", vec!["p"]),
        ("status.phase!=Running", vec![]),
        ("spec.restartPolicy=Never,spec.hostNetwork=false", vec!["p"]),
        // Not scheduled: the node name is empty.
        ("spec.nodeName=", vec!["p"]),
    ] {
        let got = pods
            .list(&ListParams::default().fields(selector))
            .await
            .expect(selector);
        assert_eq!(names(got), expected, "{selector}");
    }
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).expect("secret"),
        )
        .await
        .expect("secret");
    let opaque = secrets
        .list(&ListParams::default().fields("type=Opaque"))
        .await
        .expect("list");
    assert_eq!(opaque.items.len(), 1, "an untyped Secret is Opaque");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let active = namespaces
        .list(&ListParams::default().fields("status.phase=Active,metadata.name=default"))
        .await
        .expect("list");
    assert_eq!(active.items.len(), 1);
    for (selector, message) in [
        ("spec.x=1", "field label not supported: spec.x"),
        // A Namespace is selected by name and phase only.
        (
            "metadata.namespace=default",
            "field label not supported: metadata.namespace",
        ),
    ] {
        let err = api_error(
            namespaces
                .list(&ListParams::default().fields(selector))
                .await
                .expect_err(selector),
        );
        assert_eq!((err.code, err.message.as_str()), (400, message));
    }
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let err = api_error(
        deployments
            .list(&ListParams::default().fields("status.phase=Running"))
            .await
            .expect_err("a Deployment has only the metadata fields"),
    );
    assert_eq!(err.code, 400);
}

/// Nodes are plain cluster-scoped objects (no kubelet registers one here); cordoning is a
/// patch of `spec.unschedulable`, which `spec.unschedulable` field selectors see.
#[tokio::test]
async fn nodes_cordon_and_select_by_unschedulable() {
    let (_s, client) = server();
    let nodes: Api<Node> = Api::all(client);
    let created = nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "worker-1"}})).expect("node"),
        )
        .await
        .expect("create node");
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(
        created.metadata.generation, None,
        "nodes keep no generation"
    );
    let schedulable = ListParams::default().fields("spec.unschedulable==false");
    let count = |l: kube::api::ObjectList<Node>| l.items.len();
    assert_eq!(count(nodes.list(&schedulable).await.expect("list")), 1);
    nodes.cordon("worker-1").await.expect("cordon");
    assert_eq!(count(nodes.list(&schedulable).await.expect("list")), 0);
    let cordoned = ListParams::default().fields("spec.unschedulable=true");
    assert_eq!(count(nodes.list(&cordoned).await.expect("list")), 1);
    nodes.uncordon("worker-1").await.expect("uncordon");
    assert_eq!(count(nodes.list(&schedulable).await.expect("list")), 1);
    let status = nodes
        .delete("worker-1", &DeleteParams::default())
        .await
        .expect("delete")
        .right()
        .expect("a Node delete answers with a Status (no ReturnDeletedObject)");
    assert!(status.is_success(), "{status:?}");
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .expect("create");
    }
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("c"));
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let (s, client) = server();
    s.set_workload_timing(miracolix_e2e::WorkloadTiming::Manual);
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        "status": {"replicas": 99},
    })).expect("deployment");
    let created = api
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status is dropped on create");

    // Writing status through the main resource is ignored.
    let p = json!({"status": {"replicas": 5}});
    let after = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("patch");
    assert!(after.status.is_none());
    assert_eq!(after.metadata.generation, Some(1));

    // Status writes change only status, and do not bump generation.
    let p = json!({"spec": {"replicas": 7}, "status": {"replicas": 5}});
    let after = api
        .patch_status("d", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("status");
    assert_eq!(after.status.and_then(|s| s.replicas), Some(5));
    assert_eq!(after.spec.and_then(|s| s.replicas), Some(1));
    assert_eq!(after.metadata.generation, Some(1));

    // Metadata changes do not bump generation; spec changes do.
    let p = json!({"metadata": {"labels": {"x": "y"}}});
    let after = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("labels");
    assert_eq!(after.metadata.generation, Some(1));
    let p = json!({"spec": {"replicas": 2}});
    let after = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("spec");
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn leases_use_optimistic_concurrency() {
    let (_s, client) = server();
    let api: Api<Lease> = Api::default_namespaced(client);
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
    )
    .expect("lease");
    let created = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let mut mine = created.clone();
    mine.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    api.replace("leader", &PostParams::default(), &mine)
        .await
        .expect("first renew");
    let err = api_error(
        api.replace("leader", &PostParams::default(), &mine)
            .await
            .expect_err("stale renew"),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn events_are_one_object_in_both_groups() {
    let (_s, client) = server();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "x-"}, "involvedObject": {"kind": "ConfigMap", "name": "a"},
        "reason": "Test", "message": "hello", "type": "Normal"}))
    .expect("event");
    let old = core
        .create(&PostParams::default(), &ev)
        .await
        .expect("core event");
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client);
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "y-"}, "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "test", "reportingInstance": "t", "action": "Act", "reason": "Test",
        "regarding": {"kind": "ConfigMap", "name": "b"}, "note": "hi", "type": "Normal"}))
    .expect("event");
    let created = new
        .create(&PostParams::default(), &ev)
        .await
        .expect("events.k8s.io event");
    // kube-apiserver stores one object per Event and serves it in both groups' shapes.
    let core_list = core.list(&ListParams::default()).await.expect("list").items;
    let new_list = new.list(&ListParams::default()).await.expect("list").items;
    assert_eq!((core_list.len(), new_list.len()), (2, 2));
    let name = created.metadata.name.clone().expect("name");
    let as_core = core.get(&name).await.expect("the core view");
    assert_eq!(as_core.message.as_deref(), Some("hi"));
    assert_eq!(as_core.involved_object.name.as_deref(), Some("b"));
    assert_eq!(as_core.reporting_component.as_deref(), Some("test"));
    assert_eq!(as_core.metadata.uid, created.metadata.uid);
    assert_eq!(
        as_core.metadata.resource_version,
        created.metadata.resource_version
    );
    let as_new = new
        .get(old.metadata.name.as_deref().expect("name"))
        .await
        .expect("the events.k8s.io view");
    assert_eq!(as_new.note.as_deref(), Some("hello"));
    assert_eq!(as_new.regarding.and_then(|r| r.name).as_deref(), Some("a"));
    // A field selector on the core fields finds the operator's kind of Event.
    let found = core
        .list(&ListParams::default().fields("involvedObject.name=b"))
        .await
        .expect("list")
        .items;
    assert_eq!(found.len(), 1);
    new.delete(&name, &Default::default())
        .await
        .expect("delete");
    assert!(core.get_opt(&name).await.expect("get").is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let (s, client) = server();
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let api: Api<ConfigMap> = Api::namespaced(client, "tmp");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("cm");
    ns.delete("tmp", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert!(s.object("", "configmaps", "tmp", "a").is_none());
    assert!(s.object("", "namespaces", "", "tmp").is_none());
}

/// What kube-apiserver creates before any client connects, and the service account
/// controller's `default` ServiceAccount in every namespace.
#[tokio::test]
async fn bootstrap_objects_exist() {
    let (s, client) = server();
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .expect("default/kubernetes");
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.expect("ports")[0].port, 443);
    let admin = Api::<ClusterRole>::all(client.clone())
        .get("cluster-admin")
        .await
        .expect("cluster-admin");
    let rules = admin.rules.expect("rules");
    assert_eq!(rules[0].verbs, ["*"]);
    for ns in &names {
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get("default")
            .await
            .unwrap_or_else(|e| panic!("default ServiceAccount in {ns}: {e}"));
    }
    // A new namespace gets its service account from the controller, a moment after the
    // create (not in the create's own write): clients must wait for it, as on a real cluster.
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns"),
    )
    .await
    .expect("create namespace");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    within(
        "the default ServiceAccount in team",
        kube::runtime::wait::await_condition(sas, "default", |o: Option<&ServiceAccount>| {
            o.is_some()
        }),
    )
    .await
    .expect("watch");
    let _ = s;
}

#[tokio::test]
async fn namespaces_carry_their_immutable_name_label() {
    let (_s, client) = server();
    let nss: Api<Namespace> = Api::all(client);
    let label = "kubernetes.io/metadata.name";
    let created = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "team", "labels": {label: "spoofed", "a": "b"}}}),
            )
            .expect("ns"),
        )
        .await
        .expect("create");
    let labels = created.metadata.labels.expect("labels");
    assert_eq!(
        labels[label], "team",
        "set on create, over what the client sent"
    );
    assert_eq!(labels["a"], "b");
    let patched = nss
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {label: "other"}}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.metadata.labels.expect("labels")[label], "team");
    let removed = nss
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {label: null}}})),
        )
        .await
        .expect("patch");
    assert_eq!(removed.metadata.labels.expect("labels")[label], "team");
    // Bootstrap namespaces have it too.
    let default = nss.get("default").await.expect("default");
    assert_eq!(default.metadata.labels.expect("labels")[label], "default");
}

/// Most built-in kinds allow unconditional updates (`AllowUnconditionalUpdate`) but, ConfigMaps
/// among them, no create on PUT (`AllowCreateOnUpdate`); Leases create on PUT but only update
/// conditionally.
#[tokio::test]
async fn put_semantics_of_built_in_kinds() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    let mut unconditional = cm("a", json!({"x": "y"}));
    unconditional.metadata.resource_version = None;
    let updated = api
        .replace("a", &PostParams::default(), &unconditional)
        .await
        .expect("a PUT without resourceVersion overwrites a ConfigMap");
    assert_eq!(updated.metadata.labels.expect("labels")["x"], "y");
    let err = api_error(
        api.replace("missing", &PostParams::default(), &cm("missing", json!({})))
            .await
            .expect_err("no create on update"),
    );
    assert_eq!(err.code, 404);
    let leases: Api<Lease> = Api::default_namespaced(client);
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .expect("lease");
    let created = leases
        .replace("l", &PostParams::default(), &lease)
        .await
        .expect("PUT creates a Lease");
    assert!(created.metadata.uid.is_some());
    // ... but, unlike ConfigMaps, Leases are never overwritten unconditionally.
    let err = api_error(
        leases
            .replace("l", &PostParams::default(), &lease)
            .await
            .expect_err("conditional only"),
    );
    assert_eq!(
        err.message,
        r#"leases.coordination.k8s.io "l" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"#
    );
}

/// `ReturnDeletedObject`: some kinds answer a delete with the object, most with a Status.
#[tokio::test]
async fn delete_answers_per_kind() {
    let (_s, client) = server();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    let status = cms
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete")
        .right()
        .expect("a ConfigMap delete answers with a Status");
    assert!(status.is_success(), "{status:?}");
    let details = status.details.expect("details");
    assert_eq!(details.name, "a");
    assert_eq!(details.kind, "configmaps");
    assert_eq!(Some(details.uid), created.metadata.uid);
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    svcs.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .expect("svc"),
    )
    .await
    .expect("service");
    let svc = svcs
        .delete("s", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("a Service delete answers with the Service");
    assert_eq!(svc.metadata.name.as_deref(), Some("s"));
}

/// Built-in kinds are Go structs on a real server: the JSON starts with `kind`, `apiVersion`,
/// then `metadata` in ObjectMeta's order, and a watch event with `type`. Custom resources are
/// maps, written with sorted keys. (kube's decode errors point into the body by column.)
#[tokio::test]
async fn json_is_written_in_the_order_of_the_go_types() {
    let (_s, client) = server();
    common::install_widgets(&client).await;
    common::widgets(&client)
        .create(
            &PostParams::default(),
            &common::widget("w", json!({"siteId": "erlangen"})),
        )
        .await
        .expect("widget");
    let get = |path: String| http::Request::get(path).body(Vec::new()).expect("request");
    let svc = client
        .request_text(get("/api/v1/namespaces/default/services/kubernetes".into()))
        .await
        .expect("service");
    assert!(
        svc.starts_with(r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"kubernetes","namespace":"default","uid":"#),
        "{svc}"
    );
    let list = client
        .request_text(get("/api/v1/namespaces".into()))
        .await
        .expect("namespaces");
    assert!(
        list.starts_with(
            r#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"#
        ),
        "{list}"
    );
    let cr = client
        .request_text(get(format!(
            "/apis/{}/v1/namespaces/default/widgets/w",
            common::GROUP
        )))
        .await
        .expect("widget");
    assert!(
        cr.starts_with(&format!(
            r#"{{"apiVersion":"{}/v1","kind":"Widget","metadata":{{"#,
            common::GROUP
        )),
        "{cr}"
    );
    let mut watch = client
        .request_stream(get(
            "/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Ddefault&timeoutSeconds=1"
                .into(),
        ))
        .await
        .expect("watch");
    let mut first = String::new();
    futures::AsyncBufReadExt::read_line(&mut watch, &mut first)
        .await
        .expect("first event");
    assert!(
        first.starts_with(r#"{"type":"ADDED","object":{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default","#),
        "{first}"
    );
}
