//! The release feed: what `GET /feed/v1` serves.
//!
//! ```json
//! {"apiVersion": "hub.miracum.org/v1", "kind": "ReleaseFeed",
//!  "releases": [<ComponentRelease manifests, as applied>],
//!  "revocations": [<ReleaseRevocation manifests>]}
//! ```
//!
//! The hub serves only what it was given: the files of one directory (a mounted ConfigMap, or a
//! checkout of the consortium's release repository), in file-name order. Each file holds one
//! manifest and is verified against the trusted keys when the directory is loaded; a file that
//! does not verify is left out, logged and counted. The verification itself is the operator's
//! (`release verify`, one implementation for both): the hub takes it as an [`EntryVerifier`].
//!
//! The body is deterministic for a given directory (entries in file-name order, object keys
//! sorted), so its SHA-256 is a strong ETag and a follower's `If-None-Match` gets `304`.

use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `apiVersion` of every hub document.
pub const API_VERSION: &str = "hub.miracum.org/v1";
/// `kind` of the feed document.
pub const KIND: &str = "ReleaseFeed";
/// Where the hub serves the feed.
pub const PATH: &str = "/feed/v1";

/// The feed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFeed {
    pub api_version: String,
    pub kind: String,
    /// ComponentRelease manifests as they are applied (apiVersion, kind, metadata, spec).
    pub releases: Vec<serde_json::Value>,
    /// ReleaseRevocation manifests.
    pub revocations: Vec<serde_json::Value>,
}

impl Default for ReleaseFeed {
    fn default() -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            releases: Vec::new(),
            revocations: Vec::new(),
        }
    }
}

/// What a verified file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Release,
    Revocation,
}

/// A manifest that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEntry {
    pub kind: EntryKind,
    /// `metadata.name`, for logs.
    pub name: String,
    /// The manifest as it will be served.
    pub manifest: serde_json::Value,
}

/// Why a file is not served. `reason` is CamelCase (the operator's verdict reasons, e.g.
/// `BadSignature`, or `NotAManifest`), and a metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub message: String,
}

/// Verifies one file of the feed directory: parses it (YAML or JSON, one manifest) and checks its
/// signatures against the trusted keys. The operator implements this with its release
/// certification (`miracolix-operator hub`).
pub trait EntryVerifier: Send + Sync {
    fn verify(&self, origin: &str, bytes: &[u8]) -> Result<VerifiedEntry, Refusal>;
}

/// A file left out of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub file: String,
    pub refusal: Refusal,
}

