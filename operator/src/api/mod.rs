//! The custom resources of `diz.miracum.org/v1alpha1`, one file per kind.
//!
//! Validation lives in the schema (OpenAPI + CEL `x-kubernetes-validations`) so that the API server
//! refuses bad input before the operator ever sees it. Every CEL rule carries a message written for a
//! site admin, because that message is what `kubectl apply` prints.

pub mod common;
pub mod component_definition;
pub mod component_release;
pub mod component_rules;
pub mod conditions;
pub mod diz_site;
pub mod feasibility_endpoint;
pub mod proposal_inbox;
pub mod reasons;
pub mod release_revocation;
pub mod rules;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use common::*;
pub use component_definition::*;
pub use component_release::*;
pub use diz_site::*;
pub use feasibility_endpoint::*;
pub use proposal_inbox::*;
pub use release_revocation::*;

/// API group of every kind this operator owns.
pub const GROUP: &str = "diz.miracum.org";
/// The one served (and stored) version.
pub const VERSION: &str = "v1alpha1";
/// `kubectl get miracum` lists every kind.
pub const CATEGORY: &str = "miracum";

/// All CRDs, in a stable order (the order of the files in `crds/`).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        ComponentRelease::crd(),
        DizSite::crd(),
        FeasibilityEndpoint::crd(),
        ProposalInbox::crd(),
        ReleaseRevocation::crd(),
    ]
}

/// The file name under `crds/` for a CRD: its plural name (e.g. `dizsites.yaml`).
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}
