//! DizSite controller: dereference → validate → build → apply → status.

pub mod last_applied;
pub mod reporting;
pub mod rollout;
pub mod select;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;

use self::status::{
    applied_conditions, component_statuses, escalate, paused_conditions, pod_problems,
    retrying_conditions, stalled_conditions, with_problems, workloads,
};
use super::Context;
use super::apply::{self, ApplyError};
use crate::api::conditions::{
    self, DesiredCondition, READY, RELEASE_CERTIFIED, RELEASE_FEED, RELEASE_UP_TO_DATE, STALLED,
};
use crate::api::reasons;
use crate::api::{ComponentRelease, DeletionPolicy, DizSite, DizSiteStatus, ReleaseRevocation};
use crate::catalog::{self, CatalogError, FIELD_MANAGER, SiteInput};
use crate::feed::FeedConditionUpdate;
use crate::release::plan::{self, Decision, Facts, Site};
use crate::release::record::{Record, RecordError, record_name};

pub const FINALIZER: &str = "diz.miracum.org/cleanup";
/// Periodic resync even without events, to catch drift the watches missed.
const RESYNC: Duration = Duration::from_secs(300);

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
    #[error(transparent)]
    NotSynced(#[from] super::cache::NotSynced),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the DizSite has no namespace")]
    NoNamespace,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Apply(e) => e.reason(),
            Error::Read { .. } | Error::NotSynced(_) => reasons::READ_FAILED,
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
        // The reporter's identity (`spec.reporting`, catalog/reporter.rs).
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
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

/// What the cluster says about a site before anything is applied: the facts the rollout plan
/// needs, read from the caches on every reconcile (nothing here comes from the DizSite status).
struct Observed {
    releases: Vec<ComponentRelease>,
    revocations: Vec<ReleaseRevocation>,
    record: Result<Option<Record>, RecordError>,
    /// The site's Deployments and StatefulSets as they run now.
    health: Vec<status::WorkloadHealth>,
    /// The DizSites of the site's namespace (their failed releases halt a rollout there).
    neighbours: Vec<DizSite>,
}

async fn observe(site: &DizSite, ns: &str, ctx: &Context) -> Result<Observed, Error> {
    let cache = ctx.synced().await?;
    let name = site.name_any();
    let record_cm = cache.child(
        &ApiResource::erase::<ConfigMap>(&()),
        ns,
        &record_name(&name),
    );
    let record = record_cm
        .map(|cm| {
            let data: std::collections::BTreeMap<String, String> = cm
                .data
                .get("data")
                .and_then(|d| serde_json::from_value(d.clone()).ok())
                .unwrap_or_default();
            Record::from_data(&data)
        })
        .transpose();
    let mut live = Vec::new();
    for ar in [
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
    ] {
        live.extend(
            cache
                .site_children(&ar, ns, &name)
                .into_iter()
                .map(|o| (ar.clone(), (*o).clone())),
        );
    }
    Ok(Observed {
        releases: cache.releases(),
        revocations: cache.revocations(),
        record,
        health: workloads(&live),
        neighbours: cache.sites_in(ns),
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

    // observe
    let observed = observe(site, ns, ctx).await?;
    let record = match observed.record {
        Ok(r) => r,
        Err(e) => {
            // The operator writes the record; one it cannot read was edited by someone else.
            let msg = format!(
                "{e}: ConfigMap {} was not written by this operator. Nothing is applied; delete \
                 it to let the operator re-derive the rollout from the running workloads",
                record_name(&name)
            );
            stall(
                site,
                ns,
                ctx,
                reasons::ROLLOUT_RECORD_INVALID,
                &msg,
                None,
                None,
            )
            .await?;
            return Ok(Action::requeue(RESYNC));
        }
    };
    let releases = select::releases(&observed.releases, record.as_ref(), ctx.certifier.as_ref());
    let revocations = select::revocations(&observed.revocations, ctx.certifier.as_ref());
    let halts = rollout::halts(&observed.neighbours, site);
    let running_workloads = rollout::plan_workloads(&observed.health);
    let claimed = rollout::from_status(site.status.as_ref());
    let labels = site.labels().clone();
    let now = ctx.clock.now();

    // plan (pure)
    let facts = Facts {
        now,
        site: Site {
            namespace: ns,
            name: &name,
            site_id: &site.spec.site_id,
            labels: &labels,
            window: site.spec.maintenance_window.as_ref(),
            wanted: &site.spec.release,
            annotations: site.annotations(),
        },
        releases: &releases,
        revocations: &revocations,
        record: record.as_ref(),
        status: &claimed,
        workloads: &running_workloads,
        halts: &halts,
    };
    let plan = plan::plan(&facts);

    if let Decision::Stall {
        reason,
        message,
        certified,
    } = &plan.decision
    {
        announce(site, ctx, &plan, Some(reason)).await;
        stall(
            site,
            ns,
            ctx,
            reason,
            message,
            *certified,
            Some(&plan.status),
        )
        .await?;
        return Ok(Action::requeue(RESYNC));
    }

    // build what the plan deploys (pure), before anything is written: an upgrade that cannot
    // be built is not recorded as started
    let deploy = plan
        .deploy
        .as_ref()
        .and_then(|id| releases.iter().find(|r| r.fingerprint == id.fingerprint));
    let cnpg = ctx.synced().await?.cnpg_available();
    let uid = site.uid().unwrap_or_default();
    let memo_key = backoff_key(site);
    // Whether this reconcile may report on what was applied last instead of rendering the site
    // again (last_applied.rs): most reconciles of a converging site are triggered by its pods
    // and workloads becoming ready, which change nothing the render reads.
    // A release whose content cannot be encoded has no fingerprint to compare: always render.
    let inputs = deploy.filter(|r| !r.fingerprint.is_empty()).map(|release| {
        last_applied::Inputs::new(&uid, &site.spec, &release.name, &release.fingerprint, cnpg)
    });
    let unchanged = match &inputs {
        Some(inputs) => {
            let last = ctx.last_applied.get(&memo_key);
            let cache = ctx.cache();
            let present: Vec<(u8, String)> = workload_kinds()
                .iter()
                .filter_map(|ar| Some((last_applied::kind_index(ar)?, ar)))
                .flat_map(|(i, ar)| {
                    cache
                        .site_children(ar, ns, &name)
                        .into_iter()
                        .filter_map(move |o| Some((i, o.metadata.name.clone()?)))
                })
                .collect();
            let kinds = last_applied::kinds();
            // Each child applied last as the cache holds it now, read once: for the decision,
            // and on a skip for the status.
            let mut cached: HashMap<(u8, &str), Arc<DynamicObject>> = last
                .iter()
                .flat_map(|l| l.children.iter())
                .filter_map(|c| {
                    let ar = kinds.get(usize::from(c.kind))?;
                    Some(((c.kind, c.name.as_str()), cache.child(ar, ns, &c.name)?))
                })
                .collect();
            let decision = last_applied::decide(
                last.as_deref(),
                inputs,
                |c| last_applied::Hashes::of(cached.get(&(c.kind, c.name.as_str()))?),
                &present,
            );
            tracing::trace!(site = %memo_key, ?decision, "render decision");
            match (decision, &last) {
                (last_applied::Render::Skip, Some(l)) => {
                    // The skip found every child cached (rule 3).
                    let live = l
                        .children
                        .iter()
                        .filter_map(|c| {
                            let ar = kinds.get(usize::from(c.kind))?;
                            let obj = cached.remove(&(c.kind, c.name.as_str()))?;
                            Some((ar.clone(), Arc::unwrap_or_clone(obj)))
                        })
                        .collect();
                    Some((l.clone(), live))
                }
                _ => None,
            }
        }
        None => None,
    };
    let built = match (deploy, unchanged) {
        (Some(release), Some((last, live))) => {
            // Nothing to build: the last render said this, and its children are as applied.
            Some((
                release.name.clone(),
                (last.notices.clone(), last.reporting.clone()),
                Children::AsLastApplied(live),
            ))
        }
        (Some(release), None) => {
            ctx.metrics.site_rendered();
            let resolved = select::resolve(release);
            let input = SiteInput {
                name: &name,
                namespace: ns,
                uid: &uid,
                spec: &site.spec,
                release: &resolved,
                cnpg_available: cnpg,
            };
            match catalog::build(&input) {
                // What the site publishes and how far its network is restricted, told apart
                // from readiness (`Published`, `NetworkRestricted`).
                Ok(children) => {
                    let notices = status::notice_conditions(&input);
                    let reporting = catalog::reporter::deployable(&input).map(|r| r.cloned());
                    Some((
                        resolved.name.clone(),
                        (notices, reporting),
                        Children::Rendered(children),
                    ))
                }
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
                    // The record is unchanged, so the status reports it unchanged.
                    let unchanged = plan::status_of(record.as_ref(), &claimed.failed);
                    stall(
                        site,
                        ns,
                        ctx,
                        reason,
                        &message,
                        Some(true),
                        Some(&unchanged),
                    )
                    .await?;
                    return Ok(Action::requeue(RESYNC));
                }
            }
        }
        (None, _) => None,
    };

    // The record next: it is never older than what runs, so a reconcile interrupted between
    // the two resumes the upgrade rather than forgetting it.
    let record_child = match plan
        .record
        .as_ref()
        .map(|r| rollout::record_child(site, ns, r))
    {
        Some(Ok(child)) => Some(child),
        Some(Err(e)) => {
            stall(site, ns, ctx, e.reason(), &e.to_string(), None, None).await?;
            return Ok(Action::requeue(RESYNC));
        }
        None => None,
    };
    if plan.record != record
        && let Some(child) = &record_child
        && let Err(e) =
            apply::apply_children(&ctx.client, ctx.cache(), ns, std::slice::from_ref(child)).await
    {
        return retry_later(site, ns, ctx, &plan, e).await;
    }

    // apply what the plan deploys; nothing at all when it deploys nothing
    let (health, mut conds) = match built {
        Some((release_name, (notices, reporting), children)) => {
            let outcome = match children {
                Children::Rendered(mut children) => {
                    let outcome = async {
                        let mut outcome =
                            apply::apply_children(&ctx.client, ctx.cache(), ns, &children).await?;
                        // The record is desired too: it must survive the orphan sweep.
                        children.extend(record_child.clone());
                        apply::delete_orphans(
                            &ctx.client,
                            ctx.cache(),
                            ns,
                            &name,
                            &workload_kinds(),
                            &children,
                            &mut outcome,
                        )
                        .await?;
                        Ok::<_, ApplyError>((outcome, children))
                    }
                    .await;
                    match outcome {
                        Ok((o, kept)) => {
                            let last = inputs.and_then(|inputs| {
                                last_applied::LastApplied::new(
                                    inputs,
                                    &o.live,
                                    kept.into_iter().map(|c| {
                                        let name = c.object.metadata.name.unwrap_or_default();
                                        (c.resource, name)
                                    }),
                                    notices.clone(),
                                    reporting.clone(),
                                )
                            });
                            ctx.last_applied.set(&memo_key, last);
                            o
                        }
                        Err(e) => {
                            ctx.last_applied.set(&memo_key, None);
                            return retry_later(site, ns, ctx, &plan, e).await;
                        }
                    }
                }
                Children::AsLastApplied(live) => apply::ApplyOutcome {
                    live,
                    ..Default::default()
                },
            };
            if !outcome.applied.is_empty() || !outcome.deleted.is_empty() {
                let note = format!(
                    "release {}: applied {} object(s), removed {}",
                    release_name,
                    outcome.applied.len(),
                    outcome.deleted.len()
                );
                publish(ctx, site, EventType::Normal, reasons::APPLIED, &note).await;
            }
            let problems = pod_problems_of(site, ns, ctx).await;
            let health = with_problems(workloads(&outcome.live), &problems);
            let mut conds = applied_conditions(&release_name, &health);
            let cronjob = ctx.cache().child(
                &ApiResource::erase::<CronJob>(&()),
                ns,
                &catalog::reporter::name(&name),
            );
            let seen = reporting::observed(
                cronjob.as_deref(),
                problems.get(catalog::reporter::PART).cloned(),
            );
            let mut notices = notices;
            notices.extend(reporting::condition(
                &name,
                reporting.as_ref().map(Option::as_ref).map_err(Clone::clone),
                &seen,
                chrono::DateTime::from_timestamp(ctx.clock.now().as_second(), 0)
                    .unwrap_or_default(),
            ));
            // A report that is merely not due yet is no warning.
            let warnings: Vec<DesiredCondition> = notices
                .iter()
                .filter(|n| n.reason != reasons::REPORT_PENDING)
                .cloned()
                .collect();
            warn_notices(site, ctx, &warnings).await;
            conds.extend(notices);
            (health, conds)
        }
        None => {
            // Nothing may be applied (the running content is revoked, expired, no longer
            // certified or no longer available): report the workloads as they run.
            let health = with_problems(observed.health, &pod_problems_of(site, ns, ctx).await);
            let running = plan
                .status
                .current
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let mut conds = applied_conditions(&running, &health);
            conds.retain(|c| c.type_ != RELEASE_CERTIFIED);
            conds.push(DesiredCondition::new(
                RELEASE_CERTIFIED,
                false,
                reasons::RELEASE_NOT_USABLE,
                format!(
                    "the running release may not be applied (revoked, expired, no longer \
                     certified or no longer available), so nothing is applied: {}",
                    plan.up_to_date.message
                ),
            ));
            (health, conds)
        }
    };
    // Whichever way the workloads were reported: failing past the deadline is Stalled.
    escalate(
        &mut conds,
        previous_conditions(site),
        ctx.clock.now(),
        crate::release::plan::DEFAULT_PROGRESS_DEADLINE,
    );
    announce(site, ctx, &plan, None).await;
    if !plan.clear_annotations.is_empty() {
        clear_annotations(site, ns, ctx, &plan.clear_annotations).await?;
    }
    // An upgrade whose workloads report ready on the target right after the apply (nothing
    // they run changed, or they start at once) is not in flight: the same rules, asked again
    // with the workloads as they are now, complete it in this reconcile, so the status never
    // says Ready without a current release.
    let plan = match (&plan.decision, &plan.record) {
        (Decision::Upgrade { .. }, Some(in_flight)) => {
            let now_running = rollout::plan_workloads(&health);
            let again = plan::plan(&Facts {
                record: Some(in_flight),
                status: &plan.status,
                workloads: &now_running,
                ..facts
            });
            match (&again.decision, &again.record) {
                (Decision::Completed { .. }, Some(done)) => {
                    let child = match rollout::record_child(site, ns, done) {
                        Ok(child) => child,
                        Err(e) => {
                            stall(site, ns, ctx, e.reason(), &e.to_string(), None, None).await?;
                            return Ok(Action::requeue(RESYNC));
                        }
                    };
                    if let Err(e) =
                        apply::apply_children(&ctx.client, ctx.cache(), ns, &[child]).await
                    {
                        return retry_later(site, ns, ctx, &plan, e).await;
                    }
                    announce(site, ctx, &again, None).await;
                    again
                }
                _ => plan,
            }
        }
        _ => plan,
    };
    conds.push(DesiredCondition::new(
        RELEASE_UP_TO_DATE,
        plan.up_to_date.status,
        plan.up_to_date.reason,
        plan.up_to_date.message.clone(),
    ));
    let components = component_statuses(&site.spec, &health);
    write_status(site, ns, ctx, |s| {
        s.conditions = merge(site, &s.conditions, &conds, ctx);
        if site.spec.reporting.is_none() {
            s.conditions.retain(|c| c.type_ != conditions::REPORTING);
        }
        s.components = components;
        rollout::into_status(&plan.status, s);
    })
    .await?;
    Ok(Action::requeue(rollout::requeue_after(
        plan.requeue_at,
        now,
        RESYNC,
    )))
}

/// What a reconcile deploys: the children it just rendered, or those of the last apply as the
/// cache holds them now, which nothing has changed since (`last_applied::decide`).
enum Children {
    Rendered(Vec<catalog::Child>),
    AsLastApplied(Vec<(ApiResource, DynamicObject)>),
}

/// A transient error interrupted applying: the status still reports the plan (the record was
/// written already), and the reconcile is retried with backoff.
async fn retry_later(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    plan: &plan::Plan,
    e: ApplyError,
) -> Result<Action, Error> {
    let conds = retrying_conditions(e.reason(), &e.to_string());
    publish_if_new(site, ctx, EventType::Warning, e.reason(), &e.to_string()).await;
    write_status(site, ns, ctx, |s| {
        s.conditions = merge(site, &s.conditions, &conds, ctx);
        rollout::into_status(&plan.status, s);
    })
    .await?;
    Err(e.into())
}

/// Why pods do not run, by component; a diagnosis, not a precondition. From the caches of the
/// site's pods and of the kubelet's FailedMount Events.
async fn pod_problems_of(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
) -> std::collections::BTreeMap<String, String> {
    let cache = ctx.cache();
    let pods = cache.pods(ns, &site.name_any());
    pod_problems(&pods, &cache.mount_events(ns))
}

/// The plan's Events. Warnings that repeat a condition already recorded are left out, so a
/// site that stays held does not write an Event on every reconcile. `skip` is a reason the
/// caller publishes itself.
async fn announce(site: &DizSite, ctx: &Context, plan: &plan::Plan, skip: Option<&str>) {
    for note in &plan.notes {
        if Some(note.reason) == skip {
            continue;
        }
        if note.warning {
            publish_if_new(site, ctx, EventType::Warning, note.reason, &note.message).await;
        } else {
            publish(ctx, site, EventType::Normal, note.reason, &note.message).await;
        }
    }
}

/// One-shot requests (retry, allow-downgrade) go once the change they asked for starts.
async fn clear_annotations(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    keys: &[&str],
) -> Result<(), Error> {
    let api: Api<DizSite> = Api::namespaced(ctx.client.clone(), ns);
    let nulls: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|k| ((*k).to_string(), serde_json::Value::Null))
        .collect();
    let patch = json!({"metadata": {"annotations": nulls}});
    api.patch(
        &site.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

async fn stall(
    site: &DizSite,
    ns: &str,
    ctx: &Context,
    reason: &str,
    message: &str,
    certified: Option<bool>,
    rollout_status: Option<&plan::RolloutStatus>,
) -> Result<(), Error> {
    publish_if_new(site, ctx, EventType::Warning, reason, message).await;
    let conds = stalled_conditions(reason, message, certified);
    write_status(site, ns, ctx, |s| {
        s.conditions = merge(site, &s.conditions, &conds, ctx);
        if let Some(r) = rollout_status {
            rollout::into_status(r, s);
        }
    })
    .await
}

async fn cleanup_site(site: &DizSite, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let name = site.name_any();
    ctx.last_applied.set(&backoff_key(site), None);
    let cache = ctx.synced().await?;
    let mut removed = apply::delete_all(&ctx.client, cache, ns, &name, &workload_kinds()).await?;
    if site.spec.deletion_policy == DeletionPolicy::Delete {
        let cnpg = cache.cnpg_available();
        removed.extend(apply::delete_all(&ctx.client, cache, ns, &name, &data_kinds(cnpg)).await?);
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
    // The release feed's state, when the operator follows one (`crate::feed`): on every site,
    // written with its status so that only a change writes; gone when it follows none.
    match ctx.feed_condition.update() {
        FeedConditionUpdate::Set(feed) => {
            new.conditions = merge(site, &new.conditions, &[feed], ctx);
        }
        FeedConditionUpdate::Keep => {}
        FeedConditionUpdate::Remove => new.conditions.retain(|c| c.type_ != RELEASE_FEED),
    }
    if new == old && site.status.is_some() {
        return Ok(());
    }
    let api: Api<DizSite> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "DizSite",
        "status": new,
    });
    let written = api
        .patch_status(
            &site.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Status)?;
    // Server-side apply removes only fields this manager owned. Rollout fields someone else
    // wrote (a forged status) survive an apply that omits them, so they are cleared explicitly.
    let live = rollout_fields(written.status.as_ref());
    let want = rollout_fields(Some(&new));
    if live != want {
        api.patch_status(
            &site.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": want })),
        )
        .await
        .map_err(Error::Status)?;
    }
    Ok(())
}

/// The status's rollout fields, absent ones as explicit nulls (a merge patch removes those).
fn rollout_fields(status: Option<&DizSiteStatus>) -> serde_json::Value {
    let s = status.cloned().unwrap_or_default();
    json!({
        "currentRelease": s.current_release,
        "currentReleaseFingerprint": s.current_release_fingerprint,
        "targetRelease": s.target_release,
        "targetReleaseFingerprint": s.target_release_fingerprint,
        "previousRelease": s.previous_release,
        "previousReleaseFingerprint": s.previous_release_fingerprint,
        "upgradeStartedAt": s.upgrade_started_at,
    })
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

/// The conditions the site reported last (empty before its first status).
fn previous_conditions(
    site: &DizSite,
) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
    site.status
        .as_ref()
        .map_or(&[], |s| s.conditions.as_slice())
}
