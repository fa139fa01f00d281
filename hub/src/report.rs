//! Site reports: the format, the site-side functions ([`obfuscate`], [`sign_report`]) and the
//! hub-side checks ([`open`], [`check_fresh`], [`check_sequence`]).
//!
//! A site posts a signed envelope to `POST /api/v1/reports`:
//!
//! ```json
//! {"siteId": "erlangen", "keyId": "erlangen-2026",
//!  "payload": "<base64 of the report JSON bytes>",
//!  "signature": "<base64 of the Ed25519 signature over exactly those bytes>"}
//! ```
//!
//! The signature covers the payload bytes as sent, not a re-encoding, so no canonical JSON is
//! needed: the hub verifies the bytes, then parses them. The report:
//!
//! ```json
//! {"siteId": "erlangen", "sequence": 42, "generatedAt": "2026-11-29T22:00:00Z",
//!  "release": {"name": "miracolix-2026.1", "fingerprint": "<sha256 hex of the canonical release>"},
//!  "components": [{"name": "blaze", "version": "0.30.2", "ready": true}],
//!  "dataMap": {"Patient": 1200, "Encounter": 5}}
//! ```
//!
//! `sequence` grows strictly per site (the pusher keeps it; a timestamp in milliseconds works).
//! `dataMap` holds counts **already obfuscated at the site** ([`obfuscate`]): nothing about a
//! patient leaves the site, and a count of 1–4 is refused as not obfuscated.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::sites::Registry;

/// Where the hub receives reports.
pub const PATH: &str = "/api/v1/reports";
/// Larger envelopes are refused unread: a report is a few hundred bytes.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// The Data Map floor (shared/docs/domain.md: small counts 1–5 are raised to 5).
pub const DEFAULT_FLOOR: u64 = 5;
/// At most this many components and Data Map entries per report.
pub const MAX_ENTRIES: usize = 200;

/// The signed envelope a site posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedReport {
    pub site_id: String,
    pub key_id: String,
    /// Base64 (standard alphabet, padded) of the report's JSON bytes.
    pub payload: String,
    /// Base64 of the Ed25519 signature (RFC 8032) over the payload bytes.
    pub signature: String,
}

/// What a site reports. Fields this hub does not know are ignored (a newer pusher may send
/// more; the signed payload is stored as sent), missing ones are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub site_id: String,
    pub sequence: u64,
    /// RFC 3339.
    pub generated_at: DateTime<Utc>,
    pub release: ReleaseRef,
    pub components: Vec<ComponentHealth>,
    /// FHIR resource type → count, obfuscated ([`obfuscate`]).
    pub data_map: BTreeMap<String, u64>,
}

/// The release a site runs: the ComponentRelease's name and fingerprint (SHA-256 of its
/// canonical encoding, `miracolix-operator release fingerprint`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRef {
    pub name: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentHealth {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub ready: bool,
}

/// Site side: counts as they may leave the site. 0 stays 0 (having none of a kind reveals no
/// patient); 1 up to `floor` becomes `floor`, so a small count cannot single anyone out; larger
/// counts pass unchanged (the hub buckets totals, `crate::datamap`).
pub fn obfuscate(raw: &BTreeMap<String, u64>, floor: u64) -> BTreeMap<String, u64> {
    raw.iter()
        .map(|(k, &v)| (k.clone(), if v == 0 { 0 } else { v.max(floor) }))
        .collect()
}

/// The raw Ed25519 public key of `key` in base64, as the hub's sites config wants it.
pub fn public_key_base64(key: &Ed25519KeyPair) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref())
}

/// Site side: encodes `report` and signs the bytes with the site's key.
pub fn sign_report(
    report: &Report,
    key_id: &str,
    key: &Ed25519KeyPair,
) -> Result<SignedReport, serde_json::Error> {
    let payload = serde_json::to_vec(report)?;
    let signature = key.sign(&payload);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(SignedReport {
        site_id: report.site_id.clone(),
        key_id: key_id.to_string(),
        payload: b64.encode(&payload),
        signature: b64.encode(signature.as_ref()),
    })
}

