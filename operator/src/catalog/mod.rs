//! The component catalogue: how each DIZ component is deployed.
//!
//! Pure functions from a validated [`SiteInput`] to the complete set of desired child objects; no
//! API client. One module per component, so "how is the FHIR server deployed" is answered by
//! `catalog/blaze.rs` alone. Shared pod rules (security, probes, labels, resources) live in
//! [`pod`], the site-wide objects in [`network_policy`] and [`ingress`], database wiring in
//! [`database`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{ApiResource, DynamicObject};

use crate::api::{ComponentImage, ComponentSpec, Components, DizSiteSpec, OidcSpec};

mod blaze;
pub mod database;
mod dqa;
mod fhir_gateway;
mod fhir_pseudonymizer;
mod flare;
mod gics;
mod gpas;
mod i2b2;
pub mod ingress;
mod mainzelliste;
pub mod network_policy;
mod ohdsi;
pub mod pod;
mod torch;
mod vfps;

pub const FIELD_MANAGER: &str = "miracolix-operator";
/// Value: the DizSite's `metadata.name`.
pub const SITE_LABEL: &str = "diz.miracum.org/site";
/// Value: [`Component::name`].
pub const COMPONENT_LABEL: &str = "diz.miracum.org/component";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "miracolix-operator");
/// `app.kubernetes.io/part-of` on every object.
pub const PART_OF: &str = "miracolix";

/// Object names are `<site>-<part>`; the longest suffix (`-fhir-pseudonymizer`, or a CNPG
/// cluster's `-fhir-gateway-db-rw` Service) plus this limit stays within the 52 characters a
/// StatefulSet or CronJob name may have (their pods and jobs append a hash).
pub const MAX_SITE_NAME_LEN: usize = 30;

/// Upstream images that cannot run under the restricted Pod Security profile as published, and
/// what the catalogue does instead. Rendered into the docs; each entry is explained next to the
/// code that applies it.
pub const SECURITY_EXCEPTIONS: &[(&str, &str)] = &[
    (Component::Gpas.name(), gpas::SECURITY_EXCEPTION),
    (Component::Gics.name(), gics::SECURITY_EXCEPTION),
    (Component::I2b2.name(), i2b2::SECURITY_EXCEPTION_WEBCLIENT),
    (Component::I2b2.name(), i2b2::SECURITY_EXCEPTION_CORE_SERVER),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Blaze,
    FhirPseudonymizer,
    Vfps,
    Gpas,
    Gics,
    FhirGateway,
    Mainzelliste,
    Ohdsi,
    I2b2,
    Flare,
    Torch,
    Dqa,
}

/// Which database engine a component speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbEngine {
    PostgreSql,
    MySql,
}

impl DbEngine {
    /// The port a NetworkPolicy opens towards an external server of this engine: the real port is
    /// in the site's Secret, which the catalogue never reads.
    pub fn default_port(self) -> i32 {
        match self {
            DbEngine::PostgreSql => 5432,
            DbEngine::MySql => 3306,
        }
    }
}

/// Whether and which database a component needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseNeed {
    None,
    Optional(DbEngine),
    Required(DbEngine),
}

/// A named container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub port: i32,
}

pub(crate) const HTTP_8080: Port = Port {
    name: "http",
    port: 8080,
};
pub(crate) const METRICS_8081: Port = Port {
    name: "metrics",
    port: 8081,
};

/// One workload of a component. Most components have one; OHDSI and i2b2 have several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Suffix of the object names and `app.kubernetes.io/name`, e.g. `ohdsi-webapi`.
    pub name: &'static str,
    /// `app.kubernetes.io/component`: the part's role.
    pub role: &'static str,
    /// Release image key.
    pub image: &'static str,
    /// Ports its Service exposes; empty for jobs.
    pub ports: &'static [Port],
    /// Ingress path when the site has an ingress (see [`ingress`] for why which are exposed).
    pub exposed_path: Option<&'static str>,
    /// Talks to the component's database.
    pub uses_database: bool,
    /// Talks to the OIDC issuer when `spec.auth.oidc` is set.
    pub uses_oidc: bool,
}

