//! The rollout plan: every rule that decides which release a site runs, in one pure function.
//! Facts in ([`Facts`]), plan out ([`Plan`]); the time is a fact too, so every rule is tested
//! with fixed timestamps. The reconcile only gathers the facts and carries the plan out.
//!
//! # Facts, and which of them are trusted
//!
//! * **Releases** ([`Release`]): every ComponentRelease in the cluster with the certification
//!   verdict of its signatures and its **fingerprint**, the SHA-256 of the signed canonical
//!   content. A release *is* its fingerprint: a name is only a label, and an object recreated
//!   under the same name with other content is another release. The rollout record's copies of
//!   the signed content (see [`super::record`]) are releases too, marked unpublished: they can be
//!   re-applied or rolled back to, never chosen as a new candidate.
//! * **Revocations** ([`Revocation`]): honoured only when their own signature verifies.
//! * **The rollout record** ([`Record`]): what the operator applied last, written by the operator
//!   in the site's namespace before the workloads.
//! * **Workloads** ([`Workload`]): the site's Deployments and StatefulSets as the cluster reports
//!   them: ready or not, which image.
//! * **The DizSite status** ([`RolloutStatus`]) is a *report*, not an input for what to deploy:
//!   anyone with `dizsites/status` rights could write it. It is used only (a) to adopt the
//!   rollout of a site that an operator version without records ran, once, and only when the
//!   running workloads carry exactly the claimed release's images; (b) as the list of releases
//!   that failed on this site, which can only hold that same site back. A status that differs
//!   from the record is corrected, with an Event (`StatusCorrected`).
//! * **Halts** ([`Halt`]): releases other sites rolled back. Only sites in the **same
//!   namespace** count: whoever administers one namespace must not be able to stop a release for
//!   the sites of other namespaces (forged status, or a site made to fail on purpose). Stopping a
//!   bad release for everyone is the release manager's job: a signed ReleaseRevocation.
//!
//! # Derived once
//!
//! * **Usable**: certified, not revoked by a certified revocation, not past its signed
//!   `notAfter`. Only usable content is ever applied (a revoked release is never deployed, not
//!   even re-applied to the site already running it).
//! * **Conflicting**: two usable published releases with the same channel and version but
//!   different fingerprints. Both are refused (condition `ConflictingReleases`): which one is
//!   "the" 2026.2 must not depend on list order or names.
//! * **Signed rollout**: waves, progress deadline, `upgradeFrom` and `notAfter` count only for a
//!   release certified in format `miracolix-release-v2`; a v1 signature does not cover them, so
//!   they are ignored (no waves, default deadline, no upgrade path, no expiry). The progress
//!   deadline is at least [`MIN_PROGRESS_DEADLINE`], so even a signed 1 s deadline cannot roll
//!   every site back at once.
//! * **Candidate**: the pinned release (`spec.release.name`), or the usable release on the
//!   channel with the highest version (ties: same content under several names is one release).
//!
//! # Rules, in order (the first that applies decides)
//!
//! 0. **Running** is taken from the record (the target, while an upgrade is in flight). Without
//!    a record, a status written by an older operator is adopted as described above; otherwise
//!    nothing runs.
//! 1. **An upgrade in flight is finished first** (record has `upgradeStarted`):
//!    * (1a) target revoked or expired → roll back at once to what it replaced, if that is
//!      usable (else rule 3 moves the site on);
//!    * (1b) every workload ready and running the target's images → [`Decision::Completed`];
//!    * (1c) a stuck first install whose candidate changed → install the new candidate at once;
//!    * (1d) past the target's progress deadline → [`Decision::Rollback`] to what it replaced,
//!      if that is usable; a first install, or a predecessor that is gone or unusable, holds;
//!    * (1e) otherwise keep waiting.
//! 2. **Nothing runs** (first install): the candidate at once, without waves or window (the
//!    site is not in production yet). No usable candidate: [`Decision::Stall`], nothing applied.
//! 3. **The running release is revoked or expired**: move to the newest usable release on the
//!    channel (the pinned release's channel for a pinned site) that the site's wave admits now
//!    and whose `upgradeFrom` admits the running version, at the next maintenance window, or at
//!    once when the revocation is `immediate`. The revoked content is not re-applied meanwhile.
//!    No such release: hold.
//! 4. **No usable candidate** (pin missing, not certified, revoked or conflicting; channel
//!    empty): hold on what runs.
//! 5. **Same content** (candidate fingerprint = running fingerprint): stay; up to date.
//! 6. **Never backwards**: a candidate with a lower version than the running one is refused
//!    (`WouldDowngrade`), by channel and by pin alike, unless the DizSite annotation
//!    [`ALLOW_DOWNGRADE_ANNOTATION`] names the candidate's **fingerprint**; then it proceeds (and
//!    is announced with a `DowngradeAllowed` Event, the annotation is removed when it starts).
//! 7. **Upgrade path**: a candidate with a higher version whose signed `upgradeFrom` does not
//!    list the running version is refused (`UpgradePathBlocked`): the site must pass through an
//!    intermediate release first.
//! 8. **Failed here before**: the candidate's fingerprint is in this site's failed releases and
//!    no retry is asked for ([`RETRY_ANNOTATION`] = its name or fingerprint) → hold. New content
//!    is a new fingerprint and is tried.
//! 9. **Halted in this namespace**: another site of the same namespace rolled the candidate
//!    (same fingerprint) back → hold, unless a retry is asked for.
//! 10. **Gate**: the site's wave must have started ([`Gate::WaitingForWave`]) and its maintenance
//!     window must be open ([`Gate::WaitingForWindow`]); then [`Decision::Upgrade`], else stay.
//!     A wave is the first one naming the site's `siteId` or matching its labels; a site no wave
//!     names goes with the last; a wave starts at the latest `notBefore` of itself and every
//!     wave before it. An invalid window or `notBefore` blocks rather than allows.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::canonical::{CanonicalError, canonicalize, sha256_hex};
use super::record::{InFlight, Record, ReleaseId, content_json, short};
use super::verify::{Certified, NotCertified};
use super::version::ReleaseVersion;
use super::window::{self, WindowState, parse_duration};
use crate::api::reasons;
use crate::api::{
    Channel, ComponentReleaseSpec, MaintenanceWindow, ReleaseFormat, ReleaseRef, Wave,
};

