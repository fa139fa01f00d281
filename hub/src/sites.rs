//! The sites the hub accepts reports from, each with the public keys its reports are signed with
//! (several at once, so a site can rotate its key: register the new key, switch, remove the old).
//!
//! Config file (`--sites`, JSON):
//!
//! ```json
//! {"sites": [{"siteId": "erlangen", "displayName": "Uniklinikum Erlangen",
//!             "keys": [{"keyId": "erlangen-2026", "ed25519": "<base64 of the 32-byte public key>"}]}]}
//! ```
//!
//! The raw 32-byte Ed25519 public key in base64 is what [`crate::report::public_key_base64`]
//! prints for a site's key (RFC 8032 §5.1.5 encoding).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use miracolix_service::config::{ConfigFileError, read_json};
use serde::Deserialize;

const ED25519_PUBLIC_KEY_LEN: usize = 32;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SitesConfig {
    pub sites: Vec<SiteEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteEntry {
    pub site_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyEntry {
    pub key_id: String,
    /// Base64 (standard alphabet) of the raw Ed25519 public key.
    pub ed25519: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SitesError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

/// A registered site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub site_id: String,
    pub display_name: Option<String>,
    /// Key id → raw public key.
    pub keys: BTreeMap<String, [u8; ED25519_PUBLIC_KEY_LEN]>,
}

/// Every registered site, by site id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    sites: BTreeMap<String, Site>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, SitesError> {
        Self::new(read_json(path, "sites config")?)
    }

    /// Checks every entry; errors name the field (`sites[1].keys[0].ed25519`).
    pub fn new(config: SitesConfig) -> Result<Self, SitesError> {
        let mut sites = BTreeMap::new();
        for (i, entry) in config.sites.into_iter().enumerate() {
            let invalid = |field: String, problem: &str| SitesError::Invalid {
                field,
                problem: problem.to_string(),
            };
            if !is_identifier(&entry.site_id) {
                return Err(invalid(
                    format!("sites[{i}].siteId"),
                    "must be 1-63 lowercase letters, digits and '-'",
                ));
            }
            if entry.keys.is_empty() {
                return Err(invalid(
                    format!("sites[{i}].keys"),
                    "a site needs at least one key",
                ));
            }
            let mut keys = BTreeMap::new();
            for (k, key) in entry.keys.iter().enumerate() {
                if key.key_id.is_empty() || key.key_id.len() > 128 {
                    return Err(invalid(
                        format!("sites[{i}].keys[{k}].keyId"),
                        "must be 1-128 characters",
                    ));
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(key.ed25519.trim())
                    .ok()
                    .and_then(|b| <[u8; ED25519_PUBLIC_KEY_LEN]>::try_from(b).ok())
                    .ok_or_else(|| {
                        invalid(
                            format!("sites[{i}].keys[{k}].ed25519"),
                            "must be the base64 of a 32-byte Ed25519 public key",
                        )
                    })?;
                if keys.insert(key.key_id.clone(), raw).is_some() {
                    return Err(invalid(
                        format!("sites[{i}].keys[{k}].keyId"),
                        "duplicate key id",
                    ));
                }
            }
            let site_id = entry.site_id.clone();
            let site = Site {
                site_id: entry.site_id,
                display_name: entry.display_name,
                keys,
            };
            if sites.insert(site_id, site).is_some() {
                return Err(invalid(format!("sites[{i}].siteId"), "duplicate site id"));
            }
        }
        Ok(Self { sites })
    }

    pub fn get(&self, site_id: &str) -> Option<&Site> {
        self.sites.get(site_id)
    }

    /// Sites in site-id order.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.values()
    }
}

/// A site id as DizSite `spec.siteId` allows it (a DNS label).
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<Registry, SitesError> {
        Registry::new(serde_json::from_value(json).expect("shape"))
    }

    #[test]
    fn errors_name_the_field() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let ok = config(serde_json::json!({"sites": [
            {"siteId": "erlangen", "keys": [{"keyId": "k1", "ed25519": key}]}]}))
        .expect("valid");
        assert_eq!(ok.get("erlangen").expect("site").keys.len(), 1);
        let cases = [
            (
                serde_json::json!({"sites": [{"siteId": "Erlangen", "keys": [{"keyId": "k1", "ed25519": key}]}]}),
                "sites[0].siteId",
            ),
            (
                serde_json::json!({"sites": [{"siteId": "erlangen", "keys": []}]}),
                "sites[0].keys",
            ),
            (
                serde_json::json!({"sites": [{"siteId": "erlangen", "keys": [{"keyId": "k1", "ed25519": "AAAA"}]}]}),
                "sites[0].keys[0].ed25519",
            ),
            (
                serde_json::json!({"sites": [
                    {"siteId": "erlangen", "keys": [{"keyId": "k1", "ed25519": key}]},
                    {"siteId": "erlangen", "keys": [{"keyId": "k1", "ed25519": key}]}]}),
                "sites[1].siteId",
            ),
        ];
        for (json, field) in cases {
            match config(json) {
                Err(SitesError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
