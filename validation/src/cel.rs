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
//! rules, instead of once per object. Below the root, each node also remembers the outcome of
//! its rules for the values it saw (`Memo`): most writes of a custom resource (status writes,
//! a re-apply) leave most of it as it was, and evaluating the rules again, `matches()`
//! compiling its regular expression on every call, was a fifth of the test API server's CPU
//! (`perf`, docs/performance.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use kube::core::cel::{
    CompiledSchema, RootContext, SchemaFormat, ValidationError, Validator, compile_schema,
};
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
    /// Outcomes of `rules` by value, for nodes below the root (see `Memo`).
    memo: RefCell<Memo>,
}

/// The outcome of a node's rules for the (value, old value) pairs it was evaluated with.
///
/// Exact, not a heuristic: the outcome of `Validator::validate_compiled_with_context` is a
/// pure function of the compiled rules (the node's, fixed), `self`, `oldSelf` and the root
/// context. kube-cel 0.8 evaluates with a context built afresh per call from its validator's
/// registered functions, none of which reads the clock, randomness or any state kept between
/// calls (there is no `now()` in CEL; kube-cel enforces no runtime cost budget, so no budget
/// carries over; the only thread-local is its default validator). The root node is not
/// memoized: its value is the whole object, whose metadata changes on every write, so its
/// entries would never be hit, and it alone sees the root context.
///
/// Entries are found by a hash of the values and keep the values themselves, compared on a
/// hit, so a hash collision cannot return another value's outcome. The outcome is kube-cel's
/// errors relative to the node, made into field errors at the path of each use (one node
/// serves every item of a list).
#[derive(Default)]
struct Memo {
    entries: HashMap<u64, Vec<MemoEntry>>,
    len: usize,
}

struct MemoEntry {
    value: Value,
    old: Option<Value>,
    failures: Vec<ValidationError>,
}

/// Bounds each node's memo (cleared when full, as `COMPILED` is): a few entries per object of
/// the kind (its value as created, as updated), for a few hundred objects.
const MAX_MEMO: usize = 1024;

impl Memo {
    fn key(value: &Value, old: Option<&Value>) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        old.hash(&mut hasher);
        hasher.finish()
    }

    fn get(&self, key: u64, value: &Value, old: Option<&Value>) -> Option<&[ValidationError]> {
        self.entries
            .get(&key)?
            .iter()
            .find(|e| e.value == *value && e.old.as_ref() == old)
            .map(|e| e.failures.as_slice())
    }

    fn insert(&mut self, key: u64, entry: MemoEntry) {
        if self.len >= MAX_MEMO {
            self.entries.clear();
            self.len = 0;
        }
        self.entries.entry(key).or_default().push(entry);
        self.len += 1;
    }
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
            let mut compiled = compile_schema(&shallow);
            trim(&mut compiled);
            compiled
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
            memo: RefCell::default(),
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

/// Drops from a node's compiled schema the descendants that kube-cel's walk would only convert
/// to CEL values, evaluating nothing (their rules were stripped), and whose values convert
/// exactly as kube-cel converts a value it has no schema for (`json_to_cel`: field names
/// escaped, strings as strings). kube-cel 0.8's `walk_compiled` converts the subtree of every
/// schema node it visits, so a rule on the root converted the whole object once per level of
/// nesting: a tenth of the test API server's CPU after the memo (`perf`).
///
/// What the conversion reads from a node (kube-cel 0.8, `values::json_to_cel_with_compiled`,
/// `defaults::apply_defaults_compiled`): `format` (date-time, duration and byte strings become
/// timestamps, durations and bytes; int-or-string and none stay strings), `is_map` (a map's keys
/// are not escaped), `embedded_resource` (type meta filled in), `default`, and which children
/// are declared. A node none of that applies to, with no rules and no kept descendants,
/// converts as schema-less; a declared property is only dropped when its parent has no
/// `additionalProperties` schema, which its value would otherwise be converted with.
fn trim(node: &mut CompiledSchema) {
    if let Some(additional) = node.additional_properties.as_deref_mut() {
        trim(additional);
        if plain(additional) {
            node.additional_properties = None;
        }
    }
    let declared_only = node.additional_properties.is_none();
    node.properties.retain(|_, child| {
        trim(child);
        !(declared_only && plain(child))
    });
    if let Some(items) = node.items.as_deref_mut() {
        trim(items);
        if plain(items) {
            node.items = None;
        }
    }
    for branch in node
        .all_of
        .iter_mut()
        .chain(node.one_of.iter_mut())
        .chain(node.any_of.iter_mut())
    {
        trim(branch);
    }
}

