//! kstatus-compatible conditions (`metav1.Condition`) shared by every kind.
//!
//! Argo CD and Flux read `Ready`, `Reconciling` and `Stalled` the way kstatus defines them: `Ready`
//! is the summary, `Reconciling=True` means work is in progress, `Stalled=True` means the operator
//! cannot make progress without a change from a human.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const RELEASE_CERTIFIED: &str = "ReleaseCertified";
/// The site runs the release its spec asks for (False while waiting, upgrading, held or rolled back).
pub const RELEASE_UP_TO_DATE: &str = "ReleaseUpToDate";
pub const CERTIFIED: &str = "Certified";
/// A ComponentRelease is revoked by a certified ReleaseRevocation.
pub const REVOKED: &str = "Revoked";
/// Every part the site means to publish is on its Ingress (False with reason `LoginRequired`
/// while parts stay inside the cluster for lack of `spec.auth.oidc`). Not a kstatus condition:
/// an unpublished part is a safe state the site admin chooses, so `Ready` is unaffected.
pub const PUBLISHED: &str = "Published";
/// The site's NetworkPolicies restrict every path in and out (False while egress is open to any
/// address, or while NetworkPolicies are switched off). Not a kstatus condition either.
pub const NETWORK_RESTRICTED: &str = "NetworkRestricted";
/// The operator follows the consortium's release feed (`run --feed-url`) and its last round
/// succeeded (False while the feed is unreachable, serves no feed, or an entry cannot be applied;
/// the operator then keeps what the last good feed gave). Absent when no feed is followed. Not a
/// kstatus condition: the site's own health does not depend on the feed.
pub const RELEASE_FEED: &str = "ReleaseFeed";
/// The site's last scheduled report to the consortium hub succeeded (`spec.reporting`; absent
/// without it). Not a kstatus condition: a hub that is down does not make the site unready.
pub const REPORTING: &str = "Reporting";

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// A condition as the controller computes it, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let reason = reason.into();
        // Every reason the operator writes is documented (docs/conditions.md is generated from
        // `reasons::ALL`): a test that runs into an unlisted one fails here, naming it.
        debug_assert!(
            super::reasons::find(&reason).is_some(),
            "condition reason {reason:?} is not in api::reasons: add it there with what it \
             means and what to do"
        );
        Self {
            type_,
            status: if status { TRUE } else { FALSE },
            reason,
            message: message.into(),
        }
    }
}

/// Merges desired conditions into the existing list.
///
/// `lastTransitionTime` only moves when the status flips: tools and people use it to see how long
/// a site has been unready, so rewriting it on every reconcile would lie. Conditions not in
/// `desired` are kept as they are.
pub fn merge(
    existing: &[Condition],
    desired: &[DesiredCondition],
    observed_generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for d in desired {
        let slot = out.iter().position(|c| c.type_ == d.type_);
        let last_transition_time = match slot.map(|i| &out[i]) {
            Some(old) if old.status == d.status => old.last_transition_time.clone(),
            _ => now.clone(),
        };
        let next = Condition {
            last_transition_time,
            message: d.message.clone(),
            observed_generation,
            reason: d.reason.clone(),
            status: d.status.to_string(),
            type_: d.type_.to_string(),
        };
        match slot {
            Some(i) => out[i] = next,
            None => out.push(next),
        }
    }
    out
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            &[DesiredCondition::new(
                READY,
                false,
                "Progressing",
                "waiting",
            )],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));

        let same = merge(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                "Progressing",
                "still waiting",
            )],
            Some(2),
            &at(200),
        );
        assert_eq!(same[0].last_transition_time, at(100));
        assert_eq!(same[0].message, "still waiting");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(
            &same,
            &[DesiredCondition::new(READY, true, "Ready", "all good")],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert!(is_true(&flipped, READY));
    }

    #[test]
    fn unrelated_conditions_are_kept() {
        let first = merge(
            &[],
            &[
                DesiredCondition::new(READY, true, "Ready", ""),
                DesiredCondition::new(STALLED, false, "Progressing", ""),
            ],
            Some(1),
            &at(1),
        );
        let next = merge(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                "ComponentsFailing",
                "x",
            )],
            Some(1),
            &at(2),
        );
        assert_eq!(next.len(), 2);
        assert!(find(&next, STALLED).is_some());
        assert!(!is_true(&next, READY));
    }
}
