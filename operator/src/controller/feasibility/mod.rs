//! FeasibilityEndpoint controller: runs the privacy gate (`gate/`, docs/feasibility.md) in front of
//! the site's FLARE.
//!
//! observe (site, its release, the DSF token Secret) → [`plan`] (pure, table-tested) → apply the
//! gate's objects ([`build`]) → status from the live Deployment. Stalled cases change nothing.

pub mod build;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};

use super::cache::Cache;
use super::{Context, Scope, api_for};
use crate::api::conditions::{self, DesiredCondition, READY, RECONCILING, STALLED};
use crate::api::reasons;
use crate::api::{
    ComponentRelease, DizSite, Executor, FeasibilityEndpoint, FeasibilityEndpointStatus,
    PrivacyFloor, PrivacyRules, ReleaseFormat,
};
use crate::catalog::Child;
use crate::catalog::component::Component;
use crate::controller::apply::{self, ApplyError};

const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the caches are not ready: {0}")]
    NotSynced(#[from] super::cache::NotSynced),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot build the gate: {0}")]
    Build(String),
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotSynced(_) => reasons::READ_FAILED,
            Error::Apply(e) => e.reason(),
            Error::Build(_) => reasons::INTERNAL_ERROR,
            Error::Status(_) => reasons::STATUS_WRITE_FAILED,
        }
    }
}

/// What the reconcile read.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub site: Option<DizSite>,
    /// The release the site runs (`status.currentRelease`), if any and found.
    pub release: Option<ComponentRelease>,
    /// That release's privacy floor, when the release is certified in a format that signs it
    /// (`miracolix-release-v2`); an unsigned floor is not honoured.
    pub floor: Option<PrivacyFloor>,
}

/// The fields of `privacy` looser than `floor`, each named with both values.
pub fn floor_violations(privacy: &PrivacyRules, floor: &PrivacyFloor) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(max) = floor.max_epsilon
        && privacy.epsilon > max
    {
        out.push(format!(
            "spec.privacy.epsilon {} is above the release's maxEpsilon {max}",
            privacy.epsilon
        ));
    }
    if let Some(min) = floor.min_round_to
        && privacy.round_to < min
    {
        out.push(format!(
            "spec.privacy.roundTo {} is below the release's minRoundTo {min}",
            privacy.round_to
        ));
    }
    if let Some(min) = floor.min_suppress_below
        && privacy.suppress_below < min
    {
        out.push(format!(
            "spec.privacy.suppressBelow {} is below the release's minSuppressBelow {min}",
            privacy.suppress_below
        ));
    }
    if let Some(max) = floor.max_requests_per_hour
        && privacy.requests_per_hour > max
    {
        out.push(format!(
            "spec.privacy.requestsPerHour {} is above the release's maxRequestsPerHour {max}",
            privacy.requests_per_hour
        ));
    }
    if let Some(max) = floor.max_daily_epsilon_budget
        && privacy.daily_epsilon_budget > max
    {
        out.push(format!(
            "spec.privacy.dailyEpsilonBudget {} is above the release's maxDailyEpsilonBudget {max}",
            privacy.daily_epsilon_budget
        ));
    }
    out
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing can be done until a human changes something.
    Stall {
        reason: &'static str,
        message: String,
    },
    /// Waiting for something that will come by itself.
    Wait {
        reason: &'static str,
        message: String,
    },
    /// Deploy the gate for this site with this image.
    Deploy {
        site_name: String,
        image: crate::api::ComponentImage,
        site_ingress: build::SiteIngress,
    },
}

