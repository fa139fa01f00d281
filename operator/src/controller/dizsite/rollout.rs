//! The site's rollout state in its status, and what the rollout decision means for conditions,
//! Events and requeues. Pure; the decision itself is `release::upgrade::decide`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{DesiredCondition, RELEASE_UP_TO_DATE};
use crate::api::reasons;
use crate::api::{DizSite, DizSiteStatus, FailedReleaseStatus};
use crate::release::rollout::Gate;
use crate::release::upgrade::{Decision, FailedRelease, RolloutStatus};

pub fn from_status(status: Option<&DizSiteStatus>) -> RolloutStatus {
    let Some(s) = status else {
        return RolloutStatus::default();
    };
    RolloutStatus {
        current: s.current_release.clone(),
        previous: s.previous_release.clone(),
        target: s.target_release.clone(),
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
    s.current_release = r.current.clone();
    s.previous_release = r.previous.clone();
    s.target_release = r.target.clone();
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

/// The release to deploy for a decision.
pub fn effective(decision: &Decision) -> &str {
    match decision {
        Decision::Stay { on, .. } | Decision::Hold { on, .. } => on,
        Decision::Upgrade { to, .. } | Decision::Rollback { to, .. } => to,
    }
}

/// Another site in this cluster rolled the candidate back with the same content: later sites hold
/// instead of repeating the failure ("goes no further").
pub fn halted_by(
    sites: &[DizSite],
    me: &DizSite,
    release: &str,
    fingerprint: &str,
) -> Option<String> {
    sites
        .iter()
        .filter(|s| s.metadata.uid != me.metadata.uid)
        .find_map(|s| {
            s.status
                .as_ref()?
                .failed_releases
                .iter()
                .find(|f| f.name == release && f.fingerprint == fingerprint)
                .map(|f| {
                    format!(
                        "rollout of {release} halted: it was rolled back at site {} ({}); \
                         a release manager must publish a fixed release",
                        s.spec.site_id, f.reason
                    )
                })
        })
}

/// The `ReleaseUpToDate` condition for a decision, given the status after it.
pub fn up_to_date_condition(
    decision: &Decision,
    after: &RolloutStatus,
    candidate: &str,
) -> DesiredCondition {
    let f =
        |reason: &str, msg: String| DesiredCondition::new(RELEASE_UP_TO_DATE, false, reason, msg);
    match decision {
        Decision::Stay {
            waiting: Some(gate),
            ..
        } => f(gate.reason(), gate.message()),
        Decision::Hold { reason, .. } => f(reasons::HELD, reason.clone()),
        Decision::Rollback { from, to, reason } => f(
            reasons::ROLLED_BACK,
            format!("rolled back from {from} to {to}: {reason}"),
        ),
        _ => match (&after.target, &after.current) {
            (Some(target), current) => f(
                reasons::UPGRADING,
                format!(
                    "upgrading from {} to {target}",
                    current.as_deref().unwrap_or("nothing (first install)")
                ),
            ),
            (None, Some(current)) if current == candidate => DesiredCondition::new(
                RELEASE_UP_TO_DATE,
                true,
                reasons::UP_TO_DATE,
                format!("running {current}, the release the spec asks for"),
            ),
            (None, current) => f(
                reasons::PENDING,
                format!(
                    "running {}, the spec asks for {candidate}",
                    current.as_deref().unwrap_or("nothing")
                ),
            ),
        },
    }
}

/// When to look again: at the moment a wave or window opens or an upgrade's deadline passes,
/// never later than the periodic resync.
pub fn requeue_after(
    decision: &Decision,
    after: &RolloutStatus,
    deadline: k8s_openapi::jiff::SignedDuration,
    now: Timestamp,
    resync: Duration,
) -> Duration {
    let at = match decision {
        Decision::Stay {
            waiting: Some(Gate::WaitingForWave { not_before, .. }),
            ..
        } => Some(*not_before),
        Decision::Stay {
            waiting: Some(Gate::WaitingForWindow { opens_at }),
            ..
        } => Some(*opens_at),
        _ => after
            .upgrade_started
            .and_then(|t| t.checked_add(deadline).ok()),
    };
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
            current: Some("a".into()),
            previous: Some("p".into()),
            target: Some("b".into()),
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
        let d = Decision::Stay {
            on: "a".into(),
            waiting: Some(Gate::WaitingForWindow { opens_at: ts(160) }),
        };
        let none = RolloutStatus::default();
        let dl = k8s_openapi::jiff::SignedDuration::from_mins(30);
        assert_eq!(
            requeue_after(&d, &none, dl, ts(100), resync),
            Duration::from_secs(60)
        );
        let far = Decision::Stay {
            on: "a".into(),
            waiting: Some(Gate::WaitingForWindow {
                opens_at: ts(100_000),
            }),
        };
        assert_eq!(requeue_after(&far, &none, dl, ts(100), resync), resync);
    }

    #[test]
    fn up_to_date_only_when_running_the_candidate() {
        let after = RolloutStatus {
            current: Some("r1".into()),
            ..Default::default()
        };
        let stay = Decision::Stay {
            on: "r1".into(),
            waiting: None,
        };
        assert_eq!(up_to_date_condition(&stay, &after, "r1").status, "True");
        let upgrading = RolloutStatus {
            current: Some("r1".into()),
            target: Some("r2".into()),
            ..Default::default()
        };
        let up = Decision::Upgrade {
            from: Some("r1".into()),
            to: "r2".into(),
        };
        let c = up_to_date_condition(&up, &upgrading, "r2");
        assert_eq!((c.status, c.reason.as_str()), ("False", "Upgrading"));
    }
}
