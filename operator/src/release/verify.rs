//! Certification: does a release (or a revocation) carry valid signatures by enough distinct
//! trusted keys (the threshold, k-of-n), over the canonical encoding its signatures declare?
//! ECDSA signatures must be low-S (`is_high_s`).
//!
//! The verdict is data, not an error: a release that is not certified is a normal state the
//! controller reports (status reason + Event reason), and the CLI turns into an exit status.

use std::fmt;

use base64::Engine as _;

use super::canonical::{canonicalize, canonicalize_revocation};
use super::der::{self, Reader};
use super::trust::{TrustStore, TrustedKey};
use crate::api::reasons;
use crate::api::{
    ComponentReleaseSpec, ReleaseFormat, ReleaseRevocationSpec, ReleaseSignature,
    SignatureAlgorithm,
};

/// Why a release is not certified, in words for the condition, the Event and the site admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCertified {
    /// CamelCase reason, e.g. `BadSignature`.
    pub reason: String,
    pub message: String,
}

/// A certified verdict: who signed, and which canonical encoding the signatures cover (the
/// release's fingerprint is the SHA-256 of that encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    pub key_ids: Vec<String>,
    pub format: ReleaseFormat,
}

impl Certified {
    /// The first key that verified.
    pub fn key_id(&self) -> &str {
        self.key_ids.first().map(String::as_str).unwrap_or_default()
    }
}

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
    /// Fewer distinct trusted keys signed than the operator's `--signature-threshold` asks for.
    NotEnoughSignatures,
    /// The trusted keys could not be (re)loaded: nothing is certified until they can.
    TrustedKeysUnavailable,
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
            Reason::NotEnoughSignatures => reasons::NOT_ENOUGH_SIGNATURES,
            Reason::TrustedKeysUnavailable => reasons::TRUSTED_KEYS_UNAVAILABLE,
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
    /// Signatures by the trusted keys `key_ids` (at least the threshold, distinct keys)
    /// verified over the canonical encoding `format`.
    Certified {
        key_ids: Vec<String>,
        format: ReleaseFormat,
    },
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

    /// The first key that verified, for one-line reports.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Verdict::Certified { key_ids, .. } => key_ids.first().map(String::as_str),
            Verdict::NotCertified { .. } => None,
        }
    }

    pub(crate) fn not(reason: Reason, message: String) -> Self {
        Verdict::NotCertified { reason, message }
    }
}

/// Verifies a release's signatures with threshold 1: one valid signature by a trusted key
/// certifies it.
pub fn verify(release: &ComponentReleaseSpec, trust: &TrustStore) -> Verdict {
    verify_with_threshold(release, trust, 1)
}

/// Verifies a release's signatures (`signature` and `signatures`): certified when at least
/// `threshold` distinct trusted keys signed the same canonical encoding. Signatures are grouped
/// by the format they declare; v2 is tried first because it also covers the rollout.
pub fn verify_with_threshold(
    release: &ComponentReleaseSpec,
    trust: &TrustStore,
    threshold: usize,
) -> Verdict {
    let version = &release.version;
    let signatures: Vec<&ReleaseSignature> = release.all_signatures().collect();
    if signatures.is_empty() {
        return Verdict::not(
            Reason::Unsigned,
            format!(
                "release {version} has no spec.signature; a release manager must sign it \
                 (`miracolix-operator release sign -f <release.yaml> --key <private.pem> \
                 --key-id <id>`) before sites may run it"
            ),
        );
    }
    let mut first_failure = None;
    for format in [ReleaseFormat::V2, ReleaseFormat::V1] {
        let of_format: Vec<&ReleaseSignature> = signatures
            .iter()
            .copied()
            .filter(|s| s.format.unwrap_or_default() == format)
            .collect();
        if of_format.is_empty() {
            continue;
        }
        let verdict = match canonicalize(release, format) {
            Ok(message) => count_signatures(
                &format!("release {version}"),
                &message,
                &of_format,
                trust,
                threshold,
                format,
            ),
            Err(e) => Verdict::not(
                Reason::NotCanonical,
                format!("release {version:?} cannot be certified: {e}"),
            ),
        };
        if verdict.is_certified() {
            return verdict;
        }
        first_failure.get_or_insert(verdict);
    }
    first_failure.unwrap_or_else(|| {
        Verdict::not(
            Reason::Unsigned,
            format!("release {version} carries no signature in a known format"),
        )
    })
}

