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
        // The stored Services' addresses are counted by the store's index.
        let chosen = (0..SIZE)
            .map(|i| ip(FIRST + (start + i) % SIZE))
            .find(|candidate| !store.index.cluster_ip_taken(candidate))
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
        // Stored Services' ports are counted by the store's index; this write's own are here.
        let mut taken: HashSet<i64> = HashSet::new();
        let free =
            |n: &i64, taken: &HashSet<i64>| !taken.contains(n) && !store.index.node_port_taken(*n);
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
                let n = carried.or_else(|| NODE_PORTS.clone().find(|n| free(n, &taken)));
                if let Some(n) = n {
                    taken.insert(n);
                    port.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::{EventType, ObjKey};

    fn key(name: &str) -> ObjKey {
        ObjKey {
            group: String::new(),
            plural: "services".into(),
            namespace: "a".into(),
            name: name.into(),
        }
    }

    fn service_named(name: &str, type_: &str, ports: &[i64]) -> Value {
        let ports: Vec<Value> = ports
            .iter()
            .map(|p| json!({"port": p, "protocol": "TCP"}))
            .collect();
        json!({"metadata": {"namespace": "a", "name": name},
            "spec": {"type": type_, "ports": ports}})
    }

    fn allocated(store: &Store, obj: &Value) -> Value {
        let mut obj = obj.clone();
        service(store, &mut obj, None);
        obj["spec"].clone()
    }

    #[test]
    fn the_first_free_address_from_the_seeded_start_is_chosen() {
        let mut store = Store::new(100);
        let x = service_named("x", "ClusterIP", &[80]);
        let start = seed(&x) % SIZE;
        let first = ip(FIRST + start);
        assert_eq!(allocated(&store, &x)["clusterIP"], json!(first));
        // Another Service holds it: the next address.
        let mut other = service_named("other", "ClusterIP", &[80]);
        other["spec"]["clusterIP"] = json!(first);
        store.put(key("other"), other, EventType::Added);
        let spec = allocated(&store, &x);
        assert_eq!(spec["clusterIP"], json!(ip(FIRST + (start + 1) % SIZE)));
        assert_eq!(spec["clusterIPs"], json!([spec["clusterIP"]]));
        // It goes: the address is free again.
        store.remove(&key("other"));
        assert_eq!(allocated(&store, &x)["clusterIP"], json!(first));
    }

    #[test]
    fn node_ports_are_the_lowest_free_ones_and_distinct_within_a_service() {
        let mut store = Store::new(100);
        let mut held = service_named("held", "NodePort", &[80]);
        held["spec"]["clusterIP"] = json!("10.96.0.9");
        held["spec"]["ports"][0]["nodePort"] = json!(30000);
        store.put(key("held"), held, EventType::Added);
        let spec = allocated(&store, &service_named("x", "NodePort", &[80, 443]));
        let ports: Vec<&Value> = spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| &p["nodePort"])
            .collect();
        assert_eq!(ports, [&json!(30001), &json!(30002)]);
        // A ClusterIP Service gets none.
        let spec = allocated(&store, &service_named("y", "ClusterIP", &[80]));
        assert!(spec["ports"][0].get("nodePort").is_none());
    }
}
