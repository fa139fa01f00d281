//! fhir-pseudonymizer: de-identifies FHIR resources, taking pseudonyms from VFPS or gPAS.
//!
//! Never exposed through the ingress: it is only ever called by the FHIR gateway inside the
//! site.

use super::component::{
    Access, DatabaseNeed, Descriptor, Exposure, Need, Provider, no_checks, no_settings,
};
use super::pod::{self, LIGHT_SERVICE, Presets, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, METRICS_8081, Part, gpas, vfps};

pub static COMPONENT: Descriptor = Descriptor {
    name: "fhir-pseudonymizer",
    field: "fhirPseudonymizer",
    description: "the FHIR pseudonymizer",
    spec: |c| c.fhir_pseudonymizer.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: None,
    storage: false,
    needs: &[Need {
        purpose: "a pseudonym service",
        // VFPS is preferred: it is the faster service and runs on the site's own PostgreSQL.
        one_of: &[
            Provider {
                component: &vfps::COMPONENT,
                access: Access::Service {
                    part: "vfps",
                    ports: &[8080, 8081],
                },
            },
            Provider {
                component: &gpas::COMPONENT,
                access: Access::Service {
                    part: "gpas",
                    ports: &[8080],
                },
            },
        ],
    }],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

const PARTS: [Part; 1] = [Part {
    name: "fhir-pseudonymizer",
    role: "pseudonymizer",
    image: "fhir-pseudonymizer",
    ports: &[HTTP_8080, METRICS_8081],
    // Only ever called by the FHIR gateway inside the site.
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    uses_database: false,
    uses_oidc: false,
}];

const PRESETS: Presets = LIGHT_SERVICE;

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // Setting names as in the upstream README (`PseudonymizationService`, `Vfps__Address`,
    // `gPAS__Url`); .NET configuration keys are case-insensitive.
    if ctx.enabled(&vfps::COMPONENT) {
        w.set("PseudonymizationService", "Vfps");
        // gRPC endpoint of VFPS.
        w.set("Vfps__Address", ctx.url("vfps", vfps::GRPC.port));
    } else {
        w.set("PseudonymizationService", "gPAS");
        w.set(
            "gPAS__Url",
            format!("{}/ttp-fhir/fhir/gpas", ctx.url("gpas", HTTP_8080.port)),
        );
    }
    w.startup = Some(pod::startup(pod::http_probe("/live", "http"), 120));
    w.readiness = Some(pod::http_probe("/ready", "http"));
    w.liveness = Some(pod::http_probe("/live", "http"));
    pod::build(ctx, w)
}
