//! What the reconciles read, from watches instead of requests.
//!
//! Every kind the operator creates per site is watched (label-selected by
//! `app.kubernetes.io/managed-by`), as are the site's pods, the kubelet's `FailedMount` Events,
//! DizSites, ComponentReleases, ReleaseRevocations and the CloudNativePG CRD. A reconcile of a
//! site whose children are as desired makes no request at all; a change to any child (drift,
//! a pod failing, a Deployment becoming ready) triggers a reconcile of its site within the
//! watch's latency, not at the next resync.
//!
//! The stores are trimmed before anything is stored (see [`trim_child`]): a child keeps its
//! metadata without `managedFields`, the few fields the status reads (replicas, the first
//! image, ready counts, the Progressing condition) and a hash of everything it had except the
//! status ([`LIVE_HASH`]). Whether a child drifted is then a comparison of that hash with the
//! hash of the object the operator last saw matching its desired state ([`Verified`]), so the
//! pod templates need not be kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use super::Scope;
use super::child_store::ChildStore;
use super::diff::DESIRED_HASH_ANNOTATION;
use crate::api::{ComponentRelease, DizSite, ReleaseRevocation};
use crate::catalog::{self, MANAGED_BY, SITE_LABEL};
use crate::telemetry::Metrics;

/// In-memory annotation of a cached child: the hash of the object as the API server had it,
/// without its status and server-owned metadata. Never written to the cluster.
pub const LIVE_HASH: &str = "miracolix.cache/live-hash";
/// The CloudNativePG CRD whose presence decides whether databases are CNPG `Cluster`s.
pub const CNPG_CRD: &str = "clusters.postgresql.cnpg.io";
/// How long a reconcile waits for the watches to list what they watch before it fails
/// (and is retried with backoff) with [`NotSynced`].
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A watch has not listed its kind yet (the API server refuses it, or is slow).
#[derive(Debug, thiserror::Error)]
#[error("the watch of {what} has not listed it yet{}", last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
pub struct NotSynced {
    pub what: String,
    pub last_error: Option<String>,
}

/// Which watches have listed their kind at least once, by watch (`<kind>@<scope>`). A
/// `tokio::sync::watch` rather than `Store::wait_until_ready`, whose one-shot wakes only one of
/// several reconciles waiting at once.
#[derive(Clone)]
struct SyncSet(Arc<tokio::sync::watch::Sender<BTreeMap<String, bool>>>);

impl SyncSet {
    fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(BTreeMap::new())))
    }

    fn register(&self, key: &str) {
        self.0.send_modify(|m| {
            m.entry(key.to_string()).or_insert(false);
        });
    }

    fn listed(&self, key: &str) {
        self.0
            .send_if_modified(|m| m.insert(key.to_string(), true) != Some(true));
    }

    /// The first watch that has not listed yet, if any.
    fn pending(&self) -> Option<String> {
        self.0
            .borrow()
            .iter()
            .find(|(_, v)| !**v)
            .map(|(k, _)| k.clone())
    }

    async fn all_listed(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|m| m.values().all(|v| *v)).await;
    }
}

fn sync_key(what: &str, scope: Option<&Scope>) -> String {
    match scope {
        Some(Scope::Namespace(ns)) => format!("{what}@{ns}"),
        _ => what.to_string(),
    }
}

/// The names of a kind's cached objects by namespace and site label, so that a site's
/// reconcile reads its own objects instead of filtering every cached object of the kind (a cost
/// that grew with every site added; docs/performance.md). Kept by the watch task from the same
/// events as the store, a relist replacing it whole on `InitDone` as it replaces the store.
#[derive(Default)]
struct SiteIndex(Mutex<IndexState>);

#[derive(Default)]
struct IndexState {
    live: SiteNames,
    /// What a relist (after `Init`) has seen so far.
    relist: Option<SiteNames>,
}

/// `(namespace, site)` -> names, and the way back.
#[derive(Default)]
struct SiteNames {
    by_site: HashMap<(String, String), std::collections::BTreeSet<String>>,
    site_of: HashMap<(String, String), String>,
}

impl SiteNames {
    fn insert(&mut self, meta: &kube::core::ObjectMeta) {
        let (Some(ns), Some(name)) = (meta.namespace.as_ref(), meta.name.as_ref()) else {
            return;
        };
        self.remove(meta);
        if let Some(site) = meta.labels.as_ref().and_then(|l| l.get(SITE_LABEL)) {
            self.by_site
                .entry((ns.clone(), site.clone()))
                .or_default()
                .insert(name.clone());
            self.site_of
                .insert((ns.clone(), name.clone()), site.clone());
        }
    }

    fn remove(&mut self, meta: &kube::core::ObjectMeta) {
        let (Some(ns), Some(name)) = (meta.namespace.as_ref(), meta.name.as_ref()) else {
            return;
        };
        let Some(site) = self.site_of.remove(&(ns.clone(), name.clone())) else {
            return;
        };
        let key = (ns.clone(), site);
        if let Some(names) = self.by_site.get_mut(&key) {
            names.remove(name);
            if names.is_empty() {
                self.by_site.remove(&key);
            }
        }
    }
}

impl SiteIndex {
    fn event<K: Resource>(&self, ev: &watcher::Event<K>) {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            watcher::Event::Init => st.relist = Some(SiteNames::default()),
            watcher::Event::InitApply(o) => st
                .relist
                .get_or_insert_with(SiteNames::default)
                .insert(o.meta()),
            watcher::Event::InitDone => {
                if let Some(names) = st.relist.take() {
                    st.live = names;
                }
            }
            watcher::Event::Apply(o) => st.live.insert(o.meta()),
            watcher::Event::Delete(o) => st.live.remove(o.meta()),
        }
    }

    fn names(&self, ns: &str, site: &str) -> Vec<String> {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.live
            .by_site
            .get(&(ns.to_string(), site.to_string()))
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One store per watched scope (a namespace, or all of them).
struct Scoped<K: Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    stores: Vec<(Scope, Store<K>)>,
    /// Per store (same order), for the kinds read per site: children and pods.
    indexes: Vec<Arc<SiteIndex>>,
    dyntype: K::DynamicType,
}

