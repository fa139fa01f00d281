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
use crate::sites::{Registry, SitesError};
use crate::store::{SqliteStore, StoreError};
use crate::{Hub, HubConfig};

/// `miracolix-operator hub`: every setting is also an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Feed, reports, matrix, Data Map and the web page.
    #[arg(long, env = "HUB_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// /healthz, /readyz, /metrics.
    #[arg(long, env = "HUB_OPS_LISTEN", default_value = "0.0.0.0:8081")]
    pub ops_listen: SocketAddr,
    /// Directory for hub.db (the reports); a persistent volume.
    #[arg(long, env = "HUB_STATE_DIR", default_value = "/var/lib/miracolix-hub")]
    pub state_dir: PathBuf,
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
    #[error(transparent)]
    Bind(#[from] miracolix_service::http::BindError),
    #[error("{0}")]
    Invalid(String),
}

pub use miracolix_service::process::EXIT_ERROR;

/// Builds the feed verifier from the trusted-keys directory and the threshold.
pub type MakeVerifier = dyn FnOnce(&Path, usize) -> Result<Arc<dyn EntryVerifier>, String> + Send;

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
    let sites = Registry::load(&args.sites)?;
    let access = Access::load(args.readers.as_deref(), args.public_read)?;
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| HubError::StateDir(args.state_dir.display().to_string(), e))?;
    let store = SqliteStore::open(&args.state_dir.join("hub.db"))?;
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
