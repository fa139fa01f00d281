//! Which ComponentRelease a site runs: the pinned one, or the newest certified one on its channel.

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
            SelectError::NotFound { .. } => "ReleaseNotFound",
            SelectError::NotCertified { .. } => "ReleaseNotCertified",
            SelectError::NoCertifiedOnChannel { .. } => "NoCertifiedRelease",
            SelectError::Unspecified => "InvalidSpec",
        }
    }
}

/// The release the site should run now.
pub fn select(
    wanted: &ReleaseRef,
    releases: &[ComponentRelease],
    certifier: &dyn Certifier,
) -> Result<ResolvedRelease, SelectError> {
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
            Ok(resolve(rel))
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
                .map(|r| resolve(r))
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
