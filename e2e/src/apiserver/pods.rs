//! Stand-ins for the ReplicaSet and StatefulSet controllers and the kubelet: a workload's pods,
//! with the container statuses a kubelet reports for them.
//!
//! Deployments get a ReplicaSet per pod template (`<deployment>-<template hash>`, older ones
//! scaled to 0) and its pods (`<replicaset>-<suffix>`); StatefulSets get `<name>-<ordinal>`.
//! Whether a pod's containers start is decided by [`crate::kubelet::check_pod`] against the
//! image contracts the server was given and the namespace's ConfigMaps and Secrets, so a pod
//! that a real kubelet could not start (a named user under `runAsNonRoot`, a missing Secret, a
//! required setting missing, a read-only path the image writes, a heap above the limit, a probe
//! on a path the image does not serve) never becomes ready here either, and says why in its
//! status. Pods are not scheduled on nodes, get no IPs and produce no logs.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::Config;
use super::store::{ObjKey, Store};
use super::writes::{self, DeleteOptions, WriteCtx};
use crate::kubelet::{self, Failure, Objects};

/// Why the pods of a workload do not start, if they do not: (container, failure).
pub fn failure(
    store: &Store,
    cfg: &Config,
    namespace: &str,
    workload: &Value,
) -> Option<(String, Failure)> {
    let images = images(workload);
    if let Some(img) = images
        .iter()
        .find(|img| cfg.failing_images.iter().any(|f| img.contains(f.as_str())))
    {
        return Some((
            String::new(),
            Failure::CrashLoopBackOff(format!(
                "the process of image {img} exits at start (simulated failing image)"
            )),
        ));
    }
    let spec = workload.pointer("/spec/template/spec")?;
    kubelet::check_pod(spec, namespace, &objects(store, namespace), &cfg.contracts)
        .into_iter()
        .next()
}

fn images(obj: &Value) -> Vec<String> {
    let spec = obj.pointer("/spec/template/spec");
    ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(String::from))
        .collect()
}

/// The namespace's ConfigMaps (with data) and Secrets (with keys), as the kubelet reads them.
pub fn objects(store: &Store, namespace: &str) -> Objects {
    let mut o = Objects::default();
    for cm in store.list("", "configmaps", Some(namespace)) {
        let name = str_at(cm, "/metadata/name").to_string();
        let data = ["data", "binaryData"]
            .iter()
            .filter_map(|f| cm.get(*f).and_then(Value::as_object))
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        o.config_maps.insert(name, data);
    }
    for s in store.list("", "secrets", Some(namespace)) {
        let name = str_at(s, "/metadata/name").to_string();
        let keys: BTreeSet<String> = ["data", "stringData"]
            .iter()
            .filter_map(|f| s.get(*f).and_then(Value::as_object))
            .flat_map(|m| m.keys().cloned())
            .collect();
        o.secrets.insert(name, keys);
    }
    o
}

