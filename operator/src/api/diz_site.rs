//! `DizSite`: one hospital's data integration centre.

// kube-derive's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Channel, LocalObjectRef, MaintenanceWindow, SecretKeyRef};

/// One hospital's DIZ: which components run, from which certified release, with what storage,
/// ingress and login.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "diz.miracum.org",
    version = "v1alpha1",
    kind = "DizSite",
    plural = "dizsites",
    shortname = "diz",
    category = "miracum",
    namespaced,
    status = "DizSiteStatus",
    // On the root, where `self.metadata.name` is visible: the site's name prefixes every object
    // the operator creates for it (see catalog::MAX_SITE_NAME_LEN).
    validation = Rule::new(format!("size(self.metadata.name) <= {}", crate::catalog::MAX_SITE_NAME_LEN)).message(Message::Message(format!("metadata.name must be at most {} characters: the site's objects are named <name>-<component>, and Kubernetes limits the length of those names", crate::catalog::MAX_SITE_NAME_LEN))),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must start with a lowercase letter and contain only lowercase letters, digits and '-' (no dots): it names the site's Services, which must be DNS labels"),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.siteId"),
    printcolumn(
        name = "Release",
        type_ = "string",
        json_path = ".status.currentRelease"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".status.targetRelease",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DizSiteSpec {
    /// The site's identifier in the consortium (e.g. `erlangen`). Immutable.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("siteId must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. erlangen)"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("siteId is immutable: it identifies the hospital across the consortium; create a new DizSite instead"))]
    #[schemars(length(min = 1, max = 63))]
    pub site_id: String,

    /// Human-readable name, e.g. `Universitätsklinikum Erlangen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// The certified release to run: a named ComponentRelease, or a channel to follow.
    pub release: ReleaseRef,

    /// Which components run and how.
    #[serde(default)]
    pub components: Components,

    /// Public entry point of the site's exposed components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Federated login for researchers and staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// When upgrades may happen. Without a window, a site upgrades as soon as its wave allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindow>,

    /// NetworkPolicies: default deny, allowing only the edges between components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// What happens to volumes and databases when the site is deleted. `Retain` (the default)
    /// keeps patient data; only `Delete` removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stop applying changes to this site; status still reports.
    #[serde(default)]
    pub paused: bool,

    /// Opt-in: push a signed, minimal report (release, component health, obfuscated Data Map
    /// counts) to the consortium hub on a schedule (docs/consortium.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting: Option<ReportingSpec>,
}

/// The FHIR resource types a site reports by default (issue 16, docs/consortium.md).
pub const DEFAULT_REPORT_TYPES: [&str; 8] = [
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationAdministration",
    "Specimen",
    "Consent",
];

/// Where and how often the site reports to the consortium hub. The operator renders a CronJob
/// that runs `miracolix-operator report` with the key mounted from `keySecretName`; the
/// operator itself never reads that Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportingSpec {
    /// The hub's base URL, e.g. `https://hub.miracum.org` (reports go to
    /// `<hubUrl>/api/v1/reports`).
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("reporting.hubUrl must be an https:// URL such as https://hub.miracum.org: the report leaves the hospital"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("reporting.hubUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub hub_url: String,

    /// Minutes between reports: a divisor of 60 from 5 up, or whole hours dividing 24
    /// (60, 120, 180, 240, 360, 480, 720, 1440). One report per site and period.
    #[serde(default = "default_interval")]
    #[x_kube(validation = Rule::new("self < 60 ? (self >= 5 && 60 % self == 0) : (self % 60 == 0 && 1440 % self == 0)").message("reporting.intervalMinutes must be 5, 6, 10, 12, 15, 20, 30 or a number of whole hours dividing 24 (60, 120, 180, 240, 360, 480, 720, 1440)"))]
    #[schemars(range(min = 5, max = 1440))]
    pub interval_minutes: i32,

    /// The Secret holding the site's report key (`private-key.pem`, `key-id`), as printed by
    /// `miracolix-operator report keygen`; default `<DizSite name>-report-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(super::rules::DNS_SUBDOMAIN).message("reporting.keySecretName must be the name of a Secret: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub key_secret_name: Option<String>,

    /// A Secret with `ca.crt`: the CA that signed the hub's certificate, when it is not one the
    /// image trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(super::rules::DNS_SUBDOMAIN).message("reporting.hubCASecretName must be the name of a Secret: lowercase letters, digits, '-' and '.'"))]
    #[serde(rename = "hubCASecretName")]
    #[schemars(length(min = 1, max = 253))]
    pub hub_ca_secret_name: Option<String>,

    /// FHIR resource types counted for the Data Map (`_summary=count` on the site's Blaze).
    #[serde(default = "default_report_types")]
    #[schemars(length(min = 1, max = 50), inner(length(min = 1, max = 64)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(t, t.matches('^[A-Z][A-Za-z]{0,63}$'))").message("reporting.resourceTypes must be FHIR resource type names such as Patient or MedicationAdministration"))]
    pub resource_types: Vec<String>,
}

fn default_interval() -> i32 {
    60
}

fn default_report_types() -> Vec<String> {
    DEFAULT_REPORT_TYPES.iter().map(|s| s.to_string()).collect()
}

impl ReportingSpec {
    /// The key Secret's name: the one set, else `<site>-report-key`.
    pub fn key_secret(&self, site_name: &str) -> String {
        self.key_secret_name
            .clone()
            .unwrap_or_else(|| format!("{site_name}-report-key"))
    }
}

/// Exactly one of `name` and `channel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.channel)").message("set exactly one of release.name (pin a ComponentRelease) or release.channel (follow a channel such as stable)"))]
pub struct ReleaseRef {
    /// Name of a ComponentRelease to pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(super::rules::DNS_SUBDOMAIN).message("release.name must be the name of a ComponentRelease: lowercase letters, digits, '-' and '.', such as miracolix-2026.1"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Channel to follow: the site moves to the newest certified release on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep PersistentVolumeClaims and database clusters when the site is deleted.
    #[default]
    Retain,
    /// Delete them too. Patient data is lost.
    Delete,
}

/// Every component a site can run. Absent means disabled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::component_rules::add)]
pub struct Components {
    /// Blaze FHIR server: the site's clinical data store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blaze: Option<ComponentSpec>,
    /// fhir-pseudonymizer: pseudonymises FHIR resources through VFPS or gPAS, with the keys
    /// from a Secret the site names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_pseudonymizer: Option<ComponentWith<crate::catalog::fhir_pseudonymizer::Settings>>,
    /// VFPS: the very fast pseudonym service (needs PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vfps: Option<ComponentSpec>,
    /// gPAS: Greifswald pseudonym administration (needs an external MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpas: Option<ComponentSpec>,
    /// gICS: Greifswald consent management (needs an external MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gics: Option<ComponentSpec>,
    /// fhir-gateway: receives, pseudonymises and forwards FHIR resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_gateway: Option<ComponentSpec>,
    /// Mainzelliste: patient identity management (needs PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mainzelliste: Option<ComponentWith<crate::catalog::mainzelliste::Settings>>,
    /// OHDSI WebAPI and Atlas, with Achilles as a scheduled job (needs PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ohdsi: Option<ComponentSpec>,
    /// i2b2 web client and core server (needs PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i2b2: Option<ComponentSpec>,
    /// FLARE: executes feasibility queries against the FHIR server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flare: Option<ComponentSpec>,
    /// TORCH: extracts data for approved projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<ComponentSpec>,
    /// MIRACUM data quality assessment (Shiny app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dqa: Option<ComponentSpec>,
    /// Components the site's release defines beyond the built-in catalogue
    /// (`spec.componentDefinitions` of the ComponentRelease), by name, with the same knobs as the
    /// built-in ones. A name the release does not define stalls the site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::component_definition::MAX_DEFINITIONS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub from_release: Vec<super::ReleasedComponentSpec>,
}

/// How one component runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Run the component. Listing a component enables it unless this is `false`.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Number of replicas; the catalogue's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub replicas: Option<i32>,

    /// Resource preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcePreset>,

    /// Exact requests and limits, overriding the preset field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_overrides: Option<ResourceOverrides>,

    /// Persistent storage, for components that keep data on a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Database, for components that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Extra environment variables, for settings the operator does not model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<ExtraEnv>,
}

fn default_true() -> bool {
    true
}

/// A component's spec with settings of its own: the shared knobs of [`ComponentSpec`] and the
/// component's settings (a type in the component's catalogue module), side by side in one
/// object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentWith<S> {
    #[serde(flatten)]
    pub common: ComponentSpec,
    #[serde(flatten)]
    pub settings: S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourcePreset {
    Small,
    Medium,
    Large,
}

/// Requests and limits that replace the preset's values where set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(limit_at_least_request("cpu")).field_path(".limits.cpu").message("limits.cpu must be at least requests.cpu: a container cannot be promised more CPU than it may use"))]
#[x_kube(validation = Rule::new(limit_at_least_request("memory")).field_path(".limits.memory").message("limits.memory must be at least requests.memory: a container cannot be promised more memory than it may use"))]
pub struct ResourceOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMemory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMemory>,
}

