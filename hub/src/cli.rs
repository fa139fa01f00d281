//! The hub's command line: `miracolix-operator hub` (the one image runs every binary the project
//! ships as a subcommand, docs/image.md). The operator binary parses [`HubArgs`] and calls
//! [`main`] with its release verification, which the hub uses for the feed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::access::{Access, AccessError};
use crate::feed::{EntryVerifier, FeedError};
use crate::pgstore::{PgStore, connect_options};
use crate::sites::{Registry, SitesError};
use crate::store::{ReportStore, SqliteStore, StoreError};
use crate::{Hub, HubConfig};
use miracolix_service::pg::Database;

/// `miracolix-operator hub`: every setting is also an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Feed, reports, matrix, Data Map and the web page.
    #[arg(long, env = "HUB_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// /healthz, /readyz, /metrics.
    #[arg(long, env = "HUB_OPS_LISTEN", default_value = "0.0.0.0:8081")]
    pub ops_listen: SocketAddr,
    /// Directory for hub.db (the reports in SQLite) when --database is not given; a persistent
    /// volume.
    #[arg(long, env = "HUB_STATE_DIR", default_value = "/var/lib/miracolix-hub")]
    pub state_dir: PathBuf,
    /// Where the reports are kept: sqlite:///path/to/hub.db (default: `<state-dir>/hub.db`), or
    /// postgres://user:password@host:port/database (also postgresql://; sslmode and sslrootcert
    /// as libpq reads them, docs/consortium.md).
    #[arg(long, env = "HUB_DATABASE")]
    pub database: Option<String>,
    /// PEM CA the PostgreSQL server's certificate must chain to (CloudNativePG: the
    /// `<cluster>-ca` Secret's ca.crt); with it, TLS is required unless the URL says
    /// sslmode=disable. Only with a postgres:// --database.
    #[arg(long, env = "HUB_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Registered sites and their report-signing public keys (JSON; docs/consortium.md).
    #[arg(long, env = "HUB_SITES")]
    pub sites: PathBuf,
    /// Who may read the matrix, the Data Map and the page: static token hashes (JSON).
    #[arg(long, env = "HUB_READERS")]
    pub readers: Option<PathBuf>,
    /// Serve the matrix, the Data Map and the page without a token (when an authenticating
    /// proxy stands in front of the hub).
    #[arg(long, env = "HUB_PUBLIC_READ")]
    pub public_read: bool,
    /// Directory of signed ComponentRelease and ReleaseRevocation manifests to serve as the feed.
    #[arg(long, env = "HUB_FEED_DIR", requires = "trusted_keys")]
    pub feed_dir: Option<PathBuf>,
    /// Trusted release-signing public keys (`<keyId>.pem`), as the operator's --trusted-keys.
    #[arg(long, env = "HUB_TRUSTED_KEYS")]
    pub trusted_keys: Option<PathBuf>,
    /// Distinct trusted keys that must sign a feed entry.
    #[arg(long, env = "HUB_SIGNATURE_THRESHOLD", default_value_t = 1)]
    pub signature_threshold: usize,
    /// Seconds between re-reads of the feed directory.
    #[arg(long, env = "HUB_FEED_RELOAD_SECONDS", default_value_t = 30)]
    pub feed_reload_seconds: u64,
    /// Reports generated longer ago than this many seconds are refused as stale.
    #[arg(long, env = "HUB_REPORT_WINDOW_SECONDS", default_value_t = 3600)]
    pub report_window_seconds: u64,
    /// Reports generated up to this many seconds in the future (clock skew) are accepted.
    #[arg(long, env = "HUB_CLOCK_SKEW_SECONDS", default_value_t = 300)]
    pub clock_skew_seconds: u64,
    /// A site whose last report is older than this many seconds is shown as stale.
    #[arg(long, env = "HUB_STALE_AFTER_SECONDS", default_value_t = 3600)]
    pub stale_after_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Sites(#[from] SitesError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("--trusted-keys: {0}")]
    TrustedKeys(String),
    #[error("cannot create the state directory {0}: {1}")]
    StateDir(String, std::io::Error),
    #[error("{0}")]
    Database(String),
    #[error(transparent)]
    Bind(#[from] miracolix_service::http::BindError),
    #[error("{0}")]
    Invalid(String),
}

pub use miracolix_service::process::EXIT_ERROR;

/// Builds the feed verifier from the trusted-keys directory and the threshold.
pub type MakeVerifier = dyn FnOnce(&Path, usize) -> Result<Arc<dyn EntryVerifier>, String> + Send;

/// Where the reports are kept, from `--database` (default `sqlite://<state-dir>/hub.db`) and
/// `--database-ca-file`, which is refused with SQLite.
pub fn database(args: &HubArgs) -> Result<Database, HubError> {
    let url = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", args.state_dir.join("hub.db").display()),
    };
    Database::parse(&url, args.database_ca_file.as_deref()).map_err(HubError::Database)
}

