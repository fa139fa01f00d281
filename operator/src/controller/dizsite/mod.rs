//! DizSite controller: dereference → validate → build → apply → status.

pub mod rollout;
pub mod select;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;

use self::status::{
    applied_conditions, component_statuses, paused_conditions, pod_problems, retrying_conditions,
    stalled_conditions, with_problems, workloads,
};
use super::Context;
use super::apply::{self, ApplyError};
use crate::api::conditions::READY;
use crate::api::conditions::{self, DesiredCondition, STALLED};
use crate::api::reasons;
use crate::api::{ComponentRelease, DeletionPolicy, DizSite, DizSiteStatus};
use crate::catalog::{self, CatalogError, FIELD_MANAGER, SiteInput};
use crate::release::rollout::{Gate, SiteFacts};
use crate::release::upgrade::{self, Decision, ResolvedCandidate};

pub const FINALIZER: &str = "diz.miracum.org/cleanup";
/// Periodic resync even without events, to catch drift the watches missed.
const RESYNC: Duration = Duration::from_secs(300);
const CNPG_CRD: &str = "clusters.postgresql.cnpg.io";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the DizSite has no namespace")]
    NoNamespace,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Apply(e) => e.reason(),
            Error::Read { .. } => reasons::READ_FAILED,
            Error::Status(_) => reasons::STATUS_WRITE_FAILED,
            // The finalizer helper wraps every failure of the reconcile itself: report the
            // cause (ApplyFailed, StatusWriteFailed, …), not the wrapper.
            Error::Finalizer(e) => match e.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => {
                    inner.reason()
                }
                _ => reasons::FINALIZER_FAILED,
            },
            Error::NoNamespace => reasons::INVALID_OBJECT,
        }
    }
}

/// Kinds the operator creates per site and removes when no longer desired.
pub fn workload_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<CronJob>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Ingress>(&()),
    ]
}

/// Kinds that hold patient data: only removed on site deletion with `deletionPolicy: Delete`.
pub fn data_kinds(cnpg_available: bool) -> Vec<ApiResource> {
    let mut v = vec![ApiResource::erase::<PersistentVolumeClaim>(&())];
    if cnpg_available {
        v.push(catalog::database::cnpg_api_resource());
    }
    v
}

