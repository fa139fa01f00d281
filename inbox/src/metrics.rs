//! Prometheus metrics of the inbox (the same client library as the operator and the gate). No
//! label carries proposal content; ids and titles stay out.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    outcome: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    intake: Family<OutcomeLabels, Counter>,
    actions: Family<OutcomeLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let intake = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "miracolix_inbox_intake",
            "Proposals posted by the central office by outcome (created, repeated, conflict, malformed, unauthenticated, not-addressed)",
            intake.clone(),
        );
        let actions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "miracolix_inbox_actions",
            "DIZ checks, votes and condition answers by outcome (done, forbidden, illegal, invalid)",
            actions.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "miracolix_inbox_deliveries",
            "Outbox delivery attempts (decisions and notifications) by channel and outcome (delivered, failed)",
            deliveries.clone(),
        );
        Self {
            registry: Arc::new(registry),
            intake,
            actions,
            deliveries,
        }
    }
}

impl Metrics {
    pub fn intake(&self, outcome: &str) {
        self.intake
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn action(&self, outcome: &str) {
        self.actions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn delivery(&self, channel: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
