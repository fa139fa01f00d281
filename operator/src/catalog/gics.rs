//! gICS, the Greifswald consent management (WildFly), on an external MySQL.
//!
//! Deployed exactly like gPAS (same MOSAIC WildFly base image, same entrypoint), see
//! [`super::gpas`] for what the image does at start, the security exception and the known gaps
//! (notification-service datasource with published default credentials, unauthenticated UI,
//! manual schema upgrades; for gICS: `TTP_GICS_WEB_AUTH_MODE`, `update_database_gics_*.sql`).
//! Never exposed through the ingress.
//!
//! Sources: the gICS 2024.3.0 build files (`mosaic-hgw/gICS@a9e0353`, pom version 2024.3.0:
//! Dockerfile `FROM mosaicgreifswald/wildfly:34`, no USER line, so the base's `mosaic` applies)
//! and the base at `mosaic-hgw/Docker@e6a4439` (`wildfly:34-20241111`).

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
use super::contract::{Endpoint, ImageContract, Required};
use super::gpas::{TTP_JVM, TTP_PORTS, TTP_USER, TTP_WRITES};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "gics",
    field: "gics",
    description: "the gICS consent service",
    spec: |c| c.gics.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::MySql,
        name: "gics",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[SecurityException {
        part: "gics",
        text: super::gpas::SECURITY_EXCEPTION,
    }],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 1] = [Part {
    name: "gics",
    role: "consent-service",
    image: "gics",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    sidecars: &[],
    uses_database: true,
    uses_oidc: false,
}];

/// The README table of the 2024.3.0 compose bundle lists the datasource variables and their
/// defaults (host `mysql`, `gics_user`/`gics_password`).
const DB_CITE: &str = "mosaic-hgw/gICS@a9e0353:source/gics-project/gics-docker/src/compose-image/README_gICS.md §5, §7 (ttp_gics.env table); source/gics-project/gics-docker/src/commons/envs/ttp_gics.env:13-17";

const CONTRACT: ImageContract = ImageContract {
    image: "gics",
    repository: "mosaicgreifswald/gics",
    source: "mosaic-hgw/gICS@a9e0353 (2024.3.0 build files) + mosaic-hgw/Docker@e6a4439 (wildfly:34-20241111)",
    program: None,
    reads: &[],
    user: TTP_USER,
    writes: TTP_WRITES,
    required: &[
        Required {
            name: "TTP_GICS_DB_HOST",
            secret: false,
            message: "",
            cite: DB_CITE,
        },
        Required {
            name: "TTP_GICS_DB_PORT",
            secret: false,
            message: "",
            cite: DB_CITE,
        },
        Required {
            name: "TTP_GICS_DB_NAME",
            secret: false,
            message: "",
            cite: DB_CITE,
        },
        Required {
            name: "TTP_GICS_DB_USER",
            secret: false,
            message: "",
            cite: DB_CITE,
        },
        Required {
            name: "TTP_GICS_DB_PASS",
            secret: true,
            message: "",
            cite: DB_CITE,
        },
    ],
    ports: TTP_PORTS,
    // `/ttp-fhir/fhir/gics/metadata` is left out, as for gPAS: 401 with
    // TTP_FHIR_KEYCLOAK_ENABLE=true. `/gics/statisticService?wsdl` (upstream's second health
    // URL) is left out too: only the query string makes it answer 200.
    endpoints: &[
        Endpoint {
            path: "/",
            port: 8080,
            needs: None,
            cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/wildfly_started.sh:4",
        },
        Endpoint {
            path: "/gics-web",
            port: 8080,
            needs: None,
            cite: "mosaic-hgw/gICS@a9e0353:source/gics-project/gics-docker/src/dockerfile/README_gICS.md §3.2 (UI at /gics-web); mosaic-hgw/gICS@72c002f:source/gics-project/cm2-docker/src/commons/envs/ttp_commons.env:74 (WF_HEALTHCHECK_URLS)",
        },
    ],
    jvm: Some(TTP_JVM),
};

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    super::gpas::build_ttp(ctx, &PARTS[0], "TTP_GICS", "/gics-web")
}