impl<K> Scoped<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn for_namespace(&self, ns: &str) -> Option<&Store<K>> {
        self.stores
            .iter()
            .find(|(s, _)| s.covers(ns))
            .map(|(_, st)| st)
    }

    /// The objects labelled as `site`'s in `ns`, through the index (unindexed kinds: none).
    fn of_site(&self, ns: &str, site: &str) -> Vec<Arc<K>> {
        let Some(i) = self.stores.iter().position(|(s, _)| s.covers(ns)) else {
            return Vec::new();
        };
        let (Some((_, store)), Some(index)) = (self.stores.get(i), self.indexes.get(i)) else {
            return Vec::new();
        };
        index
            .names(ns, site)
            .into_iter()
            .filter_map(|name| {
                store.get(&ObjectRef::new_with(&name, self.dyntype.clone()).within(ns))
            })
            .filter(|o| labelled_as(o.meta(), site))
            .collect()
    }

    fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.for_namespace(ns)
            .map(|s| s.state_filter(|o| o.meta().namespace.as_deref() == Some(ns)))
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|(_, s)| s.state()).collect()
    }
}

/// Whether an object found through a [`SiteIndex`] is still labelled as `site`'s: the store may
/// already hold a newer version the index has not seen yet.
fn labelled_as(meta: &kube::core::ObjectMeta, site: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(SITE_LABEL))
        .map(String::as_str)
        == Some(site)
}

/// `namespace/name@resourceVersion`: how [`Cache::wait_consistent`] compares a store with a
/// list.
pub fn version_key(ns: &str, name: &str, resource_version: &str) -> String {
    format!("{ns}/{name}@{resource_version}")
}

/// The compact stores of one child kind, one per watched scope (see `child_store.rs`).
struct ScopedChildren {
    what: String,
    stores: Vec<(Scope, Arc<ChildStore>)>,
    /// Per store (same order).
    indexes: Vec<Arc<SiteIndex>>,
}

impl ScopedChildren {
    fn position(&self, ns: &str) -> Option<usize> {
        self.stores.iter().position(|(s, _)| s.covers(ns))
    }

    fn get(&self, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let (_, store) = self.stores.get(self.position(ns)?)?;
        store.get(ns, name)
    }

    /// The objects labelled as `site`'s in `ns`, through the index.
    fn of_site(&self, ns: &str, site: &str) -> Vec<Arc<DynamicObject>> {
        let Some(i) = self.position(ns) else {
            return Vec::new();
        };
        let (Some((_, store)), Some(index)) = (self.stores.get(i), self.indexes.get(i)) else {
            return Vec::new();
        };
        index
            .names(ns, site)
            .into_iter()
            .filter_map(|name| store.get(ns, &name))
            .filter(|o| labelled_as(&o.metadata, site))
            .collect()
    }

    fn len(&self) -> usize {
        self.stores.iter().map(|(_, s)| s.len()).sum()
    }

    fn versions_in(&self, scope: &Scope) -> Vec<String> {
        let mut v = self
            .stores
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, s)| s.versions())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Streams of site references, one per subscriber, each receiving the sites in its scope.
#[derive(Default)]
struct Fanout(Mutex<Vec<(Scope, mpsc::UnboundedSender<ObjectRef<DizSite>>)>>);

impl Fanout {
    fn subscribe(&self, scope: &Scope) -> mpsc::UnboundedReceiver<ObjectRef<DizSite>> {
        let (tx, rx) = mpsc::unbounded();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((scope.clone(), tx));
        rx
    }

    fn send(&self, site: &ObjectRef<DizSite>) {
        let mut subs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|(scope, tx)| {
            let in_scope = match scope {
                Scope::AllNamespaces => true,
                Scope::Namespace(n) => site.namespace.as_deref() == Some(n.as_str()),
            };
            !in_scope || tx.unbounded_send(site.clone()).is_ok()
        });
    }
}

/// The site reconciles to run because something they read changed, and which of them have not
/// started yet (the queue depth).
struct Triggers {
    subscribers: Fanout,
    pending: Mutex<std::collections::HashSet<ObjectRef<DizSite>>>,
    metrics: Metrics,
}

impl Triggers {
    fn started(&self, site: &ObjectRef<DizSite>) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.remove(site) {
            self.metrics.queue_depth(p.len());
        }
    }

    fn send(&self, site: ObjectRef<DizSite>) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.insert(site.clone()) {
                self.metrics.queue_depth(p.len());
            }
        }
        self.subscribers.send(&site);
    }
}

/// Which live content was last seen to match which desired object, per child: the memory that
/// lets a trimmed store answer "did anyone change it?" without reading the object.
#[derive(Default)]
pub struct Verified(Mutex<HashMap<String, (String, String)>>);

impl Verified {
    /// Whether `live_hash` is the content last seen to match the desired hash `desired`.
    pub fn matches(&self, key: &str, desired: &str, live_hash: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|(d, l)| d == desired && l == live_hash)
    }

    pub fn record(&self, key: String, desired: String, live_hash: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (desired, live_hash));
    }

    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a child in [`Verified`].
pub fn child_key(ar: &ApiResource, ns: &str, name: &str) -> String {
    format!("{}/{}/{ns}/{name}", ar.api_version, ar.kind)
}

/// The kinds the operator creates per site (and so watches), CNPG clusters aside.
pub fn child_kinds() -> Vec<ApiResource> {
    let mut kinds = super::dizsite::workload_kinds();
    kinds.extend(super::dizsite::data_kinds(false));
    kinds
}

struct Inner {
    client: Client,
    scopes: Vec<Scope>,
    metrics: Metrics,
    triggers: Arc<Triggers>,
    /// Sites whose own object, or a release or revocation, changed, sent once the stores hold
    /// the change: what the FeasibilityEndpoint and ProposalInbox controllers react to.
    site_changes: Arc<Fanout>,
    /// Every DizSite version the stores take in, for the DizSite controllers.
    own_sites: Arc<Fanout>,
    verified: Arc<Verified>,
    errors: Arc<Mutex<BTreeMap<String, String>>>,
    synced: SyncSet,
    sites: Scoped<DizSite>,
    children: BTreeMap<(String, String), ScopedChildren>,
    cnpg_clusters: OnceLock<ScopedChildren>,
    pods: Scoped<Pod>,
    mount_events: Scoped<Event>,
    releases: Store<ComponentRelease>,
    revocations: Store<ReleaseRevocation>,
    cnpg_crd: Store<PartialObjectMeta<CustomResourceDefinition>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// The operator's informer caches. Cloning shares them.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            t.abort();
        }
    }
}

