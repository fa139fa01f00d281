//! The DizSite status, computed from what the API server reports about the children. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::api::conditions::{
    DesiredCondition, NETWORK_RESTRICTED, PUBLISHED, READY, RECONCILING, RELEASE_CERTIFIED, STALLED,
};
use crate::api::reasons;
use crate::api::{ComponentStatus, DizSiteSpec};
use crate::catalog::{self, COMPONENT_LABEL, Component, Exposure, SiteInput};

/// Readiness of one workload (Deployment or StatefulSet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadHealth {
    pub component: String,
    pub image: Option<String>,
    pub replicas: i32,
    pub ready: i32,
    /// The controller has seen the latest spec.
    pub observed: bool,
    /// The workload controller gave up (e.g. `ProgressDeadlineExceeded`).
    pub failed: bool,
    /// Why its pods do not start or become ready, as the kubelet reports it
    /// (see [`pod_problems`]).
    pub problem: Option<String>,
    /// A CloudNativePG database of the component rather than one of its workloads: counts for
    /// readiness, not for the component's replicas.
    pub database: bool,
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// Extracts workload health from the live children; other kinds are ignored.
pub fn workloads(live: &[(ApiResource, DynamicObject)]) -> Vec<WorkloadHealth> {
    live.iter()
        .filter(|(ar, _)| {
            ar.group == "apps" && (ar.kind == "Deployment" || ar.kind == "StatefulSet")
        })
        .filter_map(|(_, obj)| {
            let v = serde_json::to_value(obj).ok()?;
            let component = obj.metadata.labels.as_ref()?.get(COMPONENT_LABEL)?.clone();
            let replicas = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let generation = obj.metadata.generation.unwrap_or(0);
            let failed = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Progressing")
                            && c.get("status").and_then(Value::as_str) == Some("False")
                    })
                });
            Some(WorkloadHealth {
                component,
                image: v
                    .pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                replicas: i32::try_from(replicas).unwrap_or(i32::MAX),
                ready: i32::try_from(int(&v, "/status/readyReplicas")).unwrap_or(0),
                observed: int(&v, "/status/observedGeneration") >= generation,
                failed,
                problem: None,
                database: false,
            })
        })
        .chain(
            live.iter()
                .filter(|(ar, _)| {
                    ar.group == crate::catalog::database::CNPG_GROUP
                        && ar.kind == crate::catalog::database::CNPG_KIND
                })
                .filter_map(|(_, obj)| database_health(obj)),
        )
        .collect()
}

/// A CloudNativePG cluster is ready when all its instances are (`status.readyInstances` =
/// `spec.instances`): the component's pods cannot serve before their database does.
fn database_health(obj: &DynamicObject) -> Option<WorkloadHealth> {
    let component = obj.metadata.labels.as_ref()?.get(COMPONENT_LABEL)?.clone();
    let v = serde_json::to_value(obj).ok()?;
    let instances = v
        .pointer("/spec/instances")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    Some(WorkloadHealth {
        component: format!("{component} database"),
        image: None,
        replicas: i32::try_from(instances).unwrap_or(i32::MAX),
        ready: i32::try_from(int(&v, "/status/readyInstances")).unwrap_or(0),
        observed: true,
        failed: false,
        problem: None,
        database: true,
    })
}

/// Container states that mean "not started yet" rather than "cannot start".
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Why the pods of each component do not run, by component name: the first waiting or
/// terminated reason a kubelet reports for a container (`CreateContainerConfigError: secret
/// "x" not found`, `CrashLoopBackOff (last exit: OOMKilled)`), or a readiness that fails. This
/// is where a real cluster says why a workload is not ready; the workload objects only count.
pub fn pod_problems(pods: &[Pod], events: &[Event]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let Some(component) = pod.labels().get(COMPONENT_LABEL).cloned() else {
            continue;
        };
        if out.contains_key(&component) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(status) = &pod.status else { continue };
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        let mut problem = None;
        for c in containers {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            let last = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.clone());
            if let Some(w) = waiting
                && let Some(reason) = w.reason.as_deref()
                && !STARTING.contains(&reason)
            {
                let mut text = format!("{}: {reason}", c.name);
                if let Some(last) = last.filter(|l| l != "Error" && l != "Completed") {
                    text.push_str(&format!(" (last exit: {last})"));
                }
                if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
                    text.push_str(&format!(": {m}"));
                }
                problem = Some(text);
                break;
            }
        }
        // A volume that cannot be mounted (a Secret or ConfigMap mounted as a file that does not
        // exist) leaves the container in ContainerCreating; the kubelet names the cause only in
        // a FailedMount Event about the pod.
        if problem.is_none() {
            let name = pod.name_any();
            problem = events
                .iter()
                .filter(|e| e.reason.as_deref() == Some("FailedMount"))
                .find(|e| {
                    e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some("Pod") && r.name.as_deref() == Some(name.as_str())
                    })
                })
                .map(|e| {
                    format!(
                        "pod {name}: FailedMount: {}",
                        e.note.clone().unwrap_or_default()
                    )
                });
        }
        if problem.is_none() {
            let unready = status.conditions.iter().flatten().any(|c| {
                c.type_ == "Ready"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ContainersNotReady")
            });
            let running = status.phase.as_deref() == Some("Running");
            if unready && running {
                problem = Some(format!(
                    "pod {} is running but not ready (readiness probe failing)",
                    pod.name_any()
                ));
            }
        }
        if let Some(p) = problem {
            out.insert(component, p);
        }
    }
    out
}

