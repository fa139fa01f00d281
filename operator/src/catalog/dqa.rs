//! MIRACUM data quality assessment (DQA): a Shiny app that reads a database directly.
//!
//! It reads i2b2's database when i2b2 is enabled (the star schema the tool was written for),
//! otherwise the FHIR gateway's.
//!
//! The image. The release pins `harbor.miracum.org/dqa/miracumdqa`, the consortium's own
//! registry, where MIRACUM DQA is published (the first catalogue named `ghcr.io/miracum/dqa`
//! 0.3.6, which nobody publishes: 0.3.6 is the version of the DQAstats R package, miracum/
//! dqa-dqastats tag v0.3.6). **No public source of the image exists**:
//! DQAstats publishes a batch image `ghcr.io/miracum/dqastats` (dqa-dqastats@v0.3.6:docker/.env,
//! docker/build_image.sh); the public Shiny GUI recipe (miracum/dqa-dqagui@v0.2.5:docker/) is
//! published as `joundso/dqagui` and starts in demo mode; the MIRACUM tool itself
//! (miracum/dqa-miracumdqa@e6a2dea) is built by GitLab CI in gitlab.miracum.org
//! (`dqatool_deployment`, historically `docker.miracum.org/dqa/miracumdqa`, later
//! harbor.miracum.org), which is not readable here. The GitHub workflows of these repositories
//! publish no image. The facts below are those of the public DQAgui recipe, which uses the same
//! pattern as MIRACUM's 2020 recipe (dqa-miracumdqa@ae03b29^:docker/): rocker/shiny-verse, Shiny
//! Server running as `shiny`, and an entrypoint that appends the environment to
//! `/home/shiny/.Renviron`. Sites must set the repository and digest of the image they really
//! run in their release.
//!
//! How the pod meets the image:
//! - it runs as `shiny`, uid 999: **unverified** on the pinned digest (the uid comes from
//!   `useradd -r` in the shiny-server package and is 999 up to rocker/shiny 4.4.1, 997 from
//!   4.4.2, rocker-org/rocker-versioned2#877). Shiny Server refuses to run apps `run_as shiny`
//!   as any other user, and the entrypoint writes into `/home/shiny`;
//! - the entrypoint runs `env >> /home/shiny/.Renviron` (the only way settings reach the R
//!   workers, which Shiny Server starts with HOME, LANG and PATH only), so `/home/shiny` is a
//!   seeded directory: the image's home (with DQAgui's log directory and TinyTeX for PDF
//!   reports) copied into an emptyDir first. That copy is large (TinyTeX) and made at every
//!   pod start;
//! - the Ingress routes `/dqa` without rewriting, and the image serves the app at `/`: the
//!   operator mounts its own Shiny Server configuration with the app at `location /dqa`; `/ping`
//!   is then answered by Shiny Server's built-in ping router (no location claims it), which the
//!   probes use without starting an R worker;
//! - database settings: `I2B2_*` or `FHIR_GW_*` (upper-cased MDR system names `i2b2` and
//!   `fhir_gw` plus `_HOST`, `_PORT`, `_DBNAME`, `_USER`, `_PASSWORD`).
//!
//! The app has no login, and it sends the database password of a chosen preset to the browser
//! (dqa-dqagui@v0.2.5:R/moduleConfig.R:661-676). It is therefore published only behind the login
//! proxy ([`super::login_proxy`], oauth2-proxy in the same pod), which needs `spec.auth.oidc`:
//! without OIDC DQA runs unpublished, reachable inside the cluster only (nothing else in the
//! catalogue calls it, so by NetworkPolicy it is reachable by nobody but `kubectl port-forward`),
//! and the DizSite's `Published` condition says so.
//!
//! Known gaps: it is wired with the owner account of the database it reads (sites should give it
//! a read-only account). Whether `<SYS>_SCHEMA` reaches the SQL (the i2b2 tables are unqualified)
//! and whether LaTeX writes below `.TinyTeX` at render time is not verified.

use super::component::{Access, DatabaseNeed, Descriptor, Exposure, Need, Provider, no_settings};
use super::contract::{Endpoint, ImageContract, ImageUser, Write, WriteKind};
use super::pod::{self, Presets, Res, RunAs, Workload};
use super::{
    CatalogError, Child, Component, Ctx, Part, Port, SiteInput, fhir_gateway, i2b2, login_proxy,
};

