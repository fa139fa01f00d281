//! What the services' PostgreSQL stores share (the inbox's `pgstore`, the hub's `pgstore`): the
//! `--database` URL ([`Database::parse`]), the connection with its TLS rules
//! ([`connect_options`]), one connection reconnected after a failover ([`Connection`]), and
//! numbered migrations recorded in a table of the service's own ([`migrate`]).
//!
//! The `postgres` crate is synchronous and drives its connection on a runtime of its own, which
//! tokio forbids on a thread that already runs async tasks (the services call their stores from
//! their handlers, like the SQLite stores). [`off_runtime`] runs each call on a short scoped
//! thread there; the connection's lock serialises calls, as the services' mutexes already do.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use postgres::Client;
use postgres::config::SslMode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::sqlite::MigrateError;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL: {0}")]
    Sql(#[from] postgres::Error),
    #[error("PostgreSQL connection: {0}")]
    Connect(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

fn connect_error(message: impl Into<String>) -> PgError {
    PgError::Connect(message.into())
}

/// Where a service keeps its state, from `--database` (and `--database-ca-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        ca_file: Option<PathBuf>,
    },
}

impl Database {
    /// `sqlite:///path` or `postgres://…`/`postgresql://…`. A CA file is a PostgreSQL setting:
    /// given with a SQLite URL it is refused (naming the flag), not ignored, so a misconfigured
    /// deployment that meant PostgreSQL does not run on a local file unnoticed.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "--database: sqlite:// needs a path, e.g. sqlite:///var/lib/x/state.db".into(),
                );
            }
            if let Some(ca) = ca_file {
                return Err(format!(
                    "--database-ca-file {} is for a postgres:// --database; {url} is SQLite, which has no TLS",
                    ca.display()
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_string(),
                ca_file: ca_file.map(Path::to_path_buf),
            });
        }
        // Not the URL itself: it may hold a password.
        Err("--database is neither sqlite:///path nor postgres://…".into())
    }
}

/// How a store connects: the parsed URL and the TLS connector.
#[derive(Clone)]
pub struct ConnectOptions {
    config: postgres::Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's Debug redacts the password.
        f.debug_struct("ConnectOptions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    pub fn ssl_mode(&self) -> SslMode {
        self.config.get_ssl_mode()
    }
}

