//! Signing releases with a PEM private key.
//!
//! Accepted keys: PKCS#8 `-----BEGIN PRIVATE KEY-----` (ECDSA P-256 or Ed25519, what
//! `openssl genpkey` writes) and SEC1 `-----BEGIN EC PRIVATE KEY-----` (P-256, what
//! `openssl ecparam -genkey` writes). Signatures have the exact format of the usual tools, so a
//! release can be signed with any of them and verified with any other:
//! ECDSA: DER `Ecdsa-Sig-Value` over SHA-256 of the canonical bytes (`openssl dgst -sha256
//! -sign`, `cosign sign-blob --key`); Ed25519: the 64-byte signature over the canonical bytes
//! (`openssl pkeyutl -sign -rawin`). Both base64-encoded (standard alphabet, padded).

use std::fmt;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::canonical::{CURRENT_FORMAT, CanonicalError, canonicalize, canonicalize_revocation};
use super::der::{self, Reader};
use super::trust::{TrustError, TrustedKey, validate_key_id};
use super::verify::{P256_ORDER, ecdsa_scalars, is_high_s, scalar32};
use crate::api::{
    ComponentReleaseSpec, ReleaseRevocationSpec, ReleaseSignature, SignatureAlgorithm,
};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{origin}: not readable as PEM: {detail}")]
    Pem { origin: String, detail: String },
    #[error(
        "{origin}: the private key is encrypted; decrypt it to a temporary file with \
         `openssl pkey -in <key> -out <plain.pem>` (or sign with the tool that owns it, e.g. \
         `cosign sign-blob`, and put the signature into spec.signature by hand)"
    )]
    Encrypted { origin: String },
    #[error(
        "{origin}: no '-----BEGIN PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----' block found"
    )]
    NoPrivateKey { origin: String },
    #[error("{origin}: holds {count} private keys; give exactly one")]
    SeveralKeys { origin: String, count: usize },
    #[error("{origin}: {detail}")]
    UnsupportedKey { origin: String, detail: String },
    #[error("{origin}: malformed private key: {detail}")]
    MalformedKey { origin: String, detail: String },
    #[error(transparent)]
    KeyId(#[from] TrustError),
    #[error("the release cannot be signed: {0}")]
    NotCanonical(#[from] CanonicalError),
    #[error("signing failed: the system random number generator is unavailable")]
    Random,
    #[error("not a DER-encoded ECDSA P-256 signature: {0}")]
    NotEcdsa(String),
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key that signs releases.
pub struct SigningKey {
    inner: Inner,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a key from PEM text holding exactly one private key. `origin` names the source
    /// (usually the file) in error messages.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, SignError> {
        // The PEM reader skips labels it does not know, so look for encryption first.
        if contains(pem, b"ENCRYPTED") && contains(pem, b"PRIVATE KEY-----") {
            return Err(SignError::Encrypted {
                origin: origin.to_string(),
            });
        }
        let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SignError::Pem {
                origin: origin.to_string(),
                detail: e.to_string(),
            })?;
        let mut keys: Vec<(SectionKind, Vec<u8>)> = sections
            .into_iter()
            .filter(|(kind, _)| {
                matches!(
                    kind,
                    SectionKind::PrivateKey
                        | SectionKind::EcPrivateKey
                        | SectionKind::RsaPrivateKey
                )
            })
            .collect();
        match keys.len() {
            0 => Err(SignError::NoPrivateKey {
                origin: origin.to_string(),
            }),
            1 => match keys.remove(0) {
                (SectionKind::PrivateKey, der) => Self::from_pkcs8_der(&der, origin),
                (SectionKind::EcPrivateKey, der) => Self::from_sec1_der(&der, origin),
                _ => Err(SignError::UnsupportedKey {
                    origin: origin.to_string(),
                    detail: "RSA key; release signatures use ECDSA P-256 or Ed25519".into(),
                }),
            },
            count => Err(SignError::SeveralKeys {
                origin: origin.to_string(),
                count,
            }),
        }
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (v1 as openssl writes it, or v2 with the public key).
    pub fn from_pkcs8_der(pkcs8: &[u8], origin: &str) -> Result<Self, SignError> {
        let malformed = |detail: String| SignError::MalformedKey {
            origin: origin.to_string(),
            detail,
        };
        let unsupported = |detail: &str| SignError::UnsupportedKey {
            origin: origin.to_string(),
            detail: detail.to_string(),
        };
        // Only the algorithm identifier is read here; ring parses and checks the rest.
        let (oid, curve) = (|| {
            let mut info = Reader::new(pkcs8).sequence()?;
            info.expect(der::TAG_INTEGER)?;
            let mut alg_id = info.sequence()?;
            let oid = alg_id.expect(der::TAG_OID)?;
            let curve = match alg_id.peek_tag() {
                Some(der::TAG_OID) => Some(alg_id.expect(der::TAG_OID)?),
                _ => None,
            };
            Ok::<_, der::DerError>((oid, curve))
        })()
        .map_err(|e| malformed(format!("PKCS#8 structure: {e}")))?;
        let rng = SystemRandom::new();
        let inner = match (oid, curve) {
            (der::OID_EC_PUBLIC_KEY, Some(der::OID_P256)) => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng).map_err(
                    |e| {
                        malformed(format!(
                            "P-256 key rejected ({e}); a PKCS#8 EC key must include its public \
                             key, as `openssl genpkey -algorithm EC -pkeyopt \
                             ec_paramgen_curve:P-256` writes it"
                        ))
                    },
                )?,
            ),
            (der::OID_EC_PUBLIC_KEY, _) => {
                return Err(unsupported(
                    "EC key on a curve other than P-256 (prime256v1); release signatures use \
                     P-256 or Ed25519",
                ));
            }
            // ring calls openssl's v1 encoding (no embedded public key) "unchecked"; there is
            // nothing to check it against, which is what every common tool writes.
            (der::OID_ED25519, _) => Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|e| malformed(format!("Ed25519 key rejected ({e})")))?,
            ),
            (der::OID_RSA, _) => {
                return Err(unsupported(
                    "RSA key; release signatures use ECDSA P-256 or Ed25519",
                ));
            }
            _ => {
                return Err(unsupported(
                    "key of an unsupported algorithm; release signatures use ECDSA P-256 or \
                     Ed25519",
                ));
            }
        };
        Ok(Self { inner, rng })
    }

    /// Reads a SEC1 `ECPrivateKey` (RFC 5915), as `openssl ecparam -genkey` writes it.
    pub fn from_sec1_der(sec1: &[u8], origin: &str) -> Result<Self, SignError> {
        let malformed = |detail: String| SignError::MalformedKey {
            origin: origin.to_string(),
            detail,
        };
        let parsed = (|| {
            let mut outer = Reader::new(sec1);
            let mut key = outer.sequence()?;
            outer.finish()?;
            if key.positive_integer()? != [1] {
                return Err(der::DerError("ECPrivateKey version is not 1"));
            }
            let private = key.expect(der::TAG_OCTET_STRING)?;
            let mut curve = None;
            if key.peek_tag() == Some(der::TAG_CONTEXT_0) {
                let mut params = Reader::new(key.expect(der::TAG_CONTEXT_0)?);
                curve = Some(
                    params
                        .expect(der::TAG_OID)
                        .map_err(|_| der::DerError("curve is not given by name"))?,
                );
                params.finish()?;
            }
            let mut public = None;
            if key.peek_tag() == Some(der::TAG_CONTEXT_1) {
                let mut field = Reader::new(key.expect(der::TAG_CONTEXT_1)?);
                public = Some(field.bit_string()?);
                field.finish()?;
            }
            key.finish()?;
            Ok((private, curve, public))
        })()
        .map_err(|e: der::DerError| malformed(format!("SEC1 structure: {e}")))?;
        let (private, curve, public) = parsed;
        if curve.is_some_and(|c| c != der::OID_P256) {
            return Err(SignError::UnsupportedKey {
                origin: origin.to_string(),
                detail: "EC key on a curve other than P-256 (prime256v1); release signatures use \
                         P-256 or Ed25519"
                    .into(),
            });
        }
        let public = public.ok_or_else(|| {
            malformed(
                "the key does not include its public key; rewrite it with \
                 `openssl ec -in <key.pem> -out <key-full.pem>`"
                    .into(),
            )
        })?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            private,
            public,
            &rng,
        )
        .map_err(|e| malformed(format!("P-256 key rejected ({e})")))?;
        Ok(Self {
            inner: Inner::Ecdsa(pair),
            rng,
        })
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self.inner {
            Inner::Ecdsa(_) => SignatureAlgorithm::EcdsaP256Sha256,
            Inner::Ed25519(_) => SignatureAlgorithm::Ed25519,
        }
    }

    /// The public half, to put into a trust store.
    pub fn public_key(&self, key_id: &str) -> Result<TrustedKey, TrustError> {
        let raw = match &self.inner {
            Inner::Ecdsa(pair) => pair.public_key().as_ref(),
            Inner::Ed25519(pair) => pair.public_key().as_ref(),
        };
        TrustedKey::from_raw(key_id, self.algorithm(), raw)
    }

    /// Signs arbitrary bytes; the result is the binary signature (DER for ECDSA, always in the
    /// low-S form the verifier requires).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Ecdsa(pair) => {
                let der = pair
                    .sign(&self.rng, message)
                    .map_err(|_| SignError::Random)?;
                normalize_low_s(der.as_ref())
            }
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    fn signature(&self, key_id: &str, message: &[u8]) -> Result<ReleaseSignature, SignError> {
        validate_key_id(key_id)?;
        Ok(ReleaseSignature {
            key_id: key_id.to_string(),
            algorithm: self.algorithm(),
            format: None,
            value: base64::engine::general_purpose::STANDARD.encode(self.sign(message)?),
        })
    }
}