/// Annotation on a DizSite asking to try a release again that failed on it; the value is the
/// ComponentRelease's name or fingerprint.
pub const RETRY_ANNOTATION: &str = "diz.miracum.org/retry-release";

/// Annotation on a DizSite that allows moving to a lower version, naming the exact content:
/// the fingerprint of the release to go back to. Removed when the downgrade starts.
pub const ALLOW_DOWNGRADE_ANNOTATION: &str = "diz.miracum.org/allow-downgrade-to";

/// How many failed releases a site remembers; older entries are dropped first.
pub const MAX_FAILED: usize = 10;

/// Used when a release has no signed progress deadline.
pub const DEFAULT_PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_mins(30);

/// No progress deadline is shorter, whatever is signed: a slow but healthy start must not roll
/// back, and a release manager's typo must not roll back every site.
pub const MIN_PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_mins(5);

/// SHA-256 (lowercase hex) of the release's canonical encoding in `format`.
pub fn fingerprint(
    spec: &ComponentReleaseSpec,
    format: ReleaseFormat,
) -> Result<String, CanonicalError> {
    canonicalize(spec, format).map(|bytes| sha256_hex(&bytes))
}

/// The format a release's signatures declare: of the first signature (absent = v1); v2 for an
/// unsigned release. A certified release's format is the one its signatures verified in.
pub fn declared_format(spec: &ComponentReleaseSpec) -> ReleaseFormat {
    match spec.all_signatures().next() {
        Some(signature) => signature.format.unwrap_or_default(),
        None => ReleaseFormat::V2,
    }
}

/// A release's content and what the rules need to know about it.
#[derive(Clone, Debug)]
pub struct Release {
    pub name: String,
    pub fingerprint: String,
    pub spec: ComponentReleaseSpec,
    pub version: ReleaseVersion,
    pub certified: Result<Certified, NotCertified>,
    /// A ComponentRelease object in the cluster; `false` for a copy in the rollout record.
    pub published: bool,
}

impl Release {
    pub fn new(
        name: impl Into<String>,
        spec: ComponentReleaseSpec,
        certified: Result<Certified, NotCertified>,
        published: bool,
    ) -> Self {
        let format = match &certified {
            Ok(c) => c.format,
            Err(_) => declared_format(&spec),
        };
        // Content that cannot be encoded is also not certified (NotCanonical); it never matches
        // anything by fingerprint.
        let fingerprint = fingerprint(&spec, format).unwrap_or_default();
        Self {
            name: name.into(),
            version: ReleaseVersion::parse(&spec.version),
            fingerprint,
            spec,
            certified,
            published,
        }
    }

    pub fn id(&self) -> ReleaseId {
        ReleaseId::new(&self.name, &self.fingerprint)
    }

    /// The spec, when its rollout fields are covered by the signature (certified in v2).
    fn signed(&self) -> Option<&ComponentReleaseSpec> {
        matches!(&self.certified, Ok(c) if c.format == ReleaseFormat::V2).then_some(&self.spec)
    }

    /// Signed waves, in order.
    pub fn waves(&self) -> &[Wave] {
        self.signed()
            .and_then(|s| s.rollout.as_ref())
            .map_or(&[], |r| &r.waves[..])
    }

    /// Signed versions this release may be upgraded to from directly (empty: any).
    pub fn upgrade_from(&self) -> &[String] {
        self.signed()
            .and_then(|s| s.compatibility.as_ref())
            .map_or(&[], |c| &c.upgrade_from[..])
    }

    /// How long an upgraded site may take to become ready: the signed deadline, never below
    /// [`MIN_PROGRESS_DEADLINE`]; [`DEFAULT_PROGRESS_DEADLINE`] when none is signed or it
    /// cannot be read.
    pub fn progress_deadline(&self) -> SignedDuration {
        self.signed()
            .and_then(|s| s.rollout.as_ref())
            .and_then(|r| parse_duration(&r.progress_deadline).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
            .max(MIN_PROGRESS_DEADLINE)
    }

    /// `Some(why)` when the signed `notAfter` has passed (or cannot be read: an expiry nobody
    /// can evaluate must not mean "never expires").
    fn expired(&self, now: Timestamp) -> Option<String> {
        let not_after = self.signed()?.not_after.as_ref()?;
        match not_after.parse::<Timestamp>() {
            Ok(t) if now > t => Some(format!("release {} expired at {t}", self.name)),
            Ok(_) => None,
            Err(e) => Some(format!(
                "release {} has an unreadable notAfter {not_after:?} ({e}) and counts as expired",
                self.name
            )),
        }
    }

    /// Image references (`repository@digest`), as the workloads run them.
    fn images(&self) -> BTreeSet<String> {
        self.spec
            .components
            .values()
            .map(|i| format!("{}@{}", i.repository, i.digest))
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "{} (version {}, {})",
            self.name,
            self.spec.version,
            short(&self.fingerprint)
        )
    }
}

/// A ReleaseRevocation with its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub name: String,
    pub fingerprints: Vec<String>,
    pub reason: String,
    pub immediate: bool,
    /// Only a certified revocation is honoured.
    pub certified: bool,
}

/// A release another site rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub namespace: String,
    pub site: String,
    pub release: String,
    pub fingerprint: String,
    pub reason: String,
}

/// One of the site's Deployments or StatefulSets as the cluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Image of its first container.
    pub image: Option<String>,
    /// Every replica ready and the latest spec observed.
    pub ready: bool,
}

