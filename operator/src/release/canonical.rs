//! The canonical encoding of a release: exactly the bytes a release signature covers.
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
//!   same key signed, and a future format change cannot collide with this one.
//! * `release.version`, then `release.channel`, then for every component, in ascending byte
//!   order of its key, `repository`, `digest`, `version` in that order.
//! * Nothing else is covered: not `metadata` (names and labels are the cluster's business), not
//!   `compatibility` or `rollout` (operational scheduling that the consortium adjusts without
//!   re-certifying images), and not the signature itself.
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

use crate::api::ComponentReleaseSpec;

/// First line of every canonical encoding.
pub const FORMAT_TAG: &str = "miracolix-release-v1";

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
}

/// Encodes the certified content of a release in the `miracolix-release-v1` format.
pub fn canonicalize(spec: &ComponentReleaseSpec) -> Result<Vec<u8>, CanonicalError> {
    canonical_string(spec).map(String::into_bytes)
}

/// The canonical form as text (it is ASCII by construction), for people and logs.
pub fn canonical_string(spec: &ComponentReleaseSpec) -> Result<String, CanonicalError> {
    if spec.components.is_empty() {
        return Err(CanonicalError::NoComponents);
    }
    let mut out = String::with_capacity(128 + spec.components.len() * 192);
    out.push_str(FORMAT_TAG);
    out.push('\n');
    field(&mut out, "release.version", &spec.version)?;
    field(&mut out, "release.channel", spec.channel.as_str())?;
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
    Ok(out)
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
    use crate::api::{Channel, ComponentImage};

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
            compatibility: None,
            rollout: None,
            signature: None,
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
        assert_eq!(canonical_string(&spec()), Ok(expected));
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
                    canonicalize(&s),
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
            canonicalize(&s),
            Err(CanonicalError::ForbiddenCharacter { .. })
        ));
        let mut s = spec();
        s.version = String::new();
        assert!(matches!(
            canonicalize(&s),
            Err(CanonicalError::Empty { .. })
        ));
        let mut s = spec();
        s.version = "2026.1 ".into();
        assert!(matches!(
            canonicalize(&s),
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
                    canonicalize(&s),
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
                matches!(canonicalize(&s), Err(CanonicalError::InvalidDigest { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_an_empty_release() {
        let mut s = spec();
        s.components.clear();
        assert_eq!(canonicalize(&s), Err(CanonicalError::NoComponents));
    }
}
