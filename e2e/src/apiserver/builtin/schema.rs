//! The structural schemas of the built-in kinds, from Kubernetes 1.33's published OpenAPI
//! (generated into `schemas.json` by `scripts/gen-builtin-schemas.py`; the test
//! `generated_schemas_are_current` checks that file against the script).
//!
//! Definitions reference each other (`{"$ref": "core.v1.PodSpec"}`); a kind's schema is expanded
//! into one tree on first use, so that the CRD validator (`miracolix-validation`) can walk it.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const SCHEMAS: &str = include_str!("schemas.json");

/// No built-in kind served here nests deeper; a cycle (none today) stops here as a free-form
/// object rather than recursing forever.
const MAX_DEPTH: usize = 40;

struct Schemas {
    /// `apps/v1/Deployment` → expanded schema.
    kinds: HashMap<String, Value>,
    object_meta: Value,
}

fn load() -> &'static Schemas {
    static SCHEMAS_CELL: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS_CELL.get_or_init(|| {
        // The file is generated and checked by a test; an unreadable file is a build defect
        // every test would show at once, so an empty table (no validation) is never silent.
        let doc: Value = serde_json::from_str(SCHEMAS).unwrap_or_default();
        let defs = doc
            .get("definitions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let kinds = doc
            .get("kinds")
            .and_then(Value::as_object)
            .map(|k| {
                k.iter()
                    .filter_map(|(gvk, def)| {
                        let def = def.as_str()?;
                        Some((gvk.clone(), expand(&Value::from(ref_to(def)), &defs, 0)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let object_meta = expand(&Value::from(ref_to("meta.v1.ObjectMeta")), &defs, 0);
        Schemas { kinds, object_meta }
    })
}

fn ref_to(name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("$ref".to_string(), Value::String(name.to_string()));
    m
}

fn expand(node: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    match node {
        Value::Object(m) => {
            if let Some(name) = m.get("$ref").and_then(Value::as_str) {
                return match defs.get(name) {
                    Some(def) if depth < MAX_DEPTH => expand(def, defs, depth + 1),
                    _ => serde_json::json!({
                        "type": "object", "x-kubernetes-preserve-unknown-fields": true
                    }),
                };
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), expand(v, defs, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| expand(v, defs, depth)).collect()),
        other => other.clone(),
    }
}

/// The schema of a built-in kind (`api_version` as in objects: `v1`, `apps/v1`).
pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static Value> {
    load().kinds.get(&format!("{api_version}/{kind}"))
}

/// `ObjectMeta`, which the validator skips at an object's root.
pub fn object_meta() -> &'static Value {
    &load().object_meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_expands_without_references() {
        let s = load();
        assert!(s.kinds.len() >= 20, "only {} kinds loaded", s.kinds.len());
        for (kind, schema) in &s.kinds {
            let text = schema.to_string();
            assert!(!text.contains("\"$ref\""), "{kind} keeps a reference");
        }
        let deploy = for_kind("apps/v1", "Deployment").expect("Deployment schema");
        assert_eq!(
            deploy.pointer("/properties/spec/required"),
            Some(&serde_json::json!(["selector", "template"]))
        );
        assert_eq!(
            deploy.pointer(
                "/properties/spec/properties/template/properties/spec/properties/containers/items/properties/resources/properties/limits/additionalProperties"
            ),
            Some(&serde_json::json!({"x-quantity": true}))
        );
        assert!(object_meta().pointer("/properties/labels").is_some());
    }

    /// The checked-in file is what the script generates from kubernetes-validate's schemas
    /// (installed by `make tools`, which `make test` runs first).
    #[test]
    fn generated_schemas_are_current() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let out = std::process::Command::new("python3")
            .arg(format!("{root}/scripts/gen-builtin-schemas.py"))
            .arg("--check")
            .output()
            .expect("python3 runs (make tools installs kubernetes-validate)");
        assert!(
            out.status.success(),
            "scripts/gen-builtin-schemas.py --check failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
