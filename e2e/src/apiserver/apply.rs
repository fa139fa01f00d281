//! Server-side apply and the `managedFields` bookkeeping of ordinary writes.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldset::{self, FieldPath, FieldSet, ListKind, Schema};
use super::resources::ResourceInfo;
use super::status::ApiError;

/// Metadata the server owns; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// The part of an object whose fields a manager can own through a write to `part`.
pub fn tracked(obj: &Value, res: &ResourceInfo, part: Part) -> Value {
    let mut out = Map::new();
    let Some(m) = obj.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in m {
        match (k.as_str(), part) {
            ("apiVersion" | "kind", _) => {}
            ("status", Part::Status) => {
                out.insert(k.clone(), v.clone());
            }
            ("status", Part::Main) if res.status => {}
            (_, Part::Status) => {}
            ("metadata", Part::Main) => {
                let mut meta = v.as_object().cloned().unwrap_or_default();
                meta.retain(|k, _| !SERVER_METADATA.contains(&k.as_str()));
                if !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// One `managedFields` entry, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Managed {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub fn read_managed(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let s = |k: &str| {
                        e.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    Managed {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        subresource: s("subresource"),
                        fields: e
                            .get("fieldsV1")
                            .map(fieldset::from_fields_v1)
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_managed(obj: &mut Value, managed: &[Managed]) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": fieldset::to_fields_v1(&m.fields),
            });
            if !m.subresource.is_empty() {
                e["subresource"] = Value::String(m.subresource.clone());
            }
            e
        })
        .collect();
    if entries.is_empty() {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(entries);
    }
}

pub fn schema_of<'a>(res: &ResourceInfo, crd_schema: Option<&'a Value>) -> Schema<'a> {
    if res.is_custom() {
        Schema::Crd(crd_schema)
    } else {
        Schema::Builtin
    }
}

fn subresource_name(part: Part) -> &'static str {
    match part {
        Part::Main => "",
        Part::Status => "status",
    }
}

