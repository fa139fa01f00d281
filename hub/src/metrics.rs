//! Prometheus metrics of the hub (the same client library as the operator and the gate). No
//! label carries a count or a value a caller chose freely: refused reports are counted by reason
//! only, not by the site id they claim.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Names and help texts, also listed in docs/consortium.md.
pub const METRICS: [(&str, &str); 5] = [
    (
        "miracolix_hub_reports",
        "Site reports by outcome (accepted, duplicate, malformed, unknown-site, unknown-key, bad-signature, stale, replayed, store-error)",
    ),
    (
        "miracolix_hub_feed_entries",
        "Entries the feed serves now, by kind (release, revocation)",
    ),
    (
        "miracolix_hub_feed_refused_entries",
        "Files of the feed directory left out because they do not verify, by reason",
    ),
    (
        "miracolix_hub_feed_loads",
        "Loads of the feed directory by outcome (ok, error: the last good feed stays served)",
    ),
    (
        "miracolix_hub_feed_requests",
        "Feed requests by answer (full, not-modified)",
    ),
];

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reports: Family<OutcomeLabels, Counter>,
    feed_entries: Family<KindLabels, Gauge>,
    feed_refused: Family<ReasonLabels, Gauge>,
    feed_loads: Family<OutcomeLabels, Counter>,
    feed_requests: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reports = Family::<OutcomeLabels, Counter>::default();
        let feed_entries = Family::<KindLabels, Gauge>::default();
        let feed_refused = Family::<ReasonLabels, Gauge>::default();
        let feed_loads = Family::<OutcomeLabels, Counter>::default();
        let feed_requests = Family::<OutcomeLabels, Counter>::default();
        let [r, e, f, l, q] = METRICS;
        registry.register(r.0, r.1, reports.clone());
        registry.register(e.0, e.1, feed_entries.clone());
        registry.register(f.0, f.1, feed_refused.clone());
        registry.register(l.0, l.1, feed_loads.clone());
        registry.register(q.0, q.1, feed_requests.clone());
        Self {
            registry: Arc::new(registry),
            reports,
            feed_entries,
            feed_refused,
            feed_loads,
            feed_requests,
        }
    }
}

impl Metrics {
    pub fn report(&self, outcome: &str) {
        self.reports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// After a load: what the feed serves and what it left out (gauges: the current feed).
    pub fn feed_loaded(&self, releases: usize, revocations: usize, refused: &[&str]) {
        self.feed_loads
            .get_or_create(&OutcomeLabels {
                outcome: "ok".into(),
            })
            .inc();
        for (kind, n) in [("release", releases), ("revocation", revocations)] {
            self.feed_entries
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(n as i64);
        }
        self.feed_refused.clear();
        for reason in refused {
            self.feed_refused
                .get_or_create(&ReasonLabels {
                    reason: (*reason).to_string(),
                })
                .inc();
        }
    }

    pub fn feed_load_failed(&self) {
        self.feed_loads
            .get_or_create(&OutcomeLabels {
                outcome: "error".into(),
            })
            .inc();
    }

    pub fn feed_request(&self, answer: &str) {
        self.feed_requests
            .get_or_create(&OutcomeLabels {
                outcome: answer.into(),
            })
            .inc();
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
