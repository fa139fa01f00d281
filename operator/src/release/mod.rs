//! Release certification: the canonical encoding of a ComponentRelease, signing it, the keys the
//! operator trusts, and the verdict whether a release is certified.
//!
//! Rollout: [`rollout`] gates a release by waves and maintenance windows ([`window`]), and
//! [`upgrade`] decides per reconcile whether a site stays, upgrades, rolls back or holds; see
//! `docs/release-rollout.md`.
//!
//! Cryptography is `ring` (already compiled for kube's TLS) with PEM from `rustls-pki-types`;
//! see `docs/dependencies-release.md` for why, and `docs/release-signing.md` for the format and
//! the equivalent `openssl`/`cosign` commands.

pub mod canonical;
mod der;
pub mod rollout;
pub mod sign;
pub mod trust;
pub mod upgrade;
pub mod verify;
pub mod version;
pub mod window;

pub use canonical::{CanonicalError, FORMAT_TAG, canonical_string, canonicalize};
pub use sign::{SignError, SigningKey, sign_release};
pub use trust::{TrustError, TrustStore, TrustedKey};
pub use verify::{CERTIFIED_REASON, Reason, Verdict, algorithm_name, verify, verify_signature};
