//! Fixtures for tests of the hub and of its clients (the operator's `release status --hub` and,
//! later, its report pusher): deterministic site keys, a registry of demo sites, a hub on
//! loopback. Not used by the hub itself.

use std::net::SocketAddr;

use ring::error::KeyRejected;
use ring::signature::Ed25519KeyPair;

use chrono::{DateTime, Utc};

use crate::Hub;
use crate::report::{ComponentHealth, ReleaseRef, Report, public_key_base64};
use crate::sites::{KeyEntry, Registry, SiteEntry, SitesConfig};

/// The key of demo site number `i`: derived from a fixed seed, so signatures (and screenshots)
/// are the same on every run. Never use such a key outside tests.
pub fn demo_key(i: usize) -> Result<Ed25519KeyPair, KeyRejected> {
    let seed = [u8::try_from(i % 255).unwrap_or(0) + 1; 32];
    Ed25519KeyPair::from_seed_unchecked(&seed)
}

/// The key id of a demo site's key.
pub fn demo_key_id(site: &str) -> String {
    format!("{site}-2026")
}

/// A registry of `sites`, site number `i` with [`demo_key`]`(i)`.
pub fn demo_registry(sites: &[&str]) -> Result<Registry, Box<dyn std::error::Error>> {
    let mut entries = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        entries.push(SiteEntry {
            site_id: site.to_string(),
            display_name: None,
            keys: vec![KeyEntry {
                key_id: demo_key_id(site),
                ed25519: public_key_base64(&demo_key(i).map_err(|e| e.to_string())?),
            }],
        });
    }
    Ok(Registry::new(SitesConfig { sites: entries })?)
}

/// Serves `hub` on two loopback ports until the runtime ends; returns (API, ops) addresses.
pub async fn serve(hub: Hub) -> std::io::Result<(SocketAddr, SocketAddr)> {
    serve_until(hub, std::future::pending())
        .await
        .map(|(api, ops, _)| (api, ops))
}

/// [`serve`] until `shutdown` completes (a restart in a test); the task ends with the hub.
pub async fn serve_until(
    hub: Hub,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, SocketAddr, tokio::task::JoinHandle<()>)> {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (api_addr, ops_addr) = (api.local_addr()?, ops.local_addr()?);
    let task = tokio::spawn(hub.serve(api, ops, shutdown));
    Ok((api_addr, ops_addr, task))
}

/// A report of `site` running miracolix-2026.1 with a ready Blaze and two Data Map counts.
pub fn sample_report(site: &str, sequence: u64, generated_at: DateTime<Utc>) -> Report {
    Report {
        site_id: site.into(),
        sequence,
        generated_at,
        release: ReleaseRef {
            name: "miracolix-2026.1".into(),
            fingerprint: "ab".repeat(32),
        },
        components: vec![ComponentHealth {
            name: "blaze".into(),
            version: Some("0.30.2".into()),
            ready: true,
        }],
        data_map: [("Patient".into(), 1200), ("Specimen".into(), 5)].into(),
    }
}
