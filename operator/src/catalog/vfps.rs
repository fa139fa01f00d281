//! VFPS, the very fast pseudonym service, on PostgreSQL.
//!
//! Never exposed through the ingress: pseudonyms are requested only by the pseudonymizer.

use super::database;
use super::pod::{self, LIGHT_SERVICE, Presets, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, Port};

pub const GRPC: Port = Port {
    name: "grpc",
    port: 8081,
};
const METRICS: Port = Port {
    name: "metrics",
    port: 8082,
};

pub(crate) const PARTS: [Part; 1] = [Part {
    name: "vfps",
    role: "pseudonym-service",
    image: "vfps",
    ports: &[HTTP_8080, GRPC, METRICS],
    exposed_path: None,
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = LIGHT_SERVICE;

pub(crate) fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx, "vfps").map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    if let Some(db) = database::wiring(ctx.site, ctx.component, ctx.spec) {
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
