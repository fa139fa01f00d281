//! gPAS, the Greifswald pseudonym administration (WildFly), on an external MySQL.
//!
//! Never exposed through the ingress: it holds the link between identities and pseudonyms;
//! administrators reach its web UI through `kubectl port-forward`.
//!
//! Sources. No gPAS 2024.3.0 source is public: GitHub `mosaic-hgw/gPAS` ends at 2023.1.2
//! (`76e78fd`). The image is the MOSAIC WildFly base (`mosaic-hgw/Docker`, `wildfly:34-20241111`
//! at `e6a4439`, the base the 2024.3.0 tools were built on) plus the tool's archives and jboss-cli
//! scripts, laid out like its sibling gICS 2024.3.0 (`mosaic-hgw/gICS@a9e0353`). Facts below cite
//! the base, the gICS 2024.3.0 build files, or gPAS 2023.1.2 where only that exists.
//!
//! What the image does at every start, and how the pod meets it:
//! - it runs as the named user `mosaic` (uid/gid 1111): `runAsNonRoot` needs the number, so the
//!   pod runs as 1111 (with fsGroup 1111), which also owns the image's writable paths;
//! - the entrypoint re-runs the tool's jboss-cli scripts against `standalone.sh --admin-only`,
//!   rewriting `standalone.xml`, and keeps state under `/opt/mosaic`, which also holds WildFly
//!   itself: the root filesystem stays writable (the documented security exception);
//! - the base sets `JAVA_OPTS=-Xms1G -Xmx4G …`: replaced by a heap derived from the limit.
//!
//! Known gaps, documented rather than fixed:
//! - The image also deploys the MOSAIC notification service, whose datasource defaults to host
//!   `mysql`, database `notification_service` and the published credentials
//!   `noti_user`/`noti_password` (gICS 2024.3.0 README, `ttp_noti.env` table). The operator does
//!   not wire it: nothing in the catalogue uses notifications, and no host `mysql` exists in a
//!   site namespace, so the defaults reach no server. A site must not create that account with
//!   the published password (MOSAIC's `create_database_noti.sql` does). A site that wants
//!   notifications creates the schema and an account of its own and sets `TTP_NOTI_DB_HOST`,
//!   `_PORT`, `_NAME`, `_USER` under `env` and `TTP_NOTI_DB_PASS` with `env[].secretKeyRef`.
//!   The same holds for the gRAS datasource (`TTP_GRAS_DB_*`, used only with
//!   `TTP_GPAS_WEB_AUTH_MODE=gras`). Whether a datasource that cannot connect delays the
//!   deployment of gPAS itself is not verified.
//! - The web UI and SOAP services are unauthenticated by default (`TTP_GPAS_WEB_AUTH_MODE`
//!   unset); only the NetworkPolicy keeps other pods out. Sites set the Keycloak variables
//!   under `env` for a login.
//! - Schema upgrades are manual: MOSAIC ships `update_database_gpas_*.sql` for the admin to run
//!   before a new version starts; the image runs none.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Required, Write, WriteKind};
use super::pod::{self, Presets, Res, RunAs, Security, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "gpas",
    field: "gpas",
    description: "the gPAS pseudonym service",
    spec: |c| c.gpas.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::MySql,
        name: "gpas",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[SecurityException {
        part: "gpas",
        text: SECURITY_EXCEPTION,
    }],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 1] = [Part {
    name: "gpas",
    role: "pseudonym-service",
    image: "gpas",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    sidecars: &[],
    uses_database: true,
    uses_oidc: false,
}];

pub(crate) const SECURITY_EXCEPTION: &str = "The MOSAIC WildFly entrypoint rewrites standalone.xml with jboss-cli at every start and \
     keeps its state (ready markers, a pid list, an environment dump) under /opt/mosaic, which also holds WildFly and \
     its scripts, so the root filesystem stays writable; the pod runs as the image's user mosaic (uid/gid 1111), \
     non-root, with all capabilities dropped and no privilege escalation.";

