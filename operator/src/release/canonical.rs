//! The canonical encodings: exactly the bytes a signature covers.
//!
//! # Format `miracolix-release-v1`
//!
//! UTF-8 text (in practice ASCII), one `name=value` line per certified field, each line ended by
//! a single `\n` (also the last one), no blank lines, no trailing whitespace, no BOM:
//!
//! ```text
//! miracolix-release-v1
//! release.version=2026.1
//! release.channel=stable
//! component.blaze.repository=ghcr.io/samply/blaze
//! component.blaze.digest=sha256:99edc58b00c2b3ade9478d9b9aabfed163751a024d07853ce202891b5a4ae463
//! component.blaze.version=0.30.2
//! component.vfps.repository=ghcr.io/miracum/vfps
//! component.vfps.digest=sha256:175e422718c7a6a4d8a0137f8c9a49648f97c8f8f105888a497a19c664c3af80
//! component.vfps.version=1.3.6
//! ```
//!
//! * The first line is the format tag. It versions the format and separates the domain: a
//!   signature over these bytes can never be mistaken for a signature over some other blob the
//!   same key signed (a v2 encoding, a revocation), and formats cannot collide.
//! * `release.version`, then `release.channel`, then for every component, in ascending byte
//!   order of its key, `repository`, `digest`, `version` in that order.
//! * v1 covers nothing else: not `rollout`, not `compatibility`. A release certified in v1 has
//!   those fields ignored by the operator (they could have been edited by anyone).
//!
//! # Format `miracolix-release-v2`
//!
//! v1's lines under the tag `miracolix-release-v2`, plus everything that steers the rollout, so
//! that nobody without a signing key can drop a pilot wave, shorten the progress deadline or
//! let sites skip a required migration:
//!
//! ```text
//! miracolix-release-v2
//! release.version=2026.2
//! release.channel=stable
//! release.notAfter=2027-01-01T00:00:00Z                 (only when set)
//! component.<key>.repository=…                          (as in v1)
//! component.<key>.digest=…
//! component.<key>.version=…
//! compatibility.upgradeFrom=2026.1                      (one line per entry, in written order)
//! rollout.progressDeadline=45m                          (only when rollout is set)
//! rollout.wave.0.name=pilot                             (per wave, in written order)
//! rollout.wave.0.site=erlangen                          (one line per site, in written order)
//! rollout.wave.0.siteSelector=matchLabels               (only when the wave has a selector)
//! rollout.wave.0.matchLabel=diz.miracum.org/tier=early  (per label, ascending key order)
//! rollout.wave.0.notBefore=2026-02-02T06:00:00Z         (only when set)
//! ```
//!
//! ```text
//! definition.xnat.contract.uid=1000                     (per defined component, see below)
//! privacy.maxEpsilon=0.5                                (each privacy line only when set)
//! privacy.minRoundTo=10
//! privacy.minSuppressBelow=5
//! privacy.maxRequestsPerHour=999
//! privacy.maxDailyEpsilonBudget=50
//! ```
//!
//! Waves are numbered from 0 in the order written, which is the order they roll out in. A
//! label key may contain neither `=` nor anything outside printable ASCII, so a `matchLabel`
//! line splits at its second `=` unambiguously. `compatibility.notes` is free text for people
//! and stays unsigned, so it may be corrected without re-signing.
//!
//! **Defined components** (`componentDefinitions`) come last, ascending by name: one line per
//! value of the definition's JSON form (as the API types serialise it, defaults filled in),
//! named by its path: `definition.<name>.<field>[.<field or index>...]=<value>`, object fields in
//! ascending byte order, list items numbered from 0 in written order (`settings.0.name`), numbers
//! and booleans as JSON writes them. Every field of a definition is signed: what the component
//! runs, as whom, with which settings, volumes, network edges and exposure. A release without
//! definitions encodes exactly as before they existed, so existing v2 signatures stay valid; a
//! release with definitions cannot be encoded in v1 (its v1 signature never certifies it).
//!
//! # Format `miracolix-revocation-v1`
//!
//! ```text
//! miracolix-revocation-v1
//! revocation.fingerprint=<64 hex>                       (one line per fingerprint, ascending)
//! revocation.immediate=true|false
//! revocation.reason=<text>
//! ```
//!
//! # Why this shape, and why it is unambiguous
//!
//! A line format rather than canonical JSON: a release manager can read exactly what they sign
//! with `cat`, two releases compare with `diff` line by line (a changed digest is one line that
//! names its component), and `openssl`/`cosign` can sign the file without any JSON canonicaliser.
//!
//! No field can bleed into another, because
//! * every value is printable ASCII (`0x20`–`0x7E`): no newline, carriage return, tab, other
//!   control character or non-ASCII look-alike can hide a line break or make two different
//!   strings look the same, and there is no Unicode normalisation to agree on;
//! * values have no leading or trailing space, so nobody's editor or YAML tooling can change the
//!   signed bytes by trimming;
//! * a component key is a DNS label (`[a-z0-9]`, inner `-`, at most 63): it contains neither `.`
//!   nor `=`, so `component.<key>.<field>` splits at the first `=` and the dots around the key
//!   are unambiguous; values may contain `=` because only the first one separates;
//! * the field order is fixed and the component keys are unique and sorted, so the same content
//!   has exactly one encoding, whatever order the YAML map was written in.
//!
//! Digests are additionally required to be `sha256:` plus 64 lowercase hex characters: a
//! certificate for an uppercase or truncated digest would never match what a registry reports.
//! Content that breaks any rule is refused with [`CanonicalError`] instead of being encoded
//! lossily.

