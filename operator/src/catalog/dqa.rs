//! MIRACUM data quality assessment (DQA): a Shiny app that reads a database directly.
//!
//! It reads i2b2's database when i2b2 is enabled (the star schema the tool was written for),
//! otherwise the FHIR gateway's (see [`super::Component::dependencies`]).

use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Component, Ctx, Part, Port, database};

const HTTP: Port = Port {
    name: "http",
    port: 3838,
};

pub(crate) const PARTS: [Part; 1] = [Part {
    name: "dqa",
    role: "data-quality",
    image: "dqa",
    ports: &[HTTP],
    exposed_path: Some("/dqa"),
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

/// Shiny Server writes logs, bookmarks and session state besides /tmp.
const WRITABLE: &[&str] = &["/tmp", "/var/log/shiny-server", "/var/lib/shiny-server"];

/// The component whose database DQA reads, if any is enabled.
pub(crate) fn source(ctx: &Ctx) -> Option<Component> {
    ctx.component
        .dependencies(ctx.site.spec)
        .into_iter()
        .find_map(|d| d.chosen)
}

pub(crate) fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    w.writable_dirs = WRITABLE;
    // DQA reads `<SYSTEM>_HOST`, `_PORT`, `_DBNAME`, `_USER` and `_PASSWORD` per source system.
    // `I2B2` is the documented system name; `FHIRGW` and `DQA_SOURCE_SYSTEM` are our best
    // knowledge (unsure).
    let source = source(ctx);
    let prefix = match source {
        Some(Component::FhirGateway) => "FHIRGW",
        _ => "I2B2",
    };
    let wiring = source.and_then(|c| {
        c.spec(&ctx.site.spec.components)
            .and_then(|spec| database::wiring(ctx.site, c, spec))
    });
    w.set("DQA_SOURCE_SYSTEM", prefix.to_ascii_lowercase());
    if let Some(db) = wiring {
        w.env.push(db.host_var(&format!("{prefix}_HOST")));
        w.env.push(db.port_var(&format!("{prefix}_PORT")));
        w.env.push(db.name_var(&format!("{prefix}_DBNAME")));
        w.env.push(db.user_var(&format!("{prefix}_USER")));
        w.env.push(db.password_var(&format!("{prefix}_PASSWORD")));
    }
    // No health endpoint is documented: TCP on Shiny Server's port.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 120));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    pod::build(ctx, w)
}