/// The decision, first rule that fires wins:
/// 1. the site exists (`SiteNotFound`);
/// 2. the executor is FLARE (`ExecutorNotSupported`);
/// 3. the site runs FLARE (`ExecutorNotRun`);
/// 4. the privacy settings can answer at least one query (`PrivacyInvalid`);
/// 5. direct mode's host is not the site's own ingress host (`DirectHostConflict`);
/// 6. the site runs a release (`SiteNotDeployed`, waiting);
/// 7. the privacy settings are at least as strict as that release's signed floor
///    (`PrivacyBelowFloor`, every looser field named);
/// 8. that release pins the gate (`GateImageMissing`);
/// 9. deploy.
pub fn plan(endpoint: &FeasibilityEndpoint, observed: &Observed) -> Plan {
    let site_ref = &endpoint.spec.site_ref.name;
    let Some(site) = &observed.site else {
        return Plan::Stall {
            reason: reasons::SITE_NOT_FOUND,
            message: format!("spec.siteRef: DizSite {site_ref:?} does not exist in this namespace"),
        };
    };
    if endpoint.spec.data_source.executor == Executor::Cql {
        return Plan::Stall {
            reason: reasons::EXECUTOR_NOT_SUPPORTED,
            message: "spec.dataSource.executor: cql is not supported behind the privacy gate, which speaks FLARE's API; use flare".into(),
        };
    }
    let runs_flare = Component::named("flare").is_some_and(|c| c.enabled(&site.spec.components));
    if !runs_flare {
        return Plan::Stall {
            reason: reasons::EXECUTOR_NOT_RUN,
            message: format!(
                "spec.dataSource.executor: flare, but DizSite {site_ref:?} does not run FLARE (spec.components.flare)"
            ),
        };
    }
    let privacy = &endpoint.spec.privacy;
    if privacy.daily_epsilon_budget < privacy.epsilon {
        return Plan::Stall {
            reason: reasons::PRIVACY_INVALID,
            message: format!(
                "spec.privacy.dailyEpsilonBudget ({}) is smaller than spec.privacy.epsilon ({}): no query could be answered",
                privacy.daily_epsilon_budget, privacy.epsilon
            ),
        };
    }
    let site_ingress = site.spec.ingress.as_ref();
    if let (Some(direct), Some(ingress)) = (&endpoint.spec.direct, site_ingress)
        && direct.host == ingress.host
    {
        return Plan::Stall {
            reason: reasons::DIRECT_HOST_CONFLICT,
            message: format!(
                "spec.direct.host {:?} is DizSite {site_ref:?}'s spec.ingress.host: TLS passthrough would take over the site's Ingress; use a host of its own",
                direct.host
            ),
        };
    }
    let Some(current) = site.status.as_ref().and_then(|s| s.current_release.clone()) else {
        return Plan::Wait {
            reason: reasons::SITE_NOT_DEPLOYED,
            message: format!("DizSite {site_ref:?} runs no release yet"),
        };
    };
    if let Some(floor) = &observed.floor {
        let violations = floor_violations(privacy, floor);
        if !violations.is_empty() {
            return Plan::Stall {
                reason: reasons::PRIVACY_BELOW_FLOOR,
                message: format!(
                    "{} (release {current:?}); stricter settings are always allowed",
                    violations.join("; ")
                ),
            };
        }
    }
    let image = observed
        .release
        .as_ref()
        .filter(|r| r.name_any() == current)
        .and_then(|r| r.spec.components.get(build::GATE_IMAGE_KEY));
    match image {
        Some(image) => Plan::Deploy {
            site_name: site.name_any(),
            image: image.clone(),
            site_ingress: build::SiteIngress {
                class_name: site_ingress.and_then(|i| i.class_name.clone()),
                namespace_labels: site
                    .spec
                    .network_policy
                    .as_ref()
                    .map(|n| n.ingress_namespace_labels.clone())
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| {
                        let (k, v) = crate::catalog::network_policy::DEFAULT_INGRESS_NAMESPACE;
                        BTreeMap::from([(k.to_string(), v.to_string())])
                    }),
            },
        },
        None => Plan::Stall {
            reason: reasons::GATE_IMAGE_MISSING,
            message: format!(
                "release {current:?} that DizSite {site_ref:?} runs pins no {:?} image",
                build::GATE_IMAGE_KEY
            ),
        },
    }
}

