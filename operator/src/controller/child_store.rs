//! The store of the operator's watched children, compact.
//!
//! Every child a site owns (about 50 for the Erlangen example) is watched, trimmed to what the
//! reconcile reads ([`super::cache::trim_child`]) and kept. Kept as kube's reflector keeps
//! objects, a trimmed child still cost about 3.2 KiB (a `heaptrack` profile at 100 sites,
//! docs/performance.md): an `Arc<DynamicObject>` with its `ObjectMeta`, a B-tree node for the
//! few labels, another for the two hashes, a `serde_json` map per level of the kept fields, and
//! a key holding a copy of the kind's `ApiResource`. That was most of the operator's memory
//! beyond the idle process. Here a child is its name, resourceVersion, the kept labels by their
//! index in [`KEPT_LABELS`], the two hashes, and the kept fields as one JSON string; it is
//! turned back into the same trimmed `DynamicObject` when read (`to_object`, tested to round
//! trip), so the readers are unchanged.
//!
//! The store follows kube's reflector semantics for watcher events: `Init` starts a relist
//! into a buffer, `InitApply` fills it, `InitDone` replaces the live objects with it; `Apply`
//! and `Delete` change the live objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use kube::core::{ApiResource, DynamicObject, ObjectMeta, TypeMeta};
use kube::runtime::watcher;
use serde_json::Value;

use super::cache::{KEPT_LABELS, LIVE_HASH, version_key};
use super::diff::DESIRED_HASH_ANNOTATION;

/// A trimmed child without its maps; its namespace and name are the store's key.
#[derive(Debug, PartialEq)]
pub struct CompactChild {
    resource_version: Option<String>,
    generation: Option<i64>,
    typed: bool,
    /// `None`: no labels map; otherwise (index in [`KEPT_LABELS`], value).
    labels: Option<Box<[(u8, String)]>>,
    /// Whether the annotations map exists (trimming always writes one).
    annotated: bool,
    desired_hash: Option<String>,
    live_hash: Option<String>,
    /// The kept fields as JSON; `None` for an empty object (most kinds keep nothing).
    data: Option<Box<str>>,
    /// The rarely set rest of the metadata (deletion, finalizers): kept whole.
    rest: Option<Box<ObjectMeta>>,
}

impl CompactChild {
    /// From a child trimmed by [`super::cache::trim_child`]; `None` when it holds something
    /// trimming never leaves (another annotation or label, a data that is not an object):
    /// such an object is kept as it is by the caller.
    pub fn from_trimmed(obj: &DynamicObject) -> Option<Self> {
        let m = &obj.metadata;
        let labels = match &m.labels {
            None => None,
            Some(l) => Some(
                l.iter()
                    .map(|(k, v)| {
                        let i = KEPT_LABELS.iter().position(|kept| kept == k)?;
                        Some((u8::try_from(i).ok()?, v.clone()))
                    })
                    .collect::<Option<Vec<_>>>()?
                    .into_boxed_slice(),
            ),
        };
        let (annotated, desired_hash, live_hash) = match &m.annotations {
            None => (false, None, None),
            Some(a) => {
                if a.keys()
                    .any(|k| k != DESIRED_HASH_ANNOTATION && k != LIVE_HASH)
                {
                    return None;
                }
                (
                    true,
                    a.get(DESIRED_HASH_ANNOTATION).cloned(),
                    a.get(LIVE_HASH).cloned(),
                )
            }
        };
        let data = match &obj.data {
            Value::Object(map) if map.is_empty() => None,
            Value::Object(_) => Some(serde_json::to_string(&obj.data).ok()?.into_boxed_str()),
            _ => return None,
        };
        let rest = ObjectMeta {
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp.clone(),
            finalizers: m.finalizers.clone(),
            generate_name: m.generate_name.clone(),
            owner_references: m.owner_references.clone(),
            self_link: m.self_link.clone(),
            uid: m.uid.clone(),
            creation_timestamp: m.creation_timestamp.clone(),
            managed_fields: m.managed_fields.clone(),
            ..ObjectMeta::default()
        };
        // Only a named object has a key to be found by.
        m.name.as_ref()?;
        Some(Self {
            resource_version: m.resource_version.clone(),
            generation: m.generation,
            typed: obj.types.is_some(),
            labels,
            annotated,
            desired_hash,
            live_hash,
            data,
            rest: (rest != ObjectMeta::default()).then(|| Box::new(rest)),
        })
    }

