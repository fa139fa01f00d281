//! Secondary indexes of the object store, kept up to date by `Store::put` and `Store::remove`
//! so that the garbage collector and the namespace controller look at the objects a write
//! touched instead of every object stored. Scanning the store after each write made a write
//! cost as much as everything stored, and convergence quadratic in the number of objects
//! (docs/performance.md).
//!
//! The collector's candidates are kept as two sets:
//! - `finalizing`: objects being deleted with a finalizer the collector or the CRD cleanup
//!   controller handles (a property of the object alone);
//! - `recheck`: objects that may have a dangling owner reference. Whether a reference dangles
//!   depends on the object and on whether an object with the referenced uid is stored under the
//!   referenced name, so an object is put here when it is written, when an object whose uid it
//!   references appears or goes (or changes uid under the same key), and when the served
//!   resources change (a reference to a kind not served counts as live). The collector removes
//!   an object from it once it has found none of its references dangling. So an object that is
//!   not in `recheck` has no dangling reference: the invariant the collector relies on.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::store::ObjKey;

#[derive(Clone, Debug, Default)]
pub struct Indexes {
    /// uid -> keys stored with it (the two views of an Event share one uid).
    by_uid: HashMap<String, BTreeSet<ObjKey>>,
    /// owner uid -> keys of the objects with an owner reference to it.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    /// namespace -> keys stored in it (cluster-scoped objects under "").
    by_namespace: HashMap<String, BTreeSet<ObjKey>>,
    /// Being deleted with a finalizer the server's own controllers remove.
    pub finalizing: BTreeSet<ObjKey>,
    /// May have a dangling owner reference (see the module docs).
    pub recheck: BTreeSet<ObjKey>,
    /// `spec.clusterIP` of the stored Services -> how many Services hold it.
    cluster_ips: HashMap<String, usize>,
    /// `spec.ports[].nodePort` of the stored Services -> how many ports hold it.
    node_ports: HashMap<i64, usize>,
}

fn is_service(key: &ObjKey) -> bool {
    key.group.is_empty() && key.plural == "services"
}

fn cluster_ip(service: &Value) -> Option<&str> {
    service.pointer("/spec/clusterIP").and_then(Value::as_str)
}

fn node_ports(service: &Value) -> impl Iterator<Item = i64> + '_ {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
}

/// Counts `k` once more (`up`) or once less, forgetting it at zero.
fn count<K: Eq + std::hash::Hash>(map: &mut HashMap<K, usize>, k: K, up: bool) {
    if up {
        *map.entry(k).or_default() += 1;
    } else if let Some(n) = map.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            map.remove(&k);
        }
    }
}

pub fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

pub fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

fn has_owner_refs(obj: &Value) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
}

