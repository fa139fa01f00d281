//! `miracolix-testapi`: the test API server over HTTP, for kubectl and demos.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use miracolix_e2e::apiserver::authn::ADMIN_TOKEN;
use miracolix_e2e::apiserver::http::write_kubeconfig;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "In-memory Kubernetes API server for tests (plain HTTP on 127.0.0.1)"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Write a kubeconfig pointing at the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Seconds until simulated Deployments/StatefulSets report ready (0: immediately).
    #[arg(long, default_value_t = 1.0)]
    ready_delay: f64,
    /// Workloads with an image containing this substring never become ready (repeatable).
    #[arg(long = "failing-image")]
    failing_images: Vec<String>,
    /// Image contracts (JSON, as `miracolix-operator contracts` prints) the simulated kubelet
    /// enforces: pods that break them never become ready and report why.
    #[arg(long)]
    contracts: Option<PathBuf>,
    /// Enforce RBAC from the stored Roles, ClusterRoles and bindings, as a real cluster does,
    /// and serve HTTPS (self-signed; kubectl sends tokens only over TLS). The kubeconfig's token
    /// is the admin's (system:masters); `kubectl create token` issues ServiceAccount tokens.
    #[arg(long)]
    authorization: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let delay = Duration::from_secs_f64(args.ready_delay.max(0.0));
    let contracts = match &args.contracts {
        Some(path) => {
            miracolix_e2e::kubelet::Contracts::from_json(&std::fs::read_to_string(path)?)?
        }
        None => miracolix_e2e::kubelet::Contracts::default(),
    };
    let server = TestApiServer::with_config(Config {
        workload_timing: if delay.is_zero() {
            WorkloadTiming::Immediate
        } else {
            WorkloadTiming::After(delay)
        },
        failing_images: args.failing_images,
        contracts,
        authorization: args.authorization,
        ..Config::default()
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    // kubectl sends a kubeconfig's token only over TLS.
    let handle = if args.authorization {
        server.serve_tls(addr).await?
    } else {
        server.serve(addr).await?
    };
    println!("miracolix-testapi serving on {}", handle.url());
    if let Some(path) = &args.kubeconfig {
        write_kubeconfig(path, &handle.url(), Some(ADMIN_TOKEN))?;
        println!("export KUBECONFIG={}", path.display());
    } else {
        println!(
            "kubectl --server {} --insecure-skip-tls-verify get ns",
            handle.url()
        );
    }
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
