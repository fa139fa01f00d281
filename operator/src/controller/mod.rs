//! Controllers, one module per kind, sharing the apply machinery and the context.

pub mod apply;
pub mod cache;
pub mod certification;
pub mod child_store;
pub mod component_release;
pub mod diff;
pub mod dizsite;
pub mod feasibility;
pub mod inbox;
pub mod release_revocation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};

use crate::api::DizSite;
use crate::api::conditions::{self, READY};
use crate::clock::Clock;
use crate::telemetry::Metrics;
use certification::Certifier;

/// Per-object exponential backoff for failed reconciles: 1 s, 2 s, 4 s … capped at 5 minutes, so
/// a broken site neither hammers the API server nor waits long after the cause is fixed.
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    pub const MAX: Duration = Duration::from_secs(300);

    pub fn next(&self, key: &str) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        let delay = Duration::from_secs(1u64 << (*n).min(9)).min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub certifier: Arc<dyn Certifier>,
    pub clock: Arc<dyn Clock>,
    pub backoff: Backoff,
    /// Where the instrumented reconcilers record; a private registry unless `with_metrics`
    /// hands in the one `/metrics` serves.
    pub metrics: Metrics,
    /// The namespaces the operator watches: every read of DizSites (the release controller's
    /// list of sites, the rollout's look at other sites) stays inside them, so a namespaced
    /// install needs no cluster-wide read of DizSites.
    pub scopes: Vec<Scope>,
    /// How many sites each DizSite controller reconciles at once (`--max-concurrent-reconciles`).
    pub concurrency: u16,
    /// Where the ProposalInbox controller reads an inbox's summary (its status counts): over
    /// HTTP from the inbox's Service, or a stub in tests.
    pub inbox_summaries: Arc<dyn inbox::summary::SummarySource>,
    /// The `ReleaseFeed` condition the feed follower reports (none without `--feed-url`); the
    /// DizSite reconcile writes it with each site's status.
    pub feed_condition: crate::feed::ConditionSlot,
    /// What each site's last successful apply read and wrote, so that a reconcile whose
    /// render would give the same children skips it (`dizsite::last_applied`).
    pub last_applied: dizsite::last_applied::Memory,
    /// The watches every read comes from, started on first use (so a test that calls a
    /// reconcile directly gets them too).
    cache: std::sync::OnceLock<cache::Cache>,
}

impl Context {
    pub fn new(client: Client, certifier: Arc<dyn Certifier>, clock: Arc<dyn Clock>) -> Self {
        let reporter = Reporter {
            controller: "miracolix-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            certifier,
            clock,
            backoff: Backoff::default(),
            metrics: Metrics::default(),
            scopes: vec![Scope::AllNamespaces],
            concurrency: DEFAULT_CONCURRENCY,
            inbox_summaries: Arc::new(inbox::summary::HttpSummary::default()),
            feed_condition: crate::feed::ConditionSlot::default(),
            last_applied: dizsite::last_applied::Memory::default(),
            cache: std::sync::OnceLock::new(),
        }
    }

    /// This operator follows a release feed (`run --feed-url`): until the follower's first
    /// round the sites keep the `ReleaseFeed` condition they have; without it they lose it.
    #[must_use]
    pub fn with_feed_followed(mut self) -> Self {
        self.feed_condition = crate::feed::ConditionSlot::followed();
        self
    }

    /// Reads inbox summaries from `source` (tests: a stub server through
    /// [`inbox::summary::HttpSummary::with_resolver`]).
    #[must_use]
    pub fn with_inbox_summaries(mut self, source: Arc<dyn inbox::summary::SummarySource>) -> Self {
        self.inbox_summaries = source;
        self
    }

    /// The caches, started (on the current runtime) on first use; they may not have listed
    /// everything yet (see [`Context::synced`]).
    pub fn cache(&self) -> &cache::Cache {
        self.cache.get_or_init(|| {
            cache::Cache::start(
                self.client.clone(),
                self.scopes.clone(),
                self.metrics.clone(),
            )
        })
    }

    /// The caches once every watch has listed its kind (bounded wait).
    pub async fn synced(&self) -> Result<&cache::Cache, cache::NotSynced> {
        let c = self.cache();
        c.ready().await?;
        Ok(c)
    }

    /// Reads DizSites only in these namespaces (the watched ones).
    #[must_use]
    pub fn with_scopes(mut self, scopes: Vec<Scope>) -> Self {
        self.scopes = if scopes.is_empty() {
            vec![Scope::AllNamespaces]
        } else {
            scopes
        };
        self
    }

    /// Every DizSite the operator watches (in the watched namespaces), from the cache.
    pub async fn list_dizsites(&self) -> Result<Vec<DizSite>, cache::NotSynced> {
        Ok(self.synced().await?.sites())
    }

    /// Reconciles at most `n` sites at once per DizSite controller (0: no bound).
    #[must_use]
    pub fn with_concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// Records into `metrics` (the registry the metrics endpoint serves).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Which namespaces to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    AllNamespaces,
    Namespace(String),
}

impl Scope {
    /// Whether objects of namespace `ns` are in this scope.
    pub fn covers(&self, ns: &str) -> bool {
        match self {
            Scope::AllNamespaces => true,
            Scope::Namespace(n) => n == ns,
        }
    }

