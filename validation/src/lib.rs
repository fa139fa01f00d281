//! Validation of custom resources against a CRD's structural `openAPIV3Schema`, in the order
//! kube-apiserver applies it: prune unknown fields (or reject them under strict field
//! validation), apply `default`s, check the schema constraints, then evaluate the CEL
//! `x-kubernetes-validations` (including transition rules against the old object).
//!
//! Error texts follow the apiserver's `field.Error` rendering so that tests asserting on the
//! message of a real cluster's 422 also pass here.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use kube::core::cel::RootContext;
use regex::Regex;
use serde_json::{Map, Value, json};

mod cel;
pub mod cost;
pub use cel::ROOT_PATH;
use cel::SchemaId;

/// What to do with fields the schema does not declare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Drop them silently (the apiserver's behaviour with `fieldValidation=Ignore`, and what
    /// it stores in any case).
    #[default]
    Pruning,
    /// Reject the object (`fieldValidation=Strict`, kubectl's default).
    Strict,
}

/// The `field.ErrorType`s the apiserver reports for schema violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    TypeInvalid,
    NotSupported,
    TooLong,
    TooMany,
    Duplicate,
    Forbidden,
    /// `field.NotFound`, for references to something the object does not declare.
    NotFound,
    UnknownField,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause` in a 422 response.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotFound => "FieldValueNotFound",
            Self::UnknownField => "FieldValueUnknown",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::UnknownField => "unknown field",
        }
    }

    fn from_cel_reason(reason: Option<&str>) -> Self {
        match reason {
            Some("FieldValueForbidden") => Self::Forbidden,
            Some("FieldValueRequired") => Self::Required,
            Some("FieldValueDuplicate") => Self::Duplicate,
            _ => Self::Invalid,
        }
    }
}

/// One violation, addressed by the apiserver's field path syntax (`spec.items[0].name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    /// The offending value as the apiserver prints it (`"string"`, `3`, ...), when it prints one.
    pub value: Option<String>,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == FieldErrorKind::UnknownField {
            return write!(f, "unknown field \"{}\"", self.path);
        }
        write!(f, "{}: {}", self.path, self.kind.label())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl FieldError {
    fn new(path: &str, kind: FieldErrorKind, value: Option<String>, message: String) -> Self {
        Self {
            path: path.to_string(),
            kind,
            value,
            message,
        }
    }
}

/// A rejected object: what the apiserver would answer with a 422 (or a 400 for strict
/// decoding errors, which it detects before validating).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationFailure {
    pub kind: String,
    pub group: String,
    pub name: String,
    pub errors: Vec<FieldError>,
}

impl ValidationFailure {
    /// Strict decoding errors are a 400 BadRequest on a real server, everything else a 422.
    pub fn is_strict_decoding_error(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.kind == FieldErrorKind::UnknownField)
    }

    pub fn code(&self) -> u16 {
        if self.is_strict_decoding_error() {
            400
        } else {
            422
        }
    }

    pub fn message(&self) -> String {
        if self.is_strict_decoding_error() {
            let unknown: Vec<String> = self
                .errors
                .iter()
                .filter(|e| e.kind == FieldErrorKind::UnknownField)
                .map(ToString::to_string)
                .collect();
            return format!("strict decoding error: {}", unknown.join(", "));
        }
        let qualified = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        let rendered: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        let body = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        format!("{qualified} \"{}\" is invalid: {body}", self.name)
    }

    /// The `meta.k8s.io/v1` `Status` object a real server returns for this failure.
    pub fn to_status(&self) -> Value {
        if self.is_strict_decoding_error() {
            return json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": self.message(),
                "reason": "BadRequest", "code": 400,
            });
        }
        let causes: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let text = e.to_string();
                let prefix = format!("{}: ", e.path);
                let message = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                json!({"reason": e.kind.reason(), "message": message, "field": e.path})
            })
            .collect();
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message(), "reason": "Invalid",
            "details": {"name": self.name, "group": self.group, "kind": self.kind, "causes": causes},
            "code": 422,
        })
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ValidationFailure {}

