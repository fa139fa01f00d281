//! The object store: one global resourceVersion counter, a bounded event history for watch
//! replay, and the registry of open watches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::index::Indexes;
use super::resources::{self, ResourceInfo};

/// `(group, plural, namespace, name)`; namespace is empty for cluster-scoped objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(res: &ResourceInfo, namespace: &str, name: &str) -> Self {
        Self {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: if res.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A change, kept for replay to watches that start from an older resourceVersion.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub key: ObjKey,
    pub type_: EventType,
    /// The same allocation the store holds: a write copies an object neither into the
    /// history nor into its answer.
    pub object: Arc<Value>,
    /// The previous state, so that selector-filtered watches can turn a change that makes an
    /// object stop (start) matching into DELETED (ADDED), as the apiserver does.
    pub old: Option<Arc<Value>>,
}

pub enum WatchMsg {
    Event(Arc<StoredEvent>),
    /// The history was compacted under this watch: it must end with a 410.
    Expired,
}

pub struct Watcher {
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub tx: UnboundedSender<WatchMsg>,
}

pub struct Store {
    pub rv: u64,
    /// Written only through `put` and `remove`, which keep `index` up to date. Each object is
    /// shared (never changed in place) with the watch history, the answer to its write and
    /// the dry-run copies, so storing one costs no deep copy.
    objects: BTreeMap<ObjKey, Arc<Value>>,
    /// Lookups by uid, owner and namespace, and the garbage collector's candidates.
    pub index: Indexes,
    pub history: VecDeque<Arc<StoredEvent>>,
    pub history_limit: usize,
    /// Watching from a resourceVersion below this is answered with 410 Gone.
    pub compacted: u64,
    pub watchers: Vec<Watcher>,
    pub builtins: Vec<ResourceInfo>,
    pub custom: Vec<ResourceInfo>,
    /// Workload rollouts waiting for their simulated delay.
    pub rollouts: Vec<super::workload::Pending>,
    /// Set by writes that give the simulated controllers (CRD naming/establishing, service
    /// accounts) work; they run right after the request, as a separate write.
    pub controllers_pending: bool,
    /// A scratch copy for `dryRun=All`: nothing written to it is ever seen.
    pub dry_run: bool,
    uid_counter: u64,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            index: Indexes::default(),
            history: VecDeque::new(),
            history_limit,
            compacted: 0,
            watchers: Vec::new(),
            builtins: resources::builtins(),
            custom: Vec::new(),
            rollouts: Vec::new(),
            controllers_pending: false,
            dry_run: false,
            uid_counter: 0,
        }
    }

    /// A copy to run a `dryRun=All` request against: the same objects and resourceVersion,
    /// but no watches, history or pending rollouts, so validation, defaulting, admission and
    /// the server's own side effects run as for a real write and are then thrown away.
    pub fn dry_run_copy(&self) -> Self {
        Self {
            rv: self.rv,
            objects: self.objects.clone(),
            index: self.index.clone(),
            history: VecDeque::new(),
            // Nothing is recorded in the copy's history, so no limit is ever reached.
            history_limit: usize::MAX,
            compacted: self.compacted,
            watchers: Vec::new(),
            builtins: self.builtins.clone(),
            custom: self.custom.clone(),
            rollouts: Vec::new(),
            controllers_pending: false,
            dry_run: true,
            uid_counter: self.uid_counter,
        }
    }

    pub fn resources(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.builtins.iter().chain(self.custom.iter())
    }

    pub fn find_resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.resources()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// The resource an object's apiVersion/kind names, for garbage collection and hooks.
    pub fn resource_for_key(&self, key: &ObjKey) -> Option<ResourceInfo> {
        self.resources()
            .find(|r| r.group == key.group && r.plural == key.plural)
            .cloned()
    }

    pub fn new_uid(&mut self) -> String {
        self.uid_counter += 1;
        // Deterministic, unique per server, and shaped like a UUID so clients that parse it
        // (none should) are not surprised. A dry run's uid is never handed out again (a
        // real server's are random), hence its own range.
        let variant = if self.dry_run { 9 } else { 8 };
        format!("00000000-0000-4000-{variant}000-{:012x}", self.uid_counter)
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key).map(|o| &**o)
    }

    /// The stored object itself, shared: for answers and caches that outlive the lock.
    pub fn get_shared(&self, key: &ObjKey) -> Option<&Arc<Value>> {
        self.objects.get(key)
    }

    /// Every stored object, in key order (group, plural, namespace, name).
    pub fn objects(&self) -> impl Iterator<Item = (&ObjKey, &Value)> + use<'_> {
        self.objects.iter().map(|(k, v)| (k, &**v))
    }

    /// Stores or removes (`None`) the object under `key`, keeping the indexes current.
    fn set(&mut self, key: ObjKey, obj: Option<Arc<Value>>) -> Option<Arc<Value>> {
        let old = match obj {
            Some(o) => self.objects.insert(key.clone(), o),
            None => self.objects.remove(&key),
        };
        let new = self.objects.get(&key).map(|o| &**o);
        let finalizing = new.is_some_and(|o| super::gc::collector_finalizes(&key, o));
        self.index.replace(&key, old.as_deref(), new, finalizing);
        old
    }

    /// The served resources changed: the collector looks at every owner reference again.
    pub fn resources_changed(&mut self) {
        let objects = self.objects.iter().map(|(k, v)| (k, &**v));
        self.index.recheck_all(objects);
    }

    /// Stores an object under a fresh resourceVersion and notifies watches. The answer is the
    /// stored object itself (shared, not copied).
    pub fn put(&mut self, key: ObjKey, mut obj: Value, type_: EventType) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let obj = Arc::new(obj);
        let old = self.set(key.clone(), Some(obj.clone()));
        // One stored object, two APIs: the other group's Event changes in the same write.
        if let Some((twin_key, twin)) = super::events_view::twin(&key, &obj) {
            let twin = Arc::new(twin);
            let twin_old = self.set(twin_key.clone(), Some(twin.clone()));
            self.record(twin_key, type_, twin, twin_old);
        }
        self.record(key, type_, obj.clone(), old);
        obj
    }

    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let removed = self.set(key.clone(), None)?;
        self.rv += 1;
        // The DELETED event carries the deletion's resourceVersion: a copy, the stored
        // object may still be shared with older events.
        let mut obj = Arc::unwrap_or_clone(removed);
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        if let Some(twin_key) = super::events_view::twin_key(key)
            && let Some(twin) = self.set(twin_key.clone(), None)
        {
            let mut twin = Arc::unwrap_or_clone(twin);
            twin["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
            self.record(twin_key, EventType::Deleted, Arc::new(twin), None);
        }
        let obj = Arc::new(obj);
        self.record(key.clone(), EventType::Deleted, obj.clone(), None);
        Some(Arc::unwrap_or_clone(obj))
    }

    fn record(
        &mut self,
        key: ObjKey,
        type_: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            key,
            type_,
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.watchers.retain(|w| {
            if w.group != event.key.group || w.plural != event.key.plural {
                return !w.tx.is_closed();
            }
            if let Some(ns) = &w.namespace
                && ns != &event.key.namespace
            {
                return !w.tx.is_closed();
            }
            w.tx.send(WatchMsg::Event(event.clone())).is_ok()
        });
    }

    /// Forgets all history and moves the resourceVersion on, so that every resourceVersion a
    /// client holds is too old: the next watch (and every open one) gets 410 Gone.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(WatchMsg::Expired);
        }
    }

    /// Closes every open watch stream, as an apiserver restart or a load balancer would.
    pub fn drop_watches(&mut self) {
        self.watchers.clear();
    }

    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.range(group, plural, namespace)
            .map(|(_, v)| v)
            .collect()
    }

    /// The objects of one resource (in one namespace), in key order: a range of the ordered
    /// map, so a list costs what it returns, not what is stored.
    pub fn range(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&ObjKey, &Value)> + use<'_> {
        let start = ObjKey {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: String::new(),
        };
        let whole_resource = namespace.is_none();
        self.objects
            .range(start.clone()..)
            .take_while(move |(k, _)| {
                k.group == start.group
                    && k.plural == start.plural
                    && (whole_resource || k.namespace == start.namespace)
            })
            .map(|(k, v)| (k, &**v))
    }
}
