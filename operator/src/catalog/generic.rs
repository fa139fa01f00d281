//! Components a signed release defines beyond the built-in catalogue
//! ([`ComponentDefinition`]): each definition becomes a [`Descriptor`] like those the component
//! modules export, so everything derived from descriptors (pod rules, contracts, NetworkPolicies,
//! Ingress, database wiring, status, checks) treats it like a built-in component.
//!
//! Descriptors are `'static`, as the catalogue's are. A definition's descriptor is built once per
//! distinct definition (and image) and kept for the life of the process (interned, see
//! [`INTERNED`]): the number is bounded by the distinct definitions that releases signed by a
//! trusted key ever carried, not by reconciles. Definitions are immutable once admitted (the
//! release's signed content is), so the same definition always yields the same descriptor.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::api::{ComponentDefinition, ComponentImage, ComponentReleaseSpec, DatabaseField};

use super::component::{
    Access, Database, DatabaseNeed, DbEngine, Descriptor, Exposure, Need, Part, Port, Provider,
    ReplicaLimit, no_checks, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Required, Write, WriteKind};
use super::database;
use super::pod::{self, ClaimTemplate, Presets, Res, RunAs, Security, Workload, WorkloadKind};
use super::{CatalogError, Child, Component, Ctx};

/// What a release-defined descriptor carries besides the descriptor's own fields: the definition
/// as signed, and what the builder derives from it once.
#[derive(Debug)]
pub struct Defined {
    pub definition: ComponentDefinition,
    /// Where the storage volume is mounted, and its default size.
    storage: Option<(&'static str, &'static str)>,
    /// Written paths not on the storage volume: emptyDirs.
    scratch: &'static [&'static str],
    presets: &'static Presets,
}

/// Why a definition cannot become a component. The CRD's CEL rules refuse all of these at
/// admission; the catalogue checks again for objects admitted before a rule existed and for
/// `render`, which sees no API server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("the name {0:?} is taken by the built-in catalogue")]
    Reserved(String),
    #[error("calls names {0:?}, which is not a component of the built-in catalogue")]
    UnknownCall(String),
    #[error("health.port names {0:?}, which is not one of its ports")]
    UnknownHealthPort(String),
    #[error("its image is not pinned under spec.components.{0}")]
    NoImage(String),
}

/// Descriptors by the definition they were built from (its JSON and its image repository).
static INTERNED: Mutex<BTreeMap<String, &'static Descriptor>> = Mutex::new(BTreeMap::new());

/// The components a release defines, in the order written, and the definitions that cannot be
/// used (by name).
pub fn components(spec: &ComponentReleaseSpec) -> (Vec<Component>, Vec<(String, DefinitionError)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for def in &spec.component_definitions {
        let result = spec
            .components
            .get(&def.name)
            .ok_or_else(|| DefinitionError::NoImage(def.name.clone()))
            .and_then(|image| descriptor(def, image));
        match result {
            Ok(d) => ok.push(Component::of(d)),
            Err(e) => bad.push((def.name.clone(), e)),
        }
    }
    (ok, bad)
}

/// The descriptor of a definition whose image is `image`.
pub fn descriptor(
    def: &ComponentDefinition,
    image: &ComponentImage,
) -> Result<&'static Descriptor, DefinitionError> {
    if Component::named(&def.name).is_some()
        || crate::api::image_keys().contains(&def.name.as_str())
    {
        return Err(DefinitionError::Reserved(def.name.clone()));
    }
    let key = format!(
        "{}\n{}",
        image.repository,
        serde_json::to_string(def).unwrap_or_default()
    );
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = interned.get(&key) {
        return Ok(d);
    }
    let d: &'static Descriptor = leak(make(def, image)?);
    interned.insert(key, d);
    Ok(d)
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn res(p: &crate::api::PresetResources) -> Res {
    Res {
        cpu: leak_str(&p.cpu),
        memory: leak_str(&p.memory),
        cpu_limit: leak_str(&p.cpu_limit),
    }
}

/// Whether `path` lies on a volume mounted at `mount`.
fn below(path: &str, mount: &str) -> bool {
    path == mount || path.starts_with(&format!("{}/", mount.trim_end_matches('/')))
}

