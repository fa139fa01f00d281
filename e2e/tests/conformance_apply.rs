//! Patches and server-side apply.

mod common;

use common::{api_error, server, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}},
    })
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

#[tokio::test]
async fn merge_patch_sets_and_removes_fields() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(cm(json!({"a": "1", "b": "2"}))).expect("cm"),
    )
    .await
    .expect("create");
    let p = json!({"data": {"a": null, "c": "3"}});
    let out = api
        .patch("c", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("patch");
    let data = out.data.expect("data");
    assert!(!data.contains_key("a"));
    assert_eq!(data.get("c").map(String::as_str), Some("3"));
}

#[tokio::test]
async fn json_patch_test_op_guards_the_change() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(cm(json!({"a": "1"}))).expect("cm"),
    )
    .await
    .expect("create");
    let bad: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "2"}, {"op": "replace", "path": "/data/a", "value": "x"}]))
    .expect("patch");
    let err = api_error(
        api.patch("c", &PatchParams::default(), &Patch::<()>::Json(bad))
            .await
            .expect_err("test fails"),
    );
    assert_eq!(err.code, 422);
    let good: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "1"}, {"op": "replace", "path": "/data/a", "value": "x"}]))
    .expect("patch");
    let out = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(good))
        .await
        .expect("test passes");
    assert_eq!(out.data.expect("data")["a"], "x");
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d = deployment(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
    api.create(
        &PostParams::default(),
        &serde_json::from_value(d).expect("d"),
    )
    .await
    .expect("create");
    let p =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
    let out = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&p))
        .await
        .expect("patch");
    let containers = out
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers;
    assert_eq!(
        containers.len(),
        2,
        "a merge patch would have replaced the list"
    );
    assert_eq!(containers[1].image.as_deref(), Some("b:2"));
}

#[tokio::test]
async fn apply_requires_a_field_manager() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let err = api_error(
        api.patch(
            "c",
            &PatchParams {
                field_manager: None,
                ..PatchParams::default()
            },
            &Patch::Apply(cm(json!({}))),
        )
        .await
        .expect_err("400"),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn apply_creates_and_records_managed_fields() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d =
        deployment(json!([{"name": "app", "image": "x:1", "env": [{"name": "A", "value": "1"}]}]));
    let out = api
        .patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("apply creates");
    let mf = out.metadata.managed_fields.expect("managedFields");
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("op"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&mf[0].fields_v1).expect("fields");
    let container =
        &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert!(container["f:image"].is_object(), "{fields}");
    assert!(
        container["f:env"]["k:{\"name\":\"A\"}"]["f:value"].is_object(),
        "{fields}"
    );
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.patch(
        "c",
        &PatchParams::apply("alice"),
        &Patch::Apply(cm(json!({"a": "1"}))),
    )
    .await
    .expect("alice");
    let err = api_error(
        api.patch(
            "c",
            &PatchParams::apply("bob"),
            &Patch::Apply(cm(json!({"a": "2"}))),
        )
        .await
        .expect_err("conflict"),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("conflict with \"alice\""),
        "{}",
        err.message
    );
    assert!(err.message.contains(".data.a"), "{}", err.message);
    // Same value: shared ownership, no conflict.
    api.patch(
        "c",
        &PatchParams::apply("bob"),
        &Patch::Apply(cm(json!({"a": "1"}))),
    )
    .await
    .expect("co-own");
    let out = api
        .patch(
            "c",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cm(json!({"a": "2"}))),
        )
        .await
        .expect("forced");
    assert_eq!(out.data.expect("data")["a"], "2");
    let managers: Vec<String> = out
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["bob"], "alice lost her only field");
}

#[tokio::test]
async fn apply_conflicts_with_update_managers_too() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.patch(
        "c",
        &PatchParams::apply("op"),
        &Patch::Apply(cm(json!({"a": "1"}))),
    )
    .await
    .expect("apply");
    let p = json!({"data": {"a": "human"}});
    api.patch(
        "c",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&p),
    )
    .await
    .expect("edit");
    let err = api_error(
        api.patch(
            "c",
            &PatchParams::apply("op"),
            &Patch::Apply(cm(json!({"a": "1"}))),
        )
        .await
        .expect_err("conflict"),
    );
    assert!(err.message.contains("kubectl-edit"), "{}", err.message);
}

