//! One table per rule of the module docs. Every row is a world (releases, revocations, record,
//! status, workloads, time) and what the plan must do in it; attacks are rows too.

use std::collections::BTreeMap;

use super::*;
use crate::api::reasons;
use crate::api::{
    Compatibility, ComponentImage, MaintenanceWindow, ReleaseRef, Rollout, SiteSelector,
};

const NOW: &str = "2026-03-07T01:30:00Z"; // a Saturday, 02:30 in Berlin

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn certified(format: ReleaseFormat) -> Result<Certified, NotCertified> {
    Ok(Certified {
        key_ids: vec!["k".into()],
        format,
    })
}

/// A release certified in v2 on `stable`, published, whose one image (blaze) has a digest of
/// `d` repeated.
fn rel(name: &str, version: &str, d: char) -> Release {
    let components = BTreeMap::from([(
        "blaze".to_string(),
        ComponentImage {
            repository: "ghcr.io/samply/blaze".into(),
            digest: format!("sha256:{}", d.to_string().repeat(64)),
            version: "0.30.2".into(),
        },
    )]);
    Release::new(
        name,
        ComponentReleaseSpec {
            version: version.into(),
            channel: Channel::Stable,
            components,
            component_definitions: Vec::new(),
            not_after: None,
            compatibility: None,
            rollout: None,
            privacy_floor: None,
            signature: None,
            signatures: Vec::new(),
        },
        certified(ReleaseFormat::V2),
        true,
    )
}

/// The same release with its spec changed (and so, for signed fields, another fingerprint).
fn with(r: &Release, change: impl FnOnce(&mut ComponentReleaseSpec)) -> Release {
    let mut spec = r.spec.clone();
    change(&mut spec);
    Release::new(&r.name, spec, r.certified.clone(), r.published)
}

fn renamed(r: &Release, name: &str) -> Release {
    Release::new(name, r.spec.clone(), r.certified.clone(), r.published)
}

fn v1(r: &Release) -> Release {
    Release::new(
        &r.name,
        r.spec.clone(),
        certified(ReleaseFormat::V1),
        r.published,
    )
}

fn uncertified(r: &Release) -> Release {
    Release::new(
        &r.name,
        r.spec.clone(),
        Err(NotCertified {
            reason: "BadSignature".into(),
            message: "changed after signing".into(),
        }),
        r.published,
    )
}

fn waves(r: &Release, waves: Vec<Wave>) -> Release {
    with(r, |s| {
        s.rollout = Some(Rollout {
            waves,
            progress_deadline: "30m".into(),
        })
    })
}

fn deadline(r: &Release, d: &str) -> Release {
    with(r, |s| {
        s.rollout = Some(Rollout {
            waves: Vec::new(),
            progress_deadline: d.into(),
        })
    })
}

fn upgrade_from(r: &Release, from: &[&str]) -> Release {
    with(r, |s| {
        s.compatibility = Some(Compatibility {
            upgrade_from: from.iter().map(|f| f.to_string()).collect(),
            notes: None,
        })
    })
}