impl Component {
    pub const ALL: [Component; 12] = [
        Component::Blaze,
        Component::FhirPseudonymizer,
        Component::Vfps,
        Component::Gpas,
        Component::Gics,
        Component::FhirGateway,
        Component::Mainzelliste,
        Component::Ohdsi,
        Component::I2b2,
        Component::Flare,
        Component::Torch,
        Component::Dqa,
    ];

    /// Kebab-case name used in labels and object names.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Blaze => "blaze",
            Component::FhirPseudonymizer => "fhir-pseudonymizer",
            Component::Vfps => "vfps",
            Component::Gpas => "gpas",
            Component::Gics => "gics",
            Component::FhirGateway => "fhir-gateway",
            Component::Mainzelliste => "mainzelliste",
            Component::Ohdsi => "ohdsi",
            Component::I2b2 => "i2b2",
            Component::Flare => "flare",
            Component::Torch => "torch",
            Component::Dqa => "dqa",
        }
    }

    /// The field under `spec.components`.
    pub const fn field(self) -> &'static str {
        match self {
            Component::Blaze => "blaze",
            Component::FhirPseudonymizer => "fhirPseudonymizer",
            Component::Vfps => "vfps",
            Component::Gpas => "gpas",
            Component::Gics => "gics",
            Component::FhirGateway => "fhirGateway",
            Component::Mainzelliste => "mainzelliste",
            Component::Ohdsi => "ohdsi",
            Component::I2b2 => "i2b2",
            Component::Flare => "flare",
            Component::Torch => "torch",
            Component::Dqa => "dqa",
        }
    }

    /// What the component is, in words a site admin recognises.
    pub const fn description(self) -> &'static str {
        match self {
            Component::Blaze => "the FHIR server",
            Component::FhirPseudonymizer => "the FHIR pseudonymizer",
            Component::Vfps => "the VFPS pseudonym service",
            Component::Gpas => "the gPAS pseudonym service",
            Component::Gics => "the gICS consent service",
            Component::FhirGateway => "the FHIR gateway",
            Component::Mainzelliste => "the Mainzelliste identity management",
            Component::Ohdsi => "OHDSI WebAPI and Atlas",
            Component::I2b2 => "i2b2",
            Component::Flare => "the FLARE feasibility executor",
            Component::Torch => "the TORCH data extraction",
            Component::Dqa => "the data quality assessment",
        }
    }

    pub fn spec(self, c: &Components) -> Option<&ComponentSpec> {
        match self {
            Component::Blaze => c.blaze.as_ref(),
            Component::FhirPseudonymizer => c.fhir_pseudonymizer.as_ref(),
            Component::Vfps => c.vfps.as_ref(),
            Component::Gpas => c.gpas.as_ref(),
            Component::Gics => c.gics.as_ref(),
            Component::FhirGateway => c.fhir_gateway.as_ref(),
            Component::Mainzelliste => c.mainzelliste.as_ref(),
            Component::Ohdsi => c.ohdsi.as_ref(),
            Component::I2b2 => c.i2b2.as_ref(),
            Component::Flare => c.flare.as_ref(),
            Component::Torch => c.torch.as_ref(),
            Component::Dqa => c.dqa.as_ref(),
        }
    }

    /// Present and not `enabled: false`.
    pub fn enabled(self, c: &Components) -> bool {
        self.spec(c).is_some_and(|s| s.enabled)
    }

    /// The release image keys this component runs (all in [`crate::api::IMAGE_KEYS`]).
    pub fn images(self) -> &'static [&'static str] {
        match self {
            Component::Ohdsi => &["ohdsi-webapi", "ohdsi-atlas", "ohdsi-achilles"],
            Component::I2b2 => &["i2b2-webclient", "i2b2-core-server"],
            other => match other.parts() {
                [p] => std::slice::from_ref(&p.image),
                _ => &[],
            },
        }
    }

    /// The component's workloads; the first is the primary one, which receives
    /// `resourceOverrides` and the extra `env`.
    pub fn parts(self) -> &'static [Part] {
        match self {
            Component::Blaze => &blaze::PARTS,
            Component::FhirPseudonymizer => &fhir_pseudonymizer::PARTS,
            Component::Vfps => &vfps::PARTS,
            Component::Gpas => &gpas::PARTS,
            Component::Gics => &gics::PARTS,
            Component::FhirGateway => &fhir_gateway::PARTS,
            Component::Mainzelliste => &mainzelliste::PARTS,
            Component::Ohdsi => &ohdsi::PARTS,
            Component::I2b2 => &i2b2::PARTS,
            Component::Flare => &flare::PARTS,
            Component::Torch => &torch::PARTS,
            Component::Dqa => &dqa::PARTS,
        }
    }

    pub fn database_need(self) -> DatabaseNeed {
        use DbEngine::*;
        match self {
            Component::Vfps | Component::Mainzelliste | Component::Ohdsi | Component::I2b2 => {
                DatabaseNeed::Required(PostgreSql)
            }
            Component::Gpas | Component::Gics => DatabaseNeed::Required(MySql),
            Component::FhirGateway => DatabaseNeed::Optional(PostgreSql),
            Component::Blaze
            | Component::FhirPseudonymizer
            | Component::Flare
            | Component::Torch
            | Component::Dqa => DatabaseNeed::None,
        }
    }

    /// Whether the component keeps data on a volume (so `storage` applies).
    pub fn uses_storage(self) -> bool {
        matches!(self, Component::Blaze | Component::Torch)
    }

    /// The most replicas that are safe: Blaze and TORCH keep data on a ReadWriteOnce volume and
    /// Mainzelliste keeps sessions and tokens in memory, so a second replica would split state.
    pub fn max_replicas(self) -> Option<i32> {
        match self {
            Component::Blaze | Component::Torch | Component::Mainzelliste => Some(1),
            _ => None,
        }
    }

    /// What this component needs from other components, resolved against the spec: for each need
    /// the alternatives in order of preference and the one chosen (the first enabled).
    pub fn dependencies(self, spec: &DizSiteSpec) -> Vec<Dependency> {
        let c = &spec.components;
        let one_of =
            |options: &[Component], purpose: &'static str, access: fn(Component) -> Access| {
                let chosen = options.iter().copied().find(|o| o.enabled(c));
                Dependency {
                    one_of: options.to_vec(),
                    chosen,
                    purpose,
                    access: access(chosen.unwrap_or(options[0])),
                }
            };
        match self {
            Component::FhirPseudonymizer => vec![one_of(
                &[Component::Vfps, Component::Gpas],
                "a pseudonym service",
                |c| match c {
                    Component::Vfps => Access::Service {
                        part: "vfps",
                        ports: &[8080, 8081],
                    },
                    _ => Access::Service {
                        part: "gpas",
                        ports: &[8080],
                    },
                },
            )],
            Component::FhirGateway => vec![
                one_of(
                    &[Component::FhirPseudonymizer],
                    "the FHIR pseudonymizer",
                    |_| Access::Service {
                        part: "fhir-pseudonymizer",
                        ports: &[8080],
                    },
                ),
                one_of(&[Component::Blaze], "the FHIR server", blaze_access),
            ],
            Component::Flare => vec![one_of(&[Component::Blaze], "the FHIR server", blaze_access)],
            Component::Torch => vec![
                one_of(&[Component::Blaze], "the FHIR server", blaze_access),
                one_of(
                    &[Component::Flare],
                    "the FLARE feasibility executor",
                    |_| Access::Service {
                        part: "flare",
                        ports: &[8080],
                    },
                ),
            ],
            // DQA reads a database directly. i2b2's is preferred: it holds the same data in the
            // star schema DQA was written for; the gateway's staging database is the fallback
            // for sites without i2b2.
            Component::Dqa => vec![one_of(
                &[Component::I2b2, Component::FhirGateway],
                "a database to assess (i2b2 or the FHIR gateway's)",
                |_| Access::Database,
            )],
            Component::Blaze
            | Component::Vfps
            | Component::Gpas
            | Component::Gics
            | Component::Mainzelliste
            | Component::Ohdsi
            | Component::I2b2 => Vec::new(),
        }
    }
}

