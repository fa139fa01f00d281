//! The keys the operator trusts to certify releases.
//!
//! A key is a PEM `-----BEGIN PUBLIC KEY-----` block (SubjectPublicKeyInfo, what
//! `openssl pkey -pubout` and `cosign public-key` write) for ECDSA P-256 or Ed25519, named by a
//! key id. A [`TrustStore`] holds several keys at once, so a new signing key can be trusted
//! before the old one is retired (see `docs/release-signing.md`, key rotation).
//!
//! Stores are loaded from a directory (a mounted Secret or ConfigMap) or from a Secret's or
//! ConfigMap's data map, where the entry `<keyId>.pem` holds the key called `<keyId>`. The
//! running operator uses a [`TrustDir`], which re-reads the directory as it changes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::der::{self, Reader};
use crate::api::SignatureAlgorithm;
use crate::clock::Clock;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The data-key and file-name suffix that marks a trusted public key.
pub const KEY_FILE_SUFFIX: &str = ".pem";

const MAX_KEY_ID_LEN: usize = 128;
const P256_POINT_LEN: usize = 65;
const ED25519_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "invalid key id {key_id:?}: use 1 to {MAX_KEY_ID_LEN} characters from A-Z a-z 0-9 . _ - \
         (not starting with '.')"
    )]
    InvalidKeyId { key_id: String },
    #[error("{origin}: not readable as PEM: {detail}")]
    Pem { origin: String, detail: String },
    #[error(
        "{origin}: holds a private key; the trust store takes public keys only. Export the public \
         half with `openssl pkey -in <private.pem> -pubout -out {origin_hint}` and keep the \
         private key with the release managers"
    )]
    PrivateKeyGiven { origin: String, origin_hint: String },
    #[error(
        "{origin}: holds a certificate, not a bare public key; extract it with \
         `openssl x509 -in <cert.pem> -pubkey -noout`"
    )]
    CertificateGiven { origin: String },
    #[error("{origin}: no '-----BEGIN PUBLIC KEY-----' block found")]
    NoPublicKey { origin: String },
    #[error(
        "{origin}: holds {count} public keys; put each key in its own <keyId>.pem so that every \
         key has its own id"
    )]
    SeveralKeys { origin: String, count: usize },
    #[error("{origin}: {detail}")]
    UnsupportedKey { origin: String, detail: String },
    #[error("{origin}: malformed public key: {detail}")]
    MalformedKey { origin: String, detail: String },
    #[error("key id {key_id:?} is trusted twice; every key id must be unique")]
    DuplicateKeyId { key_id: String },
    #[error(
        "{origin}: entry {name:?} does not end in '{KEY_FILE_SUFFIX}'; trusted keys are stored as \
         <keyId>{KEY_FILE_SUFFIX}"
    )]
    NotAKeyEntry { origin: String, name: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// One trusted public key.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    key_id: String,
    algorithm: SignatureAlgorithm,
    /// ECDSA: the uncompressed SEC1 point (65 bytes); Ed25519: the 32-byte key. This is the form
    /// `ring` verifies with.
    public_key: Vec<u8>,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// Reads a key from PEM text holding exactly one `PUBLIC KEY` block. `origin` names where the
    /// text came from (file, Secret entry) in error messages.
    pub fn from_pem(key_id: &str, pem: &[u8], origin: &str) -> Result<Self, TrustError> {
        validate_key_id(key_id)?;
        let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::Pem {
                origin: origin.to_string(),
                detail: e.to_string(),
            })?;
        let mut keys = Vec::new();
        for (kind, der) in sections {
            match kind {
                SectionKind::PublicKey => keys.push(der),
                SectionKind::PrivateKey
                | SectionKind::EcPrivateKey
                | SectionKind::RsaPrivateKey => {
                    return Err(TrustError::PrivateKeyGiven {
                        origin: origin.to_string(),
                        origin_hint: format!("{key_id}{KEY_FILE_SUFFIX}"),
                    });
                }
                SectionKind::Certificate => {
                    return Err(TrustError::CertificateGiven {
                        origin: origin.to_string(),
                    });
                }
                _ => {}
            }
        }
        // The PEM reader skips blocks with labels it does not know, such as an encrypted key.
        if contains(pem, b"PRIVATE KEY-----") {
            return Err(TrustError::PrivateKeyGiven {
                origin: origin.to_string(),
                origin_hint: format!("{key_id}{KEY_FILE_SUFFIX}"),
            });
        }
        match keys.len() {
            0 => Err(TrustError::NoPublicKey {
                origin: origin.to_string(),
            }),
            1 => Self::from_spki_der(key_id, &keys[0], origin),
            count => Err(TrustError::SeveralKeys {
                origin: origin.to_string(),
                count,
            }),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(key_id: &str, spki: &[u8], origin: &str) -> Result<Self, TrustError> {
        validate_key_id(key_id)?;
        let malformed = |e: der::DerError| TrustError::MalformedKey {
            origin: origin.to_string(),
            detail: format!("SubjectPublicKeyInfo: {e}"),
        };
        let unsupported = |detail: &str| TrustError::UnsupportedKey {
            origin: origin.to_string(),
            detail: detail.to_string(),
        };
        let mut outer = Reader::new(spki);
        let mut info = outer.sequence().map_err(malformed)?;
        outer.finish().map_err(malformed)?;
        let mut alg_id = info.sequence().map_err(malformed)?;
        let key = info.bit_string().map_err(malformed)?;
        info.finish().map_err(malformed)?;
        let oid = alg_id.expect(der::TAG_OID).map_err(malformed)?;

        let algorithm = match oid {
            der::OID_EC_PUBLIC_KEY => {
                match alg_id.peek_tag() {
                    Some(der::TAG_OID) => {}
                    Some(der::TAG_SEQUENCE) => {
                        return Err(unsupported(
                            "EC key with explicit curve parameters; export it with the named \
                             curve: `openssl ec -pubin -in <pub.pem> -param_enc named_curve -pubout`",
                        ));
                    }
                    _ => return Err(unsupported("EC key without a named curve")),
                }
                let curve = alg_id.expect(der::TAG_OID).map_err(malformed)?;
                alg_id.finish().map_err(malformed)?;
                if curve == der::OID_P384 {
                    return Err(unsupported(
                        "EC key on P-384; release signatures use P-256 (prime256v1) or Ed25519",
                    ));
                }
                if curve != der::OID_P256 {
                    return Err(unsupported(
                        "EC key on a curve other than P-256 (prime256v1); release signatures use \
                         P-256 or Ed25519",
                    ));
                }
                match key.first() {
                    Some(0x04) if key.len() == P256_POINT_LEN => {}
                    Some(0x02 | 0x03) => {
                        return Err(unsupported(
                            "P-256 key in compressed form; export it uncompressed: \
                             `openssl ec -pubin -in <pub.pem> -conv_form uncompressed -pubout`",
                        ));
                    }
                    _ => {
                        return Err(TrustError::MalformedKey {
                            origin: origin.to_string(),
                            detail: format!(
                                "a P-256 public key is a {P256_POINT_LEN}-byte uncompressed \
                                 point, this one has {} bytes",
                                key.len()
                            ),
                        });
                    }
                }
                SignatureAlgorithm::EcdsaP256Sha256
            }
            der::OID_ED25519 => {
                // RFC 8410: the parameters must be absent.
                alg_id.finish().map_err(|_| TrustError::MalformedKey {
                    origin: origin.to_string(),
                    detail: "Ed25519 key with algorithm parameters (RFC 8410 forbids them)".into(),
                })?;
                if key.len() != ED25519_KEY_LEN {
                    return Err(TrustError::MalformedKey {
                        origin: origin.to_string(),
                        detail: format!(
                            "an Ed25519 public key has {ED25519_KEY_LEN} bytes, this one has {}",
                            key.len()
                        ),
                    });
                }
                SignatureAlgorithm::Ed25519
            }
            der::OID_RSA => {
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
        Ok(Self {
            key_id: key_id.to_string(),
            algorithm,
            public_key: key.to_vec(),
        })
    }

    /// Builds a key from the raw form `ring` uses (65-byte uncompressed P-256 point or 32-byte
    /// Ed25519 key), e.g. the public half of a [`super::sign::SigningKey`].
    pub fn from_raw(
        key_id: &str,
        algorithm: SignatureAlgorithm,
        public_key: &[u8],
    ) -> Result<Self, TrustError> {
        let key = Self {
            key_id: key_id.to_string(),
            algorithm,
            public_key: public_key.to_vec(),
        };
        // Round-tripping through SPKI applies exactly the checks a PEM file gets.
        Self::from_spki_der(key_id, &key.to_spki_der(), "raw public key")
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The raw public key (see [`TrustedKey::from_raw`]).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The key as DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut alg_id = Vec::new();
        match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => {
                der::write_header(&mut alg_id, der::TAG_OID, der::OID_EC_PUBLIC_KEY.len());
                alg_id.extend_from_slice(der::OID_EC_PUBLIC_KEY);
                der::write_header(&mut alg_id, der::TAG_OID, der::OID_P256.len());
                alg_id.extend_from_slice(der::OID_P256);
            }
            SignatureAlgorithm::Ed25519 => {
                der::write_header(&mut alg_id, der::TAG_OID, der::OID_ED25519.len());
                alg_id.extend_from_slice(der::OID_ED25519);
            }
        }
        let mut body = Vec::new();
        der::write_header(&mut body, der::TAG_SEQUENCE, alg_id.len());
        body.extend_from_slice(&alg_id);
        der::write_header(&mut body, der::TAG_BIT_STRING, self.public_key.len() + 1);
        body.push(0);
        body.extend_from_slice(&self.public_key);
        let mut out = Vec::new();
        der::write_header(&mut out, der::TAG_SEQUENCE, body.len());
        out.extend_from_slice(&body);
        out
    }

    /// The key as a PEM `PUBLIC KEY` block, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.to_spki_der());
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        // Base64 output is ASCII, so splitting the bytes never splits a character.
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// Checks `signature` over `message`; the caller has already checked the algorithm and the
    /// signature's encoding, so a failure here means the signature does not match.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &'static dyn VerificationAlgorithm = match self.algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1,
            SignatureAlgorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

/// The set of keys the operator trusts, by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a second key under an id already trusted is refused rather than replacing
    /// the first, because silently swapping a trusted key is exactly what an attacker wants.
    pub fn insert(&mut self, key: TrustedKey) -> Result<(), TrustError> {
        if self.keys.contains_key(&key.key_id) {
            return Err(TrustError::DuplicateKeyId { key_id: key.key_id });
        }
        self.keys.insert(key.key_id.clone(), key);
        Ok(())
    }

    /// Stops trusting a key (revocation). Returns the key if it was trusted.
    pub fn remove(&mut self, key_id: &str) -> Option<TrustedKey> {
        self.keys.remove(key_id)
    }

    pub fn get(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.get(key_id)
    }

    /// Trusted key ids in ascending order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Loads every `<keyId>.pem` in a directory.
    ///
    /// Entries starting with `.` are skipped: a mounted Secret or ConfigMap keeps its real files
    /// in `..data`/`..<timestamp>` and links each key to them. Subdirectories are skipped; any
    /// other file not ending in `.pem` is an error, so a misnamed key is noticed at start-up
    /// rather than as unexplained `UnknownKey` verdicts later.
    pub fn from_dir(dir: &Path) -> Result<Self, TrustError> {
        let io = |path: &Path, source| TrustError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // `metadata` follows the symlinks a Secret volume consists of.
            if std::fs::metadata(&path).map_err(|e| io(&path, e))?.is_dir() {
                continue;
            }
            entries.push((name, path));
        }
        entries.sort();
        let mut store = Self::new();
        for (name, path) in entries {
            let origin = path.display().to_string();
            let key_id = key_id_of_entry(&dir.display().to_string(), &name)?;
            let pem = std::fs::read(&path).map_err(|e| io(&path, e))?;
            store.insert(TrustedKey::from_pem(key_id, &pem, &origin)?)?;
        }
        Ok(store)
    }

    /// Loads every `<keyId>.pem` entry of a data map (a Secret's `data`, a ConfigMap's `data`
    /// or `binaryData`). `origin` names the object in error messages, e.g. `Secret ns/name`.
    pub fn from_data<I, K, V>(origin: &str, data: I) -> Result<Self, TrustError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut store = Self::new();
        for (name, pem) in data {
            let name = name.as_ref();
            let key_id = key_id_of_entry(origin, name)?;
            let entry_origin = format!("{origin} entry {name}");
            store.insert(TrustedKey::from_pem(key_id, pem.as_ref(), &entry_origin)?)?;
        }
        Ok(store)
    }

    /// Loads the keys of a Secret (`data` and `stringData`).
    pub fn from_secret(secret: &Secret) -> Result<Self, TrustError> {
        let origin = format!("Secret {}", object_name(&secret.metadata));
        let binary = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()));
        let text = secret
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_bytes()));
        Self::from_data(&origin, binary.chain(text))
    }

    /// Loads the keys of a ConfigMap (`data` and `binaryData`).
    pub fn from_config_map(config_map: &ConfigMap) -> Result<Self, TrustError> {
        let origin = format!("ConfigMap {}", object_name(&config_map.metadata));
        let text = config_map
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_bytes()));
        let binary = config_map
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()));
        Self::from_data(&origin, text.chain(binary))
    }
}