use crate::api::{ComponentReleaseSpec, ReleaseFormat, ReleaseRevocationSpec};

/// First line of the v1 encoding (kept for callers that only know v1).
pub const FORMAT_TAG: &str = "miracolix-release-v1";

/// First line of the revocation encoding.
pub const REVOCATION_TAG: &str = "miracolix-revocation-v1";

/// The format `release sign` writes.
pub const CURRENT_FORMAT: ReleaseFormat = ReleaseFormat::V2;

const DIGEST_PREFIX: &str = "sha256:";

/// Why a release cannot be put into canonical form (and so can be neither signed nor certified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("the release has no components: there is nothing to certify")]
    NoComponents,
    #[error("{field} is empty")]
    Empty { field: String },
    #[error(
        "{field} contains {found}; certified values must be printable ASCII (no newlines, tabs, \
         control or non-ASCII characters) so that the signed text is unambiguous"
    )]
    ForbiddenCharacter { field: String, found: String },
    #[error("{field} has leading or trailing spaces; remove them before signing")]
    SurroundingSpace { field: String },
    #[error(
        "component key {key:?} is not a DNS label (lowercase letters, digits and inner '-', at \
         most 63 characters)"
    )]
    InvalidComponentKey { key: String },
    #[error(
        "{field} is {value:?}; a certified digest must be 'sha256:' followed by 64 lowercase hex \
         characters"
    )]
    InvalidDigest { field: String, value: String },
    #[error("{field} is {value:?}; a label key must not contain '='")]
    InvalidLabelKey { field: String, value: String },
    #[error("{field} is {value:?}; a release fingerprint is 64 lowercase hex characters")]
    InvalidFingerprint { field: String, value: String },
    #[error("the revocation names no fingerprint")]
    NoFingerprints,
    #[error(
        "the release defines components (spec.componentDefinitions), which format {format} does \
         not cover; sign it in miracolix-release-v2"
    )]
    DefinitionsNeedV2 { format: ReleaseFormat },
    #[error("{field}: {detail}")]
    Unencodable { field: String, detail: String },
}

