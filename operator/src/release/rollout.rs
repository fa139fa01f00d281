//! The rollout gate: may this site move to this release now?
//!
//! Pure: the caller passes the release, what it knows about the site, and the time.
//!
//! # Rules, in order
//!
//! 1. **No waves** (`spec.rollout` absent or `waves: []`): the release is not held back by
//!    waves.
//! 2. **The site's wave** is the first wave, in the order written, that names the site's `siteId`
//!    in `sites` or whose `siteSelector.matchLabels` are all among the DizSite's labels (an empty
//!    `matchLabels` selects every site, as label selectors do in Kubernetes). A site no wave
//!    names belongs to the **last** wave, so a forgotten site is upgraded late, never early.
//! 3. **Waves are in order**: a wave starts at the latest `notBefore` of itself and every wave
//!    before it. A later wave with an earlier (or no) `notBefore` therefore never overtakes the
//!    waves in front of it. Until then the gate is [`Gate::WaitingForWave`].
//! 4. **The site's maintenance window** must be open ([`super::window`]); a site without a
//!    window accepts upgrades at any time. Closed: [`Gate::WaitingForWindow`] with the opening
//!    time. A window that cannot be evaluated (bad schedule, unknown zone) blocks upgrades with
//!    [`Gate::InvalidWindow`]: a broken window must not turn into "upgrade any time".
//! 5. A `notBefore` that is not RFC 3339 blocks the site's wave (and every later wave) with
//!    [`Gate::InvalidRollout`], for the same reason.
//!
//! Waves are time-gated only: this operator runs in one hospital's cluster and does not see the
//! health of other sites. Release managers hold a wave back by moving its `notBefore`.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::window::{self, WindowState, parse_duration};
use crate::api::reasons;
use crate::api::{ComponentRelease, MaintenanceWindow, Wave};

/// Used when `spec.rollout.progressDeadline` is absent or unreadable.
pub const DEFAULT_PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_mins(30);

/// What the gate needs to know about a site.
#[derive(Clone, Copy, Debug)]
pub struct SiteFacts<'a> {
    pub site_id: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub window: Option<&'a MaintenanceWindow>,
}

/// The gate's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Allowed,
    WaitingForWave {
        wave: String,
        not_before: Timestamp,
    },
    WaitingForWindow {
        opens_at: Timestamp,
    },
    InvalidWindow(String),
    /// The release's rollout cannot be read (a `notBefore` that is not RFC 3339).
    InvalidRollout(String),
}

impl Gate {
    /// One sentence for a status condition message.
    pub fn message(&self) -> String {
        match self {
            Gate::Allowed => "the rollout allows the upgrade now".to_string(),
            Gate::WaitingForWave { wave, not_before } => {
                format!("waiting for wave {wave}, which starts at {not_before}")
            }
            Gate::WaitingForWindow { opens_at } => {
                format!("waiting for the maintenance window opening at {opens_at}")
            }
            Gate::InvalidWindow(e) => {
                format!("upgrades are blocked: the maintenance window is invalid: {e}")
            }
            Gate::InvalidRollout(e) => {
                format!("upgrades are blocked: the release's rollout is invalid: {e}")
            }
        }
    }

    /// A CamelCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Gate::Allowed => reasons::ROLLOUT_ALLOWED,
            Gate::WaitingForWave { .. } => reasons::WAITING_FOR_WAVE,
            Gate::WaitingForWindow { .. } => reasons::WAITING_FOR_MAINTENANCE_WINDOW,
            Gate::InvalidWindow(_) => reasons::INVALID_MAINTENANCE_WINDOW,
            Gate::InvalidRollout(_) => reasons::INVALID_ROLLOUT,
        }
    }
}

fn wave_selects(wave: &Wave, site: &SiteFacts<'_>) -> bool {
    wave.sites.iter().any(|s| s == site.site_id)
        || wave.site_selector.as_ref().is_some_and(|sel| {
            sel.match_labels
                .iter()
                .all(|(k, v)| site.labels.get(k) == Some(v))
        })
}

/// Index of the site's wave (rule 2), `None` when the release has no waves.
pub fn wave_of(release: &ComponentRelease, site: &SiteFacts<'_>) -> Option<usize> {
    let waves = release.spec.rollout.as_ref().map(|r| &r.waves[..])?;
    let last = waves.len().checked_sub(1)?;
    Some(
        waves
            .iter()
            .position(|w| wave_selects(w, site))
            .unwrap_or(last),
    )
}

/// When wave `index` may start (rule 3); `None` when no wave up to it sets `notBefore`.
fn wave_start(waves: &[Wave], index: usize) -> Result<Option<Timestamp>, String> {
    let mut start: Option<Timestamp> = None;
    for w in waves.iter().take(index + 1) {
        if let Some(nb) = &w.not_before {
            let t: Timestamp = nb.parse().map_err(|e| {
                format!(
                    "wave {}: notBefore {nb:?} is not an RFC 3339 time: {e}",
                    w.name
                )
            })?;
            start = Some(start.map_or(t, |s| s.max(t)));
        }
    }
    Ok(start)
}

