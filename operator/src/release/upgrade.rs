//! The upgrade decision a DizSite's controller takes on every reconcile: stay, upgrade, roll
//! back or hold. Pure: everything it depends on, including the time, is an argument.
//!
//! # Inputs
//!
//! * the **candidate**: the release the spec asks for (the pinned `release.name`, or the newest
//!   certified release on `release.channel`), with its [`fingerprint`];
//! * the site's **rollout status** ([`RolloutStatus`]): the release it runs, the one it is moving
//!   to, since when, and the releases that failed on it;
//! * the site's facts for the [rollout gate](super::rollout), whether the site is **ready** (all
//!   enabled components ready), the time, and whether a retry was requested with the annotation
//!   [`RETRY_ANNOTATION`].
//!
//! # Rules, in the order they are applied
//!
//! 1. **An upgrade in flight is finished first** (`target` and `upgradeStarted` set):
//!    * ready → [`Decision::Stay`] on the target: the upgrade completed;
//!    * not ready and the progress deadline (`spec.rollout.progressDeadline` of the candidate,
//!      default 30m) has passed since `upgradeStarted` → [`Decision::Rollback`] to `previous`;
//!      for a first install there is nothing to roll back to, so [`Decision::Hold`] on the target
//!      (it keeps being reconciled and completes if it becomes ready later);
//!    * otherwise → keep waiting: [`Decision::Stay`] on the target with `waiting: None`.
//!
//!    A new candidate does not interrupt an upgrade; it is considered once the upgrade completed
//!    or was rolled back. The one exception is a first install: it has no healthy release to
//!    protect, so a different candidate replaces the target at once.
//! 2. **First install** (no `current`): [`Decision::Upgrade`] at once. A new site is not in
//!    production yet, so neither waves nor the maintenance window apply.
//! 3. **Nothing to do** (candidate = `current`): [`Decision::Stay`].
//! 4. **Failed before**: the candidate is in `failed` with the same fingerprint and no retry was
//!    requested → [`Decision::Hold`] on `current`, with a message naming the release and how to
//!    retry. The same release with changed content (another fingerprint) is a new attempt.
//! 5. **Gate**: the [rollout gate](super::rollout::gate) allows it → [`Decision::Upgrade`];
//!    otherwise [`Decision::Stay`] on `current` with the gate, so the status can say "waiting
//!    for wave X until T" or "waiting for the maintenance window opening at T". A retry does not
//!    bypass waves or windows.
//!
//! A pinned release older than `current` is a deliberate choice of the site admin and is applied
//! like any other change; following a channel never moves to an older version because the
//! candidate is the newest certified release on the channel.
//!
//! # What the caller does with a decision
//!
//! [`next_status`] is that contract as code:
//! * `Upgrade { from, to }`: apply `to`; `previous = from`, `target = to`, `upgradeStarted = now`
//!   (`current` stays what ran before until the upgrade completes); entries for `to` are removed
//!   from `failed`. When the upgrade was allowed by a retry, the caller also removes the retry
//!   annotation, so a release that fails again is not retried in a loop.
//! * `Stay { on }` while upgrading to `on` and ready: `current = on`; `target`, `previous` and
//!   `upgradeStarted` are cleared.
//! * `Rollback { from, to, reason }`: apply `to`; `current = to`, the upgrade fields are cleared,
//!   and `from` is recorded in `failed` with the candidate's fingerprint (when the candidate is
//!   `from`) so that it is held, not retried, until its content changes or a retry is requested.
//! * `Hold` and other `Stay`s: nothing changes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::ResourceExt;

use super::canonical::{CanonicalError, canonicalize};
use super::rollout::{Gate, SiteFacts, gate, progress_deadline};
use crate::api::{ComponentRelease, ComponentReleaseSpec};

/// Annotation on a DizSite asking to try a release again that failed on it; the value is the
/// ComponentRelease's name.
pub const RETRY_ANNOTATION: &str = "diz.miracum.org/retry-release";

