//! The test Kubernetes API server and validation helpers for miracolix-operator's
//! end-to-end suite.

pub mod apiserver;
pub mod kubelet;
pub mod oidc_issuer;
/// The validator lives in its own crate so that the operator's offline commands share it.
pub use miracolix_validation as validation;

pub use apiserver::{Config, FaultCode, Faults, RequestRecord, TestApiServer, WorkloadTiming};