#[tokio::test]
async fn fields_no_longer_applied_are_removed() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.patch(
        "c",
        &PatchParams::apply("op"),
        &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
    )
    .await
    .expect("apply");
    api.patch(
        "c",
        &PatchParams::apply("other"),
        &Patch::Apply(cm(json!({"b": "2"}))),
    )
    .await
    .expect("co-own b");
    let out = api
        .patch("c", &PatchParams::apply("op"), &Patch::Apply(cm(json!({}))))
        .await
        .expect("apply less");
    let data = out.data.unwrap_or_default();
    assert!(!data.contains_key("a"), "a was only op's: removed");
    assert!(data.contains_key("b"), "b is still owned by other: kept");
}

#[tokio::test]
async fn keyed_lists_merge_by_key_across_managers() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d = deployment(json!([{"name": "app", "image": "x:1", "ports": [{"containerPort": 80}]}]));
    api.patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("op");
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "p:1"}]}}}});
    let out = api
        .patch("web", &PatchParams::apply("mesh"), &Patch::Apply(&sidecar))
        .await
        .expect("mesh");
    let names: Vec<String> = out
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["app", "proxy"]);
    // op re-applies with a changed env: its container is merged, the sidecar untouched.
    let d = deployment(json!([{"name": "app", "image": "x:2", "ports": [{"containerPort": 80}]}]));
    let out = api
        .patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("op again");
    let containers = out
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("x:2"));
}

#[tokio::test]
async fn unchanged_apply_is_a_no_op_without_resource_version_bump_or_event() {
    let (s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = api
        .patch(
            "c",
            &PatchParams::apply("op"),
            &Patch::Apply(cm(json!({"a": "1"}))),
        )
        .await
        .expect("apply");
    let rv = first.metadata.resource_version.clone().expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let global_before = s.resource_version();
    let again = api
        .patch(
            "c",
            &PatchParams::apply("op"),
            &Patch::Apply(cm(json!({"a": "1"}))),
        )
        .await
        .expect("apply again");
    assert_eq!(
        again.metadata.resource_version,
        Some(rv),
        "no-op apply must not bump the resourceVersion"
    );
    assert_eq!(s.resource_version(), global_before);
    // A real change afterwards is the first event the watch sees.
    api.patch(
        "c",
        &PatchParams::apply("op"),
        &Patch::Apply(cm(json!({"a": "2"}))),
    )
    .await
    .expect("change");
    let ev = within("first watch event", stream.next())
        .await
        .expect("event")
        .expect("ok");
    match ev {
        WatchEvent::Modified(c) => assert_eq!(c.data.expect("data")["a"], "2"),
        other => panic!("expected the real change, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_ignores_status_on_the_main_resource() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let mut d = deployment(json!([{"name": "app", "image": "x:1"}]));
    d["status"] = json!({"replicas": 42});
    let out = api
        .patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("apply");
    assert_ne!(out.status.and_then(|s| s.replicas), Some(42));
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 42}});
    // The simulated deployment controller owns status.replicas: a real conflict, so force.
    let out = api
        .patch_status(
            "web",
            &PatchParams::apply("op").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("apply status");
    assert_eq!(out.status.and_then(|s| s.replicas), Some(42));
}

/// The operator's steady state: re-applying an unchanged Deployment (whose status the
/// simulated controller has written meanwhile) and an unchanged status are no writes.
#[tokio::test]
async fn unchanged_deployment_and_status_applies_are_no_ops() {
    let (s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d = deployment(
        json!([{"name": "app", "image": "x:1", "env": [{"name": "A", "value": "1"}],
        "ports": [{"containerPort": 8080, "name": "http"}]}]),
    );
    api.patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("apply");
    let rv = s.resource_version();
    api.patch("web", &PatchParams::apply("op"), &Patch::Apply(&d))
        .await
        .expect("re-apply");
    assert_eq!(
        s.resource_version(),
        rv,
        "re-applying the same Deployment wrote something"
    );
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "status": {"conditions": [{"type": "Custom", "status": "True", "reason": "R", "message": "m"}]}});
    api.patch_status("web", &PatchParams::apply("op"), &Patch::Apply(&status))
        .await
        .expect("status");
    let rv = s.resource_version();
    api.patch_status("web", &PatchParams::apply("op"), &Patch::Apply(&status))
        .await
        .expect("status again");
    assert_eq!(
        s.resource_version(),
        rv,
        "re-applying the same status wrote something"
    );
}

