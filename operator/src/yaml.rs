//! YAML in and out.
//!
//! We use `serde-saphyr`, the parser kube-client 5 itself uses: `serde_yaml` is deprecated and its
//! parser (`unsafe-libyaml`) is flagged unmaintained (RUSTSEC-2024-0449). See
//! `docs/dependencies.md`.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot parse YAML: {0}")]
    Parse(#[from] serde_saphyr::Error),
    #[error("cannot write YAML: {0}")]
    Write(#[from] serde_saphyr::SerializeError),
    #[error("cannot convert to JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Serialises one document (without the leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    // Going through serde_json::Value drops `null`s the way the API server would and keeps a
    // stable key order for diffs of generated files.
    let json = serde_json::to_value(value)?;
    Ok(serde_saphyr::to_string(&json)?)
}

/// Serialises several documents separated by `---`.
pub fn to_multi_doc<T: Serialize>(values: &[T]) -> Result<String, YamlError> {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&to_string(v)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Parses every non-empty document of a multi-document YAML stream.
pub fn from_multi_doc<T: DeserializeOwned>(input: &str) -> Result<Vec<T>, YamlError> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(input)?;
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|d| serde_json::from_value(d).map_err(YamlError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_several_documents_and_skips_empty_ones() {
        let input = "---\na: 1\n---\n# only a comment\n---\nb: [first, second]\n";
        let docs: Vec<serde_json::Value> = from_multi_doc(input).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][1], "second");
        let back: Vec<serde_json::Value> =
            from_multi_doc(&to_multi_doc(&docs).expect("writes")).expect("parses again");
        assert_eq!(back, docs);
    }
}