fn make(def: &ComponentDefinition, image: &ComponentImage) -> Result<Descriptor, DefinitionError> {
    let name = leak_str(&def.name);
    let ports: Vec<Port> = def
        .ports
        .iter()
        .map(|p| Port {
            name: leak_str(&p.name),
            port: p.port,
        })
        .collect();
    let health_port = match &def.health.port {
        Some(n) => ports
            .iter()
            .find(|p| p.name == n.as_str())
            .copied()
            .ok_or_else(|| DefinitionError::UnknownHealthPort(n.clone()))?,
        None => *ports
            .first()
            .ok_or_else(|| DefinitionError::UnknownHealthPort(String::new()))?,
    };
    let mut needs = Vec::new();
    for call in &def.calls {
        let callee = Component::named(&call.component)
            .ok_or_else(|| DefinitionError::UnknownCall(call.component.clone()))?;
        let Some(part) = callee.parts().first() else {
            return Err(DefinitionError::UnknownCall(call.component.clone()));
        };
        let called: Vec<i32> = if call.ports.is_empty() {
            part.ports.iter().take(1).map(|p| p.port).collect()
        } else {
            call.ports.clone()
        };
        needs.push(Need {
            purpose: callee.description(),
            one_of: leak_slice(vec![Provider {
                component: callee.descriptor(),
                access: Access::Service {
                    part: part.name,
                    ports: leak_slice(called),
                },
            }]),
        });
    }
    let exposure = match &def.exposure {
        // Never without a login: a definition can only put its component behind the proxy.
        Some(e) => Exposure::BehindLoginProxy(leak_str(&e.path)),
        None => Exposure::Never,
    };
    let parts = leak_slice(vec![Part {
        name,
        role: leak_str(&def.role),
        image: name,
        ports: leak_slice(ports.clone()),
        exposure,
        entry_point: false,
        calls: &[],
        sidecars: &[],
        uses_database: def.database.is_some(),
        uses_oidc: false,
    }]);
    let source = leak_str(&def.contract.source);
    let contract = ImageContract {
        image: name,
        repository: leak_str(&image.repository),
        source,
        program: None,
        reads: &[],
        user: ImageUser {
            declared: leak_str(&def.contract.uid.to_string()),
            uid: Some(def.contract.uid),
            gid: Some(def.contract.gid),
            cite: source,
        },
        writes: leak_slice(
            def.contract
                .writable_paths
                .iter()
                .map(|w| Write {
                    path: leak_str(&w.path),
                    kind: WriteKind::Dir,
                    why: leak_str(&w.why),
                    cite: source,
                })
                .collect(),
        ),
        required: leak_slice(
            def.contract
                .required_settings
                .iter()
                .map(|r| Required {
                    name: leak_str(&r.name),
                    secret: r.secret,
                    message: "",
                    cite: source,
                })
                .collect(),
        ),
        ports: leak_slice(ports.iter().map(|p| p.port).collect()),
        endpoints: leak_slice(
            std::iter::once(&def.health.readiness_path)
                .chain(def.health.liveness_path.as_ref())
                .map(|path| Endpoint {
                    path: leak_str(path),
                    port: health_port.port,
                    needs: None,
                    cite: source,
                })
                .collect(),
        ),
        jvm: None,
    };
    let storage = def
        .storage
        .as_ref()
        .map(|s| (leak_str(&s.mount_path), leak_str(&s.default_size)));
    let scratch: Vec<&'static str> = def
        .contract
        .writable_paths
        .iter()
        .filter(|w| !storage.is_some_and(|(mount, _)| below(&w.path, mount)))
        .map(|w| leak_str(&w.path))
        .collect();
    let defined = leak(Defined {
        definition: def.clone(),
        storage,
        scratch: leak_slice(scratch),
        presets: leak(Presets {
            small: res(&def.resources.small),
            medium: res(&def.resources.medium),
            large: res(&def.resources.large),
        }),
    });
    Ok(Descriptor {
        name,
        field: leak_str(&format!("fromRelease[name={name}]")),
        description: leak_str(&def.description),
        // Read through `defined` (Component::spec): the entry under spec.components.fromRelease.
        spec: |_| None,
        minimal: "{}",
        settings: no_settings,
        parts,
        database: match &def.database {
            Some(db) => DatabaseNeed::Required(Database {
                engine: DbEngine::PostgreSql,
                name: leak_str(&db.name),
            }),
            None => DatabaseNeed::None,
        },
        replica_limit: def.storage.as_ref().map(|_| ReplicaLimit {
            max: 1,
            why: "its data lives on one ReadWriteOnce volume",
        }),
        storage: def.storage.is_some(),
        needs: leak_slice(needs),
        checks: no_checks,
        security_exceptions: &[],
        contracts: leak_slice(vec![contract]),
        build,
        defined: Some(defined),
    })
}

