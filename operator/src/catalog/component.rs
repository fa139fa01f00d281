//! What the catalogue knows about a component, as data: one [`Descriptor`] per component,
//! exported by the component's own module and listed once in [`super::registry`].
//!
//! Everything the rest of the operator needs to know about components (names, CRD fields,
//! image keys, replica limits, exposure, network access, databases) is read from descriptors;
//! no other module matches on a component.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use crate::api::{ComponentSpec, Components, DizSiteSpec};

use super::{CatalogError, Child, Ctx, SiteInput};

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

    pub fn display(self) -> &'static str {
        match self {
            DbEngine::PostgreSql => "PostgreSQL",
            DbEngine::MySql => "MySQL",
        }
    }
}

/// Whether and which database a component needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseNeed {
    None,
    Optional(Database),
    Required(Database),
}

impl DatabaseNeed {
    /// The database, whether required or optional.
    pub fn database(self) -> Option<Database> {
        match self {
            DatabaseNeed::None => None,
            DatabaseNeed::Optional(d) | DatabaseNeed::Required(d) => Some(d),
        }
    }
}

/// A component's database: its engine and the database (and owner) name the operator creates
/// in a CloudNativePG cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Database {
    pub engine: DbEngine,
    pub name: &'static str,
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

/// Whether a part gets a path on the site's Ingress (when the site has one), and on what
/// condition. The condition is about login: a service on the ingress must authenticate its users,
/// so nothing is ever published without a login (docs/security.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Never published: reached only inside the cluster.
    Never,
    /// Published at this path only when the site sets `spec.auth.oidc`: the service
    /// authenticates through the site's OIDC provider itself, and answers anyone without it.
    WithOidc(&'static str),
    /// Published at this path; the service has a login of its own.
    OwnLogin(&'static str),
    /// The service has no login at all: published at this path only when the site sets
    /// `spec.auth.oidc`, and then only through the login proxy ([`super::login_proxy`]) that runs
    /// next to it in the pod. The Ingress routes to the proxy's port, never to the service's.
    BehindLoginProxy(&'static str),
}

impl Exposure {
    pub fn path(self) -> Option<&'static str> {
        match self {
            Exposure::Never => None,
            Exposure::WithOidc(p) | Exposure::OwnLogin(p) | Exposure::BehindLoginProxy(p) => {
                Some(p)
            }
        }
    }

    /// Published only when the site sets `spec.auth.oidc`.
    pub fn needs_oidc(self) -> bool {
        matches!(self, Exposure::WithOidc(_) | Exposure::BehindLoginProxy(_))
    }
}

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
    /// Whether and when it is published on the site's Ingress.
    pub exposure: Exposure,
    /// Its callers live outside the catalogue (the hospital's ETL, the DSF, clinical systems):
    /// pods carrying `diz.miracum.org/access-<part>: "true"` may reach its first port.
    pub entry_point: bool,
    /// Other parts of the same component it calls: (part name, ports).
    pub calls: &'static [(&'static str, &'static [i32])],
    /// Helper containers in the part's pod, each with its release image and the port its
    /// Service exposes (e.g. TORCH's result file server).
    pub sidecars: &'static [Sidecar],
    /// Talks to the component's database.
    pub uses_database: bool,
    /// Talks to the OIDC issuer when `spec.auth.oidc` is set.
    pub uses_oidc: bool,
}

/// A helper container of a part, declared as data so that its image is pinned by the release
/// like every other and its port joins the part's Service; the component's builder makes the
/// container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sidecar {
    /// Release image key.
    pub image: &'static str,
    pub port: Port,
}

/// How a component reaches what it needs.
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

/// One component that satisfies a need, and how it is reached.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    pub component: &'static Descriptor,
    pub access: Access,
}

/// One thing a component needs from other components: the first enabled provider is used.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// What is needed, in words: `the FHIR server`.
    pub purpose: &'static str,
    /// In order of preference.
    pub one_of: &'static [Provider],
}

/// The most replicas that are safe, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaLimit {
    pub max: i32,
    pub why: &'static str,
}

/// An upstream image that cannot run under the restricted Pod Security profile as published,
/// and what the catalogue does instead. Rendered into the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityException {
    pub part: &'static str,
    pub text: &'static str,
}

pub type BuildFn = fn(&Ctx) -> Result<Vec<Child>, Vec<CatalogError>>;
/// The component's own settings (see [`crate::api::ComponentWith`]), for [`Ctx::settings`].
pub type SettingsFn = fn(&Components) -> Option<&dyn std::any::Any>;
pub type CheckFn = fn(&SiteInput) -> Vec<CatalogError>;

