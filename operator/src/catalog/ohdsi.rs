//! OHDSI: WebAPI (the REST backend on the OMOP CDM database), Atlas (the browser UI, static
//! files) and Achilles (characterisation of the CDM, a weekly CronJob).
//!
//! WebAPI and Atlas are exposed through the ingress: Atlas runs in the researcher's browser and
//! calls WebAPI directly. Achilles only talks to the database.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, no_checks, no_settings,
};
use super::database;
use super::pod::{self, Presets, Res, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "ohdsi",
    field: "ohdsi",
    description: "OHDSI WebAPI and Atlas",
    spec: |c| c.ohdsi.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "ohdsi",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

const PARTS: [Part; 3] = [
    Part {
        name: "ohdsi-webapi",
        role: "webapi",
        image: "ohdsi-webapi",
        ports: &[HTTP_8080],
        exposure: Exposure::Unauthenticated("/WebAPI"),
        entry_point: false,
        calls: &[],
        uses_database: true,
        uses_oidc: true,
    },
    Part {
        name: "ohdsi-atlas",
        role: "frontend",
        image: "ohdsi-atlas",
        ports: &[HTTP_8080],
        exposure: Exposure::Unauthenticated("/atlas"),
        entry_point: false,
        calls: &[],
        uses_database: false,
        uses_oidc: false,
    },
    Part {
        name: "ohdsi-achilles",
        role: "analytics",
        image: "ohdsi-achilles",
        ports: &[],
        exposure: Exposure::Never,
        entry_point: false,
        calls: &[],
        uses_database: true,
        uses_oidc: false,
    },
];

const WEBAPI_PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "2",
    },
    medium: Res {
        cpu: "1",
        memory: "3Gi",
        cpu_limit: "4",
    },
    large: Res {
        cpu: "2",
        memory: "4Gi",
        cpu_limit: "4",
    },
};

const ATLAS_PRESETS: Presets = Presets {
    small: Res {
        cpu: "50m",
        memory: "64Mi",
        cpu_limit: "250m",
    },
    medium: Res {
        cpu: "100m",
        memory: "128Mi",
        cpu_limit: "500m",
    },
    large: Res {
        cpu: "200m",
        memory: "256Mi",
        cpu_limit: "1",
    },
};

const ACHILLES_PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "1Gi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "1",
        memory: "2Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "2",
        memory: "4Gi",
        cpu_limit: "4",
    },
};

/// The schema WebAPI keeps its own tables in, next to the CDM.
const WEBAPI_SCHEMA: &str = "webapi";
/// Sundays 03:00 in the site's time zone: Achilles scans the whole CDM.
pub const ACHILLES_SCHEDULE: &str = "0 3 * * 0";

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let db = ctx.database();
    let mut errors = Vec::new();
    for result in [
        pod::build(ctx, webapi(ctx, db.as_ref())),
        pod::build(ctx, atlas(ctx)),
        pod::build(ctx, achilles(ctx, db.as_ref())),
    ] {
        match result {
            Ok(c) => children.extend(c),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(children)
    } else {
        Err(errors)
    }
}

