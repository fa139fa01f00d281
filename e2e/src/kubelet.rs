//! What a kubelet, and the process in the container, would make of a pod: the first failure a
//! real cluster reports for each container, given the image's contract.
//!
//! Contracts are data (JSON, the shape `miracolix-operator contracts` prints): the server stays
//! generic and knows no component. An image without a contract is only checked for what the
//! kubelet itself checks (Secret and ConfigMap references, `runAsNonRoot` against a root user).
//!
//! The checks, in the order a kubelet meets them:
//! 1. volumes: a Secret or ConfigMap volume whose object is missing keeps the pod in
//!    `ContainerCreating` (the kubelet's `FailedMount`);
//! 2. environment: a missing Secret or ConfigMap, or a missing key, referenced by `env` or
//!    `envFrom` is `CreateContainerConfigError`;
//! 3. user: `runAsNonRoot` with no numeric `runAsUser` and an image whose `USER` is a name is
//!    `CreateContainerConfigError` (the kubelet cannot verify a name is not root); uid 0 under
//!    `runAsNonRoot` likewise;
//! 4. the process: args that select none of the image's programs (an image that runs several,
//!    one per subcommand), a required setting missing, a file it reads at start not mounted, a
//!    written path on a read-only filesystem, or a path owned by the image's user written as
//!    another user: the entrypoint exits (`CrashLoopBackOff`, with the process's message);
//! 5. memory: a JVM whose fixed default heap exceeds the memory limit is `OOMKilled`;
//! 6. probes: an HTTP probe on a path or port the image does not serve fails (404 or connection
//!    refused): readiness keeps the pod unready, liveness and startup restart it
//!    (`CrashLoopBackOff`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::apiserver::builtin::quantity::Quantity;

/// One image's contract (the JSON the operator's catalogue prints).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub image: String,
    pub repository: String,
    #[serde(default)]
    pub source: String,
    /// Which program of a multi-program image this is (selected by the container's args).
    #[serde(default)]
    pub program: Option<Program>,
    #[serde(default)]
    pub reads: Vec<Read>,
    pub user: User,
    #[serde(default)]
    pub writes: Vec<Write>,
    #[serde(default)]
    pub required: Vec<Required>,
    #[serde(default)]
    pub ports: Vec<i32>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub jvm: Option<Jvm>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Program {
    pub args: Vec<String>,
    #[serde(default)]
    pub image_default_args: Vec<String>,
    #[serde(default)]
    pub unknown_args_message: String,
}