/// Signs the canonical encoding (format [`CURRENT_FORMAT`], v2) of a release and returns the
/// signature to set as `spec.signature` (or add to `spec.signatures`).
pub fn sign_release(
    spec: &ComponentReleaseSpec,
    key: &SigningKey,
    key_id: &str,
) -> Result<ReleaseSignature, SignError> {
    let mut signature = key.signature(key_id, &canonicalize(spec, CURRENT_FORMAT)?)?;
    signature.format = Some(CURRENT_FORMAT);
    Ok(signature)
}

/// Signs the canonical encoding of a revocation.
pub fn sign_revocation(
    spec: &ReleaseRevocationSpec,
    key: &SigningKey,
    key_id: &str,
) -> Result<ReleaseSignature, SignError> {
    key.signature(key_id, &canonicalize_revocation(spec)?)
}

/// Rewrites a DER ECDSA P-256 signature into its low-S form: (r, s) and (r, n - s) verify
/// alike, the verifier accepts only s <= (n - 1) / 2. Signatures already low-S are returned
/// unchanged. For signatures made by `openssl dgst -sign` or `cosign sign-blob`, which do not
/// normalise.
pub fn normalize_low_s(der_sig: &[u8]) -> Result<Vec<u8>, SignError> {
    let (r, s) = ecdsa_scalars(der_sig).map_err(|e| SignError::NotEcdsa(e.to_string()))?;
    if !is_high_s(s) {
        return Ok(der_sig.to_vec());
    }
    let s = scalar32(s).ok_or_else(|| SignError::NotEcdsa("S longer than 32 bytes".into()))?;
    // n - s, byte-wise with borrow; s < n because the verifier's range check passed.
    let mut low = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        low[i] = d as u8;
    }
    let mut body = Vec::with_capacity(72);
    for scalar in [r, &low[..]] {
        let trimmed = match scalar.iter().position(|b| *b != 0) {
            Some(first) => &scalar[first..],
            None => &scalar[scalar.len().saturating_sub(1)..],
        };
        // DER INTEGERs are signed: a leading byte with the high bit set needs a zero in front.
        let pad = trimmed.first().is_some_and(|b| b & 0x80 != 0);
        der::write_header(
            &mut body,
            der::TAG_INTEGER,
            trimmed.len() + usize::from(pad),
        );
        if pad {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    der::write_header(&mut out, der::TAG_SEQUENCE, body.len());
    out.extend_from_slice(&body);
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test keys only, written by `openssl ecparam -name prime256v1 -genkey -noout` and
    // `openssl genpkey -algorithm ed25519`.
    const SEC1_P256: &str = "-----BEGIN EC PRIVATE KEY-----\n\
        MHcCAQEEID3Bvc1vnGJP8y++Or5CoOnJliejCnpPZag8uOZCRrKuoAoGCCqGSM49\n\
        AwEHoUQDQgAEKAlUwMPsYWHawGzS1uWcgqUbkEtTlhSuzt3eko/5vfMggGbOhgxM\n\
        okwCzwarUuK17wS4CHmkyqWbK+ngi34w5Q==\n\
        -----END EC PRIVATE KEY-----\n";
    const PKCS8_ED25519: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIESQ+jSHLQXnqH6KrgOxEv5TQxXZvti95bKLe29ifDBS\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn reads_openssl_sec1_and_pkcs8_keys_and_signs_verifiably() {
        for (pem, algorithm) in [
            (SEC1_P256, SignatureAlgorithm::EcdsaP256Sha256),
            (PKCS8_ED25519, SignatureAlgorithm::Ed25519),
        ] {
            let key = SigningKey::from_pem(pem.as_bytes(), "test").expect("reads");
            assert_eq!(key.algorithm(), algorithm);
            let public = key.public_key("k").expect("public half");
            let signature = key.sign(b"hello").expect("signs");
            assert!(public.verify(b"hello", &signature));
            assert!(!public.verify(b"hellO", &signature));
        }
    }

    #[test]
    fn ecdsa_signatures_are_always_low_s_and_normalising_keeps_them_valid() {
        let key = SigningKey::from_pem(SEC1_P256.as_bytes(), "test").expect("reads");
        let public = key.public_key("k").expect("public half");
        // ring picks a random nonce, so about half of its raw signatures are high-S; every
        // round checks the result is low-S and that its mirror image normalises back to it.
        let mut flipped = 0;
        for i in 0..32u8 {
            let message = [b'm', i];
            let signature = key.sign(&message).expect("signs");
            let (r, s) = ecdsa_scalars(&signature).expect("DER");
            assert!(!is_high_s(s), "sign() wrote a high-S signature");
            assert!(public.verify(&message, &signature));
            // The mirror image (r, n - s) is mathematically valid but high-S.
            let s32 = scalar32(s).expect("32 bytes");
            let mut high = [0u8; 32];
            let mut borrow = 0i16;
            for j in (0..32).rev() {
                let mut d = i16::from(P256_ORDER[j]) - i16::from(s32[j]) - borrow;
                borrow = i16::from(d < 0);
                if d < 0 {
                    d += 256;
                }
                high[j] = d as u8;
            }
            let mut body = Vec::new();
            for scalar in [r, &high[..]] {
                let t = &scalar[scalar.iter().position(|b| *b != 0).unwrap_or(0)..];
                let pad = t[0] & 0x80 != 0;
                der::write_header(&mut body, der::TAG_INTEGER, t.len() + usize::from(pad));
                if pad {
                    body.push(0);
                }
                body.extend_from_slice(t);
            }
            let mut mirrored = Vec::new();
            der::write_header(&mut mirrored, der::TAG_SEQUENCE, body.len());
            mirrored.extend_from_slice(&body);
            assert!(public.verify(&message, &mirrored), "ring accepts high-S");
            assert_eq!(normalize_low_s(&mirrored).expect("normalises"), signature);
            flipped += 1;
        }
        assert_eq!(flipped, 32);
    }

    #[test]
    fn explains_encrypted_and_public_only_input() {
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pem(encrypted.as_bytes(), "test"),
            Err(SignError::Encrypted { .. })
        ));
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAdA1UxWULNPmz2a2DfYoJrmTSHMh7tcDsf5yPXMhHd2s=\n\
            -----END PUBLIC KEY-----\n";
        assert!(matches!(
            SigningKey::from_pem(public.as_bytes(), "test"),
            Err(SignError::NoPrivateKey { .. })
        ));
    }
}
