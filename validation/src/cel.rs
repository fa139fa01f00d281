//! The CEL pass: `x-kubernetes-validations` evaluated node by node as kube-apiserver's
//! `cel.Validator` does, with kube-cel evaluating each node's own rules.
//!
//! The walk is ours rather than kube-cel's because the apiserver's differs from it in ways
//! objects notice:
//! - rules of a node whose value is `null` (a nullable field set to null) are not evaluated, nor
//!   are those below it; a rule that must see the null has to live on the parent;
//! - `oldSelf` of a list item is the old item with the same keys in an
//!   `x-kubernetes-list-type: map` list, and there is none in other lists (so transition rules
//!   of their items do not run);
//! - a rule on the root is reported at the path `<nil>`;
//! - the value printed in `Invalid value: ...` is the schema type of the node that declares the
//!   rule, and `FieldValueForbidden`/`Required`/`Duplicate` are rendered as the apiserver's
//!   `field.Forbidden`/`Required`/`Duplicate`.
//!
//! Each CRD schema is compiled once per thread and kept, as the apiserver keeps its compiled
//! rules, instead of once per object.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use kube::core::cel::{CompiledSchema, RootContext, Validator, compile_schema};
use serde_json::{Map, Value};

use crate::{FieldError, FieldErrorKind, go_quote, index, join};

/// The path the apiserver prints for the root (`field.Path(nil).String()`).
pub const ROOT_PATH: &str = "<nil>";

/// One schema node: its own rules compiled without those of its descendants, and the children
/// that have rules somewhere below them.
struct Node {
    /// `None` when the node declares no rule.
    rules: Option<CompiledSchema>,
    /// The schema type, printed as the value of a failed rule (`Invalid value: "object"`).
    type_name: String,
    properties: Vec<(String, Node)>,
    items: Option<Box<Node>>,
    /// For `x-kubernetes-list-type: map` lists: the keys that correlate old and new items.
    map_keys: Option<Vec<String>>,
    additional: Option<Box<Node>>,
}

const RULES: &str = "x-kubernetes-validations";
const JUNCTORS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

impl Node {
    fn build(schema: &Value) -> Option<Node> {
        let properties: Vec<(String, Node)> = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, s)| Node::build(s).map(|n| (k.clone(), n)))
            .collect();
        let items = schema.get("items").and_then(Node::build).map(Box::new);
        let additional = schema
            .get("additionalProperties")
            .filter(|a| a.is_object())
            .and_then(Node::build)
            .map(Box::new);
        let own = declares_rules(schema);
        if !own && properties.is_empty() && items.is_none() && additional.is_none() {
            return None;
        }
        let map_keys = (schema.get("x-kubernetes-list-type").and_then(Value::as_str)
            == Some("map"))
        .then(|| {
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        });
        let rules = own.then(|| {
            let mut shallow = schema.clone();
            strip_descendant_rules(&mut shallow);
            compile_schema(&shallow)
        });
        Some(Node {
            rules,
            type_name: schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object")
                .to_string(),
            properties,
            items,
            map_keys,
            additional,
        })
    }
}

/// Rules of the node itself, including those in its `allOf`/`anyOf`/`oneOf` branches (which
/// apply to the same value).
fn declares_rules(schema: &Value) -> bool {
    schema
        .get(RULES)
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
        || JUNCTORS.iter().any(|j| {
            schema
                .get(*j)
                .and_then(Value::as_array)
                .is_some_and(|bs| bs.iter().any(declares_rules))
        })
}

/// Keeps the node's own rules (and its branches'), removes every rule below it: those are
/// evaluated at their own node by the walk.
fn strip_descendant_rules(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(strip_all_rules);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get_mut(key) {
            strip_all_rules(child);
        }
    }
    for j in JUNCTORS {
        if let Some(branches) = map.get_mut(j).and_then(Value::as_array_mut) {
            branches.iter_mut().for_each(strip_descendant_rules);
        }
    }
}

fn strip_all_rules(schema: &mut Value) {
    if let Some(map) = schema.as_object_mut() {
        map.remove(RULES);
    }
    strip_descendant_rules(schema);
}

/// How a schema is found in the cache of compiled rules.
#[derive(Clone, Copy)]
pub enum SchemaId<'a> {
    /// By its content: the schema's JSON tree is hashed on every lookup.
    Tree,
    /// By the identity of the CRD it belongs to, for a CRD shared in an `Arc` and never
    /// changed in place (the test API server's store replaces a changed CRD by a new `Arc`),
    /// and the version whose schema it is. The cache entry keeps the `Arc`, so its address
    /// cannot be reused by another CRD while the entry exists; the lookup costs no walk of
    /// the schema (hashing it was about 9 % of the test API server's CPU, `perf`).
    SharedCrd(&'a Arc<Value>, &'a str),
    /// A schema that lives as long as the process (the test API server's built-in kinds'
    /// OpenAPI schemas, loaded once): its address is its identity.
    Static(&'static Value),
}

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Tree(u64),
    SharedCrd(usize, String),
    Static(usize),
}

