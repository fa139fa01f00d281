//! Where accepted reports are kept. [`ReportStore`] is what the hub needs; [`SqliteStore`] is the
//! default (one file on the hub's volume), [`crate::pgstore::PgStore`] the PostgreSQL one
//! (`--database postgres://…`, docs/consortium.md "Storage"). Both have the same numbered
//! migration steps and pass one contract test (hub/tests/store_backends.rs).
//!
//! Every accepted report is kept (history for later analysis; a few hundred bytes each). The
//! matrix and the Data Map read only each site's latest.
//!
//! [`ReportStore::insert`] checks the envelope and the sequence again inside its transaction
//! ([`insert_refusal`]): the server checks them first (for the answer and the freshness rule),
//! but only the store sees what another hub replica on the same PostgreSQL database accepted
//! in between.

use std::path::Path;

use chrono::{DateTime, Utc};
use miracolix_service::pg::PgError;
use miracolix_service::sqlite::{MigrateError, migrate};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::report::Report;

/// Schema steps; `MIGRATIONS[i]` moves version i to i+1 (the same steps as
/// [`crate::pgstore::MIGRATIONS`]). Never edit a released step; add one.
pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE reports (
        site_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        envelope_sha256 TEXT NOT NULL,
        generated_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (site_id, sequence)
     );
     CREATE UNIQUE INDEX reports_envelope ON reports (site_id, envelope_sha256);",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("report store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("report store: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("report store: PostgreSQL connection: {0}")]
    Connect(String),
    #[error("report store holds an unreadable report of site {site}: {detail}")]
    Corrupt { site: String, detail: String },
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Sql(e) => StoreError::Postgres(e),
            PgError::Connect(text) => StoreError::Connect(text),
            PgError::Migrate(e) => StoreError::Migrate(e),
        }
    }
}

/// What [`ReportStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored.
    New,
    /// This envelope of the site is stored already; nothing written.
    SameEnvelope,
    /// The site has an accepted sequence at least as high; nothing written.
    NotNewer { last: u64 },
}

/// The rule both backends apply inside their insert transaction: `None` when the report may be
/// stored, else why not.
pub fn insert_refusal(same_envelope: bool, last: Option<u64>, sequence: u64) -> Option<Inserted> {
    if same_envelope {
        return Some(Inserted::SameEnvelope);
    }
    match last {
        Some(last) if sequence <= last => Some(Inserted::NotNewer { last }),
        _ => None,
    }
}

/// The sequence as stored (a signed column in both databases); `report::open` refuses
/// sequences above i64::MAX.
pub fn sequence_to_db(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

/// A report as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub report: Report,
    pub received_at: DateTime<Utc>,
}

/// A report to keep: the signed payload bytes and what the hub looks up by.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    pub report: &'a Report,
    pub payload: &'a [u8],
    pub envelope_sha256: &'a str,
    pub received_at: DateTime<Utc>,
}

/// The hub's storage. Calls come one at a time (the hub holds a lock around check and insert).
pub trait ReportStore: Send {
    /// Whether this exact envelope of the site was accepted before.
    fn has_envelope(&self, site_id: &str, envelope_sha256: &str) -> Result<bool, StoreError>;
    /// The highest accepted sequence of the site.
    fn last_sequence(&self, site_id: &str) -> Result<Option<u64>, StoreError>;
    /// Stores the report unless its envelope is stored already or the site has a sequence at
    /// least as high (checked atomically with the write, [`insert_refusal`]).
    fn insert(&mut self, report: &NewReport<'_>) -> Result<Inserted, StoreError>;
    /// The latest accepted report of every site that reported.
    fn latest_per_site(&self) -> Result<Vec<StoredReport>, StoreError>;
    /// Accepted reports in total (for tests and the admin).
    fn count(&self) -> Result<u64, StoreError>;
}

/// A boxed store is a store (the CLI picks the backend at start).
impl<S: ReportStore + ?Sized> ReportStore for Box<S> {
    fn has_envelope(&self, site_id: &str, envelope_sha256: &str) -> Result<bool, StoreError> {
        (**self).has_envelope(site_id, envelope_sha256)
    }
    fn last_sequence(&self, site_id: &str) -> Result<Option<u64>, StoreError> {
        (**self).last_sequence(site_id)
    }
    fn insert(&mut self, report: &NewReport<'_>) -> Result<Inserted, StoreError> {
        (**self).insert(report)
    }
    fn latest_per_site(&self) -> Result<Vec<StoredReport>, StoreError> {
        (**self).latest_per_site()
    }
    fn count(&self) -> Result<u64, StoreError> {
        (**self).count()
    }
}

/// Turns a stored row back into a report; a row that does not parse names its site.
pub fn stored_report(
    site: &str,
    payload: &[u8],
    received_at: Result<DateTime<Utc>, String>,
) -> Result<StoredReport, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        site: site.to_string(),
        detail,
    };
    let report: Report = serde_json::from_slice(payload).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredReport {
        report,
        received_at: received_at.map_err(corrupt)?,
    })
}

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: migrate(Connection::open(path)?, MIGRATIONS)?,
        })
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: migrate(Connection::open_in_memory()?, MIGRATIONS)?,
        })
    }
}

