//! fhir-pseudonymizer: de-identifies FHIR resources, taking pseudonyms from VFPS or gPAS.
//!
//! Never exposed through the ingress: it is only ever called by the FHIR gateway inside the
//! site.

use super::pod::{self, LIGHT_SERVICE, Presets, Workload};
use super::{CatalogError, Child, Component, Ctx, HTTP_8080, METRICS_8081, Part};

pub(crate) const PARTS: [Part; 1] = [Part {
    name: "fhir-pseudonymizer",
    role: "pseudonymizer",
    image: "fhir-pseudonymizer",
    ports: &[HTTP_8080, METRICS_8081],
    exposed_path: None,
    uses_database: false,
    uses_oidc: false,
}];

const PRESETS: Presets = LIGHT_SERVICE;

pub(crate) fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // Setting names as in the upstream README (`PseudonymizationService`, `Vfps__Address`,
    // `gPAS__Url`); .NET configuration keys are case-insensitive. VFPS is preferred: it is the
    // faster service and runs on the site's own PostgreSQL.
    if ctx.enabled(Component::Vfps) {
        w.set("PseudonymizationService", "Vfps");
        // gRPC endpoint of VFPS.
        w.set("Vfps__Address", ctx.url("vfps", super::vfps::GRPC.port));
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
