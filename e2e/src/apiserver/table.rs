//! Server-side printing (`as=Table`), with the JSONPath subset printer columns use.

use serde_json::{Value, json};

use super::resources::{PrinterColumn, ResourceInfo};

/// Evaluates `.a.b[0].c[?(@.type=="Ready")].status` style paths; all matches.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![obj];
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if !name.is_empty() {
                    current = current.into_iter().filter_map(|v| v.get(&name)).collect();
                }
                i = end;
            }
            '[' => {
                let mut end = i + 1;
                let mut quote: Option<char> = None;
                while end < chars.len() {
                    match (chars[end], quote) {
                        ('"' | '\'', None) => quote = Some(chars[end]),
                        (c, Some(q)) if c == q => quote = None,
                        (']', None) => break,
                        _ => {}
                    }
                    end += 1;
                }
                let inner: String = chars[i + 1..end.min(chars.len())].iter().collect();
                current = index(current, inner.trim());
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    current
}

fn index<'a>(values: Vec<&'a Value>, inner: &str) -> Vec<&'a Value> {
    let items = values.into_iter().filter_map(Value::as_array).flatten();
    if inner == "*" {
        return items.collect();
    }
    if let Ok(n) = inner.parse::<i64>() {
        return items
            .collect::<Vec<_>>()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 == n)
            .map(|(_, v)| v)
            .collect();
    }
    let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) else {
        return Vec::new();
    };
    let Some((lhs, rhs)) = filter.split_once("==") else {
        return Vec::new();
    };
    let field = lhs.trim().trim_start_matches('@').to_string();
    let want = rhs
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    items
        .filter(|item| {
            json_path(item, &field)
                .first()
                .is_some_and(|v| v.as_str().map_or_else(|| v.to_string(), String::from) == want)
        })
        .collect()
}

/// `5s`, `3m`, `2h`, `4d`, like the apiserver's human-readable durations.
pub fn human_age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s if s < 86400 * 365 * 2 => format!("{}d", s / 86400),
        s => format!("{}y", s / (86400 * 365)),
    }
}

fn cell(obj: &Value, col: &PrinterColumn) -> Value {
    let found = json_path(obj, &col.json_path);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "date" => first
            .as_str()
            .map_or(Value::Null, |s| Value::String(human_age(s))),
        "integer" | "number" | "boolean" => (*first).clone(),
        _ => {
            let parts: Vec<String> = found
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect();
            Value::String(parts.join(","))
        }
    }
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A `meta.k8s.io/v1` Table of `objects`.
pub fn table(
    res: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    include_object: bool,
) -> Value {
    let age = PrinterColumn {
        name: "Age".to_string(),
        type_: "date".to_string(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.".to_string(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".to_string(),
    };
    let columns: Vec<PrinterColumn> = if res.printer_columns.is_empty() {
        vec![age]
    } else {
        res.printer_columns.clone()
    };
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    defs.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(columns.iter().map(|c| cell(o, c)));
            json!({"cells": cells, "object": if include_object { o.clone() } else { partial(o) }})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs, "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let obj = json!({"spec": {"a": [1, 2]}, "status": {"conditions": [
            {"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            json_path(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![&json!("True")]
        );
        assert_eq!(json_path(&obj, ".spec.a[1]"), vec![&json!(2)]);
        assert!(json_path(&obj, ".spec.missing").is_empty());
    }
}
