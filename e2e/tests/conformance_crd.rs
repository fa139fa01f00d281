//! CRDs: installation makes the kind servable; custom resources are validated, defaulted
//! and pruned like kube-apiserver does.

mod common;

use common::{GROUP, api_error, install_widgets, server, widget, widgets, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn crd_api(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    )
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn installing_a_crd_establishes_it_and_serves_the_kind() {
    let (s, client) = server();
    assert!(!s.resources().iter().any(|r| r.group == GROUP));
    install_widgets(&client).await;
    let crd = s
        .object(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            &format!("widgets.{GROUP}"),
        )
        .expect("stored");
    let conditions = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True"),
            "{t} missing: {conditions:?}"
        );
    }
    let w = widgets(&client)
        .create(
            &PostParams::default(),
            &widget("w", json!({"siteId": "erlangen"})),
        )
        .await
        .expect("create");
    assert_eq!(w.data["spec"]["siteId"], "erlangen");
    let discovery = kube::discovery::Discovery::new(client)
        .run()
        .await
        .expect("discovery");
    let (res, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"))
        .expect("widgets discoverable");
    assert_eq!(res.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
}

#[tokio::test]
async fn custom_resources_of_unknown_kinds_are_404() {
    let (_s, client) = server();
    let err = api_error(
        widgets(&client)
            .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
            .await
            .expect_err("no CRD"),
    );
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn invalid_custom_resources_are_rejected_with_422_and_not_stored() {
    let (s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let cases = [
        (json!({}), "spec.siteId: Required value"),
        (
            json!({"siteId": "Bad_Id"}),
            "spec.siteId in body should match '^[a-z][a-z0-9-]*$'",
        ),
        (
            json!({"siteId": "a", "tier": "huge"}),
            "spec.tier: Unsupported value: \"huge\": supported values: \"small\", \"large\"",
        ),
        (
            json!({"siteId": "a", "replicas": -1}),
            "spec.replicas in body should be greater than or equal to 0",
        ),
        (
            json!({"siteId": "a", "replicas": 3, "maxReplicas": 2}),
            "spec: Invalid value: \"object\": replicas must not exceed maxReplicas",
        ),
        (
            json!({"siteId": "a", "ports": [{"name": "x"}, {"name": "x"}]}),
            "spec.ports[1]: Duplicate value",
        ),
    ];
    for (spec, expected) in cases {
        let err = api_error(
            api.create(&PostParams::default(), &widget("bad", spec.clone()))
                .await
                .expect_err("invalid"),
        );
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{spec}");
        assert!(
            err.message
                .starts_with(&format!("Widget.{GROUP} \"bad\" is invalid: ")),
            "{}",
            err.message
        );
        assert!(
            err.message.contains(expected),
            "{spec}: {} does not contain {expected}",
            err.message
        );
        assert!(
            err.details.is_some_and(|d| !d.causes.is_empty()),
            "causes are listed"
        );
        assert!(
            s.object(GROUP, "widgets", "default", "bad").is_none(),
            "nothing stored"
        );
    }
}

#[tokio::test]
async fn defaults_are_applied_and_unknown_fields_pruned() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let w = widgets(&client)
        .create(
            &PostParams::default(),
            &widget("w", json!({"siteId": "a", "unknown": 1})),
        )
        .await
        .expect("create");
    assert_eq!(w.data["spec"]["tier"], "small", "default applied");
    assert!(
        w.data["spec"].get("unknown").is_none(),
        "unknown field pruned"
    );
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let body = serde_json::to_vec(&widget("w", json!({"siteId": "a", "foo": 1}))).expect("body");
    let req = http::Request::post(format!(
        "/apis/{GROUP}/v1/namespaces/default/widgets?fieldValidation=Strict"
    ))
    .header("Content-Type", "application/json")
    .body(body)
    .expect("request");
    let err = api_error(
        client
            .request::<DynamicObject>(req)
            .await
            .expect_err("strict"),
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "strict decoding error: unknown field \"spec.foo\""
    );
}

#[tokio::test]
async fn transition_rules_see_the_old_object() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    api.create(
        &PostParams::default(),
        &widget("w", json!({"siteId": "erlangen"})),
    )
    .await
    .expect("create");
    let p = json!({"spec": {"siteId": "berlin"}});
    let err = api_error(
        api.patch("w", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect_err("immutable"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .ends_with("spec.siteId: Invalid value: \"string\": siteId is immutable"),
        "{}",
        err.message
    );
    let apply = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"siteId": "berlin"}});
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::apply("op").force(),
            &Patch::Apply(&apply),
        )
        .await
        .expect_err("immutable via apply"),
    );
    assert!(
        err.message.contains("siteId is immutable"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn custom_resource_status_subresource() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let mut w = widget("w", json!({"siteId": "a"}));
    w.data["status"] = json!({"phase": "ignored"});
    let created = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert!(created.data.get("status").is_none());
    let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let out = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("status");
    assert_eq!(out.data["status"]["conditions"][0]["status"], "True");
    assert_eq!(out.metadata.generation, Some(1));
}

#[tokio::test]
async fn list_map_items_merge_by_key_in_apply() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let a = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"siteId": "a", "ports": [{"name": "http", "port": 80}]}});
    api.patch("w", &PatchParams::apply("a"), &Patch::Apply(&a))
        .await
        .expect("a");
    let b = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"ports": [{"name": "metrics", "port": 9090}]}});
    let out = api
        .patch("w", &PatchParams::apply("b"), &Patch::Apply(&b))
        .await
        .expect("b");
    assert_eq!(
        out.data["spec"]["ports"].as_array().map(Vec::len),
        Some(2),
        "{}",
        out.data
    );
}

