//! The write pipelines shared by every verb: create, update (PUT, patch and apply end here)
//! and delete, with the apiserver's metadata rules, validation of custom resources,
//! finalizers, and the hooks that make CRDs servable and workloads progress.

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::apply::{self, Part};
use super::fieldset::Schema;
use super::resources::{self, ResourceInfo};
use super::status::ApiError;
use super::store::{EventType, ObjKey, Store};
use super::{Config, builtin, gc, workload};
use crate::validation::{self, UnknownFields};

/// Who writes and how.
pub struct WriteCtx {
    pub manager: String,
    pub now: String,
    pub unknown_fields: UnknownFields,
    /// `fieldValidation=Warn`, the server's default: unknown fields are pruned and each one
    /// is reported as a warning (a `Warning: 299` response header).
    pub warn_unknown: bool,
    pub warnings: RefCell<Vec<String>>,
}

impl WriteCtx {
    /// A server-internal write (controllers, fixtures): prunes silently.
    pub fn internal(manager: &str) -> Self {
        Self {
            manager: manager.to_string(),
            now: now(),
            unknown_fields: UnknownFields::Pruning,
            warn_unknown: false,
            warnings: RefCell::new(Vec::new()),
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The finalizer kube-apiserver puts on a CRD being deleted until its instances are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// Garbage collector finalizers (`propagationPolicy` Foreground and Orphan).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The label the NamespaceDefaultLabelName feature keeps on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn is_crd(res: &ResourceInfo) -> bool {
    res.group == CRD_GROUP && res.plural == CRD_PLURAL
}

fn is_namespace(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.plural == "namespaces"
}

pub fn condition_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// Sets (replaces) the condition of `type_` in `status.conditions`, keeping
/// `lastTransitionTime` when the status does not change.
pub fn set_condition(obj: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    let now = now();
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let Some(conds) = obj["status"]["conditions"].as_array_mut() else {
        return;
    };
    let mut c = json!({"type": type_, "status": status, "lastTransitionTime": now,
        "reason": reason, "message": message});
    match conds.iter_mut().find(|c| c["type"] == type_) {
        Some(old) => {
            if old["status"] == status {
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = c;
        }
        None => conds.push(c),
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let mut fs = finalizers(obj);
    if !fs.iter().any(|x| x == f) {
        fs.push(f.to_string());
    }
    obj["metadata"]["finalizers"] = json!(fs);
}

/// How the managedFields of an update are produced.
pub enum Managed {
    /// Ordinary write: the manager takes the fields it changed.
    Update,
    /// Server-side apply already computed them.
    Precomputed,
    /// A server-internal write (controllers): keep as is apart from the changed fields
    /// taken by the named controller.
    Controller(&'static str),
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_PLURAL: &str = "customresourcedefinitions";

fn crd_key(name: &str) -> ObjKey {
    ObjKey {
        group: CRD_GROUP.to_string(),
        plural: CRD_PLURAL.to_string(),
        namespace: String::new(),
        name: name.to_string(),
    }
}

/// The schema of a custom resource's served version, for list semantics in apply.
pub fn crd_schema<'a>(store: &'a Store, res: &ResourceInfo) -> Option<&'a Value> {
    let crd = store.get(&crd_key(res.crd.as_deref()?))?;
    validation::schema_for_api_version(crd, &res.api_version())
}

pub fn schema<'a>(store: &'a Store, res: &ResourceInfo) -> Schema<'a> {
    apply::schema_of(res, crd_schema(store, res))
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn is_dns_subdomain(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn random_suffix(store: &mut Store) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = store
        .rv
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..5)
        .map(|_| {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[((n >> 33) % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Numbers as kube-apiserver stores and serves them: an integral float (`1.0`, as serde writes
/// an `f64`) is the integer `1`. The real server decodes into Go types or into unstructured
/// JSON, and both come back out of storage as Go's encoder prints them, so `1.0` and `1` are
/// one value there: they validate as `type: integer`, compare equal in server-side apply (no
/// conflict between two managers applying the same bound) and make no change on re-apply.
pub fn go_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            // Beyond ±2^53 a float is not an exact integer anyway; Go would print an exponent.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                // In range and integral: the conversion is exact.
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(go_numbers),
        Value::Object(m) => m.values_mut().for_each(go_numbers),
        _ => {}
    }
}

fn ensure_type_meta(obj: &mut Value, res: &ResourceInfo) {
    if !obj.is_object() {
        *obj = json!({});
    }
    obj["apiVersion"] = Value::String(res.api_version());
    obj["kind"] = Value::String(res.kind.clone());
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
}

/// Validates (and prunes/defaults) a custom resource, a CRD or a built-in object.
fn validate(
    store: &Store,
    res: &ResourceInfo,
    obj: Value,
    old: Option<&Value>,
    ctx: &WriteCtx,
) -> Result<Value, ApiError> {
    if is_crd(res) {
        return validate_crd(obj, old);
    }
    let Some(crd_name) = &res.crd else {
        let warn = ctx.warn_unknown && ctx.unknown_fields != UnknownFields::Strict;
        let decoding = builtin::Decoding {
            unknown: ctx.unknown_fields,
            warnings: warn.then_some(&ctx.warnings),
        };
        return builtin::admit(store, res, obj, old, &decoding);
    };
    let crd = store
        .get_shared(&crd_key(crd_name))
        .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, ""))?;
    let metadata = obj.get("metadata").cloned();
    // The stored CRD is shared and replaced (never changed in place) when it changes, so its
    // compiled rules are found by its identity.
    let (mut validated, pruned) =
        validation::validate_shared_crd_object(crd, &obj, old, ctx.unknown_fields).map_err(
            |f| {
                let status = f.to_status();
                ApiError {
                    code: f.code(),
                    body: status,
                    retry_after: None,
                }
            },
        )?;
    if ctx.warn_unknown && ctx.unknown_fields != UnknownFields::Strict {
        // The fields pruning dropped, found by the validation's own pruning pass.
        ctx.warnings
            .borrow_mut()
            .extend(pruned.into_iter().map(|p| format!("unknown field \"{p}\"")));
    }
    if let Some(m) = metadata {
        validated["metadata"] = m;
    }
    Ok(validated)
}

/// The apiextensions strategy: name and version checks; the status is the server's (the
/// naming and establishing controllers write it later, see `controllers`), except that the
/// storage version joins `storedVersions`.
fn validate_crd(mut crd: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (name, group, plural, kind) = (
        s("/metadata/name"),
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(("spec.group".to_string(), "Required value".to_string()));
    }
    if plural.is_empty() {
        causes.push((
            "spec.names.plural".to_string(),
            "Required value".to_string(),
        ));
    }
    if kind.is_empty() {
        causes.push(("spec.names.kind".to_string(), "Required value".to_string()));
    }
    if name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".to_string(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage: Vec<String> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    if storage.len() != 1 {
        causes.push((
            "spec.versions".to_string(),
            "Invalid value: \"array\": must have exactly one version marked as storage version"
                .to_string(),
        ));
    }
    // kube-apiserver refuses CEL rules whose estimated worst-case cost exceeds its budgets
    // (per rule, and for the whole schema) when the CRD is written, not when objects are.
    causes.extend(validation::cost::crd_cost_errors(&crd));
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            CRD_GROUP,
            &name,
            causes,
        ));
    }
    // On create the status starts empty; on update of the main resource it is the old one
    // (a status write has already put the new status in place, on top of the old object).
    let mut status = match old {
        None => json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}),
        Some(_) => crd.get("status").cloned().unwrap_or(json!({})),
    };
    if !status["storedVersions"].is_array() {
        status["storedVersions"] = json!([]);
    }
    if let (Some(v), Some(stored)) = (storage.first(), status["storedVersions"].as_array_mut())
        && !stored.iter().any(|s| s == v)
    {
        stored.push(json!(v));
    }
    crd["status"] = status;
    Ok(crd)
}