/// Validates a custom resource against the CRD version named by its `apiVersion`, with
/// unknown fields pruned. Returns the object as the server would store it (pruned, defaulted).
pub fn validate_object(
    crd: &Value,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Value, ValidationFailure> {
    validate_object_with(crd, obj, old, UnknownFields::Pruning)
}

/// Like [`validate_object`], choosing how unknown fields are treated.
pub fn validate_object_with(
    crd: &Value,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
) -> Result<Value, ValidationFailure> {
    validate_crd_object(crd, None, obj, old, unknown, &mut Vec::new())
}

/// Like [`validate_object_with`], for a CRD shared in an `Arc` that is never changed in place
/// (a changed CRD is a new `Arc`), as the test API server stores them: its compiled CEL rules
/// are found by the CRD's identity instead of by hashing its schema. Also returns the paths of
/// the fields pruning dropped (what [`unknown_fields`] reports), found in the same pass.
pub fn validate_shared_crd_object(
    crd: &Arc<Value>,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
) -> Result<(Value, Vec<String>), ValidationFailure> {
    let mut pruned_paths = Vec::new();
    let valid = validate_crd_object(crd, Some(crd), obj, old, unknown, &mut pruned_paths)?;
    Ok((valid, pruned_paths))
}

fn validate_crd_object(
    crd: &Value,
    shared: Option<&Arc<Value>>,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
    pruned_paths: &mut Vec<String>,
) -> Result<Value, ValidationFailure> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fail = |errors| ValidationFailure {
        kind: kind.clone(),
        group: group.clone(),
        name: name.clone(),
        errors,
    };
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(schema) = schema_for_api_version(crd, api_version) else {
        return Err(fail(vec![FieldError::new(
            "apiVersion",
            FieldErrorKind::NotSupported,
            Some(go_quote(api_version)),
            "no served version of this CRD matches".to_string(),
        )]));
    };
    let root = RootContext {
        api_version: api_version.to_string(),
        api_group: group.clone(),
        kind: kind.clone(),
    };
    let id = match (shared, api_version.rsplit_once('/')) {
        (Some(crd), Some((_, version))) => SchemaId::SharedCrd(crd, version),
        _ => SchemaId::Tree,
    };
    validate_with_schema_id(schema, id, obj, old, unknown, Some(&root), pruned_paths).map_err(fail)
}

/// The paths of the fields of `obj` its CRD's schema does not declare (what pruning drops),
/// for `fieldValidation=Warn`.
pub fn unknown_fields(crd: &Value, obj: &Value) -> Vec<String> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(schema) = schema_for_api_version(crd, api_version) else {
        return Vec::new();
    };
    let mut pruned = obj.clone();
    let mut paths = Vec::new();
    prune(schema, &mut pruned, "", true, &mut paths);
    paths
}

/// The paths of the fields of `obj` that `schema` does not declare (what pruning drops), for an
/// object validated against a schema of its own (the test API server's built-in kinds).
pub fn unknown_fields_in(schema: &Value, obj: &Value) -> Vec<String> {
    let mut pruned = obj.clone();
    let mut paths = Vec::new();
    prune(schema, &mut pruned, "", true, &mut paths);
    paths
}

/// `obj` with the fields `schema` does not declare removed (nulls in non-nullable fields too).
pub fn prune_with_schema(schema: &Value, obj: &Value) -> Value {
    let mut pruned = obj.clone();
    prune(schema, &mut pruned, "", true, &mut Vec::new());
    pruned
}

/// The `openAPIV3Schema` of the CRD version that `api_version` (`group/version`) names.
pub fn schema_for_api_version<'a>(crd: &'a Value, api_version: &str) -> Option<&'a Value> {
    let group = crd.pointer("/spec/group").and_then(Value::as_str)?;
    let (obj_group, version) = api_version.rsplit_once('/')?;
    if obj_group != group {
        return None;
    }
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// The full pipeline against one schema: prune → default → structural checks → CEL.
pub fn validate_with_schema(
    schema: &Value,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
    root: Option<&RootContext>,
) -> Result<Value, Vec<FieldError>> {
    validate_with_schema_id(
        schema,
        SchemaId::Tree,
        obj,
        old,
        unknown,
        root,
        &mut Vec::new(),
    )
}

/// Like [`validate_with_schema`], for a schema that lives as long as the process: its compiled
/// CEL rules (or their absence) are found by its address instead of by hashing it, which for
/// the large built-in schemas was a large part of every write (`perf`). Also collects the
/// paths of the fields pruning dropped (what [`unknown_fields_in`] reports) into
/// `unknown_paths`.
pub fn validate_with_static_schema(
    schema: &'static Value,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
    root: Option<&RootContext>,
    unknown_paths: &mut Vec<String>,
) -> Result<Value, Vec<FieldError>> {
    validate_with_schema_id(
        schema,
        SchemaId::Static(schema),
        obj,
        old,
        unknown,
        root,
        unknown_paths,
    )
}