/// Parses a libpq-style URL (`postgres://` or `postgresql://`) and decides TLS;
/// `application_name` is what the server shows in `pg_stat_activity` unless the URL sets one.
///
/// CloudNativePG (checked against its source and docs): the `<cluster>-app` Secret's `uri` is
/// `postgresql://<owner>:<password>@<cluster>-rw.<namespace>:5432/<database>` without any
/// `sslmode`; the server always has TLS on, with a certificate signed by the cluster's own CA
/// (Secret `<cluster>-ca`, key `ca.crt`, "used as sslrootcert in clients" — CNPG docs,
/// Certificates); its default pg_hba.conf ends in `host all all all scram-sha-256`
/// (pkg/postgres/configuration.go, hbaTemplateString), so the server would also accept a plain
/// connection. The services do not allow that when they have a CA: with `ca_file` an unset
/// `sslmode` becomes `require`, verified against that CA and the host name (the server
/// certificate names the `-rw` Service).
///
/// `tokio-postgres` knows only `disable`, `prefer` and `require`; libpq's `verify-ca` and
/// `verify-full` are read as `require`, which with rustls always verifies the chain and the host
/// name (so `verify-ca` is stricter here than in libpq). `sslrootcert=<path>` in the URL is
/// the CA file when `ca_file` is not given. Without a CA file the system's roots are used.
pub fn connect_options(
    url: &str,
    ca_file: Option<&Path>,
    application_name: &str,
) -> Result<ConnectOptions, PgError> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| connect_error(format!("--database is no URL: {e}")))?;
    let mut ssl_mode: Option<String> = None;
    let mut root_cert: Option<PathBuf> = None;
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => ssl_mode = Some(v.into_owned()),
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let ca = ca_file.map(Path::to_path_buf).or(root_cert);
    let mode = match ssl_mode.as_deref() {
        None if ca.is_some() => SslMode::Require,
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => {
            return Err(connect_error(format!(
                "sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut config = postgres::Config::from_str(parsed.as_str())
        .map_err(|e| connect_error(format!("--database: {e}")))?;
    config.ssl_mode(mode);
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let mut roots = rustls::RootCertStore::empty();
    match &ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| connect_error(format!("CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(connect_error(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| connect_error(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => {
            // Unreadable system certificates are skipped, as every rustls client here does.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| connect_error(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(ConnectOptions {
        config,
        tls: MakeRustlsConnect::new(tls),
    })
}

/// Runs `f` where the synchronous client may block: directly outside a tokio runtime, else on
/// a scoped thread (a panic in `f` is re-raised here, so a transaction's drop still rolls back).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The error with its causes: a TLS failure ("invalid peer certificate: UnknownIssuer") or a
/// refused password is the source, which `Display` alone does not show.
fn describe_connect_error(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn connect(options: &ConnectOptions) -> Result<Client, PgError> {
    let options = options.clone();
    off_runtime(move || {
        options
            .config
            .connect(options.tls)
            .map_err(|e| connect_error(describe_connect_error(&e)))
    })
}

/// A service's schema: its numbered steps and the table that records the applied ones. Each
/// service has its own table, so two services may share one database (their tables differ).
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// `migrations[i]` moves version i to i+1; never edit a released step, add one.
    pub migrations: &'static [&'static str],
    /// A fixed identifier (not user input): it is written into the SQL.
    pub versions_table: &'static str,
}

/// `pg_advisory_xact_lock` key of the migration step: "MIRACOLX" in ASCII, so it does not
/// collide with another program's lock on a shared server.
const MIGRATION_LOCK: i64 = 0x4D49_5241_434F_4C58;

/// Brings the database to `steps.len()` in one transaction under an advisory lock (two pods
/// starting together migrate once); returns how many steps were applied. A database with a newer
/// version than `steps` knows is refused (an older binary after a rollback must not write a
/// newer schema).
pub fn migrate(
    client: &mut Client,
    versions_table: &str,
    steps: &[&str],
) -> Result<usize, PgError> {
    let mut tx = client.transaction()?;
    // `CREATE TABLE IF NOT EXISTS` on every start would log the server's NOTICE "already
    // exists, skipping" as an INFO line each time.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {versions_table} (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )"
    ))?;
    let found: i32 = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {versions_table}"),
            &[],
        )?
        .get(0);
    let known = steps.len() as i64;
    if i64::from(found) > known {
        return Err(PgError::Migrate(MigrateError::TooNew {
            found: found.into(),
            known,
        }));
    }
    let mut applied = 0;
    let insert = format!("INSERT INTO {versions_table} (version) VALUES ($1)");
    for (i, sql) in steps.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql)?;
        let version = i as i32 + 1;
        tx.execute(&insert, &[&version])?;
        applied += 1;
    }
    tx.commit()?;
    Ok(applied)
}

/// One connection behind a lock, migrated at open, reconnected when the server closed it (a
/// failover of the CloudNativePG primary closes every connection).
pub struct Connection {
    options: ConnectOptions,
    /// `None` only while dropping: the client's own drop blocks on its runtime, so it is
    /// dropped off the async runtime too ([`Drop`] below).
    client: Mutex<Option<Client>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let slot = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = slot.take() {
            off_runtime(move || drop(client));
        }
    }
}

impl Connection {
    /// Connects and brings the database to `schema`'s newest version.
    pub fn open(options: ConnectOptions, schema: Schema) -> Result<Self, PgError> {
        let mut client = connect(&options)?;
        if let Err(e) =
            off_runtime(|| migrate(&mut client, schema.versions_table, schema.migrations))
        {
            off_runtime(move || drop(client));
            return Err(e);
        }
        Ok(Self {
            options,
            client: Mutex::new(Some(client)),
        })
    }