/// Objects per page of a watch's (re)list. Each page is held whole, untrimmed, while it is
/// parsed: with kube's default of 500, the relists of every child kind after a restart made
/// the operator's peak memory (docs/performance.md).
const LIST_PAGE: u32 = 100;

fn paged() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE)
}

fn managed() -> watcher::Config {
    paged().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))
}

impl Cache {
    /// Starts every watch (in the background, on the current runtime) and returns at once;
    /// [`Cache::ready`] waits for their first lists.
    pub fn start(client: Client, scopes: Vec<Scope>, metrics: Metrics) -> Self {
        let site_changes = Arc::new(Fanout::default());
        let triggers = Arc::new(Triggers {
            subscribers: Fanout::default(),
            pending: Mutex::default(),
            metrics: metrics.clone(),
        });
        let verified = Arc::new(Verified::default());
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let mut tasks = Vec::new();
        let synced = SyncSet::new();
        let watch = Watch {
            metrics: &metrics,
            errors: &errors,
            synced: &synced,
        };

        // DizSites: read for the neighbours of a site (a rollback halts a release there) and by
        // the release controller (which sites run a release).
        // The DizSite controllers use this store too (`Cache::site_stream`): one copy of each
        // site, without managedFields, where the controller's own reflector kept a second one
        // with them (docs/performance.md).
        let mut sites_stores = Vec::new();
        let own_sites = Arc::new(Fanout::default());
        for scope in &scopes {
            let changes = site_changes.clone();
            let own = own_sites.clone();
            let own_listed = own_sites.clone();
            let (store, task) = watch.reflect(
                "DizSite",
                Some(scope),
                super::api_for::<DizSite>(&client, scope),
                (),
                watcher::Config::default(),
                |s: &mut DizSite| s.managed_fields_mut().clear(),
                None,
                move |s: &DizSite| {
                    let site = ObjectRef::from_obj(s);
                    own.send(&site);
                    changes.send(&site);
                },
                // A (re)list's sites are in the store only now: each is sent again, as kube's
                // own reflector does for its controller.
                move |store: &Store<DizSite>| {
                    for s in store.state() {
                        own_listed.send(&ObjectRef::from_obj(&*s));
                    }
                },
            );
            tasks.push(task);
            sites_stores.push((scope.clone(), store));
        }
        let sites = Scoped {
            stores: sites_stores,
            indexes: Vec::new(),
            dyntype: (),
        };
        let all_sites = {
            let stores: Vec<Store<DizSite>> = sites.stores.iter().map(|(_, s)| s.clone()).collect();
            let triggers = triggers.clone();
            let changes = site_changes.clone();
            move || {
                for s in &stores {
                    for site in s.state() {
                        let site = ObjectRef::from_obj(&*site);
                        changes.send(&site);
                        triggers.send(site);
                    }
                }
            }
        };

        let mut children = BTreeMap::new();
        for ar in child_kinds() {
            let scoped = watch.children(&client, &scopes, &ar, &triggers, &verified, &mut tasks);
            children.insert((ar.group.clone(), ar.kind.clone()), scoped);
        }

        // The site's pods (why a component is not ready) and the kubelet's FailedMount Events
        // (the only place a volume that cannot be mounted is named).
        let mut pods = Vec::new();
        let mut pod_indexes = Vec::new();
        let mut events = Vec::new();
        for scope in &scopes {
            let t = triggers.clone();
            let index = Arc::new(SiteIndex::default());
            pod_indexes.push(index.clone());
            let (store, task) = watch.reflect(
                "Pod",
                Some(scope),
                super::api_for::<Pod>(&client, scope),
                (),
                paged().labels(SITE_LABEL),
                trim_pod,
                Some(index),
                move |pod: &Pod| {
                    if let Some(site) = site_of(pod.meta()) {
                        t.send(site);
                    }
                },
                |_| (),
            );
            tasks.push(task);
            pods.push((scope.clone(), store.clone()));
            let t = triggers.clone();
            let (ev_store, task) = watch.reflect(
                "Event",
                Some(scope),
                super::api_for::<Event>(&client, scope),
                (),
                paged().fields("reason=FailedMount"),
                trim_event,
                None,
                move |ev: &Event| {
                    // The Event is about a pod; its site is the pod's.
                    let Some(regarding) = ev.regarding.as_ref() else {
                        return;
                    };
                    let (Some(ns), Some(name)) =
                        (regarding.namespace.as_deref(), regarding.name.as_deref())
                    else {
                        return;
                    };
                    if let Some(site) = store
                        .get(&ObjectRef::new(name).within(ns))
                        .and_then(|p| site_of(p.meta()))
                    {
                        t.send(site);
                    }
                },
                |_| (),
            );
            tasks.push(task);
            events.push((scope.clone(), ev_store));
        }

        // A release or a revocation changing concerns every site.
        let trig = all_sites.clone();
        let (releases, task) = watch.reflect(
            "ComponentRelease",
            None,
            Api::<ComponentRelease>::all(client.clone()),
            (),
            watcher::Config::default(),
            |r: &mut ComponentRelease| r.managed_fields_mut().clear(),
            None,
            move |_| trig(),
            |_| (),
        );
        tasks.push(task);
        let trig = all_sites.clone();
        let (revocations, task) = watch.reflect(
            "ReleaseRevocation",
            None,
            Api::<ReleaseRevocation>::all(client.clone()),
            (),
            watcher::Config::default(),
            |r: &mut ReleaseRevocation| r.managed_fields_mut().clear(),
            None,
            move |_| trig(),
            |_| (),
        );
        tasks.push(task);
        // CloudNativePG installed or removed: sites that want a database are rebuilt. Metadata
        // only, selected by name (RBAC grants list and watch of this one CRD).
        let crd_seen = Arc::new(tokio::sync::Notify::new());
        let trig = all_sites;
        let notify = crd_seen.clone();
        let (cnpg_crd, task) = watch.reflect(
            "CustomResourceDefinition",
            None,
            Api::<PartialObjectMeta<CustomResourceDefinition>>::all(client.clone()),
            (),
            watcher::Config::default().fields(&format!("metadata.name={CNPG_CRD}")),
            |c: &mut PartialObjectMeta<CustomResourceDefinition>| {
                c.managed_fields_mut().clear();
                c.annotations_mut().clear();
            },
            None,
            move |_| {
                notify.notify_one();
                trig();
            },
            |_| (),
        );
        tasks.push(task);

        let cache = Cache(Arc::new(Inner {
            client,
            scopes,
            metrics: metrics.clone(),
            triggers,
            site_changes,
            own_sites,
            verified,
            errors,
            synced,
            sites,
            children,
            cnpg_clusters: OnceLock::new(),
            pods: Scoped {
                stores: pods,
                indexes: pod_indexes,
                dyntype: (),
            },
            mount_events: Scoped {
                stores: events,
                indexes: Vec::new(),
                dyntype: (),
            },
            releases,
            revocations,
            cnpg_crd,
            tasks: Mutex::new(tasks),
        }));
        // CNPG clusters are watched once their CRD exists: a watch of a kind the API server
        // does not serve would fail and retry for as long as it is missing.
        let weak = Arc::downgrade(&cache.0);
        let task = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if !inner.cnpg_crd.is_empty() {
                    Cache(inner).start_cnpg();
                    return;
                }
                drop(inner);
                crd_seen.notified().await;
            }
        });
        cache.push_task(task.abort_handle());
        cache
    }

    fn push_task(&self, t: tokio::task::AbortHandle) {
        self.0
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t);
    }

    fn start_cnpg(&self) {
        let inner = &self.0;
        let ar = catalog::database::cnpg_api_resource();
        let mut tasks = Vec::new();
        let watch = Watch {
            metrics: &inner.metrics,
            errors: &inner.errors,
            synced: &inner.synced,
        };
        let scoped = watch.children(
            &inner.client,
            &inner.scopes,
            &ar,
            &inner.triggers,
            &inner.verified,
            &mut tasks,
        );
        if inner.cnpg_clusters.set(scoped).is_ok() {
            for t in tasks {
                self.push_task(t);
            }
            // Sites wanting a database were stalled until now.
            for site in inner.sites.all() {
                inner.triggers.send(ObjectRef::from_obj(&*site));
            }
        } else {
            tasks.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }

    /// A stream of the sites in `scope` to reconcile because something they read changed.
    pub fn triggers(
        &self,
        scope: &Scope,
    ) -> impl Stream<Item = ObjectRef<DizSite>> + Send + 'static {
        self.0.triggers.subscribers.subscribe(scope)
    }

    /// A stream of the sites in `scope` whose DizSite changed, or all of them when a release
    /// or a revocation changed; each sent once the caches hold the change, so a reconcile it
    /// triggers reads at least that version.
    pub fn site_changes(
        &self,
        scope: &Scope,
    ) -> impl Stream<Item = ObjectRef<DizSite>> + Send + 'static {
        self.0.site_changes.subscribe(scope)
    }

    /// The DizSite controller's input for `scope`: the store of its sites and a stream of each
    /// site the store takes in (a change, or every site once a (re)list is in), starting with
    /// the sites it already holds. `None` when the cache does not watch exactly this scope.
    pub fn site_stream(
        &self,
        scope: &Scope,
    ) -> Option<(
        impl Stream<Item = Arc<DizSite>> + Send + 'static,
        Store<DizSite>,
    )> {
        let store = self
            .0
            .sites
            .stores
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, st)| st.clone())?;
        // Subscribed before the replay: a site stored in between is sent twice, never missed.
        let changes = self.0.own_sites.subscribe(scope);
        let already = futures::stream::iter(
            store
                .state()
                .iter()
                .map(|s| ObjectRef::from_obj(&**s))
                .collect::<Vec<_>>(),
        );
        let reader = store.clone();
        let stream = already
            .chain(changes)
            .filter_map(move |r| futures::future::ready(reader.get(&r)));
        Some((stream, store))
    }

    /// Reconciles every known site (the feed follower's condition changed: each site's status
    /// carries it).
    pub fn trigger_all_sites(&self) {
        for site in self.0.sites.all() {
            self.0.triggers.send(ObjectRef::from_obj(&*site));
        }
    }

    /// A reconcile of `site` starts: it is no longer waiting.
    pub fn started(&self, site: &DizSite) {
        self.0.triggers.started(&ObjectRef::from_obj(site));
    }

    /// Waits (bounded) until every watch has listed its kind once.
    pub async fn ready(&self) -> Result<(), NotSynced> {
        let i = &self.0;
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        let timed_out = |c: &Self| {
            let what = i.synced.pending().unwrap_or_default();
            let kind = what.split('@').next().unwrap_or_default().to_string();
            let mut e = c.not_synced(&kind);
            e.what = what;
            e
        };
        if tokio::time::timeout_at(deadline, i.synced.all_listed())
            .await
            .is_err()
        {
            return Err(timed_out(self));
        }
        if self.cnpg_available() {
            // The CRD was just seen: the watch of its Clusters starts a moment later.
            while i.cnpg_clusters.get().is_none() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(self.not_synced("clusters"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if tokio::time::timeout_at(deadline, i.synced.all_listed())
                .await
                .is_err()
            {
                return Err(timed_out(self));
            }
        }
        Ok(())
    }

    fn not_synced(&self, what: &str) -> NotSynced {
        NotSynced {
            what: what.to_string(),
            last_error: self
                .0
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(what)
                .cloned(),
        }
    }

    pub fn releases(&self) -> Vec<ComponentRelease> {
        self.0
            .releases
            .state()
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }

    pub fn revocations(&self) -> Vec<ReleaseRevocation> {
        self.0
            .revocations
            .state()
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }

    pub fn cnpg_available(&self) -> bool {
        !self.0.cnpg_crd.is_empty()
    }

    /// One DizSite, as last seen.
    pub fn site(&self, ns: &str, name: &str) -> Option<DizSite> {
        self.0
            .sites
            .for_namespace(ns)?
            .get(&ObjectRef::new(name).within(ns))
            .map(|s| (*s).clone())
    }

    /// One ComponentRelease, as last seen.
    pub fn release(&self, name: &str) -> Option<ComponentRelease> {
        self.0
            .releases
            .get(&ObjectRef::new(name))
            .map(|r| (*r).clone())
    }

    /// A DizSite and the ComponentRelease it runs (`status.currentRelease`), each if found: what
    /// the FeasibilityEndpoint and ProposalInbox controllers read about the site they serve.
    pub fn site_and_release(
        &self,
        ns: &str,
        name: &str,
    ) -> (Option<DizSite>, Option<ComponentRelease>) {
        let site = self.site(ns, name);
        let release = site
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.current_release.as_deref())
            .and_then(|name| self.release(name));
        (site, release)
    }

    /// The DizSites of one namespace.
    pub fn sites_in(&self, ns: &str) -> Vec<DizSite> {
        self.0
            .sites
            .in_namespace(ns)
            .iter()
            .map(|s| (**s).clone())
            .collect()
    }

    /// `<namespace>/<name>` of every watched DizSite for which `keep` holds, read in place:
    /// the release controller asks this on every site change, and copying every site for it
    /// made its cost grow with the square of the sites (docs/performance.md).
    pub fn site_names_where(&self, keep: impl Fn(&DizSite) -> bool) -> Vec<String> {
        self.0
            .sites
            .stores
            .iter()
            .flat_map(|(_, s)| s.state())
            .filter(|s| keep(s))
            .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
            .collect()
    }

    /// Every watched DizSite.
    pub fn sites(&self) -> Vec<DizSite> {
        self.0.sites.all().iter().map(|s| (**s).clone()).collect()
    }

    fn children_of(&self, ar: &ApiResource) -> Option<&ScopedChildren> {
        let key = (ar.group.clone(), ar.kind.clone());
        self.0
            .children
            .get(&key)
            .or_else(|| self.0.cnpg_clusters.get().filter(|c| c.what == ar.plural))
    }

    /// A child as last seen (trimmed), `None` when it does not exist or its kind is not watched.
    pub fn child(&self, ar: &ApiResource, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.children_of(ar)?.get(ns, name)
    }

    /// The children of kind `ar` labelled as the site's and as managed by the operator.
    pub fn site_children(&self, ar: &ApiResource, ns: &str, site: &str) -> Vec<Arc<DynamicObject>> {
        self.children_of(ar)
            .map(|c| c.of_site(ns, site))
            .unwrap_or_default()
    }

    /// The site's pods (trimmed to what [`super::dizsite::status::pod_problems`] reads).
    pub fn pods(&self, ns: &str, site: &str) -> Vec<Pod> {
        self.0
            .pods
            .of_site(ns, site)
            .into_iter()
            .map(|p| (*p).clone())
            .collect()
    }

    /// The kubelet's FailedMount Events of one namespace.
    pub fn mount_events(&self, ns: &str) -> Vec<Event> {
        self.0
            .mount_events
            .in_namespace(ns)
            .into_iter()
            .map(|e| (*e).clone())
            .collect()
    }

    pub fn verified(&self) -> &Verified {
        &self.0.verified
    }

    /// How many objects the stores hold, by kind (for the benchmark's memory accounting).
    pub fn sizes(&self) -> BTreeMap<String, usize> {
        let i = &self.0;
        let mut out = BTreeMap::new();
        for ((_, kind), c) in &i.children {
            out.insert(kind.clone(), c.len());
        }
        if let Some(c) = i.cnpg_clusters.get() {
            out.insert("Cluster".into(), c.len());
        }
        out.insert("DizSite".into(), i.sites.all().len());
        out.insert("Pod".into(), i.pods.all().len());
        out.insert("Event".into(), i.mount_events.all().len());
        out.insert("ComponentRelease".into(), i.releases.len());
        out.insert("ReleaseRevocation".into(), i.revocations.len());
        out
    }

    /// Waits until every store holds exactly what the API server holds (same objects, same
    /// resourceVersions), read with `client`. For tests that call a reconcile directly right
    /// after changing something: the watches deliver the change a moment later, and a
    /// reconcile must not run on what they held before.
    pub async fn wait_consistent(&self, client: &Client) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        self.ready().await.map_err(|e| e.to_string())?;
        loop {
            let mut diff = Vec::new();
            self.compare(client, &mut diff).await;
            if diff.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("caches differ from the API server: {diff:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn compare(&self, client: &Client, diff: &mut Vec<String>) {
        use kube::api::ListParams;
        fn versions<K: Resource>(items: impl IntoIterator<Item = impl AsRef<K>>) -> Vec<String> {
            let mut v: Vec<String> = items
                .into_iter()
                .map(|o| {
                    let m = o.as_ref().meta();
                    version_key(
                        m.namespace.as_deref().unwrap_or_default(),
                        m.name.as_deref().unwrap_or_default(),
                        m.resource_version.as_deref().unwrap_or_default(),
                    )
                })
                .collect();
            v.sort();
            v
        }
        let i = &self.0;
        let managed_lp =
            ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        for scope in &i.scopes {
            let ns = match scope {
                Scope::AllNamespaces => None,
                Scope::Namespace(n) => Some(n.as_str()),
            };
            let mut kinds: Vec<(ApiResource, &ScopedChildren)> = child_kinds()
                .into_iter()
                .filter_map(|ar| {
                    let c = i.children.get(&(ar.group.clone(), ar.kind.clone()))?;
                    Some((ar, c))
                })
                .collect();
            if let Some(c) = i.cnpg_clusters.get() {
                kinds.push((catalog::database::cnpg_api_resource(), c));
            }
            for (ar, c) in kinds {
                let api: Api<DynamicObject> = match ns {
                    Some(n) => Api::namespaced_with(client.clone(), n, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                let Ok(list) = api.list(&managed_lp).await else {
                    diff.push(format!("cannot list {}", ar.kind));
                    continue;
                };
                let want = versions::<DynamicObject>(list.items.iter().map(Wrap));
                let have = c.versions_in(scope);
                if want != have {
                    diff.push(ar.kind.clone());
                }
            }
            let sites: Api<DizSite> = super::api_for(client, scope);
            if let Ok(list) = sites.list(&ListParams::default()).await {
                let want = versions::<DizSite>(list.items.iter().map(Wrap));
                let have = versions::<DizSite>(
                    i.sites
                        .stores
                        .iter()
                        .find(|(s, _)| s == scope)
                        .map(|(_, s)| s.state())
                        .unwrap_or_default(),
                );
                if want != have {
                    diff.push("DizSite".into());
                }
            }
            let pods: Api<Pod> = super::api_for(client, scope);
            if let Ok(list) = pods.list(&ListParams::default().labels(SITE_LABEL)).await {
                let want = versions::<Pod>(list.items.iter().map(Wrap));
                let have = versions::<Pod>(
                    i.pods
                        .stores
                        .iter()
                        .find(|(s, _)| s == scope)
                        .map(|(_, s)| s.state())
                        .unwrap_or_default(),
                );
                if want != have {
                    diff.push("Pod".into());
                }
            }
        }
        if let Ok(list) = Api::<ComponentRelease>::all(client.clone())
            .list(&ListParams::default())
            .await
            && versions::<ComponentRelease>(list.items.iter().map(Wrap))
                != versions::<ComponentRelease>(i.releases.state())
        {
            diff.push("ComponentRelease".into());
        }
        if let Ok(list) = Api::<ReleaseRevocation>::all(client.clone())
            .list(&ListParams::default())
            .await
            && versions::<ReleaseRevocation>(list.items.iter().map(Wrap))
                != versions::<ReleaseRevocation>(i.revocations.state())
        {
            diff.push("ReleaseRevocation".into());
        }
    }
}

/// `&K` as `AsRef<K>`, to compare listed objects with stored `Arc<K>`s through one function.
struct Wrap<'a, K>(&'a K);

impl<K> AsRef<K> for Wrap<'_, K> {
    fn as_ref(&self) -> &K {
        self.0
    }
}

/// The site a child, pod or Event belongs to, from its labels.
fn site_of(meta: &kube::core::ObjectMeta) -> Option<ObjectRef<DizSite>> {
    let site = meta.labels.as_ref()?.get(SITE_LABEL)?;
    Some(ObjectRef::new(site).within(meta.namespace.as_deref()?))
}

/// Starts watches and records their failures.
struct Watch<'a> {
    metrics: &'a Metrics,
    errors: &'a Arc<Mutex<BTreeMap<String, String>>>,
    synced: &'a SyncSet,
}