/// The feed as served: the document, its exact bytes and their ETag, and what was left out.
#[derive(Debug, Clone)]
pub struct LoadedFeed {
    pub feed: ReleaseFeed,
    pub body: Bytes,
    /// Strong ETag, quoted: `"sha256-<hex of body>"`.
    pub etag: String,
    pub refused: Vec<Refused>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot read the feed directory {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the feed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// File names the loader reads; anything else (a ConfigMap's `..data` links, READMEs) is ignored.
fn is_manifest(name: &str) -> bool {
    !name.starts_with('.')
        && [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Loads and verifies every manifest file of `dir`.
pub fn load_dir(dir: &Path, verifier: &dyn EntryVerifier) -> Result<LoadedFeed, FeedError> {
    let read_err = |source| FeedError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follows symlinks: a mounted ConfigMap's files are links into `..data`.
        if is_manifest(&name) && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).map_err(read_err)?;
        files.push((name, bytes));
    }
    build(&files, verifier)
}

/// The feed of `files` (name, content), in the given order.
pub fn build(
    files: &[(String, Vec<u8>)],
    verifier: &dyn EntryVerifier,
) -> Result<LoadedFeed, FeedError> {
    let mut feed = ReleaseFeed::default();
    let mut refused = Vec::new();
    for (name, bytes) in files {
        match verifier.verify(name, bytes) {
            Ok(entry) => match entry.kind {
                EntryKind::Release => feed.releases.push(entry.manifest),
                EntryKind::Revocation => feed.revocations.push(entry.manifest),
            },
            Err(refusal) => refused.push(Refused {
                file: name.clone(),
                refusal,
            }),
        }
    }
    let body = Bytes::from(serde_json::to_vec(&feed)?);
    let etag = etag_of(&body);
    Ok(LoadedFeed {
        feed,
        body,
        etag,
        refused,
    })
}

/// Strong ETag of a body: its SHA-256 (RFC 9110 §8.8.3: a strong validator changes whenever the
/// representation's bytes change).
pub fn etag_of(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "\"sha256-{}\"",
        miracolix_service::token::hex(digest.as_ref())
    )
}

/// Whether an `If-None-Match` header value matches `etag` (RFC 9110 §13.1.2: a list of entity
/// tags or `*`; weak comparison, so `W/"x"` matches `"x"`).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `{"kind": "ComponentRelease"|"ReleaseRevocation", "ok": true, ...}` as JSON.
    struct ByFlag;
    impl EntryVerifier for ByFlag {
        fn verify(&self, _origin: &str, bytes: &[u8]) -> Result<VerifiedEntry, Refusal> {
            let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Refusal {
                reason: "NotAManifest".into(),
                message: e.to_string(),
            })?;
            if v["ok"] != true {
                return Err(Refusal {
                    reason: "BadSignature".into(),
                    message: "flag".into(),
                });
            }
            let kind = if v["kind"] == "ReleaseRevocation" {
                EntryKind::Revocation
            } else {
                EntryKind::Release
            };
            Ok(VerifiedEntry {
                kind,
                name: String::new(),
                manifest: v,
            })
        }
    }

    fn file(name: &str, json: &str) -> (String, Vec<u8>) {
        (name.to_string(), json.as_bytes().to_vec())
    }

    #[test]
    fn serves_what_verifies_in_order_and_lists_the_rest() {
        let files = [
            file("a.json", r#"{"kind":"ComponentRelease","ok":true,"n":1}"#),
            file("b.json", r#"{"kind":"ComponentRelease","ok":false}"#),
            file("c.json", r#"{"kind":"ReleaseRevocation","ok":true}"#),
            file("d.json", "not json"),
        ];
        let loaded = build(&files, &ByFlag).expect("build");
        assert_eq!(loaded.feed.releases.len(), 1);
        assert_eq!(loaded.feed.revocations.len(), 1);
        let refused: Vec<(&str, &str)> = loaded
            .refused
            .iter()
            .map(|r| (r.file.as_str(), r.refusal.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            [("b.json", "BadSignature"), ("d.json", "NotAManifest")]
        );
        let body: serde_json::Value = serde_json::from_slice(&loaded.body).expect("json");
        assert_eq!(body["apiVersion"], API_VERSION);
        assert_eq!(body["kind"], KIND);
    }

    #[test]
    fn etag_is_stable_for_the_same_files_and_changes_with_them() {
        let one = [file("a.json", r#"{"ok":true,"z":1,"a":2}"#)];
        let same = [file("a.json", r#"{"a":2,"ok":true,"z":1}"#)];
        let other = [file("a.json", r#"{"ok":true,"z":2,"a":2}"#)];
        let e1 = build(&one, &ByFlag).expect("build").etag;
        // Key order in the file does not matter: the body is re-encoded with sorted keys.
        assert_eq!(e1, build(&same, &ByFlag).expect("build").etag);
        assert_ne!(e1, build(&other, &ByFlag).expect("build").etag);
        assert!(e1.starts_with("\"sha256-") && e1.ends_with('"'), "{e1}");
    }

    #[test]
    fn if_none_match_follows_rfc_9110() {
        let etag = "\"sha256-ab\"";
        assert!(if_none_match("\"sha256-ab\"", etag));
        assert!(if_none_match("\"x\", W/\"sha256-ab\"", etag));
        assert!(if_none_match("*", etag));
        assert!(!if_none_match("\"sha256-ac\"", etag));
        assert!(!if_none_match("sha256-ab", etag));
    }

    #[test]
    fn only_manifest_files_are_read() {
        assert!(is_manifest("10-release.yaml"));
        assert!(is_manifest("r.json"));
        assert!(!is_manifest("..data"));
        assert!(!is_manifest(".hidden.yaml"));
        assert!(!is_manifest("README.md"));
    }
}
