//! The gate's command line: `miracolix-operator gate` (the one image runs every binary the
//! project ships as a subcommand, docs/image.md). The operator binary only parses [`GateArgs`]
//! and calls [`main`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::auth::Authenticator;
use crate::executor::Executor;
use crate::mechanism::Rules;
use crate::store::Store;
use crate::{Gate, GateConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// `miracolix-operator gate`: every setting is also an environment variable (the controller's
/// Deployment sets those, docs/feasibility.md).
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Query API (FLARE-compatible).
    #[arg(long, env = "GATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// /healthz, /readyz, /metrics.
    #[arg(long, env = "GATE_OPS_LISTEN", default_value = "0.0.0.0:8081")]
    pub ops_listen: SocketAddr,
    /// The executor's base URL, e.g. http://flare:8080.
    #[arg(long, env = "GATE_EXECUTOR_URL")]
    pub executor_url: String,
    /// Seconds to wait for the executor (FLARE can take minutes on a large query).
    #[arg(long, env = "GATE_EXECUTOR_TIMEOUT", default_value_t = 300)]
    pub executor_timeout: u64,
    /// Laplace ε per fresh answer (sensitivity 1).
    #[arg(long, env = "GATE_EPSILON", default_value_t = 0.5)]
    pub epsilon: f64,
    /// Answers are rounded to a multiple of this.
    #[arg(long, env = "GATE_ROUND_TO", default_value_t = 10)]
    pub round_to: u64,
    /// A noisy count below this is answered 0.
    #[arg(long, env = "GATE_SUPPRESS_BELOW", default_value_t = 5)]
    pub suppress_below: u64,
    /// Queries one requester may send per hour.
    #[arg(long, env = "GATE_REQUESTS_PER_HOUR", default_value_t = 999)]
    pub requests_per_hour: u32,
    /// Sum of ε one requester may spend per UTC day.
    #[arg(long, env = "GATE_DAILY_EPSILON_BUDGET", default_value_t = 50.0)]
    pub daily_epsilon_budget: f64,
    /// Directory for state.db (cache, budget) and audit.jsonl; a persistent volume.
    #[arg(
        long,
        env = "GATE_STATE_DIR",
        default_value = "/var/lib/miracolix-gate"
    )]
    pub state_dir: PathBuf,
    /// Callers config (JSON): static token hashes, OIDC settings, allowed client certificates.
    #[arg(long, env = "GATE_CALLERS")]
    pub callers: PathBuf,
    /// Query API over mutual TLS for a direct broker; served only when --tls-cert, --tls-key and
    /// --client-ca are all set.
    #[arg(long, env = "GATE_MTLS_LISTEN", default_value = "0.0.0.0:8443")]
    pub mtls_listen: SocketAddr,
    /// The gate's own certificate chain (PEM) for the mTLS listener, e.g. a mounted `tls.crt`.
    #[arg(long, env = "GATE_TLS_CERT", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "GATE_TLS_KEY", requires_all = ["tls_cert", "client_ca"])]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that certifies the brokers' client certificates.
    #[arg(long, env = "GATE_CLIENT_CA", requires_all = ["tls_cert", "tls_key"])]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] crate::auth::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Listen(#[from] miracolix_service::http::BindError),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

pub use miracolix_service::process::EXIT_ERROR;

/// Run the gate until SIGINT/SIGTERM; logs as JSON lines on stderr.
pub fn main(args: GateArgs) -> ExitCode {
    miracolix_service::process::main("gate", run(args))
}

async fn run(args: GateArgs) -> Result<(), GateError> {
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(GateError::Invalid(
            "--epsilon must be greater than 0".into(),
        ));
    }
    if args.round_to == 0 || args.requests_per_hour == 0 {
        return Err(GateError::Invalid(
            "--round-to and --requests-per-hour must be at least 1".into(),
        ));
    }
    if args.daily_epsilon_budget.is_nan() || args.daily_epsilon_budget < args.epsilon {
        return Err(GateError::Invalid(
            "--daily-epsilon-budget must be at least --epsilon, or no query could be answered"
                .into(),
        ));
    }
    let auth = Authenticator::load(&args.callers)?;
    // Read before binding anything: a missing or wrong certificate stops the gate at start.
    let acceptor = match (&args.tls_cert, &args.tls_key, &args.client_ca) {
        (Some(cert_chain), Some(key), Some(client_ca)) => {
            Some(crate::tls::acceptor_from_files(&crate::tls::TlsFiles {
                cert_chain,
                key,
                client_ca,
            })?)
        }
        _ => None,
    };
    let store = Store::open(&args.state_dir.join("state.db"))?;
    let rng = ChaCha20Rng::try_from_os_rng().map_err(|e| GateError::Random(e.to_string()))?;
    let config = GateConfig {
        rules: Rules {
            epsilon: args.epsilon,
            round_to: args.round_to,
            suppress_below: args.suppress_below,
        },
        requests_per_hour: args.requests_per_hour,
        daily_epsilon_budget: args.daily_epsilon_budget,
    };
    let executor = Executor::new(
        &args.executor_url,
        std::time::Duration::from_secs(args.executor_timeout),
    );
    let gate = Gate::new(
        config,
        auth,
        executor,
        store,
        &args.state_dir.join("audit.jsonl"),
        rng,
    )?;
    let (api, ops) = miracolix_service::http::bind(args.listen, args.ops_listen).await?;
    let mtls = match acceptor {
        Some(acceptor) => Some(crate::MtlsListener {
            listener: tokio::net::TcpListener::bind(args.mtls_listen)
                .await
                .map_err(|e| GateError::Bind(args.mtls_listen, e))?,
            acceptor,
        }),
        None => None,
    };
    tracing::info!(
        listen = %args.listen,
        ops = %args.ops_listen,
        mtls = mtls.is_some().then(|| args.mtls_listen.to_string()),
        epsilon = args.epsilon,
        "gate serving"
    );
    gate.serve_with_mtls(api, ops, mtls, miracolix_service::shutdown())
        .await;
    Ok(())
}
