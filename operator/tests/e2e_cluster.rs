//! End-to-end: the real `kubectl` installs `crds/` and `examples/`, the real operator binary runs,
//! and the test asserts through the API.
//!
//! By default it runs against the project's test API server (served on 127.0.0.1). With
//! `E2E_KUBECONFIG=path` it runs unchanged against that cluster instead; `E2E_OPERATOR=external`
//! then means the operator is already installed there (e.g. by `make e2e-kind`) and is not
//! started by the test. On a real cluster the illustrative image digests of the examples cannot
//! be pulled, so there the suite asserts what the operator did (objects, conditions), and only
//! on the test API server that the sites become Ready.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use miracolix_e2e::{Config as ServerConfig, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf()
}

struct Target {
    kubeconfig: PathBuf,
    simulated: bool,
    _server: Option<(TestApiServer, miracolix_e2e::apiserver::http::ServerHandle)>,
    _dir: Option<TempDir>,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("miracolix-e2e-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn target(tag: &str) -> Target {
    if let Ok(path) = std::env::var("E2E_KUBECONFIG") {
        return Target {
            kubeconfig: PathBuf::from(path),
            simulated: false,
            _server: None,
            _dir: None,
        };
    }
    let server = TestApiServer::with_config(ServerConfig {
        // The catalogue's contracts and those of the components the example releases define
        // (XNAT), as `make demo` hands them to the server.
        contracts: miracolix_e2e::kubelet::Contracts::from_json(
            &miracolix_operator::cli::contracts::run(
                &miracolix_operator::cli::contracts::ContractsArgs {
                    releases: vec![
                        root().join("examples/11-release-miracolix-imaging-2026.1.yaml"),
                    ],
                },
            )
            .expect("the contracts"),
        )
        .expect("the contracts parse"),
        workload_timing: WorkloadTiming::After(Duration::from_millis(200)),
        ..ServerConfig::default()
    });
    let handle = server
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let dir = TempDir::new(tag);
    let kubeconfig = dir.0.join("kubeconfig");
    miracolix_e2e::apiserver::http::write_kubeconfig(&kubeconfig, &handle.url(), None)
        .expect("kubeconfig");
    Target {
        kubeconfig,
        simulated: true,
        _server: Some((server, handle)),
        _dir: Some(dir),
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let cache = std::env::temp_dir().join(format!(
        "miracolix-e2e-kubectl-cache-{}",
        std::process::id()
    ));
    let out = tokio::task::block_in_place(|| {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", &cache)
            .current_dir(root())
            .output()
    })
    .expect("kubectl runs (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

fn kubectl_fails(kubeconfig: &Path, args: &[&str]) -> String {
    let out = tokio::task::block_in_place(|| {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .current_dir(root())
            .output()
    })
    .expect("kubectl runs");
    assert!(
        !out.status.success(),
        "kubectl {args:?} unexpectedly succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

/// The operator binary, killed on drop.
struct Operator(Option<Child>);
impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_operator(kubeconfig: &Path) -> Operator {
    if std::env::var("E2E_OPERATOR").as_deref() == Ok("external") {
        return Operator(None);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
        .args(["run", "--trusted-keys"])
        .arg(root().join("examples/trusted-keys"))
        .args(["--log-format", "text"])
        // Tests run in parallel: no fixed ports.
        .args([
            "--probe-address",
            "127.0.0.1:0",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn,miracolix_operator=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("operator starts");
    Operator(Some(child))
}

// kubectl blocks its thread; the in-process server must keep serving on another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_install_with_kubectl_and_the_operator_makes_the_sites_ready() {
    let t = target("examples").await;
    kubectl(&t.kubeconfig, &["apply", "--server-side", "-f", "crds/"]);
    kubectl(
        &t.kubeconfig,
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "-f",
            "crds/",
        ],
    );
    if t.simulated {
        // Registers CloudNativePG's Cluster kind; on a real cluster install CloudNativePG itself.
        kubectl(
            &t.kubeconfig,
            &[
                "apply",
                "--server-side",
                "-f",
                "e2e/fixtures/cnpg-cluster-crd.yaml",
            ],
        );
    }
    kubectl(
        &t.kubeconfig,
        &[
            "apply",
            "--server-side",
            "-f",
            "examples/00-namespaces.yaml",
        ],
    );
    kubectl(
        &t.kubeconfig,
        &["apply", "--server-side", "-f", "scripts/demo-secrets.yaml"],
    );
    kubectl(
        &t.kubeconfig,
        &["apply", "--server-side", "-f", "examples/"],
    );

    // Invalid input is refused with the rule's message and stores nothing.
    let err = kubectl_fails(
        &t.kubeconfig,
        &[
            "apply",
            "--server-side",
            "-f",
            "examples/invalid/site-bad-site-id.yaml",
        ],
    );
    assert!(err.contains("siteId must be a DNS label"), "{err}");
    let all = kubectl(&t.kubeconfig, &["get", "miracum", "-A", "-o", "name"]);
    assert!(!all.contains("broken"), "refused object was stored:\n{all}");

    let _operator = start_operator(&t.kubeconfig);
    let c = client(&t.kubeconfig).await;
    let wanted = if t.simulated {
        "condition=Ready"
    } else {
        "condition=Reconciling"
    };
    kubectl(
        &t.kubeconfig,
        &[
            "wait",
            "--for",
            wanted,
            "--timeout=60s",
            "dizsite",
            "--all",
            "-A",
        ],
    );

    // The release's certification verdict is visible on the release itself.
    kubectl(
        &t.kubeconfig,
        &[
            "wait",
            "--for",
            "condition=Certified",
            "--timeout=30s",
            "componentrelease/miracolix-2026.1",
        ],
    );
    let sites: Api<DizSite> = Api::all(c.clone());
    for site in sites
        .list(&ListParams::default())
        .await
        .expect("sites")
        .items
    {
        let name = site.metadata.name.clone().unwrap_or_default();
        let st = site.status.expect("status written");
        assert_eq!(st.observed_generation, site.metadata.generation);
        // A pinned release (Magdeburg runs the imaging release, which defines XNAT), else the
        // newest certified one on the channel.
        let expected = site
            .spec
            .release
            .name
            .clone()
            .unwrap_or_else(|| "miracolix-2026.1".to_string());
        assert_eq!(
            st.current_release.as_deref(),
            Some(expected.as_str()),
            "site {name}: {st:#?}"
        );
        if t.simulated {
            assert!(conditions::is_true(&st.conditions, conditions::READY));
        }
    }
    let deployments: Api<Deployment> = Api::all(c.clone());
    let statefulsets: Api<StatefulSet> = Api::all(c);
    let n = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=miracolix-operator"))
        .await
        .expect("list")
        .items
        .len()
        + statefulsets
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=miracolix-operator"))
            .await
            .expect("list")
            .items
            .len();
    assert!(
        n >= 10,
        "expected the three example sites' workloads, found {n}"
    );
    let table = kubectl(&t.kubeconfig, &["get", "miracum", "-A"]);
    assert!(table.contains("miracolix-2026.1"), "{table}");
}
