//! `miracolix-operator hub`: the consortium hub (crate `miracolix-hub`), with the operator's own
//! release certification as the check of its feed. The feed entries are verified exactly as
//! `release verify` does it (same parser, same admission, same verdict), so a file the hub serves
//! is one every operator following the feed will also certify.

use std::path::Path;
use std::sync::Arc;

use miracolix_hub::feed::{EntryKind, EntryVerifier, Refusal, VerifiedEntry};

use super::release::{Admit, Document, Spec};
use crate::clock::SystemClock;
use crate::release::{self, TrustDir, Verdict};

/// Reason of a file that is not a ComponentRelease or ReleaseRevocation the API server would
/// admit (the certification reasons are the ComponentRelease status reasons).
pub const NOT_A_MANIFEST: &str = "NotAManifest";

/// Verifies feed files against a trusted-keys directory, re-read as it changes (as `run` does).
pub struct FeedVerifier {
    trust: TrustDir,
}

impl FeedVerifier {
    pub fn open(dir: &Path, threshold: usize) -> Result<Self, String> {
        let trust = TrustDir::open(dir, Arc::new(SystemClock))
            .map_err(|e| e.to_string())?
            .with_threshold(threshold);
        Ok(Self { trust })
    }
}

impl EntryVerifier for FeedVerifier {
    fn verify(&self, origin: &str, bytes: &[u8]) -> Result<VerifiedEntry, Refusal> {
        let doc =
            Document::parse(origin.to_string(), bytes.to_vec(), Admit::AsWritten).map_err(|e| {
                Refusal {
                    reason: NOT_A_MANIFEST.to_string(),
                    message: e.to_string(),
                }
            })?;
        let trust = self.trust.current().map_err(|message| Refusal {
            reason: release::Reason::TrustedKeysUnavailable.as_str().to_string(),
            message,
        })?;
        let threshold = self.trust.threshold();
        let (kind, verdict) = match &doc.spec {
            Spec::Release(spec) => (
                EntryKind::Release,
                release::verify_with_threshold(spec, &trust, threshold),
            ),
            Spec::Revocation(spec) => (
                EntryKind::Revocation,
                release::verify_revocation(spec, &trust, threshold),
            ),
        };
        match verdict {
            Verdict::Certified { .. } => Ok(VerifiedEntry {
                kind,
                name: doc.raw["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                manifest: as_applied(doc.raw),
            }),
            Verdict::NotCertified { reason, message } => Err(Refusal {
                reason: reason.as_str().to_string(),
                message,
            }),
        }
    }
}

/// The manifest as a follower applies it: without `status` and the fields the API server sets
/// (a file exported with `kubectl get -o yaml` carries them).
fn as_applied(mut raw: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = raw.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = raw.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
    raw
}

/// Runs the hub with [`FeedVerifier`].
pub fn main(args: miracolix_hub::cli::HubArgs) -> std::process::ExitCode {
    miracolix_hub::cli::main(
        args,
        Box::new(|dir: &Path, threshold: usize| {
            FeedVerifier::open(dir, threshold).map(|v| Arc::new(v) as Arc<dyn EntryVerifier>)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_set_fields_are_not_served() {
        let raw = serde_json::json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
            "metadata": {"name": "r", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"}},
            "spec": {"version": "1"}, "status": {"certified": true}});
        assert_eq!(
            as_applied(raw),
            serde_json::json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
                "metadata": {"name": "r", "labels": {"a": "b"}}, "spec": {"version": "1"}})
        );
    }
}
