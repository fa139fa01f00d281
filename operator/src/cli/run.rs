//! `miracolix-operator run`: the controllers, with probes, metrics, leader election and CRD
//! management around them. Operations guide: docs/operations-runtime.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::controller::{self, Context, Scope};
use crate::crd_install::{self, CrdError, CrdOutcome};
use crate::leader::{LeaderElector, LeaderError, LeaseConfig};
use crate::release::trust::TrustDir;
use crate::telemetry::{self, Endpoints, Health, Metrics, TelemetryError};

/// Where a pod finds its own namespace when the downward API does not set `POD_NAMESPACE`.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace; repeat for several (default: all namespaces). One DizSite
    /// controller runs per namespace.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Directory of trusted release-signing public keys, one `<keyId>.pem` per key (several at
    /// once during key rotation). Mount the Secret or ConfigMap with the consortium's keys here.
    #[arg(long, env = "TRUSTED_KEYS_DIR")]
    pub trusted_keys: PathBuf,
    /// How many distinct trusted keys must sign a release or revocation (k-of-n). The
    /// directory is re-read within 30 s of a change, without a restart.
    #[arg(long, env = "SIGNATURE_THRESHOLD", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub signature_threshold: u16,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// Address of the probe endpoints `/livez` and `/readyz`.
    #[arg(long, env = "PROBE_ADDRESS", default_value = "0.0.0.0:8080")]
    pub probe_address: SocketAddr,
    /// Address of the Prometheus endpoint `/metrics` (may equal the probe address).
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:9090")]
    pub metrics_address: SocketAddr,
    /// Run the controllers only while holding the `miracolix-operator` Lease (for replicas > 1).
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name, else hostname and pid).
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// How long the Lease stays valid without renewal (e.g. `15s`).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long a leader keeps failing to renew before it stops (shorter than the lease).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews the Lease.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub renew_period: Duration,
    /// How often a standby tries to take the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// Server-side apply the CRDs at start-up and wait until they are Established
    /// (`--manage-crds=false`: leave the CRDs to the cluster's administrator).
    // A bare `--manage-crds` means true; a value needs `=`, so `--manage-crds false` is refused
    // instead of silently reading `false` as an argument of its own.
    #[arg(
        long,
        env = "MANAGE_CRDS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub manage_crds: bool,
    /// How many sites each DizSite controller reconciles at once (0: no bound). Bounds the
    /// operator's memory while many sites converge at once (after an install or a restart).
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = controller::DEFAULT_CONCURRENCY)]
    pub max_concurrent_reconciles: u16,
    /// Follow the consortium's release feed at this URL (the hub's `https://…/feed/v1`): apply
    /// every ComponentRelease and ReleaseRevocation in it that verifies with the trusted keys
    /// (docs/consortium.md). Needs `create` and `patch` on both kinds (Helm: `feed.url`).
    #[arg(long, env = "FEED_URL")]
    pub feed_url: Option<String>,
    /// How often the feed is fetched (conditional requests: an unchanged feed costs one 304).
    #[arg(long, env = "FEED_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub feed_interval: Duration,
    /// PEM file of the CA certificates the feed's server certificate must chain to (default:
    /// the system's CA bundle).
    #[arg(long, env = "FEED_CA")]
    pub feed_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load trusted keys from {dir}: {message}")]
    Keys { dir: String, message: String },
    #[error("cannot connect to the Kubernetes API: {0}")]
    Client(#[from] kube::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error(transparent)]
    Crds(#[from] CrdError),
    #[error(transparent)]
    Feed(#[from] crate::feed::fetch::ClientError),
    #[error(
        "--leader-elect needs the Lease's namespace: set POD_NAMESPACE (downward API) or \
         --leader-election-namespace"
    )]
    NoLeaseNamespace,
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: in a pod, a file or a pipe, escape codes would break `grep`
    // on the fields (docs/operations.md).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `15s`, `500ms`, `2m` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 15s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    }
}

fn identity(args: &RunArgs) -> String {
    if let Some(id) = args
        .leader_election_identity
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        return id.to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    // The pid tells two processes on one host apart (local runs, tests).
    format!("{host}_{}", std::process::id())
}

fn lease_namespace(args: &RunArgs) -> Result<String, RunError> {
    args.leader_election_namespace
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .ok_or(RunError::NoLeaseNamespace)
}

/// The namespaces to watch: the flag or `WATCH_NAMESPACES`, else the older single-namespace
/// `WATCH_NAMESPACE`, so existing manifests keep working.
fn scopes(args: &RunArgs) -> Vec<Scope> {
    if args.namespaces.is_empty()
        && let Ok(ns) = std::env::var("WATCH_NAMESPACE")
    {
        return Scope::for_namespaces(&[ns]);
    }
    Scope::for_namespaces(&args.namespaces)
}

