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

use crate::api::reasons;
use crate::api::{ComponentImage, ComponentSpec, DizSiteSpec, OidcSpec};

pub use component::Component;
pub use component::{
    Access, Database, DatabaseNeed, DbEngine, Dependency, Descriptor, Exposure, Part, Port,
};
pub(crate) use component::{HTTP_8080, METRICS_8081};

mod blaze;
pub mod component;
pub mod contract;
pub mod database;
pub mod docs;
mod dqa;
mod fhir_gateway;
pub mod fhir_pseudonymizer;
mod flare;
pub mod generic;
mod gics;
mod gpas;
mod i2b2;
pub mod ingress;
pub mod login_proxy;
pub mod mainzelliste;
pub mod network_policy;
mod ohdsi;
pub mod own_image;
pub mod pod;
pub mod registry;
pub mod reporter;
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
/// what the catalogue does instead: (component, text). Rendered into the docs; each entry is
/// explained next to the code that applies it.
pub fn security_exceptions() -> Vec<(&'static str, &'static str)> {
    Component::all()
        .flat_map(|c| {
            c.descriptor()
                .security_exceptions
                .iter()
                .map(move |e| (c.name(), e.text))
        })
        .collect()
}

/// The `components:` block of the smallest site that runs `c`: `c` with its [`Descriptor::minimal`]
/// entry, the first provider of each of its needs (recursively), and an external database
/// Secret `<name>-db` for every component that needs a database. For tests and the docs.
pub fn minimal_components_yaml(c: Component) -> String {
    fn add(c: Component, out: &mut Vec<Component>) {
        if out.contains(&c) {
            return;
        }
        out.push(c);
        for need in c.descriptor().needs {
            if let Some(p) = need.one_of.first() {
                add(Component::of(p.component), out);
            }
        }
    }
    let mut enabled = Vec::new();
    add(c, &mut enabled);
    enabled.sort();
    let mut yaml = String::from("components:\n");
    for c in enabled {
        let d = c.descriptor();
        match d.database {
            DatabaseNeed::Required(_) => {
                let m = d.minimal.trim();
                let entry = m
                    .strip_prefix('{')
                    .and_then(|m| m.strip_suffix('}'))
                    .unwrap_or(m);
                let sep = if entry.trim().is_empty() { "" } else { ", " };
                yaml.push_str(&format!(
                    "  {}: {{{entry}{sep}database: {{external: {{name: {}-db}}}}}}\n",
                    d.field, d.name
                ));
            }
            _ => yaml.push_str(&format!("  {}: {}\n", d.field, d.minimal)),
        }
    }
    yaml
}

/// Every release image key some component runs, in registry order.
pub fn image_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for key in Component::all().flat_map(|c| c.images()) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// What the release resolved to, images by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedRelease {
    pub name: String,
    pub version: String,
    pub images: BTreeMap<String, ComponentImage>,
    /// The components the release defines beyond the catalogue ([`generic`]), in the order
    /// written.
    pub components: Vec<Component>,
    /// Definitions of the release that cannot be used, by name, and why.
    pub invalid_definitions: Vec<(String, generic::DefinitionError)>,
}

impl ResolvedRelease {
    /// A release's images and the components it defines.
    pub fn of(name: &str, spec: &crate::api::ComponentReleaseSpec) -> ResolvedRelease {
        let (components, invalid_definitions) = generic::components(spec);
        ResolvedRelease {
            name: name.to_string(),
            version: spec.version.clone(),
            images: spec.components.clone(),
            components,
            invalid_definitions,
        }
    }
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
    #[error("spec.components.{field}: {detail}")]
    UnsupportedCombination {
        component: Component,
        field: &'static str,
        /// What does not work together and what to do, in a site admin's words.
        detail: String,
    },
    #[error(
        "metadata.name '{name}' cannot name the site's objects: {why} (child objects are called <name>-<component>)"
    )]
    InvalidSiteName { name: String, why: String },
    #[error(
        "spec.components.{field}.resourceOverrides: the {resource} limit {limit} would be below the {resource} request {request} once merged with the resource preset; set both resourceOverrides.requests.{resource} and resourceOverrides.limits.{resource}, or neither"
    )]
    LimitBelowRequest {
        component: Component,
        field: &'static str,
        resource: &'static str,
        request: String,
        limit: String,
    },
    #[error(
        "spec.components.fromRelease[name={name}]: release {release} defines no component {name}; {}",
        defined_text(.defined)
    )]
    ComponentNotInRelease {
        name: String,
        release: String,
        /// The names it does define.
        defined: Vec<String>,
    },
    #[error(
        "spec.components.fromRelease[name={name}]: the definition of {name} in release {release} cannot be used: {why}; the release's publisher must correct it"
    )]
    DefinitionUnusable {
        name: String,
        release: String,
        why: String,
    },
    #[error("cannot convert a child object: {0}")]
    Serialize(String),
}

