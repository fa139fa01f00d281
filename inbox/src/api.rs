//! JSON shapes of the inbox's API that other programs read: the summary the controller turns into
//! the ProposalInbox's status (`GET /api/v1/summary` on the ops port).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Counts only: no proposal id, title or content (the ops port is unauthenticated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Proposals per state; every state is listed, with 0 when empty.
    pub counts: BTreeMap<String, u64>,
    /// Open proposals past their review deadline.
    pub overdue: u64,
    pub last_decision_at: Option<DateTime<Utc>>,
    /// One entry per configured notification target, in config order.
    pub notifications: Vec<ChannelSummary>,
    /// Delivery of the decisions to `decisions.url` (an addition to the agreed interface).
    #[serde(default)]
    pub decisions: DecisionDelivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSummary {
    pub name: String,
    /// Failed attempts since the inbox's database was created.
    pub failures: u64,
    /// The last attempt's error; null once an attempt succeeded.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionDelivery {
    /// Decisions queued and not yet accepted by the target.
    pub pending: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}
