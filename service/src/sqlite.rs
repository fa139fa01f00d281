//! Versioned SQLite schemas. The version is `PRAGMA user_version`; `migrations[i]` moves version i
//! to i+1 and is never edited once released (add a new entry instead).

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "state database has schema version {found}, newer than this program knows ({known}); refusing to run an older version on it"
    )]
    TooNew { found: i64, known: i64 },
}

/// Brings `conn` to the newest schema, one transaction per step, and switches it to WAL so that
/// readers (an admin inspecting the file) do not block the service.
pub fn migrate(mut conn: Connection, migrations: &[&str]) -> Result<Connection, MigrateError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = migrations.len() as i64;
    if version > known {
        return Err(MigrateError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_a_newer_schema() {
        const STEPS: &[&str] = &["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER);"];
        let conn = migrate(Connection::open_in_memory().expect("open"), &STEPS[..1]).expect("v1");
        // A second run with one more step applies only that step (table a exists already).
        let conn = migrate(conn, STEPS).expect("v2");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, 2);
        assert!(matches!(
            migrate(conn, &STEPS[..1]),
            Err(MigrateError::TooNew { found: 2, known: 1 })
        ));
    }
}
