//! What the follower does with each entry of a fetched feed, and when it fetches again. Pure:
//! no client, no clock.
//!
//! Rules for one entry, in order (the first that applies wins):
//! 1. **Malformed**: not a ComponentRelease or ReleaseRevocation the operator can read (no name,
//!    a spec that does not parse) → skipped, Warning Event `FeedEntryNotVerified`.
//! 2. **Duplicate**: a second entry of the same kind and name in one feed → skipped the same way
//!    (the first one counts; a feed never needs two).
//! 3. **Not verified**: its signatures do not verify with the operator's trusted keys (tampered,
//!    unsigned, unknown key, below the threshold) → skipped, Warning Event
//!    `FeedEntryNotVerified`. The hub checked it too, but the operator trusts only its keys.
//! 4. **Conflict**: an object of that kind and name exists and does not carry [`FEED_LABEL`]
//!    (someone created it by hand or with GitOps) → never overwritten, Warning Event
//!    `FeedEntryConflict`.
//! 5. **Unchanged**: the feed's object exists with the same labels, annotations and spec → no
//!    write.
//! 6. Otherwise **apply** (server-side apply, not forced).
//!
//! The follower never deletes: an entry that leaves the feed leaves its object in place (a
//! release is withdrawn by a signed ReleaseRevocation, which every site honours).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ComponentRelease, ReleaseRevocation};
use crate::controller::certification::{Certifier, NotCertified};

/// Label on every object the follower creates; its value names the feed (the URL's host).
/// Objects without it are never written by the follower.
pub const FEED_LABEL: &str = "diz.miracum.org/feed";
/// Annotation with the feed's full URL on every object the follower creates.
pub const FEED_URL_ANNOTATION: &str = "diz.miracum.org/feed-url";

/// Which kind an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Release,
    Revocation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Release => "ComponentRelease",
            Kind::Revocation => "ReleaseRevocation",
        }
    }
}

/// One entry, read and checked against the trusted keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    /// `metadata.name` (empty when it has none).
    pub name: String,
    /// The object to apply, when the entry could be read: apiVersion, kind, name, the entry's
    /// labels and annotations plus the feed's, and the spec as the operator read (and verified)
    /// it.
    pub object: Result<Value, String>,
    /// The certification verdict (`Ok` when its signatures verify).
    pub verdict: Result<(), NotCertified>,
}

/// What the cluster holds under an entry's kind and name.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// Whether it carries [`FEED_LABEL`] (created by a feed follower).
    pub from_feed: bool,
    /// Its labels, annotations and spec, for the unchanged check.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: Value,
}

/// What to do with one entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Apply,
    Unchanged,
    /// Not applied; `reason` is the verdict's (e.g. `BadSignature`) or `Malformed`/`Duplicate`.
    NotVerified {
        reason: String,
        message: String,
    },
    Conflict,
}

impl Decision {
    /// The `outcome` label of `miracolix_feed_entries_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Decision::Apply => "applied",
            Decision::Unchanged => "unchanged",
            Decision::NotVerified { .. } => "not-verified",
            Decision::Conflict => "conflict",
        }
    }
}