/// Adds the pods' problems to the workloads of their components.
pub fn with_problems(
    mut health: Vec<WorkloadHealth>,
    problems: &BTreeMap<String, String>,
) -> Vec<WorkloadHealth> {
    for w in &mut health {
        if w.ready < w.replicas {
            w.problem = problems.get(&w.component).cloned();
        }
    }
    health
}

/// Per-component status, in catalogue order, for every component (enabled or not), then for
/// every component the site enables from its release (`spec.components.fromRelease`), in the
/// order listed. Workloads are matched by their component label, which is the component's name
/// for both.
pub fn component_statuses(spec: &DizSiteSpec, health: &[WorkloadHealth]) -> Vec<ComponentStatus> {
    let builtin = Component::all().map(|c| (c.name(), c.enabled(&spec.components)));
    let released = spec
        .components
        .from_release
        .iter()
        .map(|e| (e.name.as_str(), e.spec.enabled));
    builtin
        .chain(released)
        .map(|(name, enabled)| {
            let mine: Vec<&WorkloadHealth> = health
                .iter()
                .filter(|w| w.component == name && !w.database)
                .collect();
            ComponentStatus {
                name: name.to_string(),
                enabled,
                image: mine.iter().find_map(|w| w.image.clone()),
                replicas: mine.iter().map(|w| w.replicas).sum(),
                ready_replicas: mine.iter().map(|w| w.ready).sum(),
            }
        })
        .collect()
}

/// Conditions after a successful apply.
pub fn applied_conditions(release: &str, health: &[WorkloadHealth]) -> Vec<DesiredCondition> {
    let failing: Vec<String> = health
        .iter()
        .filter(|w| (w.failed || w.problem.is_some()) && w.ready < w.replicas)
        .map(|w| match &w.problem {
            Some(p) => format!("{} ({p})", w.component),
            None => w.component.clone(),
        })
        .collect();
    let waiting: Vec<String> = health
        .iter()
        .filter(|w| !w.observed || w.ready < w.replicas)
        .map(|w| format!("{} ({}/{} ready)", w.component, w.ready, w.replicas))
        .collect();
    let certified = DesiredCondition::new(
        RELEASE_CERTIFIED,
        true,
        reasons::VERIFIED,
        format!("release {release} is certified"),
    );
    let not_stalled = DesiredCondition::new(STALLED, false, reasons::PROGRESSING, "");
    if !failing.is_empty() {
        let msg = format!(
            "components failing to become ready on release {release}: {}",
            failing.join(", ")
        );
        return vec![
            DesiredCondition::new(READY, false, reasons::COMPONENTS_FAILING, msg.clone()),
            DesiredCondition::new(RECONCILING, true, reasons::COMPONENTS_FAILING, msg),
            not_stalled,
            certified,
        ];
    }
    if waiting.is_empty() {
        let msg = format!("all {} workloads ready on release {release}", health.len());
        vec![
            DesiredCondition::new(READY, true, reasons::READY_REASON, msg),
            DesiredCondition::new(RECONCILING, false, reasons::READY_REASON, ""),
            DesiredCondition::new(STALLED, false, reasons::READY_REASON, ""),
            certified,
        ]
    } else {
        let msg = format!("waiting for {}", waiting.join(", "));
        vec![
            DesiredCondition::new(READY, false, reasons::PROGRESSING, msg.clone()),
            DesiredCondition::new(RECONCILING, true, reasons::PROGRESSING, msg),
            not_stalled,
            certified,
        ]
    }
}

