//! Config files: JSON read once at start, with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}: {source}")]
    Parse {
        path: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `path` as JSON into `T`; `what` names the kind of file in the error ("sites config").
pub fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, ConfigFileError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ConfigFileError::Parse {
        path: path.display().to_string(),
        what,
        source,
    })
}