pub static COMPONENT: Descriptor = Descriptor {
    name: "dqa",
    field: "dqa",
    description: "the data quality assessment",
    spec: |c| c.dqa.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: None,
    storage: false,
    // i2b2's database is preferred: it holds the same data in the star schema DQA was written
    // for; the gateway's staging database is the fallback for sites without i2b2.
    needs: &[Need {
        purpose: "a database to assess (i2b2 or the FHIR gateway's)",
        one_of: &[
            Provider {
                component: &i2b2::COMPONENT,
                access: Access::Database,
            },
            Provider {
                component: &fhir_gateway::COMPONENT,
                access: Access::Database,
            },
        ],
    }],
    checks,
    security_exceptions: &[],
    contracts: &[CONTRACT, login_proxy::CONTRACT],
    build,
    defined: None,
};

const HTTP: Port = Port {
    name: "http",
    port: 3838,
};

/// Where the site's Ingress publishes the app, and where the operator's Shiny Server
/// configuration serves it.
const PATH: &str = "/dqa";

const PARTS: [Part; 1] = [Part {
    name: "dqa",
    role: "data-quality",
    image: "dqa",
    ports: &[HTTP],
    // It has no login of its own: published only behind the login proxy, with OIDC.
    exposure: Exposure::BehindLoginProxy(PATH),
    entry_point: false,
    calls: &[],
    sidecars: &[],
    uses_database: false,
    uses_oidc: false,
}];

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

/// The image's user's home: the entrypoint appends to `.Renviron` there and DQAgui logs to
/// `logs/` (dqa-dqagui@v0.2.5:docker/Dockerfile:147-155, docker/app.R:21).
const HOME: &str = "/home/shiny";

/// Shiny Server writes per-app logs and bookmarks; R renders reports in `tempdir()`.
const WRITABLE: &[&str] = &["/tmp", "/var/log/shiny-server", "/var/lib/shiny-server"];

/// Not verified on the pinned image (see the module comment); the recipe's named user.
const SHINY_UID: i64 = 999;

/// The Shiny Server configuration: the image's own, with the app moved from `location /` to the
/// path the Ingress routes (dqa-dqagui@v0.2.5:docker/shiny-server.conf). `app_dir` serves the
/// one app in `/srv/shiny-server` (the recipe's app.R) at that prefix.
const SHINY_SERVER_CONF: &str = "# Written by miracolix-operator: the image's configuration with the app at the\n\
# path the site's Ingress routes to it.\n\
run_as shiny;\n\
server {\n\
  listen 3838;\n\
  location /dqa {\n\
    app_dir /srv/shiny-server;\n\
    log_dir /var/log/shiny-server;\n\
  }\n\
}\n";

const CONTRACT: ImageContract = ImageContract {
    image: "dqa",
    // The repository the release pins; no public source produces it (module comment).
    repository: "harbor.miracum.org/dqa/miracumdqa",
    source: "miracum/dqa-dqagui@v0.2.5 (docker/; public Shiny recipe, not the source of harbor.miracum.org/dqa/miracumdqa, for which none is public) + rstudio/shiny-server@89625e0",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "shiny",
        uid: Some(SHINY_UID),
        // The group is not verified either and matters to nothing the pod writes (all volumes).
        gid: None,
        cite: "miracum/dqa-dqagui@v0.2.5:docker/Dockerfile:6,150 (ENV RSESSION_USER=shiny; USER ${RSESSION_USER}); the uid is UNVERIFIED: useradd -r shiny in rstudio/shiny-server@89625e0:packaging/debian-control/postinst.in:15, 999 for rocker/shiny <= 4.4.1 per rocker-org/rocker-versioned2#877",
    },
    writes: &[
        Write {
            path: "/home/shiny/.Renviron",
            kind: WriteKind::RewrittenFile,
            why: "ENTRYPOINT `env >> /home/shiny/.Renviron && chown … && shiny-server`: the only way settings reach the R workers",
            cite: "miracum/dqa-dqagui@v0.2.5:docker/Dockerfile:152-155; rstudio/shiny-server@89625e0:lib/worker/app-worker.ts:598-602",
        },
        Write {
            path: "/home/shiny/logs",
            kind: WriteKind::Dir,
            why: "DQAgui's logfile_dir",
            cite: "miracum/dqa-dqagui@v0.2.5:docker/app.R:21; docker/Dockerfile:147-148",
        },
        Write {
            path: "/var/log/shiny-server",
            kind: WriteKind::Dir,
            why: "log_dir of the location (per-app R logs)",
            cite: "miracum/dqa-dqagui@v0.2.5:docker/shiny-server.conf:19",
        },
        Write {
            path: "/var/lib/shiny-server",
            kind: WriteKind::Dir,
            why: "default bookmark_state_dir (bookmarks/), created when a worker starts",
            cite: "rstudio/shiny-server@89625e0:lib/router/config-router-util.js:61; lib/worker/app-worker.ts:265-285",
        },
        Write {
            path: "/tmp",
            kind: WriteKind::Dir,
            why: "R's tempdir(): report rendering and the app's settings",
            cite: "miracum/dqa-dqagui@v0.2.5:R/moduleReport.R:56-128; R/moduleConfig.R:1348-1363",
        },
    ],
    // The database settings depend on the source system (I2B2_* or FHIR_GW_*), and the app
    // starts without them (it offers no preset then): nothing is required unconditionally.
    required: &[],
    ports: &[3838],
    endpoints: &[Endpoint {
        path: "/ping",
        port: 3838,
        // Answered when no location claims /ping, as in the operator's configuration (only
        // /dqa); with the image's own `location /` it is not verified.
        needs: None,
        cite: "rstudio/shiny-server@89625e0:lib/main.js:110-128 (a ping router answering 200 OK on /ping, joined after the configured locations)",
    }],
    jvm: None,
};

