//! Cluster behaviour around the API: workload simulation, garbage collection, fault
//! injection and the request log.

mod common;

use std::time::Duration;

use common::{api_error, server, within};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use miracolix_e2e::{Config, FaultCode, Faults, TestApiServer, WorkloadTiming};
use serde_json::json;

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}},
    }))
    .expect("deployment")
}

fn condition(d: &Deployment, t: &str) -> Option<(String, Option<String>)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn deployments_become_available() {
    let (_s, client) = server();
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .expect("create");
    let d = api.get("web").await.expect("get");
    let status = d.status.clone().expect("status");
    assert_eq!(
        (
            status.ready_replicas,
            status.available_replicas,
            status.updated_replicas
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(&d, "Available").map(|c| c.0).as_deref(),
        Some("True")
    );
}

#[tokio::test]
async fn failing_images_never_become_ready() {
    let (s, client) = server();
    s.add_failing_image("broken");
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &deployment("web", "registry/broken:1"),
    )
    .await
    .expect("create");
    let d = api.get("web").await.expect("get");
    assert_eq!(
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        0
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("False".into(), Some("ProgressDeadlineExceeded".into())))
    );
    // Rolling back to a good image recovers.
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry/good:1"}]}}}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&p))
        .await
        .expect("rollback");
    assert_eq!(d.metadata.generation, Some(2));
    let d = api.get("web").await.expect("get");
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
}

#[tokio::test]
async fn manual_timing_holds_rollouts_until_ticked() {
    let (s, client) = server();
    s.set_workload_timing(WorkloadTiming::Manual);
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .expect("create");
    assert!(
        api.get("web").await.expect("get").status.is_none(),
        "not ready before the tick"
    );
    assert_eq!(s.complete_rollouts(), 1);
    assert_eq!(
        api.get("web")
            .await
            .expect("get")
            .status
            .and_then(|s| s.ready_replicas),
        Some(2)
    );
}

#[tokio::test]
async fn delayed_rollouts_complete_on_their_own() {
    let s = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::After(Duration::from_millis(50)),
        ..Config::default()
    });
    let api: Api<Deployment> = Api::default_namespaced(s.client());
    api.create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .expect("create");
    let ready = await_condition(api.clone(), "web", conditions::is_deployment_completed());
    within("deployment rollout after the delay", ready)
        .await
        .expect("watch ok");
}

#[tokio::test]
async fn statefulset_claims_outlive_the_statefulset() {
    let (_s, client) = server();
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "pg"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "storage"}}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]},
    }))
    .expect("sts");
    let api: Api<StatefulSet> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &sts)
        .await
        .expect("create");
    assert_eq!(
        api.get("db")
            .await
            .expect("get")
            .status
            .and_then(|s| s.ready_replicas),
        Some(2)
    );
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client);
    let names = |l: Vec<PersistentVolumeClaim>| {
        l.into_iter()
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(pvcs.list(&ListParams::default()).await.expect("list").items),
        ["data-db-0", "data-db-1"]
    );
    // Like the StatefulSet controller: template labels plus the selector's matchLabels.
    let labelled = pvcs
        .list(&ListParams::default().labels("tier=storage,app=db"))
        .await
        .expect("list by labels");
    assert_eq!(
        labelled.items.len(),
        2,
        "claims carry template and selector labels"
    );
    api.delete("db", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        names(pvcs.list(&ListParams::default()).await.expect("list").items).len(),
        2,
        "PVCs are retained"
    );
}

