//! What every pod shares: labels, restricted security, probes, resource presets, and the
//! workload/Service/ConfigMap objects around one container.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    COMPONENT_LABEL, CatalogError, Child, Ctx, MANAGED_BY, PART_OF, Part, SITE_LABEL, label_value,
    owner_reference,
};
use crate::api::{ResourcePreset, StorageSpec};

/// Annotation on pod templates carrying a hash of the part's ConfigMap, so that a changed
/// setting rolls the pods (env from a ConfigMap is read only at container start).
pub const CONFIG_HASH_ANNOTATION: &str = "diz.miracum.org/config-hash";

/// The uid/gid of distroless and chiseled images (`nonroot`), used where an image does not
/// bring its own non-root user.
pub const NONROOT: i64 = 65532;

/// Whom the container runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// A fixed non-root uid (and the same gid).
    User(i64),
    /// A fixed non-root uid with another primary group (and fsGroup), for images whose writable
    /// directories belong to a group (e.g. gid 0 for OpenShift-style images).
    UserGroup { uid: i64, gid: i64 },
    /// The image's own non-root user. `runAsNonRoot` still makes the kubelet refuse to start
    /// the container if that user turns out to be root.
    ImageUser,
    /// Root, with all capabilities dropped except those listed. Only for documented
    /// [`super::security_exceptions`].
    Root { add: &'static [&'static str] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Security {
    pub run_as: RunAs,
    pub read_only_root: bool,
}

/// The restricted profile as tight as it goes.
pub const RESTRICTED: Security = Security {
    run_as: RunAs::User(NONROOT),
    read_only_root: true,
};

/// Requests and limits of one preset. Memory request equals the limit: a JVM sized to its limit
/// that is scheduled on less gets OOM-killed at the worst moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Res {
    pub cpu: &'static str,
    pub memory: &'static str,
    pub cpu_limit: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presets {
    pub small: Res,
    pub medium: Res,
    pub large: Res,
}

/// Presets of the small pseudonymisation services, which need little memory.
pub const LIGHT_SERVICE: Presets = Presets {
    small: Res {
        cpu: "100m",
        memory: "256Mi",
        cpu_limit: "500m",
    },
    medium: Res {
        cpu: "250m",
        memory: "512Mi",
        cpu_limit: "1",
    },
    large: Res {
        cpu: "500m",
        memory: "1Gi",
        cpu_limit: "2",
    },
};

/// Without `resources` in the spec a component gets `medium`: the size a typical university
/// hospital starts with.
pub const DEFAULT_PRESET: ResourcePreset = ResourcePreset::Medium;

pub enum WorkloadKind {
    Deployment {
        /// Stop the old pod before starting the new one: needed with a ReadWriteOnce volume.
        recreate: bool,
    },
    StatefulSet {
        claim: ClaimTemplate,
    },
    CronJob {
        schedule: String,
        time_zone: String,
    },
}

/// A volumeClaimTemplate and where it is mounted.
pub struct ClaimTemplate {
    pub name: &'static str,
    pub mount_path: &'static str,
    pub default_size: &'static str,
}

pub struct Workload {
    pub part: &'static Part,
    pub kind: WorkloadKind,
    pub security: Security,
    /// emptyDir mounts for paths the image writes to under a read-only root filesystem.
    pub writable_dirs: &'static [&'static str],
    /// Directories the image ships content in and its entrypoint rewrites at start: each becomes
    /// an emptyDir that an init container (the same image, `cp -R`) fills with the image's own
    /// content first, so the rewrite succeeds under a read-only root filesystem. Needs `sh` and
    /// `cp` in the image.
    pub seeded_dirs: &'static [&'static str],
    pub startup: Option<Probe>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    /// Non-secret settings: rendered into a ConfigMap and loaded with `envFrom`.
    pub config: BTreeMap<String, String>,
    /// Secret references and `$(VAR)` compositions, in order.
    pub env: Vec<EnvVar>,
    /// Further volumes (PVCs, ConfigMap files) with their mounts.
    pub volumes: Vec<(Volume, VolumeMount)>,
    pub presets: &'static Presets,
    /// Configuration files: (mount path, content), rendered into the ConfigMap
    /// `<site>-<part>-files` and mounted one by one over the image's defaults.
    pub files: Vec<(&'static str, String)>,
    /// Further containers of the pod (e.g. a file server next to the main process), complete
    /// with their security context; they may mount the volumes of `volumes` and
    /// `writable_dirs` by name.
    pub sidecars: Vec<Container>,
}

