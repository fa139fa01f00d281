//! `miracolix-operator contracts`: the image contracts the test API server's simulated kubelet
//! enforces, as JSON: the catalogue's, and those of the components the given releases define
//! (`spec.componentDefinitions`), so a release-defined component is held to its contract exactly
//! like a built-in one.

use std::path::PathBuf;

use crate::api::ComponentRelease;
use crate::catalog::contract;
use crate::catalog::generic;

#[derive(Debug, clap::Args)]
pub struct ContractsArgs {
    /// File(s) with ComponentReleases whose defined components' contracts are added (multi-document
    /// YAML is fine; other kinds in the files are skipped).
    #[arg(long = "release")]
    pub releases: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContractsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        #[source]
        source: Box<crate::yaml::YamlError>,
    },
    #[error("{path}: ComponentRelease {name}: {source}")]
    Release {
        path: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: ComponentRelease {name}: component {component}: {source}")]
    Definition {
        path: String,
        name: String,
        component: String,
        #[source]
        source: generic::DefinitionError,
    },
    #[error("cannot encode the contracts: {0}")]
    Encode(#[from] serde_json::Error),
}

pub fn run(args: &ContractsArgs) -> Result<String, ContractsError> {
    let mut contracts = contract::all();
    for path in &args.releases {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ContractsError::Read {
            path: shown.clone(),
            source,
        })?;
        let docs: Vec<serde_json::Value> =
            crate::yaml::from_multi_doc(&text).map_err(|source| ContractsError::Yaml {
                path: shown.clone(),
                source: Box::new(source),
            })?;
        for doc in docs {
            if doc.get("kind").and_then(serde_json::Value::as_str) != Some("ComponentRelease") {
                continue;
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            let release: ComponentRelease =
                serde_json::from_value(doc).map_err(|source| ContractsError::Release {
                    path: shown.clone(),
                    name: name.clone(),
                    source,
                })?;
            let (defined, invalid) = generic::components(&release.spec);
            if let Some((component, source)) = invalid.into_iter().next() {
                return Err(ContractsError::Definition {
                    path: shown,
                    name,
                    component,
                    source,
                });
            }
            for c in defined {
                for k in c.descriptor().contracts {
                    if !contracts.iter().any(|o| o.image == k.image) {
                        contracts.push(k);
                    }
                }
            }
        }
    }
    Ok(serde_json::to_string_pretty(&contracts)?)
}
