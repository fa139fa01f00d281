//! Content negotiation with the Kubernetes protobuf encoding, at request level: client-go's
//! `Accept: application/vnd.kubernetes.protobuf,application/json` gets protobuf for built-in
//! kinds, JSON for custom resources; protobuf bodies of built-in kinds are accepted, of custom
//! resources refused with 415, as kube-apiserver does.

mod common;

use common::{install_widgets, server, widget};
use http::{Request, header};
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::Client;
use kube::api::PostParams;
use prost::Message;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const CLIENT_GO_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

fn enveloped(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

/// Sends a request; returns the status, the Content-Type and the body.
async fn send(client: &Client, req: Request<Vec<u8>>) -> (u16, String, Vec<u8>) {
    let resp = client
        .send(req.map(Into::into))
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, content_type, body)
}

/// The object inside a protobuf answer.
fn unwrap_envelope(body: &[u8]) -> Unknown {
    let raw = body.strip_prefix(b"k8s\0").expect("the protobuf prefix");
    Unknown::decode(raw).expect("a runtime.Unknown")
}

#[tokio::test]
async fn built_in_kinds_are_read_and_written_in_protobuf() {
    let (_s, client) = server();
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        }),
        data: [("mode".to_string(), "fast".to_string())].into(),
        ..Default::default()
    };
    let req = Request::post("/api/v1/namespaces/default/configmaps?fieldManager=test")
        .header(header::CONTENT_TYPE, PROTOBUF)
        .header(header::ACCEPT, CLIENT_GO_ACCEPT)
        .body(enveloped("v1", "ConfigMap", cm.encode_to_vec()))
        .expect("request");
    let (status, content_type, body) = send(&client, req).await;
    assert_eq!((status, content_type.as_str()), (201, PROTOBUF));
    let answer = unwrap_envelope(&body);
    assert_eq!(
        answer.type_meta.and_then(|t| t.kind).as_deref(),
        Some("ConfigMap")
    );
    let created =
        core::ConfigMap::decode(answer.raw.as_deref().unwrap_or_default()).expect("a ConfigMap");
    let meta = created.metadata.expect("metadata");
    assert!(
        meta.uid.is_some_and(|u| !u.is_empty()),
        "the server set a uid"
    );
    assert_eq!(created.data.get("mode").map(String::as_str), Some("fast"));

    // A list, in protobuf too.
    let req = Request::get("/api/v1/namespaces/default/configmaps")
        .header(header::ACCEPT, CLIENT_GO_ACCEPT)
        .body(Vec::new())
        .expect("request");
    let (status, content_type, body) = send(&client, req).await;
    assert_eq!((status, content_type.as_str()), (200, PROTOBUF));
    let list =
        core::ConfigMapList::decode(unwrap_envelope(&body).raw.as_deref().unwrap_or_default())
            .expect("a ConfigMapList");
    assert_eq!(list.items.len(), 1);

    // A client that prefers JSON gets JSON.
    let req = Request::get("/api/v1/namespaces/default/configmaps/settings")
        .header(header::ACCEPT, "application/json, */*")
        .body(Vec::new())
        .expect("request");
    let (_, content_type, body) = send(&client, req).await;
    assert_eq!(content_type, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["data"]["mode"], "fast");
}

#[tokio::test]
async fn custom_resources_stay_json() {
    let (_s, client) = server();
    install_widgets(&client).await;
    common::widgets(&client)
        .create(
            &PostParams::default(),
            &widget(
                "erlangen",
                serde_json::json!({"siteId": "erlangen", "replicas": 1}),
            ),
        )
        .await
        .expect("widget");
    let path = format!("/apis/{}/v1/namespaces/default/widgets", common::GROUP);
    let req = Request::get(format!("{path}/erlangen"))
        .header(header::ACCEPT, CLIENT_GO_ACCEPT)
        .body(Vec::new())
        .expect("request");
    let (status, content_type, _) = send(&client, req).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, PROTOBUF)
        .body(enveloped(
            &format!("{}/v1", common::GROUP),
            "Widget",
            Vec::new(),
        ))
        .expect("request");
    let (status, _, body) = send(&client, req).await;
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
}

/// The checked-in table is what `make protobuf-schema` makes from the locked k8s-pb and the
/// Kubernetes 1.33 OpenAPI of kubernetes-validate.
#[test]
fn the_protobuf_table_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let has_validate = std::process::Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_validate {
        println!("skipped: python3 with kubernetes-validate not installed (make tools)");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/gen_protobuf_schema.py"))
        .arg("--check")
        .output()
        .expect("the generator runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
