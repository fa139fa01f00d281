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
