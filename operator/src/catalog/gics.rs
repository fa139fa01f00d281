//! gICS, the Greifswald consent management (WildFly), on an external MySQL.
//!
//! Deployed exactly like gPAS (same MOSAIC WildFly base image), see [`super::gpas`]. Never
//! exposed through the ingress.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, SecurityException, no_checks,
    no_settings,
};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "gics",
    field: "gics",
    description: "the gICS consent service",
    spec: |c| c.gics.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::MySql,
        name: "gics",
    }),
    replica_limit: None,
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[SecurityException {
        part: "gics",
        text: super::gpas::SECURITY_EXCEPTION,
    }],
    contracts: &[],
    build,
};

const PARTS: [Part; 1] = [Part {
    name: "gics",
    role: "consent-service",
    image: "gics",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    uses_database: true,
    uses_oidc: false,
}];

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    super::gpas::build_ttp(ctx, &PARTS[0], "TTP_GICS", "/ttp-fhir/fhir/gics/metadata")
}
