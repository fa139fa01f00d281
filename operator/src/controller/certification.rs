//! The one place the controllers ask whether a release may run.

use crate::api::ComponentRelease;

/// Why a release is not certified, in words for the condition, the Event and the site admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCertified {
    /// CamelCase reason, e.g. `BadSignature`.
    pub reason: String,
    pub message: String,
}

/// Decides whether a ComponentRelease is certified. Implemented by the trust store; tests may use
/// a fixed verdict.
pub trait Certifier: Send + Sync {
    /// `Ok(key_id)` when the release's signature verifies against a trusted key.
    fn verdict(&self, release: &ComponentRelease) -> Result<String, NotCertified>;
}

impl Certifier for crate::release::TrustStore {
    fn verdict(&self, release: &ComponentRelease) -> Result<String, NotCertified> {
        match crate::release::verify(&release.spec, self) {
            crate::release::Verdict::Certified { key_id } => Ok(key_id),
            crate::release::Verdict::NotCertified { reason, message } => Err(NotCertified {
                reason: reason.as_str().to_string(),
                message,
            }),
        }
    }
}