#[tokio::test]
async fn cluster_scoped_crds_are_served_without_namespace() {
    let (_s, client) = server();
    let mut crd = common::widget_crd();
    crd["metadata"]["name"] = json!(format!("globals.{GROUP}"));
    crd["spec"]["scope"] = json!("Cluster");
    crd["spec"]["names"] = json!({"kind": "Global", "plural": "globals"});
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).expect("crd"),
    )
    .await
    .expect("crd");
    common::wait_established(&client, &format!("globals.{GROUP}")).await;
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Global"), "globals");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Global",
        "metadata": {"name": "g"}, "spec": {"siteId": "a"}}),
    )
    .expect("obj");
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
    assert!(created.metadata.namespace.is_none());
    let namespaced: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    assert_eq!(
        api_error(namespaced.get("g").await.expect_err("404")).code,
        404
    );
}

#[tokio::test]
async fn deleting_a_crd_removes_its_resources() {
    let (s, client) = server();
    install_widgets(&client).await;
    widgets(&client)
        .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
        .await
        .expect("create");
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.delete(&format!("widgets.{GROUP}"), &Default::default())
        .await
        .expect("delete");
    assert!(s.object(GROUP, "widgets", "default", "w").is_none());
    assert_eq!(
        api_error(widgets(&client).get("w").await.expect_err("gone")).code,
        404
    );
}

#[tokio::test]
async fn printer_columns_are_served_as_a_table() {
    let (s, client) = server();
    install_widgets(&client).await;
    widgets(&client)
        .create(
            &PostParams::default(),
            &widget("w", json!({"siteId": "erlangen"})),
        )
        .await
        .expect("create");
    let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    widgets(&client)
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("status");
    let req = http::Request::get(format!("/apis/{GROUP}/v1/namespaces/default/widgets"))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .expect("request");
    let table: serde_json::Value = client.request(req).await.expect("table");
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Site", "Ready", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "w");
    assert_eq!(cells[1], "erlangen");
    assert_eq!(cells[2], "True");
    assert!(
        cells[3].as_str().is_some_and(|a| a.ends_with('s')),
        "age rendered: {cells}"
    );
    let _ = s;
}