impl Workload {
    /// A Deployment with the restricted profile, `/tmp` writable and no probes yet.
    pub fn deployment(part: &'static Part, presets: &'static Presets) -> Workload {
        Workload {
            part,
            kind: WorkloadKind::Deployment { recreate: false },
            security: RESTRICTED,
            writable_dirs: &["/tmp"],
            seeded_dirs: &[],
            startup: None,
            readiness: None,
            liveness: None,
            config: BTreeMap::new(),
            env: Vec::new(),
            volumes: Vec::new(),
            presets,
            files: Vec::new(),
            sidecars: Vec::new(),
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.config.insert(name.to_string(), value.into());
    }

    pub fn env_value(&mut self, name: &str, value: impl Into<String>) {
        self.env.push(EnvVar {
            name: name.to_string(),
            value: Some(value.into()),
            ..EnvVar::default()
        });
    }
}

/// `app.kubernetes.io/*`, site and component labels of a part.
pub(crate) fn component_labels(
    ctx: &Ctx,
    part: &str,
    role: &str,
    version: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = selector_labels(ctx, part);
    labels.insert("app.kubernetes.io/component".into(), role.into());
    labels.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    labels.insert(
        "app.kubernetes.io/version".into(),
        label_value(version.unwrap_or(&ctx.site.release.version)),
    );
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels
}

/// The labels a workload selects its pods by. Never the version: selectors are immutable.
pub(crate) fn selector_labels(ctx: &Ctx, part: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), part.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            ctx.object_name(part),
        ),
        (SITE_LABEL.to_string(), ctx.site.name.to_string()),
        (
            COMPONENT_LABEL.to_string(),
            ctx.component.name().to_string(),
        ),
    ])
}

pub(crate) fn meta(ctx: &Ctx, name: String, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(ctx.site.namespace.to_string()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner_reference(ctx.site)]),
        ..ObjectMeta::default()
    }
}

/// HTTP GET on a named port.
pub fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// TCP connect on a named port, for images without a known health endpoint: it proves only that
/// the server accepts connections.
pub fn tcp_probe(port: &str) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.to_string()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// A startup probe that allows `max_seconds` before the kubelet gives up; liveness and
/// readiness only start once it succeeded, so slow JVM starters are not killed mid-boot.
pub fn startup(probe: Probe, max_seconds: i32) -> Probe {
    Probe {
        period_seconds: Some(10),
        failure_threshold: Some((max_seconds / 10).max(1)),
        ..probe
    }
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// The preset of the spec (or [`DEFAULT_PRESET`]) with `resourceOverrides` applied when `primary`.
pub(crate) fn resources(ctx: &Ctx, presets: &Presets, primary: bool) -> ResourceRequirements {
    let res = match ctx.spec.resources.unwrap_or(DEFAULT_PRESET) {
        ResourcePreset::Small => presets.small,
        ResourcePreset::Medium => presets.medium,
        ResourcePreset::Large => presets.large,
    };
    let mut requests = BTreeMap::from([
        ("cpu".to_string(), quantity(res.cpu)),
        ("memory".to_string(), quantity(res.memory)),
    ]);
    let mut limits = BTreeMap::from([
        ("cpu".to_string(), quantity(res.cpu_limit)),
        ("memory".to_string(), quantity(res.memory)),
    ]);
    if primary && let Some(o) = &ctx.spec.resource_overrides {
        for (target, values) in [(&mut requests, &o.requests), (&mut limits, &o.limits)] {
            if let Some(v) = values {
                if let Some(cpu) = &v.cpu {
                    target.insert("cpu".into(), quantity(cpu));
                }
                if let Some(memory) = &v.memory {
                    target.insert("memory".into(), quantity(memory));
                }
            }
        }
    }
    ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        ..ResourceRequirements::default()
    }
}

