//! The append-only audit log: one JSON line per answered or refused query, on the gate's volume.
//!
//! A site reads it to see exactly what left it: who asked, when, which query (by fingerprint),
//! which count was released and how much ε that spent. It holds nothing about patients: no true
//! count, no query text, no patient identifiers (docs/feasibility.md, "Verifying what leaves").

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// The authenticated requester; empty for a refused login (`unauthenticated`, `forbidden`).
    pub requester: String,
    /// `released`, `cached`, `rate-limited`, `over-budget`, `bad-query`, `executor-error`, and
    /// for refused logins `unauthenticated` (no or a bad credential) and `forbidden` (a valid
    /// credential of a caller not on the allow list).
    pub outcome: String,
    /// A refused login only: the name the caller claimed (a JWT's requester claim, unverified
    /// for `unauthenticated`) or its certificate's DNS names. Never the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<u64>,
    /// ε spent by this answer (0 for a cached repeat and for refusals).
    pub epsilon: f64,
}

#[derive(Debug)]
pub struct AuditLog {
    file: File,
}

impl AuditLog {
    /// Opens for appending only; O_APPEND makes every line land at the end even if the file was
    /// truncated or rotated by someone else.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file })
    }

    /// Writes one line and syncs it: an answer is released only after its audit line is durable.
    pub fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}
