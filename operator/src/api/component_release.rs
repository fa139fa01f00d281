//! `ComponentRelease`: a consortium-certified set of component images, pinned by digest.

// kube-derive's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Channel;

/// Images a release may pin that no catalogue component runs: the Data Sharing Framework's FHIR
/// server, BPE and their proxies (reserved), the feasibility privacy gate, which a
/// FeasibilityEndpoint runs (`controller/feasibility/build.rs`), and the proposal inbox, which a
/// ProposalInbox runs (`controller/inbox/build.rs`).
pub const RESERVED_IMAGE_KEYS: &[&str] = &[
    "dsf-fhir",
    "dsf-fhir-proxy",
    "dsf-bpe",
    "dsf-bpe-proxy",
    "miracolix-gate",
    "miracolix-inbox",
    "miracolix-reporter",
];

/// Every image a release may pin: those the catalogue's components run (derived from the
/// component registry), then the reserved ones.
pub fn image_keys() -> Vec<&'static str> {
    let mut keys = crate::catalog::image_keys();
    keys.extend(RESERVED_IMAGE_KEYS);
    keys
}

/// On the spec, where the definitions are visible: every image key is the catalogue's or
/// names a component the release defines. Written as a count to stay within the CEL cost
/// budget (map keys have no length limit, so a per-key search of the definitions is costly):
/// every definition's name is a key (`DEFINED_IMAGES_PINNED`) and never a catalogue key (its
/// name rule), so there are at most as many unknown keys as definitions exactly when every
/// unknown key is a definition's name.
fn image_keys_rule() -> String {
    let list = image_keys()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "size(self.components.filter(k, !(k in [{list}]))) <= (has(self.componentDefinitions) ? size(self.componentDefinitions) : 0)"
    )
}

const DEFINED_IMAGES_PINNED: &str = "!has(self.componentDefinitions) || self.componentDefinitions.all(d, d.name in self.components)";

fn image_keys_message() -> String {
    format!(
        "unknown component image; known images are: {} (or the name of a component in spec.componentDefinitions)",
        image_keys().join(", ")
    )
}

/// A certified, signed set of component images. Cluster-scoped: every site in the cluster runs
/// from the same catalogue of releases.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "diz.miracum.org",
    version = "v1alpha1",
    kind = "ComponentRelease",
    plural = "componentreleases",
    shortname = "crel",
    category = "miracum",
    status = "ComponentReleaseStatus",
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Channel", type_ = "string", json_path = ".spec.channel"),
    printcolumn(name = "Certified", type_ = "string", json_path = ".status.certified"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(image_keys_rule()).field_path(".components").message(Message::Message(image_keys_message())))]
#[x_kube(validation = Rule::new(DEFINED_IMAGES_PINNED).field_path(".componentDefinitions").message("every component the release defines needs its image under spec.components, keyed by the definition's name and pinned by digest"))]
#[x_kube(validation = Rule::new(SIGNED_CONTENT_IMMUTABLE).message("the signed content of a release (version, channel, components, componentDefinitions, notAfter, compatibility.upgradeFrom, rollout) is immutable: a release is its signed content. Publish a new ComponentRelease instead; only signatures and compatibility.notes may change"))]
pub struct ComponentReleaseSpec {
    /// Release version: calendar (`2026.1`, `2026.1.2`) or semantic (`1.4.0`, `1.5.0-rc.1`).
    #[x_kube(validation = Rule::new(r"self.matches('^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?(-[0-9A-Za-z.-]+)?$')").message("version must be a calendar version like 2026.1 or 2026.1.2, or a semantic version like 1.4.0 or 1.5.0-rc.1"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("version is immutable: publish a new ComponentRelease for a new version"))]
    #[schemars(length(min = 1, max = 64))]
    pub version: String,

    /// The channel this release is published on.
    pub channel: Channel,

    /// Images by component, each pinned by digest. Keys are component image names such as
    /// `blaze` or `fhir-pseudonymizer`, or the name of a component in `componentDefinitions`.
    #[schemars(extend("maxProperties" = 40, "minProperties" = 1))]
    pub components: BTreeMap<String, ComponentImage>,

    /// Components beyond the built-in catalogue, defined as data (see docs/concepts.md). Each
    /// one's image is pinned under its name in `components`. Signed (format
    /// `miracolix-release-v2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("componentDefinitions are signed content and immutable: publish a new ComponentRelease instead"))]
    #[schemars(length(max = super::component_definition::MAX_DEFINITIONS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub component_definitions: Vec<super::ComponentDefinition>,

    /// After this time (RFC 3339) the release expires: it is no longer deployed, and sites
    /// running it move to the newest certified release at their next maintenance window.
    /// Signed (format `miracolix-release-v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub not_after: Option<String>,