    /// One scope per namespace, or all namespaces when none is named. kube's `Controller` watches
    /// through one `Api`, which is either one namespace or all of them, so several namespaces
    /// take one controller each. Blank entries (a trailing comma in `WATCH_NAMESPACES`) and
    /// duplicates are dropped so no namespace gets two controllers.
    pub fn for_namespaces<S: AsRef<str>>(namespaces: &[S]) -> Vec<Scope> {
        let mut seen = std::collections::BTreeSet::new();
        let scopes: Vec<Scope> = namespaces
            .iter()
            .map(|n| n.as_ref().trim())
            .filter(|n| !n.is_empty() && seen.insert(n.to_string()))
            .map(|n| Scope::Namespace(n.to_string()))
            .collect();
        if scopes.is_empty() {
            vec![Scope::AllNamespaces]
        } else {
            scopes
        }
    }
}

pub(crate) fn api_for<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::AllNamespaces => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// `wc` narrowed to the objects the operator manages (its `managed-by` label): the
/// controllers' watches of the Deployments they own need no one else's.
pub(crate) fn managed_only(wc: watcher::Config) -> watcher::Config {
    wc.labels(&format!(
        "{}={}",
        crate::catalog::MANAGED_BY.0,
        crate::catalog::MANAGED_BY.1
    ))
}

/// How many sites a DizSite controller reconciles at once unless told otherwise. A first
/// reconcile holds a site's rendered children and the apply answers until it ends; unbounded
/// (kube's default), every site of a large install does so at the same moment, which set the
/// operator's peak memory (docs/performance.md). The API server serves one request per site
/// at a time anyway, so a bound costs little convergence time.
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// How long a site's reconcile waits after the last trigger for it. While a site converges,
/// each of its ~30 children and dozen pods changes several times within a second or two, and
/// each change triggers the site: without a wait the site was rendered and compared again for
/// most of them (21 reconciles per site to converge at 50 sites, docs/performance.md). A
/// burst now costs one reconcile, which reads the caches as they are after it; drift is
/// still repaired within this delay of the watch event.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Runs the DizSite controller until `shutdown` resolves.
pub async fn run_dizsite(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let sites: Api<DizSite> = api_for(&client, &scope);
    // Every child, pod, FailedMount Event, release, revocation and the CloudNativePG CRD is
    // watched once, by the cache; a change there triggers the sites it concerns.
    let triggers = ctx.cache().triggers(&scope);
    // The sites themselves come from the cache's store too, so each is held once.
    let controller = match ctx.cache().site_stream(&scope) {
        Some((stream, store)) => Controller::for_shared_stream(stream, store),
        None => Controller::new(sites, watcher::Config::default()),
    };
    controller
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.concurrency)
                .debounce(DEBOUNCE),
        )
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_dizsite, dizsite::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // `site` as `<namespace>/<name>` on every line about a site, so one grep finds
                // them all (docs/operations.md).
                Ok((obj, _)) => tracing::debug!(
                    site = %format!("{}/{}", obj.namespace.as_deref().unwrap_or_default(), obj.name),
                    "reconciled"
                ),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}

/// Runs one DizSite controller per scope, all sharing the context (and so the backoff, the
/// metrics and the client), until `shutdown` resolves.
pub async fn run_dizsites(
    ctx: Arc<Context>,
    scopes: Vec<Scope>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, _) = tokio::sync::watch::channel(false);
    let controllers = scopes.into_iter().map(|scope| {
        let mut rx = tx.subscribe();
        run_dizsite(ctx.clone(), scope, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    });
    let all = futures::future::join_all(controllers);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => return,
        () = shutdown => {}
    }
    let _ = tx.send(true);
    all.await;
}

/// `dizsite::reconcile` with metrics: count, duration, and the site's readiness and release.
pub async fn reconcile_dizsite(
    site: Arc<DizSite>,
    ctx: Arc<Context>,
) -> Result<kube::runtime::controller::Action, dizsite::Error> {
    let started = Instant::now();
    ctx.cache().started(&site);
    let result = dizsite::reconcile(site.clone(), ctx.clone()).await;
    let error = result.as_ref().err().map(dizsite::Error::reason);
    ctx.metrics.reconciled("DizSite", started.elapsed(), error);
    record_site(&ctx.metrics, &site, result.is_ok());
    result
}

/// The site gauges from the object this reconcile started with: a status written by the
/// reconcile comes back as a watch event and a further reconcile, which records it, so the
/// gauges cost no extra request and lag one reconcile at most.
fn record_site(metrics: &Metrics, site: &DizSite, reconciled: bool) {
    let ns = site.metadata.namespace.as_deref().unwrap_or_default();
    let name = site.metadata.name.as_deref().unwrap_or_default();
    if site.metadata.deletion_timestamp.is_some() {
        // The finalizer has run once the reconcile succeeded; the object is about to go.
        if reconciled {
            metrics.forget_site(ns, name);
        }
        return;
    }
    let status = site.status.as_ref();
    let ready = status.is_some_and(|s| conditions::is_true(&s.conditions, READY));
    let release = status.and_then(|s| s.current_release.as_deref());
    metrics.site(ns, name, ready, release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let got: Vec<u64> = (0..12).map(|_| b.next("a").as_secs()).collect();
        assert_eq!(&got[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(*got.last().expect("non-empty"), 300);
        assert_eq!(b.next("other").as_secs(), 1);
        b.reset("a");
        assert_eq!(b.next("a").as_secs(), 1);
    }

    #[test]
    fn scopes_one_per_namespace_or_all() {
        assert_eq!(
            Scope::for_namespaces::<&str>(&[]),
            vec![Scope::AllNamespaces]
        );
        assert_eq!(
            Scope::for_namespaces(&["a", " ", "b", "a"]),
            vec![Scope::Namespace("a".into()), Scope::Namespace("b".into())]
        );
    }
}
