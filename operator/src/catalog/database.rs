//! Databases: an existing server through a Secret, or a PostgreSQL cluster run by CloudNativePG.
//!
//! The operator never runs a database itself: a hand-rolled PostgreSQL StatefulSet has no
//! backups, failover or upgrades, which is what CloudNativePG is for.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, TypeMeta};
use serde_json::json;

use super::{CatalogError, Child, Component, Ctx, DatabaseNeed, DbEngine, SiteInput};
use crate::api::ComponentSpec;

pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
pub const CNPG_VERSION: &str = "v1";
pub const CNPG_KIND: &str = "Cluster";
/// Label CloudNativePG puts on a cluster's pods; NetworkPolicies select them by it.
pub const CNPG_CLUSTER_LABEL: &str = "cnpg.io/cluster";
pub const POSTGRES_PORT: i32 = 5432;

/// Env names the database coordinates land in. Components compose their own settings from them
/// with `$(VAR)` references, which Kubernetes expands only for variables defined earlier in the
/// list: these always come first.
pub const ENV_HOST: &str = "MIRACOLIX_DB_HOST";
pub const ENV_PORT: &str = "MIRACOLIX_DB_PORT";
pub const ENV_USER: &str = "MIRACOLIX_DB_USER";
pub const ENV_PASSWORD: &str = "MIRACOLIX_DB_PASSWORD";
pub const ENV_NAME: &str = "MIRACOLIX_DB_NAME";

pub fn cnpg_api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(CNPG_GROUP, CNPG_VERSION, CNPG_KIND),
        "clusters",
    )
}

/// `<site>-<component>-db`.
pub fn cluster_name(site: &str, component: Component) -> String {
    format!("{site}-{}-db", component.name())
}

/// The database a component's pods connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An existing server; egress must be open to any address because its IP is unknown.
    External { engine: DbEngine },
    /// A CloudNativePG cluster in the site's namespace, by cluster name.
    CloudNativePg { cluster: String },
}

/// Where the credentials are: a Secret and the key of each coordinate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wiring {
    pub secret: String,
    pub target: Target,
    host: &'static str,
    port: &'static str,
    user: &'static str,
    password: &'static str,
    name: &'static str,
}

impl Wiring {
    /// The standard variables (`MIRACOLIX_DB_*`) from the Secret.
    pub fn env(&self) -> Vec<EnvVar> {
        vec![
            self.var(ENV_HOST, self.host),
            self.var(ENV_PORT, self.port),
            self.var(ENV_USER, self.user),
            self.var(ENV_PASSWORD, self.password),
            self.var(ENV_NAME, self.name),
        ]
    }

    /// One image-specific variable straight from the Secret, for images that take the
    /// coordinates separately (gPAS, gICS, Mainzelliste).
    pub fn host_var(&self, name: &str) -> EnvVar {
        self.var(name, self.host)
    }
    pub fn port_var(&self, name: &str) -> EnvVar {
        self.var(name, self.port)
    }
    pub fn user_var(&self, name: &str) -> EnvVar {
        self.var(name, self.user)
    }
    pub fn password_var(&self, name: &str) -> EnvVar {
        self.var(name, self.password)
    }
    pub fn name_var(&self, name: &str) -> EnvVar {
        self.var(name, self.name)
    }

    fn var(&self, name: &str, key: &str) -> EnvVar {
        secret_env(name, &self.secret, key)
    }
}

pub(crate) fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// `JDBC URL` composed from the standard variables.
pub fn jdbc_postgres_url() -> String {
    format!("jdbc:postgresql://$({ENV_HOST}):$({ENV_PORT})/$({ENV_NAME})")
}

/// The wiring of a component's own database, if it has one configured.
pub fn wiring(site: &SiteInput, component: Component, spec: &ComponentSpec) -> Option<Wiring> {
    let db = spec.database.as_ref()?;
    let engine = component.database_need().database()?.engine;
    if let Some(external) = &db.external {
        // Keys as documented on `DatabaseSpec.external`.
        Some(Wiring {
            secret: external.name.clone(),
            target: Target::External { engine },
            host: "host",
            port: "port",
            user: "username",
            password: "password",
            name: "database",
        })
    } else if db.cloud_native_pg.is_some() {
        let cluster = cluster_name(site.name, component);
        // CloudNativePG generates `<cluster>-app` with these keys for the owner of the
        // bootstrap database.
        Some(Wiring {
            secret: format!("{cluster}-app"),
            target: Target::CloudNativePg { cluster },
            host: "host",
            port: "port",
            user: "username",
            password: "password",
            name: "dbname",
        })
    } else {
        None
    }
}