/// How many failed releases a site remembers; older entries are dropped first.
pub const MAX_FAILED: usize = 10;

/// A site's rollout state, as the controller keeps it in the DizSite status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutStatus {
    pub current: Option<String>,
    pub previous: Option<String>,
    pub target: Option<String>,
    pub upgrade_started: Option<Timestamp>,
    pub failed: Vec<FailedRelease>,
}

/// A release that did not become ready on this site and was rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRelease {
    pub name: String,
    /// [`fingerprint`] of the failed release's content, so that a changed release is retried.
    pub fingerprint: String,
    pub reason: String,
    pub at: Timestamp,
}

/// The release the site's spec asks for, resolved to an object.
#[derive(Clone, Debug)]
pub struct ResolvedCandidate<'a> {
    pub name: String,
    pub release: &'a ComponentRelease,
    pub fingerprint: String,
}

impl<'a> ResolvedCandidate<'a> {
    /// Fails only for content that cannot be canonicalised, which also cannot be certified.
    pub fn new(release: &'a ComponentRelease) -> Result<Self, CanonicalError> {
        Ok(Self {
            name: release.name_any(),
            fingerprint: fingerprint(&release.spec)?,
            release,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Stay {
        on: String,
        waiting: Option<Gate>,
    },
    Upgrade {
        from: Option<String>,
        to: String,
    },
    Rollback {
        from: String,
        to: String,
        reason: String,
    },
    Hold {
        on: String,
        reason: String,
    },
}

/// SHA-256 (lowercase hex) of the release's canonical encoding: the certified content, i.e.
/// version, channel and images. Rollout settings are not part of it, so rescheduling waves does
/// not un-hold a failed release; new images do.
pub fn fingerprint(spec: &ComponentReleaseSpec) -> Result<String, CanonicalError> {
    let bytes = canonicalize(spec)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the DizSite's annotations ask to retry `release_name`.
pub fn retry_requested(annotations: &BTreeMap<String, String>, release_name: &str) -> bool {
    annotations
        .get(RETRY_ANNOTATION)
        .is_some_and(|v| v.trim() == release_name)
}

/// The decision for this reconcile; see the module docs for the rules.
pub fn decide(
    candidate: &ResolvedCandidate<'_>,
    status: &RolloutStatus,
    site: &SiteFacts<'_>,
    site_ready: bool,
    now: Timestamp,
    retry_requested: bool,
) -> Decision {
    if let (Some(target), Some(started)) = (&status.target, status.upgrade_started) {
        return in_flight(candidate, status, target, started, site_ready, now);
    }

    let Some(current) = &status.current else {
        return Decision::Upgrade {
            from: None,
            to: candidate.name.clone(),
        };
    };
    if *current == candidate.name {
        return Decision::Stay {
            on: current.clone(),
            waiting: None,
        };
    }
    if !retry_requested
        && let Some(f) = status
            .failed
            .iter()
            .find(|f| f.name == candidate.name && f.fingerprint == candidate.fingerprint)
    {
        return Decision::Hold {
            on: current.clone(),
            reason: format!(
                "release {name} failed on this site at {at} ({reason}) and was rolled back; the \
                 site stays on {current}. To try it again, annotate the DizSite with \
                 {RETRY_ANNOTATION}={name}; a release whose images change is tried again \
                 automatically",
                name = f.name,
                at = f.at,
                reason = f.reason,
            ),
        };
    }
    match gate(candidate.release, site, now) {
        Gate::Allowed => Decision::Upgrade {
            from: Some(current.clone()),
            to: candidate.name.clone(),
        },
        waiting => Decision::Stay {
            on: current.clone(),
            waiting: Some(waiting),
        },
    }
}

fn in_flight(
    candidate: &ResolvedCandidate<'_>,
    status: &RolloutStatus,
    target: &str,
    started: Timestamp,
    site_ready: bool,
    now: Timestamp,
) -> Decision {
    if site_ready {
        return Decision::Stay {
            on: target.to_string(),
            waiting: None,
        };
    }
    let Some(previous) = &status.previous else {
        if candidate.name != target {
            return Decision::Upgrade {
                from: None,
                to: candidate.name.clone(),
            };
        }
        let deadline = progress_deadline(candidate.release);
        if started.checked_add(deadline).is_ok_and(|d| now > d) {
            return Decision::Hold {
                on: target.to_string(),
                reason: format!(
                    "the first install of release {target} is not ready {deadline:#} after it \
                     started and there is no earlier release to roll back to; check the \
                     components' events and logs, or set another release"
                ),
            };
        }
        return Decision::Stay {
            on: target.to_string(),
            waiting: None,
        };
    };
    let deadline = progress_deadline(candidate.release);
    match started.checked_add(deadline) {
        Ok(due) if now > due => Decision::Rollback {
            from: target.to_string(),
            to: previous.clone(),
            reason: format!(
                "release {target} was not ready within the progress deadline of {deadline:#} \
                 (upgrade started at {started})"
            ),
        },
        _ => Decision::Stay {
            on: target.to_string(),
            waiting: None,
        },
    }
}

/// The rollout status after the caller carried out `decision` (see "What the caller does with
/// a decision" in the module docs).
pub fn next_status(
    status: &RolloutStatus,
    decision: &Decision,
    candidate: &ResolvedCandidate<'_>,
    site_ready: bool,
    now: Timestamp,
) -> RolloutStatus {
    let mut next = status.clone();
    match decision {
        Decision::Upgrade { from, to } => {
            next.failed.retain(|f| f.name != *to);
            if site_ready {
                // Every workload already runs the target and its controller has observed it
                // (readiness counts only observed generations): nothing is in flight, so the
                // site is on the target now. Recording it later would report Ready while the
                // status still names no current release.
                next.current = Some(to.clone());
                next.previous = None;
                next.target = None;
                next.upgrade_started = None;
            } else {
                next.previous = from.clone();
                next.target = Some(to.clone());
                next.upgrade_started = Some(now);
            }
        }
        Decision::Stay { on, .. } => {
            if site_ready && status.upgrade_started.is_some() && status.target.as_ref() == Some(on)
            {
                next.current = Some(on.clone());
                next.previous = None;
                next.target = None;
                next.upgrade_started = None;
            }
        }
        Decision::Rollback { from, to, reason } => {
            next.current = Some(to.clone());
            next.previous = None;
            next.target = None;
            next.upgrade_started = None;
            next.failed.retain(|f| f.name != *from);
            next.failed.push(FailedRelease {
                name: from.clone(),
                // Unknown when the spec moved on during the upgrade; an empty fingerprint never
                // matches, so such a release is not held.
                fingerprint: if candidate.name == *from {
                    candidate.fingerprint.clone()
                } else {
                    String::new()
                },
                reason: reason.clone(),
                at: now,
            });
            let excess = next.failed.len().saturating_sub(MAX_FAILED);
            next.failed.drain(..excess);
        }
        Decision::Hold { .. } => {}
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MaintenanceWindow;
    use crate::release::rollout::tests::{release, ts, wave};

    fn facts<'a>(
        labels: &'a BTreeMap<String, String>,
        window: Option<&'a MaintenanceWindow>,
    ) -> SiteFacts<'a> {
        SiteFacts {
            site_id: "erlangen",
            labels,
            window,
        }
    }

    fn on(current: &str) -> RolloutStatus {
        RolloutStatus {
            current: Some(current.to_string()),
            ..RolloutStatus::default()
        }
    }

    fn upgrading(from: Option<&str>, to: &str, started: &str) -> RolloutStatus {
        RolloutStatus {
            current: from.map(str::to_string),
            previous: from.map(str::to_string),
            target: Some(to.to_string()),
            upgrade_started: Some(ts(started)),
            failed: Vec::new(),
        }
    }

    fn candidate(r: &ComponentRelease) -> ResolvedCandidate<'_> {
        ResolvedCandidate::new(r).expect("canonical test release")
    }

    const NOW: &str = "2026-03-07T01:30:00Z"; // a Saturday, 02:30 in Berlin

    #[test]
    fn fingerprint_is_sha256_of_the_canonical_encoding_and_follows_content() {
        let r = release("stable-2026.1", "2026.1", vec![]);
        let f = fingerprint(&r.spec).expect("fingerprint");
        assert_eq!(f.len(), 64);
        assert!(
            f.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let mut changed = r.clone();
        if let Some(img) = changed.spec.components.get_mut("blaze") {
            img.digest = format!("sha256:{}", "b".repeat(64));
        }
        assert_ne!(fingerprint(&changed.spec).ok(), Some(f.clone()));
        // Rescheduling the rollout is not a content change.
        let mut rescheduled = r.clone();
        if let Some(ro) = rescheduled.spec.rollout.as_mut() {
            ro.progress_deadline = "2h".to_string();
        }
        assert_eq!(fingerprint(&rescheduled.spec).ok(), Some(f));
    }

    #[test]
    fn first_install_upgrades_at_once_ignoring_waves_and_window() {
        let labels = BTreeMap::new();
        let closed = MaintenanceWindow {
            schedule: "0 2 * * SUN".to_string(),
            duration: "1h".to_string(),
            time_zone: "Europe/Berlin".to_string(),
        };
        let r = release(
            "r2",
            "2026.2",
            vec![wave(
                "pilot",
                &["erlangen"],
                &[],
                Some("2030-01-01T00:00:00Z"),
            )],
        );
        let c = candidate(&r);
        let d = decide(
            &c,
            &RolloutStatus::default(),
            &facts(&labels, Some(&closed)),
            false,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Upgrade {
                from: None,
                to: "r2".to_string()
            }
        );
        let s = next_status(&RolloutStatus::default(), &d, &c, false, ts(NOW));
        assert_eq!(s.target.as_deref(), Some("r2"));
        assert_eq!(s.upgrade_started, Some(ts(NOW)));
        assert_eq!(s.current, None);
    }

    #[test]
    fn stays_when_the_candidate_runs() {
        let labels = BTreeMap::new();
        let r = release("r1", "2026.1", vec![]);
        let d = decide(
            &candidate(&r),
            &on("r1"),
            &facts(&labels, None),
            true,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Stay {
                on: "r1".to_string(),
                waiting: None
            }
        );
    }

    #[test]
    fn upgrades_when_the_gate_allows() {
        let labels = BTreeMap::new();
        let window = MaintenanceWindow {
            schedule: "0 2 * * SAT".to_string(),
            duration: "2h".to_string(),
            time_zone: "Europe/Berlin".to_string(),
        };
        let r = release(
            "r2",
            "2026.2",
            vec![wave(
                "pilot",
                &["erlangen"],
                &[],
                Some("2026-03-01T00:00:00Z"),
            )],
        );
        let c = candidate(&r);
        let d = decide(
            &c,
            &on("r1"),
            &facts(&labels, Some(&window)),
            true,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Upgrade {
                from: Some("r1".to_string()),
                to: "r2".to_string()
            }
        );
        // Right after the apply the workloads' controllers have not observed the new spec yet.
        let s = next_status(&on("r1"), &d, &c, false, ts(NOW));
        assert_eq!(s, upgrading(Some("r1"), "r2", NOW));
        // When they already have (nothing the site runs changed), the site is on r2 at once.
        let s = next_status(&on("r1"), &d, &c, true, ts(NOW));
        assert_eq!(s, on("r2"));
    }

    #[test]
    fn waits_for_the_wave() {
        let labels = BTreeMap::new();
        let r = release(
            "r2",
            "2026.2",
            vec![wave(
                "pilot",
                &["erlangen"],
                &[],
                Some("2026-04-01T06:00:00Z"),
            )],
        );
        let d = decide(
            &candidate(&r),
            &on("r1"),
            &facts(&labels, None),
            true,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Stay {
                on: "r1".to_string(),
                waiting: Some(Gate::WaitingForWave {
                    wave: "pilot".to_string(),
                    not_before: ts("2026-04-01T06:00:00Z")
                })
            }
        );
    }

    #[test]
    fn waits_for_the_window() {
        let labels = BTreeMap::new();
        let window = MaintenanceWindow {
            schedule: "0 2 * * SUN".to_string(),
            duration: "2h".to_string(),
            time_zone: "Europe/Berlin".to_string(),
        };
        let r = release("r2", "2026.2", vec![]);
        let d = decide(
            &candidate(&r),
            &on("r1"),
            &facts(&labels, Some(&window)),
            true,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Stay {
                on: "r1".to_string(),
                waiting: Some(Gate::WaitingForWindow {
                    opens_at: ts("2026-03-08T01:00:00Z")
                })
            }
        );
    }

    #[test]
    fn ready_after_upgrade_completes_it() {
        let labels = BTreeMap::new();
        let r = release("r2", "2026.2", vec![]);
        let c = candidate(&r);
        let status = upgrading(Some("r1"), "r2", "2026-03-07T01:00:00Z");
        let d = decide(&c, &status, &facts(&labels, None), true, ts(NOW), false);
        assert_eq!(
            d,
            Decision::Stay {
                on: "r2".to_string(),
                waiting: None
            }
        );
        assert_eq!(next_status(&status, &d, &c, true, ts(NOW)), on("r2"));
        // Not ready yet, deadline not passed: keep waiting, nothing changes.
        let d = decide(&c, &status, &facts(&labels, None), false, ts(NOW), false);
        assert_eq!(
            d,
            Decision::Stay {
                on: "r2".to_string(),
                waiting: None
            }
        );
        assert_eq!(next_status(&status, &d, &c, false, ts(NOW)), status);
    }

    #[test]
    fn rolls_back_after_the_progress_deadline() {
        let labels = BTreeMap::new();
        let r = release("r2", "2026.2", vec![]);
        let c = candidate(&r);
        let status = upgrading(Some("r1"), "r2", "2026-03-07T01:00:00Z");
        // Exactly at the deadline (30m) it still waits.
        let at_deadline = decide(
            &c,
            &status,
            &facts(&labels, None),
            false,
            ts("2026-03-07T01:30:00Z"),
            false,
        );
        assert!(matches!(at_deadline, Decision::Stay { .. }));
        let later = ts("2026-03-07T01:30:01Z");
        let d = decide(&c, &status, &facts(&labels, None), false, later, false);
        let Decision::Rollback { from, to, reason } = &d else {
            panic!("expected a rollback, got {d:?}");
        };
        assert_eq!((from.as_str(), to.as_str()), ("r2", "r1"));
        assert!(reason.contains("progress deadline of 30m"), "{reason}");
        let s = next_status(&status, &d, &c, false, later);
        assert_eq!(s.current.as_deref(), Some("r1"));
        assert_eq!(
            (s.target.clone(), s.previous.clone(), s.upgrade_started),
            (None, None, None)
        );
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].name, "r2");
        assert_eq!(s.failed[0].fingerprint, c.fingerprint);
        assert_eq!(s.failed[0].at, later);
    }

    #[test]
    fn first_install_past_deadline_holds_without_rollback() {
        let labels = BTreeMap::new();
        let r = release("r1", "2026.1", vec![]);
        let c = candidate(&r);
        let status = upgrading(None, "r1", "2026-03-07T00:00:00Z");
        let d = decide(&c, &status, &facts(&labels, None), false, ts(NOW), false);
        assert!(
            matches!(&d, Decision::Hold { on, .. } if on == "r1"),
            "{d:?}"
        );
        // Another release for a stuck first install replaces it at once.
        let other = release("r1-fix", "2026.1.1", vec![]);
        let d = decide(
            &candidate(&other),
            &status,
            &facts(&labels, None),
            false,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Upgrade {
                from: None,
                to: "r1-fix".to_string()
            }
        );
    }

    fn failed_status(c: &ResolvedCandidate<'_>) -> RolloutStatus {
        RolloutStatus {
            failed: vec![FailedRelease {
                name: c.name.clone(),
                fingerprint: c.fingerprint.clone(),
                reason: "not ready within 30m".to_string(),
                at: ts("2026-03-01T02:00:00Z"),
            }],
            ..on("r1")
        }
    }

    #[test]
    fn holds_a_release_that_failed() {
        let labels = BTreeMap::new();
        let r = release("r2", "2026.2", vec![]);
        let c = candidate(&r);
        let status = failed_status(&c);
        let d = decide(&c, &status, &facts(&labels, None), true, ts(NOW), false);
        let Decision::Hold { on, reason } = &d else {
            panic!("expected hold, got {d:?}");
        };
        assert_eq!(on, "r1");
        assert!(reason.contains("release r2 failed"), "{reason}");
        assert!(
            reason.contains("diz.miracum.org/retry-release=r2"),
            "{reason}"
        );
        assert_eq!(next_status(&status, &d, &c, true, ts(NOW)), status);
    }

    #[test]
    fn retry_by_annotation() {
        let labels = BTreeMap::new();
        let r = release("r2", "2026.2", vec![]);
        let c = candidate(&r);
        let status = failed_status(&c);
        let annotations: BTreeMap<String, String> =
            [(RETRY_ANNOTATION.to_string(), "r2".to_string())].into();
        assert!(retry_requested(&annotations, "r2"));
        assert!(!retry_requested(&annotations, "r3"));
        assert!(!retry_requested(&BTreeMap::new(), "r2"));
        let d = decide(
            &c,
            &status,
            &facts(&labels, None),
            true,
            ts(NOW),
            retry_requested(&annotations, &c.name),
        );
        assert_eq!(
            d,
            Decision::Upgrade {
                from: Some("r1".to_string()),
                to: "r2".to_string()
            }
        );
        // The retry clears the old failure record.
        assert!(
            next_status(&status, &d, &c, true, ts(NOW))
                .failed
                .is_empty()
        );
    }

    #[test]
    fn retry_because_the_release_content_changed() {
        let labels = BTreeMap::new();
        let r = release("r2", "2026.2", vec![]);
        let status = failed_status(&candidate(&r));
        let mut fixed = r.clone();
        if let Some(img) = fixed.spec.components.get_mut("blaze") {
            img.digest = format!("sha256:{}", "c".repeat(64));
        }
        let d = decide(
            &candidate(&fixed),
            &status,
            &facts(&labels, None),
            true,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Upgrade {
                from: Some("r1".to_string()),
                to: "r2".to_string()
            }
        );
    }

    #[test]
    fn a_new_candidate_waits_for_the_upgrade_in_flight() {
        let labels = BTreeMap::new();
        let r3 = release("r3", "2026.3", vec![]);
        let status = upgrading(Some("r1"), "r2", "2026-03-07T01:20:00Z");
        let d = decide(
            &candidate(&r3),
            &status,
            &facts(&labels, None),
            false,
            ts(NOW),
            false,
        );
        assert_eq!(
            d,
            Decision::Stay {
                on: "r2".to_string(),
                waiting: None
            }
        );
    }

    #[test]
    fn failed_list_is_bounded() {
        let r = release("r2", "2026.2", vec![]);
        let c = candidate(&r);
        let mut status = upgrading(Some("r1"), "r2", "2026-03-07T00:00:00Z");
        status.failed = (0..MAX_FAILED)
            .map(|i| FailedRelease {
                name: format!("old-{i}"),
                fingerprint: String::new(),
                reason: String::new(),
                at: ts("2026-01-01T00:00:00Z"),
            })
            .collect();
        let d = Decision::Rollback {
            from: "r2".to_string(),
            to: "r1".to_string(),
            reason: "late".to_string(),
        };
        let s = next_status(&status, &d, &c, false, ts(NOW));
        assert_eq!(s.failed.len(), MAX_FAILED);
        assert_eq!(s.failed[0].name, "old-1");
        assert_eq!(s.failed.last().map(|f| f.name.as_str()), Some("r2"));
    }
}
