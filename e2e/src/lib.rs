//! The test Kubernetes API server and validation helpers for miracolix-operator's
//! end-to-end suite.

pub mod apiserver;
pub mod kubelet;
pub mod validation;

pub use apiserver::{Config, FaultCode, Faults, RequestRecord, TestApiServer, WorkloadTiming};