/// May `site` move to `release` at `now`? See the module docs for the rules.
pub fn gate(release: &ComponentRelease, site: &SiteFacts<'_>, now: Timestamp) -> Gate {
    if let Some(index) = wave_of(release, site) {
        let waves = release
            .spec
            .rollout
            .as_ref()
            .map_or(&[][..], |r| &r.waves[..]);
        match wave_start(waves, index) {
            Err(e) => return Gate::InvalidRollout(e),
            Ok(Some(not_before)) if now < not_before => {
                return Gate::WaitingForWave {
                    wave: waves.get(index).map(|w| w.name.clone()).unwrap_or_default(),
                    not_before,
                };
            }
            Ok(_) => {}
        }
    }
    match site.window.map(|w| window::window_state(w, now)) {
        None | Some(Ok(WindowState::Open { .. })) => Gate::Allowed,
        Some(Ok(WindowState::Closed { opens_at })) => Gate::WaitingForWindow { opens_at },
        Some(Err(e)) => Gate::InvalidWindow(e.to_string()),
    }
}

/// How long an upgraded site may take to become ready before it is rolled back:
/// `spec.rollout.progressDeadline`, [`DEFAULT_PROGRESS_DEADLINE`] when absent. The CRD schema
/// only admits valid durations; an unreadable or zero value still falls back to the default
/// rather than rolling back at once.
pub fn progress_deadline(release: &ComponentRelease) -> SignedDuration {
    release
        .spec
        .rollout
        .as_ref()
        .and_then(|r| parse_duration(&r.progress_deadline).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{Channel, ComponentImage, ComponentReleaseSpec, Rollout, SiteSelector};

    pub(crate) fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    pub(crate) fn wave(
        name: &str,
        sites: &[&str],
        labels: &[(&str, &str)],
        nb: Option<&str>,
    ) -> Wave {
        Wave {
            name: name.to_string(),
            sites: sites.iter().map(|s| s.to_string()).collect(),
            site_selector: (!labels.is_empty()).then(|| SiteSelector {
                match_labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            not_before: nb.map(str::to_string),
        }
    }

    pub(crate) fn release(name: &str, version: &str, waves: Vec<Wave>) -> ComponentRelease {
        let mut components = BTreeMap::new();
        components.insert(
            "blaze".to_string(),
            ComponentImage {
                repository: "ghcr.io/samply/blaze".to_string(),
                digest: format!("sha256:{}", "a".repeat(64)),
                version: "0.30.2".to_string(),
            },
        );
        ComponentRelease::new(
            name,
            ComponentReleaseSpec {
                version: version.to_string(),
                channel: Channel::Stable,
                components,
                compatibility: None,
                rollout: Some(Rollout {
                    waves,
                    progress_deadline: "30m".to_string(),
                }),
                signature: None,
            },
        )
    }

    fn three_waves() -> ComponentRelease {
        release(
            "r",
            "2026.1",
            vec![
                wave("pilot", &["erlangen"], &[], Some("2026-02-01T08:00:00Z")),
                wave(
                    "early",
                    &[],
                    &[("diz.miracum.org/tier", "early")],
                    Some("2026-02-08T08:00:00Z"),
                ),
                wave("rest", &["mainz"], &[], Some("2026-02-15T08:00:00Z")),
            ],
        )
    }

    fn site<'a>(id: &'a str, labels: &'a BTreeMap<String, String>) -> SiteFacts<'a> {
        SiteFacts {
            site_id: id,
            labels,
            window: None,
        }
    }

    #[test]
    fn no_waves_allows_at_once() {
        let labels = BTreeMap::new();
        let r = release("r", "2026.1", vec![]);
        assert_eq!(
            gate(&r, &site("erlangen", &labels), ts("2000-01-01T00:00:00Z")),
            Gate::Allowed
        );
        let mut bare = r.clone();
        bare.spec.rollout = None;
        assert_eq!(
            gate(
                &bare,
                &site("erlangen", &labels),
                ts("2000-01-01T00:00:00Z")
            ),
            Gate::Allowed
        );
    }

    #[test]
    fn wave_by_site_id() {
        let labels = BTreeMap::new();
        let r = three_waves();
        let s = site("erlangen", &labels);
        assert_eq!(wave_of(&r, &s), Some(0));
        assert_eq!(
            gate(&r, &s, ts("2026-02-01T07:59:59Z")),
            Gate::WaitingForWave {
                wave: "pilot".to_string(),
                not_before: ts("2026-02-01T08:00:00Z")
            }
        );
        assert_eq!(gate(&r, &s, ts("2026-02-01T08:00:00Z")), Gate::Allowed);
    }

    #[test]
    fn wave_by_label_and_first_match_wins() {
        let labels: BTreeMap<String, String> = [
            ("diz.miracum.org/tier".to_string(), "early".to_string()),
            ("other".to_string(), "x".to_string()),
        ]
        .into();
        let r = three_waves();
        assert_eq!(wave_of(&r, &site("freiburg", &labels)), Some(1));
        // Named in the last wave, but the label wave comes first.
        assert_eq!(wave_of(&r, &site("mainz", &labels)), Some(1));
        assert_eq!(
            gate(&r, &site("freiburg", &labels), ts("2026-02-05T00:00:00Z")),
            Gate::WaitingForWave {
                wave: "early".to_string(),
                not_before: ts("2026-02-08T08:00:00Z")
            }
        );
        let wrong: BTreeMap<String, String> =
            [("diz.miracum.org/tier".to_string(), "late".to_string())].into();
        assert_eq!(wave_of(&r, &site("freiburg", &wrong)), Some(2));
    }

    #[test]
    fn unlisted_site_goes_with_the_last_wave() {
        let labels = BTreeMap::new();
        let r = three_waves();
        let s = site("giessen", &labels);
        assert_eq!(wave_of(&r, &s), Some(2));
        assert_eq!(
            gate(&r, &s, ts("2026-02-10T00:00:00Z")),
            Gate::WaitingForWave {
                wave: "rest".to_string(),
                not_before: ts("2026-02-15T08:00:00Z")
            }
        );
        assert_eq!(gate(&r, &s, ts("2026-02-15T08:00:00Z")), Gate::Allowed);
    }

    #[test]
    fn later_wave_never_overtakes_an_earlier_one() {
        let labels = BTreeMap::new();
        let r = release(
            "r",
            "2026.1",
            vec![
                wave("pilot", &["erlangen"], &[], Some("2026-03-01T00:00:00Z")),
                // No notBefore of its own, and an earlier one: both wait for the pilot.
                wave("second", &["mainz"], &[], None),
                wave("third", &["giessen"], &[], Some("2026-02-01T00:00:00Z")),
            ],
        );
        for (id, name) in [("mainz", "second"), ("giessen", "third")] {
            assert_eq!(
                gate(&r, &site(id, &labels), ts("2026-02-15T00:00:00Z")),
                Gate::WaitingForWave {
                    wave: name.to_string(),
                    not_before: ts("2026-03-01T00:00:00Z")
                }
            );
        }
        assert_eq!(
            gate(&r, &site("mainz", &labels), ts("2026-03-01T00:00:00Z")),
            Gate::Allowed
        );
    }

    #[test]
    fn invalid_not_before_blocks() {
        let labels = BTreeMap::new();
        let r = release(
            "r",
            "2026.1",
            vec![wave("pilot", &["erlangen"], &[], Some("next tuesday"))],
        );
        assert!(matches!(
            gate(&r, &site("erlangen", &labels), ts("2026-02-15T00:00:00Z")),
            Gate::InvalidRollout(_)
        ));
    }

    #[test]
    fn window_gates_after_the_wave() {
        let labels = BTreeMap::new();
        let r = three_waves();
        let w = MaintenanceWindow {
            schedule: "0 2 * * SAT".to_string(),
            duration: "2h".to_string(),
            time_zone: "Europe/Berlin".to_string(),
        };
        let s = SiteFacts {
            window: Some(&w),
            ..site("erlangen", &labels)
        };
        // Wave open (Mon 2026-02-02), window closed until Sat 2026-02-07 02:00 CET.
        assert_eq!(
            gate(&r, &s, ts("2026-02-02T12:00:00Z")),
            Gate::WaitingForWindow {
                opens_at: ts("2026-02-07T01:00:00Z")
            }
        );
        assert_eq!(gate(&r, &s, ts("2026-02-07T01:30:00Z")), Gate::Allowed);
        // Wave closed wins over an open window: the wave is what status reports.
        assert!(matches!(
            gate(&r, &s, ts("2026-01-31T01:30:00Z")),
            Gate::WaitingForWave { .. }
        ));
        let broken = MaintenanceWindow {
            schedule: "0 0 31 2 *".to_string(),
            ..w.clone()
        };
        let s = SiteFacts {
            window: Some(&broken),
            ..s
        };
        assert!(matches!(
            gate(&r, &s, ts("2026-02-07T01:30:00Z")),
            Gate::InvalidWindow(_)
        ));
    }

    #[test]
    fn progress_deadline_defaults_to_30m() {
        let mut r = release("r", "2026.1", vec![]);
        assert_eq!(progress_deadline(&r), SignedDuration::from_mins(30));
        if let Some(ro) = r.spec.rollout.as_mut() {
            ro.progress_deadline = "1h15m".to_string();
        }
        assert_eq!(progress_deadline(&r), SignedDuration::from_mins(75));
        if let Some(ro) = r.spec.rollout.as_mut() {
            ro.progress_deadline = "soon".to_string();
        }
        assert_eq!(progress_deadline(&r), DEFAULT_PROGRESS_DEADLINE);
        r.spec.rollout = None;
        assert_eq!(progress_deadline(&r), DEFAULT_PROGRESS_DEADLINE);
    }
}
