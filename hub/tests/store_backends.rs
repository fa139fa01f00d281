//! One report-store contract, two backends: SQLite (a file) and a real PostgreSQL server started
//! by the test (`miracolix_service::pg_test_server`, TLS from a test CA and SCRAM passwords as
//! CloudNativePG has them; skipped with the reason outside CI when PostgreSQL is not installed,
//! a failure under `CI=true`). Plus what only PostgreSQL has (migrations recorded in
//! `hub_schema_migrations`, TLS and password failures), and a hub on PostgreSQL over HTTP that
//! still serves its reports after a restart.

mod common;

use chrono::{DateTime, Duration, Utc};
use hyper::StatusCode;
use miracolix_hub::cli::open_store;
use miracolix_hub::matrix::Matrix;
use miracolix_hub::pgstore::{self, PgStore, connect_options};
use miracolix_hub::report::Report;
use miracolix_hub::store::{self, Inserted, NewReport, ReportStore, SqliteStore, StoreError};
use miracolix_service::pg::{self, Database};
use miracolix_service::pg_test_server::{PASSWORD, PgServer, applied_versions, server_or_skip};

use common::{SITES, bearer, get, now, post_report, report, start_with, temp_dir};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

/// Inserts site `i`'s report `sequence` with envelope `envelope`.
fn insert(
    store: &mut dyn ReportStore,
    i: usize,
    sequence: u64,
    envelope: &str,
    received: DateTime<Utc>,
) -> (Report, Inserted) {
    let report = report(
        i,
        sequence,
        received - Duration::minutes(1),
        &[("Patient", 1000 + sequence)],
    );
    let payload = serde_json::to_vec(&report).expect("json");
    let inserted = store
        .insert(&NewReport {
            report: &report,
            payload: &payload,
            envelope_sha256: envelope,
            received_at: received,
        })
        .expect("insert");
    (report, inserted)
}

/// The store contract, for any backend; `open` opens (and migrates) the same database again.
fn contract(open: &mut dyn FnMut() -> Box<dyn ReportStore>) {
    let (dresden, erlangen, magdeburg) = (0, 1, 2);
    let t0 = at("2026-11-29T22:00:00Z");
    let mut store = open();
    let s: &mut dyn ReportStore = &mut store;

    // An empty database, migrated from nothing.
    assert_eq!(s.count().expect("count"), 0);
    assert!(s.latest_per_site().expect("latest").is_empty());
    assert_eq!(s.last_sequence(SITES[erlangen]).expect("last"), None);
    assert!(!s.has_envelope(SITES[erlangen], "e1").expect("has"));

    let (_, new) = insert(s, erlangen, 1, "e1", t0);
    assert_eq!(new, Inserted::New);
    let (erlangen_2, new) = insert(s, erlangen, 2, "e2", t0 + Duration::minutes(10));
    assert_eq!(new, Inserted::New);
    assert_eq!(insert(s, dresden, 5, "d5", t0).1, Inserted::New);

    // The same envelope again is recognised before the sequence: a retry, whatever its number.
    assert_eq!(
        insert(s, erlangen, 2, "e2", t0 + Duration::hours(1)).1,
        Inserted::SameEnvelope
    );
    assert_eq!(insert(s, erlangen, 1, "e1", t0).1, Inserted::SameEnvelope);
    // Another envelope with a sequence not above the last is not stored.
    assert_eq!(
        insert(s, erlangen, 2, "e2-other", t0).1,
        Inserted::NotNewer { last: 2 }
    );
    assert_eq!(
        insert(s, erlangen, 1, "e1-other", t0).1,
        Inserted::NotNewer { last: 2 }
    );
    // Envelopes and sequences are per site.
    assert!(!s.has_envelope(SITES[dresden], "e1").expect("has"));
    let (dresden_6, new) = insert(s, dresden, 6, "e1", t0 + Duration::minutes(5));
    assert_eq!(new, Inserted::New);
    // The largest sequence a report may carry (report::open refuses more) round-trips.
    let top = i64::MAX as u64;
    assert_eq!(insert(s, magdeburg, top, "m", t0).1, Inserted::New);
    assert_eq!(
        insert(s, magdeburg, top, "m-other", t0).1,
        Inserted::NotNewer { last: top }
    );
    assert_eq!(s.count().expect("count"), 5);
    drop(store);

    // Reopened (a restart: migrations run again and change nothing), the history is there.
    let store = open();
    assert_eq!(store.count().expect("count"), 5);
    assert_eq!(store.last_sequence(SITES[erlangen]).expect("last"), Some(2));
    assert_eq!(store.last_sequence(SITES[dresden]).expect("last"), Some(6));
    assert_eq!(
        store.last_sequence(SITES[magdeburg]).expect("last"),
        Some(top)
    );
    assert_eq!(store.last_sequence(SITES[3]).expect("last"), None);
    assert!(store.has_envelope(SITES[erlangen], "e1").expect("has"));
    assert!(
        !store
            .has_envelope(SITES[erlangen], "e2-other")
            .expect("has")
    );
    let latest = store.latest_per_site().expect("latest");
    let seen: Vec<(&str, u64)> = latest
        .iter()
        .map(|s| (s.report.site_id.as_str(), s.report.sequence))
        .collect();
    assert_eq!(
        seen,
        [
            (SITES[dresden], 6),
            (SITES[erlangen], 2),
            (SITES[magdeburg], top)
        ],
        "the latest of each site, by site id"
    );
    assert_eq!(latest[0].report, dresden_6);
    assert_eq!(latest[0].received_at, t0 + Duration::minutes(5));
    assert_eq!(latest[1].report, erlangen_2);
    assert_eq!(latest[1].received_at, t0 + Duration::minutes(10));
}