pub async fn reconcile(site: Arc<DizSite>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = site.namespace().ok_or(Error::NoNamespace)?;
    let key = backoff_key(&site);
    let api: Api<DizSite> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, site, |event| async {
        match event {
            Finalizer::Apply(site) => apply_site(&site, &ns, &ctx).await,
            Finalizer::Cleanup(site) => cleanup_site(&site, &ns, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

fn backoff_key(site: &DizSite) -> String {
    format!(
        "{}/{}",
        site.namespace().unwrap_or_default(),
        site.name_any()
    )
}

async fn cnpg_available(ctx: &Context) -> Result<bool, Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    crds.get_opt(CNPG_CRD)
        .await
        .map(|o| o.is_some())
        .map_err(|source| Error::Read {
            what: "CustomResourceDefinitions",
            source,
        })
}

async fn apply_site(site: &DizSite, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let name = site.name_any();
    if site.spec.paused {
        write_status(site, ns, ctx, |s| {
            s.conditions = merge(site, &s.conditions, &paused_conditions(), ctx);
        })
        .await?;
        return Ok(Action::requeue(RESYNC));
    }

    // dereference: the release the spec asks for, and what the rollout allows now
    let releases = Api::<ComponentRelease>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Read {
            what: "ComponentReleases",
            source,
        })?
        .items;
    let wanted = match select::select(&site.spec.release, &releases, ctx.certifier.as_ref()) {
        Ok(r) => r,
        Err(e) => return stall_select(site, ns, ctx, &e).await,
    };
    let candidate = match ResolvedCandidate::new(&wanted) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("release {} cannot be encoded: {e}", wanted.name_any());
            stall(site, ns, ctx, reasons::NOT_CANONICAL, &msg, Some(false)).await?;
            return Ok(Action::requeue(RESYNC));
        }
    };
    let now = ctx.clock.now();
    let before = rollout::from_status(site.status.as_ref());
    let labels = site.labels().clone();
    let facts = SiteFacts {
        site_id: &site.spec.site_id,
        labels: &labels,
        window: site.spec.maintenance_window.as_ref(),
    };
    let was_ready = site.status.as_ref().is_some_and(|s| {
        s.observed_generation == site.metadata.generation
            && conditions::is_true(&s.conditions, READY)
    });
    let retry = upgrade::retry_requested(site.annotations(), &candidate.name);
    let halted = if before.current.is_some()
        && before.current.as_deref() != Some(candidate.name.as_str())
        && before.target.as_deref() != Some(candidate.name.as_str())
        && !retry
    {
        // The watched namespaces' sites only: a namespaced install reads no others.
        let sites = ctx.list_dizsites().await.map_err(|source| Error::Read {
            what: "DizSites",
            source,
        })?;
        rollout::halted_by(&sites, site, &candidate.name, &candidate.fingerprint)
    } else {
        None
    };
    let decision = match (halted, &before.current) {
        (Some(reason), Some(current)) => Decision::Hold {
            on: current.clone(),
            reason,
        },
        _ => upgrade::decide(&candidate, &before, &facts, was_ready, now, retry),
    };
    let deploy_name = rollout::effective(&decision).to_string();
    // Usually the candidate, whose signature `select` already verified; verify only another one.
    let deploy = if deploy_name == wanted.name_any() {
        wanted.clone()
    } else {
        match select::certified_by_name(&deploy_name, &releases, ctx.certifier.as_ref()) {
            Ok(r) => r,
            Err(e) => return stall_select(site, ns, ctx, &e).await,
        }
    };
    let release = select::resolve(&deploy);
    let cnpg = cnpg_available(ctx).await?;
    let uid = site.uid().unwrap_or_default();
    let input = SiteInput {
        name: &name,
        namespace: ns,
        uid: &uid,
        spec: &site.spec,
        release: &release,
        cnpg_available: cnpg,
    };

    // validate + build (pure)
    let children = match catalog::build(&input) {
        Ok(c) => c,
        Err(errors) => {
            let reason = errors
                .first()
                .map(CatalogError::reason)
                .unwrap_or(reasons::INVALID_SPEC);
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            stall(site, ns, ctx, reason, &message, Some(true)).await?;
            return Ok(Action::requeue(RESYNC));
        }
    };

    // apply
    let outcome = async {
        let mut outcome = apply::apply_children(&ctx.client, ns, &children).await?;
        apply::delete_orphans(
            &ctx.client,
            ns,
            &name,
            &workload_kinds(),
            &children,
            &mut outcome,
        )
        .await?;
        Ok::<_, ApplyError>(outcome)
    }
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let conds = retrying_conditions(e.reason(), &e.to_string());
            publish_if_new(site, ctx, EventType::Warning, e.reason(), &e.to_string()).await;
            write_status(site, ns, ctx, |s| {
                s.conditions = merge(site, &s.conditions, &conds, ctx);
            })
            .await?;
            return Err(e.into());
        }
    };
    if !outcome.applied.is_empty() || !outcome.deleted.is_empty() {
        let note = format!(
            "release {}: applied {} object(s), removed {}",
            release.name,
            outcome.applied.len(),
            outcome.deleted.len()
        );
        publish(ctx, site, EventType::Normal, reasons::APPLIED, &note).await;
    }

    // status: the workloads count ready replicas; their pods say why the others are not.
    let pods = match Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={name}", catalog::SITE_LABEL)))
        .await
    {
        Ok(list) => list.items,
        // Reasons are a diagnosis, not a precondition: without them the status still counts.
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the site's pods");
            Vec::new()
        }
    };
    let health = with_problems(workloads(&outcome.live), &pod_problems(&pods));
    let mut conds = applied_conditions(&release.name, &health);
    let ready_now = conds
        .iter()
        .any(|c| c.type_ == READY && c.status == conditions::TRUE);
    let after = upgrade::next_status(&before, &decision, &candidate, ready_now, now);
    conds.push(rollout::up_to_date_condition(
        &decision,
        &after,
        &candidate.name,
    ));
    let notices = status::notice_conditions(&input);
    warn_notices(site, ctx, &notices).await;
    conds.extend(notices);
    announce(site, ctx, &decision, &before, &after).await;
    if retry && matches!(decision, Decision::Upgrade { .. }) {
        clear_retry_annotation(site, ns, ctx).await?;
    }
    let components = component_statuses(&site.spec, &health);
    write_status(site, ns, ctx, |s| {
        s.conditions = merge(site, &s.conditions, &conds, ctx);
        s.components = components;
        rollout::into_status(&after, s);
    })
    .await?;
    let deadline = crate::release::rollout::progress_deadline(&wanted);
    Ok(Action::requeue(rollout::requeue_after(
        &decision, &after, deadline, now, RESYNC,
    )))
}

/// Events for rollout transitions; none when nothing changed, so a no-op reconcile writes nothing.
async fn announce(
    site: &DizSite,
    ctx: &Context,
    decision: &Decision,
    before: &upgrade::RolloutStatus,
    after: &upgrade::RolloutStatus,
) {
    match decision {
        Decision::Upgrade { from, to } if before.target.as_deref() != Some(to.as_str()) => {
            let from = from.as_deref().unwrap_or("nothing (first install)");
            let note = format!("upgrading from {from} to {to}");
            publish(ctx, site, EventType::Normal, reasons::UPGRADING, &note).await;
        }
        Decision::Rollback { from, to, reason } => {
            let note = format!("rolled back from {from} to {to}: {reason}");
            publish(ctx, site, EventType::Warning, reasons::ROLLED_BACK, &note).await;
        }
        Decision::Hold { reason, .. } => {
            publish_if_new(site, ctx, EventType::Warning, reasons::HELD, reason).await;
        }
        // A window or rollout that cannot be evaluated blocks upgrades until the spec changes:
        // say so where site admins look, not only in the condition.
        Decision::Stay {
            waiting: Some(gate @ (Gate::InvalidWindow(_) | Gate::InvalidRollout(_))),
            ..
        } => {
            publish_if_new(
                site,
                ctx,
                EventType::Warning,
                gate.reason(),
                &gate.message(),
            )
            .await;
        }
        _ => {
            if before.target.is_some() && after.target.is_none() && after.current.is_some() {
                let note = format!(
                    "now running {}",
                    after.current.as_deref().unwrap_or_default()
                );
                publish(ctx, site, EventType::Normal, reasons::UPGRADED, &note).await;
            }
        }
    }
}

