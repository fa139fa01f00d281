//! An in-memory Kubernetes API server for tests: in-process as a tower `Service` for
//! `kube::Client`, or over plain HTTP on 127.0.0.1 for `kubectl`. Where it differs from a
//! real kube-apiserver is listed in `docs/testing.md` ("Where the test API server differs").

mod apply;
pub mod authn;
pub mod authz;
pub(crate) mod builtin;
mod cnpg;
mod controllers;
mod discovery;
mod events_view;
mod faults;
mod fieldset;
mod gc;
mod handlers;
mod index;
mod openapi;
mod patch;
pub(crate) mod pods;
mod protobuf;
mod resources;
mod reviews;
mod routes;
mod selectors;
mod status;
mod store;
mod table;
mod tls;
mod watch;
mod wire;
mod workload;
mod writes;

pub mod http;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use faults::{FaultCode, Faults, Refusal, RequestRecord};
pub use resources::ResourceInfo;
pub use status::ApiError;

use store::{ObjKey, Store};

/// When simulated workloads (Deployments, StatefulSets) become ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadTiming {
    /// Synchronously after the write that changed them (deterministic; the status update
    /// is still a separate write with its own watch event).
    Immediate,
    /// After this delay, on a timer.
    After(Duration),
    /// Only when the test calls [`TestApiServer::complete_rollouts`].
    Manual,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub workload_timing: WorkloadTiming,
    /// Workloads with an image containing any of these substrings never become ready.
    pub failing_images: Vec<String>,
    /// How many changes are kept for watch replay before older resourceVersions expire.
    pub history_limit: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Image contracts the simulated kubelet enforces (see [`crate::kubelet`]); images without
    /// one are only checked for what the kubelet itself checks.
    pub contracts: crate::kubelet::Contracts,
    /// Enforce RBAC as kube-apiserver with `--authorization-mode=RBAC` does (see [`authz`]):
    /// requests authenticate with a bearer token ([`authn`]) and are authorized from the
    /// stored Roles, ClusterRoles and bindings. Off: every request is allowed.
    pub authorization: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workload_timing: WorkloadTiming::After(Duration::from_secs(1)),
            failing_images: Vec::new(),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(10),
            contracts: crate::kubelet::Contracts::default(),
            authorization: false,
        }
    }
}

struct Inner {
    store: Mutex<Store>,
    config: Mutex<Config>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RequestRecord>>,
    /// Held by [`TestApiServer::pause_controllers`].
    controllers_paused: Mutex<bool>,
    tokens: Mutex<authn::Tokens>,
}

/// A handle to one server; clones share it.
#[derive(Clone)]
pub struct TestApiServer {
    inner: Arc<Inner>,
}

impl Default for TestApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TestApiServer {
    /// A server with the default configuration (workloads ready after 1s).
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let server = Self {
            inner: Arc::new(Inner {
                store: Mutex::new(Store::new(config.history_limit)),
                config: Mutex::new(config),
                faults: Mutex::new(Faults::default()),
                log: Mutex::new(Vec::new()),
                controllers_paused: Mutex::new(false),
                tokens: Mutex::new(authn::Tokens::default()),
            }),
        };
        {
            let cfg = server.config();
            controllers::bootstrap(&mut server.store(), &cfg);
        }
        server
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    fn config(&self) -> Config {
        lock(&self.inner.config).clone()
    }

    /// The tower service for `kube::Client::new(server.service(), "default")`.
    pub fn service(&self) -> http::ApiService {
        http::ApiService::new(self.clone())
    }

    /// A client talking to this server in-process. Needs a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// Like [`Self::client`], identifying itself with `user_agent` in the request log.
    pub fn client_as(&self, user_agent: &str) -> kube::Client {
        kube::Client::new(self.service().with_user_agent(user_agent), "default")
    }

    pub fn set_workload_timing(&self, timing: WorkloadTiming) {
        lock(&self.inner.config).workload_timing = timing;
    }

    pub fn add_failing_image(&self, substring: impl Into<String>) {
        lock(&self.inner.config)
            .failing_images
            .push(substring.into());
    }

