//! ReleaseRevocation controller: records in the revocation's status whether its signature
//! verifies, so a release manager sees at once whether a revocation is honoured (an unsigned or
//! wrongly signed one is ignored by every site). The verdict that counts is recomputed by every
//! DizSite reconcile; this status is for people.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};

use super::Context;
use super::certification::{Certified, NotCertified};
use crate::api::conditions::{self, CERTIFIED, DesiredCondition};
use crate::api::reasons;
use crate::api::{ReleaseRevocation, ReleaseRevocationStatus};

/// Trusted keys can change under a revocation (hot reload): look again now and then.
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
}

/// The status for a verdict. Pure.
pub fn desired_status(
    revocation: &ReleaseRevocation,
    verdict: &Result<Certified, NotCertified>,
    now: &Time,
) -> ReleaseRevocationStatus {
    let old = revocation.status.clone().unwrap_or_default();
    let generation = revocation.metadata.generation;
    let (certified, reason, condition) = match verdict {
        Ok(c) => (
            true,
            reasons::VERIFIED.to_string(),
            DesiredCondition::new(
                CERTIFIED,
                true,
                reasons::VERIFIED,
                format!(
                    "signature verified with trusted key {}: sites leave the revoked releases",
                    c.key_ids.join(", ")
                ),
            ),
        ),
        Err(e) => (
            false,
            e.reason.clone(),
            DesiredCondition::new(
                CERTIFIED,
                false,
                e.reason.clone(),
                format!("{}; the revocation is NOT honoured", e.message),
            ),
        ),
    };
    ReleaseRevocationStatus {
        observed_generation: generation,
        certified: Some(certified),
        reason: Some(reason),
        conditions: conditions::merge(&old.conditions, &[condition], generation, now),
    }
}

pub async fn reconcile(
    revocation: Arc<ReleaseRevocation>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let verdict = ctx.certifier.revocation_verdict(&revocation.spec);
    let status = desired_status(&revocation, &verdict, &Time(ctx.clock.now()));
    if revocation.status.as_ref() == Some(&status) {
        return Ok(Action::requeue(RESYNC));
    }
    let newly_refused = verdict.is_err()
        && revocation.status.as_ref().and_then(|s| s.reason.clone()) != status.reason;
    let api: Api<ReleaseRevocation> = Api::all(ctx.client.clone());
    super::apply::apply_status(&api, &revocation.name_any(), &status)
        .await
        .map_err(Error::Status)?;
    if let (true, Err(e)) = (newly_refused, &verdict) {
        let ev = Event {
            type_: EventType::Warning,
            reason: e.reason.clone(),
            note: Some(
                format!("{}; the revocation is NOT honoured", e.message)
                    .chars()
                    .take(1000)
                    .collect(),
            ),
            action: "Verify".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&ev, &revocation.object_ref(&())).await {
            tracing::warn!(error = %err, "cannot publish event");
        }
    }
    Ok(Action::requeue(RESYNC))
}

pub fn error_policy(
    revocation: Arc<ReleaseRevocation>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = format!("revocation/{}", revocation.name_any());
    let delay = ctx.backoff.next(&key);
    tracing::warn!(revocation = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the ReleaseRevocation controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        Api::<ReleaseRevocation>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "revocation reconcile error");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReleaseRevocationSpec;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn says_whether_the_revocation_is_honoured() {
        let r = ReleaseRevocation::new(
            "revoke",
            ReleaseRevocationSpec {
                fingerprints: vec!["a".repeat(64)],
                reason: "CVE".into(),
                immediate: false,
                signature: None,
                signatures: Vec::new(),
            },
        );
        let now = Time(Timestamp::UNIX_EPOCH);
        let refused = Err(NotCertified {
            reason: "Unsigned".into(),
            message: "no signature".into(),
        });
        let s = desired_status(&r, &refused, &now);
        assert_eq!(s.certified, Some(false));
        let c = conditions::find(&s.conditions, CERTIFIED).expect("condition");
        assert!(c.message.contains("NOT honoured"), "{}", c.message);
        let ok = Ok(Certified {
            key_ids: vec!["k".into()],
            format: crate::api::ReleaseFormat::V2,
        });
        assert_eq!(desired_status(&r, &ok, &now).certified, Some(true));
    }
}
