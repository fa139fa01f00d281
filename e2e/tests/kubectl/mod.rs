//! The real kubectl against a served `TestApiServer`, for the suites that check what people
//! see with it. Skips (with a printed reason) where the binary is not installed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miracolix_e2e::apiserver::http::{ServerHandle, write_kubeconfig};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};

/// The distribution's kubectl (1.32 here).
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// kubectl 1.37 from `make tools` (scripts/install-tools.sh), which uses aggregated discovery.
pub fn kubectl_137() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl")
}

pub struct Kubectl {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub server: TestApiServer,
    _handle: ServerHandle,
}

impl Kubectl {
    /// `/usr/bin/kubectl` against a new server with deterministic workloads.
    pub async fn start(name: &str) -> Option<Self> {
        Self::start_with(name, Path::new(KUBECTL)).await
    }

    pub async fn start_with(name: &str, bin: &Path) -> Option<Self> {
        let server = TestApiServer::with_config(Config {
            workload_timing: WorkloadTiming::Immediate,
            ..Config::default()
        });
        Self::serve(name, bin, server).await
    }

    /// `bin` against `server`, served on a free port of 127.0.0.1.
    pub async fn serve(name: &str, bin: &Path, server: TestApiServer) -> Option<Self> {
        if !bin.exists() {
            println!("skipped: {} not installed (make tools)", bin.display());
            return None;
        }
        let handle = server
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let dir = std::env::temp_dir().join(format!("miracolix-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_kubeconfig(&dir.join("kubeconfig"), &handle.url(), Some("test-token"))
            .expect("kubeconfig");
        Some(Self {
            dir,
            bin: bin.to_path_buf(),
            server,
            _handle: handle,
        })
    }

    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).expect("write manifest");
        p.display().to_string()
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let what = format!("kubectl {}", args.join(" "));
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(&self.bin)
                .args(args)
                .env("KUBECONFIG", self.dir.join("kubeconfig"))
                .env("HOME", &self.dir)
                .arg("--cache-dir")
                .arg(self.dir.join("cache"))
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out after 30s waiting for: {what}"))
        .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {} failed:\n{out}\n{err}", args.join(" "));
        out
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The column names of a printed table.
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}