    /// Runs `f` with the connection (off the async runtime), reconnecting first when the server
    /// closed it.
    pub fn with<T: Send, E: From<PgError> + Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let slot: &mut Option<Client> = &mut guard;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let fresh = connect(&self.options)?;
            if let Some(old) = slot.replace(fresh) {
                off_runtime(move || drop(old));
            }
        }
        match slot.as_mut() {
            Some(client) => off_runtime(move || f(client)),
            None => Err(connect_error("no connection").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_and_the_ca_file() {
        assert_eq!(
            Database::parse("sqlite:///var/lib/x/state.db", None),
            Ok(Database::Sqlite("/var/lib/x/state.db".into()))
        );
        assert_eq!(
            Database::parse("postgres://svc:pw@db/svc", Some(Path::new("/ca.crt"))),
            Ok(Database::Postgres {
                url: "postgres://svc:pw@db/svc".into(),
                ca_file: Some("/ca.crt".into())
            })
        );
        assert!(matches!(
            Database::parse("postgresql://svc@db/svc", None),
            Ok(Database::Postgres { ca_file: None, .. })
        ));
        assert!(Database::parse("sqlite://", None).is_err());
        let err = Database::parse("postgres-ish://u:secret@db", None).expect_err("scheme");
        assert!(
            !err.contains("secret"),
            "the URL may hold a password: {err}"
        );
        let err = Database::parse("/var/lib/x/state.db", None).expect_err("no scheme");
        assert!(err.contains("sqlite:///path"), "{err}");
        // A CA file with SQLite is a mistake named by its flag, not a silently unused setting.
        let err = Database::parse("sqlite:///var/lib/x/state.db", Some(Path::new("/ca.crt")))
            .expect_err("CA with SQLite");
        assert!(err.contains("--database-ca-file /ca.crt"), "{err}");
    }

    fn mode(url: &str, ca: Option<&Path>) -> Result<SslMode, String> {
        connect_options(url, ca, "test")
            .map(|o| o.ssl_mode())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ssl_modes_from_the_url_and_the_ca_file() {
        let dir = std::env::temp_dir().join(format!("service-pg-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.crt");
        let cert = rcgen::generate_simple_self_signed(vec!["db".into()]).expect("cert");
        std::fs::write(&ca, cert.cert.pem()).expect("write");
        // CloudNativePG's uri has no sslmode: with its CA mounted, TLS is required.
        let cnpg = "postgresql://app:pw@inbox-inbox-db-rw.ns:5432/app";
        assert_eq!(mode(cnpg, Some(&ca)), Ok(SslMode::Require));
        assert_eq!(mode(cnpg, None), Ok(SslMode::Prefer));
        assert_eq!(
            mode(&format!("{cnpg}?sslmode=verify-full"), None),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode(
                &format!("{cnpg}?sslmode=verify-ca&sslrootcert={}", ca.display()),
                None
            ),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode(&format!("{cnpg}?sslmode=disable"), Some(&ca)),
            Ok(SslMode::Disable)
        );
        let err = mode(&format!("{cnpg}?sslmode=allow"), None).expect_err("allow");
        assert!(err.contains("sslmode=allow"), "{err}");
        let missing = dir.join("missing.crt");
        let err = mode(cnpg, Some(&missing)).expect_err("missing CA");
        assert!(err.contains("missing.crt"), "{err}");
        std::fs::write(&missing, "not a certificate").expect("write");
        let err = mode(cnpg, Some(&missing)).expect_err("empty CA");
        assert!(err.contains("no certificate"), "{err}");
        // The password never shows in the options' Debug output.
        let shown = format!(
            "{:?}",
            connect_options(cnpg, None, "test").expect("options")
        );
        assert!(!shown.contains("pw"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
