//! gPAS, the Greifswald pseudonym administration (WildFly), on an external MySQL.
//!
//! Never exposed through the ingress: it holds the link between identities and pseudonyms;
//! administrators reach its web UI through `kubectl port-forward`.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
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
    contracts: &[],
    build,
};

const PARTS: [Part; 1] = [Part {
    name: "gpas",
    role: "pseudonym-service",
    image: "gpas",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    uses_database: true,
    uses_oidc: false,
}];

pub(crate) const SECURITY_EXCEPTION: &str = "The MOSAIC WildFly image writes deployment markers into its deployments directory, \
     which also holds the application archives, so the root filesystem stays writable; it runs as the image's own \
     non-root user (runAsNonRoot enforced, all capabilities dropped, no privilege escalation).";

pub(crate) const TTP_PRESETS: Presets = Presets {
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

/// WildFly's first start deploys the archives and migrates the schema; MOSAIC documents up to
/// five minutes.
pub(crate) const TTP_STARTUP_SECONDS: i32 = 300;

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    build_ttp(ctx, &PARTS[0], "TTP_GPAS", "/ttp-fhir/fhir/gpas/metadata")
}

/// gPAS and gICS are the same WildFly image with different archives; `prefix` is the env prefix
/// the MOSAIC images document (`TTP_GPAS_DB_HOST`, `TTP_GICS_DB_HOST`, …).
pub(crate) fn build_ttp(
    ctx: &Ctx,
    part: &'static Part,
    prefix: &str,
    fhir_metadata: &str,
) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(part, &TTP_PRESETS);
    // SECURITY_EXCEPTION: writable root filesystem, image's own user.
    w.security = Security {
        run_as: RunAs::ImageUser,
        read_only_root: false,
    };
    // The management console would only be reachable by port-forward and needs a password we
    // do not want to generate; switch it off.
    w.set("WF_NO_ADMIN", "true");
    w.set(&format!("{prefix}_LOG_TO_FILE"), "false");
    if let Some(db) = ctx.database() {
        w.env.push(db.host_var(&format!("{prefix}_DB_HOST")));
        w.env.push(db.port_var(&format!("{prefix}_DB_PORT")));
        w.env.push(db.name_var(&format!("{prefix}_DB_NAME")));
        w.env.push(db.user_var(&format!("{prefix}_DB_USER")));
        w.env.push(db.password_var(&format!("{prefix}_DB_PASS")));
    }
    // The FHIR CapabilityStatement answers only once the archives are deployed and the database
    // is reachable: the best readiness signal the image offers. Liveness stays a cheap TCP check
    // so a slow database cannot get WildFly restarted.
    let ready = pod::http_probe(fhir_metadata, "http");
    w.startup = Some(pod::startup(ready.clone(), TTP_STARTUP_SECONDS));
    w.readiness = Some(ready);
    w.liveness = Some(pod::tcp_probe("http"));
    pod::build(ctx, w)
}