fn blaze_access(_: Component) -> Access {
    Access::Service {
        part: "blaze",
        ports: &[8080],
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing a component needs from another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// Components that satisfy the need, in order of preference.
    pub one_of: Vec<Component>,
    /// The first of `one_of` that is enabled; `None` makes the site undeployable.
    pub chosen: Option<Component>,
    /// What is needed, in words: `the FHIR server`.
    pub purpose: &'static str,
    /// How it is reached (of `chosen`, or of the first option when none is enabled).
    pub access: Access,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Over HTTP/gRPC to a part's Service on these ports.
    Service {
        part: &'static str,
        ports: &'static [i32],
    },
    /// Directly to the other component's database.
    Database,
}

/// What the release resolved to, images by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRelease {
    pub name: String,
    pub version: String,
    pub images: BTreeMap<String, ComponentImage>,
}

#[derive(Clone, Copy, Debug)]
pub struct SiteInput<'a> {
    /// Of the DizSite, for object names and ownerReferences.
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub spec: &'a DizSiteSpec,
    pub release: &'a ResolvedRelease,
    /// Whether the CloudNativePG `postgresql.cnpg.io/v1 Cluster` CRD exists in the cluster.
    pub cnpg_available: bool,
}

/// One desired child object, ready for server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub resource: ApiResource,
    pub object: DynamicObject,
    pub component: Option<Component>,
}

