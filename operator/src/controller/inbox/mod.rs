//! ProposalInbox controller: runs the inbox service (the `inbox` subcommand of the operator
//! image, docs/proposals.md) for a site.
//!
//! observe (site, its release, from the caches) → [`plan`] (pure, table-tested) → apply the
//! inbox's objects ([`build`]) → status from the live Deployment, the kubelet's `FailedMount`
//! Events (a missing Secret: the operator never reads Secrets) and the inbox's own summary
//! ([`summary`]). Stalled plans change nothing.

pub mod build;
pub mod config;
pub mod summary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};

use super::{Context, Scope, api_for};
use crate::api::conditions::{self, DesiredCondition, READY, RECONCILING, STALLED};
use crate::api::reasons;
use crate::api::{
    ComponentImage, ComponentRelease, DizSite, IssuerKind, NotificationStatus, ProposalInbox,
    ProposalInboxStatus, SecretKeyRef,
};
use crate::catalog::network_policy::{DEFAULT_CNPG_NAMESPACE, DEFAULT_INGRESS_NAMESPACE};
use crate::controller::apply::{self, ApplyError};
use summary::Summary;

/// How often a Ready inbox's summary is read again (the counts in its status).
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the caches are not ready: {0}")]
    NotSynced(#[from] super::cache::NotSynced),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot build the inbox: {0}")]
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
    /// Whether CloudNativePG's CRD exists (for `spec.database.cloudNativePG`).
    pub cnpg_available: bool,
}

/// The OIDC client the web page logs in with.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: SecretKeyRef,
    pub groups_claim: String,
    /// The field that names the client secret (for the message when it is missing).
    pub field: String,
}

/// Where the web page is published: the site's ingress host and certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Public {
    pub host: String,
    pub class_name: Option<String>,
    /// The site's certificate Secret (`spec.ingress.tls.secretName`).
    pub tls_secret: String,
    /// With cert-manager: the Ingress annotation and the issuer's name.
    pub issuer: Option<(String, String)>,
}

/// Everything the objects are built from besides the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployable {
    pub site_id: String,
    pub image: ComponentImage,
    pub login: Login,
    pub public: Public,
    pub ingress_namespace_labels: BTreeMap<String, String>,
    pub external_database_cidrs: Vec<String>,
    /// Where CloudNativePG's operator runs (for the database's NetworkPolicy).
    pub cnpg_operator_namespace_labels: BTreeMap<String, String>,
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
    Deploy(Box<Deployable>),
}

fn stall(reason: &'static str, message: String) -> Plan {
    Plan::Stall { reason, message }
}