/// The operator's own CRDs, once generated into `crds/`, install and serve.
#[tokio::test]
async fn the_operators_crds_install_when_present() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipped: {} does not exist yet", dir.display());
        return;
    };
    let (s, client) = server();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let mut installed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).expect("valid YAML") {
            if doc.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd: DynamicObject = serde_json::from_value(doc).expect("CRD");
            crds.patch(
                &crd.metadata.name.clone().unwrap_or_default(),
                &PatchParams::apply("test"),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            common::wait_established(&client, crd.metadata.name.as_deref().unwrap_or_default())
                .await;
            installed += 1;
        }
    }
    if installed == 0 {
        println!("skipped: no CRDs in {}", dir.display());
        return;
    }
    assert!(
        s.resources().iter().any(|r| r.group == "diz.miracum.org"),
        "operator kinds served"
    );
}

#[tokio::test]
async fn reapplying_a_defaulted_custom_resource_is_a_no_op() {
    let (s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let w = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"siteId": "a"}});
    let first = api
        .patch("w", &PatchParams::apply("op"), &Patch::Apply(&w))
        .await
        .expect("apply");
    assert_eq!(first.data["spec"]["tier"], "small");
    let rv = s.resource_version();
    let again = api
        .patch("w", &PatchParams::apply("op"), &Patch::Apply(&w))
        .await
        .expect("apply again");
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(s.resource_version(), rv, "no write happened");
}