/// The base's user: named `mosaic`, uid/gid 1111; it owns `/opt/mosaic` (mode 755).
/// The numeric uid of the base's `mosaic` user (see [`TTP_USER`]).
const MOSAIC_UID: i64 = 1111;

pub(crate) const TTP_USER: ImageUser = ImageUser {
    declared: "mosaic",
    uid: Some(MOSAIC_UID),
    gid: Some(MOSAIC_UID),
    cite: "mosaic-hgw/Docker@e6a4439:image/debian/Dockerfile.debian:29-32,58-60,97 (USER=mosaic, PROCESS_UID/GID=1111, useradd -u 1111, USER ${USER}); image/wildfly/Dockerfile.wildfly.34:145",
};

/// What the base's entrypoint writes at every start, for both tools. Only unconditional writes:
/// `standalone/deployments` (only with `WF_MARKERFILES=false`), `internal_cli/markerfiles.cli`
/// (only when `WF_MARKERFILES` changes) and `mgmt-users.properties` (only without
/// `WF_NO_ADMIN`) are left out, as is `standalone/tmp`, which WildFly writes by its own layout
/// but no MOSAIC source shows.
pub(crate) const TTP_WRITES: &[Write] = &[
    Write {
        path: "/opt/mosaic/ready",
        kind: WriteKind::Dir,
        why: "entrypoint markers: admin.created, markerfiles_mode, jboss_cli_block, <cli>.completed",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/create_wildfly_admin.sh:22; image/wildfly/scripts/run_wildfly.sh:39-48; image/wildfly/scripts/add_jboss_cli.sh:22-23,37,52",
    },
    Write {
        path: "/opt/mosaic/process_pids",
        kind: WriteKind::RewrittenFile,
        why: "run.sh keeps its pid list in $HOME (/opt/mosaic, mode 755, owner 1111)",
        cite: "mosaic-hgw/Docker@e6a4439:image/debian/scripts/run.sh:111-113; image/debian/Dockerfile.debian:60",
    },
    Write {
        path: "/opt/mosaic/env.properties",
        kind: WriteKind::RewrittenFile,
        why: "`env > env.properties` for jboss-cli (holds every variable, the DB password too), deleted afterwards",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/add_jboss_cli.sh:22,52",
    },
    Write {
        path: "/opt/mosaic/wildfly/standalone/configuration/standalone.xml",
        kind: WriteKind::RewrittenFile,
        why: "every start runs /entrypoint-wildfly-cli/*.cli (datasources, loggers, auth) against `standalone.sh --admin-only`",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/add_jboss_cli.sh:13-47,51; image/wildfly/scripts/run_wildfly.sh:60,69",
    },
    Write {
        path: "/entrypoint-wildfly-deployments",
        kind: WriteKind::Dir,
        why: "the deployment scanner 'entrypoint' scans it in place and writes .isdeploying/.deployed markers; WF_MARKERFILES=auto probes it",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/Dockerfile.wildfly.34:111-112; image/wildfly/scripts/run_wildfly.sh:18-37",
    },
    Write {
        path: "/entrypoint-logs/wildfly",
        kind: WriteKind::Dir,
        why: "jboss.server.log.dir (server.log); run.sh checks it is writable",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/run_wildfly.sh:71; image/debian/scripts/run.sh:14-15",
    },
    Write {
        path: "/opt/mosaic/wildfly/standalone/data",
        kind: WriteKind::Dir,
        why: "WildFly's data directory, with data/addins (= /entrypoint-wildfly-addins)",
        cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/Dockerfile.wildfly.34:138-140",
    },
];

/// The base listens on HTTP 8080, management 9990 (bound to 0.0.0.0) and AJP 8009.
pub(crate) const TTP_PORTS: &[i32] = &[8080, 9990, 8009];