    pub fn clear_failing_images(&self) {
        lock(&self.inner.config).failing_images.clear();
    }

    /// Completes every pending rollout now (any timing); returns how many there were.
    pub fn complete_rollouts(&self) -> usize {
        let cfg = self.config();
        workload::run_due(&mut self.store(), &cfg, true)
    }

    fn run_due_rollouts(&self) {
        let cfg = self.config();
        workload::run_due(&mut self.store(), &cfg, false);
    }

    /// Runs the simulated controllers (CRD naming/establishing, service accounts) in a task
    /// started now, when the last request gave them work: the client gets its response
    /// first, and sees their writes as separate watch events right after. Without a tokio
    /// runtime they run at once.
    fn start_controllers(&self) {
        if *lock(&self.inner.controllers_paused) || !self.store().controllers_pending {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let server = self.clone();
                rt.spawn(async move { server.run_controllers() });
            }
            Err(_) => self.run_controllers(),
        }
    }

    /// Holds the simulated controllers (CRD naming/establishing, service accounts) until
    /// [`Self::resume_controllers`], so a test can observe the state a real cluster is in
    /// for a moment after a write: e.g. a new CRD not yet served.
    pub fn pause_controllers(&self) {
        *lock(&self.inner.controllers_paused) = true;
    }

    /// Lets the controllers run again, and runs whatever work they were held from.
    pub fn resume_controllers(&self) {
        *lock(&self.inner.controllers_paused) = false;
        self.run_controllers();
    }

    fn run_controllers(&self) {
        let cfg = self.config();
        let mut store = self.store();
        controllers::run(&mut store, &cfg);
        gc::sweep(&mut store, &cfg, &writes::now());
    }

    /// Starts timers for rollouts scheduled by the last request.
    fn start_rollout_timers(&self) {
        if !matches!(self.config().workload_timing, WorkloadTiming::After(_)) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut store = self.store();
        for p in store.rollouts.iter_mut().filter(|p| !p.timer) {
            p.timer = true;
            let server = self.clone();
            let due = tokio::time::Instant::from_std(p.due);
            rt.spawn(async move {
                tokio::time::sleep_until(due).await;
                server.run_due_rollouts();
            });
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    fn injected_fault(&self, request: &RequestRecord) -> Option<ApiError> {
        lock(&self.inner.faults).on_request(request)
    }

    fn latency(&self) -> Duration {
        lock(&self.inner.faults).latency
    }

    /// Closes every open watch (clients reconnect from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.store().drop_watches();
    }

    /// Compacts the history: open watches end with a 410 ERROR event and every watch from
    /// an old resourceVersion is refused with 410, so clients must relist.
    pub fn expire_watches(&self) {
        self.store().compact();
    }

    pub fn watch_count(&self) -> usize {
        let mut store = self.store();
        store.watchers.retain(|w| !w.tx.is_closed());
        store.watchers.len()
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.log).clear();
    }

    fn record(&self, r: RequestRecord) {
        lock(&self.inner.log).push(r);
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().rv
    }

    /// Reads an object directly, bypassing the API (for assertions).
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = ObjKey {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.store().get(&key).cloned()
    }

    /// Creates an object directly (seeding test fixtures without a client).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let cfg = self.config();
        let mut store = self.store();
        let res = store
            .resources()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("no resource for {api_version} {kind}"))
            })?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let ctx = writes::WriteCtx::internal("test-fixture");
        let created = writes::create(&mut store, &cfg, &res, &ns, obj, &ctx, None)?;
        // Fixtures stand for a cluster that already exists: the controllers have done their
        // part (a fixture CRD is established, a fixture namespace has its service account).
        controllers::run(&mut store, &cfg);
        gc::sweep(&mut store, &cfg, &ctx.now);
        Ok(Value::clone(&created))
    }

    /// The resources currently served (built-ins plus established CRDs).
    pub fn resources(&self) -> Vec<ResourceInfo> {
        self.store().resources().cloned().collect()
    }
}