/// Conditions for a plan and, when deployed, the gate's availability.
pub fn conditions_for(plan: &Plan, gate_available: bool) -> Vec<DesiredCondition> {
    match plan {
        Plan::Stall { reason, message } => vec![
            DesiredCondition::new(READY, false, *reason, message.clone()),
            DesiredCondition::new(RECONCILING, false, *reason, message.clone()),
            DesiredCondition::new(STALLED, true, *reason, message.clone()),
        ],
        Plan::Wait { reason, message } => vec![
            DesiredCondition::new(READY, false, *reason, message.clone()),
            DesiredCondition::new(RECONCILING, true, *reason, message.clone()),
            DesiredCondition::new(STALLED, false, *reason, message.clone()),
        ],
        Plan::Deploy { .. } if gate_available => {
            let m = "the privacy gate is available";
            vec![
                DesiredCondition::new(READY, true, reasons::READY_REASON, m),
                DesiredCondition::new(RECONCILING, false, reasons::READY_REASON, m),
                DesiredCondition::new(STALLED, false, reasons::READY_REASON, m),
            ]
        }
        Plan::Deploy { .. } => {
            let m = "the gate's objects are applied; its pod is not available yet";
            vec![
                DesiredCondition::new(READY, false, reasons::GATE_STARTING, m),
                DesiredCondition::new(RECONCILING, true, reasons::GATE_STARTING, m),
                DesiredCondition::new(STALLED, false, reasons::GATE_STARTING, m),
            ]
        }
    }
}

/// Whether the live Deployment has an available replica of its current generation.
pub fn available(deployment: Option<&Deployment>) -> bool {
    let Some(d) = deployment else { return false };
    let status = d.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation) >= d.metadata.generation;
    observed && status.and_then(|s| s.available_replicas).unwrap_or(0) >= 1
}

/// The endpoint's site and the release it runs, from the caches (no request).
fn observe(endpoint: &FeasibilityEndpoint, ns: &str, ctx: &Context, cache: &Cache) -> Observed {
    let (site, release) = cache.site_and_release(ns, &endpoint.spec.site_ref.name);
    // The floor counts only when the release's signature covers it.
    let floor = release.as_ref().and_then(|r| {
        let signed = ctx
            .certifier
            .verdict(&r.spec)
            .is_ok_and(|c| c.format == ReleaseFormat::V2);
        if signed {
            r.spec.privacy_floor.clone()
        } else {
            None
        }
    });
    Observed {
        site,
        release,
        floor,
    }
}

/// The key of an endpoint's failure backoff: namespace and name, so endpoints of the same name
/// in two namespaces back off independently.
pub fn backoff_key(endpoint: &FeasibilityEndpoint) -> String {
    format!(
        "feas/{}/{}",
        endpoint.namespace().unwrap_or_default(),
        endpoint.name_any()
    )
}

pub async fn reconcile(
    endpoint: Arc<FeasibilityEndpoint>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = endpoint.namespace().unwrap_or_default();
    let cache = ctx.synced().await?;
    let observed = observe(&endpoint, &ns, &ctx, cache);
    let plan = plan(&endpoint, &observed);
    let mut gate_available = false;
    if let Plan::Deploy {
        site_name,
        image,
        site_ingress,
    } = &plan
    {
        let children: Vec<Child> = build::build(&build::GateInput {
            endpoint: &endpoint,
            site_name,
            image,
            site_ingress,
        })
        .map_err(|e| Error::Build(e.to_string()))?;
        let outcome = apply::apply_children(&ctx.client, cache, &ns, &children).await?;
        let deployment = outcome
            .live
            .iter()
            .find(|(ar, _)| ar.kind == "Deployment")
            .and_then(|(_, obj)| obj.clone().try_parse::<Deployment>().ok());
        gate_available = available(deployment.as_ref());
        if endpoint.spec.direct.is_none() {
            // Direct mode switched off: its Ingress goes (the rest of the gate stays).
            let ingress =
                kube::core::ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&());
            let name = build::gate_name(&endpoint);
            if apply::delete_if_present(&ctx.client, cache, &ns, &ingress, &name).await? {
                tracing::info!(endpoint = %endpoint.name_any(), "direct mode off: Ingress {name} deleted");
            }
        }
    }
    let desired = conditions_for(&plan, gate_available);
    write_status(&endpoint, &ns, &ctx, &desired).await?;
    if let Plan::Stall { reason, message } = &plan {
        let was = endpoint
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, STALLED))
            .is_some_and(|c| c.status == conditions::TRUE && c.reason == *reason);
        if !was {
            let ev = Event {
                type_: EventType::Warning,
                reason: reason.to_string(),
                note: Some(message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&ev, &endpoint.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot publish event");
            }
        }
    }
    ctx.backoff.reset(&backoff_key(&endpoint));
    Ok(match plan {
        Plan::Deploy { .. } if !gate_available => Action::requeue(Duration::from_secs(10)),
        Plan::Wait { .. } => Action::requeue(Duration::from_secs(30)),
        _ => Action::requeue(RESYNC),
    })
}

