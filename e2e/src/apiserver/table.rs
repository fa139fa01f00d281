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
    human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

/// A number of seconds as `human_age` prints it.
fn human_duration(secs: i64) -> String {
    match secs.max(0) {
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
    if res.crd.is_none()
        && let Some(cols) = builtin_columns(&res.group, &res.plural)
    {
        let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.", "priority": 0})];
        defs.extend(cols.iter().map(|(name, type_)| {
            json!({"name": name, "type": type_, "format": "", "description": "", "priority": 0})
        }));
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": age.description, "priority": 0}));
        // The server always prints the wide columns; kubectl shows them with `-o wide`.
        defs.extend(wide_columns(&res.plural).iter().map(|name| {
            json!({"name": name, "type": "string", "format": "", "description": "", "priority": 1})
        }));
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
                cells.extend(builtin_cells(&res.plural, o));
                cells.push(
                    o.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .map_or(Value::Null, |t| Value::String(human_age(t))),
                );
                cells.extend(wide_cells(&res.plural, o));
                json!({"cells": cells, "object": if include_object { o.clone() } else { partial(o) }})
            })
            .collect();
        return json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": defs, "rows": rows,
        });
    }
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

/// The columns kube-apiserver prints for the built-in kinds people look at most (its
/// printers in pkg/printers/internalversion, 1.33): besides Name, before Age.
fn builtin_columns(group: &str, plural: &str) -> Option<Vec<(&'static str, &'static str)>> {
    Some(match (group, plural) {
        ("", "pods") => vec![
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
        ],
        ("apps", "deployments") => vec![
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        ("apps", "statefulsets") => vec![("Ready", "string")],
        ("apps", "replicasets") => vec![
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ],
        ("batch", "jobs") => vec![
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
        ],
        ("", "namespaces") => vec![("Status", "string")],
        ("", "services") => vec![
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
        ],
        _ => return None,
    })
}

/// The `priority: 1` columns kube-apiserver prints after Age for these kinds
/// (pkg/printers/internalversion/printers.go, 1.33).
fn wide_columns(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &["IP", "Node", "Nominated Node", "Readiness Gates"],
        "deployments" | "replicasets" | "jobs" => &["Containers", "Images", "Selector"],
        "statefulsets" => &["Containers", "Images"],
        "services" => &["Selector"],
        _ => &[],
    }
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn none_if_empty(s: String) -> Value {
    Value::String(if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    })
}

