//! The aggregated Data Map: per FHIR resource type, the total over the sites' latest reports.
//!
//! Privacy rules (shared/docs/domain.md, "Data map"), on top of the site's own obfuscation:
//! 1. A resource type is shown only when at least [`MIN_SITES`] sites report it with a count
//!    above 0. A site with none of a kind contributes nothing, so counting it would let two sites'
//!    total pass as three. Otherwise the entry says "fewer than 3 sites" and carries **no
//!    number**, not even how many sites.
//! 2. A shown total is rounded **down** into the buckets [`BUCKETS`] (0 / 10 / 100 / 1k / 10k /
//!    100k / 1M): "at least 1,000". The exact sum never leaves the hub.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoredReport;

/// Sites that must report a resource type before any number about it is shown.
pub const MIN_SITES: usize = 3;
/// Lower bounds of the buckets a total is rounded down into.
pub const BUCKETS: [u64; 7] = [0, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
/// Why an entry has no number (the JSON `note`).
pub const FEWER_THAN_MIN_SITES: &str = "fewer than 3 sites";

/// The largest bucket bound not above `total`.
pub fn bucket(total: u64) -> u64 {
    BUCKETS
        .iter()
        .copied()
        .take_while(|&b| b <= total)
        .last()
        .unwrap_or(0)
}

/// One resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub resource_type: String,
    /// Whether a number is shown (at least [`MIN_SITES`] sites).
    pub shown: bool,
    /// Sites that report this type with a count above 0 (only when shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<usize>,
    /// The total rounded down into a bucket: "at least this many" (only when shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    /// Why no number is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /api/v1/datamap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataMap {
    pub generated_at: DateTime<Utc>,
    pub min_sites: usize,
    pub buckets: Vec<u64>,
    /// Sorted by resource type.
    pub resource_types: Vec<Entry>,
}

/// The Data Map of the sites' latest reports (one per site).
pub fn aggregate(latest: &[StoredReport], now: DateTime<Utc>) -> DataMap {
    let mut totals: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for stored in latest {
        for (resource, &count) in &stored.report.data_map {
            let entry = totals.entry(resource.as_str()).or_default();
            if count > 0 {
                entry.0 += 1;
                entry.1 = entry.1.saturating_add(count);
            }
        }
    }
    let resource_types = totals
        .into_iter()
        .map(|(resource, (sites, total))| entry(resource, sites, total))
        .collect();
    DataMap {
        generated_at: now,
        min_sites: MIN_SITES,
        buckets: BUCKETS.to_vec(),
        resource_types,
    }
}

/// The rules for one resource type: `sites` reporting it above 0, their `total`.
pub fn entry(resource_type: &str, sites: usize, total: u64) -> Entry {
    if sites >= MIN_SITES {
        Entry {
            resource_type: resource_type.to_string(),
            shown: true,
            sites: Some(sites),
            at_least: Some(bucket(total)),
            note: None,
        }
    } else {
        Entry {
            resource_type: resource_type.to_string(),
            shown: false,
            sites: None,
            at_least: None,
            note: Some(FEWER_THAN_MIN_SITES.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn buckets_round_down() {
        let cases = [
            (0, 0),
            (9, 0),
            (10, 10),
            (15, 10),
            (99, 10),
            (100, 100),
            (999, 100),
            (1_000, 1_000),
            (9_999, 1_000),
            (10_000, 10_000),
            (99_999, 10_000),
            (100_000, 100_000),
            (999_999, 100_000),
            (1_000_000, 1_000_000),
            (u64::MAX, 1_000_000),
        ];
        for (total, expected) in cases {
            assert_eq!(bucket(total), expected, "total {total}");
        }
    }

    #[test]
    fn three_site_rule() {
        // (sites above 0, total) -> shown number.
        let cases: [(usize, u64, Option<u64>); 6] = [
            (0, 0, None),
            (1, 5_000, None),
            (2, 1_000_000, None),
            (3, 15, Some(10)),
            (3, 2_500, Some(1_000)),
            (12, 3_400_000, Some(1_000_000)),
        ];
        for (sites, total, shown) in cases {
            let e = entry("Patient", sites, total);
            assert_eq!(e.at_least, shown, "{sites} sites, total {total}");
            assert_eq!(e.shown, shown.is_some());
            if shown.is_none() {
                // Hidden means no number at all, not even the site count.
                assert_eq!(e.sites, None);
                assert_eq!(e.note.as_deref(), Some(FEWER_THAN_MIN_SITES));
            } else {
                assert_eq!(e.sites, Some(sites));
            }
        }
    }

    #[test]
    fn sites_with_zero_do_not_count_towards_three() {
        let at = "2026-11-29T22:00:00Z";
        let stored = |site: &str, patients: u64, specimens: u64| {
            let mut report = sample(site, 1, at);
            report.data_map = BTreeMap::from([
                ("Patient".to_string(), patients),
                ("Specimen".to_string(), specimens),
            ]);
            StoredReport {
                report,
                received_at: at.parse().expect("time"),
            }
        };
        let latest = [
            stored("a", 1200, 5),
            stored("b", 800, 0),
            stored("c", 5, 40),
        ];
        let map = aggregate(&latest, at.parse().expect("time"));
        let patient = &map.resource_types[0];
        assert_eq!(
            (
                patient.resource_type.as_str(),
                patient.sites,
                patient.at_least
            ),
            ("Patient", Some(3), Some(1_000))
        );
        let specimen = &map.resource_types[1];
        assert_eq!(specimen.resource_type, "Specimen");
        assert!(!specimen.shown, "{specimen:?}");
        let json = serde_json::to_value(&map).expect("json");
        assert_eq!(
            json["resourceTypes"][1],
            serde_json::json!({"resourceType": "Specimen", "shown": false, "note": "fewer than 3 sites"})
        );
    }
}