fn validate_with_schema_id(
    schema: &Value,
    id: SchemaId<'_>,
    obj: &Value,
    old: Option<&Value>,
    unknown: UnknownFields,
    root: Option<&RootContext>,
    unknown_paths: &mut Vec<String>,
) -> Result<Value, Vec<FieldError>> {
    let mut pruned = obj.clone();
    prune(schema, &mut pruned, "", true, unknown_paths);
    if unknown == UnknownFields::Strict && !unknown_paths.is_empty() {
        return Err(unknown_paths
            .iter()
            .map(|p| FieldError::new(p, FieldErrorKind::UnknownField, None, String::new()))
            .collect());
    }
    let mut defaulted = pruned;
    apply_defaults(schema, &mut defaulted);
    let mut errors = Vec::new();
    check(schema, &defaulted, "", true, &mut errors);
    // As the apiserver's `hasBlockingErr`: after a type, required, enum or size violation the
    // object does not have the shape the rules were written for, so they are not evaluated, and
    // it says so.
    let blocking = errors.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorKind::NotSupported
                | FieldErrorKind::Required
                | FieldErrorKind::TooLong
                | FieldErrorKind::TooMany
                | FieldErrorKind::TypeInvalid
        )
    });
    if blocking && cel::has_rules(schema, id) {
        errors.push(FieldError::new(
            cel::ROOT_PATH,
            FieldErrorKind::Invalid,
            Some(go_quote("null")),
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".to_string(),
        ));
    } else if !blocking && cel::has_rules(schema, id) {
        // Defaulting a copy of the old object is for the rules' `oldSelf`: schemas without
        // rules (most built-in kinds') skip it.
        let old_defaulted = old.map(|o| {
            let mut o = o.clone();
            apply_defaults(schema, &mut o);
            o
        });
        errors.extend(cel::errors(
            schema,
            id,
            &defaulted,
            old_defaulted.as_ref(),
            root,
        ));
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

/// Fills in schema `default`s. Unlike kube-cel's helper this also defaults inside a default
/// that was just inserted (`default: {}` on a parent whose children have defaults), as the
/// apiserver's structural defaulting does.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (key, prop) in props {
                    if !map.contains_key(key)
                        && let Some(default) = prop.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map.iter_mut() {
                if let Some(cs) = props.and_then(|p| p.get(key)).or(additional) {
                    apply_defaults(cs, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// Metadata of the root object and of embedded resources is ObjectMeta, validated by the
/// generic apiserver code and never by the CRD schema.
fn is_meta_key(key: &str, at_resource_root: bool) -> bool {
    at_resource_root && matches!(key, "apiVersion" | "kind" | "metadata")
}

fn prune(
    schema: &Value,
    value: &mut Value,
    path: &str,
    resource_root: bool,
    unknown: &mut Vec<String>,
) {
    let mut buf = path.to_string();
    prune_at(schema, value, &mut buf, resource_root, unknown);
}

/// `prune` with the path in a buffer that each level extends and truncates again: a path is
/// only made into a string of its own for a field that is dropped (one allocation per field
/// visited was a visible share of the test API server's CPU, `perf`).
fn prune_at(
    schema: &Value,
    value: &mut Value,
    path: &mut String,
    resource_root: bool,
    unknown: &mut Vec<String>,
) {
    let base = path.len();
    match value {
        Value::Object(map) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            map.retain(|key, child| {
                if resource_root && key == "metadata" {
                    return true;
                }
                let child_schema = props
                    .and_then(|p| p.get(key))
                    .or_else(|| additional.filter(|a| a.is_object()));
                push_key(path, base, key);
                let keep = match child_schema {
                    // Null in a non-nullable field is dropped before defaulting, as the
                    // apiserver does, so that a default can take its place.
                    Some(cs) if child.is_null() && !flag(cs, "nullable") => false,
                    Some(cs) => {
                        let embedded = flag(cs, "x-kubernetes-embedded-resource");
                        prune_at(cs, child, path, embedded, unknown);
                        true
                    }
                    None => {
                        let allowed = preserve
                            || additional.and_then(Value::as_bool) == Some(true)
                            || is_meta_key(key, resource_root);
                        if !allowed {
                            unknown.push(path.clone());
                        }
                        allowed
                    }
                };
                path.truncate(base);
                keep
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
                for (i, item) in items.iter_mut().enumerate() {
                    use std::fmt::Write as _;
                    let _ = write!(path, "[{i}]");
                    prune_at(item_schema, item, path, embedded, unknown);
                    path.truncate(base);
                }
            }
        }
        _ => {}
    }
}

/// Appends `.key` (or `key` at the root) to the path whose own length is `base`.
fn push_key(path: &mut String, base: usize, key: &str) {
    if base > 0 {
        path.push('.');
    }
    path.push_str(key);
}

/// The JSON type name the apiserver uses in messages (`"string"`, `"object"`, ...).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// How the apiserver prints a value in `Invalid value: ...`.
fn render(value: &Value) -> String {
    value.to_string()
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    resource_root: bool,
    errors: &mut Vec<FieldError>,
) {
    if !check_type(schema, value, path, errors) {
        return;
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(map) => check_object(schema, map, path, resource_root, errors),
        _ => {}
    }
    check_junctors(schema, value, path, errors);
}

/// Returns false when the value has the wrong type, which makes further checks meaningless.
fn check_type(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) -> bool {
    if value.is_null() {
        if flag(schema, "nullable") || schema.get("type").is_none() {
            return true;
        }
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TypeInvalid,
            Some(go_quote("null")),
            format!("{path} in body must be of type {expected}: \"null\""),
        ));
        return false;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if value.is_string() || value.is_i64() || value.is_u64() {
            return true;
        }
        let actual = type_name(value);
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TypeInvalid,
            Some(go_quote(actual)),
            format!(
                "{path} in body must be of type integer,string: {}",
                go_quote(actual)
            ),
        ));
        return false;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return true;
    };
    if type_matches(expected, value) {
        return true;
    }
    let actual = type_name(value);
    errors.push(FieldError::new(
        path,
        FieldErrorKind::TypeInvalid,
        Some(go_quote(actual)),
        format!(
            "{path} in body must be of type {expected}: {}",
            go_quote(actual)
        ),
    ));
    false
}

