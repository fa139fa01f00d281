//! Field sets as server-side apply tracks them in `managedFields` (`FieldsV1`):
//! `f:<field>` for struct/map fields, `k:{"name":"x"}` for items of keyed lists, `v:<json>`
//! for items of sets; atomic lists and scalars are leaves.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Field(String),
    /// The canonical JSON of the key fields of a keyed list item.
    Key(String),
    /// The JSON of a set item.
    Value(String),
}

pub type FieldPath = Vec<Step>;
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    Map(Vec<String>),
    Set,
    Atomic,
}

/// Where in the schema a value sits: CRDs carry list semantics in their OpenAPI schema,
/// built-ins in Go struct tags, which are approximated by field name here.
#[derive(Clone, Copy, Debug)]
pub enum Schema<'a> {
    Builtin,
    Crd(Option<&'a Value>),
}

impl<'a> Schema<'a> {
    pub fn child(self, key: &str, at_root: bool) -> Schema<'a> {
        match self {
            Schema::Builtin => Schema::Builtin,
            Schema::Crd(_) if at_root && key == "metadata" => Schema::Builtin,
            Schema::Crd(None) => Schema::Crd(None),
            Schema::Crd(Some(s)) => Schema::Crd(
                s.get("properties")
                    .and_then(|p| p.get(key))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object())),
            ),
        }
    }

    pub fn items(self) -> Schema<'a> {
        match self {
            Schema::Crd(Some(s)) => Schema::Crd(s.get("items")),
            other => other,
        }
    }

    pub fn list_kind(self, field: &str, items: &[Value]) -> ListKind {
        match self {
            Schema::Crd(Some(s)) => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => ListKind::Map(
                    s.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| {
                            k.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                Some("set") => ListKind::Set,
                _ => ListKind::Atomic,
            },
            Schema::Crd(None) => ListKind::Atomic,
            Schema::Builtin => builtin_list_kind(field, items),
        }
    }
}

