//! Release certification end to end: signing, verification verdicts, key rotation, the CLI, and
//! interoperability with the `openssl` command line in both directions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use miracolix_operator::api::{
    ComponentImage, ComponentRelease, ComponentReleaseSpec, ReleaseFormat, ReleaseRevocationSpec,
    ReleaseSignature, SignatureAlgorithm,
};
use miracolix_operator::release::{
    Reason, SigningKey, TrustStore, TrustedKey, Verdict, canonicalize, sha256_hex, sign_release,
    sign_revocation, verify, verify_revocation, verify_signature, verify_with_threshold,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_miracolix-operator");
const DEMO_KEY_ID: &str = "miracolix-demo-2026";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn example_path() -> PathBuf {
    repo_root().join("examples/10-release-miracolix-2026.1.yaml")
}

fn example_release() -> ComponentRelease {
    let text = std::fs::read_to_string(example_path()).expect("example release exists");
    let mut docs: Vec<ComponentRelease> =
        miracolix_operator::yaml::from_multi_doc(&text).expect("example parses");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// The example release without its signature.
fn release() -> ComponentReleaseSpec {
    let mut spec = example_release().spec;
    spec.signature = None;
    spec
}

/// A temporary directory removed on drop, so that failed runs leave nothing behind either.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "miracolix-release-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh key pair generated in-process; returns the signing key and its public half.
fn keypair(algorithm: SignatureAlgorithm, key_id: &str) -> (SigningKey, TrustedKey) {
    let rng = SystemRandom::new();
    let pkcs8 = match algorithm {
        SignatureAlgorithm::EcdsaP256Sha256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        }
        SignatureAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
    }
    .expect("key generation");
    // Through PEM, as a release manager's key file would arrive.
    let key = SigningKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(), "generated")
        .expect("generated key reads");
    let public = key.public_key(key_id).expect("public half");
    let public = TrustedKey::from_pem(key_id, public.to_pem().as_bytes(), "generated")
        .expect("public PEM reads");
    (key, public)
}

fn store(keys: &[&TrustedKey]) -> TrustStore {
    let mut store = TrustStore::new();
    for key in keys {
        store.insert((*key).clone()).expect("unique key ids");
    }
    store
}

fn signed(spec: &ComponentReleaseSpec, key: &SigningKey, key_id: &str) -> ComponentReleaseSpec {
    let mut spec = spec.clone();
    spec.signature = Some(sign_release(&spec, key, key_id).expect("signs"));
    spec
}

/// Certified by exactly `key_id` (in whichever format).
#[track_caller]
fn assert_certified(verdict: &Verdict, key_id: &str) {
    match verdict {
        Verdict::Certified { key_ids, .. } => assert_eq!(key_ids, &[key_id.to_string()]),
        Verdict::NotCertified { reason, message } => {
            panic!("expected certified by {key_id}, got {reason}: {message}")
        }
    }
}

#[track_caller]
fn assert_reason(verdict: &Verdict, expected: Reason) -> String {
    match verdict {
        Verdict::NotCertified { reason, message } => {
            assert_eq!(*reason, expected, "message: {message}");
            assert_eq!(verdict.reason(), expected.as_str());
            message.clone()
        }
        Verdict::Certified { .. } => panic!("expected {expected}, got {verdict:?}"),
    }
}

const ALGORITHMS: [SignatureAlgorithm; 2] = [
    SignatureAlgorithm::EcdsaP256Sha256,
    SignatureAlgorithm::Ed25519,
];

// ---------------------------------------------------------------------------------------------
// Verdicts

#[test]
fn a_valid_signature_certifies_with_either_algorithm() {
    for algorithm in ALGORITHMS {
        let (key, public) = keypair(algorithm, "consortium-2026");
        let release = signed(&release(), &key, "consortium-2026");
        assert_eq!(
            release.signature.as_ref().map(|s| s.algorithm),
            Some(algorithm)
        );
        let verdict = verify(&release, &store(&[&public]));
        assert_certified(&verdict, "consortium-2026");
        assert!(verdict.is_certified());
        assert_eq!(verdict.reason(), "Verified");
    }
}

#[test]
fn content_changed_after_signing_is_a_bad_signature() {
    type Change = fn(&mut ComponentReleaseSpec);
    let changes: [(&str, Change); 7] = [
        ("digest changed", |s| {
            s.components.get_mut("blaze").expect("blaze").digest =
                format!("sha256:{}", "0".repeat(64));
        }),
        ("release version changed", |s| s.version = "2026.2".into()),
        ("component version changed", |s| {
            s.components.get_mut("blaze").expect("blaze").version = "0.30.3".into();
        }),
        ("repository changed", |s| {
            s.components.get_mut("blaze").expect("blaze").repository =
                "ghcr.io/attacker/blaze".into();
        }),
        ("channel changed", |s| {
            s.channel = miracolix_operator::api::Channel::Candidate;
        }),
        ("component added", |s| {
            s.components.insert(
                "extra".into(),
                ComponentImage {
                    repository: "ghcr.io/attacker/miner".into(),
                    digest: format!("sha256:{}", "e".repeat(64)),
                    version: "1.0".into(),
                },
            );
        }),
        ("component removed", |s| {
            s.components.remove("dqa");
        }),
    ];
    for algorithm in ALGORITHMS {
        let (key, public) = keypair(algorithm, "k");
        let trust = store(&[&public]);
        let original = signed(&release(), &key, "k");
        assert_certified(&verify(&original, &trust), "k");
        for (what, change) in changes {
            let mut tampered = original.clone();
            change(&mut tampered);
            let message = assert_reason(&verify(&tampered, &trust), Reason::BadSignature);
            assert!(
                message.contains("changed after signing"),
                "{algorithm:?}, {what}: {message}"
            );
        }
    }
}

#[test]
fn a_signature_by_another_key_under_the_trusted_id_is_a_bad_signature() {
    for algorithm in ALGORITHMS {
        let (_, trusted) = keypair(algorithm, "k");
        let (impostor, _) = keypair(algorithm, "k");
        let release = signed(&release(), &impostor, "k");
        assert_reason(&verify(&release, &store(&[&trusted])), Reason::BadSignature);
    }
}