/// A file read at start from the path in `env`; `references` name further files inside it
/// (`a.b`, `a[].b`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    pub env: String,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub declared: String,
    /// `None` when upstream does not publish it.
    #[serde(default)]
    pub uid: Option<i64>,
    #[serde(default)]
    pub gid: Option<i64>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum WriteKind {
    Dir,
    RewrittenFile,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    pub path: String,
    pub kind: WriteKind,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Required {
    pub name: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub path: String,
    pub port: i32,
    #[serde(default)]
    pub needs: Option<(String, String)>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Jvm {
    #[serde(default)]
    pub default_heap_mib: Option<u64>,
    /// The variable whose JVM flags replace the image's default heap (`JAVA_TOOL_OPTIONS`,
    /// `JAVA_OPTS`, `CATALINA_OPTS`).
    pub options_env: String,
}

/// The contracts the server enforces, recognised by image repository.
#[derive(Clone, Debug, Default)]
pub struct Contracts(Vec<Contract>);

impl Contracts {
    pub fn new(contracts: Vec<Contract>) -> Self {
        Self(contracts)
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        Ok(Self(serde_json::from_str(text)?))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The contract of an image reference (`repo@sha256:…`, `repo:tag` or `repo`); for an image
    /// with several programs, the first (they share the image's user).
    pub fn for_image(&self, image: &str) -> Option<&Contract> {
        let repository = repository_of(image);
        self.0.iter().find(|c| c.repository == repository)
    }

    /// The contract of the program a container runs: by image, and for an image with several
    /// programs by the container's args (the image's `CMD` when it sets neither `command` nor
    /// `args`). `Err` with the entrypoint's message when the args select none of them.
    pub fn for_container(&self, c: &Value) -> Result<Option<&Contract>, String> {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let repository = repository_of(image);
        let candidates: Vec<&Contract> = self
            .0
            .iter()
            .filter(|k| k.repository == repository)
            .collect();
        let programs: Vec<(&Contract, &Program)> = candidates
            .iter()
            .filter_map(|k| k.program.as_ref().map(|p| (*k, p)))
            .collect();
        let Some((_, first)) = programs.first() else {
            return Ok(candidates.first().copied());
        };
        let args: Vec<String> = match (c.get("args"), c.get("command")) {
            (Some(Value::Array(a)), _) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            (_, Some(Value::Array(_))) => Vec::new(),
            _ => first.image_default_args.clone(),
        };
        programs
            .iter()
            .filter(|(_, p)| args.starts_with(&p.args))
            .max_by_key(|(_, p)| p.args.len())
            .map(|(k, _)| Some(*k))
            .ok_or_else(|| {
                format!(
                    "{} '{}' (the image runs: {})",
                    first.unknown_args_message,
                    args.first().map(String::as_str).unwrap_or_default(),
                    programs
                        .iter()
                        .map(|(_, p)| p.args.join(" "))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

fn repository_of(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    // A tag is a ':' after the last '/': a registry port (`host:5000/x`) is not.
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// What a container ends up as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `waiting.reason: ContainerCreating`: a volume cannot be mounted.
    ContainerCreating(String),
    /// `waiting.reason: CreateContainerConfigError`.
    CreateContainerConfigError(String),
    /// The process exits at start (`lastState.terminated.reason: Error`, then
    /// `waiting.reason: CrashLoopBackOff`); the message is what the process printed.
    CrashLoopBackOff(String),
    /// `lastState.terminated.reason: OOMKilled`, then `CrashLoopBackOff`.
    OomKilled(String),
    /// Liveness or startup probe failing: restarted over and over (`CrashLoopBackOff`).
    LivenessFailing(String),
    /// Readiness probe failing: running, never ready.
    NotReady(String),
}

impl Failure {
    /// The `waiting.reason` (or, for an unready container, the condition reason) a kubelet
    /// reports.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::ContainerCreating(_) => "ContainerCreating",
            Failure::CreateContainerConfigError(_) => "CreateContainerConfigError",
            Failure::CrashLoopBackOff(_) | Failure::OomKilled(_) | Failure::LivenessFailing(_) => {
                "CrashLoopBackOff"
            }
            Failure::NotReady(_) => "ContainersNotReady",
        }
    }

    /// The `lastState.terminated.reason` of a container that ran and stopped.
    pub fn terminated_reason(&self) -> Option<&'static str> {
        match self {
            Failure::CrashLoopBackOff(_) | Failure::LivenessFailing(_) => Some("Error"),
            Failure::OomKilled(_) => Some("OOMKilled"),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::ContainerCreating(m)
            | Failure::CreateContainerConfigError(m)
            | Failure::CrashLoopBackOff(m)
            | Failure::OomKilled(m)
            | Failure::LivenessFailing(m)
            | Failure::NotReady(m) => m,
        }
    }

    /// Whether the container restarts (counts restarts).
    pub fn restarts(&self) -> bool {
        matches!(
            self,
            Failure::CrashLoopBackOff(_) | Failure::OomKilled(_) | Failure::LivenessFailing(_)
        )
    }
}

/// The namespace's ConfigMaps and Secrets as the kubelet sees them: name → keys (ConfigMaps with
/// their values, which `envFrom` turns into variables).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeSet<String>>,
}

/// The first failure of each failing container of a pod spec (`spec` of a pod template), init
/// containers first. An empty result means every container starts and becomes ready.
pub fn check_pod(
    pod: &Value,
    namespace: &str,
    objects: &Objects,
    contracts: &Contracts,
) -> Vec<(String, Failure)> {
    let mut out = Vec::new();
    if let Some(f) = volumes(pod, namespace, objects) {
        let first = containers(pod, "initContainers")
            .chain(containers(pod, "containers"))
            .next()
            .map(|c| name(c).to_string())
            .unwrap_or_default();
        out.push((first, f));
        return out;
    }
    for c in containers(pod, "initContainers") {
        // Init containers run their own command: only what the kubelet checks applies.
        if let Some(f) = kubelet_checks(pod, c, namespace, objects, contracts) {
            out.push((name(c).to_string(), f));
            // Later containers never start while an init container fails.
            return out;
        }
    }
    for c in containers(pod, "containers") {
        let failure = kubelet_checks(pod, c, namespace, objects, contracts).or_else(|| {
            match contracts.for_container(c) {
                Err(message) => Some(Failure::CrashLoopBackOff(message)),
                Ok(contract) => {
                    contract.and_then(|contract| process_checks(pod, c, contract, objects))
                }
            }
        });
        if let Some(f) = failure {
            out.push((name(c).to_string(), f));
        }
    }
    out
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn optional(r: &Value) -> bool {
    r.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

fn volumes(pod: &Value, namespace: &str, objects: &Objects) -> Option<Failure> {
    for v in containers(pod, "volumes") {
        let vol = name(v);
        if let Some(s) = v.get("secret")
            && !optional(s)
        {
            let secret = str_at(s, "/secretName").unwrap_or_default();
            if !objects.secrets.contains_key(secret) {
                return Some(Failure::ContainerCreating(format!(
                    "MountVolume.SetUp failed for volume \"{vol}\" : secret \"{secret}\" not found"
                )));
            }
        }
        // A projected volume's Secrets are fetched like a secret volume's, with the same error
        // (pkg/volume/projected: the kubelet's secret manager's NotFound).
        for src in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = src.get("secret")
                && !optional(s)
            {
                let secret = str_at(s, "/name").unwrap_or_default();
                if !objects.secrets.contains_key(secret) {
                    return Some(Failure::ContainerCreating(format!(
                        "MountVolume.SetUp failed for volume \"{vol}\" : secret \"{secret}\" not found"
                    )));
                }
            }
        }
        if let Some(cm) = v.get("configMap")
            && !optional(cm)
        {
            let map = str_at(cm, "/name").unwrap_or_default();
            if !objects.config_maps.contains_key(map) {
                return Some(Failure::ContainerCreating(format!(
                    "MountVolume.SetUp failed for volume \"{vol}\" : configmap \"{map}\" not found"
                )));
            }
        }
    }
    let _ = namespace;
    None
}

/// Checks the kubelet makes before it starts the process.
fn kubelet_checks(
    pod: &Value,
    c: &Value,
    namespace: &str,
    objects: &Objects,
    contracts: &Contracts,
) -> Option<Failure> {
    for e in containers(c, "env") {
        if let Some(r) = e.pointer("/valueFrom/secretKeyRef")
            && !optional(r)
        {
            let secret = str_at(r, "/name").unwrap_or_default();
            let key = str_at(r, "/key").unwrap_or_default();
            match objects.secrets.get(secret) {
                None => {
                    return Some(Failure::CreateContainerConfigError(format!(
                        "secret \"{secret}\" not found"
                    )));
                }
                Some(keys) if !keys.contains(key) => {
                    return Some(Failure::CreateContainerConfigError(format!(
                        "couldn't find key {key} in Secret {namespace}/{secret}"
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(r) = e.pointer("/valueFrom/configMapKeyRef")
            && !optional(r)
        {
            let map = str_at(r, "/name").unwrap_or_default();
            let key = str_at(r, "/key").unwrap_or_default();
            match objects.config_maps.get(map) {
                None => {
                    return Some(Failure::CreateContainerConfigError(format!(
                        "configmap \"{map}\" not found"
                    )));
                }
                Some(data) if !data.contains_key(key) => {
                    return Some(Failure::CreateContainerConfigError(format!(
                        "couldn't find key {key} in ConfigMap {namespace}/{map}"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    for e in containers(c, "envFrom") {
        if let Some(r) = e.get("configMapRef")
            && !optional(r)
        {
            let map = str_at(r, "/name").unwrap_or_default();
            if !objects.config_maps.contains_key(map) {
                return Some(Failure::CreateContainerConfigError(format!(
                    "configmap \"{map}\" not found"
                )));
            }
        }
        if let Some(r) = e.get("secretRef")
            && !optional(r)
        {
            let secret = str_at(r, "/name").unwrap_or_default();
            if !objects.secrets.contains_key(secret) {
                return Some(Failure::CreateContainerConfigError(format!(
                    "secret \"{secret}\" not found"
                )));
            }
        }
    }
    let non_root = security(pod, c, "runAsNonRoot").and_then(Value::as_bool) == Some(true);
    let run_as = security(pod, c, "runAsUser").and_then(Value::as_i64);
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let contract = contracts.for_image(image);
    if non_root {
        let pod_name = "";
        let _ = pod_name;
        match (run_as, contract) {
            (Some(0), _) => {
                return Some(Failure::CreateContainerConfigError(
                    "container's runAsUser breaks non-root policy".to_string(),
                ));
            }
            (Some(_), _) => {}
            (None, Some(contract)) => match contract.user.declared.parse::<i64>() {
                Ok(0) => {
                    return Some(Failure::CreateContainerConfigError(
                        "container has runAsNonRoot and image will run as root".to_string(),
                    ));
                }
                Ok(_) => {}
                Err(_) => {
                    return Some(Failure::CreateContainerConfigError(format!(
                        "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root",
                        contract.user.declared
                    )));
                }
            },
            (None, None) => {}
        }
    }
    None
}

/// A security setting of the container, falling back to the pod's.
fn security<'a>(pod: &'a Value, c: &'a Value, field: &str) -> Option<&'a Value> {
    c.pointer(&format!("/securityContext/{field}"))
        .filter(|v| !v.is_null())
        .or_else(|| pod.pointer(&format!("/securityContext/{field}")))
        .filter(|v| !v.is_null())
}

/// The variables a container's process sees: `env` names and `envFrom` keys (with prefix) of
/// ConfigMaps; Secret `envFrom` keys when the Secret is known. Values only where they are plain.
fn environment(c: &Value, objects: &Objects) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for e in containers(c, "envFrom") {
        let prefix = str_at(e, "/prefix").unwrap_or_default();
        if let Some(map) = str_at(e, "/configMapRef/name")
            && let Some(data) = objects.config_maps.get(map)
        {
            for (k, v) in data {
                env.insert(format!("{prefix}{k}"), Some(v.clone()));
            }
        }
        if let Some(secret) = str_at(e, "/secretRef/name")
            && let Some(keys) = objects.secrets.get(secret)
        {
            for k in keys {
                env.insert(format!("{prefix}{k}"), None);
            }
        }
    }
    // `env` wins over `envFrom`, as in Kubernetes.
    for e in containers(c, "env") {
        env.insert(
            name(e).to_string(),
            e.get("value").and_then(Value::as_str).map(str::to_string),
        );
    }
    env
}

struct Mount<'a> {
    path: &'a str,
    writable: bool,
}

fn mounts<'a>(pod: &'a Value, c: &'a Value) -> Vec<Mount<'a>> {
    let volume_writable = |vol: &str| match containers(pod, "volumes").find(|v| name(v) == vol) {
        Some(v) => {
            v.get("emptyDir").is_some()
                || v.get("persistentVolumeClaim").is_some()
                || v.get("ephemeral").is_some()
                || v.get("hostPath").is_some()
                || v.get("nfs").is_some()
        }
        // Not a volume of the pod template: a StatefulSet's claim template, which the
        // controller adds to each pod as a PersistentVolumeClaim volume of the same name.
        None => true,
    };
    let mut mounts: Vec<Mount> = containers(c, "volumeMounts")
        .map(|m| {
            let vol = str_at(m, "/name").unwrap_or_default();
            let read_only = m.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            Mount {
                path: str_at(m, "/mountPath").unwrap_or_default(),
                writable: !read_only && volume_writable(vol),
            }
        })
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.path.len()));
    mounts
}

/// The mount a path lies on (the most specific), if any.
fn mount_of<'a, 'b>(mounts: &'b [Mount<'a>], path: &str) -> Option<&'b Mount<'a>> {
    mounts.iter().find(|m| {
        let mp = m.path.trim_end_matches('/');
        path == mp || path.starts_with(&format!("{mp}/"))
    })
}

fn process_checks(
    pod: &Value,
    c: &Value,
    contract: &Contract,
    objects: &Objects,
) -> Option<Failure> {
    let env = environment(c, objects);
    let missing: Vec<&Required> = contract
        .required
        .iter()
        .filter(|r| !env.contains_key(&r.name))
        .collect();
    if let Some(first) = missing.first() {
        let names: Vec<&str> = missing.iter().map(|r| r.name.as_str()).collect();
        let message = if first.message.is_empty() {
            format!("required setting {} is not set", names.join(", "))
        } else {
            format!("{} ({})", first.message, names.join(", "))
        };
        return Some(Failure::CrashLoopBackOff(message));
    }
    for read in &contract.reads {
        let Some(Some(path)) = env.get(&read.env) else {
            continue;
        };
        if let Some(missing) = unreadable(pod, c, path, &read.references, objects) {
            return Some(Failure::CrashLoopBackOff(format!(
                "{} {missing}: No such file or directory (os error 2)",
                read.message
            )));
        }
    }

    let read_only_root = c
        .pointer("/securityContext/readOnlyRootFilesystem")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let run_as = security(pod, c, "runAsUser")
        .and_then(Value::as_i64)
        .or(contract.user.uid);
    let run_as_group = security(pod, c, "runAsGroup").and_then(Value::as_i64);
    let mounts = mounts(pod, c);
    for w in &contract.writes {
        match mount_of(&mounts, &w.path) {
            Some(m) if m.writable => {}
            Some(_) => {
                return Some(Failure::CrashLoopBackOff(format!(
                    "{}: Read-only file system",
                    w.path
                )));
            }
            None if read_only_root => {
                return Some(Failure::CrashLoopBackOff(format!(
                    "{}: Read-only file system",
                    w.path
                )));
            }
            None => {
                // On the image's own filesystem the path belongs to the image's user (and
                // group): another uid cannot write it. With the image's uid unknown, a path
                // off the volumes is taken to be unwritable for any uid the pod chose.
                let owner_ok = (run_as.is_some() && run_as == contract.user.uid)
                    || (contract.user.gid.is_some() && run_as_group == contract.user.gid);
                if !owner_ok {
                    let owner = contract
                        .user
                        .uid
                        .map_or_else(|| "the image's user".to_string(), |u| format!("uid {u}"));
                    let runs =
                        run_as.map_or_else(|| "another user".to_string(), |u| format!("uid {u}"));
                    return Some(Failure::CrashLoopBackOff(format!(
                        "{}: Permission denied (owned by {owner}, the container runs as {runs})",
                        w.path
                    )));
                }
            }
        }
    }

    if let Some(jvm) = &contract.jvm
        && let Some(default_heap) = jvm.default_heap_mib
        && let Some(limit) = str_at(c, "/resources/limits/memory").and_then(parse_bytes)
    {
        let overridden = env
            .get(&jvm.options_env)
            .and_then(|v| v.as_deref())
            .is_some_and(|v| v.contains("-Xmx") || v.contains("MaxRAMPercentage"));
        let heap = if overridden {
            env.get(&jvm.options_env)
                .and_then(|v| v.as_deref())
                .and_then(|v| heap_of(v, limit))
        } else {
            Some(default_heap * MIB)
        };
        if let Some(heap) = heap
            && heap >= limit
        {
            return Some(Failure::OomKilled(format!(
                "the JVM heap ({} MiB) does not fit the memory limit ({} MiB)",
                heap / MIB,
                limit / MIB
            )));
        }
    }

    let ports = container_ports(c);
    for (probe, field) in [
        ("Startup", "startupProbe"),
        ("Liveness", "livenessProbe"),
        ("Readiness", "readinessProbe"),
    ] {
        let Some(p) = c.get(field).filter(|p| !p.is_null()) else {
            continue;
        };
        let failing = if let Some(get) = p.get("httpGet") {
            let port = resolve_port(get.get("port"), &ports);
            let path = str_at(get, "/path").unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let served = contract.endpoints.iter().any(|e| {
                Some(e.port) == port
                    && e.path == path
                    && e.needs.as_ref().is_none_or(|(k, v)| {
                        env.get(k).and_then(|x| x.as_deref()) == Some(v.as_str())
                    })
            });
            if served {
                None
            } else if port.is_some_and(|p| contract.ports.contains(&p)) {
                Some(format!(
                    "{probe} probe failed: HTTP probe failed with statuscode: 404 ({path})"
                ))
            } else {
                Some(format!(
                    "{probe} probe failed: Get \"http://{}{path}\": connect: connection refused",
                    port.map(|p| format!(":{p}")).unwrap_or_default()
                ))
            }
        } else if let Some(tcp) = p.get("tcpSocket") {
            let port = resolve_port(tcp.get("port"), &ports);
            if port.is_some_and(|p| contract.ports.contains(&p)) {
                None
            } else {
                Some(format!(
                    "{probe} probe failed: dial tcp {}: connect: connection refused",
                    port.map(|p| format!(":{p}")).unwrap_or_default()
                ))
            }
        } else {
            None
        };
        if let Some(message) = failing {
            return Some(if probe == "Readiness" {
                Failure::NotReady(message)
            } else {
                Failure::LivenessFailing(message)
            });
        }
    }
    None
}

/// The first file of `path` and the files it references that the process would not find.
fn unreadable(
    pod: &Value,
    c: &Value,
    path: &str,
    references: &[String],
    objects: &Objects,
) -> Option<String> {
    let content = match file_at(pod, c, path, objects) {
        None => return Some(path.to_string()),
        Some(content) => content,
    };
    let doc: Option<Value> = content.and_then(|t| serde_json::from_str(&t).ok());
    for r in references {
        for inner in doc.iter().flat_map(|d| referenced(d, r)) {
            if file_at(pod, c, &inner, objects).is_none() {
                return Some(inner);
            }
        }
    }
    None
}

/// The strings at `a.b` or `a[].b` (every element of the list `a`) of a JSON document.
fn referenced(doc: &Value, spec: &str) -> Vec<String> {
    let mut at = vec![doc];
    for segment in spec.split('.') {
        let (field, each) = match segment.strip_suffix("[]") {
            Some(f) => (f, true),
            None => (segment, false),
        };
        at = at
            .into_iter()
            .filter_map(|v| v.get(field))
            .flat_map(|v| match (each, v) {
                (true, Value::Array(items)) => items.iter().collect::<Vec<_>>(),
                (true, _) => Vec::new(),
                (false, v) => vec![v],
            })
            .collect();
    }
    at.into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// What the process finds at `path`: `None` nothing; `Some(None)` a file of unknown content (a
/// Secret key, a persistent volume); `Some(Some(text))` a ConfigMap key's value.
fn file_at(pod: &Value, c: &Value, path: &str, objects: &Objects) -> Option<Option<String>> {
    let mount = containers(c, "volumeMounts")
        .filter(|m| {
            let mp = str_at(m, "/mountPath")
                .unwrap_or_default()
                .trim_end_matches('/');
            path == mp || path.starts_with(&format!("{mp}/"))
        })
        .max_by_key(|m| str_at(m, "/mountPath").unwrap_or_default().len())?;
    let mount_path = str_at(mount, "/mountPath")
        .unwrap_or_default()
        .trim_end_matches('/');
    let rel = path[mount_path.len()..].trim_start_matches('/');
    let key = match str_at(mount, "/subPath").filter(|s| !s.is_empty()) {
        Some(sub) if rel.is_empty() => sub.to_string(),
        Some(sub) => format!("{sub}/{rel}"),
        None => rel.to_string(),
    };
    let vol = str_at(mount, "/name").unwrap_or_default();
    let Some(volume) = containers(pod, "volumes").find(|v| name(v) == vol) else {
        // A StatefulSet's claim template: a persistent volume.
        return Some(None);
    };
    // A ConfigMap or Secret volume: its keys as files, or only `items`, each at its `path`.
    let key_of = |source: &Value| -> Option<String> {
        match source.get("items").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .find(|i| str_at(i, "/path") == Some(key.as_str()))
                .and_then(|i| str_at(i, "/key"))
                .map(str::to_string),
            None => Some(key.clone()),
        }
    };
    if let Some(cm) = volume.get("configMap") {
        let data = objects
            .config_maps
            .get(str_at(cm, "/name").unwrap_or_default())?;
        return data.get(&key_of(cm)?).cloned().map(Some);
    }
    if let Some(secret) = volume.get("secret") {
        let keys = objects
            .secrets
            .get(str_at(secret, "/secretName").unwrap_or_default())?;
        return keys.contains(&key_of(secret)?).then_some(None);
    }
    if volume.get("emptyDir").is_some() {
        // Empty when the container starts.
        return None;
    }
    // A persistent volume (or another source): what it holds is not known here.
    Some(None)
}

fn container_ports(c: &Value) -> BTreeMap<String, i32> {
    containers(c, "ports")
        .filter_map(|p| {
            Some((
                str_at(p, "/name")?.to_string(),
                i32::try_from(p.get("containerPort")?.as_i64()?).ok()?,
            ))
        })
        .collect()
}

fn resolve_port(port: Option<&Value>, named: &BTreeMap<String, i32>) -> Option<i32> {
    match port? {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => named.get(s).copied().or_else(|| s.parse().ok()),
        _ => None,
    }
}

const MIB: u64 = 1024 * 1024;

/// A memory quantity in bytes (`512Mi`, `2Gi`, `1G`, `1500M`, `1073741824`), parsed as the API
/// server parses quantities and rounded up to whole bytes as the kubelet reads a limit.
pub fn parse_bytes(q: &str) -> Option<u64> {
    let bytes = Quantity::parse(q.trim())?.value()?;
    u64::try_from(bytes).ok()
}

/// The heap a set of JVM flags asks for, given the container's memory limit.
fn heap_of(flags: &str, limit: u64) -> Option<u64> {
    // The last occurrence wins, as on the JVM's command line.
    let mut heap = None;
    for flag in flags.split_whitespace() {
        if let Some(v) = flag.strip_prefix("-Xmx") {
            let v = v.to_ascii_lowercase();
            let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
            let n: u64 = num.parse().ok()?;
            heap = Some(match unit {
                "" => n,
                "k" => n * 1024,
                "m" => n * MIB,
                "g" => n * 1024 * MIB,
                _ => return None,
            });
        } else if let Some(v) = flag.strip_prefix("-XX:MaxRAMPercentage=") {
            let p: f64 = v.parse().ok()?;
            heap = Some((limit as f64 * p / 100.0) as u64);
        }
    }
    heap
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract() -> Contract {
        serde_json::from_value(json!({
            "image": "ttp",
            "repository": "example.org/ttp",
            "user": {"declared": "mosaic", "uid": 1111, "gid": 1111},
            "writes": [{"path": "/opt/app/data", "kind": "dir"},
                       {"path": "/etc/app/app.conf", "kind": "rewrittenFile"}],
            "required": [{"name": "API_KEY", "secret": true, "message": "Error: Mandatory variables not defined"}],
            "ports": [8080],
            "endpoints": [{"path": "/health", "port": 8080},
                          {"path": "/readyz", "port": 8080, "needs": ["PROBES", "true"]}],
            "jvm": {"defaultHeapMib": 4096, "optionsEnv": "JAVA_OPTS"}
        }))
        .expect("contract parses")
    }

    fn pod(container: Value) -> Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1111, "runAsGroup": 1111},
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "emptyDir": {}},
                        {"name": "files", "configMap": {"name": "files"}}],
            "containers": [container]
        })
    }

    fn good() -> Value {
        json!({
            "name": "app",
            "image": "example.org/ttp@sha256:aa",
            "securityContext": {"readOnlyRootFilesystem": true},
            "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "JAVA_OPTS", "value": "-XX:MaxRAMPercentage=50"}],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
            "resources": {"limits": {"memory": "2Gi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/opt/app/data"},
                             {"name": "conf", "mountPath": "/etc/app"}]
        })
    }

    fn objects() -> Objects {
        Objects {
            config_maps: BTreeMap::from([("files".to_string(), BTreeMap::new())]),
            secrets: BTreeMap::from([("s".to_string(), BTreeSet::from(["k".to_string()]))]),
        }
    }

    fn check(c: Value) -> Vec<(String, Failure)> {
        check_pod(&pod(c), "ns", &objects(), &Contracts::new(vec![contract()]))
    }

    #[test]
    fn a_pod_that_meets_the_contract_starts() {
        assert_eq!(check(good()), vec![]);
    }

    #[test]
    fn a_named_user_without_a_numeric_run_as_user_cannot_be_verified() {
        let mut p = pod(good());
        p["securityContext"] = json!({"runAsNonRoot": true});
        let got = check_pod(&p, "ns", &objects(), &Contracts::new(vec![contract()]));
        assert_eq!(got[0].1.reason(), "CreateContainerConfigError");
        assert!(got[0].1.message().contains("non-numeric user (mosaic)"));
    }

    #[test]
    fn a_missing_secret_or_key_is_a_config_error() {
        let mut c = good();
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"] = json!("absent");
        assert_eq!(
            check(c)[0].1,
            Failure::CreateContainerConfigError("secret \"absent\" not found".into())
        );
        let mut c = good();
        c["env"][0]["valueFrom"]["secretKeyRef"]["key"] = json!("other");
        assert_eq!(
            check(c)[0].1,
            Failure::CreateContainerConfigError("couldn't find key other in Secret ns/s".into())
        );
    }

    #[test]
    fn a_missing_required_setting_exits_with_the_entrypoints_message() {
        let mut c = good();
        c["env"].as_array_mut().expect("env").remove(0);
        let got = check(c);
        assert_eq!(got[0].1.reason(), "CrashLoopBackOff");
        assert!(
            got[0]
                .1
                .message()
                .starts_with("Error: Mandatory variables not defined (API_KEY)")
        );
    }

    #[test]
    fn writes_need_writable_volumes_under_a_read_only_root() {
        let mut c = good();
        c["volumeMounts"] = json!([{"name": "data", "mountPath": "/opt/app/data"}]);
        assert_eq!(
            check(c)[0].1,
            Failure::CrashLoopBackOff("/etc/app/app.conf: Read-only file system".into())
        );
        // A ConfigMap mounted over a rewritten file is read-only whatever the root.
        let mut c = good();
        c["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        c["volumeMounts"] = json!([{"name": "data", "mountPath": "/opt/app/data"},
                                   {"name": "files", "mountPath": "/etc/app/app.conf", "subPath": "app.conf"}]);
        assert_eq!(
            check(c)[0].1,
            Failure::CrashLoopBackOff("/etc/app/app.conf: Read-only file system".into())
        );
    }

    #[test]
    fn a_statefulset_claim_template_mount_is_writable() {
        // `data` is not among the template's volumes: the StatefulSet controller adds the claim.
        let mut p = pod(good());
        p["volumes"] = json!([{"name": "conf", "emptyDir": {}}]);
        let got = check_pod(&p, "ns", &objects(), &Contracts::new(vec![contract()]));
        assert_eq!(got, vec![]);
    }

    #[test]
    fn another_uid_cannot_write_the_images_own_directories() {
        let mut p = pod(good());
        p["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        p["containers"][0]["volumeMounts"] = json!([]);
        p["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 65532});
        let got = check_pod(&p, "ns", &objects(), &Contracts::new(vec![contract()]));
        assert!(got[0].1.message().contains("Permission denied"), "{got:?}");
    }

    #[test]
    fn a_default_heap_above_the_limit_is_oom_killed() {
        let mut c = good();
        c["env"].as_array_mut().expect("env").remove(1);
        assert_eq!(check(c)[0].1.terminated_reason(), Some("OOMKilled"));
        let mut c = good();
        c["env"][1]["value"] = json!("-Xmx3g");
        assert_eq!(check(c)[0].1.terminated_reason(), Some("OOMKilled"));
        let mut c = good();
        c["env"][1]["value"] = json!("-Xmx1g");
        assert_eq!(check(c), vec![]);
    }

    #[test]
    fn probes_must_hit_served_endpoints() {
        let mut c = good();
        c["readinessProbe"]["httpGet"]["path"] = json!("/readyz");
        let got = check(c.clone());
        assert_eq!(got[0].1.reason(), "ContainersNotReady");
        c["env"]
            .as_array_mut()
            .expect("env")
            .push(json!({"name": "PROBES", "value": "true"}));
        assert_eq!(check(c), vec![]);
        let mut c = good();
        c["livenessProbe"] = json!({"httpGet": {"path": "/health", "port": 9990}});
        let got = check(c);
        assert_eq!(got[0].1.reason(), "CrashLoopBackOff");
        assert!(got[0].1.message().contains("connection refused"));
    }

    #[test]
    fn images_without_a_contract_get_only_the_kubelets_checks() {
        let mut c = good();
        c["image"] = json!("example.org/other:1.0");
        c["env"].as_array_mut().expect("env").remove(0);
        assert_eq!(check(c), vec![]);
    }

    #[test]
    fn repositories_are_recognised_with_digest_tag_or_registry_port() {
        assert_eq!(repository_of("a/b@sha256:x"), "a/b");
        assert_eq!(repository_of("a/b:1.0"), "a/b");
        assert_eq!(repository_of("host:5000/a/b"), "host:5000/a/b");
        assert_eq!(repository_of("host:5000/a/b:2@sha256:x"), "host:5000/a/b");
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_bytes("512Mi"), Some(512 * MIB));
        assert_eq!(parse_bytes("2Gi"), Some(2048 * MIB));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Some(1536 * MIB));
        assert_eq!(parse_bytes("bogus"), None);
    }

    #[test]
    fn files_read_at_start_are_found_on_configmap_secret_and_volume_mounts() {
        let pod = json!({
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "picked", "configMap": {"name": "c", "items": [{"key": "a.json", "path": "renamed.json"}]}},
                {"name": "tok", "secret": {"secretName": "s"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "state", "persistentVolumeClaim": {"claimName": "p"}},
            ],
        });
        let c = json!({"volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "picked", "mountPath": "/etc/picked"},
            {"name": "cfg", "mountPath": "/etc/one.json", "subPath": "a.json"},
            {"name": "tok", "mountPath": "/etc/app/secret"},
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "state", "mountPath": "/var/lib/app"},
        ]});
        let mut objects = Objects::default();
        objects.config_maps.insert(
            "c".into(),
            BTreeMap::from([(
                "a.json".to_string(),
                r#"{"tokens": [{"tokenFile": "/etc/app/secret/token"}, {"tokenFile": "/nowhere/t"}], "oidc": {"jwksFile": "/etc/app/a.json"}}"#.to_string(),
            )]),
        );
        objects
            .secrets
            .insert("s".into(), BTreeSet::from(["token".to_string()]));
        let at = |path: &str| file_at(&pod, &c, path, &objects);
        assert!(
            matches!(at("/etc/app/a.json"), Some(Some(_))),
            "a ConfigMap key"
        );
        assert_eq!(at("/etc/app/b.json"), None, "a key the ConfigMap lacks");
        assert!(
            matches!(at("/etc/picked/renamed.json"), Some(Some(_))),
            "items[].path"
        );
        assert_eq!(
            at("/etc/picked/a.json"),
            None,
            "items pick only what they list"
        );
        assert!(matches!(at("/etc/one.json"), Some(Some(_))), "subPath");
        assert_eq!(at("/etc/app/secret/token"), Some(None), "a Secret key");
        assert_eq!(at("/etc/app/secret/other"), None);
        assert_eq!(at("/tmp/x"), None, "an emptyDir is empty at start");
        assert_eq!(
            at("/var/lib/app/db"),
            Some(None),
            "a volume: not known, taken as there"
        );
        assert_eq!(at("/opt/x"), None, "not mounted");

        let doc: Value = serde_json::from_str(&objects.config_maps["c"]["a.json"]).expect("json");
        assert_eq!(
            referenced(&doc, "tokens[].tokenFile"),
            ["/etc/app/secret/token", "/nowhere/t"]
        );
        assert_eq!(referenced(&doc, "oidc.jwksFile"), ["/etc/app/a.json"]);
        assert_eq!(referenced(&doc, "missing[].x"), Vec::<String>::new());
        // The second token file is nowhere: the process would stop there.
        assert_eq!(
            unreadable(
                &pod,
                &c,
                "/etc/app/a.json",
                &["tokens[].tokenFile".into()],
                &objects
            ),
            Some("/nowhere/t".to_string())
        );
    }
}