/// Why a report is refused; the names are the `outcome` label of `miracolix_hub_reports_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not an envelope, not base64, not a report, or a field out of range (the message names it).
    Malformed,
    /// The site is not registered.
    UnknownSite,
    /// The site is registered, the key id is not one of its keys.
    UnknownKey,
    /// The signature does not verify with the site's key.
    BadSignature,
    /// `generatedAt` is older than the window or further in the future than the allowed skew.
    Stale,
    /// `sequence` is not greater than the last stored one of the site.
    Replayed,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Malformed,
        Reason::UnknownSite,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Stale,
        Reason::Replayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnknownSite => "unknown-site",
            Reason::UnknownKey => "unknown-key",
            Reason::BadSignature => "bad-signature",
            Reason::Stale => "stale",
            Reason::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason and a message for the site's admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Reason,
    pub message: String,
}

fn refuse(reason: Reason, message: impl Into<String>) -> Refused {
    Refused {
        reason,
        message: message.into(),
    }
}

/// A report whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub report: Report,
    /// SHA-256 (hex) of the envelope's fields: the identity of "the same envelope again".
    pub envelope_sha256: String,
    /// The payload bytes as signed (what the hub stores).
    pub payload: Vec<u8>,
}

/// Hub side: parses the envelope, finds the site's key, verifies the signature over the payload
/// bytes, then parses and checks the report. Nothing is trusted before the signature verified.
pub fn open(body: &[u8], registry: &Registry, floor: u64) -> Result<Opened, Refused> {
    let envelope: SignedReport = serde_json::from_slice(body).map_err(|e| {
        refuse(
            Reason::Malformed,
            format!("not a signed report envelope: {e}"),
        )
    })?;
    let site = registry.get(&envelope.site_id).ok_or_else(|| {
        refuse(
            Reason::UnknownSite,
            format!("site {:?} is not registered at this hub", envelope.site_id),
        )
    })?;
    let key = site.keys.get(&envelope.key_id).ok_or_else(|| {
        refuse(
            Reason::UnknownKey,
            format!(
                "key {:?} is not registered for site {:?}",
                envelope.key_id, envelope.site_id
            ),
        )
    })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&envelope.payload)
        .map_err(|e| refuse(Reason::Malformed, format!("payload: not base64: {e}")))?;
    let signature = b64
        .decode(&envelope.signature)
        .map_err(|e| refuse(Reason::Malformed, format!("signature: not base64: {e}")))?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&payload, &signature)
        .map_err(|_| {
            refuse(
                Reason::BadSignature,
                format!(
                    "the signature does not verify with key {:?} of site {:?}",
                    envelope.key_id, envelope.site_id
                ),
            )
        })?;
    let report: Report = serde_json::from_slice(&payload)
        .map_err(|e| refuse(Reason::Malformed, format!("payload: not a report: {e}")))?;
    check_fields(&report, &envelope.site_id, floor)?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        &envelope.site_id,
        &envelope.key_id,
        &envelope.payload,
        &envelope.signature,
    ] {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    Ok(Opened {
        report,
        envelope_sha256: miracolix_service::token::hex(hash.finish().as_ref()),
        payload,
    })
}

/// Field rules of a report; the message names the field.
fn check_fields(report: &Report, site_id: &str, floor: u64) -> Result<(), Refused> {
    let bad =
        |field: &str, problem: String| refuse(Reason::Malformed, format!("{field}: {problem}"));
    if report.site_id != site_id {
        return Err(bad(
            "siteId",
            format!(
                "{:?} differs from the envelope's {site_id:?}",
                report.site_id
            ),
        ));
    }
    // SQLite stores integers as i64.
    if i64::try_from(report.sequence).is_err() {
        return Err(bad("sequence", format!("must be at most {}", i64::MAX)));
    }
    if report.release.name.is_empty() || report.release.name.len() > 253 {
        return Err(bad("release.name", "must be 1-253 characters".into()));
    }
    let fp = &report.release.fingerprint;
    if fp.len() != 64
        || !fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(
            "release.fingerprint",
            "must be 64 lowercase hex digits (SHA-256)".into(),
        ));
    }
    if report.components.len() > MAX_ENTRIES || report.data_map.len() > MAX_ENTRIES {
        return Err(bad(
            "components",
            format!("at most {MAX_ENTRIES} components and Data Map entries"),
        ));
    }
    for (i, c) in report.components.iter().enumerate() {
        if c.name.is_empty() || c.name.len() > 63 {
            return Err(bad(
                &format!("components[{i}].name"),
                "must be 1-63 characters".into(),
            ));
        }
        if c.version.as_ref().is_some_and(|v| v.len() > 128) {
            return Err(bad(
                &format!("components[{i}].version"),
                "at most 128 characters".into(),
            ));
        }
    }
    for (resource, &count) in &report.data_map {
        if !is_resource_type(resource) {
            return Err(bad(
                &format!("dataMap.{resource}"),
                "not a FHIR resource type name".into(),
            ));
        }
        if count > 0 && count < floor {
            return Err(bad(
                &format!("dataMap.{resource}"),
                format!("{count} is below the floor {floor}: counts are obfuscated at the site"),
            ));
        }
    }
    Ok(())
}

