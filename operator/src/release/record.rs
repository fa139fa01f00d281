//! The rollout record: what the operator last applied to a site, kept in the cluster next to
//! the workloads (ConfigMap `<site>-rollout`, owned by the DizSite), not in the DizSite status.
//!
//! # Why not the status
//!
//! Anyone allowed to write `dizsites/status` could otherwise claim that a site runs an older
//! or an uncertified release, or that an upgrade to some release is in flight, and the operator
//! would deploy it. The record is written by the operator before it applies the workloads, so it
//! is always at least as new as what runs; the status only reports it. Whoever can forge the
//! record can also edit the site's Deployments directly, so it protects against exactly the
//! principals the status cannot.
//!
//! # Why it carries the signed content
//!
//! A release is identified by its content (fingerprint), and a ComponentRelease object can be
//! deleted or recreated with other content under the same name. The record keeps the signed
//! spec of the release that runs and, during an upgrade, of the one it replaced, so the site can
//! still be re-applied or rolled back to exactly that content. A copy is self-authenticating:
//! it is used only when its signature verifies with the trusted keys and its fingerprint is the
//! one the record names.
//!
//! # Layout (ConfigMap data)
//!
//! ```text
//! release: miracolix-2026.2                  the release that was applied (name when applied)
//! fingerprint: <64 hex>                      its fingerprint
//! upgradeStarted: 2026-02-03T01:30:00Z       while an upgrade (or first install) is in flight
//! upgradeFrom: miracolix-2026.1              ... and what it replaced (absent: first install)
//! upgradeFromFingerprint: <64 hex>
//! content-<fingerprint>.json: {...}          the signed spec of each release named above
//! ```

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::canonical::is_fingerprint;
use crate::api::ComponentReleaseSpec;

/// Suffix of the record's ConfigMap name after the DizSite's name.
pub const RECORD_SUFFIX: &str = "-rollout";

const RELEASE: &str = "release";
const FINGERPRINT: &str = "fingerprint";
const STARTED: &str = "upgradeStarted";
const FROM: &str = "upgradeFrom";
const FROM_FINGERPRINT: &str = "upgradeFromFingerprint";
const CONTENT_PREFIX: &str = "content-";
const CONTENT_SUFFIX: &str = ".json";

/// The record's ConfigMap name for a site.
pub fn record_name(site: &str) -> String {
    format!("{site}{RECORD_SUFFIX}")
}

/// A release as a site refers to it: by name for people, by fingerprint for identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReleaseId {
    pub name: String,
    /// Empty only in a status written before fingerprints were recorded.
    pub fingerprint: String,
}

impl ReleaseId {
    pub fn new(name: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fingerprint: fingerprint.into(),
        }
    }

    /// `name (fingerprint prefix)`, for messages.
    pub fn describe(&self) -> String {
        if self.fingerprint.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, short(&self.fingerprint))
        }
    }
}

/// The first 12 hex digits of a fingerprint, enough for people to tell releases apart.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

/// An upgrade (or first install) that has been applied but has not yet become ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// What ran before; `None` for a first install (nothing to roll back to).
    pub from: Option<ReleaseId>,
    pub started: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The release applied last (during an upgrade: the target).
    pub running: ReleaseId,
    pub upgrade: Option<InFlight>,
    /// Signed specs by fingerprint, as JSON.
    pub contents: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the rollout record has no {0}")]
    Missing(&'static str),
    #[error("the rollout record's {key} is {value:?}, not a fingerprint")]
    BadFingerprint { key: &'static str, value: String },
    #[error("the rollout record's upgradeStarted {0:?} is not an RFC 3339 time")]
    BadTime(String),
}

impl Record {
    /// The record of a site that runs `spec` (under `name`) with no upgrade in flight.
    pub fn running(name: &str, spec: &ComponentReleaseSpec) -> Self {
        // As the plan fingerprints a release: in the format its signatures declare.
        let fingerprint =
            super::plan::fingerprint(spec, super::plan::declared_format(spec)).unwrap_or_default();
        Self {
            running: ReleaseId::new(name, fingerprint.clone()),
            upgrade: None,
            contents: BTreeMap::from([(fingerprint, content_json(spec))]),
        }
    }

    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert(RELEASE.to_string(), self.running.name.clone());
        data.insert(FINGERPRINT.to_string(), self.running.fingerprint.clone());
        if let Some(upgrade) = &self.upgrade {
            data.insert(STARTED.to_string(), upgrade.started.to_string());
            if let Some(from) = &upgrade.from {
                data.insert(FROM.to_string(), from.name.clone());
                data.insert(FROM_FINGERPRINT.to_string(), from.fingerprint.clone());
            }
        }
        for (fingerprint, json) in &self.contents {
            data.insert(
                format!("{CONTENT_PREFIX}{fingerprint}{CONTENT_SUFFIX}"),
                json.clone(),
            );
        }
        data
    }

    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, RecordError> {
        let get = |key: &'static str| data.get(key).ok_or(RecordError::Missing(key));
        let fingerprint = |key: &'static str| {
            let value = get(key)?;
            if is_fingerprint(value) {
                Ok(value.clone())
            } else {
                Err(RecordError::BadFingerprint {
                    key,
                    value: value.clone(),
                })
            }
        };
        let running = ReleaseId::new(get(RELEASE)?.clone(), fingerprint(FINGERPRINT)?);
        let upgrade = match data.get(STARTED) {
            None => None,
            Some(t) => Some(InFlight {
                started: t.parse().map_err(|_| RecordError::BadTime(t.clone()))?,
                from: match data.get(FROM) {
                    None => None,
                    Some(name) => {
                        Some(ReleaseId::new(name.clone(), fingerprint(FROM_FINGERPRINT)?))
                    }
                },
            }),
        };
        let contents = data
            .iter()
            .filter_map(|(k, v)| {
                let fp = k
                    .strip_prefix(CONTENT_PREFIX)?
                    .strip_suffix(CONTENT_SUFFIX)?;
                is_fingerprint(fp).then(|| (fp.to_string(), v.clone()))
            })
            .collect();
        Ok(Self {
            running,
            upgrade,
            contents,
        })
    }

    /// The recorded copy of a release's signed spec, if it is there and parses. The caller
    /// verifies its signature and fingerprint before trusting it.
    pub fn content(&self, fingerprint: &str) -> Option<ComponentReleaseSpec> {
        serde_json::from_str(self.contents.get(fingerprint)?).ok()
    }
}

/// A signed spec as the record stores it.
pub fn content_json(spec: &ComponentReleaseSpec) -> String {
    serde_json::to_string(spec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_record() {
        let fp = |c: char| c.to_string().repeat(64);
        let record = Record {
            running: ReleaseId::new("r2", fp('b')),
            upgrade: Some(InFlight {
                from: Some(ReleaseId::new("r1", fp('a'))),
                started: "2026-02-03T01:30:00Z".parse().expect("time"),
            }),
            contents: [(fp('a'), "{}".to_string()), (fp('b'), "{}".to_string())].into(),
        };
        let data = record.to_data();
        assert_eq!(data.get("upgradeFrom").map(String::as_str), Some("r1"));
        assert_eq!(Record::from_data(&data), Ok(record));

        let mut bad = data.clone();
        bad.insert("fingerprint".into(), "latest".into());
        assert!(matches!(
            Record::from_data(&bad),
            Err(RecordError::BadFingerprint { .. })
        ));
        let mut bad = data;
        bad.remove("release");
        assert_eq!(
            Record::from_data(&bad),
            Err(RecordError::Missing("release"))
        );
    }
}
