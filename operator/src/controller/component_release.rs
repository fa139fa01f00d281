//! ComponentRelease controller: records the certification verdict in the release's status, so
//! `kubectl get crel` shows at a glance which releases sites may run, and which sites run each.
//!
//! The verdict itself is recomputed by every DizSite reconcile from the signature (status can be
//! written by anyone with status RBAC, so it is never trusted as input); this status is for people.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};

use super::Context;
use super::certification::{Certified, NotCertified};
use crate::api::conditions::{self, CERTIFIED, DesiredCondition, REVOKED};
use crate::api::reasons;
use crate::api::{ComponentRelease, ComponentReleaseStatus, DizSite, ReleaseRevocation};
use crate::release::plan::{declared_format, fingerprint};

const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read DizSites or ReleaseRevocations: {0}")]
    ListSites(#[from] super::cache::NotSynced),
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ListSites(_) => reasons::READ_FAILED,
            Error::Status(_) => reasons::STATUS_WRITE_FAILED,
        }
    }
}

/// A revocation naming a release, as the release's status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedBy {
    pub revocation: String,
    pub reason: String,
    /// Whether the revocation's own signature verifies (only then is it honoured).
    pub certified: bool,
}

/// Revocations that name `fingerprint`, certified ones first.
pub fn revoked_by(
    fingerprint: &str,
    revocations: &[ReleaseRevocation],
    certifier: &dyn super::certification::Certifier,
) -> Vec<RevokedBy> {
    let mut out: Vec<RevokedBy> = revocations
        .iter()
        .filter(|r| r.spec.fingerprints.iter().any(|f| f == fingerprint))
        .map(|r| RevokedBy {
            revocation: r.name_any(),
            reason: r.spec.reason.clone(),
            certified: certifier.revocation_verdict(&r.spec).is_ok(),
        })
        .collect();
    out.sort_by_key(|r| !r.certified);
    out
}

/// The status for a verdict, the revocations naming the release and the sites running it.
/// Pure.
pub fn desired_status(
    release: &ComponentRelease,
    verdict: &Result<Certified, NotCertified>,
    revocations: &[RevokedBy],
    mut sites: Vec<String>,
    now: &Time,
) -> ComponentReleaseStatus {
    let old = release.status.clone().unwrap_or_default();
    sites.sort();
    let format = match verdict {
        Ok(c) => c.format,
        Err(_) => declared_format(&release.spec),
    };
    let fingerprint = fingerprint(&release.spec, format).ok();
    let (certified, reason, key_ids, condition) = match verdict {
        Ok(c) => (
            true,
            reasons::VERIFIED.to_string(),
            c.key_ids.clone(),
            DesiredCondition::new(
                CERTIFIED,
                true,
                reasons::VERIFIED,
                format!(
                    "signature verified with trusted key {} (format {})",
                    c.key_ids.join(", "),
                    c.format
                ),
            ),
        ),
        Err(e) => (
            false,
            e.reason.clone(),
            Vec::new(),
            DesiredCondition::new(CERTIFIED, false, e.reason.clone(), e.message.clone()),
        ),
    };
    let revoked = match revocations.first() {
        Some(r) if r.certified => DesiredCondition::new(
            REVOKED,
            true,
            reasons::REVOKED_REASON,
            format!(
                "revoked by ReleaseRevocation {}: {}; no site deploys it",
                r.revocation, r.reason
            ),
        ),
        Some(r) => DesiredCondition::new(
            REVOKED,
            false,
            reasons::REVOCATION_NOT_CERTIFIED,
            format!(
                "ReleaseRevocation {} names this release but its signature does not verify \
                 with the trusted keys, so it is not honoured",
                r.revocation
            ),
        ),
        None => DesiredCondition::new(REVOKED, false, reasons::NOT_REVOKED, ""),
    };
    ComponentReleaseStatus {
        observed_generation: release.metadata.generation,
        certified: Some(certified),
        reason: Some(reason),
        key_id: key_ids.first().cloned(),
        key_ids,
        fingerprint,
        revoked_by: revocations
            .first()
            .filter(|r| r.certified)
            .map(|r| r.revocation.clone()),
        sites,
        conditions: conditions::merge(
            &old.conditions,
            &[condition, revoked],
            release.metadata.generation,
            now,
        ),
    }
}