impl Watch<'_> {
    /// A reflector of `api` whose objects are trimmed by `trim` before they are stored;
    /// `on_change` sees each object once the store holds it (a (re)list's objects as they
    /// arrive, before the store swaps them in), `on_listed` the store once a (re)list is in.
    #[allow(clippy::too_many_arguments)]
    fn reflect<K>(
        &self,
        what: &str,
        scope: Option<&Scope>,
        api: Api<K>,
        dyntype: K::DynamicType,
        config: watcher::Config,
        trim: impl Fn(&mut K) + Send + Sync + 'static,
        index: Option<Arc<SiteIndex>>,
        on_change: impl Fn(&K) + Send + 'static,
        on_listed: impl Fn(&Store<K>) + Send + 'static,
    ) -> (Store<K>, tokio::task::AbortHandle)
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone + Default + Send + Sync,
    {
        let writer = Writer::new(dyntype);
        let store = writer.as_reader();
        let reader = store.clone();
        let metrics = self.metrics.clone();
        let errors = self.errors.clone();
        let what = what.to_string();
        let key = sync_key(&what, scope);
        let synced = self.synced.clone();
        synced.register(&key);
        let stream = reflector::reflector(
            writer,
            watcher(api, config)
                .map_ok(move |ev| ev.modify(|o| trim(o)))
                .default_backoff(),
        );
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut listed = false;
            while let Some(ev) = stream.next().await {
                if let (Some(index), Ok(ev)) = (&index, &ev) {
                    index.event(ev);
                }
                match ev {
                    Ok(watcher::Event::Init) => {
                        // Every list after the first is a restart: the watch expired (410),
                        // failed or was dropped.
                        if listed {
                            metrics.watch_restarted(&what);
                        }
                        listed = true;
                    }
                    Ok(watcher::Event::InitDone) => {
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&what);
                        synced.listed(&key);
                        on_listed(&reader);
                    }
                    Ok(
                        watcher::Event::Apply(o)
                        | watcher::Event::InitApply(o)
                        | watcher::Event::Delete(o),
                    ) => on_change(&o),
                    Err(e) => {
                        tracing::debug!(kind = %what, error = %e, "watch failed; retrying");
                        metrics.watch_failed(&what);
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(what.clone(), e.to_string());
                    }
                }
            }
        });
        (store, task.abort_handle())
    }

    /// The watches of one child kind, one per scope: trimmed, each change triggering its site.
    fn children(
        &self,
        client: &Client,
        scopes: &[Scope],
        ar: &ApiResource,
        triggers: &Arc<Triggers>,
        verified: &Arc<Verified>,
        tasks: &mut Vec<tokio::task::AbortHandle>,
    ) -> ScopedChildren {
        let mut stores = Vec::new();
        let mut indexes = Vec::new();
        for scope in scopes {
            let index = Arc::new(SiteIndex::default());
            indexes.push(index.clone());
            let api: Api<DynamicObject> = match scope {
                Scope::AllNamespaces => Api::all_with(client.clone(), ar),
                Scope::Namespace(ns) => Api::namespaced_with(client.clone(), ns, ar),
            };
            let t = triggers.clone();
            let v = verified.clone();
            let kind = ar.clone();
            let store = Arc::new(ChildStore::new(ar.clone()));
            let writer = store.clone();
            let metrics = self.metrics.clone();
            let errors = self.errors.clone();
            let what = ar.plural.clone();
            let key = sync_key(&what, Some(scope));
            let synced = self.synced.clone();
            synced.register(&key);
            let stream = watcher(api, managed())
                .map_ok(|ev| ev.modify(trim_child))
                .default_backoff();
            let task = tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut listed = false;
                while let Some(ev) = stream.next().await {
                    // Stored before anyone is told: a triggered reconcile reads the change.
                    if let Ok(ev) = &ev {
                        writer.apply(ev);
                        index.event(ev);
                    }
                    match ev {
                        Ok(watcher::Event::Init) => {
                            if listed {
                                metrics.watch_restarted(&kind.kind);
                            }
                            listed = true;
                        }
                        Ok(watcher::Event::InitDone) => {
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&what);
                            synced.listed(&key);
                        }
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                            if let Some(site) = site_of(&o.metadata) {
                                t.send(site);
                            }
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            v.forget(&child_key(
                                &kind,
                                o.metadata.namespace.as_deref().unwrap_or_default(),
                                o.metadata.name.as_deref().unwrap_or_default(),
                            ));
                            if let Some(site) = site_of(&o.metadata) {
                                t.send(site);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(kind = %kind.kind, error = %e, "watch failed; retrying");
                            metrics.watch_failed(&kind.kind);
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(what.clone(), e.to_string());
                        }
                    }
                }
            });
            tasks.push(task.abort_handle());
            stores.push((scope.clone(), store));
        }
        ScopedChildren {
            what: ar.plural.clone(),
            stores,
            indexes,
        }
    }
}

