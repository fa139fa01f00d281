//! The gate's objects for one FeasibilityEndpoint, built without a client.
//!
//! - ConfigMap `<endpoint>-gate`: `callers.json` (where the DSF token is mounted: the Secret
//!   `<endpoint>-gate-dsf-token`, key `token`, which the site creates and the operator never reads);
//! - PersistentVolumeClaim `<endpoint>-gate-state`: the answer cache, the budget and the audit
//!   log. It has **no owner reference**: deleting the endpoint leaves the audit log, the site's
//!   record of what left it (delete the claim by hand once it is archived);
//! - Deployment `<endpoint>-gate`: one replica (SQLite has one writer; `Recreate` so two pods never
//!   share the volume), restricted pod (uid 65532, read-only root, no capabilities);
//! - Service `<endpoint>-gate` (8080 the FLARE-compatible API, 8081 metrics);
//! - NetworkPolicy `<endpoint>-gate`: in, the API only from pods labelled
//!   `diz.miracum.org/access-feasibility-gate: "true"` in the namespace (the DSF BPE); out, only
//!   FLARE's port and DNS. The gate pod carries `diz.miracum.org/access-flare: "true"`, the label
//!   the site's FLARE policy admits (catalog/network_policy.rs).
//!
//!
//! With `spec.direct` (direct-broker mode), also:
//! - the gate's mTLS listener on 8443 (`GATE_TLS_CERT`, `GATE_TLS_KEY`, `GATE_CLIENT_CA` from
//!   the site's two Secrets, mounted; `clientCertificates.allowed` in `callers.json`), a Service
//!   port `https`;
//! - Ingress `<endpoint>-gate` for `direct.host` with ingress-nginx's
//!   `nginx.ingress.kubernetes.io/ssl-passthrough: "true"`: the ingress controller forwards the
//!   TLS stream by SNI without terminating it, so the gate sees the broker's certificate itself
//!   and no header from the ingress is trusted (ingress-nginx docs, "SSL Passthrough"; the
//!   controller must run with `--enable-ssl-passthrough`);
//! - a NetworkPolicy rule admitting port 8443 from the ingress controller's namespace (the
//!   site's `spec.networkPolicy.ingressNamespaceLabels`, default `ingress-nginx`).
//!
//! None of the objects carries the site label: the DizSite controller removes site-labelled
//! objects it did not build.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::{ComponentImage, DirectAccess, FeasibilityEndpoint};
use crate::catalog::controller_reference;
use crate::catalog::network_policy::{access_label, selector, tcp_port as tcp};
use crate::catalog::own_image::GATE_STATE_DIR as STATE_DIR;
use crate::catalog::pod::{self, RESTRICTED};
use crate::catalog::{CatalogError, Child, MANAGED_BY, PART_OF};

/// The key of the gate's image in a ComponentRelease's `components`.
pub const GATE_IMAGE_KEY: &str = "miracolix-gate";
/// Label on every gate object: the endpoint it belongs to.
pub const ENDPOINT_LABEL: &str = "diz.miracum.org/feasibility-endpoint";
/// The part name the opt-in label for the gate's callers is built from.
pub const GATE_PART: &str = "feasibility-gate";
/// The operator binary's subcommand that runs the gate.
pub const GATE_SUBCOMMAND: &str = "gate";
pub const API_PORT: i32 = 8080;
pub const OPS_PORT: i32 = 8081;
/// The mTLS listener (direct-broker mode).
pub const MTLS_PORT: i32 = 8443;
/// ingress-nginx: route the TLS stream for the host to the backend without terminating it.
pub const SSL_PASSTHROUGH: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";
const TLS_DIR: &str = "/etc/miracolix-gate/tls";
const CLIENT_CA_DIR: &str = "/etc/miracolix-gate/client-ca";
const FLARE_PORT: i32 = 8080;
const CONFIG_DIR: &str = "/etc/miracolix-gate";

/// What the builder needs beyond the endpoint.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    pub endpoint: &'a FeasibilityEndpoint,
    pub site_name: &'a str,
    pub image: &'a ComponentImage,
    /// Where the site's ingress controller runs and which class it is (from the DizSite).
    pub site_ingress: &'a SiteIngress,
}

/// What the gate's direct-mode objects take from the site: the same ingress controller and
/// the same namespace labels the site's own Ingress and NetworkPolicies use.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteIngress {
    pub class_name: Option<String>,
    pub namespace_labels: BTreeMap<String, String>,
}

pub fn gate_name(endpoint: &FeasibilityEndpoint) -> String {
    format!("{}-gate", endpoint.name_any())
}