fn remove_from(map: &mut HashMap<String, BTreeSet<ObjKey>>, k: &str, key: &ObjKey) {
    if let Some(set) = map.get_mut(k) {
        set.remove(key);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

impl Indexes {
    /// `key` now holds `new` instead of `old` (either may be absent). `finalizing` says
    /// whether `new` is being deleted with a finalizer the server's controllers handle.
    pub fn replace(
        &mut self,
        key: &ObjKey,
        old: Option<&Value>,
        new: Option<&Value>,
        finalizing: bool,
    ) {
        if is_service(key) {
            self.replace_service(old, new);
        }
        if let Some(old) = old {
            if let Some(u) = uid(old) {
                remove_from(&mut self.by_uid, u, key);
            }
            for u in owner_uids(old) {
                remove_from(&mut self.dependents, u, key);
            }
        }
        match new {
            Some(new) => {
                if let Some(u) = uid(new) {
                    self.by_uid
                        .entry(u.to_string())
                        .or_default()
                        .insert(key.clone());
                }
                for u in owner_uids(new) {
                    self.dependents
                        .entry(u.to_string())
                        .or_default()
                        .insert(key.clone());
                }
                if old.is_none() {
                    self.by_namespace
                        .entry(key.namespace.clone())
                        .or_default()
                        .insert(key.clone());
                }
                if has_owner_refs(new) {
                    self.recheck.insert(key.clone());
                } else {
                    self.recheck.remove(key);
                }
                if finalizing {
                    self.finalizing.insert(key.clone());
                } else {
                    self.finalizing.remove(key);
                }
            }
            None => {
                remove_from(&mut self.by_namespace, &key.namespace, key);
                self.recheck.remove(key);
                self.finalizing.remove(key);
            }
        }
        // An owner appeared, went or changed uid under this key: its dependents' references
        // may have started or stopped dangling.
        let (old_uid, new_uid) = (old.and_then(uid), new.and_then(uid));
        if old_uid != new_uid {
            for u in [old_uid, new_uid].into_iter().flatten() {
                if let Some(deps) = self.dependents.get(u) {
                    self.recheck.extend(deps.iter().cloned());
                }
            }
        }
    }

    fn replace_service(&mut self, old: Option<&Value>, new: Option<&Value>) {
        for (service, up) in [(old, false), (new, true)] {
            let Some(service) = service else { continue };
            if let Some(ip) = cluster_ip(service) {
                count(&mut self.cluster_ips, ip.to_string(), up);
            }
            for port in node_ports(service) {
                count(&mut self.node_ports, port, up);
            }
        }
    }

    /// Whether a stored Service has this `spec.clusterIP`.
    pub fn cluster_ip_taken(&self, ip: &str) -> bool {
        self.cluster_ips.contains_key(ip)
    }

    /// Whether a port of a stored Service has this `nodePort`.
    pub fn node_port_taken(&self, port: i64) -> bool {
        self.node_ports.contains_key(&port)
    }

    /// The served resources changed: any reference may resolve differently now.
    pub fn recheck_all<'a>(&mut self, keys: impl Iterator<Item = (&'a ObjKey, &'a Value)>) {
        self.recheck.extend(
            keys.filter(|(_, o)| has_owner_refs(o))
                .map(|(k, _)| k.clone()),
        );
    }

    pub fn uid_exists(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// The objects with an owner reference to `uid`, in key order.
    pub fn dependents(&self, uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The keys stored in `namespace`, in key order.
    pub fn in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        self.by_namespace
            .get(namespace)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn namespace_empty(&self, namespace: &str) -> bool {
        !self.by_namespace.contains_key(namespace)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(ns: &str, name: &str) -> ObjKey {
        ObjKey {
            group: String::new(),
            plural: "configmaps".into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn obj(uid: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners.iter().map(|u| json!({"uid": u})).collect();
        json!({"metadata": {"uid": uid, "ownerReferences": refs}})
    }

    #[test]
    fn lookups_follow_writes_and_removals() {
        let mut ix = Indexes::default();
        let (owner, dep) = (key("a", "owner"), key("a", "dep"));
        ix.replace(&owner, None, Some(&obj("u1", &[])), false);
        ix.replace(&dep, None, Some(&obj("u2", &["u1"])), false);
        assert!(ix.uid_exists("u1") && ix.uid_exists("u2"));
        assert_eq!(ix.dependents("u1"), vec![dep.clone()]);
        assert_eq!(ix.in_namespace("a"), vec![dep.clone(), owner.clone()]);

        // The dependent drops its reference: it no longer depends on u1.
        ix.replace(
            &dep,
            Some(&obj("u2", &["u1"])),
            Some(&obj("u2", &[])),
            false,
        );
        assert!(ix.dependents("u1").is_empty());

        ix.replace(&owner, Some(&obj("u1", &[])), None, false);
        ix.replace(&dep, Some(&obj("u2", &[])), None, false);
        assert!(!ix.uid_exists("u1"));
        assert!(ix.namespace_empty("a"));
        assert!(ix.by_uid.is_empty() && ix.dependents.is_empty() && ix.by_namespace.is_empty());
    }

    #[test]
    fn an_owner_appearing_or_going_marks_its_dependents_for_a_recheck() {
        let mut ix = Indexes::default();
        let (owner, dep, other) = (key("a", "owner"), key("a", "dep"), key("a", "other"));
        ix.replace(&dep, None, Some(&obj("u2", &["u1"])), false);
        ix.replace(&other, None, Some(&obj("u3", &["u9"])), false);
        assert!(
            ix.recheck.contains(&dep),
            "written objects with owners are rechecked"
        );
        ix.recheck.clear();

        ix.replace(&owner, None, Some(&obj("u1", &[])), false);
        assert_eq!(ix.recheck.iter().collect::<Vec<_>>(), vec![&dep]);
        ix.recheck.clear();

        // An update that keeps the uid changes nothing for the dependents.
        ix.replace(&owner, Some(&obj("u1", &[])), Some(&obj("u1", &[])), false);
        assert!(ix.recheck.is_empty());

        ix.replace(&owner, Some(&obj("u1", &[])), None, false);
        assert_eq!(ix.recheck.iter().collect::<Vec<_>>(), vec![&dep]);
    }

    #[test]
    fn service_allocations_are_counted_per_service() {
        let mut ix = Indexes::default();
        let svc = |name: &str| ObjKey {
            group: String::new(),
            plural: "services".into(),
            namespace: "a".into(),
            name: name.into(),
        };
        let spec = |ip: &str, ports: &[i64]| {
            let ports: Vec<Value> = ports.iter().map(|p| json!({"nodePort": p})).collect();
            json!({"metadata": {"uid": ip}, "spec": {"clusterIP": ip, "ports": ports}})
        };
        let (x1, x2) = (
            spec("10.96.0.5", &[30000, 30001]),
            spec("10.96.0.6", &[30001]),
        );
        ix.replace(&svc("x"), None, Some(&x1), false);
        // Two Services may hold the same value (a client's choice): one going frees nothing.
        ix.replace(&svc("y"), None, Some(&spec("10.96.0.5", &[30000])), false);
        assert!(ix.cluster_ip_taken("10.96.0.5") && !ix.cluster_ip_taken("10.96.0.6"));
        ix.replace(&svc("y"), Some(&spec("10.96.0.5", &[30000])), None, false);
        assert!(ix.cluster_ip_taken("10.96.0.5") && ix.node_port_taken(30000));
        // An update releases what the old object held and takes what the new one holds.
        ix.replace(&svc("x"), Some(&x1), Some(&x2), false);
        assert!(!ix.cluster_ip_taken("10.96.0.5") && ix.cluster_ip_taken("10.96.0.6"));
        assert!(!ix.node_port_taken(30000) && ix.node_port_taken(30001));
        // Other resources' fields of the same name are not allocations.
        ix.replace(
            &key("a", "cm"),
            None,
            Some(&spec("10.96.0.7", &[30002])),
            false,
        );
        assert!(!ix.cluster_ip_taken("10.96.0.7") && !ix.node_port_taken(30002));
        ix.replace(&svc("x"), Some(&x2), None, false);
        assert!(ix.cluster_ips.is_empty() && ix.node_ports.is_empty());
    }

    #[test]
    fn finalizing_follows_the_flag_and_removal() {
        let mut ix = Indexes::default();
        let k = key("a", "x");
        ix.replace(&k, None, Some(&obj("u1", &[])), true);
        assert!(ix.finalizing.contains(&k));
        ix.replace(&k, Some(&obj("u1", &[])), Some(&obj("u1", &[])), false);
        assert!(!ix.finalizing.contains(&k));
        ix.replace(&k, Some(&obj("u1", &[])), Some(&obj("u1", &[])), true);
        ix.replace(&k, Some(&obj("u1", &[])), None, false);
        assert!(ix.finalizing.is_empty());
    }
}
