//! Certification: does a release carry a valid signature by a trusted key?
//!
//! The verdict is data, not an error: a release that is not certified is a normal state the
//! controller reports (status reason + Event reason), and the CLI turns into an exit status.

use std::fmt;

use base64::Engine as _;

use super::canonical::canonicalize;
use super::der::{self, Reader};
use super::trust::TrustStore;
use crate::api::reasons;
use crate::api::{ComponentReleaseSpec, ReleaseSignature, SignatureAlgorithm};

/// Status/Event reason of a certified release.
pub const CERTIFIED_REASON: &str = reasons::VERIFIED;

const ED25519_SIGNATURE_LEN: usize = 64;
const P256_SCALAR_LEN: usize = 32;

/// Why a release is not certified. The names are used verbatim as the `status.reason` of the
/// ComponentRelease and as Event reasons, hence CamelCase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `spec.signature`.
    Unsigned,
    /// Signed with a key id the operator does not trust (unknown, misspelt or revoked).
    UnknownKey,
    /// The signature's algorithm is not the algorithm of the trusted key with that id.
    AlgorithmMismatch,
    /// The signature value is not valid base64 or not a well-formed signature of its algorithm.
    MalformedSignature,
    /// A well-formed signature that does not verify: the content changed after signing, or it
    /// was made with another key.
    BadSignature,
    /// The certified content cannot be put into canonical form, so nothing can vouch for it.
    NotCanonical,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsigned => reasons::UNSIGNED,
            Reason::UnknownKey => reasons::UNKNOWN_KEY,
            Reason::AlgorithmMismatch => reasons::ALGORITHM_MISMATCH,
            Reason::MalformedSignature => reasons::MALFORMED_SIGNATURE,
            Reason::BadSignature => reasons::BAD_SIGNATURE,
            Reason::NotCanonical => reasons::NOT_CANONICAL,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The signature verified with the trusted key `key_id`.
    Certified { key_id: String },
    /// Not certified; `message` tells a release manager what is wrong and what to do.
    NotCertified { reason: Reason, message: String },
}

impl Verdict {
    pub fn is_certified(&self) -> bool {
        matches!(self, Verdict::Certified { .. })
    }

    /// `Verified` or the [`Reason`], for `status.reason` and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Certified { .. } => CERTIFIED_REASON,
            Verdict::NotCertified { reason, .. } => reason.as_str(),
        }
    }

    fn not(reason: Reason, message: String) -> Self {
        Verdict::NotCertified { reason, message }
    }
}

/// Verifies the signature carried in `release.signature`.
pub fn verify(release: &ComponentReleaseSpec, trust: &TrustStore) -> Verdict {
    match &release.signature {
        None => Verdict::not(
            Reason::Unsigned,
            format!(
                "release {} has no spec.signature; a release manager must sign it \
                 (`miracolix-operator release sign -f <release.yaml> --key <private.pem> \
                 --key-id <id>`) before sites may run it",
                release.version
            ),
        ),
        Some(signature) => verify_signature(release, signature, trust),
    }
}

/// Verifies `signature` (which may be detached, i.e. not the one inside `release`) over the
/// canonical encoding of `release`.
pub fn verify_signature(
    release: &ComponentReleaseSpec,
    signature: &ReleaseSignature,
    trust: &TrustStore,
) -> Verdict {
    let version = &release.version;
    let message = match canonicalize(release) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Verdict::not(
                Reason::NotCanonical,
                format!("release {version:?} cannot be certified: {e}"),
            );
        }
    };

    let key_id = &signature.key_id;
    let Some(key) = trust.get(key_id) else {
        let trusted = trust.key_ids().collect::<Vec<_>>();
        let trusted = if trusted.is_empty() {
            "this operator trusts no keys at all: configure its trusted-keys Secret".to_string()
        } else {
            format!("trusted key ids: {}", trusted.join(", "))
        };
        return Verdict::not(
            Reason::UnknownKey,
            format!(
                "release {version} is signed with key id {key_id:?}, which is not trusted \
                 ({trusted}); the key id may be misspelt or the key revoked, or the operator \
                 lacks {key_id}.pem in its trusted keys"
            ),
        );
    };

    if key.algorithm() != signature.algorithm {
        return Verdict::not(
            Reason::AlgorithmMismatch,
            format!(
                "release {version}: spec.signature.algorithm is {} but trusted key {key_id:?} \
                 is an {} key; sign again with the {} key {key_id:?} (or correct the algorithm \
                 field if it was mistyped)",
                algorithm_name(signature.algorithm),
                algorithm_name(key.algorithm()),
                algorithm_name(key.algorithm()),
            ),
        );
    }

    if signature.value.is_empty() {
        return Verdict::not(
            Reason::MalformedSignature,
            format!(
                "release {version}: spec.signature.value is empty; it must hold the signature, \
                 base64-encoded"
            ),
        );
    }
    let bytes = match base64::engine::general_purpose::STANDARD.decode(&signature.value) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Verdict::not(
                Reason::MalformedSignature,
                format!(
                    "release {version}: spec.signature.value is not valid base64 ({e}); it must \
                     be the signature in standard base64 with padding on one line, e.g. \
                     `base64 -w0 sig.der`"
                ),
            );
        }
    };

    if let Err(problem) = check_encoding(signature.algorithm, &bytes) {
        return Verdict::not(
            Reason::MalformedSignature,
            format!("release {version}: spec.signature.value {problem}"),
        );
    }

    if key.verify(&message, &bytes) {
        Verdict::Certified {
            key_id: key_id.clone(),
        }
    } else {
        Verdict::not(
            Reason::BadSignature,
            format!(
                "release {version}: the {} signature does not verify with trusted key \
                 {key_id:?}: the certified content (version, channel, or a component's \
                 repository, digest or version) was changed after signing, or it was signed \
                 with a different key. Compare `miracolix-operator release canonicalize` of \
                 this release with what was signed, and sign again if the change is intended",
                algorithm_name(signature.algorithm)
            ),
        )
    }
}

