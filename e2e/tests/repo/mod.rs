//! Access to the repository's files (CRDs, examples, keys) for the operator-level suites.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The documents of a YAML file, by path relative to the repository root.
pub fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    miracolix_operator::yaml::from_multi_doc(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The catalogue's image contracts, as the test API server's kubelet enforces them.
pub fn catalogue_contracts() -> miracolix_e2e::kubelet::Contracts {
    miracolix_e2e::kubelet::Contracts::from_json(
        &miracolix_operator::catalog::contract::contracts_json(),
    )
    .expect("the catalogue's contracts parse")
}
