//! The Go validation kube-apiserver 1.33 runs on built-in objects after defaulting: apimachinery's
//! object-meta rules (names, labels, annotations) and the semantic checks of
//! `pkg/apis/{core,apps,batch,networking,policy,rbac}/validation/validation.go` that catch real
//! mistakes. Messages are kube-apiserver's, so a test asserting on a real cluster's 422 passes here.
//!
//! Not every rule of those files is here: the ones left out (volume source details, security
//! context combinations, probe handler counts, topology spread, affinity terms, RBAC escalation)
//! are listed in docs/testing.md.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::validation::{FieldError, FieldErrorKind};

use super::quantity::Quantity;

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// `MaxSecretSize` / `MaxConfigMapSize`: 1 MiB.
const DATA_MAX_BYTES: usize = 1024 * 1024;

/// Collects `field.ErrorList` entries with apimachinery's wording.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl Errors {
    fn push(&mut self, path: &str, kind: FieldErrorKind, value: Option<String>, message: &str) {
        self.0.push(FieldError {
            path: path.to_string(),
            kind,
            value,
            message: message.to_string(),
        });
    }
    fn invalid(&mut self, path: &str, value: String, message: &str) {
        self.push(path, FieldErrorKind::Invalid, Some(value), message);
    }
    fn invalid_str(&mut self, path: &str, value: &str, message: &str) {
        self.invalid(path, quote(value), message);
    }
    fn required(&mut self, path: &str, message: &str) {
        self.push(path, FieldErrorKind::Required, None, message);
    }
    fn forbidden(&mut self, path: &str, message: &str) {
        self.push(path, FieldErrorKind::Forbidden, None, message);
    }
    fn duplicate(&mut self, path: &str, value: String) {
        self.push(path, FieldErrorKind::Duplicate, Some(value), "");
    }
    fn too_long(&mut self, path: &str, max: usize) {
        self.push(
            path,
            FieldErrorKind::TooLong,
            None,
            &format!("may not be more than {max} bytes"),
        );
    }
    fn not_supported(&mut self, path: &str, value: &str, allowed: &[&str]) {
        let listed: Vec<String> = allowed.iter().map(|a| quote(a)).collect();
        self.push(
            path,
            FieldErrorKind::NotSupported,
            Some(quote(value)),
            &format!("supported values: {}", listed.join(", ")),
        );
    }
    /// A string enum: absent is fine (defaulted or optional), anything else must be listed.
    fn enum_field(&mut self, m: &Map<String, Value>, key: &str, path: &str, allowed: &[&str]) {
        if let Some(v) = str_of(m, key)
            && !allowed.contains(&v)
        {
            self.not_supported(&join(path, key), v, allowed);
        }
    }
    fn nonnegative(&mut self, m: &Map<String, Value>, key: &str, path: &str) {
        if let Some(n) = m.get(key).and_then(Value::as_i64)
            && n < 0
        {
            self.invalid(
                &join(path, key),
                n.to_string(),
                "must be greater than or equal to 0",
            );
        }
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn obj<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    m.get(key).and_then(Value::as_object)
}

fn items<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = (usize, &'a Map<String, Value>)> {
    m.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|o| (i, o)))
}

fn array_len(m: &Map<String, Value>, key: &str) -> usize {
    m.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

// --- apimachinery/pkg/util/validation -------------------------------------------------------

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// `IsDNS1123Label`.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        errs.push(DNS1123_LABEL.to_string());
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && b.last()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !ok {
        errs.push(DNS1123_SUBDOMAIN.to_string());
    }
    errs
}

/// `IsDNS1035Label`.
pub fn dns1035_label(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        errs.push(DNS1035_LABEL.to_string());
    }
    errs
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .all(|c| is_alnum(*c) || matches!(c, b'-' | b'_' | b'.'))
        && b.first().copied().is_some_and(is_alnum)
        && b.last().copied().is_some_and(is_alnum)
}

/// `IsQualifiedName`: label and annotation keys.
pub fn qualified_name(s: &str) -> Vec<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => return vec![QUALIFIED_NAME.to_string()],
    };
    let mut errs = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !name_part_ok(name) {
        errs.push(QUALIFIED_NAME_PART.to_string());
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !name_part_ok(s) {
        errs.push(LABEL_VALUE.to_string());
    }
    errs
}

/// `IsValidPortName` (IANA_SVC_NAME).
fn port_name(s: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

fn port_in_range(errs: &mut Errors, path: &str, port: i64) {
    if !(1..=65535).contains(&port) {
        errs.invalid(
            path,
            port.to_string(),
            "must be between 1 and 65535, inclusive",
        );
    }
}

/// Go's `%#v` of a `map[string]string`, as `field.Invalid` prints label maps.
fn go_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", quote(k), m[*k]))
                .collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

// --- ObjectMeta -------------------------------------------------------------------------------

/// How a kind's names are checked (`ValidateObjectMeta`'s `nameFn`).
#[derive(Clone, Copy)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// `path.IsValidPathSegmentName` (RBAC objects).
    PathSegment,
}

pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

pub fn labels(errs: &mut Errors, labels: Option<&Map<String, Value>>, path: &str) {
    for (k, v) in labels.into_iter().flatten() {
        for e in qualified_name(k) {
            errs.invalid_str(path, k, &e);
        }
        if let Some(v) = v.as_str() {
            for e in label_value(v) {
                errs.invalid_str(path, v, &e);
            }
        }
    }
}

pub fn object_meta(errs: &mut Errors, meta: &Map<String, Value>, rule: NameRule, path: &str) {
    if let Some(name) = str_of(meta, "name") {
        let problems = match rule {
            NameRule::Subdomain => dns1123_subdomain(name),
            NameRule::Label => dns1123_label(name),
            NameRule::Dns1035 => dns1035_label(name),
            NameRule::PathSegment => {
                let mut p = Vec::new();
                if name == "." || name == ".." {
                    p.push(format!("may not be '{name}'"));
                }
                for bad in ["/", "%"] {
                    if name.contains(bad) {
                        p.push(format!("may not contain '{bad}'"));
                    }
                }
                p
            }
        };
        for e in problems {
            errs.invalid_str(&join(path, "name"), name, &e);
        }
    }
    labels(errs, obj(meta, "labels"), &join(path, "labels"));
    if let Some(annotations) = obj(meta, "annotations") {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            for e in qualified_name(&k.to_lowercase()) {
                errs.invalid_str(&join(path, "annotations"), k, &e);
            }
        }
        if total > ANNOTATIONS_MAX_BYTES {
            errs.too_long(&join(path, "annotations"), ANNOTATIONS_MAX_BYTES);
        }
    }
}

