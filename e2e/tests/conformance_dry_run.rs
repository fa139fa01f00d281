//! `dryRun=All`: every write verb validates, defaults and admits as for real and answers
//! with the would-be result, but persists nothing, consumes no resourceVersion, sends no
//! watch event and runs no garbage collection or finalizer side effect.

mod common;

use common::{GROUP, api_error, install_widgets, server, widget, widgets, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use miracolix_e2e::TestApiServer;
use serde_json::json;

fn dry() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: None,
    }
}

/// Watches widgets from the current resourceVersion; `assert_next_is` then proves that the
/// first event after a series of dry runs is the marker write made after them.
async fn watch_from_now(
    s: &TestApiServer,
    api: &Api<DynamicObject>,
) -> futures::stream::BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>> {
    let rv = s.resource_version().to_string();
    api.watch(&WatchParams::default(), &rv)
        .await
        .expect("watch starts")
        .boxed()
}

async fn assert_next_is(
    events: &mut futures::stream::BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>,
    name: &str,
) {
    let ev = within(&format!("the watch event of {name}"), events.try_next())
        .await
        .expect("watch ok")
        .expect("an event");
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            assert_eq!(
                o.metadata.name.as_deref(),
                Some(name),
                "a dry run sent a watch event"
            );
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test]
async fn dry_run_create_validates_and_defaults_but_stores_nothing() {
    let (s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let mut events = watch_from_now(&s, &api).await;
    let rv = s.resource_version();

    let would_be = api
        .create(&dry(), &widget("w", json!({"siteId": "erlangen"})))
        .await
        .expect("dry-run create");
    assert_eq!(would_be.data["spec"]["tier"], "small", "defaulted");
    assert!(would_be.metadata.uid.is_some(), "a would-be uid");
    assert!(would_be.metadata.creation_timestamp.is_some());
    assert_eq!(
        would_be.metadata.resource_version, None,
        "nothing was stored"
    );
    assert!(s.object(GROUP, "widgets", "default", "w").is_none());
    assert_eq!(s.resource_version(), rv);

    // Validation runs as for a real create.
    let err = api_error(
        api.create(&dry(), &widget("bad", json!({"siteId": "Not Valid"})))
            .await
            .expect_err("invalid"),
    );
    assert_eq!(err.code, 422, "{err:?}");
    // And so do existence checks.
    api.create(
        &PostParams::default(),
        &widget("w", json!({"siteId": "erlangen"})),
    )
    .await
    .expect("real create");
    assert_next_is(&mut events, "w").await;
    let err = api_error(
        api.create(&dry(), &widget("w", json!({"siteId": "erlangen"})))
            .await
            .expect_err("exists"),
    );
    assert_eq!(err.code, 409);
    // A real create later gets a uid of its own, not the dry run's.
    let stored = api.get("w").await.expect("stored");
    assert_ne!(stored.metadata.uid, would_be.metadata.uid);
}

#[tokio::test]
async fn dry_run_updates_patches_applies_and_status_writes_change_nothing() {
    let (s, client) = server();
    install_widgets(&client).await;
    let api = widgets(&client);
    let live = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"siteId": "erlangen", "replicas": 1})),
        )
        .await
        .expect("create");
    let rv = live.metadata.resource_version.clone();
    let global = s.resource_version();
    let mut events = watch_from_now(&s, &api).await;
    let stored_before = s.object(GROUP, "widgets", "default", "w");

    let mut changed = live.clone();
    changed.data["spec"]["replicas"] = json!(2);
    let put = api
        .replace("w", &dry(), &changed)
        .await
        .expect("dry-run PUT");
    assert_eq!(put.data["spec"]["replicas"], 2);
    assert_eq!(
        put.metadata.resource_version, rv,
        "no resourceVersion consumed"
    );
    assert_eq!(
        put.metadata.generation,
        Some(2),
        "would bump the generation"
    );

    let merge = api
        .patch(
            "w",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("dry-run merge patch");
    assert_eq!(merge.data["spec"]["replicas"], 3);
    assert_eq!(merge.metadata.resource_version, rv);

    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]))
            .expect("json patch");
    let jp = api
        .patch(
            "w",
            &PatchParams::default().dry_run(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .expect("dry-run JSON patch");
    assert_eq!(jp.data["spec"]["replicas"], 4);

    let config = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "spec": {"siteId": "erlangen", "replicas": 5}});
    // Conflicts are detected as for a real apply (the creator owns spec.replicas) ...
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::apply("dry-applier").dry_run(),
            &Patch::Apply(&config),
        )
        .await
        .expect_err("conflict"),
    );
    assert_eq!(err.code, 409);
    // ... and forcing shows what the apply would make of the object.
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("dry-applier").force().dry_run(),
            &Patch::Apply(&config),
        )
        .await
        .expect("dry-run apply");
    assert_eq!(applied.data["spec"]["replicas"], 5);
    assert!(
        applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("dry-applier")),
        "the would-be managedFields name the applier"
    );

    let status = api
        .patch_status(
            "w",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .expect("dry-run status patch");
    assert_eq!(status.data["status"]["phase"], "Ready");

    // A dry run is refused exactly where the real write would be.
    let err = api_error(
        api.patch(
            "w",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"siteId": "marburg"}})),
        )
        .await
        .expect_err("transition rule"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("siteId is immutable"),
        "{}",
        err.message
    );

    assert_eq!(s.object(GROUP, "widgets", "default", "w"), stored_before);
    assert_eq!(s.resource_version(), global);
    api.create(
        &PostParams::default(),
        &widget("marker", json!({"siteId": "a"})),
    )
    .await
    .expect("marker");
    assert_next_is(&mut events, "marker").await;
}