async fn write_status(
    endpoint: &FeasibilityEndpoint,
    ns: &str,
    ctx: &Context,
    desired: &[DesiredCondition],
) -> Result<(), Error> {
    let old = endpoint.status.clone().unwrap_or_default();
    let generation = endpoint.metadata.generation;
    let new = FeasibilityEndpointStatus {
        observed_generation: generation,
        conditions: conditions::merge(&old.conditions, desired, generation, &Time(ctx.clock.now())),
    };
    if endpoint.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let api: Api<FeasibilityEndpoint> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply_status(&api, &endpoint.name_any(), &new)
        .await
        .map_err(Error::Status)
}

pub fn error_policy(
    endpoint: Arc<FeasibilityEndpoint>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(
        endpoint = %format!("{}/{}", endpoint.namespace().unwrap_or_default(), endpoint.name_any()),
        reason = error.reason(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(ctx.backoff.next(&backoff_key(&endpoint)))
}

/// Runs the FeasibilityEndpoint controller for one scope until `shutdown` resolves.
///
/// Besides its own endpoints and the gate Deployments it owns, it reacts to what a reconcile
/// reads, from the caches: a DizSite changing (an endpoint is reconciled when its site starts
/// running FLARE or moves to another release) and any ComponentRelease or ReleaseRevocation
/// changing (a new release, a changed privacy floor). The caches send these once they hold the
/// change, so the reconcile reads at least the version that triggered it. The DSF token Secret
/// is not watched: the operator cannot read Secrets, and the gate reads it only at start
/// (docs/feasibility.md).
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let controller = Controller::new(api_for::<FeasibilityEndpoint>(&client, &scope), wc.clone())
        .owns(
            api_for::<Deployment>(&client, &scope),
            super::managed_only(wc),
        );
    let endpoints = controller.store();
    let site_changes = ctx.cache().site_changes(&scope).flat_map(move |site| {
        futures::stream::iter(endpoints_of_site_ref(&endpoints.state(), &site))
    });
    controller
        .reconcile_on(site_changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// The endpoints whose `spec.siteRef` names `site` (same namespace).
pub fn endpoints_of_site(
    endpoints: &[Arc<FeasibilityEndpoint>],
    site: &DizSite,
) -> Vec<ObjectRef<FeasibilityEndpoint>> {
    endpoints_of_site_ref(endpoints, &ObjectRef::from_obj(site))
}

fn endpoints_of_site_ref(
    endpoints: &[Arc<FeasibilityEndpoint>],
    site: &ObjectRef<DizSite>,
) -> Vec<ObjectRef<FeasibilityEndpoint>> {
    endpoints
        .iter()
        .filter(|e| e.namespace() == site.namespace && e.spec.site_ref.name == site.name)
        .map(|e| ObjectRef::from_obj(&**e))
        .collect()
}

#[cfg(test)]
mod tests;
