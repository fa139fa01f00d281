//! `make bench`: the operator at scale, measured. Not a test: it prints figures.
//!
//! Release builds of the test API server (`miracolix-testapi`) and the operator run as separate
//! processes; this driver creates `BENCH_SITES` sites (default 200), each with the Erlangen
//! example's stack (`examples/20-site-erlangen.yaml`) in its own namespace, and reports:
//! - converge: seconds from the first site created until every site is Ready;
//! - the operator's peak RSS (`VmHWM` of /proc/<pid>/status) and RSS at the end;
//! - requests and writes per no-op resync (every site reconciled once more, triggered by an
//!   unrelated annotation), from the operator's own `miracolix_api_requests_total`;
//! - requests per second at steady state (over `BENCH_STEADY_SECS`, default 10);
//! - requests per site the first reconciles after a restart make (children verified once);
//! - render time per site (validate + build of the Erlangen site, in process).
//!
//! Usage: `scripts/bench.sh` (builds, then runs this with the binaries' paths).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config, ResourceExt};
use miracolix_operator::api::{DizSite, conditions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn docs(rel: &str) -> Res<Vec<Value>> {
    let text = std::fs::read_to_string(root().join(rel))?;
    Ok(miracolix_operator::yaml::from_multi_doc::<Value>(&text)?
        .into_iter()
        .filter(|v| !v.is_null())
        .collect())
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Kills the child process when dropped, so a failed run leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (fields 14 and 15,
/// in clock ticks; `proc(5)`), to say which process the convergence time goes to.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
    ticks as f64 / 100.0
}

async fn scrape(port: u16) -> Res<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Counter values summed by one label's value, e.g. requests by verb.
fn sum_by(text: &str, family: &str, label: &str) -> BTreeMap<String, f64> {
    sum_by_labels(text, family, &[label])
}

/// Counter values summed by several labels' values, joined by a space (e.g. "patch Service").
fn sum_by_labels(text: &str, family: &str, labels: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(family) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let key = labels
            .iter()
            .map(|label| {
                rest.split(&format!("{label}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ");
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

struct Counts {
    requests: f64,
    writes: f64,
    watches: f64,
    reconciles: f64,
    /// Reconciles that rendered the site (the others computed only its status).
    renders: f64,
    by_verb: BTreeMap<String, f64>,
    /// Writes by verb and resource ("patch services"), which say what converging costs the server.
    writes_by_kind: BTreeMap<String, f64>,
}

async fn counts(port: u16) -> Res<Counts> {
    let text = scrape(port).await?;
    let by_verb = sum_by(&text, "miracolix_api_requests_total", "verb");
    let get = |v: &str| by_verb.get(v).copied().unwrap_or(0.0);
    let writes = ["create", "update", "patch", "delete", "deletecollection"]
        .iter()
        .map(|v| get(v))
        .sum();
    let writes_by_kind =
        sum_by_labels(&text, "miracolix_api_requests_total", &["verb", "resource"])
            .into_iter()
            .filter(|(k, _)| {
                [
                    "create ",
                    "update ",
                    "patch ",
                    "delete ",
                    "deletecollection ",
                ]
                .iter()
                .any(|v| k.starts_with(v))
            })
            .collect();
    let watches = get("watch");
    let requests = by_verb.values().sum::<f64>() - watches;
    let reconciles = sum_by(&text, "miracolix_reconcile_total", "result")
        .values()
        .sum();
    let renders = text
        .lines()
        .find_map(|l| l.strip_prefix("miracolix_site_renders_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(Counts {
        requests,
        writes,
        watches,
        reconciles,
        renders,
        by_verb,
        writes_by_kind,
    })
}

fn queue_depth(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("miracolix_reconcile_queue_depth "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn create(client: &Client, obj: &Value) -> Res<()> {
    let types: kube::core::TypeMeta = serde_json::from_value(obj.clone())?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let plural = match types.kind.as_str() {
        "CustomResourceDefinition" => "customresourcedefinitions".to_string(),
        "ComponentRelease" => "componentreleases".to_string(),
        "Namespace" => "namespaces".to_string(),
        "Secret" => "secrets".to_string(),
        "DizSite" => "dizsites".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let dynobj: DynamicObject = serde_json::from_value(obj.clone())?;
    let api: Api<DynamicObject> = match dynobj.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.create(&PostParams::default(), &dynobj).await?;
    Ok(())
}

fn ready(s: &DizSite) -> bool {
    s.status.as_ref().is_some_and(|st| {
        conditions::is_true(&st.conditions, conditions::READY)
            && st.observed_generation == s.metadata.generation
    })
}

/// Follows the DizSites with one watch until all `n` are Ready. A watch, not a list every
/// 100 ms: listing every site ten times a second cost the test API server (and this driver)
/// time proportional to the number of sites, and so slowed the convergence it measures.
async fn wait_all_ready(client: &Client, n: usize, limit: Duration) -> Res<Duration> {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let started = Instant::now();
    let api: Api<DizSite> = Api::all(client.clone());
    let mut ready_sites = std::collections::BTreeSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    loop {
        let next = tokio::time::timeout(limit.saturating_sub(started.elapsed()), events.try_next());
        match next.await {
            Ok(Ok(Some(site))) => {
                let key = format!(
                    "{}/{}",
                    site.namespace().unwrap_or_default(),
                    site.name_any()
                );
                if ready(&site) {
                    ready_sites.insert(key);
                } else {
                    ready_sites.remove(&key);
                }
                if ready_sites.len() == n {
                    return Ok(started.elapsed());
                }
            }
            Ok(Ok(None)) => return Err("the watch of DizSites ended".into()),
            Ok(Err(e)) => return Err(format!("watching DizSites: {e}").into()),
            Err(_) => {
                let ready_n = ready_sites.len();
                return Err(format!("only {ready_n} of {n} sites Ready after {limit:?}").into());
            }
        }
    }
}

fn start_operator(bin: &Path, kubeconfig: &Path, metrics: u16, log: &Path) -> Res<Proc> {
    let probe = free_port()?;
    let out = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .args([
            "run",
            "--trusted-keys",
            &root().join("examples/trusted-keys").display().to_string(),
            "--manage-crds=false",
            "--log-format",
            "text",
            "--probe-address",
            &format!("127.0.0.1:{probe}"),
            "--metrics-address",
            &format!("127.0.0.1:{metrics}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_OPERATOR_LOG").unwrap_or("warn".into()),
        )
        // The operator logs to stdout; keep both streams in the log.
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(Proc(child))
}

/// Touches every site with an unrelated annotation and waits until the operator reconciled
/// each once more and its queue is empty; returns (requests, writes) the operator made.
async fn noop_resync(
    client: &Client,
    port: u16,
    sites: &[(String, String)],
    round: u32,
) -> Res<(f64, f64, BTreeMap<String, f64>)> {
    let before = counts(port).await?;
    for (ns, name) in sites {
        Api::<DizSite>::namespaced(client.clone(), ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"bench.miracolix/touched": round.to_string()}}})),
            )
            .await?;
    }
    let started = Instant::now();
    loop {
        let c = counts(port).await?;
        let depth = queue_depth(&scrape(port).await?);
        if c.reconciles - before.reconciles >= sites.len() as f64 && depth == 0.0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c = counts(port).await?;
            let mut verbs = c.by_verb.clone();
            for (k, v) in &before.by_verb {
                *verbs.entry(k.clone()).or_insert(0.0) -= v;
            }
            verbs.retain(|k, v| *v > 0.0 && k != "watch");
            return Ok((
                c.requests - before.requests,
                c.writes - before.writes,
                verbs,
            ));
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the touched sites were not reconciled within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn render_time_per_site() -> Res<Duration> {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: miracolix_operator::cli::render::RenderArgs,
    }
    let w = Wrap::try_parse_from([
        "render",
        "-f",
        &root()
            .join("examples/20-site-erlangen.yaml")
            .display()
            .to_string(),
        "--release",
        &root()
            .join("examples/10-release-miracolix-2026.1.yaml")
            .display()
            .to_string(),
        "--trusted-keys",
        &root().join("examples/trusted-keys").display().to_string(),
    ])?;
    let n = 50;
    let started = Instant::now();
    for _ in 0..n {
        miracolix_operator::cli::render::run(&w.args)?;
    }
    Ok(started.elapsed() / n)
}

#[tokio::main]
async fn main() -> Res<()> {
    let n = env_num("BENCH_SITES", 200) as usize;
    let steady = env_num("BENCH_STEADY_SECS", 10);
    let bin_dir = PathBuf::from(
        std::env::var("BENCH_BIN_DIR")
            .unwrap_or_else(|_| root().join("target/release").display().to_string()),
    );
    let work = std::env::temp_dir().join(format!("miracolix-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let kubeconfig = work.join("kubeconfig");

    // The test API server, workloads ready at once (the operator is measured, not a kubelet).
    let api_port = free_port()?;
    let server = Proc(
        Command::new(bin_dir.join("miracolix-testapi"))
            .args([
                "--port",
                &api_port.to_string(),
                "--ready-delay",
                "0",
                "--kubeconfig",
                &kubeconfig.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let started = Instant::now();
    while !kubeconfig.exists() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the test API server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;

    for entry in std::fs::read_dir(root().join("crds"))? {
        let path = entry?.path();
        let rel = path.strip_prefix(root())?.display().to_string();
        for d in docs(&rel)? {
            create(&client, &d).await?;
        }
    }
    for d in docs("e2e/fixtures/cnpg-cluster-crd.yaml")? {
        create(&client, &d).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for d in docs("examples/10-release-miracolix-2026.1.yaml")? {
        create(&client, &d).await?;
    }
    let secrets: Vec<Value> = docs("scripts/demo-secrets.yaml")?
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == "diz-erlangen")
        .collect();
    let site = docs("examples/20-site-erlangen.yaml")?.remove(0);
    let mut sites = Vec::new();
    for i in 0..n {
        let ns = format!("diz-bench-{i:04}");
        create(
            &client,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
        for s in &secrets {
            let mut s = s.clone();
            s["metadata"]["namespace"] = json!(ns);
            create(&client, &s).await?;
        }
        sites.push((ns, format!("site{i:04}")));
    }

    let metrics = free_port()?;
    let op_bin = bin_dir.join("miracolix-operator");
    let mut operator = start_operator(&op_bin, &kubeconfig, metrics, &work.join("operator.log"))?;
    let started = Instant::now();
    while scrape(metrics).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the operator did not serve metrics".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The operator is idle with an empty cluster of sites: the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = status_kib(operator.0.id(), "VmRSS:");

    let cpu0 = (cpu_secs(operator.0.id()), cpu_secs(server.0.id()));
    let t0 = Instant::now();
    for (ns, name) in &sites {
        let mut s = site.clone();
        s["metadata"] = json!({"name": name, "namespace": ns});
        s["spec"]["siteId"] = json!(name);
        create(&client, &s).await?;
    }
    let created = t0.elapsed();
    wait_all_ready(&client, n, Duration::from_secs(600)).await?;
    let converge = t0.elapsed();
    let pid = operator.0.id();
    let cpu = (cpu_secs(pid) - cpu0.0, cpu_secs(server.0.id()) - cpu0.1);
    let peak = status_kib(pid, "VmHWM:");
    let after = counts(metrics).await?;

    // Let the status writes and their watch events settle before measuring no-ops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (noop_requests, noop_writes, noop_verbs) = noop_resync(&client, metrics, &sites, 1).await?;

    let s0 = counts(metrics).await?;
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let s1 = counts(metrics).await?;
    let steady_rps = (s1.requests - s0.requests) / steady as f64;
    let rss_end = status_kib(pid, "VmRSS:");
    let peak_end = status_kib(pid, "VmHWM:");

    // A restart: the new operator's first reconciles verify each child once.
    drop(operator);
    let metrics2 = free_port()?;
    operator = start_operator(
        &op_bin,
        &kubeconfig,
        metrics2,
        &work.join("operator-restarted.log"),
    )?;
    let started = Instant::now();
    while scrape(metrics2).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the restarted operator did not serve metrics".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restart_t0 = Instant::now();
    loop {
        let c = counts(metrics2).await?;
        let depth = queue_depth(&scrape(metrics2).await?);
        if c.reconciles >= n as f64 && depth == 0.0 {
            break;
        }
        if restart_t0.elapsed() > Duration::from_secs(300) {
            return Err("the restarted operator did not reconcile every site".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let restart_secs = restart_t0.elapsed();
    let restarted = counts(metrics2).await?;
    let restart_peak = status_kib(operator.0.id(), "VmHWM:");
    drop(operator);

    let render = render_time_per_site()?;

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("miracolix-operator benchmark ({n} sites, Erlangen example stack)");
    println!(
        "  machine:                       {} CPUs",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "  sites created in:              {:.2} s",
        created.as_secs_f64()
    );
    println!(
        "  converge (all Ready):          {:.2} s",
        converge.as_secs_f64()
    );
    println!(
        "  CPU while converging:          operator {:.1} s, test API server {:.1} s; {:.0} reconciles ({:.1} per site), {:.1} renders per site",
        cpu.0,
        cpu.1,
        after.reconciles,
        after.reconciles / n as f64,
        after.renders / n as f64
    );
    println!("  operator RSS idle, no sites:   {:.1} MiB", mib(idle_rss));
    println!(
        "  operator peak RSS (VmHWM):     {:.1} MiB (converged), {:.1} MiB (end)",
        mib(peak),
        mib(peak_end)
    );
    println!("  operator RSS at steady state:  {:.1} MiB", mib(rss_end));
    println!(
        "  requests to converge:          {:.0} ({:.0} writes, {:.0} watches)",
        after.requests, after.writes, after.watches
    );
    println!(
        "  writes per site to converge:   {}",
        after
            .writes_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {:.1}", v / n as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  per no-op resync of a site:    {:.2} requests, {:.2} writes {:?}",
        noop_requests / n as f64,
        noop_writes / n as f64,
        noop_verbs
    );
    println!("  steady state:                  {steady_rps:.2} requests/s over {steady} s");
    println!(
        "  after a restart:               {:.1} requests per site ({:?}), all reconciled in {:.2} s, peak RSS {:.1} MiB",
        restarted.requests / n as f64,
        restarted
            .by_verb
            .iter()
            .filter(|(k, _)| *k != "watch")
            .collect::<BTreeMap<_, _>>(),
        restart_secs.as_secs_f64(),
        mib(restart_peak)
    );
    println!(
        "  render time per site:          {:.2} ms (validate + build, in process)",
        render.as_secs_f64() * 1000.0
    );
    println!("  operator logs:                 {}", work.display());
    Ok(())
}
