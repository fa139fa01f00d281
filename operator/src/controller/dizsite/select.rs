//! From cluster objects to the rollout plan's facts about releases, and the release a site
//! would run if it were installed now (what `render` prints). Which release a site runs is
//! decided only by `release::plan`.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::reasons;
use crate::api::{ComponentRelease, DizSite, ReleaseRevocation};
use crate::catalog::ResolvedRelease;
use crate::controller::certification::Certifier;
use crate::release::plan::{self, Decision, Facts, Release, Revocation, RolloutStatus, Site};
use crate::release::record::Record;

/// Why there is no release to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectError {
    /// CamelCase, as the site's condition would say (e.g. `ReleaseNotFound`).
    pub reason: String,
    pub message: String,
}

/// Every published ComponentRelease with its verdict, plus the rollout record's copies of
/// signed content that still verify and carry the fingerprint the record files them under.
pub fn releases(
    objects: &[ComponentRelease],
    record: Option<&Record>,
    certifier: &dyn Certifier,
) -> Vec<Release> {
    let mut out: Vec<Release> = objects
        .iter()
        .map(|r| {
            Release::new(
                r.name_any(),
                r.spec.clone(),
                certifier.verdict(&r.spec),
                true,
            )
        })
        .collect();
    if let Some(record) = record {
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        names.insert(&record.running.fingerprint, &record.running.name);
        if let Some(from) = record.upgrade.as_ref().and_then(|u| u.from.as_ref()) {
            names.insert(&from.fingerprint, &from.name);
        }
        for fp in record.contents.keys() {
            let Some(spec) = record.content(fp) else {
                continue;
            };
            let name = names.get(fp.as_str()).copied().unwrap_or_default();
            let copy = Release::new(name, spec.clone(), certifier.verdict(&spec), false);
            // A copy filed under another fingerprint is not what it claims to be.
            if copy.fingerprint == *fp {
                out.push(copy);
            }
        }
    }
    out
}

/// Every ReleaseRevocation with whether its signature verifies.
pub fn revocations(objects: &[ReleaseRevocation], certifier: &dyn Certifier) -> Vec<Revocation> {
    objects
        .iter()
        .map(|r| Revocation {
            name: r.name_any(),
            fingerprints: r.spec.fingerprints.clone(),
            reason: r.spec.reason.clone(),
            immediate: r.spec.immediate,
            certified: certifier.revocation_verdict(&r.spec).is_ok(),
        })
        .collect()
}

/// The release a new site would be installed with now: the plan for a site with nothing
/// running.
pub fn for_new_site<'a>(
    site: &DizSite,
    releases: &'a [Release],
    revocations: &[Revocation],
    now: k8s_openapi::jiff::Timestamp,
) -> Result<&'a Release, SelectError> {
    for_site(site, releases, revocations, None, now)
}

/// The release the plan deploys for a site that runs what `record` says (`None`: nothing yet)
/// at `now`: the rules the controller applies, for `render`.
pub fn for_site<'a>(
    site: &DizSite,
    releases: &'a [Release],
    revocations: &[Revocation],
    record: Option<&Record>,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<&'a Release, SelectError> {
    let labels = site.labels().clone();
    let annotations = BTreeMap::new();
    let name = site.name_any();
    let namespace = site.namespace().unwrap_or_default();
    let facts = Facts {
        now,
        site: Site {
            namespace: &namespace,
            name: &name,
            site_id: &site.spec.site_id,
            labels: &labels,
            window: site.spec.maintenance_window.as_ref(),
            wanted: &site.spec.release,
            annotations: &annotations,
        },
        releases,
        revocations,
        record,
        status: &RolloutStatus::default(),
        workloads: &[],
        halts: &[],
    };
    let planned = plan::plan(&facts);
    match (&planned.decision, &planned.deploy) {
        (_, Some(id)) => releases
            .iter()
            .find(|r| r.fingerprint == id.fingerprint)
            .ok_or_else(|| SelectError {
                reason: reasons::RELEASE_NOT_FOUND.into(),
                message: format!("release {} is not available", id.name),
            }),
        (
            Decision::Stall {
                reason, message, ..
            },
            None,
        ) => Err(SelectError {
            reason: (*reason).to_string(),
            message: message.clone(),
        }),
        (_, None) => Err(SelectError {
            reason: planned.up_to_date.reason.to_string(),
            message: planned.up_to_date.message.clone(),
        }),
    }
}

pub fn resolve(rel: &Release) -> ResolvedRelease {
    ResolvedRelease::of(&rel.name, &rel.spec)
}