fn selector_labels(endpoint: &FeasibilityEndpoint) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), GATE_IMAGE_KEY.into()),
        ("app.kubernetes.io/instance".into(), gate_name(endpoint)),
        (ENDPOINT_LABEL.into(), endpoint.name_any()),
    ])
}

fn labels(endpoint: &FeasibilityEndpoint) -> BTreeMap<String, String> {
    let mut l = selector_labels(endpoint);
    l.insert("app.kubernetes.io/component".into(), "feasibility".into());
    l.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    l
}

fn meta(endpoint: &FeasibilityEndpoint, name: String, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: endpoint.namespace(),
        labels: Some(labels(endpoint)),
        owner_references: owned.then(|| vec![controller_reference(endpoint)]),
        ..ObjectMeta::default()
    }
}

/// The Secret (key `token`) the site creates with the bearer token its DSF sends; the gate mounts
/// it and keeps only its hash. The operator never reads it.
pub fn token_secret_name(endpoint: &FeasibilityEndpoint) -> String {
    format!("{}-dsf-token", gate_name(endpoint))
}

const TOKEN_DIR: &str = "/etc/miracolix-gate/dsf";

/// `callers.json` for the gate: the DSF's token, read from the mounted Secret, and in direct
/// mode the client certificates' names.
pub fn callers_json(direct: Option<&DirectAccess>) -> String {
    let mut callers = serde_json::json!({
        "tokens": [{"requester": "dsf", "tokenFile": format!("{TOKEN_DIR}/token")}]
    });
    if let Some(d) = direct {
        callers["clientCertificates"] = serde_json::json!({"allowed": d.allowed_clients});
    }
    callers.to_string()
}

