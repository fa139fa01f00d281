//! Request handling: resolves the route, runs the verb against the store, renders JSON,
//! tables or watch streams.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::apply::{self, Part};
use super::faults::RequestRecord;
use super::patch::{self, PatchKind};
use super::resources::ResourceInfo;
use super::routes::{self, ResourcePath, Route};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::ApiError;
use super::store::{ObjKey, Store};
use super::watch::{self, Body, WatchRequest};
use super::writes::{self, DeleteOptions, Managed, Propagation, WriteCtx};
use super::{TestApiServer, discovery, gc, openapi, protobuf, table};
use crate::validation::UnknownFields;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(super::wire::to_json(v)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.body);
    if let Some(s) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn header_str(req: &Request<Bytes>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Parses YAML or JSON (apply bodies may be either).
fn parse_body(body: &[u8], yaml_ok: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if !yaml_ok => Err(ApiError::bad_request(format!("error decoding body: {e}"))),
        Err(_) => {
            let text =
                std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
    }
}

pub struct Outcome {
    pub response: Response<Body>,
    pub record: Option<RequestRecord>,
}

pub fn handle(server: &TestApiServer, req: &Request<Bytes>, host: &str) -> Outcome {
    let route = routes::parse(req.uri().path());
    if let Err(e) = super::authz::check_path(server, req, &route) {
        return Outcome {
            response: error_response(&e),
            record: None,
        };
    }
    let plain = |v: Value| Outcome {
        response: json_response(200, &v),
        record: None,
    };
    let store = server.store();
    match route {
        Route::Version => plain(discovery::version()),
        Route::Health => Outcome {
            response: Response::new(full("ok")),
            record: None,
        },
        Route::CoreVersions | Route::Groups
            if discovery::wants_aggregated(header_str(req, header::ACCEPT)) =>
        {
            let core = route == Route::CoreVersions;
            let mut response = json_response(200, &discovery::aggregated(store.resources(), core));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_V2),
            );
            Outcome {
                response,
                record: None,
            }
        }
        Route::CoreVersions => plain(discovery::core_versions(host)),
        Route::Groups => plain(discovery::group_list(store.resources())),
        Route::Group(g) => match discovery::group(store.resources(), &g) {
            Some(v) => plain(v),
            None => Outcome {
                response: error_response(&not_found_path()),
                record: None,
            },
        },
        Route::Resources { group, version } => {
            match discovery::resource_list(store.resources(), &group, &version) {
                Some(v) => plain(v),
                None => Outcome {
                    response: error_response(&not_found_path()),
                    record: None,
                },
            }
        }
        Route::OpenApiV3 => plain(openapi::index(&store)),
        Route::OpenApiV3GroupVersion(gv) => match openapi::group_version(&store, &gv) {
            Some(v) => plain(v),
            None => Outcome {
                response: error_response(&not_found_path()),
                record: None,
            },
        },
        Route::OpenApiV2 | Route::Unknown => Outcome {
            response: error_response(&not_found_path()),
            record: None,
        },
        Route::Resource(path) => {
            drop(store);
            resource_request(server, req, path)
        }
    }
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn verb(method: &Method, path: &ResourcePath, q: &HashMap<String, String>) -> &'static str {
    match (method, path.name.is_some()) {
        (&Method::GET, false) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => "unknown",
    }
}

/// The name a `fieldSelector` of exactly `metadata.name=<name>` (or `==`) selects.
fn selected_name(q: &HashMap<String, String>) -> Option<String> {
    let sel = q.get("fieldSelector")?;
    let value = sel
        .strip_prefix("metadata.name==")
        .or_else(|| sel.strip_prefix("metadata.name="))?;
    (!value.is_empty() && !value.contains(',')).then(|| value.to_string())
}