fn webapi(ctx: &Ctx, db: Option<&database::Wiring>) -> Workload {
    let mut w = Workload::deployment(&PARTS[0], &WEBAPI_PRESETS);
    // Spring settings as in the OHDSI WebAPI docker documentation.
    w.set("DATASOURCE_DRIVERCLASSNAME", "org.postgresql.Driver");
    w.set("DATASOURCE_OHDSI_SCHEMA", WEBAPI_SCHEMA);
    w.set(
        "SPRING_JPA_PROPERTIES_HIBERNATE_DEFAULT_SCHEMA",
        WEBAPI_SCHEMA,
    );
    w.set(
        "SPRING_JPA_PROPERTIES_HIBERNATE_DIALECT",
        "org.hibernate.dialect.PostgreSQLDialect",
    );
    w.set(
        "SPRING_BATCH_REPOSITORY_TABLEPREFIX",
        format!("{WEBAPI_SCHEMA}.BATCH_"),
    );
    w.set("FLYWAY_DATASOURCE_DRIVERCLASSNAME", "org.postgresql.Driver");
    w.set("FLYWAY_BASELINEONMIGRATE", "true");
    w.set("FLYWAY_TABLE", "schema_history");
    w.set("FLYWAY_LOCATIONS", "classpath:db/migration/postgresql");
    w.set("FLYWAY_PLACEHOLDERS_OHDSISCHEMA", WEBAPI_SCHEMA);
    w.set("FLYWAY_SCHEMAS", WEBAPI_SCHEMA);
    if let Some(db) = db {
        w.env.extend(db.env());
        w.env_value("DATASOURCE_URL", database::jdbc_postgres_url());
        w.env.push(db.user_var("DATASOURCE_USERNAME"));
        w.env.push(db.password_var("DATASOURCE_PASSWORD"));
        w.env_value("FLYWAY_DATASOURCE_URL", database::jdbc_postgres_url());
        w.env.push(db.user_var("FLYWAY_DATASOURCE_USERNAME"));
        w.env.push(db.password_var("FLYWAY_DATASOURCE_PASSWORD"));
    }
    match ctx.oidc() {
        Some(oidc) => {
            w.set("SECURITY_PROVIDER", "AtlasRegularSecurity");
            w.set("SECURITY_AUTH_OPENID_ENABLED", "true");
            w.set("SECURITY_OID_CLIENTID", oidc.client_id.clone());
            w.set(
                "SECURITY_OID_URL",
                format!(
                    "{}/.well-known/openid-configuration",
                    oidc.issuer_url.trim_end_matches('/')
                ),
            );
            if let Some(base) = ctx.public_base() {
                w.set(
                    "SECURITY_OID_REDIRECTURL",
                    format!("{base}/atlas/#/welcome"),
                );
            }
            if let Some(secret) = &oidc.client_secret_ref {
                w.env.push(database::secret_env(
                    "SECURITY_OID_APISECRET",
                    &secret.name,
                    &secret.key,
                ));
            }
        }
        None => w.set("SECURITY_PROVIDER", "DisabledSecurity"),
    }
    // Flyway migrates the WebAPI schema on the first start of a new version, which can take
    // several minutes on a populated database.
    w.startup = Some(pod::startup(pod::http_probe("/WebAPI/info", "http"), 600));
    w.readiness = Some(pod::http_probe("/WebAPI/info", "http"));
    w.liveness = Some(pod::http_probe("/WebAPI/info", "http"));
    w
}

fn atlas(ctx: &Ctx) -> Workload {
    let mut w = Workload::deployment(&PARTS[1], &ATLAS_PRESETS);
    // nginx (unprivileged image) caches and keeps its pid under these.
    w.writable_dirs = &["/tmp", "/var/cache/nginx"];
    // Atlas runs in the browser, so WebAPI's URL is the public one; without an ingress the same
    // origin (port-forward to Atlas and WebAPI) is assumed.
    let webapi = ctx
        .public_base()
        .map_or_else(|| "/WebAPI/".to_string(), |b| format!("{b}/WebAPI/"));
    let auth = if ctx.oidc().is_some() {
        "  configLocal.userAuthenticationEnabled = true;\n  configLocal.authProviders = [{ name: 'OpenID Connect', url: 'user/login/openid', ajax: false, icon: 'fa fa-openid' }];\n"
    } else {
        "  configLocal.userAuthenticationEnabled = false;\n"
    };
    // Mounted over the image's config-local.js instead of letting its entrypoint render it,
    // because the root filesystem is read-only.
    w.files.push((
        "/usr/share/nginx/html/atlas/js/config-local.js",
        format!(
            "define([], function () {{\n  var configLocal = {{}};\n  configLocal.api = {{ name: 'OHDSI', url: '{webapi}' }};\n{auth}  return configLocal;\n}});\n"
        ),
    ));
    w.startup = Some(pod::startup(pod::http_probe("/atlas/", "http"), 60));
    w.readiness = Some(pod::http_probe("/atlas/", "http"));
    w.liveness = Some(pod::http_probe("/atlas/", "http"));
    w
}

fn achilles(ctx: &Ctx, db: Option<&database::Wiring>) -> Workload {
    let mut w = Workload::deployment(&PARTS[2], &ACHILLES_PRESETS);
    w.kind = WorkloadKind::CronJob {
        schedule: ACHILLES_SCHEDULE.to_string(),
        time_zone: ctx
            .site
            .spec
            .maintenance_window
            .as_ref()
            .map_or_else(crate::api::default_time_zone, |m| m.time_zone.clone()),
    };
    // R writes its session files under HOME.
    w.set("HOME", "/tmp");
    w.set("ACHILLES_SOURCE", ctx.site.name);
    w.set("ACHILLES_CDM_VERSION", "5.4");
    w.set("ACHILLES_CDM_SCHEMA", "cdm");
    w.set("ACHILLES_VOCAB_SCHEMA", "cdm");
    w.set("ACHILLES_RES_SCHEMA", "results");
    if let Some(db) = db {
        w.env.extend(db.env());
        w.env_value(
            "ACHILLES_DB_URI",
            format!(
                "postgresql://$({}):$({})/$({})",
                database::ENV_HOST,
                database::ENV_PORT,
                database::ENV_NAME
            ),
        );
        w.env.push(db.user_var("ACHILLES_DB_USERNAME"));
        w.env.push(db.password_var("ACHILLES_DB_PASSWORD"));
    }
    w
}
