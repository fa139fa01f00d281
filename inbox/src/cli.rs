//! The inbox's command line: `miracolix-operator inbox` (the one image runs every binary the
//! project ships as a subcommand, docs/image.md). The operator binary only parses [`InboxArgs`]
//! and calls [`main`]. Every setting is also an environment variable (the controller's
//! Deployment sets those, docs/proposals.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::client::HttpClient;
use crate::config::InboxConfig;
use crate::pgstore::{PostgresStore, connect_options};
use crate::proposal::{CentralKeys, ed25519_keypair_from_pem};
use crate::server::{Inbox, Parts};
use crate::store::{SqliteStore, Store};
use miracolix_service::pg::Database;

#[derive(Debug, Clone, clap::Args)]
pub struct InboxArgs {
    /// Web page, JSON API and the central office's intake (POST /api/v1/proposals).
    #[arg(long, env = "INBOX_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// /healthz, /readyz, /metrics and GET /api/v1/summary (counts only, for the controller).
    #[arg(long, env = "INBOX_OPS_LISTEN", default_value = "0.0.0.0:8081")]
    pub ops_listen: SocketAddr,
    /// config.json (written by the controller into a ConfigMap).
    #[arg(
        long,
        env = "INBOX_CONFIG",
        default_value = "/etc/miracolix-inbox/config.json"
    )]
    pub config: PathBuf,
    /// sqlite:///path/to/inbox.db, or postgres://user:password@host:port/database (also
    /// postgresql://; sslmode and sslrootcert as libpq reads them, docs/proposals.md).
    #[arg(
        long,
        env = "INBOX_DATABASE",
        default_value = "sqlite:///var/lib/miracolix-inbox/inbox.db"
    )]
    pub database: String,
    /// PEM CA the PostgreSQL server's certificate must chain to (CloudNativePG: the
    /// `<cluster>-ca` Secret's ca.crt); with it, TLS is required unless the URL says
    /// sslmode=disable. Only with a postgres:// --database.
    #[arg(long, env = "INBOX_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Directory of PEM Ed25519 public keys of the central office; file name = key id.
    #[arg(
        long,
        env = "INBOX_CENTRAL_KEYS",
        default_value = "/etc/miracolix-inbox/central-keys"
    )]
    pub central_keys: PathBuf,
    /// PKCS#8 PEM Ed25519 key that signs this site's decisions.
    #[arg(
        long,
        env = "INBOX_DECISION_KEY",
        default_value = "/etc/miracolix-inbox/decision-key/key.pem"
    )]
    pub decision_key: PathBuf,
    /// File with the secret (at least 32 bytes) that signs session cookies.
    #[arg(
        long,
        env = "INBOX_SESSION_SECRET_FILE",
        default_value = "/etc/miracolix-inbox/session/secret"
    )]
    pub session_secret_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Database(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::proposal::KeyError),
    #[error("--central-keys {0}: no key; the inbox could not accept any proposal")]
    NoKeys(String),
    #[error("--decision-key {0}: {1}")]
    DecisionKey(String, String),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("--session-secret-file {0}: at least 32 bytes needed, found {1}")]
    ShortSecret(String, usize),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Exit status when the inbox cannot start or stops on an error (shared by the project's services).
pub const EXIT_ERROR: u8 = miracolix_service::process::EXIT_ERROR;

/// How often the outbox is delivered and reminders are checked.
const WORKER_PERIOD: Duration = Duration::from_secs(5);

/// Run the inbox until SIGINT/SIGTERM; logs as JSON lines on stderr.
pub fn main(args: InboxArgs) -> ExitCode {
    miracolix_service::process::main("inbox", run(args))
}

fn read(path: &Path) -> Result<Vec<u8>, InboxError> {
    std::fs::read(path).map_err(|e| InboxError::Read(path.display().to_string(), e))
}

async fn run(args: InboxArgs) -> Result<(), InboxError> {
    // First: a flag that contradicts another is refused before anything is read.
    let database = Database::parse(&args.database, args.database_ca_file.as_deref())
        .map_err(InboxError::Database)?;
    let config = InboxConfig::load(&args.config)?;
    let store: Box<dyn Store> = match database {
        Database::Sqlite(path) => Box::new(SqliteStore::open(&path)?),
        Database::Postgres { url, ca_file } => Box::new(PostgresStore::open(connect_options(
            &url,
            ca_file.as_deref(),
        )?)?),
    };
    let keys = CentralKeys::load(&args.central_keys)?;
    if keys.is_empty() {
        return Err(InboxError::NoKeys(args.central_keys.display().to_string()));
    }
    let decision_key = ed25519_keypair_from_pem(&read(&args.decision_key)?)
        .map_err(|e| InboxError::DecisionKey(args.decision_key.display().to_string(), e))?;
    let secret = read(&args.session_secret_file)?;
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < 32 {
        return Err(InboxError::ShortSecret(
            args.session_secret_file.display().to_string(),
            secret.len(),
        ));
    }
    let oidc_client_secret = match &config.oidc {
        Some(o) => Some(
            String::from_utf8_lossy(&read(Path::new(&o.client_secret_file))?)
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let http = HttpClient::new(Duration::from_secs(30))?;
    let inbox = Inbox::new(Parts {
        config,
        keys,
        store,
        decision_key,
        session_secret: secret,
        oidc_client_secret,
        http,
        clock: Arc::new(chrono::Utc::now),
    })?;
    let api = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| InboxError::Bind(args.listen, e))?;
    let ops = tokio::net::TcpListener::bind(args.ops_listen)
        .await
        .map_err(|e| InboxError::Bind(args.ops_listen, e))?;
    tracing::info!(listen = %args.listen, ops = %args.ops_listen, "inbox serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(inbox.clone().run_worker(WORKER_PERIOD, async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    inbox.serve(api, ops, miracolix_service::shutdown()).await;
    let _ = stop_tx.send(true);
    let _ = worker.await;
    Ok(())
}