/// kstatus escalation: a site whose components keep failing to become ready for longer than
/// the progress deadline is Stalled. It will not get better by waiting (an image that exits, a
/// Secret that is missing, a setting the image refuses): someone must act, and Argo CD or Flux
/// stop showing it as progressing. The failure counts from when Ready turned False (its
/// `lastTransitionTime`); an upgrade in flight is decided by the rollout plan's health gate
/// (rolled back at the same deadline) before this applies.
pub fn escalate(
    conds: &mut [DesiredCondition],
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    now: k8s_openapi::jiff::Timestamp,
    deadline: k8s_openapi::jiff::SignedDuration,
) {
    let Some(ready) = conds.iter().find(|c| c.type_ == READY) else {
        return;
    };
    if ready.status != "False" || ready.reason != reasons::COMPONENTS_FAILING {
        return;
    }
    let since = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == "False")
        .map_or(now, |c| c.last_transition_time.0);
    if now.duration_since(since) < deadline {
        return;
    }
    let message = format!(
        "{} — failing for longer than the progress deadline ({}): fix the cause named here",
        ready.message,
        humanize(deadline)
    );
    for c in conds.iter_mut() {
        if c.type_ == STALLED {
            *c = DesiredCondition::new(STALLED, true, reasons::COMPONENTS_FAILING, message.clone());
        } else if c.type_ == RECONCILING {
            *c = DesiredCondition::new(RECONCILING, false, reasons::COMPONENTS_FAILING, "");
        }
    }
}

fn humanize(d: k8s_openapi::jiff::SignedDuration) -> String {
    let mins = d.as_secs() / 60;
    if mins >= 60 && mins % 60 == 0 {
        format!("{}h", mins / 60)
    } else {
        format!("{mins}m")
    }
}

/// Conditions when the spec cannot be acted on without a human (bad reference, bad combination).
pub fn stalled_conditions(
    reason: &str,
    message: &str,
    release_certified: Option<bool>,
) -> Vec<DesiredCondition> {
    let mut out = vec![
        DesiredCondition::new(READY, false, reason, message),
        DesiredCondition::new(STALLED, true, reason, message),
        DesiredCondition::new(RECONCILING, false, reason, ""),
    ];
    if let Some(ok) = release_certified {
        out.push(DesiredCondition::new(
            RELEASE_CERTIFIED,
            ok,
            if ok { reasons::VERIFIED } else { reason },
            if ok { "" } else { message },
        ));
    }
    out
}

/// Conditions when a transient error interrupted the apply (it is retried with backoff).
pub fn retrying_conditions(reason: &str, message: &str) -> Vec<DesiredCondition> {
    vec![
        DesiredCondition::new(READY, false, reason, message),
        DesiredCondition::new(RECONCILING, true, reason, message),
        DesiredCondition::new(STALLED, false, reason, ""),
    ]
}

/// `Published`: which parts the site's Ingress publishes, and which it does not for lack of a
/// login. A part without a login of its own is never published without `spec.auth.oidc`
/// (docs/security.md); the site still runs it, reachable inside the cluster only.
pub fn published_condition(site: &SiteInput) -> DesiredCondition {
    let Some(ingress) = &site.spec.ingress else {
        return DesiredCondition::new(
            PUBLISHED,
            true,
            reasons::NO_INGRESS,
            "the site has no spec.ingress: nothing is published",
        );
    };
    let unpublished = catalog::ingress::unpublished(site);
    if unpublished.is_empty() {
        let paths: Vec<String> = catalog::ingress::exposed_parts(site)
            .iter()
            .filter_map(|p| p.exposure.path())
            .map(str::to_string)
            .collect();
        return DesiredCondition::new(
            PUBLISHED,
            true,
            reasons::PUBLISHED_REASON,
            if paths.is_empty() {
                format!("nothing to publish on {}", ingress.host)
            } else {
                format!("published on {}: {}", ingress.host, paths.join(", "))
            },
        );
    }
    let parts: Vec<String> = unpublished
        .iter()
        .map(|(c, p)| {
            let how = match p.exposure {
                Exposure::BehindLoginProxy(_) => "no login of its own",
                _ => "logs in through OIDC only",
            };
            format!("{} ({c}: {how})", p.exposure.path().unwrap_or(p.name))
        })
        .collect();
    DesiredCondition::new(
        PUBLISHED,
        false,
        reasons::LOGIN_REQUIRED,
        format!(
            "not published on {} because the site sets no spec.auth.oidc: {}; they run inside the cluster only. Set spec.auth.oidc to publish them behind a login",
            ingress.host,
            parts.join(", ")
        ),
    )
}