fn namespace_key(ns: &str) -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "namespaces".to_string(),
        namespace: String::new(),
        name: ns.to_string(),
    }
}

pub fn create(
    store: &mut Store,
    cfg: &Config,
    res: &ResourceInfo,
    namespace: &str,
    mut obj: Value,
    ctx: &WriteCtx,
    applied_by: Option<&str>,
) -> Result<Arc<Value>, ApiError> {
    go_numbers(&mut obj);
    ensure_type_meta(&mut obj, res);
    if res.namespaced {
        match meta_str(&obj, "namespace") {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => obj["metadata"]["namespace"] = Value::String(namespace.to_string()),
        }
        match store.get(&namespace_key(namespace)) {
            None => return Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                        res.plural,
                        meta_str(&obj, "name").unwrap_or_default()
                    ),
                ));
            }
            Some(_) => {}
        }
    } else if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    if let Some(crd_name) = &res.crd
        && store
            .get(&crd_key(crd_name))
            .is_some_and(|crd| crd.pointer("/metadata/deletionTimestamp").is_some())
    {
        // apiextensions-apiserver's customresource_handler refuses creates meanwhile.
        let mut e = ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        );
        e.body["details"] = json!({"group": res.group, "kind": res.plural});
        return Err(e);
    }
    let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(prefix)) if !prefix.is_empty() => {
            let prefix = prefix.to_string();
            format!("{prefix}{}", random_suffix(store))
        }
        _ => {
            return Err(ApiError::invalid(
                &res.kind,
                &res.group,
                "",
                vec![(
                    "metadata.name".to_string(),
                    "Required value: name or generateName is required".to_string(),
                )],
            ));
        }
    };
    // RBAC objects only need a valid path segment (`ValidateRBACName`): `system:discovery`.
    let valid = is_dns_subdomain(&name)
        || (res.group == super::authz::RBAC_GROUP && super::authz::is_path_segment(&name));
    if !valid {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            &name,
            vec![(
                "metadata.name".to_string(),
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            )],
        ));
    }
    obj["metadata"]["name"] = Value::String(name.clone());
    let key = ObjKey::new(res, namespace, &name);
    if store.get(&key).is_some() {
        return Err(ApiError::already_exists(&res.group, &res.plural, &name));
    }
    if res.status
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    let config = obj.clone();
    let mut obj = validate(store, res, obj, None, ctx)?;
    let uid = store.new_uid();
    let meta = &mut obj["metadata"];
    if let Some(m) = meta.as_object_mut() {
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    meta["uid"] = Value::String(uid);
    meta["creationTimestamp"] = Value::String(ctx.now.clone());
    if res.generation {
        meta["generation"] = json!(1);
    }
    if is_namespace(res) {
        obj["status"] = json!({"phase": "Active"});
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    if res.group.is_empty() && res.plural == "pods" {
        // The pod strategy's PrepareForCreate: every new pod is Pending with its QoS class;
        // the kubelet's status comes later.
        let qos = super::pods::qos_class(obj.get("spec").unwrap_or(&Value::Null));
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
    let schema = schema(store, res);
    match applied_by {
        Some(manager) => apply::initial_apply_fields(
            &mut obj,
            &config,
            res,
            schema,
            Part::Main,
            manager,
            &ctx.now,
        ),
        None => apply::record_update(
            None,
            &mut obj,
            res,
            schema,
            Part::Main,
            &ctx.manager,
            &ctx.now,
        ),
    }
    if is_namespace(res) {
        // Canonicalize, after the field manager: the label is the server's.
        obj["metadata"]["labels"][NAMESPACE_NAME_LABEL] = Value::String(name.clone());
    }
    let stored = store.put(key.clone(), obj, EventType::Added);
    after_write(store, cfg, res, &key, &stored);
    Ok(stored)
}

/// Two objects (maps) are equal apart from the keys `skip` ignores, whose values `same`
/// compares instead (`None`: not compared at all). Compared in place: copying both objects to
/// strip the keys first cost two deep copies per write (a `perf` profile, docs/performance.md).
fn equal_except(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    special: impl Fn(&str) -> Option<fn(&Value, &Value) -> bool>,
    skip: impl Fn(&str) -> bool,
) -> bool {
    let relevant = |m: &Map<String, Value>| m.keys().filter(|k| !skip(k)).count();
    relevant(a) == relevant(b)
        && a.iter().filter(|(k, _)| !skip(k)).all(|(k, va)| {
            b.get(k).is_some_and(|vb| match special(k) {
                Some(same) => same(va, vb),
                None => va == vb,
            })
        })
}

/// Everything but metadata and status (and the type): what `generation` counts changes of.
fn same_spec(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => equal_except(
            a,
            b,
            |_| None,
            |k| matches!(k, "metadata" | "status" | "apiVersion" | "kind"),
        ),
        _ => a == b,
    }
}

/// Equal apart from managedFields timestamps: such a write is a no-op and must not bump
/// the resourceVersion (controllers count writes on a steady-state reconcile).
fn same_content(a: &Value, b: &Value) -> bool {
    fn same_entry(a: &Value, b: &Value) -> bool {
        match (a.as_object(), b.as_object()) {
            (Some(a), Some(b)) => equal_except(a, b, |_| None, |k| k == "time"),
            _ => a == b,
        }
    }
    fn same_managed_fields(a: &Value, b: &Value) -> bool {
        match (a.as_array(), b.as_array()) {
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_entry(x, y))
            }
            _ => a == b,
        }
    }
    fn same_metadata(a: &Value, b: &Value) -> bool {
        match (a.as_object(), b.as_object()) {
            (Some(a), Some(b)) => equal_except(
                a,
                b,
                |k| {
                    (k == "managedFields")
                        .then_some(same_managed_fields as fn(&Value, &Value) -> bool)
                },
                |_| false,
            ),
            _ => a == b,
        }
    }
    match (a.as_object(), b.as_object()) {
        (Some(ma), Some(mb)) => equal_except(
            ma,
            mb,
            |k| (k == "metadata").then_some(same_metadata as fn(&Value, &Value) -> bool),
            |_| false,
        ),
        _ => a == b,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn update(
    store: &mut Store,
    cfg: &Config,
    res: &ResourceInfo,
    key: &ObjKey,
    mut candidate: Value,
    part: Part,
    ctx: &WriteCtx,
    managed: Managed,
) -> Result<Arc<Value>, ApiError> {
    // Shared with the store, not copied: most writes only read the old object.
    let old = store
        .get_shared(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, &key.name))?;
    go_numbers(&mut candidate);
    ensure_type_meta(&mut candidate, res);
    if let Some(rv) = meta_str(&candidate, "resourceVersion")
        && !rv.is_empty()
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::stale(&res.group, &res.plural, &key.name));
    }
    if let Some(uid) = meta_str(&candidate, "uid")
        && !uid.is_empty()
        && Some(uid) != meta_str(&old, "uid")
    {
        return Err(ApiError::conflict(
            &res.group,
            &res.plural,
            &key.name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid").unwrap_or_default()
            ),
        ));
    }
    if let Some(name) = meta_str(&candidate, "name")
        && !name.is_empty()
        && name != key.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    let mut new = match part {
        Part::Status => {
            let mut n = Value::clone(&old);
            match candidate.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if matches!(managed, Managed::Precomputed)
                && let Some(mf) = candidate.pointer("/metadata/managedFields")
            {
                n["metadata"]["managedFields"] = mf.clone();
            }
            n
        }
        Part::Main => {
            let mut n = candidate;
            if res.status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    // Server-owned metadata cannot be changed by clients.
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if !res.namespaced
        && let Some(m) = new["metadata"].as_object_mut()
    {
        m.remove("namespace");
    }
    let mut new = validate(store, res, new, Some(&*old), ctx)?;
    if is_namespace(res) {
        new["status"] = old
            .get("status")
            .cloned()
            .unwrap_or(json!({"phase": "Active"}));
        // spec.finalizers changes only through /finalize.
        new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
    }
    let schema = schema(store, res);
    match managed {
        Managed::Update => apply::record_update(
            Some(&old),
            &mut new,
            res,
            schema,
            part,
            &ctx.manager,
            &ctx.now,
        ),
        Managed::Controller(name) => {
            apply::record_update(Some(&old), &mut new, res, schema, part, name, &ctx.now)
        }
        Managed::Precomputed => {}
    }
    if is_namespace(res) {
        new["metadata"]["labels"][NAMESPACE_NAME_LABEL] = Value::String(key.name.clone());
    }
    if res.generation && !same_spec(&new, &old) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if same_content(&new, &old) {
        return Ok(old);
    }
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty {
        store.put(key.clone(), new, EventType::Modified);
        let removed = store.remove(key).unwrap_or_default();
        gc::on_removed(store, cfg, &removed, &ctx.now);
        after_removal(store, cfg, res, key, &ctx.now);
        return Ok(Arc::new(removed));
    }
    let stored = store.put(key.clone(), new, EventType::Modified);
    after_write(store, cfg, res, key, &stored);
    Ok(stored)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

pub fn delete(
    store: &mut Store,
    cfg: &Config,
    res: &ResourceInfo,
    key: &ObjKey,
    opts: &DeleteOptions,
    now: &str,
) -> Result<Value, ApiError> {
    let obj = store
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, &key.name))?;
    if let Some(uid) = &opts.precondition_uid
        && Some(uid.as_str()) != meta_str(&obj, "uid")
    {
        return Err(ApiError::conflict(
            &res.group,
            &res.plural,
            &key.name,
            "Precondition failed: UID mismatch",
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && Some(rv.as_str()) != meta_str(&obj, "resourceVersion")
    {
        return Err(ApiError::stale(&res.group, &res.plural, &key.name));
    }
    let being_deleted = obj.pointer("/metadata/deletionTimestamp").is_some();
    if is_crd(res) && !being_deleted {
        // The CRD registry's own Delete: mark, add the cleanup finalizer and Terminating;
        // the finalizer controller (`gc::sweep`) deletes the instances, then the CRD.
        let mut marked = obj.clone();
        marked["metadata"]["deletionTimestamp"] = Value::String(now.to_string());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        add_finalizer(&mut marked, CRD_CLEANUP_FINALIZER);
        set_condition(
            &mut marked,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
        return Ok(Arc::unwrap_or_clone(store.put(
            key.clone(),
            marked,
            EventType::Modified,
        )));
    }
    let is_namespace = is_namespace(res);
    // The garbage collector's finalizers: the owner stays (deletionTimestamp set) until the
    // collector has deleted (Foreground) or released (Orphan) its dependents.
    let gc_finalizer = match opts.propagation {
        _ if is_namespace || is_crd(res) || being_deleted => None,
        Propagation::Orphan => Some(ORPHAN_FINALIZER),
        Propagation::Foreground => Some(FOREGROUND_FINALIZER),
        Propagation::Background => None,
    };
    let mut obj = obj;
    if let Some(f) = gc_finalizer {
        add_finalizer(&mut obj, f);
    }
    let has_finalizers = !finalizers(&obj).is_empty();
    if has_finalizers || is_namespace {
        let mut marked = obj.clone();
        if marked.pointer("/metadata/deletionTimestamp").is_none() {
            marked["metadata"]["deletionTimestamp"] = Value::String(now.to_string());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_namespace {
                marked["status"] = json!({"phase": "Terminating"});
            }
            marked = Arc::unwrap_or_clone(store.put(key.clone(), marked, EventType::Modified));
        }
        if is_namespace {
            gc::empty_namespace(store, cfg, &key.name, now);
            if has_finalizers {
                return Ok(marked);
            }
            return Ok(reap_namespace(store, cfg, &key.name, now).unwrap_or(marked));
        }
        return Ok(marked);
    }
    let removed = store.remove(key).unwrap_or(obj);
    gc::on_removed(store, cfg, &removed, now);
    after_removal(store, cfg, res, key, now);
    Ok(removed)
}

/// Removes a terminating namespace once nothing is left in it.
fn reap_namespace(store: &mut Store, cfg: &Config, ns: &str, now: &str) -> Option<Value> {
    let key = namespace_key(ns);
    let terminating = store
        .get(&key)?
        .pointer("/metadata/deletionTimestamp")
        .is_some();
    let empty = store.index.namespace_empty(ns);
    if terminating && empty {
        let removed = store.remove(&key)?;
        gc::on_removed(store, cfg, &removed, now);
        return Some(removed);
    }
    None
}

fn after_removal(store: &mut Store, cfg: &Config, res: &ResourceInfo, key: &ObjKey, now: &str) {
    if is_crd(res) {
        refresh_custom_resources(store);
        // Normally none are left (the cleanup finalizer waited for them); should a client
        // have removed that finalizer by hand, the instances are unreachable anyway.
        if let Some((plural, group)) = key.name.split_once('.') {
            let doomed: Vec<ObjKey> = store
                .range(group, plural, None)
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                store.remove(&k);
            }
        }
    }
    if !key.namespace.is_empty() {
        reap_namespace(store, cfg, &key.namespace, now);
    }
}

/// Re-reads the served custom resources from the stored CRDs. As in
/// apiextensions-apiserver, a CRD is served once its names are accepted (or it is
/// established); before that its endpoints are 404.
pub fn refresh_custom_resources(store: &mut Store) {
    store.custom = store
        .list(CRD_GROUP, CRD_PLURAL, None)
        .into_iter()
        .filter(|crd| condition_true(crd, "NamesAccepted") || condition_true(crd, "Established"))
        .flat_map(resources::from_crd)
        .collect();
    store.resources_changed();
}

fn after_write(store: &mut Store, cfg: &Config, res: &ResourceInfo, key: &ObjKey, stored: &Value) {
    if is_crd(res) {
        refresh_custom_resources(store);
        store.controllers_pending = true;
    }
    if is_namespace(res) || (res.group == super::authz::RBAC_GROUP && res.plural == "clusterroles")
    {
        store.controllers_pending = true;
    }
    if res.group == "apps" && matches!(res.plural.as_str(), "deployments" | "statefulsets") {
        workload::schedule(store, cfg, key, stored);
    }
    if res.group.is_empty() && matches!(res.plural.as_str(), "configmaps" | "secrets") {
        workload::recheck_namespace(store, cfg, &key.namespace);
        super::pods::recheck_bare_pods(store, cfg, &key.namespace, &now());
    }
    if res.group == "batch" && res.plural == "jobs" {
        workload::schedule(store, cfg, key, stored);
    }
    if res.group.is_empty() && res.plural == "pods" {
        workload::schedule_pod(store, cfg, key, stored);
    }
    if res.group == super::cnpg::GROUP && res.plural == super::cnpg::PLURAL {
        super::cnpg::reconcile(store, cfg, key, stored);
    }
}

/// A write by one of the server's own controllers (garbage collector, finalizer and CRD
/// controllers): no validation or field management, but the same watch events, and the
/// object goes when it is being deleted and its last finalizer was removed.
pub fn server_write(store: &mut Store, cfg: &Config, key: &ObjKey, obj: Value) {
    let Some(res) = store.resource_for_key(key) else {
        return;
    };
    if store.get(key).is_some_and(|old| same_content(old, &obj)) {
        return;
    }
    let now = now();
    let stored = store.put(key.clone(), obj, EventType::Modified);
    if stored.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&stored).is_empty() {
        if let Some(removed) = store.remove(key) {
            gc::on_removed(store, cfg, &removed, &now);
        }
        after_removal(store, cfg, &res, key, &now);
        return;
    }
    after_write(store, cfg, &res, key, &stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_ignores_only_the_times_of_managed_fields() {
        let obj = |time: &str, image: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
                "managedFields": [{"manager": "m", "time": time, "fieldsV1": {"f:spec": {}}}]},
                "spec": {"image": image}})
        };
        assert!(same_content(&obj("t1", "a"), &obj("t2", "a")));
        assert!(!same_content(&obj("t1", "a"), &obj("t1", "b")));
        let mut other_manager = obj("t1", "a");
        other_manager["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!same_content(&obj("t1", "a"), &other_manager));
        let mut one_more_entry = obj("t1", "a");
        one_more_entry["metadata"]["managedFields"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"manager": "n"}));
        assert!(!same_content(&obj("t1", "a"), &one_more_entry));
        let mut time_only_here = obj("t1", "a");
        time_only_here["metadata"]["managedFields"][0]
            .as_object_mut()
            .expect("an object")
            .remove("time");
        assert!(same_content(&obj("t1", "a"), &time_only_here));
        let mut labelled = obj("t1", "a");
        labelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(!same_content(&obj("t1", "a"), &labelled));
        // A `time` outside managedFields counts.
        let mut timed = obj("t1", "a");
        timed["spec"]["time"] = json!("t1");
        assert!(!same_content(&obj("t1", "a"), &timed));
        assert!(same_content(&json!("x"), &json!("x")));
        assert!(!same_content(&json!({}), &json!([])));
    }

    #[test]
    fn same_spec_ignores_metadata_status_and_type() {
        let obj = |replicas: i64, ready: i64, label: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"labels": {"l": label}}, "spec": {"replicas": replicas},
                "status": {"readyReplicas": ready}})
        };
        assert!(same_spec(&obj(1, 0, "a"), &obj(1, 1, "b")));
        assert!(!same_spec(&obj(1, 0, "a"), &obj(2, 0, "a")));
        let mut with_data = obj(1, 0, "a");
        with_data["data"] = json!({"k": "v"});
        assert!(!same_spec(&obj(1, 0, "a"), &with_data));
        let mut other_kind = obj(1, 0, "a");
        other_kind["kind"] = json!("StatefulSet");
        other_kind["apiVersion"] = json!("apps/v2");
        assert!(same_spec(&obj(1, 0, "a"), &other_kind));
    }
}
