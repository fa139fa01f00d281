//! Stand-in for the CloudNativePG operator, active only where its `Cluster` CRD is installed
//! (tests install the real published CRD): a Cluster reports its instances ready and gets the
//! `<cluster>-app` Secret CloudNativePG generates for the owner of its bootstrap database, with
//! the keys CloudNativePG documents. No PostgreSQL runs; the pods CloudNativePG would create are
//! not simulated.

use serde_json::{Value, json};

use super::Config;
use super::store::ObjKey;
use super::store::Store;
use super::writes::{self, WriteCtx};

pub const GROUP: &str = "postgresql.cnpg.io";
pub const PLURAL: &str = "clusters";

/// Keys of the `<cluster>-app` Secret (CloudNativePG docs, "Connecting from an application":
/// username, password, host, port, dbname, uri, jdbc-uri, pgpass).
const APP_KEYS: &[&str] = &[
    "username", "password", "host", "port", "dbname", "uri", "jdbc-uri", "pgpass",
];

pub fn reconcile(store: &mut Store, cfg: &Config, key: &ObjKey, cluster: &Value) {
    if cluster.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let instances = cluster
        .pointer("/spec/instances")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ctx = WriteCtx::internal("cloudnative-pg");
    // The application Secret first: pods referencing it start once it exists.
    if let Some(secret_res) = store.find_resource("", "v1", "secrets") {
        let name = format!("{}-app", key.name);
        let skey = ObjKey {
            group: String::new(),
            plural: "secrets".into(),
            namespace: key.namespace.clone(),
            name: name.clone(),
        };
        if store.get(&skey).is_none() {
            let data: serde_json::Map<String, Value> = APP_KEYS
                .iter()
                .map(|k| ((*k).to_string(), json!("c2ltdWxhdGVk")))
                .collect();
            let secret = json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                "metadata": {"name": name, "namespace": key.namespace,
                    "labels": {"cnpg.io/cluster": key.name, "cnpg.io/reload": "true"},
                    "ownerReferences": [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                        "name": key.name, "uid": cluster.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                        "controller": true}]},
                "data": data,
            });
            let _ = writes::create(store, cfg, &secret_res, &key.namespace, secret, &ctx, None);
        }
    }
    // The Ready condition keeps its transition time once set, as a condition should.
    let since = cluster
        .pointer("/status/conditions/0/lastTransitionTime")
        .cloned()
        .unwrap_or_else(|| json!(ctx.now));
    let status = json!({
        "instances": instances,
        "readyInstances": instances,
        "phase": "Cluster in healthy state",
        "writeService": format!("{}-rw", key.name),
        "readService": format!("{}-r", key.name),
        "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
            "message": "Cluster is Ready", "lastTransitionTime": since}],
    });
    if cluster.get("status") != Some(&status) {
        let mut next = cluster.clone();
        next["status"] = status;
        writes::server_write(store, cfg, key, next);
    }
}