fn wave(name: &str, sites: &[&str], labels: &[(&str, &str)], nb: Option<&str>) -> Wave {
    Wave {
        name: name.into(),
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

fn revocation(of: &Release, immediate: bool) -> Revocation {
    Revocation {
        name: format!("revoke-{}", of.name),
        fingerprints: vec![of.fingerprint.clone()],
        reason: "CVE-2026-0001".into(),
        immediate,
        certified: true,
    }
}

fn window(schedule: &str) -> MaintenanceWindow {
    MaintenanceWindow {
        schedule: schedule.into(),
        duration: "2h".into(),
        time_zone: "Europe/Berlin".into(),
    }
}

fn image(r: &Release) -> Option<String> {
    r.images().into_iter().next()
}

#[derive(Clone)]
struct World {
    now: Timestamp,
    namespace: String,
    site_id: String,
    labels: BTreeMap<String, String>,
    window: Option<MaintenanceWindow>,
    wanted: ReleaseRef,
    annotations: BTreeMap<String, String>,
    releases: Vec<Release>,
    revocations: Vec<Revocation>,
    record: Option<Record>,
    status: RolloutStatus,
    workloads: Vec<Workload>,
    halts: Vec<Halt>,
}

impl World {
    /// Site `erlangen` following `stable`, no window, nothing running.
    fn channel() -> Self {
        Self {
            now: ts(NOW),
            namespace: "erlangen".into(),
            site_id: "erlangen".into(),
            labels: BTreeMap::new(),
            window: None,
            wanted: ReleaseRef {
                name: None,
                channel: Some(Channel::Stable),
            },
            annotations: BTreeMap::new(),
            releases: Vec::new(),
            revocations: Vec::new(),
            record: None,
            status: RolloutStatus::default(),
            workloads: Vec::new(),
            halts: Vec::new(),
        }
    }

    fn pinned(name: &str) -> Self {
        Self {
            wanted: ReleaseRef {
                name: Some(name.into()),
                channel: None,
            },
            ..Self::channel()
        }
    }

    fn publish(mut self, r: &Release) -> Self {
        self.releases.push(r.clone());
        self
    }

    fn unpublish(mut self, name: &str) -> Self {
        self.releases.retain(|r| !(r.published && r.name == name));
        self
    }

    fn record(
        &self,
        running: &Release,
        upgrade: Option<InFlight>,
        from: Option<&Release>,
    ) -> Record {
        let mut contents =
            BTreeMap::from([(running.fingerprint.clone(), content_json(&running.spec))]);
        if let Some(f) = from {
            contents.insert(f.fingerprint.clone(), content_json(&f.spec));
        }
        Record {
            running: running.id(),
            upgrade,
            contents,
        }
    }

    /// The site runs `r` (record, healthy workloads, a status that says so). The record's copy
    /// of `r` is among the releases, as the controller provides it.
    fn on(mut self, r: &Release) -> Self {
        let record = self.record(r, None, None);
        self.status = View::status_of(Some(&record), &[]);
        self.record = Some(record);
        self.releases.push(Release {
            published: false,
            ..r.clone()
        });
        self.workloads = vec![Workload {
            image: image(r),
            ready: true,
        }];
        self
    }

    /// An upgrade from `from` to `to` started at `started`; the workloads run `to`, ready or not.
    fn upgrading(
        mut self,
        from: Option<&Release>,
        to: &Release,
        started: &str,
        ready: bool,
    ) -> Self {
        let record = self.record(
            to,
            Some(InFlight {
                from: from.map(Release::id),
                started: ts(started),
            }),
            from,
        );
        self.status = View::status_of(Some(&record), &[]);
        self.record = Some(record);
        for r in std::iter::once(to).chain(from) {
            self.releases.push(Release {
                published: false,
                ..r.clone()
            });
        }
        self.workloads = vec![Workload {
            image: image(to),
            ready,
        }];
        self
    }

    fn at(mut self, now: &str) -> Self {
        self.now = ts(now);
        self
    }

    fn annotate(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    fn window(mut self, schedule: &str) -> Self {
        self.window = Some(window(schedule));
        self
    }

    fn revoke(mut self, r: Revocation) -> Self {
        self.revocations.push(r);
        self
    }

    fn plan(&self) -> Plan {
        plan(&Facts {
            now: self.now,
            site: Site {
                namespace: &self.namespace,
                name: "site",
                site_id: &self.site_id,
                labels: &self.labels,
                window: self.window.as_ref(),
                wanted: &self.wanted,
                annotations: &self.annotations,
            },
            releases: &self.releases,
            revocations: &self.revocations,
            record: self.record.as_ref(),
            status: &self.status,
            workloads: &self.workloads,
            halts: &self.halts,
        })
    }
}

/// What a row expects of the decision, by release name (or condition reason).
#[derive(Debug, Clone, Copy)]
enum Want {
    Upgrade(&'static str),
    Stay(&'static str, Option<&'static str>),
    Completed(&'static str),
    Rollback(&'static str),
    Hold(&'static str),
    Stall(&'static str),
}

struct Case {
    name: &'static str,
    world: World,
    want: Want,
    /// The fingerprint of what must be applied; `None`: nothing.
    deploy: Option<String>,
    /// Event reasons that must be among the notes.
    notes: &'static [&'static str],
}

fn case(name: &'static str, world: World, want: Want, deploy: Option<&Release>) -> Case {
    Case {
        name,
        world,
        want,
        deploy: deploy.map(|r| r.fingerprint.clone()),
        notes: &[],
    }
}

impl Case {
    fn notes(mut self, notes: &'static [&'static str]) -> Self {
        self.notes = notes;
        self
    }
}

#[track_caller]
fn check(cases: Vec<Case>) {
    for c in cases {
        let p = c.world.plan();
        let ok = match (&p.decision, c.want) {
            (Decision::Upgrade { to, .. }, Want::Upgrade(n)) => to.name == n,
            (Decision::Stay { on, waiting }, Want::Stay(n, gate)) => {
                on.name == n && waiting.as_ref().map(Gate::reason) == gate
            }
            (Decision::Completed { on }, Want::Completed(n)) => on.name == n,
            (Decision::Rollback { to, .. }, Want::Rollback(n)) => to.name == n,
            (Decision::Hold { reason, .. }, Want::Hold(r)) => *reason == r,
            (Decision::Stall { reason, .. }, Want::Stall(r)) => *reason == r,
            _ => false,
        };
        assert!(ok, "{}: wanted {:?}, got {:#?}", c.name, c.want, p.decision);
        assert_eq!(
            p.deploy.as_ref().map(|d| d.fingerprint.clone()),
            c.deploy,
            "{}: deploy (decision {:?})",
            c.name,
            p.decision
        );
        for reason in c.notes {
            assert!(
                p.notes.iter().any(|n| n.reason == *reason),
                "{}: no {reason} note in {:#?}",
                c.name,
                p.notes
            );
        }
    }
}

#[test]
fn rule_0_running_comes_from_the_record_and_the_status_is_only_a_report() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let base = World::channel().publish(&r1).publish(&r2).on(&r2);

    // Attack: the status claims the site runs the older r1. Nothing changes; the status is
    // corrected and an Event says so.
    let mut forged_current = base.clone();
    forged_current.status.current = Some(r1.id());
    // Attack: the status claims an upgrade to an uncertified release is in flight.
    let evil = uncertified(&rel("evil", "2099.1", 'e'));
    let mut forged_target = base.clone().publish(&evil);
    forged_target.status.target = Some(evil.id());
    forged_target.status.upgrade_started = Some(ts("2026-03-01T00:00:00Z"));

    // Migration: no record yet, a status an older operator wrote (names only), and workloads
    // that run exactly the claimed release: adopted once.
    let mut legacy = World::channel().publish(&r1).publish(&r2);
    legacy.status.current = Some(ReleaseId::new("r2", ""));
    legacy.workloads = vec![Workload {
        image: image(&r2),
        ready: true,
    }];
    // The same claim while the workloads run other images is not adopted: treated as a first
    // install of the candidate, and the claim is corrected.
    let mut legacy_mismatch = legacy.clone();
    legacy_mismatch.workloads[0].image = image(&r1);
    // Attack: a site where nothing was ever applied whose status claims r1.
    let mut nothing = World::channel().publish(&r1).publish(&r2);
    nothing.status.current = Some(r1.id());

    check(vec![
        case(
            "forged current",
            forged_current,
            Want::Stay("r2", None),
            Some(&r2),
        )
        .notes(&["StatusCorrected"]),
        case(
            "forged target",
            forged_target,
            Want::Stay("r2", None),
            Some(&r2),
        )
        .notes(&["StatusCorrected"]),
        case(
            "legacy adoption",
            legacy.clone(),
            Want::Stay("r2", None),
            Some(&r2),
        )
        .notes(&["RolloutRecordCreated"]),
        case(
            "legacy mismatch",
            legacy_mismatch,
            Want::Upgrade("r2"),
            Some(&r2),
        )
        .notes(&["StatusCorrected"]),
        case(
            "status without anything running",
            nothing,
            Want::Upgrade("r2"),
            Some(&r2),
        )
        .notes(&["StatusCorrected"]),
    ]);

    // The corrected status is the record's; an adopted status becomes a record.
    let mut w = base.clone();
    w.status.current = Some(r1.id());
    assert_eq!(w.plan().status.current, Some(r2.id()));
    let p = legacy.plan();
    assert!(
        p.notes
            .iter()
            .any(|n| n.reason == reasons::ROLLOUT_RECORD_CREATED)
    );
    assert_eq!(p.record.map(|r| r.running), Some(r2.id()));
    assert!(p.notes.iter().all(|n| n.reason != "StatusCorrected"));
    // A consistent status is not "corrected".
    assert!(base.plan().notes.is_empty(), "{:?}", base.plan().notes);
}

#[test]
fn rule_1_an_upgrade_in_flight_is_finished_first() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let r3 = rel("r3", "2026.3", 'c');
    let started = "2026-03-07T01:00:00Z";
    let up = |ready| {
        World::channel()
            .publish(&r1)
            .publish(&r2)
            .upgrading(Some(&r1), &r2, started, ready)
    };
    // Ready, but the workloads still run the old images: not done.
    let mut old_images = up(true);
    old_images.workloads[0].image = image(&r1);
    let short = deadline(&r2, "1s");
    let unsigned_long = v1(&deadline(&r2, "2h"));
    let first = World::channel()
        .publish(&r1)
        .upgrading(None, &r1, "2026-03-07T00:00:00Z", false);
    let mut from_gone = up(false).at("2026-03-07T01:31:00Z");
    from_gone
        .releases
        .retain(|r| r.fingerprint != r1.fingerprint);

    check(vec![
        case(
            "ready completes",
            up(true),
            Want::Completed("r2"),
            Some(&r2),
        )
        .notes(&["Upgraded"]),
        case(
            "ready on old images waits",
            old_images,
            Want::Stay("r2", None),
            Some(&r2),
        ),
        case(
            "not ready, within deadline",
            up(false),
            Want::Stay("r2", None),
            Some(&r2),
        ),
        case(
            "exactly at the deadline still waits",
            up(false).at("2026-03-07T01:30:00Z"),
            Want::Stay("r2", None),
            Some(&r2),
        ),
        case(
            "past the deadline rolls back",
            up(false).at("2026-03-07T01:30:01Z"),
            Want::Rollback("r1"),
            Some(&r1),
        )
        .notes(&["RolledBack"]),
        // Attack: a signed 1 s deadline would roll every site back at once; the floor is 5m.
        case(
            "1s deadline is floored: 4m waits",
            World::channel()
                .publish(&r1)
                .publish(&short)
                .upgrading(Some(&r1), &short, started, false)
                .at("2026-03-07T01:04:00Z"),
            Want::Stay("r2", None),
            Some(&short),
        ),
        case(
            "1s deadline is floored: 6m rolls back",
            World::channel()
                .publish(&r1)
                .publish(&short)
                .upgrading(Some(&r1), &short, started, false)
                .at("2026-03-07T01:06:00Z"),
            Want::Rollback("r1"),
            Some(&r1),
        ),
        // A v1 signature does not cover the rollout: its 2h deadline is not used.
        case(
            "unsigned deadline ignored",
            World::channel()
                .publish(&r1)
                .publish(&unsigned_long)
                .upgrading(Some(&r1), &unsigned_long, started, false)
                .at("2026-03-07T01:31:00Z"),
            Want::Rollback("r1"),
            Some(&r1),
        ),
        case(
            "first install past deadline holds",
            first.clone(),
            Want::Hold("Held"),
            Some(&r1),
        ),
        case(
            "predecessor gone holds",
            from_gone,
            Want::Hold("Held"),
            Some(&r2),
        ),
        case(
            "predecessor revoked holds",
            up(false)
                .at("2026-03-07T01:31:00Z")
                .revoke(revocation(&r1, false)),
            Want::Hold("Held"),
            Some(&r2),
        ),
        case(
            "target revoked rolls back at once",
            up(false).revoke(revocation(&r2, false)),
            Want::Rollback("r1"),
            Some(&r1),
        ),
        case(
            "stuck first install replaced by a new candidate",
            first.publish(&r3),
            Want::Upgrade("r3"),
            Some(&r3),
        ),
        case(
            "a newer candidate does not interrupt",
            up(false).publish(&r3),
            Want::Stay("r2", None),
            Some(&r2),
        ),
    ]);

    // Completion clears the upgrade in the record and the status; a rollback records the
    // failure by fingerprint.
    let p = up(true).plan();
    assert_eq!(p.record.as_ref().and_then(|r| r.upgrade.clone()), None);
    assert_eq!(p.status.current, Some(r2.id()));
    assert_eq!(p.status.target, None);
    let p = up(false).at("2026-03-07T01:31:00Z").plan();
    assert_eq!(p.status.current, Some(r1.id()));
    assert_eq!(p.status.failed.len(), 1);
    assert_eq!(p.status.failed[0].fingerprint, r2.fingerprint);
    // While in flight, look again when the deadline passes.
    assert_eq!(
        up(false).plan().requeue_at,
        Some(ts("2026-03-07T01:30:00Z"))
    );
}

#[test]
fn rule_2_a_first_install_goes_ahead_at_once() {
    let r1 = rel("r1", "2026.1", 'a');
    let later = waves(
        &rel("r2", "2026.2", 'b'),
        vec![wave(
            "pilot",
            &["erlangen"],
            &[],
            Some("2030-01-01T00:00:00Z"),
        )],
    );
    let older = rel("r0", "2025.4", '0');
    check(vec![
        case(
            "ignores waves and a closed window",
            World::channel().publish(&later).window("0 2 * * SUN"),
            Want::Upgrade("r2"),
            Some(&later),
        )
        .notes(&["Upgrading"]),
        case(
            "pinned release missing",
            World::pinned("nope").publish(&r1),
            Want::Stall("ReleaseNotFound"),
            None,
        ),
        case(
            "pinned release not certified",
            World::pinned("r1").publish(&uncertified(&r1)),
            Want::Stall("ReleaseNotCertified"),
            None,
        ),
        case(
            "empty channel",
            World::channel().publish(&uncertified(&r1)),
            Want::Stall("NoCertifiedRelease"),
            None,
        ),
        case(
            "pinned release revoked: its channel's newest other release",
            World::pinned("r1")
                .publish(&r1)
                .publish(&older)
                .revoke(revocation(&r1, false)),
            Want::Upgrade("r0"),
            Some(&older),
        ),
    ]);
    let p = World::channel().publish(&r1).plan();
    let record = p.record.expect("record");
    assert_eq!(record.running, r1.id());
    assert_eq!(record.upgrade.map(|u| u.from), Some(None));
    assert!(record.contents.contains_key(&r1.fingerprint));
}

#[test]
fn rule_3_a_revoked_or_expired_release_is_left() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    // A newer release whose wave has not reached this site yet.
    let r3 = waves(
        &rel("r3", "2026.3", 'c'),
        vec![wave(
            "late",
            &["erlangen"],
            &[],
            Some("2026-04-01T00:00:00Z"),
        )],
    );
    let on_r2 = World::channel().publish(&r1).publish(&r2).on(&r2);
    let expiring = with(&r2, |s| s.not_after = Some("2026-03-01T00:00:00Z".into()));
    let mut uncertified_revocation = revocation(&r2, true);
    uncertified_revocation.certified = false;
    check(vec![
        case(
            "window closed: waits, and does not re-apply the revoked content",
            on_r2
                .clone()
                .window("0 2 * * SUN")
                .revoke(revocation(&r2, false)),
            Want::Stay("r2", Some("WaitingForMaintenanceWindow")),
            None,
        ),
        case(
            "window open: moves to the newest non-revoked release, even a lower one",
            on_r2.clone().revoke(revocation(&r2, false)),
            Want::Upgrade("r1"),
            Some(&r1),
        )
        .notes(&["LeavingRevokedRelease"]),
        case(
            "immediate revocation ignores the window",
            on_r2
                .clone()
                .window("0 2 * * SUN")
                .revoke(revocation(&r2, true)),
            Want::Upgrade("r1"),
            Some(&r1),
        ),
        case(
            "a release whose wave has not come is not a way out",
            on_r2.clone().publish(&r3).revoke(revocation(&r2, false)),
            Want::Upgrade("r1"),
            Some(&r1),
        ),
        case(
            "expired (signed notAfter) is left like revoked",
            World::channel()
                .publish(&r1)
                .publish(&expiring)
                .on(&expiring)
                .window("0 2 * * SUN"),
            Want::Stay("r2", Some("WaitingForMaintenanceWindow")),
            None,
        ),
        case(
            "nothing to move to: hold, apply nothing",
            World::channel()
                .publish(&r2)
                .on(&r2)
                .revoke(revocation(&r2, false)),
            Want::Hold("ReleaseRevoked"),
            None,
        ),
        // Attack: anyone can create a ReleaseRevocation object; only a signed one counts.
        case(
            "an uncertified revocation is ignored",
            on_r2.clone().revoke(uncertified_revocation),
            Want::Stay("r2", None),
            Some(&r2),
        ),
        // A v1 signature does not cover notAfter: it is ignored.
        case(
            "unsigned notAfter ignored",
            World::channel()
                .publish(&r1)
                .publish(&v1(&expiring))
                .on(&v1(&expiring)),
            Want::Stay("r2", None),
            Some(&v1(&expiring)),
        ),
    ]);
}

#[test]
fn rule_3_reasons() {
    let r2 = rel("r2", "2026.2", 'b');
    let p = World::channel()
        .publish(&r2)
        .on(&r2)
        .revoke(revocation(&r2, false))
        .plan();
    assert_eq!(p.up_to_date.reason, reasons::RELEASE_REVOKED);
    assert!(p.deploy.is_none());
}

#[test]
fn rule_4_without_a_usable_candidate_the_site_holds_on_what_runs() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let twin = with(&rel("r2-twin", "2026.2", 'b'), |s| {
        if let Some(i) = s.components.get_mut("blaze") {
            i.version = "0.30.3".into();
        }
    });
    let on_r1 = World::pinned("r1").publish(&r1).on(&r1);
    check(vec![
        // The release the site runs is deleted from the cluster: the record's signed copy
        // keeps it applied.
        case(
            "pinned release deleted",
            on_r1.clone().unpublish("r1"),
            Want::Hold("ReleaseNotFound"),
            Some(&r1),
        ),
        case(
            "pinned release no longer certified",
            on_r1.clone().unpublish("r1").publish(&uncertified(&r1)),
            Want::Hold("ReleaseNotCertified"),
            Some(&r1),
        ),
        case(
            "pinned release revoked while the site runs another",
            World::pinned("r2")
                .publish(&r1)
                .publish(&r2)
                .on(&r1)
                .revoke(revocation(&r2, false)),
            Want::Hold("PinnedReleaseRevoked"),
            Some(&r1),
        ),
        // Two certified releases claim to be stable 2026.2: both are refused, whichever
        // comes first in a list.
        case(
            "pinned to one of two conflicting releases",
            World::pinned("r2")
                .publish(&r1)
                .publish(&r2)
                .publish(&twin)
                .on(&r1),
            Want::Hold("ConflictingReleases"),
            Some(&r1),
        ),
        case(
            "channel whose newest version conflicts: stays, and says why",
            World::channel()
                .publish(&r1)
                .publish(&r2)
                .publish(&twin)
                .on(&r1),
            Want::Stay("r1", None),
            Some(&r1),
        ),
    ]);
    let p = World::pinned("r2")
        .publish(&r1)
        .publish(&r2)
        .on(&r1)
        .revoke(revocation(&r2, false))
        .plan();
    assert_eq!(p.up_to_date.reason, reasons::PINNED_RELEASE_REVOKED);
    let p = World::channel()
        .publish(&r1)
        .publish(&r2)
        .publish(&twin)
        .on(&r1)
        .plan();
    assert_eq!(
        (p.up_to_date.status, p.up_to_date.reason),
        (false, reasons::CONFLICTING_RELEASES)
    );
    assert!(
        p.up_to_date.message.contains("r2-twin"),
        "{}",
        p.up_to_date.message
    );
    // A conflict resolved by revoking one of the two is no conflict.
    let p = World::channel()
        .publish(&r1)
        .publish(&r2)
        .publish(&twin)
        .on(&r1)
        .revoke(revocation(&twin, false))
        .plan();
    assert!(matches!(p.decision, Decision::Upgrade { ref to, .. } if to.name == "r2"));
}

#[test]
fn rule_5_the_same_content_is_the_same_release_whatever_its_name() {
    let r1 = rel("r1", "2026.1", 'a');
    let alias = renamed(&r1, "stable-current");
    check(vec![
        case(
            "same content under another name",
            World::pinned("stable-current").publish(&alias).on(&r1),
            Want::Stay("stable-current", None),
            Some(&r1),
        ),
        case(
            "rollout-only change of an unsigned (v1) release is not new content",
            World::channel()
                .publish(&v1(&deadline(&r1, "2h")))
                .on(&v1(&r1)),
            Want::Stay("r1", None),
            Some(&v1(&r1)),
        ),
    ]);
    let p = World::pinned("stable-current")
        .publish(&alias)
        .on(&r1)
        .plan();
    assert!(p.up_to_date.status, "{:?}", p.up_to_date);
}

#[test]
fn rule_6_never_backwards() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let on_r2 = World::channel().publish(&r1).publish(&r2).on(&r2);
    // Attack: delete r2 and recreate the name with r1's validly signed content.
    let replayed = renamed(&r1, "r2");
    let recreated = on_r2.clone().unpublish("r2").publish(&replayed);
    let pinned_low = World::pinned("r1").publish(&r1).publish(&r2).on(&r2);
    check(vec![
        case(
            "the newest release on the channel is deleted",
            on_r2.clone().unpublish("r2"),
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        case(
            "old content recreated under the running name (channel)",
            recreated.clone(),
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        case(
            "old content recreated under the running name (pin)",
            World {
                wanted: World::pinned("r2").wanted,
                ..recreated
            },
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        // The version decides, not the name or the list order.
        case(
            "an old signed release replayed under a new name is not newer",
            on_r2.clone().unpublish("r1").publish(&renamed(&r1, "r9")),
            Want::Stay("r2", None),
            Some(&r2),
        ),
        case(
            "... nor when the running release is deleted as well",
            on_r2
                .clone()
                .unpublish("r1")
                .unpublish("r2")
                .publish(&renamed(&r1, "r9")),
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        case(
            "pinning a lower version",
            pinned_low.clone(),
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        case(
            "the annotation names another fingerprint",
            pinned_low
                .clone()
                .annotate(ALLOW_DOWNGRADE_ANNOTATION, &r2.fingerprint),
            Want::Hold("WouldDowngrade"),
            Some(&r2),
        ),
        case(
            "an explicit downgrade names the fingerprint",
            pinned_low
                .clone()
                .annotate(ALLOW_DOWNGRADE_ANNOTATION, &r1.fingerprint),
            Want::Upgrade("r1"),
            Some(&r1),
        )
        .notes(&["DowngradeAllowed"]),
        case(
            "an explicit downgrade still waits for the window",
            pinned_low
                .clone()
                .window("0 2 * * SUN")
                .annotate(ALLOW_DOWNGRADE_ANNOTATION, &r1.fingerprint),
            Want::Stay("r2", Some("WaitingForMaintenanceWindow")),
            Some(&r2),
        ),
    ]);
    let p = pinned_low
        .annotate(ALLOW_DOWNGRADE_ANNOTATION, &r1.fingerprint)
        .plan();
    assert_eq!(p.clear_annotations, vec![ALLOW_DOWNGRADE_ANNOTATION]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.reason == reasons::DOWNGRADE_ALLOWED)
    );
    let hold = World::pinned("r1").publish(&r1).publish(&r2).on(&r2).plan();
    assert_eq!(hold.up_to_date.reason, reasons::WOULD_DOWNGRADE);
    assert!(
        hold.up_to_date
            .message
            .contains(&format!("{ALLOW_DOWNGRADE_ANNOTATION}={}", r1.fingerprint)),
        "{}",
        hold.up_to_date.message
    );
}

#[test]
fn rule_7_the_signed_upgrade_path_is_enforced() {
    let r1 = rel("r1", "2026.1", 'a');
    let r0 = rel("r0", "2025.4", '0');
    let r2 = upgrade_from(&rel("r2", "2026.2", 'b'), &["2026.1", "2026.1.1"]);
    let resigned = upgrade_from(&rel("r2-fix", "2026.2", 'c'), &["2026.1"]);
    check(vec![
        case(
            "listed version",
            World::channel().publish(&r1).publish(&r2).on(&r1),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "unlisted version is held",
            World::channel().publish(&r0).publish(&r2).on(&r0),
            Want::Hold("UpgradePathBlocked"),
            Some(&r0),
        ),
        case(
            "an unsigned (v1) upgradeFrom does not count",
            World::channel().publish(&r0).publish(&v1(&r2)).on(&r0),
            Want::Upgrade("r2"),
            Some(&v1(&r2)),
        ),
        case(
            "new content of the same version is no jump",
            World::channel()
                .publish(&resigned)
                .on(&rel("r2", "2026.2", 'b')),
            Want::Upgrade("r2-fix"),
            Some(&resigned),
        ),
    ]);
}

#[test]
fn rule_7_reasons() {
    let r0 = rel("r0", "2025.4", '0');
    let r2 = upgrade_from(&rel("r2", "2026.2", 'b'), &["2026.1"]);
    let p = World::channel().publish(&r0).publish(&r2).on(&r0).plan();
    assert_eq!(p.up_to_date.reason, reasons::UPGRADE_PATH_BLOCKED);
    assert!(
        p.up_to_date.message.contains("2026.1"),
        "{}",
        p.up_to_date.message
    );
}

#[test]
fn rule_8_a_release_that_failed_here_is_held_until_retried_or_changed() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let failed = |w: World| {
        let mut w = w;
        w.status.failed.push(FailedRelease {
            name: "r2".into(),
            fingerprint: r2.fingerprint.clone(),
            reason: "not ready within 30m".into(),
            at: ts("2026-03-01T02:00:00Z"),
        });
        w
    };
    let fixed = with(&r2, |s| {
        if let Some(i) = s.components.get_mut("blaze") {
            i.digest = format!("sha256:{}", "f".repeat(64));
        }
    });
    check(vec![
        case(
            "held",
            failed(World::channel().publish(&r1).publish(&r2).on(&r1)),
            Want::Hold("Held"),
            Some(&r1),
        ),
        case(
            "retry by name",
            failed(World::channel().publish(&r1).publish(&r2).on(&r1))
                .annotate(RETRY_ANNOTATION, "r2"),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "retry by fingerprint",
            failed(World::channel().publish(&r1).publish(&r2).on(&r1))
                .annotate(RETRY_ANNOTATION, &r2.fingerprint),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "new content under the same name is a new release",
            failed(World::channel().publish(&r1).publish(&fixed).on(&r1)),
            Want::Upgrade("r2"),
            Some(&fixed),
        ),
    ]);
    let p = failed(World::channel().publish(&r1).publish(&r2).on(&r1))
        .annotate(RETRY_ANNOTATION, "r2")
        .plan();
    assert_eq!(p.clear_annotations, vec![RETRY_ANNOTATION]);
    assert!(p.status.failed.is_empty(), "the retry drops the failure");
}

#[test]
fn rule_9_only_sites_of_the_same_namespace_halt_a_rollout() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let halted = |namespace: &str| {
        let mut w = World::channel().publish(&r1).publish(&r2).on(&r1);
        w.halts.push(Halt {
            namespace: namespace.into(),
            site: "other".into(),
            release: "r2".into(),
            fingerprint: r2.fingerprint.clone(),
            reason: "not ready within 30m".into(),
        });
        w
    };
    assert_eq!(halted("erlangen").plan().up_to_date.reason, reasons::HALTED);
    check(vec![
        case(
            "same namespace",
            halted("erlangen"),
            Want::Hold("Halted"),
            Some(&r1),
        ),
        // Attack: a tenant forges (or provokes) a failure in their own namespace to stop the
        // release everywhere.
        case(
            "other namespace",
            halted("tenant"),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "retry overrides",
            halted("erlangen").annotate(RETRY_ANNOTATION, "r2"),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
    ]);
}

#[test]
fn rule_10_waves_then_the_maintenance_window() {
    let r1 = rel("r1", "2026.1", 'a');
    let three = |name: &str| {
        waves(
            &rel(name, "2026.2", 'b'),
            vec![
                wave("pilot", &["erlangen"], &[], Some("2026-03-01T00:00:00Z")),
                wave(
                    "early",
                    &[],
                    &[("diz.miracum.org/tier", "early")],
                    Some("2026-03-10T00:00:00Z"),
                ),
                wave("rest", &["mainz"], &[], Some("2026-03-20T00:00:00Z")),
            ],
        )
    };
    let r2 = three("r2");
    let on = |site_id: &str, r: &Release| {
        let mut w = World::channel().publish(&r1).publish(r).on(&r1);
        w.site_id = site_id.into();
        w
    };
    let mut early = on("freiburg", &r2);
    early
        .labels
        .insert("diz.miracum.org/tier".into(), "early".into());
    let overtaking = waves(
        &rel("r2", "2026.2", 'b'),
        vec![
            wave("pilot", &["erlangen"], &[], Some("2026-04-01T00:00:00Z")),
            wave("second", &["mainz"], &[], Some("2026-02-01T00:00:00Z")),
        ],
    );
    let bad_time = waves(
        &rel("r2", "2026.2", 'b'),
        vec![wave("pilot", &["erlangen"], &[], Some("next tuesday"))],
    );
    // Attack: new digests re-signed under the running name are a new release and go through
    // the waves like any other.
    let resigned = waves(
        &with(&rel("r1", "2026.1", 'a'), |s| {
            if let Some(i) = s.components.get_mut("blaze") {
                i.digest = format!("sha256:{}", "d".repeat(64));
            }
        }),
        vec![wave(
            "pilot",
            &["erlangen"],
            &[],
            Some("2026-04-01T00:00:00Z"),
        )],
    );
    let mut renamed_in_place = World::channel().publish(&r1).on(&r1).unpublish("r1");
    renamed_in_place.releases.push(resigned.clone());
    check(vec![
        case(
            "pilot wave open",
            on("erlangen", &r2),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "label wave not yet",
            early,
            Want::Stay("r1", Some("WaitingForWave")),
            Some(&r1),
        ),
        case(
            "unlisted site goes with the last wave",
            on("giessen", &r2),
            Want::Stay("r1", Some("WaitingForWave")),
            Some(&r1),
        ),
        case(
            "a later wave never overtakes",
            on("mainz", &overtaking),
            Want::Stay("r1", Some("WaitingForWave")),
            Some(&r1),
        ),
        case(
            "unreadable notBefore blocks",
            on("erlangen", &bad_time),
            Want::Stay("r1", Some("InvalidRollout")),
            Some(&r1),
        ),
        // Attack: with a v1 signature the waves are not signed, so they are ignored rather
        // than trusted; such a release goes straight to the window gate.
        case(
            "unsigned waves ignored",
            on("giessen", &v1(&r2)),
            Want::Upgrade("r2"),
            Some(&v1(&r2)),
        ),
        case(
            "window closed",
            on("erlangen", &r2).window("0 2 * * SUN"),
            Want::Stay("r1", Some("WaitingForMaintenanceWindow")),
            Some(&r1),
        ),
        case(
            "window open",
            on("erlangen", &r2).window("0 2 * * SAT"),
            Want::Upgrade("r2"),
            Some(&r2),
        ),
        case(
            "invalid window blocks",
            on("erlangen", &r2).window("0 0 31 2 *"),
            Want::Stay("r1", Some("InvalidMaintenanceWindow")),
            Some(&r1),
        ),
        case(
            "re-signed content under the running name waits for its wave",
            renamed_in_place,
            Want::Stay("r1", Some("WaitingForWave")),
            Some(&r1),
        ),
    ]);
    // The status says what it waits for, and the reconcile comes back when it opens.
    let p = on("erlangen", &r2).window("0 2 * * SUN").plan();
    assert_eq!(p.requeue_at, Some(ts("2026-03-08T01:00:00Z")));
    assert_eq!(p.up_to_date.reason, "WaitingForMaintenanceWindow");
    assert!(p.up_to_date.message.contains("2026-03-08T01:00:00Z"));
    let p = on("giessen", &r2).plan();
    assert_eq!(p.requeue_at, Some(ts("2026-03-20T00:00:00Z")));
}

#[test]
fn fingerprints_follow_the_signed_content_and_format() {
    let r = rel("r", "2026.1", 'a');
    assert!(super::super::canonical::is_fingerprint(&r.fingerprint));
    // v2 covers the rollout, v1 does not.
    assert_ne!(deadline(&r, "2h").fingerprint, r.fingerprint);
    assert_eq!(v1(&deadline(&r, "2h")).fingerprint, v1(&r).fingerprint);
    assert_ne!(v1(&r).fingerprint, r.fingerprint);
    // Names are not content.
    assert_eq!(renamed(&r, "x").fingerprint, r.fingerprint);
}

#[test]
fn the_failed_list_is_bounded() {
    let r1 = rel("r1", "2026.1", 'a');
    let r2 = rel("r2", "2026.2", 'b');
    let mut w = World::channel().publish(&r1).publish(&r2).upgrading(
        Some(&r1),
        &r2,
        "2026-03-07T00:00:00Z",
        false,
    );
    w.status.failed = (0..MAX_FAILED)
        .map(|i| FailedRelease {
            name: format!("old-{i}"),
            fingerprint: format!("{i:064}"),
            reason: String::new(),
            at: ts("2026-01-01T00:00:00Z"),
        })
        .collect();
    let p = w.plan();
    assert!(matches!(p.decision, Decision::Rollback { .. }));
    assert_eq!(p.status.failed.len(), MAX_FAILED);
    assert_eq!(p.status.failed[0].name, "old-1");
    assert_eq!(p.status.failed.last().map(|f| f.name.as_str()), Some("r2"));
}
