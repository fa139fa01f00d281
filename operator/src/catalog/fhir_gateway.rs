//! fhir-gateway: receives FHIR resources from the hospital's ETL, has them pseudonymised and
//! forwards them to the FHIR server; optionally keeps a copy in PostgreSQL.
//!
//! Not exposed through the ingress: its clients are the hospital's own ETL jobs, which reach it
//! inside the cluster or through a site-specific route.

use super::database;
use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, METRICS_8081, Part};

pub(crate) const PARTS: [Part; 1] = [Part {
    name: "fhir-gateway",
    role: "gateway",
    image: "fhir-gateway",
    ports: &[HTTP_8080, METRICS_8081],
    exposed_path: None,
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

pub(crate) fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx, "fhir_gateway").map_err(|e| vec![e])? {
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
            super::blaze::CONTEXT_PATH
        ),
    );
    // Kafka is not modelled by the DizSite; a site that streams sets the SERVICES_KAFKA_* and
    // SPRING_KAFKA_* variables through spec.components.fhirGateway.env.
    match database::wiring(ctx.site, ctx.component, ctx.spec) {
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