impl Child {
    pub fn from_typed<K>(obj: K, component: Option<Component>) -> Result<Child, CatalogError>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let value =
            serde_json::to_value(&obj).map_err(|e| CatalogError::Serialize(e.to_string()))?;
        let mut object: DynamicObject =
            serde_json::from_value(value).map_err(|e| CatalogError::Serialize(e.to_string()))?;
        // k8s-openapi only writes apiVersion/kind when serialising a whole object, but make sure:
        // server-side apply refuses a body without them.
        object.types = Some(kube::core::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        Ok(Child {
            resource,
            object,
            component,
        })
    }

    /// (apiVersion, kind, name): unique among the children of a site.
    pub fn key(&self) -> (String, String, String) {
        (
            self.resource.api_version.clone(),
            self.resource.kind.clone(),
            self.object.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// Whether the child carries an ownerReference (false for volumes and database clusters).
    pub fn is_owned(&self) -> bool {
        self.object
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty())
    }
}

/// Every reason a site spec cannot be deployed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CatalogError {
    #[error("spec.components.{field} needs {}, which is disabled", needs_text(.one_of))]
    DependencyDisabled {
        component: Component,
        field: &'static str,
        one_of: Vec<Component>,
    },
    #[error(
        "spec.components.{field} needs the image '{key}', which release {release} does not contain; choose a release that provides it or disable the component"
    )]
    ImageMissing {
        component: Component,
        field: &'static str,
        key: String,
        release: String,
    },
    #[error(
        "spec.components.{field} needs a {engine} database: set spec.components.{field}.database.external (a Secret with host, port, username, password, database){cnpg_hint}"
    )]
    DatabaseRequired {
        component: Component,
        field: &'static str,
        engine: &'static str,
        cnpg_hint: &'static str,
    },
    #[error("spec.components.{field}.database{detail}")]
    DatabaseNotSupported {
        component: Component,
        field: &'static str,
        detail: String,
    },
    #[error(
        "spec.components.{field}.database.cloudNativePG is set, but CloudNativePG is not installed in this cluster (no postgresql.cnpg.io/v1 Cluster CRD): install the CloudNativePG operator or use spec.components.{field}.database.external"
    )]
    CloudNativePgUnavailable {
        component: Component,
        field: &'static str,
    },
    #[error(
        "spec.components.{field}.env sets {name}, which the operator sets itself for this component; remove it from env (the operator value is derived from the rest of the spec)"
    )]
    EnvCollision {
        component: Component,
        field: &'static str,
        name: String,
    },
    #[error(
        "spec.components.{field}.replicas is {replicas}, but {field} supports at most {max} replica: {why}"
    )]
    TooManyReplicas {
        component: Component,
        field: &'static str,
        replicas: i32,
        max: i32,
        why: &'static str,
    },
    #[error(
        "spec.components.{field}.storage is set, but {field} keeps no data on a volume; remove it"
    )]
    StorageNotSupported {
        component: Component,
        field: &'static str,
    },
    #[error(
        "the DizSite name '{name}' cannot name its objects: {why} (child objects are called <name>-<component>)"
    )]
    InvalidSiteName { name: String, why: String },
    #[error("cannot convert a child object: {0}")]
    Serialize(String),
}

