//! OHDSI: WebAPI (the REST backend on the OMOP CDM database), Atlas (the browser UI, static
//! files) and Achilles (characterisation of the CDM, a weekly CronJob).
//!
//! WebAPI and Atlas are published on the ingress: Atlas runs in the researcher's browser and
//! calls WebAPI directly. With `spec.auth.oidc` WebAPI logs users in through the site's identity
//! provider (`AtlasRegularSecurity`, OpenID Connect only); that needs the ingress, because the
//! provider sends users back to a public URL (refused otherwise, see [`checks`]). Without OIDC
//! WebAPI runs with `DisabledSecurity`, which lets every request through — source management and
//! jobs against the CDM included (OHDSI/WebAPI@v2.15.0:src/main/java/org/ohdsi/webapi/shiro/management/DisabledSecurity.java:31-37)
//! — so both are published only with OIDC (`Exposure::WithOidc`): without it they run
//! unpublished (reachable by `kubectl port-forward` only, the NetworkPolicies admit nobody) and
//! the DizSite's `Published` condition says so. Atlas itself is static files, but it is useful
//! only next to WebAPI and shows its configuration to anyone. Achilles only talks to the
//! database.
//!
//! Image facts were read at OHDSI/WebAPI and OHDSI/Atlas `v2.15.0` (the pinned versions) and
//! nginxinc/docker-nginx-unprivileged `1.27.2` (Atlas' base image).
//!
//! Achilles has no contract: OHDSI/Achilles `v1.7.2` ships no Dockerfile, and no upstream build
//! publishing `ohdsi/achilles:1.7.2` was found, so nothing about that image (its user, working
//! directory, entrypoint) is verified. The settings below are those of OHDSI/Broadsea-Achilles
//! (`ohdsi/broadsea-achilles`, which installs Achilles v1.7.2 and reads `ACHILLES_*`,
//! OHDSI/Broadsea-Achilles@c40e549:src/entrypoint.r:8-77); whether the pinned image is that
//! build is unverified.
//!
//! Not done by the operator (a site task): WebAPI shows no data until its `source` and
//! `source_daimon` rows point at the CDM, vocabulary and results schemas, and Achilles needs the
//! `cdm` and `results` schemas to exist.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, ReplicaLimit, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Required, Write, WriteKind};
use super::database;
use super::pod::{self, Presets, Res, Workload, WorkloadKind};
use super::{CatalogError, Child, Component, Ctx, HTTP_8080, Part, SiteInput};

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
    // OHDSI/WebAPI@v2.15.0:src/main/java/org/ohdsi/webapi/shiro/TokenManager.java:31-43.
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "WebAPI signs each login token with a key generated in the pod's memory, so another replica rejects it",
    }),
    storage: false,
    needs: &[],
    checks,
    security_exceptions: &[],
    contracts: &[WEBAPI_CONTRACT, ATLAS_CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 3] = [
    Part {
        name: "ohdsi-webapi",
        role: "webapi",
        image: "ohdsi-webapi",
        ports: &[HTTP_8080],
        exposure: Exposure::WithOidc("/WebAPI"),
        entry_point: false,
        calls: &[],
        sidecars: &[],
        uses_database: true,
        uses_oidc: true,
    },
    Part {
        name: "ohdsi-atlas",
        role: "frontend",
        image: "ohdsi-atlas",
        ports: &[HTTP_8080],
        exposure: Exposure::WithOidc("/atlas"),
        entry_point: false,
        calls: &[],
        sidecars: &[],
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
        sidecars: &[],
        uses_database: true,
        uses_oidc: false,
    },
];

const WEBAPI: &str = "OHDSI/WebAPI@v2.15.0";