#[tokio::test]
async fn dependents_are_garbage_collected_with_their_owner() {
    let (s, client) = server();
    let owners: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm");
    let owner = owners
        .create(&PostParams::default(), &owner)
        .await
        .expect("owner");
    let uid = owner.metadata.uid.expect("uid");
    let dep = |name: &str, extra_owner: Option<&str>| -> ConfigMap {
        let mut refs =
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid})];
        if let Some(o) = extra_owner {
            refs.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": o}));
        }
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
            .expect("cm")
    };
    let other = owners
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("cm"),
        )
        .await
        .expect("other");
    owners
        .create(&PostParams::default(), &dep("child", None))
        .await
        .expect("child");
    owners
        .create(
            &PostParams::default(),
            &dep("shared", other.metadata.uid.as_deref()),
        )
        .await
        .expect("shared");
    let orphan_owner = owners
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "o2"}})).expect("cm"),
        )
        .await
        .expect("o2");
    let orphan: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "orphan", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o2", "uid": orphan_owner.metadata.uid}]}})).expect("cm");
    owners
        .create(&PostParams::default(), &orphan)
        .await
        .expect("orphan");

    owners
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    assert!(
        s.object("", "configmaps", "default", "child").is_none(),
        "sole-owned dependent deleted"
    );
    let shared = owners
        .get("shared")
        .await
        .expect("shared survives: it has another owner");
    assert_eq!(shared.metadata.owner_references.map(|r| r.len()), Some(1));

    owners
        .delete("o2", &DeleteParams::orphan())
        .await
        .expect("delete o2");
    let orphan = owners
        .get("orphan")
        .await
        .expect("orphaned dependent survives");
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn every_nth_write_fails_with_the_injected_code() {
    let (s, client) = server();
    s.set_faults(Faults::every_nth_write(2, FaultCode::TooManyRequests));
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).expect("cm")
    };
    api.create(&PostParams::default(), &cm("a"))
        .await
        .expect("1st write ok");
    let err = api_error(
        api.create(&PostParams::default(), &cm("b"))
            .await
            .expect_err("2nd write fails"),
    );
    assert_eq!(err.code, 429);
    assert!(
        s.object("", "configmaps", "default", "b").is_none(),
        "a failed write changes nothing"
    );
    api.get("a").await.expect("reads are not faulted");
    s.set_faults(Faults::every_nth_write(1, FaultCode::Internal));
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &cm("c"))
                .await
                .expect_err("500")
        )
        .code,
        500
    );
    s.set_faults(Faults::every_nth_write(1, FaultCode::Conflict));
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &cm("c"))
                .await
                .expect_err("409")
        )
        .code,
        409
    );
    s.clear_faults();
    api.create(&PostParams::default(), &cm("c"))
        .await
        .expect("healthy again");
}

#[tokio::test]
async fn seeded_error_rate_is_reproducible() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let (s, client) = server();
        s.set_faults(Faults::error_rate(0.5, FaultCode::Internal, seed));
        let api: Api<ConfigMap> = Api::default_namespaced(client);
        let mut out = Vec::new();
        for i in 0..20 {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).expect("cm");
            out.push(api.create(&PostParams::default(), &cm).await.is_ok());
        }
        out
    }
    let a = outcomes(7).await;
    assert_eq!(a, outcomes(7).await, "same seed, same failures");
    assert!(
        a.iter().any(|ok| *ok) && a.iter().any(|ok| !ok),
        "a rate of 0.5 fails some, not all: {a:?}"
    );
}

#[tokio::test]
async fn latency_is_added_to_requests() {
    let (s, client) = server();
    s.set_faults(Faults::latency(Duration::from_millis(100)));
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let start = std::time::Instant::now();
    api.list(&ListParams::default()).await.expect("list");
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn requests_are_recorded_with_verb_resource_and_user_agent() {
    let (s, _) = server();
    let client = s.client_as("miracolix-operator/0.1");
    s.clear_requests();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
    )
    .expect("cm");
    api.patch("a", &PatchParams::apply("op"), &Patch::Apply(&cm))
        .await
        .expect("apply");
    api.get("a").await.expect("get");
    api.list(&ListParams::default()).await.expect("list");
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let log: Vec<(String, String, String)> = s
        .requests()
        .into_iter()
        .map(|r| (r.verb, r.resource, r.namespace))
        .collect();
    let expected: Vec<(String, String, String)> = ["patch", "get", "list", "delete"]
        .iter()
        .map(|v| {
            (
                v.to_string(),
                "configmaps".to_string(),
                "default".to_string(),
            )
        })
        .collect();
    assert_eq!(log, expected);
    let first = &s.requests()[0];
    assert_eq!(first.field_manager, "op");
    assert!(first.patch_type.starts_with("application/apply-patch"));
    assert_eq!(first.user_agent, "miracolix-operator/0.1");
}

fn owned(name: &str, owner: &ConfigMap, block: bool, finalizer: Option<&str>) -> ConfigMap {
    let mut v = json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "blockOwnerDeletion": block}]}});
    if let Some(f) = finalizer {
        v["metadata"]["finalizers"] = json!([f]);
    }
    serde_json::from_value(v).expect("cm")
}

fn named(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
}

