//! Between the cluster and the rollout plan: the status's rollout fields, the rollout record as
//! a ConfigMap, the site's workloads as the plan sees them, and requeue times. Pure; the
//! decision itself is `release::plan::plan`.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::status::WorkloadHealth;
use crate::api::{DizSite, DizSiteStatus, FailedReleaseStatus};
use crate::catalog::{self, CatalogError, Child, MANAGED_BY, PART_OF, SITE_LABEL};
use crate::release::plan::{FailedRelease, Halt, RolloutStatus, Workload};
use crate::release::record::{Record, ReleaseId, record_name};

fn id(name: &Option<String>, fingerprint: &Option<String>) -> Option<ReleaseId> {
    name.as_ref()
        .map(|n| ReleaseId::new(n, fingerprint.clone().unwrap_or_default()))
}

/// The rollout fields of the status, as claimed (the plan does not trust them).
pub fn from_status(status: Option<&DizSiteStatus>) -> RolloutStatus {
    let Some(s) = status else {
        return RolloutStatus::default();
    };
    RolloutStatus {
        current: id(&s.current_release, &s.current_release_fingerprint),
        previous: id(&s.previous_release, &s.previous_release_fingerprint),
        target: id(&s.target_release, &s.target_release_fingerprint),
        upgrade_started: s.upgrade_started_at.as_ref().map(|t| t.0),
        failed: s
            .failed_releases
            .iter()
            .map(|f| FailedRelease {
                name: f.name.clone(),
                fingerprint: f.fingerprint.clone(),
                reason: f.reason.clone(),
                at: f.at.0,
            })
            .collect(),
    }
}

pub fn into_status(r: &RolloutStatus, s: &mut DizSiteStatus) {
    let name = |x: &Option<ReleaseId>| x.as_ref().map(|x| x.name.clone());
    let fp = |x: &Option<ReleaseId>| {
        x.as_ref()
            .map(|x| x.fingerprint.clone())
            .filter(|f| !f.is_empty())
    };
    s.current_release = name(&r.current);
    s.current_release_fingerprint = fp(&r.current);
    s.previous_release = name(&r.previous);
    s.previous_release_fingerprint = fp(&r.previous);
    s.target_release = name(&r.target);
    s.target_release_fingerprint = fp(&r.target);
    s.upgrade_started_at = r.upgrade_started.map(Time);
    s.failed_releases = r
        .failed
        .iter()
        .map(|f| FailedReleaseStatus {
            name: f.name.clone(),
            fingerprint: f.fingerprint.clone(),
            reason: f.reason.clone(),
            at: Time(f.at),
        })
        .collect();
}

/// Releases the other sites of this namespace rolled back (their statuses).
pub fn halts(sites: &[DizSite], me: &DizSite) -> Vec<Halt> {
    sites
        .iter()
        .filter(|s| s.metadata.uid != me.metadata.uid)
        .flat_map(|s| {
            s.status.iter().flat_map(move |st| {
                st.failed_releases.iter().map(move |f| Halt {
                    namespace: s.namespace().unwrap_or_default(),
                    site: s.name_any(),
                    release: f.name.clone(),
                    fingerprint: f.fingerprint.clone(),
                    reason: f.reason.clone(),
                })
            })
        })
        .collect()
}

/// The workloads as the plan sees them: ready, and which image.
pub fn plan_workloads(health: &[WorkloadHealth]) -> Vec<Workload> {
    health
        .iter()
        .map(|w| Workload {
            image: w.image.clone(),
            ready: w.observed && !w.failed && w.ready >= w.replicas,
        })
        .collect()
}

/// The rollout record as a ConfigMap owned by the site.
pub fn record_child(
    site: &DizSite,
    namespace: &str,
    record: &Record,
) -> Result<Child, CatalogError> {
    let name = site.name_any();
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(record_name(&name)),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [
                    ("app.kubernetes.io/name", PART_OF),
                    ("app.kubernetes.io/instance", name.as_str()),
                    ("app.kubernetes.io/component", "rollout-record"),
                    ("app.kubernetes.io/part-of", PART_OF),
                    (MANAGED_BY.0, MANAGED_BY.1),
                    (SITE_LABEL, name.as_str()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                kind: "DizSite".to_string(),
                name,
                uid: site.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        data: Some(record.to_data()),
        ..ConfigMap::default()
    };
    catalog::Child::from_typed(cm, None)
}

/// When to look again: at the plan's time, never later than the periodic resync.
pub fn requeue_after(at: Option<Timestamp>, now: Timestamp, resync: Duration) -> Duration {
    at.and_then(|t| {
        let secs = t.as_second().saturating_sub(now.as_second());
        u64::try_from(secs).ok()
    })
    .map(|s| Duration::from_secs(s.max(1)).min(resync))
    .unwrap_or(resync)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    #[test]
    fn status_round_trips() {
        let r = RolloutStatus {
            current: Some(ReleaseId::new("a", "fa")),
            previous: Some(ReleaseId::new("p", "fp")),
            target: Some(ReleaseId::new("b", "fb")),
            upgrade_started: Some(ts(100)),
            failed: vec![FailedRelease {
                name: "x".into(),
                fingerprint: "f".into(),
                reason: "r".into(),
                at: ts(50),
            }],
        };
        let mut s = DizSiteStatus::default();
        into_status(&r, &mut s);
        assert_eq!(from_status(Some(&s)), r);
    }

    #[test]
    fn requeues_when_the_window_opens_but_not_after_the_resync() {
        let resync = Duration::from_secs(300);
        assert_eq!(
            requeue_after(Some(ts(160)), ts(100), resync),
            Duration::from_secs(60)
        );
        assert_eq!(requeue_after(Some(ts(100_000)), ts(100), resync), resync);
        assert_eq!(requeue_after(None, ts(100), resync), resync);
    }
}
