//! The one list of components. Adding a component means adding its module's descriptor here;
//! everything else (names, CRD fields, image keys, docs, test coverage) is derived.
//!
//! The order is the order children are built and components are listed in status and docs.

use super::component::Descriptor;
use super::{
    blaze, dqa, fhir_gateway, fhir_pseudonymizer, flare, gics, gpas, i2b2, mainzelliste, ohdsi,
    torch, vfps,
};

pub static REGISTRY: &[&Descriptor] = &[
    &blaze::COMPONENT,
    &fhir_pseudonymizer::COMPONENT,
    &vfps::COMPONENT,
    &gpas::COMPONENT,
    &gics::COMPONENT,
    &fhir_gateway::COMPONENT,
    &mainzelliste::COMPONENT,
    &ohdsi::COMPONENT,
    &i2b2::COMPONENT,
    &flare::COMPONENT,
    &torch::COMPONENT,
    &dqa::COMPONENT,
];