#[test]
fn sqlite_store_contract_and_migrations() {
    let dir = temp_dir("store-sqlite");
    let path = dir.join("hub.db");
    contract(&mut || Box::new(SqliteStore::open(&path).expect("open")));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, store::MIGRATIONS.len() as i64);
    conn.pragma_update(None, "user_version", version + 1)
        .expect("newer");
    drop(conn);
    let err = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    assert!(err.to_string().contains("newer"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// As the hub runs against CloudNativePG: the -app uri without sslmode, the cluster CA in a file.
fn tls_database(server: &PgServer, database: &str) -> Database {
    Database::Postgres {
        url: server.url(database),
        ca_file: Some(server.ca_file.clone()),
    }
}

fn open_pg(server: &PgServer, database: &str) -> Result<PgStore, StoreError> {
    PgStore::open(connect_options(
        &server.url(database),
        Some(&server.ca_file),
    )?)
}

#[test]
fn postgres_store_contract_migrations_and_connection_errors() {
    let Some(server) = server_or_skip() else {
        return;
    };

    // The contract over TLS verified against the server's CA, opened the way the CLI opens it.
    server.database("contract");
    let database = tls_database(&server, "contract");
    contract(&mut || open_store(&database).expect("open"));

    // Migrations from the empty database: recorded once in the hub's own table; re-running is
    // a no-op; a newer schema is refused with both versions named.
    let mut admin = server.admin("contract");
    let expected: Vec<i32> = (1..=pgstore::MIGRATIONS.len() as i32).collect();
    assert_eq!(
        applied_versions(&mut admin, pgstore::VERSIONS_TABLE),
        expected
    );
    assert_eq!(
        pg::migrate(&mut admin, pgstore::VERSIONS_TABLE, pgstore::MIGRATIONS).expect("re-run"),
        0,
        "re-running the migrations applies nothing"
    );
    let mut newer: Vec<&str> = pgstore::MIGRATIONS.to_vec();
    newer.push("CREATE TABLE from_the_future (x INTEGER);");
    assert_eq!(
        pg::migrate(&mut admin, pgstore::VERSIONS_TABLE, &newer).expect("newer"),
        1
    );
    let err = open_pg(&server, "contract")
        .err()
        .expect("a newer schema is refused");
    assert!(matches!(err, StoreError::Migrate(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {}", newer.len()))
            && text.contains(&format!("({})", pgstore::MIGRATIONS.len()))
            && text.contains("newer"),
        "{text}"
    );

    // A database another service migrated (the inbox's `schema_migrations` at version 2) is
    // no obstacle: the hub records its versions in its own table.
    server.database("shared");
    let mut other = server.admin("shared");
    assert_eq!(
        pg::migrate(
            &mut other,
            "schema_migrations",
            &[
                "CREATE TABLE proposals (id TEXT);",
                "ALTER TABLE proposals ADD COLUMN x INTEGER;"
            ]
        )
        .expect("another service's schema"),
        2
    );
    let store = open_pg(&server, "shared").expect("the hub beside another service");
    assert_eq!(store.count().expect("count"), 0);
    drop(store);

    // TLS is verified: the system roots do not know the test CA, so sslmode=require without
    // the CA fails naming the certificate.
    let err = PgStore::open(
        connect_options(&format!("{}?sslmode=require", server.url("shared")), None).expect("opts"),
    )
    .err()
    .expect("unknown CA refused");
    assert!(matches!(err, StoreError::Connect(_)), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // A wrong password is an error naming authentication, not a hang.
    let wrong = server.url("shared").replace(PASSWORD, "wrong");
    let err = PgStore::open(connect_options(&wrong, Some(&server.ca_file)).expect("opts"))
        .err()
        .expect("wrong password");
    assert!(err.to_string().contains("password"), "{err}");
    // A CA file that is not one fails before connecting, naming the file.
    let bogus = temp_dir("store-bogus-ca").join("ca.crt");
    std::fs::write(&bogus, "not a certificate").expect("write");
    let err = connect_options(&server.url("shared"), Some(&bogus)).expect_err("bogus CA");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

/// Two hub replicas on one database: while replica A is inside its insert of sequence 5 (the
/// site's lock held, the row written, not committed), replica B's insert of sequence 4 waits for
/// the lock and then sees A's row, so it is refused, not stored below A's. Without the lock B
/// would not wait (the poll below fails) and would store 4 after 5.
#[test]
fn postgres_replicas_cannot_store_a_lower_sequence_after_a_higher() {
    let Some(server) = server_or_skip() else {
        return;
    };
    server.database("race");
    let mut replica_b = open_pg(&server, "race").expect("open");
    let erlangen = 1;
    let site = SITES[erlangen];
    let sent = report(erlangen, 5, now(), &[("Patient", 1200)]);
    let mut a = server.admin("race");
    let mut replica_a = a.transaction().expect("transaction");
    replica_a
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&pgstore::SITE_LOCK, &site],
        )
        .expect("lock");
    replica_a
        .execute(
            "INSERT INTO reports (site_id, sequence, envelope_sha256, generated_at, received_at, payload)
             VALUES ($1, 5, 'a5', now(), now(), $2)",
            &[&site, &serde_json::to_vec(&sent).expect("json")],
        )
        .expect("replica A's row");
    let mut watcher = server.admin("race");
    let outcome = std::thread::scope(|s| {
        let b = s.spawn(|| insert(&mut replica_b, erlangen, 4, "b4", now()).1);
        // Bounded wait until B is blocked on the site's lock.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .expect("pg_locks")
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                !b.is_finished() && std::time::Instant::now() < deadline,
                "replica B did not wait for the site's lock held by replica A"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        replica_a.commit().expect("replica A commits");
        b.join().expect("replica B")
    });
    assert_eq!(outcome, Inserted::NotNewer { last: 5 });
    assert_eq!(replica_b.count().expect("count"), 1);
    assert_eq!(replica_b.last_sequence(site).expect("last"), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_on_postgres_keeps_its_reports_across_a_restart() {
    let Some(server) = server_or_skip() else {
        return;
    };
    server.database("http");
    let database = tls_database(&server, "http");

    // First run: a report is accepted over HTTP, then the hub stops.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (first, task) = start_with(
        temp_dir("pg-first"),
        false,
        None,
        open_store(&database).expect("store"),
        async move {
            let _ = stopped.await;
        },
    )
    .await;
    let sent = report(1, 7, now() - Duration::minutes(2), &[("Patient", 120_000)]);
    let answer = post_report(&first, 1, &sent).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let again = post_report(&first, 1, &sent).await;
    assert_eq!(again.status, StatusCode::OK, "a retry is a duplicate");
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the first hub stops within 10 s")
        .expect("the first hub's task");
    drop(first);

    // Second run: a new store on the same database (migrations find it current); the matrix
    // shows the report, and the replay rule holds across the restart.
    let (second, _task) = start_with(
        temp_dir("pg-second"),
        false,
        None,
        open_store(&database).expect("store after the restart"),
        std::future::pending(),
    )
    .await;
    let matrix = get(
        &second.url("/api/v1/matrix"),
        &[("authorization", &bearer())],
    )
    .await;
    assert_eq!(matrix.status, StatusCode::OK, "{}", matrix.text());
    let matrix: Matrix = serde_json::from_slice(&matrix.body).expect("matrix");
    let row = |site: &str| {
        matrix
            .sites
            .iter()
            .find(|r| r.site_id == site)
            .unwrap_or_else(|| panic!("{site} is registered"))
    };
    let erlangen = row(SITES[1]);
    assert_eq!(
        erlangen.last_report,
        Some(now()),
        "received by the first run"
    );
    assert_eq!(
        erlangen.release.as_ref().map(|r| r.name.as_str()),
        Some("miracolix-2026.1")
    );
    assert!(!erlangen.stale);
    assert_eq!(row(SITES[0]).last_report, None, "dresden never reported");
    let replayed = post_report(&second, 1, &report(1, 7, now(), &[("Patient", 121_000)])).await;
    assert_eq!(replayed.status, StatusCode::CONFLICT, "{}", replayed.text());
    let retried = post_report(&second, 1, &sent).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
}