/// Encodes the certified content of a release in `format`.
pub fn canonicalize(
    spec: &ComponentReleaseSpec,
    format: ReleaseFormat,
) -> Result<Vec<u8>, CanonicalError> {
    canonical_string(spec, format).map(String::into_bytes)
}

/// The canonical form as text (it is ASCII by construction), for people and logs.
pub fn canonical_string(
    spec: &ComponentReleaseSpec,
    format: ReleaseFormat,
) -> Result<String, CanonicalError> {
    if spec.components.is_empty() {
        return Err(CanonicalError::NoComponents);
    }
    let mut out = String::with_capacity(256 + spec.components.len() * 192);
    out.push_str(format.tag());
    out.push('\n');
    field(&mut out, "release.version", &spec.version)?;
    field(&mut out, "release.channel", spec.channel.as_str())?;
    if format == ReleaseFormat::V2
        && let Some(not_after) = &spec.not_after
    {
        field(&mut out, "release.notAfter", not_after)?;
    }
    // BTreeMap iterates in ascending byte order of the key, which is the documented order.
    for (key, image) in &spec.components {
        check_component_key(key)?;
        field(
            &mut out,
            &format!("component.{key}.repository"),
            &image.repository,
        )?;
        let digest_field = format!("component.{key}.digest");
        check_digest(&digest_field, &image.digest)?;
        field(&mut out, &digest_field, &image.digest)?;
        field(
            &mut out,
            &format!("component.{key}.version"),
            &image.version,
        )?;
    }
    if format == ReleaseFormat::V2 {
        rollout_fields(&mut out, spec)?;
        definition_fields(&mut out, spec)?;
        privacy_fields(&mut out, spec)?;
    } else if !spec.component_definitions.is_empty() {
        // Unsigned definitions would run unsigned code paths: a v1 signature cannot certify them.
        return Err(CanonicalError::DefinitionsNeedV2 { format });
    }
    Ok(out)
}

/// The v2 lines of `componentDefinitions`, after the rollout: for each definition in ascending order of its
/// name, one `definition.<name>.<path>=<value>` line per value of its JSON form (see the module
/// docs). A release without definitions encodes exactly as before they existed.
fn definition_fields(out: &mut String, spec: &ComponentReleaseSpec) -> Result<(), CanonicalError> {
    let mut defs: Vec<_> = spec.component_definitions.iter().collect();
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, def) in defs.iter().enumerate() {
        check_component_key(&def.name)?;
        if defs.get(i + 1).is_some_and(|next| next.name == def.name) {
            return Err(CanonicalError::Unencodable {
                field: format!("definition.{}", def.name),
                detail: "two definitions share the name".to_string(),
            });
        }
        let prefix = format!("definition.{}", def.name);
        let value = serde_json::to_value(def).map_err(|e| CanonicalError::Unencodable {
            field: prefix.clone(),
            detail: e.to_string(),
        })?;
        leaves(out, &prefix, &value)?;
    }
    Ok(())
}

/// The v2 lines of the privacy floor, last (after the definitions), each only when set. Numbers as Rust prints them: the
/// shortest decimal that reads back as the same value (`0.5`, `0.25`, `50`, `10`).
fn privacy_fields(out: &mut String, spec: &ComponentReleaseSpec) -> Result<(), CanonicalError> {
    let Some(floor) = &spec.privacy_floor else {
        return Ok(());
    };
    if let Some(v) = floor.max_epsilon {
        field(out, "privacy.maxEpsilon", &v.to_string())?;
    }
    if let Some(v) = floor.min_round_to {
        field(out, "privacy.minRoundTo", &v.to_string())?;
    }
    if let Some(v) = floor.min_suppress_below {
        field(out, "privacy.minSuppressBelow", &v.to_string())?;
    }
    if let Some(v) = floor.max_requests_per_hour {
        field(out, "privacy.maxRequestsPerHour", &v.to_string())?;
    }
    if let Some(v) = floor.max_daily_epsilon_budget {
        field(out, "privacy.maxDailyEpsilonBudget", &v.to_string())?;
    }
    Ok(())
}