fn resource_request(server: &TestApiServer, req: &Request<Bytes>, path: ResourcePath) -> Outcome {
    let q = routes::query(req.uri().query());
    let verb = verb(req.method(), &path, &q);
    let user_agent = header_str(req, header::USER_AGENT).to_string();
    let field_manager = q.get("fieldManager").cloned().unwrap_or_else(|| {
        // The apiserver derives a manager from the user agent when none is given.
        let ua = user_agent.split('/').next().unwrap_or_default();
        if ua.is_empty() {
            "unknown".to_string()
        } else {
            ua.to_string()
        }
    });
    let mut record = RequestRecord {
        verb: verb.to_string(),
        group: path.group.clone(),
        version: path.version.clone(),
        resource: path.plural.clone(),
        subresource: path.subresource.clone().unwrap_or_default(),
        namespace: path.namespace.clone().unwrap_or_default(),
        // A list or watch selecting one name by field is authorized for that name, as
        // kube-apiserver's RequestInfoFactory sets it (so RBAC resourceNames can grant it).
        name: path.name.clone().unwrap_or_else(|| {
            if matches!(verb, "list" | "watch") {
                selected_name(&q).unwrap_or_default()
            } else {
                String::new()
            }
        }),
        user_agent,
        user: String::new(),
        patch_type: if verb == "patch" {
            header_str(req, header::CONTENT_TYPE).to_string()
        } else {
            String::new()
        },
        field_manager: field_manager.clone(),
        path: req.uri().to_string(),
        code: 0,
        apply_creates: false,
    };
    let attributes = super::authz::Attributes::of_request(
        verb,
        &path.group,
        &path.plural,
        path.subresource.as_deref().unwrap_or_default(),
        &record.namespace,
        &record.name,
        &q,
    );
    let result = server.authenticate(req.headers()).and_then(|user| {
        record.user = user.username.clone();
        super::authz::enforce(server, &user, &attributes)?;
        if apply_would_create(server, req, &path, verb) {
            // kube-apiserver 1.33 `endpoints/handlers/patch.go`: an apply patch whose object
            // does not exist yet is created, and that creation is authorized as `create` (same
            // resource, namespace and name) in addition to the request's `patch`.
            record.apply_creates = true;
            let create = super::authz::Attributes::resource(
                "create",
                &path.group,
                &path.plural,
                &record.namespace,
                &record.name,
            );
            super::authz::enforce_create_on_apply(server, &user, &create)?;
        }
        match server.injected_fault(&record) {
            Some(e) => Err(e),
            None => match super::reviews::serve(server, req, &path, verb, &user) {
                Some(answer) => answer.map(|(code, v)| json_response(code, &v)),
                None => run(server, req, &path, verb, &q, &field_manager),
            },
        }
    });
    let response = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    record.code = response.status().as_u16();
    Outcome {
        response,
        record: Some(record),
    }
}

/// Whether the request is a server-side apply of a main resource that does not exist yet.
fn apply_would_create(
    server: &TestApiServer,
    req: &Request<Bytes>,
    path: &ResourcePath,
    verb: &str,
) -> bool {
    if verb != "patch"
        || path.subresource.is_some()
        || PatchKind::from_content_type(header_str(req, header::CONTENT_TYPE))
            != Some(PatchKind::Apply)
    {
        return false;
    }
    let Some(name) = path.name.as_deref() else {
        return false;
    };
    let store = server.store();
    store
        .find_resource(&path.group, &path.version, &path.plural)
        .is_some_and(|res| {
            let ns = path.namespace.clone().unwrap_or_default();
            store.get(&ObjKey::new(&res, &ns, name)).is_none()
        })
}

fn wants_table(req: &Request<Bytes>) -> bool {
    header_str(req, header::ACCEPT)
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn with_type_meta(obj: &Value, res: &ResourceInfo) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = Value::String(res.api_version());
    o["kind"] = Value::String(res.kind.clone());
    o
}

/// A stored object as the answer: the stored one itself when it already carries the
/// resource's apiVersion and kind (it nearly always does), else a copy that does.
fn answer(obj: Arc<Value>, res: &ResourceInfo) -> Arc<Value> {
    let typed = obj.get("apiVersion").and_then(Value::as_str) == Some(&res.api_version())
        && obj.get("kind").and_then(Value::as_str) == Some(&res.kind);
    if typed {
        obj
    } else {
        Arc::new(with_type_meta(&obj, res))
    }
}

fn selectors(q: &HashMap<String, String>, res: &ResourceInfo) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(
            q.get("fieldSelector").map_or("", String::as_str),
            &res.group,
            &res.plural,
        )?,
    })
}

/// What the client asked to get back (`Accept`), beyond plain objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    Object,
    /// `as=PartialObjectMetadata` (and `as=PartialObjectMetadataList` for lists).
    Metadata,
}

