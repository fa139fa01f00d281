//! JSON in the order kube-apiserver writes it. Built-in kinds are Go structs, encoded in field
//! order: an object starts with its TypeMeta (`kind`, then `apiVersion`), then `metadata`
//! (ObjectMeta's field order), then the kind's own fields; a watch event is `type`, then
//! `object`. Custom resources are unstructured maps, which Go's encoder writes with sorted keys,
//! as serde_json's map does. Clients see the difference: decoders report positions, and
//! streaming readers meet `kind` first.
//!
//! Difference: below the top level (and `metadata`, list items and watch objects) fields are
//! written sorted, not in the struct order of each built-in type.

use serde_json::Value;

/// ObjectMeta's JSON fields in struct order (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// ListMeta's JSON fields in struct order.
const LIST_META: &[&str] = &[
    "selfLink",
    "resourceVersion",
    "continue",
    "remainingItemCount",
];

/// The response body as kube-apiserver would write it.
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v, Shape::Top);
    out
}

/// A watch event `{"type": type_, "object": object}` exactly as [`to_json`] writes it, without
/// building the event (and copying the object into it) first.
pub fn watch_event_to_json(type_: &str, object: &Value) -> String {
    let mut out = String::from("{\"type\":");
    out.push_str(&Value::String(type_.to_string()).to_string());
    out.push_str(",\"object\":");
    write(&mut out, object, Shape::Top);
    out.push('}');
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A response body or a list item: a typed object, a watch event, or anything else.
    Top,
    /// The `metadata` of a typed object.
    Meta,
    /// Anything else: keys sorted.
    Plain,
}

/// Whether an `apiVersion` belongs to a built-in (Go-typed) API: the core group, the groups
/// without a dot (`apps`, `batch`, `policy`, `autoscaling`, ...) and `*.k8s.io`. Custom
/// resources live in other groups (a CRD in a `*.k8s.io` group needs an API approval).
fn built_in(api_version: &str) -> bool {
    match api_version.rsplit_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

/// The keys that go first, in order, for an object of this shape; the rest follow sorted.
fn leading(map: &serde_json::Map<String, Value>, shape: Shape) -> Vec<&'static str> {
    match shape {
        Shape::Plain => Vec::new(),
        Shape::Meta if map.contains_key("uid") || map.contains_key("name") => OBJECT_META.to_vec(),
        Shape::Meta => LIST_META.to_vec(),
        Shape::Top => {
            if map.len() == 2 && map.contains_key("type") && map.contains_key("object") {
                return vec!["type", "object"];
            }
            let typed = map.get("kind").is_some_and(Value::is_string)
                && map
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(built_in);
            if !typed {
                return Vec::new();
            }
            let mut keys = vec!["kind", "apiVersion", "metadata"];
            // The kinds whose own fields are not simply spec and status (which sort right).
            match map.get("kind").and_then(Value::as_str) {
                Some("Status") => keys.extend(["status", "message", "reason", "details", "code"]),
                Some("ConfigMap") => keys.extend(["immutable", "data", "binaryData"]),
                Some("Secret") => keys.extend(["immutable", "data", "stringData", "type"]),
                Some("Table") => keys.extend(["columnDefinitions", "rows"]),
                _ => {}
            }
            keys
        }
    }
}

/// `v` as serde_json writes it, straight into `out` (`to_string` made a copy of every object
/// written: a visible share of the watch streams' cost, `perf`).
fn write_plain(out: &mut String, v: &Value) {
    use std::fmt::Write as _;
    let _ = write!(out, "{v}");
}

fn write(out: &mut String, v: &Value, shape: Shape) {
    let Some(map) = v.as_object() else {
        write_plain(out, v);
        return;
    };
    let leading = leading(map, shape);
    if leading.is_empty() {
        write_plain(out, v);
        return;
    }
    let typed = leading.first() == Some(&"kind");
    let mut first = true;
    out.push('{');
    let keys = leading
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .chain(
            map.keys()
                .map(String::as_str)
                .filter(|k| !leading.contains(k)),
        );
    for k in keys {
        let Some(value) = map.get(k) else { continue };
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(k.to_string()).to_string());
        out.push(':');
        match (k, shape) {
            ("object", Shape::Top) if !typed => write(out, value, Shape::Top),
            ("metadata", Shape::Top) if typed => write(out, value, Shape::Meta),
            ("items", Shape::Top) if typed => match value.as_array() {
                Some(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write(out, item, Shape::Top);
                    }
                    out.push(']');
                }
                None => write(out, value, Shape::Plain),
            },
            _ => write(out, value, Shape::Plain),
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_objects_start_with_type_meta_and_metadata_in_struct_order() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"b": 1, "a": 2},
            "metadata": {"uid": "u", "name": "kubernetes", "namespace": "default"}});
        assert_eq!(
            to_json(&svc),
            r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"kubernetes","namespace":"default","uid":"u"},"spec":{"a":2,"b":1}}"#
        );
    }

    #[test]
    fn custom_resources_keep_sorted_keys_and_events_lead_with_type() {
        let cr = json!({"kind": "Widget", "apiVersion": "example.org/v1",
            "metadata": {"uid": "u", "name": "w"}});
        assert_eq!(
            to_json(&cr),
            r#"{"apiVersion":"example.org/v1","kind":"Widget","metadata":{"name":"w","uid":"u"}}"#
        );
        let ev = json!({"type": "ADDED", "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}}});
        assert_eq!(
            to_json(&ev),
            r#"{"type":"ADDED","object":{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"}}}"#
        );
        for object in [&ev["object"], &cr, &json!("not an object")] {
            let event = json!({"type": "MODIFIED", "object": object});
            assert_eq!(watch_event_to_json("MODIFIED", object), to_json(&event));
        }
        let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"},
            "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}]});
        assert_eq!(
            to_json(&list),
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}]}"#
        );
        let status = json!({"apiVersion": "v1", "kind": "Status", "code": 404, "status": "Failure",
            "message": "m", "reason": "NotFound", "metadata": {}});
        assert_eq!(
            to_json(&status),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"NotFound","code":404}"#
        );
    }
}
