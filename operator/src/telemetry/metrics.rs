//! Prometheus metrics of the controllers, rendered in the Prometheus text format (0.0.4).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Reconcile outcome, as the `result` label spells it.
pub const OK: &str = "ok";
pub const ERROR: &str = "error";

/// What each label's values are, for the generated `docs/metrics.md` (a test fails when a
/// served label is missing here).
pub const LABELS: &[(&str, &str)] = &[
    (
        "kind",
        "`DizSite` or `ComponentRelease` for reconciles; the watched kind (`Deployment`, `Pod`, …) for watches",
    ),
    ("result", "`ok` or `error`"),
    (
        "reason",
        "why the reconcile failed: a reason of [conditions.md](conditions.md#reasons) marked \"failed reconcile\", e.g. `ApplyFailed`, `ReadFailed`, `StatusWriteFailed`",
    ),
    ("namespace", "the DizSite's namespace"),
    ("site", "the DizSite's name"),
    (
        "release",
        "the ComponentRelease the site runs (`status.currentRelease`)",
    ),
    (
        "verb",
        "the Kubernetes API verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or the HTTP method of a non-resource path",
    ),
    (
        "resource",
        "the resource (plural, with `/subresource`), e.g. `deployments`, `dizsites/status`; empty for non-resource paths",
    ),
    (
        "code",
        "the HTTP status code of the answer, `0` when none came",
    ),
    (
        "outcome",
        "a feed fetch: `full` (200) or `not-modified` (304); a feed entry: `applied`, `unchanged`, `not-verified` (its signatures do not verify, or it cannot be read), `conflict` (an object of its name not created by the feed exists), `apply-failed` (the API server refused it)",
    ),
    (
        "error",
        "why a feed fetch failed: `unreachable` (DNS, connect, TLS), `timeout`, `http-status` (an answer other than 200 or 304), `invalid` (not a release feed)",
    ),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    namespace: String,
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    namespace: String,
    site: String,
    release: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

type SiteKey = (String, String);

struct Inner {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    site_ready: Family<SiteLabels, Gauge>,
    site_release: Family<ReleaseLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
    watch_restarts: Family<KindLabels, Counter>,
    watch_failures: Family<KindLabels, Counter>,
    queue_depth: Gauge,
    site_renders: Counter,
    feed_fetches: Family<OutcomeLabels, Counter>,
    feed_fetch_errors: Family<ErrorLabels, Counter>,
    feed_entries: Family<OutcomeLabels, Counter>,
    feed_last_success: Gauge,
    // The info gauge is keyed by the release too, so the old series has to be found and removed
    // when a site moves on; otherwise a site would report two releases at once.
    releases: Mutex<HashMap<SiteKey, String>>,
}

/// The operator's metrics. Cloning is cheap and every clone records into the same registry, so
/// the controllers and the `/metrics` handler share one instance.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Reconciles range from a no-op resync (milliseconds) to a first install that applies dozens of
/// objects through a slow API server (tens of seconds).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        let site_ready = Family::<SiteLabels, Gauge>::default();
        let site_release = Family::<ReleaseLabels, Gauge>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let watch_restarts = Family::<KindLabels, Counter>::default();
        let watch_failures = Family::<KindLabels, Counter>::default();
        let queue_depth = Gauge::default();
        let site_renders = Counter::default();
        let feed_fetches = Family::<OutcomeLabels, Counter>::default();
        let feed_fetch_errors = Family::<ErrorLabels, Counter>::default();
        let feed_entries = Family::<OutcomeLabels, Counter>::default();
        let feed_last_success = Gauge::default();
        registry.register(
            "miracolix_api_requests",
            "Requests to the Kubernetes API server by verb, resource and status code",
            requests.clone(),
        );
        registry.register(
            "miracolix_watch_restarts",
            "Watches that listed their kind again after the first list (expired with 410 Gone, failed or dropped)",
            watch_restarts.clone(),
        );
        registry.register(
            "miracolix_watch_failures",
            "Errors of a watch (each followed by a retry with backoff)",
            watch_failures.clone(),
        );
        registry.register(
            "miracolix_reconcile_queue_depth",
            "DizSites whose reconcile was triggered by a change and has not started yet",
            queue_depth.clone(),
        );
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "miracolix_reconcile",
            "Reconciles by kind and result (ok or error)",
            reconciles.clone(),
        );
        registry.register(
            "miracolix_reconcile_errors",
            "Failed reconciles by kind and reason",
            errors.clone(),
        );
        registry.register(
            "miracolix_reconcile_duration_seconds",
            "Time spent in one reconcile",
            durations.clone(),
        );
        registry.register(
            "miracolix_site_renders",
            "DizSite reconciles that rendered and applied the site; the others found nothing the render reads changed and only computed the status",
            site_renders.clone(),
        );
        registry.register(
            "miracolix_site_ready",
            "1 when the DizSite's Ready condition is True, else 0",
            site_ready.clone(),
        );
        registry.register(
            "miracolix_site_release_info",
            "The ComponentRelease a DizSite currently runs (always 1)",
            site_release.clone(),
        );
        registry.register(
            "miracolix_feed_fetches",
            "Successful fetches of the release feed (`--feed-url`) by outcome (full or not-modified)",
            feed_fetches.clone(),
        );
        registry.register(
            "miracolix_feed_fetch_errors",
            "Failed fetches of the release feed by error (each followed by a retry with backoff)",
            feed_fetch_errors.clone(),
        );
        registry.register(
            "miracolix_feed_entries",
            "Entries of the release feed planned by outcome (applied, unchanged, not-verified, conflict, apply-failed), counted every round",
            feed_entries.clone(),
        );
        registry.register(
            "miracolix_feed_last_success_timestamp_seconds",
            "When the last round of the feed follower succeeded (Unix time; 0: never)",
            feed_last_success.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            reconciles,
            errors,
            durations,
            site_ready,
            site_release,
            requests,
            watch_restarts,
            watch_failures,
            queue_depth,
            site_renders,
            feed_fetches,
            feed_fetch_errors,
            feed_entries,
            feed_last_success,
            releases: Mutex::new(HashMap::new()),
        }))
    }

    /// Records one reconcile of `kind`; `error` is the failure's reason, `None` for success.
    pub fn reconciled(&self, kind: &str, took: Duration, error: Option<&str>) {
        let m = &self.0;
        let result = if error.is_some() { ERROR } else { OK };
        m.reconciles
            .get_or_create(&ResultLabels {
                kind: kind.to_string(),
                result: result.to_string(),
            })
            .inc();
        if let Some(reason) = error {
            m.errors
                .get_or_create(&ReasonLabels {
                    kind: kind.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
        m.durations
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// A DizSite reconcile rendered the site (see `controller::dizsite::last_applied`).
    pub fn site_rendered(&self) {
        self.0.site_renders.inc();
    }

    /// Records one request to the API server (`code` 0: no answer came).
    pub fn request(&self, verb: &str, resource: &str, code: u16) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    /// A watch of `kind` listed again after its first list.
    pub fn watch_restarted(&self, kind: &str) {
        self.0
            .watch_restarts
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A watch of `kind` failed (it is retried with backoff).
    pub fn watch_failed(&self, kind: &str) {
        self.0
            .watch_failures
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// How many sites wait for a triggered reconcile.
    pub fn queue_depth(&self, depth: usize) {
        self.0
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The feed was fetched: `full` or `not-modified`.
    pub fn feed_fetched(&self, outcome: &str) {
        self.0
            .feed_fetches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A fetch of the feed failed (`error`: [`crate::feed::fetch::FetchError::kind`]).
    pub fn feed_fetch_failed(&self, error: &str) {
        self.0
            .feed_fetch_errors
            .get_or_create(&ErrorLabels {
                error: error.to_string(),
            })
            .inc();
    }

    /// One entry of the feed was planned with this outcome.
    pub fn feed_entry(&self, outcome: &str) {
        self.0
            .feed_entries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A round of the feed follower succeeded at `unix_seconds`.
    pub fn feed_succeeded(&self, unix_seconds: i64) {
        self.0.feed_last_success.set(unix_seconds);
    }

    /// Requests made so far by verb, summed over resources and codes (for the benchmark).
    pub fn requests_by_verb(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for line in self.render().lines() {
            let Some(rest) = line.strip_prefix("miracolix_api_requests_total{") else {
                continue;
            };
            let verb = rest
                .split("verb=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string();
            let n: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            *out.entry(verb).or_insert(0) += n;
        }
        out
    }

    /// Sets a site's readiness and current release (`None`: none installed yet).
    pub fn site(&self, namespace: &str, site: &str, ready: bool, release: Option<&str>) {
        let m = &self.0;
        m.site_ready
            .get_or_create(&site_labels(namespace, site))
            .set(i64::from(ready));
        let key = (namespace.to_string(), site.to_string());
        let mut releases = m.releases.lock().unwrap_or_else(|p| p.into_inner());
        let old = releases.get(&key).cloned();
        if old.as_deref() == release {
            return;
        }
        if let Some(old) = old {
            m.site_release
                .remove(&release_labels(namespace, site, &old));
            releases.remove(&key);
        }
        if let Some(new) = release {
            m.site_release
                .get_or_create(&release_labels(namespace, site, new))
                .set(1);
            releases.insert(key, new.to_string());
        }
    }

    /// Drops every series of a deleted site, so dashboards do not show it as not ready forever.
    pub fn forget_site(&self, namespace: &str, site: &str) {
        let m = &self.0;
        m.site_ready.remove(&site_labels(namespace, site));
        let key = (namespace.to_string(), site.to_string());
        let mut releases = m.releases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = releases.remove(&key) {
            m.site_release
                .remove(&release_labels(namespace, site, &old));
        }
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only mean a bug in a label
        // set, and a partial page is more useful to a scraper than none.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry)
        {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

fn site_labels(namespace: &str, site: &str) -> SiteLabels {
    SiteLabels {
        namespace: namespace.to_string(),
        site: site.to_string(),
    }
}

fn release_labels(namespace: &str, site: &str, release: &str) -> ReleaseLabels {
    ReleaseLabels {
        namespace: namespace.to_string(),
        site: site.to_string(),
        release: release.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(m: &Metrics) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn reconcile_counters_and_histogram_carry_kind_result_and_reason() {
        let m = Metrics::new();
        m.reconciled("DizSite", Duration::from_millis(20), None);
        m.reconciled("DizSite", Duration::from_millis(3), Some("ApplyFailed"));
        m.reconciled("ComponentRelease", Duration::from_millis(1), None);
        let text = m.render();
        for want in [
            "# TYPE miracolix_reconcile_total counter",
            "# TYPE miracolix_reconcile_errors_total counter",
            "# TYPE miracolix_reconcile_duration_seconds histogram",
            "miracolix_reconcile_total{kind=\"DizSite\",result=\"ok\"} 1",
            "miracolix_reconcile_total{kind=\"DizSite\",result=\"error\"} 1",
            "miracolix_reconcile_total{kind=\"ComponentRelease\",result=\"ok\"} 1",
            "miracolix_reconcile_errors_total{kind=\"DizSite\",reason=\"ApplyFailed\"} 1",
            "miracolix_reconcile_duration_seconds_count{kind=\"DizSite\"} 2",
            "miracolix_reconcile_duration_seconds_bucket{kind=\"DizSite\",le=\"0.005\"} 1",
            "miracolix_reconcile_duration_seconds_bucket{kind=\"DizSite\",le=\"0.025\"} 2",
            "miracolix_reconcile_duration_seconds_bucket{kind=\"DizSite\",le=\"+Inf\"} 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("ComponentRelease\",reason"), "{text}");
    }

    #[test]
    fn site_release_info_moves_with_the_release_and_goes_with_the_site() {
        let m = Metrics::new();
        m.site("diz", "marburg", false, None);
        assert!(
            lines(&m)
                .contains(&"miracolix_site_ready{namespace=\"diz\",site=\"marburg\"} 0".into())
        );
        assert!(!m.render().contains("miracolix_site_release_info{"));

        m.site("diz", "marburg", true, Some("r-2026.1"));
        m.site("diz", "marburg", true, Some("r-2026.1"));
        m.site("diz", "dresden", true, Some("r-2026.1"));
        let l = lines(&m);
        assert!(l.contains(&"miracolix_site_ready{namespace=\"diz\",site=\"marburg\"} 1".into()));
        assert!(l.contains(
            &"miracolix_site_release_info{namespace=\"diz\",site=\"marburg\",release=\"r-2026.1\"} 1"
                .into()
        ));

        m.site("diz", "marburg", true, Some("r-2026.2"));
        let text = m.render();
        assert!(text.contains("# TYPE miracolix_site_ready gauge"), "{text}");
        assert!(
            text.contains("# TYPE miracolix_site_release_info gauge"),
            "{text}"
        );
        assert!(
            text.contains("site=\"marburg\",release=\"r-2026.2\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("site=\"marburg\",release=\"r-2026.1\""),
            "{text}"
        );
        assert!(
            text.contains("site=\"dresden\",release=\"r-2026.1\"} 1"),
            "{text}"
        );

        m.forget_site("diz", "marburg");
        let text = m.render();
        assert!(!text.contains("marburg"), "{text}");
        assert!(text.contains("dresden"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.reconciled("DizSite", Duration::ZERO, Some("a\"b"));
        assert!(m.render().contains("reason=\"a\\\"b\""), "{}", m.render());
    }

    #[test]
    fn clones_share_one_registry() {
        let m = Metrics::new();
        m.clone().reconciled("DizSite", Duration::ZERO, None);
        assert!(m.render().contains("result=\"ok\"} 1"));
    }
}