/// A release that did not become ready on this site and was rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRelease {
    pub name: String,
    pub fingerprint: String,
    pub reason: String,
    pub at: Timestamp,
}

/// The rollout part of the DizSite status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutStatus {
    pub current: Option<ReleaseId>,
    pub previous: Option<ReleaseId>,
    pub target: Option<ReleaseId>,
    pub upgrade_started: Option<Timestamp>,
    pub failed: Vec<FailedRelease>,
}

/// What the plan needs to know about the DizSite itself.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub site_id: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub window: Option<&'a MaintenanceWindow>,
    pub wanted: &'a ReleaseRef,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Everything the plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub now: Timestamp,
    pub site: Site<'a>,
    pub releases: &'a [Release],
    pub revocations: &'a [Revocation],
    pub record: Option<&'a Record>,
    pub status: &'a RolloutStatus,
    pub workloads: &'a [Workload],
    pub halts: &'a [Halt],
}

/// Why a site is not moving yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
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
            Gate::WaitingForWave { .. } => reasons::WAITING_FOR_WAVE,
            Gate::WaitingForWindow { .. } => reasons::WAITING_FOR_MAINTENANCE_WINDOW,
            Gate::InvalidWindow(_) => reasons::INVALID_MAINTENANCE_WINDOW,
            Gate::InvalidRollout(_) => reasons::INVALID_ROLLOUT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep what runs (or the upgrade in flight); `waiting` says which gate holds a move back.
    Stay {
        on: ReleaseId,
        waiting: Option<Gate>,
    },
    /// Apply `to`; `from` is what it replaces (`None`: first install).
    Upgrade {
        from: Option<ReleaseId>,
        to: ReleaseId,
        /// To a lower version, allowed by the downgrade annotation.
        downgrade: bool,
        /// Away from a revoked or expired release.
        leaving: bool,
    },
    /// The upgrade in flight became ready.
    Completed { on: ReleaseId },
    Rollback {
        from: ReleaseId,
        to: ReleaseId,
        reason: String,
    },
    /// Something runs and stays; `reason` is the CamelCase condition reason.
    Hold {
        on: ReleaseId,
        reason: &'static str,
        message: String,
    },
    /// Nothing runs and nothing may be installed.
    Stall {
        reason: &'static str,
        message: String,
        /// `Some(false)` when the reason is a release that is not certified.
        certified: Option<bool>,
    },
}

/// An Event the reconcile publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The `ReleaseUpToDate` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpToDate {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub decision: Decision,
    /// The content to apply, by fingerprint (find it in the facts' releases); `None`: apply
    /// nothing and leave the workloads as they are.
    pub deploy: Option<ReleaseId>,
    /// The rollout record after this reconcile; written before the workloads when it differs
    /// from the one read. `None`: nothing has ever been applied.
    pub record: Option<Record>,
    /// The rollout part of the status to report.
    pub status: RolloutStatus,
    pub up_to_date: UpToDate,
    pub notes: Vec<Note>,
    /// Annotations to remove from the DizSite (one-shot requests that were honoured).
    pub clear_annotations: Vec<&'static str>,
    /// When to look again at the latest (a wave or window opens, a deadline passes).
    pub requeue_at: Option<Timestamp>,
}

/// What runs, as rule 0 finds it.
#[derive(Clone, Debug)]
struct Running<'a> {
    id: ReleaseId,
    release: Option<&'a Release>,
    upgrade: Option<InFlight>,
    /// Adopted from a status an older operator wrote (no record yet).
    adopted: bool,
}

/// The candidate, as the spec asks for it.
enum Wanted<'a> {
    Release(&'a Release),
    /// A pinned release that is revoked or expired: sites leave it for its channel.
    Revoked {
        pinned: &'a Release,
        why: String,
    },
    Missing {
        reason: &'static str,
        message: String,
        certified: Option<bool>,
    },
}

struct View<'a> {
    f: &'a Facts<'a>,
    revoked: BTreeMap<&'a str, &'a Revocation>,
    conflicting: BTreeSet<&'a str>,
}

impl<'a> View<'a> {
    fn new(f: &'a Facts<'a>) -> Self {
        let mut revoked = BTreeMap::new();
        for r in f.revocations.iter().filter(|r| r.certified) {
            for fp in &r.fingerprints {
                revoked.entry(fp.as_str()).or_insert(r);
            }
        }
        let mut view = Self {
            f,
            revoked,
            conflicting: BTreeSet::new(),
        };
        let mut groups: BTreeMap<(Channel, ReleaseVersion), BTreeSet<&'a str>> = BTreeMap::new();
        for r in f.releases.iter().filter(|r| r.published && view.usable(r)) {
            // ReleaseVersion equality: 2026.1 and 2026.1.0 are the same version.
            groups
                .entry((r.spec.channel, r.version.clone()))
                .or_default()
                .insert(r.fingerprint.as_str());
        }
        view.conflicting = groups
            .into_values()
            .filter(|fps| fps.len() > 1)
            .flatten()
            .collect();
        view
    }