/// What the WebAPI image demands, read at OHDSI/WebAPI v2.15.0.
const WEBAPI_CONTRACT: ImageContract = ImageContract {
    image: "ohdsi-webapi",
    repository: "ohdsi/webapi",
    source: WEBAPI,
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "101",
        uid: Some(101),
        // `USER 101` names no group and eclipse-temurin:8-jre has no entry for uid 101: the gid
        // is unverified (0 by Docker's default).
        gid: None,
        cite: "OHDSI/WebAPI@v2.15.0:Dockerfile:62",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "embedded Tomcat's work and docbase directories (java.io.tmpdir)",
        cite: "OHDSI/WebAPI@v2.15.0:pom.xml:27",
    }],
    // Without them the image connects to the database baked in at build time (a public IP with
    // placeholder credentials) and Flyway's migration at start fails.
    required: &[
        Required {
            name: "DATASOURCE_URL",
            secret: false,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:pom.xml:1344",
        },
        Required {
            name: "DATASOURCE_USERNAME",
            secret: false,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:pom.xml:1345",
        },
        Required {
            name: "DATASOURCE_PASSWORD",
            secret: true,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:pom.xml:1346",
        },
        Required {
            name: "FLYWAY_DATASOURCE_URL",
            secret: false,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:src/main/resources/application.properties:35",
        },
        Required {
            name: "FLYWAY_DATASOURCE_USERNAME",
            secret: false,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:pom.xml:1351",
        },
        Required {
            name: "FLYWAY_DATASOURCE_PASSWORD",
            secret: true,
            message: "",
            cite: "OHDSI/WebAPI@v2.15.0:pom.xml:1352",
        },
    ],
    ports: &[8080],
    endpoints: &[Endpoint {
        path: "/WebAPI/info",
        port: 8080,
        needs: None,
        cite: "OHDSI/WebAPI@v2.15.0:src/main/java/org/ohdsi/webapi/info/InfoService.java:34,54-55",
    }],
    jvm: Some(Jvm {
        // No heap flag: the JVM's default, a quarter of the container limit.
        default_heap_mib: None,
        options_env: "JAVA_OPTS",
        cite: "OHDSI/WebAPI@v2.15.0:Dockerfile:38,65-67",
    }),
};

/// What the Atlas image demands, read at OHDSI/Atlas v2.15.0 and its base image.
///
/// Not listed as a write: `js/config-local.js`, which the image's start hook rewrites in place
/// only when `WEBAPI_URL` is non-empty or a file exists at `CONFIG_PATH`
/// (OHDSI/Atlas@v2.15.0:docker/30-atlas-env-subst.sh:5-31). A contract cannot state that
/// condition; [`atlas`] sets `WEBAPI_URL` empty and mounts nothing at `CONFIG_PATH`, so the file
/// is only read (`catalog_components` tests keep it so).
const ATLAS_CONTRACT: ImageContract = ImageContract {
    image: "ohdsi-atlas",
    repository: "ohdsi/atlas",
    source: "OHDSI/Atlas@v2.15.0",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "101",
        uid: Some(101),
        gid: None,
        cite: "nginxinc/docker-nginx-unprivileged@1.27.2:mainline/alpine-slim/Dockerfile:15-21,138",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "nginx's pid file and proxy/client temp paths",
        cite: "nginxinc/docker-nginx-unprivileged@1.27.2:mainline/alpine-slim/Dockerfile:119-120",
    }],
    required: &[],
    ports: &[8080],
    endpoints: &[Endpoint {
        path: "/atlas/",
        port: 8080,
        needs: None,
        cite: "OHDSI/Atlas@v2.15.0:Dockerfile:149",
    }],
    jvm: None,
};

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
/// Atlas' page after login and logout; WebAPI appends the token to it.
const ATLAS_WELCOME: &str = "/atlas/#/welcome";
/// Where Atlas is served from, and the config file in it its start hook would rewrite.
const ATLAS_CONFIG: &str = "/usr/share/nginx/html/atlas/js/config-local.js";

/// Login providers WebAPI registers under `AtlasRegularSecurity` unless switched off (all on by
/// default, OHDSI/WebAPI@v2.15.0:pom.xml:172-181): only OpenID Connect is used.
const UNUSED_LOGINS: &[&str] = &[
    "JDBC", "LDAP", "AD", "KERBEROS", "WINDOWS", "CAS", "GOOGLE", "FACEBOOK", "GITHUB",
];