/// The hash of an object as the API server holds it, without what the server and other
/// controllers change on their own (status, resourceVersion, managedFields, generation): equal
/// hashes mean nobody changed the object's content.
pub fn live_hash(obj: &DynamicObject) -> String {
    super::diff::fnv_hex(&LiveView(obj))
}

/// An object as [`live_hash`] reads it, encoded without building a copy: the full watched
/// object carries managedFields and status, several times the size of what is hashed.
struct LiveView<'a>(&'a DynamicObject);

impl serde::Serialize for LiveView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let obj = self.0;
        let mut map = s.serialize_map(None)?;
        if let Some(t) = &obj.types {
            map.serialize_entry("apiVersion", &t.api_version)?;
            map.serialize_entry("kind", &t.kind)?;
        }
        map.serialize_entry("metadata", &MetaView(&obj.metadata))?;
        match obj.data.as_object() {
            Some(data) => {
                for (k, v) in data.iter().filter(|(k, _)| k.as_str() != "status") {
                    map.serialize_entry(k, v)?;
                }
            }
            None => map.serialize_entry("data", &obj.data)?,
        }
        map.end()
    }
}

/// Metadata without what the server changes on its own (resourceVersion, managedFields,
/// generation) and without the cache's own [`LIVE_HASH`] annotation.
struct MetaView<'a>(&'a kube::core::ObjectMeta);

