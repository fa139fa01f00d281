//! The inbox's objects for one ProposalInbox, built without a client.
//!
//! - ConfigMap `<inbox>-inbox`: `config.json` ([`super::config`]);
//! - PersistentVolumeClaim `<inbox>-inbox-data`: the SQLite database. It has **no owner
//!   reference**: deleting the inbox keeps the proposals, votes and audit trail (delete the claim
//!   by hand once they are archived);
//! - Deployment `<inbox>-inbox`: one replica (SQLite has one writer; `Recreate` so two pods never
//!   share the volume), restricted pod (uid 65532, read-only root, no capabilities, no
//!   ServiceAccount token), probes on the ops port;
//! - Service `<inbox>-inbox` (8080 web page and API, 8081 metrics, health and summary);
//! - NetworkPolicy `<inbox>-inbox` (see [`network_policy`]);
//! - Ingress `<inbox>-inbox`: `/inbox` on the site's host;
//! - with `spec.database.cloudNativePG`: the CloudNativePG Cluster `<inbox>-inbox-db` (no owner
//!   reference, like the volume) and a NetworkPolicy `<inbox>-inbox-db` for its instances (no
//!   owner reference either: it protects the instances for as long as they exist).
//!
//! None of the objects carries the site label: the DizSite controller removes site-labelled
//! objects it did not build.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretProjection, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::config::{self, BASE_PATH};
use super::{Deployable, Public};
use crate::api::{ProposalInbox, SecretKeyRef};
use crate::catalog::controller_reference;
use crate::catalog::database::{CNPG_CLUSTER_LABEL, POSTGRES_PORT};
use crate::catalog::network_policy::{CNPG_INSTANCE_MANAGER_PORT, CNPG_OPERATOR_POD};
use crate::catalog::network_policy::{access_label, tcp_port as tcp};
use crate::catalog::pod::{self, RESTRICTED};
use crate::catalog::{CatalogError, Child, MANAGED_BY, PART_OF};

/// The key of the inbox's image in a ComponentRelease's `components`.
pub const INBOX_IMAGE_KEY: &str = "miracolix-inbox";
/// Label on every inbox object: the ProposalInbox it belongs to.
pub const INBOX_LABEL: &str = "diz.miracum.org/proposal-inbox";
/// The part name the opt-in label for in-cluster clients of the inbox is built from:
/// `diz.miracum.org/access-proposal-inbox: "true"`.
pub const INBOX_PART: &str = "proposal-inbox";
/// The operator binary's subcommand that runs the inbox.
pub const INBOX_SUBCOMMAND: &str = "inbox";
pub const API_PORT: i32 = 8080;
pub const OPS_PORT: i32 = 8081;
/// Where the data volume is mounted: the directory of the service's default SQLite database.
pub use crate::catalog::own_image::INBOX_DATA_DIR as DATA_DIR;
pub const CONFIG_DIR: &str = "/etc/miracolix-inbox";
pub const CONFIG_FILE: &str = "/etc/miracolix-inbox/config.json";
pub const SQLITE_URL: &str = "sqlite:///var/lib/miracolix-inbox/inbox.db";
pub const CENTRAL_KEYS_DIR: &str = "/etc/miracolix-inbox/central-keys";
const DECISION_KEY_DIR: &str = "/etc/miracolix-inbox/decision-key";
pub const DECISION_KEY_FILE: &str = "/etc/miracolix-inbox/decision-key/key.pem";
const SESSION_DIR: &str = "/etc/miracolix-inbox/session";
pub const SESSION_SECRET_FILE: &str = "/etc/miracolix-inbox/session/secret";
const OIDC_DIR: &str = "/etc/miracolix-inbox/oidc";
pub const OIDC_CLIENT_SECRET_FILE: &str = "/etc/miracolix-inbox/oidc/client-secret";
pub const WEBHOOK_TOKEN_DIR: &str = "/etc/miracolix-inbox/webhook-tokens";
const SMTP_DIR: &str = "/etc/miracolix-inbox/smtp";
/// The CloudNativePG cluster CA (`spec.database.cloudNativePG`).
const DATABASE_CA_DIR: &str = "/etc/miracolix-inbox/database-ca";
pub const SMTP_USERNAME_FILE: &str = "/etc/miracolix-inbox/smtp/username";
pub const SMTP_PASSWORD_FILE: &str = "/etc/miracolix-inbox/smtp/password";
/// The default volume size for the SQLite database.
pub const DEFAULT_STORAGE: &str = "1Gi";