fn stop_future(
    rx: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub fn run(args: &RunArgs) -> Result<(), RunError> {
    init_logging(&args.log_format);
    let trust = TrustDir::open(&args.trusted_keys, Arc::new(SystemClock))
        .map_err(|e| RunError::Keys {
            dir: args.trusted_keys.display().to_string(),
            message: e.to_string(),
        })?
        .with_threshold(usize::from(args.signature_threshold));
    let keys: Vec<String> = trust
        .current()
        .map(|t| t.key_ids().map(str::to_string).collect())
        .unwrap_or_default();
    tracing::info!(
        ?keys,
        threshold = trust.threshold(),
        "trusted release-signing keys loaded"
    );
    let feed = match &args.feed_url {
        Some(url) => Some(crate::feed::fetch::FeedClient::new(
            url,
            args.feed_ca.as_deref(),
        )?),
        None => None,
    };
    let elect = if args.leader_elect {
        let mut cfg = LeaseConfig::new(lease_namespace(args)?, identity(args));
        cfg.lease_duration = args.lease_duration;
        cfg.renew_deadline = args.renew_deadline;
        cfg.renew_period = args.renew_period;
        cfg.retry_period = args.retry_period;
        cfg.validate()?;
        Some(cfg)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let health = Health::new();
        let metrics = Metrics::new();
        // One flag stops everything: the servers, the elector and the controllers.
        let (stop_tx, stop_rx) = watch::channel(false);
        let servers = start_servers(args, &health, &metrics, &stop_rx).await?;
        let signal = {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                let _ = stop_tx.send(true);
            })
        };
        let result = run_controllers(args, trust, elect, feed, &health, metrics, &stop_rx).await;
        let _ = stop_tx.send(true);
        signal.abort();
        for server in servers {
            let _ = server.await;
        }
        tracing::info!("stopped");
        result
    })
}

async fn start_servers(
    args: &RunArgs,
    health: &Health,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, RunError> {
    let same = args.probe_address == args.metrics_address;
    let mut plan = vec![(
        args.probe_address,
        Endpoints {
            health: Some(health.clone()),
            metrics: same.then(|| metrics.clone()),
        },
    )];
    if !same {
        plan.push((
            args.metrics_address,
            Endpoints {
                health: None,
                metrics: Some(metrics.clone()),
            },
        ));
    }
    let mut tasks = Vec::new();
    for (addr, endpoints) in plan {
        let listener = telemetry::bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(address = %local, probes = endpoints.health.is_some(), metrics = endpoints.metrics.is_some(), "serving");
        tasks.push(tokio::spawn(telemetry::serve(
            listener,
            endpoints,
            stop_future(stop),
        )));
    }
    Ok(tasks)
}

/// The operator's client of the API server.
///
/// - Every request is counted by verb, resource and status code
///   (`miracolix_api_requests_total`).
/// - A 429, 503 or 504 is retried by kube's default retry layer (`config.default_retry`,
///   kube-client 5.0 `client/retry.rs`, `RetryPolicy::server_retry`): up to 15 times with
///   exponential backoff from 5 ms, waiting the answer's `Retry-After` (seconds) instead
///   whenever that is longer. So a reconcile does not fail on a throttled request, and does
///   not come back before the server asked it to (`e2e/tests/client_retry.rs`).
pub fn api_client(config: kube::Config, metrics: &Metrics) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::telemetry::requests::RequestMetricsLayer(
            metrics.clone(),
        ))
        .build())
}