/// The component whose database DQA reads, if any is enabled.
fn source(ctx: &Ctx) -> Option<Component> {
    ctx.dependencies().into_iter().find_map(|d| d.chosen)
}

/// DQA reading the gateway's database needs the gateway to have one.
fn checks(site: &SiteInput) -> Vec<CatalogError> {
    let components = &site.spec.components;
    let gateway = Component::of(&fhir_gateway::COMPONENT);
    let reads_gateway = !Component::of(&i2b2::COMPONENT).enabled(components)
        && gateway.enabled(components)
        && gateway
            .spec(components)
            .and_then(|g| g.database.as_ref())
            .is_none();
    if reads_gateway {
        vec![CatalogError::DatabaseRequired {
            component: gateway,
            field: gateway.field(),
            engine: "PostgreSQL",
            cnpg_hint: " or .cloudNativePG; spec.components.dqa reads the FHIR gateway's database when i2b2 is disabled",
        }]
    } else {
        Vec::new()
    }
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // The image's user as its number: Shiny Server runs apps only as `run_as shiny` when it is
    // not root (rstudio/shiny-server@89625e0:lib/router/config-router.js:40-87), and /home/shiny
    // belongs to it.
    w.security.run_as = RunAs::User(SHINY_UID);
    w.writable_dirs = WRITABLE;
    w.seeded_dirs = &[HOME];
    w.files.push((
        "/etc/shiny-server/shiny-server.conf",
        SHINY_SERVER_CONF.to_string(),
    ));
    // The app reads `<SYSTEM>_HOST`, `_PORT`, `_DBNAME`, `_USER` and `_PASSWORD`, SYSTEM being
    // the MDR's source system name upper-cased (dqa-dqagui@v0.2.5:R/app_utils.R:812-828):
    // `i2b2` and `fhir_gw` (dqa-miracumdqa@e6a2dea:inst/application/_utilities/MDR/mdr.csv).
    let source = source(ctx);
    let prefix = match source {
        Some(c) if c == Component::of(&fhir_gateway::COMPONENT) => "FHIR_GW",
        _ => "I2B2",
    };
    if let Some(db) = source.and_then(|c| ctx.database_of(c)) {
        w.env.push(db.host_var(&format!("{prefix}_HOST")));
        w.env.push(db.port_var(&format!("{prefix}_PORT")));
        w.env.push(db.name_var(&format!("{prefix}_DBNAME")));
        w.env.push(db.user_var(&format!("{prefix}_USER")));
        w.env.push(db.password_var(&format!("{prefix}_PASSWORD")));
    }
    // /ping is Shiny Server's own health answer; the app itself starts an R worker per session,
    // so probing it would start R every ten seconds. R starts lazily, so 120 s is ample.
    let ping = pod::http_probe("/ping", "http");
    w.startup = Some(pod::startup(ping.clone(), 120));
    w.readiness = Some(ping.clone());
    w.liveness = Some(ping);
    pod::build(ctx, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_served_where_the_ingress_routes_it() {
        assert!(SHINY_SERVER_CONF.contains(&format!("location {PATH} {{")));
        assert_eq!(PARTS[0].exposure.path(), Some(PATH));
        // Nothing else is claimed, so /ping reaches the ping router.
        assert_eq!(SHINY_SERVER_CONF.matches("location").count(), 1);
    }
}
