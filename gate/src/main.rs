//! `miracolix-gate`: the feasibility privacy gate (see the library docs and docs/feasibility.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use miracolix_gate::auth::Authenticator;
use miracolix_gate::executor::Executor;
use miracolix_gate::mechanism::Rules;
use miracolix_gate::store::Store;
use miracolix_gate::{Gate, GateConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[derive(Debug, Parser)]
#[command(
    name = "miracolix-gate",
    version,
    about = "Feasibility privacy gate in front of FLARE"
)]
struct Args {
    /// Query API (FLARE-compatible).
    #[arg(long, env = "GATE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// /healthz, /readyz, /metrics.
    #[arg(long, env = "GATE_OPS_LISTEN", default_value = "0.0.0.0:8081")]
    ops_listen: SocketAddr,
    /// The executor's base URL, e.g. http://flare:8080.
    #[arg(long, env = "GATE_EXECUTOR_URL")]
    executor_url: String,
    /// Seconds to wait for the executor (FLARE can take minutes on a large query).
    #[arg(long, env = "GATE_EXECUTOR_TIMEOUT", default_value_t = 300)]
    executor_timeout: u64,
    /// Laplace ε per fresh answer (sensitivity 1).
    #[arg(long, env = "GATE_EPSILON", default_value_t = 0.5)]
    epsilon: f64,
    #[arg(long, env = "GATE_ROUND_TO", default_value_t = 10)]
    round_to: u64,
    #[arg(long, env = "GATE_SUPPRESS_BELOW", default_value_t = 5)]
    suppress_below: u64,
    #[arg(long, env = "GATE_REQUESTS_PER_HOUR", default_value_t = 999)]
    requests_per_hour: u32,
    /// Sum of ε one requester may spend per UTC day.
    #[arg(long, env = "GATE_DAILY_EPSILON_BUDGET", default_value_t = 50.0)]
    daily_epsilon_budget: f64,
    /// Directory for state.db (cache, budget) and audit.jsonl; a persistent volume.
    #[arg(
        long,
        env = "GATE_STATE_DIR",
        default_value = "/var/lib/miracolix-gate"
    )]
    state_dir: PathBuf,
    /// Callers config (JSON): static token hashes and OIDC settings.
    #[arg(long, env = "GATE_CALLERS")]
    callers: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] miracolix_gate::auth::ConfigError),
    #[error(transparent)]
    Store(#[from] miracolix_gate::store::StoreError),
    #[error(transparent)]
    Start(#[from] miracolix_gate::server::StartError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gate stopped");
            eprintln!("miracolix-gate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), MainError> {
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(MainError::Invalid(
            "--epsilon must be greater than 0".into(),
        ));
    }
    if args.round_to == 0 || args.requests_per_hour == 0 {
        return Err(MainError::Invalid(
            "--round-to and --requests-per-hour must be at least 1".into(),
        ));
    }
    if args.daily_epsilon_budget.is_nan() || args.daily_epsilon_budget < args.epsilon {
        return Err(MainError::Invalid(
            "--daily-epsilon-budget must be at least --epsilon, or no query could be answered"
                .into(),
        ));
    }
    let auth = Authenticator::load(&args.callers)?;
    let store = Store::open(&args.state_dir.join("state.db"))?;
    let rng = ChaCha20Rng::try_from_os_rng().map_err(|e| MainError::Random(e.to_string()))?;
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
    let api = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| MainError::Bind(args.listen, e))?;
    let ops = tokio::net::TcpListener::bind(args.ops_listen)
        .await
        .map_err(|e| MainError::Bind(args.ops_listen, e))?;
    tracing::info!(listen = %args.listen, ops = %args.ops_listen, epsilon = args.epsilon, "gate serving");
    gate.serve(api, ops, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
