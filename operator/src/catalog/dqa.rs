//! MIRACUM data quality assessment (DQA): a Shiny app that reads a database directly.
//!
//! It reads i2b2's database when i2b2 is enabled (the star schema the tool was written for),
//! otherwise the FHIR gateway's.

use super::component::{Access, DatabaseNeed, Descriptor, Exposure, Need, Provider, no_settings};
use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Component, Ctx, Part, Port, SiteInput, fhir_gateway, i2b2};

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
    contracts: &[],
    build,
};

const HTTP: Port = Port {
    name: "http",
    port: 3838,
};

const PARTS: [Part; 1] = [Part {
    name: "dqa",
    role: "data-quality",
    image: "dqa",
    ports: &[HTTP],
    // It has no login of its own: sites put the host on the intranet or add authentication at
    // the ingress controller.
    exposure: Exposure::Unauthenticated("/dqa"),
    entry_point: false,
    calls: &[],
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
    w.writable_dirs = WRITABLE;
    // DQA reads `<SYSTEM>_HOST`, `_PORT`, `_DBNAME`, `_USER` and `_PASSWORD` per source system.
    // `I2B2` is the documented system name; `FHIRGW` and `DQA_SOURCE_SYSTEM` are our best
    // knowledge (unsure).
    let source = source(ctx);
    let prefix = match source {
        Some(c) if c == Component::of(&fhir_gateway::COMPONENT) => "FHIRGW",
        _ => "I2B2",
    };
    let wiring = source.and_then(|c| ctx.database_of(c));
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