// --- LabelSelector ----------------------------------------------------------------------------

fn label_selector(errs: &mut Errors, sel: &Map<String, Value>, path: &str) {
    labels(errs, obj(sel, "matchLabels"), &join(path, "matchLabels"));
    for (i, req) in items(sel, "matchExpressions") {
        let p = format!("{path}.matchExpressions[{i}]");
        let op = str_of(req, "operator").unwrap_or("");
        let values = array_len(req, "values");
        match op {
            "In" | "NotIn" if values == 0 => errs.required(
                &join(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if values > 0 => errs.forbidden(
                &join(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.invalid_str(
                &join(&p, "operator"),
                other,
                "not a valid selector operator",
            ),
        }
        if let Some(key) = str_of(req, "key") {
            for e in qualified_name(key) {
                errs.invalid_str(&join(&p, "key"), key, &e);
            }
        }
    }
}

/// Whether `labels` satisfy the selector (matchLabels and matchExpressions).
fn selector_matches(sel: &Map<String, Value>, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = obj(sel, "matchLabels")
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let expressions = items(sel, "matchExpressions").all(|(_, req)| {
        let key = str_of(req, "key").unwrap_or("");
        let values: Vec<&str> = req
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match str_of(req, "operator").unwrap_or("") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    });
    match_labels && expressions
}

fn selector_is_empty(sel: &Map<String, Value>) -> bool {
    obj(sel, "matchLabels").is_none_or(Map::is_empty) && array_len(sel, "matchExpressions") == 0
}

/// The selector/template rules shared by Deployments, ReplicaSets and StatefulSets.
/// `empty`: the kind's message for an empty selector.
fn workload_selector(errs: &mut Errors, spec: &Map<String, Value>, empty: &str) {
    let Some(sel) = obj(spec, "selector") else {
        errs.required("spec.selector", "");
        return;
    };
    label_selector(errs, sel, "spec.selector");
    if selector_is_empty(sel) {
        errs.invalid(
            "spec.selector",
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".to_string(),
            empty,
        );
        return;
    }
    let template_labels = spec
        .get("template")
        .and_then(|t| t.pointer("/metadata/labels"))
        .and_then(Value::as_object);
    if !selector_matches(sel, template_labels) {
        errs.invalid(
            "spec.template.metadata.labels",
            go_map(template_labels),
            "`selector` does not match template `labels`",
        );
    }
}

// --- Pods -------------------------------------------------------------------------------------

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

/// `validatePodTemplateSpec` → `ValidatePodSpec` (the part that catches real mistakes).
pub fn pod_template(errs: &mut Errors, template: Option<&Map<String, Value>>, path: &str) {
    pod_template_with(errs, template, path, &[]);
}

/// `extra_volumes`: names that mounts may use besides the pod's volumes (a StatefulSet's claim
/// templates).
fn pod_template_with(
    errs: &mut Errors,
    template: Option<&Map<String, Value>>,
    path: &str,
    extra_volumes: &[String],
) {
    let Some(template) = template else {
        errs.required(path, "");
        return;
    };
    if let Some(meta) = obj(template, "metadata") {
        labels(
            errs,
            obj(meta, "labels"),
            &format!("{path}.metadata.labels"),
        );
    }
    match obj(template, "spec") {
        Some(spec) => pod_spec_with(errs, spec, &join(path, "spec"), extra_volumes),
        None => errs.required(&format!("{path}.spec.containers"), ""),
    }
}

pub fn pod_spec(errs: &mut Errors, spec: &Map<String, Value>, path: &str) {
    pod_spec_with(errs, spec, path, &[]);
}

fn pod_spec_with(
    errs: &mut Errors,
    spec: &Map<String, Value>,
    path: &str,
    extra_volumes: &[String],
) {
    let mut volumes = volumes(errs, spec, path);
    volumes.extend(extra_volumes.iter().cloned());
    if array_len(spec, "containers") == 0 {
        errs.required(&join(path, "containers"), "");
    }
    let mut names = HashSet::new();
    let mut port_names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in items(spec, list) {
            let p = format!("{path}.{list}[{i}]");
            container(errs, c, &p, &volumes, &mut port_names);
            if let Some(name) = str_of(c, "name")
                && !name.is_empty()
                && !names.insert(name.to_string())
            {
                errs.duplicate(&join(&p, "name"), quote(name));
            }
        }
    }
    errs.enum_field(spec, "restartPolicy", path, RESTART_POLICIES);
    errs.enum_field(
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    errs.nonnegative(spec, "terminationGracePeriodSeconds", path);
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && n <= 0
    {
        errs.invalid(
            &join(path, "activeDeadlineSeconds"),
            n.to_string(),
            "must be between 1 and 2147483647, inclusive",
        );
    }
    if let Some(sa) = str_of(spec, "serviceAccountName")
        && !sa.is_empty()
    {
        for e in dns1123_subdomain(sa) {
            errs.invalid_str(&join(path, "serviceAccountName"), sa, &e);
        }
    }
}

fn volumes(errs: &mut Errors, spec: &Map<String, Value>, path: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in items(spec, "volumes") {
        let p = format!("{path}.volumes[{i}]");
        match str_of(v, "name") {
            None | Some("") => errs.required(&join(&p, "name"), ""),
            Some(name) => {
                for e in dns1123_label(name) {
                    errs.invalid_str(&join(&p, "name"), name, &e);
                }
                if !names.insert(name.to_string()) {
                    errs.duplicate(&join(&p, "name"), quote(name));
                }
            }
        }
        let sources = v.keys().filter(|k| *k != "name").count();
        if sources > 1 {
            errs.forbidden(&p, "may not specify more than 1 volume type");
        }
        for source in ["secret", "configMap", "projected", "downwardAPI"] {
            if let Some(mode) = v
                .get(source)
                .and_then(|s| s.get("defaultMode"))
                .and_then(Value::as_i64)
                && !(0..=0o777).contains(&mode)
            {
                errs.invalid(
                    &format!("{p}.{source}.defaultMode"),
                    mode.to_string(),
                    "must be a number between 0 and 0777 (octal), both inclusive",
                );
            }
        }
        if let Some(claim) = v.get("persistentVolumeClaim").and_then(Value::as_object)
            && str_of(claim, "claimName").is_none_or(str::is_empty)
        {
            errs.required(&format!("{p}.persistentVolumeClaim.claimName"), "");
        }
    }
    names
}

fn container(
    errs: &mut Errors,
    c: &Map<String, Value>,
    path: &str,
    volumes: &HashSet<String>,
    port_names: &mut HashSet<String>,
) {
    match str_of(c, "name") {
        None | Some("") => errs.required(&join(path, "name"), ""),
        Some(name) => {
            for e in dns1123_label(name) {
                errs.invalid_str(&join(path, "name"), name, &e);
            }
        }
    }
    if str_of(c, "image").is_none_or(|i| i.trim().is_empty()) {
        errs.required(&join(path, "image"), "");
    }
    errs.enum_field(
        c,
        "imagePullPolicy",
        path,
        &["Always", "IfNotPresent", "Never"],
    );
    errs.enum_field(
        c,
        "terminationMessagePolicy",
        path,
        &["File", "FallbackToLogsOnError"],
    );
    for (i, port) in items(c, "ports") {
        let p = format!("{path}.ports[{i}]");
        match port.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.required(&join(&p, "containerPort"), ""),
            Some(n) => port_in_range(errs, &join(&p, "containerPort"), n),
        }
        if let Some(n) = port.get("hostPort").and_then(Value::as_i64)
            && n != 0
        {
            port_in_range(errs, &join(&p, "hostPort"), n);
        }
        if let Some(name) = str_of(port, "name")
            && !name.is_empty()
        {
            for e in port_name(name) {
                errs.invalid_str(&join(&p, "name"), name, e);
            }
            if !port_names.insert(name.to_string()) {
                errs.duplicate(&join(&p, "name"), quote(name));
            }
        }
        errs.enum_field(port, "protocol", &p, PROTOCOLS);
    }
    for (i, env) in items(c, "env") {
        let p = format!("{path}.env[{i}]");
        match str_of(env, "name") {
            None | Some("") => errs.required(&join(&p, "name"), ""),
            Some(name) => {
                // RelaxedEnvironmentVariableValidation (beta, on in 1.33).
                if !name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=') {
                    errs.invalid_str(
                        &join(&p, "name"),
                        name,
                        "a valid environment variable name must consist only of printable ASCII characters other than '='",
                    );
                }
            }
        }
        if env
            .get("value")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            && env.get("valueFrom").is_some()
        {
            errs.invalid(
                &join(&p, "valueFrom"),
                quote(""),
                "may not be specified when `value` is not empty",
            );
        }
    }
    for (i, m) in items(c, "volumeMounts") {
        let p = format!("{path}.volumeMounts[{i}]");
        match str_of(m, "name") {
            None | Some("") => errs.required(&join(&p, "name"), ""),
            Some(name) if !volumes.contains(name) => {
                errs.not_found(&join(&p, "name"), name);
            }
            Some(_) => {}
        }
        if str_of(m, "mountPath").is_none_or(str::is_empty) {
            errs.required(&join(&p, "mountPath"), "");
        }
    }
    resources(errs, obj(c, "resources"), &join(path, "resources"));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(pr) = obj(c, probe) {
            let p = join(path, probe);
            for k in [
                "initialDelaySeconds",
                "timeoutSeconds",
                "periodSeconds",
                "successThreshold",
                "failureThreshold",
            ] {
                errs.nonnegative(pr, k, &p);
            }
            if probe != "readinessProbe"
                && let Some(n) = pr.get("successThreshold").and_then(Value::as_i64)
                && n != 1
            {
                errs.invalid(&join(&p, "successThreshold"), n.to_string(), "must be 1");
            }
            let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
                .iter()
                .filter(|h| pr.contains_key(**h))
                .count();
            if handlers == 0 {
                errs.required(&p, "must specify a handler type");
            }
            for action in ["httpGet", "tcpSocket"] {
                if let Some(port) = pr.get(action).and_then(|a| a.get("port")) {
                    probe_port(errs, port, &format!("{p}.{action}.port"));
                }
            }
        }
    }
}

impl Errors {
    /// `field.NotFound`: "Not found: \"x\"".
    fn not_found(&mut self, path: &str, value: &str) {
        self.push(path, FieldErrorKind::NotFound, Some(quote(value)), "");
    }
}

fn probe_port(errs: &mut Errors, port: &Value, path: &str) {
    match port {
        Value::Number(n) => port_in_range(errs, path, n.as_i64().unwrap_or(0)),
        Value::String(s) => {
            for e in port_name(s) {
                errs.invalid_str(path, s, e);
            }
        }
        _ => {}
    }
}

/// Container resource names: the standard ones or a domain-prefixed extended resource.
fn standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.starts_with("requests."))
}

