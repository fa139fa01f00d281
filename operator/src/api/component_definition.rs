//! Components a `ComponentRelease` defines beyond the built-in catalogue (`spec.componentDefinitions`),
//! and how a `DizSite` enables one (`spec.components.fromRelease`).
//!
//! A definition is data, not code: everything the catalogue's own modules state about a component
//! that a release manager can state about a new one (image contract, ports, health endpoints,
//! settings, storage, resource presets, the catalogue components it calls, exposure behind the
//! login proxy, a PostgreSQL database). The catalogue turns it into a descriptor like those of
//! the built-in components (`catalog::generic`), so the same pod rules, NetworkPolicies, Ingress,
//! status and contracts apply. It is part of the release's signed content (format
//! `miracolix-release-v2`, see `release::canonical`): nobody without a signing key can change
//! what a site runs. docs/concepts.md says when a component belongs in the catalogue instead.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ComponentSpec, SecretKeyRef};

/// At most this many definitions per release.
pub const MAX_DEFINITIONS: u32 = 4;

/// Longest definition name: object names are `<site>-<name>` and `<site>-<name>-db-rw` (the
/// CloudNativePG Service), which must stay within the length the built-in components keep
/// (`catalog::MAX_SITE_NAME_LEN`).
pub const MAX_NAME_LEN: u32 = 12;

/// Names a definition may not take: every built-in component name and release image key (the
/// definition's image is pinned under its name in `spec.components`).
pub fn reserved_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = crate::catalog::Component::all().map(|c| c.name()).collect();
    for key in super::image_keys() {
        if !names.contains(&key) {
            names.push(key);
        }
    }
    names
}

fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| super::rules::cel_str(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn not_reserved_rule() -> String {
    format!("!(self in {})", cel_list(&reserved_names()))
}

fn not_reserved_message() -> String {
    format!(
        "the name is taken by a component of the built-in catalogue or its images ({}); a release defines only components the catalogue does not know",
        reserved_names().join(", ")
    )
}

fn builtin_names() -> Vec<&'static str> {
    crate::catalog::Component::all().map(|c| c.name()).collect()
}

fn calls_builtin_rule() -> String {
    format!("self in {}", cel_list(&builtin_names()))
}

fn calls_builtin_message() -> String {
    format!(
        "calls names a component of the built-in catalogue: one of {}",
        builtin_names().join(", ")
    )
}

fn site_enables_builtin_message() -> String {
    "a component of the built-in catalogue is enabled under spec.components.<field>, not under fromRelease".to_string()
}

/// A DNS label of at most [`MAX_NAME_LEN`] characters that starts with a letter.
const NAME_RULE: &str = r"self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";
/// An environment variable name.
const ENV_NAME_RULE: &str = r"self.matches('^[A-Za-z_][A-Za-z0-9_]*$')";
/// An absolute path without `..`, whitespace or a trailing slash.
const PATH_RULE: &str =
    r"self.matches('^(/[A-Za-z0-9._-]+)+$') && !self.contains('/../') && !self.endsWith('/..')";

/// One component a release defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.settings) || !self.settings.exists(s, has(s.database)) || has(self.database)").field_path(".settings").message("a setting takes a database coordinate, but the definition has no database; add database or remove the setting"))]
#[x_kube(validation = Rule::new("!has(self.health.port) || self.ports.exists(p, p.name == self.health.port)").field_path(".health.port").message("health.port must name one of the definition's ports"))]
#[x_kube(validation = Rule::new("!has(self.storage) || self.contract.writablePaths.exists(w, w.path == self.storage.mountPath || w.path.startsWith(self.storage.mountPath + '/'))").field_path(".storage.mountPath").message("storage.mountPath must hold at least one of contract.writablePaths: the volume is where the image writes its data"))]
pub struct ComponentDefinition {
    /// The component's name: object names (`<site>-<name>`), labels, status, and the key of its
    /// image in `spec.components`. Not a name of the built-in catalogue.
    #[x_kube(validation = Rule::new(NAME_RULE).message("name must be a DNS label that starts with a letter: lowercase letters, digits and inner '-'"))]
    #[x_kube(validation = Rule::new(not_reserved_rule()).message(Message::Message(not_reserved_message())))]
    #[schemars(length(min = 1, max = MAX_NAME_LEN))]
    pub name: String,

    /// What the component is, in words a site admin recognises (e.g. `the XNAT imaging platform`).
    #[schemars(length(min = 1, max = 100))]
    pub description: String,