/// A CRD is served only after apiextensions' naming and establishing controllers have
/// written its status, each in a write (and watch event) of its own after the create.
#[tokio::test]
async fn a_new_crd_is_established_after_the_create_in_separate_writes() {
    let (s, client) = server();
    let crds = crd_api(&client);
    let mut events = crds
        .watch(&WatchParams::default(), &s.resource_version().to_string())
        .await
        .expect("watch")
        .boxed();
    s.pause_controllers();
    let crd: DynamicObject = serde_json::from_value(common::widget_crd()).expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("create");
    let status = &created.data["status"];
    assert!(
        condition(&created.data, "Established").is_none(),
        "{status}"
    );
    assert!(
        condition(&created.data, "NamesAccepted").is_none(),
        "{status}"
    );
    assert_eq!(status["acceptedNames"], json!({"plural": "", "kind": ""}));
    assert_eq!(status["storedVersions"], json!(["v1"]));
    // Not served yet: the path is unknown, as on a real server in that moment.
    let err = api_error(
        widgets(&client)
            .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
            .await
            .expect_err("not served yet"),
    );
    assert_eq!(err.code, 404);
    assert_eq!(
        err.message,
        "the server could not find the requested resource"
    );
    s.resume_controllers();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = within("CRD watch events", events.try_next())
            .await
            .expect("watch ok")
            .expect("event");
        seen.push(match ev {
            WatchEvent::Added(o) => ("ADDED", o.data),
            WatchEvent::Modified(o) => ("MODIFIED", o.data),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen[0].0, "ADDED");
    assert!(condition(&seen[0].1, "Established").is_none());
    assert_eq!(seen[1].0, "MODIFIED");
    assert_eq!(
        condition(&seen[1].1, "NamesAccepted").map(|c| &c["status"]),
        Some(&json!("True"))
    );
    assert_eq!(
        condition(&seen[1].1, "Established").map(|c| (&c["status"], &c["reason"])),
        Some((&json!("False"), &json!("Installing")))
    );
    assert_eq!(seen[1].1["status"]["acceptedNames"]["plural"], "widgets");
    assert_eq!(seen[2].0, "MODIFIED");
    assert_eq!(
        condition(&seen[2].1, "Established").map(|c| (&c["status"], &c["reason"])),
        Some((&json!("True"), &json!("InitialNamesAccepted")))
    );
    widgets(&client)
        .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
        .await
        .expect("served once established");
}

/// Deleting a CRD: the cleanup finalizer and Terminating, instances deleted (their own
/// finalizers honoured), creates refused meanwhile, the CRD gone with its last instance.
#[tokio::test]
async fn deleting_a_crd_waits_for_its_resources_finalizers() {
    let (s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    api.create(
        &PostParams::default(),
        &widget("free", json!({"siteId": "a"})),
    )
    .await
    .expect("free");
    let mut held = widget("held", json!({"siteId": "a"}));
    held.metadata.finalizers = Some(vec!["example.org/hold".to_string()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("held");
    let crds = crd_api(&client);
    let name = format!("widgets.{GROUP}");
    let answer = crds
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the CRD, marked");
    assert!(answer.metadata.deletion_timestamp.is_some());
    assert_eq!(
        answer.metadata.finalizers,
        Some(vec![
            "customresourcecleanup.apiextensions.k8s.io".to_string()
        ])
    );
    let terminating = condition(&answer.data, "Terminating").expect("Terminating");
    assert_eq!(terminating["status"], "True");
    assert_eq!(terminating["reason"], "InstanceDeletionPending");

    assert_eq!(
        api_error(api.get("free").await.expect_err("deleted")).code,
        404
    );
    let held = api.get("held").await.expect("kept by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    let crd = crds.get(&name).await.expect("CRD still there");
    assert_eq!(
        condition(&crd.data, "Terminating").map(|c| &c["reason"]),
        Some(&json!("InstanceDeletionInProgress"))
    );
    let err = api_error(
        api.create(
            &PostParams::default(),
            &widget("late", json!({"siteId": "a"})),
        )
        .await
        .expect_err("refused"),
    );
    assert_eq!((err.code, err.reason.as_str()), (405, "MethodNotAllowed"));
    assert_eq!(
        err.message,
        "create not allowed while custom resource definition is terminating"
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(
        api_error(crds.get(&name).await.expect_err("gone")).code,
        404
    );
    assert!(!s.resources().iter().any(|r| r.group == GROUP));
    assert_eq!(api_error(api.get("held").await.expect_err("404")).code, 404);
}

#[tokio::test]
async fn put_without_resource_version_is_invalid_for_custom_resources() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let created = api
        .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
        .await
        .expect("create");
    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data["spec"]["replicas"] = json!(2);
    let err = api_error(
        api.replace("w", &PostParams::default(), &unconditional)
            .await
            .expect_err("refused"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        format!(
            "widgets.{GROUP} \"w\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        )
    );
    let err = api_error(
        api.replace_status("w", &PostParams::default(), &unconditional)
            .await
            .expect_err("refused"),
    );
    assert_eq!(err.code, 422, "{err:?}");
    // With the resourceVersion it is an ordinary update.
    let mut conditional = created.clone();
    conditional.data["spec"]["replicas"] = json!(2);
    api.replace("w", &PostParams::default(), &conditional)
        .await
        .expect("update");
    // No create on PUT for custom resources.
    let err = api_error(
        api.replace(
            "new",
            &PostParams::default(),
            &widget("new", json!({"siteId": "a"})),
        )
        .await
        .expect_err("404"),
    );
    assert_eq!(err.code, 404);
    // CRDs themselves are conditional too.
    let crds = crd_api(&client);
    let mut crd = crds.get(&format!("widgets.{GROUP}")).await.expect("crd");
    crd.metadata.resource_version = None;
    let err = api_error(
        crds.replace(&format!("widgets.{GROUP}"), &PostParams::default(), &crd)
            .await
            .expect_err("refused"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(&format!(
            "customresourcedefinitions.apiextensions.k8s.io \"widgets.{GROUP}\" is invalid: metadata.resourceVersion"
        )),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn deleting_a_custom_resource_answers_with_a_status_unless_finalizers_keep_it() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let created = api
        .create(&PostParams::default(), &widget("w", json!({"siteId": "a"})))
        .await
        .expect("create");
    let status = api
        .delete("w", &DeleteParams::default())
        .await
        .expect("delete")
        .right()
        .expect("a Status");
    assert!(status.is_success());
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("w", GROUP, "widgets")
    );
    assert_eq!(Some(details.uid), created.metadata.uid);
    let mut held = widget("held", json!({"siteId": "a"}));
    held.metadata.finalizers = Some(vec!["example.org/hold".to_string()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("held");
    let marked = api
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the object, kept by its finalizer");
    assert!(marked.metadata.deletion_timestamp.is_some());
}

#[tokio::test]
async fn custom_resource_scale_subresource() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    api.create(
        &PostParams::default(),
        &widget("w", json!({"siteId": "a", "replicas": 2})),
    )
    .await
    .expect("create");
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1, "selector": "app=w"}})),
    )
    .await
    .expect("status");
    let scale: Scale = api.get_scale("w").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    let status = scale.status.expect("status");
    assert_eq!(status.replicas, 1);
    assert_eq!(status.selector.as_deref(), Some("app=w"));
    assert_eq!(scale.metadata.name.as_deref(), Some("w"));

    let mut wanted = api.get_scale("w").await.expect("scale");
    wanted.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(4) });
    let replaced: Scale = api
        .replace_scale("w", &PostParams::default(), &wanted)
        .await
        .expect("PUT scale");
    assert_eq!(replaced.spec.and_then(|s| s.replicas), Some(4));
    assert_eq!(api.get("w").await.expect("w").data["spec"]["replicas"], 4);
    let patched: Scale = api
        .patch_scale(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("PATCH scale");
    assert_eq!(patched.spec.and_then(|s| s.replicas), Some(5));
    let w = api.get("w").await.expect("w");
    assert_eq!(w.data["spec"]["replicas"], 5);
    assert_eq!(
        w.metadata.generation,
        Some(3),
        "scale writes change the spec"
    );
}

#[tokio::test]
async fn unknown_fields_are_warned_about_by_default_and_ignored_on_request() {
    let (s, client) = server();
    install_widgets(&client).await;
    let post = |query: &str, name: &str| {
        let body = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
            "metadata": {"name": name}, "spec": {"siteId": "a", "foo": 1}});
        http::Request::post(format!(
            "/apis/{GROUP}/v1/namespaces/default/widgets{query}"
        ))
        .header("Content-Type", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(&body).expect("json"),
        ))
        .expect("request")
    };
    let warnings = |r: &http::Response<kube::client::Body>| -> Vec<String> {
        r.headers()
            .get_all("warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    };
    // No fieldValidation: the server's default, Warn.
    let r = client.send(post("", "a")).await.expect("send");
    assert_eq!(r.status(), 201);
    assert_eq!(warnings(&r), [r#"299 - "unknown field \"spec.foo\"""#]);
    let r = client
        .send(post("?fieldValidation=Warn", "b"))
        .await
        .expect("send");
    assert_eq!(warnings(&r), [r#"299 - "unknown field \"spec.foo\"""#]);
    let r = client
        .send(post("?fieldValidation=Ignore", "c"))
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    assert!(warnings(&r).is_empty());
    for n in ["a", "b", "c"] {
        let stored = s.object(GROUP, "widgets", "default", n).expect("stored");
        assert!(stored["spec"].get("foo").is_none(), "pruned");
    }
    let r = client
        .send(post("?fieldValidation=Strict", "d"))
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = client
        .send(post("?fieldValidation=Loose", "e"))
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "unsupported option value");
}

/// Aggregated discovery (apidiscovery.k8s.io/v2): one request each for /api and /apis.
#[tokio::test]
async fn aggregated_discovery_serves_custom_resources() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let (res, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"))
        .expect("widgets discoverable");
    assert_eq!(res.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let subresources: Vec<&str> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.as_str())
        .collect();
    assert!(
        subresources.contains(&"widgets/status") || subresources.contains(&"status"),
        "{subresources:?}"
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .is_some(),
        "core group from /api"
    );
    let list = client
        .list_api_groups_aggregated()
        .await
        .expect("APIGroupDiscoveryList");
    let group = list
        .items
        .iter()
        .find(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some(GROUP))
        .expect("widget group");
    let widgets = &group.versions[0].resources[0];
    assert_eq!(widgets.resource.as_deref(), Some("widgets"));
    assert_eq!(widgets.scope.as_deref(), Some("Namespaced"));
    assert_eq!(widgets.short_names, ["wd"]);
    assert_eq!(widgets.categories, ["gadgets"]);
    let subs: Vec<&str> = widgets
        .subresources
        .iter()
        .filter_map(|s| s.subresource.as_deref())
        .collect();
    assert_eq!(subs, ["status", "scale"]);
}

/// kube-apiserver estimates the worst-case cost of each CEL rule from the schema's bounds and
/// refuses a CRD whose rule would exceed the per-rule budget (StaticEstimatedCostLimit,
/// 10,000,000) — here a nested loop over a list without maxItems.
#[tokio::test]
async fn crds_with_rules_over_the_cel_cost_budget_are_refused() {
    let (s, client) = server();
    let crd = |max_items: Option<u64>| {
        let mut names = json!({"type": "array", "items": {"type": "string", "maxLength": 63}});
        if let Some(n) = max_items {
            names["maxItems"] = json!(n);
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("gadgets.{GROUP}")},
            "spec": {"group": GROUP, "scope": "Namespaced",
                "names": {"kind": "Gadget", "plural": "gadgets"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"names": names},
                            "x-kubernetes-validations": [{
                                "rule": "self.names.all(a, self.names.exists_one(b, a == b))",
                                "message": "names must be unique"}]}}}}}]}});
        serde_json::from_value::<DynamicObject>(crd).expect("CRD object")
    };
    let err = api_error(
        crd_api(&client)
            .create(&PostParams::default(), &crd(None))
            .await
            .expect_err("over budget"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.starts_with(&format!(
            "CustomResourceDefinition.apiextensions.k8s.io \"gadgets.{GROUP}\" is invalid: "
        )),
        "{}",
        err.message
    );
    // The rule over the per-rule budget, and (being far over) the schema over its total.
    for expected in [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: \
         Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying \
         the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings \
         are declared)",
        "spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated \
         rule cost total for entire OpenAPIv3 schema exceeds budget",
    ] {
        assert!(err.message.contains(expected), "{}", err.message);
    }
    assert!(
        s.object(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            &format!("gadgets.{GROUP}")
        )
        .is_none(),
        "nothing stored"
    );
    // Bounded, the same rule fits.
    crd_api(&client)
        .create(&PostParams::default(), &crd(Some(100)))
        .await
        .expect("within budget");
}

