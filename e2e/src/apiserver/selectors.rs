//! Label and field selectors as the apiserver parses them from `labelSelector`/`fieldSelector`.

use serde_json::Value;

use super::status::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside a `(...)` value set.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn value_set(s: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: values must be in parentheses: {s}"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_string(), value_set(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().to_string(), value_set(v)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Eq(k.trim().to_string(), v.trim().to_string())
            } else if part.contains(['(', ')', ' ']) {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part}"
                )));
            } else {
                Requirement::Exists(part.to_string())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// The fields a kind can be selected by, as kube-apiserver registers them per kind
/// (`AddFieldLabelConversionFunc` in pkg/apis/core/v1/conversion.go); any other field is a 400
/// `field label not supported: <field>`. Kinds without a registered conversion (everything else
/// served here, custom resources included) take the default: `metadata.name` and
/// `metadata.namespace`. Not served: the `selectableFields` of CRD versions, the pod field
/// `status.podIPs` and `spec.host` (a legacy alias). `events.k8s.io` Events take the fields of
/// `AddFieldLabelConversionsForEvent` (pkg/apis/events/v1/conversion.go), read here from the
/// events.k8s.io object itself rather than converted to core Event fields.
fn selectable_fields(group: &str, plural: &str) -> &'static [&'static str] {
    const META: &[&str] = &["metadata.name", "metadata.namespace"];
    if group == "events.k8s.io" && plural == "events" {
        return &[
            "metadata.name",
            "metadata.namespace",
            "reason",
            "type",
            "reportingController",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
        ];
    }
    if !group.is_empty() {
        return META;
    }
    match plural {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        // Cluster-scoped kinds with their own conversion do not accept metadata.namespace.
        "nodes" => &["metadata.name", "spec.unschedulable"],
        "namespaces" => &["metadata.name", "status.phase"],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "services" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        "events" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => META,
    }
}

/// A field's value as the registry's `GetAttrs` computes it: the string at the field's path,
/// `false` for an unset boolean, the defaulted value where the real server always has one
/// (defaulting is not simulated for built-in kinds), and "" for anything missing.
fn field_value(group: &str, plural: &str, field: &str, obj: &Value) -> String {
    let at = |pointer: &str| obj.pointer(pointer);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match (group, plural, field) {
        ("", "nodes", "spec.unschedulable") | ("", "pods", "spec.hostNetwork") => {
            let pointer = format!("/{}", field.replace('.', "/"));
            at(&pointer)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string()
        }
        // ToSelectableFields takes the first of status.podIPs.
        ("", "pods", "status.podIP") => text(at("/status/podIPs/0/ip").or(at("/status/podIP"))),
        ("", "secrets", "type") => at("/type")
            .and_then(Value::as_str)
            .unwrap_or("Opaque")
            .to_string(),
        ("", "services", "spec.type") => at("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string(),
        ("", "events", "source") => text(at("/source/component")),
        _ => text(at(&format!("/{}", field.replace('.', "/")))),
    }
}

/// A parsed `fieldSelector` for one kind (see [`selectable_fields`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    group: String,
    plural: String,
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str, group: &str, plural: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let (field, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !selectable_fields(group, plural).contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self {
            group: group.to_string(),
            plural: plural.to_string(),
            reqs,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, value)| {
            (field_value(&self.group, &self.plural, field, obj) == *value) == *eq
        })
    }
}

/// Both selectors of one list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, expected) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("app=web,tier in (back)", false),
        ] {
            let parsed = LabelSelector::parse(sel).expect("parses");
            assert_eq!(parsed.matches(&obj), expected, "{sel}");
        }
    }

    #[test]
    fn field_selector_supports_name_and_namespace_only() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        let parse = |s| FieldSelector::parse(s, "", "configmaps");
        assert!(
            parse("metadata.name=a,metadata.namespace!=x")
                .expect("parses")
                .matches(&obj)
        );
        assert!(!parse("metadata.name=b").expect("parses").matches(&obj));
        assert!(parse("spec.nodeName=x").is_err());
    }

    #[test]
    fn field_selector_kind_specific_fields() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        let nodes = |s| FieldSelector::parse(s, "", "nodes");
        assert!(
            nodes("spec.unschedulable==false")
                .expect("parses")
                .matches(&node)
        );
        assert!(
            !nodes("spec.unschedulable=true")
                .expect("parses")
                .matches(&node)
        );
        assert!(
            nodes("metadata.namespace=x").is_err(),
            "cluster-scoped: no namespace field"
        );
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        let pods = |s| FieldSelector::parse(s, "", "pods");
        assert!(
            pods("status.phase=Running,spec.nodeName=")
                .expect("parses")
                .matches(&pod)
        );
        assert!(
            pods("spec.hostNetwork!=true")
                .expect("parses")
                .matches(&pod)
        );
        let secret = json!({"metadata": {"name": "s"}});
        assert!(
            FieldSelector::parse("type=Opaque", "", "secrets")
                .expect("parses")
                .matches(&secret)
        );
        assert!(FieldSelector::parse("status.phase=Running", "apps", "deployments").is_err());
    }
}
