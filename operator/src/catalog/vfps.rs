//! VFPS, the very fast pseudonym service, on PostgreSQL.
//!
//! Never exposed through the ingress: pseudonyms are requested only by the pseudonymizer.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, no_checks, no_settings,
};
use super::database;
use super::pod::{self, LIGHT_SERVICE, Presets, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, Port};

pub static COMPONENT: Descriptor = Descriptor {
    name: "vfps",
    field: "vfps",
    description: "the VFPS pseudonym service",
    spec: |c| c.vfps.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "vfps",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

pub const GRPC: Port = Port {
    name: "grpc",
    port: 8081,
};
const METRICS: Port = Port {
    name: "metrics",
    port: 8082,
};

const PARTS: [Part; 1] = [Part {
    name: "vfps",
    role: "pseudonym-service",
    image: "vfps",
    ports: &[HTTP_8080, GRPC, METRICS],
    // Pseudonyms are requested only by the pseudonymizer.
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = LIGHT_SERVICE;

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    if let Some(db) = ctx.database() {
        w.env.extend(db.env());
        // Npgsql connection string, composed from the Secret's coordinates at container start.
        w.env_value(
            "ConnectionStrings__PostgreSQL",
            format!(
                "Host=$({});Port=$({});Database=$({});Username=$({});Password=$({});Timeout=60",
                database::ENV_HOST,
                database::ENV_PORT,
                database::ENV_NAME,
                database::ENV_USER,
                database::ENV_PASSWORD
            ),
        );
    }
    w.startup = Some(pod::startup(pod::http_probe("/livez", "http"), 120));
    w.readiness = Some(pod::http_probe("/readyz", "http"));
    w.liveness = Some(pod::http_probe("/livez", "http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
