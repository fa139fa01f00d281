//! Mainzelliste: patient identity management (Tomcat), on PostgreSQL.
//!
//! Never exposed through the ingress: it holds identifying data (IDAT). Clients that need it
//! from outside the cluster get a site-specific route.
//!
//! Its API key comes from a Secret the site names (`apiKeySecretRef`): the entrypoint exits
//! without one, and a generated key would have to be handed to every client anyway.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::api::SecretKeyRef;

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, ReplicaLimit, no_checks,
};
use super::database;
use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "mainzelliste",
    field: "mainzelliste",
    description: "the Mainzelliste identity management",
    spec: |c| c.mainzelliste.as_ref().map(|m| &m.common),
    minimal: "{apiKeySecretRef: {name: mainzelliste-api, key: api-key}}",
    settings: |c| {
        c.mainzelliste
            .as_ref()
            .map(|m| &m.settings as &dyn std::any::Any)
    },
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "mainzelliste",
    }),
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "it keeps sessions and tokens in memory",
    }),
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

/// Mainzelliste's own settings under `spec.components.mainzelliste`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The key API clients present (`ML_API_KEY`), from a Secret in the site's namespace.
    /// Mainzelliste does not start without it.
    pub api_key_secret_ref: SecretKeyRef,
}

const PARTS: [Part; 1] = [Part {
    name: "mainzelliste",
    role: "identity-management",
    image: "mainzelliste",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    // Clinical systems register patients in it.
    entry_point: true,
    calls: &[],
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = Presets {
    small: Res {
        cpu: "100m",
        memory: "512Mi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "250m",
        memory: "1Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "4",
    },
};

/// Tomcat writes its work, temp and log directories; everything else stays read-only.
const WRITABLE: &[&str] = &[
    "/tmp",
    "/usr/local/tomcat/temp",
    "/usr/local/tomcat/work",
    "/usr/local/tomcat/logs",
];

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    w.writable_dirs = WRITABLE;
    // `ML_DB_*` as documented for the medicalinformatics/mainzelliste image.
    w.set("ML_DB_DRIVER", "org.postgresql.Driver");
    w.set("ML_DB_TYPE", "postgresql");
    if let Some(db) = ctx.database() {
        w.env.push(db.host_var("ML_DB_HOST"));
        w.env.push(db.port_var("ML_DB_PORT"));
        w.env.push(db.name_var("ML_DB_NAME"));
        w.env.push(db.user_var("ML_DB_USERNAME"));
        w.env.push(db.password_var("ML_DB_PASSWORD"));
    }
    if let Some(settings) = ctx.settings::<Settings>() {
        let key = &settings.api_key_secret_ref;
        w.env
            .push(database::secret_env("ML_API_KEY", &key.name, &key.key));
    }
    // No health endpoint is documented for Mainzelliste: a TCP check on Tomcat's connector.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 300));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