    /// `app.kubernetes.io/component` of its pods: its role, e.g. `imaging-platform`.
    #[x_kube(validation = Rule::new(NAME_RULE).message("role must be a DNS label, e.g. imaging-platform"))]
    #[schemars(length(min = 1, max = 63))]
    pub role: String,

    /// Ports the process listens on; its Service exposes them. The first is the one callers,
    /// the login proxy and the Ingress use.
    #[schemars(length(min = 1, max = 4))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<DefinedPort>,

    /// The HTTP endpoints the kubelet probes.
    pub health: Health,

    /// Environment of the container: plain values, keys of Secrets the site provides, or
    /// coordinates of the component's database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub settings: Vec<Setting>,

    /// A volume for its data: the pods run in a StatefulSet with one ReadWriteOnce claim, so at
    /// most one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<DefinedStorage>,

    /// Requests and limits of the `small`, `medium` and `large` presets a site chooses from.
    pub resources: DefinedPresets,

    /// What the image demands of its pod, as for the built-in components.
    pub contract: DefinedContract,

    /// Components of the built-in catalogue it calls; NetworkPolicies open exactly these edges,
    /// and a site that enables it must enable them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["component"]))]
    pub calls: Vec<Call>,

    /// Published on the site's Ingress, always behind the login proxy: absent means never
    /// published. A definition cannot publish a component without a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<DefinedExposure>,

    /// A PostgreSQL database: a site gives it one, external or through CloudNativePG, as for
    /// the built-in components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DefinedDatabase>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedPort {
    /// Port name, e.g. `http`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("a port name must be an IANA service name: lowercase letters, digits and inner '-', starting with a letter"))]
    #[schemars(length(min = 1, max = 15))]
    pub name: String,
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Path of the readiness endpoint, e.g. `/health`.
    #[x_kube(validation = Rule::new(r"self.startsWith('/') && !self.matches('\\s')").message("readinessPath must be an absolute URL path without spaces"))]
    #[schemars(length(min = 1, max = 253))]
    pub readiness_path: String,
    /// Path of the liveness endpoint; the readiness path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(r"self.startsWith('/') && !self.matches('\\s')").message("livenessPath must be an absolute URL path without spaces"))]
    #[schemars(length(min = 1, max = 253))]
    pub liveness_path: Option<String>,
    /// Name of the port the endpoints are served on; the first port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub port: Option<String>,
    /// How long the process may take to start before the kubelet restarts it.
    #[serde(default = "default_startup_seconds")]
    #[schemars(range(min = 10, max = 3600))]
    pub startup_seconds: i32,
}

pub fn default_startup_seconds() -> i32 {
    300
}

/// One environment variable: exactly one of `value`, `secretKeyRef` and `database`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.value) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) + (has(self.database) ? 1 : 0) == 1").message("a setting needs exactly one of value, secretKeyRef or database"))]
pub struct Setting {
    #[x_kube(validation = Rule::new(ENV_NAME_RULE).message("a setting name must be a C identifier such as XNAT_HOME"))]
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// A plain value. `$(MIRACOLIX_DB_HOST)`, `$(MIRACOLIX_DB_PORT)` and `$(MIRACOLIX_DB_NAME)`
    /// are expanded when the component has a database (e.g. a JDBC URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub value: Option<String>,
    /// A key of a Secret that each site creates in its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A coordinate of the component's database, from the Secret of its database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseField>,
}

/// A coordinate of a database, as the site's database Secret holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DatabaseField {
    Host,
    Port,
    Username,
    Password,
    Database,
}