fn pod_security(s: Security) -> PodSecurityContext {
    let seccomp = Some(SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        ..SeccompProfile::default()
    });
    match s.run_as {
        RunAs::User(uid) | RunAs::UserGroup { uid, gid: _ } => PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(group(s.run_as).unwrap_or(uid)),
            fs_group: Some(group(s.run_as).unwrap_or(uid)),
            // Re-chowning a large Blaze volume on every start takes minutes.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: seccomp,
            ..PodSecurityContext::default()
        },
        RunAs::ImageUser => PodSecurityContext {
            run_as_non_root: Some(true),
            // The image's user is unknown; a fixed fsGroup still lets it write mounted volumes.
            fs_group: Some(NONROOT),
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: seccomp,
            ..PodSecurityContext::default()
        },
        RunAs::Root { .. } => PodSecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            seccomp_profile: seccomp,
            ..PodSecurityContext::default()
        },
    }
}

/// The primary group a [`RunAs`] sets, if any.
fn group(r: RunAs) -> Option<i64> {
    match r {
        RunAs::User(uid) => Some(uid),
        RunAs::UserGroup { gid, .. } => Some(gid),
        RunAs::ImageUser => None,
        RunAs::Root { .. } => Some(0),
    }
}

pub(crate) fn container_security(s: Security) -> SecurityContext {
    let (non_root, uid, add) = match s.run_as {
        RunAs::User(uid) | RunAs::UserGroup { uid, .. } => (true, Some(uid), None),
        RunAs::ImageUser => (true, None, None),
        RunAs::Root { add } => (
            false,
            Some(0),
            Some(add.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        ),
    };
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: add.filter(|a| !a.is_empty()),
        }),
        read_only_root_filesystem: Some(s.read_only_root),
        run_as_non_root: Some(non_root),
        run_as_user: uid,
        run_as_group: uid.and(group(s.run_as)),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// A volume name from a mount path: `/usr/local/tomcat/work` → `usr-local-tomcat-work`.
pub(crate) fn volume_name(path: &str) -> String {
    let name: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-');
    let name = if name.is_empty() { "root" } else { name };
    format!("w-{}", &name[..name.len().min(60)])
        .trim_end_matches('-')
        .to_string()
}