#[test]
fn a_signature_claiming_the_other_algorithm_is_an_algorithm_mismatch() {
    let (ec_key, ec_public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "ec");
    let (ed_key, ed_public) = keypair(SignatureAlgorithm::Ed25519, "ed");
    let trust = store(&[&ec_public, &ed_public]);

    // Says ed25519, but "ec" is trusted as an ECDSA key.
    let mut release_a = signed(&release(), &ed_key, "ec");
    assert_eq!(
        release_a.signature.as_ref().map(|s| s.algorithm),
        Some(SignatureAlgorithm::Ed25519)
    );
    let message = assert_reason(&verify(&release_a, &trust), Reason::AlgorithmMismatch);
    assert!(
        message.contains("ed25519") && message.contains("ecdsa-p256-sha256"),
        "{message}"
    );

    // Says ecdsa, but "ed" is trusted as an Ed25519 key.
    let mut release_b = signed(&release(), &ec_key, "ed");
    assert_reason(&verify(&release_b, &trust), Reason::AlgorithmMismatch);

    // Relabelling the algorithm of a valid signature is caught the same way.
    for (release, wrong) in [
        (&mut release_a, SignatureAlgorithm::EcdsaP256Sha256),
        (&mut release_b, SignatureAlgorithm::Ed25519),
    ] {
        let sig = release.signature.as_mut().expect("signed");
        sig.key_id = if wrong == SignatureAlgorithm::Ed25519 {
            "ec"
        } else {
            "ed"
        }
        .into();
        sig.algorithm = wrong;
        assert_reason(&verify(release, &trust), Reason::AlgorithmMismatch);
    }
}

fn with_value(spec: &ComponentReleaseSpec, value: String) -> ComponentReleaseSpec {
    let mut spec = spec.clone();
    if let Some(sig) = spec.signature.as_mut() {
        sig.value = value;
    }
    spec
}

#[test]
fn garbage_base64_is_a_malformed_signature() {
    let (key, public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "k");
    let trust = store(&[&public]);
    let release = signed(&release(), &key, "k");
    for garbage in ["not base64!", "MEUCIQ", "MEUC IQ==", "====", ""] {
        let message = assert_reason(
            &verify(&with_value(&release, garbage.into()), &trust),
            Reason::MalformedSignature,
        );
        assert!(message.contains("base64"), "{garbage:?}: {message}");
    }
}

#[test]
fn truncated_or_garbage_der_is_a_malformed_signature() {
    let (key, public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "k");
    let trust = store(&[&public]);
    let release = signed(&release(), &key, "k");
    let der = B64
        .decode(&release.signature.as_ref().expect("signed").value)
        .expect("our own base64");
    assert_eq!(der[0], 0x30, "ECDSA signatures are DER sequences");

    let mut trailing = der.clone();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", der[..der.len() - 5].to_vec()),
        ("only the header", der[..2].to_vec()),
        ("trailing byte", trailing),
        ("garbage", b"this is not a DER signature at all".to_vec()),
        ("raw r||s", vec![0x42; 64]),
    ];
    for (what, bytes) in cases {
        let message = assert_reason(
            &verify(&with_value(&release, B64.encode(&bytes)), &trust),
            Reason::MalformedSignature,
        );
        assert!(message.contains("DER"), "{what}: {message}");
    }

    // A well-formed DER signature with different numbers is a signature, just not a valid one.
    let mut flipped = der;
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_reason(
        &verify(&with_value(&release, B64.encode(&flipped)), &trust),
        Reason::BadSignature,
    );
}

#[test]
fn an_ed25519_signature_of_the_wrong_length_is_malformed() {
    let (key, public) = keypair(SignatureAlgorithm::Ed25519, "k");
    let trust = store(&[&public]);
    let release = signed(&release(), &key, "k");
    let sig = B64
        .decode(&release.signature.as_ref().expect("signed").value)
        .expect("our own base64");
    assert_eq!(sig.len(), 64);
    let message = assert_reason(
        &verify(&with_value(&release, B64.encode(&sig[..63])), &trust),
        Reason::MalformedSignature,
    );
    assert!(message.contains("63 bytes"), "{message}");
}

#[test]
fn an_unsigned_release_is_not_certified() {
    let (_, public) = keypair(SignatureAlgorithm::Ed25519, "k");
    let message = assert_reason(&verify(&release(), &store(&[&public])), Reason::Unsigned);
    assert!(message.contains("release sign"), "{message}");
}

#[test]
fn an_unknown_key_id_is_named_with_the_trusted_ones() {
    let (key, _) = keypair(SignatureAlgorithm::Ed25519, "someone-else");
    let (_, trusted) = keypair(SignatureAlgorithm::Ed25519, "consortium-2026");
    let release = signed(&release(), &key, "someone-else");
    let message = assert_reason(&verify(&release, &store(&[&trusted])), Reason::UnknownKey);
    assert!(
        message.contains("someone-else") && message.contains("consortium-2026"),
        "{message}"
    );
    let message = assert_reason(&verify(&release, &TrustStore::new()), Reason::UnknownKey);
    assert!(message.contains("trusts no keys"), "{message}");
}

#[test]
fn content_that_cannot_be_canonicalised_is_not_canonical() {
    let (key, public) = keypair(SignatureAlgorithm::Ed25519, "k");
    let mut release = signed(&release(), &key, "k");
    release.version = "2026.1\ncomponent.blaze.digest=sha256:evil".into();
    let message = assert_reason(&verify(&release, &store(&[&public])), Reason::NotCanonical);
    assert!(message.contains("newline"), "{message}");
    // And such content cannot be signed in the first place.
    assert!(sign_release(&release, &key, "k").is_err());
}

// ---------------------------------------------------------------------------------------------
// Key rotation and trust-store loading