fn needs_text(one_of: &[Component]) -> String {
    one_of
        .iter()
        .map(|c| format!("spec.components.{} ({})", c.field(), c.description()))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl CatalogError {
    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            CatalogError::DependencyDisabled { .. } => "DependencyDisabled",
            CatalogError::ImageMissing { .. } => "ImageMissing",
            CatalogError::DatabaseRequired { .. } => "DatabaseRequired",
            CatalogError::DatabaseNotSupported { .. } => "DatabaseNotSupported",
            CatalogError::CloudNativePgUnavailable { .. } => "CloudNativePgUnavailable",
            CatalogError::EnvCollision { .. } => "EnvCollision",
            CatalogError::TooManyReplicas { .. } => "TooManyReplicas",
            CatalogError::StorageNotSupported { .. } => "StorageNotSupported",
            CatalogError::InvalidSiteName { .. } => "InvalidSiteName",
            CatalogError::Serialize(_) => "SerializationFailed",
        }
    }

    /// The component the problem is about, if any.
    pub fn component(&self) -> Option<Component> {
        match self {
            CatalogError::DependencyDisabled { component, .. }
            | CatalogError::ImageMissing { component, .. }
            | CatalogError::DatabaseRequired { component, .. }
            | CatalogError::DatabaseNotSupported { component, .. }
            | CatalogError::CloudNativePgUnavailable { component, .. }
            | CatalogError::EnvCollision { component, .. }
            | CatalogError::TooManyReplicas { component, .. }
            | CatalogError::StorageNotSupported { component, .. } => Some(*component),
            CatalogError::InvalidSiteName { .. } | CatalogError::Serialize(_) => None,
        }
    }
}

/// The image reference a pod runs: by digest only, so a moved tag can never change what runs.
pub fn image_ref(img: &ComponentImage) -> String {
    format!("{}@{}", img.repository, img.digest)
}