/// Problems with a component's `database` setting.
pub(crate) fn check(
    site: &SiteInput,
    component: Component,
    spec: &ComponentSpec,
) -> Vec<CatalogError> {
    let field = component.field();
    let db = spec.database.as_ref();
    let not_supported = |detail: String| CatalogError::DatabaseNotSupported {
        component,
        field,
        detail,
    };
    let engine = match (component.database_need(), db) {
        (DatabaseNeed::None, None) => return Vec::new(),
        (DatabaseNeed::None, Some(_)) => {
            return vec![not_supported(format!(
                " is set, but {field} uses no database; remove it"
            ))];
        }
        (DatabaseNeed::Optional(_), None) => return Vec::new(),
        (DatabaseNeed::Required(d), None) => {
            return vec![required(component, d.engine)];
        }
        (DatabaseNeed::Optional(d) | DatabaseNeed::Required(d), Some(_)) => d.engine,
    };
    let Some(db) = db else {
        return Vec::new();
    };
    match (&db.external, &db.cloud_native_pg) {
        (Some(_), Some(_)) => vec![not_supported(
            " sets both external and cloudNativePG; set exactly one".to_string(),
        )],
        (None, None) => match component.database_need() {
            DatabaseNeed::Required(_) => vec![required(component, engine)],
            _ => Vec::new(),
        },
        (Some(_), None) => Vec::new(),
        (None, Some(_)) if engine == DbEngine::MySql => vec![not_supported(format!(
            ".cloudNativePG is set, but {field} needs MySQL and CloudNativePG runs PostgreSQL only; use spec.components.{field}.database.external"
        ))],
        (None, Some(_)) if !site.cnpg_available => {
            vec![CatalogError::CloudNativePgUnavailable { component, field }]
        }
        (None, Some(_)) => Vec::new(),
    }
}

fn required(component: Component, engine: DbEngine) -> CatalogError {
    let (engine, cnpg_hint) = match engine {
        DbEngine::PostgreSql => (
            "PostgreSQL",
            " or .cloudNativePG (a cluster run by CloudNativePG)",
        ),
        DbEngine::MySql => ("MySQL", ""),
    };
    CatalogError::DatabaseRequired {
        component,
        field: component.field(),
        engine,
        cnpg_hint,
    }
}

/// The CloudNativePG `Cluster` for a component that asked for one.
///
/// No ownerReference: a cluster holds patient data, so its lifetime follows the site's
/// `deletionPolicy` (applied by the controller), never Kubernetes garbage collection.
pub(crate) fn cnpg_cluster(ctx: &Ctx) -> Result<Option<Child>, CatalogError> {
    let Some(db_name) = ctx.component.database_need().database().map(|d| d.name) else {
        return Ok(None);
    };
    let Some(cnpg) = ctx
        .spec
        .database
        .as_ref()
        .and_then(|d| d.cloud_native_pg.as_ref())
    else {
        return Ok(None);
    };
    let resource = cnpg_api_resource();
    let name = cluster_name(ctx.site.name, ctx.component);
    let mut storage = json!({ "size": cnpg.storage_size });
    if let Some(class) = &cnpg.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    let labels = super::pod::component_labels(ctx, ctx.component.name(), "database", None);
    let object = DynamicObject {
        types: Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        }),
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ctx.site.namespace.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        // Pods of the cluster deliberately do not inherit the site label: the site's
        // default-deny NetworkPolicy would also cut their egress (the instance manager's calls
        // to the API server). They get a policy of their own instead, which denies ingress but
        // from the database's clients, the instances and CloudNativePG's operator
        // (network_policy::database_policy).
        data: json!({
            "spec": {
                "instances": cnpg.instances,
                "storage": storage,
                "bootstrap": { "initdb": { "database": db_name, "owner": db_name } },
                "enableSuperuserAccess": false,
            }
        }),
    };
    Ok(Some(Child {
        resource,
        object,
        component: Some(ctx.component),
    }))
}