#[test]
fn key_rotation_old_and_new_both_verify_until_the_old_is_revoked() {
    let (old_key, old_public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "miracum-2025");
    let (new_key, new_public) = keypair(SignatureAlgorithm::Ed25519, "miracum-2026");
    let by_old = signed(&release(), &old_key, "miracum-2025");
    let by_new = signed(&release(), &new_key, "miracum-2026");

    let mut trust = store(&[&old_public, &new_public]);
    assert_certified(&verify(&by_old, &trust), "miracum-2025");
    assert_certified(&verify(&by_new, &trust), "miracum-2026");

    assert!(trust.remove("miracum-2025").is_some());
    assert_reason(&verify(&by_old, &trust), Reason::UnknownKey);
    assert_certified(&verify(&by_new, &trust), "miracum-2026");
}

#[test]
fn trust_store_loads_a_secret_and_a_mounted_secret_directory() {
    let (old_key, old_public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "miracum-2025");
    let (new_key, new_public) = keypair(SignatureAlgorithm::Ed25519, "miracum-2026");
    let by_old = signed(&release(), &old_key, "miracum-2025");
    let by_new = signed(&release(), &new_key, "miracum-2026");

    let secret = Secret {
        data: Some(BTreeMap::from([
            (
                "miracum-2025.pem".to_string(),
                ByteString(old_public.to_pem().into_bytes()),
            ),
            (
                "miracum-2026.pem".to_string(),
                ByteString(new_public.to_pem().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    let trust = TrustStore::from_secret(&secret).expect("Secret loads");
    assert_eq!(trust.len(), 2);
    assert_certified(&verify(&by_old, &trust), "miracum-2025");
    assert_certified(&verify(&by_new, &trust), "miracum-2026");

    // The layout kubelet writes for a Secret volume: real files in a hidden, timestamped
    // directory, reached through `..data` and one symlink per key.
    let dir = TempDir::new("trust-dir");
    let real = dir.path("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::write(real.join("miracum-2026.pem"), new_public.to_pem()).expect("write key");
    std::os::unix::fs::symlink(&real, dir.path("..data")).expect("..data link");
    std::os::unix::fs::symlink("..data/miracum-2026.pem", dir.path("miracum-2026.pem"))
        .expect("key link");
    let trust = TrustStore::from_dir(&dir.0).expect("directory loads");
    assert_eq!(trust.key_ids().collect::<Vec<_>>(), ["miracum-2026"]);
    assert_certified(&verify(&by_new, &trust), "miracum-2026");
    assert_reason(&verify(&by_old, &trust), Reason::UnknownKey);

    // A file that is not <keyId>.pem is refused rather than silently ignored.
    dir.write("miracum-2027.pub", new_public.to_pem());
    let err = TrustStore::from_dir(&dir.0).expect_err("misnamed key refused");
    assert!(err.to_string().contains("miracum-2027.pub"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Canonical form

#[test]
fn canonical_form_ignores_map_order_and_metadata_but_v2_covers_the_rollout() {
    let text = std::fs::read_to_string(example_path()).expect("example");
    let base = canonicalize(&release(), ReleaseFormat::V2).expect("canonical");

    // Components in reverse order and different metadata: the same bytes.
    let mut reordered = String::new();
    let mut in_components = false;
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line == "  components:" {
            in_components = true;
            reordered.push_str(line);
            reordered.push('\n');
            continue;
        }
        if in_components {
            if line.starts_with("    ") && !line.starts_with("     ") && line.ends_with(':') {
                blocks.push(String::new());
            }
            if line.starts_with("    ") {
                if let Some(block) = blocks.last_mut() {
                    block.push_str(line);
                    block.push('\n');
                }
                continue;
            }
            in_components = false;
            for block in blocks.iter().rev() {
                reordered.push_str(block);
            }
        }
        reordered.push_str(line);
        reordered.push('\n');
    }
    let reordered = reordered.replace(
        "name: miracolix-2026.1",
        "name: renamed\n  labels:\n    a: b",
    );
    let position = |needle: &str| reordered.find(needle).expect("component present");
    assert!(
        position("    dsf-bpe-proxy:") < position("    blaze:"),
        "the components were reordered"
    );
    let docs: Vec<ComponentRelease> =
        miracolix_operator::yaml::from_multi_doc(&reordered).expect("reordered parses");
    let spec = docs[0].spec.clone();
    assert_eq!(
        canonicalize(&spec, ReleaseFormat::V2).expect("canonical"),
        base
    );
    let trust = demo_trust();
    assert_certified(&verify(&spec, &trust), DEMO_KEY_ID);
    // compatibility.notes is for people and may be corrected without re-signing.
    let mut noted = spec.clone();
    if let Some(c) = noted.compatibility.as_mut() {
        c.notes = Some("corrected".into());
    }
    assert_certified(&verify(&noted, &trust), DEMO_KEY_ID);
}

/// Attack: whoever may edit a ComponentRelease (but holds no signing key) drops the pilot wave,
/// sets a 1 s progress deadline so every site rolls back, or removes the upgrade path. In
/// format v2 each of these breaks the signature.
#[test]
fn editing_what_steers_the_rollout_breaks_the_signature() {
    type Change = fn(&mut ComponentReleaseSpec);
    let changes: [(&str, Change); 6] = [
        ("pilot wave dropped", |s| {
            if let Some(r) = s.rollout.as_mut() {
                r.waves.remove(0);
            }
        }),
        ("1s progress deadline", |s| {
            if let Some(r) = s.rollout.as_mut() {
                r.progress_deadline = "1s".into();
            }
        }),
        ("wave moved earlier", |s| {
            if let Some(r) = s.rollout.as_mut() {
                r.waves[1].not_before = Some("2026-01-01T00:00:00Z".into());
            }
        }),
        ("rollout removed", |s| s.rollout = None),
        ("upgrade path removed", |s| s.compatibility = None),
        ("expiry added", |s| {
            s.not_after = Some("2026-01-01T00:00:00Z".into())
        }),
    ];
    let trust = demo_trust();
    for (what, change) in changes {
        let mut spec = example_release().spec;
        change(&mut spec);
        let message = assert_reason(&verify(&spec, &trust), Reason::BadSignature);
        assert!(message.contains("rollout"), "{what}: {message}");
    }
}

/// Releases signed before the v2 format still verify (their rollout and compatibility are then
/// ignored by the rollout plan, because nothing vouches for them).
#[test]
fn a_release_signed_in_format_v1_still_verifies() {
    let (key, public) = keypair(SignatureAlgorithm::Ed25519, "old");
    let mut spec = release();
    let v1 = canonicalize(&spec, ReleaseFormat::V1).expect("v1");
    assert!(v1.starts_with(b"miracolix-release-v1\n"));
    spec.signature = Some(ReleaseSignature {
        key_id: "old".into(),
        algorithm: SignatureAlgorithm::Ed25519,
        format: None,
        value: B64.encode(key.sign(&v1).expect("signs")),
    });
    let verdict = verify(&spec, &store(&[&public]));
    assert_eq!(
        verdict,
        Verdict::Certified {
            key_ids: vec!["old".into()],
            format: ReleaseFormat::V1
        }
    );
    // A v1 signature does not cover the rollout: changing it keeps the verdict.
    spec.rollout = None;
    assert!(verify(&spec, &store(&[&public])).is_certified());
    // Claiming v2 for it fails: the format tag is part of the signed bytes.
    if let Some(sig) = spec.signature.as_mut() {
        sig.format = Some(ReleaseFormat::V2);
    }
    assert_reason(&verify(&spec, &store(&[&public])), Reason::BadSignature);
}

#[test]
fn canonical_form_is_exactly_the_documented_one() {
    let text = String::from_utf8(canonicalize(&release(), ReleaseFormat::V2).expect("canonical"))
        .expect("ASCII");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "miracolix-release-v2");
    assert_eq!(lines[1], "release.version=2026.1");
    assert_eq!(lines[2], "release.channel=stable");
    assert!(text.ends_with('\n') && !text.ends_with("\n\n"));
    // Sorted by component key, fields in the fixed order.
    assert_eq!(lines[3], "component.blaze.repository=ghcr.io/samply/blaze");
    assert!(lines[4].starts_with("component.blaze.digest=sha256:"));
    assert_eq!(lines[5], "component.blaze.version=0.30.2");
    assert!(lines[6].starts_with("component.dqa.repository="));
    // Then what steers the rollout.
    let tail = &lines[3 + 3 * release().components.len()..];
    assert_eq!(
        tail,
        [
            "compatibility.upgradeFrom=2025.2",
            "compatibility.upgradeFrom=2025.2.1",
            "rollout.progressDeadline=30m",
            "rollout.wave.0.name=pilot",
            "rollout.wave.0.site=erlangen",
            "rollout.wave.0.notBefore=2026-02-02T06:00:00Z",
            "rollout.wave.1.name=consortium",
            "rollout.wave.1.siteSelector=matchLabels",
            "rollout.wave.1.matchLabel=diz.miracum.org/rollout=consortium",
            "rollout.wave.1.notBefore=2026-02-09T06:00:00Z",
        ]
    );
    // The docs show the same bytes for the example release.
    let doc = std::fs::read_to_string(repo_root().join("docs/release-signing.md"))
        .expect("docs/release-signing.md exists");
    assert!(
        doc.contains(&lines[..9].join("\n")) && doc.contains(&tail.join("\n")),
        "docs/release-signing.md no longer shows the canonical form of the example"
    );
    // The fingerprint is the SHA-256 of these bytes, as `release fingerprint` prints it.
    let out = run(&["release", "fingerprint", "-f", s(&example_path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sha256_hex(text.as_bytes())
    );
}

// ---------------------------------------------------------------------------------------------
// The committed example

fn demo_trust() -> TrustStore {
    // Loaded the way the operator loads it: a directory of `<keyId>.pem` files.
    let trust = TrustStore::from_dir(&repo_root().join("examples/trusted-keys"))
        .expect("the demo trusted-keys directory loads");
    assert!(
        trust.get(DEMO_KEY_ID).is_some(),
        "key id from the file name"
    );
    trust
}

/// The example release is also the fixture of the catalogue and e2e tests: a changed image in it
/// must be re-signed, and this fast test says how instead of a slow e2e test failing later.
#[test]
fn the_example_release_is_signed_with_the_demo_key() {
    let release = example_release();
    let verdict = verify(&release.spec, &demo_trust());
    assert!(
        verdict
            == Verdict::Certified {
                key_ids: vec![DEMO_KEY_ID.to_string()],
                format: ReleaseFormat::V2,
            },
        "examples/10-release-miracolix-2026.1.yaml does not verify with the demo key ({verdict:?}). \
         If you changed its content on purpose, re-sign it and paste the printed block over \
         spec.signature:\n  cargo run -q -p miracolix-operator -- release sign \
         -f examples/10-release-miracolix-2026.1.yaml --key examples/keys/demo-release-signing.pem \
         --key-id {DEMO_KEY_ID} --signature-only"
    );

    // And the committed private key is the demo key's other half.
    let private = std::fs::read(repo_root().join("examples/keys/demo-release-signing.pem"))
        .expect("demo private key exists");
    let key = SigningKey::from_pem(&private, "demo key").expect("demo private key reads");
    assert_eq!(
        sign_release(&release.spec, &key, DEMO_KEY_ID).expect("signs"),
        release.spec.signature.expect("example is signed"),
        "Ed25519 is deterministic: re-signing must reproduce the committed signature"
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the operator binary runs")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn cli_canonicalize_prints_exactly_the_signed_bytes() {
    let out = run(&["release", "canonicalize", "-f", s(&example_path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout,
        canonicalize(&release(), ReleaseFormat::V2).expect("canonical")
    );
}

#[test]
fn cli_sign_then_verify_and_exit_statuses() {
    let dir = TempDir::new("cli");
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let key_path = dir.write("k.pem", pem("PRIVATE KEY", pkcs8.as_ref()));
    let key = SigningKey::from_pem(&std::fs::read(&key_path).expect("read"), "k").expect("key");
    let pub_path = dir.write(
        "k.pub.pem",
        key.public_key("rm-2026").expect("pub").to_pem(),
    );
    let signed_path = dir.path("signed.yaml");

    let out = run(&[
        "release",
        "sign",
        "-f",
        s(&example_path()),
        "--key",
        s(&key_path),
        "--key-id",
        "rm-2026",
        "-o",
        s(&signed_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_text = std::fs::read_to_string(&signed_path).expect("signed file");
    let docs: Vec<ComponentRelease> =
        miracolix_operator::yaml::from_multi_doc(&signed_text).expect("signed parses");
    assert_eq!(docs[0].metadata.name.as_deref(), Some("miracolix-2026.1"));
    assert!(
        docs[0].spec.rollout.is_some(),
        "everything else is written back"
    );
    assert_eq!(
        docs[0].spec.signature.as_ref().map(|s| s.key_id.as_str()),
        Some("rm-2026")
    );

    let ok = run(&[
        "release",
        "verify",
        "-f",
        s(&signed_path),
        "--key",
        s(&pub_path),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("rm-2026"));

    // The key named on the command line under another id than the release's: UnknownKey.
    let other = run(&[
        "release",
        "verify",
        "-f",
        s(&signed_path),
        "--key",
        s(&pub_path),
        "--key-id",
        "x",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("UnknownKey"));

    // Tampered: exit 1 with the reason.
    let tampered = dir.write(
        "tampered.yaml",
        signed_text.replace("version: \"0.30.2\"", "version: \"0.30.3\""),
    );
    assert_ne!(
        std::fs::read_to_string(&tampered).expect("read"),
        signed_text
    );
    let bad = run(&[
        "release",
        "verify",
        "-f",
        s(&tampered),
        "--key",
        s(&pub_path),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BadSignature"));

    // Unsigned release: exit 1, Unsigned.
    let unsigned = dir.write(
        "unsigned.yaml",
        miracolix_operator::yaml::to_string(&{
            let mut r = docs[0].clone();
            r.spec.signature = None;
            r
        })
        .expect("yaml"),
    );
    let out = run(&[
        "release",
        "verify",
        "-f",
        s(&unsigned),
        "--key",
        s(&pub_path),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unsigned"));

    // Unreadable input is an error, not a verdict: exit 2.
    let missing = run(&[
        "release",
        "verify",
        "-f",
        s(&dir.path("nope.yaml")),
        "--key",
        s(&pub_path),
    ]);
    assert_eq!(missing.status.code(), Some(2));
}

/// `release sign`, `verify` and `canonicalize` admit the release as the API server would (the same
/// validator and CRDs): content no cluster admits is never certified, and is broken input (exit
/// 2) rather than a verdict.
#[test]
fn cli_refuses_releases_the_crd_refuses() {
    let dir = TempDir::new("refused");
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let key_path = dir.write("k.pem", pem("PRIVATE KEY", pkcs8.as_ref()));
    let key = SigningKey::from_pem(&std::fs::read(&key_path).expect("read"), "k").expect("key");
    let pub_path = dir.write("k.pub.pem", key.public_key("rm").expect("pub").to_pem());
    let assert_refused = |out: &Output, expect: &str, what: &str| {
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{what}: printed a result");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expect),
            "{what}: expected\n  {expect}\nin\n  {stderr}"
        );
    };

    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("examples/invalid")).expect("dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        if !text.contains("\nkind: ComponentRelease") {
            continue;
        }
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .expect("# expect: line")
            .trim()
            .to_string();
        let signed_path = dir.path("signed.yaml");
        let out = run(&[
            "release",
            "sign",
            "-f",
            s(&path),
            "--key",
            s(&key_path),
            "--key-id",
            "rm",
            "-o",
            s(&signed_path),
        ]);
        // A garbage signature in the input is replaced by signing; everything else is refused.
        if path.ends_with("release-garbage-signature.yaml") {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_file(&signed_path);
        } else {
            assert_refused(&out, &expect, &format!("sign {}", path.display()));
            assert!(
                !signed_path.exists(),
                "nothing written for {}",
                path.display()
            );
        }
        let out = run(&["release", "verify", "-f", s(&path), "--key", s(&pub_path)]);
        assert_refused(&out, &expect, &format!("verify {}", path.display()));
        let out = run(&["release", "canonicalize", "-f", s(&path)]);
        assert_refused(&out, &expect, &format!("canonicalize {}", path.display()));
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected the invalid release examples, found {checked}"
    );

    // The signature itself must be admissible: a key id longer than the CRD allows (the signer
    // refuses it before the signed release is admitted again).
    let long_id = "k".repeat(129);
    let out = run(&[
        "release",
        "sign",
        "-f",
        s(&example_path()),
        "--key",
        s(&key_path),
        "--key-id",
        &long_id,
    ]);
    assert_refused(
        &out,
        "use 1 to 128 characters",
        "sign with a 129-character key id",
    );

    // A misspelt field is refused with its path, not dropped from what is signed.
    let misspelt = dir.write(
        "misspelt.yaml",
        std::fs::read_to_string(example_path())
            .expect("example")
            .replace("  rollout:", "  rollot:"),
    );
    let out = run(&[
        "release",
        "sign",
        "-f",
        s(&misspelt),
        "--key",
        s(&key_path),
        "--key-id",
        "rm",
    ]);
    assert_refused(
        &out,
        "unknown field \"spec.rollot\"",
        "sign with a misspelt field",
    );
}

// ---------------------------------------------------------------------------------------------
// Interoperability with the openssl command line

fn openssl(dir: &TempDir, args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `openssl` ({e}): these interoperability tests need the openssl \
                 command line (Debian: apt-get install openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn an_openssl_ecdsa_signature_verifies_and_ours_verifies_with_openssl() {
    let dir = TempDir::new("openssl-ec");
    openssl(
        &dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "k.pem",
        ],
    );
    openssl(&dir, &["ec", "-in", "k.pem", "-pubout", "-out", "pub.pem"]);
    let canonical = canonicalize(&release(), ReleaseFormat::V2).expect("canonical");
    dir.write("canonical.txt", &canonical);
    openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "k.pem",
            "-out",
            "raw.der",
            "canonical.txt",
        ],
    );
    // openssl does not normalise S, so about half of its signatures are high-S, which the
    // operator refuses. `release normalize-signature` rewrites them; openssl accepts both forms.
    let raw = std::fs::read(dir.path("raw.der")).expect("openssl wrote a signature");
    let raw_b64 = dir.write("raw.b64", B64.encode(&raw));
    let out = run(&["release", "normalize-signature", "--signature", s(&raw_b64)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = B64
        .decode(String::from_utf8_lossy(&out.stdout).trim())
        .expect("normalised base64");
    dir.write("sig.der", &sig);
    openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "canonical.txt",
        ],
    );
    let sig_b64 = dir.write("sig.b64", B64.encode(&sig));

    // Library.
    let public = TrustedKey::from_pem(
        "openssl-ec",
        &std::fs::read(dir.path("pub.pem")).expect("pub"),
        "pub.pem",
    )
    .expect("openssl SPKI reads");
    assert_eq!(public.algorithm(), SignatureAlgorithm::EcdsaP256Sha256);
    let signature = ReleaseSignature {
        key_id: "openssl-ec".into(),
        algorithm: SignatureAlgorithm::EcdsaP256Sha256,
        format: Some(ReleaseFormat::V2),
        value: B64.encode(&sig),
    };
    assert_certified(
        &verify_signature(&release(), &signature, &store(&[&public])),
        "openssl-ec",
    );

    // CLI with a detached signature.
    let pub_pem = dir.path("pub.pem");
    let out = run(&[
        "release",
        "verify",
        "-f",
        s(&example_path()),
        "--key",
        s(&pub_pem),
        "--signature",
        s(&sig_b64),
        "--format",
        "v2",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // openssl's `base64` wraps at 64 columns; that must verify too.
    let wrapped = openssl(&dir, &["base64", "-in", "sig.der"]).stdout;
    let wrapped_path = dir.write("sig-wrapped.b64", wrapped);
    let out = run(&[
        "release",
        "verify",
        "-f",
        s(&example_path()),
        "--key",
        s(&pub_pem),
        "--signature",
        s(&wrapped_path),
        "--format",
        "v2",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Reverse: our CLI signs with openssl's SEC1 key, openssl verifies the result.
    let out = run(&[
        "release",
        "sign",
        "-f",
        s(&example_path()),
        "--key",
        s(&dir.path("k.pem")),
        "--key-id",
        "openssl-ec",
        "-o",
        s(&dir.path("signed.yaml")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_text = std::fs::read_to_string(dir.path("signed.yaml")).expect("signed");
    let docs: Vec<ComponentRelease> =
        miracolix_operator::yaml::from_multi_doc(&signed_text).expect("parses");
    let ours = docs[0].spec.signature.as_ref().expect("signed");
    assert_eq!(ours.algorithm, SignatureAlgorithm::EcdsaP256Sha256);
    dir.write("ours.der", B64.decode(&ours.value).expect("base64"));
    let out = openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "ours.der",
            "canonical.txt",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));

    // The same with a PKCS#8 key as `openssl genpkey` writes it.
    openssl(
        &dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k8.pem",
        ],
    );
    openssl(
        &dir,
        &["pkey", "-in", "k8.pem", "-pubout", "-out", "pub8.pem"],
    );
    let key = SigningKey::from_pem(&std::fs::read(dir.path("k8.pem")).expect("k8"), "k8.pem")
        .expect("PKCS#8 EC key reads");
    dir.write("ours8.der", key.sign(&canonical).expect("signs"));
    openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub8.pem",
            "-signature",
            "ours8.der",
            "canonical.txt",
        ],
    );
}

#[test]
fn an_openssl_ed25519_signature_verifies_and_ours_verifies_with_openssl() {
    let dir = TempDir::new("openssl-ed");
    openssl(&dir, &["genpkey", "-algorithm", "ed25519", "-out", "k.pem"]);
    openssl(
        &dir,
        &["pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem"],
    );
    // Through the CLI this time, as a release manager would.
    let out = run(&["release", "canonicalize", "-f", s(&example_path())]);
    assert!(out.status.success());
    dir.write("canonical.txt", &out.stdout);
    openssl(
        &dir,
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "k.pem",
            "-rawin",
            "-in",
            "canonical.txt",
            "-out",
            "sig.bin",
        ],
    );
    let sig = std::fs::read(dir.path("sig.bin")).expect("openssl wrote a signature");
    assert_eq!(sig.len(), 64);

    let public = TrustedKey::from_pem(
        "openssl-ed",
        &std::fs::read(dir.path("pub.pem")).expect("pub"),
        "pub.pem",
    )
    .expect("openssl SPKI reads");
    let signature = ReleaseSignature {
        key_id: "openssl-ed".into(),
        algorithm: SignatureAlgorithm::Ed25519,
        format: Some(ReleaseFormat::V2),
        value: B64.encode(&sig),
    };
    assert_certified(
        &verify_signature(&release(), &signature, &store(&[&public])),
        "openssl-ed",
    );
    let sig_b64 = dir.write("sig.b64", B64.encode(&sig));
    let out = run(&[
        "release",
        "verify",
        "-f",
        s(&example_path()),
        "--key",
        s(&dir.path("pub.pem")),
        "--key-id",
        "openssl-ed",
        "--signature",
        s(&sig_b64),
        "--format",
        "v2",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Reverse: `release sign` with openssl's key, verified by openssl.
    let out = run(&[
        "release",
        "sign",
        "-f",
        s(&example_path()),
        "--key",
        s(&dir.path("k.pem")),
        "--key-id",
        "openssl-ed",
        "--signature-only",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block: serde_json::Value =
        miracolix_operator::yaml::from_multi_doc(&String::from_utf8_lossy(&out.stdout))
            .expect("signature block parses")
            .remove(0);
    let value = block["signature"]["value"].as_str().expect("value");
    dir.write("ours.bin", B64.decode(value).expect("base64"));
    let out = openssl(
        &dir,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-in",
            "canonical.txt",
            "-sigfile",
            "ours.bin",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));
}

// ---------------------------------------------------------------------------------------------
// Attacks on signatures and keys

/// The order n of the P-256 group.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// (r, s) → (r, n - s): as valid as the original for plain ECDSA, but the other encoding.
fn mirror_s(der: &[u8]) -> Vec<u8> {
    // SEQUENCE { INTEGER r, INTEGER s }, all short-form lengths for P-256.
    let r_len = usize::from(der[3]);
    let r = &der[4..4 + r_len];
    let s_len = usize::from(der[5 + r_len]);
    let s = &der[6 + r_len..6 + r_len + s_len];
    let s = &s[s.iter().position(|b| *b != 0).unwrap_or(0)..];
    let mut padded = [0u8; 32];
    padded[32 - s.len()..].copy_from_slice(s);
    let mut m = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(padded[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        m[i] = d as u8;
    }
    let m = &m[m.iter().position(|b| *b != 0).unwrap_or(0)..];
    let int = |v: &[u8]| {
        let pad = v[0] & 0x80 != 0;
        let mut out = vec![0x02, (v.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(m)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// Attack: a valid ECDSA signature re-encoded as (r, n - s) still verifies mathematically; the
/// operator accepts only the low-S form, so one release has one valid signature per key.
#[test]
fn a_high_s_ecdsa_signature_is_refused() {
    let (key, public) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "ec");
    let trust = store(&[&public]);
    let good = signed(&release(), &key, "ec");
    assert_certified(&verify(&good, &trust), "ec");
    let low = B64
        .decode(&good.signature.as_ref().expect("signed").value)
        .expect("base64");
    let high = mirror_s(&low);
    assert_ne!(high, low);
    let attacked = with_value(&good, B64.encode(&high));
    let message = assert_reason(&verify(&attacked, &trust), Reason::MalformedSignature);
    assert!(message.contains("high-S"), "{message}");

    // The CLI turns it back into the accepted form.
    let dir = TempDir::new("high-s");
    let path = dir.write("high.b64", B64.encode(&high));
    let out = run(&["release", "normalize-signature", "--signature", s(&path)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        B64.encode(&low)
    );
}

/// k-of-n: with a threshold of 2, one key is not enough, and one key trusted under two ids
/// counts once.
#[test]
fn a_threshold_needs_that_many_distinct_trusted_keys() {
    let (a, a_pub) = keypair(SignatureAlgorithm::Ed25519, "a");
    let (b, b_pub) = keypair(SignatureAlgorithm::EcdsaP256Sha256, "b");
    let a_again = TrustedKey::from_pem("a-again", a_pub.to_pem().as_bytes(), "a").expect("a");
    let trust = store(&[&a_pub, &b_pub, &a_again]);

    let one = signed(&release(), &a, "a");
    let message = assert_reason(
        &verify_with_threshold(&one, &trust, 2),
        Reason::NotEnoughSignatures,
    );
    assert!(message.contains("1 of the 2"), "{message}");

    let mut same_key_twice = one.clone();
    same_key_twice
        .signatures
        .push(sign_release(&release(), &a, "a-again").expect("signs"));
    assert_reason(
        &verify_with_threshold(&same_key_twice, &trust, 2),
        Reason::NotEnoughSignatures,
    );

    let mut two = one.clone();
    two.signatures
        .push(sign_release(&release(), &b, "b").expect("signs"));
    // A further bad signature does not spoil two good ones.
    let mut junk = sign_release(&release(), &b, "b").expect("signs");
    junk.key_id = "unknown".into();
    two.signatures.push(junk);
    assert_eq!(
        verify_with_threshold(&two, &trust, 2),
        Verdict::Certified {
            key_ids: vec!["a".into(), "b".into()],
            format: ReleaseFormat::V2
        }
    );
}

/// The CLI half of the threshold test, with keys the CLI can read.
#[test]
fn cli_sign_add_collects_signatures_for_a_threshold() {
    let dir = TempDir::new("cli-k-of-n");
    let rng = SystemRandom::new();
    let trusted = dir.path("trusted");
    std::fs::create_dir(&trusted).expect("mkdir");
    let mut keys = Vec::new();
    for id in ["rm-a", "rm-b"] {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let path = dir.write(&format!("{id}.key"), pem("PRIVATE KEY", pkcs8.as_ref()));
        let key = SigningKey::from_pem(&std::fs::read(&path).expect("read"), id).expect("key");
        std::fs::write(
            trusted.join(format!("{id}.pem")),
            key.public_key(id).expect("pub").to_pem(),
        )
        .expect("write");
        keys.push((id, path));
    }
    let file = dir.path("release.yaml");
    std::fs::copy(example_path(), &file).expect("copy");
    for (id, key) in &keys {
        let out = run(&[
            "release",
            "sign",
            "-f",
            s(&file),
            "--key",
            s(key),
            "--key-id",
            id,
            "--add",
            "-o",
            s(&file),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let verify = |threshold: &str| {
        run(&[
            "release",
            "verify",
            "-f",
            s(&file),
            "--trust-dir",
            s(&trusted),
            "--threshold",
            threshold,
        ])
    };
    let two = verify("2");
    assert_eq!(
        two.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    assert!(String::from_utf8_lossy(&two.stdout).contains("rm-b"));
    let three = verify("3");
    assert_eq!(three.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&three.stderr).contains("NotEnoughSignatures"));
}

/// Attack: a signing key leaks and is removed from the trusted-keys directory. The next
/// release signed with it is refused by the running operator, without a restart; time is the
/// injected clock, so nothing sleeps.
#[test]
fn a_key_removed_from_the_trusted_keys_directory_is_refused_without_restart() {
    use miracolix_operator::clock::ManualClock;
    use miracolix_operator::controller::certification::Certifier;
    use miracolix_operator::release::TrustDir;

    let dir = TempDir::new("hot-reload");
    let (leaked, leaked_pub) = keypair(SignatureAlgorithm::Ed25519, "leaked");
    let (good, good_pub) = keypair(SignatureAlgorithm::Ed25519, "good");
    dir.write("leaked.pem", leaked_pub.to_pem());
    dir.write("good.pem", good_pub.to_pem());
    let clock = ManualClock::new("2026-03-01T00:00:00Z".parse().expect("time"));
    let trust = TrustDir::open(&dir.0, std::sync::Arc::new(clock.clone())).expect("opens");
    let before = signed(&release(), &leaked, "leaked");
    assert!(trust.verdict(&before).is_ok());

    std::fs::remove_file(dir.path("leaked.pem")).expect("remove");
    clock.advance(TrustDir::RELOAD_INTERVAL);
    let mut next = release();
    next.version = "2026.2".into();
    let next = signed(&next, &leaked, "leaked");
    let refused = trust.verdict(&next).expect_err("refused");
    assert_eq!(refused.reason, "UnknownKey");
    assert!(trust.verdict(&before).is_err(), "earlier releases too");
    assert!(trust.verdict(&signed(&release(), &good, "good")).is_ok());

    // A Secret edited into an unreadable state trusts nothing (fail closed), not the old keys.
    dir.write("broken.pem", "not a key");
    assert!(trust.reload().is_err());
    let verdict = trust
        .verdict(&signed(&release(), &good, "good"))
        .expect_err("nothing is trusted");
    assert_eq!(
        verdict.reason,
        miracolix_operator::api::reasons::TRUSTED_KEYS_UNAVAILABLE
    );
}

/// Revocations have their own encoding: a release signature cannot be replayed as one, and
/// `release revoke` writes a revocation the operator's keys certify.
#[test]
fn revocations_are_signed_in_their_own_domain() {
    let (key, public) = keypair(SignatureAlgorithm::Ed25519, "rm");
    let trust = store(&[&public]);
    let fp = sha256_hex(&canonicalize(&release(), ReleaseFormat::V2).expect("canonical"));
    let mut revocation = ReleaseRevocationSpec {
        fingerprints: vec![fp.clone()],
        reason: "CVE-2026-0001".into(),
        immediate: false,
        signature: None,
        signatures: Vec::new(),
    };
    revocation.signature = signed(&release(), &key, "rm").signature;
    assert_reason(
        &verify_revocation(&revocation, &trust, 1),
        Reason::BadSignature,
    );
    revocation.signature = Some(sign_revocation(&revocation, &key, "rm").expect("signs"));
    assert!(verify_revocation(&revocation, &trust, 1).is_certified());
    // Its content is signed too.
    revocation.immediate = true;
    assert_reason(
        &verify_revocation(&revocation, &trust, 1),
        Reason::BadSignature,
    );

    let dir = TempDir::new("revoke");
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let key_path = dir.write("k.pem", pem("PRIVATE KEY", pkcs8.as_ref()));
    let cli_key = SigningKey::from_pem(&std::fs::read(&key_path).expect("read"), "k").expect("k");
    let pub_path = dir.write("k.pub", cli_key.public_key("rm").expect("pub").to_pem());
    let out_path = dir.path("revocation.yaml");
    let out = run(&[
        "release",
        "revoke",
        "--name",
        "revoke-2026.1",
        "--fingerprint",
        &fp,
        "--reason",
        "CVE-2026-0001",
        "--immediate",
        "--key",
        s(&key_path),
        "--key-id",
        "rm",
        "-o",
        s(&out_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_path).expect("written");
    assert!(text.contains("kind: ReleaseRevocation"), "{text}");
    let ok = run(&[
        "release",
        "verify",
        "-f",
        s(&out_path),
        "--key",
        s(&pub_path),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// The Secret the docs tell people to create is the one the manifests and the chart mount.
#[test]
fn docs_and_manifests_agree_on_the_trusted_keys_secret() {
    let read = |p: &str| std::fs::read_to_string(repo_root().join(p)).expect(p);
    let deployment = read("manifests/base/deployment.yaml");
    let mounted = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("secretName: "))
        .expect("manifests mount a Secret")
        .trim()
        .to_string();
    assert!(
        read("charts/miracolix-operator/templates/_helpers.tpl")
            .contains(&format!("default \"{mounted}\"")),
        "the chart's default trusted-keys Secret is not {mounted}"
    );
    for doc in [
        "docs/release-signing.md",
        "docs/install.md",
        "manifests/kustomization.yaml",
    ] {
        for line in read(doc)
            .lines()
            .filter(|l| l.contains("create secret generic"))
        {
            let name = line
                .split("create secret generic")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_default();
            if name.contains("trusted") {
                assert_eq!(name, mounted, "{doc}: {line}");
            }
        }
    }
}

/// docs/security.md maps every defence to its test: each `file.rs::function` it names exists
/// (a bare file name is looked up under operator/ and e2e/), and so does each (row "…") of a
/// table test the release section cites.
#[test]
fn security_md_names_only_tests_that_exist() {
    let doc = std::fs::read_to_string(repo_root().join("docs/security.md")).expect("security.md");
    let find = |file: &str| -> Option<PathBuf> {
        let direct = repo_root().join(file);
        if direct.is_file() {
            return Some(direct);
        }
        let mut stack = vec![repo_root().join("operator"), repo_root().join("e2e")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).ok()?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.ends_with(file) {
                    return Some(path);
                }
            }
        }
        None
    };
    let mut checked = 0;
    for cell in doc.split('`').skip(1).step_by(2) {
        let Some((file, function)) = cell.split_once("::") else {
            continue;
        };
        if !file.ends_with(".rs") {
            continue;
        }
        let path = find(file).unwrap_or_else(|| panic!("docs/security.md names {file}"));
        let source = std::fs::read_to_string(&path).expect("readable");
        assert!(
            source.contains(&format!("fn {function}(")),
            "docs/security.md names {file}::{function}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} tests named");
    let releases = doc
        .split("## Releases: signing, identity, rollout and status")
        .nth(1)
        .expect("the release section");
    let plan_tests =
        std::fs::read_to_string(repo_root().join("operator/src/release/plan/tests.rs"))
            .expect("plan tests");
    let elsewhere = std::fs::read_to_string(repo_root().join("operator/tests/release_signing.rs"))
        .expect("this file");
    for row in releases
        .split("(row \"")
        .skip(1)
        .chain(releases.split("(rows \"").skip(1))
    {
        let name = row.split('"').next().unwrap_or_default();
        assert!(
            plan_tests.contains(name) || elsewhere.contains(&format!("(\"{name}\"")),
            "docs/security.md cites the row {name:?}, which no table has"
        );
    }
}