fn okey(group: &str, plural: &str, namespace: &str, name: &str) -> ObjKey {
    ObjKey {
        group: group.to_string(),
        plural: plural.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn short_hash(v: &impl Hash) -> String {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    // Pod-template hashes are lowercase alphanumerics; ten characters as in Kubernetes.
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// Makes the workload's pods (and, for a Deployment, its ReplicaSets) match its spec and the
/// kubelet's verdict.
pub fn sync(
    store: &mut Store,
    cfg: &Config,
    key: &ObjKey,
    workload: &Value,
    replicas: i64,
    failure: Option<&(String, Failure)>,
    ctx: &WriteCtx,
) {
    let template = workload
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    let uid = str_at(workload, "/metadata/uid").to_string();
    let (owner, names, extra_labels): (Value, Vec<String>, BTreeMap<String, String>) =
        if key.plural == "deployments" {
            let hash = short_hash(&template.to_string());
            let rs_name = format!("{}-{hash}", key.name);
            let rs_uid = ensure_replica_set(
                store,
                cfg,
                key,
                workload,
                &rs_name,
                &hash,
                replicas,
                failure.is_none(),
                ctx,
            );
            let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                "uid": rs_uid, "controller": true, "blockOwnerDeletion": true});
            let names = (0..replicas)
                .map(|i| format!("{rs_name}-{}", &short_hash(&(rs_name.as_str(), i))[..5]))
                .collect();
            (
                owner,
                names,
                BTreeMap::from([("pod-template-hash".to_string(), hash)]),
            )
        } else {
            let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": key.name,
                "uid": uid, "controller": true, "blockOwnerDeletion": true});
            let names = (0..replicas).map(|i| format!("{}-{i}", key.name)).collect();
            let revision = format!("{}-{}", key.name, short_hash(&template.to_string()));
            (
                owner,
                names,
                BTreeMap::from([("controller-revision-hash".to_string(), revision)]),
            )
        };
    let owner_uid = owner["uid"].as_str().unwrap_or_default().to_string();

    // Pods of this workload that are not wanted any more: other templates, beyond replicas.
    let wanted: BTreeSet<&String> = names.iter().collect();
    let doomed: Vec<String> = store
        .list("", "pods", Some(&key.namespace))
        .into_iter()
        .filter(|p| owned_by_workload(store, p, key, &uid))
        .map(|p| str_at(p, "/metadata/name").to_string())
        .filter(|n| !wanted.contains(n))
        .collect();
    if let Some(pod_res) = store.find_resource("", "v1", "pods") {
        for name in doomed {
            let pk = okey("", "pods", &key.namespace, &name);
            let _ = writes::delete(
                store,
                cfg,
                &pod_res,
                &pk,
                &DeleteOptions::default(),
                &ctx.now,
            );
        }
        for (ordinal, name) in names.iter().enumerate() {
            let pk = okey("", "pods", &key.namespace, name);
            if store.get(&pk).is_none() {
                let mut labels = template
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in &extra_labels {
                    labels.insert(k.clone(), json!(v));
                }
                if key.plural == "statefulsets" {
                    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(name));
                    labels.insert(
                        "apps.kubernetes.io/pod-index".into(),
                        json!(ordinal.to_string()),
                    );
                }
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": key.namespace, "labels": labels,
                        "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                        "ownerReferences": [owner.clone()]},
                    "spec": template.get("spec").cloned().unwrap_or(json!({})),
                });
                if writes::create(store, cfg, &pod_res, &key.namespace, pod, ctx, None).is_err() {
                    continue;
                }
            }
            if let Some(current) = store.get(&pk).cloned() {
                let mut next = current.clone();
                next["status"] = pod_status(&current, failure, &ctx.now);
                if next["status"] != current["status"] {
                    writes::server_write(store, cfg, &pk, next);
                }
                if let Some((_, Failure::ContainerCreating(message))) = failure {
                    failed_mount_event(store, cfg, &current, message, ctx);
                }
            }
        }
    }
    let _ = owner_uid;
}

