//! The hub as its install runs it. `manifests/hub/deployment.yaml` (chart-test proves the Helm
//! chart's `hub.enabled` render has the same pod spec) is started the way the kubelet would start
//! it: the image's binary with the container's args, each volume laid out where it is mounted
//! (a ConfigMap as the kubelet writes one, with its `..data` link), the state directory kept
//! across a restart as the PersistentVolumeClaim is. Only the listen addresses become loopback
//! ports, after checking they are the container's ports. So a wrong flag, a path that is not
//! mounted or a probe path the hub does not serve fails here, not on the consortium's cluster.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{repo_root as root, temp_dir};
use http_body_util::{BodyExt, Full};
use miracolix_hub::report;
use miracolix_hub::testing;
use miracolix_service::token::token_sha256;
use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Writes `files` into `dir` as the kubelet projects a ConfigMap or Secret: the files in a
/// timestamped directory, `..data` linking to it, and each name a link through `..data`.
fn project(dir: &Path, files: &[(&str, Vec<u8>)]) {
    let stamp = dir.join("..2026_11_30_00_00_00.000000001");
    std::fs::create_dir_all(&stamp).expect("dir");
    for (name, content) in files {
        std::fs::write(stamp.join(name), content).expect("write");
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("link");
    }
    std::os::unix::fs::symlink(stamp.file_name().expect("name"), dir.join("..data"))
        .expect("..data");
}

/// The hub container of manifests/hub/deployment.yaml and its pod's volumes.
struct HubPod {
    container: Value,
    volumes: BTreeMap<String, Value>,
}

fn hub_pod() -> HubPod {
    let text = std::fs::read_to_string(root().join("manifests/hub/deployment.yaml"))
        .expect("manifests/hub/deployment.yaml");
    let docs: Vec<Value> = miracolix_operator::yaml::from_multi_doc(&text).expect("yaml");
    let pod = &docs[0]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container, the hub");
    let volumes = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (v["name"].as_str().expect("name").to_string(), v.clone()))
        .collect();
    HubPod {
        container: containers[0].clone(),
        volumes,
    }
}

fn container_port(c: &Value, name: &str) -> u16 {
    c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("container port {name}"))
}

/// What the sites, readers and release managers put into the hub's ConfigMaps and Secrets.
struct Inputs {
    token: &'static str,
}

/// Lays out every volume of the pod under `root` (by the volume's source: a PVC's directory is
/// kept by the caller across restarts) and returns mountPath -> local directory.
fn lay_out(pod: &HubPod, root_dir: &Path, state: &Path, inputs: &Inputs) -> Vec<(String, PathBuf)> {
    let sites: Vec<Value> = ["dresden", "erlangen", "marburg"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let key = report::public_key_base64(&testing::demo_key(i).expect("key"));
            json!({"siteId": s, "keys": [{"keyId": testing::demo_key_id(s), "ed25519": key}]})
        })
        .collect();
    let registry = json!({ "sites": sites });
    let readers = json!({"tokens": [{"requester": "release-managers", "sha256": token_sha256(inputs.token)}]});
    let release = std::fs::read(root().join("examples/10-release-miracolix-2026.1.yaml"))
        .expect("example release");
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(root().join("examples/trusted-keys")).expect("trusted keys") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pem") {
            keys.push((name, std::fs::read(entry.path()).expect("key")));
        }
    }
    let mut mounts = Vec::new();
    for m in pod.container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
    {
        let name = m["name"].as_str().expect("name");
        let path = m["mountPath"].as_str().expect("mountPath").to_string();
        let volume = &pod.volumes[name];
        let dir = root_dir.join(name);
        if volume.get("persistentVolumeClaim").is_some() {
            mounts.push((path, state.to_path_buf()));
            continue;
        }
        std::fs::create_dir_all(&dir).expect("dir");
        // An emptyDir stays the empty directory just made.
        if let Some(cm) = volume.get("configMap") {
            match cm["name"].as_str().expect("configMap name") {
                "miracolix-hub-sites" => project(
                    &dir,
                    &[("sites.json", serde_json::to_vec(&registry).expect("json"))],
                ),
                "miracolix-hub-feed" => project(&dir, &[("10-release.yaml", release.clone())]),
                other => panic!("a ConfigMap this test does not know: {other}"),
            }
        } else if let Some(secret) = volume.get("secret") {
            match secret["secretName"].as_str().expect("secretName") {
                "miracolix-hub-readers" => project(
                    &dir,
                    &[("readers.json", serde_json::to_vec(&readers).expect("json"))],
                ),
                "miracolix-trusted-keys" => project(
                    &dir,
                    &keys
                        .iter()
                        .map(|(n, k)| (n.as_str(), k.clone()))
                        .collect::<Vec<_>>(),
                ),
                other => panic!("a Secret this test does not know: {other}"),
            }
        } else if volume.get("emptyDir").is_none() {
            panic!("a volume source this test does not know: {volume}");
        }
        mounts.push((path, dir));
    }
    mounts
}