/// `ValidateResourceRequirements`.
fn resources(errs: &mut Errors, r: Option<&Map<String, Value>>, path: &str) {
    let Some(r) = r else { return };
    let parse = |v: &Value| v.as_str().and_then(Quantity::parse);
    let limits = obj(r, "limits");
    for (list, entries) in [("limits", limits), ("requests", obj(r, "requests"))] {
        for (name, v) in entries.into_iter().flatten() {
            let p = format!("{path}.{list}[{name}]");
            if !standard_container_resource(name) {
                errs.invalid_str(&p, name, "must be a standard resource for containers");
            }
            let Some(q) = parse(v) else { continue };
            if q.is_negative() {
                errs.invalid_str(&p, &q.to_string(), "must be greater than or equal to 0");
            }
            if list == "requests"
                && let Some(limit) = limits.and_then(|l| l.get(name)).and_then(parse)
                && q.cmp_value(&limit) == std::cmp::Ordering::Greater
            {
                errs.invalid_str(
                    &p,
                    &q.to_string(),
                    &format!("must be less than or equal to {name} limit of {limit}"),
                );
            }
        }
    }
}

// --- Kinds ------------------------------------------------------------------------------------

/// Validates a defaulted object of a built-in kind; `old` is set on updates.
pub fn object(group: &str, kind: &str, obj_v: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Errors::default();
    let empty = Map::new();
    let root = obj_v.as_object().unwrap_or(&empty);
    if let Some(meta) = obj(root, "metadata") {
        object_meta(&mut errs, meta, name_rule(group, kind), "metadata");
    }
    let spec = obj(root, "spec").unwrap_or(&empty);
    let old_spec = old.and_then(|o| o.get("spec")).and_then(Value::as_object);
    match (group, kind) {
        ("apps", "Deployment") => deployment(&mut errs, spec, old_spec),
        ("apps", "ReplicaSet") => {
            errs.nonnegative(spec, "replicas", "spec");
            workload_selector(&mut errs, spec, "empty selector is invalid for deployment");
            pod_template(&mut errs, obj(spec, "template"), "spec.template");
            restart_always(&mut errs, spec, "spec.template.spec.restartPolicy");
        }
        ("apps", "StatefulSet") => stateful_set(&mut errs, spec, old_spec),
        ("batch", "Job") => job(&mut errs, spec, "spec"),
        ("batch", "CronJob") => cron_job(&mut errs, root, spec),
        ("", "Pod") => pod_spec(&mut errs, spec, "spec"),
        ("", "Service") => {
            service(&mut errs, spec);
            // ValidateServiceUpdate: the cluster IP is immutable once allocated.
            if let (Some(new), Some(old)) = (cluster_ip(Some(spec)), cluster_ip(old_spec))
                && new != old
                && str_of(spec, "type") != Some("ExternalName")
            {
                errs.invalid_str("spec.clusterIPs[0]", new, "field is immutable");
            }
        }
        ("", "ConfigMap") => config_data(&mut errs, root, &["data", "binaryData"]),
        ("", "Secret") => config_data(&mut errs, root, &["data", "stringData"]),
        ("", "PersistentVolumeClaim") => pvc_spec(&mut errs, spec, "spec"),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(&mut errs, spec),
        ("networking.k8s.io", "Ingress") => ingress(&mut errs, spec),
        ("policy", "PodDisruptionBudget") => pdb(&mut errs, spec),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            binding(&mut errs, root, kind);
        }
        _ => {}
    }
    errs.0
}