impl DatabaseField {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseField::Host => "host",
            DatabaseField::Port => "port",
            DatabaseField::Username => "username",
            DatabaseField::Password => "password",
            DatabaseField::Database => "database",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedStorage {
    /// Where the volume is mounted, e.g. `/data/xnat`.
    #[x_kube(validation = Rule::new(PATH_RULE).message("mountPath must be an absolute path such as /data/xnat"))]
    #[schemars(length(min = 2, max = 253))]
    pub mount_path: String,
    /// Size of the volume when the site sets no `storage.size`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("defaultSize must be a positive Kubernetes quantity such as 50Gi"))]
    #[schemars(length(min = 1, max = 32))]
    pub default_size: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedPresets {
    pub small: PresetResources,
    pub medium: PresetResources,
    pub large: PresetResources,
}

/// One preset. The memory request equals the limit, as for the built-in components.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isQuantity(self.cpu) || !isQuantity(self.cpuLimit) || !quantity(self.cpuLimit).isLessThan(quantity(self.cpu))").field_path(".cpuLimit").message("cpuLimit must be at least cpu"))]
pub struct PresetResources {
    /// CPU request, e.g. `500m`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).sign() > 0").message("cpu must be a positive Kubernetes quantity such as 500m"))]
    #[schemars(length(min = 1, max = 32))]
    pub cpu: String,
    /// CPU limit, e.g. `2`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).sign() > 0").message("cpuLimit must be a positive Kubernetes quantity such as 2"))]
    #[schemars(length(min = 1, max = 32))]
    pub cpu_limit: String,
    /// Memory request and limit, e.g. `4Gi`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).sign() > 0 && !self.endsWith('m')").message("memory must be a positive Kubernetes quantity in Mi or Gi, such as 4Gi"))]
    #[schemars(length(min = 1, max = 32))]
    pub memory: String,
}

/// What the image demands of its pod: the same facts as a built-in component's
/// `catalog::contract::ImageContract`, each from the upstream source named in `source`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedContract {
    /// Where the facts come from: `repository@tag` of the image's source, e.g.
    /// `NrgXnat/xnat-docker-compose@v1.9.2.1`.
    #[schemars(length(min = 1, max = 200))]
    pub source: String,
    /// The numeric user the image runs as; never root (the restricted Pod Security profile).
    #[schemars(range(min = 1, max = 2147483647))]
    pub uid: i64,
    /// The group owning the image's writable directories; the pod's group and fsGroup.
    #[schemars(range(min = 0, max = 2147483647))]
    pub gid: i64,
    /// Directories the process writes: each is a volume under the read-only root filesystem
    /// (the storage volume where it lies below `storage.mountPath`, else an emptyDir).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub writable_paths: Vec<WritablePath>,
    /// Settings without which the process does not start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub required_settings: Vec<RequiredSetting>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WritablePath {
    #[x_kube(validation = Rule::new(PATH_RULE).message("path must be an absolute path such as /data/xnat/archive"))]
    #[schemars(length(min = 2, max = 253))]
    pub path: String,
    /// What the process does there.
    #[schemars(length(min = 1, max = 100))]
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredSetting {
    #[x_kube(validation = Rule::new(ENV_NAME_RULE).message("a setting name must be a C identifier such as XNAT_DATASOURCE_URL"))]
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// A credential: it must come from a Secret (a `secretKeyRef` or the database's Secret).
    #[serde(default)]
    pub secret: bool,
}

/// A component of the built-in catalogue the defined one calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Name of the built-in component, e.g. `blaze`.
    #[x_kube(validation = Rule::new(calls_builtin_rule()).message(Message::Message(calls_builtin_message())))]
    #[schemars(length(min = 1, max = 63))]
    pub component: String,
    /// Ports of its primary part that are called; its first port when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

/// Published under `path` on the site's Ingress, when the site sets `spec.ingress` and
/// `spec.auth.oidc`, and then only through the login proxy that runs next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedExposure {
    /// Path on the site's host, e.g. `/xnat`.
    #[x_kube(validation = Rule::new(PATH_RULE).message("path must be an absolute path such as /xnat"))]
    #[schemars(length(min = 2, max = 100))]
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedDatabase {
    /// The database engine; PostgreSQL is the one CloudNativePG runs.
    pub engine: DefinedEngine,
    /// Name of the database (and its owner) in a CloudNativePG cluster.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z_][a-z0-9_]*$')").message("database name must be a PostgreSQL identifier: lowercase letters, digits and '_'"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DefinedEngine {
    PostgreSQL,
}

/// A site's entry for a component its release defines: the name and the same knobs as a
/// built-in component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedComponentSpec {
    /// The name of a component in the release's `spec.componentDefinitions`.
    #[x_kube(validation = Rule::new(NAME_RULE).message("name must be the name of a component the release defines: a DNS label that starts with a letter"))]
    #[x_kube(validation = Rule::new(format!("!(self in {})", cel_list(&builtin_names()))).message(Message::Message(site_enables_builtin_message())))]
    #[schemars(length(min = 1, max = MAX_NAME_LEN))]
    pub name: String,
    #[serde(flatten)]
    pub spec: ComponentSpec,
}
