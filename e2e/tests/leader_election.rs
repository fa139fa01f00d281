//! Leader election against the test API server: two replicas share one Lease, only the holder
//! runs the DizSite controller, failover after the lease expires (manual clock), release on
//! shutdown, and a leader that finds another holder stops its controllers.

mod repo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use miracolix_operator::api::{DizSite, conditions};
use miracolix_operator::clock::{ManualClock, SystemClock};
use miracolix_operator::controller::{self, Context, Scope};
use miracolix_operator::leader::{LeaderElector, LeaderError, LeaseConfig, Role};
use miracolix_operator::release::trust::TrustStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "diz-marburg";
const LEASE_NS: &str = "miracolix-system";
const POD_A: &str = "miracolix-operator/pod-a";
const POD_B: &str = "miracolix-operator/pod-b";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf()
}

fn docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(rel)).expect(rel);
    miracolix_operator::yaml::from_multi_doc(&text).expect("yaml")
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 20s waiting for: {what}"),
    }
}

fn server() -> TestApiServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = TestApiServer::with_config(Config {
        contracts: repo::catalogue_contracts(),
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    for ns in [NS, LEASE_NS] {
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
    }
    server
}

/// Fast rounds in real time; expiry only when the test moves the manual clock.
fn elector(server: &TestApiServer, pod: &str, clock: &ManualClock) -> Arc<LeaderElector> {
    let mut cfg = LeaseConfig::new(LEASE_NS, pod.rsplit('/').next().unwrap_or(pod));
    cfg.renew_period = Duration::from_millis(50);
    cfg.retry_period = Duration::from_millis(20);
    Arc::new(
        LeaderElector::new(server.client_as(pod), cfg, Arc::new(clock.clone())).expect("elector"),
    )
}

async fn wait_role(e: &LeaderElector, role: Role) {
    let mut rx = e.watch_role();
    within(
        &format!("{} to become {role:?}", e.config().identity),
        async {
            rx.wait_for(|r| *r == role).await.expect("elector alive");
        },
    )
    .await;
}

fn lease(server: &TestApiServer) -> Lease {
    let v = server
        .object(
            "coordination.k8s.io",
            "leases",
            LEASE_NS,
            "miracolix-operator",
        )
        .expect("the Lease exists");
    serde_json::from_value(v).expect("Lease")
}

fn holder(server: &TestApiServer) -> Option<String> {
    lease(server).spec.and_then(|s| s.holder_identity)
}

fn lease_requests(server: &TestApiServer, ua: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.user_agent.contains(ua) && r.resource == "leases")
        .count()
}

