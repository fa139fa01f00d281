//! `miracolix-dev-issuer`: the development OIDC issuer (`miracolix_e2e::oidc_issuer`) as a
//! program, for `make demo` (scripts/demo-inbox.sh). Test tooling like `miracolix-testapi`; it
//! logs in anyone who types an e-mail address and must never face a network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use miracolix_e2e::oidc_issuer::{Client, serve};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Development OIDC issuer on 127.0.0.1: anyone who types an e-mail address is logged in"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The one client it knows.
    #[arg(long)]
    client_id: String,
    /// File holding that client's secret (as the inbox reads it).
    #[arg(long)]
    client_secret_file: PathBuf,
    /// Group every login gets in the `groups` claim (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Write the issuer URL (`http://localhost:<port>`) here once it listens.
    #[arg(long)]
    url_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let secret = match std::fs::read_to_string(&args.client_secret_file) {
        Ok(s) => s.trim().to_string(),
        Err(e) => {
            eprintln!("{}: {e}", args.client_secret_file.display());
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let client = Client {
        id: args.client_id,
        secret,
        groups: args.groups,
    };
    let (url, run) = match serve(listener, client) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.url_file {
        // Written whole, then renamed: a reader never sees half a URL.
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, &url).and_then(|()| std::fs::rename(&tmp, path)) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("development OIDC issuer at {url}");
    tokio::select! {
        () = run => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
