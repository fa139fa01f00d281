//! `miracolix-operator run`: the controllers.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::controller::{self, Context, Scope};
use crate::release::trust::TrustStore;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Directory of trusted release-signing public keys, one `<keyId>.pem` per key (several at
    /// once during key rotation). Mount the Secret or ConfigMap with the consortium's keys here.
    #[arg(long, env = "TRUSTED_KEYS_DIR")]
    pub trusted_keys: PathBuf,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load trusted keys from {dir}: {message}")]
    Keys { dir: String, message: String },
    #[error("cannot connect to the Kubernetes API: {0}")]
    Client(#[from] kube::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: &RunArgs) -> Result<(), RunError> {
    init_logging(&args.log_format);
    let trust = TrustStore::from_dir(&args.trusted_keys).map_err(|e| RunError::Keys {
        dir: args.trusted_keys.display().to_string(),
        message: e.to_string(),
    })?;
    let keys: Vec<&str> = trust.key_ids().collect();
    tracing::info!(?keys, "trusted release-signing keys loaded");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = kube::Client::try_default().await?;
        let ctx = Arc::new(Context::new(client, Arc::new(trust), Arc::new(SystemClock)));
        let scope = match &args.namespace {
            Some(ns) => Scope::Namespace(ns.clone()),
            None => Scope::AllNamespaces,
        };
        tracing::info!(?scope, "starting controllers");
        // One signal stops both controllers.
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let stop = |tx: &tokio::sync::broadcast::Sender<()>| {
            let mut rx = tx.subscribe();
            async move {
                let _ = rx.recv().await;
            }
        };
        let sites = controller::run_dizsite(ctx.clone(), scope, stop(&tx));
        let releases = controller::component_release::run(ctx, stop(&tx));
        let signal = async {
            shutdown_signal().await;
            let _ = tx.send(());
        };
        tokio::join!(sites, releases, signal);
        tracing::info!("controllers stopped");
        Ok(())
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C (a person).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