fn owned_by_workload(store: &Store, pod: &Value, key: &ObjKey, workload_uid: &str) -> bool {
    let Some(owner) = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().find(|r| r["controller"] == json!(true)))
    else {
        return false;
    };
    match owner["kind"].as_str() {
        Some("StatefulSet") => key.plural == "statefulsets" && owner["uid"] == json!(workload_uid),
        Some("ReplicaSet") if key.plural == "deployments" => {
            let rs_key = okey(
                "apps",
                "replicasets",
                &key.namespace,
                owner["name"].as_str().unwrap_or_default(),
            );
            store.get(&rs_key).is_some_and(|rs| {
                rs.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|o| o.iter().any(|r| r["uid"] == json!(workload_uid)))
            })
        }
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn ensure_replica_set(
    store: &mut Store,
    cfg: &Config,
    key: &ObjKey,
    deployment: &Value,
    rs_name: &str,
    hash: &str,
    replicas: i64,
    ready: bool,
    ctx: &WriteCtx,
) -> String {
    let Some(rs_res) = store.find_resource("apps", "v1", "replicasets") else {
        return String::new();
    };
    let uid = str_at(deployment, "/metadata/uid").to_string();
    // Older ReplicaSets of this Deployment are scaled to 0, as a completed rollout leaves them.
    let old: Vec<Value> = store
        .list("apps", "replicasets", Some(&key.namespace))
        .into_iter()
        .filter(|rs| {
            str_at(rs, "/metadata/name") != rs_name
                && rs
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|o| o.iter().any(|r| r["uid"] == json!(uid)))
        })
        .cloned()
        .collect();
    for mut rs in old {
        if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0) {
            rs["spec"]["replicas"] = json!(0);
            rs["status"] = json!({"replicas": 0, "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
            let k = okey(
                "apps",
                "replicasets",
                &key.namespace,
                str_at(&rs, "/metadata/name"),
            );
            writes::server_write(store, cfg, &k, rs);
        }
    }
    let rs_key = okey("apps", "replicasets", &key.namespace, rs_name);
    if store.get(&rs_key).is_none() {
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(json!({}));
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let labels = template["metadata"]["labels"].clone();
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": key.namespace, "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": deployment.pointer("/metadata/generation").cloned().unwrap_or(json!(1)).to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": key.name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        });
        let _ = writes::create(store, cfg, &rs_res, &key.namespace, rs, ctx, None);
    }
    let Some(mut rs) = store.get(&rs_key).cloned() else {
        return String::new();
    };
    let rs_uid = str_at(&rs, "/metadata/uid").to_string();
    rs["spec"]["replicas"] = json!(replicas);
    let ready_n = if ready { replicas } else { 0 };
    rs["status"] = json!({
        "replicas": replicas, "fullyLabeledReplicas": replicas,
        "readyReplicas": ready_n, "availableReplicas": ready_n,
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    writes::server_write(store, cfg, &rs_key, rs);
    rs_uid
}

/// The status a kubelet would report for the pod.
fn pod_status(pod: &Value, failure: Option<&(String, Failure)>, now: &str) -> Value {
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let started = pod
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .unwrap_or(now)
        .to_string();
    let restarts = |name: &str| {
        pod.pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|c| c["name"] == json!(name)))
            .and_then(|c| c.get("restartCount"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let failing_container = failure.map(|(c, _)| c.as_str());
    let init_names: Vec<String> = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let init_failing = failing_container.is_some_and(|c| init_names.iter().any(|n| n == c));
    let status_of = |c: &Value, init: bool| -> Value {
        let name = c["name"].as_str().unwrap_or_default();
        let image = c["image"].clone();
        let this_fails = failure.filter(|(fc, _)| fc == name || fc.is_empty());
        let blocked = !init && init_failing;
        match (this_fails, blocked) {
            (_, true) => json!({"name": name, "image": image, "ready": false, "restartCount": 0,
                "started": false, "state": {"waiting": {"reason": "PodInitializing"}}}),
            (Some((_, f)), _) => {
                let mut s = json!({"name": name, "image": image, "ready": false,
                    "restartCount": restarts(name) + i64::from(f.restarts()), "started": false});
                match f {
                    Failure::NotReady(_) => {
                        s["state"] = json!({"running": {"startedAt": started}});
                        s["started"] = json!(true);
                    }
                    // A volume that cannot be mounted: the kubelet says so only in a
                    // FailedMount Event (see `failed_mount_event`), the state has no message.
                    Failure::ContainerCreating(_) => {
                        s["state"] = json!({"waiting": {"reason": f.reason()}});
                    }
                    _ => {
                        s["state"] =
                            json!({"waiting": {"reason": f.reason(), "message": f.message()}});
                    }
                }
                if let Some(t) = f.terminated_reason() {
                    s["lastState"] = json!({"terminated": {"exitCode": if t == "OOMKilled" {137} else {1},
                        "reason": t, "message": f.message(), "startedAt": started, "finishedAt": now}});
                }
                s
            }
            (None, _) if init => {
                json!({"name": name, "image": image, "ready": true, "restartCount": 0,
                "started": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": started, "finishedAt": started}}})
            }
            (None, _) => json!({"name": name, "image": image, "ready": true,
                "restartCount": restarts(name), "started": true,
                "state": {"running": {"startedAt": started}}}),
        }
    };
    let containers: Vec<Value> = spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| status_of(c, false))
        .collect();
    let inits: Vec<Value> = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| status_of(c, true))
        .collect();
    let ready = failure.is_none();
    let running = !matches!(
        failure.map(|(_, f)| f),
        Some(Failure::ContainerCreating(_) | Failure::CreateContainerConfigError(_))
    ) && !init_failing;
    let cond = |t: &str, ok: bool, reason: Option<&str>, message: Option<&str>| {
        let mut c = json!({"type": t, "status": if ok {"True"} else {"False"}, "lastTransitionTime": now, "lastProbeTime": Value::Null});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let not_ready_message = failure.map(|(c, _)| format!("containers with unready status: [{c}]"));
    let mut status = json!({
        "phase": if running { "Running" } else { "Pending" },
        "startTime": started,
        "qosClass": qos_class(&spec),
        "conditions": [
            cond("PodScheduled", true, None, None),
            cond("Initialized", !init_failing, init_failing.then_some("ContainersNotInitialized"), None),
            cond("ContainersReady", ready, (!ready).then_some("ContainersNotReady"), not_ready_message.as_deref()),
            cond("Ready", ready, (!ready).then_some("ContainersNotReady"), not_ready_message.as_deref()),
        ],
        "containerStatuses": containers,
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    status
}

/// A Job's run: one pod `<job>-<suffix>` that the kubelet view lets run to completion or fail,
/// then the Job's status and conditions as the Job controller writes them (`Complete`, or
/// `Failed` with `BackoffLimitExceeded`; Kubernetes 1.31+ also sets `SuccessCriteriaMet` /
/// `FailureTarget` first). Retries within `backoffLimit` are not simulated: a pod that cannot
/// start fails every retry the same way.
pub fn run_job(store: &mut Store, cfg: &Config, key: &ObjKey, job: &Value, ctx: &WriteCtx) {
    if job.pointer("/status/completionTime").is_some()
        || job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Failed" && c["status"] == "True")
            })
        || job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
    {
        return;
    }
    let failure = failure(store, cfg, &key.namespace, job);
    let Some(pod_res) = store.find_resource("", "v1", "pods") else {
        return;
    };
    let name = format!("{}-{}", key.name, &short_hash(&(key.name.as_str(), 0))[..5]);
    let pk = okey("", "pods", &key.namespace, &name);
    if store.get(&pk).is_none() {
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.insert("job-name".into(), json!(key.name));
        labels.insert("batch.kubernetes.io/job-name".into(), json!(key.name));
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": key.namespace, "labels": labels,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": key.name,
                    "uid": str_at(job, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}]},
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        if writes::create(store, cfg, &pod_res, &key.namespace, pod, ctx, None).is_err() {
            return;
        }
    }
    let now = ctx.now.clone();
    if let Some(current) = store.get(&pk).cloned() {
        let mut next = current.clone();
        next["status"] = match &failure {
            Some(f) => pod_status(&current, Some(f), &now),
            None => {
                let mut s = pod_status(&current, None, &now);
                // The process ran to completion.
                s["phase"] = json!("Succeeded");
                if let Some(cs) = s["containerStatuses"].as_array_mut() {
                    for c in cs {
                        c["ready"] = json!(false);
                        c["started"] = json!(false);
                        c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                            "startedAt": now, "finishedAt": now}});
                    }
                }
                if let Some(conds) = s["conditions"].as_array_mut() {
                    for c in conds {
                        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                            c["status"] = json!("False");
                            c["reason"] = json!("PodCompleted");
                        }
                    }
                }
                s
            }
        };
        if next["status"] != current["status"] {
            writes::server_write(store, cfg, &pk, next);
        }
    }
    let cond = |t: &str, reason: &str, message: &str| {
        json!({"type": t, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now})
    };
    let status = match &failure {
        None => json!({
            "startTime": now, "completionTime": now, "succeeded": 1, "ready": 0,
            "terminating": 0, "uncountedTerminatedPods": {},
            "conditions": [
                cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
            ],
        }),
        Some((_, f)) => json!({
            "startTime": now, "failed": 1, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                cond("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                cond("Failed", "BackoffLimitExceeded", &format!("Job has reached the specified backoff limit ({})", f.message())),
            ],
        }),
    };
    let mut next = job.clone();
    next["status"] = status;
    writes::server_write(store, cfg, key, next);
}

