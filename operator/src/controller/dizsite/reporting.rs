//! The `Reporting` condition of a DizSite with `spec.reporting`: from the reporter CronJob's
//! status (`lastScheduleTime` against `lastSuccessfulTime`) and the reporter pods' problems
//! (a missing key Secret shows there, as for every component). Pure.

use chrono::{DateTime, Utc};

use crate::api::ReportingSpec;
use crate::api::conditions::{DesiredCondition, REPORTING};
use crate::api::reasons;
use crate::catalog::reporter::{self, NotDeployable};

/// What the cluster says about the reporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The CronJob exists (the operator applied it).
    pub cronjob: bool,
    pub last_schedule: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Why a reporter pod does not run (`status::pod_problems` for the reporter's pods).
    pub pod_problem: Option<String>,
}

/// Reads the times from a (cached, trimmed) CronJob.
pub fn observed(
    cronjob: Option<&kube::core::DynamicObject>,
    pod_problem: Option<String>,
) -> Observed {
    let time = |path: &str| {
        cronjob
            .and_then(|c| c.data.pointer(path))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
    };
    Observed {
        cronjob: cronjob.is_some(),
        last_schedule: time("/status/lastScheduleTime"),
        last_success: time("/status/lastSuccessfulTime"),
        pod_problem,
    }
}

