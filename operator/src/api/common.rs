//! Types shared by several kinds.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Release channels. A DizSite that follows a channel moves to the newest certified release on it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Certified for productive use at every site.
    Stable,
    /// Certified for pilot sites before it is promoted to stable.
    Candidate,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Candidate => "candidate",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to an object by name in the same namespace as the referring resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct LocalObjectRef {
    /// Name of the object.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("must be the name of an object: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key in a Secret in the same namespace. Secrets are only ever referenced, never inlined in a spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// When a site accepts disruptive changes such as release upgrades.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// When the window opens, as a five-field cron expression (minute hour day-of-month month
    /// day-of-week), e.g. `0 2 * * 6` for Saturdays at 02:00.
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*(\\\\S+\\\\s+){4}\\\\S+\\\\s*$') && self.matches('^[0-9*/,\\\\- A-Za-z]+$')").message("schedule must be a five-field cron expression such as '0 2 * * 6' (minute hour day-of-month month day-of-week)"))]
    #[x_kube(validation = Rule::new(super::rules::cron_field_rule(0)).message(Message::Message(super::rules::cron_field_message(0))))]
    #[x_kube(validation = Rule::new(super::rules::cron_field_rule(1)).message(Message::Message(super::rules::cron_field_message(1))))]
    #[x_kube(validation = Rule::new(super::rules::cron_field_rule(2)).message(Message::Message(super::rules::cron_field_message(2))))]
    #[x_kube(validation = Rule::new(super::rules::cron_field_rule(3)).message(Message::Message(super::rules::cron_field_message(3))))]
    #[x_kube(validation = Rule::new(super::rules::cron_field_rule(4)).message(Message::Message(super::rules::cron_field_message(4))))]
    #[schemars(length(min = 9, max = 100))]
    pub schedule: String,
    /// How long the window stays open, e.g. `2h` or `1h30m`.
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(h|m|s))+$')").message("duration must look like 30m, 2h or 1h30m"))]
    #[x_kube(validation = Rule::new(super::rules::NONZERO_DURATION).message("duration must be longer than zero: a window of length zero never opens, and upgrades would wait for it forever"))]
    #[schemars(length(min = 2, max = 20))]
    pub duration: String,
    /// IANA time zone the schedule is read in (case-sensitive, as listed in the tz database).
    #[serde(default = "default_time_zone")]
    #[x_kube(validation = Rule::new(super::rules::time_zone_rule()).message("timeZone must be an IANA time zone such as Europe/Berlin or UTC, spelt exactly as in the tz database (names are case-sensitive)"))]
    #[schemars(length(min = 3, max = 64))]
    pub time_zone: String,
}

pub fn default_time_zone() -> String {
    "Europe/Berlin".to_string()
}