/// `JAVA_OPTS` in the base: `-Xms1G -Xmx4G`, passed by standalone.sh on the command line.
pub(crate) const TTP_JVM: Jvm = Jvm {
    default_heap_mib: Some(4096),
    options_env: "JAVA_OPTS",
    cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/Dockerfile.wildfly.34:56 (ENV JAVA_OPTS=\"-server -Xms1G -Xmx4G …\"); gICS@a9e0353 README_gICS.md §7 lists JAVA_OPTS as the tuning knob",
};

/// Replaces the base's whole `JAVA_OPTS` (it is one variable, so every other flag of the base is
/// kept): the heap follows the memory limit instead of a fixed `-Xms1G -Xmx4G`. Half the limit,
/// because during start a second JVM (`standalone.sh --admin-only` for the jboss-cli pass) runs
/// with the same options, and metaspace may take up to 1G beside the heap.
pub(crate) const TTP_JAVA_OPTS: &str = "-server -XX:InitialRAMPercentage=10 -XX:MaxRAMPercentage=50 \
     -XX:MetaspaceSize=256M -XX:MaxMetaspaceSize=1G -XX:StringTableSize=1000003 \
     -Djava.net.preferIPv4Stack=true -Djava.awt.headless=true \
     -Djboss.modules.system.pkgs=org.jboss.byteman";

pub(crate) const CONTRACT: ImageContract = ImageContract {
    image: "gpas",
    repository: "mosaicgreifswald/gpas",
    source: "mosaic-hgw/Docker@e6a4439 (wildfly:34-20241111) + mosaic-hgw/gICS@a9e0353 (2024.3.0, sibling layout) + mosaic-hgw/gPAS@76e78fd (2023.1.2; no 2024.3.0 source is public)",
    program: None,
    reads: &[],
    user: TTP_USER,
    writes: TTP_WRITES,
    // The datasource has defaults (host `mysql`, `gpas_user`/`gpas_password`): without these
    // the pool points at a host that does not exist, and the published password.
    required: &[
        Required {
            name: "TTP_GPAS_DB_HOST",
            secret: false,
            message: "",
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/deploy/configure_wildfly_gpas.cli (default mysql); mosaic-hgw/gICS@a9e0353:source/gics-project/gics-docker/src/compose-image/README_gICS.md §7 (TTP_<TOOL>_DB_* table)",
        },
        Required {
            name: "TTP_GPAS_DB_PORT",
            secret: false,
            message: "",
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/deploy/configure_wildfly_gpas.cli (default 3306)",
        },
        Required {
            name: "TTP_GPAS_DB_NAME",
            secret: false,
            message: "",
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/deploy/configure_wildfly_gpas.cli (default gpas)",
        },
        Required {
            name: "TTP_GPAS_DB_USER",
            secret: false,
            message: "",
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/deploy/configure_wildfly_gpas.cli (default gpas_user)",
        },
        Required {
            name: "TTP_GPAS_DB_PASS",
            secret: true,
            message: "",
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/deploy/configure_wildfly_gpas.cli (default gpas_password, published)",
        },
    ],
    ports: TTP_PORTS,
    // `/ttp-fhir/fhir/gpas/metadata` is left out: it answers 401 once a site sets
    // `TTP_FHIR_KEYCLOAK_ENABLE=true`, a condition on a variable being unset that a contract
    // cannot state.
    endpoints: &[
        Endpoint {
            path: "/",
            port: 8080,
            needs: None,
            cite: "mosaic-hgw/Docker@e6a4439:image/wildfly/scripts/wildfly_started.sh:4 (the image's own started test: 200 on /)",
        },
        Endpoint {
            path: "/gpas-web",
            port: 8080,
            needs: None,
            cite: "mosaic-hgw/gPAS@76e78fd:source/psn-project/psn-docker/src/commons/envs/ttp_commons.env:74 (upstream WF_HEALTHCHECK_URLS); source/psn-project/psn-docker/src/dockerfile/README_gPAS.md:94",
        },
    ],
    jvm: Some(TTP_JVM),
};

/// MOSAIC documents "für WildFly: min. 4 GB RAM" (gPAS@76e78fd:…/dockerfile/README_gPAS.md:56;
/// gICS@a9e0353:…/dockerfile/README_gICS.md §2): no preset goes below it.
pub(crate) const TTP_PRESETS: Presets = Presets {
    small: Res {
        cpu: "250m",
        memory: "4Gi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "500m",
        memory: "6Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "1",
        memory: "8Gi",
        cpu_limit: "4",
    },
};

/// MOSAIC documents up to five minutes for the first start on a 4 GB host
/// (gPAS@76e78fd:…/compose-image/README_gPAS.md:88); every start here boots WildFly twice (the
/// jboss-cli pass in admin-only mode, then the server with five archives) on 1–4 cores.
pub(crate) const TTP_STARTUP_SECONDS: i32 = 600;

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    build_ttp(ctx, &PARTS[0], "TTP_GPAS", "/gpas-web")
}

