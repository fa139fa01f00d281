//! Intake: the signed envelope the central office posts, the proposal inside it, and the Ed25519
//! keys that sign proposals (central office) and decisions (this site).
//!
//! Why a signature over the payload instead of mTLS (docs/proposals.md, "Security"): the proposal
//! reaches the site through the central office's relay (DSF) and the site's ingress, both of
//! which terminate TLS, so a client certificate would authenticate the last hop, not the author.
//! A signature travels with the bytes, is checked against keys the site pinned, and is kept with
//! the stored proposal, so the site can later prove what it was sent.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde::{Deserialize, Serialize};

/// Largest envelope accepted (a proposal is text; its attachments stay at the central office).
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub key_id: String,
    /// Base64 of the proposal's JSON bytes (the bytes are what is signed and stored).
    pub payload: String,
    /// Base64 Ed25519 signature over the payload bytes.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proposal {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub applicant: Applicant,
    pub requested_data: Vec<String>,
    pub sites: Vec<String>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Applicant {
    pub name: String,
    pub institution: String,
}

/// Why a proposal was refused; the status code follows from the kind.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    #[error("the signature does not verify with key {0:?}")]
    BadSignature(String),
    #[error("proposal {id} is not addressed to this site ({site}); it names {sites:?}")]
    NotAddressed {
        id: String,
        site: String,
        sites: Vec<String>,
    },
}

/// A verified proposal with the exact bytes that were signed.
#[derive(Debug, Clone)]
pub struct Verified {
    pub proposal: Proposal,
    pub payload: Vec<u8>,
    pub key_id: String,
    pub signature: String,
}

/// The central office's public keys by key id.
#[derive(Debug, Clone, Default)]
pub struct CentralKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Bad { path: String, detail: String },
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw 32 key bytes of a PEM Ed25519 public key.
pub fn ed25519_public_from_pem(pem: &[u8]) -> Result<Vec<u8>, String> {
    let mut found = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match section.map_err(|e| e.to_string())? {
            (SectionKind::PublicKey, der) if found.is_none() => found = Some(der),
            (SectionKind::PublicKey, _) => return Err("more than one public key".into()),
            _ => {}
        }
    }
    let der = found.ok_or("no '-----BEGIN PUBLIC KEY-----' block")?;
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(raw) if raw.len() == 32 => Ok(raw.to_vec()),
        _ => Err("not an Ed25519 public key (RFC 8410 SubjectPublicKeyInfo)".into()),
    }
}

/// PEM of a raw Ed25519 public key (what a site gives the central office).
pub fn ed25519_public_to_pem(raw: &[u8]) -> String {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// A PKCS#8 PEM Ed25519 private key (v1 as openssl writes it, or v2).
pub fn ed25519_keypair_from_pem(pem: &[u8]) -> Result<Ed25519KeyPair, String> {
    let der = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .find(|(kind, _)| *kind == SectionKind::PrivateKey)
        .map(|(_, der)| der)
        .ok_or("no '-----BEGIN PRIVATE KEY-----' (PKCS#8) block")?;
    // ring calls the v1 encoding (no embedded public key) "unchecked"; it is what openssl writes.
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| format!("not an Ed25519 key: {e}"))
}

impl CentralKeys {
    /// Every regular file in `dir` is one key; its file name is the key id. Hidden files (the
    /// `..data` links of a mounted ConfigMap or Secret) are skipped.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let read_err = |source| KeyError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut keys = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            let pem = std::fs::read(&path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let raw = ed25519_public_from_pem(&pem).map_err(|detail| KeyError::Bad {
                path: path.display().to_string(),
                detail,
            })?;
            keys.insert(name, raw);
        }
        Ok(Self { keys })
    }

    pub fn from_raw(keys: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Envelope → signature → proposal → addressed to `site`, in that order: nothing about the
    /// content is looked at before the signature verifies.
    pub fn verify(&self, body: &[u8], site: &str) -> Result<Verified, IntakeError> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| IntakeError::Malformed(format!("envelope: {e}")))?;
        let payload = STANDARD
            .decode(envelope.payload.as_bytes())
            .map_err(|e| IntakeError::Malformed(format!("payload is not base64: {e}")))?;
        let signature = STANDARD
            .decode(envelope.signature.as_bytes())
            .map_err(|e| IntakeError::Malformed(format!("signature is not base64: {e}")))?;
        let key = self
            .keys
            .get(&envelope.key_id)
            .ok_or_else(|| IntakeError::UnknownKey(envelope.key_id.clone()))?;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&payload, &signature)
            .map_err(|_| IntakeError::BadSignature(envelope.key_id.clone()))?;
        let proposal: Proposal = serde_json::from_slice(&payload)
            .map_err(|e| IntakeError::Malformed(format!("proposal: {e}")))?;
        for (field, value) in [("id", &proposal.id), ("title", &proposal.title)] {
            if value.trim().is_empty() {
                return Err(IntakeError::Malformed(format!(
                    "proposal: {field} must not be empty"
                )));
            }
        }
        if !proposal.sites.iter().any(|s| s == site) {
            return Err(IntakeError::NotAddressed {
                id: proposal.id.clone(),
                site: site.to_string(),
                sites: proposal.sites.clone(),
            });
        }
        Ok(Verified {
            proposal,
            payload,
            key_id: envelope.key_id,
            signature: envelope.signature,
        })
    }
}

/// Signs `payload` into an envelope (the site's decisions; the central office's proposals in tests).
pub fn seal(key: &Ed25519KeyPair, key_id: &str, payload: &[u8]) -> Envelope {
    Envelope {
        key_id: key_id.to_string(),
        payload: STANDARD.encode(payload),
        signature: STANDARD.encode(key.sign(payload).as_ref()),
    }
}

/// The raw public key of `key` (for [`CentralKeys::from_raw`] and [`ed25519_public_to_pem`]).
pub fn public_raw(key: &Ed25519KeyPair) -> Vec<u8> {
    key.public_key().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn keypair() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("parse")
    }

    #[test]
    fn public_key_pem_round_trips() {
        let k = keypair();
        let pem = ed25519_public_to_pem(&public_raw(&k));
        assert_eq!(
            ed25519_public_from_pem(pem.as_bytes()).expect("parse"),
            public_raw(&k)
        );
        assert!(ed25519_public_from_pem(b"nothing").is_err());
    }

    #[test]
    fn openssl_written_keys_parse() {
        // Written by `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` (OpenSSL 3).
        let private = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGq3A9mruEvW4A4Jl022XoH0eo6bYb2huElCzmJ5FlLo\n-----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAgT7KBLpol1OT5aNUG/x4Y8vaR3Y0t+QtVA+0WP51JY0=\n-----END PUBLIC KEY-----\n";
        let key = ed25519_keypair_from_pem(private).expect("private");
        assert_eq!(ed25519_public_to_pem(&public_raw(&key)), public);
        assert_eq!(
            ed25519_public_from_pem(public.as_bytes()).expect("public"),
            public_raw(&key)
        );
    }
}
