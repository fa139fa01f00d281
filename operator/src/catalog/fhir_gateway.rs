//! fhir-gateway: receives FHIR resources from the hospital's ETL, has them pseudonymised and
//! forwards them to the FHIR server; optionally keeps a copy in PostgreSQL.
//!
//! Not exposed through the ingress: its clients are the hospital's own ETL jobs, which reach it
//! inside the cluster or through a site-specific route. It has no inbound authentication of its
//! own (no Spring Security: miracum/fhir-gateway@v3.14.2:build.gradle;
//! controllers/FhirController.java:34-51), so who may write rests on the NetworkPolicy: only
//! pods labelled `diz.miracum.org/access-fhir-gateway: "true"` reach it.
//!
//! **Not with an OIDC-protected Blaze.** The gateway can authenticate to the FHIR server with
//! HTTP Basic only (AppConfig.java:79-93; still so in v6.1.8), and Blaze under
//! `spec.auth.oidc` wants a bearer token on every request; 4xx answers are not retried
//! (AppConfig.java:100-138), so every forwarded bundle would fail. The combination is refused
//! (`checks`) rather than rendered broken.
//!
//! **Heap**: the image starts `java -XX:MaxRAMPercentage=75 …` (Dockerfile:27). A
//! `MaxRAMPercentage` in `JAVA_TOOL_OPTIONS` would lose to that command-line flag, so the
//! operator passes an explicit `-Xmx`, which wins over any percentage, computed from the
//! container's memory limit: 60 %, leaving the rest for metaspace, threads and buffers of a
//! Spring Boot + HAPI FHIR application, where 75 % of a small limit is tight.

use super::component::{
    Access, Database, DatabaseNeed, DbEngine, Descriptor, Exposure, Need, Provider, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Write, WriteKind};
use super::database;
use super::pod::{self, Presets, Res, Workload};
use super::{
    CatalogError, Child, Component, Ctx, HTTP_8080, METRICS_8081, Part, SiteInput, blaze,
    fhir_pseudonymizer,
};

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
    checks,
    security_exceptions: &[],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

/// Set together, probes and actuator endpoints work as the upstream chart has them
/// (charts fhir-gateway-6.3.21 templates/gateway-deployment.yaml:107-110).
const PROBE_PATHS: (&str, &str) = (
    "MANAGEMENT_ENDPOINT_HEALTH_PROBES_ADD_ADDITIONAL_PATHS",
    "true",
);
const MANAGEMENT_PORT: (&str, &str) = ("MANAGEMENT_SERVER_PORT", "8081");

/// What the image demands of its pod, read at the pinned tag.
///
/// No `required` entries: nothing the operator could leave out stops the process at start as
/// far as the source shows. The settings the service needs to do its work
/// (`SERVICES_PSEUDONYMIZER_URL`, `SERVICES_FHIRSERVER_ENABLED`/`_URL`, application.yml:83-101)
/// fail only per request. Without a database upstream says `SPRING_SQL_INIT_MODE=never` must be
/// set as well (README.md:44-52); that the bundled schema then breaks the start on the embedded
/// fallback database was not verified, so it is not stated as a requirement (the builder sets
/// it anyway).
const CONTRACT: ImageContract = ImageContract {
    image: "fhir-gateway",
    repository: "ghcr.io/miracum/fhir-gateway",
    source: "miracum/fhir-gateway@v3.14.2",
    program: None,
    reads: &[],
    user: ImageUser {
        // `USER 65532:65532`: numeric, so the kubelet can check it against runAsNonRoot.
        declared: "65532",
        uid: Some(65532),
        gid: Some(65532),
        cite: "miracum/fhir-gateway@v3.14.2:Dockerfile:17,25",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "embedded Tomcat's work directories under java.io.tmpdir; the upstream chart mounts an emptyDir there under a read-only root",
        cite: "miracum/charts@fhir-gateway-6.3.21:charts/fhir-gateway/templates/gateway-deployment.yaml:168-178",
    }],
    required: &[],
    // Spring Boot's default server port (application.yml sets none). The management port 8081
    // exists only with MANAGEMENT_SERVER_PORT=8081, hence only as the endpoints' condition.
    ports: &[8080],
    endpoints: &[
        Endpoint {
            path: "/livez",
            port: 8080,
            needs: Some(PROBE_PATHS),
            cite: "miracum/charts@fhir-gateway-6.3.21:charts/fhir-gateway/templates/gateway-deployment.yaml:107-108",
        },
        Endpoint {
            path: "/readyz",
            port: 8080,
            needs: Some(PROBE_PATHS),
            cite: "miracum/charts@fhir-gateway-6.3.21:charts/fhir-gateway/templates/gateway-deployment.yaml:107-108",
        },
        Endpoint {
            path: "/actuator/health/liveness",
            port: 8081,
            needs: Some(MANAGEMENT_PORT),
            cite: "miracum/fhir-gateway@v3.14.2:src/main/resources/application.yml:1-15",
        },
        Endpoint {
            path: "/actuator/health/readiness",
            port: 8081,
            needs: Some(MANAGEMENT_PORT),
            cite: "miracum/fhir-gateway@v3.14.2:src/main/resources/application.yml:1-15",
        },
    ],
    jvm: Some(Jvm {
        // A share of the limit (75 %), not a fixed heap.
        default_heap_mib: None,
        // Only an -Xmx here overrides the entrypoint's MaxRAMPercentage (module comment).
        options_env: "JAVA_TOOL_OPTIONS",
        cite: "miracum/fhir-gateway@v3.14.2:Dockerfile:27",
    }),
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
    sidecars: &[],
    uses_database: true,
    uses_oidc: false,
}];