/// `NetworkRestricted`: whether the site's NetworkPolicies leave a path open to any address.
pub fn network_condition(site: &SiteInput) -> DesiredCondition {
    if !catalog::network_policy::enabled(site) {
        return DesiredCondition::new(
            NETWORK_RESTRICTED,
            false,
            reasons::NETWORK_POLICIES_DISABLED,
            "spec.networkPolicy.enabled is false: the site's pods accept connections from anywhere in the cluster and reach any address",
        );
    }
    let open = catalog::network_policy::open_egress(site);
    if open.is_empty() {
        return DesiredCondition::new(
            NETWORK_RESTRICTED,
            true,
            reasons::RESTRICTED,
            "default deny; only the catalogue's edges, access labels honoured from the site's namespace and spec.networkPolicy.clientNamespaces, egress outside the cluster only to the CIDRs the site lists",
        );
    }
    let list: Vec<String> = open
        .iter()
        .map(|(policy, ports)| {
            let ports: Vec<String> = ports.iter().map(i32::to_string).collect();
            format!("{policy} (port {})", ports.join(", "))
        })
        .collect();
    DesiredCondition::new(
        NETWORK_RESTRICTED,
        false,
        reasons::EGRESS_UNRESTRICTED,
        format!(
            "egress to any address: {}; list where the OIDC issuer (port 443), the external databases, the consortium hub and the API server are in spec.networkPolicy.oidcIssuerCIDRs, externalDatabaseCIDRs, hubCIDRs and apiServerCIDRs",
            list.join(", ")
        ),
    )
}

/// The conditions that report what the site's spec leaves less safe than it could be.
pub fn notice_conditions(site: &SiteInput) -> Vec<DesiredCondition> {
    vec![published_condition(site), network_condition(site)]
}