fn render(req: &Request<Bytes>) -> Render {
    let first = header_str(req, header::ACCEPT)
        .split(',')
        .next()
        .unwrap_or_default();
    if first.contains("as=PartialObjectMetadata") {
        Render::Metadata
    } else {
        Render::Object
    }
}

/// A `meta.k8s.io/v1` PartialObjectMetadata(List) of an object (list) of `res`.
fn as_metadata(v: Value, res: &ResourceInfo) -> Value {
    let partial = |o: &Value| {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
    };
    if v["kind"] == res.kind.as_str() {
        return partial(&v);
    }
    if v["kind"] == format!("{}List", res.kind).as_str() {
        let items: Vec<Value> = v["items"]
            .as_array()
            .map(|a| a.iter().map(partial).collect())
            .unwrap_or_default();
        return json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": v.get("metadata").cloned().unwrap_or(json!({})), "items": items});
    }
    v
}

/// `fieldValidation`; the server's default is Warn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// The options kind of a write verb, for the 422 the apiserver answers bad options with.
fn options_kind(verb: &str) -> &'static str {
    match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" => "PatchOptions",
        _ => "DeleteOptions",
    }
}

fn bad_option(verb: &str, field: &str, message: String) -> ApiError {
    let mut e = ApiError::invalid(
        options_kind(verb),
        "meta.k8s.io",
        "",
        vec![(field.to_string(), message)],
    );
    if let Some(causes) = e.body["details"]["causes"].as_array_mut() {
        for c in causes {
            c["reason"] = json!("FieldValueNotSupported");
        }
    }
    e
}

/// `dryRun` (query, or the DeleteOptions body) and `fieldValidation`, validated as
/// `ValidateCreateOptions` & co. do: an unsupported value is a 422.
fn write_options(
    verb: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<(bool, FieldValidation), ApiError> {
    let mut dry_run: Vec<String> = q.get("dryRun").cloned().into_iter().collect();
    if matches!(verb, "delete" | "deletecollection")
        && let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(values) = v.get("dryRun").and_then(Value::as_array)
    {
        dry_run.extend(values.iter().filter_map(Value::as_str).map(String::from));
    }
    if dry_run.iter().any(|v| v != "All") {
        let quoted: Vec<String> = dry_run.iter().map(|v| format!("{v:?}")).collect();
        return Err(bad_option(
            verb,
            "dryRun",
            format!(
                "Unsupported value: []string{{{}}}: supported values: \"All\"",
                quoted.join(", ")
            ),
        ));
    }
    let fv = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) if !matches!(verb, "delete" | "deletecollection") => {
            return Err(bad_option(
                verb,
                "fieldValidation",
                format!(
                    "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                ),
            ));
        }
        Some(_) => FieldValidation::Warn,
    };
    Ok((!dry_run.is_empty(), fv))
}

fn invalid_update_without_rv(res: &ResourceInfo, name: &str) -> ApiError {
    // store.go: the kind in this message is the qualified resource.
    ApiError::invalid(
        &res.plural,
        &res.group,
        name,
        vec![(
            "metadata.resourceVersion".to_string(),
            "Invalid value: 0x0: must be specified for an update".to_string(),
        )],
    )
}

/// A reply before rendering: JSON to post-process, or a finished response (watch, table).
enum Reply {
    Json(u16, Value),
    /// A stored object, shared with the store: serialised without being copied first.
    Object(u16, Arc<Value>),
    Raw(Response<Body>),
}