/// Foreground: the owner shows `foregroundDeletion` and a deletionTimestamp until every
/// dependent with `blockOwnerDeletion: true` is gone; dependents that do not block are
/// deleted too but do not hold it.
#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = api
        .create(&PostParams::default(), &named("owner"))
        .await
        .expect("owner");
    api.create(
        &PostParams::default(),
        &owned("blocking", &owner, true, Some("example.org/hold")),
    )
    .await
    .expect("blocking");
    api.create(&PostParams::default(), &owned("loose", &owner, false, None))
        .await
        .expect("loose");
    let answer = api
        .delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete")
        .left()
        .expect("the owner, still there");
    assert!(answer.metadata.deletion_timestamp.is_some());
    assert_eq!(
        answer.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert_eq!(
        api_error(api.get("loose").await.expect_err("collected")).code,
        404
    );
    let blocking = api.get("blocking").await.expect("held by its finalizer");
    assert!(blocking.metadata.deletion_timestamp.is_some());
    let owner = api.get("owner").await.expect("owner waits");
    assert_eq!(
        owner.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    api.patch(
        "blocking",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(
        api_error(api.get("owner").await.expect_err("gone")).code,
        404
    );
}

/// Orphan: the `orphan` finalizer, dependents lose their reference, then the owner goes.
#[tokio::test]
async fn orphan_deletion_releases_dependents_then_removes_the_owner() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = api
        .create(&PostParams::default(), &named("owner"))
        .await
        .expect("owner");
    api.create(&PostParams::default(), &owned("dep", &owner, true, None))
        .await
        .expect("dep");
    // The owner's own finalizer keeps it, so the GC's part can be seen on its own.
    api.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.org/hold"]}})),
    )
    .await
    .expect("hold owner");
    let answer = api
        .delete("owner", &DeleteParams::orphan())
        .await
        .expect("delete")
        .left()
        .expect("the owner");
    assert!(
        answer
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"orphan".to_string())
    );
    let dep = api.get("dep").await.expect("dependent survives");
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    let owner = api.get("owner").await.expect("held by its own finalizer");
    assert_eq!(
        owner.metadata.finalizers,
        Some(vec!["example.org/hold".to_string()]),
        "the collector removed `orphan` once done"
    );
    api.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(
        api_error(api.get("owner").await.expect_err("gone")).code,
        404
    );
    assert!(api.get("dep").await.is_ok());
}

/// Dependents whose owner does not exist (never did, or has another uid) are collected;
/// those with another live owner only lose the dangling reference.
#[tokio::test]
async fn dependents_of_missing_owners_are_collected() {
    let (_s, client) = server();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let live = api
        .create(&PostParams::default(), &named("live"))
        .await
        .expect("live");
    let ghost: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ghost",
        "uid": "00000000-0000-4000-8000-ffffffffffff"}}))
    .expect("cm");
    api.create(
        &PostParams::default(),
        &owned("dangling", &ghost, false, None),
    )
    .await
    .expect("create is accepted");
    let mut wrong_uid = live.clone();
    wrong_uid.metadata.uid = Some("00000000-0000-4000-8000-fffffffffffe".to_string());
    api.create(
        &PostParams::default(),
        &owned("stale", &wrong_uid, false, None),
    )
    .await
    .expect("create is accepted");
    let mut both = owned("both", &live, false, None);
    both.metadata
        .owner_references
        .get_or_insert_with(Vec::new)
        .push(
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "name": "ghost", "uid": "00000000-0000-4000-8000-ffffffffffff"}))
            .expect("ref"),
        );
    api.create(&PostParams::default(), &both)
        .await
        .expect("both");
    for gone in ["dangling", "stale"] {
        assert_eq!(
            api_error(api.get(gone).await.expect_err("collected")).code,
            404,
            "{gone}"
        );
    }
    let both = api.get("both").await.expect("has a live owner");
    let refs = both.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "live");
    // References to kinds the server cannot resolve are left alone, as the collector cannot
    // look them up either.
    let unknown: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "foreign",
        "ownerReferences": [{"apiVersion": "example.org/v1", "kind": "Thing", "name": "t",
            "uid": "00000000-0000-4000-8000-fffffffffffd"}]}}))
    .expect("cm");
    api.create(&PostParams::default(), &unknown)
        .await
        .expect("foreign");
    assert!(api.get("foreign").await.is_ok());
}