/// A retry is one attempt: the annotation goes once the upgrade it asked for starts.
async fn clear_retry_annotation(site: &DizSite, ns: &str, ctx: &Context) -> Result<(), Error> {
    let api: Api<DizSite> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {upgrade::RETRY_ANNOTATION: null}}});
    api.patch(
        &site.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

async fn stall_select(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    e: &select::SelectError,
) -> Result<Action, Error> {
    let certified = matches!(e, select::SelectError::NotCertified { .. }).then_some(false);
    stall(site, ns, ctx, e.reason(), &e.to_string(), certified).await?;
    Ok(Action::requeue(RESYNC))
}

async fn stall(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    reason: &str,
    message: &str,
    certified: Option<bool>,
) -> Result<(), Error> {
    publish_if_new(site, ctx, EventType::Warning, reason, message).await;
    let conds = stalled_conditions(reason, message, certified);
    write_status(site, ns, ctx, |s| {
        s.conditions = merge(site, &s.conditions, &conds, ctx);
    })
    .await
}

async fn cleanup_site(site: &DizSite, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let name = site.name_any();
    let mut removed = apply::delete_all(&ctx.client, ns, &name, &workload_kinds()).await?;
    if site.spec.deletion_policy == DeletionPolicy::Delete {
        let cnpg = cnpg_available(ctx).await?;
        removed.extend(apply::delete_all(&ctx.client, ns, &name, &data_kinds(cnpg)).await?);
        publish(
            ctx,
            site,
            EventType::Normal,
            reasons::DATA_DELETED,
            "deletionPolicy is Delete: volumes and databases of the site were deleted",
        )
        .await;
    } else {
        publish(
            ctx,
            site,
            EventType::Normal,
            reasons::DATA_RETAINED,
            "deletionPolicy is Retain: volumes and databases of the site are kept",
        )
        .await;
    }
    tracing::info!(site = %format!("{ns}/{name}"), removed = removed.len(), "site cleaned up");
    Ok(Action::await_change())
}

fn now(ctx: &Context) -> Time {
    Time(ctx.clock.now())
}

fn merge(
    site: &DizSite,
    existing: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    desired: &[DesiredCondition],
    ctx: &Context,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions::merge(existing, desired, site.metadata.generation, &now(ctx))
}

/// Writes the status only when it changed: a no-op reconcile writes nothing.
async fn write_status(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    update: impl FnOnce(&mut DizSiteStatus),
) -> Result<(), Error> {
    let old = site.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.observed_generation = site.metadata.generation;
    update(&mut new);
    if new == old && site.status.is_some() {
        return Ok(());
    }
    let api: Api<DizSite> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "DizSite",
        "status": new,
    });
    api.patch_status(
        &site.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

/// Publishes a Warning only when it says something new compared to the Stalled/Ready condition
/// already recorded, so a failure retried with backoff does not write an Event every time.
async fn publish_if_new(
    site: &DizSite,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    let existing = site
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let known = [STALLED, READY, crate::api::conditions::RELEASE_UP_TO_DATE]
        .iter()
        .filter_map(|t| conditions::find(existing, t))
        .any(|c| c.reason == reason && c.message == message);
    if !known {
        publish(ctx, site, type_, reason, message).await;
    }
}

async fn publish(ctx: &Context, site: &DizSite, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &site.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// A Warning Event when a notice condition (`Published`, `NetworkRestricted`) turns False or
/// changes its message, so the site admin hears of an unpublished part or an open path once,
/// not at every reconcile.
async fn warn_notices(site: &DizSite, ctx: &Context, notices: &[DesiredCondition]) {
    let existing = site
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    for n in notices.iter().filter(|n| n.status == conditions::FALSE) {
        let known = conditions::find(existing, n.type_).is_some_and(|c| {
            c.status == n.status && c.reason == n.reason && c.message == n.message
        });
        if !known {
            publish(ctx, site, EventType::Warning, &n.reason, &n.message).await;
        }
    }
}

pub fn error_policy(site: Arc<DizSite>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = backoff_key(&site);
    let delay = ctx.backoff.next(&key);
    tracing::warn!(site = %key, reason = error.reason(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