fn run(
    server: &TestApiServer,
    req: &Request<Bytes>,
    path: &ResourcePath,
    verb: &str,
    q: &HashMap<String, String>,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let mut guard = server.store();
    let res = guard
        .find_resource(&path.group, &path.version, &path.plural)
        .ok_or_else(not_found_path)?;
    if path.namespace.is_some() && !res.namespaced {
        return Err(not_found_path());
    }
    let decoded;
    let req = if protobuf::is_protobuf(header_str(req, header::CONTENT_TYPE)) {
        if res.is_custom() {
            // Custom resources have no protobuf encoding on kube-apiserver either.
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            ));
        }
        decoded = protobuf::json_request(req)?;
        &decoded
    } else {
        req
    };
    let is_write = matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    let (dry_run, field_validation) = if is_write {
        write_options(verb, q, req.body())?
    } else {
        (false, FieldValidation::Warn)
    };
    let ns = path.namespace.clone().unwrap_or_default();
    let key = |name: &str| ObjKey::new(&res, &ns, name);
    let before_rv = path
        .name
        .as_deref()
        .and_then(|n| guard.get(&key(n)))
        .and_then(|o| o.pointer("/metadata/resourceVersion").cloned());
    // A dry run writes to a throw-away copy: same validation, defaulting and side effects,
    // nothing persisted, no resourceVersion consumed, no watch event.
    let mut scratch = (dry_run && is_write).then(|| guard.dry_run_copy());
    let store: &mut Store = match scratch.as_mut() {
        Some(s) => s,
        None => &mut guard,
    };
    let ctx = WriteCtx {
        manager: manager.to_string(),
        now: now(),
        unknown_fields: if field_validation == FieldValidation::Strict {
            UnknownFields::Strict
        } else {
            UnknownFields::Pruning
        },
        warn_unknown: field_validation == FieldValidation::Warn,
        warnings: std::cell::RefCell::new(Vec::new()),
    };
    let cfg = server.config();
    let reply = if let Some(sub) = &path.subresource {
        if sub == "scale" && has_scale(&res) {
            scale(store, &cfg, &res, path, verb, req.body(), &ctx)?
        } else if sub == "status" && res.status {
            verb_reply(store, &cfg, &res, path, verb, q, req, &ctx, Part::Status)?
        } else {
            return Err(not_found_path());
        }
    } else {
        verb_reply(store, &cfg, &res, path, verb, q, req, &ctx, Part::Main)?
    };
    if is_write && !dry_run {
        gc::sweep(store, &cfg, &ctx.now);
    }
    // What a dry run or a metadata-only answer changes is a copy, never the stored object.
    let reply = match reply {
        Reply::Object(code, v) if dry_run || render(req) == Render::Metadata => {
            Reply::Json(code, Arc::unwrap_or_clone(v))
        }
        other => other,
    };
    let mut response = match reply {
        Reply::Raw(r) => r,
        Reply::Object(code, v) => match protobuf_answer(req, &res, code, &v) {
            Some(r) => r,
            None => json_response(code, &v),
        },
        Reply::Json(code, mut v) => {
            if dry_run && v["kind"] == res.kind.as_str() {
                // Nothing was stored: a would-be new object has no resourceVersion yet, a
                // would-be update keeps the current one.
                match (&before_rv, code) {
                    (Some(rv), 200) => v["metadata"]["resourceVersion"] = rv.clone(),
                    _ => {
                        if let Some(m) = v["metadata"].as_object_mut() {
                            m.remove("resourceVersion");
                        }
                    }
                }
            }
            if render(req) == Render::Metadata {
                v = as_metadata(v, &res);
            }
            match protobuf_answer(req, &res, code, &v) {
                Some(r) => r,
                None => json_response(code, &v),
            }
        }
    };
    for w in ctx.warnings.borrow().iter() {
        // RFC 7234 warning: code 299, agent "-", the text quoted.
        if let Ok(h) = HeaderValue::from_str(&format!("299 - {}", Value::String(w.clone()))) {
            response.headers_mut().append(header::WARNING, h);
        }
    }
    Ok(response)
}

/// The answer in protobuf, for clients that prefer it, when kube-apiserver would give one:
/// built-in kinds only (custom resources have no protobuf encoding).
fn protobuf_answer(
    req: &Request<Bytes>,
    res: &ResourceInfo,
    code: u16,
    v: &Value,
) -> Option<Response<Body>> {
    if res.is_custom() || !protobuf::wants_protobuf(header_str(req, header::ACCEPT)) {
        return None;
    }
    let bytes = protobuf::encode(v)?;
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(code).ok()?;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protobuf::MEDIA_TYPE),
    );
    Some(r)
}