pub fn inbox_name(inbox: &ProposalInbox) -> String {
    format!("{}-inbox", inbox.name_any())
}

pub fn data_claim_name(inbox: &ProposalInbox) -> String {
    format!("{}-data", inbox_name(inbox))
}

fn selector_labels(inbox: &ProposalInbox) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), INBOX_IMAGE_KEY.into()),
        ("app.kubernetes.io/instance".into(), inbox_name(inbox)),
        (INBOX_LABEL.into(), inbox.name_any()),
    ])
}

fn labels(inbox: &ProposalInbox) -> BTreeMap<String, String> {
    let mut l = selector_labels(inbox);
    l.insert(
        "app.kubernetes.io/component".into(),
        "proposal-inbox".into(),
    );
    l.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    l
}

fn meta(inbox: &ProposalInbox, name: String, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: inbox.namespace(),
        labels: Some(labels(inbox)),
        owner_references: owned.then(|| vec![controller_reference(inbox)]),
        ..ObjectMeta::default()
    }
}

fn selector(pairs: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(pairs),
        ..LabelSelector::default()
    }
}

fn one(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_string(), v.to_string())])
}

/// Every Secret the inbox's pod mounts, with the field that names it (for the message when one
/// is missing).
pub fn secrets(inbox: &ProposalInbox, d: &Deployable) -> Vec<(String, String)> {
    let spec = &inbox.spec;
    let mut out = vec![
        (
            spec.central_keys_secret_ref.name.clone(),
            "spec.centralKeysSecretRef".to_string(),
        ),
        (
            spec.decision_key_secret_ref.name.clone(),
            "spec.decisionKeySecretRef".to_string(),
        ),
        (
            spec.session_secret_ref.name.clone(),
            "spec.sessionSecretRef".to_string(),
        ),
        (d.login.client_secret.name.clone(), d.login.field.clone()),
    ];
    if let Some(c) = spec
        .smtp
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push((c.name.clone(), "spec.smtp.credentialsSecretRef".into()));
    }
    for n in &spec.notifications {
        if let Some(t) = n.webhook.as_ref().and_then(|w| w.token_secret_ref.as_ref()) {
            out.push((
                t.name.clone(),
                format!("spec.notifications[{}].webhook.tokenSecretRef", n.name),
            ));
        }
    }
    // CloudNativePG's `-app` and `-ca` Secrets are not the site's to create: not listed.
    if let Some(r) = spec
        .database
        .as_ref()
        .and_then(|d| d.external_secret_ref.as_ref())
    {
        out.push((r.name.clone(), "spec.database.externalSecretRef".into()));
    }
    out
}

/// The CloudNativePG cluster of `spec.database.cloudNativePG`: `<inbox>-inbox-db`.
pub fn database_cluster_name(inbox: &ProposalInbox) -> String {
    format!("{}-db", inbox_name(inbox))
}

/// The database and its owner in the CloudNativePG cluster.
const CNPG_DATABASE: &str = "inbox";

/// The Secret key `INBOX_DATABASE` comes from, with `spec.database`.
fn database_url_ref(inbox: &ProposalInbox) -> Option<SecretKeyRef> {
    let db = inbox.spec.database.as_ref()?;
    if let Some(r) = &db.external_secret_ref {
        return Some(r.clone());
    }
    // CloudNativePG writes `<cluster>-app` for the owner of the bootstrap database, with the
    // key `uri` = postgresql://<owner>:<password>@<cluster>-rw:5432/<database>
    // (cloudnative-pg pkg/specs/secrets.go, CreateSecret).
    db.cloud_native_pg.as_ref().map(|_| SecretKeyRef {
        name: format!("{}-app", database_cluster_name(inbox)),
        key: "uri".into(),
    })
}

/// The CloudNativePG `Cluster`, without an owner reference: the proposals outlive the inbox,
/// as on its volume.
fn database_cluster(inbox: &ProposalInbox) -> Option<Child> {
    let cnpg = inbox.spec.database.as_ref()?.cloud_native_pg.as_ref()?;
    let resource = crate::catalog::database::cnpg_api_resource();
    let mut storage = serde_json::json!({ "size": cnpg.storage_size });
    if let Some(class) = &cnpg.storage_class_name {
        storage["storageClass"] = serde_json::json!(class);
    }
    Some(Child {
        object: kube::core::DynamicObject {
            types: Some(kube::core::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            }),
            metadata: meta(inbox, database_cluster_name(inbox), false),
            data: serde_json::json!({
                "spec": {
                    "instances": cnpg.instances,
                    "storage": storage,
                    "bootstrap": {"initdb": {"database": CNPG_DATABASE, "owner": CNPG_DATABASE}},
                    "enableSuperuserAccess": false,
                }
            }),
        },
        resource,
        component: None,
    })
}