    /// The trimmed object again, as `from_trimmed` read it.
    pub fn to_object(&self, ar: &ApiResource, namespace: &str, name: &str) -> DynamicObject {
        let mut metadata = self.rest.as_deref().cloned().unwrap_or_default();
        metadata.name = Some(name.to_string());
        metadata.namespace = Some(namespace.to_string());
        metadata.resource_version = self.resource_version.clone();
        metadata.generation = self.generation;
        metadata.labels = self.labels.as_ref().map(|l| {
            l.iter()
                .filter_map(|(i, v)| {
                    Some((KEPT_LABELS.get(usize::from(*i))?.to_string(), v.clone()))
                })
                .collect()
        });
        if self.annotated {
            let mut a = BTreeMap::new();
            if let Some(d) = &self.desired_hash {
                a.insert(DESIRED_HASH_ANNOTATION.to_string(), d.clone());
            }
            if let Some(l) = &self.live_hash {
                a.insert(LIVE_HASH.to_string(), l.clone());
            }
            metadata.annotations = Some(a);
        }
        let data = self
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| Value::Object(Default::default()));
        DynamicObject {
            types: self.typed.then(|| TypeMeta {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
            }),
            metadata,
            data,
        }
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

/// A child as stored: compact, or (never for what trimming leaves) whole.
#[derive(Debug)]
enum Stored {
    Compact(CompactChild),
    Whole(Arc<DynamicObject>),
}

impl Stored {
    fn of(obj: &DynamicObject, ar: &ApiResource) -> Self {
        // The kind is the store's; an object that says otherwise is kept as it says.
        let kind_is_the_stores = obj
            .types
            .as_ref()
            .is_none_or(|t| t.api_version == ar.api_version && t.kind == ar.kind);
        match CompactChild::from_trimmed(obj).filter(|_| kind_is_the_stores) {
            Some(c) => Stored::Compact(c),
            None => Stored::Whole(Arc::new(obj.clone())),
        }
    }

    fn object(&self, ar: &ApiResource, ns: &str, name: &str) -> Arc<DynamicObject> {
        match self {
            Stored::Compact(c) => Arc::new(c.to_object(ar, ns, name)),
            Stored::Whole(o) => o.clone(),
        }
    }

    fn resource_version(&self) -> Option<&str> {
        match self {
            Stored::Compact(c) => c.resource_version(),
            Stored::Whole(o) => o.metadata.resource_version.as_deref(),
        }
    }
}

/// (namespace, name)
type Key = (String, String);

fn key_of(obj: &DynamicObject) -> Option<Key> {
    Some((
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone()?,
    ))
}

/// The children of one kind in one watched scope.
#[derive(Debug)]
pub struct ChildStore {
    ar: ApiResource,
    live: RwLock<HashMap<Key, Stored>>,
    /// What a relist (after `Init`) has seen so far.
    relist: Mutex<Option<HashMap<Key, Stored>>>,
}

impl ChildStore {
    pub fn new(ar: ApiResource) -> Self {
        Self {
            ar,
            live: RwLock::new(HashMap::new()),
            relist: Mutex::new(None),
        }
    }

    /// Takes in one watcher event (objects already trimmed), before anyone is told of it.
    pub fn apply(&self, ev: &watcher::Event<DynamicObject>) {
        match ev {
            watcher::Event::Init => {
                *self.relist.lock().unwrap_or_else(|p| p.into_inner()) = Some(HashMap::new());
            }
            watcher::Event::InitApply(o) => {
                if let Some(k) = key_of(o) {
                    self.relist
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(HashMap::new)
                        .insert(k, Stored::of(o, &self.ar));
                }
            }
            watcher::Event::InitDone => {
                if let Some(objects) = self.relist.lock().unwrap_or_else(|p| p.into_inner()).take()
                {
                    *self.live.write().unwrap_or_else(|p| p.into_inner()) = objects;
                }
            }
            watcher::Event::Apply(o) => {
                if let Some(k) = key_of(o) {
                    self.live
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(k, Stored::of(o, &self.ar));
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(k) = key_of(o) {
                    self.live
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&k);
                }
            }
        }
    }

    /// The child as trimmed, `None` when it is not stored.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.get(&(ns.to_string(), name.to_string()))
            .map(|s| s.object(&self.ar, ns, name))
    }