#[allow(clippy::too_many_arguments)]
fn verb_reply(
    store: &mut Store,
    cfg: &super::Config,
    res: &ResourceInfo,
    path: &ResourcePath,
    verb: &str,
    q: &HashMap<String, String>,
    req: &Request<Bytes>,
    ctx: &WriteCtx,
    part: Part,
) -> Result<Reply, ApiError> {
    let ns = path.namespace.clone().unwrap_or_default();
    let key = |name: &str| ObjKey::new(res, &ns, name);
    let body = req.body();
    match verb {
        "get" => {
            let name = path.name.as_deref().unwrap_or_default();
            let obj = store
                .get_shared(&key(name))
                .cloned()
                .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
            let obj = answer(obj, res);
            if wants_table(req) {
                let obj = Value::clone(&obj);
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                return Ok(Reply::Json(
                    200,
                    table::table(
                        res,
                        &[obj],
                        &rv,
                        q.get("includeObject").is_some_and(|v| v == "Object"),
                    ),
                ));
            }
            Ok(Reply::Object(200, obj))
        }
        "list" => list(store, res, path, q, req),
        "watch" => {
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs);
            let wr = WatchRequest {
                res: res.clone(),
                namespace: path.namespace.clone(),
                resource_version: q.get("resourceVersion").cloned().unwrap_or_default(),
                selectors: selectors(q, res)?,
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                send_initial_events: q.get("sendInitialEvents").is_some_and(|v| v == "true"),
                timeout,
                bookmark_interval: cfg.bookmark_interval,
                metadata_only: render(req) == Render::Metadata,
                table: wants_table(req)
                    .then(|| q.get("includeObject").is_some_and(|v| v == "Object")),
            };
            let body = watch::start(store, wr);
            let mut r = Response::new(body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            Ok(Reply::Raw(r))
        }
        "create" if part == Part::Main => {
            let obj = parse_body(body, false)?;
            let created = writes::create(store, cfg, res, &ns, obj, ctx, None)?;
            Ok(Reply::Object(201, answer(created, res)))
        }
        "update" => {
            let name = path.name.as_deref().unwrap_or_default();
            let obj = parse_body(body, false)?;
            let rv_given = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if store.get(&key(name)).is_none() {
                // PUT creates a missing object only for kinds whose strategy allows it
                // (never custom resources), only on the main resource, and only
                // unconditionally.
                if part == Part::Status || !res.allow_create_on_update() || rv_given {
                    return Err(ApiError::not_found(&res.group, &res.plural, name));
                }
                let created = writes::create(store, cfg, res, &ns, obj, ctx, None)?;
                return Ok(Reply::Object(201, answer(created, res)));
            }
            if !rv_given && !res.allow_unconditional_update() {
                return Err(invalid_update_without_rv(res, name));
            }
            let updated =
                writes::update(store, cfg, res, &key(name), obj, part, ctx, Managed::Update)?;
            Ok(Reply::Object(200, answer(updated, res)))
        }
        "patch" => {
            let name = path.name.as_deref().unwrap_or_default();
            let ct = header_str(req, header::CONTENT_TYPE);
            let kind = PatchKind::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let (code, obj) = if kind == PatchKind::Apply {
                apply_patch(store, cfg, res, &ns, name, part, body, q, ctx)?
            } else {
                let live = store
                    .get(&key(name))
                    .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
                let mut doc = with_type_meta(live, res);
                patch::patch(&mut doc, kind, body, res.is_custom())?;
                (
                    200,
                    writes::update(store, cfg, res, &key(name), doc, part, ctx, Managed::Update)?,
                )
            };
            Ok(Reply::Object(code, answer(obj, res)))
        }
        "delete" if part == Part::Main => {
            let name = path.name.as_deref().unwrap_or_default();
            let opts = delete_options(body, q)?;
            let obj = writes::delete(store, cfg, res, &key(name), &opts, &ctx.now)?;
            let uid = obj.pointer("/metadata/uid").cloned();
            let still_there = store
                .get(&key(name))
                .is_some_and(|o| o.pointer("/metadata/uid").cloned() == uid);
            if !still_there && !res.returns_deleted_object() {
                // finalizeDelete: kinds without ReturnDeletedObject (custom resources among
                // them) answer an immediate delete with a Status.
                return Ok(Reply::Json(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success",
                        "details": {"name": name, "group": res.group, "kind": res.plural,
                            "uid": uid}}),
                ));
            }
            Ok(Reply::Json(200, with_type_meta(&obj, res)))
        }
        "deletecollection" if part == Part::Main => {
            let sel = selectors(q, res)?;
            let opts = delete_options(body, q)?;
            let keys: Vec<ObjKey> = store
                .range(&res.group, &res.plural, path.namespace.as_deref())
                .filter(|(_, o)| sel.matches(o))
                .map(|(k, _)| k.clone())
                .collect();
            let mut items = Vec::new();
            for k in keys {
                if let Ok(o) = writes::delete(store, cfg, res, &k, &opts, &ctx.now) {
                    items.push(with_type_meta(&o, res));
                }
            }
            Ok(Reply::Json(
                200,
                json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_options(body: &[u8], q: &HashMap<String, String>) -> Result<DeleteOptions, ApiError> {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(body, false)?
    };
    let policy = q.get("propagationPolicy").cloned().or_else(|| {
        v.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from)
    });
    let propagation = match policy.as_deref() {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        None | Some("Background") => Propagation::Background,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other}"
            )));
        }
    };
    let orphan = v.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    Ok(DeleteOptions {
        propagation: if orphan {
            Propagation::Orphan
        } else {
            propagation
        },
        precondition_uid: v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

#[allow(clippy::too_many_arguments)]
fn apply_patch(
    store: &mut Store,
    cfg: &super::Config,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
    part: Part,
    body: &[u8],
    q: &HashMap<String, String>,
    ctx: &WriteCtx,
) -> Result<(u16, Arc<Value>), ApiError> {
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiError::bad_request(
            "PATCH /apply requires fieldManager: fieldManager is required for apply requests",
        ));
    };
    let force = q.get("force").is_some_and(|f| f == "true");
    let mut config = parse_body(body, true)?;
    // Compared with the stored object field by field: numbers as the store holds them.
    writes::go_numbers(&mut config);
    let (Some(api_version), Some(kind)) = (
        config.get("apiVersion").and_then(Value::as_str),
        config.get("kind").and_then(Value::as_str),
    ) else {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind are required for apply",
        ));
    };
    if api_version != res.api_version() || kind != res.kind {
        return Err(ApiError::bad_request(format!(
            "the apiVersion/kind {api_version}/{kind} of the applied object does not match {}/{}",
            res.api_version(),
            res.kind
        )));
    }
    if let Some(n) = config.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let key = ObjKey::new(res, ns, name);
    let outer = ctx;
    let ctx = WriteCtx {
        manager: manager.clone(),
        now: ctx.now.clone(),
        unknown_fields: ctx.unknown_fields,
        warn_unknown: ctx.warn_unknown,
        warnings: std::cell::RefCell::new(Vec::new()),
    };
    let Some(live) = store.get_shared(&key).cloned() else {
        if part == Part::Status {
            return Err(ApiError::not_found(&res.group, &res.plural, name));
        }
        let mut obj = config;
        obj["metadata"]["name"] = Value::String(name.to_string());
        let created = writes::create(store, cfg, res, ns, obj, &ctx, Some(manager));
        outer.warnings.borrow_mut().extend(ctx.warnings.take());
        return Ok((201, created?));
    };
    let schema = writes::schema(store, res);
    let mut applied =
        apply::apply(&live, &config, res, schema, part, manager, force, &ctx.now)?.object;
    // An RV in an applied configuration is a precondition, as for updates.
    if let Some(rv) = config.pointer("/metadata/resourceVersion") {
        applied["metadata"]["resourceVersion"] = rv.clone();
    }
    let updated = writes::update(
        store,
        cfg,
        res,
        &key,
        applied,
        part,
        &ctx,
        Managed::Precomputed,
    );
    outer.warnings.borrow_mut().extend(ctx.warnings.take());
    Ok((200, updated?))
}