/// The condition, or `None` when the site does not report (the condition is then removed).
pub fn condition(
    site_name: &str,
    wanted: Result<Option<&ReportingSpec>, NotDeployable>,
    seen: &Observed,
    now: DateTime<Utc>,
) -> Option<DesiredCondition> {
    let spec = match wanted {
        Ok(None) => return None,
        Err(NotDeployable::NoImage { release }) => {
            return Some(DesiredCondition::new(
                REPORTING,
                false,
                reasons::REPORTER_IMAGE_MISSING,
                format!(
                    "release {release} pins no {} image, so no report is scheduled; move the site to a release that pins it",
                    reporter::IMAGE_KEY
                ),
            ));
        }
        Err(NotDeployable::NoBlaze) => {
            return Some(DesiredCondition::new(
                REPORTING,
                false,
                reasons::REPORTING_NEEDS_BLAZE,
                "spec.reporting needs spec.components.blaze: its counts are the Data Map; nothing is scheduled".to_string(),
            ));
        }
        Ok(Some(spec)) => spec,
    };
    let cronjob = reporter::name(site_name);
    if let Some(problem) = &seen.pod_problem {
        return Some(DesiredCondition::new(
            REPORTING,
            false,
            reasons::REPORT_FAILING,
            format!(
                "the reporter's pod cannot run: {problem} (the key Secret is {}; create it with `miracolix-operator report keygen` and register its public key at the hub)",
                spec.key_secret(site_name)
            ),
        ));
    }
    let every = format!("every {} min", spec.interval_minutes);
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let running = |t: DateTime<Utc>| (now - t).num_seconds() < reporter::RUN_DEADLINE_SECONDS;
    let (status, reason, message) = match (seen.last_schedule, seen.last_success) {
        (Some(sched), Some(ok)) if ok >= sched => (
            true,
            reasons::REPORTED,
            format!("last report delivered at {} ({every})", fmt(ok)),
        ),
        (Some(sched), Some(ok)) if running(sched) => (
            true,
            reasons::REPORTED,
            format!(
                "last report delivered at {}; the run scheduled at {} is under way",
                fmt(ok),
                fmt(sched)
            ),
        ),
        (Some(sched), None) if running(sched) => (
            false,
            reasons::REPORT_PENDING,
            format!(
                "the first report, scheduled at {}, is under way",
                fmt(sched)
            ),
        ),
        (Some(sched), last) => (
            false,
            reasons::REPORT_FAILING,
            format!(
                "the report scheduled at {} was not delivered (last delivered: {}); the hub's answer is in `kubectl logs -l diz.miracum.org/component={}` of CronJob {cronjob}",
                fmt(sched),
                last.map_or("never".to_string(), fmt),
                reporter::PART
            ),
        ),
        (None, _) if !seen.cronjob => (
            false,
            reasons::REPORT_PENDING,
            format!("CronJob {cronjob} is being created"),
        ),
        (None, _) => (
            false,
            reasons::REPORT_PENDING,
            format!("CronJob {cronjob} has not run yet ({every})"),
        ),
    };
    Some(DesiredCondition::new(REPORTING, status, reason, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ReportingSpec {
        serde_json::from_value(serde_json::json!({"hubUrl": "https://hub.example.org"}))
            .expect("spec")
    }

    #[test]
    fn reporting_condition_table() {
        let t = |s: &str| Some(s.parse::<DateTime<Utc>>().expect("time"));
        let now: DateTime<Utc> = "2026-11-30T02:30:00Z".parse().expect("now");
        let spec = spec();
        let seen = |sched: Option<DateTime<Utc>>, ok: Option<DateTime<Utc>>| Observed {
            cronjob: true,
            last_schedule: sched,
            last_success: ok,
            pod_problem: None,
        };
        // (what, observed, status, reason, a word of the message)
        let cases = [
            ("never ran", seen(None, None), false, reasons::REPORT_PENDING, "not run yet"),
            (
                "not created yet",
                Observed::default(),
                false,
                reasons::REPORT_PENDING,
                "being created",
            ),
            (
                "last run succeeded",
                seen(t("2026-11-30T02:07:00Z"), t("2026-11-30T02:07:03Z")),
                true,
                reasons::REPORTED,
                "02:07:03",
            ),
            (
                "next run under way",
                seen(t("2026-11-30T02:27:00Z"), t("2026-11-30T01:07:03Z")),
                true,
                reasons::REPORTED,
                "under way",
            ),
            (
                "first run under way",
                seen(t("2026-11-30T02:27:00Z"), None),
                false,
                reasons::REPORT_PENDING,
                "under way",
            ),
            (
                "last run failed",
                seen(t("2026-11-30T02:07:00Z"), t("2026-11-30T01:07:03Z")),
                false,
                reasons::REPORT_FAILING,
                "01:07:03",
            ),
            (
                "never succeeded",
                seen(t("2026-11-30T02:07:00Z"), None),
                false,
                reasons::REPORT_FAILING,
                "never",
            ),
            (
                "key Secret missing",
                Observed {
                    pod_problem: Some(
                        "pod erlangen-reporter-1-x: FailedMount: secret \"erlangen-report-key\" not found".into(),
                    ),
                    ..seen(t("2026-11-30T02:07:00Z"), None)
                },
                false,
                reasons::REPORT_FAILING,
                "erlangen-report-key",
            ),
        ];
        for (what, observed, status, reason, word) in cases {
            let c = condition("erlangen", Ok(Some(&spec)), &observed, now).expect(what);
            assert_eq!(c.type_, REPORTING, "{what}");
            assert_eq!(
                c.status == crate::api::conditions::TRUE,
                status,
                "{what}: {c:?}"
            );
            assert_eq!(c.reason, reason, "{what}");
            assert!(c.message.contains(word), "{what}: {}", c.message);
        }
        assert!(condition("erlangen", Ok(None), &seen(None, None), now).is_none());
        let c = condition(
            "erlangen",
            Err(NotDeployable::NoImage {
                release: "miracolix-2025.2".into(),
            }),
            &Observed::default(),
            now,
        )
        .expect("condition");
        assert_eq!(c.reason, reasons::REPORTER_IMAGE_MISSING);
        assert!(c.message.contains("miracolix-2025.2"), "{}", c.message);
        let c = condition(
            "erlangen",
            Err(NotDeployable::NoBlaze),
            &Observed::default(),
            now,
        )
        .expect("condition");
        assert_eq!(c.reason, reasons::REPORTING_NEEDS_BLAZE);
    }

    #[test]
    fn times_come_from_the_cronjob_status() {
        let cj: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "erlangen-reporter"},
            "status": {"lastScheduleTime": "2026-11-30T02:07:00Z",
                       "lastSuccessfulTime": "2026-11-30T02:07:03Z"}
        }))
        .expect("cronjob");
        let o = observed(Some(&cj), None);
        assert!(o.cronjob);
        assert_eq!(
            o.last_success,
            Some("2026-11-30T02:07:03Z".parse().expect("time"))
        );
        assert_eq!(observed(None, None), Observed::default());
    }
}
