//! `ReleaseRevocation`: a signed statement that releases, named by their fingerprints, must no
//! longer run.

// kube-derive's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ReleaseSignature;

/// Revokes certified releases by fingerprint. Honoured only when its own signature verifies
/// with the operator's trusted keys (the same keys and threshold as releases). A revoked release
/// is never deployed; sites running it move to the newest certified, non-revoked release at
/// their next maintenance window, or at once when `immediate` is set. Cluster-scoped, like
/// ComponentRelease. See docs/release-signing.md.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "diz.miracum.org",
    version = "v1alpha1",
    kind = "ReleaseRevocation",
    plural = "releaserevocations",
    shortname = "rrev",
    category = "miracum",
    status = "ReleaseRevocationStatus",
    printcolumn(name = "Certified", type_ = "string", json_path = ".status.certified"),
    printcolumn(name = "Immediate", type_ = "boolean", json_path = ".spec.immediate"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".spec.reason"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.fingerprints == oldSelf.fingerprints && self.reason == oldSelf.reason && self.immediate == oldSelf.immediate").message("a revocation's signed content (fingerprints, reason, immediate) is immutable; create another ReleaseRevocation instead"))]
pub struct ReleaseRevocationSpec {
    /// Fingerprints of the revoked releases: SHA-256 of their signed canonical content, as
    /// `miracolix-operator release fingerprint` prints it and `kubectl get crel -o wide` shows.
    #[schemars(length(min = 1, max = 50), inner(regex(pattern = "^[0-9a-f]{64}$")))]
    pub fingerprints: Vec<String>,

    /// Why, for site admins (printable ASCII; signed).
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,

    /// Leave the revoked releases at once instead of at each site's next maintenance window.
    #[serde(default)]
    pub immediate: bool,

    /// Signature over the canonical encoding `miracolix-revocation-v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ReleaseSignature>,

    /// Further signatures (k-of-n), as on a ComponentRelease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub signatures: Vec<ReleaseSignature>,
}

impl ReleaseRevocationSpec {
    /// `signature` followed by `signatures`.
    pub fn all_signatures(&self) -> impl Iterator<Item = &ReleaseSignature> {
        self.signature.iter().chain(&self.signatures)
    }
}

/// Whether the operator honours the revocation. For people: every DizSite reconcile verifies
/// the signature itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRevocationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the signatures verify with the trusted keys (only then is it honoured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified: Option<bool>,
    /// `Verified` or why not (e.g. `UnknownKey`, `BadSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
