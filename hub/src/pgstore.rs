//! PostgreSQL behind the [`ReportStore`] trait (`--database postgres://…`): a CloudNativePG
//! cluster or an external server, for a hub that should not keep its reports on a local volume,
//! or that runs more than one replica.
//!
//! Same semantics as [`crate::store::SqliteStore`], checked by one contract test against both
//! (hub/tests/store_backends.rs): idempotent on the same envelope, a site's sequence only
//! rises, the latest report of every site ordered by site id (byte order, `COLLATE "C"`, as
//! SQLite's default). [`ReportStore::insert`] takes a transaction-scoped advisory lock on the
//! site before it checks and writes, so two hub replicas receiving reports of one site at once
//! cannot both accept the same sequence or store a lower one after a higher; the primary key and
//! the unique envelope index are the last guard.
//!
//! Migrations: [`MIGRATIONS`] has the same numbered steps as [`crate::store::MIGRATIONS`] (the
//! SQL differs: `TIMESTAMPTZ`, `BYTEA`, `BIGINT`). Applied versions are rows of
//! `hub_schema_migrations` (not the inbox's `schema_migrations`, so both may share a database);
//! the runner, the connection with its TLS rules and the reconnect after a failover are
//! `miracolix_service::pg`'s, shared with the inbox.
//!
//! Times: `TIMESTAMPTZ` keeps microseconds, SQLite's RFC 3339 text keeps what chrono gives
//! (nanoseconds); the matrix shows ages in minutes.

use chrono::{DateTime, Utc};
use miracolix_service::pg::{self, ConnectOptions, Connection, Schema};
use postgres::GenericClient;

use crate::store::{
    Inserted, NewReport, ReportStore, StoreError, StoredReport, insert_refusal, sequence_to_db,
    stored_report,
};

/// Schema steps; `MIGRATIONS[i]` moves version i to i+1, the same steps as SQLite's
/// (`store::MIGRATIONS`). Never edit a released step; add one.
pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE reports (
        site_id TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        envelope_sha256 TEXT NOT NULL,
        generated_at TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        payload BYTEA NOT NULL,
        PRIMARY KEY (site_id, sequence)
     );
     CREATE UNIQUE INDEX reports_envelope ON reports (site_id, envelope_sha256);",
];

/// The table of applied versions.
pub const VERSIONS_TABLE: &str = "hub_schema_migrations";

/// First key of `pg_advisory_xact_lock(int, int)` for a site's insert ("HUBR" in ASCII); the
/// second is `hashtext(site_id)`. A hash collision only serialises two sites' inserts.
pub const SITE_LOCK: i32 = 0x4855_4252;

/// [`pg::connect_options`] as the hub connects (`application_name=miracolix-hub`).
pub fn connect_options(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<ConnectOptions, StoreError> {
    Ok(pg::connect_options(url, ca_file, "miracolix-hub")?)
}

pub struct PgStore {
    conn: Connection,
}

impl PgStore {
    /// Connects and migrates.
    pub fn open(options: ConnectOptions) -> Result<Self, StoreError> {
        let schema = Schema {
            migrations: MIGRATIONS,
            versions_table: VERSIONS_TABLE,
        };
        Ok(Self {
            conn: Connection::open(options, schema)?,
        })
    }
}

fn has_envelope_in(
    c: &mut impl GenericClient,
    site_id: &str,
    envelope_sha256: &str,
) -> Result<bool, StoreError> {
    Ok(c.query_opt(
        "SELECT 1 FROM reports WHERE site_id = $1 AND envelope_sha256 = $2",
        &[&site_id, &envelope_sha256],
    )?
    .is_some())
}

fn last_sequence_in(c: &mut impl GenericClient, site_id: &str) -> Result<Option<u64>, StoreError> {
    let last: Option<i64> = c
        .query_one(
            "SELECT MAX(sequence) FROM reports WHERE site_id = $1",
            &[&site_id],
        )?
        .try_get(0)?;
    Ok(last.map(|s| s.max(0) as u64))
}

impl ReportStore for PgStore {
    fn has_envelope(&self, site_id: &str, envelope_sha256: &str) -> Result<bool, StoreError> {
        self.conn
            .with(|c| has_envelope_in(c, site_id, envelope_sha256))
    }

    fn last_sequence(&self, site_id: &str) -> Result<Option<u64>, StoreError> {
        self.conn.with(|c| last_sequence_in(c, site_id))
    }

    fn insert(&mut self, new: &NewReport<'_>) -> Result<Inserted, StoreError> {
        let site = new.report.site_id.as_str();
        self.conn.with(|c| {
            let mut tx = c.transaction()?;
            // Held until commit or rollback: the checks below see every report of this site
            // that another replica committed before.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&SITE_LOCK, &site],
            )?;
            let same = has_envelope_in(&mut tx, site, new.envelope_sha256)?;
            let last = last_sequence_in(&mut tx, site)?;
            if let Some(refused) = insert_refusal(same, last, new.report.sequence) {
                return Ok(refused);
            }
            tx.execute(
                "INSERT INTO reports (site_id, sequence, envelope_sha256, generated_at, received_at, payload)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &site,
                    &sequence_to_db(new.report.sequence),
                    &new.envelope_sha256,
                    &new.report.generated_at,
                    &new.received_at,
                    &new.payload,
                ],
            )?;
            tx.commit()?;
            Ok(Inserted::New)
        })
    }

    fn latest_per_site(&self) -> Result<Vec<StoredReport>, StoreError> {
        self.conn.with(|c| {
            let rows = c.query(
                "SELECT DISTINCT ON (site_id COLLATE \"C\") site_id, received_at, payload
                 FROM reports ORDER BY site_id COLLATE \"C\", sequence DESC",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let site: String = r.try_get(0)?;
                    let received_at: DateTime<Utc> = r.try_get(1)?;
                    let payload: Vec<u8> = r.try_get(2)?;
                    stored_report(&site, &payload, Ok(received_at))
                })
                .collect()
        })
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.conn.with(|c| {
            let n: i64 = c
                .query_one("SELECT COUNT(*) FROM reports", &[])?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_numbered_steps_as_sqlite() {
        assert_eq!(MIGRATIONS.len(), crate::store::MIGRATIONS.len());
    }
}