/// Every problem of the spec at once.
pub fn validate(input: &SiteInput) -> Result<(), Vec<CatalogError>> {
    let (_, errors) = check_and_build(input);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// All children of every enabled component, then the NetworkPolicies and the Ingress, in a
/// deterministic order (components in [`Component::ALL`] order; within one, databases and
/// volumes before the workloads that mount them).
pub fn build(input: &SiteInput) -> Result<Vec<Child>, Vec<CatalogError>> {
    let (children, errors) = check_and_build(input);
    if errors.is_empty() {
        Ok(children)
    } else {
        Err(errors)
    }
}

/// Components enabled in the spec, in [`Component::ALL`] order.
pub fn enabled_components(spec: &DizSiteSpec) -> Vec<Component> {
    Component::ALL
        .into_iter()
        .filter(|c| c.enabled(&spec.components))
        .collect()
}

fn check_and_build(input: &SiteInput) -> (Vec<Child>, Vec<CatalogError>) {
    let mut errors = Vec::new();
    if let Err(e) = check_site_name(input.name) {
        // Every object name derives from the site name; building would only add noise.
        return (Vec::new(), vec![e]);
    }
    let mut children = Vec::new();
    for component in enabled_components(input.spec) {
        let Some(spec) = component.spec(&input.spec.components) else {
            continue;
        };
        let problems = check_component(input, component, spec);
        // A missing dependency does not stop us from building (the URL is known by name), so
        // env collisions of the same component are still reported in the same pass.
        let blocking = problems
            .iter()
            .any(|e| !matches!(e, CatalogError::DependencyDisabled { .. }));
        errors.extend(problems);
        if blocking {
            continue;
        }
        let ctx = Ctx {
            site: input,
            component,
            spec,
        };
        match build_component(&ctx) {
            Ok(c) => children.extend(c),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        match network_policy::build(input) {
            Ok(c) => children.extend(c),
            Err(e) => errors.push(e),
        }
        match ingress::build(input) {
            Ok(c) => children.extend(c),
            Err(e) => errors.push(e),
        }
    }
    (children, errors)
}

fn build_component(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    match ctx.component {
        Component::Blaze => blaze::build(ctx),
        Component::FhirPseudonymizer => fhir_pseudonymizer::build(ctx),
        Component::Vfps => vfps::build(ctx),
        Component::Gpas => gpas::build(ctx),
        Component::Gics => gics::build(ctx),
        Component::FhirGateway => fhir_gateway::build(ctx),
        Component::Mainzelliste => mainzelliste::build(ctx),
        Component::Ohdsi => ohdsi::build(ctx),
        Component::I2b2 => i2b2::build(ctx),
        Component::Flare => flare::build(ctx),
        Component::Torch => torch::build(ctx),
        Component::Dqa => dqa::build(ctx),
    }
}

fn check_site_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |why: String| CatalogError::InvalidSiteName {
        name: name.to_string(),
        why,
    };
    if name.len() > MAX_SITE_NAME_LEN {
        return Err(invalid(format!(
            "it has {} characters, at most {MAX_SITE_NAME_LEN} are allowed",
            name.len()
        )));
    }
    // Service names must be DNS-1035 labels: a letter first, no dots.
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !rest_ok || name.ends_with('-') {
        return Err(invalid(
            "it must start with a lowercase letter and contain only lowercase letters, digits and '-'"
                .to_string(),
        ));
    }
    Ok(())
}

/// Spec-level checks of one enabled component; building needs none of them to fail except
/// possibly [`CatalogError::DependencyDisabled`].
fn check_component(
    input: &SiteInput,
    component: Component,
    spec: &ComponentSpec,
) -> Vec<CatalogError> {
    let field = component.field();
    let mut errors = Vec::new();
    for dep in component.dependencies(input.spec) {
        if dep.chosen.is_none() {
            errors.push(CatalogError::DependencyDisabled {
                component,
                field,
                one_of: dep.one_of.clone(),
            });
        }
    }
    // DQA reading the gateway's database needs the gateway to have one.
    if component == Component::Dqa
        && !Component::I2b2.enabled(&input.spec.components)
        && Component::FhirGateway.enabled(&input.spec.components)
        && input
            .spec
            .components
            .fhir_gateway
            .as_ref()
            .and_then(|g| g.database.as_ref())
            .is_none()
    {
        errors.push(CatalogError::DatabaseRequired {
            component: Component::FhirGateway,
            field: Component::FhirGateway.field(),
            engine: "PostgreSQL",
            cnpg_hint: " or .cloudNativePG; spec.components.dqa reads the FHIR gateway's database when i2b2 is disabled",
        });
    }
    for key in component.images() {
        if !input.release.images.contains_key(*key) {
            errors.push(CatalogError::ImageMissing {
                component,
                field,
                key: (*key).to_string(),
                release: input.release.name.clone(),
            });
        }
    }
    errors.extend(database::check(input, component, spec));
    if let (Some(max), Some(replicas)) = (component.max_replicas(), spec.replicas)
        && replicas > max
    {
        errors.push(CatalogError::TooManyReplicas {
            component,
            field,
            replicas,
            max,
            why: match component {
                Component::Mainzelliste => "it keeps sessions and tokens in memory",
                _ => "its data lives on one ReadWriteOnce volume",
            },
        });
    }
    if spec.storage.is_some() && !component.uses_storage() {
        errors.push(CatalogError::StorageNotSupported { component, field });
    }
    errors
}

/// What a component builder sees: the site, and the component with its spec.
pub(crate) struct Ctx<'a> {
    pub site: &'a SiteInput<'a>,
    pub component: Component,
    pub spec: &'a ComponentSpec,
}