/// The decision, first rule that fires wins:
/// 1. the site exists (`SiteNotFound`);
/// 2. the site runs a release (`SiteNotDeployed`, waiting);
/// 3. that release pins the inbox (`InboxImageMissing`);
/// 4. with `spec.database.cloudNativePG`, CloudNativePG is installed (`InboxDatabaseUnavailable`);
/// 5. there is a login: the inbox's `spec.oidc`, else the site's `spec.auth.oidc` with a
///    `clientSecretRef` (`InboxLoginMissing`);
/// 6. the site has `spec.ingress`, the public address the identity provider sends users back to
///    (`InboxLoginMissing`);
/// 7. deploy.
///
/// The Secrets are checked after deploying, from the kubelet's `FailedMount` Events
/// ([`missing_secret`]): the operator has no right to read Secrets (docs/security.md).
pub fn plan(inbox: &ProposalInbox, observed: &Observed) -> Plan {
    let site_ref = &inbox.spec.site_ref.name;
    let Some(site) = &observed.site else {
        return stall(
            reasons::SITE_NOT_FOUND,
            format!("spec.siteRef: DizSite {site_ref:?} does not exist in this namespace"),
        );
    };
    let Some(current) = site.status.as_ref().and_then(|s| s.current_release.clone()) else {
        return Plan::Wait {
            reason: reasons::SITE_NOT_DEPLOYED,
            message: format!("DizSite {site_ref:?} runs no release yet"),
        };
    };
    let image = observed
        .release
        .as_ref()
        .filter(|r| r.name_any() == current)
        .and_then(|r| r.spec.components.get(build::INBOX_IMAGE_KEY));
    let Some(image) = image else {
        return stall(
            reasons::INBOX_IMAGE_MISSING,
            format!(
                "release {current:?} that DizSite {site_ref:?} runs pins no {:?} image",
                build::INBOX_IMAGE_KEY
            ),
        );
    };
    let wants_cnpg = inbox
        .spec
        .database
        .as_ref()
        .is_some_and(|d| d.cloud_native_pg.is_some());
    if wants_cnpg && !observed.cnpg_available {
        return stall(
            reasons::INBOX_DATABASE_UNAVAILABLE,
            format!(
                "spec.database.cloudNativePG: CloudNativePG is not installed (no CRD {})",
                super::cache::CNPG_CRD
            ),
        );
    }
    let login = match (
        &inbox.spec.oidc,
        site.spec.auth.as_ref().and_then(|a| a.oidc.as_ref()),
    ) {
        (Some(own), _) => Login {
            issuer_url: own.issuer_url.clone(),
            client_id: own.client_id.clone(),
            client_secret: own.client_secret_ref.clone(),
            groups_claim: own.groups_claim.clone(),
            field: "spec.oidc.clientSecretRef".into(),
        },
        (None, Some(site_oidc)) => {
            let Some(secret) = &site_oidc.client_secret_ref else {
                return stall(
                    reasons::INBOX_LOGIN_MISSING,
                    format!(
                        "the inbox logs in through DizSite {site_ref:?}'s spec.auth.oidc, which has no clientSecretRef (the inbox is a confidential client); set it there, or give the inbox its own client in spec.oidc"
                    ),
                );
            };
            Login {
                issuer_url: site_oidc.issuer_url.clone(),
                client_id: site_oidc.client_id.clone(),
                client_secret: secret.clone(),
                groups_claim: crate::api::default_groups_claim(),
                field: format!("DizSite {site_ref:?} spec.auth.oidc.clientSecretRef"),
            }
        }
        (None, None) => {
            return stall(
                reasons::INBOX_LOGIN_MISSING,
                format!(
                    "the inbox's web page needs a login: DizSite {site_ref:?} has no spec.auth.oidc and the inbox sets no spec.oidc"
                ),
            );
        }
    };
    let Some(ingress) = &site.spec.ingress else {
        return stall(
            reasons::INBOX_LOGIN_MISSING,
            format!(
                "DizSite {site_ref:?} has no spec.ingress: the login needs a public address to return to (https://<host>{})",
                config::CALLBACK_PATH
            ),
        );
    };
    let issuer = ingress.tls.issuer_ref.as_ref().map(|i| {
        let key = match i.kind {
            IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
            IssuerKind::Issuer => "cert-manager.io/issuer",
        };
        (key.to_string(), i.name.clone())
    });
    let np = site.spec.network_policy.as_ref();
    Plan::Deploy(Box::new(Deployable {
        site_id: site.spec.site_id.clone(),
        image: image.clone(),
        login,
        public: Public {
            host: ingress.host.clone(),
            class_name: ingress.class_name.clone(),
            tls_secret: ingress
                .tls
                .secret_name
                .clone()
                .unwrap_or_else(|| crate::catalog::ingress::tls_secret_name(&site.name_any())),
            issuer,
        },
        ingress_namespace_labels: np
            .map(|n| n.ingress_namespace_labels.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| {
                BTreeMap::from([(
                    DEFAULT_INGRESS_NAMESPACE.0.to_string(),
                    DEFAULT_INGRESS_NAMESPACE.1.to_string(),
                )])
            }),
        external_database_cidrs: np
            .map(|n| n.external_database_cidrs.clone())
            .unwrap_or_default(),
        cnpg_operator_namespace_labels: np
            .map(|n| n.cloud_native_pg_operator_namespace_labels.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| {
                BTreeMap::from([(
                    DEFAULT_CNPG_NAMESPACE.0.to_string(),
                    DEFAULT_CNPG_NAMESPACE.1.to_string(),
                )])
            }),
    }))
}