/// Reads and verifies one manifest of the feed. `feed` is the label value and `url` the
/// annotation the applied object carries.
pub fn examine(
    kind: Kind,
    manifest: &Value,
    certifier: &dyn Certifier,
    feed: &str,
    url: &str,
) -> Entry {
    let name = manifest
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let not_read = |message: String| Entry {
        kind,
        name: name.clone(),
        object: Err(message.clone()),
        verdict: Err(NotCertified {
            reason: "Malformed".to_string(),
            message,
        }),
    };
    if name.is_empty() {
        return not_read(format!("a {} without metadata.name", kind.as_str()));
    }
    if manifest.get("kind").and_then(Value::as_str) != Some(kind.as_str()) {
        return not_read(format!(
            "{name}: listed as a {} but its kind is {}",
            kind.as_str(),
            manifest.get("kind").unwrap_or(&Value::Null)
        ));
    }
    let (spec, verdict) = match kind {
        Kind::Release => match serde_json::from_value::<ComponentRelease>(manifest.clone()) {
            Ok(r) => (
                serde_json::to_value(&r.spec),
                certifier.verdict(&r.spec).map(|_| ()),
            ),
            Err(e) => return not_read(format!("{name}: not a ComponentRelease: {e}")),
        },
        Kind::Revocation => match serde_json::from_value::<ReleaseRevocation>(manifest.clone()) {
            Ok(r) => (
                serde_json::to_value(&r.spec),
                certifier.revocation_verdict(&r.spec).map(|_| ()),
            ),
            Err(e) => return not_read(format!("{name}: not a ReleaseRevocation: {e}")),
        },
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return not_read(format!("{name}: {e}")),
    };
    let mut labels = string_map(manifest.pointer("/metadata/labels"));
    labels.insert(FEED_LABEL.to_string(), feed.to_string());
    let mut annotations = string_map(manifest.pointer("/metadata/annotations"));
    annotations.insert(FEED_URL_ANNOTATION.to_string(), url.to_string());
    Entry {
        kind,
        name: name.clone(),
        object: Ok(json!({
            "apiVersion": "diz.miracum.org/v1alpha1",
            "kind": kind.as_str(),
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": spec,
        })),
        verdict,
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The decision for every entry, in feed order.
pub fn plan(entries: &[Entry], live: &BTreeMap<(Kind, String), Live>) -> Vec<Decision> {
    let mut seen = BTreeSet::new();
    entries
        .iter()
        .map(|e| {
            let object = match &e.object {
                Ok(o) => o,
                Err(message) => {
                    return Decision::NotVerified {
                        reason: "Malformed".into(),
                        message: message.clone(),
                    };
                }
            };
            if !seen.insert((e.kind, e.name.clone())) {
                return Decision::NotVerified {
                    reason: "Duplicate".into(),
                    message: format!(
                        "{} {} is in the feed more than once; the first one counts",
                        e.kind.as_str(),
                        e.name
                    ),
                };
            }
            if let Err(n) = &e.verdict {
                return Decision::NotVerified {
                    reason: n.reason.clone(),
                    message: n.message.clone(),
                };
            }
            match live.get(&(e.kind, e.name.clone())) {
                Some(l) if !l.from_feed => Decision::Conflict,
                Some(l) if unchanged(object, l) => Decision::Unchanged,
                _ => Decision::Apply,
            }
        })
        .collect()
}

/// Whether the live object already has everything the entry would apply (other labels and
/// annotations, set by others, may be there too).
fn unchanged(object: &Value, live: &Live) -> bool {
    let subset = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    subset(
        &string_map(object.pointer("/metadata/labels")),
        &live.labels,
    ) && subset(
        &string_map(object.pointer("/metadata/annotations")),
        &live.annotations,
    ) && object.get("spec") == Some(&live.spec)
}

/// The first retry after a failed fetch.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// Retries never wait longer than this, however long the interval.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// How long to wait before the next fetch: the interval after a success; after `failures`
/// failed rounds in a row, 10 s doubling up to 5 minutes, and never longer than the interval
/// (a follower asked to look every minute does not wait five while the hub is down).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let doubled = FIRST_RETRY.saturating_mul(1u32 << (failures - 1).min(16));
    doubled
        .min(MAX_RETRY)
        .min(interval.max(Duration::from_secs(1)))
}

/// The feed's name in [`FEED_LABEL`]: the URL's host (and port), made a valid label value
/// (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn feed_id(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let cleaned: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "feed".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::certification::Certified;

    /// Certifies a spec whose `version` (release) or `reason` (revocation) is not "forged".
    struct ByContent;
    impl Certifier for ByContent {
        fn verdict(&self, r: &crate::api::ComponentReleaseSpec) -> Result<Certified, NotCertified> {
            if r.version == "forged" {
                Err(NotCertified {
                    reason: "BadSignature".into(),
                    message: "signature does not match".into(),
                })
            } else {
                Ok(Certified {
                    key_ids: vec!["k".into()],
                    format: crate::api::ReleaseFormat::V2,
                })
            }
        }
        fn revocation_verdict(
            &self,
            r: &crate::api::ReleaseRevocationSpec,
        ) -> Result<Certified, NotCertified> {
            if r.reason == "forged" {
                Err(NotCertified {
                    reason: "Unsigned".into(),
                    message: "no signature".into(),
                })
            } else {
                Ok(Certified {
                    key_ids: vec!["k".into()],
                    format: crate::api::ReleaseFormat::V2,
                })
            }
        }
    }

    fn release(name: &str, version: &str) -> Value {
        let mut r: Value = crate::yaml::from_multi_doc::<Value>(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../examples/10-release-miracolix-2026.1.yaml"),
            )
            .expect("example"),
        )
        .expect("yaml")
        .remove(0);
        r["metadata"] = json!({"name": name, "labels": {"channel": "stable"}});
        r["spec"]["version"] = json!(version);
        r
    }

    fn revocation(name: &str, reason: &str) -> Value {
        json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "ReleaseRevocation",
            "metadata": {"name": name},
            "spec": {"fingerprints": ["a".repeat(64)], "reason": reason}})
    }

    fn entry(kind: Kind, manifest: &Value) -> Entry {
        examine(
            kind,
            manifest,
            &ByContent,
            "hub.example",
            "https://hub.example/feed/v1",
        )
    }

    fn live_of(e: &Entry, from_feed: bool) -> ((Kind, String), Live) {
        let o = e.object.as_ref().expect("object");
        (
            (e.kind, e.name.clone()),
            Live {
                from_feed,
                labels: string_map(o.pointer("/metadata/labels")),
                annotations: string_map(o.pointer("/metadata/annotations")),
                spec: o["spec"].clone(),
            },
        )
    }

    #[test]
    fn each_rule_of_the_chain_decides_one_row() {
        let ok = entry(Kind::Release, &release("r-1", "2026.1"));
        let forged = entry(Kind::Release, &release("r-2", "forged"));
        let nameless = entry(
            Kind::Release,
            &json!({"kind": "ComponentRelease", "spec": {}}),
        );
        let wrong_kind = entry(Kind::Release, &revocation("x", "CVE"));
        let unreadable = entry(
            Kind::Release,
            &json!({"kind": "ComponentRelease", "metadata": {"name": "bad"}, "spec": {"version": 3}}),
        );
        let rev = entry(Kind::Revocation, &revocation("rev", "CVE"));
        let forged_rev = entry(Kind::Revocation, &revocation("rev-2", "forged"));
        let hand_made = entry(Kind::Release, &release("r-3", "2026.3"));
        let current = entry(Kind::Release, &release("r-4", "2026.4"));
        let stale = entry(Kind::Release, &release("r-5", "2026.5"));
        let mut stale_live = live_of(&stale, true);
        stale_live.1.spec["version"] = json!("older");
        let mut relabelled = live_of(&current, true);
        relabelled
            .1
            .labels
            .insert("extra".into(), "by someone".into());
        let live: BTreeMap<_, _> = [live_of(&hand_made, false), relabelled, stale_live]
            .into_iter()
            .collect();
        let entries = vec![
            ok.clone(),
            forged,
            nameless,
            wrong_kind,
            unreadable,
            rev,
            forged_rev,
            hand_made,
            current,
            stale,
            ok,
        ];
        let got: Vec<(String, &str, String)> = entries
            .iter()
            .zip(plan(&entries, &live))
            .map(|(e, d)| {
                let reason = match &d {
                    Decision::NotVerified { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                (e.name.clone(), d.outcome(), reason)
            })
            .collect();
        let row = |n: &str, o: &'static str, r: &str| (n.to_string(), o, r.to_string());
        assert_eq!(
            got,
            vec![
                row("r-1", "applied", ""),
                row("r-2", "not-verified", "BadSignature"),
                row("", "not-verified", "Malformed"),
                row("x", "not-verified", "Malformed"),
                row("bad", "not-verified", "Malformed"),
                row("rev", "applied", ""),
                row("rev-2", "not-verified", "Unsigned"),
                // Rule 4: a release the feed did not create is never written.
                row("r-3", "conflict", ""),
                // Rule 5: labels others added do not make it differ.
                row("r-4", "unchanged", ""),
                row("r-5", "applied", ""),
                row("r-1", "not-verified", "Duplicate"),
            ]
        );
    }

    #[test]
    fn the_applied_object_names_the_feed_and_keeps_the_entrys_labels() {
        let e = entry(Kind::Release, &release("r-1", "2026.1"));
        let o = e.object.expect("object");
        assert_eq!(o["metadata"]["labels"][FEED_LABEL], "hub.example");
        assert_eq!(o["metadata"]["labels"]["channel"], "stable");
        assert_eq!(
            o["metadata"]["annotations"][FEED_URL_ANNOTATION],
            "https://hub.example/feed/v1"
        );
        // Only what is applied: no status, uid or resourceVersion.
        assert_eq!(
            o.as_object().expect("object").keys().collect::<Vec<_>>(),
            ["apiVersion", "kind", "metadata", "spec"]
        );
    }

    #[test]
    fn retries_back_off_from_10s_to_5min_and_never_beyond_the_interval() {
        let five_min = Duration::from_secs(300);
        let rows: &[(Duration, u32, u64)] = &[
            (five_min, 0, 300),
            (five_min, 1, 10),
            (five_min, 2, 20),
            (five_min, 3, 40),
            (five_min, 5, 160),
            (five_min, 6, 300),
            (five_min, 40, 300),
            (Duration::from_secs(3600), 0, 3600),
            (Duration::from_secs(3600), 9, 300),
            (Duration::from_secs(60), 4, 60),
            (Duration::from_secs(30), 1, 10),
            (Duration::ZERO, 3, 1),
        ];
        for (interval, failures, want) in rows {
            assert_eq!(
                next_delay(*interval, *failures).as_secs(),
                *want,
                "interval {interval:?}, {failures} failures"
            );
        }
    }

    #[test]
    fn the_feed_is_named_by_its_host() {
        for (url, want) in [
            ("https://hub.miracum.example/feed/v1", "hub.miracum.example"),
            ("http://127.0.0.1:8080/feed/v1", "127.0.0.1-8080"),
            ("https://user@hub.example:443/x?y", "hub.example-443"),
            ("https://[::1]:8080/feed/v1", "1--8080"),
            ("", "feed"),
        ] {
            assert_eq!(feed_id(url), want, "{url}");
        }
        assert!(feed_id(&format!("https://{}.example/", "a".repeat(80))).len() <= 63);
    }
}