/// A cache entry: the CRD it pins (for `SchemaId::SharedCrd`) and the compiled rules.
type Entry = (Option<Arc<Value>>, Option<Rc<Node>>);

thread_local! {
    /// Registering every Kubernetes CEL function is not free; one validator per thread.
    static CEL: Validator = Validator::new();
    /// Compiled schemas by a hash of their JSON tree or by their CRD's identity. The test API
    /// server validates every write against a handful of CRDs; compiling their rules once is
    /// what makes that cheap.
    static COMPILED: RefCell<HashMap<Key, Entry>> = RefCell::new(HashMap::new());
}

/// Bounds the cache for long-running servers whose tests create many throw-away CRDs.
const MAX_COMPILED: usize = 256;

fn compiled(schema: &Value, id: SchemaId<'_>) -> Option<Rc<Node>> {
    let (key, pin) = match id {
        SchemaId::Tree => {
            let mut hasher = DefaultHasher::new();
            // Hashed as a tree, not printed first: printing the schema (tens of kilobytes for
            // a DizSite) on every validation was a tenth of the test API server's CPU and part
            // of the operator's render (a `perf` profile, docs/performance.md).
            schema.hash(&mut hasher);
            (Key::Tree(hasher.finish()), None)
        }
        SchemaId::SharedCrd(crd, version) => (
            Key::SharedCrd(Arc::as_ptr(crd) as usize, version.to_string()),
            Some(crd),
        ),
        SchemaId::Static(schema) => (Key::Static(std::ptr::from_ref(schema) as usize), None),
    };
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, node)) = cache.get(&key) {
            return node.clone();
        }
        if cache.len() >= MAX_COMPILED {
            cache.clear();
        }
        let node = Node::build(schema).map(Rc::new);
        cache.insert(key, (pin.cloned(), node.clone()));
        node
    })
}

/// Whether the schema declares any CEL rule (the apiserver has a CEL validator for it).
pub fn has_rules(schema: &Value, id: SchemaId<'_>) -> bool {
    compiled(schema, id).is_some()
}

/// Every failed rule of `obj` (already pruned and defaulted), as the apiserver reports them.
pub fn errors(
    schema: &Value,
    id: SchemaId<'_>,
    obj: &Value,
    old: Option<&Value>,
    root: Option<&RootContext>,
) -> Vec<FieldError> {
    let Some(node) = compiled(schema, id) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    walk(&node, obj, old, "", root, &mut errors);
    errors
}

fn walk(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    root: Option<&RootContext>,
    errors: &mut Vec<FieldError>,
) {
    // The apiserver validates non-null values only: "rules that need to check for the state of
    // a nullable value or the presence of an optional field must do so from the surrounding
    // schema".
    if value.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    if let Some(rules) = &node.rules {
        let ctx = if path.is_empty() { root } else { None };
        let result = CEL.with(|v| v.validate_compiled_with_context(rules, value, old, ctx));
        if let Err(failures) = result {
            errors.extend(
                failures
                    .into_vec()
                    .into_iter()
                    .map(|e| field_error(path, &node.type_name, e)),
            );
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in &node.properties {
                if let Some(v) = map.get(key) {
                    let o = old.and_then(|o| o.get(key));
                    walk(child, v, o, &join(path, key), None, errors);
                }
            }
            if let Some(additional) = &node.additional {
                for (key, v) in map {
                    if node.properties.iter().any(|(k, _)| k == key) {
                        continue;
                    }
                    let o = old.and_then(|o| o.get(key));
                    walk(additional, v, o, &join(path, key), None, errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    let o = old.and_then(|o| correlated(node.map_keys.as_deref(), item, o));
                    walk(item_node, item, o, &index(path, i), None, errors);
                }
            }
        }
        _ => {}
    }
}

/// The old item of a map-list with the same key values; no old item in other lists.
fn correlated<'a>(keys: Option<&[String]>, item: &Value, old: &'a Value) -> Option<&'a Value> {
    let keys = keys?;
    let key_of = |v: &Value| -> Map<String, Value> {
        keys.iter()
            .filter_map(|k| v.get(k).map(|x| (k.clone(), x.clone())))
            .collect()
    };
    let wanted = key_of(item);
    old.as_array()?.iter().find(|o| key_of(o) == wanted)
}

fn field_error(path: &str, type_name: &str, e: kube::core::cel::ValidationError) -> FieldError {
    // kube-cel reports the rule's `fieldPath` relative to the node it was given.
    let relative = e.field_path.trim_start_matches('.');
    let full = match (path, relative) {
        ("", "") => ROOT_PATH.to_string(),
        (p, "") => p.to_string(),
        (p, r) => join(p, r),
    };
    let kind = FieldErrorKind::from_cel_reason(e.reason.as_deref());
    match kind {
        // field.Forbidden / field.Required print no value; field.Duplicate prints no detail.
        FieldErrorKind::Forbidden | FieldErrorKind::Required => {
            FieldError::new(&full, kind, None, e.message)
        }
        FieldErrorKind::Duplicate => {
            FieldError::new(&full, kind, Some(go_quote(type_name)), String::new())
        }
        _ => FieldError::new(&full, kind, Some(go_quote(type_name)), e.message),
    }
}