/// A Secret the inbox's pod cannot mount, from the kubelet's `FailedMount` Events about the
/// Deployment's pods: `(field, secret)` of the first of `secrets` (Secret name, field naming it)
/// an Event names.
pub fn missing_secret(
    events: &[KubeEvent],
    deployment: &str,
    secrets: &[(String, String)],
) -> Option<(String, String)> {
    let prefix = format!("{deployment}-");
    let notes: Vec<&str> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedMount"))
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Pod")
                    && r.name.as_deref().is_some_and(|n| n.starts_with(&prefix))
            })
        })
        .filter_map(|e| e.note.as_deref())
        .collect();
    secrets.iter().find_map(|(secret, field)| {
        // The kubelet's wording: `secret "<name>" not found` (pkg/volume/secret/secret.go).
        let needle = format!("secret \"{secret}\" not found");
        notes
            .iter()
            .any(|n| n.contains(&needle))
            .then(|| (field.clone(), secret.clone()))
    })
}

/// How the deployed inbox is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    Available,
    Starting,
    /// `(field, secret)`: a Secret the pod cannot mount.
    SecretMissing(String, String),
}

/// Conditions for a plan and, when deployed, the inbox's health.
pub fn conditions_for(plan: &Plan, health: &Health) -> Vec<DesiredCondition> {
    let three = |ready: bool, reconciling: bool, stalled: bool, reason: &str, m: &str| {
        vec![
            DesiredCondition::new(READY, ready, reason, m),
            DesiredCondition::new(RECONCILING, reconciling, reason, m),
            DesiredCondition::new(STALLED, stalled, reason, m),
        ]
    };
    match (plan, health) {
        (Plan::Stall { reason, message }, _) => three(false, false, true, reason, message),
        (Plan::Wait { reason, message }, _) => three(false, true, false, reason, message),
        (Plan::Deploy(_), Health::Available) => three(
            true,
            false,
            false,
            reasons::READY_REASON,
            "the proposal inbox is available",
        ),
        (Plan::Deploy(_), Health::SecretMissing(field, secret)) => three(
            false,
            false,
            true,
            reasons::INBOX_SECRET_MISSING,
            &format!(
                "{field}: Secret {secret:?} does not exist, so the inbox's pod cannot start (the kubelet reports FailedMount)"
            ),
        ),
        (Plan::Deploy(_), Health::Starting) => three(
            false,
            true,
            false,
            reasons::INBOX_STARTING,
            "the inbox's objects are applied; its pod is not available yet",
        ),
    }
}

/// Whether the live Deployment has an available replica of its current generation.
pub fn available(deployment: Option<&Deployment>) -> bool {
    super::feasibility::available(deployment)
}

/// The status for the conditions and, when read, the summary; the counts stay as they were
/// when the summary could not be read.
pub fn status_for(
    old: &ProposalInboxStatus,
    conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    generation: Option<i64>,
    summary: Option<Result<Summary, String>>,
) -> ProposalInboxStatus {
    let mut new = ProposalInboxStatus {
        observed_generation: generation,
        conditions,
        ..old.clone()
    };
    match summary {
        Some(Ok(s)) => {
            new.counts = s.counts;
            new.overdue = Some(s.overdue);
            new.last_decision_time = s.last_decision_at;
            new.notifications = s
                .notifications
                .into_iter()
                .filter(|n| n.failures > 0 || n.last_error.is_some())
                .map(|n| NotificationStatus {
                    name: n.name,
                    failures: n.failures,
                    last_error: n.last_error.map(|e| e.chars().take(500).collect()),
                })
                .collect();
            new.summary_error = None;
        }
        Some(Err(e)) => new.summary_error = Some(e.chars().take(500).collect()),
        None => {}
    }
    new
}

fn observe(inbox: &ProposalInbox, ns: &str, cache: &super::cache::Cache) -> Observed {
    let (site, release) = cache.site_and_release(ns, &inbox.spec.site_ref.name);
    Observed {
        site,
        release,
        cnpg_available: cache.cnpg_available(),
    }
}

