//! JSON merge patch, JSON patch and (approximated) strategic merge patch.

use serde_json::Value;

use super::fieldset::{ListKind, Schema, item_key};
use super::status::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// The apiserver answers a failed `test` (and any failed op) with 422.
fn invalid(detail: String) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("the server rejected our request due to an error in our request: {detail}"),
    )
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a merge, JSON or strategic merge patch to `doc`.
pub fn patch(doc: &mut Value, kind: PatchKind, body: &[u8], custom: bool) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge => {
            json_patch::merge(doc, &parse_json(body)?);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding json patch: {e}")))?;
            // Applied to a copy, op by op, and committed only if every op succeeds: the
            // apiserver's JSON patch is atomic.
            let mut work = doc.clone();
            for (i, op) in ops.0.iter().enumerate() {
                // Like the apiserver's JSON patch library, `test` with a null value succeeds on a
                // missing path (kube's finalizer helper relies on it to add the first finalizer).
                if let json_patch::PatchOperation::Test(t) = op
                    && t.value.is_null()
                {
                    match work.pointer(t.path.as_str()) {
                        None | Some(Value::Null) => continue,
                        Some(_) => {
                            return Err(invalid(format!(
                                "operation '/{i}' failed at path '{}': value is not null",
                                t.path
                            )));
                        }
                    }
                }
                json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
                    let detail = e.to_string().replacen("'/0'", &format!("'/{i}'"), 1);
                    invalid(detail)
                })?;
            }
            *doc = work;
            Ok(())
        }
        PatchKind::Strategic if custom => Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json is not supported for custom resources",
        )),
        PatchKind::Strategic => {
            strategic_merge(doc, &parse_json(body)?, "");
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::internal("apply is not a plain patch")),
    }
}

/// Strategic merge patch: merge patch, except that lists with a patch merge key are merged
/// item by item and honour `$patch: delete` on items and `$patch: replace` on maps.
fn strategic_merge(doc: &mut Value, patch: &Value, field: &str) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut p = p.clone();
                p.remove("$patch");
                *d = p;
                return;
            }
            for (k, pv) in p {
                if k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    d.remove(k);
                    continue;
                }
                match d.get_mut(k) {
                    Some(dv) => strategic_merge(dv, pv, k),
                    None => {
                        let mut fresh = Value::Null;
                        strategic_merge(&mut fresh, pv, k);
                        d.insert(k.clone(), fresh);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(p)) => match Schema::Builtin.list_kind(field, p) {
            ListKind::Map(keys) => {
                for item in p {
                    let key = item_key(item, &keys);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = d.iter().position(|i| item_key(i, &keys) == key);
                    match (pos, delete) {
                        (Some(i), true) => {
                            d.remove(i);
                        }
                        (Some(i), false) => strategic_merge(&mut d[i], item, ""),
                        (None, true) => {}
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic_merge(&mut fresh, item, "");
                            d.push(fresh);
                        }
                    }
                }
            }
            ListKind::Set => {
                for item in p {
                    if !d.contains(item) {
                        d.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *d = p.clone(),
        },
        (d, p) => {
            // A new subtree: drop directives and nulls the way a merge into nothing would.
            let mut p = p.clone();
            if let Value::Object(m) = &mut p {
                m.retain(|k, v| !k.starts_with('$') && !v.is_null());
            }
            *d = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}});
        patch(
            &mut doc,
            PatchKind::Strategic,
            p.to_string().as_bytes(),
            false,
        )
        .expect("patch");
        assert_eq!(doc["spec"]["containers"].as_array().map(Vec::len), Some(3));
        assert_eq!(doc["spec"]["containers"][1]["image"], "2");
        let del = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        patch(
            &mut doc,
            PatchKind::Strategic,
            del.to_string().as_bytes(),
            false,
        )
        .expect("patch");
        assert_eq!(doc["spec"]["containers"][0]["name"], "b");
    }

    #[test]
    fn json_patch_test_null_matches_a_missing_path() {
        // kube's finalizer helper adds the first finalizer this way.
        let mut doc = json!({"metadata": {"name": "x"}});
        let ops = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
        patch(&mut doc, PatchKind::Json, ops.to_string().as_bytes(), false).expect("applies");
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        // ... but not a present, non-null value: someone else added a finalizer meanwhile.
        let err = patch(&mut doc, PatchKind::Json, ops.to_string().as_bytes(), false)
            .expect_err("test fails");
        assert_eq!(err.code, 422);
        let msg = err.body["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("operation '/0'"), "{msg}");
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]), "unchanged");
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let mut doc = json!({"metadata": {"finalizers": ["a"]}});
        let ops = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "b"},
            {"op": "remove", "path": "/metadata/finalizers/0"}]);
        let err = patch(&mut doc, PatchKind::Json, ops.to_string().as_bytes(), false)
            .expect_err("test fails");
        assert_eq!(err.code, 422);
        assert_eq!(
            doc["metadata"]["finalizers"][0], "a",
            "a failed patch changes nothing"
        );
    }
}
