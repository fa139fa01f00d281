//! Legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`) and
//! `/version`. Clients asking for aggregated discovery get legacy JSON with a plain
//! `application/json` content type, which client-go (kubectl) accepts as "not aggregated"
//! and falls back from.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceInfo;

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-miracolix-testapi",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_versions<'a>(
    resources: impl Iterator<Item = &'a ResourceInfo>,
) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources.filter(|r| !r.group.is_empty()) {
        let versions = groups.entry(r.group.clone()).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version.clone());
        }
    }
    groups
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn group_list<'a>(resources: impl Iterator<Item = &'a ResourceInfo>) -> Value {
    let groups: Vec<Value> = group_versions(resources)
        .iter()
        .map(|(name, versions)| group_doc(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group<'a>(resources: impl Iterator<Item = &'a ResourceInfo>, name: &str) -> Option<Value> {
    let groups = group_versions(resources);
    let versions = groups.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn resource_list<'a>(
    resources: impl Iterator<Item = &'a ResourceInfo>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut out = Vec::new();
    for r in resources.filter(|r| r.group == group && r.version == version) {
        let mut doc = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        out.push(doc);
        if r.group == "apps" && matches!(r.plural.as_str(), "deployments" | "statefulsets") {
            out.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        if r.status {
            out.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 index. kubectl reads it to learn whether the server validates fields
/// itself (`fieldValidation`); when so, it skips client-side schema validation, which would
/// need real schemas.
pub fn openapi_v3_root<'a>(resources: impl Iterator<Item = &'a ResourceInfo>) -> Value {
    let mut paths = serde_json::Map::new();
    for r in resources {
        let p = gv_path(&r.group, &r.version);
        let url = format!("/openapi/v3/{p}?hash=0");
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A group-version OpenAPI document with only the PATCH operations and their
/// `fieldValidation` parameter: enough for kubectl's capability check, no schemas.
pub fn openapi_v3_group_version<'a>(
    resources: impl Iterator<Item = &'a ResourceInfo>,
    path: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in resources.filter(|r| gv_path(&r.group, &r.version) == path) {
        let url = if r.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("/{path}/{}/{{name}}", r.plural)
        };
        paths.insert(url, json!({"patch": {
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
        }}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths}),
    )
}
