//! The process around a service: JSON log lines on stderr, a Tokio runtime, the exit status, and
//! the stop signal.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Exit status when a service cannot start or stops on an error: the operator command line's
/// "the command could not do its work" (`miracolix-operator` `cli::EXIT_ERROR`).
pub const EXIT_ERROR: u8 = 2;

/// Runs `service` to completion on a new multi-threaded runtime with JSON logs (as the
/// operator's). `name` prefixes the error line on stderr.
pub fn main<E: Display>(name: &str, service: impl Future<Output = Result<(), E>>) -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            eprintln!("{name}: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// SIGINT or SIGTERM (what the kubelet sends; as PID 1 a service would otherwise ignore it and be
/// killed at the end of the grace period, mid-answer).
pub async fn shutdown() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