/// Verifies one `signature` (which may be detached, i.e. not one inside `release`) over the
/// canonical encoding of `release` in the format the signature declares.
pub fn verify_signature(
    release: &ComponentReleaseSpec,
    signature: &ReleaseSignature,
    trust: &TrustStore,
) -> Verdict {
    let version = &release.version;
    let format = signature.format.unwrap_or_default();
    match canonicalize(release, format) {
        Ok(message) => count_signatures(
            &format!("release {version}"),
            &message,
            &[signature],
            trust,
            1,
            format,
        ),
        Err(e) => Verdict::not(
            Reason::NotCanonical,
            format!("release {version:?} cannot be certified: {e}"),
        ),
    }
}

/// Verifies a ReleaseRevocation's signatures over `miracolix-revocation-v1`, with the same
/// keys and threshold as releases. The `format` a signature declares is irrelevant here: the
/// revocation encoding has its own tag, so no release signature can pass for a revocation.
pub fn verify_revocation(
    revocation: &ReleaseRevocationSpec,
    trust: &TrustStore,
    threshold: usize,
) -> Verdict {
    let signatures: Vec<&ReleaseSignature> = revocation.all_signatures().collect();
    if signatures.is_empty() {
        return Verdict::not(
            Reason::Unsigned,
            "the revocation has no spec.signature; sign it with `miracolix-operator release \
             revoke ... --key <private.pem> --key-id <id>`"
                .to_string(),
        );
    }
    match canonicalize_revocation(revocation) {
        Ok(message) => count_signatures(
            "revocation",
            &message,
            &signatures,
            trust,
            threshold,
            ReleaseFormat::V2,
        ),
        Err(e) => Verdict::not(
            Reason::NotCanonical,
            format!("the revocation cannot be certified: {e}"),
        ),
    }
}