/// gPAS and gICS are the same WildFly image with different archives; `prefix` is the env prefix
/// the MOSAIC images document (`TTP_GPAS_DB_HOST`, `TTP_GICS_DB_HOST`, …), `web` the path of
/// the tool's web archive.
pub(crate) fn build_ttp(
    ctx: &Ctx,
    part: &'static Part,
    prefix: &str,
    web: &str,
) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(part, &TTP_PRESETS);
    // SECURITY_EXCEPTION: writable root filesystem. The named user `mosaic` as its number, so
    // the kubelet can verify it is not root (Docker@e6a4439:image/debian/Dockerfile.debian:31-32).
    w.security = Security {
        run_as: RunAs::User(MOSAIC_UID),
        read_only_root: false,
    };
    // Any value skips creating the management user, whose password would otherwise be random
    // and printed to the log (Docker@e6a4439:image/wildfly/scripts/create_wildfly_admin.sh:8-18).
    w.set("WF_NO_ADMIN", "true");
    // 2024.x renamed `<TOOL>_LOG_TO_FILE` to `<TOOL>_LOG_TO`; CONSOLE keeps the tool's log in
    // the container log (gICS@a9e0353:…/compose-image/README_gICS.md §7, ttp_gics.env:1-5; for
    // gPAS the same rename is assumed, its 2024.3.0 source is not public). CONSOLE is also the
    // default, so a tool that kept the old name still logs to the console.
    w.set(&format!("{prefix}_LOG_TO"), "CONSOLE");
    w.set("JAVA_OPTS", TTP_JAVA_OPTS);
    if let Some(db) = ctx.database() {
        w.env.push(db.host_var(&format!("{prefix}_DB_HOST")));
        w.env.push(db.port_var(&format!("{prefix}_DB_PORT")));
        w.env.push(db.name_var(&format!("{prefix}_DB_NAME")));
        w.env.push(db.user_var(&format!("{prefix}_DB_USER")));
        w.env.push(db.password_var(&format!("{prefix}_DB_PASS")));
    }
    // The tool's web archive answers once WildFly has deployed it: upstream's own health check
    // (WF_HEALTHCHECK_URLS, gPAS@76e78fd:…/envs/ttp_commons.env:74). Not the FHIR metadata,
    // which needs a token once a site turns on TTP_FHIR_KEYCLOAK_ENABLE. Liveness stays a cheap
    // TCP check so a slow database cannot get WildFly restarted.
    let ready = pod::http_probe(web, "http");
    w.startup = Some(pod::startup(ready.clone(), TTP_STARTUP_SECONDS));
    w.readiness = Some(ready);
    w.liveness = Some(pod::tcp_probe("http"));
    pod::build(ctx, w)
}