/// A non-apply write takes ownership of every field it changed, silently, from whoever
/// owned it; removed fields are disowned by everyone.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    res: &ResourceInfo,
    schema: Schema<'_>,
    part: Part,
    manager: &str,
    now: &str,
) {
    let new_t = tracked(new, res, part);
    let old_t = old.map(|o| tracked(o, res, part)).unwrap_or(json!({}));
    let new_fields = fieldset::fields_of(&new_t, schema);
    let old_fields = fieldset::fields_of(&old_t, schema);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| {
            if fieldset::is_item(p) {
                fieldset::get(&old_t, p).is_none()
            } else {
                fieldset::get(&old_t, p) != fieldset::get(&new_t, p)
            }
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_fields.difference(&new_fields).cloned().collect();
    let mut managed = old.map(read_managed).unwrap_or_default();
    if changed.is_empty() && removed.is_empty() {
        write_managed(new, &managed);
        return;
    }
    for m in &mut managed {
        m.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let sub = subresource_name(part);
    let api_version = res.api_version();
    match managed
        .iter_mut()
        .find(|m| m.same_owner(manager, "Update", sub))
    {
        Some(m) => {
            m.fields.extend(changed);
            m.time = now.to_string();
            m.api_version = api_version;
        }
        None => managed.push(Managed {
            manager: manager.to_string(),
            operation: "Update".to_string(),
            api_version,
            time: now.to_string(),
            subresource: sub.to_string(),
            fields: changed,
        }),
    }
    managed.retain(|m| !m.fields.is_empty());
    write_managed(new, &managed);
}

/// Merges an applied configuration into an object: maps recursively, keyed lists by key,
/// sets by value; atomic lists and scalars are replaced.
pub fn merge(live: &mut Value, applied: &Value, schema: Schema<'_>, field: &str, root: bool) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let child = schema.child(k, root);
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, child, k, false),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match schema.list_kind(field, a) {
            ListKind::Map(keys) => {
                for item in a {
                    let key = fieldset::item_key(item, &keys);
                    match l.iter_mut().find(|i| fieldset::item_key(i, &keys) == key) {
                        Some(li) => merge(li, item, schema.items(), "", false),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListKind::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

/// The outcome of an apply against an existing object.
pub struct Applied {
    pub object: Value,
}

/// Server-side apply of `config` (already stripped to what this part may own) by `manager`
/// onto `live`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: &Value,
    config: &Value,
    res: &ResourceInfo,
    schema: Schema<'_>,
    part: Part,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Applied, ApiError> {
    let applied_t = tracked(config, res, part);
    let live_t = tracked(live, res, part);
    let applied_fields = fieldset::fields_of(&applied_t, schema);
    let sub = subresource_name(part);
    let mut managed = read_managed(live);

    let mut conflicts: BTreeMap<(String, String), Vec<FieldPath>> = BTreeMap::new();
    for m in &managed {
        if m.same_owner(manager, "Apply", sub) || m.subresource != sub {
            continue;
        }
        for p in m.fields.intersection(&applied_fields) {
            if fieldset::is_item(p) {
                continue;
            }
            if fieldset::get(&live_t, p) != fieldset::get(&applied_t, p) {
                conflicts
                    .entry((m.manager.clone(), m.api_version.clone()))
                    .or_default()
                    .push(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(res, live, &conflicts));
    }
    if force {
        for m in &mut managed {
            if !m.same_owner(manager, "Apply", sub) && m.subresource == sub {
                m.fields.retain(|p| {
                    !(applied_fields.contains(p)
                        && !fieldset::is_item(p)
                        && fieldset::get(&live_t, p) != fieldset::get(&applied_t, p))
                });
            }
        }
    }

    let previous: FieldSet = managed
        .iter()
        .find(|m| m.same_owner(manager, "Apply", sub))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let mut object = live.clone();
    merge(&mut object, &applied_t, schema, "", true);

    // Fields this manager applied before but not now go away unless someone else owns them
    // (or something below them).
    let others: Vec<&FieldSet> = managed
        .iter()
        .filter(|m| !m.same_owner(manager, "Apply", sub))
        .map(|m| &m.fields)
        .collect();
    let owned_by_others = |p: &FieldPath| {
        others
            .iter()
            .any(|s| s.iter().any(|q| q.starts_with(p) || p.starts_with(q)))
    };
    let mut dropped: Vec<&FieldPath> = previous
        .difference(&applied_fields)
        .filter(|p| !owned_by_others(p))
        .collect();
    // A path under another dropped path goes with it. Removing it first would be wrong for
    // keyed list items: their key fields would go before the item, which then no longer
    // matches its key and would stay behind as an empty entry.
    let all_dropped = dropped.clone();
    dropped.retain(|p| {
        !all_dropped
            .iter()
            .any(|q| q.len() < p.len() && p.starts_with(q))
    });
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        fieldset::remove(&mut object, p);
    }

    match managed
        .iter_mut()
        .find(|m| m.same_owner(manager, "Apply", sub))
    {
        Some(m) => {
            if m.fields != applied_fields {
                m.time = now.to_string();
            }
            m.fields = applied_fields;
            m.api_version = res.api_version();
        }
        None => managed.push(Managed {
            manager: manager.to_string(),
            operation: "Apply".to_string(),
            api_version: res.api_version(),
            time: now.to_string(),
            subresource: sub.to_string(),
            fields: applied_fields,
        }),
    }
    managed.retain(|m| !m.fields.is_empty());
    write_managed(&mut object, &managed);
    Ok(Applied { object })
}

/// The managedFields of a newly created object applied by `manager`: the fields of the
/// applied configuration, not those the server defaulted.
pub fn initial_apply_fields(
    obj: &mut Value,
    config: &Value,
    res: &ResourceInfo,
    schema: Schema<'_>,
    part: Part,
    manager: &str,
    now: &str,
) {
    let fields = fieldset::fields_of(&tracked(config, res, part), schema);
    let entry = Managed {
        manager: manager.to_string(),
        operation: "Apply".to_string(),
        api_version: res.api_version(),
        time: now.to_string(),
        subresource: subresource_name(part).to_string(),
        fields,
    };
    write_managed(obj, &[entry]);
}

fn conflict_error(
    res: &ResourceInfo,
    live: &Value,
    conflicts: &BTreeMap<(String, String), Vec<FieldPath>>,
) -> ApiError {
    let total: usize = conflicts.values().map(Vec::len).sum();
    let plural = if total == 1 { "conflict" } else { "conflicts" };
    let mut message = format!("Apply failed with {total} {plural}:");
    let mut causes = Vec::new();
    for ((manager, api_version), paths) in conflicts {
        let rendered: Vec<String> = paths.iter().map(|p| fieldset::render_path(p)).collect();
        let head = format!("conflict with \"{manager}\" using {api_version}");
        if total == 1 {
            message.push_str(&format!(" {head}: {}", rendered.join("")));
        } else {
            message.push_str(&format!(
                " {}s with \"{manager}\" using {api_version}:\n- {}",
                "conflict",
                rendered.join("\n- ")
            ));
        }
        for r in rendered {
            causes.push(json!({"reason": "FieldManagerConflict", "message": head, "field": r}));
        }
    }
    let name = live
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut err = ApiError::new(409, "Conflict", message);
    err.body["details"] =
        json!({"name": name, "group": res.group, "kind": res.plural, "causes": causes});
    err
}