/// Every object of the gate, in apply order (config and volume before the workload).
pub fn build(input: &GateInput) -> Result<Vec<Child>, CatalogError> {
    let ep = input.endpoint;
    let name = gate_name(ep);
    let privacy = &ep.spec.privacy;
    let direct = ep.spec.direct.as_ref();
    let callers = callers_json(direct);
    let config = ConfigMap {
        metadata: meta(ep, name.clone(), true),
        data: Some(BTreeMap::from([(
            "callers.json".to_string(),
            callers.clone(),
        )])),
        ..ConfigMap::default()
    };
    let state_claim = format!("{name}-state");
    let pvc = PersistentVolumeClaim {
        metadata: meta(ep, state_claim.clone(), false),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Gi".into()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let env = |k: &str, v: String| EnvVar {
        name: k.into(),
        value: Some(v),
        ..EnvVar::default()
    };
    let mut pod_labels = labels(ep);
    pod_labels.insert(access_label("flare"), "true".into());
    // A config change restarts the pod (the gate reads its config once). A new token in the
    // Secret needs a restart too (`kubectl rollout restart`).
    let hash = ring::digest::digest(&ring::digest::SHA256, callers.as_bytes());
    let hash: String = hash.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let container = Container {
        name: "gate".into(),
        image: Some(crate::catalog::image_ref(input.image)),
        // The gate is a subcommand of the operator binary, so `miracolix-gate` pins the operator
        // image (docs/image.md: one image for everything the project ships). The entrypoint is
        // the binary; args replace the image's `run`.
        args: Some(vec![GATE_SUBCOMMAND.into()]),
        env: Some(
            vec![
                env(
                    "GATE_EXECUTOR_URL",
                    format!("http://{}-flare:{FLARE_PORT}", input.site_name),
                ),
                env("GATE_EPSILON", privacy.epsilon.to_string()),
                env("GATE_ROUND_TO", privacy.round_to.to_string()),
                env("GATE_SUPPRESS_BELOW", privacy.suppress_below.to_string()),
                env(
                    "GATE_REQUESTS_PER_HOUR",
                    privacy.requests_per_hour.to_string(),
                ),
                env(
                    "GATE_DAILY_EPSILON_BUDGET",
                    privacy.daily_epsilon_budget.to_string(),
                ),
                env("GATE_STATE_DIR", STATE_DIR.into()),
                env("GATE_CALLERS", format!("{CONFIG_DIR}/callers.json")),
            ]
            .into_iter()
            .chain(direct.into_iter().flat_map(|_| {
                [
                    env("GATE_MTLS_LISTEN", format!("0.0.0.0:{MTLS_PORT}")),
                    env("GATE_TLS_CERT", format!("{TLS_DIR}/tls.crt")),
                    env("GATE_TLS_KEY", format!("{TLS_DIR}/tls.key")),
                    env("GATE_CLIENT_CA", format!("{CLIENT_CA_DIR}/ca.crt")),
                ]
            }))
            .collect(),
        ),
        ports: Some(
            [
                ("http", API_PORT),
                ("metrics", OPS_PORT),
                ("https", MTLS_PORT),
            ]
            .into_iter()
            .filter(|(_, port)| *port != MTLS_PORT || direct.is_some())
            .map(|(n, port)| ContainerPort {
                name: Some(n.into()),
                container_port: port,
                ..ContainerPort::default()
            })
            .collect(),
        ),
        liveness_probe: Some(pod::http_probe("/healthz", "metrics")),
        readiness_probe: Some(pod::http_probe("/readyz", "metrics")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("128Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(pod::container_security(RESTRICTED)),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: "state".into(),
                    mount_path: STATE_DIR.into(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "config".into(),
                    mount_path: CONFIG_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "dsf-token".into(),
                    mount_path: TOKEN_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(direct.into_iter().flat_map(|_| {
                [("tls", TLS_DIR), ("client-ca", CLIENT_CA_DIR)].map(|(n, path)| VolumeMount {
                    name: n.into(),
                    mount_path: path.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                })
            }))
            .collect(),
        ),
        ..Container::default()
    };
    let deployment = Deployment {
        metadata: meta(ep, name.clone(), true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(
                &selector_labels(ep)
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        pod::CONFIG_HASH_ANNOTATION.to_string(),
                        hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(pod::NONROOT),
                        run_as_group: Some(pod::NONROOT),
                        fs_group: Some(pod::NONROOT),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(
                        vec![
                            Volume {
                                name: "state".into(),
                                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                    claim_name: state_claim,
                                    ..PersistentVolumeClaimVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "config".into(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: name.clone(),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            secret_volume("dsf-token", token_secret_name(ep)),
                        ]
                        .into_iter()
                        .chain(direct.into_iter().flat_map(|d| {
                            [
                                secret_volume("tls", d.server_certificate_secret_ref.name.clone()),
                                secret_volume("client-ca", d.client_ca_secret_ref.name.clone()),
                            ]
                        }))
                        .collect(),
                    ),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let port = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::String(n.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let service = Service {
        metadata: meta(ep, name.clone(), true),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(ep)),
            ports: Some(
                [port("http", API_PORT), port("metrics", OPS_PORT)]
                    .into_iter()
                    .chain(direct.map(|_| port("https", MTLS_PORT)))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let gate_pods = selector(
        &selector_labels(ep)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let policy = NetworkPolicy {
        metadata: meta(ep, name.clone(), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(gate_pods),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(
                std::iter::once(NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector(&[(&access_label(GATE_PART), "true")])),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(API_PORT)]),
                })
                // Direct mode: the mTLS port, from the ingress controller's pods only.
                .chain(direct.map(|_| NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_labels: Some(input.site_ingress.namespace_labels.clone()),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(MTLS_PORT)]),
                }))
                .collect(),
            ),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector(&[
                            (crate::catalog::SITE_LABEL, input.site_name),
                            (crate::catalog::COMPONENT_LABEL, "flare"),
                        ])),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(FLARE_PORT)]),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![
                        NetworkPolicyPort {
                            port: Some(IntOrString::Int(53)),
                            protocol: Some("UDP".into()),
                            ..NetworkPolicyPort::default()
                        },
                        tcp(53),
                    ]),
                },
            ]),
        }),
    };
    let mut children = vec![
        Child::from_typed(config, None)?,
        Child::from_typed(pvc, None)?,
        Child::from_typed(deployment, None)?,
        Child::from_typed(service, None)?,
        Child::from_typed(policy, None)?,
    ];
    if let Some(d) = direct {
        children.push(Child::from_typed(
            passthrough_ingress(ep, &name, d, input.site_ingress),
            None,
        )?);
    }
    Ok(children)
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The Ingress of direct mode: `direct.host` to the gate's mTLS port, TLS passed through. No
/// `tls` section: the ingress holds no certificate for this host, the gate does.
fn passthrough_ingress(
    ep: &FeasibilityEndpoint,
    service: &str,
    direct: &DirectAccess,
    site: &SiteIngress,
) -> Ingress {
    let mut metadata = meta(ep, service.to_string(), true);
    metadata.annotations = Some(BTreeMap::from([(
        SSL_PASSTHROUGH.to_string(),
        "true".to_string(),
    )]));
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: direct
                .class_name
                .clone()
                .or_else(|| site.class_name.clone()),
            rules: Some(vec![IngressRule {
                host: Some(direct.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: service.to_string(),
                                port: Some(ServiceBackendPort {
                                    name: Some("https".into()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}