fn cluster_ip(spec: Option<&Map<String, Value>>) -> Option<&str> {
    spec.and_then(|s| str_of(s, "clusterIP"))
        .filter(|ip| !ip.is_empty())
}

fn restart_always(errs: &mut Errors, spec: &Map<String, Value>, path: &str) {
    if let Some(policy) = spec
        .get("template")
        .and_then(|t| t.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str)
        && policy != "Always"
    {
        errs.not_supported(path, policy, &["Always"]);
    }
}

/// `ValidateDeploymentSpec` and `ValidateDeploymentUpdate` (apps/validation/validation.go).
fn deployment(errs: &mut Errors, spec: &Map<String, Value>, old: Option<&Map<String, Value>>) {
    errs.nonnegative(spec, "replicas", "spec");
    workload_selector(errs, spec, "empty selector is invalid for deployment");
    pod_template(errs, obj(spec, "template"), "spec.template");
    restart_always(errs, spec, "spec.template.spec.restartPolicy");
    if let Some(strategy) = obj(spec, "strategy") {
        let type_ = str_of(strategy, "type").unwrap_or("");
        match type_ {
            "Recreate" => {
                if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                    errs.forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    );
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = obj(strategy, "rollingUpdate") {
                    rolling_update(errs, ru);
                }
            }
            other => {
                errs.not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"])
            }
        }
    }
    errs.nonnegative(spec, "revisionHistoryLimit", "spec");
    errs.nonnegative(spec, "minReadySeconds", "spec");
    if let (Some(deadline), min_ready) = (
        spec.get("progressDeadlineSeconds").and_then(Value::as_i64),
        spec.get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    ) {
        if deadline < 0 {
            errs.invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than or equal to 0",
            );
        } else if deadline <= min_ready {
            errs.invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            );
        }
    }
    if let Some(old) = old
        && old.get("selector") != spec.get("selector")
    {
        errs.invalid(
            "spec.selector",
            selector_repr(spec.get("selector")),
            "field is immutable",
        );
    }
}

/// Go's `%#v` of a `*metav1.LabelSelector`, shortened to its matchLabels (what differs in
/// practice).
fn selector_repr(sel: Option<&Value>) -> String {
    let labels = sel
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}",
        go_map(labels)
    )
}

fn int_or_percent(errs: &mut Errors, v: Option<&Value>, path: &str) -> Option<i64> {
    match v? {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.invalid(path, n.to_string(), "must be greater than or equal to 0");
            }
            Some(n)
        }
        Value::String(s) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                errs.invalid_str(path, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
                return None;
            };
            if pct > 100 {
                errs.invalid_str(path, s, "must not be greater than 100%");
            }
            Some(pct)
        }
        _ => None,
    }
}

