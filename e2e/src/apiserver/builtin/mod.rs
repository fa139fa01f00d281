//! Built-in kinds as kube-apiserver 1.33 admits them, in its order:
//!
//! 1. **decode**: fields the kind's published OpenAPI schema does not declare are dropped (the
//!    default, with a `Warning` per field under `fieldValidation=Warn`) or refused
//!    (`Strict`: 400 `Deployment in version "v1" cannot be handled as a Deployment: strict
//!    decoding error: unknown field "spec.foo"`); a value of the wrong
//!    JSON type, an unparseable quantity or bad base64 is a 400 `... cannot be handled as a
//!    Deployment: json: cannot unmarshal ...`; quantities are stored in canonical form
//!    (`quantity`);
//! 2. **default**: `defaults` (the `SetDefaults_*` functions) and the registry's allocations
//!    (`allocate`: a Service's cluster IP and node ports);
//! 3. **validate**: `validate` (object meta, then the kind's Go validation); failures are one 422
//!    `Invalid` with a cause per field, worded as kube-apiserver words them.

mod allocate;
mod defaults;
pub mod quantity;
mod schema;
mod validate;

use serde_json::Value;

use super::resources::ResourceInfo;
use super::status::ApiError;
use super::store::Store;
use crate::validation::{self, FieldError, FieldErrorKind, UnknownFields, ValidationFailure};

/// How unknown fields are handled and reported (`fieldValidation`).
pub struct Decoding<'a> {
    pub unknown: UnknownFields,
    /// `Warn`: each dropped field becomes a warning.
    pub warnings: Option<&'a std::cell::RefCell<Vec<String>>>,
}

/// Decodes, defaults and validates a built-in object; `old` is the stored object on updates.
/// Kinds without a published schema (none served today) pass unchanged.
pub fn admit(
    store: &Store,
    res: &ResourceInfo,
    obj: Value,
    old: Option<&Value>,
    decoding: &Decoding<'_>,
) -> Result<Value, ApiError> {
    let Some(schema) = schema::for_kind(&res.api_version(), &res.kind) else {
        return Ok(obj);
    };
    let mut obj = decode(res, schema, obj, decoding)?;
    defaults::apply(&res.group, &res.kind, &mut obj);
    if res.group.is_empty() && res.kind == "Secret" {
        secret_string_data(&mut obj);
    }
    if res.group.is_empty() && res.kind == "Service" {
        allocate::service(store, &mut obj, old);
    }
    let errors = validate::object(&res.group, &res.kind, &obj, old);
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(invalid(res, &obj, errors))
    }
}

/// A Secret's `stringData` is write-only: kube-apiserver converts it into `data` (base64),
/// overwriting keys `data` has too, and never stores it (kubernetes@v1.33.0
/// pkg/apis/core/v1/conversion.go, `Convert_v1_Secret_To_core_Secret`). Reads then show only
/// `data`, as a mounted Secret does.
fn secret_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(m) = obj.as_object_mut() else { return };
    let Some(Value::Object(strings)) = m.remove("stringData") else {
        return;
    };
    let data = m
        .entry("data")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !data.is_object() {
        *data = Value::Object(serde_json::Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn invalid(res: &ResourceInfo, obj: &Value, errors: Vec<FieldError>) -> ApiError {
    let failure = ValidationFailure {
        kind: res.kind.clone(),
        group: res.group.clone(),
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        errors,
    };
    ApiError {
        code: failure.code(),
        body: failure.to_status(),
        retry_after: None,
    }
}

/// The decoder's 400 (`runtime.NewStrictDecodingError` aside).
fn decode_error(res: &ResourceInfo, message: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: {message}",
        kind = res.kind,
        version = res.version,
    ))
}

fn decode(
    res: &ResourceInfo,
    schema: &'static Value,
    obj: Value,
    decoding: &Decoding<'_>,
) -> Result<Value, ApiError> {
    let meta_schema = schema::object_meta();
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    // One pass prunes, checks and reports the unknown fields (what `unknown_fields_in` finds);
    // the strict decoding error still comes before any type error, as the decoder's does.
    let mut unknown = Vec::new();
    let checked = validation::validate_with_static_schema(
        schema,
        &obj,
        None,
        UnknownFields::Pruning,
        None,
        &mut unknown,
    );
    let checked_meta = (!meta.is_null()).then(|| {
        let mut meta_unknown = Vec::new();
        let checked = validation::validate_with_static_schema(
            meta_schema,
            &meta,
            None,
            UnknownFields::Pruning,
            None,
            &mut meta_unknown,
        );
        unknown.extend(meta_unknown.into_iter().map(|p| format!("metadata.{p}")));
        checked
    });
    if !unknown.is_empty() {
        if decoding.unknown == UnknownFields::Strict {
            // The decoder's strict error, wrapped by transformDecodeError like any decode error.
            let fields: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect();
            return Err(decode_error(
                res,
                &format!("strict decoding error: {}", fields.join(", ")),
            ));
        }
        if let Some(w) = decoding.warnings {
            w.borrow_mut()
                .extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")));
        }
    }
    let mut decoded = shape(res, schema, &obj, "", checked)?;
    if let Some(checked) = checked_meta {
        decoded["metadata"] = shape(res, meta_schema, &meta, "metadata", checked)?;
    }
    quantities(res, schema, &mut decoded)?;
    Ok(decoded)
}

