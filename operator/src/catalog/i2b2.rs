//! i2b2: the web client (Apache httpd with PHP) and the core server (WildFly with the i2b2
//! cells), on PostgreSQL.
//!
//! The web client is published on the ingress (users log in through i2b2's own project
//! management cell); the core server is reached only by the web client.
//!
//! How the web client reaches the core server: the browser posts every i2b2 message to the web
//! client's `proxy.php`, which relays it to the cell URL in the message after checking it
//! against a whitelist that always contains `http://127.0.0.1:8080`
//! (i2b2/i2b2-webclient@v1.8.1a.0001:proxy.php:34-43,132-144). The catalogue's
//! `i2b2_config_domains.json` therefore names the PM cell at `http://127.0.0.1:8080/i2b2/…`: the
//! web client's own Apache, which passes `/i2b2/` on to the core server's Service and answers it
//! for loopback callers only (so Axis2's admin pages under `/i2b2/` stay off the ingress). The
//! upstream image bakes in another host (`i2b2-wildfly`, by sed at build time,
//! i2b2/i2b2-docker-generator@44f02bb9:i2b2-web/create_web_image.sh:7-12, i2b2_proxy.conf:3-4);
//! nothing in it reads the core server's address from the environment.
//!
//! Which sources the images were built from is not verified: i2b2/i2b2-docker has no tag `1.8.1`
//! and no build of the names `i2b2/i2b2-webclient` / `i2b2/i2b2-core-server` at 1.8.1 was found.
//! Read instead: the 1.8.1 release (i2b2/i2b2-docker `v1.8.1a.0001` with its image sources in
//! i2b2/i2b2-docker-generator `44f02bb9`, and i2b2/i2b2-webclient / i2b2-core-server
//! `v1.8.1a.0001`) and the first build of the core server under its current name
//! (i2b2/i2b2-core-server `8fc8372f`, `docker/`, the layout of i2b2/i2b2-docker `1.8.2`). The
//! contracts state only what holds for every build read. The `DS_*` settings follow the second, which the
//! image name belongs to: `DS_<CELL>_DB` is the database, `DS_<CELL>_SCHEMA` the schema. The 1.8.1
//! build reads `DS_<CELL>_DB` as the schema in a database hard-coded `i2b2`
//! (i2b2/i2b2-docker-generator@44f02bb9:i2b2-wildfly/i2b2-wildfly/customization/execute.sh:66-79):
//! were the pinned image that build, every cell would look in schema `i2b2`. Check
//! `/opt/jboss/wildfly/customization/execute.sh` in the image before relying on it.
//!
//! Not done by the operator (a site task): the database must hold the i2b2 schemas and data
//! (upstream ships them pre-loaded in `i2b2/i2b2-data-pgsql`), and the PM cell's cell URLs
//! (`PM_CELL_DATA.URL`) must name `http://127.0.0.1:8080/i2b2/services/<Cell>/`, which works both
//! from the web client (through its Apache) and from the core server itself. The hive domain the
//! web client logs in to is [`DOMAIN`], the one upstream's data loads.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Write, WriteKind};
use super::database;
use super::pod::{self, NONROOT, Presets, Res, RunAs, Security, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "i2b2",
    field: "i2b2",
    description: "i2b2",
    spec: |c| c.i2b2.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "i2b2",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[SecurityException {
        part: "i2b2-core-server",
        text: SECURITY_EXCEPTION_CORE_SERVER,
    }],
    contracts: &[CORE_SERVER_CONTRACT, WEBCLIENT_CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 2] = [
    Part {
        name: "i2b2-core-server",
        role: "core-server",
        image: "i2b2-core-server",
        ports: &[HTTP_8080],
        // Reached only by the web client.
        exposure: Exposure::Never,
        entry_point: false,
        calls: &[],
        sidecars: &[],
        uses_database: true,
        uses_oidc: false,
    },
    Part {
        name: "i2b2-webclient",
        role: "webclient",
        image: "i2b2-webclient",
        // Apache listens on 8080 here (see `webclient`): a non-root user cannot bind 80.
        ports: &[HTTP_8080],
        // The path the upstream image serves it under; users log in through i2b2's own project
        // management cell.
        exposure: Exposure::OwnLogin("/webclient"),
        entry_point: false,
        // Its Apache passes `/i2b2/` on to the core server.
        calls: &[("i2b2-core-server", &[8080])],
        sidecars: &[],
        uses_database: false,
        uses_oidc: false,
    },
];

pub(crate) const SECURITY_EXCEPTION_CORE_SERVER: &str = "The i2b2 core server's start script configures WildFly at every start: \
     jboss-cli writes the datasources into standalone.xml, copies the PostgreSQL driver into modules/ and the i2b2 application \
     into standalone/deployments/, then restarts WildFly. The root filesystem therefore stays writable. The image ends with \
     USER root; the pod runs it as the non-root uid 65532 with primary group 0, the group the image gives write access to \
     standalone/ and modules/ for exactly this (runAsNonRoot enforced, all capabilities dropped, no privilege escalation, \
     RuntimeDefault seccomp).";

/// What the core server image demands. Its start script is
/// `/opt/jboss/wildfly/customization/execute.sh` in both builds read.
const CORE_SERVER_CONTRACT: ImageContract = ImageContract {
    image: "i2b2-core-server",
    repository: "i2b2/i2b2-core-server",
    source: "i2b2/i2b2-core-server@8fc8372f",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "root",
        uid: Some(0),
        // Both builds make standalone/ and modules/ group-0 writable for arbitrary uids
        // (also i2b2/i2b2-docker-generator@44f02bb9:i2b2-wildfly/i2b2-wildfly/Dockerfile:73-79).
        gid: Some(0),
        cite: "i2b2/i2b2-core-server@8fc8372f:docker/configuration/Dockerfile:88-94",
    },
    writes: &[
        Write {
            path: "/opt/jboss/wildfly/standalone/configuration/standalone.xml",
            kind: WriteKind::RewrittenFile,
            why: "jboss-cli adds the JDBC driver and the cells' datasources, persisted in standalone.xml",
            cite: "i2b2/i2b2-core-server@8fc8372f:docker/configuration/customization/execute.sh:77-127",
        },
        Write {
            path: "/opt/jboss/wildfly/modules",
            kind: WriteKind::Dir,
            why: "jboss-cli 'module add' copies the PostgreSQL driver",
            cite: "i2b2/i2b2-core-server@8fc8372f:docker/configuration/customization/execute.sh:82",
        },
        Write {
            path: "/opt/jboss/wildfly/standalone/deployments",
            kind: WriteKind::Dir,
            why: "copies i2b2.war and its .dodeploy marker; WildFly writes the deployment markers",
            cite: "i2b2/i2b2-core-server@8fc8372f:docker/configuration/customization/execute.sh:269-270",
        },
    ],
    // None: the start script has no `set -e` and image defaults for every setting, so it never
    // exits for a missing one; the cells fail later at their database instead. The settings
    // `core_server` passes are those of the core server's own build
    // (docker/configuration/customization/execute.sh:105-125).
    required: &[],
    ports: &[8080],
    endpoints: &[Endpoint {
        // Axis2's service list, served once i2b2.war is deployed (context /i2b2, the war name
        // in edu.harvard.i2b2.server-common/build.properties:5).
        path: "/i2b2/services/listServices",
        port: 8080,
        needs: None,
        cite: "i2b2/i2b2-core-server@v1.8.1a.0001:edu.harvard.i2b2.server-common/lib/axis2.war/WEB-INF/web.xml:75-78",
    }],
    jvm: Some(Jvm {
        // WildFly's `-Xms64m -Xmx512m` whenever JAVA_OPTS is empty; a set JAVA_OPTS replaces
        // all of its defaults. (Read at wildfly-core master: the WildFly version in each build
        // differs, the default has not.)
        default_heap_mib: Some(512),
        options_env: "JAVA_OPTS",
        cite: "wildfly/wildfly-core@095a0816:core-feature-pack/common/src/main/resources/content/bin/standalone.conf:62-67",
    }),
};