fn defined_text(defined: &[String]) -> String {
    if defined.is_empty() {
        "it defines none: choose a release that defines it or remove the entry".to_string()
    } else {
        format!(
            "it defines {}: choose one of those, a release that defines it, or remove the entry",
            defined.join(", ")
        )
    }
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
            CatalogError::DependencyDisabled { .. } => reasons::DEPENDENCY_DISABLED,
            CatalogError::ImageMissing { .. } => reasons::IMAGE_MISSING,
            CatalogError::DatabaseRequired { .. } => reasons::DATABASE_REQUIRED,
            CatalogError::DatabaseNotSupported { .. } => reasons::DATABASE_NOT_SUPPORTED,
            CatalogError::CloudNativePgUnavailable { .. } => reasons::CLOUD_NATIVE_PG_UNAVAILABLE,
            CatalogError::EnvCollision { .. } => reasons::ENV_COLLISION,
            CatalogError::TooManyReplicas { .. } => reasons::TOO_MANY_REPLICAS,
            CatalogError::StorageNotSupported { .. } => reasons::STORAGE_NOT_SUPPORTED,
            CatalogError::UnsupportedCombination { .. } => reasons::UNSUPPORTED_COMBINATION,
            CatalogError::InvalidSiteName { .. } => reasons::INVALID_SITE_NAME,
            CatalogError::LimitBelowRequest { .. } => reasons::LIMIT_BELOW_REQUEST,
            CatalogError::ComponentNotInRelease { .. } => reasons::COMPONENT_NOT_IN_RELEASE,
            CatalogError::DefinitionUnusable { .. } => reasons::DEFINITION_UNUSABLE,
            CatalogError::Serialize(_) => reasons::SERIALIZATION_FAILED,
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
            | CatalogError::StorageNotSupported { component, .. }
            | CatalogError::UnsupportedCombination { component, .. }
            | CatalogError::LimitBelowRequest { component, .. } => Some(*component),
            CatalogError::InvalidSiteName { .. }
            | CatalogError::ComponentNotInRelease { .. }
            | CatalogError::DefinitionUnusable { .. }
            | CatalogError::Serialize(_) => None,
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
/// deterministic order (components in registry order; within one, databases and
/// volumes before the workloads that mount them).
pub fn build(input: &SiteInput) -> Result<Vec<Child>, Vec<CatalogError>> {
    let (children, errors) = check_and_build(input);
    if errors.is_empty() {
        Ok(children)
    } else {
        Err(errors)
    }
}

/// Components enabled in the spec, in registry order, then those the release defines, in the
/// order the release lists them.
pub fn enabled_components(site: &SiteInput) -> Vec<Component> {
    Component::all()
        .chain(site.release.components.iter().copied())
        .filter(|c| c.enabled(&site.spec.components))
        .collect()
}

/// Entries of `spec.components.fromRelease` the release does not define (or defines unusably).
fn check_from_release(input: &SiteInput) -> Vec<CatalogError> {
    let mut errors = Vec::new();
    for entry in &input.spec.components.from_release {
        if let Some((_, why)) = input
            .release
            .invalid_definitions
            .iter()
            .find(|(n, _)| *n == entry.name)
        {
            errors.push(CatalogError::DefinitionUnusable {
                name: entry.name.clone(),
                release: input.release.name.clone(),
                why: why.to_string(),
            });
        } else if !input
            .release
            .components
            .iter()
            .any(|c| c.name() == entry.name)
        {
            errors.push(CatalogError::ComponentNotInRelease {
                name: entry.name.clone(),
                release: input.release.name.clone(),
                defined: input
                    .release
                    .components
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect(),
            });
        }
    }
    errors
}

fn check_and_build(input: &SiteInput) -> (Vec<Child>, Vec<CatalogError>) {
    let mut errors = Vec::new();
    if let Err(e) = check_site_name(input.name) {
        // Every object name derives from the site name; building would only add noise.
        return (Vec::new(), vec![e]);
    }
    errors.extend(check_from_release(input));
    let mut children = Vec::new();
    for component in enabled_components(input) {
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
            Ok(c) => {
                errors.extend(check_limits(component, spec, &c));
                children.extend(c);
            }
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
        // The reporter never stops the site: what keeps it from being deployed is reported by
        // the `Reporting` condition, not as an error of the site.
        match reporter::build(input) {
            Ok(c) => children.extend(c),
            Err(e) => errors.push(e),
        }
    }
    (children, errors)
}

fn build_component(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    (ctx.component.descriptor().build)(ctx)
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

/// `resourceOverrides` replace the preset field by field, so an override can pass the CRD's
/// "limits at least requests" rule (which sees only the overrides) and still leave a container
/// whose limit is below its request, which the API server refuses for the pod. Compared on the
/// built containers, where the preset and the overrides are merged.
fn check_limits(component: Component, spec: &ComponentSpec, built: &[Child]) -> Vec<CatalogError> {
    if spec.resource_overrides.is_none() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for child in built {
        let data = &child.object.data;
        let pod = data
            .pointer("/spec/template/spec")
            .or_else(|| data.pointer("/spec/jobTemplate/spec/template/spec"));
        let containers = pod
            .and_then(|p| p.get("containers"))
            .and_then(serde_json::Value::as_array);
        for c in containers.into_iter().flatten() {
            for resource in ["cpu", "memory"] {
                let get = |kind: &str| {
                    c.pointer(&format!("/resources/{kind}/{resource}"))
                        .and_then(serde_json::Value::as_str)
                };
                let (Some(request), Some(limit)) = (get("requests"), get("limits")) else {
                    continue;
                };
                if let (Some(r), Some(l)) = (quantity_nanos(request), quantity_nanos(limit))
                    && l < r
                {
                    let e = CatalogError::LimitBelowRequest {
                        component,
                        field: component.field(),
                        resource,
                        request: request.to_string(),
                        limit: limit.to_string(),
                    };
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    errors
}

/// A Kubernetes quantity in billionths (`500m` is 500,000,000), exactly for every value the
/// CRD admits up to exbibytes; `None` for what is not a quantity or does not fit.
pub(crate) fn quantity_nanos(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac9: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut nanos = int
        .checked_mul(1_000_000_000)?
        .checked_add(frac9.parse().ok()?)?;
    let (binary, decimal): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        e => {
            let exp = e.strip_prefix(['e', 'E'])?;
            (0, exp.parse().ok()?)
        }
    };
    nanos = nanos.checked_mul(1024i128.checked_pow(binary)?)?;
    if decimal >= 0 {
        nanos = nanos.checked_mul(10i128.checked_pow(decimal.unsigned_abs())?)?;
    } else {
        nanos /= 10i128.checked_pow(decimal.unsigned_abs())?;
    }
    Some(if negative { -nanos } else { nanos })
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
    errors.extend((component.descriptor().checks)(input));
    errors.extend(login_proxy::check(input, component));
    let proxied = login_proxy::runs_for(input, component);
    for key in component.images() {
        // The login proxy's image is needed only where a part is published behind it.
        if key == login_proxy::IMAGE && !proxied {
            continue;
        }
        if !input.release.images.contains_key(key) {
            errors.push(CatalogError::ImageMissing {
                component,
                field,
                key: key.to_string(),
                release: input.release.name.clone(),
            });
        }
    }
    errors.extend(database::check(input, component, spec));
    if let (Some(limit), Some(replicas)) = (component.descriptor().replica_limit, spec.replicas)
        && replicas > limit.max
    {
        errors.push(CatalogError::TooManyReplicas {
            component,
            field,
            replicas,
            max: limit.max,
            why: limit.why,
        });
    }
    if spec.storage.is_some() && !component.uses_storage() {
        errors.push(CatalogError::StorageNotSupported { component, field });
    }
    errors
}

/// What a component builder sees: the site, and the component with its spec. Builders read the
/// rest of the site only through its methods.
pub struct Ctx<'a> {
    pub site: &'a SiteInput<'a>,
    pub component: Component,
    pub spec: &'a ComponentSpec,
}

impl<'a> Ctx<'a> {
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

    pub fn enabled(&self, c: &'static Descriptor) -> bool {
        Component::of(c).enabled(&self.site.spec.components)
    }

    /// Public base URL (`https://<host>`) when the site has an ingress.
    pub fn public_base(&self) -> Option<String> {
        self.site
            .spec
            .ingress
            .as_ref()
            .map(|i| format!("https://{}", i.host))
    }

    /// What this component needs, resolved against the site (see [`Component::dependencies`]).
    pub fn dependencies(&self) -> Vec<Dependency> {
        self.component.dependencies(self.site.spec)
    }

    /// Where another component's database is, when that component has one configured.
    pub fn database_of(&self, c: Component) -> Option<database::Wiring> {
        c.spec(&self.site.spec.components)
            .and_then(|spec| database::wiring(self.site, c, spec))
    }

    /// This component's own database, when configured.
    pub fn database(&self) -> Option<database::Wiring> {
        database::wiring(self.site, self.component, self.spec)
    }

    /// The component's own settings (the `S` of its [`crate::api::ComponentWith`]); `None` for a
    /// component without settings or when `S` is not its settings type.
    pub fn settings<S: 'static>(&self) -> Option<&'a S> {
        (self.component.descriptor().settings)(&self.site.spec.components)?.downcast_ref::<S>()
    }

    /// Another enabled component's own settings, for builders that must agree with it (VFPS
    /// creates the namespace the pseudonymizer uses). `None` when `c` is disabled.
    pub fn settings_of<S: 'static>(&self, c: &'static Descriptor) -> Option<&'a S> {
        let component = Component::of(c);
        if !component.enabled(&self.site.spec.components) {
            return None;
        }
        (c.settings)(&self.site.spec.components)?.downcast_ref::<S>()
    }

    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
}

/// The controlling ownerReference to one of the operator's own objects (a FeasibilityEndpoint, a
/// ProposalInbox): garbage collection removes its children with it, and foreground deletion
/// waits for them.
pub(crate) fn controller_reference<K>(owner: &K) -> OwnerReference
where
    K: kube::Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: kube::ResourceExt::name_any(owner),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
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
    fn quantities_compare_exactly() {
        let q = |s: &str| quantity_nanos(s).unwrap_or_else(|| panic!("{s} parses"));
        assert_eq!(q("250m"), q("0.25"));
        assert_eq!(q("256Mi"), q("0.25Gi"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1"), 1_000_000_000);
        assert!(q("1Gi") > q("1G"));
        assert!(q("500m") < q("1"));
        assert!(q("-1") < q("0"));
        assert_eq!(q("8Ei"), 8 * 1_152_921_504_606_846_976 * 1_000_000_000);
        for bad in ["", "Gi", "1.2.3", "1x", "abc"] {
            assert_eq!(quantity_nanos(bad), None, "{bad}");
        }
    }

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
        let n = Component::all().count();
        let names: BTreeSet<_> = Component::all().map(|c| c.name()).collect();
        let fields: BTreeSet<_> = Component::all().map(|c| c.field()).collect();
        assert_eq!(names.len(), n);
        assert_eq!(fields.len(), n);
        for c in Component::all() {
            assert!(!c.images().is_empty(), "{c}");
            for key in c.images() {
                assert!(crate::api::image_keys().contains(&key), "{c}: {key}");
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