/// Turns the result of pruning and checking JSON types against the schema into the decoded
/// object; the first type error is the decode error Go's JSON decoder reports.
fn shape(
    res: &ResourceInfo,
    schema: &Value,
    v: &Value,
    prefix: &str,
    checked: Result<Value, Vec<FieldError>>,
) -> Result<Value, ApiError> {
    match checked {
        Ok(pruned) => Ok(pruned),
        Err(errors) => {
            for e in &errors {
                let path = if prefix.is_empty() {
                    e.path.clone()
                } else if e.path.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{}", e.path)
                };
                match e.kind {
                    FieldErrorKind::TypeInvalid => {
                        return Err(decode_error(res, &type_error(schema, &e.path, &path, v)));
                    }
                    FieldErrorKind::Invalid if e.message.contains("must be of type byte") => {
                        return Err(decode_error(res, "illegal base64 data at input byte 0"));
                    }
                    _ => {}
                }
            }
            // Only `required` remains: Go decodes a missing field as its zero value and
            // validation reports it; prune here and let `validate` and the required list speak.
            let required: Vec<FieldError> = errors
                .into_iter()
                .filter(|e| e.kind == FieldErrorKind::Required)
                .map(|mut e| {
                    if !prefix.is_empty() {
                        e.path = format!("{prefix}.{}", e.path);
                    }
                    e
                })
                .collect();
            let pruned = validation::prune_with_schema(schema, v);
            if required.is_empty() {
                Ok(pruned)
            } else {
                Err(invalid(res, &pruned, required))
            }
        }
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// `json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type
/// int32`: the Go struct that holds the field, the JSON path without list indices, and the Go
/// type of the field.
fn type_error(schema: &Value, rel_path: &str, full_path: &str, v: &Value) -> String {
    let mut node = schema;
    let mut value = v;
    let mut parent_go = schema.get("x-go").and_then(Value::as_str).unwrap_or("");
    let segments = split_path(rel_path);
    for seg in &segments {
        match seg {
            Seg::Key(k) => {
                // The innermost struct the field belongs to.
                if let Some(g) = node.get("x-go").and_then(Value::as_str) {
                    parent_go = g;
                }
                node = node
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| node.get("additionalProperties"))
                    .unwrap_or(&Value::Null);
                value = value.get(k).unwrap_or(&Value::Null);
            }
            Seg::Index(idx) => {
                node = node.get("items").unwrap_or(&Value::Null);
                value = value.get(*idx).unwrap_or(&Value::Null);
            }
        }
    }
    let json_type = match value {
        Value::String(_) => "string".to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::Bool(_) => "bool".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
        Value::Null => "null".to_string(),
    };
    let json_type = if json_type.starts_with("number") && !go_type(node).starts_with("int") {
        "number".to_string()
    } else {
        json_type
    };
    let dotted: Vec<&str> = full_path
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    format!(
        "json: cannot unmarshal {json_type} into Go struct field {parent_go}.{} of type {}",
        dotted.join("."),
        go_type(node)
    )
}

fn go_type(node: &Value) -> String {
    if node.get("x-kubernetes-int-or-string").is_some() {
        return "intstr.IntOrString".to_string();
    }
    let format = node.get("format").and_then(Value::as_str);
    match node.get("type").and_then(Value::as_str) {
        Some("integer") => format.unwrap_or("int64").to_string(),
        Some("number") => "float64".to_string(),
        Some("boolean") => "bool".to_string(),
        Some("string") if format == Some("date-time") => "v1.Time".to_string(),
        Some("string") => "string".to_string(),
        Some("array") => format!("[]{}", go_type(node.get("items").unwrap_or(&Value::Null))),
        Some("object") => match (node.get("x-go"), node.get("additionalProperties")) {
            (Some(g), _) => format!("v1.{}", g.as_str().unwrap_or_default()),
            (None, Some(a)) => format!("map[string]{}", go_type(a)),
            (None, None) => "map[string]interface {}".to_string(),
        },
        _ => "interface {}".to_string(),
    }
}

/// Parses every `x-quantity` field and stores its canonical form.
fn quantities(res: &ResourceInfo, schema: &Value, v: &mut Value) -> Result<(), ApiError> {
    if schema.get("x-quantity").is_some() {
        if v.is_null() {
            return Ok(());
        }
        return match quantity::canonical(v) {
            Some(c) => {
                *v = Value::String(c);
                Ok(())
            }
            None => Err(decode_error(res, quantity::FORMAT_ERROR)),
        };
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties");
            let additional = schema.get("additionalProperties");
            for (k, child) in m.iter_mut() {
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    quantities(res, cs, child)?;
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for item in items {
                    quantities(res, is, item)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod string_data_tests {
    use serde_json::json;

    #[test]
    fn string_data_becomes_data_and_wins() {
        let mut s = json!({"kind": "Secret", "data": {"a": "eA==", "b": "eQ=="},
                           "stringData": {"b": "two", "c": "three"}});
        super::secret_string_data(&mut s);
        assert_eq!(
            s,
            json!({"kind": "Secret", "data": {"a": "eA==", "b": "dHdv", "c": "dGhyZWU="}})
        );
    }
}
