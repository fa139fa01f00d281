//! Which ComponentRelease a site runs: the pinned one, or the newest certified one on its channel.

use crate::api::reasons;
use crate::api::{ComponentRelease, ReleaseRef};
use crate::catalog::ResolvedRelease;
use crate::controller::certification::{Certifier, NotCertified};
use crate::release::version::ReleaseVersion;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("ComponentRelease {name} does not exist; create it or fix spec.release.name")]
    NotFound { name: String },
    #[error("ComponentRelease {name} is not certified ({}): {}; nothing is changed until a certified release is referenced", .why.reason, .why.message)]
    NotCertified { name: String, why: NotCertified },
    #[error("no certified ComponentRelease on channel {channel}{}", if *.uncertified > 0 { format!(" ({} uncertified ones ignored)", .uncertified) } else { String::new() })]
    NoCertifiedOnChannel { channel: String, uncertified: usize },
    #[error("spec.release names neither a release nor a channel")]
    Unspecified,
}

impl SelectError {
    pub fn reason(&self) -> &'static str {
        match self {
            SelectError::NotFound { .. } => reasons::RELEASE_NOT_FOUND,
            SelectError::NotCertified { .. } => reasons::RELEASE_NOT_CERTIFIED,
            SelectError::NoCertifiedOnChannel { .. } => reasons::NO_CERTIFIED_RELEASE,
            SelectError::Unspecified => reasons::INVALID_SPEC,
        }
    }
}

/// A release by name, if it exists and is certified: what a site may run.
pub fn certified_by_name(
    name: &str,
    releases: &[ComponentRelease],
    certifier: &dyn Certifier,
) -> Result<ComponentRelease, SelectError> {
    let rel = releases
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| SelectError::NotFound {
            name: name.to_string(),
        })?;
    certifier
        .verdict(rel)
        .map_err(|why| SelectError::NotCertified {
            name: name.to_string(),
            why,
        })?;
    Ok(rel.clone())
}

/// The release the spec asks for: the pinned one, or the newest certified one on the channel.
/// Whether the site may move to it now is the rollout's decision.
pub fn select(
    wanted: &ReleaseRef,
    releases: &[ComponentRelease],
    certifier: &dyn Certifier,
) -> Result<ComponentRelease, SelectError> {
    match (&wanted.name, &wanted.channel) {
        (Some(name), _) => {
            let rel = releases
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| SelectError::NotFound { name: name.clone() })?;
            certifier
                .verdict(rel)
                .map_err(|why| SelectError::NotCertified {
                    name: name.clone(),
                    why,
                })?;
            Ok(rel.clone())
        }
        (None, Some(channel)) => {
            let on_channel: Vec<&ComponentRelease> = releases
                .iter()
                .filter(|r| r.spec.channel == *channel)
                .collect();
            let mut certified: Vec<&ComponentRelease> = on_channel
                .iter()
                .copied()
                .filter(|r| certifier.verdict(r).is_ok())
                .collect();
            certified.sort_by(|a, b| {
                ReleaseVersion::parse(&a.spec.version).cmp(&ReleaseVersion::parse(&b.spec.version))
            });
            certified
                .last()
                .map(|r| (*r).clone())
                .ok_or(SelectError::NoCertifiedOnChannel {
                    channel: channel.to_string(),
                    uncertified: on_channel.len(),
                })
        }
        (None, None) => Err(SelectError::Unspecified),
    }
}

pub fn resolve(rel: &ComponentRelease) -> ResolvedRelease {
    ResolvedRelease {
        name: rel.metadata.name.clone().unwrap_or_default(),
        version: rel.spec.version.clone(),
        images: rel.spec.components.clone(),
    }
}