impl serde::Serialize for MetaView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // Every other field of ObjectMeta, spelled out: a field added to ObjectMeta is then
        // not hashed until it is listed here, which errs towards "unchanged".
        let kube::core::ObjectMeta {
            annotations,
            creation_timestamp,
            deletion_grace_period_seconds,
            deletion_timestamp,
            finalizers,
            generate_name,
            generation: _,
            labels,
            managed_fields: _,
            name,
            namespace,
            owner_references,
            resource_version: _,
            self_link,
            uid,
        } = self.0;
        let mut map = s.serialize_map(None)?;
        entry(
            &mut map,
            "annotations",
            &annotations.as_ref().map(WithoutLiveHash),
        )?;
        entry(&mut map, "creationTimestamp", creation_timestamp)?;
        entry(
            &mut map,
            "deletionGracePeriodSeconds",
            deletion_grace_period_seconds,
        )?;
        entry(&mut map, "deletionTimestamp", deletion_timestamp)?;
        entry(&mut map, "finalizers", finalizers)?;
        entry(&mut map, "generateName", generate_name)?;
        entry(&mut map, "labels", labels)?;
        entry(&mut map, "name", name)?;
        entry(&mut map, "namespace", namespace)?;
        entry(&mut map, "ownerReferences", owner_references)?;
        entry(&mut map, "selfLink", self_link)?;
        entry(&mut map, "uid", uid)?;
        map.end()
    }
}