fn list(
    store: &Store,
    res: &ResourceInfo,
    path: &ResourcePath,
    q: &HashMap<String, String>,
    req: &Request<Bytes>,
) -> Result<Reply, ApiError> {
    if let Some(rv) = q.get("resourceVersion").and_then(|v| v.parse::<u64>().ok())
        && rv > 0
        && rv < store.compacted
        && q.get("resourceVersionMatch").is_some_and(|m| m == "Exact")
    {
        return Err(ApiError::expired(format!(
            "too old resource version: {rv} ({})",
            store.compacted
        )));
    }
    let sel = selectors(q, res)?;
    // Selected and paged before anything is copied: a page of a long list copies its page.
    let mut items: Vec<&Value> = store
        .list(&res.group, &res.plural, path.namespace.as_deref())
        .into_iter()
        .filter(|o| sel.matches(o))
        .collect();
    let after = q.get("continue").filter(|c| !c.is_empty()).cloned();
    let pos = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )
    };
    if let Some(after) = &after {
        items.retain(|o| &pos(o) > after);
    }
    let mut meta = json!({"resourceVersion": store.rv.to_string()});
    if let Some(limit) = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        if let Some(last) = items.last() {
            meta["continue"] = Value::String(pos(last));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let items: Vec<Value> = items.into_iter().map(|o| with_type_meta(o, res)).collect();
    if wants_table(req) {
        let include = q.get("includeObject").is_some_and(|v| v == "Object");
        let mut t = table::table(res, &items, &store.rv.to_string(), include);
        if let Some(c) = meta.get("continue") {
            t["metadata"]["continue"] = c.clone();
        }
        return Ok(Reply::Json(200, t));
    }
    Ok(Reply::Json(
        200,
        json!({
            "kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
            "metadata": meta, "items": items,
        }),
    ))
}

