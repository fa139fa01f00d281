//! gICS, the Greifswald consent management (WildFly), on an external MySQL.
//!
//! Deployed exactly like gPAS (same MOSAIC WildFly base image), see [`super::gpas`]. Never
//! exposed through the ingress.

use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub(crate) const PARTS: [Part; 1] = [Part {
    name: "gics",
    role: "consent-service",
    image: "gics",
    ports: &[HTTP_8080],
    exposed_path: None,
    uses_database: true,
    uses_oidc: false,
}];

pub(crate) const SECURITY_EXCEPTION: &str = super::gpas::SECURITY_EXCEPTION;

pub(crate) fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    super::gpas::build_ttp(ctx, &PARTS[0], "TTP_GICS", "/ttp-fhir/fhir/gics/metadata")
}
