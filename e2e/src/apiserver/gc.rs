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
    super::index::owner_uids(obj).map(String::from).collect()
}

/// The objects with an owner reference to `uid`, in key order (from the store's index).
fn dependents(store: &Store, uid: &str) -> Vec<ObjKey> {
    store.index.dependents(uid)
}

fn exists_uid(store: &Store, uid: &str) -> bool {
    store.index.uid_exists(uid)
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
    for key in store.index.in_namespace(ns) {
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
    // The candidates are the objects this loop can act on: being deleted with a finalizer
    // this collector handles, or with a dangling owner reference. They come from the store's
    // index (see `index.rs`), not from a pass over every object: that pass made each write
    // cost as much as everything stored. Those found not to dangle leave the recheck set.
    let mut candidates = store.index.finalizing.clone();
    for key in std::mem::take(&mut store.index.recheck) {
        if store
            .get(&key)
            .is_some_and(|obj| !being_deleted(obj) && has_dangling_ref(store, &key, obj))
        {
            candidates.insert(key.clone());
            store.index.recheck.insert(key);
        }
    }
    // In key order, as before the index: which object is acted on first is unchanged.
    for key in &candidates {
        // Nothing below changes the store without returning, so this is the object as it
        // was when the candidates were chosen.
        let Some(obj) = store.get(key).cloned() else {
            continue;
        };
        let obj = &obj;
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

/// Whether an object being deleted waits for a finalizer that this collector (orphan,
/// foreground) or the CRD cleanup controller removes: `sweep_once` acts on it until it goes.
pub fn collector_finalizes(key: &ObjKey, obj: &Value) -> bool {
    being_deleted(obj)
        && writes::finalizers(obj).iter().any(|f| {
            f == ORPHAN_FINALIZER
                || f == FOREGROUND_FINALIZER
                || (f == CRD_CLEANUP_FINALIZER
                    && key.group == CRD_GROUP
                    && key.plural == CRD_PLURAL)
        })
}

fn has_dangling_ref(store: &Store, key: &ObjKey, obj: &Value) -> bool {
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
            .range(&group, &plural, None)
            .map(|(k, _)| k.clone())
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

#[cfg(test)]
mod tests {
    //! The collector picks its candidates from the store's index (`index.rs`) instead of a
    //! pass over every object; these check that it still finds each kind of candidate.
    use super::*;
    use crate::apiserver::writes::WriteCtx;

    fn cm_key(name: &str) -> ObjKey {
        ObjKey {
            group: String::new(),
            plural: "configmaps".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    /// A store with the `default` namespace, as the server starts with.
    fn store() -> (Store, Config) {
        let cfg = Config::default();
        let mut store = Store::new(100);
        let ns = store
            .find_resource("", "v1", "namespaces")
            .expect("namespaces");
        writes::create(
            &mut store,
            &cfg,
            &ns,
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            &WriteCtx::internal("test"),
            None,
        )
        .expect("namespace");
        (store, cfg)
    }

    /// Creates a ConfigMap owned by `owners` (`(name, uid)`), then runs the collector as the
    /// server does after every write; returns the stored object's uid.
    fn create(store: &mut Store, cfg: &Config, name: &str, owners: &[(&str, &str)]) -> String {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(n, u)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": u}))
            .collect();
        let res = store
            .find_resource("", "v1", "configmaps")
            .expect("configmaps");
        let created = writes::create(
            store,
            cfg,
            &res,
            "default",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "ownerReferences": refs}}),
            &WriteCtx::internal("test"),
            None,
        )
        .expect("create");
        sweep(store, cfg, &writes::now());
        uid_of(&created)
    }

    fn delete(store: &mut Store, cfg: &Config, name: &str) {
        delete_key(store, cfg, &cm_key(name), &writes::now());
        sweep(store, cfg, &writes::now());
    }

    #[test]
    fn a_dependent_goes_with_its_deleted_owner() {
        let (mut store, cfg) = store();
        let owner = create(&mut store, &cfg, "owner", &[]);
        create(&mut store, &cfg, "dependent", &[("owner", &owner)]);
        create(&mut store, &cfg, "unrelated", &[]);
        assert!(store.get(&cm_key("dependent")).is_some(), "owner is live");
        // Found live, it left the set of objects the collector looks at again.
        assert!(store.index.recheck.is_empty(), "{:?}", store.index.recheck);

        delete(&mut store, &cfg, "owner");

        assert!(store.get(&cm_key("dependent")).is_none(), "collected");
        assert!(store.get(&cm_key("unrelated")).is_some());
        assert!(store.index.dependents(&owner).is_empty());
    }

    #[test]
    fn an_owner_recreated_under_its_name_does_not_adopt_the_old_dependents() {
        let (mut store, cfg) = store();
        let owner = create(&mut store, &cfg, "owner", &[]);
        create(&mut store, &cfg, "dependent", &[("owner", &owner)]);
        // Remove the owner without running the collector, then create a new one under the
        // same name: only the uid tells them apart.
        store.remove(&cm_key("owner"));
        let new_owner = create(&mut store, &cfg, "owner", &[]);
        assert_ne!(owner, new_owner);
        assert!(store.get(&cm_key("dependent")).is_none(), "collected");
    }

    #[test]
    fn a_dependent_with_another_live_owner_only_loses_the_dangling_reference() {
        let (mut store, cfg) = store();
        let a = create(&mut store, &cfg, "a", &[]);
        let b = create(&mut store, &cfg, "b", &[]);
        create(&mut store, &cfg, "dependent", &[("a", &a), ("b", &b)]);

        delete(&mut store, &cfg, "a");

        let dep = store.get(&cm_key("dependent")).expect("kept: b is live");
        assert_eq!(owner_uids(dep), vec![b.clone()]);
        assert_eq!(store.index.dependents(&b), vec![cm_key("dependent")]);
        assert!(store.index.dependents(&a).is_empty());
    }

    #[test]
    fn a_dependent_created_with_a_dangling_reference_is_collected_at_once() {
        let (mut store, cfg) = store();
        create(&mut store, &cfg, "orphan", &[("ghost", "no-such-uid")]);
        assert!(store.get(&cm_key("orphan")).is_none());
        assert!(store.index.recheck.is_empty());
    }

    #[test]
    fn objects_waiting_for_a_collector_finalizer_are_candidates_until_they_go() {
        let (mut store, cfg) = store();
        let owner = create(&mut store, &cfg, "owner", &[]);
        create(&mut store, &cfg, "dependent", &[("owner", &owner)]);
        let res = store
            .find_resource("", "v1", "configmaps")
            .expect("configmaps");
        let opts = DeleteOptions {
            propagation: Propagation::Orphan,
            ..DeleteOptions::default()
        };
        writes::delete(
            &mut store,
            &cfg,
            &res,
            &cm_key("owner"),
            &opts,
            &writes::now(),
        )
        .expect("delete");
        assert_eq!(
            store.index.finalizing.iter().collect::<Vec<_>>(),
            vec![&cm_key("owner")],
            "waits for the orphan finalizer"
        );

        sweep(&mut store, &cfg, &writes::now());

        assert!(store.get(&cm_key("owner")).is_none());
        assert!(store.index.finalizing.is_empty());
        let dep = store
            .get(&cm_key("dependent"))
            .expect("orphaned, not deleted");
        assert!(owner_uids(dep).is_empty());
    }
}