pub async fn reconcile(release: Arc<ComponentRelease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = release.name_any();
    let verdict = ctx.certifier.verdict(&release.spec);
    let format = match &verdict {
        Ok(c) => c.format,
        Err(_) => declared_format(&release.spec),
    };
    let fp = fingerprint(&release.spec, format).unwrap_or_default();
    let cache = ctx.synced().await?;
    let revocations = cache.revocations();
    let revoked = revoked_by(&fp, &revocations, ctx.certifier.as_ref());
    // The sites of the watched namespaces: a namespaced install lists no others.
    // By content: a site running other content under this name does not run this release.
    let sites: Vec<String> = cache.site_names_where(|s| {
        s.status.as_ref().is_some_and(|st| {
            st.current_release.as_deref() == Some(name.as_str())
                && st
                    .current_release_fingerprint
                    .as_deref()
                    .is_none_or(|f| f == fp)
        })
    });
    let status = desired_status(&release, &verdict, &revoked, sites, &Time(ctx.clock.now()));
    if release.status.as_ref() == Some(&status) {
        return Ok(Action::requeue(RESYNC));
    }
    let newly_uncertified =
        verdict.is_err() && release.status.as_ref().and_then(|s| s.reason.clone()) != status.reason;
    let api: Api<ComponentRelease> = Api::all(ctx.client.clone());
    super::apply::apply_status(&api, &name, &status)
        .await
        .map_err(Error::Status)?;
    if let (true, Err(e)) = (newly_uncertified, &verdict) {
        let ev = Event {
            type_: EventType::Warning,
            reason: e.reason.clone(),
            note: Some(e.message.chars().take(1000).collect()),
            action: "Verify".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&ev, &release.object_ref(&())).await {
            tracing::warn!(error = %err, "cannot publish event");
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// `reconcile` with its count and duration recorded.
pub async fn reconcile_instrumented(
    release: Arc<ComponentRelease>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(release, ctx.clone()).await;
    let error = result.as_ref().err().map(Error::reason);
    ctx.metrics
        .reconciled("ComponentRelease", started.elapsed(), error);
    result
}

pub fn error_policy(release: Arc<ComponentRelease>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("release/{}", release.name_any());
    let delay = ctx.backoff.next(&key);
    tracing::warn!(release = %key, reason = error.reason(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the ComponentRelease controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let mut controller = Controller::new(Api::<ComponentRelease>::all(client.clone()), wc.clone());
    let releases = controller.store();
    // A site moving to or from a release changes the release's `sites`: watched in the
    // operator's namespaces only, one watch each.
    for scope in &ctx.scopes {
        controller = controller.watches(
            super::api_for::<DizSite>(&client, scope),
            wc.clone(),
            |site| {
                site.status
                    .as_ref()
                    .and_then(|s| s.current_release.clone())
                    .map(|r| ObjectRef::<ComponentRelease>::new(&r))
            },
        );
    }
    controller
        // A revocation concerns the releases it names, whatever their names: look at all.
        .watches(Api::<ReleaseRevocation>::all(client), wc, move |_| {
            releases
                .state()
                .into_iter()
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        })
        // Every status write of every site triggers its release: while many sites converge,
        // a burst of them costs one reconcile of the release, not one each.
        .with_config(kube::runtime::controller::Config::default().debounce(super::DEBOUNCE))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_instrumented, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "release reconcile error");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn release() -> ComponentRelease {
        serde_json::from_value(json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
            "metadata": {"name": "r", "generation": 3},
            "spec": {"version": "2026.1", "channel": "stable", "components": {}},
        }))
        .expect("release")
    }

    #[test]
    fn uncertified_release_says_why() {
        let now = Time(Timestamp::UNIX_EPOCH);
        let verdict = Err(NotCertified {
            reason: "BadSignature".into(),
            message: "content changed after signing".into(),
        });
        let s = desired_status(&release(), &verdict, &[], vec![], &now);
        assert_eq!(s.certified, Some(false));
        assert_eq!(s.reason.as_deref(), Some("BadSignature"));
        assert_eq!(s.observed_generation, Some(3));
        let c = conditions::find(&s.conditions, CERTIFIED).expect("condition");
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("False", "content changed after signing")
        );
    }

    #[test]
    fn certified_release_lists_its_sites_sorted() {
        let now = Time(Timestamp::UNIX_EPOCH);
        let certified = Ok(Certified {
            key_ids: vec!["k".into()],
            format: crate::api::ReleaseFormat::V2,
        });
        let s = desired_status(
            &release(),
            &certified,
            &[],
            vec!["b/x".into(), "a/y".into()],
            &now,
        );
        assert_eq!(s.certified, Some(true));
        assert_eq!(s.key_id.as_deref(), Some("k"));
        assert_eq!(s.sites, vec!["a/y".to_string(), "b/x".to_string()]);
        assert!(s.revoked_by.is_none());
        let c = conditions::find(&s.conditions, REVOKED).expect("condition");
        assert_eq!(c.reason, reasons::NOT_REVOKED);
        // A certified revocation is shown; an uncertified one is named but not honoured.
        let by = |certified| RevokedBy {
            revocation: "rev".into(),
            reason: "CVE".into(),
            certified,
        };
        let s = desired_status(&release(), &certified, &[by(true)], vec![], &now);
        assert_eq!(s.revoked_by.as_deref(), Some("rev"));
        let c = conditions::find(&s.conditions, REVOKED).expect("condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reasons::REVOKED_REASON)
        );
        let s = desired_status(&release(), &certified, &[by(false)], vec![], &now);
        assert!(s.revoked_by.is_none());
        let c = conditions::find(&s.conditions, REVOKED).expect("condition");
        assert_eq!(c.reason, reasons::REVOCATION_NOT_CERTIFIED);
    }
}