/// With OIDC, the identity provider sends users back to a public URL of WebAPI: without an
/// ingress there is none.
fn checks(site: &SiteInput) -> Vec<CatalogError> {
    let oidc = site.spec.auth.as_ref().is_some_and(|a| a.oidc.is_some());
    if oidc && site.spec.ingress.is_none() {
        vec![CatalogError::UnsupportedCombination {
            component: Component::of(&COMPONENT),
            field: COMPONENT.field,
            detail: "with spec.auth.oidc, OHDSI WebAPI logs users in through the identity provider, which must send them back to a public URL (<host>/WebAPI/user/oauth/callback); set spec.ingress, or disable spec.components.ohdsi".to_string(),
        }]
    } else {
        Vec::new()
    }
}

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
    // Spring settings as Broadsea sets them (OHDSI/Broadsea@v3.5.1:compose/ohdsi-webapi.yml:35-48);
    // the image's defaults name schema `ohdsi` (OHDSI/WebAPI@v2.15.0:pom.xml:1348-1356).
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
    // The image sets no heap, so the JVM would take a quarter of the limit; the start command
    // passes JAVA_OPTS on (OHDSI/WebAPI@v2.15.0:Dockerfile:38,65-67).
    w.set("JAVA_OPTS", "-XX:MaxRAMPercentage=75.0");
    // Off whatever the provider: they default to on (OHDSI/WebAPI@v2.15.0:pom.xml:172-181) and
    // register their login paths under AtlasRegularSecurity; only OpenID Connect is used.
    for login in UNUSED_LOGINS {
        w.set(&format!("SECURITY_AUTH_{login}_ENABLED"), "false");
    }
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
            // `checks` refuses OIDC without an ingress, so the base is always there. The
            // defaults are localhost URLs (OHDSI/WebAPI@v2.15.0:pom.xml:83-86,98,101).
            if let Some(base) = ctx.public_base() {
                // The OIDC redirect_uri (AtlasRegularSecurity.java:334-336); register it at the
                // identity provider.
                w.set(
                    "SECURITY_OAUTH_CALLBACK_API",
                    format!("{base}/WebAPI/user/oauth/callback"),
                );
                // Where WebAPI hands the token to Atlas after login (AtlasRegularSecurity.java:299).
                w.set(
                    "SECURITY_OAUTH_CALLBACK_UI",
                    format!("{base}{ATLAS_WELCOME}"),
                );
                w.set("SECURITY_OID_LOGOUTURL", format!("{base}{ATLAS_WELCOME}"));
                // Where a failed login lands (AtlasRegularSecurity.java:208,278-279).
                w.set("SECURITY_OID_REDIRECTURL", format!("{base}{ATLAS_WELCOME}"));
                // CORS Allow-Origin, `http://localhost` by default (CorsFilter.java:27-50).
                w.set("SECURITY_ORIGIN", base);
            }
            if let Some(secret) = &oidc.client_secret_ref {
                w.env.push(database::secret_env(
                    "SECURITY_OID_APISECRET",
                    &secret.name,
                    &secret.key,
                ));
            }
            // AtlasRegularSecurity opens a pool to `security.db.datasource.*` at start, which the
            // image bakes to a public IP with placeholder credentials
            // (OHDSI/WebAPI@v2.15.0:src/main/java/org/ohdsi/webapi/AuthDataSource.java:32-84,
            // pom.xml:1358-1361): point it at the site's database.
            w.set(
                "SECURITY_DB_DATASOURCE_DRIVERCLASSNAME",
                "org.postgresql.Driver",
            );
            w.set("SECURITY_DB_DATASOURCE_SCHEMA", WEBAPI_SCHEMA);
            if let Some(db) = db {
                w.env_value("SECURITY_DB_DATASOURCE_URL", database::jdbc_postgres_url());
                w.env.push(db.user_var("SECURITY_DB_DATASOURCE_USERNAME"));
                w.env
                    .push(db.password_var("SECURITY_DB_DATASOURCE_PASSWORD"));
            }
        }
        None => {
            w.set("SECURITY_PROVIDER", "DisabledSecurity");
            w.set("SECURITY_AUTH_OPENID_ENABLED", "false");
        }
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
    // nginx-unprivileged keeps its pid and temp files under /tmp
    // (nginxinc/docker-nginx-unprivileged@1.27.2:mainline/alpine-slim/Dockerfile:119-120);
    // /var/cache/nginx is the nginx user's home and compiled-in cache directory, writable in the
    // image (ibid. :122-123), kept writable in case a module uses it.
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
    // The config is mounted read-only over the image's config-local.js. The image's start hook
    // rewrites that file in place whenever WEBAPI_URL is non-empty (image default
    // `http://localhost:8080/WebAPI/`) and exits under `set -e` when it cannot, which stops nginx
    // (OHDSI/Atlas@v2.15.0:docker/30-atlas-env-subst.sh:3,15-31, Dockerfile:42): empty, it
    // leaves the file alone. Nothing is mounted at CONFIG_PATH (`/etc/atlas/config-local.js`,
    // Dockerfile:43), which the hook would copy over the same file.
    w.set("WEBAPI_URL", "");
    w.files.push((
        ATLAS_CONFIG,
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
    // The working directory: the JSON export (`<workspace>/<source>/<timestamp>`) and Achilles'
    // relative `output` folder with its logs (OHDSI/Broadsea-Achilles@c40e549:Dockerfile:91,
    // src/entrypoint.r:32,43-55,118-124; OHDSI/Achilles@v1.7.2:R/Achilles.R:176-181); R's
    // tempdir under /tmp. The same two directories the OHDSI chart mounts
    // (chgl/charts@592f4ae:charts/ohdsi/templates/achilles-cronjob.yaml:55-59,83-87).
    w.writable_dirs = &["/tmp", "/opt/achilles/workspace"];
    // R writes its session files under HOME.
    w.set("HOME", "/tmp");
    // `ACHILLES_*` as OHDSI/Broadsea-Achilles@c40e549:src/entrypoint.r:8-36 reads them.
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