impl Ctx<'_> {
    pub fn object_name(&self, part: &str) -> String {
        format!("{}-{}", self.site.name, part)
    }

    /// In-cluster URL of another part's Service.
    pub fn url(&self, part: &str, port: i32) -> String {
        format!("http://{}-{}:{}", self.site.name, part, port)
    }

    pub fn image(&self, key: &str) -> Result<&ComponentImage, CatalogError> {
        self.site
            .release
            .images
            .get(key)
            .ok_or_else(|| CatalogError::ImageMissing {
                component: self.component,
                field: self.component.field(),
                key: key.to_string(),
                release: self.site.release.name.clone(),
            })
    }

    pub fn oidc(&self) -> Option<&OidcSpec> {
        self.site.spec.auth.as_ref().and_then(|a| a.oidc.as_ref())
    }

    pub fn enabled(&self, c: Component) -> bool {
        c.enabled(&self.site.spec.components)
    }

    /// Public base URL (`https://<host>`) when the site has an ingress.
    pub fn public_base(&self) -> Option<String> {
        self.site
            .spec
            .ingress
            .as_ref()
            .map(|i| format!("https://{}", i.host))
    }

    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
}

/// ownerReference to the DizSite, so garbage collection removes what the site no longer wants.
pub(crate) fn owner_reference(site: &SiteInput) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        kind: "DizSite".to_string(),
        name: site.name.to_string(),
        uid: site.uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Labels of site-wide objects (NetworkPolicies, Ingress), which belong to no component.
pub(crate) fn site_labels(site: &SiteInput, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), PART_OF.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            site.name.to_string(),
        ),
        ("app.kubernetes.io/component".to_string(), role.to_string()),
        ("app.kubernetes.io/part-of".to_string(), PART_OF.to_string()),
        (
            "app.kubernetes.io/version".to_string(),
            label_value(&site.release.version),
        ),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (SITE_LABEL.to_string(), site.name.to_string()),
    ])
}

pub(crate) fn site_meta(site: &SiteInput, name: String, role: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(site.namespace.to_string()),
        labels: Some(site_labels(site, role)),
        owner_references: Some(vec![owner_reference(site)]),
        ..ObjectMeta::default()
    }
}

/// Label values allow 63 characters of `[A-Za-z0-9._-]`; upstream version strings usually fit,
/// anything else is replaced rather than rejected because the label is informational.
pub(crate) fn label_value(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Checks the invariant the controller relies on: no two children share (apiVersion, kind, name).
pub fn duplicate_keys(children: &[Child]) -> Vec<(String, String, String)> {
    let mut seen = BTreeSet::new();
    children
        .iter()
        .map(Child::key)
        .filter(|k| !seen.insert(k.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ref_uses_the_digest_never_the_tag() {
        let img = ComponentImage {
            repository: "ghcr.io/samply/blaze".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            version: "0.30.2".into(),
        };
        assert_eq!(
            image_ref(&img),
            format!("ghcr.io/samply/blaze@sha256:{}", "a".repeat(64))
        );
    }

    #[test]
    fn names_and_fields_are_unique_and_images_are_known() {
        let names: BTreeSet<_> = Component::ALL.iter().map(|c| c.name()).collect();
        let fields: BTreeSet<_> = Component::ALL.iter().map(|c| c.field()).collect();
        assert_eq!(names.len(), Component::ALL.len());
        assert_eq!(fields.len(), Component::ALL.len());
        for c in Component::ALL {
            assert!(!c.images().is_empty(), "{c}");
            for key in c.images() {
                assert!(crate::api::IMAGE_KEYS.contains(key), "{c}: {key}");
            }
            for part in c.parts() {
                assert!(c.images().contains(&part.image), "{c}: {}", part.name);
            }
        }
    }

    #[test]
    fn site_names_must_fit_every_object_name() {
        assert!(check_site_name("erlangen").is_ok());
        assert!(check_site_name(&"a".repeat(MAX_SITE_NAME_LEN)).is_ok());
        for bad in ["", "1abc", "Erlangen", "a.b", "abc-", &"a".repeat(31)] {
            assert!(check_site_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_values_are_sanitised() {
        assert_eq!(label_value("0.30.2"), "0.30.2");
        assert_eq!(label_value("1.0+build 7"), "1.0_build_7");
        assert!(label_value(&"x".repeat(100)).len() <= 63);
    }
}
