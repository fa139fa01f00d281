//! The one place the controllers ask whether a release (or a revocation) is certified.

use crate::api::{ComponentReleaseSpec, ReleaseRevocationSpec};
pub use crate::release::verify::{Certified, NotCertified};
use crate::release::{Reason, TrustDir, TrustStore, Verdict};

/// Decides whether releases and revocations are certified. Implemented by the trust stores;
/// tests may use a fixed verdict.
pub trait Certifier: Send + Sync {
    fn verdict(&self, release: &ComponentReleaseSpec) -> Result<Certified, NotCertified>;
    fn revocation_verdict(
        &self,
        revocation: &ReleaseRevocationSpec,
    ) -> Result<Certified, NotCertified>;
}

fn from_verdict(verdict: Verdict) -> Result<Certified, NotCertified> {
    match verdict {
        Verdict::Certified { key_ids, format } => Ok(Certified { key_ids, format }),
        Verdict::NotCertified { reason, message } => Err(NotCertified {
            reason: reason.as_str().to_string(),
            message,
        }),
    }
}

/// A fixed set of keys, one signature needed.
impl Certifier for TrustStore {
    fn verdict(&self, release: &ComponentReleaseSpec) -> Result<Certified, NotCertified> {
        from_verdict(crate::release::verify(release, self))
    }

    fn revocation_verdict(
        &self,
        revocation: &ReleaseRevocationSpec,
    ) -> Result<Certified, NotCertified> {
        from_verdict(crate::release::verify_revocation(revocation, self, 1))
    }
}

/// The operator's keys: the mounted directory, re-read as it changes, with the configured
/// signature threshold.
impl Certifier for TrustDir {
    fn verdict(&self, release: &ComponentReleaseSpec) -> Result<Certified, NotCertified> {
        match self.current() {
            Ok(store) => from_verdict(crate::release::verify_with_threshold(
                release,
                &store,
                self.threshold(),
            )),
            Err(message) => Err(unavailable(message)),
        }
    }

    fn revocation_verdict(
        &self,
        revocation: &ReleaseRevocationSpec,
    ) -> Result<Certified, NotCertified> {
        match self.current() {
            Ok(store) => from_verdict(crate::release::verify_revocation(
                revocation,
                &store,
                self.threshold(),
            )),
            Err(message) => Err(unavailable(message)),
        }
    }
}

fn unavailable(message: String) -> NotCertified {
    NotCertified {
        reason: Reason::TrustedKeysUnavailable.as_str().to_string(),
        message,
    }
}