/// Both set, both quantities, and the limit not below the request. Where the preset supplies
/// one side, the catalogue compares them when it builds the pod.
fn limit_at_least_request(resource: &str) -> String {
    let (req, lim) = (
        format!("self.requests.{resource}"),
        format!("self.limits.{resource}"),
    );
    format!(
        "!has(self.requests) || self.requests == null || !has(self.limits) || self.limits == null \
         || !has({req}) || !has({lim}) || !isQuantity({req}) || !isQuantity({lim}) \
         || !quantity({lim}).isLessThan(quantity({req}))"
    )
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuMemory {
    /// CPU, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("cpu must be a Kubernetes quantity such as 500m or 2"))]
    #[x_kube(validation = Rule::new("!isQuantity(self) || quantity(self).sign() >= 0").message("cpu must not be negative"))]
    #[schemars(length(min = 1, max = 32))]
    pub cpu: Option<String>,
    /// Memory, e.g. `512Mi` or `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("memory must be a Kubernetes quantity such as 512Mi or 8Gi"))]
    #[x_kube(validation = Rule::new("!isQuantity(self) || quantity(self).sign() >= 0").message("memory must not be negative"))]
    #[x_kube(validation = Rule::new("!self.endsWith('m')").message("memory in 'm' is millibytes (512m is half a byte): write Mi or Gi, e.g. 512Mi"))]
    #[schemars(length(min = 1, max = 32))]
    pub memory: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size, e.g. `8Gi`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("size must be a positive Kubernetes quantity such as 8Gi or 500Mi"))]
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// StorageClass; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// Exactly one of `external` and `cloudNativePG`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.external) != has(self.cloudNativePG)").message("set exactly one of database.external (an existing server, credentials in a Secret) or database.cloudNativePG (a cluster managed by CloudNativePG)"))]
pub struct DatabaseSpec {
    /// An existing database server. The Secret holds `host`, `port`, `username`, `password` and
    /// `database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<LocalObjectRef>,
    /// A PostgreSQL cluster the operator creates through CloudNativePG.
    #[serde(
        default,
        rename = "cloudNativePG",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgSpec {
    /// PostgreSQL instances (1 primary + replicas).
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 5))]
    pub instances: i32,
    /// Volume size per instance.
    #[serde(default = "default_db_size")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storageSize must be a positive Kubernetes quantity such as 10Gi"))]
    #[schemars(length(min = 1, max = 32))]
    pub storage_size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

