//! Admission without an API server, for the commands that never talk to one (`render`,
//! `release canonicalize|sign|verify`): a document is checked against the CRDs this binary
//! generates (the same ones `make crds` writes and the operator installs) by the validator the
//! test API server uses, in kube-apiserver's order: unknown fields, defaults, schema, CEL.
//!
//! So a GitOps pipeline that renders a site, or a release manager who signs a release, is refused
//! exactly what a cluster would refuse, with the same field paths and messages.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use miracolix_validation::{UnknownFields, ValidationFailure, validate_object_with};
use serde_json::Value;

use crate::api;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmissionError {
    /// Refused as the API server would refuse it; the message is the API server's.
    #[error("{0}")]
    Refused(ValidationFailure),
    #[error("{kind} is not a kind of {group} (expected one of {known})")]
    UnknownKind {
        kind: String,
        group: &'static str,
        known: String,
    },
    #[error("cannot encode the CustomResourceDefinitions: {0}")]
    Crds(String),
}

/// The CRDs as JSON, by kind. Generated once: they are constant for this binary.
fn crds() -> Result<&'static BTreeMap<String, Value>, AdmissionError> {
    static CRDS: OnceLock<Result<BTreeMap<String, Value>, String>> = OnceLock::new();
    CRDS.get_or_init(|| {
        api::all_crds()
            .into_iter()
            .map(|crd| {
                let kind = crd.spec.names.kind.clone();
                serde_json::to_value(&crd)
                    .map(|v| (kind, v))
                    .map_err(|e| e.to_string())
            })
            .collect()
    })
    .as_ref()
    .map_err(|e| AdmissionError::Crds(e.clone()))
}

/// Admits `doc` as a create with strict field validation (kubectl's default): an unknown or
/// misspelt field is refused with its path rather than silently dropped. Returns the object as
/// the API server would store it: pruned and defaulted.
pub fn admit(doc: &Value) -> Result<Value, AdmissionError> {
    let crds = crds()?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let crd = crds.get(kind).ok_or_else(|| AdmissionError::UnknownKind {
        kind: kind.to_string(),
        group: api::GROUP,
        known: crds.keys().cloned().collect::<Vec<_>>().join(", "),
    })?;
    validate_object_with(crd, doc, None, UnknownFields::Strict).map_err(AdmissionError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site(spec: Value) -> Value {
        json!({
            "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
            "metadata": {"name": "erlangen", "namespace": "diz"},
            "spec": spec,
        })
    }

    #[test]
    fn defaults_are_applied() {
        let stored = admit(&site(
            json!({"siteId": "erlangen", "release": {"channel": "stable"}}),
        ))
        .expect("admitted");
        assert_eq!(stored["spec"]["deletionPolicy"], "Retain");
        assert_eq!(stored["metadata"]["namespace"], "diz");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let err = admit(&site(json!({
            "siteId": "erlangen", "release": {"channel": "stable"},
            "maintainanceWindow": {"schedule": "0 2 * * 6", "duration": "2h"},
        })))
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "strict decoding error: unknown field \"spec.maintainanceWindow\""
        );
    }

    #[test]
    fn cel_rules_are_evaluated() {
        let err = admit(&site(
            json!({"siteId": "Erlangen", "release": {"channel": "stable"}}),
        ))
        .expect_err("refused");
        let message = err.to_string();
        assert!(
            message.starts_with("DizSite.diz.miracum.org \"erlangen\" is invalid: spec.siteId:"),
            "{message}"
        );
    }

    #[test]
    fn other_kinds_are_not_admitted() {
        let err = admit(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).expect_err("refused");
        assert!(matches!(err, AdmissionError::UnknownKind { .. }), "{err}");
    }
}