/// One line per string, number or boolean below `value`: object keys in ascending byte order,
/// array items in written order by index. Absent fields and empty lists write nothing; the
/// types are fixed by the API, so a path never holds a string in one release and a number in
/// another.
fn leaves(out: &mut String, path: &str, value: &serde_json::Value) -> Result<(), CanonicalError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(()),
        Value::Bool(b) => field(out, path, if *b { "true" } else { "false" }),
        Value::Number(n) => field(out, path, &n.to_string()),
        Value::String(s) => field(out, path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaves(out, &format!("{path}.{i}"), item)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                // API field names: letters and digits only, never a number (which would read
                // as an array index), so the path splits unambiguously at its dots.
                let plain = key.chars().all(|c| c.is_ascii_alphanumeric())
                    && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
                if !plain {
                    return Err(CanonicalError::Unencodable {
                        field: path.to_string(),
                        detail: format!("the key {key:?} is not an API field name"),
                    });
                }
                if let Some(v) = map.get(key) {
                    leaves(out, &format!("{path}.{key}"), v)?;
                }
            }
            Ok(())
        }
    }
}

/// The v2 lines after the components: `compatibility.upgradeFrom`, then `rollout`.
fn rollout_fields(out: &mut String, spec: &ComponentReleaseSpec) -> Result<(), CanonicalError> {
    for from in spec.compatibility.iter().flat_map(|c| &c.upgrade_from) {
        field(out, "compatibility.upgradeFrom", from)?;
    }
    let Some(rollout) = &spec.rollout else {
        return Ok(());
    };
    field(out, "rollout.progressDeadline", &rollout.progress_deadline)?;
    for (i, wave) in rollout.waves.iter().enumerate() {
        field(out, &format!("rollout.wave.{i}.name"), &wave.name)?;
        for site in &wave.sites {
            field(out, &format!("rollout.wave.{i}.site"), site)?;
        }
        if let Some(selector) = &wave.site_selector {
            // The presence line keeps an empty selector (which selects every site) apart from
            // no selector at all.
            field(
                out,
                &format!("rollout.wave.{i}.siteSelector"),
                "matchLabels",
            )?;
            let name = format!("rollout.wave.{i}.matchLabel");
            // BTreeMap: ascending key order.
            for (key, value) in &selector.match_labels {
                if key.is_empty() || key.contains('=') {
                    return Err(CanonicalError::InvalidLabelKey {
                        field: name,
                        value: key.clone(),
                    });
                }
                field(out, &name, &format!("{key}={value}"))?;
            }
        }
        if let Some(not_before) = &wave.not_before {
            field(out, &format!("rollout.wave.{i}.notBefore"), not_before)?;
        }
    }
    Ok(())
}

/// Encodes a revocation in the `miracolix-revocation-v1` format.
pub fn canonicalize_revocation(spec: &ReleaseRevocationSpec) -> Result<Vec<u8>, CanonicalError> {
    canonical_revocation_string(spec).map(String::into_bytes)
}

/// The revocation's canonical form as text.
pub fn canonical_revocation_string(spec: &ReleaseRevocationSpec) -> Result<String, CanonicalError> {
    if spec.fingerprints.is_empty() {
        return Err(CanonicalError::NoFingerprints);
    }
    let mut fingerprints: Vec<&String> = spec.fingerprints.iter().collect();
    fingerprints.sort();
    let mut out = String::with_capacity(128 + fingerprints.len() * 90);
    out.push_str(REVOCATION_TAG);
    out.push('\n');
    for fp in fingerprints {
        check_fingerprint("revocation.fingerprint", fp)?;
        field(&mut out, "revocation.fingerprint", fp)?;
    }
    field(
        &mut out,
        "revocation.immediate",
        if spec.immediate { "true" } else { "false" },
    )?;
    field(&mut out, "revocation.reason", &spec.reason)?;
    Ok(out)
}

