//! i2b2: the web client (Apache httpd with PHP) and the core server (WildFly with the i2b2
//! cells), on PostgreSQL.
//!
//! The web client is exposed through the ingress (users log in through i2b2's own project
//! management cell); the core server is reached only by the web client.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
use super::database;
use super::pod::{self, Presets, Res, RunAs, Security, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, Port};

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
    security_exceptions: &[
        SecurityException {
            part: "i2b2-webclient",
            text: SECURITY_EXCEPTION_WEBCLIENT,
        },
        SecurityException {
            part: "i2b2-core-server",
            text: SECURITY_EXCEPTION_CORE_SERVER,
        },
    ],
    contracts: &[],
    build,
};

const HTTP_80: Port = Port {
    name: "http",
    port: 80,
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
        uses_database: true,
        uses_oidc: false,
    },
    Part {
        name: "i2b2-webclient",
        role: "webclient",
        image: "i2b2-webclient",
        ports: &[HTTP_80],
        // The path the upstream image serves it under; users log in through i2b2's own project
        // management cell.
        exposure: Exposure::OwnLogin("/webclient"),
        entry_point: false,
        calls: &[("i2b2-core-server", &[8080])],
        uses_database: false,
        uses_oidc: false,
    },
];

pub(crate) const SECURITY_EXCEPTION_WEBCLIENT: &str = "The i2b2 web client image runs Apache httpd as root on port 80 and switches to an \
     unprivileged worker user itself: the container runs as root with every capability dropped except NET_BIND_SERVICE, \
     SETUID and SETGID, no privilege escalation, RuntimeDefault seccomp, and a writable root filesystem (httpd and PHP \
     write pid, lock and session files in image-specific places). The namespace must allow the baseline Pod Security level.";

pub(crate) const SECURITY_EXCEPTION_CORE_SERVER: &str = "The i2b2 core server is a WildFly that writes deployment markers next to its \
     application archives: the root filesystem stays writable; it runs as the image's own non-root user \
     (runAsNonRoot enforced, all capabilities dropped, no privilege escalation).";

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

/// The i2b2 cells and the schema each keeps its tables in, all in the one database.
const CELLS: &[(&str, &str)] = &[
    ("CRC", "i2b2demodata"),
    ("HIVE", "i2b2hive"),
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
    // SECURITY_EXCEPTION_CORE_SERVER.
    w.security = Security {
        run_as: RunAs::ImageUser,
        read_only_root: false,
    };
    w.set("DS_TYPE", "postgres");
    // `DS_<CELL>_*` as in the i2b2-docker compose files (unsure for releases after 1.8).
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
    // No health endpoint is documented for the core server: TCP on WildFly's HTTP port, after
    // up to five minutes of deploying the cells.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 300));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    w
}

fn webclient(ctx: &Ctx) -> Workload {
    let mut w = Workload::deployment(&PARTS[1], &WEBCLIENT_PRESETS);
    // SECURITY_EXCEPTION_WEBCLIENT.
    w.security = Security {
        run_as: RunAs::Root {
            add: &["NET_BIND_SERVICE", "SETUID", "SETGID"],
        },
        read_only_root: false,
    };
    // Our name (unsure whether the image reads it; upstream hard-codes the host `i2b2-wildfly`
    // in i2b2_config_domains.json): where the web client's PHP proxy finds the PM cell.
    w.set(
        "I2B2_PM_URL",
        format!(
            "{}/i2b2/services/PMService/",
            ctx.url("i2b2-core-server", HTTP_8080.port)
        ),
    );
    // No health endpoint is documented for the web client: TCP on httpd's port.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 60));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    w
}