/// The patch merge keys of the built-in types this server serves (from their Go struct tags).
fn builtin_list_kind(field: &str, items: &[Value]) -> ListKind {
    let keys = |k: &[&str]| ListKind::Map(k.iter().map(|s| s.to_string()).collect());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "conditions" => keys(&["type"]),
        "ownerReferences" => keys(&["uid"]),
        "hostAliases" => keys(&["ip"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => {
            keys(&["containerPort", "protocol"])
        }
        "ports" => keys(&["port", "protocol"]),
        "finalizers" => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

/// The key of a keyed list item. `protocol` defaults to TCP as the apiserver defaults it
/// before merging.
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        match item.get(k) {
            Some(v) => {
                m.insert(k.clone(), v.clone());
            }
            None if k == "protocol" => {
                m.insert(k.clone(), Value::String("TCP".to_string()));
            }
            None => {}
        }
    }
    // serde_json's Map is ordered by key, which is the canonical order FieldsV1 uses.
    Value::Object(m).to_string()
}

/// Every owned path of `obj`: leaves, plus each keyed/set list item itself.
pub fn fields_of(obj: &Value, schema: Schema<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    walk(obj, schema, &mut Vec::new(), &mut out, true);
    out
}

fn walk(v: &Value, schema: Schema<'_>, path: &mut FieldPath, out: &mut FieldSet, root: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(Step::Field(k.clone()));
                walk_field(child, schema.child(k, root), k, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn walk_field(v: &Value, schema: Schema<'_>, name: &str, path: &mut FieldPath, out: &mut FieldSet) {
    match v {
        Value::Array(items) => match schema.list_kind(name, items) {
            ListKind::Map(keys) => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    path.push(Step::Key(item_key(item, &keys)));
                    walk(item, schema.items(), path, out, false);
                    // The item itself is owned too (FieldsV1 `"."`), so that a manager keeps
                    // an item alive even when it sets no field besides the key.
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Set => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    path.push(Step::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => walk(v, schema, path, out, false),
    }
}

/// Whether a path names a list item (owned as "exists", not by value).
pub fn is_item(path: &FieldPath) -> bool {
    matches!(path.last(), Some(Step::Key(_) | Step::Value(_)))
}

/// What selects a list item: a step's key, parsed once per lookup rather than once per item
/// compared (parsing it for every item was a hotspot of every write's field sets, `perf`).
enum ItemMatcher<'s> {
    Key(Map<String, Value>),
    Value(&'s String),
    Nothing,
}

impl<'s> ItemMatcher<'s> {
    fn new(step: &'s Step) -> Self {
        match step {
            Step::Key(k) => match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(key)) => Self::Key(key),
                _ => Self::Nothing,
            },
            Step::Value(v) => Self::Value(v),
            Step::Field(_) => Self::Nothing,
        }
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            Self::Key(key) => key.iter().all(|(field, want)| match item.get(field) {
                Some(v) => v == want,
                None => field == "protocol" && want == "TCP",
            }),
            Self::Value(v) => &item.to_string() == *v,
            Self::Nothing => false,
        }
    }
}

/// The value at `path`, if present.
pub fn get<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = match (step, cur) {
            (Step::Field(f), Value::Object(m)) => m.get(f)?,
            (_, Value::Array(items)) => {
                let matcher = ItemMatcher::new(step);
                items.iter().find(|i| matcher.matches(i))?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the value at `path` (a field, or a list item).
pub fn remove(obj: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for step in parent_path {
        let next = match (step, cur) {
            (Step::Field(f), Value::Object(m)) => m.get_mut(f),
            (_, Value::Array(items)) => {
                let matcher = ItemMatcher::new(step);
                items.iter_mut().find(|i| matcher.matches(i))
            }
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Step::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (_, Value::Array(items)) => {
            let matcher = ItemMatcher::new(last);
            items.retain(|i| !matcher.matches(i));
        }
        _ => {}
    }
}

fn step_name(step: &Step) -> String {
    match step {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{k}"),
        Step::Value(v) => format!("v:{v}"),
    }
}

/// Renders a set as `FieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    build_node(set.iter().map(Vec::as_slice).collect())
}

fn build_node(paths: Vec<&[Step]>) -> Value {
    let mut owned_itself = false;
    let mut children: std::collections::BTreeMap<&Step, Vec<&[Step]>> = Default::default();
    for p in paths {
        match p.split_first() {
            None => owned_itself = true,
            Some((head, tail)) => children.entry(head).or_default().push(tail),
        }
    }
    let mut m = Map::new();
    // "." marks a node that is owned itself and also has owned children.
    if owned_itself && !children.is_empty() {
        m.insert(".".to_string(), Value::Object(Map::new()));
    }
    for (step, rest) in children {
        m.insert(step_name(step), build_node(rest));
    }
    Value::Object(m)
}

fn parse_step(s: &str) -> Option<Step> {
    let (prefix, rest) = s.split_at_checked(2)?;
    match prefix {
        "f:" => Some(Step::Field(rest.to_string())),
        "k:" => Some(Step::Key(
            serde_json::from_str::<Value>(rest)
                .map_or_else(|_| rest.to_string(), |v| v.to_string()),
        )),
        "v:" => Some(Step::Value(rest.to_string())),
        _ => None,
    }
}

/// Parses `FieldsV1` JSON back into a set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    parse_node(v, &mut Vec::new(), &mut out);
    out
}

fn parse_node(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        if let Some(step) = parse_step(k) {
            path.push(step);
            parse_node(child, path, out);
            path.pop();
        }
    }
}

/// `.spec.containers[name="app"].image`, as conflict messages print paths.
pub fn render_path(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[{v}]")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_lists_and_fields_v1_round_trip() {
        let obj = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "x", "ports": [{"containerPort": 80}]}]}}},
            "metadata": {"finalizers": ["a"]}});
        let set = fields_of(&obj, Schema::Builtin);
        let v1 = to_fields_v1(&set);
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert!(c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"].is_object());
        assert!(v1["f:metadata"]["f:finalizers"]["v:\"a\""].is_object());
        assert_eq!(from_fields_v1(&v1), set);
        let image_path = set
            .iter()
            .find(|p| p.last() == Some(&Step::Field("image".into())))
            .expect("image owned");
        assert_eq!(get(&obj, image_path), Some(&json!("x")));
        assert_eq!(
            render_path(image_path),
            r#".spec.template.spec.containers[name="app"].image"#
        );
    }
}