/// Certified when at least `threshold` distinct trusted keys made a valid signature over
/// `message`. Distinct by public key, not by id: one key trusted under two ids counts once.
fn count_signatures(
    what: &str,
    message: &[u8],
    signatures: &[&ReleaseSignature],
    trust: &TrustStore,
    threshold: usize,
    format: ReleaseFormat,
) -> Verdict {
    let threshold = threshold.max(1);
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut key_ids = Vec::new();
    let mut problems = Vec::new();
    for signature in signatures {
        match check_one(what, message, signature, trust) {
            Ok(key) => {
                if !seen.contains(&key.public_key()) {
                    seen.push(key.public_key());
                    key_ids.push(key.key_id().to_string());
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    if key_ids.len() >= threshold {
        return Verdict::Certified { key_ids, format };
    }
    // One signature and one needed: its own reason says exactly what is wrong.
    if threshold == 1
        && signatures.len() == 1
        && let Some((reason, message)) = problems.pop()
    {
        return Verdict::not(reason, message);
    }
    let details = problems
        .iter()
        .map(|(reason, message)| format!("{reason}: {message}"))
        .collect::<Vec<_>>()
        .join("; ");
    Verdict::not(
        Reason::NotEnoughSignatures,
        format!(
            "{what}: {} of the {threshold} required signatures by distinct trusted keys \
             verify{}{details}",
            key_ids.len(),
            if details.is_empty() { "" } else { ". " }
        ),
    )
}

/// The checks for one signature, in the order that gives the most useful message.
fn check_one<'t>(
    what: &str,
    message: &[u8],
    signature: &ReleaseSignature,
    trust: &'t TrustStore,
) -> Result<&'t TrustedKey, (Reason, String)> {
    let key_id = &signature.key_id;
    let Some(key) = trust.get(key_id) else {
        let trusted = trust.key_ids().collect::<Vec<_>>();
        let trusted = if trusted.is_empty() {
            "this operator trusts no keys at all: configure its trusted-keys Secret".to_string()
        } else {
            format!("trusted key ids: {}", trusted.join(", "))
        };
        return Err((
            Reason::UnknownKey,
            format!(
                "{what} is signed with key id {key_id:?}, which is not trusted ({trusted}); the \
                 key id may be misspelt or the key revoked, or the operator lacks {key_id}.pem \
                 in its trusted keys"
            ),
        ));
    };

    if key.algorithm() != signature.algorithm {
        return Err((
            Reason::AlgorithmMismatch,
            format!(
                "{what}: spec.signature.algorithm is {} but trusted key {key_id:?} is an {} \
                 key; sign again with the {} key {key_id:?} (or correct the algorithm field if \
                 it was mistyped)",
                algorithm_name(signature.algorithm),
                algorithm_name(key.algorithm()),
                algorithm_name(key.algorithm()),
            ),
        ));
    }

    if signature.value.is_empty() {
        return Err((
            Reason::MalformedSignature,
            format!(
                "{what}: spec.signature.value is empty; it must hold the signature, \
                 base64-encoded"
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&signature.value)
        .map_err(|e| {
            (
                Reason::MalformedSignature,
                format!(
                    "{what}: spec.signature.value is not valid base64 ({e}); it must be the \
                     signature in standard base64 with padding on one line, e.g. \
                     `base64 -w0 sig.der`"
                ),
            )
        })?;

    check_encoding(signature.algorithm, &bytes).map_err(|problem| {
        (
            Reason::MalformedSignature,
            format!("{what}: spec.signature.value {problem}"),
        )
    })?;

    if key.verify(message, &bytes) {
        Ok(key)
    } else {
        Err((
            Reason::BadSignature,
            format!(
                "{what}: the {} signature does not verify with trusted key {key_id:?}: the \
                 certified content (version, channel, a component's repository, digest or \
                 version, or in format v2 the rollout, notAfter or upgradeFrom) was changed \
                 after signing, or it was signed with a different key. Compare \
                 `miracolix-operator release canonicalize` of this release with what was \
                 signed, and sign again if the change is intended",
                algorithm_name(signature.algorithm)
            ),
        ))
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

/// The order n of the P-256 group, big-endian.
pub(crate) const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// (n - 1) / 2: the largest S of a low-S signature.
const P256_HALF_ORDER: [u8; 32] = [
    0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B, 0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8,
];

/// A scalar (big-endian, at most 32 bytes) left-padded to 32 bytes.
pub(crate) fn scalar32(scalar: &[u8]) -> Option<[u8; 32]> {
    let pad = P256_SCALAR_LEN.checked_sub(scalar.len())?;
    let mut out = [0u8; 32];
    out[pad..].copy_from_slice(scalar);
    Some(out)
}

/// Whether S lies in the upper half of the group order. For every valid (r, s) the pair
/// (r, n - s) is valid too; accepting only the low half makes the signature bytes unique, so a
/// signature cannot be re-encoded into a second valid one (malleability).
pub(crate) fn is_high_s(s: &[u8]) -> bool {
    scalar32(s).is_some_and(|s| s > P256_HALF_ORDER)
}

/// Reads r and s of a DER `Ecdsa-Sig-Value`, checking the structure.
pub(crate) fn ecdsa_scalars(bytes: &[u8]) -> Result<(&[u8], &[u8]), der::DerError> {
    let mut outer = Reader::new(bytes);
    let mut seq = outer.sequence()?;
    outer.finish()?;
    let mut scalars = [&[][..]; 2];
    for scalar in &mut scalars {
        let value = seq.positive_integer()?;
        if value.len() > P256_SCALAR_LEN {
            return Err(der::DerError("integer longer than a P-256 scalar"));
        }
        if value.iter().all(|b| *b == 0) {
            return Err(der::DerError("zero integer"));
        }
        *scalar = value;
    }
    seq.finish()?;
    Ok((scalars[0], scalars[1]))
}

fn check_ecdsa_der(bytes: &[u8]) -> Result<(), der::DerError> {
    let (_, s) = ecdsa_scalars(bytes)?;
    if is_high_s(s) {
        return Err(der::DerError(
            "S is in the upper half of the group order (high-S); only the low-S form is \
             accepted, so that a signature cannot be altered into a second valid one. \
             `miracolix-operator release sign` writes low-S; normalise an openssl or cosign \
             signature with `miracolix-operator release normalize-signature`",
        ));
    }
    Ok(())
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
            Reason::NotEnoughSignatures,
            Reason::TrustedKeysUnavailable,
        ] {
            let s = reason.as_str();
            assert!(s.chars().all(|c| c.is_ascii_alphabetic()), "{s}");
            assert!(s.starts_with(|c: char| c.is_ascii_uppercase()), "{s}");
            assert_eq!(format!("{reason:?}"), s);
        }
    }
}