/// The settings the image cannot start without that neither the definition nor the site's
/// `env` provides, and credentials that would not come from a Secret.
fn check_required(ctx: &Ctx, def: &ComponentDefinition) -> Vec<CatalogError> {
    let mut errors = Vec::new();
    for r in &def.contract.required_settings {
        let own = def.settings.iter().find(|s| s.name == r.name);
        let site = ctx.spec.env.iter().find(|e| e.name == r.name);
        let from_secret = own.is_some_and(|s| s.secret_key_ref.is_some() || s.database.is_some())
            || site.is_some_and(|e| e.secret_key_ref.is_some());
        let detail = match (own.is_some() || site.is_some(), r.secret && !from_secret) {
            (false, _) => format!(
                "its image does not start without {}, which its release does not set; set it in env{}",
                r.name,
                if r.secret {
                    " from a Secret (secretKeyRef)"
                } else {
                    ""
                }
            ),
            (true, true) => format!(
                "{} is a credential and must come from a Secret: set it in env with secretKeyRef",
                r.name
            ),
            (true, false) => continue,
        };
        errors.push(CatalogError::UnsupportedCombination {
            component: ctx.component,
            field: ctx.component.field(),
            detail,
        });
    }
    errors
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let d = ctx.component.descriptor();
    let (Some(defined), Some(part)) = (d.defined, d.parts.first()) else {
        return Ok(Vec::new());
    };
    let def = &defined.definition;
    let errors = check_required(ctx, def);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(part, defined.presets);
    // The contract's uid and group: the image's own directories belong to them, and the
    // restricted profile never runs as root.
    w.security = Security {
        run_as: RunAs::UserGroup {
            uid: def.contract.uid,
            gid: def.contract.gid,
        },
        read_only_root: true,
    };
    w.writable_dirs = defined.scratch;
    if let Some((mount_path, default_size)) = defined.storage {
        w.kind = WorkloadKind::StatefulSet {
            claim: ClaimTemplate {
                name: "data",
                mount_path,
                default_size,
            },
        };
    }
    let db = ctx.database();
    if let Some(db) = &db {
        // First, so that values can compose them with `$(MIRACOLIX_DB_*)`.
        w.env.extend(db.env());
    }
    for s in &def.settings {
        if let Some(v) = &s.value {
            // In `env`, not the ConfigMap: only `env` values expand `$(VAR)`.
            w.env_value(&s.name, v.clone());
        } else if let Some(r) = &s.secret_key_ref {
            w.env.push(database::secret_env(&s.name, &r.name, &r.key));
        } else if let (Some(field), Some(db)) = (s.database, &db) {
            w.env.push(match field {
                DatabaseField::Host => db.host_var(&s.name),
                DatabaseField::Port => db.port_var(&s.name),
                DatabaseField::Username => db.user_var(&s.name),
                DatabaseField::Password => db.password_var(&s.name),
                DatabaseField::Database => db.name_var(&s.name),
            });
        }
    }
    let health = &def.health;
    let port = health
        .port
        .as_deref()
        .or_else(|| part.ports.first().map(|p| p.name))
        .unwrap_or("http");
    let readiness = pod::http_probe(&health.readiness_path, port);
    let liveness = pod::http_probe(
        health
            .liveness_path
            .as_deref()
            .unwrap_or(&health.readiness_path),
        port,
    );
    w.startup = Some(pod::startup(readiness.clone(), health.startup_seconds));
    w.readiness = Some(readiness);
    w.liveness = Some(liveness);
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