/// `metav1.FormatLabelSelector`: `k=v` for matchLabels, then `k in (a,b)`, `k notin (a)`,
/// `k`, `!k` for expressions; `<none>` for the empty selector.
fn format_selector(sel: Option<&Value>) -> Value {
    let Some(sel) = sel else {
        return none_if_empty(String::new());
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    none_if_empty(parts.join(","))
}

/// The wide cells, in the order of [`wide_columns`].
fn wide_cells(plural: &str, o: &Value) -> Vec<Value> {
    let containers = |template: &str| {
        let list: Vec<&Value> = o
            .pointer(&format!("{template}/spec/containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let names: Vec<&str> = list.iter().map(|c| str_at(c, "/name")).collect();
        let images: Vec<&str> = list.iter().map(|c| str_at(c, "/image")).collect();
        (json!(names.join(",")), json!(images.join(",")))
    };
    match plural {
        "pods" => {
            let gates =
                o.pointer("/spec/readinessGates")
                    .and_then(Value::as_array)
                    .filter(|g| !g.is_empty())
                    .map(|gates| {
                        let conditions = o.pointer("/status/conditions").and_then(Value::as_array);
                        let met = gates
                            .iter()
                            .filter(|g| {
                                conditions.into_iter().flatten().any(|c| {
                                    c["type"] == g["conditionType"] && c["status"] == "True"
                                })
                            })
                            .count();
                        format!("{met}/{}", gates.len())
                    });
            vec![
                none_if_empty(str_at(o, "/status/podIPs/0/ip").to_string()),
                none_if_empty(str_at(o, "/spec/nodeName").to_string()),
                none_if_empty(str_at(o, "/status/nominatedNodeName").to_string()),
                none_if_empty(gates.unwrap_or_default()),
            ]
        }
        "deployments" | "replicasets" | "jobs" => {
            let (names, images) = containers("/spec/template");
            vec![names, images, format_selector(o.pointer("/spec/selector"))]
        }
        "statefulsets" => {
            let (names, images) = containers("/spec/template");
            vec![names, images]
        }
        "services" => {
            // printService: the selector map as `k=v`, sorted by key.
            let sel: Vec<String> = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            vec![none_if_empty(sel.join(","))]
        }
        _ => Vec::new(),
    }
}

fn int_at(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn builtin_cells(plural: &str, o: &Value) -> Vec<Value> {
    match plural {
        "pods" => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            vec![
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
            ]
        }
        "deployments" => vec![
            json!(format!(
                "{}/{}",
                int_at(o, "/status/readyReplicas"),
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            json!(int_at(o, "/status/updatedReplicas")),
            json!(int_at(o, "/status/availableReplicas")),
        ],
        "statefulsets" => vec![json!(format!(
            "{}/{}",
            int_at(o, "/status/readyReplicas"),
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        ))],
        "replicasets" => vec![
            json!(
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            ),
            json!(int_at(o, "/status/replicas")),
            json!(int_at(o, "/status/readyReplicas")),
        ],
        "jobs" => {
            let done = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| {
                    c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed")
                })
                .and_then(|c| c["type"].as_str())
                .unwrap_or("Running");
            vec![
                json!(done),
                json!(format!(
                    "{}/{}",
                    int_at(o, "/status/succeeded"),
                    o.pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                job_duration(o),
            ]
        }
        "namespaces" => vec![json!(
            o.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active")
        )],
        "services" => {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["port"].as_i64().unwrap_or(0),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            vec![
                json!(
                    o.pointer("/spec/type")
                        .and_then(Value::as_str)
                        .unwrap_or("ClusterIP")
                ),
                json!(
                    o.pointer("/spec/clusterIP")
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")
                ),
                external_ip(o),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
            ]
        }
        _ => Vec::new(),
    }
}

/// printJob's DURATION: from start to completion, or until now while running; empty before
/// the Job started.
fn job_duration(o: &Value) -> Value {
    let at = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let Some(start) = at("/status/startTime") else {
        return json!("");
    };
    let end = at("/status/completionTime").unwrap_or_else(chrono::Utc::now);
    json!(human_duration((end - start).num_seconds()))
}

/// printService's EXTERNAL-IP: `spec.externalIPs`, for LoadBalancers the ingress addresses
/// (`<pending>` while there are none), for ExternalName the name.
fn external_ip(o: &Value) -> Value {
    let mut ips: Vec<String> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    match str_at(o, "/spec/type") {
        "LoadBalancer" => {
            let ingress: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|i| {
                    let ip = str_at(i, "/ip");
                    if ip.is_empty() {
                        str_at(i, "/hostname")
                    } else {
                        ip
                    }
                    .to_string()
                })
                .collect();
            ips.extend(ingress);
            if ips.is_empty() {
                return json!("<pending>");
            }
            json!(ips.join(","))
        }
        "ExternalName" => json!(str_at(o, "/spec/externalName")),
        _ => none_if_empty(ips.join(",")),
    }
}

/// The STATUS kubectl shows for a pod: the reason of the first container that waits or
/// terminated (`Init:` for init containers), else the phase.
fn pod_status(o: &Value) -> String {
    let state_reason = |c: &Value| {
        c.pointer("/state/waiting/reason")
            .or_else(|| c.pointer("/state/terminated/reason"))
            .and_then(Value::as_str)
            .map(String::from)
    };
    for c in o
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = state_reason(c).filter(|r| r != "Completed") {
            return format!("Init:{r}");
        }
    }
    for c in o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = state_reason(c) {
            return r;
        }
    }
    o.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string()
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

    #[test]
    fn wide_columns_follow_age() {
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "web", "tier": "a"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["x", "y"]}]},
            "template": {"spec": {"containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "j:2"}]}}}});
        assert_eq!(
            wide_cells("deployments", &deploy),
            vec![
                json!("a,b"),
                json!("i:1,j:2"),
                json!("app=web,tier=a,env in (x,y)")
            ]
        );
        let pod = json!({"spec": {"nodeName": "n1", "readinessGates": [{"conditionType": "G"}]},
            "status": {"podIPs": [{"ip": "10.0.0.1"}], "conditions": [{"type": "G", "status": "True"}]}});
        assert_eq!(
            wide_cells("pods", &pod),
            vec![
                json!("10.0.0.1"),
                json!("n1"),
                json!("<none>"),
                json!("1/1")
            ]
        );
        let t = table(
            &super::super::resources::builtins()
                .into_iter()
                .find(|r| r.plural == "services")
                .expect("services"),
            &[
                json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "selector": {"app": "s"}}}),
            ],
            "1",
            false,
        );
        let names: Vec<(&str, i64)> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default(),
                    c["priority"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1)
            ]
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[6], "app=s");
    }

    #[test]
    fn pods_print_like_kubectl() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(
            builtin_cells("pods", &pod),
            vec![json!("1/2"), json!("CrashLoopBackOff"), json!("3")]
        );
        let running = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(builtin_cells("pods", &running)[1], json!("Running"));
        let init = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending",
            "initContainerStatuses": [{"name": "seed", "state": {"waiting": {"reason": "CreateContainerConfigError"}}}],
            "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(
            builtin_cells("pods", &init)[1],
            json!("Init:CreateContainerConfigError")
        );
    }
}
