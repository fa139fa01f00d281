//! FLARE: evaluates feasibility queries against the FHIR server.
//!
//! Not exposed through the ingress: queries arrive through the site's DSF, inside the cluster.

use super::component::{
    Access, DatabaseNeed, Descriptor, Exposure, Need, Provider, no_checks, no_settings,
};
use super::pod::{self, Presets, Res, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, blaze, database};

pub static COMPONENT: Descriptor = Descriptor {
    name: "flare",
    field: "flare",
    description: "the FLARE feasibility executor",
    spec: |c| c.flare.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: None,
    storage: false,
    needs: &[Need {
        purpose: "the FHIR server",
        one_of: &[blaze::PROVIDER],
    }],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

/// How TORCH reaches FLARE.
pub(crate) const PROVIDER: Provider = Provider {
    component: &COMPONENT,
    access: Access::Service {
        part: "flare",
        ports: &[8080],
    },
};

const PARTS: [Part; 1] = [Part {
    name: "flare",
    role: "feasibility",
    image: "flare",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    // The site's DSF sends it feasibility queries.
    entry_point: true,
    calls: &[],
    uses_database: false,
    uses_oidc: true,
}];

/// FLARE caches query results in memory; upstream recommends about 8 GiB for a large site.
const PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "2",
    },
    medium: Res {
        cpu: "1",
        memory: "4Gi",
        cpu_limit: "4",
    },
    large: Res {
        cpu: "2",
        memory: "8Gi",
        cpu_limit: "4",
    },
};

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    w.set(
        "FLARE_FHIR_SERVER",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            super::blaze::CONTEXT_PATH
        ),
    );
    // Blaze demands a token as soon as the site has OIDC, so FLARE must log in as a client.
    if let Some(oidc) = ctx.oidc() {
        w.set("FLARE_FHIR_OAUTH_ISSUER_URI", oidc.issuer_url.clone());
        w.set("FLARE_FHIR_OAUTH_CLIENT_ID", oidc.client_id.clone());
        if let Some(secret) = &oidc.client_secret_ref {
            w.env.push(database::secret_env(
                "FLARE_FHIR_OAUTH_CLIENT_SECRET",
                &secret.name,
                &secret.key,
            ));
        }
    }
    // No health endpoint is documented for FLARE: TCP on its API port.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 300));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    pod::build(ctx, w)
}