    fn revocation(&self, fp: &str) -> Option<&'a Revocation> {
        self.revoked.get(fp).copied()
    }

    /// Why content must not be applied: not certified, revoked or expired.
    fn unusable(&self, r: &Release) -> Option<String> {
        if let Err(e) = &r.certified {
            return Some(format!(
                "release {} is not certified ({}): {}",
                r.name, e.reason, e.message
            ));
        }
        if let Some(rev) = self.revocation(&r.fingerprint) {
            return Some(format!(
                "release {} is revoked by ReleaseRevocation {}: {}",
                r.describe(),
                rev.name,
                rev.reason
            ));
        }
        r.expired(self.f.now)
    }

    fn usable(&self, r: &Release) -> bool {
        self.unusable(r).is_none()
    }

    /// May be chosen as a new candidate.
    fn eligible(&self, r: &Release) -> bool {
        r.published && self.usable(r) && !self.conflicting.contains(r.fingerprint.as_str())
    }

    /// Content by fingerprint. The same fingerprint is the same content, so any copy whose
    /// signature verifies will do: certified copies first, then published ones.
    fn by_fingerprint(&self, fp: &str) -> Option<&'a Release> {
        self.f
            .releases
            .iter()
            .filter(|r| !fp.is_empty() && r.fingerprint == fp)
            .min_by_key(|r| (r.certified.is_err(), !r.published))
    }

    fn published(&self, name: &str) -> Option<&'a Release> {
        self.f
            .releases
            .iter()
            .find(|r| r.published && r.name == name)
    }

    fn conflict_message(&self, r: &Release) -> String {
        let others: Vec<String> = self
            .f
            .releases
            .iter()
            .filter(|o| {
                o.published
                    && o.spec.channel == r.spec.channel
                    && o.version == r.version
                    && o.fingerprint != r.fingerprint
            })
            .map(Release::describe)
            .collect();
        format!(
            "release {} conflicts with {}: certified releases with the same version and channel \
             but different content; both are refused until a release manager revokes or \
             deletes all but one",
            r.describe(),
            others.join(", ")
        )
    }

    /// Rule 0: what runs.
    fn running(&self) -> Option<Running<'a>> {
        if let Some(record) = self.f.record {
            return Some(Running {
                id: record.running.clone(),
                release: self.by_fingerprint(&record.running.fingerprint),
                upgrade: record.upgrade.clone(),
                adopted: false,
            });
        }
        // No record: an operator version without records may have run the site. Its status is
        // adopted only when workloads exist and run exactly the claimed release's images.
        let s = self.f.status;
        let in_flight = s.target.is_some() && s.upgrade_started.is_some();
        let claim = if in_flight { &s.target } else { &s.current };
        let claim = claim.as_ref()?;
        let release = self.resolve_legacy(claim)?;
        let images = release.images();
        let runs_it = !self.f.workloads.is_empty()
            && self
                .f
                .workloads
                .iter()
                .all(|w| w.image.as_ref().is_some_and(|i| images.contains(i)));
        if !runs_it {
            return None;
        }
        let upgrade = match (in_flight, s.upgrade_started) {
            (true, Some(started)) => Some(InFlight {
                from: s
                    .previous
                    .as_ref()
                    .and_then(|p| self.resolve_legacy(p))
                    .map(Release::id),
                started,
            }),
            _ => None,
        };
        Some(Running {
            id: release.id(),
            release: Some(release),
            upgrade,
            adopted: true,
        })
    }

    fn resolve_legacy(&self, claim: &ReleaseId) -> Option<&'a Release> {
        if claim.fingerprint.is_empty() {
            self.published(&claim.name)
        } else {
            self.by_fingerprint(&claim.fingerprint)
        }
    }

    /// The candidate, and a note when a newer version on the channel is refused for conflict.
    fn wanted(&self) -> (Wanted<'a>, Option<String>) {
        let wanted = self.f.site.wanted;
        if let Some(name) = &wanted.name {
            let Some(r) = self.published(name) else {
                return (
                    Wanted::Missing {
                        reason: reasons::RELEASE_NOT_FOUND,
                        message: format!(
                            "ComponentRelease {name} does not exist; create it or fix \
                             spec.release.name"
                        ),
                        certified: None,
                    },
                    None,
                );
            };
            if let Err(why) = &r.certified {
                return (
                    Wanted::Missing {
                        reason: reasons::RELEASE_NOT_CERTIFIED,
                        message: format!(
                            "ComponentRelease {name} is not certified ({}): {}; nothing is \
                             changed until a certified release is referenced",
                            why.reason, why.message
                        ),
                        certified: Some(false),
                    },
                    None,
                );
            }
            if let Some(why) = self.unusable(r) {
                return (Wanted::Revoked { pinned: r, why }, None);
            }
            if self.conflicting.contains(r.fingerprint.as_str()) {
                return (
                    Wanted::Missing {
                        reason: reasons::CONFLICTING_RELEASES,
                        message: self.conflict_message(r),
                        certified: None,
                    },
                    None,
                );
            }
            return (Wanted::Release(r), None);
        }
        let Some(channel) = wanted.channel else {
            return (
                Wanted::Missing {
                    reason: reasons::INVALID_SPEC,
                    message: "spec.release names neither a release nor a channel".into(),
                    certified: None,
                },
                None,
            );
        };
        let best = self.newest_on(channel, |_| true);
        // A conflict above the chosen version is what the site would otherwise run.
        let conflict = self
            .f
            .releases
            .iter()
            .filter(|r| {
                r.published
                    && r.spec.channel == channel
                    && self.conflicting.contains(r.fingerprint.as_str())
                    && best.is_none_or(|b| r.version > b.version)
            })
            .max_by(|a, b| a.version.cmp(&b.version))
            .map(|r| self.conflict_message(r));
        match best {
            Some(r) => (Wanted::Release(r), conflict),
            None => {
                let on_channel = self
                    .f
                    .releases
                    .iter()
                    .filter(|r| r.published && r.spec.channel == channel)
                    .count();
                let message = conflict.unwrap_or_else(|| {
                    format!(
                        "no certified ComponentRelease on channel {channel}{}",
                        if on_channel > 0 {
                            format!(" ({on_channel} uncertified, revoked or expired ones ignored)")
                        } else {
                            String::new()
                        }
                    )
                });
                (
                    Wanted::Missing {
                        reason: reasons::NO_CERTIFIED_RELEASE,
                        message,
                        certified: None,
                    },
                    None,
                )
            }
        }
    }

    /// The eligible release on `channel` with the highest version among those `admit` accepts;
    /// the same content under several names is one release (the first name in order).
    fn newest_on(&self, channel: Channel, admit: impl Fn(&Release) -> bool) -> Option<&'a Release> {
        self.f
            .releases
            .iter()
            .filter(|r| r.spec.channel == channel && self.eligible(r) && admit(r))
            .min_by(|a, b| b.version.cmp(&a.version).then_with(|| a.name.cmp(&b.name)))
    }

    fn retry_requested(&self, r: &Release) -> bool {
        self.f
            .site
            .annotations
            .get(RETRY_ANNOTATION)
            .is_some_and(|v| v.trim() == r.name || v.trim() == r.fingerprint)
    }

    fn downgrade_allowed(&self, r: &Release) -> bool {
        self.f
            .site
            .annotations
            .get(ALLOW_DOWNGRADE_ANNOTATION)
            .is_some_and(|v| v.trim() == r.fingerprint)
    }

    /// Whether every workload is ready and runs `target`'s images (vacuously true for a site
    /// without Deployments or StatefulSets).
    fn ready_on(&self, target: Option<&Release>) -> bool {
        let images = target.map(Release::images).unwrap_or_default();
        self.f
            .workloads
            .iter()
            .all(|w| w.ready && w.image.as_ref().is_some_and(|i| images.contains(i)))
    }

    /// Rule 10's wave part.
    fn wave_gate(&self, r: &Release) -> Option<Gate> {
        let waves = r.waves();
        let last = waves.len().checked_sub(1)?;
        let site = &self.f.site;
        let index = waves
            .iter()
            .position(|w| {
                w.sites.iter().any(|s| s == site.site_id)
                    || w.site_selector.as_ref().is_some_and(|sel| {
                        sel.match_labels
                            .iter()
                            .all(|(k, v)| site.labels.get(k) == Some(v))
                    })
            })
            .unwrap_or(last);
        let mut start: Option<Timestamp> = None;
        for w in waves.iter().take(index + 1) {
            if let Some(nb) = &w.not_before {
                match nb.parse::<Timestamp>() {
                    Ok(t) => start = Some(start.map_or(t, |s| s.max(t))),
                    Err(e) => {
                        return Some(Gate::InvalidRollout(format!(
                            "wave {}: notBefore {nb:?} is not an RFC 3339 time: {e}",
                            w.name
                        )));
                    }
                }
            }
        }
        match start {
            Some(not_before) if self.f.now < not_before => Some(Gate::WaitingForWave {
                wave: waves.get(index).map(|w| w.name.clone()).unwrap_or_default(),
                not_before,
            }),
            _ => None,
        }
    }

    /// Rule 10's window part.
    fn window_gate(&self) -> Option<Gate> {
        match self
            .f
            .site
            .window
            .map(|w| window::window_state(w, self.f.now))
        {
            None | Some(Ok(WindowState::Open { .. })) => None,
            Some(Ok(WindowState::Closed { opens_at })) => Some(Gate::WaitingForWindow { opens_at }),
            Some(Err(e)) => Some(Gate::InvalidWindow(e.with_field_path())),
        }
    }

    fn hold(on: &ReleaseId, reason: &'static str, message: String) -> Decision {
        Decision::Hold {
            on: on.clone(),
            reason,
            message,
        }
    }

    fn decide(&self, running: Option<&Running<'a>>, wanted: &Wanted<'a>) -> Decision {
        let now = self.f.now;
        // Rule 1: an upgrade in flight is finished first.
        if let Some(run) = running
            && let Some(upgrade) = &run.upgrade
        {
            let target = run.release;
            let from = upgrade.from.as_ref();
            let from_release = from.and_then(|f| self.by_fingerprint(&f.fingerprint));
            let rollback_to = from_release.filter(|r| self.usable(r));
            // 1a
            if let Some(why) = target.and_then(|t| {
                self.revocation(&t.fingerprint)
                    .map(|_| self.unusable(t).unwrap_or_default())
                    .or_else(|| t.expired(now))
            }) {
                if let Some(back) = rollback_to {
                    return Decision::Rollback {
                        from: run.id.clone(),
                        to: back.id(),
                        reason: why,
                    };
                }
                return self.leave_revoked(run, wanted, why);
            }
            // 1b
            if self.ready_on(target) {
                return Decision::Completed { on: run.id.clone() };
            }
            // 1c
            if from.is_none()
                && let Wanted::Release(c) = wanted
                && c.fingerprint != run.id.fingerprint
            {
                return Decision::Upgrade {
                    from: None,
                    to: c.id(),
                    downgrade: false,
                    leaving: false,
                };
            }
            // 1d
            let deadline = target.map_or(DEFAULT_PROGRESS_DEADLINE, Release::progress_deadline);
            if upgrade
                .started
                .checked_add(deadline)
                .is_ok_and(|due| now > due)
            {
                let late = format!(
                    "release {} was not ready within the progress deadline of {deadline:#} \
                     (upgrade started at {})",
                    run.id.name, upgrade.started
                );
                return match (from, rollback_to) {
                    (_, Some(back)) => Decision::Rollback {
                        from: run.id.clone(),
                        to: back.id(),
                        reason: late,
                    },
                    (None, _) => Self::hold(
                        &run.id,
                        reasons::HELD,
                        format!(
                            "the first install of release {} is not ready {deadline:#} after it \
                             started and there is no earlier release to roll back to; check the \
                             components' events and logs, or set another release",
                            run.id.name
                        ),
                    ),
                    (Some(f), None) => Self::hold(
                        &run.id,
                        reasons::HELD,
                        format!(
                            "{late}; it cannot be rolled back to {}: {}",
                            f.describe(),
                            from_release
                                .and_then(|r| self.unusable(r))
                                .unwrap_or_else(|| {
                                    "its signed content is no longer available".to_string()
                                })
                        ),
                    ),
                };
            }
            // 1e
            return Decision::Stay {
                on: run.id.clone(),
                waiting: None,
            };
        }

        // Rule 2: nothing runs.
        let Some(run) = running else {
            return match wanted {
                Wanted::Release(c) => Decision::Upgrade {
                    from: None,
                    to: c.id(),
                    downgrade: false,
                    leaving: false,
                },
                Wanted::Revoked { pinned, why } => {
                    match self.newest_on(pinned.spec.channel, |r| self.wave_gate(r).is_none()) {
                        Some(e) => Decision::Upgrade {
                            from: None,
                            to: e.id(),
                            downgrade: false,
                            leaving: true,
                        },
                        None => Decision::Stall {
                            reason: reasons::RELEASE_REVOKED,
                            message: format!(
                                "{why}; no other certified, non-revoked release on channel {} can \
                             be installed",
                                pinned.spec.channel
                            ),
                            certified: None,
                        },
                    }
                }
                Wanted::Missing {
                    reason,
                    message,
                    certified,
                } => Decision::Stall {
                    reason,
                    message: message.clone(),
                    certified: *certified,
                },
            };
        };

        // Rule 3: the running release is revoked or expired.
        if let Some(r) = run.release
            && let Some(why) = self
                .revocation(&r.fingerprint)
                .map(|_| self.unusable(r).unwrap_or_default())
                .or_else(|| r.expired(now))
        {
            return self.leave_revoked(run, wanted, why);
        }

        // Rule 4: no usable candidate.
        let c = match wanted {
            Wanted::Release(c) => *c,
            Wanted::Revoked { why, .. } => {
                return Self::hold(
                    &run.id,
                    reasons::PINNED_RELEASE_REVOKED,
                    format!(
                        "{why}; the site stays on {}. Pin another release",
                        run.id.describe()
                    ),
                );
            }
            Wanted::Missing {
                reason, message, ..
            } => return Self::hold(&run.id, reason, message.clone()),
        };

        // Rule 5: same content.
        if c.fingerprint == run.id.fingerprint {
            return Decision::Stay {
                on: c.id(),
                waiting: None,
            };
        }

        // Rule 6: never backwards.
        let downgrade = match run.release {
            Some(r) => c.version < r.version,
            None => true,
        };
        if downgrade && !self.downgrade_allowed(c) {
            let running_version = run.release.map_or_else(
                || "an unknown version (its signed content is not available)".to_string(),
                |r| format!("version {}", r.spec.version),
            );
            return Self::hold(
                &run.id,
                reasons::WOULD_DOWNGRADE,
                format!(
                    "the spec asks for {}, but the site runs {} at {running_version}: a site \
                     never moves to a lower version by itself. To go back deliberately, \
                     annotate the DizSite with {ALLOW_DOWNGRADE_ANNOTATION}={}",
                    c.describe(),
                    run.id.name,
                    c.fingerprint
                ),
            );
        }

        // Rule 7: upgrade path.
        if !downgrade
            && let Some(r) = run.release
            && c.version > r.version
            && !c.upgrade_from().is_empty()
            && !c
                .upgrade_from()
                .iter()
                .any(|v| ReleaseVersion::parse(v) == r.version)
        {
            return Self::hold(
                &run.id,
                reasons::UPGRADE_PATH_BLOCKED,
                format!(
                    "release {} can only be upgraded to from version {} (its signed \
                     compatibility.upgradeFrom), this site runs {}: upgrade to an \
                     intermediate release first",
                    c.describe(),
                    c.upgrade_from().join(", "),
                    r.spec.version
                ),
            );
        }

        // Rule 8: failed here before.
        let retry = self.retry_requested(c);
        if !retry
            && let Some(failed) = self
                .f
                .status
                .failed
                .iter()
                .find(|f| f.fingerprint == c.fingerprint)
        {
            return Self::hold(
                &run.id,
                reasons::HELD,
                format!(
                    "release {} failed on this site at {} ({}) and was rolled back; the site \
                     stays on {}. To try it again, annotate the DizSite with \
                     {RETRY_ANNOTATION}={}; a release whose images change is tried again \
                     automatically",
                    c.name, failed.at, failed.reason, run.id.name, c.name
                ),
            );
        }

        // Rule 9: halted in this namespace.
        if !retry
            && let Some(halt) = self.f.halts.iter().find(|h| {
                h.namespace == self.f.site.namespace
                    && h.site != self.f.site.name
                    && h.fingerprint == c.fingerprint
            })
        {
            return Self::hold(
                &run.id,
                reasons::HALTED,
                format!(
                    "rollout of {} halted: it was rolled back at site {} of this namespace \
                     ({}); a release manager must publish a fixed release, or annotate this \
                     DizSite with {RETRY_ANNOTATION}={} to try it anyway",
                    c.name, halt.site, halt.reason, c.name
                ),
            );
        }

        // Rule 10: waves, then the window.
        match self.wave_gate(c).or_else(|| self.window_gate()) {
            None => Decision::Upgrade {
                from: Some(run.id.clone()),
                to: c.id(),
                downgrade,
                leaving: false,
            },
            Some(gate) => Decision::Stay {
                on: run.id.clone(),
                waiting: Some(gate),
            },
        }
    }

    /// Rule 3 (and 1a without a usable predecessor): leave revoked or expired content.
    fn leave_revoked(&self, run: &Running<'a>, wanted: &Wanted<'a>, why: String) -> Decision {
        let channel = match (&self.f.site.wanted.channel, wanted, run.release) {
            (Some(channel), _, _) => *channel,
            (None, Wanted::Release(c), _) => c.spec.channel,
            (None, Wanted::Revoked { pinned, .. }, _) => pinned.spec.channel,
            (None, _, Some(r)) => r.spec.channel,
            (None, _, None) => Channel::Stable,
        };
        let immediate = self
            .revocation(&run.id.fingerprint)
            .is_some_and(|r| r.immediate);
        let target = self.newest_on(channel, |e| {
            e.fingerprint != run.id.fingerprint
                && self.wave_gate(e).is_none()
                && (e.upgrade_from().is_empty()
                    || run.release.is_none_or(|r| {
                        e.version <= r.version
                            || e.upgrade_from()
                                .iter()
                                .any(|v| ReleaseVersion::parse(v) == r.version)
                    }))
        });
        let Some(target) = target else {
            return Self::hold(
                &run.id,
                reasons::RELEASE_REVOKED,
                format!(
                    "{why}; there is no certified, non-revoked release on channel {channel} this \
                     site may move to yet, so nothing is applied until there is"
                ),
            );
        };
        match (!immediate).then(|| self.window_gate()).flatten() {
            Some(gate) => Decision::Stay {
                on: run.id.clone(),
                waiting: Some(gate),
            },
            None => Decision::Upgrade {
                from: Some(run.id.clone()),
                to: target.id(),
                downgrade: false,
                leaving: true,
            },
        }
    }

    fn status_of(record: Option<&Record>, failed: &[FailedRelease]) -> RolloutStatus {
        status_of(record, failed)
    }

    fn record_for(&self, running: &ReleaseId, upgrade: Option<InFlight>) -> Record {
        let mut contents = BTreeMap::new();
        let from = upgrade.as_ref().and_then(|u| u.from.as_ref());
        for id in std::iter::once(running).chain(from) {
            if let Some(r) = self.by_fingerprint(&id.fingerprint) {
                contents.insert(id.fingerprint.clone(), content_json(&r.spec));
            }
        }
        Record {
            running: running.clone(),
            upgrade,
            contents,
        }
    }
}

