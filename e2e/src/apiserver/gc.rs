//! Garbage collection by `ownerReferences`, done synchronously (a real cluster's collector
//! is asynchronous; tests must wait for the effect either way).

use serde_json::Value;

use super::Config;
use super::store::{EventType, ObjKey, Store};
use super::writes::{self, DeleteOptions};

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn dependents(store: &Store, uid: &str) -> Vec<ObjKey> {
    store
        .objects
        .iter()
        .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
        .map(|(k, _)| k.clone())
        .collect()
}

fn exists_uid(store: &Store, uid: &str) -> bool {
    store
        .objects
        .values()
        .any(|o| o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid))
}

fn drop_owner_ref(store: &mut Store, key: &ObjKey, uid: &str) {
    let Some(mut obj) = store.get(key).cloned() else {
        return;
    };
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
    }
    store.put(key.clone(), obj, EventType::Modified);
}

fn delete_key(store: &mut Store, cfg: &Config, key: &ObjKey, now: &str) {
    if let Some(res) = store.resource_for_key(key) {
        // A dependent that vanished meanwhile or is blocked by finalizers is fine to skip.
        let _ = writes::delete(store, cfg, &res, key, &DeleteOptions::default(), now);
    }
}

/// An owner is gone: delete dependents that have no other live owner, and drop the dangling
/// reference from those that do.
pub fn on_removed(store: &mut Store, cfg: &Config, removed: &Value, now: &str) {
    let Some(uid) = removed.pointer("/metadata/uid").and_then(Value::as_str) else {
        return;
    };
    for key in dependents(store, uid) {
        let Some(dep) = store.get(&key) else { continue };
        let others_alive = owner_uids(dep)
            .iter()
            .any(|u| u != uid && exists_uid(store, u));
        if others_alive {
            drop_owner_ref(store, &key, uid);
        } else {
            delete_key(store, cfg, &key, now);
        }
    }
}

/// `propagationPolicy: Orphan`: dependents lose the reference and survive.
pub fn orphan(store: &mut Store, uid: &str) {
    for key in dependents(store, uid) {
        drop_owner_ref(store, &key, uid);
    }
}

/// `propagationPolicy: Foreground`, simplified: dependents go first, then the owner.
pub fn delete_dependents(store: &mut Store, cfg: &Config, uid: &str, now: &str) {
    for key in dependents(store, uid) {
        delete_key(store, cfg, &key, now);
    }
}

/// What the namespace controller does for a terminating namespace.
pub fn empty_namespace(store: &mut Store, cfg: &Config, ns: &str, now: &str) {
    let keys: Vec<ObjKey> = store
        .objects
        .keys()
        .filter(|k| k.namespace == ns)
        .cloned()
        .collect();
    for key in keys {
        delete_key(store, cfg, &key, now);
    }
}