/// Opens (and migrates) the store; a SQLite file's directory is created first.
pub fn open_store(database: &Database) -> Result<Box<dyn ReportStore>, HubError> {
    Ok(match database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| HubError::StateDir(dir.display().to_string(), e))?;
            }
            Box::new(SqliteStore::open(path)?)
        }
        Database::Postgres { url, ca_file } => {
            Box::new(PgStore::open(connect_options(url, ca_file.as_deref())?)?)
        }
    })
}

/// Runs the hub until SIGINT/SIGTERM; logs as JSON lines on stderr.
pub fn main(args: HubArgs, make_verifier: Box<MakeVerifier>) -> ExitCode {
    miracolix_service::process::main("hub", run(args, make_verifier))
}

async fn run(args: HubArgs, make_verifier: Box<MakeVerifier>) -> Result<(), HubError> {
    if args.feed_reload_seconds == 0 || args.report_window_seconds == 0 {
        return Err(HubError::Invalid(
            "--feed-reload-seconds and --report-window-seconds must be at least 1".into(),
        ));
    }
    let database = database(&args)?;
    let sites = Registry::load(&args.sites)?;
    let access = Access::load(args.readers.as_deref(), args.public_read)?;
    let store = open_store(&database)?;
    let config = HubConfig {
        report_window: Duration::from_secs(args.report_window_seconds),
        clock_skew: Duration::from_secs(args.clock_skew_seconds),
        stale_after: Duration::from_secs(args.stale_after_seconds),
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config, sites, access, store);
    if let (Some(dir), Some(keys)) = (&args.feed_dir, &args.trusted_keys) {
        let verifier =
            make_verifier(keys, args.signature_threshold.max(1)).map_err(HubError::TrustedKeys)?;
        hub = hub.with_feed(dir.clone(), verifier)?;
        let reloader = hub.clone();
        let every = Duration::from_secs(args.feed_reload_seconds);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // Errors are logged and counted by reload_feed; the last good feed stays.
                let _ = reloader.reload_feed();
            }
        });
    }
    let (api, ops) = miracolix_service::http::bind(args.listen, args.ops_listen).await?;
    tracing::info!(listen = %args.listen, ops = %args.ops_listen, "hub serving");
    hub.serve(api, ops, miracolix_service::shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        hub: HubArgs,
    }

    fn parse(extra: &[&str]) -> HubArgs {
        let mut argv = vec!["hub", "--sites", "/etc/hub/sites.json"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("arguments").hub
    }

    #[test]
    fn the_database_defaults_to_sqlite_in_the_state_dir() {
        assert_eq!(
            database(&parse(&[])).expect("default"),
            Database::Sqlite("/var/lib/miracolix-hub/hub.db".into())
        );
        assert_eq!(
            database(&parse(&["--state-dir", "/srv/hub"])).expect("state dir"),
            Database::Sqlite("/srv/hub/hub.db".into())
        );
        assert_eq!(
            database(&parse(&[
                "--database",
                "postgres://hub@db/hub",
                "--database-ca-file",
                "/ca.crt"
            ]))
            .expect("postgres"),
            Database::Postgres {
                url: "postgres://hub@db/hub".into(),
                ca_file: Some("/ca.crt".into())
            }
        );
    }

    #[test]
    fn a_ca_file_with_sqlite_is_refused_naming_the_flag() {
        for extra in [
            &["--database-ca-file", "/ca.crt"][..],
            &[
                "--database",
                "sqlite:///srv/hub.db",
                "--database-ca-file",
                "/ca.crt",
            ][..],
        ] {
            let err = database(&parse(extra)).expect_err("refused").to_string();
            assert!(err.contains("--database-ca-file /ca.crt"), "{err}");
        }
    }
}