/// Oneshot discovery of one group (`/apis/{group}` then its versions) and of one pinned kind,
/// as `kube::discovery::group` and `pinned_kind` do it, for a built-in group, a CRD's group
/// and the core group; what they resolve is listable.
#[tokio::test]
async fn oneshot_discovery_resolves_single_groups_and_kinds() {
    let (_s, client) = server();
    install_widgets(&client).await;
    let apps = kube::discovery::group(&client, "apps")
        .await
        .expect("apps group");
    let (ar, caps) = apps.recommended_kind("Deployment").expect("Deployment");
    assert_eq!(
        (ar.version.as_str(), ar.plural.as_str()),
        ("v1", "deployments")
    );
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    api.list(&Default::default())
        .await
        .expect("list deployments");
    let custom = kube::discovery::group(&client, GROUP)
        .await
        .expect("widget group");
    assert!(custom.recommended_kind("Widget").is_some());
    let (node, caps) =
        kube::discovery::pinned_kind(&client, &GroupVersionKind::gvk("", "v1", "Node"))
            .await
            .expect("Node");
    assert_eq!(node.plural, "nodes");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    let unknown = kube::discovery::group(&client, "no.such.group.example.org").await;
    assert!(
        matches!(unknown, Err(kube::Error::Discovery(_))),
        "an unknown group is a discovery error"
    );
}
