//! The release matrix: per registered site, the release it runs, each component's health and
//! version, when it last reported and whether that is too long ago (stale).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::report::{ComponentHealth, ReleaseRef};
use crate::sites::Registry;
use crate::store::StoredReport;

/// `GET /api/v1/matrix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub generated_at: DateTime<Utc>,
    /// A site whose last report is older than this is stale.
    pub stale_after_seconds: u64,
    /// Registered sites in site-id order.
    pub sites: Vec<SiteRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteRow {
    pub site_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When the hub received the site's last accepted report; absent when it never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<DateTime<Utc>>,
    /// No report, or the last one is older than `staleAfterSeconds`.
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRef>,
    /// Every reported component is ready (false when none reported).
    pub ready: bool,
    pub components: Vec<ComponentHealth>,
}

/// The matrix of every registered site from its latest report (`latest`: one per site).
pub fn build(
    registry: &Registry,
    latest: &[StoredReport],
    now: DateTime<Utc>,
    stale_after: Duration,
) -> Matrix {
    let limit = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    let sites = registry
        .sites()
        .map(|site| {
            let stored = latest.iter().find(|s| s.report.site_id == site.site_id);
            let mut components = stored
                .map(|s| s.report.components.clone())
                .unwrap_or_default();
            components.sort_by(|a, b| a.name.cmp(&b.name));
            SiteRow {
                site_id: site.site_id.clone(),
                display_name: site.display_name.clone(),
                last_report: stored.map(|s| s.received_at),
                stale: stored.is_none_or(|s| now.signed_duration_since(s.received_at) > limit),
                release: stored.map(|s| s.report.release.clone()),
                ready: !components.is_empty() && components.iter().all(|c| c.ready),
                components,
            }
        })
        .collect();
    Matrix {
        generated_at: now,
        stale_after_seconds: stale_after.as_secs(),
        sites,
    }
}

/// Component names over all rows, sorted: the matrix's columns.
pub fn component_names(matrix: &Matrix) -> Vec<String> {
    let mut names: Vec<String> = matrix
        .sites
        .iter()
        .flat_map(|s| s.components.iter().map(|c| c.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;
    use crate::sites::{KeyEntry, SiteEntry, SitesConfig};

    #[test]
    fn rows_for_every_site_with_stale_and_ready() {
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]);
        let site = |id: &str| SiteEntry {
            site_id: id.into(),
            display_name: None,
            keys: vec![KeyEntry {
                key_id: "k".into(),
                ed25519: key.clone(),
            }],
        };
        let registry = Registry::new(SitesConfig {
            sites: vec![site("erlangen"), site("dresden"), site("marburg")],
        })
        .expect("registry");
        let mut unready = sample("marburg", 1, "2026-11-29T20:00:00Z");
        unready.components[0].ready = false;
        let latest = [
            StoredReport {
                report: sample("erlangen", 1, "2026-11-29T21:50:00Z"),
                received_at: "2026-11-29T21:50:00Z".parse().expect("t"),
            },
            StoredReport {
                report: unready,
                received_at: "2026-11-29T20:00:00Z".parse().expect("t"),
            },
        ];
        let now = "2026-11-29T22:00:00Z".parse().expect("t");
        let m = build(&registry, &latest, now, Duration::from_secs(3600));
        let row = |id: &str| m.sites.iter().find(|s| s.site_id == id).expect("row");
        // (site, stale, ready, has release)
        let cases = [
            ("erlangen", false, true, true),
            ("marburg", true, false, true),
            ("dresden", true, false, false),
        ];
        for (id, stale, ready, release) in cases {
            let r = row(id);
            assert_eq!(
                (r.stale, r.ready, r.release.is_some()),
                (stale, ready, release),
                "{id}"
            );
        }
        assert_eq!(m.sites[0].site_id, "dresden", "sorted by site id");
        assert_eq!(component_names(&m), ["blaze"]);
    }
}