fn default_instances() -> i32 {
    1
}

fn default_db_size() -> String {
    "10Gi".to_string()
}

/// An environment variable: a plain value or a reference to a Secret key, never both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.secretKeyRef)").message("an env entry needs exactly one of value or secretKeyRef; put secrets in a Secret and reference them"))]
pub struct ExtraEnv {
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')").message("env name must be a C identifier such as JAVA_OPTS"))]
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Public host name, e.g. `diz.uk-erlangen.de`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')").message("host must be a fully qualified DNS name such as diz.uk-erlangen.de"))]
    #[schemars(length(min = 3, max = 253))]
    pub host: String,
    /// IngressClass; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// TLS. Patient-facing services are served over TLS only.
    pub tls: IngressTls,
}

/// Exactly one of `secretName` (a certificate you manage) and `issuerRef` (cert-manager).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.issuerRef)").message("set exactly one of tls.secretName (an existing certificate Secret) or tls.issuerRef (a cert-manager issuer)"))]
pub struct IngressTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default)]
    pub kind: IssuerKind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IssuerKind {
    Issuer,
    #[default]
    ClusterIssuer,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// OpenID Connect provider for federated login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcSpec {
    /// Issuer URL, e.g. `https://login.uk-erlangen.de/realms/diz`.
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("issuerUrl must be an https:// URL"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("issuerUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[x_kube(validation = Rule::new("!self.contains('/.well-known/')").message("issuerUrl is the issuer itself, not its discovery document: remove /.well-known/openid-configuration (e.g. https://login.uk-erlangen.de/realms/diz)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub issuer_url: String,
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// Client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// The cookie secret of the login proxy (oauth2-proxy) that the operator puts in front of
    /// components without a login of their own (their exposure in docs/components.md) when they
    /// are published: a Secret key
    /// holding 16, 24 or 32 random bytes, raw or base64 (e.g. `openssl rand -base64 32 | tr -d
    /// '\n' | tr -- '+/' '-_'`). Required, with `clientSecretRef`, when such a component is
    /// published on `spec.ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_secret_ref: Option<SecretKeyRef>,
}

// Not `Eq`: k8s-openapi's LabelSelector is not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create NetworkPolicies for the site.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Labels of the namespace the ingress controller runs in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20))]
    pub ingress_namespace_labels: BTreeMap<String, String>,
    /// Namespaces, besides the site's own, whose pods may reach the site's entry points (the
    /// FHIR gateway, Blaze, …) by carrying the access label `diz.miracum.org/access-<part>:
    /// "true"`: one namespace label selector each, e.g. `{matchLabels:
    /// {kubernetes.io/metadata.name: etl}}`. A pod with the label in any other namespace is not
    /// admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(s, (has(s.matchLabels) && size(s.matchLabels) > 0) || (has(s.matchExpressions) && size(s.matchExpressions) > 0))").message("every clientNamespaces entry must select by matchLabels or matchExpressions: an empty selector would admit pods from every namespace"))]
    pub client_namespaces: Vec<LabelSelector>,
    /// Labels of the namespace CloudNativePG's operator runs in (default
    /// `kubernetes.io/metadata.name: cnpg-system`): its pods may reach the site's database pods
    /// on the instance manager's port 8000 and on PostgreSQL's 5432.
    #[serde(
        default,
        rename = "cloudNativePGOperatorNamespaceLabels",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    #[schemars(extend("maxProperties" = 20))]
    pub cloud_native_pg_operator_namespace_labels: BTreeMap<String, String>,
    /// Where the OIDC issuer is: the CIDRs (e.g. `10.20.0.15/32`) the parts that talk to it may
    /// reach on 443. Empty: any address, which the `NetworkRestricted` condition reports.
    #[serde(
        default,
        rename = "oidcIssuerCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("oidcIssuerCIDRs must be CIDRs such as 10.20.0.15/32"))]
    pub oidc_issuer_cidrs: Vec<String>,
    /// Where the external database servers are (`database.external`): the CIDRs the components
    /// may reach on the engine's port. Empty: any address, which the `NetworkRestricted`
    /// condition reports.
    #[serde(
        default,
        rename = "externalDatabaseCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("externalDatabaseCIDRs must be CIDRs such as 10.20.0.0/24"))]
    pub external_database_cidrs: Vec<String>,
    /// Where the consortium hub is (`spec.reporting`): the CIDRs (the hub's, or the proxy's the
    /// hospital sends outbound HTTPS through) the reporter may reach on the hub's port. Empty:
    /// any address, which the `NetworkRestricted` condition reports.
    #[serde(default, rename = "hubCIDRs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("hubCIDRs must be CIDRs such as 192.0.2.10/32"))]
    pub hub_cidrs: Vec<String>,
    /// Where the Kubernetes API server's endpoints are (the control plane's addresses after the
    /// `kubernetes` Service's DNAT): the reporter reads its own DizSite there on 443 and 6443.
    /// Empty: any address, which the `NetworkRestricted` condition reports.
    #[serde(
        default,
        rename = "apiServerCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("apiServerCIDRs must be CIDRs such as 10.0.0.0/24"))]
    pub api_server_cidrs: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DizSiteStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The certified release the site runs. A report: the operator re-derives what runs from
    /// its rollout record (ConfigMap `<site>-rollout`) and the signed releases, never from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_release: Option<String>,
    /// The release the site is moving to, when different from the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_release: Option<String>,
    /// The release that ran before the upgrade in progress: where a failed upgrade returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    /// SHA-256 of the signed content of `currentRelease`: what runs is identified by its
    /// content, not its name (a release recreated under the same name is another release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_release_fingerprint: Option<String>,
    /// SHA-256 of the signed content of `targetRelease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_release_fingerprint: Option<String>,
    /// SHA-256 of the signed content of `previousRelease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release_fingerprint: Option<String>,
    /// When the upgrade to `targetRelease` started; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_started_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Releases rolled back on this site. Not tried again until their content changes or the
    /// annotation `diz.miracum.org/retry-release: <name>` asks for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub failed_releases: Vec<FailedReleaseStatus>,
    /// Per component: enabled, image running, replicas ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub components: Vec<ComponentStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedReleaseStatus {
    /// Name of the ComponentRelease.
    pub name: String,
    /// SHA-256 of the release's canonical content when it failed.
    pub fingerprint: String,
    /// Why it was rolled back.
    pub reason: String,
    /// When it was rolled back.
    pub at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub enabled: bool,
    /// Image reference running, `repository@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
}