    /// Which versions work together and what an operator should know before upgrading.
    /// `upgradeFrom` is signed (format `miracolix-release-v2`) and enforced; `notes` is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,

    /// How the release reaches the sites: waves and the health gate. Signed (format
    /// `miracolix-release-v2`); a release signed in `miracolix-release-v1` has its rollout
    /// ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// The consortium's privacy floor for feasibility: a FeasibilityEndpoint at a site running
    /// this release may be stricter, never looser (else it is Stalled naming the field). Signed
    /// (format `miracolix-release-v2`); ignored for a release certified in v1. The
    /// FeasibilityEndpoint CRD's static limits stay the outer bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_floor: Option<PrivacyFloor>,

    /// Signature over the canonical encoding of the release (see docs/release-signing.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ReleaseSignature>,

    /// Further signatures, for operators that require several (k-of-n, `--signature-threshold`).
    /// Together with `signature`, each distinct trusted key counts once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub signatures: Vec<ReleaseSignature>,
}

/// CEL transition rule: what the signature covers never changes in place. Optional fields must
/// stay absent or stay equal; delete + create under the same name is caught by the rollout
/// plan instead (a release is identified by its fingerprint, not its name).
const SIGNED_CONTENT_IMMUTABLE: &str = "self.version == oldSelf.version \
    && self.channel == oldSelf.channel \
    && self.components == oldSelf.components \
    && has(self.componentDefinitions) == has(oldSelf.componentDefinitions) \
    && has(self.notAfter) == has(oldSelf.notAfter) \
    && (!has(self.notAfter) || self.notAfter == oldSelf.notAfter) \
    && has(self.rollout) == has(oldSelf.rollout) \
    && (!has(self.rollout) || self.rollout == oldSelf.rollout) \
    && (has(self.compatibility) && has(self.compatibility.upgradeFrom)) \
       == (has(oldSelf.compatibility) && has(oldSelf.compatibility.upgradeFrom)) \
    && (!(has(self.compatibility) && has(self.compatibility.upgradeFrom)) \
       || self.compatibility.upgradeFrom == oldSelf.compatibility.upgradeFrom)";

impl ComponentReleaseSpec {
    /// `signature` followed by `signatures`.
    pub fn all_signatures(&self) -> impl Iterator<Item = &ReleaseSignature> {
        self.signature.iter().chain(&self.signatures)
    }
}

/// One image, pinned by digest. The tag is only a label for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentImage {
    /// Image repository without tag or digest, e.g. `ghcr.io/samply/blaze`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$')").message("repository must be an image name without tag or digest, e.g. ghcr.io/samply/blaze; the release pins the image by its digest field"))]
    #[schemars(length(min = 1, max = 255))]
    pub repository: String,

    /// Content digest of the certified image, `sha256:` and 64 hex characters.
    #[x_kube(validation = Rule::new("self.matches('^sha256:[0-9a-f]{64}$')").message("digest must be 'sha256:' followed by 64 lowercase hex characters: certified images are pinned by digest, a tag alone is refused"))]
    #[schemars(length(min = 71, max = 71))]
    pub digest: String,

    /// Upstream version of the image, for people (e.g. `0.30.1`).
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compatibility {
    /// Release versions a site may upgrade from directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 64)))]
    pub upgrade_from: Vec<String>,
    /// Free-text notes for site admins (breaking changes, migrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub notes: Option<String>,
}

/// How a release reaches the sites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Waves in order. A site not named by any wave receives the release with the last wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(w, w.name == self[size(self) - 1].name || !has(w.siteSelector) || w.siteSelector == null || size(w.siteSelector.matchLabels) > 0)").message("only the last wave may have a siteSelector with empty matchLabels: it selects every site, so the waves after it would never receive the release; give it labels or make it the last wave"))]
    #[x_kube(validation = Rule::new("self.all(a, self.all(b, a.name == b.name || !has(a.sites) || !has(b.sites) || !a.sites.exists(s, s in b.sites)))").message("a site may be in one wave only, but a siteId is listed in the sites of two waves; remove it from one of them"))]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub waves: Vec<Wave>,

    /// How long an upgraded site may take to become ready before it is rolled back.
    #[serde(default = "default_progress_deadline")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(h|m|s))+$')").message("progressDeadline must be a duration such as 30m, 2h or 1h30m"))]
    #[x_kube(validation = Rule::new(super::rules::NONZERO_DURATION).message("progressDeadline must be longer than zero: it is how long an upgraded site may take to become ready before it is rolled back (leave it out for the default, 30m)"))]
    #[schemars(length(min = 2, max = 20))]
    pub progress_deadline: String,
}

