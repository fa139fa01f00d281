//! Garbage collection by `ownerReferences` and the finalizer controllers (GC's
//! `foregroundDeletion`/`orphan`, the CRD cleanup finalizer), done synchronously at the end
//! of every write (a real cluster's collector is asynchronous; tests must wait for the effect
//! either way, e.g. on a watch).

use serde_json::{Value, json};

use super::Config;
use super::store::{EventType, ObjKey, Store};
use super::writes::{
    self, CRD_CLEANUP_FINALIZER, CRD_GROUP, CRD_PLURAL, DeleteOptions, FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER, Propagation,
};

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
    delete_with(store, cfg, key, Propagation::Background, now);
}

fn delete_with(store: &mut Store, cfg: &Config, key: &ObjKey, propagation: Propagation, now: &str) {
    if let Some(res) = store.resource_for_key(key) {
        let opts = DeleteOptions {
            propagation,
            ..DeleteOptions::default()
        };
        // A dependent that vanished meanwhile or is blocked by finalizers is fine to skip.
        let _ = writes::delete(store, cfg, &res, key, &opts, now);
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

fn being_deleted(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

fn uid_of(obj: &Value) -> String {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Writes `obj` without a finalizer `f`; the object goes once none is left.
fn remove_finalizer(store: &mut Store, cfg: &Config, key: &ObjKey, mut obj: Value, f: &str) {
    let left: Vec<String> = writes::finalizers(&obj)
        .into_iter()
        .filter(|x| x != f)
        .collect();
    obj["metadata"]["finalizers"] = json!(left);
    writes::server_write(store, cfg, key, obj);
}

/// Whether an owner reference points at a live object (looked up by kind, name and
/// namespace, then compared by uid, as the collector does). References to kinds this
/// server does not serve cannot be checked and count as live.
fn owner_state(store: &Store, dependent: &ObjKey, r: &Value) -> OwnerState {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
    let group = s("apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
    // Borrowed, not cloned: this runs for every owner reference on every write.
    let Some(res) = store
        .resources()
        .find(|x| x.group == group && x.kind == s("kind"))
    else {
        return OwnerState::Unknown;
    };
    let key = ObjKey::new(res, &dependent.namespace, s("name"));
    match store.get(&key) {
        Some(o) if uid_of(o) == s("uid") => {
            if writes::finalizers(o)
                .iter()
                .any(|f| f == FOREGROUND_FINALIZER)
                && being_deleted(o)
            {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Live
            }
        }
        _ => OwnerState::Dangling,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Live,
    Unknown,
    Dangling,
    WaitingForDependents,
}

/// Runs the collector and the finalizer controllers until nothing changes.
pub fn sweep(store: &mut Store, cfg: &Config, now: &str) {
    // Each pass that changes something removes a finalizer, a reference or an object, so
    // this terminates long before the bound; the bound only guards against a bug looping.
    for _ in 0..256 {
        if !sweep_once(store, cfg, now) {
            break;
        }
    }
}

fn sweep_once(store: &mut Store, cfg: &Config, now: &str) -> bool {
    // Only objects the loop below can act on are copied: one being deleted with a finalizer
    // this collector handles, or one with a dangling owner reference. Copying the whole store
    // on every write (as this did) made each write cost as much as everything stored.
    let candidates: Vec<(ObjKey, Value)> = store
        .objects
        .iter()
        .filter(|(k, v)| may_act_on(store, k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, obj) in &candidates {
        let fins = writes::finalizers(obj);
        if being_deleted(obj) {
            if key.group == CRD_GROUP
                && key.plural == CRD_PLURAL
                && fins.iter().any(|f| f == CRD_CLEANUP_FINALIZER)
                && cleanup_crd(store, cfg, key, obj, now)
            {
                return true;
            }
            if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
                // Dependents lose the reference and survive; then the owner goes.
                let uid = uid_of(obj);
                for dep in dependents(store, &uid) {
                    drop_owner_ref(store, &dep, &uid);
                }
                remove_finalizer(store, cfg, key, obj.clone(), ORPHAN_FINALIZER);
                return true;
            }
            if fins.iter().any(|f| f == FOREGROUND_FINALIZER)
                && foreground(store, cfg, key, obj, now)
            {
                return true;
            }
            continue;
        }
        if dangling(store, cfg, key, obj, now) {
            return true;
        }
    }
    false
}

/// Whether `sweep_once` could change something for this object: the same tests it makes,
/// read-only.
fn may_act_on(store: &Store, key: &ObjKey, obj: &Value) -> bool {
    if being_deleted(obj) {
        return writes::finalizers(obj).iter().any(|f| {
            f == ORPHAN_FINALIZER
                || f == FOREGROUND_FINALIZER
                || (f == CRD_CLEANUP_FINALIZER
                    && key.group == CRD_GROUP
                    && key.plural == CRD_PLURAL)
        });
    }
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| owner_state(store, key, r) == OwnerState::Dangling)
        })
}

/// `foregroundDeletion`: delete the dependents (in the foreground too), release those that
/// have another live owner, and let the owner go once no dependent with
/// `blockOwnerDeletion: true` is left.
fn foreground(store: &mut Store, cfg: &Config, key: &ObjKey, obj: &Value, now: &str) -> bool {
    let uid = uid_of(obj);
    let mut changed = false;
    for dep_key in dependents(store, &uid) {
        let Some(dep) = store.get(&dep_key).cloned() else {
            continue;
        };
        let refs = dep
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has_live_owner = refs.iter().any(|r| {
            r.get("uid").and_then(Value::as_str) != Some(uid.as_str())
                && matches!(
                    owner_state(store, &dep_key, r),
                    OwnerState::Live | OwnerState::Unknown
                )
        });
        if has_live_owner {
            drop_owner_ref(store, &dep_key, &uid);
            changed = true;
        } else if !being_deleted(&dep) {
            delete_with(store, cfg, &dep_key, Propagation::Foreground, now);
            changed = true;
        }
    }
    let blocking = dependents(store, &uid).into_iter().any(|k| {
        store
            .get(&k)
            .and_then(|d| d.pointer("/metadata/ownerReferences"))
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(uid.as_str())
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                })
            })
    });
    if !blocking && let Some(current) = store.get(key).cloned() {
        remove_finalizer(store, cfg, key, current, FOREGROUND_FINALIZER);
        return true;
    }
    changed
}

