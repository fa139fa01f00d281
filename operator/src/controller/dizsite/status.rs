//! The DizSite status, computed from what the API server reports about the children. Pure.

use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::api::conditions::{DesiredCondition, READY, RECONCILING, RELEASE_CERTIFIED, STALLED};
use crate::api::{ComponentStatus, DizSiteSpec};
use crate::catalog::{COMPONENT_LABEL, Component};

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
            })
        })
        .collect()
}

/// Per-component status, in catalogue order, for every component (enabled or not).
pub fn component_statuses(spec: &DizSiteSpec, health: &[WorkloadHealth]) -> Vec<ComponentStatus> {
    Component::all()
        .map(|c| {
            let mine: Vec<&WorkloadHealth> =
                health.iter().filter(|w| w.component == c.name()).collect();
            ComponentStatus {
                name: c.name().to_string(),
                enabled: c.enabled(&spec.components),
                image: mine.iter().find_map(|w| w.image.clone()),
                replicas: mine.iter().map(|w| w.replicas).sum(),
                ready_replicas: mine.iter().map(|w| w.ready).sum(),
            }
        })
        .collect()
}

/// Conditions after a successful apply.
pub fn applied_conditions(release: &str, health: &[WorkloadHealth]) -> Vec<DesiredCondition> {
    let failing: Vec<&str> = health
        .iter()
        .filter(|w| w.failed && w.ready < w.replicas)
        .map(|w| w.component.as_str())
        .collect();
    let waiting: Vec<String> = health
        .iter()
        .filter(|w| !w.observed || w.ready < w.replicas)
        .map(|w| format!("{} ({}/{} ready)", w.component, w.ready, w.replicas))
        .collect();
    let certified = DesiredCondition::new(
        RELEASE_CERTIFIED,
        true,
        "Verified",
        format!("release {release} is certified"),
    );
    let not_stalled = DesiredCondition::new(STALLED, false, "Progressing", "");
    if !failing.is_empty() {
        let msg = format!(
            "components failing to become ready on release {release}: {}",
            failing.join(", ")
        );
        return vec![
            DesiredCondition::new(READY, false, "ComponentsFailing", msg.clone()),
            DesiredCondition::new(RECONCILING, true, "ComponentsFailing", msg),
            not_stalled,
            certified,
        ];
    }
    if waiting.is_empty() {
        let msg = format!("all {} workloads ready on release {release}", health.len());
        vec![
            DesiredCondition::new(READY, true, "Ready", msg),
            DesiredCondition::new(RECONCILING, false, "Ready", ""),
            DesiredCondition::new(STALLED, false, "Ready", ""),
            certified,
        ]
    } else {
        let msg = format!("waiting for {}", waiting.join(", "));
        vec![
            DesiredCondition::new(READY, false, "Progressing", msg.clone()),
            DesiredCondition::new(RECONCILING, true, "Progressing", msg),
            not_stalled,
            certified,
        ]
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
            if ok { "Verified" } else { reason },
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

/// Conditions while `spec.paused` is true: readiness is left as last observed.
pub fn paused_conditions() -> Vec<DesiredCondition> {
    vec![DesiredCondition::new(
        RECONCILING,
        false,
        "Paused",
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
    fn stalled_sets_stalled_true_and_ready_false() {
        let c = stalled_conditions("ReleaseNotFound", "x", None);
        assert!(c.iter().any(|d| d.type_ == STALLED && d.status == "True"));
        assert!(c.iter().any(|d| d.type_ == READY && d.status == "False"));
    }
}