/// The trusted keys of a mounted directory, re-read when they may have changed, so that a key
/// removed from the trusted-keys Secret stops being trusted without a restart.
///
/// The directory is re-read on first use after [`TrustDir::RELOAD_INTERVAL`] (by the injected
/// clock, so tests need no sleeping) or at once on [`TrustDir::reload`]. Every certification
/// asks for the current keys, so no verdict uses keys older than the interval. The kubelet
/// updates a mounted Secret atomically (a `..data` symlink swap) within its sync period; the
/// interval adds at most 30 s to that.
///
/// A directory that cannot be read any more **fails closed**: nothing is certified (reason
/// `TrustedKeysUnavailable`) until it is readable again. Keeping the last good keys instead
/// would keep a removed key trusted exactly when the Secret is being rewritten.
pub struct TrustDir {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    interval: SignedDuration,
    threshold: usize,
    state: Mutex<Loaded>,
}

struct Loaded {
    at: Timestamp,
    keys: Result<Arc<TrustStore>, String>,
}

impl fmt::Debug for TrustDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustDir")
            .field("dir", &self.dir)
            .field("interval", &self.interval)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl TrustDir {
    /// How old the loaded keys may get before the next use re-reads the directory.
    pub const RELOAD_INTERVAL: SignedDuration = SignedDuration::from_secs(30);

    /// Loads the directory now; an unreadable directory at start-up is an error, so a
    /// misconfigured operator does not start.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, TrustError> {
        let keys = TrustStore::from_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(Loaded {
                at: clock.now(),
                keys: Ok(Arc::new(keys)),
            }),
            clock,
            interval: Self::RELOAD_INTERVAL,
            threshold: 1,
        })
    }

    /// How many distinct trusted keys must sign a release or revocation (k-of-n); at least 1.
    #[must_use]
    pub fn with_threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold.max(1);
        self
    }

    #[must_use]
    pub fn with_interval(mut self, interval: SignedDuration) -> Self {
        self.interval = interval;
        self
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The keys to verify with now: re-read when older than the interval (or when the clock
    /// went backwards). `Err` names why the directory cannot be read.
    pub fn current(&self) -> Result<Arc<TrustStore>, String> {
        let now = self.clock.now();
        let stale = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            now < state.at
                || state
                    .at
                    .checked_add(self.interval)
                    .is_ok_and(|due| now >= due)
        };
        if stale {
            self.reload()
        } else {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys
                .clone()
        }
    }

    /// Re-reads the directory now (e.g. on a file-change notification), logs what changed, and
    /// returns the new keys.
    pub fn reload(&self) -> Result<Arc<TrustStore>, String> {
        let fresh = TrustStore::from_dir(&self.dir).map(Arc::new).map_err(|e| {
            format!(
                "the trusted keys in {} cannot be loaded: {e}; no release is certified until \
                 they can",
                self.dir.display()
            )
        });
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (&state.keys, &fresh) {
            (Ok(old), Ok(new)) if old != new => {
                let removed: Vec<&str> = old.key_ids().filter(|k| new.get(k).is_none()).collect();
                let added: Vec<&str> = new.key_ids().filter(|k| old.get(k).is_none()).collect();
                tracing::info!(?added, ?removed, "trusted release-signing keys changed");
            }
            (_, Err(e)) => tracing::warn!(error = %e, "trusted keys unreadable; trusting none"),
            _ => {}
        }
        *state = Loaded {
            at: self.clock.now(),
            keys: fresh.clone(),
        };
        fresh
    }
}

