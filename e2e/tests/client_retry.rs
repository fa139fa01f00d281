//! The operator's client honours the API server's `Retry-After` on a 429: it retries the
//! request after the time the server asked for, instead of failing the reconcile (or coming
//! back within milliseconds).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use miracolix_e2e::apiserver::{FaultCode, Faults, TestApiServer};
use miracolix_operator::telemetry::Metrics;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("cm")
}

#[tokio::test]
async fn the_operators_client_retries_a_429_after_its_retry_after() {
    let server = TestApiServer::new();
    let handle = server
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let mut config = kube::Config::new(handle.url().parse().expect("url"));
    config.default_namespace = "default".into();
    let client =
        miracolix_operator::cli::run::api_client(config, &Metrics::default()).expect("client");
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    // Every second write is refused with 429 and `Retry-After: 1`.
    server.set_faults(Faults::every_nth_write(2, FaultCode::TooManyRequests));
    api.create(&PostParams::default(), &config_map("first"))
        .await
        .expect("the first write is not refused");

    let started = Instant::now();
    api.create(&PostParams::default(), &config_map("second"))
        .await
        .expect("the refused write is retried and succeeds");
    let waited = started.elapsed();

    let codes: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "configmaps")
        .map(|r| r.code)
        .collect();
    assert_eq!(codes, vec![201, 429, 201], "one refusal, one retry");
    // Without the server's hint the retry layer's first backoff is about 5 ms.
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, before the Retry-After of 1 s"
    );
}