fn rolling_update(errs: &mut Errors, ru: &Map<String, Value>) {
    let p = "spec.strategy.rollingUpdate";
    let unavailable = int_or_percent(errs, ru.get("maxUnavailable"), &join(p, "maxUnavailable"));
    let surge = int_or_percent(errs, ru.get("maxSurge"), &join(p, "maxSurge"));
    if unavailable == Some(0) && surge == Some(0) {
        errs.invalid(
            &join(p, "maxUnavailable"),
            ru.get("maxUnavailable")
                .map(Value::to_string)
                .unwrap_or_default(),
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

/// `ValidateStatefulSetSpec` and `ValidateStatefulSetUpdate`.
fn stateful_set(errs: &mut Errors, spec: &Map<String, Value>, old: Option<&Map<String, Value>>) {
    if let Some(p) = str_of(spec, "podManagementPolicy")
        && !matches!(p, "OrderedReady" | "Parallel")
    {
        errs.invalid_str(
            "spec.podManagementPolicy",
            p,
            "must be 'OrderedReady' or 'Parallel'",
        );
    }
    if let Some(strategy) = obj(spec, "updateStrategy") {
        errs.enum_field(
            strategy,
            "type",
            "spec.updateStrategy",
            &["OnDelete", "RollingUpdate"],
        );
        if str_of(strategy, "type") == Some("OnDelete") && strategy.contains_key("rollingUpdate") {
            errs.invalid(
                "spec.updateStrategy.rollingUpdate",
                quote(""),
                "only allowed for updateStrategy 'RollingUpdate'",
            );
        }
    }
    if let Some(r) = obj(spec, "persistentVolumeClaimRetentionPolicy") {
        let p = "spec.persistentVolumeClaimRetentionPolicy";
        errs.enum_field(r, "whenDeleted", p, &["Retain", "Delete"]);
        errs.enum_field(r, "whenScaled", p, &["Retain", "Delete"]);
    }
    errs.nonnegative(spec, "replicas", "spec");
    errs.nonnegative(spec, "minReadySeconds", "spec");
    workload_selector(errs, spec, "empty selector is not valid for statefulset.");
    // kube-apiserver checks only the template's labels and annotations here (a TODO in
    // ValidatePodTemplateSpecForStatefulSet) and the controller then fails to create the pods;
    // this server validates the template as the pods will be, claim templates counting as
    // volumes, so the mistake surfaces at the write (docs/testing.md).
    let claims: Vec<String> = items(spec, "volumeClaimTemplates")
        .filter_map(|(_, c)| c.get("metadata")?.get("name")?.as_str().map(String::from))
        .collect();
    pod_template_with(errs, obj(spec, "template"), "spec.template", &claims);
    restart_always(errs, spec, "spec.template.spec.restartPolicy");
    for (i, claim) in items(spec, "volumeClaimTemplates") {
        if let Some(cs) = obj(claim, "spec") {
            pvc_spec(errs, cs, &format!("spec.volumeClaimTemplates[{i}].spec"));
        }
    }
    if let Some(old) = old {
        // Only these fields may change after creation.
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let rest = |m: &Map<String, Value>| -> Map<String, Value> {
            m.iter()
                .filter(|(k, _)| !mutable.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if rest(spec) != rest(old) {
            errs.forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            );
        }
    }
}

/// `ValidateJobSpec` (batch/validation/validation.go); the selector of a Job without
/// `manualSelector` is generated by the registry.
fn job(errs: &mut Errors, spec: &Map<String, Value>, path: &str) {
    for k in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        errs.nonnegative(spec, k, path);
    }
    if spec.get("manualSelector") == Some(&Value::Bool(true)) {
        match obj(spec, "selector") {
            None => errs.required(&join(path, "selector"), ""),
            Some(sel) => label_selector(errs, sel, &join(path, "selector")),
        }
    }
    errs.enum_field(spec, "completionMode", path, &["NonIndexed", "Indexed"]);
    let template = obj(spec, "template");
    pod_template(errs, template, &join(path, "template"));
    if let Some(policy) = template
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && !matches!(policy, "OnFailure" | "Never")
    {
        errs.not_supported(
            &format!("{path}.template.spec.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        );
    }
}

/// `ValidateCronJobCreate`: name ≤ 52 (the Job names it creates carry a suffix), a parseable
/// schedule, the policy enum, and the job template.
fn cron_job(errs: &mut Errors, root: &Map<String, Value>, spec: &Map<String, Value>) {
    if let Some(name) = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        && name.len() > 52
    {
        errs.invalid_str("metadata.name", name, "must be no more than 52 characters");
    }
    match str_of(spec, "schedule") {
        None | Some("") => errs.required("spec.schedule", ""),
        Some(s) => {
            if let Err(e) = cron_schedule(s) {
                errs.invalid_str("spec.schedule", s, &e);
            }
        }
    }
    errs.enum_field(
        spec,
        "concurrencyPolicy",
        "spec",
        &["Allow", "Forbid", "Replace"],
    );
    errs.nonnegative(spec, "startingDeadlineSeconds", "spec");
    errs.nonnegative(spec, "successfulJobsHistoryLimit", "spec");
    errs.nonnegative(spec, "failedJobsHistoryLimit", "spec");
    match spec
        .get("jobTemplate")
        .and_then(|t| t.get("spec"))
        .and_then(Value::as_object)
    {
        Some(job_spec) => job(errs, job_spec, "spec.jobTemplate.spec"),
        None => errs.required("spec.jobTemplate.spec.template.spec.containers", ""),
    }
}

/// robfig/cron's standard parser, as far as its error messages go: five fields (or a
/// `@descriptor`), each a list of `*`, numbers, ranges and steps within bounds.
fn cron_schedule(s: &str) -> Result<(), String> {
    let s = s.trim();
    let s = match s.strip_prefix("TZ=").or_else(|| s.strip_prefix("CRON_TZ=")) {
        Some(rest) => {
            return Err(format!(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead: {rest}"
            ));
        }
        None => s,
    };
    if let Some(desc) = s.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let names: [&[&str]; 5] = [
        &[],
        &[],
        &[],
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
        &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    ];
    for (field, ((lo, hi), names)) in fields.iter().zip(bounds.iter().zip(names)) {
        for part in field.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, ""));
            if !step.is_empty() && step.parse::<u32>().is_err() {
                return Err(format!(
                    "failed to parse int from {step}: strconv.Atoi: parsing \"{step}\": invalid syntax"
                ));
            }
            if range == "*" || range == "?" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            for v in [a, b] {
                let n = match v.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => match names.iter().position(|x| x.eq_ignore_ascii_case(v)) {
                        Some(i) => u32::try_from(i).unwrap_or(0) + lo,
                        None => {
                            return Err(format!(
                                "failed to parse int from {v}: strconv.Atoi: parsing {}: invalid syntax",
                                quote(v)
                            ));
                        }
                    },
                };
                if n < *lo {
                    return Err(format!(
                        "beginning of range ({n}) below minimum ({lo}): {part}"
                    ));
                }
                if n > *hi {
                    return Err(format!("end of range ({n}) above maximum ({hi}): {part}"));
                }
            }
        }
    }
    Ok(())
}

/// `ValidateService` (core/validation/validation.go), the rules that catch real mistakes.
fn service(errs: &mut Errors, spec: &Map<String, Value>) {
    let type_ = str_of(spec, "type").unwrap_or("ClusterIP");
    errs.enum_field(
        spec,
        "type",
        "spec",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    );
    errs.enum_field(spec, "sessionAffinity", "spec", &["ClientIP", "None"]);
    let ports = array_len(spec, "ports");
    if type_ == "ExternalName" {
        match str_of(spec, "externalName") {
            None | Some("") => errs.required("spec.externalName", ""),
            Some(n) => {
                for e in dns1123_subdomain(n.trim_end_matches('.')) {
                    errs.invalid_str("spec.externalName", n, &e);
                }
            }
        }
    } else if ports == 0 && str_of(spec, "clusterIP") != Some("None") {
        errs.required("spec.ports", "");
    }
    let mut names = HashSet::new();
    let mut seen: HashMap<(i64, String), ()> = HashMap::new();
    for (i, port) in items(spec, "ports") {
        let p = format!("spec.ports[{i}]");
        match str_of(port, "name") {
            None | Some("") if ports > 1 => errs.required(&join(&p, "name"), ""),
            Some(name) if !name.is_empty() => {
                for e in dns1123_label(name) {
                    errs.invalid_str(&join(&p, "name"), name, &e);
                }
                if !names.insert(name.to_string()) {
                    errs.duplicate(&join(&p, "name"), quote(name));
                }
            }
            _ => {}
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        port_in_range(errs, &join(&p, "port"), number);
        errs.enum_field(port, "protocol", &p, PROTOCOLS);
        let protocol = str_of(port, "protocol").unwrap_or("TCP").to_string();
        if seen.insert((number, protocol.clone()), ()).is_some() {
            errs.duplicate(
                &p,
                format!("{{port:{number}, protocol:{}}}", quote(&protocol)),
            );
        }
        if let Some(target) = port.get("targetPort") {
            probe_port(errs, target, &join(&p, "targetPort"));
        }
        if let Some(np) = port.get("nodePort").and_then(Value::as_i64)
            && np != 0
        {
            if type_ == "ClusterIP" {
                errs.forbidden(
                    &join(&p, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            } else {
                port_in_range(errs, &join(&p, "nodePort"), np);
            }
        }
    }
    if let Some(sel) = obj(spec, "selector") {
        labels(errs, Some(sel), "spec.selector");
    }
    for key in ["internalTrafficPolicy", "externalTrafficPolicy"] {
        errs.enum_field(spec, key, "spec", &["Cluster", "Local"]);
    }
}

/// `ValidateConfigMap` / `ValidateSecret`: keys and total size.
fn config_data(errs: &mut Errors, root: &Map<String, Value>, sections: &[&str]) {
    let mut keys = HashSet::new();
    let mut total = 0;
    for section in sections {
        for (k, v) in obj(root, section).into_iter().flatten() {
            let ok = !k.is_empty()
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            if !ok {
                errs.invalid_str(&format!("{section}[{k}]"), k, CONFIG_KEY);
            } else if k == "." || k == ".." {
                errs.invalid_str(&format!("{section}[{k}]"), k, &format!("must not be '{k}'"));
            } else if k.starts_with("..") {
                errs.invalid_str(&format!("{section}[{k}]"), k, "must not start with '..'");
            }
            if section != &"stringData" && !keys.insert(k.clone()) {
                errs.invalid_str(
                    &format!("{section}[{k}]"),
                    k,
                    "duplicate of key present in data",
                );
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > DATA_MAX_BYTES {
        errs.too_long("", DATA_MAX_BYTES);
    }
}

/// `ValidatePersistentVolumeClaimSpec`.
fn pvc_spec(errs: &mut Errors, spec: &Map<String, Value>, path: &str) {
    const MODES: &[&str] = &[
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    if array_len(spec, "accessModes") == 0 {
        errs.required(
            &join(path, "accessModes"),
            "at least 1 access mode is required",
        );
    }
    for (i, m) in spec
        .get("accessModes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(m) = m.as_str()
            && !MODES.contains(&m)
        {
            errs.not_supported(&format!("{path}.accessModes[{i}]"), m, MODES);
        }
    }
    let storage = spec.pointer_get(&["resources", "requests", "storage"]);
    match storage {
        None => errs.required(&format!("{path}.resources[storage]"), ""),
        Some(v) => {
            if let Some(q) = v.as_str().and_then(Quantity::parse)
                && (q.is_zero() || q.is_negative())
            {
                errs.invalid_str(
                    &format!("{path}.resources[storage]"),
                    &q.to_string(),
                    "must be greater than zero",
                );
            }
        }
    }
    errs.enum_field(spec, "volumeMode", path, &["Block", "Filesystem"]);
}

trait PointerGet {
    fn pointer_get(&self, keys: &[&str]) -> Option<&Value>;
}

impl PointerGet for Map<String, Value> {
    fn pointer_get(&self, keys: &[&str]) -> Option<&Value> {
        let (first, rest) = keys.split_first()?;
        let mut v = self.get(*first)?;
        for k in rest {
            v = v.get(*k)?;
        }
        Some(v)
    }
}

/// `ValidateNetworkPolicySpec`.
fn network_policy(errs: &mut Errors, spec: &Map<String, Value>) {
    if let Some(sel) = obj(spec, "podSelector") {
        label_selector(errs, sel, "spec.podSelector");
    }
    for (i, t) in spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(t) = t.as_str()
            && !matches!(t, "Ingress" | "Egress")
        {
            errs.not_supported(&format!("spec.policyTypes[{i}]"), t, &["Ingress", "Egress"]);
        }
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(spec, direction) {
            let p = format!("spec.{direction}[{i}]");
            for (j, port) in items(rule, "ports") {
                let pp = format!("{p}.ports[{j}]");
                errs.enum_field(port, "protocol", &pp, PROTOCOLS);
                if let Some(port_v) = port.get("port") {
                    probe_port(errs, port_v, &join(&pp, "port"));
                }
                if let Some(end) = port.get("endPort").and_then(Value::as_i64) {
                    let start = port.get("port").and_then(Value::as_i64);
                    match start {
                        None => errs.required(
                            &join(&pp, "port"),
                            "must be specified when endPort is specified",
                        ),
                        Some(s) if end < s => errs.invalid(
                            &join(&pp, "endPort"),
                            end.to_string(),
                            "must be greater than or equal to `port`",
                        ),
                        Some(_) => {}
                    }
                }
            }
            for (j, peer) in items(rule, peers) {
                let pp = format!("{p}.{peers}[{j}]");
                let kinds = ["podSelector", "namespaceSelector", "ipBlock"]
                    .iter()
                    .filter(|k| peer.contains_key(**k))
                    .count();
                if kinds == 0 {
                    errs.required(&pp, "must specify a peer");
                }
                if peer.contains_key("ipBlock") && kinds > 1 {
                    errs.forbidden(&pp, "may not specify both ipBlock and another peer");
                }
                for sel in ["podSelector", "namespaceSelector"] {
                    if let Some(s) = obj(peer, sel) {
                        label_selector(errs, s, &join(&pp, sel));
                    }
                }
                if let Some(block) = obj(peer, "ipBlock") {
                    match str_of(block, "cidr") {
                        None | Some("") => errs.required(&format!("{pp}.ipBlock.cidr"), ""),
                        Some(c) if !is_cidr(c) => errs.invalid_str(
                            &format!("{pp}.ipBlock.cidr"),
                            c,
                            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 32),
        Ok(std::net::IpAddr::V6(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 128),
        Err(_) => false,
    }
}

/// `ValidateIngressSpec`.
fn ingress(errs: &mut Errors, spec: &Map<String, Value>) {
    const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
    if spec.get("rules").is_none() && spec.get("defaultBackend").is_none() {
        errs.invalid(
            "spec",
            String::from("[]networking.IngressRule(nil)"),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(b) = obj(spec, "defaultBackend") {
        ingress_backend(errs, b, "spec.defaultBackend");
    }
    for (i, rule) in items(spec, "rules") {
        let p = format!("spec.rules[{i}]");
        if let Some(host) = str_of(rule, "host")
            && !host.is_empty()
        {
            let h = host.strip_prefix("*.").unwrap_or(host);
            for e in dns1123_subdomain(h) {
                errs.invalid_str(&join(&p, "host"), host, &e);
            }
        }
        let Some(http) = obj(rule, "http") else {
            continue;
        };
        if array_len(http, "paths") == 0 {
            errs.required(&format!("{p}.http.paths"), "");
        }
        for (j, path) in items(http, "paths") {
            let pp = format!("{p}.http.paths[{j}]");
            let path_type = str_of(path, "pathType");
            match path_type {
                None | Some("") => {
                    errs.required(&join(&pp, "pathType"), "pathType must be specified")
                }
                Some(t) if !PATH_TYPES.contains(&t) => {
                    errs.not_supported(&join(&pp, "pathType"), t, PATH_TYPES)
                }
                Some(_) => {}
            }
            let value = str_of(path, "path").unwrap_or("");
            if matches!(path_type, Some("Exact" | "Prefix")) && !value.starts_with('/') {
                errs.invalid_str(&join(&pp, "path"), value, "must be an absolute path");
            }
            match obj(path, "backend") {
                Some(b) => ingress_backend(errs, b, &join(&pp, "backend")),
                None => errs.required(&join(&pp, "backend"), ""),
            }
        }
    }
    for (i, tls) in items(spec, "tls") {
        for (j, host) in tls
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(h) = host.as_str() {
                for e in dns1123_subdomain(h.strip_prefix("*.").unwrap_or(h)) {
                    errs.invalid_str(&format!("spec.tls[{i}].hosts[{j}]"), h, &e);
                }
            }
        }
    }
}

fn ingress_backend(errs: &mut Errors, b: &Map<String, Value>, path: &str) {
    match (obj(b, "service"), b.get("resource")) {
        (Some(_), Some(_)) => errs.invalid(
            path,
            quote(""),
            "cannot set both resource and service backends",
        ),
        (None, None) => errs.invalid(path, quote(""), "resource or service backend is required"),
        (Some(svc), None) => {
            let p = join(path, "service");
            match str_of(svc, "name") {
                None | Some("") => errs.required(&join(&p, "name"), ""),
                Some(n) => {
                    for e in dns1035_label(n) {
                        errs.invalid_str(&join(&p, "name"), n, &e);
                    }
                }
            }
            let port = obj(svc, "port");
            let name = port
                .and_then(|p| str_of(p, "name"))
                .filter(|s| !s.is_empty());
            let number = port
                .and_then(|p| p.get("number"))
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            match (name, number) {
                (Some(_), Some(_)) => errs.invalid(
                    &join(&p, "port"),
                    quote(""),
                    "cannot set both port name & port number",
                ),
                (None, None) => errs.invalid(
                    &join(&p, "port"),
                    quote(""),
                    "port name or number is required",
                ),
                (Some(n), None) => {
                    for e in port_name(n) {
                        errs.invalid_str(&format!("{p}.port.name"), n, e);
                    }
                }
                (None, Some(n)) => port_in_range(errs, &format!("{p}.port.number"), n),
            }
        }
        (None, Some(_)) => {}
    }
}

/// `ValidatePodDisruptionBudgetSpec` (policy/validation/validation.go).
fn pdb(errs: &mut Errors, spec: &Map<String, Value>) {
    if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() {
        errs.invalid(
            "spec",
            "policy.PodDisruptionBudgetSpec{...}".to_string(),
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    int_or_percent(errs, spec.get("minAvailable"), "spec.minAvailable");
    int_or_percent(errs, spec.get("maxUnavailable"), "spec.maxUnavailable");
    if let Some(sel) = obj(spec, "selector") {
        label_selector(errs, sel, "spec.selector");
    }
    errs.enum_field(
        spec,
        "unhealthyPodEvictionPolicy",
        "spec",
        &["AlwaysAllow", "IfHealthyBudget"],
    );
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` (rbac/validation/validation.go).
fn binding(errs: &mut Errors, root: &Map<String, Value>, kind: &str) {
    let role_ref = obj(root, "roleRef");
    let ref_kind = role_ref.and_then(|r| str_of(r, "kind")).unwrap_or("");
    let allowed: &[&str] = if kind == "RoleBinding" {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !allowed.contains(&ref_kind) {
        errs.not_supported("roleRef.kind", ref_kind, allowed);
    }
    let group = role_ref.and_then(|r| str_of(r, "apiGroup")).unwrap_or("");
    if group != "rbac.authorization.k8s.io" {
        errs.not_supported("roleRef.apiGroup", group, &["rbac.authorization.k8s.io"]);
    }
    if role_ref
        .and_then(|r| str_of(r, "name"))
        .is_none_or(str::is_empty)
    {
        errs.required("roleRef.name", "");
    }
    for (i, s) in items(root, "subjects") {
        let p = format!("subjects[{i}]");
        if str_of(s, "name").is_none_or(str::is_empty) {
            errs.required(&join(&p, "name"), "");
        }
        match str_of(s, "kind").unwrap_or("") {
            "ServiceAccount" => {
                if kind == "ClusterRoleBinding" && str_of(s, "namespace").is_none_or(str::is_empty)
                {
                    errs.required(&join(&p, "namespace"), "");
                }
            }
            "User" | "Group" => {}
            other => errs.not_supported(
                &join(&p, "kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(group: &str, kind: &str, o: Value) -> Vec<String> {
        object(group, kind, &o, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn label_keys_and_values_follow_apimachinery() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("a").is_empty());
        assert_eq!(qualified_name("bad key!"), vec![QUALIFIED_NAME_PART]);
        assert_eq!(qualified_name("a/b/c"), vec![QUALIFIED_NAME]);
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(
            qualified_name(&"x".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert!(label_value("").is_empty());
        assert_eq!(
            label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(label_value("-x"), vec![LABEL_VALUE]);
        assert_eq!(dns1035_label("1abc"), vec![DNS1035_LABEL]);
        assert!(dns1123_label("1abc").is_empty());
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert_eq!(dns1123_subdomain("A"), vec![DNS1123_SUBDOMAIN]);
    }

    fn deployment_with(spec: Value) -> Value {
        let mut d = json!({"metadata": {"name": "x"}, "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                "restartPolicy": "Always",
                "containers": [{"name": "app", "image": "nginx:1"}]}},
        }});
        if let (Some(s), Some(extra)) = (d["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                s.insert(k.clone(), v.clone());
            }
        }
        d
    }

    #[test]
    fn deployments_report_kube_apiserver_messages() {
        assert!(messages("apps", "Deployment", deployment_with(json!({}))).is_empty());
        for (spec, want) in [
            (
                json!({"replicas": -3}),
                "spec.replicas: Invalid value: -3: must be greater than or equal to 0",
            ),
            (
                json!({"selector": {"matchLabels": {"app": "y"}}}),
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never",
                "containers": [{"name": "app", "image": "i"}]}}}),
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Always",
                "containers": [{"name": "app", "image": "i"}, {"name": "app", "image": "j"}]}}}),
                "spec.template.spec.containers[1].name: Duplicate value: \"app\"",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Always",
                "containers": [{"name": "app", "image": "i", "ports": [{"containerPort": 70000, "name": "http"}]},
                    {"name": "b", "image": "j", "ports": [{"containerPort": 80, "name": "http"}]}]}}}),
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Always",
                "containers": [{"name": "app", "image": "i",
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}}]}}}),
                "spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            ),
        ] {
            let got = messages("apps", "Deployment", deployment_with(spec.clone()));
            assert!(
                got.iter().any(|m| m == want),
                "{spec}: want {want}, got {got:?}"
            );
        }
        let no_selector = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {
            "restartPolicy": "Always", "containers": [{"name": "a", "image": "i"}]}}}});
        assert_eq!(
            messages("apps", "Deployment", no_selector),
            vec!["spec.selector: Required value"]
        );
    }

    #[test]
    fn services_names_and_ports() {
        let got = messages(
            "",
            "Service",
            json!({"metadata": {"name": "1svc"}, "spec": {
            "type": "ClusterIP", "ports": [{"port": 80}, {"port": 0, "name": "b"}]}}),
        );
        assert!(
            got.contains(&format!(
                "metadata.name: Invalid value: \"1svc\": {DNS1035_LABEL}"
            )),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.ports[0].name: Required value".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive"
                    .to_string()
            ),
            "{got:?}"
        );
    }

    #[test]
    fn labels_and_restart_policies_of_jobs_and_pods() {
        let got = messages(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c",
            "labels": {"bad key!": "v", "ok": "x".repeat(64)}}, "data": {"a b": "1"}}),
        );
        assert!(
            got.contains(&format!(
                "metadata.labels: Invalid value: \"bad key!\": {QUALIFIED_NAME_PART}"
            )),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.ends_with("must be no more than 63 characters")),
            "{got:?}"
        );
        assert!(
            got.contains(&format!("data[a b]: Invalid value: \"a b\": {CONFIG_KEY}")),
            "{got:?}"
        );
        let got = messages(
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
            "restartPolicy": "Always", "containers": [{"name": "a", "image": "i"}]}}}}),
        );
        assert_eq!(
            got,
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        let got = messages(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes",
            "containers": [{"name": "a"}]}}),
        );
        assert!(got.contains(&"spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".to_string()), "{got:?}");
        assert!(
            got.contains(&"spec.containers[0].image: Required value".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn cron_schedules() {
        assert!(cron_schedule("*/5 * * * *").is_ok());
        assert!(cron_schedule("0 3 * * mon-fri").is_ok());
        assert!(cron_schedule("@daily").is_ok());
        assert!(cron_schedule("61 * * * *").is_err());
        assert!(cron_schedule("* * * *").is_err());
    }

    #[test]
    fn statefulset_spec_is_immutable_beyond_the_listed_fields() {
        let new = json!({"serviceName": "a", "replicas": 2});
        let old = json!({"serviceName": "b", "replicas": 1});
        let mut errs = Errors::default();
        stateful_set(&mut errs, new.as_object().unwrap(), old.as_object());
        assert!(
            errs.0
                .iter()
                .any(|e| e.path == "spec" && e.kind == FieldErrorKind::Forbidden)
        );
    }
}
