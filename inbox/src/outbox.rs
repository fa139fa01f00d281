//! What a state change sends (pure [`plan_change`]), and delivering the outbox: the signed
//! decision to the central office and the notifications, each retried with exponential backoff
//! until delivered, and never delivered twice (the row is marked delivered in the store; the
//! receiver also gets the row's key as `Idempotency-Key`, so a crash between sending and marking
//! cannot make it act twice).

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};

use crate::client::HttpClient;
use crate::config::InboxConfig;
use crate::notify::{self, Event, Notifier};
use crate::proposal::seal;
use crate::store::{Change, DECISION_CHANNEL, OutboxItem, Pending, Store};
use crate::workflow::State;

/// The decision sent to `decisions.url`, as the signed envelope's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    pub proposal_id: String,
    pub site_id: String,
    pub organization_identifier: String,
    pub state: State,
    pub decided_at: DateTime<Utc>,
    /// The UAC's conditions (conditional approval) or the reasons (decline, exclusion).
    #[serde(default)]
    pub texts: Vec<String>,
    /// With an approval: how many patients' data the site promises to deliver, as the DIZ
    /// check recorded it (the MII portal's `dataAmount`). Absent with a decline or exclusion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_amount: Option<u64>,
    /// The same as the `Idempotency-Key` header.
    pub idempotency_key: String,
}

pub fn decision_key(site: &str, id: &str, state: State) -> String {
    format!("decision:{site}:{id}:{}", state.as_str())
}

/// The outbox rows a change causes: the decision when the new state is reported to the central
/// office, and a notification per target that wants the event.
pub fn plan_change(config: &InboxConfig, change: &Change) -> Vec<OutboxItem> {
    let record = &change.record;
    let mut items = Vec::new();
    if record.state.is_reported() {
        let key = decision_key(&config.site_id, &record.proposal.id, record.state);
        let decision = Decision {
            proposal_id: record.proposal.id.clone(),
            site_id: config.site_id.clone(),
            organization_identifier: config.decisions.organization_identifier.clone(),
            state: record.state,
            decided_at: change.at,
            texts: change.texts.clone(),
            data_amount: record.data_amount.filter(|_| record.state.is_approval()),
            idempotency_key: key.clone(),
        };
        if let Ok(body) = serde_json::to_string(&decision) {
            items.push(OutboxItem {
                key,
                channel: DECISION_CHANNEL.into(),
                body,
            });
        }
    }
    let event = notify::event_of(change);
    let body = notify::message(
        config,
        event,
        &record.proposal.id,
        &record.proposal.title,
        record.state.as_str(),
        &record.deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    items.extend(notify::plan(
        config,
        event,
        &format!("{}:{}", record.proposal.id, record.state.as_str()),
        &body,
    ));
    items
}

/// Reminder rows for open proposals close to their deadline (keyed per proposal: once each).
pub fn plan_reminders(
    config: &InboxConfig,
    records: &[crate::store::Record],
    now: DateTime<Utc>,
) -> Vec<OutboxItem> {
    records
        .iter()
        .filter(|r| crate::workflow::reminder_due(r.state, r.received_at, r.deadline, now))
        .flat_map(|r| {
            let body = notify::message(
                config,
                Event::DeadlineApproaching,
                &r.proposal.id,
                &r.proposal.title,
                r.state.as_str(),
                &r.deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            notify::plan(config, Event::DeadlineApproaching, &r.proposal.id, &body)
        })
        .collect()
}

/// Wait before the next attempt after `attempts` failures: 5 s doubling, at most an hour.
pub fn backoff(attempts: u32) -> Duration {
    let seconds = 5i64.saturating_mul(1i64 << attempts.min(20));
    Duration::seconds(seconds.min(3600))
}

/// Delivers due outbox rows.
pub struct Deliverer {
    http: HttpClient,
    decisions_url: String,
    site_id: String,
    key: Arc<Ed25519KeyPair>,
    notifier: Notifier,
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

impl Deliverer {
    pub fn new(
        config: &InboxConfig,
        http: HttpClient,
        key: Arc<Ed25519KeyPair>,
        notifier: Notifier,
    ) -> Self {
        Self {
            http,
            decisions_url: config.decisions.url.clone(),
            site_id: config.site_id.clone(),
            key,
            notifier,
        }
    }

    async fn send(&self, item: &Pending) -> Result<(), String> {
        if item.channel != DECISION_CHANNEL {
            return self
                .notifier
                .send(&item.channel, &item.key, &item.body)
                .await;
        }
        // The site's key id is its site id: the central office pins one key per site.
        let envelope = seal(&self.key, &self.site_id, item.body.as_bytes());
        let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        let (status, answer) = self
            .http
            .send(
                hyper::Method::POST,
                &self.decisions_url,
                &[
                    ("content-type", "application/json".into()),
                    ("idempotency-key", item.key.clone()),
                ],
                body,
            )
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&answer);
            Err(format!(
                "decision target answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    }

    /// Sends every due row once. The store lock is not held while sending.
    pub async fn round(
        &self,
        store: &std::sync::Mutex<Box<dyn Store>>,
        now: DateTime<Utc>,
    ) -> Round {
        let lock = || store.lock().unwrap_or_else(|p| p.into_inner());
        let due = match lock().due(now) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return Round::default();
            }
        };
        let mut round = Round::default();
        for item in due {
            let result = self.send(&item).await;
            let recorded = match &result {
                Ok(()) => {
                    round.delivered += 1;
                    lock().delivered(&item.key, &item.channel, now)
                }
                Err(error) => {
                    round.failed += 1;
                    tracing::warn!(key = %item.key, channel = %item.channel, attempts = item.attempts + 1, %error, "delivery failed; retrying later");
                    lock().failed(
                        &item.key,
                        &item.channel,
                        error,
                        now + backoff(item.attempts),
                    )
                }
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, key = %item.key, "cannot record the delivery");
            }
        }
        round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let seconds: Vec<i64> = (0..12).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(
            seconds,
            vec![5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff(u32::MAX).num_seconds(), 3600);
    }
}