/// What the status reports for a rollout record: during an upgrade the release it replaces is
/// current (and previous), the one applied is the target.
pub fn status_of(record: Option<&Record>, failed: &[FailedRelease]) -> RolloutStatus {
    let mut status = RolloutStatus {
        failed: failed.to_vec(),
        ..RolloutStatus::default()
    };
    if let Some(record) = record {
        match &record.upgrade {
            Some(up) => {
                status.current = up.from.clone();
                status.previous = up.from.clone();
                status.target = Some(record.running.clone());
                status.upgrade_started = Some(up.started);
            }
            None => status.current = Some(record.running.clone()),
        }
    }
    status
}

/// The plan for this reconcile; see the module docs for the rules.
pub fn plan(f: &Facts<'_>) -> Plan {
    let view = View::new(f);
    let running = view.running();
    let (wanted, conflict) = view.wanted();
    let decision = view.decide(running.as_ref(), &wanted);
    let mut notes = Vec::new();

    // The status is a report: say so when it claimed something else than the record.
    let claimed = RolloutStatus {
        failed: Vec::new(),
        ..f.status.clone()
    };
    let recorded = View::status_of(f.record, &[]);
    let status_forged = match (&running, f.record) {
        (Some(r), None) if r.adopted => false,
        _ => !same_claims(&claimed, &recorded),
    };
    if status_forged {
        notes.push(Note {
            warning: true,
            reason: reasons::STATUS_CORRECTED,
            message: format!(
                "the status claimed {}, but the operator's rollout record says {}: the status \
                 is only a report and was not written by this operator; it is restored from \
                 the record",
                describe_status(&claimed),
                describe_status(&recorded)
            ),
        });
    }
    if let Some(r) = running.as_ref().filter(|r| r.adopted) {
        notes.push(Note {
            warning: false,
            reason: reasons::ROLLOUT_RECORD_CREATED,
            message: format!(
                "adopted {} from the status an earlier operator version wrote (the running \
                 workloads carry its images); from now on the rollout record is authoritative",
                r.id.describe()
            ),
        });
    }

    let now = f.now;
    let input_record = match &running {
        Some(r) if r.adopted => Some(view.record_for(&r.id, r.upgrade.clone())),
        _ => f.record.cloned(),
    };
    let mut failed = f.status.failed.clone();
    let mut clear = Vec::new();
    let (deploy, record) = match &decision {
        Decision::Upgrade {
            from,
            to,
            downgrade,
            leaving,
        } => {
            let new = running
                .as_ref()
                .is_none_or(|r| r.id.fingerprint != to.fingerprint || r.upgrade.is_none());
            if new {
                let from_text = from.as_ref().map_or_else(
                    || "nothing (first install)".to_string(),
                    ReleaseId::describe,
                );
                notes.push(Note {
                    warning: false,
                    reason: reasons::UPGRADING,
                    message: format!("upgrading from {from_text} to {}", to.describe()),
                });
            }
            let target = view.by_fingerprint(&to.fingerprint);
            if *downgrade {
                notes.push(Note {
                    warning: true,
                    reason: reasons::DOWNGRADE_ALLOWED,
                    message: format!(
                        "moving back to the lower version {} because the annotation \
                         {ALLOW_DOWNGRADE_ANNOTATION} names its fingerprint {}",
                        target.map_or_else(|| to.describe(), Release::describe),
                        to.fingerprint
                    ),
                });
                clear.push(ALLOW_DOWNGRADE_ANNOTATION);
            }
            if *leaving {
                notes.push(Note {
                    warning: true,
                    reason: reasons::LEAVING_REVOKED_RELEASE,
                    message: format!(
                        "{} may no longer run; moving to {}",
                        from.as_ref()
                            .map_or_else(|| "the pinned release".to_string(), ReleaseId::describe),
                        to.describe()
                    ),
                });
            }
            if target.is_some_and(|t| view.retry_requested(t)) {
                clear.push(RETRY_ANNOTATION);
            }
            failed.retain(|x| x.fingerprint != to.fingerprint);
            let record = view.record_for(
                to,
                Some(InFlight {
                    from: from.clone(),
                    started: now,
                }),
            );
            (Some(to.clone()), Some(record))
        }
        Decision::Completed { on } => {
            notes.push(Note {
                warning: false,
                reason: reasons::UPGRADED,
                message: format!("now running {}", on.describe()),
            });
            let deploy = view
                .by_fingerprint(&on.fingerprint)
                .filter(|r| view.usable(r))
                .map(Release::id);
            (deploy, Some(view.record_for(on, None)))
        }
        Decision::Rollback { from, to, reason } => {
            notes.push(Note {
                warning: true,
                reason: reasons::ROLLED_BACK,
                message: format!(
                    "rolled back from {} to {}: {reason}",
                    from.describe(),
                    to.describe()
                ),
            });
            failed.retain(|x| x.fingerprint != from.fingerprint);
            failed.push(FailedRelease {
                name: from.name.clone(),
                fingerprint: from.fingerprint.clone(),
                reason: reason.clone(),
                at: now,
            });
            let excess = failed.len().saturating_sub(MAX_FAILED);
            failed.drain(..excess);
            (Some(to.clone()), Some(view.record_for(to, None)))
        }
        Decision::Stay { .. } | Decision::Hold { .. } => {
            if let Decision::Hold {
                reason, message, ..
            } = &decision
            {
                notes.push(Note {
                    warning: true,
                    reason,
                    message: message.clone(),
                });
            }
            // A window or rollout that cannot be evaluated blocks upgrades until the spec
            // changes: say so where site admins look, not only in the condition.
            if let Decision::Stay {
                waiting: Some(gate @ (Gate::InvalidWindow(_) | Gate::InvalidRollout(_))),
                ..
            } = &decision
            {
                notes.push(Note {
                    warning: true,
                    reason: gate.reason(),
                    message: gate.message(),
                });
            }
            // Keep what runs applied, as long as it may run at all.
            let deploy = running
                .as_ref()
                .filter(|r| r.release.is_some_and(|c| view.usable(c)))
                .map(|r| r.id.clone());
            (deploy, input_record)
        }
        Decision::Stall {
            reason, message, ..
        } => {
            notes.push(Note {
                warning: true,
                reason,
                message: message.clone(),
            });
            (None, None)
        }
    };

    let status = View::status_of(record.as_ref(), &failed);
    let up_to_date = up_to_date(&decision, &status, &wanted, conflict);
    let requeue_at = match &decision {
        Decision::Stay {
            waiting: Some(Gate::WaitingForWave { not_before, .. }),
            ..
        } => Some(*not_before),
        Decision::Stay {
            waiting: Some(Gate::WaitingForWindow { opens_at }),
            ..
        } => Some(*opens_at),
        _ => record.as_ref().and_then(|rec| {
            let up = rec.upgrade.as_ref()?;
            let deadline = view
                .by_fingerprint(&rec.running.fingerprint)
                .map_or(DEFAULT_PROGRESS_DEADLINE, Release::progress_deadline);
            up.started.checked_add(deadline).ok()
        }),
    };
    Plan {
        decision,
        deploy,
        record,
        status,
        up_to_date,
        notes,
        clear_annotations: clear,
        requeue_at,
    }
}