/// Everything the operator knows about one component. Each component module exports one.
#[derive(Debug)]
pub struct Descriptor {
    /// Kebab-case name used in labels and object names.
    pub name: &'static str,
    /// The field under `spec.components`.
    pub field: &'static str,
    /// What the component is, in words a site admin recognises.
    pub description: &'static str,
    /// Its entry in the DizSite spec (the API field): the shared knobs.
    pub spec: fn(&Components) -> Option<&ComponentSpec>,
    /// The smallest entry under `spec.components.<field>` that is accepted, as a YAML flow
    /// mapping: `{}`, or the component's required settings. Tests and the docs derive minimal
    /// sites from it.
    pub minimal: &'static str,
    /// Its own settings, for components whose API field is a
    /// [`ComponentWith`](crate::api::ComponentWith); [`no_settings`] otherwise.
    pub settings: SettingsFn,
    /// Its workloads; the first is the primary one, which receives `resourceOverrides` and the
    /// extra `env`.
    pub parts: &'static [Part],
    pub database: DatabaseNeed,
    pub replica_limit: Option<ReplicaLimit>,
    /// Keeps data on a volume (so `storage` applies).
    pub storage: bool,
    /// What it needs from other components.
    pub needs: &'static [Need],
    /// Checks beyond what the descriptor states as data, for rules specific to the component.
    pub checks: CheckFn,
    pub security_exceptions: &'static [SecurityException],
    /// What each of its images demands of the pod (one per image key of its parts).
    pub contracts: &'static [super::contract::ImageContract],
    pub build: BuildFn,
    /// For a component a release defines ([`super::generic`]): its definition. `None` for the
    /// built-in components, whose spec is the API field [`Descriptor::spec`] reads.
    pub defined: Option<&'static super::generic::Defined>,
}

/// For components without settings of their own.
pub(crate) fn no_settings(_: &Components) -> Option<&dyn std::any::Any> {
    None
}

/// A check that finds nothing: for components whose rules are all data.
pub(crate) fn no_checks(_: &SiteInput) -> Vec<CatalogError> {
    Vec::new()
}

/// A component: a handle on its descriptor in the registry. Ordered by registry position, which
/// is the order children are built and listed in.
#[derive(Clone, Copy)]
pub struct Component(&'static Descriptor);

impl Component {
    /// Every component, in registry order.
    pub fn all() -> impl Iterator<Item = Component> {
        super::registry::REGISTRY.iter().map(|d| Component(d))
    }

    /// The component called `name` ([`Component::name`]).
    pub fn named(name: &str) -> Option<Component> {
        Component::all().find(|c| c.name() == name)
    }

    pub(crate) fn of(d: &'static Descriptor) -> Component {
        Component(d)
    }

    pub fn descriptor(self) -> &'static Descriptor {
        self.0
    }

    fn position(self) -> usize {
        super::registry::REGISTRY
            .iter()
            .position(|d| std::ptr::eq(*d, self.0))
            .unwrap_or(usize::MAX)
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    pub fn field(self) -> &'static str {
        self.0.field
    }

    pub fn description(self) -> &'static str {
        self.0.description
    }

    pub fn spec(self, c: &Components) -> Option<&ComponentSpec> {
        if self.0.defined.is_some() {
            return c
                .from_release
                .iter()
                .find(|e| e.name == self.0.name)
                .map(|e| &e.spec);
        }
        (self.0.spec)(c)
    }

    /// Defined by a release rather than built into the catalogue.
    pub fn is_defined_by_release(self) -> bool {
        self.0.defined.is_some()
    }

    /// Present and not `enabled: false`.
    pub fn enabled(self, c: &Components) -> bool {
        self.spec(c).is_some_and(|s| s.enabled)
    }

    pub fn parts(self) -> &'static [Part] {
        self.0.parts
    }

    /// The release image keys this component may run: one per part, and the login proxy's when
    /// a part is published behind it ([`Exposure::BehindLoginProxy`]).
    pub fn images(self) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = self
            .0
            .parts
            .iter()
            .flat_map(|p| std::iter::once(p.image).chain(p.sidecars.iter().map(|s| s.image)))
            .collect();
        if self
            .0
            .parts
            .iter()
            .any(|p| matches!(p.exposure, Exposure::BehindLoginProxy(_)))
        {
            keys.push(super::login_proxy::IMAGE);
        }
        keys
    }

    pub fn database_need(self) -> DatabaseNeed {
        self.0.database
    }

    pub fn uses_storage(self) -> bool {
        self.0.storage
    }

    pub fn max_replicas(self) -> Option<i32> {
        self.0.replica_limit.map(|l| l.max)
    }

    /// What this component needs from other components, resolved against the spec: for each need
    /// the alternatives in order of preference and the one chosen (the first enabled).
    pub fn dependencies(self, spec: &DizSiteSpec) -> Vec<Dependency> {
        self.0
            .needs
            .iter()
            .map(|need| {
                let chosen = need
                    .one_of
                    .iter()
                    .find(|p| Component(p.component).enabled(&spec.components));
                let access = chosen.or(need.one_of.first()).map(|p| p.access);
                Dependency {
                    one_of: need.one_of.iter().map(|p| Component(p.component)).collect(),
                    chosen: chosen.map(|p| Component(p.component)),
                    purpose: need.purpose,
                    access: access.unwrap_or(Access::Database),
                }
            })
            .collect()
    }
}

impl PartialEq for Component {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.name == other.0.name
    }
}

impl Eq for Component {}

impl Hash for Component {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for Component {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Component {
    fn cmp(&self, other: &Self) -> Ordering {
        self.position()
            .cmp(&other.position())
            .then_with(|| self.0.name.cmp(other.0.name))
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

/// One thing a component needs from another, resolved against a site's spec.
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
