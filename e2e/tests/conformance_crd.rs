//! CRDs: installation makes the kind servable; custom resources are validated, defaulted
//! and pruned like kube-apiserver does.

mod common;

use common::{GROUP, api_error, install_widgets, server, widget, widgets};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

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
        client,
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