/// A FHIR resource type name: an uppercase letter, then letters (FHIR R4 resource names).
fn is_resource_type(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
}

/// Hub side: `generatedAt` must lie within `window` before `now` and at most `skew` after it.
pub fn check_fresh(
    report: &Report,
    now: DateTime<Utc>,
    window: Duration,
    skew: Duration,
) -> Result<(), Refused> {
    let age = now.signed_duration_since(report.generated_at);
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let skew = chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::MAX);
    if age > window {
        return Err(refuse(
            Reason::Stale,
            format!(
                "generatedAt {} is {} s old; the hub accepts reports up to {} s old",
                report.generated_at.to_rfc3339(),
                age.num_seconds(),
                window.num_seconds()
            ),
        ));
    }
    if -age > skew {
        return Err(refuse(
            Reason::Stale,
            format!(
                "generatedAt {} is {} s in the future; check the site's clock (allowed skew {} s)",
                report.generated_at.to_rfc3339(),
                (-age).num_seconds(),
                skew.num_seconds()
            ),
        ));
    }
    Ok(())
}

/// Hub side: `sequence` must be greater than the last one stored for the site.
pub fn check_sequence(report: &Report, last: Option<u64>) -> Result<(), Refused> {
    match last {
        Some(last) if report.sequence <= last => Err(not_newer(report, last)),
        _ => Ok(()),
    }
}