/// What the web client image demands (i2b2/i2b2-docker-generator's `i2b2-web`: Ubuntu's Apache
/// and PHP, the web client under /var/www/html/webclient).
///
/// Not in the contract, because they come from Debian's Apache packaging (envvars,
/// apache2.conf), which was not read from the image: the directories Apache writes
/// (`/var/run/apache2`, `/var/lock/apache2`, `/var/log/apache2`), PHP's session directory
/// (`/var/lib/php/sessions`; `proxy.php` starts a session on every request,
/// i2b2/i2b2-webclient@v1.8.1a.0001:proxy.php:56) and that Apache's ports come from
/// `/etc/apache2/ports.conf`. `webclient` makes the directories writable all the same.
const WEBCLIENT_CONTRACT: ImageContract = ImageContract {
    image: "i2b2-webclient",
    repository: "i2b2/i2b2-webclient",
    source: "i2b2/i2b2-docker-generator@44f02bb9",
    program: None,
    reads: &[],
    user: ImageUser {
        // No USER: the image runs as root, and Apache drops its workers to www-data itself.
        declared: "0",
        uid: Some(0),
        gid: Some(0),
        cite: "i2b2/i2b2-docker-generator@44f02bb9:i2b2-web/Dockerfile:2-32",
    },
    writes: &[],
    required: &[],
    // The image listens on 80 (and 443: `a2enmod ssl`), i2b2-web/Dockerfile:9,19, which a
    // non-root process cannot bind; in this pod Apache listens where the mounted ports.conf
    // says.
    ports: &[WEBCLIENT_PORT],
    endpoints: &[Endpoint {
        path: "/webclient/",
        port: WEBCLIENT_PORT,
        needs: None,
        cite: "i2b2/i2b2-docker-generator@44f02bb9:i2b2-web/Dockerfile:21",
    }],
    jvm: None,
};

