//! Release certification: the canonical encoding of a ComponentRelease, signing it, the keys the
//! operator trusts, and the verdict whether a release is certified.
//!
//! Rollout: [`plan`] holds every rule that decides which release a site runs (certification,
//! identity by fingerprint, never backwards, revocation, upgrade path, waves, maintenance
//! windows ([`window`]), health gate, halts), as one pure function; [`record`] is what the
//! operator keeps in the cluster about what it applied. See `docs/release-rollout.md`.
//!
//! Cryptography is `ring` (already compiled for kube's TLS) with PEM from `rustls-pki-types`;
//! see `docs/dependencies-release.md` for why, and `docs/release-signing.md` for the format and
//! the equivalent `openssl`/`cosign` commands.

pub mod canonical;
mod der;
pub mod plan;
pub mod record;
pub mod sign;
pub mod trust;
pub mod verify;
pub mod version;
pub mod window;

pub use canonical::{
    CURRENT_FORMAT, CanonicalError, FORMAT_TAG, canonical_revocation_string, canonical_string,
    canonicalize, canonicalize_revocation, sha256_hex,
};
pub use sign::{SignError, SigningKey, normalize_low_s, sign_release, sign_revocation};
pub use trust::{TrustDir, TrustError, TrustStore, TrustedKey};
pub use verify::{
    CERTIFIED_REASON, Reason, Verdict, algorithm_name, verify, verify_revocation, verify_signature,
    verify_with_threshold,
};