/// Whether two statuses claim the same releases (names and fingerprints) and upgrade start.
fn same_claims(a: &RolloutStatus, b: &RolloutStatus) -> bool {
    // A status written before fingerprints were recorded names releases only.
    let same = |x: &Option<ReleaseId>, y: &Option<ReleaseId>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.name == y.name && (x.fingerprint.is_empty() || x.fingerprint == y.fingerprint)
        }
        _ => false,
    };
    same(&a.current, &b.current)
        && same(&a.target, &b.target)
        && same(&a.previous, &b.previous)
        && a.upgrade_started == b.upgrade_started
}

fn describe_status(s: &RolloutStatus) -> String {
    let name = |r: &Option<ReleaseId>| r.as_ref().map_or("none".to_string(), ReleaseId::describe);
    let mut out = format!("currentRelease {}", name(&s.current));
    if s.target.is_some() {
        out.push_str(&format!(", targetRelease {}", name(&s.target)));
    }
    if s.previous.is_some() {
        out.push_str(&format!(", previousRelease {}", name(&s.previous)));
    }
    if let Some(t) = s.upgrade_started {
        out.push_str(&format!(", upgradeStartedAt {t}"));
    }
    out
}

fn up_to_date(
    decision: &Decision,
    status: &RolloutStatus,
    wanted: &Wanted<'_>,
    conflict: Option<String>,
) -> UpToDate {
    let no = |reason: &'static str, message: String| UpToDate {
        status: false,
        reason,
        message,
    };
    match decision {
        Decision::Stay {
            waiting: Some(gate),
            ..
        } => no(gate.reason(), gate.message()),
        Decision::Hold {
            reason, message, ..
        } => no(reason, message.clone()),
        Decision::Stall {
            reason, message, ..
        } => no(reason, message.clone()),
        Decision::Rollback { from, to, reason } => no(
            reasons::ROLLED_BACK,
            format!(
                "rolled back from {} to {}: {reason}",
                from.describe(),
                to.describe()
            ),
        ),
        _ => match (&status.target, &status.current) {
            (Some(target), current) => no(
                reasons::UPGRADING,
                format!(
                    "upgrading from {} to {}",
                    current.as_ref().map_or_else(
                        || "nothing (first install)".to_string(),
                        ReleaseId::describe
                    ),
                    target.describe()
                ),
            ),
            (None, Some(current)) => match wanted {
                Wanted::Release(c) if c.fingerprint == current.fingerprint => match conflict {
                    Some(message) => no(reasons::CONFLICTING_RELEASES, message),
                    None => UpToDate {
                        status: true,
                        reason: reasons::UP_TO_DATE,
                        message: format!("running {}, the release the spec asks for", c.describe()),
                    },
                },
                Wanted::Release(c) => no(
                    reasons::PENDING,
                    format!(
                        "running {}, the spec asks for {}",
                        current.describe(),
                        c.describe()
                    ),
                ),
                _ => no(reasons::PENDING, format!("running {}", current.describe())),
            },
            (None, None) => no(reasons::PENDING, "nothing runs yet".to_string()),
        },
    }
}

#[cfg(test)]
mod tests;