/// Where the web client's Apache listens (its mounted ports.conf).
const WEBCLIENT_PORT: i32 = 8080;
/// www-data in Debian and Ubuntu: the user Apache would switch its workers to as root.
const WWW_DATA: i64 = 33;
/// The i2b2 hive domain the web client logs in to: the one upstream's demo and empty data
/// images load (i2b2/i2b2-webclient@v1.8.1a.0001:i2b2_config_domains.json:5).
pub const DOMAIN: &str = "i2b2demo";
/// The web client's domain list, in the directory it is installed in
/// (i2b2/i2b2-docker-generator@44f02bb9:i2b2-web/Dockerfile:21).
const DOMAINS_FILE: &str = "/var/www/html/webclient/i2b2_config_domains.json";

const CORE_PRESETS: Presets = Presets {
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

const WEBCLIENT_PRESETS: Presets = Presets {
    small: Res {
        cpu: "50m",
        memory: "128Mi",
        cpu_limit: "500m",
    },
    medium: Res {
        cpu: "100m",
        memory: "256Mi",
        cpu_limit: "1",
    },
    large: Res {
        cpu: "200m",
        memory: "512Mi",
        cpu_limit: "2",
    },
};

/// The i2b2 cells and the schema each keeps its tables in, all in the one database. IM has no
/// fallback to another cell's host: unset, its datasources point nowhere
/// (i2b2/i2b2-core-server@8fc8372f:docker/configuration/customization/execute.sh:112-113,215-231).
const CELLS: &[(&str, &str)] = &[
    ("CRC", "i2b2demodata"),
    ("HIVE", "i2b2hive"),
    ("IM", "i2b2imdata"),
    ("ONT", "i2b2metadata"),
    ("PM", "i2b2pm"),
    ("WD", "i2b2workdata"),
];

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut errors = Vec::new();
    for result in [
        pod::build(ctx, core_server(ctx)),
        pod::build(ctx, webclient(ctx)),
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

fn core_server(ctx: &Ctx) -> Workload {
    let mut w = Workload::deployment(&PARTS[0], &CORE_PRESETS);
    // SECURITY_EXCEPTION_CORE_SERVER: a non-root uid in group 0, writable root filesystem.
    w.security = Security {
        run_as: RunAs::UserGroup {
            uid: NONROOT,
            gid: 0,
        },
        read_only_root: false,
    };
    // jboss-cli keeps its history under HOME, which a uid without a passwd entry lacks
    // (execute.sh runs it several times).
    w.set("HOME", "/tmp");
    // WildFly's defaults cap the heap at 512 MiB whatever the limit, and a set JAVA_OPTS
    // replaces all of them (wildfly-core standalone.conf:62-67): the same flags, heap from the
    // limit. 60 % leaves room for the 256 MiB of metaspace and the jboss-cli runs at start.
    w.set(
        "JAVA_OPTS",
        "-XX:MaxRAMPercentage=60.0 -XX:MetaspaceSize=96M -XX:MaxMetaspaceSize=256m -Djava.net.preferIPv4Stack=true -Djboss.modules.system.pkgs=org.jboss.byteman -Djava.awt.headless=true",
    );
    // `DS_*` as the core server's start script reads them
    // (i2b2/i2b2-core-server@8fc8372f:docker/configuration/customization/execute.sh:105-125,
    // the variables of i2b2/i2b2-docker@1.8.2:pg/docker-compose.yml plus IM): one database,
    // one schema per cell.
    w.set("DS_TYPE", "postgres");
    if let Some(db) = ctx.database() {
        w.env.push(db.host_var("DS_IP"));
        w.env.push(db.port_var("DS_PORT"));
        for (cell, schema) in CELLS {
            w.env.push(db.host_var(&format!("DS_{cell}_IP")));
            w.env.push(db.port_var(&format!("DS_{cell}_PORT")));
            w.env.push(db.name_var(&format!("DS_{cell}_DB")));
            w.env.push(db.user_var(&format!("DS_{cell}_USER")));
            w.env.push(db.password_var(&format!("DS_{cell}_PASS")));
            w.set(&format!("DS_{cell}_SCHEMA"), *schema);
        }
    }
    // The script starts WildFly, configures it, stops it and starts it again with i2b2.war
    // (execute.sh:243-280): the port answers long before i2b2 is deployed, so the probes ask
    // Axis2 for its service list.
    let probe = || pod::http_probe("/i2b2/services/listServices", "http");
    w.startup = Some(pod::startup(probe(), 300));
    w.readiness = Some(probe());
    w.liveness = Some(probe());
    w
}

fn webclient(ctx: &Ctx) -> Workload {
    let mut w = Workload::deployment(&PARTS[1], &WEBCLIENT_PRESETS);
    // Restricted: Apache started as a non-root user serves as that user (it switches users only
    // when started as root), on a port above 1024.
    w.security = Security {
        run_as: RunAs::User(WWW_DATA),
        read_only_root: true,
    };
    // Apache's run (pid, runtime files), lock (mutexes) and log directories as Debian's envvars
    // and apache2.conf name them; apache2ctl creates them only when missing. PHP keeps sessions
    // in /var/lib/php/sessions. The start script clears /tmp/httpd*
    // (i2b2/i2b2-docker-generator@44f02bb9:i2b2-web/run-httpd.sh:6).
    w.writable_dirs = &[
        "/tmp",
        "/var/run/apache2",
        "/var/lock/apache2",
        "/var/log/apache2",
        "/var/lib/php/sessions",
    ];
    // Replaces `Listen 80` and, with mod_ssl on (i2b2-web/Dockerfile:19), `Listen 443`.
    w.files.push((
        "/etc/apache2/ports.conf",
        format!("Listen {WEBCLIENT_PORT}\n"),
    ));
    // The default site (Debian's 000-default, enabled in the package) on the new port; no
    // directory listings; logs to the container's output.
    w.files.push((
        "/etc/apache2/sites-available/000-default.conf",
        format!(
            "<VirtualHost *:{WEBCLIENT_PORT}>\n\
             \x20   DocumentRoot /var/www/html\n\
             \x20   <Directory /var/www/html>\n\
             \x20       Options FollowSymLinks\n\
             \x20       AllowOverride None\n\
             \x20       Require all granted\n\
             \x20   </Directory>\n\
             \x20   ErrorLog /proc/self/fd/2\n\
             \x20   CustomLog /proc/self/fd/1 combined\n\
             </VirtualHost>\n"
        ),
    ));
    // The image's proxy site (enabled at build, i2b2-web/Dockerfile:13-19) names a host that is
    // not ours; this one passes /i2b2/ to the core server's Service, for loopback callers only
    // (proxy.php relays from inside the pod). That the pinned image enables the site under this
    // name, as the 1.8.1 build does, is unverified.
    let core = ctx.url("i2b2-core-server", HTTP_8080.port);
    w.files.push((
        "/etc/apache2/sites-available/i2b2_proxy.conf",
        format!(
            "ProxyRequests Off\n\
             ProxyPass /i2b2/ {core}/i2b2/\n\
             ProxyPassReverse /i2b2/ {core}/i2b2/\n\
             <Location /i2b2/>\n\
             \x20   Require ip 127.0.0.1 ::1\n\
             </Location>\n"
        ),
    ));
    // One domain, the site's, its PM cell reached through the loopback the proxy whitelists;
    // replaces upstream's demo domains (including external hosts) and its `debug: true`.
    let domains = serde_json::json!({
        "urlProxy": "proxy.php",
        "urlFramework": "js-i2b2/",
        "lstDomains": [{
            "domain": DOMAIN,
            "name": ctx.site.spec.display_name.as_deref().unwrap_or(ctx.site.name),
            "urlCellPM": format!("http://127.0.0.1:{WEBCLIENT_PORT}/i2b2/services/PMService/"),
            "allowAnalysis": true,
            "debug": false,
        }],
        "loginTimeout": 5,
    });
    w.files.push((
        DOMAINS_FILE,
        serde_json::to_string_pretty(&domains).unwrap_or_default() + "\n",
    ));
    let probe = || pod::http_probe("/webclient/", "http");
    w.startup = Some(pod::startup(probe(), 60));
    w.readiness = Some(probe());
    w.liveness = Some(probe());
    w
}