pub fn has_scale(res: &ResourceInfo) -> bool {
    res.scale.is_some()
        || (res.group == "apps" && matches!(res.plural.as_str(), "deployments" | "statefulsets"))
}

/// `.spec.replicas` → `/spec/replicas` (the scale paths of a CRD are simple JSON paths).
fn pointer_of(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut acc, seg| {
            acc.push('/');
            acc.push_str(seg);
            acc
        })
}

fn scale_of(obj: &Value, res: &ResourceInfo) -> Value {
    let (spec, status, selector) = match &res.scale {
        Some(sc) => {
            let selector = sc
                .label_selector
                .as_deref()
                .and_then(|p| obj.pointer(&pointer_of(p)))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (
                obj.pointer(&pointer_of(&sc.spec_replicas))
                    .cloned()
                    .unwrap_or(json!(0)),
                obj.pointer(&pointer_of(&sc.status_replicas))
                    .cloned()
                    .unwrap_or(json!(0)),
                selector,
            )
        }
        None => {
            let selector: Vec<String> = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            (
                obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1)),
                obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                selector.join(","),
            )
        }
    };
    let meta = &obj["metadata"];
    let mut status = json!({"replicas": status});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": spec},
        "status": status,
    })
}

/// The `/scale` subresource (`autoscaling/v1` Scale) of Deployments, StatefulSets and
/// custom resources whose CRD declares `subresources.scale`.
fn scale(
    store: &mut Store,
    cfg: &super::Config,
    res: &ResourceInfo,
    path: &ResourcePath,
    verb: &str,
    body: &[u8],
    ctx: &WriteCtx,
) -> Result<Reply, ApiError> {
    let name = path.name.as_deref().unwrap_or_default();
    let key = ObjKey::new(res, path.namespace.as_deref().unwrap_or_default(), name);
    let live = store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
    let current = scale_of(&live, res);
    let wanted = match verb {
        "get" => return Ok(Reply::Json(200, current)),
        "update" => parse_body(body, false)?,
        "patch" => {
            let mut doc = current.clone();
            patch::patch(&mut doc, PatchKind::Merge, body, false)?;
            doc
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(if res.scale.is_some() { 0 } else { 1 }));
    let mut obj = live;
    let spec_pointer = match &res.scale {
        Some(sc) => pointer_of(&sc.spec_replicas),
        None => "/spec/replicas".to_string(),
    };
    set_pointer(&mut obj, &spec_pointer, replicas);
    // A Scale's resourceVersion is a precondition; without one the update is unconditional
    // (also for custom resources, whose scale strategy copies it only when set).
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        obj["metadata"]["resourceVersion"] = rv.clone();
    }
    let updated = writes::update(store, cfg, res, &key, obj, Part::Main, ctx, Managed::Update)?;
    Ok(Reply::Json(200, scale_of(&updated, res)))
}

/// Sets `value` at a JSON pointer, creating objects on the way.
fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    let segs: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i + 1 == segs.len() {
            cur[*seg] = value;
            return;
        }
        cur = &mut cur[*seg];
    }
}