    pub fn len(&self) -> usize {
        self.live.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `namespace/name@resourceVersion` of every stored child (to compare with a list).
    pub fn versions(&self) -> Vec<String> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .map(|((ns, name), s)| version_key(ns, name, s.resource_version().unwrap_or_default()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::trim_child;
    use serde_json::json;

    fn deployment() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "blaze", "namespace": "diz", "resourceVersion": "7", "generation": 3,
                "uid": "u1", "creationTimestamp": "2026-11-30T00:00:00Z",
                "labels": {"diz.miracum.org/site": "s", "diz.miracum.org/component": "blaze",
                           "app.kubernetes.io/component": "fhir", "other": "x"},
                "annotations": {"diz.miracum.org/desired-hash": "00000000000000ff", "foo": "bar"},
                "ownerReferences": [{"apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
                                     "name": "s", "uid": "u0"}],
                "managedFields": [{"manager": "m", "operation": "Apply"}],
            },
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "blaze", "image": "x@sha256:1", "env": [{"name": "A", "value": "1"}]}]}}},
            "status": {"readyReplicas": 1, "observedGeneration": 3, "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
        }))
        .expect("a deployment")
    }

    fn ar() -> ApiResource {
        ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&())
    }

    #[test]
    fn a_trimmed_child_round_trips() {
        let mut cases = Vec::new();
        let mut d = deployment();
        trim_child(&mut d);
        cases.push(d.clone());
        // Being deleted, with a finalizer: the rarely set metadata is kept whole.
        let mut deleting = deployment();
        deleting.metadata.finalizers = Some(vec!["f".into()]);
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-11-30T01:00:00Z")).expect("a time"));
        trim_child(&mut deleting);
        cases.push(deleting);
        // A ConfigMap keeps nothing but its metadata; a rollout record keeps its data.
        let mut cm: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "diz", "resourceVersion": "9",
                         "labels": {"app.kubernetes.io/component": "rollout-record"}},
            "data": {"record": "{}"},
        }))
        .expect("a configmap");
        let mut plain = cm.clone();
        plain.metadata.labels = None;
        trim_child(&mut plain);
        cases.push(plain);
        trim_child(&mut cm);
        cases.push(cm);
        for (i, trimmed) in cases.into_iter().enumerate() {
            let c = CompactChild::from_trimmed(&trimmed).expect("compact");
            let ns = trimmed.metadata.namespace.clone().unwrap_or_default();
            let name = trimmed.metadata.name.clone().unwrap_or_default();
            let kind = ApiResource {
                kind: trimmed
                    .types
                    .as_ref()
                    .map(|t| t.kind.clone())
                    .unwrap_or_default(),
                api_version: trimmed
                    .types
                    .as_ref()
                    .map(|t| t.api_version.clone())
                    .unwrap_or_default(),
                ..ar()
            };
            assert_eq!(c.to_object(&kind, &ns, &name), trimmed, "case {i}");
        }
    }

    #[test]
    fn what_trimming_never_leaves_is_kept_whole() {
        let mut d = deployment();
        trim_child(&mut d);
        let mut odd = d.clone();
        odd.metadata
            .labels
            .get_or_insert_default()
            .insert("unkept".into(), "x".into());
        assert!(CompactChild::from_trimmed(&odd).is_none());
        let store = ChildStore::new(ar());
        store.apply(&watcher::Event::Apply(odd.clone()));
        assert_eq!(store.get("diz", "blaze").as_deref(), Some(&odd));
    }

    #[test]
    fn the_store_follows_applies_deletes_and_relists() {
        let store = ChildStore::new(ar());
        let mut a = deployment();
        trim_child(&mut a);
        let mut b = a.clone();
        b.metadata.name = Some("flare".into());
        store.apply(&watcher::Event::Apply(a.clone()));
        store.apply(&watcher::Event::Apply(b.clone()));
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("diz", "blaze").as_deref(), Some(&a));
        assert_eq!(store.get("other", "blaze"), None);
        store.apply(&watcher::Event::Delete(b.clone()));
        assert_eq!(store.get("diz", "flare"), None);
        // A relist replaces what is live only once it is done; until then reads see the old.
        store.apply(&watcher::Event::Init);
        store.apply(&watcher::Event::InitApply(b.clone()));
        assert_eq!(store.get("diz", "blaze").as_deref(), Some(&a));
        assert_eq!(store.get("diz", "flare"), None);
        store.apply(&watcher::Event::InitDone);
        assert_eq!(store.get("diz", "blaze"), None);
        assert_eq!(store.get("diz", "flare").as_deref(), Some(&b));
        assert_eq!(store.versions(), vec!["diz/flare@7".to_string()]);
    }
}