/// A quantity (`500m`, `1`, `2Gi`, `1e3`) in base units, for comparing requests with limits.
fn quantity(q: &Value) -> Option<f64> {
    let q = match q {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        e if e.starts_with(['e', 'E']) => 10f64.powf(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(num * factor)
}

/// The pod's QoS class as kube-apiserver computes it on create (`qos.GetPodQOS`): BestEffort
/// without any CPU or memory request or limit, Guaranteed when every container limits both and
/// requests what it limits (an unset request is defaulted to the limit), Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    const COMPUTE: [&str; 2] = ["cpu", "memory"];
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let set = |c: &Value, kind: &str, r: &str| {
        c.pointer(&format!("/resources/{kind}/{r}"))
            .and_then(quantity)
            .filter(|q| *q > 0.0)
    };
    let any = containers.iter().any(|c| {
        COMPUTE
            .iter()
            .any(|r| set(c, "requests", r).is_some() || set(c, "limits", r).is_some())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        COMPUTE
            .iter()
            .all(|r| match (set(c, "limits", r), set(c, "requests", r)) {
                (Some(limit), Some(request)) => (limit - request).abs() < 1e-9,
                (Some(_), None) => true,
                _ => false,
            })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Whether the kubelet still has to decide about a pod a client created itself: no controller
/// owns it (ReplicaSet, StatefulSet and Job pods are the workloads' business), it is not being
/// deleted, and it has not started (a pod still Pending is looked at again, as the kubelet
/// retries).
pub fn awaits_kubelet(pod: &Value) -> bool {
    let controlled = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|r| r["controller"] == json!(true)));
    let started = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .is_some_and(|p| p != "Pending");
    !controlled && !started && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// A pod a client created itself (see [`awaits_kubelet`]): the kubelet view decides whether
/// it runs. Called after `Config::workload_timing` (a real kubelet answers after the create,
/// never inside it) and again when the namespace's ConfigMaps or Secrets change.
pub fn bare_pod(store: &mut Store, cfg: &Config, key: &ObjKey, pod: &Value, now: &str) {
    if !awaits_kubelet(pod) {
        return;
    }
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let failure = kubelet::check_pod(
        &spec,
        &key.namespace,
        &objects(store, &key.namespace),
        &cfg.contracts,
    )
    .into_iter()
    .next();
    let mut next = pod.clone();
    next["status"] = pod_status(pod, failure.as_ref(), now);
    if let Some((_, Failure::ContainerCreating(message))) = &failure {
        failed_mount_event(store, cfg, pod, message, &WriteCtx::internal("kubelet"));
    }
    if next["status"] != pod["status"] {
        writes::server_write(store, cfg, key, next);
    }
}

/// Pods nobody controls that could not start yet, in a namespace, for the kubelet's retry.
pub fn recheck_bare_pods(store: &mut Store, cfg: &Config, namespace: &str, now: &str) {
    let pending: Vec<(ObjKey, Value)> = store
        .list("", "pods", Some(namespace))
        .into_iter()
        .filter(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Pending"))
        .map(|p| {
            (
                okey("", "pods", namespace, str_at(p, "/metadata/name")),
                p.clone(),
            )
        })
        .collect();
    for (key, pod) in pending {
        bare_pod(store, cfg, &key, &pod, now);
    }
}

/// The Event a kubelet records when a pod's volume cannot be mounted (a Secret or ConfigMap
/// that does not exist): `Warning FailedMount` about the pod, with the reason in the note. It is
/// the only place a real cluster names the missing object; the container just waits in
/// `ContainerCreating`. Written once per pod (a real kubelet repeats and counts it).
fn failed_mount_event(store: &mut Store, cfg: &Config, pod: &Value, message: &str, ctx: &WriteCtx) {
    let Some(res) = store.find_resource("events.k8s.io", "v1", "events") else {
        return;
    };
    let namespace = str_at(pod, "/metadata/namespace").to_string();
    let pod_name = str_at(pod, "/metadata/name").to_string();
    let name = format!("{pod_name}.failedmount");
    if store
        .get(&okey("events.k8s.io", "events", &namespace, &name))
        .is_some()
    {
        return;
    }
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": ctx.now.replace('Z', ".000000Z"),
        "reportingController": "kubelet", "reportingInstance": "kubelet-simulated",
        "action": "MountVolume", "reason": "FailedMount", "type": "Warning",
        "note": message,
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
            "namespace": namespace, "uid": str_at(pod, "/metadata/uid")},
    });
    let _ = writes::create(store, cfg, &res, &namespace, event, ctx, None);
}