/// A map entry for a field that is set; none for one that is not (as ObjectMeta encodes).
fn entry<M: serde::ser::SerializeMap, T: serde::Serialize>(
    map: &mut M,
    key: &str,
    value: &Option<T>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => map.serialize_entry(key, v),
        None => Ok(()),
    }
}

/// Annotations without the cache's own [`LIVE_HASH`].
struct WithoutLiveHash<'a>(&'a BTreeMap<String, String>);

impl serde::Serialize for WithoutLiveHash<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().filter(|(k, _)| k.as_str() != LIVE_HASH))
    }
}

/// Paths of a child the status reads; everything else is dropped before the child is stored.
const KEPT: &[&str] = &[
    "/spec/replicas",
    "/spec/instances",
    "/status/readyReplicas",
    // The FeasibilityEndpoint is Ready once its gate Deployment has an available replica.
    "/status/availableReplicas",
    "/status/observedGeneration",
    "/status/readyInstances",
    // The reporter CronJob's last runs: the `Reporting` condition (dizsite/reporting.rs).
    "/status/lastScheduleTime",
    "/status/lastSuccessfulTime",
];

/// Trims a watched child to what the reconcile reads: its metadata without managedFields and
/// foreign annotations, the fields of [`KEPT`], the first container's image, the Progressing
/// condition, the data of the rollout record, and the [`LIVE_HASH`] of the whole object.
pub fn trim_child(obj: &mut DynamicObject) {
    let hash = live_hash(obj);
    let full = std::mem::take(&mut obj.data);
    let mut kept = Value::Object(Default::default());
    for path in KEPT {
        if let Some(v) = full.pointer(path) {
            put(&mut kept, path, v.clone());
        }
    }
    if let Some(image) = full.pointer("/spec/template/spec/containers/0/image") {
        put(
            &mut kept,
            "/spec/template/spec/containers",
            Value::Array(vec![serde_json::json!({"image": image})]),
        );
    }
    if let Some(conds) = full.pointer("/status/conditions").and_then(Value::as_array) {
        let progressing: Vec<Value> = conds
            .iter()
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))
            .map(|c| serde_json::json!({"type": c.get("type"), "status": c.get("status")}))
            .collect();
        put(&mut kept, "/status/conditions", Value::Array(progressing));
    }
    // Only rollout-record ConfigMaps carry this label value.
    let is_record = obj
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .is_some_and(|c| c == "rollout-record");
    if is_record && let Some(data) = full.get("data") {
        put(&mut kept, "/data", data.clone());
    }
    obj.data = kept;
    let meta = &mut obj.metadata;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.creation_timestamp = None;
    meta.uid = None;
    keep_labels(meta);
    let desired = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
        .cloned();
    let mut annotations = BTreeMap::new();
    if let Some(d) = desired {
        annotations.insert(DESIRED_HASH_ANNOTATION.to_string(), d);
    }
    annotations.insert(LIVE_HASH.to_string(), hash);
    meta.annotations = Some(annotations);
}

/// The labels the reconcile reads: the site's, the component's and the part's role (the rollout
/// record's `rollout-record`); other labels are not stored.
pub const KEPT_LABELS: &[&str] = &[
    SITE_LABEL,
    catalog::COMPONENT_LABEL,
    "app.kubernetes.io/component",
];

fn keep_labels(meta: &mut kube::core::ObjectMeta) {
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| KEPT_LABELS.contains(&k.as_str()));
    }
}