/// A trimmed node that converts and defaults as no schema at all and evaluates nothing.
fn plain(node: &CompiledSchema) -> bool {
    node.validations.is_empty()
        && matches!(node.format, SchemaFormat::None | SchemaFormat::IntOrString)
        && !node.is_map
        && !node.embedded_resource
        && node.default.is_none()
        && node.properties.is_empty()
        && node.items.is_none()
        && node.additional_properties.is_none()
        && node.all_of.is_empty()
        && node.one_of.is_empty()
        && node.any_of.is_empty()
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
        if path.is_empty() {
            errors.extend(
                evaluate(rules, value, old, root)
                    .into_iter()
                    .map(|e| field_error(path, &node.type_name, e)),
            );
        } else {
            let key = Memo::key(value, old);
            let hit = node
                .memo
                .borrow()
                .get(key, value, old)
                .map(<[ValidationError]>::to_vec);
            let failures = hit.unwrap_or_else(|| {
                let failures = evaluate(rules, value, old, None);
                node.memo.borrow_mut().insert(
                    key,
                    MemoEntry {
                        value: value.clone(),
                        old: old.cloned(),
                        failures: failures.clone(),
                    },
                );
                failures
            });
            errors.extend(
                failures
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

/// The node's own rules (its descendants' were stripped) for one value.
fn evaluate(
    rules: &CompiledSchema,
    value: &Value,
    old: Option<&Value>,
    root: Option<&RootContext>,
) -> Vec<ValidationError> {
    CEL.with(|v| v.validate_compiled_with_context(rules, value, old, root))
        .err()
        .map(|f| f.into_vec())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Rules on a list's items (one node, many paths), passing and failing, with a transition
    /// rule and a messageExpression.
    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "waves": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string", "x-kubernetes-validations": [
                        {"rule": "self.matches('^[a-z]+$')", "message": "lowercase letters only"}]},
                    "size": {"type": "integer", "x-kubernetes-validations": [
                        {"rule": "self >= oldSelf", "message": "size cannot shrink"},
                        {"rule": "self < 100", "messageExpression": "'size ' + string(self) + ' too big'"}]},
                }}},
        }}}})
    }

    /// Errors of `obj` walked with `node`, whose memo is kept between calls.
    fn walked(node: &Node, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        walk(node, obj, old, "", None, &mut errors);
        errors
    }

    fn memo_len(node: &Node) -> usize {
        let spec = &node.properties[0].1;
        let waves = &spec.properties[0].1;
        let item = waves.items.as_deref().expect("items have rules");
        item.properties
            .iter()
            .map(|(_, n)| n.memo.borrow().len)
            .sum()
    }

    #[test]
    fn a_memoized_outcome_is_the_evaluated_one_for_passing_failing_and_transition_rules() {
        let old = json!({"spec": {"waves": [{"name": "a", "size": 5}, {"name": "b", "size": 1}]}});
        let cases = [
            (json!({"spec": {"waves": [{"name": "a", "size": 5}]}}), None),
            (
                json!({"spec": {"waves": [{"name": "a", "size": 5}]}}),
                Some(&old),
            ),
            // Failing: a non-matching name, a shrunk size (oldSelf), a size too big.
            (
                json!({"spec": {"waves": [{"name": "B", "size": 4}, {"name": "b", "size": 150}]}}),
                Some(&old),
            ),
            // The same failing item at another position: same outcome, another path.
            (
                json!({"spec": {"waves": [{"name": "c", "size": 1}, {"name": "B", "size": 4}]}}),
                Some(&old),
            ),
        ];
        let s = schema();
        let shared = Node::build(&s).expect("schema has rules");
        for (obj, old) in &cases {
            // A fresh node evaluates everything (no memo yet); the shared one may answer from
            // what earlier cases left in its memo, and answers the repeat from it.
            let fresh = walked(&Node::build(&s).expect("rules"), obj, *old);
            assert_eq!(walked(&shared, obj, *old), fresh, "{obj}");
            let entries = memo_len(&shared);
            assert_eq!(walked(&shared, obj, *old), fresh, "{obj} again");
            assert_eq!(
                memo_len(&shared),
                entries,
                "the repeat is answered by the memo"
            );
        }
        let failing = walked(&shared, &cases[2].0, cases[2].1);
        let rendered: Vec<String> = failing.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                r#"spec.waves[0].name: Invalid value: "string": lowercase letters only"#,
                r#"spec.waves[1].size: Invalid value: "integer": size 150 too big"#,
            ]
        );
        let moved = walked(&shared, &cases[3].0, cases[3].1);
        assert_eq!(
            moved[0].to_string(),
            r#"spec.waves[1].name: Invalid value: "string": lowercase letters only"#
        );
    }

    #[test]
    fn a_memo_hit_needs_an_equal_value_and_old_value() {
        let s = schema();
        let node = Node::build(&s).expect("schema has rules");
        let size = |n: i64| json!({"spec": {"waves": [{"name": "a", "size": n}]}});
        let (four, five, six) = (size(4), size(5), size(6));
        assert!(walked(&node, &five, Some(&four)).is_empty());
        let after_first = memo_len(&node);
        assert_eq!(after_first, 2, "one entry for name, one for size");
        // An equal value (another allocation) is a hit.
        assert!(walked(&node, &size(5), Some(&size(4))).is_empty());
        assert_eq!(memo_len(&node), after_first);
        // The same value with another old value is not: the transition rule fails.
        let shrunk = walked(&node, &five, Some(&six));
        assert_eq!(shrunk.len(), 1, "{shrunk:?}");
        assert_eq!(memo_len(&node), after_first + 1, "name hit, size evaluated");
        // Without an old value neither is a hit; the transition rule does not run.
        assert!(walked(&node, &five, None).is_empty());
        assert_eq!(memo_len(&node), after_first + 3);
    }

    /// Root rules that see each thing the conversion takes from the schema below the root.
    fn conversion_schema() -> Value {
        json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.metadata.name.matches('^[a-z]+$')"},
            {"rule": "self.spec.when < timestamp('2030-01-01T00:00:00Z')"},
            {"rule": "self.spec.wait > duration('1s')"},
            {"rule": "size(self.spec.data) == 3"},
            {"rule": "'a.b/c' in self.spec.labels"},
            {"rule": "self.spec.nested.x__dash__y == 1 && self.spec.quantity == '1Gi'"},
            {"rule": "self.spec.emb.kind == '' && self.spec.defaulted.v == 'dflt'"},
            {"rule": "self.spec.list.all(i, i.at < timestamp('2030-01-01T00:00:00Z'))"},
        ], "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "when": {"type": "string", "format": "date-time"},
                "wait": {"type": "string", "format": "duration"},
                "data": {"type": "string", "format": "byte"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "nested": {"type": "object", "properties": {"x-y": {"type": "integer"}}},
                "quantity": {"x-kubernetes-int-or-string": true},
                "emb": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true},
                "defaulted": {"type": "object", "properties": {
                    "v": {"type": "string", "default": "dflt"}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "n": {"type": "integer"}}}},
            }},
        }})
    }

    #[test]
    fn trimming_keeps_what_the_conversion_reads_and_the_outcome() {
        let schema = conversion_schema();
        let untrimmed = compile_schema(&schema);
        let mut trimmed = compile_schema(&schema);
        trim(&mut trimmed);
        assert!(!trimmed.properties.contains_key("metadata"));
        let spec = &trimmed.properties["spec"];
        let kept: std::collections::BTreeSet<&str> =
            spec.properties.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            ["data", "defaulted", "emb", "labels", "list", "wait", "when"].into(),
            "plain subtrees dropped"
        );
        assert!(spec.properties["list"].items.as_ref().is_some_and(|i| {
            i.properties.contains_key("at") && !i.properties.contains_key("n")
        }));
        let passing = json!({"metadata": {"name": "x"}, "spec": {
            "when": "2026-01-01T00:00:00Z", "wait": "5s", "data": "YWJj",
            "labels": {"a.b/c": "1"}, "nested": {"x-y": 1}, "quantity": "1Gi",
            "emb": {}, "defaulted": {}, "list": [{"at": "2026-01-01T00:00:00Z", "n": 1}]}});
        let failing = json!({"metadata": {"name": "X"}, "spec": {
            "when": "2031-01-01T00:00:00Z", "wait": "1s", "data": "YWJjZA==",
            "labels": {"a": "1"}, "nested": {"x-y": 2}, "quantity": 1,
            "emb": {"kind": "K"}, "defaulted": {"v": "other"},
            "list": [{"at": "2031-01-01T00:00:00Z"}]}});
        let messages = |compiled: &CompiledSchema, obj: &Value| -> Vec<String> {
            evaluate(compiled, obj, None, None)
                .into_iter()
                .map(|e| e.message)
                .collect()
        };
        assert!(messages(&untrimmed, &passing).is_empty());
        assert!(messages(&trimmed, &passing).is_empty());
        assert_eq!(messages(&untrimmed, &failing).len(), 8);
        assert_eq!(messages(&trimmed, &failing), messages(&untrimmed, &failing));
    }

    #[test]
    fn a_full_memo_is_cleared() {
        let mut memo = Memo::default();
        for i in 0..=MAX_MEMO {
            let v = json!(i);
            memo.insert(
                Memo::key(&v, None),
                MemoEntry {
                    value: v,
                    old: None,
                    failures: Vec::new(),
                },
            );
        }
        assert_eq!(memo.len, 1);
        let last = json!(MAX_MEMO);
        assert!(memo.get(Memo::key(&last, None), &last, None).is_some());
    }
}