/// At least the upstream chart's default (the Bitnami `small` preset, 768Mi limit: charts
/// fhir-gateway-6.3.21 values.yaml:90-92) with the heap at 60 % of it.
const PRESETS: Presets = Presets {
    small: Res {
        cpu: "250m",
        memory: "1Gi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "1",
        memory: "4Gi",
        cpu_limit: "4",
    },
};

/// Heap share of the memory limit (module comment).
const HEAP_PERCENT: u64 = 60;

/// The gateway cannot authenticate to an OIDC-protected Blaze (module comment).
fn checks(site: &SiteInput) -> Vec<CatalogError> {
    let blaze = Component::of(&blaze::COMPONENT).enabled(&site.spec.components);
    let oidc = site.spec.auth.as_ref().is_some_and(|a| a.oidc.is_some());
    if !(blaze && oidc) {
        return Vec::new();
    }
    vec![CatalogError::UnsupportedCombination {
        component: Component::of(&COMPONENT),
        field: COMPONENT.field,
        detail: "the FHIR gateway cannot write to spec.components.blaze while spec.auth.oidc is set: with OIDC, Blaze requires a bearer token on every FHIR request, and the gateway can only send HTTP Basic credentials, so every resource it forwards would be refused with 401. Either remove spec.auth.oidc (Blaze then stays inside the cluster) or disable spec.components.fhirGateway and load data into Blaze with a client that obtains tokens from the provider".to_string(),
    }]
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // Spring Boot relaxed binding of the gateway's `services.*` settings (names as in the
    // upstream application.yml:83-111).
    w.set("SERVICES_PSEUDONYMIZER_ENABLED", "true");
    // A FHIR base: the gateway calls `$de-identify` on it (processors/FhirPseudonymizer.java:33,53).
    w.set(
        "SERVICES_PSEUDONYMIZER_URL",
        format!("{}/fhir", ctx.url("fhir-pseudonymizer", HTTP_8080.port)),
    );
    // Off by default upstream (application.yml:92-94).
    w.set("SERVICES_FHIRSERVER_ENABLED", "true");
    w.set(
        "SERVICES_FHIRSERVER_URL",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            blaze::CONTEXT_PATH
        ),
    );
    // LOINC conversion is on by default with an empty URL (application.yml:84-88): every lab
    // value would make a failed call and count an error (LoincHarmonizer.java:124-169). The
    // catalogue deploys no converter, so it is off unless the site points the gateway at one
    // with SERVICES_LOINC_CONVERSIONS_URL in spec.components.fhirGateway.env (then upstream's
    // default, on, applies).
    let converter = ctx
        .spec
        .env
        .iter()
        .any(|e| e.name == "SERVICES_LOINC_CONVERSIONS_URL");
    if !converter {
        w.set("SERVICES_LOINC_CONVERSIONS_ENABLED", "false");
    }
    // `/livez` and `/readyz` exist only with this (application.yml:1-15 enables just
    // /actuator/health/{liveness,readiness}); the upstream chart sets it and probes them.
    w.set(PROBE_PATHS.0, PROBE_PATHS.1);
    // Moves every actuator endpoint (exposure `*`: heapdump, env, loggers…, application.yml:7-10)
    // off the port the ETL clients reach; the NetworkPolicy admits them to 8080 only. The
    // exposure is cut to what probes and metrics need as well.
    w.set(MANAGEMENT_PORT.0, MANAGEMENT_PORT.1);
    w.set(
        "MANAGEMENT_ENDPOINTS_WEB_EXPOSURE_INCLUDE",
        "health,info,prometheus",
    );
    if let Some(limit) = pod::memory_limit_mib(ctx, &PRESETS) {
        w.set(
            "JAVA_TOOL_OPTIONS",
            format!("-Xmx{}m", limit * HEAP_PERCENT / 100),
        );
    }
    // Kafka is not modelled by the DizSite; a site that streams sets the SERVICES_KAFKA_* and
    // SPRING_KAFKA_* variables through spec.components.fhirGateway.env.
    match ctx.database() {
        Some(db) => {
            w.set("SERVICES_PSQL_ENABLED", "true");
            // The coordinates the JDBC URL is composed of, and the credentials by name.
            w.env.push(db.host_var(database::ENV_HOST));
            w.env.push(db.port_var(database::ENV_PORT));
            w.env.push(db.name_var(database::ENV_NAME));
            // ApplicationName as upstream, for pg_stat_activity (charts _helpers.tpl:135-141).
            w.env_value(
                "SPRING_DATASOURCE_URL",
                format!(
                    "{}?ApplicationName=fhir-gateway",
                    database::jdbc_postgres_url()
                ),
            );
            w.env.push(db.user_var("SPRING_DATASOURCE_USERNAME"));
            w.env.push(db.password_var("SPRING_DATASOURCE_PASSWORD"));
        }
        None => {
            // Both are needed to run without a database (README.md:44-52): the schema init runs
            // at every start otherwise (application.yml:78-81).
            w.set("SERVICES_PSQL_ENABLED", "false");
            w.set("SPRING_SQL_INIT_MODE", "never");
        }
    }
    w.startup = Some(pod::startup(pod::http_probe("/livez", "http"), 300));
    w.readiness = Some(pod::http_probe("/readyz", "http"));
    w.liveness = Some(pod::http_probe("/livez", "http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