fn check_enum(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let listed: Vec<String> = allowed.iter().map(render).collect();
    errors.push(FieldError::new(
        path,
        FieldErrorKind::NotSupported,
        Some(render(value)),
        format!("supported values: {}", listed.join(", ")),
    ));
}

thread_local! {
    /// Patterns repeat across every object of a kind; compiling them once matters for
    /// list-heavy tests.
    static REGEX_CACHE: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(re) = cache.get(pattern) {
            return re.as_ref().map(|re| re.is_match(s));
        }
        let re = Regex::new(pattern).ok();
        let matched = re.as_ref().map(|re| re.is_match(s));
        cache.insert(pattern.to_string(), re);
        matched
    })
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    // Printed only with an error: quoting every string checked was a visible share of the
    // test API server's CPU (`perf`).
    let quoted = || Some(go_quote(s));
    // The apiserver counts characters, not bytes, for minLength/maxLength.
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooLong,
            None,
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            quoted(),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match pattern_matches(pattern, s) {
            Some(true) => {}
            Some(false) => errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                quoted(),
                format!("{path} in body should match '{pattern}'"),
            )),
            None => errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                quoted(),
                format!("the schema pattern '{pattern}' does not compile"),
            )),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_matches(format, s)
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            quoted(),
            format!("{path} in body must be of type {format}: {}", go_quote(s)),
        ));
    }
}

/// The formats the apiserver checks; unknown formats are accepted, as it does.
fn format_matches(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => is_base64(s),
        "int32" | "int64" | "double" | "float" => true,
        "uuid" => {
            let hex =
                |part: &str, n| part.len() == n && part.chars().all(|c| c.is_ascii_hexdigit());
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && hex(parts[0], 8)
                && hex(parts[1], 4)
                && hex(parts[2], 4)
                && hex(parts[3], 4)
                && hex(parts[4], 12)
        }
        _ => true,
    }
}

fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else { return };
    let mut invalid = |message: String| {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            Some(render(value)),
            format!("{path} in body {message}"),
        ));
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if flag(schema, "exclusiveMinimum") {
            if n <= min {
                invalid(format!("should be greater than {}", num(min)));
            }
        } else if n < min {
            invalid(format!("should be greater than or equal to {}", num(min)));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if flag(schema, "exclusiveMaximum") {
            if n >= max {
                invalid(format!("should be less than {}", num(max)));
            }
        } else if n > max {
            invalid(format!("should be less than or equal to {}", num(max)));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m != 0.0
        && (n / m).fract() != 0.0
    {
        invalid(format!("should be a multiple of {}", num(m)));
    }
}

/// Bounds are printed like Go prints them: `5`, not `5.0`.
fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// `maxItems`/`minItems` and `maxProperties`/`minProperties`, worded as kube-apiserver words them
/// (it says "items" for both maxima).
fn check_count(
    schema: &Value,
    count: usize,
    (max_key, min_key, noun): (&str, &str, &str),
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let count = count as u64;
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && count > max
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::TooMany,
            Some(count.to_string()),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && count < min
    {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            Some(count.to_string()),
            format!("{path} in body should have at least {min} {noun}"),
        ));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    check_count(
        schema,
        items.len(),
        ("maxItems", "minItems", "items"),
        path,
        errors,
    );
    check_list_type(schema, items, path, errors);
    if let Some(item_schema) = schema.get("items") {
        let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
        // One path buffer for all items rather than a string per item (`perf`).
        let mut item_path = String::with_capacity(path.len() + 8);
        for (i, item) in items.iter().enumerate() {
            use std::fmt::Write as _;
            item_path.clear();
            let _ = write!(item_path, "{path}[{i}]");
            check(item_schema, item, &item_path, embedded, errors);
        }
    }
}

/// `x-kubernetes-list-type: set|map` forbid duplicates (by value, or by the map keys).
fn check_list_type(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errors.push(FieldError::new(
                        &index(path, i),
                        FieldErrorKind::Duplicate,
                        Some(render(item)),
                        String::new(),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                let key = Value::Object(key);
                if !seen.insert(key.to_string()) {
                    errors.push(FieldError::new(
                        &index(path, i),
                        FieldErrorKind::Duplicate,
                        Some(render(&key)),
                        String::new(),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    resource_root: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(field) {
                errors.push(FieldError::new(
                    &join(path, field),
                    FieldErrorKind::Required,
                    None,
                    String::new(),
                ));
            }
        }
    }
    check_count(
        schema,
        map.len(),
        ("maxProperties", "minProperties", "properties"),
        path,
        errors,
    );
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    // One path buffer for all fields rather than a string per field (`perf`).
    let mut child_path = String::with_capacity(path.len() + 32);
    for (key, child) in map {
        if resource_root && key == "metadata" {
            continue;
        }
        let child_schema = props.and_then(|p| p.get(key)).or(additional);
        if let Some(cs) = child_schema {
            let embedded = flag(cs, "x-kubernetes-embedded-resource");
            child_path.clear();
            child_path.push_str(path);
            push_key(&mut child_path, path.len(), key);
            check(cs, child, &child_path, embedded, errors);
        }
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not`: structural schemas only put value constraints in them
/// (kube-derive emits `oneOf` of `required` sets for enums with data).
fn check_junctors(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let branch_errors = |branch: &Value| {
        let mut errs = Vec::new();
        check(branch, value, path, false, &mut errs);
        errs
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for branch in all {
            errors.extend(branch_errors(branch));
        }
    }
    let subject = if path.is_empty() { "body" } else { path };
    let invalid = |message: String| {
        FieldError::new(
            path,
            FieldErrorKind::Invalid,
            Some(go_quote(type_name(value))),
            message,
        )
    };
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(|b| branch_errors(b).is_empty())
    {
        errors.push(invalid(format!(
            "{subject} in body should match at least one schema in anyOf"
        )));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
    {
        let matching = one.iter().filter(|b| branch_errors(b).is_empty()).count();
        if matching != 1 {
            errors.push(invalid(format!(
                "{subject} in body must match exactly one schema in oneOf"
            )));
        }
    }
    if let Some(not) = schema.get("not")
        && branch_errors(not).is_empty()
    {
        errors.push(invalid(format!(
            "{subject} in body must not validate the schema (not)"
        )));
    }
}

#[cfg(test)]
mod tests;
