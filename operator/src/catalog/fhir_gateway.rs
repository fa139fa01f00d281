//! fhir-gateway: receives FHIR resources from the hospital's ETL, has them pseudonymised and
//! forwards them to the FHIR server; optionally keeps a copy in PostgreSQL.
//!
//! Not exposed through the ingress: its clients are the hospital's own ETL jobs, which reach it
//! inside the cluster or through a site-specific route.

use super::component::{
    Access, Database, DatabaseNeed, DbEngine, Descriptor, Exposure, Need, Provider, no_checks,
    no_settings,
};
use super::database;
use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, METRICS_8081, Part, blaze, fhir_pseudonymizer};

pub static COMPONENT: Descriptor = Descriptor {
    name: "fhir-gateway",
    field: "fhirGateway",
    description: "the FHIR gateway",
    spec: |c| c.fhir_gateway.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Optional(Database {
        engine: DbEngine::PostgreSql,
        name: "fhir_gateway",
    }),
    replica_limit: None,
    storage: false,
    needs: &[
        Need {
            purpose: "the FHIR pseudonymizer",
            one_of: &[Provider {
                component: &fhir_pseudonymizer::COMPONENT,
                access: Access::Service {
                    part: "fhir-pseudonymizer",
                    ports: &[8080],
                },
            }],
        },
        Need {
            purpose: "the FHIR server",
            one_of: &[blaze::PROVIDER],
        },
    ],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

const PARTS: [Part; 1] = [Part {
    name: "fhir-gateway",
    role: "gateway",
    image: "fhir-gateway",
    ports: &[HTTP_8080, METRICS_8081],
    exposure: Exposure::Never,
    // The hospital's ETL jobs load data through it.
    entry_point: true,
    calls: &[],
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = Presets {
    small: Res {
        cpu: "250m",
        memory: "512Mi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "500m",
        memory: "1Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "1",
        memory: "2Gi",
        cpu_limit: "4",
    },
};

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // Spring Boot relaxed binding of the gateway's `services.*` settings (names as in the
    // upstream application.yml).
    w.set("SERVICES_PSEUDONYMIZER_ENABLED", "true");
    w.set(
        "SERVICES_PSEUDONYMIZER_URL",
        format!("{}/fhir", ctx.url("fhir-pseudonymizer", HTTP_8080.port)),
    );
    w.set("SERVICES_FHIRSERVER_ENABLED", "true");
    w.set(
        "SERVICES_FHIRSERVER_URL",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            blaze::CONTEXT_PATH
        ),
    );
    // Kafka is not modelled by the DizSite; a site that streams sets the SERVICES_KAFKA_* and
    // SPRING_KAFKA_* variables through spec.components.fhirGateway.env.
    match ctx.database() {
        Some(db) => {
            w.set("SERVICES_PSQL_ENABLED", "true");
            w.env.extend(db.env());
            w.env_value("SPRING_DATASOURCE_URL", database::jdbc_postgres_url());
            w.env.push(db.user_var("SPRING_DATASOURCE_USERNAME"));
            w.env.push(db.password_var("SPRING_DATASOURCE_PASSWORD"));
        }
        None => w.set("SERVICES_PSQL_ENABLED", "false"),
    }
    w.startup = Some(pod::startup(pod::http_probe("/livez", "http"), 300));
    w.readiness = Some(pod::http_probe("/readyz", "http"));
    w.liveness = Some(pod::http_probe("/livez", "http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