fn put(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            obj.insert((*p).to_string(), value);
            return;
        }
        cur = obj
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// A pod trimmed to its labels and container states (what `pod_problems` reads).
fn trim_pod(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    meta.creation_timestamp = None;
    meta.uid = None;
    meta.generate_name = None;
    keep_labels(meta);
    pod.spec = None;
    if let Some(st) = pod.status.as_mut() {
        st.pod_ips = None;
        st.pod_ip = None;
        st.host_ip = None;
        st.host_ips = None;
        st.start_time = None;
        st.qos_class = None;
        if let Some(conds) = st.conditions.as_mut() {
            conds.retain(|c| c.type_ == "Ready");
        }
        for c in st
            .container_statuses
            .iter_mut()
            .flatten()
            .chain(st.init_container_statuses.iter_mut().flatten())
        {
            c.image_id = String::new();
            c.image = String::new();
            c.container_id = None;
            c.volume_mounts = None;
            c.resources = None;
            c.allocated_resources = None;
        }
    }
}

fn trim_event(ev: &mut Event) {
    ev.metadata.managed_fields = None;
    ev.metadata.annotations = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "erlangen-flare", "namespace": "diz", "resourceVersion": "7",
                "labels": {SITE_LABEL: "erlangen", (catalog::COMPONENT_LABEL): "flare"},
                "annotations": {DESIRED_HASH_ANNOTATION: "abc", "other": "x"},
                "managedFields": [{"manager": "m", "operation": "Apply"}],
            },
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "flare", "image": "x@sha256:1", "env": [{"name": "A", "value": "b"}]}
            ]}}},
            "status": {"readyReplicas": 1, "observedGeneration": 3, "conditions": [
                {"type": "Available", "status": "True", "message": "long"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ]},
        }))
        .expect("deployment")
    }

    #[test]
    fn a_trimmed_child_keeps_what_the_status_reads_and_its_live_hash() {
        let full = deployment();
        let mut d = full.clone();
        trim_child(&mut d);
        assert_eq!(d.metadata.managed_fields, None);
        let a = d.metadata.annotations.clone().expect("annotations");
        assert_eq!(
            a.get(DESIRED_HASH_ANNOTATION).map(String::as_str),
            Some("abc")
        );
        assert_eq!(a.get(LIVE_HASH), Some(&live_hash(&full)));
        assert!(!a.contains_key("other"));
        assert_eq!(
            d.data,
            json!({
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "x@sha256:1"}]}}},
                "status": {"readyReplicas": 1, "observedGeneration": 3,
                           "conditions": [{"type": "Progressing", "status": "False"}]},
            })
        );
        let health = super::super::dizsite::status::workloads(&[(
            ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
            d,
        )]);
        assert_eq!(health.len(), 1);
        let h = &health[0];
        assert_eq!(h.component, "flare");
        assert_eq!(h.image.as_deref(), Some("x@sha256:1"));
        assert_eq!((h.replicas, h.ready, h.failed), (2, 1, true));
    }

    #[test]
    fn the_live_hash_ignores_status_and_server_metadata_but_not_content() {
        let a = deployment();
        let mut b = a.clone();
        b.data["status"]["readyReplicas"] = json!(2);
        b.metadata.resource_version = Some("8".into());
        b.metadata.managed_fields = None;
        assert_eq!(live_hash(&a), live_hash(&b));
        b.metadata.generation = Some(9);
        // The cache's own annotation is not content.
        b.metadata
            .annotations
            .get_or_insert_default()
            .insert(LIVE_HASH.into(), "0123".into());
        assert_eq!(live_hash(&a), live_hash(&b));
        let content: [fn(&mut DynamicObject); 5] = [
            |o| {
                o.data["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] =
                    json!("evil")
            },
            |o| {
                o.metadata
                    .labels
                    .get_or_insert_default()
                    .insert("x".into(), "y".into());
            },
            |o| {
                o.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert("other".into(), "z".into());
            },
            |o| o.metadata.finalizers = Some(vec!["f".into()]),
            |o| o.metadata.owner_references = Some(vec![Default::default()]),
        ];
        for (i, change) in content.iter().enumerate() {
            let mut c = b.clone();
            change(&mut c);
            assert_ne!(live_hash(&a), live_hash(&c), "change {i}");
        }
    }

    fn labelled(ns: &str, name: &str, site: Option<&str>) -> watcher::Event<Pod> {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(ns.into());
        pod.metadata.name = Some(name.into());
        pod.metadata.labels = site.map(|s| BTreeMap::from([(SITE_LABEL.to_string(), s.into())]));
        watcher::Event::Apply(pod)
    }

    #[test]
    fn the_site_index_follows_applies_relabels_deletes_and_relists() {
        let index = SiteIndex::default();
        index.event(&labelled("a", "p1", Some("s")));
        index.event(&labelled("a", "p2", Some("s")));
        index.event(&labelled("b", "p3", Some("s")));
        index.event(&labelled("a", "p4", None));
        assert_eq!(index.names("a", "s"), ["p1", "p2"]);
        assert_eq!(index.names("b", "s"), ["p3"]);
        // Relabelled to another site: it moves.
        index.event(&labelled("a", "p2", Some("t")));
        assert_eq!(index.names("a", "s"), ["p1"]);
        assert_eq!(index.names("a", "t"), ["p2"]);
        let watcher::Event::Apply(p1) = labelled("a", "p1", Some("s")) else {
            unreachable!()
        };
        index.event(&watcher::Event::Delete(p1));
        assert!(index.names("a", "s").is_empty());
        // A relist replaces everything once it is done, not before.
        index.event(&watcher::Event::<Pod>::Init);
        let watcher::Event::Apply(p5) = labelled("a", "p5", Some("s")) else {
            unreachable!()
        };
        index.event(&watcher::Event::InitApply(p5));
        assert_eq!(index.names("a", "t"), ["p2"]);
        index.event(&watcher::Event::<Pod>::InitDone);
        assert_eq!(index.names("a", "s"), ["p5"]);
        assert!(index.names("a", "t").is_empty());
        assert!(index.names("b", "s").is_empty());
    }

    #[test]
    fn verified_matches_only_the_same_desired_and_live_content() {
        let v = Verified::default();
        v.record("k".into(), "d1".into(), "l1".into());
        assert!(v.matches("k", "d1", "l1"));
        assert!(!v.matches("k", "d2", "l1"));
        assert!(!v.matches("k", "d1", "l2"));
        v.forget("k");
        assert!(!v.matches("k", "d1", "l1"));
    }
}