pub async fn reconcile(inbox: Arc<ProposalInbox>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = inbox.namespace().unwrap_or_default();
    let cache = ctx.synced().await?;
    let observed = observe(&inbox, &ns, cache);
    let plan = plan(&inbox, &observed);
    let mut health = Health::Starting;
    let mut summary = None;
    if let Plan::Deploy(d) = &plan {
        let children = build::build(&inbox, d).map_err(|e| Error::Build(e.to_string()))?;
        let outcome = apply::apply_children(&ctx.client, cache, &ns, &children).await?;
        let deployment = outcome
            .live
            .iter()
            .find(|(ar, _)| ar.kind == "Deployment")
            .and_then(|(_, obj)| obj.clone().try_parse::<Deployment>().ok());
        health = if available(deployment.as_ref()) {
            Health::Available
        } else {
            match missing_secret(
                &cache.mount_events(&ns),
                &build::inbox_name(&inbox),
                &build::secrets(&inbox, d),
            ) {
                Some((field, secret)) => Health::SecretMissing(field, secret),
                None => Health::Starting,
            }
        };
        if health == Health::Available {
            summary = Some(
                ctx.inbox_summaries
                    .fetch(&ns, &inbox.name_any())
                    .await
                    .map_err(|e| e.to_string()),
            );
        }
    }
    let desired = conditions_for(&plan, &health);
    write_status(&inbox, &ns, &ctx, &desired, summary).await?;
    let stalled = desired
        .iter()
        .find(|c| c.type_ == STALLED && c.status == conditions::TRUE);
    if let Some(DesiredCondition {
        reason, message, ..
    }) = stalled
    {
        let was = inbox
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, STALLED))
            .is_some_and(|c| c.status == conditions::TRUE && c.reason == *reason);
        if !was {
            let ev = Event {
                type_: EventType::Warning,
                reason: reason.clone(),
                note: Some(message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&ev, &inbox.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot publish event");
            }
        }
    }
    ctx.backoff.reset(&backoff_key(&inbox));
    Ok(match (&plan, &health) {
        (Plan::Deploy(_), Health::Available) => Action::requeue(SUMMARY_INTERVAL),
        // The kubelet retries the mount; its Events are not watched here.
        (Plan::Deploy(_), _) => Action::requeue(Duration::from_secs(5)),
        (Plan::Wait { .. }, _) => Action::requeue(Duration::from_secs(30)),
        (Plan::Stall { .. }, _) => Action::requeue(Duration::from_secs(300)),
    })
}

async fn write_status(
    inbox: &ProposalInbox,
    ns: &str,
    ctx: &Context,
    desired: &[DesiredCondition],
    summary: Option<Result<Summary, String>>,
) -> Result<(), Error> {
    let old = inbox.status.clone().unwrap_or_default();
    let generation = inbox.metadata.generation;
    let merged = conditions::merge(&old.conditions, desired, generation, &Time(ctx.clock.now()));
    let new = status_for(&old, merged, generation, summary);
    if inbox.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let api: Api<ProposalInbox> = Api::namespaced(ctx.client.clone(), ns);
    apply::apply_status(&api, &inbox.name_any(), &new)
        .await
        .map_err(Error::Status)
}

pub fn error_policy(inbox: Arc<ProposalInbox>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(
        inbox = %format!("{}/{}", inbox.namespace().unwrap_or_default(), inbox.name_any()),
        reason = error.reason(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(ctx.backoff.next(&backoff_key(&inbox)))
}

fn backoff_key(inbox: &ProposalInbox) -> String {
    format!(
        "inbox/{}/{}",
        inbox.namespace().unwrap_or_default(),
        inbox.name_any()
    )
}

/// Runs the ProposalInbox controller for one scope until `shutdown` resolves. A change to an
/// inbox's DizSite, to any ComponentRelease or ReleaseRevocation (sent by the caches once they
/// hold the change, so the reconcile reads at least that version) or to the inbox's Deployment
/// reconciles it.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let controller = Controller::new(api_for::<ProposalInbox>(&client, &scope), wc.clone()).owns(
        api_for::<Deployment>(&client, &scope),
        super::managed_only(wc),
    );
    let inboxes = controller.store();
    let site_changes = ctx.cache().site_changes(&scope).flat_map(move |site| {
        let refs: Vec<ObjectRef<ProposalInbox>> = inboxes
            .state()
            .into_iter()
            .filter(|i| i.namespace() == site.namespace && i.spec.site_ref.name == site.name)
            .map(|i| ObjectRef::from_obj(&*i))
            .collect();
        futures::stream::iter(refs)
    });
    controller
        .reconcile_on(site_changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests;