#[tokio::test]
async fn failover_after_expiry_and_only_the_leader_writes() {
    let server = server();
    for crd in std::fs::read_dir(root().join("crds")).expect("crds") {
        let path = crd.expect("entry").path();
        let rel = path.strip_prefix(root()).expect("rel").to_path_buf();
        for doc in docs(rel.to_str().expect("utf8")) {
            server.create(doc).expect("CRD installs");
        }
    }
    for doc in docs("examples/10-release-miracolix-2026.1.yaml") {
        server.create(doc).expect("release");
    }
    let trust = Arc::new(TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("key"));
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    // Each replica: an elector gating a DizSite controller, both through one client per pod so
    // the request log tells the pods apart.
    let replica = |pod: &'static str| {
        let e = elector(&server, pod, &clock);
        let ctx = Arc::new(Context::new(
            server.client_as(pod),
            trust.clone(),
            Arc::new(SystemClock),
        ));
        let metrics = ctx.metrics.clone();
        let runner = e.clone();
        let task = tokio::spawn(async move {
            runner
                .run(std::future::pending::<()>(), |stop| {
                    controller::run_dizsite(ctx, Scope::AllNamespaces, stop.stopped())
                })
                .await
        });
        (e, task, metrics)
    };

    let (a, task_a, _) = replica(POD_A);
    wait_role(&a, Role::Leader).await;
    assert_eq!(holder(&server).as_deref(), Some("pod-a"));

    let sites: Api<DizSite> = Api::namespaced(server.client_as("e2e-test"), NS);
    let site: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "marburg", "namespace": NS},
        "spec": {"siteId": "marburg", "release": {"name": "miracolix-2026.1"},
                 "components": {"blaze": {"resources": "small"}, "flare": {"resources": "small"}}},
    }))
    .expect("site");
    sites
        .create(&PostParams::default(), &site)
        .await
        .expect("site created");
    let ready = |generation: i64| {
        await_condition(sites.clone(), "marburg", move |o: Option<&DizSite>| {
            o.and_then(|o| o.status.as_ref()).is_some_and(|st| {
                conditions::is_true(&st.conditions, conditions::READY)
                    && st.observed_generation == Some(generation)
            })
        })
    };
    within("the site Ready under leader A", ready(1))
        .await
        .expect("watch");

    let (b, task_b, metrics_b) = replica(POD_B);
    wait_role(&b, Role::Standby).await;
    // B keeps checking while A keeps renewing; A stays the holder.
    let seen = lease_requests(&server, POD_B);
    within("B to check the Lease again", async {
        while lease_requests(&server, POD_B) < seen + 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(b.role(), Role::Standby);
    assert_eq!(holder(&server).as_deref(), Some("pod-a"));

    // A stops renewing (its process hangs or dies); the Lease is still valid on B's clock.
    task_a.abort();
    assert!(task_a.await.is_err_and(|e| e.is_cancelled()));
    let seen = lease_requests(&server, POD_B);
    within("B to check the Lease again", async {
        while lease_requests(&server, POD_B) < seen + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        b.role(),
        Role::Standby,
        "no takeover before the lease expires"
    );

    clock.advance(SignedDuration::from_secs(16));
    wait_role(&b, Role::Leader).await;
    let l = lease(&server).spec.expect("spec");
    assert_eq!(l.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(l.lease_transitions, Some(1));
    let handover = server
        .requests()
        .iter()
        .position(|r| {
            r.user_agent.contains(POD_B)
                && r.resource == "leases"
                && r.verb == "update"
                && r.code == 200
        })
        .expect("B's takeover is in the log");

    // B's controller does the work now: a spec change makes it write children.
    sites
        .patch(
            "marburg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"components": {"flare": null}}})),
        )
        .await
        .expect("spec changed");
    within("the site Ready under leader B", ready(2))
        .await
        .expect("watch");

    // A's renewal from its stale copy conflicts; it learns B holds the Lease.
    assert_eq!(
        a.try_acquire_or_renew().await.expect("round"),
        Role::Standby
    );
    let log = server.requests();
    assert!(
        log.iter().any(|r| r.user_agent.contains(POD_A)
            && r.resource == "leases"
            && r.verb == "update"
            && r.code == 409),
        "A's renewal was refused with 409"
    );
    assert_eq!(holder(&server).as_deref(), Some("pod-b"));

    // Never two writers: A wrote only before the handover, B only after it.
    let writes = |ua: &str| -> Vec<(usize, String)> {
        log.iter()
            .enumerate()
            .filter(|(_, r)| {
                r.user_agent.contains(ua) && r.is_write() && r.resource != "leases" && r.code < 400
            })
            .map(|(i, r)| (i, format!("{} {} {}", r.verb, r.resource, r.name)))
            .collect()
    };
    let (wa, wb) = (writes(POD_A), writes(POD_B));
    assert!(
        wa.iter().any(|(_, w)| w.contains("deployments")),
        "A applied children: {wa:?}"
    );
    assert!(
        wb.iter().any(|(_, w)| w.contains("deployments")),
        "B changed children: {wb:?}"
    );
    assert!(
        wa.iter().all(|(i, _)| *i < handover),
        "A wrote after the handover: {wa:?}"
    );
    assert!(
        wb.iter().all(|(i, _)| *i > handover),
        "B wrote before leading: {wb:?}"
    );

    // The leader's metrics describe the site; the gauges follow the status one reconcile later.
    within("B's metrics to show the ready site", async {
        loop {
            let text = metrics_b.render();
            if text.contains("miracolix_site_ready{namespace=\"diz-marburg\",site=\"marburg\"} 1")
                && text.contains("miracolix_site_release_info{namespace=\"diz-marburg\",site=\"marburg\",release=\"miracolix-2026.1\"} 1")
                && text.contains("miracolix_reconcile_total{kind=\"DizSite\",result=\"ok\"}")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    task_b.abort();
}

#[tokio::test]
async fn a_leader_shutting_down_releases_the_lease_and_a_standby_takes_it_at_once() {
    let server = server();
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let a = elector(&server, POD_A, &clock);
    let b = elector(&server, POD_B, &clock);
    let (stop_a, stopped_a) = oneshot::channel::<()>();
    let (work_started, started) = oneshot::channel::<()>();
    let runner = a.clone();
    let task_a = tokio::spawn(async move {
        runner
            .run(
                async {
                    let _ = stopped_a.await;
                },
                |stop| async move {
                    let _ = work_started.send(());
                    stop.stopped().await;
                    "work stopped"
                },
            )
            .await
    });
    within("A's work to start", started).await.expect("started");
    let runner = b.clone();
    let task_b = tokio::spawn(async move {
        runner
            .run(std::future::pending::<()>(), |stop| stop.stopped())
            .await
    });
    wait_role(&b, Role::Standby).await;

    let _ = stop_a.send(());
    let out = within("A to shut down", task_a).await.expect("task");
    assert_eq!(out.expect("clean shutdown"), Some("work stopped"));
    // The clock has not moved: only the release lets B in this early.
    wait_role(&b, Role::Leader).await;
    assert_eq!(holder(&server).as_deref(), Some("pod-b"));
    task_b.abort();
}

#[tokio::test]
async fn a_leader_that_finds_another_holder_stops_its_work_and_reports_the_loss() {
    let server = server();
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let a = elector(&server, POD_A, &clock);
    let (work_started, started) = oneshot::channel::<()>();
    let (work_ended_tx, work_ended) = oneshot::channel::<()>();
    let runner = a.clone();
    let task_a = tokio::spawn(async move {
        runner
            .run(std::future::pending::<()>(), |stop| async move {
                let _ = work_started.send(());
                stop.stopped().await;
                let _ = work_ended_tx.send(());
            })
            .await
    });
    within("A's work to start", started).await.expect("started");

    // Somebody else writes the Lease (an operator of another version, a person with kubectl).
    let leases: Api<Lease> = Api::namespaced(server.client_as("intruder"), LEASE_NS);
    leases
        .patch(
            "miracolix-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "pod-z"}})),
        )
        .await
        .expect("lease overwritten");

    let out = within("A to give up", task_a).await.expect("task");
    assert!(
        matches!(out, Err(LeaderError::Lost { .. })),
        "lost leadership is an error (non-zero exit): {out:?}"
    );
    within("A's work to be stopped", work_ended)
        .await
        .expect("work stopped before run returned");
    assert_eq!(a.role(), Role::Standby);
    assert_eq!(
        holder(&server).as_deref(),
        Some("pod-z"),
        "A did not fight back"
    );
}