/// FNV-1a: stable across Rust releases (unlike `DefaultHasher`), so upgrading the operator does
/// not roll every pod.
fn fnv1a(data: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in data {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Appends the spec's extra env to the operator's, refusing names the operator already sets.
fn merge_env(ctx: &Ctx, w: &Workload, env: &mut Vec<EnvVar>) -> Vec<CatalogError> {
    let taken: BTreeSet<&str> = w
        .config
        .keys()
        .map(String::as_str)
        .chain(w.env.iter().map(|e| e.name.as_str()))
        .collect();
    let mut errors = Vec::new();
    for extra in &ctx.spec.env {
        if taken.contains(extra.name.as_str()) {
            errors.push(CatalogError::EnvCollision {
                component: ctx.component,
                field: ctx.component.field(),
                name: extra.name.clone(),
            });
            continue;
        }
        env.push(match &extra.secret_key_ref {
            Some(r) => super::database::secret_env(&extra.name, &r.name, &r.key),
            None => EnvVar {
                name: extra.name.clone(),
                value: Some(extra.value.clone().unwrap_or_default()),
                ..EnvVar::default()
            },
        });
    }
    errors
}

/// The ConfigMap (if any settings), the Service (if any ports) and the workload of one part.
pub(crate) fn build(ctx: &Ctx, w: Workload) -> Result<Vec<Child>, Vec<CatalogError>> {
    let part = w.part;
    let primary = ctx
        .component
        .parts()
        .first()
        .is_some_and(|p| p.name == part.name);
    let image = ctx.image(part.image).map_err(|e| vec![e])?;
    let name = ctx.object_name(part.name);
    let labels = component_labels(ctx, part.name, part.role, Some(&image.version));
    let selector = selector_labels(ctx, part.name);
    let component = Some(ctx.component);
    let ser = |e: CatalogError| vec![e];

    let mut env = w.env.clone();
    if primary {
        let errors = merge_env(ctx, &w, &mut env);
        if !errors.is_empty() {
            return Err(errors);
        }
    }

    let mut children = Vec::new();
    let mut env_from = None;
    let mut annotations = None;
    // Everything that reaches the container only at start: env from the ConfigMap and files
    // mounted by subPath (which the kubelet never refreshes).
    let mut hashed = BTreeMap::new();
    let mut volumes_from_files = Vec::new();
    if !w.config.is_empty() {
        let cm = ConfigMap {
            metadata: meta(ctx, name.clone(), &labels),
            data: Some(w.config.clone()),
            ..ConfigMap::default()
        };
        children.push(Child::from_typed(cm, component).map_err(ser)?);
        env_from = Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: name.clone(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]);
        hashed.extend(w.config.clone());
    }

    if !w.files.is_empty() {
        let cm_name = format!("{name}-files");
        let mut data = BTreeMap::new();
        for (i, (path, content)) in w.files.iter().enumerate() {
            let key = file_key(path);
            data.insert(key.clone(), content.clone());
            let (v, m) = config_file(&format!("file-{i}"), &cm_name, &key, path);
            volumes_from_files.push((v, m));
        }
        hashed.extend(data.iter().map(|(k, v)| (format!("file:{k}"), v.clone())));
        let cm = ConfigMap {
            metadata: meta(ctx, cm_name, &labels),
            data: Some(data),
            ..ConfigMap::default()
        };
        children.push(Child::from_typed(cm, component).map_err(ser)?);
    }
    if !hashed.is_empty() {
        annotations = Some(BTreeMap::from([(
            CONFIG_HASH_ANNOTATION.to_string(),
            fnv1a(&hashed),
        )]));
    }

    // The login proxy's port joins the part's own when the part is published behind it.
    let service_ports = super::login_proxy::service_ports(ctx.site, part);
    if !service_ports.is_empty() {
        let svc = Service {
            metadata: meta(ctx, name.clone(), &labels),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector.clone()),
                ports: Some(
                    service_ports
                        .iter()
                        .map(|p| ServicePort {
                            name: Some(p.name.into()),
                            port: p.port,
                            target_port: Some(IntOrString::String(p.name.into())),
                            protocol: Some("TCP".into()),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        children.push(Child::from_typed(svc, component).map_err(ser)?);
    }

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for dir in w.writable_dirs {
        let vname = volume_name(dir);
        volumes.push(Volume {
            name: vname.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: vname,
            mount_path: (*dir).to_string(),
            ..VolumeMount::default()
        });
    }
    // Seeded directories: the main container mounts the filled emptyDir over the image's
    // directory; the init container mounts it elsewhere and copies the image's content in.
    let mut seed_mounts = Vec::new();
    let mut seed_script = String::from("set -e");
    for (i, dir) in w.seeded_dirs.iter().enumerate() {
        let vname = format!("seed-{}", volume_name(dir));
        volumes.push(Volume {
            name: vname.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: vname.clone(),
            mount_path: (*dir).to_string(),
            ..VolumeMount::default()
        });
        seed_mounts.push(VolumeMount {
            name: vname,
            mount_path: format!("/seed/{i}"),
            ..VolumeMount::default()
        });
        seed_script.push_str(&format!("; cp -R {dir}/. /seed/{i}/"));
    }
    for (v, m) in w.volumes.iter().chain(&volumes_from_files) {
        volumes.push(v.clone());
        mounts.push(m.clone());
    }
    if let WorkloadKind::StatefulSet { claim } = &w.kind {
        mounts.push(VolumeMount {
            name: claim.name.into(),
            mount_path: claim.mount_path.into(),
            ..VolumeMount::default()
        });
    }

    let container = Container {
        name: part.name.to_string(),
        image: Some(super::image_ref(image)),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: (!part.ports.is_empty()).then(|| {
            part.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.into()),
                    container_port: p.port,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        env: (!env.is_empty()).then_some(env),
        env_from,
        resources: Some(resources(ctx, w.presets, primary)),
        security_context: Some(container_security(w.security)),
        startup_probe: w.startup.clone(),
        readiness_probe: w.readiness.clone(),
        liveness_probe: w.liveness.clone(),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };
    let init_containers = (!seed_mounts.is_empty()).then(|| {
        vec![Container {
            name: "seed".to_string(),
            image: Some(super::image_ref(image)),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec!["sh".into(), "-c".into(), seed_script]),
            resources: Some(resources(ctx, w.presets, false)),
            security_context: Some(container_security(w.security)),
            volume_mounts: Some(seed_mounts),
            ..Container::default()
        }]
    });
    let login_proxy = super::login_proxy::container(ctx, part).map_err(ser)?;
    let is_job = matches!(w.kind, WorkloadKind::CronJob { .. });
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations,
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            init_containers,
            containers: std::iter::once(container)
                .chain(login_proxy)
                .chain(w.sidecars)
                .collect(),
            // No component talks to the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would inject dozens of `<SITE>_<PART>_PORT…` variables that can
            // shadow image settings; every URL is passed explicitly instead.
            enable_service_links: Some(false),
            security_context: Some(pod_security(w.security)),
            volumes: (!volumes.is_empty()).then_some(volumes),
            restart_policy: is_job.then(|| "OnFailure".to_string()),
            ..PodSpec::default()
        }),
    };
    let label_selector = LabelSelector {
        match_labels: Some(selector),
        ..LabelSelector::default()
    };
    let replicas = ctx.replicas();
    let workload = match w.kind {
        WorkloadKind::Deployment { recreate } => Child::from_typed(
            Deployment {
                metadata: meta(ctx, name, &labels),
                spec: Some(DeploymentSpec {
                    replicas: Some(replicas),
                    selector: label_selector,
                    template: pod,
                    strategy: recreate.then(|| DeploymentStrategy {
                        type_: Some("Recreate".into()),
                        ..DeploymentStrategy::default()
                    }),
                    revision_history_limit: Some(3),
                    ..DeploymentSpec::default()
                }),
                ..Deployment::default()
            },
            component,
        ),
        WorkloadKind::StatefulSet { claim } => {
            let storage = ctx.spec.storage.as_ref();
            Child::from_typed(
                StatefulSet {
                    metadata: meta(ctx, name.clone(), &labels),
                    spec: Some(StatefulSetSpec {
                        replicas: Some(replicas),
                        selector: label_selector,
                        service_name: Some(name),
                        template: pod,
                        volume_claim_templates: Some(vec![claim_template(
                            &claim,
                            storage,
                            &stable_labels(&labels),
                        )]),
                        // PVCs outlive the StatefulSet; the controller deletes them only under
                        // `deletionPolicy: Delete`.
                        persistent_volume_claim_retention_policy: Some(
                            StatefulSetPersistentVolumeClaimRetentionPolicy {
                                when_deleted: Some("Retain".into()),
                                when_scaled: Some("Retain".into()),
                            },
                        ),
                        revision_history_limit: Some(3),
                        ..StatefulSetSpec::default()
                    }),
                    ..StatefulSet::default()
                },
                component,
            )
        }
        WorkloadKind::CronJob {
            schedule,
            time_zone,
        } => Child::from_typed(
            CronJob {
                metadata: meta(ctx, name, &labels),
                spec: Some(CronJobSpec {
                    schedule,
                    time_zone: Some(time_zone),
                    concurrency_policy: Some("Forbid".into()),
                    successful_jobs_history_limit: Some(1),
                    failed_jobs_history_limit: Some(3),
                    job_template: JobTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels.clone()),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(JobSpec {
                            backoff_limit: Some(1),
                            template: pod,
                            ..JobSpec::default()
                        }),
                    },
                    ..CronJobSpec::default()
                }),
                ..CronJob::default()
            },
            component,
        ),
    };
    children.push(workload.map_err(ser)?);
    Ok(children)
}

