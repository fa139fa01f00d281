//! Prometheus metrics of the gate (the same client library as the operator). No label carries a
//! count or a query; `requester` is the authenticated caller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    requester: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequesterLabels {
    requester: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    queries: Family<OutcomeLabels, Counter>,
    epsilon: Family<RequesterLabels, Counter<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let queries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "miracolix_gate_queries",
            "Feasibility queries by requester and outcome (released, cached, rate-limited, over-budget, bad-query, executor-error, unauthenticated, forbidden)",
            queries.clone(),
        );
        let epsilon = Family::<RequesterLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "miracolix_gate_epsilon_spent",
            "Privacy budget (sum of epsilon) spent by requester since the gate started",
            epsilon.clone(),
        );
        Self {
            registry: Arc::new(registry),
            queries,
            epsilon,
        }
    }
}

impl Metrics {
    pub fn query(&self, requester: &str, outcome: &str) {
        self.queries
            .get_or_create(&OutcomeLabels {
                requester: requester.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn spent(&self, requester: &str, epsilon: f64) {
        self.epsilon
            .get_or_create(&RequesterLabels {
                requester: requester.to_string(),
            })
            .inc_by(epsilon);
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