/// A manager that stops applying a keyed list item it owned removes the whole item, key
/// fields included: kube-apiserver never leaves an empty entry behind (which here used to fail
/// validation with `ports[0].name: Required value` — what broke the DizSite status write that
/// drops a `failedReleases` entry).
#[tokio::test]
async fn dropping_a_keyed_list_item_removes_the_whole_item() {
    let (_s, client) = server();
    common::install_widgets(&client).await;
    let api = common::widgets(&client);
    let pp = common::apply_params("owner");
    let with_port = json!({"apiVersion": "conformance.example.org/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"siteId": "w", "ports": [{"name": "http", "port": 80}]}});
    api.patch("w", &pp, &Patch::Apply(&with_port))
        .await
        .expect("first apply");
    let without = json!({"apiVersion": "conformance.example.org/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"siteId": "w"}});
    let got = api
        .patch("w", &pp, &Patch::Apply(&without))
        .await
        .expect("the item goes without a validation error");
    let ports = got.data["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(ports.is_empty(), "{ports:?}");
}

/// Conflicts are about values, not spellings. kube-apiserver decodes a body into the kind's
/// Go type (a CRD's `minimum` is a float64) or, for custom resources, into unstructured JSON
/// where an integral number is an int64 after the round trip through storage; either way `1`
/// and `1.0` are the same value, and structured-merge-diff compares values. So a second
/// manager applying an equal number co-owns the field without a conflict.
#[tokio::test]
async fn an_equal_number_spelled_differently_is_no_conflict() {
    let (_s, client) = server();
    common::install_widgets(&client).await;
    let api = common::widgets(&client);
    let widget = |replicas: Value| {
        json!({"apiVersion": "conformance.example.org/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"siteId": "w", "replicas": replicas}})
    };
    api.patch(
        "w",
        &PatchParams::apply("alice"),
        &Patch::Apply(widget(json!(1.0))),
    )
    .await
    .expect("alice applies 1.0");
    let got = api
        .patch(
            "w",
            &PatchParams::apply("bob"),
            &Patch::Apply(widget(json!(1))),
        )
        .await
        .expect("bob applies 1: the same value, no conflict");
    assert_eq!(
        got.data["spec"]["replicas"],
        json!(1),
        "served as an integer"
    );
    let owners: Vec<String> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            serde_json::to_value(&m.fields_v1).is_ok_and(|f| f["f:spec"]["f:replicas"].is_object())
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(owners, ["alice", "bob"], "both own spec.replicas");
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::apply("bob"),
            &Patch::Apply(widget(json!(2))),
        )
        .await
        .expect_err("a different value still conflicts"),
    );
    assert_eq!(err.code, 409);
}

/// What an admin does after the operator installed its CRDs (`run --manage-crds`): re-apply
/// `crds/` with `kubectl apply --server-side`. The operator applies with its field manager
/// (numbers such as `minimum: 1.0` as serde writes an f64); kubectl sends the same CRD with the
/// numbers as Go writes them (`1`). A real server sees equal values and reports no conflict.
#[tokio::test]
async fn re_applying_identical_crds_after_the_operator_is_no_conflict() {
    let (_s, client) = server();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in miracolix_operator::api::all_crds() {
        let name = crd.metadata.name.clone().expect("name");
        crds.patch(
            &name,
            &PatchParams::apply("miracolix-operator").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("the operator applies its CRD");
        let mut as_kubectl_sends_it = serde_json::to_value(&crd).expect("json");
        as_go_prints_them(&mut as_kubectl_sends_it);
        crds.patch(
            &name,
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&as_kubectl_sends_it),
        )
        .await
        .unwrap_or_else(|e| panic!("kubectl re-applies {name} without a conflict: {e}"));
    }
}

/// Integral floats as Go's encoding/json prints a float64: `1.0` becomes `1`.
fn as_go_prints_them(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Exact: the CRDs' bounds are small whole numbers.
                *v = json!(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_go_prints_them),
        Value::Object(m) => m.values_mut().for_each(as_go_prints_them),
        _ => {}
    }
}