/// SHA-256 (lowercase hex) of canonical bytes: a release's fingerprint.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `value` is spelled like a fingerprint (64 lowercase hex characters).
pub fn is_fingerprint(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_fingerprint(field: &str, value: &str) -> Result<(), CanonicalError> {
    if is_fingerprint(value) {
        Ok(())
    } else {
        Err(CanonicalError::InvalidFingerprint {
            field: field.to_string(),
            value: value.to_string(),
        })
    }
}

fn field(out: &mut String, name: &str, value: &str) -> Result<(), CanonicalError> {
    check_value(name, value)?;
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push('\n');
    Ok(())
}

fn check_value(field: &str, value: &str) -> Result<(), CanonicalError> {
    if value.is_empty() {
        return Err(CanonicalError::Empty {
            field: field.to_string(),
        });
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(CanonicalError::ForbiddenCharacter {
            field: field.to_string(),
            found: describe_char(c),
        });
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(CanonicalError::SurroundingSpace {
            field: field.to_string(),
        });
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        '\n' => "a newline".to_string(),
        '\r' => "a carriage return".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("the non-ASCII character {c:?} (U+{:04X})", u32::from(c)),
    }
}

fn check_component_key(key: &str) -> Result<(), CanonicalError> {
    let bytes = key.as_bytes();
    let label_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| label_char(b) || *b == b'-')
        && bytes.first().is_some_and(label_char)
        && bytes.last().is_some_and(label_char);
    if valid {
        Ok(())
    } else {
        Err(CanonicalError::InvalidComponentKey {
            key: key.to_string(),
        })
    }
}