pub fn default_progress_deadline() -> String {
    "30m".to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.sites) && size(self.sites) > 0) || has(self.siteSelector)").message("a wave must name its sites (sites: [siteId, ...]) or select them by label (siteSelector)"))]
pub struct Wave {
    /// Name of the wave, e.g. `pilot`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("wave name must be a DNS label: lowercase letters, digits and '-'"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Sites in this wave, by `siteId`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 63)))]
    #[schemars(transform = site_id_items)]
    pub sites: Vec<String>,
    /// Sites in this wave, by the labels of their DizSite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_selector: Option<SiteSelector>,
    /// The wave does not start before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub not_before: Option<String>,
}

/// Each entry of `sites` gets its own rule, so that a refusal names the entry
/// (`spec.rollout.waves[0].sites[1]`); schemars' `inner(...)` takes no CEL.
fn site_id_items(schema: &mut schemars::Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert(
            "x-kubernetes-validations".to_string(),
            serde_json::json!([{
                "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                "message": "sites are named by the siteId of their DizSite: lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. erlangen)",
            }]),
        );
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteSelector {
    /// Labels a DizSite must carry to be in the wave.
    #[schemars(extend("maxProperties" = 20))]
    pub match_labels: BTreeMap<String, String>,
}

/// Supported signature algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SignatureAlgorithm {
    /// ECDSA over P-256 with SHA-256, DER signature (what `cosign sign-blob --key` and
    /// `openssl dgst -sha256 -sign` produce).
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
    /// Ed25519 (pure).
    #[serde(rename = "ed25519")]
    Ed25519,
}

/// Which canonical encoding a signature covers (see docs/release-signing.md).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum ReleaseFormat {
    /// Version, channel and images only. Rollout and compatibility are not signed and are
    /// ignored for a release certified in this format. A signature without `format` is v1.
    #[default]
    #[serde(rename = "miracolix-release-v1")]
    V1,
    /// Additionally `notAfter`, `compatibility.upgradeFrom` and `rollout` (waves, progress
    /// deadline): everything that steers the rollout.
    #[serde(rename = "miracolix-release-v2")]
    V2,
}

impl ReleaseFormat {
    /// The format tag: the first line of the canonical encoding.
    pub fn tag(self) -> &'static str {
        match self {
            ReleaseFormat::V1 => "miracolix-release-v1",
            ReleaseFormat::V2 => "miracolix-release-v2",
        }
    }
}

impl std::fmt::Display for ReleaseFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

/// Bounds on `FeasibilityEndpoint.spec.privacy`; every field optional (absent: no bound beyond
/// the CRD's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivacyFloor {
    /// Largest ε an endpoint may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 0.5").message("maxEpsilon must be greater than 0 and at most 0.5"))]
    pub max_epsilon: Option<f64>,
    /// Smallest `roundTo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 1000").message("minRoundTo must be between 10 and 1000"))]
    pub min_round_to: Option<i32>,
    /// Smallest `suppressBelow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 1000").message("minSuppressBelow must be between 5 and 1000"))]
    pub min_suppress_below: Option<i32>,
    /// Largest `requestsPerHour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 999").message("maxRequestsPerHour must be between 1 and 999"))]
    pub max_requests_per_hour: Option<i32>,
    /// Largest `dailyEpsilonBudget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.5 && self <= 1000.0").message("maxDailyEpsilonBudget must be between 0.5 and 1000"))]
    pub max_daily_epsilon_budget: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSignature {
    /// Identifier of the signing key among the operator's trusted keys.
    #[schemars(length(min = 1, max = 128))]
    pub key_id: String,
    pub algorithm: SignatureAlgorithm,
    /// The canonical encoding the signature covers; absent means `miracolix-release-v1`.
    /// Ignored on a ReleaseRevocation, which has one encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ReleaseFormat>,
    /// The signature, base64-encoded.
    #[x_kube(validation = Rule::new(r"self.matches('^[A-Za-z0-9+/]+={0,2}$')").message("signature value must be base64"))]
    #[schemars(length(min = 4, max = 1024))]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the signature verified against a key the operator trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified: Option<bool>,
    /// Machine-readable reason for the verdict (e.g. `Verified`, `Unsigned`, `BadSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The key that verified the signature (the first, when several did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Every trusted key whose signature verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    /// SHA-256 of the signed canonical content: the release's identity. Sites record it, the
    /// `diz.miracum.org/allow-downgrade-to` annotation and ReleaseRevocations name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The ReleaseRevocation that revoked this release, when a certified one names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// DizSites in this cluster running this release, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
