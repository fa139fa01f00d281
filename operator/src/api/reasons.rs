//! Every reason the operator writes, in one list: condition reasons of DizSites and
//! ComponentReleases, a ComponentRelease's `status.reason`, Event reasons, and the `reason` label
//! of `miracolix_reconcile_errors_total` (also the `reason` field of the log line of a failed
//! reconcile).
//!
//! The code sets reasons only through these constants, the user documentation
//! (`docs/conditions.md`, `miracolix-operator docs conditions`) is generated from [`ALL`], and
//! `operator/tests/condition_reasons.rs` checks both directions: no reason is written as a
//! string literal outside this list, and every reason in it is asserted by some test.

use super::conditions::{
    CERTIFIED, NETWORK_RESTRICTED, PUBLISHED, READY, RECONCILING, RELEASE_CERTIFIED, RELEASE_FEED,
    RELEASE_UP_TO_DATE, REPORTING, REVOKED, STALLED,
};

/// Where a reason shows up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A DizSite condition of this type, with this status (`true`: `True`).
    Site(&'static str, bool),
    /// A ComponentRelease's `status.reason` and its condition of this type, with this status.
    Release(&'static str, bool),
    /// An Event on a DizSite; `true`: type `Warning`, else `Normal`.
    SiteEvent(bool),
    /// An Event on a ComponentRelease (always a `Warning`).
    ReleaseEvent,
    /// Another condition of a ComponentRelease (not mirrored in `status.reason`).
    ReleaseCondition(&'static str, bool),
    /// A ReleaseRevocation's `status.reason` and `Certified` condition with this status (and a
    /// Warning Event on it when not certified).
    Revocation(bool),
    /// A FeasibilityEndpoint condition of this type, with this status (and a Warning Event on it
    /// when `Stalled`=True).
    Endpoint(&'static str, bool),
    /// A ProposalInbox condition of this type, with this status (and a Warning Event on it when
    /// `Stalled`=True).
    Inbox(&'static str, bool),
    /// A failed reconcile: the `reason` label of `miracolix_reconcile_errors_total` and the
    /// `reason` field of the operator's `reconcile failed` log line.
    ReconcileError,
}

impl Seen {
    /// How the documentation names the place, e.g. "`Ready`=False".
    pub fn describe(self) -> String {
        let status = |s: bool| if s { "True" } else { "False" };
        match self {
            Seen::Site(type_, s) => format!("DizSite `{type_}`={}", status(s)),
            Seen::Release(type_, s) => {
                format!("ComponentRelease `status.reason`, `{type_}`={}", status(s))
            }
            Seen::SiteEvent(true) => "DizSite Event (Warning)".to_string(),
            Seen::SiteEvent(false) => "DizSite Event (Normal)".to_string(),
            Seen::ReleaseEvent => "ComponentRelease Event (Warning)".to_string(),
            Seen::ReleaseCondition(type_, s) => format!("ComponentRelease `{type_}`={}", status(s)),
            Seen::Revocation(s) => format!("ReleaseRevocation `Certified`={}", status(s)),
            Seen::Endpoint(type_, s) => format!("FeasibilityEndpoint `{type_}`={}", status(s)),
            Seen::Inbox(type_, s) => format!("ProposalInbox `{type_}`={}", status(s)),
            Seen::ReconcileError => "failed reconcile (metric, log)".to_string(),
        }
    }
}

/// One reason with what it means and what to do about it.
#[derive(Clone, Copy, Debug)]
pub struct ReasonInfo {
    /// The CamelCase reason as it is written.
    pub name: &'static str,
    /// The name of its constant in this module, e.g. `COMPONENTS_FAILING`.
    pub constant: &'static str,
    pub seen: &'static [Seen],
    pub meaning: &'static str,
    pub action: &'static str,
}

/// The condition types a DizSite carries, with what `True` means.
pub const SITE_CONDITIONS: &[(&str, &str)] = &[
    (
        READY,
        "every enabled component runs the release the site is on, with all replicas (and its CloudNativePG database) ready",
    ),
    (
        RECONCILING,
        "the operator is working towards the spec: objects applied, pods not all ready yet, or a write to retry",
    ),
    (
        STALLED,
        "the operator cannot make progress without a change by a human; the reason says which",
    ),
    (
        RELEASE_CERTIFIED,
        "the release the site runs or targets is signed by a trusted key",
    ),
    (
        RELEASE_UP_TO_DATE,
        "the site runs the release its spec asks for (False while waiting, upgrading, held or rolled back)",
    ),
    (
        PUBLISHED,
        "every part the site would publish is on its Ingress with a login (False, LoginRequired: parts stay inside the cluster for lack of spec.auth.oidc). Not read by kstatus: Ready is unaffected",
    ),
    (
        NETWORK_RESTRICTED,
        "the site's NetworkPolicies leave nothing open to any address (False while egress to the OIDC issuer or external databases is unrestricted, or NetworkPolicies are off). Not read by kstatus",
    ),
    (
        RELEASE_FEED,
        "the operator follows the consortium's release feed (`run --feed-url`) and its last round succeeded; False while the feed is unreachable, serves something that is not a feed, or an entry cannot be applied (what the last good feed gave stays). Absent without `--feed-url`. Not read by kstatus",
    ),
    (
        REPORTING,
        "the site's last scheduled report to the consortium hub succeeded (only with spec.reporting; docs/consortium.md). Not read by kstatus",
    ),
];

/// The condition types a ComponentRelease carries.
pub const RELEASE_CONDITIONS: &[(&str, &str)] = &[
    (
        CERTIFIED,
        "the release's signatures verify with enough trusted keys: sites may run it",
    ),
    (
        REVOKED,
        "a certified ReleaseRevocation names the release's fingerprint: no site deploys it, sites running it move on",
    ),
];

const READY_F: Seen = Seen::Site(READY, false);
const STALLED_T: Seen = Seen::Site(STALLED, true);
const RECONCILING_T: Seen = Seen::Site(RECONCILING, true);
const WARNING: Seen = Seen::SiteEvent(true);
const NORMAL: Seen = Seen::SiteEvent(false);
const NOT_UP_TO_DATE: Seen = Seen::Site(RELEASE_UP_TO_DATE, false);
const NOT_CERTIFIED: Seen = Seen::Release(CERTIFIED, false);
const REVOCATION_REFUSED: Seen = Seen::Revocation(false);
const EP_READY_F: Seen = Seen::Endpoint(READY, false);
const EP_STALLED_T: Seen = Seen::Endpoint(STALLED, true);
const INBOX_READY_F: Seen = Seen::Inbox(READY, false);
const INBOX_STALLED_T: Seen = Seen::Inbox(STALLED, true);

/// What to do about a spec the catalogue cannot build.
const FIX_SPEC: &str = "fix the DizSite spec as the message says (it names the field); the site stays as it was until then";

macro_rules! reasons {
    ($($constant:ident = $name:literal { seen: [$($seen:expr),* $(,)?], meaning: $meaning:expr, action: $action:expr $(,)? })*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $meaning)]
            pub const $constant: &str = $name;
        )*
        /// Every reason, in the order of the documentation.
        pub const ALL: &[ReasonInfo] = &[
            $(ReasonInfo {
                name: $name,
                constant: stringify!($constant),
                seen: &[$($seen),*],
                meaning: $meaning,
                action: $action,
            }),*
        ];
    };
}

reasons! {
    // The site's health, after a successful apply.
    READY_REASON = "Ready" {
        seen: [Seen::Site(READY, true), Seen::Site(RECONCILING, false), Seen::Site(STALLED, false), Seen::Endpoint(READY, true), Seen::Endpoint(RECONCILING, false), Seen::Endpoint(STALLED, false), Seen::Inbox(READY, true), Seen::Inbox(RECONCILING, false), Seen::Inbox(STALLED, false)],
        meaning: "every enabled component is ready on the release the site runs (a FeasibilityEndpoint: its gate is available; a ProposalInbox: its service is available)",
        action: "nothing",
    }
    PROGRESSING = "Progressing" {
        seen: [READY_F, RECONCILING_T, Seen::Site(STALLED, false)],
        meaning: "the objects are applied and some pods are not ready yet, none of them failing; the message lists them (`component (ready/wanted ready)`). `Stalled`=False carries this reason whenever nothing stalls",
        action: "wait; if it lasts, `kubectl describe pods` in the site's namespace. A Secret or ConfigMap mounted as a file that does not exist is reported as `ComponentsFailing` (from the kubelet's `FailedMount` Event)",
    }
    COMPONENTS_FAILING = "ComponentsFailing" {
        seen: [READY_F, RECONCILING_T, Seen::Site(RECONCILING, false), STALLED_T],
        meaning: "a component's pods cannot start or become ready: the kubelet reports why (the message names the component with that reason, e.g. `mainzelliste (mainzelliste: CreateContainerConfigError: secret \"mainzelliste-api\" not found)`), or its Deployment gave up (`ProgressDeadlineExceeded`; the message names the component). While it lasts less than the progress deadline (30 minutes) the site is Reconciling; past it, Stalled (kstatus: it will not get better by waiting)",
        action: "fix what the message names (create the missing Secret or key, correct the setting) and the kubelet retries by itself; otherwise `kubectl describe pod` and the pod's logs of that component. During an upgrade a site that stays not ready past the progress deadline is rolled back",
    }
    PAUSED = "Paused" {
        seen: [Seen::Site(RECONCILING, false)],
        meaning: "`spec.paused` is true: nothing is applied or removed; `Ready` keeps its last value",
        action: "set `spec.paused: false` to resume",
    }
    VERIFIED = "Verified" {
        seen: [Seen::Site(RELEASE_CERTIFIED, true), Seen::Release(CERTIFIED, true), Seen::Revocation(true)],
        meaning: "the release's (or revocation's) signatures verify with enough trusted keys",
        action: "nothing",
    }

    // Which release: Stalled until a human acts.
    RELEASE_NOT_FOUND = "ReleaseNotFound" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the ComponentRelease named in `spec.release.name` does not exist",
        action: "apply the release, or correct the name (`kubectl get crel`)",
    }
    NO_CERTIFIED_RELEASE = "NoCertifiedRelease" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the channel in `spec.release.channel` has no certified release (the message counts the uncertified ones)",
        action: "wait for the release managers, or check `kubectl get crel` for releases that are not certified and why",
    }
    RELEASE_NOT_CERTIFIED = "ReleaseNotCertified" {
        seen: [READY_F, STALLED_T, Seen::Site(RELEASE_CERTIFIED, false), WARNING],
        meaning: "the release the site asks for (or runs) is not certified; the message carries the release's own reason (`Unsigned`, `UnknownKey`, `AlgorithmMismatch`, `MalformedSignature`, `BadSignature`, `NotCanonical`, `NotEnoughSignatures`, `TrustedKeysUnavailable`, see below). Nothing is changed on the site",
        action: "`kubectl get crel <name>` shows the reason. `UnknownKey`: is the key in the operator's trusted-keys Secret (re-read within about a minute and a half)? `BadSignature`: do not run it, tell the release managers",
    }
    INVALID_SPEC = "InvalidSpec" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "`spec.release` names neither a release nor a channel (the schema normally refuses this)",
        action: "set `spec.release.name` or `spec.release.channel`",
    }

    // The spec cannot be built with this release: Stalled.
    DEPENDENCY_DISABLED = "DependencyDisabled" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "an enabled component needs another one that is disabled, e.g. `spec.components.torch needs spec.components.blaze (…), which is disabled`",
        action: "enable the component it names, or disable the one that needs it",
    }
    IMAGE_MISSING = "ImageMissing" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "an enabled component needs an image the release does not contain",
        action: "choose a release that provides the image, or disable the component",
    }
    DATABASE_REQUIRED = "DatabaseRequired" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a component needs a database and `database` is not set",
        action: "set `database.external` (a Secret with `host`, `port`, `username`, `password`, `database`) or `database.cloudNativePG`",
    }
    DATABASE_NOT_SUPPORTED = "DatabaseNotSupported" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the database set for a component is one it cannot use",
        action: FIX_SPEC,
    }
    CLOUD_NATIVE_PG_UNAVAILABLE = "CloudNativePgUnavailable" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a component asks for a CloudNativePG database, but CloudNativePG is not installed (no `clusters.postgresql.cnpg.io` CRD)",
        action: "install CloudNativePG, or use `database.external`",
    }
    ENV_COLLISION = "EnvCollision" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a component's `env` sets a variable the operator sets itself",
        action: "remove it from `env`",
    }
    TOO_MANY_REPLICAS = "TooManyReplicas" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a component runs with more replicas than it supports (the message says why)",
        action: "lower `replicas`",
    }
    STORAGE_NOT_SUPPORTED = "StorageNotSupported" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "`storage` is set for a component that keeps no data on a volume",
        action: "remove `storage` from that component",
    }
    UNSUPPORTED_COMBINATION = "UnsupportedCombination" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "components or settings that cannot work together",
        action: FIX_SPEC,
    }
    LIMIT_BELOW_REQUEST = "LimitBelowRequest" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a resource limit is below its request once `resourceOverrides` are merged with the preset",
        action: "raise the limit or lower the request under `resourceOverrides`, or choose another preset",
    }
    INVALID_SITE_NAME = "InvalidSiteName" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the DizSite's name is too long or malformed to name its objects (`<name>-<component>`)",
        action: "recreate the site under a shorter name",
    }
    COMPONENT_NOT_IN_RELEASE = "ComponentNotInRelease" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "`spec.components.fromRelease` names a component that the release the site runs does not define (`spec.componentDefinitions`)",
        action: "choose a release that defines it, correct the name, or remove the entry",
    }
    DEFINITION_UNUSABLE = "DefinitionUnusable" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the release defines the component the site enables under `spec.components.fromRelease`, but the definition cannot be used (a name of the built-in catalogue, an unknown component it calls, no pinned image)",
        action: "release managers: correct the definition and publish a new release; sites: choose another release",
    }
    SERIALIZATION_FAILED = "SerializationFailed" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "a child object could not be converted: a bug in the operator",
        action: "file an issue with the message and the operator's logs",
    }

    // Certification of a ComponentRelease (its status.reason, Certified condition and Events).
    UNSIGNED = "Unsigned" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "the release has no `spec.signature`",
        action: "release managers: sign it (`miracolix-operator release sign`)",
    }
    UNKNOWN_KEY = "UnknownKey" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "signed with a key id this operator does not trust (unknown, misspelt, or removed from the trusted-keys Secret)",
        action: "is `<keyId>.pem` in the operator's trusted-keys Secret? The operator re-reads it within 30 s of the kubelet updating the mount (about a minute), no restart needed",
    }
    ALGORITHM_MISMATCH = "AlgorithmMismatch" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "the signature's algorithm is not the algorithm of the trusted key with that id",
        action: "release managers: sign with the key's algorithm",
    }
    MALFORMED_SIGNATURE = "MalformedSignature" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "the signature is not valid base64, not a well-formed signature of its algorithm, or an ECDSA signature in its high-S form (only low-S is accepted, so a signature cannot be altered into a second valid one)",
        action: "release managers: paste the signature again (one line, standard base64); an openssl or cosign ECDSA signature: `miracolix-operator release normalize-signature`",
    }
    BAD_SIGNATURE = "BadSignature" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "a well-formed signature that does not verify: the content (in format v2 also the rollout, upgrade path or expiry) changed after signing, or another key signed it",
        action: "do not run it; tell the release managers",
    }
    NOT_CANONICAL = "NotCanonical" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "the release's content breaks the canonical encoding's rules (e.g. a non-ASCII value), so no signature can vouch for it",
        action: "release managers: fix the content and sign again",
    }
    NOT_ENOUGH_SIGNATURES = "NotEnoughSignatures" {
        seen: [NOT_CERTIFIED, Seen::ReleaseEvent, REVOCATION_REFUSED],
        meaning: "fewer distinct trusted keys signed than the operator's `--signature-threshold` asks for (one key trusted under two ids counts once); the message lists what is wrong with each signature",
        action: "release managers: add signatures (`miracolix-operator release sign --add`) by further trusted keys",
    }
    TRUSTED_KEYS_UNAVAILABLE = "TrustedKeysUnavailable" {
        seen: [NOT_CERTIFIED, REVOCATION_REFUSED],
        meaning: "the operator cannot read its mounted trusted keys any more (a broken entry in the Secret): it trusts no key until it can, so nothing new is applied; sites keep running",
        action: "fix the trusted-keys Secret; the message names the entry",
    }
    REVOKED_REASON = "Revoked" {
        seen: [Seen::ReleaseCondition(REVOKED, true)],
        meaning: "a certified ReleaseRevocation names this release's fingerprint (`status.revokedBy`): no site deploys it",
        action: "nothing; sites running it move on at their next maintenance window (or at once for an immediate revocation)",
    }
    NOT_REVOKED = "NotRevoked" {
        seen: [Seen::ReleaseCondition(REVOKED, false)],
        meaning: "no ReleaseRevocation names this release",
        action: "nothing",
    }
    REVOCATION_NOT_CERTIFIED = "RevocationNotCertified" {
        seen: [Seen::ReleaseCondition(REVOKED, false)],
        meaning: "a ReleaseRevocation names this release, but its signature does not verify: it is not honoured",
        action: "release managers: sign the revocation (`miracolix-operator release revoke`); `kubectl get rrev` shows why it is refused",
    }

    // Rollout (ReleaseUpToDate).
    UP_TO_DATE = "UpToDate" {
        seen: [Seen::Site(RELEASE_UP_TO_DATE, true)],
        meaning: "the site runs the release its spec asks for",
        action: "nothing",
    }
    UPGRADING = "Upgrading" {
        seen: [NOT_UP_TO_DATE, NORMAL],
        meaning: "moving to the target release (`status.targetRelease`); health-gated by the release's progress deadline",
        action: "wait",
    }
    UPGRADED = "Upgraded" {
        seen: [NORMAL],
        meaning: "an upgrade completed: the site now runs the target release",
        action: "nothing",
    }
    PENDING = "Pending" {
        seen: [NOT_UP_TO_DATE],
        meaning: "the site runs one release and the spec asks for another, decided on the next reconcile (e.g. a newer release appeared while an upgrade was completing)",
        action: "wait",
    }
    WAITING_FOR_WAVE = "WaitingForWave" {
        seen: [NOT_UP_TO_DATE],
        meaning: "the upgrade waits for the site's rollout wave; the message names the wave and when it starts. The site stays `Ready` on its current release",
        action: "nothing; `miracolix-operator release status` shows the rollout across sites",
    }
    WAITING_FOR_MAINTENANCE_WINDOW = "WaitingForMaintenanceWindow" {
        seen: [NOT_UP_TO_DATE],
        meaning: "the upgrade waits for the site's maintenance window; the message says when it opens",
        action: "nothing",
    }
    INVALID_MAINTENANCE_WINDOW = "InvalidMaintenanceWindow" {
        seen: [NOT_UP_TO_DATE],
        meaning: "`spec.maintenanceWindow` cannot be evaluated (a schedule that never matches, an unknown time zone): upgrades are blocked",
        action: "fix the window",
    }
    INVALID_ROLLOUT = "InvalidRollout" {
        seen: [NOT_UP_TO_DATE],
        meaning: "the release's waves cannot be evaluated (a `notBefore` that is not an RFC 3339 time): upgrades in that wave and later ones are blocked",
        action: "tell the release managers",
    }
    ROLLOUT_ALLOWED = "RolloutAllowed" {
        seen: [],
        meaning: "internal: the rollout gate lets an upgrade start now (reported as `Upgrading`)",
        action: "",
    }
    ROLLED_BACK = "RolledBack" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "the target release did not become ready within its progress deadline and the site went back to the previous release. The condition says so for one reconcile; from then on the failed release is `Held`",
        action: "read the message and the components' pod events",
    }
    HELD = "Held" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "the site does not move to the release: it failed on this site and was rolled back (the message says when and why; `status.failedReleases` lists it), or a first install is not ready past the progress deadline and has nothing to roll back to (or an upgrade past it cannot go back because its predecessor is revoked or gone)",
        action: "after a fix, `kubectl annotate dizsite <site> diz.miracum.org/retry-release=<release>` to try again, or wait for a release with new images (tried automatically)",
    }
    HALTED = "Halted" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "another site of the same namespace rolled this release (this content) back, so this one does not try it. Sites of other namespaces never halt a release here",
        action: "wait for a release with new images, or `kubectl annotate dizsite <site> diz.miracum.org/retry-release=<release>` to try it anyway",
    }
    WOULD_DOWNGRADE = "WouldDowngrade" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "the spec asks for a lower version than the site runs (a pin, or a channel whose newest release was deleted, or recreated with older content): a site never moves backwards by itself, and nothing changes",
        action: "to go back deliberately: `kubectl annotate dizsite <site> diz.miracum.org/allow-downgrade-to=<fingerprint>` with the fingerprint the message names; the annotation is removed when the downgrade starts",
    }
    UPGRADE_PATH_BLOCKED = "UpgradePathBlocked" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "the release's signed `compatibility.upgradeFrom` does not list the version the site runs",
        action: "upgrade through an intermediate release first (pin it), then follow the channel again",
    }
    CONFLICTING_RELEASES = "ConflictingReleases" {
        seen: [NOT_UP_TO_DATE, READY_F, STALLED_T, WARNING],
        meaning: "two certified releases claim the same version and channel with different content; both are refused (the message names them)",
        action: "tell the release managers: one of them must be revoked or deleted (a second release under an existing version can also mean a leaked signing key)",
    }
    RELEASE_REVOKED = "ReleaseRevoked" {
        seen: [NOT_UP_TO_DATE, READY_F, STALLED_T, WARNING],
        meaning: "the release the site runs (or is pinned to, on a first install) is revoked or expired and there is no certified, non-revoked release on its channel the site may move to yet; its content is not re-applied",
        action: "wait for the release managers to publish a release; the site moves on by itself",
    }
    PINNED_RELEASE_REVOKED = "PinnedReleaseRevoked" {
        seen: [NOT_UP_TO_DATE, WARNING],
        meaning: "the release in `spec.release.name` is revoked or expired; the site stays on what it runs",
        action: "pin another release, or follow the channel",
    }
    RELEASE_NOT_USABLE = "ReleaseNotUsable" {
        seen: [Seen::Site(RELEASE_CERTIFIED, false)],
        meaning: "the release the site runs may not be applied any more (revoked, expired, no longer certified, or its content is no longer available): the operator leaves the workloads as they are",
        action: "see `ReleaseUpToDate` for what happens next",
    }
    ROLLOUT_RECORD_INVALID = "RolloutRecordInvalid" {
        seen: [READY_F, STALLED_T, WARNING],
        meaning: "the ConfigMap `<site>-rollout`, where the operator records what it applied, was changed by someone else and cannot be read; nothing is applied",
        action: "find out who changed it; delete it to let the operator re-derive it from the running workloads",
    }
    STATUS_CORRECTED = "StatusCorrected" {
        seen: [WARNING],
        meaning: "the DizSite status claimed another release, target or upgrade than the operator's rollout record: the status is only a report, nothing was deployed from it, and it was restored",
        action: "find out who writes `dizsites/status` besides the operator (docs/security.md)",
    }
    DOWNGRADE_ALLOWED = "DowngradeAllowed" {
        seen: [WARNING],
        meaning: "a move to a lower version started because the annotation `diz.miracum.org/allow-downgrade-to` named its fingerprint (the annotation is removed)",
        action: "nothing; the API server's audit log records who set the annotation",
    }
    LEAVING_REVOKED_RELEASE = "LeavingRevokedRelease" {
        seen: [WARNING],
        meaning: "the site leaves a revoked or expired release for the newest certified, non-revoked one on its channel (which may be a lower version)",
        action: "nothing",
    }
    ROLLOUT_RECORD_CREATED = "RolloutRecordCreated" {
        seen: [NORMAL],
        meaning: "a site run by an operator version without rollout records: its status was adopted once (its workloads run exactly the claimed release) and the record written",
        action: "nothing",
    }

    // Work that failed and is retried with backoff (1 s … 5 min).
    APPLY_FAILED = "ApplyFailed" {
        seen: [READY_F, RECONCILING_T, WARNING, Seen::ReconcileError],
        meaning: "the API server refused to apply a child object",
        action: "the message has the API error: usually RBAC (was the operator installed with `watchNamespaces` that exclude this namespace?), an admission webhook or a quota",
    }
    DELETE_FAILED = "DeleteFailed" {
        seen: [READY_F, RECONCILING_T, WARNING, Seen::ReconcileError],
        meaning: "the API server refused to delete a child object that is no longer wanted",
        action: "as for `ApplyFailed`",
    }
    READ_FAILED = "ReadFailed" {
        seen: [READY_F, RECONCILING_T, WARNING, Seen::ReconcileError],
        meaning: "the operator could not read what it needs (releases, sites, CRDs, children)",
        action: "as for `ApplyFailed`; the operator's RBAC is the usual cause",
    }
    INTERNAL_ERROR = "InternalError" {
        seen: [READY_F, RECONCILING_T, WARNING, Seen::ReconcileError],
        meaning: "a child object could not be encoded: a bug in the operator",
        action: "file an issue with the message and the operator's logs",
    }
    STATUS_WRITE_FAILED = "StatusWriteFailed" {
        seen: [Seen::ReconcileError],
        meaning: "the operator could not write a status or clear the retry annotation; the status shows the last state it could write",
        action: "the operator's logs (`\"reason\":\"StatusWriteFailed\"`) have the API error",
    }
    FINALIZER_FAILED = "FinalizerFailed" {
        seen: [Seen::ReconcileError],
        meaning: "the operator could not add or remove its finalizer `diz.miracum.org/cleanup`",
        action: "the operator's logs have the API error (usually RBAC: `patch` on dizsites)",
    }
    INVALID_OBJECT = "InvalidObject" {
        seen: [Seen::ReconcileError],
        meaning: "a DizSite without a namespace reached the controller: a bug",
        action: "file an issue with the operator's logs",
    }

    // What the spec leaves less safe than it could be (Published, NetworkRestricted): not
    // kstatus conditions, Ready is unaffected (docs/security.md).
    PUBLISHED_REASON = "Published" {
        seen: [Seen::Site(PUBLISHED, true)],
        meaning: "every part the site would publish is on its Ingress, each with a login (the message lists the paths)",
        action: "nothing",
    }
    NO_INGRESS = "NoIngress" {
        seen: [Seen::Site(PUBLISHED, true)],
        meaning: "the site has no `spec.ingress`: nothing is published",
        action: "nothing",
    }
    LOGIN_REQUIRED = "LoginRequired" {
        seen: [Seen::Site(PUBLISHED, false), WARNING],
        meaning: "the site has an ingress but no `spec.auth.oidc`, so the parts published only with a login (behind the login proxy, or through their own OIDC login; see docs/components.md) are not published: they run inside the cluster only. The message names each path",
        action: "set `spec.auth.oidc` to publish them behind a login (parts behind the login proxy also need `clientSecretRef` and `cookieSecretRef`), or accept that they stay inside",
    }
    RESTRICTED = "Restricted" {
        seen: [Seen::Site(NETWORK_RESTRICTED, true)],
        meaning: "default deny; only the catalogue's edges; access labels honoured in the site's namespace and `spec.networkPolicy.clientNamespaces`; egress out of the cluster only to the CIDRs the site lists",
        action: "nothing",
    }
    EGRESS_UNRESTRICTED = "EgressUnrestricted" {
        seen: [Seen::Site(NETWORK_RESTRICTED, false), WARNING],
        meaning: "egress to the OIDC issuer (443), to external databases (the engine's port), or the reporter's to the consortium hub and the API server goes to any address; the message names each NetworkPolicy and port",
        action: "list where they are in `spec.networkPolicy.oidcIssuerCIDRs`, `externalDatabaseCIDRs`, `hubCIDRs` and `apiServerCIDRs`",
    }
    NETWORK_POLICIES_DISABLED = "NetworkPoliciesDisabled" {
        seen: [Seen::Site(NETWORK_RESTRICTED, false), WARNING],
        meaning: "`spec.networkPolicy.enabled` is false: the site's pods accept connections from anywhere in the cluster and reach any address",
        action: "turn NetworkPolicies on, unless the cluster enforces the same otherwise",
    }

    // The site's report to the consortium hub (spec.reporting).
    REPORTED = "Reported" {
        seen: [Seen::Site(REPORTING, true)],
        meaning: "the reporter's last scheduled run delivered the site's report to the hub (or found this period's report there already)",
        action: "nothing",
    }
    REPORT_PENDING = "ReportPending" {
        seen: [Seen::Site(REPORTING, false)],
        meaning: "the reporter CronJob has not completed its first run yet; the message says when it is scheduled",
        action: "wait for the schedule; if it lasts, `kubectl get cronjob <site>-reporter`",
    }
    REPORT_FAILING = "ReportFailing" {
        seen: [Seen::Site(REPORTING, false), WARNING],
        meaning: "the reporter's last scheduled run did not succeed: its pod cannot start (a missing key Secret, named in the message) or the command failed (the hub refused the report, or could not be reached through every retry)",
        action: "create the key Secret with `miracolix-operator report keygen` and register its public key at the hub, or read `kubectl logs -l diz.miracum.org/component=reporter` for the hub's reason",
    }
    REPORTER_IMAGE_MISSING = "ReporterImageMissing" {
        seen: [Seen::Site(REPORTING, false), WARNING],
        meaning: "`spec.reporting` is set, but the release the site runs pins no `miracolix-reporter` image: nothing is scheduled",
        action: "move the site to a release that pins the reporter, or remove `spec.reporting`",
    }
    REPORTING_NEEDS_BLAZE = "ReportingNeedsBlaze" {
        seen: [Seen::Site(REPORTING, false), WARNING],
        meaning: "`spec.reporting` is set, but Blaze (whose counts are the Data Map) is not enabled: nothing is scheduled",
        action: "enable `spec.components.blaze`, or remove `spec.reporting`",
    }

    // A FeasibilityEndpoint's gate.
    GATE_STARTING = "GateStarting" {
        seen: [EP_READY_F, Seen::Endpoint(RECONCILING, true)],
        meaning: "the gate's objects are applied and its pod is not available yet",
        action: "wait; if it lasts, `kubectl describe pod -l diz.miracum.org/feasibility-endpoint=<name>`",
    }
    SITE_NOT_DEPLOYED = "SiteNotDeployed" {
        seen: [EP_READY_F, Seen::Endpoint(RECONCILING, true), INBOX_READY_F, Seen::Inbox(RECONCILING, true)],
        meaning: "the DizSite in `spec.siteRef` runs no release yet, so the gate's (or the inbox's) image is not known",
        action: "wait for the site to deploy (`kubectl get dizsite`)",
    }
    SITE_NOT_FOUND = "SiteNotFound" {
        seen: [EP_READY_F, EP_STALLED_T, INBOX_READY_F, INBOX_STALLED_T],
        meaning: "the DizSite named in `spec.siteRef` does not exist in the endpoint's (or inbox's) namespace",
        action: "correct `spec.siteRef.name` or create the site",
    }
    EXECUTOR_NOT_RUN = "ExecutorNotRun" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "the site does not run the executor `spec.dataSource.executor` names (FLARE: `spec.components.flare` is absent or disabled)",
        action: "enable the executor in the DizSite",
    }
    EXECUTOR_NOT_SUPPORTED = "ExecutorNotSupported" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "`spec.dataSource.executor: cql`: the gate speaks FLARE's API only, so Blaze with CQL cannot be put behind it",
        action: "use `executor: flare`",
    }
    PRIVACY_BELOW_FLOOR = "PrivacyBelowFloor" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "`spec.privacy` is looser than the signed privacy floor (`spec.privacyFloor`) of the release the site runs; the message names every looser field with both values. Nothing is deployed or changed",
        action: "make the named settings at least as strict as the floor (stricter is always allowed)",
    }
    GATE_IMAGE_MISSING = "GateImageMissing" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "the release the site runs pins no `miracolix-gate` image",
        action: "move the site to a release that pins the gate",
    }
    PRIVACY_INVALID = "PrivacyInvalid" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "`spec.privacy` cannot work as set: `dailyEpsilonBudget` is smaller than `epsilon`, so no query could be answered",
        action: "raise `dailyEpsilonBudget` to at least `epsilon`",
    }
    DIRECT_HOST_CONFLICT = "DirectHostConflict" {
        seen: [EP_READY_F, EP_STALLED_T],
        meaning: "`spec.direct.host` is the site's `spec.ingress.host`: TLS passthrough would send every connection to that host to the gate and take the site's own Ingress offline. Nothing is deployed or changed",
        action: "give the gate a host name of its own, e.g. `feasibility.<site domain>`",
    }

    // A ProposalInbox's service.
    INBOX_STARTING = "InboxStarting" {
        seen: [INBOX_READY_F, Seen::Inbox(RECONCILING, true)],
        meaning: "the inbox's objects are applied and its pod is not available yet",
        action: "wait; if it lasts, `kubectl describe pod -l diz.miracum.org/proposal-inbox=<name>`",
    }
    INBOX_IMAGE_MISSING = "InboxImageMissing" {
        seen: [INBOX_READY_F, INBOX_STALLED_T],
        meaning: "the release the site runs pins no `miracolix-inbox` image",
        action: "move the site to a release that pins the inbox",
    }
    INBOX_LOGIN_MISSING = "InboxLoginMissing" {
        seen: [INBOX_READY_F, INBOX_STALLED_T],
        meaning: "the inbox's web page needs a login and a public address, and one is missing: the inbox sets no `spec.oidc` and its site no `spec.auth.oidc` (or that has no `clientSecretRef`), or the site has no `spec.ingress` to send users back to. The message names the field. Nothing is deployed",
        action: "set `spec.oidc` on the inbox (or `spec.auth.oidc` with `clientSecretRef` on the site), and `spec.ingress` on the site",
    }
    INBOX_DATABASE_UNAVAILABLE = "InboxDatabaseUnavailable" {
        seen: [INBOX_READY_F, INBOX_STALLED_T],
        meaning: "`spec.database.cloudNativePG` asks for a CloudNativePG cluster, and CloudNativePG is not installed (its CRD `clusters.postgresql.cnpg.io` does not exist). Nothing is deployed",
        action: "install CloudNativePG, or use `spec.database.externalSecretRef`, or remove `spec.database` (SQLite on the inbox's volume)",
    }
    INBOX_SECRET_MISSING = "InboxSecretMissing" {
        seen: [INBOX_READY_F, INBOX_STALLED_T],
        meaning: "a Secret the inbox's pod mounts does not exist (the kubelet's `FailedMount` Event names it; the operator never reads Secrets). The message names the field that references it",
        action: "create the Secret (docs/proposals.md lists each one and its keys); the pod starts by itself",
    }

    // The release feed (`run --feed-url`): the `ReleaseFeed` condition on every DizSite the
    // operator watches, and Warning Events on them about entries it did not apply.
    FEED_SYNCED = "FeedSynced" {
        seen: [Seen::Site(RELEASE_FEED, true)],
        meaning: "the last fetch of the release feed succeeded and every entry in it is applied (or was already)",
        action: "nothing",
    }
    FEED_ENTRIES_SKIPPED = "FeedEntriesSkipped" {
        seen: [Seen::Site(RELEASE_FEED, true)],
        meaning: "the feed was fetched and applied, except entries that do not verify or whose name a release not created by the feed already has (the message counts them; a Warning Event names each)",
        action: "read the `FeedEntryNotVerified` and `FeedEntryConflict` Events; tell the consortium about an entry that does not verify; rename or delete a hand-made release that blocks a feed entry",
    }
    FEED_UNREACHABLE = "FeedUnreachable" {
        seen: [Seen::Site(RELEASE_FEED, false)],
        meaning: "the feed could not be fetched (no connection, timeout, TLS, or an HTTP error); the releases the last good feed gave stay, and the operator retries with backoff",
        action: "check the URL, the operator's egress (NetworkPolicy, proxy) and `--feed-ca`; `miracolix_feed_fetch_errors_total` says which step fails",
    }
    FEED_INVALID = "FeedInvalid" {
        seen: [Seen::Site(RELEASE_FEED, false)],
        meaning: "the feed URL answered with something that is not a release feed (`kind: ReleaseFeed`, `apiVersion: hub.miracum.org/v1`); nothing from it is applied, the last good feed's releases stay",
        action: "check that `--feed-url` points at the hub's `/feed/v1`",
    }
    FEED_APPLY_FAILED = "FeedApplyFailed" {
        seen: [Seen::Site(RELEASE_FEED, false)],
        meaning: "an entry of the feed verified but the API server refused it or could not be read; it is retried with the next fetch",
        action: "read the message (it names the entry and the API error); check the operator's RBAC for ComponentReleases and ReleaseRevocations (`create`, `patch`)",
    }
    FEED_ENTRY_NOT_VERIFIED = "FeedEntryNotVerified" {
        seen: [WARNING],
        meaning: "an entry of the release feed is not signed by enough trusted keys (tampered, unsigned, unknown key) or is not a ComponentRelease or ReleaseRevocation; it is not applied",
        action: "nothing at the site: tell the consortium, whose feed serves it",
    }
    FEED_ENTRY_CONFLICT = "FeedEntryConflict" {
        seen: [WARNING],
        meaning: "the feed has an entry whose name a ComponentRelease or ReleaseRevocation not created by the feed already has; the feed never overwrites it",
        action: "if the hand-made object should give way, delete it: the next round of the follower (`--feed-interval`) applies the signed one",
    }

    // Events about the site's objects.
    APPLIED = "Applied" {
        seen: [NORMAL],
        meaning: "objects were created, changed or removed (the note counts them); an unchanged site writes nothing",
        action: "nothing",
    }
    DATA_RETAINED = "DataRetained" {
        seen: [NORMAL],
        meaning: "the site was deleted with `deletionPolicy: Retain`: its volumes and databases are kept",
        action: "delete them by hand when they are no longer needed",
    }
    DATA_DELETED = "DataDeleted" {
        seen: [NORMAL],
        meaning: "the site was deleted with `deletionPolicy: Delete`: its volumes and databases were deleted",
        action: "nothing (irreversible)",
    }
}

/// The entry for a reason, if it is one.
pub fn find(name: &str) -> Option<&'static ReasonInfo> {
    ALL.iter().find(|r| r.name == name)
}