/// Labels without the version: volumeClaimTemplates are immutable, so a version label there
/// would make every upgrade's apply fail.
fn stable_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = labels.clone();
    l.remove("app.kubernetes.io/version");
    l
}

fn claim_template(
    claim: &ClaimTemplate,
    storage: Option<&StorageSpec>,
    labels: &BTreeMap<String, String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        // No ownerReference and no namespace: the StatefulSet controller creates the PVC in
        // its own namespace and never garbage-collects it (see [`pvc`]).
        metadata: ObjectMeta {
            name: Some(claim.name.into()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(pvc_spec(
            storage.map_or(claim.default_size, |s| s.size.as_str()),
            storage.and_then(|s| s.storage_class_name.clone()),
        )),
        ..PersistentVolumeClaim::default()
    }
}

fn pvc_spec(size: &str, storage_class: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), quantity(size))])),
            ..VolumeResourceRequirements::default()
        }),
        storage_class_name: storage_class,
        ..PersistentVolumeClaimSpec::default()
    }
}

/// A standalone PVC for a Deployment.
///
/// No ownerReference: volumes hold patient data, so their lifetime follows the site's
/// `deletionPolicy` (applied by the controller), never Kubernetes garbage collection.
pub(crate) fn pvc(
    ctx: &Ctx,
    name: String,
    part: &Part,
    default_size: &str,
) -> Result<Child, CatalogError> {
    let storage = ctx.spec.storage.as_ref();
    let labels = component_labels(ctx, part.name, part.role, None);
    let pvc = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ctx.site.namespace.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(pvc_spec(
            storage.map_or(default_size, |s| s.size.as_str()),
            storage.and_then(|s| s.storage_class_name.clone()),
        )),
        ..PersistentVolumeClaim::default()
    };
    Child::from_typed(pvc, Some(ctx.component))
}

