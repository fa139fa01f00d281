//! Convergence under faults (issue 13). The operator runs as two replicas behind leader election
//! against the test API server while 5 % of its requests fail (500, 429 with Retry-After, 409,
//! 504 Timeout, from a seeded generator) and its watches are dropped and expired (410 Gone)
//! over and over. Mid-rollout the leader is killed (the standby takes over: a leader change);
//! mid-deletion the new leader is killed and a fresh replica started (a restart with empty
//! caches). Then every site must converge on the newest certified release with
//! - 0 duplicate objects: each site's children are exactly what `render` prints for it;
//! - 0 PersistentVolumeClaims and 0 CloudNativePG clusters lost (same uids as before);
//! - no release deployed that was not certified: a tampered release published on the same
//!   channel never reaches a workload.
//!
//! `short_soak_converges_without_losing_data` runs in `make test` (a few sites, seeded, seconds);
//! `make soak` runs `soak_from_environment` (ignored otherwise) with `SOAK_SITES` (default 10),
//! `SOAK_SECS` of fault storm before each phase ends (default 60) and `SOAK_SEED` (default 13).

mod repo;

use repo::{docs, root};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use miracolix_e2e::{Config, Faults, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{ComponentRelease, DizSite, conditions};
use miracolix_operator::catalog::{MANAGED_BY, SITE_LABEL};
use miracolix_operator::clock::SystemClock;
use miracolix_operator::controller::{self, Context, Scope, cache};
use miracolix_operator::leader::{LeaderElector, LeaseConfig, Role};
use miracolix_operator::release::{SigningKey, TrustStore, sign_release};
use serde_json::{Value, json};

const KEY_ID: &str = "miracolix-demo-2026";
const LEASE_NS: &str = "miracolix-system";
/// Every operator replica's user agent contains this; faults hit only them.
const OPERATOR: &str = "miracolix-operator";

struct Soak {
    sites: usize,
    /// The Erlangen example's stack (about 30 children), or a small one with the same kinds of
    /// data: Blaze (a StatefulSet's claim), TORCH (a claim the operator applies) and VFPS on a
    /// CloudNativePG cluster.
    full_stack: bool,
    /// Seconds of faults at least before a phase may end (0: end as soon as converged).
    storm: Duration,
    seed: u64,
    error_rate: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_soak_converges_without_losing_data() {
    run(Soak {
        sites: 2,
        full_stack: false,
        storm: Duration::ZERO,
        seed: 13,
        error_rate: 0.05,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "make soak: minutes, sized by SOAK_SITES, SOAK_SECS and SOAK_SEED"]
async fn soak_from_environment() {
    let num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    run(Soak {
        sites: usize::try_from(num("SOAK_SITES", 10)).unwrap_or(10),
        full_stack: true,
        storm: Duration::from_secs(num("SOAK_SECS", 60)),
        seed: num("SOAK_SEED", 13),
        error_rate: 0.05,
    })
    .await;
}

async fn within<T>(what: &str, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("soak: timed out after {limit:?} waiting for: {what}"),
    }
}

/// Release `version` on `stable`, signed with the demo key, with Blaze's and FLARE's digests
/// made of `byte`: both stacks run Blaze, so an upgrade changes a workload of every site (a
/// release that changed only FLARE would complete the small stack's upgrade in one reconcile,
/// with no moment "mid-rollout" to kill the leader in). `tamper` changes Blaze's digest after
/// signing, so the release is not certified.
fn release(version: &str, byte: char, tamper: bool) -> Value {
    let mut rel = docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    rel["metadata"] = json!({"name": format!("miracolix-{version}")});
    rel["spec"]["version"] = json!(version);
    rel["spec"]["channel"] = json!("stable");
    for component in ["blaze", "flare"] {
        rel["spec"]["components"][component]["digest"] =
            json!(format!("sha256:{}", byte.to_string().repeat(64)));
    }
    if let Some(spec) = rel["spec"].as_object_mut() {
        spec.remove("compatibility");
        spec.remove("rollout");
    }
    let mut typed: ComponentRelease = serde_json::from_value(rel).expect("release");
    let pem = std::fs::read(root().join("examples/keys/demo-release-signing.pem")).expect("key");
    let key = SigningKey::from_pem(&pem, "demo").expect("demo key");
    typed.spec.signature = Some(sign_release(&typed.spec, &key, KEY_ID).expect("signs"));
    let mut v = serde_json::to_value(&typed).expect("json");
    if let Some(m) = v["metadata"].as_object_mut() {
        m.retain(|k, _| k == "name");
    }
    v.as_object_mut().expect("object").remove("status");
    if tamper {
        v["spec"]["components"]["blaze"]["digest"] = json!(format!("sha256:{}", "d".repeat(64)));
    }
    v
}

/// One operator replica: an elector gating the controllers, with its own client (user agent
/// `miracolix-operator/<pod>`) and so its own caches.
struct Replica {
    elector: Arc<LeaderElector>,
    task: tokio::task::JoinHandle<()>,
}

fn replica(server: &TestApiServer, pod: &str) -> Replica {
    let client = server.client_as(&format!("{OPERATOR}/{pod}"));
    let mut cfg = LeaseConfig::new(LEASE_NS, pod);
    cfg.lease_duration = Duration::from_secs(3);
    cfg.renew_deadline = Duration::from_secs(2);
    cfg.renew_period = Duration::from_millis(300);
    cfg.retry_period = Duration::from_millis(200);
    let elector = Arc::new(
        LeaderElector::new(client.clone(), cfg, Arc::new(SystemClock)).expect("lease config"),
    );
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("keys");
    let ctx = Arc::new(Context::new(client, Arc::new(trust), Arc::new(SystemClock)));
    let runner = elector.clone();
    let task = tokio::spawn(async move {
        let _ = runner
            .run(std::future::pending::<()>(), |stop| {
                let ctx = ctx.clone();
                async move {
                    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
                    let stopped = |tx: &tokio::sync::broadcast::Sender<()>| {
                        let mut rx = tx.subscribe();
                        async move {
                            let _ = rx.recv().await;
                        }
                    };
                    let sites = controller::run_dizsites(
                        ctx.clone(),
                        vec![Scope::AllNamespaces],
                        stopped(&tx),
                    );
                    let releases = controller::component_release::run(ctx.clone(), stopped(&tx));
                    let relay = async {
                        stop.stopped().await;
                        let _ = tx.send(());
                    };
                    tokio::join!(sites, releases, relay);
                }
            })
            .await;
    });
    Replica { elector, task }
}

async fn wait_role(r: &Replica, role: Role, limit: Duration) {
    within(&format!("replica to become {role:?}"), limit, async {
        while r.elector.role() != role {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn site_names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("diz-soak-{i}"), format!("soak{i}")))
        .collect()
}

async fn converged(client: &Client, sites: &[(String, String)], release: &str) -> Vec<String> {
    let mut waiting = Vec::new();
    for (ns, name) in sites {
        let s = Api::<DizSite>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .ok()
            .flatten();
        let ok = s.as_ref().is_some_and(|s| {
            s.status.as_ref().is_some_and(|st| {
                conditions::is_true(&st.conditions, conditions::READY)
                    && st.observed_generation == s.metadata.generation
                    && st.current_release.as_deref() == Some(release)
            })
        });
        if !ok {
            waiting.push(format!("{ns}/{name}"));
        }
    }
    waiting
}

/// Waits until every site runs `release` and is Ready, and at least `storm` has passed.
async fn converge(client: &Client, sites: &[(String, String)], release: &str, storm: Duration) {
    let started = Instant::now();
    let limit = storm + Duration::from_secs(120);
    loop {
        let waiting = converged(client, sites, release).await;
        if waiting.is_empty() && started.elapsed() >= storm {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "soak: after {limit:?} these sites are not Ready on {release}: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn child_kinds() -> Vec<ApiResource> {
    let mut kinds = cache::child_kinds();
    kinds.push(miracolix_operator::catalog::database::cnpg_api_resource());
    kinds
}

/// `(kind, name)` of every object of `kinds` labelled as the site's and managed by the operator.
async fn children(client: &Client, ns: &str, site: &str) -> BTreeSet<(String, String)> {
    let lp = ListParams::default().labels(&format!(
        "{SITE_LABEL}={site},{}={}",
        MANAGED_BY.0, MANAGED_BY.1
    ));
    let mut out = BTreeSet::new();
    for ar in child_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for o in api.list(&lp).await.expect("list children").items {
            out.insert((ar.kind.clone(), o.name_any()));
        }
    }
    out
}

/// What `render` prints for the site on `current`: the desired children, by kind and name.
fn rendered(site: &Value, releases: &[Value], current: &str) -> BTreeSet<(String, String)> {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: miracolix_operator::cli::render::RenderArgs,
    }
    let dir = std::env::temp_dir().join(format!(
        "miracolix-soak-{}-{}",
        std::process::id(),
        site["metadata"]["name"].as_str().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let site_file = dir.join("site.json");
    std::fs::write(&site_file, site.to_string()).expect("site file");
    let mut args = vec![
        "render".to_string(),
        "-f".into(),
        site_file.display().to_string(),
        "--trusted-keys".into(),
        root().join("examples/trusted-keys").display().to_string(),
        "--current".into(),
        current.into(),
    ];
    for (i, r) in releases.iter().enumerate() {
        let f = dir.join(format!("release-{i}.json"));
        std::fs::write(&f, r.to_string()).expect("release file");
        args.push("--release".into());
        args.push(f.display().to_string());
    }
    let w = Wrap::try_parse_from(args).expect("render arguments");
    let yaml = miracolix_operator::cli::render::run(&w.args).expect("render");
    miracolix_operator::yaml::from_multi_doc::<Value>(&yaml)
        .expect("rendered YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Uids of the site namespaces' PVCs and CloudNativePG clusters.
async fn data_uids(client: &Client, sites: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let cnpg = miracolix_operator::catalog::database::cnpg_api_resource();
    for (ns, _) in sites {
        for p in Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("PVCs")
            .items
        {
            out.insert(
                format!("PersistentVolumeClaim {ns}/{}", p.name_any()),
                p.uid().unwrap_or_default(),
            );
        }
        for c in Api::<DynamicObject>::namespaced_with(client.clone(), ns, &cnpg)
            .list(&ListParams::default())
            .await
            .expect("clusters")
            .items
        {
            out.insert(
                format!("Cluster {ns}/{}", c.name_any()),
                c.uid().unwrap_or_default(),
            );
        }
    }
    out
}

async fn run(cfg: Soak) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    let server = TestApiServer::with_config(Config {
        contracts: repo::catalogue_contracts(),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    let admin = server.client_as("e2e-soak");
    for entry in std::fs::read_dir(root().join("crds")).expect("crds") {
        let path = entry.expect("entry").path();
        let rel = path
            .strip_prefix(root())
            .expect("rel")
            .display()
            .to_string();
        for d in docs(&rel) {
            server.create(d).expect("CRD");
        }
    }
    for d in docs("e2e/fixtures/cnpg-cluster-crd.yaml") {
        server.create(d).expect("CNPG CRD");
    }
    server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}))
        .expect("operator namespace");
    let r1 = release("2026.1", 'a', false);
    let r2 = release("2026.2", 'b', false);
    let forged = release("2026.3", 'c', true);
    server.create(r1.clone()).expect("2026.1");

    // Every image a workload ever had, seen by a watch of the test's own.
    let images: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut recorders = Vec::new();
    for ar in [
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ar);
        let images = images.clone();
        recorders.push(tokio::spawn(async move {
            let mut s = std::pin::pin!(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
            );
            // The storm drops and expires this watch too: an error is the watcher's to
            // recover from (it re-lists after its backoff), not the end of the record.
            while let Some(item) = s.next().await {
                let Ok(o) = item else { continue };
                let mut seen = images.lock().unwrap_or_else(|p| p.into_inner());
                for c in o.data["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(
                        o.data["spec"]["template"]["spec"]["initContainers"]
                            .as_array()
                            .into_iter()
                            .flatten(),
                    )
                {
                    if let Some(i) = c["image"].as_str() {
                        seen.insert(i.to_string());
                    }
                }
            }
        }));
    }

    // The faults: transient errors on the operator's requests, and a storm of dropped and
    // expired watches (every 700 ms one or the other).
    server.set_faults(Faults::transient_errors(cfg.error_rate, OPERATOR, cfg.seed));
    let storm = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(700)).await;
                n += 1;
                if n.is_multiple_of(3) {
                    server.expire_watches();
                } else {
                    server.drop_watches();
                }
            }
        })
    };

    let a = replica(&server, "pod-a");
    wait_role(&a, Role::Leader, Duration::from_secs(20)).await;
    let b = replica(&server, "pod-b");

    let sites = site_names(cfg.sites);
    let secrets: Vec<Value> = docs("scripts/demo-secrets.yaml")
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == "diz-erlangen")
        .collect();
    let mut specs = BTreeMap::new();
    for (ns, name) in &sites {
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
        for s in &secrets {
            let mut s = s.clone();
            s["metadata"]["namespace"] = json!(ns);
            server.create(s).expect("secret");
        }
        let mut site = docs("examples/20-site-erlangen.yaml").remove(0);
        site["metadata"] = json!({"name": name, "namespace": ns});
        site["spec"]["siteId"] = json!(name);
        site["spec"]["release"] = json!({"channel": "stable"});
        if let Some(spec) = site["spec"].as_object_mut() {
            spec.remove("maintenanceWindow");
            if !cfg.full_stack {
                spec.remove("ingress");
            }
        }
        if !cfg.full_stack {
            site["spec"]["components"] = json!({
                "blaze": {"resources": "small", "storage": {"size": "1Gi"}},
                "torch": {"storage": {"size": "1Gi"}},
                "vfps": {"database": {"cloudNativePG": {"instances": 1, "storageSize": "1Gi"}}},
            });
        }
        specs.insert(name.clone(), site.clone());
        let typed: DizSite = serde_json::from_value(site).expect("site");
        Api::<DizSite>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &typed)
            .await
            .expect("site created");
    }

    // Phase 1: install under faults.
    converge(&admin, &sites, "miracolix-2026.1", cfg.storm).await;
    let data_before = data_uids(&admin, &sites).await;
    assert!(
        data_before.keys().any(|k| k.starts_with("Cluster")),
        "the sites have CloudNativePG clusters to lose: {data_before:?}"
    );
    let installed = started.elapsed();

    // Phase 2: an upgrade, and a tampered release on the same channel; the leader is killed
    // once a site is mid-rollout, and the standby takes over. The simulated kubelet holds the
    // new pods unready until then: with immediate readiness a rollout can start and finish
    // between two looks, and "mid-rollout" would be a race the test loses on a slow machine.
    server.set_workload_timing(WorkloadTiming::Manual);
    Api::<ComponentRelease>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(r2.clone()).expect("2026.2"),
        )
        .await
        .expect("2026.2 published");
    Api::<ComponentRelease>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(forged.clone()).expect("2026.3"),
        )
        .await
        .expect("forged 2026.3 published");
    within("a site mid-rollout", Duration::from_secs(60), async {
        loop {
            let mid = Api::<DizSite>::all(admin.clone())
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items.iter().any(|s| {
                        s.status.as_ref().is_some_and(|st| {
                            st.target_release.as_deref() == Some("miracolix-2026.2")
                        })
                    })
                })
                .unwrap_or(false);
            if mid {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    a.task.abort();
    let _ = a.task.await;
    server.set_workload_timing(WorkloadTiming::Immediate);
    server.complete_rollouts();
    wait_role(&b, Role::Leader, Duration::from_secs(30)).await;
    let leader_changes = 1;
    converge(&admin, &sites, "miracolix-2026.2", cfg.storm).await;

    // Phase 3: a site deleted (Retain); the leader is killed while it is being deleted and a
    // fresh replica (empty caches) takes over.
    let (gone_ns, gone) = sites[0].clone();
    Api::<DizSite>::namespaced(admin.clone(), &gone_ns)
        .delete(&gone, &DeleteParams::default())
        .await
        .expect("delete");
    b.task.abort();
    let _ = b.task.await;
    let c = replica(&server, "pod-c");
    wait_role(&c, Role::Leader, Duration::from_secs(30)).await;
    let restarts = 2;
    within(
        "the deleted site to go",
        cfg.storm + Duration::from_secs(120),
        async {
            while Api::<DizSite>::namespaced(admin.clone(), &gone_ns)
                .get_opt(&gone)
                .await
                .map(|s| s.is_some())
                .unwrap_or(true)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    let remaining = &sites[1..];
    converge(&admin, remaining, "miracolix-2026.2", Duration::ZERO).await;
    let converged_at = started.elapsed();

    // The verdict, with the faults off (the test's reads are not faulted anyway).
    storm.abort();
    server.clear_faults();
    let injected = server
        .requests()
        .iter()
        .filter(|r| r.user_agent.contains(OPERATOR) && matches!(r.code, 409 | 429 | 500 | 504))
        .count();
    let operator_requests = server
        .requests()
        .iter()
        .filter(|r| r.user_agent.contains(OPERATOR))
        .count();

    let mut duplicates = Vec::new();
    let mut missing = Vec::new();
    for (ns, name) in remaining {
        let want = rendered(&specs[name], &[r1.clone(), r2.clone()], "miracolix-2026.2");
        let mut have = children(&admin, ns, name).await;
        // The rollout record is the operator's memory, not a rendered child.
        have.remove(&("ConfigMap".to_string(), format!("{name}-rollout")));
        // Claims of StatefulSets come from their templates, not from render.
        have.retain(|(k, n)| {
            k != "PersistentVolumeClaim" || want.contains(&(k.clone(), n.clone()))
        });
        duplicates.extend(have.difference(&want).map(|x| format!("{ns} {x:?}")));
        missing.extend(want.difference(&have).map(|x| format!("{ns} {x:?}")));
    }
    let data_after = data_uids(&admin, &sites).await;
    let lost: Vec<&String> = data_before
        .iter()
        .filter(|(k, uid)| data_after.get(*k) != Some(*uid))
        .map(|(k, _)| k)
        .collect();
    let lost_pvcs = lost
        .iter()
        .filter(|k| k.starts_with("PersistentVolumeClaim"))
        .count();
    let lost_clusters = lost.iter().filter(|k| k.starts_with("Cluster")).count();
    let forged_digest = "c".repeat(64);
    let blaze_forged = "d".repeat(64);
    let seen = images.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let upgraded = "b".repeat(64);
    assert!(
        seen.iter().any(|i| i.contains(&upgraded)),
        "the upgrade to 2026.2 reached a workload: {seen:?}"
    );
    let uncertified: Vec<String> = seen
        .iter()
        .filter(|i| i.contains(&forged_digest) || i.contains(&blaze_forged))
        .cloned()
        .collect();
    for r in recorders {
        r.abort();
    }
    c.task.abort();

    println!(
        "soak: {} sites, seed {}, {:.0} % transient errors; installed in {:.1} s, converged after \
         upgrade, leader change and restart at {:.1} s; operator requests {operator_requests}, \
         of which failed by injection {injected}; leader changes {leader_changes}, restarts \
         {restarts}; duplicate objects {}, missing objects {}, PVCs lost {lost_pvcs}, \
         database clusters lost {lost_clusters}, uncertified releases deployed {}",
        cfg.sites,
        cfg.seed,
        cfg.error_rate * 100.0,
        installed.as_secs_f64(),
        converged_at.as_secs_f64(),
        duplicates.len(),
        missing.len(),
        uncertified.len(),
    );
    assert!(injected > 0, "faults were injected");
    assert_eq!(duplicates, Vec::<String>::new(), "duplicate objects");
    assert_eq!(missing, Vec::<String>::new(), "missing objects");
    assert_eq!(lost, Vec::<&String>::new(), "data lost");
    assert_eq!(
        uncertified,
        Vec::<String>::new(),
        "uncertified images deployed"
    );
}