/// The refusal of a report whose sequence is not above the site's last accepted `last`.
pub fn not_newer(report: &Report, last: u64) -> Refused {
    refuse(
        Reason::Replayed,
        format!(
            "sequence {} is not greater than the last accepted {last} of site {:?}",
            report.sequence, report.site_id
        ),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sites::{KeyEntry, SiteEntry, SitesConfig};

    pub(crate) fn key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("key")
    }

    pub(crate) fn sample(site: &str, sequence: u64, at: &str) -> Report {
        crate::testing::sample_report(site, sequence, at.parse().expect("time"))
    }

    fn registry() -> Registry {
        Registry::new(SitesConfig {
            sites: vec![SiteEntry {
                site_id: "erlangen".into(),
                display_name: None,
                keys: vec![KeyEntry {
                    key_id: "k1".into(),
                    ed25519: public_key_base64(&key(1)),
                }],
            }],
        })
        .expect("registry")
    }

    #[test]
    fn obfuscation_raises_small_counts_and_keeps_zero() {
        let raw = BTreeMap::from([
            ("A".to_string(), 0),
            ("B".to_string(), 1),
            ("C".to_string(), 4),
            ("D".to_string(), 5),
            ("E".to_string(), 6),
            ("F".to_string(), 123_456),
        ]);
        let out: Vec<u64> = obfuscate(&raw, DEFAULT_FLOOR).into_values().collect();
        assert_eq!(out, [0, 5, 5, 5, 6, 123_456]);
    }

    #[test]
    fn a_signed_report_opens_and_a_changed_one_does_not() {
        let report = sample("erlangen", 1, "2026-11-29T22:00:00Z");
        let signed = sign_report(&report, "k1", &key(1)).expect("sign");
        let body = serde_json::to_vec(&signed).expect("json");
        let opened = open(&body, &registry(), DEFAULT_FLOOR).expect("opens");
        assert_eq!(opened.report, report);
        assert_eq!(opened.envelope_sha256.len(), 64);

        let reason = |signed: &SignedReport| {
            open(
                &serde_json::to_vec(signed).expect("json"),
                &registry(),
                DEFAULT_FLOOR,
            )
            .map(|_| ())
            .map_err(|r| r.reason)
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        // Each row: what is changed, which reason refuses it.
        let mut tampered = signed.clone();
        let mut other = report.clone();
        other.data_map.insert("Patient".into(), 1300);
        tampered.payload = b64.encode(serde_json::to_vec(&other).expect("json"));
        let by_other_key = sign_report(&report, "k1", &key(2)).expect("sign");
        let mut unknown_site =
            sign_report(&sample("dresden", 1, "2026-11-29T22:00:00Z"), "k1", &key(1))
                .expect("sign");
        unknown_site.site_id = "dresden".into();
        let unknown_key = sign_report(&report, "k9", &key(1)).expect("sign");
        let mut not_b64 = signed.clone();
        not_b64.signature = "***".into();
        let mut mismatch =
            sign_report(&sample("dresden", 1, "2026-11-29T22:00:00Z"), "k1", &key(1))
                .expect("sign");
        mismatch.site_id = "erlangen".into();
        let mut small = report.clone();
        small.data_map.insert("Condition".into(), 3);
        let small = sign_report(&small, "k1", &key(1)).expect("sign");
        let cases: [(&str, &SignedReport, Reason); 7] = [
            (
                "payload changed after signing",
                &tampered,
                Reason::BadSignature,
            ),
            (
                "signed with another key",
                &by_other_key,
                Reason::BadSignature,
            ),
            ("site not registered", &unknown_site, Reason::UnknownSite),
            ("key not registered", &unknown_key, Reason::UnknownKey),
            ("signature not base64", &not_b64, Reason::Malformed),
            (
                "report of another site in the envelope",
                &mismatch,
                Reason::Malformed,
            ),
            ("count below the floor", &small, Reason::Malformed),
        ];
        for (what, signed, expected) in cases {
            assert_eq!(reason(signed), Err(expected), "{what}");
        }
        let refused = open(
            &serde_json::to_vec(&small).expect("json"),
            &registry(),
            DEFAULT_FLOOR,
        )
        .expect_err("refused");
        assert!(
            refused.message.starts_with("dataMap.Condition:"),
            "{}",
            refused.message
        );
        let refused = open(b"{\"siteId\": 1}", &registry(), DEFAULT_FLOOR).expect_err("refused");
        assert_eq!(refused.reason, Reason::Malformed);
    }

    #[test]
    fn unknown_report_fields_are_ignored_missing_ones_refused() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let envelope = |payload: serde_json::Value| {
            let bytes = serde_json::to_vec(&payload).expect("json");
            let signed = SignedReport {
                site_id: "erlangen".into(),
                key_id: "k1".into(),
                payload: b64.encode(&bytes),
                signature: b64.encode(key(1).sign(&bytes).as_ref()),
            };
            serde_json::to_vec(&signed).expect("json")
        };
        let mut newer =
            serde_json::to_value(sample("erlangen", 1, "2026-11-29T22:00:00Z")).expect("json");
        newer["operatorVersion"] = "0.9.0".into();
        newer["components"][0]["restarts"] = 3.into();
        let opened = open(&envelope(newer.clone()), &registry(), DEFAULT_FLOOR).expect("opens");
        assert_eq!(opened.report, sample("erlangen", 1, "2026-11-29T22:00:00Z"));
        let mut older = newer;
        older.as_object_mut().expect("object").remove("release");
        let refused = open(&envelope(older), &registry(), DEFAULT_FLOOR).expect_err("refused");
        assert_eq!(refused.reason, Reason::Malformed);
        assert!(refused.message.contains("release"), "{}", refused.message);
    }

    #[test]
    fn freshness_window_and_skew() {
        let now: DateTime<Utc> = "2026-11-29T22:00:00Z".parse().expect("time");
        let hour = Duration::from_secs(3600);
        let skew = Duration::from_secs(300);
        let cases = [
            ("2026-11-29T22:00:00Z", true),
            ("2026-11-29T21:00:00Z", true),
            ("2026-11-29T20:59:59Z", false),
            ("2026-11-29T22:05:00Z", true),
            ("2026-11-29T22:05:01Z", false),
        ];
        for (at, fresh) in cases {
            let r = check_fresh(&sample("erlangen", 1, at), now, hour, skew);
            assert_eq!(r.is_ok(), fresh, "{at}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.reason, Reason::Stale);
            }
        }
    }

    #[test]
    fn sequence_must_grow() {
        let r = sample("erlangen", 7, "2026-11-29T22:00:00Z");
        assert!(check_sequence(&r, None).is_ok());
        assert!(check_sequence(&r, Some(6)).is_ok());
        for last in [7, 8] {
            assert_eq!(
                check_sequence(&r, Some(last)).map_err(|e| e.reason),
                Err(Reason::Replayed)
            );
        }
    }
}