/// A dependent whose owners are all gone (or were never there: a wrong uid) is collected;
/// one that still has a live owner only loses the dangling references.
fn dangling(store: &mut Store, cfg: &Config, key: &ObjKey, obj: &Value, now: &str) -> bool {
    let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return false;
    };
    let states: Vec<(String, OwnerState)> = refs
        .iter()
        .map(|r| {
            (
                r.get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                owner_state(store, key, r),
            )
        })
        .collect();
    let dangling: Vec<&String> = states
        .iter()
        .filter(|(_, s)| *s == OwnerState::Dangling)
        .map(|(u, _)| u)
        .collect();
    if dangling.is_empty() {
        return false;
    }
    let any_live = states
        .iter()
        .any(|(_, s)| matches!(s, OwnerState::Live | OwnerState::Unknown));
    if any_live {
        for uid in dangling {
            drop_owner_ref(store, key, uid);
        }
    } else {
        let waiting = states
            .iter()
            .any(|(_, s)| *s == OwnerState::WaitingForDependents);
        let policy = if waiting {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        delete_with(store, cfg, key, policy, now);
    }
    true
}

/// The CRD finalizer controller: delete every instance (their own finalizers are honoured),
/// and remove the cleanup finalizer once none is left, which removes the CRD.
fn cleanup_crd(store: &mut Store, cfg: &Config, key: &ObjKey, crd: &Value, now: &str) -> bool {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (group, plural) = (s("/spec/group"), s("/spec/names/plural"));
    let instances = |store: &Store| -> Vec<ObjKey> {
        store
            .objects
            .keys()
            .filter(|k| k.group == group && k.plural == plural)
            .cloned()
            .collect()
    };
    let mut changed = false;
    for k in instances(store) {
        if store.get(&k).is_some_and(|o| !being_deleted(o)) {
            delete_key(store, cfg, &k, now);
            changed = true;
        }
    }
    let Some(mut current) = store.get(key).cloned() else {
        return true;
    };
    if instances(store).is_empty() {
        writes::set_condition(
            &mut current,
            "Terminating",
            "False",
            "InstanceDeletionCompleted",
            "removed all instances",
        );
        remove_finalizer(store, cfg, key, current, CRD_CLEANUP_FINALIZER);
        return true;
    }
    let before = current.clone();
    writes::set_condition(
        &mut current,
        "Terminating",
        "True",
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    );
    if current != before {
        writes::server_write(store, cfg, key, current);
        changed = true;
    }
    changed
}
