//! Stand-in for the deployment and statefulset controllers: after a delay, workloads report
//! ready replicas, unless one of their images is marked failing.

use std::time::Instant;

use serde_json::{Value, json};

use super::apply::Part;
use super::store::{ObjKey, Store};
use super::writes::{self, Managed, WriteCtx};
use super::{Config, WorkloadTiming};

const CONTROLLER: &str = "kube-controller-manager";

/// A rollout waiting for its delay.
#[derive(Clone, Debug)]
pub struct Pending {
    pub key: ObjKey,
    pub generation: i64,
    pub due: Instant,
    /// Whether a timer task was started for it already.
    pub timer: bool,
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Called after every write of a Deployment or StatefulSet.
pub fn schedule(store: &mut Store, cfg: &Config, key: &ObjKey, obj: &Value) {
    let generation = generation(obj);
    let observed = obj
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if observed == Some(generation) || obj.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    match cfg.workload_timing {
        WorkloadTiming::Immediate => complete(store, cfg, key, generation),
        WorkloadTiming::After(delay) => store.rollouts.push(Pending {
            key: key.clone(),
            generation,
            due: Instant::now() + delay,
            timer: false,
        }),
        WorkloadTiming::Manual => store.rollouts.push(Pending {
            key: key.clone(),
            generation,
            due: Instant::now(),
            timer: false,
        }),
    }
}

/// After a ConfigMap or Secret changed in `namespace`: the kubelet retries containers that
/// could not start (a Secret created late, a setting added), so every workload there that is not
/// ready is looked at again.
pub fn recheck_namespace(store: &mut Store, cfg: &Config, namespace: &str) {
    let keys: Vec<(ObjKey, i64)> = ["deployments", "statefulsets"]
        .iter()
        .flat_map(|plural| {
            store
                .list("apps", plural, Some(namespace))
                .into_iter()
                .filter(|w| {
                    let replicas = w
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let ready = w
                        .pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    w.pointer("/metadata/deletionTimestamp").is_none() && ready < replicas
                })
                .map(|w| {
                    (
                        ObjKey {
                            group: "apps".to_string(),
                            plural: (*plural).to_string(),
                            namespace: namespace.to_string(),
                            name: w
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        },
                        generation(w),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (key, generation) in keys {
        match cfg.workload_timing {
            WorkloadTiming::Immediate => complete(store, cfg, &key, generation),
            WorkloadTiming::After(delay) => store.rollouts.push(Pending {
                key,
                generation,
                due: Instant::now() + delay,
                timer: false,
            }),
            WorkloadTiming::Manual => store.rollouts.push(Pending {
                key,
                generation,
                due: Instant::now(),
                timer: false,
            }),
        }
    }
}

/// Completes every pending rollout that is due (or all, for the manual clock).
pub fn run_due(store: &mut Store, cfg: &Config, all: bool) -> usize {
    let now = Instant::now();
    let (due, later): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut store.rollouts)
        .into_iter()
        .partition(|p| all || p.due <= now);
    store.rollouts = later;
    let n = due.len();
    for p in due {
        complete(store, cfg, &p.key, p.generation);
    }
    n
}

fn ctx() -> WriteCtx {
    WriteCtx::internal(CONTROLLER)
}

fn complete(store: &mut Store, cfg: &Config, key: &ObjKey, want_generation: i64) {
    let Some(obj) = store.get(key).cloned() else {
        return;
    };
    if generation(&obj) != want_generation {
        return;
    }
    let Some(res) = store.resource_for_key(key) else {
        return;
    };
    if key.plural == "jobs" {
        super::pods::run_job(store, cfg, key, &obj, &ctx());
        return;
    }
    let failure = super::pods::failure(store, cfg, &key.namespace, &obj);
    let failing = failure.is_some();
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = if failing { 0 } else { replicas };
    let ctx = ctx();
    let now = ctx.now.clone();
    super::pods::sync(store, cfg, key, &obj, replicas, failure.as_ref(), &ctx);
    let status = if key.plural == "deployments" {
        deployment_status(want_generation, replicas, ready, failing, &now)
    } else {
        create_claims(store, cfg, key, &obj, replicas, &ctx);
        let revision = format!("{}-{:x}", key.name, want_generation);
        let mut s = json!({
            "observedGeneration": want_generation, "replicas": replicas,
            "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": revision, "updateRevision": revision,
            "availableReplicas": ready, "collisionCount": 0,
        });
        if ready > 0 {
            s["readyReplicas"] = json!(ready);
        }
        s
    };
    let mut candidate = obj;
    candidate["status"] = status;
    // A concurrent delete or a rejected write just means the rollout no longer matters.
    let _ = writes::update(
        store,
        cfg,
        &res,
        key,
        candidate,
        Part::Status,
        &ctx,
        Managed::Controller(CONTROLLER),
    );
}

fn deployment_status(
    generation: i64,
    replicas: i64,
    ready: i64,
    failing: bool,
    now: &str,
) -> Value {
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now})
    };
    let conditions = if failing {
        vec![
            cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
            cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet has timed out progressing.",
            ),
        ]
    } else {
        vec![
            cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            ),
            cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                "ReplicaSet has successfully progressed.",
            ),
        ]
    };
    let mut s = json!({
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
        "conditions": conditions,
    });
    if ready > 0 {
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
    } else {
        s["unavailableReplicas"] = json!(replicas);
    }
    s
}

/// PVCs `<template>-<statefulset>-<ordinal>`, which outlive the StatefulSet unless its
/// retention policy says otherwise, as in a real cluster.
fn create_claims(
    store: &mut Store,
    cfg: &Config,
    key: &ObjKey,
    sts: &Value,
    replicas: i64,
    ctx: &WriteCtx,
) {
    let Some(templates) = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(pvc_res) = store.find_resource("", "v1", "persistentvolumeclaims") else {
        return;
    };
    // As the StatefulSet controller does: the template's labels plus the selector's matchLabels.
    let selector_labels = sts
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let owned = sts
        .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
        .and_then(Value::as_str)
        == Some("Delete");
    for tpl in templates.clone() {
        let tpl_name = tpl
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("data");
        let mut labels = tpl
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.extend(selector_labels.clone());
        let labels = Value::Object(labels);
        for ordinal in 0..replicas {
            let name = format!("{tpl_name}-{}-{ordinal}", key.name);
            let mut pvc = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": key.namespace, "labels": labels},
                "spec": tpl.get("spec").cloned().unwrap_or(json!({})),
            });
            if owned {
                pvc["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": key.name,
                    "uid": sts.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    "controller": true, "blockOwnerDeletion": true,
                }]);
            }
            // AlreadyExists is expected on every later rollout.
            let _ = writes::create(store, cfg, &pvc_res, &key.namespace, pvc, ctx, None);
        }
    }
}