fn check_digest(field: &str, digest: &str) -> Result<(), CanonicalError> {
    let valid = digest.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if valid {
        Ok(())
    } else {
        Err(CanonicalError::InvalidDigest {
            field: field.to_string(),
            value: digest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{Channel, Compatibility, ComponentImage, Rollout, SiteSelector, Wave};

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn spec() -> ComponentReleaseSpec {
        let mut components = BTreeMap::new();
        components.insert(
            "vfps".to_string(),
            ComponentImage {
                repository: "ghcr.io/miracum/vfps".into(),
                digest: digest('b'),
                version: "1.3.6".into(),
            },
        );
        components.insert(
            "blaze".to_string(),
            ComponentImage {
                repository: "ghcr.io/samply/blaze".into(),
                digest: digest('a'),
                version: "0.30.2".into(),
            },
        );
        ComponentReleaseSpec {
            version: "2026.1".into(),
            channel: Channel::Stable,
            components,
            component_definitions: Vec::new(),
            not_after: None,
            compatibility: None,
            rollout: None,
            privacy_floor: None,
            signature: None,
            signatures: Vec::new(),
        }
    }

    #[test]
    fn encodes_the_documented_format() {
        let expected = format!(
            "miracolix-release-v1\n\
             release.version=2026.1\n\
             release.channel=stable\n\
             component.blaze.repository=ghcr.io/samply/blaze\n\
             component.blaze.digest={}\n\
             component.blaze.version=0.30.2\n\
             component.vfps.repository=ghcr.io/miracum/vfps\n\
             component.vfps.digest={}\n\
             component.vfps.version=1.3.6\n",
            digest('a'),
            digest('b')
        );
        assert_eq!(canonical_string(&spec(), ReleaseFormat::V1), Ok(expected));
    }

    #[test]
    fn refuses_values_that_could_bleed_into_another_line() {
        for bad in [
            "1.0\ncomponent.x.digest=y",
            "1.0\r",
            "1.0\t",
            "1.0\u{7f}",
            "1.0\u{85}",
        ] {
            let mut s = spec();
            s.version = bad.into();
            assert!(
                matches!(
                    canonicalize(&s, ReleaseFormat::V2),
                    Err(CanonicalError::ForbiddenCharacter { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_non_ascii_empty_and_padded_values() {
        let mut s = spec();
        s.components.get_mut("blaze").expect("blaze").version = "0.30.２".into();
        assert!(matches!(
            canonicalize(&s, ReleaseFormat::V2),
            Err(CanonicalError::ForbiddenCharacter { .. })
        ));
        let mut s = spec();
        s.version = String::new();
        assert!(matches!(
            canonicalize(&s, ReleaseFormat::V2),
            Err(CanonicalError::Empty { .. })
        ));
        let mut s = spec();
        s.version = "2026.1 ".into();
        assert!(matches!(
            canonicalize(&s, ReleaseFormat::V2),
            Err(CanonicalError::SurroundingSpace { .. })
        ));
    }

    #[test]
    fn refuses_keys_that_would_make_field_names_ambiguous() {
        for key in ["a.b", "a=b", "Blaze", "-x", "x-", "", &"x".repeat(64)] {
            let mut s = spec();
            let image = s.components.get("blaze").cloned().expect("blaze");
            s.components.insert(key.to_string(), image);
            assert!(
                matches!(
                    canonicalize(&s, ReleaseFormat::V2),
                    Err(CanonicalError::InvalidComponentKey { .. })
                ),
                "{key:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_digests_that_cannot_match_a_registry() {
        for bad in [
            "sha256:ABC".to_string(),
            digest('A'),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            "latest".to_string(),
        ] {
            let mut s = spec();
            s.components.get_mut("vfps").expect("vfps").digest = bad.clone();
            assert!(
                matches!(
                    canonicalize(&s, ReleaseFormat::V2),
                    Err(CanonicalError::InvalidDigest { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_an_empty_release() {
        let mut s = spec();
        s.components.clear();
        assert_eq!(
            canonicalize(&s, ReleaseFormat::V2),
            Err(CanonicalError::NoComponents)
        );
    }

    fn v2_spec() -> ComponentReleaseSpec {
        let mut s = spec();
        s.not_after = Some("2027-01-01T00:00:00Z".into());
        s.compatibility = Some(Compatibility {
            upgrade_from: vec!["2025.4".into(), "2025.3".into()],
            notes: Some("free text, not signed".into()),
        });
        s.rollout = Some(Rollout {
            progress_deadline: "45m".into(),
            waves: vec![
                Wave {
                    name: "pilot".into(),
                    sites: vec!["erlangen".into(), "mainz".into()],
                    site_selector: None,
                    not_before: Some("2026-02-02T06:00:00Z".into()),
                },
                Wave {
                    name: "rest".into(),
                    sites: vec![],
                    site_selector: Some(SiteSelector {
                        match_labels: [
                            ("z".to_string(), String::new()),
                            ("diz.miracum.org/tier".to_string(), "late".to_string()),
                        ]
                        .into(),
                    }),
                    not_before: None,
                },
            ],
        });
        s
    }

    #[test]
    fn v2_signs_the_privacy_floor_and_v1_ignores_it() {
        let without = canonical_string(&spec(), ReleaseFormat::V2).expect("encodes");
        let mut s = spec();
        s.privacy_floor = Some(crate::api::PrivacyFloor {
            max_epsilon: Some(0.25),
            min_round_to: None,
            min_suppress_below: Some(10),
            max_requests_per_hour: Some(100),
            max_daily_epsilon_budget: Some(20.0),
        });
        let with = canonical_string(&s, ReleaseFormat::V2).expect("encodes");
        assert_eq!(
            with,
            format!(
                "{without}privacy.maxEpsilon=0.25\nprivacy.minSuppressBelow=10\n\
                 privacy.maxRequestsPerHour=100\nprivacy.maxDailyEpsilonBudget=20\n"
            )
        );
        // Loosening or dropping the floor changes the signed bytes.
        let mut looser = s.clone();
        if let Some(f) = looser.privacy_floor.as_mut() {
            f.max_epsilon = Some(0.5);
        }
        assert_ne!(
            canonical_string(&looser, ReleaseFormat::V2).expect("encodes"),
            with
        );
        assert_eq!(
            canonical_string(&s, ReleaseFormat::V1).expect("encodes"),
            canonical_string(&spec(), ReleaseFormat::V1).expect("encodes")
        );
    }

    #[test]
    fn v2_signs_what_steers_the_rollout() {
        let expected = format!(
            "miracolix-release-v2\n\
             release.version=2026.1\n\
             release.channel=stable\n\
             release.notAfter=2027-01-01T00:00:00Z\n\
             component.blaze.repository=ghcr.io/samply/blaze\n\
             component.blaze.digest={}\n\
             component.blaze.version=0.30.2\n\
             component.vfps.repository=ghcr.io/miracum/vfps\n\
             component.vfps.digest={}\n\
             component.vfps.version=1.3.6\n\
             compatibility.upgradeFrom=2025.4\n\
             compatibility.upgradeFrom=2025.3\n\
             rollout.progressDeadline=45m\n\
             rollout.wave.0.name=pilot\n\
             rollout.wave.0.site=erlangen\n\
             rollout.wave.0.site=mainz\n\
             rollout.wave.0.notBefore=2026-02-02T06:00:00Z\n\
             rollout.wave.1.name=rest\n\
             rollout.wave.1.siteSelector=matchLabels\n\
             rollout.wave.1.matchLabel=diz.miracum.org/tier=late\n\
             rollout.wave.1.matchLabel=z=\n",
            digest('a'),
            digest('b')
        );
        assert_eq!(
            canonical_string(&v2_spec(), ReleaseFormat::V2),
            Ok(expected)
        );
        // v1 of the same release: the rollout lines are simply not there (old releases verify
        // as they were signed).
        assert_eq!(
            canonical_string(&v2_spec(), ReleaseFormat::V1),
            canonical_string(&spec(), ReleaseFormat::V1)
        );
        // Notes are for people and stay unsigned.
        let mut s = v2_spec();
        if let Some(c) = s.compatibility.as_mut() {
            c.notes = None;
        }
        assert_eq!(
            canonicalize(&s, ReleaseFormat::V2),
            canonicalize(&v2_spec(), ReleaseFormat::V2)
        );
    }

    #[test]
    fn definitions_are_encoded_last_field_by_field_and_never_in_v1() {
        let def: crate::api::ComponentDefinition = serde_json::from_value(serde_json::json!({
            "name": "tool", "description": "a tool", "role": "tool",
            "ports": [{"name": "http", "port": 8080}],
            "health": {"readinessPath": "/health"},
            "settings": [{"name": "B", "value": "x=y"}, {"name": "A", "database": "password"}],
            "resources": {
                "small": {"cpu": "1", "cpuLimit": "1", "memory": "1Gi"},
                "medium": {"cpu": "1", "cpuLimit": "1", "memory": "1Gi"},
                "large": {"cpu": "1", "cpuLimit": "1", "memory": "1Gi"},
            },
            "contract": {"source": "example/tool@v1", "uid": 1000, "gid": 0},
        }))
        .expect("definition");
        let mut with = spec();
        with.component_definitions.push(def);
        let text = canonical_string(&with, ReleaseFormat::V2).expect("encodes");
        let without = canonical_string(&spec(), ReleaseFormat::V2).expect("encodes");
        // Appended after everything else: a release without definitions encodes as before.
        let added = text.strip_prefix(&without).expect("a suffix");
        assert_eq!(
            added,
            "definition.tool.contract.gid=0\n\
             definition.tool.contract.source=example/tool@v1\n\
             definition.tool.contract.uid=1000\n\
             definition.tool.description=a tool\n\
             definition.tool.health.readinessPath=/health\n\
             definition.tool.health.startupSeconds=300\n\
             definition.tool.name=tool\n\
             definition.tool.ports.0.name=http\n\
             definition.tool.ports.0.port=8080\n\
             definition.tool.resources.large.cpu=1\n\
             definition.tool.resources.large.cpuLimit=1\n\
             definition.tool.resources.large.memory=1Gi\n\
             definition.tool.resources.medium.cpu=1\n\
             definition.tool.resources.medium.cpuLimit=1\n\
             definition.tool.resources.medium.memory=1Gi\n\
             definition.tool.resources.small.cpu=1\n\
             definition.tool.resources.small.cpuLimit=1\n\
             definition.tool.resources.small.memory=1Gi\n\
             definition.tool.role=tool\n\
             definition.tool.settings.0.name=B\n\
             definition.tool.settings.0.value=x=y\n\
             definition.tool.settings.1.database=password\n\
             definition.tool.settings.1.name=A\n"
        );
        // The written order of list items is signed: reordering settings is another release.
        let mut reordered = with.clone();
        reordered.component_definitions[0].settings.reverse();
        assert_ne!(
            canonicalize(&reordered, ReleaseFormat::V2),
            canonicalize(&with, ReleaseFormat::V2)
        );
        assert_eq!(
            canonical_string(&with, ReleaseFormat::V1),
            Err(CanonicalError::DefinitionsNeedV2 {
                format: ReleaseFormat::V1
            })
        );
        // Values obey the same rules as every other signed value.
        let mut newline = with.clone();
        newline.component_definitions[0].description = "a\ntool".into();
        assert!(matches!(
            canonicalize(&newline, ReleaseFormat::V2),
            Err(CanonicalError::ForbiddenCharacter { .. })
        ));
    }

    #[test]
    fn v2_tells_an_empty_selector_from_none_and_refuses_ambiguous_label_keys() {
        let mut empty = spec();
        empty.rollout = Some(Rollout {
            progress_deadline: "30m".into(),
            waves: vec![Wave {
                name: "all".into(),
                sites: vec!["x".into()],
                site_selector: Some(SiteSelector::default()),
                not_before: None,
            }],
        });
        let mut none = empty.clone();
        if let Some(r) = none.rollout.as_mut() {
            r.waves[0].site_selector = None;
        }
        assert_ne!(
            canonicalize(&empty, ReleaseFormat::V2),
            canonicalize(&none, ReleaseFormat::V2)
        );
        let mut bad = empty.clone();
        if let Some(r) = bad.rollout.as_mut() {
            r.waves[0].site_selector = Some(SiteSelector {
                match_labels: [("a=b".to_string(), "c".to_string())].into(),
            });
        }
        assert!(matches!(
            canonicalize(&bad, ReleaseFormat::V2),
            Err(CanonicalError::InvalidLabelKey { .. })
        ));
    }

    #[test]
    fn revocations_have_their_own_domain_and_sorted_fingerprints() {
        let spec = ReleaseRevocationSpec {
            fingerprints: vec!["b".repeat(64), "a".repeat(64)],
            reason: "CVE-2026-0001 in blaze".into(),
            immediate: true,
            signature: None,
            signatures: Vec::new(),
        };
        assert_eq!(
            canonical_revocation_string(&spec),
            Ok(format!(
                "miracolix-revocation-v1\n\
                 revocation.fingerprint={}\n\
                 revocation.fingerprint={}\n\
                 revocation.immediate=true\n\
                 revocation.reason=CVE-2026-0001 in blaze\n",
                "a".repeat(64),
                "b".repeat(64)
            ))
        );
        let mut bad = spec.clone();
        bad.fingerprints = vec!["A".repeat(64)];
        assert!(matches!(
            canonicalize_revocation(&bad),
            Err(CanonicalError::InvalidFingerprint { .. })
        ));
    }
}