fn has_envelope_in(
    conn: &Connection,
    site_id: &str,
    envelope_sha256: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM reports WHERE site_id = ?1 AND envelope_sha256 = ?2",
            params![site_id, envelope_sha256],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn last_sequence_in(conn: &Connection, site_id: &str) -> Result<Option<u64>, StoreError> {
    let last: Option<i64> = conn.query_row(
        "SELECT MAX(sequence) FROM reports WHERE site_id = ?1",
        params![site_id],
        |r| r.get(0),
    )?;
    Ok(last.map(|s| s.max(0) as u64))
}

impl ReportStore for SqliteStore {
    fn has_envelope(&self, site_id: &str, envelope_sha256: &str) -> Result<bool, StoreError> {
        has_envelope_in(&self.conn, site_id, envelope_sha256)
    }

    fn last_sequence(&self, site_id: &str) -> Result<Option<u64>, StoreError> {
        last_sequence_in(&self.conn, site_id)
    }

    fn insert(&mut self, new: &NewReport<'_>) -> Result<Inserted, StoreError> {
        let site = new.report.site_id.as_str();
        // IMMEDIATE: the write lock is taken before the checks, so another process on the same
        // file cannot insert between them.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let same = has_envelope_in(&tx, site, new.envelope_sha256)?;
        if let Some(refused) =
            insert_refusal(same, last_sequence_in(&tx, site)?, new.report.sequence)
        {
            return Ok(refused);
        }
        tx.execute(
            "INSERT INTO reports (site_id, sequence, envelope_sha256, generated_at, received_at, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                site,
                sequence_to_db(new.report.sequence),
                new.envelope_sha256,
                new.report.generated_at.to_rfc3339(),
                new.received_at.to_rfc3339(),
                new.payload,
            ],
        )?;
        tx.commit()?;
        Ok(Inserted::New)
    }

    fn latest_per_site(&self) -> Result<Vec<StoredReport>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.site_id, r.received_at, r.payload FROM reports r
             JOIN (SELECT site_id, MAX(sequence) AS sequence FROM reports GROUP BY site_id) l
               ON r.site_id = l.site_id AND r.sequence = l.sequence
             ORDER BY r.site_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (site, received_at, payload) = row?;
            let received_at = DateTime::parse_from_rfc3339(&received_at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("received_at {received_at:?}: {e}"));
            out.push(stored_report(&site, &payload, received_at)?);
        }
        Ok(out)
    }

    fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn keeps_history_and_reads_the_latest_per_site_after_reopening() {
        let dir = std::env::temp_dir().join(format!("hub-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("hub.db");
        let received = "2026-11-29T22:00:00Z".parse().expect("t");
        {
            let mut store = SqliteStore::open(&path).expect("open");
            for (site, seq) in [("erlangen", 1), ("erlangen", 2), ("dresden", 5)] {
                let report = sample(site, seq, "2026-11-29T22:00:00Z");
                let payload = serde_json::to_vec(&report).expect("json");
                store
                    .insert(&NewReport {
                        report: &report,
                        payload: &payload,
                        envelope_sha256: &format!("{site}-{seq}"),
                        received_at: received,
                    })
                    .expect("insert");
            }
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.count().expect("count"), 3);
        let latest = store.latest_per_site().expect("latest");
        let seqs: Vec<(&str, u64)> = latest
            .iter()
            .map(|s| (s.report.site_id.as_str(), s.report.sequence))
            .collect();
        assert_eq!(seqs, [("dresden", 5), ("erlangen", 2)]);
        assert_eq!(store.last_sequence("erlangen").expect("last"), Some(2));
        assert_eq!(store.last_sequence("marburg").expect("last"), None);
        assert!(store.has_envelope("erlangen", "erlangen-1").expect("has"));
        assert!(!store.has_envelope("dresden", "erlangen-1").expect("has"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