/// The container's args with every mounted path moved to its local directory and the listen
/// addresses on loopback.
fn local_args(pod: &HubPod, mounts: &[(String, PathBuf)], api: u16, ops: u16) -> Vec<String> {
    let args: Vec<String> = pod.container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        match a.as_str() {
            "--listen" | "--ops-listen" => {
                let (port_name, local) = if a == "--listen" {
                    ("http", api)
                } else {
                    ("ops", ops)
                };
                let want = container_port(&pod.container, port_name);
                assert_eq!(
                    args[i + 1].rsplit(':').next(),
                    Some(want.to_string().as_str()),
                    "{a} must listen on the container port {port_name}"
                );
                out.extend([a.clone(), format!("127.0.0.1:{local}")]);
                i += 2;
                continue;
            }
            _ => {}
        }
        if a.starts_with('/') {
            let (mount, dir) = mounts
                .iter()
                .filter(|(m, _)| a == m || a.starts_with(&format!("{m}/")))
                .max_by_key(|(m, _)| m.len())
                .unwrap_or_else(|| panic!("{a} is on no volume the pod mounts"));
            out.push(format!("{}{}", dir.display(), &a[mount.len()..]));
        } else {
            out.push(a.clone());
        }
        i += 1;
    }
    out
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[String], log: &Path) -> Running {
    let log = std::fs::File::create(log).expect("log");
    Running(
        Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
            .args(args)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the hub starts"),
    )
}

async fn request(method: &str, url: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("the hub answers");
    let status = res.status().as_u16();
    (
        status,
        res.into_body().collect().await.expect("body").to_bytes(),
    )
}

/// Waits (bounded) until the pod's readiness probe would pass.
async fn until_ready(pod: &HubPod, hub: &mut Running, ops: u16, log: &Path) {
    let probe = &pod.container["readinessProbe"]["httpGet"];
    assert_eq!(
        probe["port"], "ops",
        "the readiness probe asks the ops port"
    );
    let url = format!(
        "http://127.0.0.1:{ops}{}",
        probe["path"].as_str().expect("path")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        if let Ok(res) = client.get(url.parse().expect("uri")).await
            && res.status() == 200
        {
            return;
        }
        if let Ok(Some(exit)) = hub.0.try_wait() {
            panic!(
                "the hub exited ({exit}) before it was ready; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the hub was not ready within 20 s at {url}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_installed_hub_starts_serves_the_feed_and_keeps_reports_across_a_restart() {
    let pod = hub_pod();
    let dir = temp_dir("hub-install-run");
    let state = dir.join("pvc");
    std::fs::create_dir_all(&state).expect("pvc");
    let inputs = Inputs {
        token: "matrix-reader-token",
    };
    let mounts = lay_out(&pod, &dir, &state, &inputs);
    // Probes on the ops port answer with the paths the Deployment probes.
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(pod.container[probe]["httpGet"]["port"], "ops", "{probe}");
    }

    let (api, ops) = (free_port(), free_port());
    let args = local_args(&pod, &mounts, api, ops);
    let log = dir.join("hub.log");
    let mut hub = start(&args, &log);
    until_ready(&pod, &mut hub, ops, &log).await;
    for probe in ["startupProbe", "livenessProbe"] {
        let path = pod.container[probe]["httpGet"]["path"]
            .as_str()
            .expect("path");
        let (status, _) = request(
            "GET",
            &format!("http://127.0.0.1:{ops}{path}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, 200, "{probe} {path}");
    }
    let base = format!("http://127.0.0.1:{api}");

    // The feed: the example release from the feed ConfigMap, verified with the mounted keys.
    let (status, body) = request("GET", &format!("{base}/feed/v1"), None, vec![]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let feed: Value = serde_json::from_slice(&body).expect("feed json");
    let names: Vec<&str> = feed["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["miracolix-2026.1"], "feed: {feed}");

    // Readers: the token in the readers Secret reads the matrix, nobody else does.
    let matrix = format!("{base}/api/v1/matrix");
    assert_eq!(request("GET", &matrix, None, vec![]).await.0, 401);
    assert_eq!(request("GET", &matrix, Some("wrong"), vec![]).await.0, 401);

    // A registered site reports (sites ConfigMap).
    let report = testing::sample_report("erlangen", 1, chrono::Utc::now());
    let signed = report::sign_report(
        &report,
        &testing::demo_key_id("erlangen"),
        &testing::demo_key(1).expect("key"),
    )
    .expect("sign");
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/reports"),
        None,
        serde_json::to_vec(&signed).expect("json"),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    // Restart: a new process on the same volume still has the report (the PVC, not the image).
    drop(hub);
    let (api, ops) = (free_port(), free_port());
    let args = local_args(&pod, &mounts, api, ops);
    let mut hub = start(&args, &log);
    until_ready(&pod, &mut hub, ops, &log).await;
    let (status, body) = request(
        "GET",
        &format!("http://127.0.0.1:{api}/api/v1/matrix"),
        Some(inputs.token),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("erlangen") && text.contains("miracolix-2026.1"),
        "the matrix after a restart lacks erlangen's report: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