/// Ingress to the cluster's instances: PostgreSQL from the inbox's pod; PostgreSQL and the
/// instance manager (8000) from the instances themselves and from CloudNativePG's operator (as
/// the site's own database policies, catalog/network_policy.rs). Their egress stays open: the
/// instance manager calls the API server.
fn database_policy(inbox: &ProposalInbox, d: &Deployable) -> Option<NetworkPolicy> {
    inbox.spec.database.as_ref()?.cloud_native_pg.as_ref()?;
    let cluster = database_cluster_name(inbox);
    let instances = selector(one(CNPG_CLUSTER_LABEL, &cluster));
    let both = vec![tcp(POSTGRES_PORT), tcp(CNPG_INSTANCE_MANAGER_PORT)];
    // Unowned like the cluster: its instances stay protected after the inbox is deleted.
    Some(NetworkPolicy {
        metadata: meta(inbox, cluster, false),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(instances.clone()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector(selector_labels(inbox))),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(POSTGRES_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(instances),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(both.clone()),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(selector(
                            d.cnpg_operator_namespace_labels.clone(),
                        )),
                        pod_selector: Some(selector(one(CNPG_OPERATOR_POD.0, CNPG_OPERATOR_POD.1))),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(both),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}

fn secret_file(volume: &str, secret: &SecretKeyRef, path: &str) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.name.clone()),
            items: Some(vec![KeyToPath {
                key: secret.key.clone(),
                path: path.into(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn env(k: &str, v: &str) -> EnvVar {
    EnvVar {
        name: k.into(),
        value: Some(v.into()),
        ..EnvVar::default()
    }
}

/// Every object of the inbox, in apply order (config and volume before the workload).
pub fn build(inbox: &ProposalInbox, d: &Deployable) -> Result<Vec<Child>, CatalogError> {
    let spec = &inbox.spec;
    let name = inbox_name(inbox);
    let cfg = config::config(
        inbox,
        &d.site_id,
        Some(config::oidc(&d.login, &d.public.host)),
    )
    .map_err(CatalogError::Serialize)?;
    let cfg_json =
        serde_json::to_string_pretty(&cfg).map_err(|e| CatalogError::Serialize(e.to_string()))?;
    let config_map = ConfigMap {
        metadata: meta(inbox, name.clone(), true),
        data: Some(one("config.json", &cfg_json)),
        ..ConfigMap::default()
    };
    let storage = spec.storage.as_ref();
    let claim = data_claim_name(inbox);
    let pvc = PersistentVolumeClaim {
        metadata: meta(inbox, claim.clone(), false),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.and_then(|s| s.storage_class_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.map_or(DEFAULT_STORAGE.into(), |s| s.size.clone())),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };

    let database = match database_url_ref(inbox) {
        Some(url) => EnvVar {
            name: "INBOX_DATABASE".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: url.name,
                    key: url.key,
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        None => env("INBOX_DATABASE", SQLITE_URL),
    };
    let mut volumes = vec![
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
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
        Volume {
            name: "central-keys".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(spec.central_keys_secret_ref.name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        secret_file("decision-key", &spec.decision_key_secret_ref, "key.pem"),
        secret_file("session", &spec.session_secret_ref, "secret"),
        secret_file("oidc", &d.login.client_secret, "client-secret"),
        // SQLite's temporary files (large sorts) with a read-only root.
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..VolumeMount::default()
        },
        // One file, not the directory: the Secrets below are mounted under the same directory,
        // and mount points inside a ConfigMap volume are not portable across runtimes.
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_FILE.into(),
            sub_path: Some("config.json".into()),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        mount("central-keys", CENTRAL_KEYS_DIR),
        mount("decision-key", DECISION_KEY_DIR),
        mount("session", SESSION_DIR),
        mount("oidc", OIDC_DIR),
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    // Each webhook's token as a file named after its notification, from whichever Secret holds it.
    let tokens: Vec<VolumeProjection> = spec
        .notifications
        .iter()
        .filter_map(|n| {
            let t = n.webhook.as_ref()?.token_secret_ref.as_ref()?;
            Some(VolumeProjection {
                secret: Some(SecretProjection {
                    name: t.name.clone(),
                    items: Some(vec![KeyToPath {
                        key: t.key.clone(),
                        path: n.name.clone(),
                        ..KeyToPath::default()
                    }]),
                    ..SecretProjection::default()
                }),
                ..VolumeProjection::default()
            })
        })
        .collect();
    if !tokens.is_empty() {
        volumes.push(Volume {
            name: "webhook-tokens".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(tokens),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("webhook-tokens", WEBHOOK_TOKEN_DIR));
    }
    if let Some(c) = spec
        .smtp
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        volumes.push(Volume {
            name: "smtp".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(c.name.clone()),
                items: Some(
                    ["username", "password"]
                        .into_iter()
                        .map(|k| KeyToPath {
                            key: k.into(),
                            path: k.into(),
                            ..KeyToPath::default()
                        })
                        .collect(),
                ),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("smtp", SMTP_DIR));
    }

    // CloudNativePG's server has TLS on with a certificate from the cluster's own CA (Secret
    // `<cluster>-ca`, key `ca.crt`, "used as sslrootcert in clients": CNPG docs, Certificates).
    // Its `-app` uri has no sslmode, so without the CA the inbox would settle for what libpq
    // calls `prefer`; with it the service requires TLS verified against that CA
    // (inbox/src/pgstore.rs, connect_options).
    let mut database_ca = None;
    if spec
        .database
        .as_ref()
        .is_some_and(|db| db.cloud_native_pg.is_some())
    {
        volumes.push(secret_file(
            "database-ca",
            &SecretKeyRef {
                name: format!("{}-ca", database_cluster_name(inbox)),
                key: "ca.crt".into(),
            },
            "ca.crt",
        ));
        mounts.push(mount("database-ca", DATABASE_CA_DIR));
        database_ca = Some(env(
            "INBOX_DATABASE_CA_FILE",
            &format!("{DATABASE_CA_DIR}/ca.crt"),
        ));
    }

    // A config change restarts the pod (the service reads its config once).
    let hash = ring::digest::digest(&ring::digest::SHA256, cfg_json.as_bytes());
    let hash: String = hash.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let port = |n: &str, p: i32| ContainerPort {
        name: Some(n.into()),
        container_port: p,
        ..ContainerPort::default()
    };
    let container = Container {
        name: "inbox".into(),
        image: Some(crate::catalog::image_ref(&d.image)),
        // The inbox is a subcommand of the operator binary, so `miracolix-inbox` pins the
        // operator image (docs/image.md: one image for everything the project ships).
        args: Some(vec![INBOX_SUBCOMMAND.into()]),
        env: Some(
            vec![
                env("INBOX_LISTEN", &format!("0.0.0.0:{API_PORT}")),
                env("INBOX_OPS_LISTEN", &format!("0.0.0.0:{OPS_PORT}")),
                env("INBOX_CONFIG", CONFIG_FILE),
                database,
                env("INBOX_CENTRAL_KEYS", CENTRAL_KEYS_DIR),
                env("INBOX_DECISION_KEY", DECISION_KEY_FILE),
                env("INBOX_SESSION_SECRET_FILE", SESSION_SECRET_FILE),
            ]
            .into_iter()
            .chain(database_ca)
            .collect(),
        ),
        ports: Some(vec![port("http", API_PORT), port("ops", OPS_PORT)]),
        liveness_probe: Some(pod::http_probe("/healthz", "ops")),
        readiness_probe: Some(pod::http_probe("/readyz", "ops")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(pod::container_security(RESTRICTED)),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    // No access label of a site part: the inbox calls nothing of the site's.
    let pod_labels = labels(inbox);
    let deployment = Deployment {
        metadata: meta(inbox, name.clone(), true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(selector_labels(inbox)),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(one(pod::CONFIG_HASH_ANNOTATION, &hash)),
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
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let service_port = |n: &str, p: i32| ServicePort {
        name: Some(n.into()),
        port: p,
        target_port: Some(IntOrString::String(n.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let service = Service {
        metadata: meta(inbox, name.clone(), true),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(inbox)),
            ports: Some(vec![
                service_port("http", API_PORT),
                service_port("ops", OPS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let mut children = vec![
        Child::from_typed(config_map, None)?,
        Child::from_typed(pvc, None)?,
    ];
    children.extend(database_cluster(inbox));
    children.extend([
        Child::from_typed(deployment, None)?,
        Child::from_typed(service, None)?,
        Child::from_typed(network_policy(inbox, d), None)?,
        Child::from_typed(ingress(inbox, &d.public), None)?,
    ]);
    if let Some(p) = database_policy(inbox, d) {
        children.push(Child::from_typed(p, None)?);
    }
    Ok(children)
}

/// In: the web page and API (8080) from the ingress controller's namespace (the site's
/// `spec.networkPolicy.ingressNamespaceLabels`, default ingress-nginx) and from pods labelled
/// `diz.miracum.org/access-proposal-inbox: "true"` in the inbox's namespace; the ops port (8081:
/// metrics, health, the summary the status mirrors) from the operator's pods
/// (`app.kubernetes.io/name: miracolix-operator`, any namespace). The kubelet's probes are not
/// subject to NetworkPolicies.
///
/// Out: DNS; HTTPS (443) to anywhere, because the decision target (the central DSF), the
/// webhooks and the OIDC issuer are outside the cluster at addresses the spec does not give;
/// the SMTP server's port to anywhere (its address is a host name); with
/// `spec.database.externalSecretRef`, PostgreSQL's 5432 to the site's
/// `spec.networkPolicy.externalDatabaseCIDRs` (anywhere when empty), with `cloudNativePG` to the
/// cluster's instances.
pub fn network_policy(inbox: &ProposalInbox, d: &Deployable) -> NetworkPolicy {
    let anywhere_or = |cidrs: &[String]| -> Option<Vec<NetworkPolicyPeer>> {
        (!cidrs.is_empty()).then(|| {
            cidrs
                .iter()
                .map(|c| NetworkPolicyPeer {
                    ip_block: Some(k8s_openapi::api::networking::v1::IPBlock {
                        cidr: c.clone(),
                        except: None,
                    }),
                    ..NetworkPolicyPeer::default()
                })
                .collect()
        })
    };
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(selector(one("k8s-app", "kube-dns"))),
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
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![tcp(443)]),
        },
    ];
    if let Some(smtp) = &inbox.spec.smtp {
        egress.push(NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![tcp(smtp.port)]),
        });
    }
    if let Some(db) = &inbox.spec.database {
        let to = if db.cloud_native_pg.is_some() {
            Some(vec![NetworkPolicyPeer {
                pod_selector: Some(selector(one(
                    CNPG_CLUSTER_LABEL,
                    &database_cluster_name(inbox),
                ))),
                ..NetworkPolicyPeer::default()
            }])
        } else {
            anywhere_or(&d.external_database_cidrs)
        };
        egress.push(NetworkPolicyEgressRule {
            to,
            ports: Some(vec![tcp(POSTGRES_PORT)]),
        });
    }
    NetworkPolicy {
        metadata: meta(inbox, inbox_name(inbox), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(selector_labels(inbox))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![
                        NetworkPolicyPeer {
                            namespace_selector: Some(selector(d.ingress_namespace_labels.clone())),
                            ..NetworkPolicyPeer::default()
                        },
                        NetworkPolicyPeer {
                            pod_selector: Some(selector(one(&access_label(INBOX_PART), "true"))),
                            ..NetworkPolicyPeer::default()
                        },
                    ]),
                    ports: Some(vec![tcp(API_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(selector(one(
                            "app.kubernetes.io/name",
                            "miracolix-operator",
                        ))),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(OPS_PORT)]),
                },
            ]),
            egress: Some(egress),
        }),
    }
}

/// `/inbox` on the site's host, with the site's certificate (or, with cert-manager, one of the
/// inbox's own for the same host, so the two Ingresses do not compete for one Secret).
pub fn ingress(inbox: &ProposalInbox, public: &Public) -> Ingress {
    let mut m = meta(inbox, inbox_name(inbox), true);
    let secret_name = match &public.issuer {
        Some((annotation, issuer)) => {
            m.annotations = Some(one(annotation, issuer));
            format!("{}-tls", inbox_name(inbox))
        }
        None => public.tls_secret.clone(),
    };
    Ingress {
        metadata: m,
        spec: Some(IngressSpec {
            ingress_class_name: public.class_name.clone(),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![public.host.clone()]),
                secret_name: Some(secret_name),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(public.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(BASE_PATH.into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: inbox_name(inbox),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    number: None,
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