fn object_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    match (&meta.namespace, &meta.name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.clone(),
        _ => "(unnamed)".to_string(),
    }
}

fn key_id_of_entry<'a>(origin: &str, name: &'a str) -> Result<&'a str, TrustError> {
    name.strip_suffix(KEY_FILE_SUFFIX)
        .ok_or_else(|| TrustError::NotAKeyEntry {
            origin: origin.to_string(),
            name: name.to_string(),
        })
}

/// Key ids end up in file names, Secret keys, status fields and Event messages, so they are
/// limited to characters that are safe in all of them.
pub fn validate_key_id(key_id: &str) -> Result<(), TrustError> {
    let valid = !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID_LEN
        && !key_id.starts_with('.')
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(TrustError::InvalidKeyId {
            key_id: key_id.to_string(),
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `openssl genpkey -algorithm ed25519` + `openssl pkey -pubout`; a test key only.
    const ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAdA1UxWULNPmz2a2DfYoJrmTSHMh7tcDsf5yPXMhHd2s=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn reads_an_ed25519_key_and_writes_it_back_identically() {
        let key = TrustedKey::from_pem("k1", ED25519_PUB.as_bytes(), "test").expect("parses");
        assert_eq!(key.algorithm(), SignatureAlgorithm::Ed25519);
        assert_eq!(key.public_key().len(), 32);
        assert_eq!(key.to_pem(), ED25519_PUB);
    }

    #[test]
    fn refuses_private_keys_certificates_and_bad_ids() {
        let private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
            -----END PRIVATE KEY-----\n";
        assert!(matches!(
            TrustedKey::from_pem("k1", private.as_bytes(), "test"),
            Err(TrustError::PrivateKeyGiven { .. })
        ));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            TrustedKey::from_pem("k1", encrypted.as_bytes(), "test"),
            Err(TrustError::PrivateKeyGiven { .. })
        ));
        assert!(matches!(
            TrustedKey::from_pem("k1", b"not pem", "test"),
            Err(TrustError::NoPublicKey { .. })
        ));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(matches!(
                TrustedKey::from_pem(bad, ED25519_PUB.as_bytes(), "test"),
                Err(TrustError::InvalidKeyId { .. })
            ));
        }
    }

    #[test]
    fn refuses_two_keys_in_one_entry_and_duplicate_ids() {
        let two = format!("{ED25519_PUB}{ED25519_PUB}");
        assert!(matches!(
            TrustedKey::from_pem("k1", two.as_bytes(), "test"),
            Err(TrustError::SeveralKeys { count: 2, .. })
        ));
        let mut store = TrustStore::new();
        let key = TrustedKey::from_pem("k1", ED25519_PUB.as_bytes(), "test").expect("parses");
        store.insert(key.clone()).expect("first insert");
        assert!(matches!(
            store.insert(key),
            Err(TrustError::DuplicateKeyId { .. })
        ));
    }

    #[test]
    fn loads_a_data_map_and_names_keys_by_entry() {
        let mut data = BTreeMap::new();
        data.insert("old-2025.pem".to_string(), ED25519_PUB.to_string());
        data.insert("new-2026.pem".to_string(), ED25519_PUB.to_string());
        let store = TrustStore::from_data("Secret x/y", &data).expect("loads");
        assert_eq!(
            store.key_ids().collect::<Vec<_>>(),
            ["new-2026", "old-2025"]
        );

        data.insert("README".to_string(), "hello".to_string());
        assert!(matches!(
            TrustStore::from_data("Secret x/y", &data),
            Err(TrustError::NotAKeyEntry { .. })
        ));
    }

    #[test]
    fn refuses_rsa_and_other_curves_with_a_reason() {
        // SPKI skeletons: only the algorithm identifier matters for these checks.
        let mut rsa = Vec::new();
        let mut alg = Vec::new();
        der::write_header(&mut alg, der::TAG_OID, der::OID_RSA.len());
        alg.extend_from_slice(der::OID_RSA);
        der::write_header(&mut alg, der::TAG_NULL, 0);
        let mut body = Vec::new();
        der::write_header(&mut body, der::TAG_SEQUENCE, alg.len());
        body.extend_from_slice(&alg);
        der::write_header(&mut body, der::TAG_BIT_STRING, 2);
        body.extend_from_slice(&[0, 0]);
        der::write_header(&mut rsa, der::TAG_SEQUENCE, body.len());
        rsa.extend_from_slice(&body);
        let err = TrustedKey::from_spki_der("k", &rsa, "test").expect_err("RSA refused");
        assert!(err.to_string().contains("RSA"), "{err}");
    }

    #[test]
    fn a_removed_key_stops_being_trusted_after_the_interval_without_restart() {
        use crate::clock::ManualClock;
        let dir = std::env::temp_dir().join(format!("miracolix-trustdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("k1.pem"), ED25519_PUB).expect("write");
        let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
        let trust = TrustDir::open(&dir, Arc::new(clock.clone())).expect("opens");
        assert!(trust.current().expect("keys").get("k1").is_some());

        std::fs::remove_file(dir.join("k1.pem")).expect("remove");
        // Within the interval the loaded keys are used ...
        clock.advance(SignedDuration::from_secs(29));
        assert!(trust.current().expect("keys").get("k1").is_some());
        // ... and on the first use after it the directory is read again.
        clock.advance(SignedDuration::from_secs(1));
        assert!(trust.current().expect("keys").get("k1").is_none());

        // A trigger reloads at once; an unreadable directory trusts nothing.
        std::fs::write(dir.join("k1.pem"), ED25519_PUB).expect("write");
        assert!(trust.reload().expect("keys").get("k1").is_some());
        std::fs::write(dir.join("broken.pem"), "not a key").expect("write");
        assert!(trust.reload().is_err());
        assert!(
            trust.current().is_err(),
            "fails closed, not on the last good keys"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