/// Retries until the API server answers (readiness stays 503 meanwhile) or shutdown.
async fn connect(
    stop: &watch::Receiver<bool>,
    metrics: &Metrics,
) -> Result<Option<kube::Client>, RunError> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = api_client(config, metrics)?;
    let mut stopped = std::pin::pin!(stop_future(stop));
    loop {
        match client.apiserver_version().await {
            Ok(v) => {
                tracing::info!(version = %v.git_version, "connected to the Kubernetes API server");
                return Ok(Some(client));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the Kubernetes API server; retrying")
            }
        }
        tokio::select! {
            () = &mut stopped => return Ok(None),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn run_controllers(
    args: &RunArgs,
    trust: TrustDir,
    elect: Option<LeaseConfig>,
    feed: Option<crate::feed::fetch::FeedClient>,
    health: &Health,
    metrics: Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<(), RunError> {
    let Some(client) = connect(stop, &metrics).await? else {
        return Ok(());
    };
    health.set_api_reachable();
    let scopes = scopes(args);
    let mut ctx = Context::new(client.clone(), Arc::new(trust), Arc::new(SystemClock))
        .with_metrics(metrics)
        .with_scopes(scopes.clone())
        .with_concurrency(args.max_concurrent_reconciles);
    if feed.is_some() {
        ctx = ctx.with_feed_followed();
    }
    let ctx = Arc::new(ctx);
    let manage_crds = args.manage_crds;
    let feed_interval = args.feed_interval;
    let work = |stopped: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>| {
        let ctx = ctx.clone();
        let scopes = scopes.clone();
        let health = health.clone();
        let client = client.clone();
        let feed = feed.clone();
        async move {
            if manage_crds {
                // Only the replica about to write applies CRDs, so a standby of an older
                // version never downgrades them.
                if let CrdOutcome::Forbidden { .. } =
                    crd_install::ensure_crds(&client, Duration::from_secs(60)).await?
                {
                    tracing::warn!("CRDs are managed outside the operator");
                }
            }
            tracing::info!(?scopes, "starting controllers");
            // One signal stops every controller.
            let (tx, rx) = watch::channel(false);
            // FeasibilityEndpoints: one controller per scope, like DizSites.
            let endpoints =
                futures::future::join_all(scopes.iter().cloned().map(|scope| {
                    controller::feasibility::run(ctx.clone(), scope, stop_future(&rx))
                }));
            // ProposalInboxes: likewise.
            let inboxes = futures::future::join_all(
                scopes
                    .iter()
                    .cloned()
                    .map(|scope| controller::inbox::run(ctx.clone(), scope, stop_future(&rx))),
            );
            let sites = controller::run_dizsites(ctx.clone(), scopes, stop_future(&rx));
            let releases = controller::component_release::run(ctx.clone(), stop_future(&rx));
            let revocations = controller::release_revocation::run(ctx.clone(), stop_future(&rx));
            // The release feed, followed by the leader only (this runs only while leading).
            let follower = async {
                if let Some(client) = feed {
                    crate::feed::Follower::with_client(ctx.clone(), client, feed_interval)
                        .run(stop_future(&rx))
                        .await;
                }
            };
            health.set_controllers_started(true);
            let relay = async {
                stopped.await;
                let _ = tx.send(true);
            };
            tokio::join!(
                sites,
                endpoints,
                inboxes,
                releases,
                revocations,
                follower,
                relay
            );
            health.set_controllers_started(false);
            tracing::info!("controllers stopped");
            Ok::<(), RunError>(())
        }
    };
    match elect {
        None => work(Box::pin(stop_future(stop))).await,
        Some(cfg) => {
            tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "leader election: waiting for the Lease");
            let elector = LeaderElector::new(client.clone(), cfg, Arc::new(SystemClock))?;
            // Standbys are ready: they are healthy and waiting, and nothing routes traffic to
            // the operator, so readiness only gates rollouts of the Deployment.
            health.set_standby(true);
            let mut roles = elector.watch_role();
            let leading = {
                let health = health.clone();
                tokio::spawn(async move {
                    while roles.changed().await.is_ok() {
                        let role = *roles.borrow_and_update();
                        health.set_leading(role == crate::leader::Role::Leader);
                    }
                })
            };
            let outcome = elector
                .run(stop_future(stop), |s| work(Box::pin(s.stopped())))
                .await;
            leading.abort();
            match outcome? {
                Some(result) => result,
                None => Ok(()),
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn flags_have_the_documented_defaults_and_namespaces_repeat() {
        let cli = Cli::try_parse_from([
            "x",
            "--trusted-keys",
            "/k",
            "--namespace",
            "a",
            "--namespace",
            "b,c",
            "--manage-crds=false",
        ])
        .expect("parses");
        let a = cli.run;
        assert_eq!(a.namespaces, vec!["a", "b", "c"]);
        assert_eq!(a.probe_address.to_string(), "0.0.0.0:8080");
        assert_eq!(a.metrics_address.to_string(), "0.0.0.0:9090");
        assert!(!a.leader_elect);
        assert!(!a.manage_crds);
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert_eq!(a.renew_deadline, Duration::from_secs(10));
        assert_eq!(a.renew_period, Duration::from_secs(5));
        assert_eq!(a.retry_period, Duration::from_secs(2));
        assert_eq!(a.feed_url, None);
        assert_eq!(a.feed_interval, Duration::from_secs(300));
        assert_eq!(a.feed_ca, None);
    }

    #[test]
    fn manage_crds_works_as_a_flag_and_with_a_value() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["x", "--trusted-keys", "/k"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|c| c.run.manage_crds)
        };
        // The default comes from MANAGE_CRDS when the environment sets it.
        if std::env::var_os("MANAGE_CRDS").is_none() {
            assert!(parse(&[]).expect("default"));
        }
        assert!(parse(&["--manage-crds"]).expect("bare flag"));
        assert!(parse(&["--manage-crds=true"]).expect("=true"));
        assert!(!parse(&["--manage-crds=false"]).expect("=false"));
        assert!(
            parse(&["--manage-crds", "false"]).is_err(),
            "a value needs ="
        );
        assert!(parse(&["--manage-crds=maybe"]).is_err());
    }
}
