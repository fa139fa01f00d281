//! What the Service registry fills in after defaulting (pkg/registry/core/service/storage
//! `alloc.go` at v1.33): a cluster IP from the service CIDR (kubeadm's default 10.96.0.0/12,
//! single-stack IPv4), `clusterIPs`, `ipFamilies` and `ipFamilyPolicy`, and node ports from
//! 30000-32767 for NodePort and LoadBalancer Services. On update, values the client left out
//! are carried over from the stored object (`patchAllocatedValues`), so a PUT or apply without
//! `clusterIP` keeps the address.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::super::store::Store;

/// 10.96.0.0/12 without the network address and 10.96.0.1 (the `kubernetes` Service).
const FIRST: u32 = (10 << 24) | (96 << 16) | 2;
const SIZE: u32 = (1 << 20) - 3;
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn used(store: &Store, field: impl Fn(&Value) -> Vec<String>) -> HashSet<String> {
    store
        .list("", "services", None)
        .into_iter()
        .flat_map(field)
        .collect()
}

/// A stable start point per Service, so allocations do not depend on creation order.
fn seed(obj: &Value) -> u32 {
    let key = format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn ip(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

pub fn service(store: &Store, obj: &mut Value, old: Option<&Value>) {
    let start = seed(obj) % SIZE;
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let old_spec = old.and_then(|o| o.get("spec"));
    let type_ = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if type_ == "ExternalName" {
        return;
    }
    // Carry over what the client did not send.
    if let Some(old_spec) = old_spec {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            let missing = spec
                .get(key)
                .is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
            if missing && let Some(v) = old_spec.get(key) {
                spec.insert(key.to_string(), v.clone());
            }
        }
    }
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let cluster_ip = if cluster_ip.is_empty() {
        let taken = used(store, |s| {
            s.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(String::from)
                .into_iter()
                .collect()
        });
        let chosen = (0..SIZE)
            .map(|i| ip(FIRST + (start + i) % SIZE))
            .find(|candidate| !taken.contains(candidate))
            .unwrap_or_default();
        spec.insert("clusterIP".into(), json!(chosen));
        chosen
    } else {
        cluster_ip
    };
    if spec
        .get("clusterIPs")
        .is_none_or(|v| v.is_null() || v == &json!([]))
    {
        spec.insert("clusterIPs".into(), json!([cluster_ip]));
    }
    if spec
        .get("ipFamilies")
        .is_none_or(|v| v.is_null() || v == &json!([]))
    {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }
    if matches!(type_.as_str(), "NodePort" | "LoadBalancer") {
        let mut taken: HashSet<i64> = used(store, |s| {
            s.pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .map(|n| n.to_string())
                .collect()
        })
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        let old_ports = old_spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let same = old_ports.iter().find(|o| {
                    o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol")
                });
                let carried = same.and_then(|o| o.get("nodePort")).and_then(Value::as_i64);
                let n = carried.or_else(|| NODE_PORTS.clone().find(|n| !taken.contains(n)));
                if let Some(n) = n {
                    taken.insert(n);
                    port.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
}
