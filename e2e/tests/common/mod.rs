//! Shared helpers of the conformance suites.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use serde_json::{Value, json};

/// A server with deterministic workloads and a client for it.
pub fn server() -> (TestApiServer, Client) {
    let server = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
        ..Config::default()
    });
    let client = server.client();
    (server, client)
}

/// Bounded wait with a clear failure message instead of a hung test.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after 10s waiting for: {what}"),
    }
}

pub fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub const GROUP: &str = "conformance.example.org";

/// A small CRD with the rule kinds the validator must enforce.
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{GROUP}")},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                "shortNames": ["wd"], "categories": ["gadgets"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Site", "type": "string", "jsonPath": ".spec.siteId"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object", "required": ["siteId"],
                            "properties": {
                                "siteId": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$",
                                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "siteId is immutable"}]},
                                "tier": {"type": "string", "enum": ["small", "large"], "default": "small"},
                                "replicas": {"type": "integer", "minimum": 0},
                                "maxReplicas": {"type": "integer"},
                                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["name"],
                                    "items": {"type": "object", "required": ["name"], "properties": {
                                        "name": {"type": "string"}, "port": {"type": "integer"}}}},
                            },
                            "x-kubernetes-validations": [{
                                "rule": "!has(self.replicas) || !has(self.maxReplicas) || self.replicas <= self.maxReplicas",
                                "message": "replicas must not exceed maxReplicas"}],
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets")
}

pub async fn install_widgets(client: &Client) {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(widget_crd()).expect("CRD deserializes");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD is created");
    wait_established(client, &format!("widgets.{GROUP}")).await;
}

/// Waits until a CRD is Established, as a client of a real server must before using the kind.
pub async fn wait_established(client: &Client, name: &str) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    within(
        &format!("CRD {name} Established"),
        kube::runtime::wait::await_condition(
            crds,
            name,
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD watch");
}

pub fn widgets(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &widget_resource())
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("widget deserializes")
}

pub fn apply_params(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

pub fn ssa<T: serde::Serialize + std::fmt::Debug>(v: T) -> Patch<T> {
    Patch::Apply(v)
}