#[tokio::test]
async fn dry_run_deletes_answer_like_real_ones_and_delete_nothing() {
    let (s, client) = server();
    install_widgets(&client).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm"),
        )
        .await
        .expect("owner");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}}))
        .expect("cm"),
    )
    .await
    .expect("dependent");
    let api = widgets(&client);
    let mut held = widget("held", json!({"siteId": "a"}));
    held.metadata.finalizers = Some(vec!["example.org/hold".to_string()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("held");
    let global = s.resource_version();
    let mut events = watch_from_now(&s, &api).await;

    // ConfigMaps answer an immediate delete with a Status (no ReturnDeletedObject).
    let answer = cms
        .delete("owner", &DeleteParams::default().dry_run())
        .await
        .expect("dry-run delete");
    assert!(answer.is_right(), "a Status: {answer:?}");
    assert!(cms.get("owner").await.is_ok(), "still there");
    assert!(cms.get("dependent").await.is_ok(), "no garbage collection");

    // A finalizer keeps the object: the answer is the object marked for deletion.
    let answer = api
        .delete("held", &DeleteParams::default().dry_run())
        .await
        .expect("dry-run delete");
    let marked = answer.left().expect("the object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let stored = api.get("held").await.expect("still there");
    assert!(stored.metadata.deletion_timestamp.is_none(), "not marked");

    // Namespaces answer with the object (ReturnDeletedObject), Terminating.
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss
        .delete("default", &DeleteParams::default().dry_run())
        .await
        .expect("dry-run namespace delete")
        .left()
        .expect("a namespace");
    assert_eq!(
        ns.status.and_then(|st| st.phase).as_deref(),
        Some("Terminating")
    );
    let live = nss.get("default").await.expect("namespace");
    assert_eq!(
        live.status.and_then(|st| st.phase).as_deref(),
        Some("Active")
    );

    // deletecollection too.
    let would_delete = cms
        .delete_collection(&DeleteParams::default().dry_run(), &ListParams::default())
        .await
        .expect("dry-run deletecollection");
    assert!(would_delete.is_left(), "{would_delete:?}");
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2,
        "both ConfigMaps still there"
    );

    // Foreground would add the GC finalizer; nothing of it is kept.
    cms.delete("owner", &DeleteParams::foreground().dry_run())
        .await
        .expect("dry-run foreground");
    let owner = cms.get("owner").await.expect("owner");
    assert!(owner.metadata.finalizers.is_none(), "{:?}", owner.metadata);

    assert_eq!(s.resource_version(), global);
    api.create(
        &PostParams::default(),
        &widget("marker", json!({"siteId": "a"})),
    )
    .await
    .expect("marker");
    assert_next_is(&mut events, "marker").await;
}

#[tokio::test]
async fn an_unsupported_dry_run_value_is_refused_as_invalid_options() {
    let (_s, client) = server();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let req = http::Request::post("/api/v1/namespaces/default/configmaps?dryRun=Some")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request");
    let err = api_error(client.request::<ConfigMap>(req).await.expect_err("refused"));
    // ValidateCreateOptions → NewInvalid(CreateOptions.meta.k8s.io), a 422.
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    assert!(cms.get("x").await.is_err(), "nothing created");
}