/// ConfigMap key for a file path: its file name, which is unique within a part.
pub(crate) fn file_key(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// A volume from a ConfigMap key mounted as a single file.
pub(crate) fn config_file(
    volume: &str,
    config_map: &str,
    key: &str,
    mount_path: &str,
) -> (Volume, VolumeMount) {
    (
        Volume {
            name: volume.into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: config_map.into(),
                ..Default::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: volume.into(),
            mount_path: mount_path.into(),
            sub_path: Some(key.into()),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    )
}

/// The OAuth client credentials the FHIR clients of the MII (FLARE, TORCH) use towards an
/// OIDC-protected Blaze: `<prefix>_ISSUER_URI`, `<prefix>_CLIENT_ID` and `<prefix>_CLIENT_SECRET`
/// (from the site's Secret). Set only when the site names a client secret: both images turn
/// OAuth on only when all three are set, and half a configuration would start unauthenticated.
pub(crate) fn fhir_oauth_client(ctx: &Ctx, w: &mut Workload, prefix: &str) {
    if let Some(oidc) = ctx.oidc()
        && let Some(secret) = &oidc.client_secret_ref
    {
        w.set(&format!("{prefix}_ISSUER_URI"), oidc.issuer_url.clone());
        w.set(&format!("{prefix}_CLIENT_ID"), oidc.client_id.clone());
        w.env.push(super::database::secret_env(
            &format!("{prefix}_CLIENT_SECRET"),
            &secret.name,
            &secret.key,
        ));
    }
}

/// The memory limit of a component's primary container in MiB, as the preset and
/// `resourceOverrides` make it; `None` if the quantity is not one this parser knows (the
/// caller then leaves the image's default).
pub(crate) fn memory_limit_mib(ctx: &Ctx, presets: &Presets) -> Option<u64> {
    let resources = resources(ctx, presets, true);
    let limit = resources.limits.as_ref()?.get("memory")?;
    quantity_mib(&limit.0)
}

/// A memory quantity in MiB (rounded down): `512Mi`, `2Gi`, `1.5Gi`, `1G`, `1073741824`.
fn quantity_mib(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    let mib = number * factor / (1024.0 * 1024.0);
    // Truncation is intended: a heap a fraction of a MiB smaller is never a problem.
    (mib.is_finite() && mib >= 1.0).then_some(mib as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_in_mib() {
        assert_eq!(quantity_mib("512Mi"), Some(512));
        assert_eq!(quantity_mib("2Gi"), Some(2048));
        assert_eq!(quantity_mib("1.5Gi"), Some(1536));
        assert_eq!(quantity_mib("1G"), Some(953));
        assert_eq!(quantity_mib("1073741824"), Some(1024));
        assert_eq!(quantity_mib("1e9"), None);
        assert_eq!(quantity_mib("100m"), None);
    }

    #[test]
    fn volume_names_are_dns_labels() {
        assert_eq!(volume_name("/tmp"), "w-tmp");
        assert_eq!(
            volume_name("/usr/local/tomcat/work"),
            "w-usr-local-tomcat-work"
        );
        assert!(volume_name(&"/x".repeat(100)).len() <= 63);
    }

    #[test]
    fn config_hash_is_stable_and_sensitive() {
        let a = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let b = BTreeMap::from([("A".to_string(), "2".to_string())]);
        assert_eq!(fnv1a(&a), fnv1a(&a.clone()));
        assert_ne!(fnv1a(&a), fnv1a(&b));
        // Pinned so an accidental algorithm change (which would roll every pod) fails here.
        assert_eq!(fnv1a(&BTreeMap::new()), "cbf29ce484222325");
    }
}