/// The algorithm as spelled in `spec.signature.algorithm`.
pub fn algorithm_name(algorithm: SignatureAlgorithm) -> &'static str {
    match algorithm {
        SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        SignatureAlgorithm::Ed25519 => "ed25519",
    }
}

/// Separates "not a signature at all" from "a signature that does not match", which `ring`
/// reports identically.
fn check_encoding(algorithm: SignatureAlgorithm, bytes: &[u8]) -> Result<(), String> {
    match algorithm {
        SignatureAlgorithm::Ed25519 if bytes.len() == ED25519_SIGNATURE_LEN => Ok(()),
        SignatureAlgorithm::Ed25519 => Err(format!(
            "decodes to {} bytes; an Ed25519 signature is exactly {ED25519_SIGNATURE_LEN}",
            bytes.len()
        )),
        SignatureAlgorithm::EcdsaP256Sha256 => check_ecdsa_der(bytes).map_err(|e| {
            let hint = if bytes.len() == 2 * P256_SCALAR_LEN && bytes.first() != Some(&0x30) {
                " (it looks like a raw r||s signature; ecdsa-p256-sha256 expects the DER form \
                 that `openssl dgst -sha256 -sign` and `cosign sign-blob` write)"
            } else {
                ""
            };
            format!("is not a DER-encoded ECDSA signature: {e}{hint}")
        }),
    }
}

fn check_ecdsa_der(bytes: &[u8]) -> Result<(), der::DerError> {
    let mut outer = Reader::new(bytes);
    let mut seq = outer.sequence()?;
    outer.finish()?;
    for _ in 0..2 {
        let scalar = seq.positive_integer()?;
        if scalar.len() > P256_SCALAR_LEN {
            return Err(der::DerError("integer longer than a P-256 scalar"));
        }
        if scalar.iter().all(|b| *b == 0) {
            return Err(der::DerError("zero integer"));
        }
    }
    seq.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_malformed_ecdsa_signatures_apart() {
        let good = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02];
        assert!(check_ecdsa_der(&good).is_ok());
        assert!(check_ecdsa_der(&good[..7]).is_err(), "truncated");
        assert!(
            check_ecdsa_der(&[&good[..], &[0]].concat()).is_err(),
            "trailing"
        );
        assert!(
            check_ecdsa_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err(),
            "one integer"
        );
        assert!(check_ecdsa_der(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x02]).is_err());
        let raw = [0x11u8; 64];
        let problem = check_encoding(SignatureAlgorithm::EcdsaP256Sha256, &raw).expect_err("raw");
        assert!(problem.contains("raw r||s"), "{problem}");
    }

    #[test]
    fn ed25519_signatures_have_a_fixed_length() {
        assert!(check_encoding(SignatureAlgorithm::Ed25519, &[0; 64]).is_ok());
        assert!(check_encoding(SignatureAlgorithm::Ed25519, &[0; 63]).is_err());
        assert!(check_encoding(SignatureAlgorithm::Ed25519, &[0; 72]).is_err());
    }

    #[test]
    fn reasons_are_camel_case_event_reasons() {
        for reason in [
            Reason::Unsigned,
            Reason::UnknownKey,
            Reason::AlgorithmMismatch,
            Reason::MalformedSignature,
            Reason::BadSignature,
            Reason::NotCanonical,
        ] {
            let s = reason.as_str();
            assert!(s.chars().all(|c| c.is_ascii_alphabetic()), "{s}");
            assert!(s.starts_with(|c: char| c.is_ascii_uppercase()), "{s}");
            assert_eq!(format!("{reason:?}"), s);
        }
    }
}