/// Conditions while `spec.paused` is true: readiness is left as last observed.
pub fn paused_conditions() -> Vec<DesiredCondition> {
    vec![DesiredCondition::new(
        RECONCILING,
        false,
        reasons::PAUSED,
        "spec.paused is true: no changes are applied until it is false",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(component: &str, replicas: i32, ready: i32) -> WorkloadHealth {
        WorkloadHealth {
            component: component.into(),
            image: None,
            replicas,
            ready,
            observed: true,
            failed: false,
            problem: None,
            database: false,
        }
    }

    #[test]
    fn ready_only_when_every_workload_is_ready() {
        let c = applied_conditions("r", &[w("blaze", 1, 1), w("flare", 1, 0)]);
        assert_eq!(c[0].type_, READY);
        assert_eq!(c[0].status, "False");
        assert!(
            c[0].message.contains("flare (0/1 ready)"),
            "{}",
            c[0].message
        );
        let c = applied_conditions("r", &[w("blaze", 1, 1), w("flare", 2, 2)]);
        assert_eq!(c[0].status, "True");
    }

    #[test]
    fn unobserved_generation_is_not_ready() {
        let mut x = w("blaze", 1, 1);
        x.observed = false;
        assert_eq!(applied_conditions("r", &[x])[0].status, "False");
    }

    #[test]
    fn failed_workload_is_reported_by_name() {
        let mut x = w("flare", 1, 0);
        x.failed = true;
        let c = applied_conditions("r", &[x]);
        assert_eq!(c[0].reason, "ComponentsFailing");
        assert!(c[0].message.contains("flare"));
    }

    #[test]
    fn pod_problems_name_the_kubelets_reason() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-gpas-abc", "labels": {COMPONENT_LABEL: "gpas"}},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "gpas", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                    "message": "container has runAsNonRoot and image has non-numeric user (mosaic), cannot verify user is non-root"}}}]}
        }))
        .expect("pod");
        let p = pod_problems(&[pod], &[]);
        assert!(
            p["gpas"].starts_with("gpas: CreateContainerConfigError: container has runAsNonRoot"),
            "{p:?}"
        );
        let mut x = w("gpas", 1, 0);
        x.problem = p.get("gpas").cloned();
        let c = applied_conditions("r", &[x]);
        assert_eq!(c[0].reason, "ComponentsFailing");
        assert!(
            c[0].message
                .contains("gpas (gpas: CreateContainerConfigError"),
            "{}",
            c[0].message
        );
    }

    #[test]
    fn a_failed_mount_is_named_from_the_kubelets_event() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-ml-abc", "labels": {COMPONENT_LABEL: "mainzelliste"}},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "mainzelliste", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .expect("pod");
        let event: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-ml-abc.failedmount"},
            "eventTime": "2026-11-29T10:00:00.000000Z",
            "reason": "FailedMount", "type": "Warning",
            "note": "MountVolume.SetUp failed for volume \"config\" : secret \"mainzelliste-config\" not found",
            "regarding": {"kind": "Pod", "name": "s-ml-abc"}
        }))
        .expect("event");
        assert!(
            pod_problems(std::slice::from_ref(&pod), &[]).is_empty(),
            "starting, as far as the pod says"
        );
        let p = pod_problems(&[pod], &[event]);
        assert!(
            p["mainzelliste"].contains("FailedMount")
                && p["mainzelliste"].contains("secret \"mainzelliste-config\" not found"),
            "{p:?}"
        );
    }

    #[test]
    fn starting_pods_are_no_problem() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-blaze-0", "labels": {COMPONENT_LABEL: "blaze"}},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "blaze", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .expect("pod");
        assert!(pod_problems(&[pod], &[]).is_empty());
    }

    #[test]
    fn a_database_that_is_not_ready_keeps_the_site_waiting() {
        let mut db = w("mainzelliste database", 1, 0);
        db.database = true;
        let c = applied_conditions("r", &[w("mainzelliste", 1, 1), db]);
        assert_eq!(c[0].status, "False");
        assert!(
            c[0].message.contains("mainzelliste database (0/1 ready)"),
            "{}",
            c[0].message
        );
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": "s-mainzelliste-db", "labels": {COMPONENT_LABEL: "mainzelliste"}},
            "spec": {"instances": 3}, "status": {"readyInstances": 2}
        }))
        .expect("cluster");
        let h = database_health(&obj).expect("health");
        assert_eq!((h.replicas, h.ready, h.database), (3, 2, true));
    }

    #[test]
    fn components_failing_past_the_deadline_are_stalled() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        use k8s_openapi::jiff::{SignedDuration, Timestamp};
        let mut x = w("flare", 1, 0);
        x.problem = Some("flare: CrashLoopBackOff".into());
        let t0: Timestamp = "2026-11-01T10:00:00Z".parse().expect("ts");
        let was_failing = vec![Condition {
            type_: READY.into(),
            status: "False".into(),
            reason: reasons::COMPONENTS_FAILING.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(t0),
        }];
        let deadline = SignedDuration::from_mins(30);
        let find = |c: &[DesiredCondition], t: &str| {
            c.iter().find(|d| d.type_ == t).cloned().expect("condition")
        };
        // Within the deadline: still progressing (Reconciling), not Stalled.
        let mut c = applied_conditions("r", std::slice::from_ref(&x));
        escalate(
            &mut c,
            &was_failing,
            t0 + SignedDuration::from_mins(29),
            deadline,
        );
        assert_eq!(find(&c, STALLED).status, "False");
        assert_eq!(find(&c, RECONCILING).status, "True");
        // Past it: Stalled with the cause, no longer Reconciling; Ready stays False.
        let mut c = applied_conditions("r", std::slice::from_ref(&x));
        escalate(
            &mut c,
            &was_failing,
            t0 + SignedDuration::from_mins(31),
            deadline,
        );
        let stalled = find(&c, STALLED);
        assert_eq!(
            (stalled.status, stalled.reason.as_str()),
            ("True", reasons::COMPONENTS_FAILING)
        );
        assert!(
            stalled.message.contains("flare: CrashLoopBackOff"),
            "{}",
            stalled.message
        );
        assert_eq!(find(&c, RECONCILING).status, "False");
        assert_eq!(find(&c, READY).status, "False");
        // A site that was Ready a moment ago starts counting now.
        let mut c = applied_conditions("r", std::slice::from_ref(&x));
        escalate(&mut c, &[], t0 + SignedDuration::from_mins(31), deadline);
        assert_eq!(find(&c, STALLED).status, "False");
        // Waiting (not failing) never escalates.
        let mut c = applied_conditions("r", &[w("flare", 1, 0)]);
        escalate(
            &mut c,
            &was_failing,
            t0 + SignedDuration::from_mins(90),
            deadline,
        );
        assert_eq!(find(&c, STALLED).status, "False");
    }

    #[test]
    fn stalled_sets_stalled_true_and_ready_false() {
        let c = stalled_conditions("ReleaseNotFound", "x", None);
        assert!(c.iter().any(|d| d.type_ == STALLED && d.status == "True"));
        assert!(c.iter().any(|d| d.type_ == READY && d.status == "False"));
    }
}
