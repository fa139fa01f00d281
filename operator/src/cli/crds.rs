//! `miracolix-operator crds`: the CRDs as YAML, generated from the Rust types.

use std::io::Write;
use std::path::PathBuf;

use crate::api;
use crate::yaml::{self, YamlError};

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per kind into this directory instead of printing a stream.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrdsError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The content of `crds/<plural>.yaml` for every kind, in order.
pub fn rendered_files() -> Result<Vec<(String, String)>, YamlError> {
    api::all_crds()
        .iter()
        .map(|crd| Ok((api::crd_file_name(crd), yaml::to_multi_doc(&[crd])?)))
        .collect()
}

pub fn run(args: &CrdsArgs) -> Result<(), CrdsError> {
    let files = rendered_files()?;
    match &args.out_dir {
        Some(dir) => {
            for (name, content) in files {
                let path = dir.join(name);
                std::fs::write(&path, content).map_err(|source| CrdsError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            for (_, content) in files {
                out.write_all(content.as_bytes())
                    .map_err(|source| CrdsError::Io {
                        path: "stdout".into(),
                        source,
                    })?;
            }
        }
    }
    Ok(())
}
