//! Discovery: legacy documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`),
//! aggregated discovery (`apidiscovery.k8s.io/v2` on `/api` and `/apis` for clients that ask
//! for it), and `/version`.

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
            "kind": r.kind, "verbs": super::reviews::verbs(r).unwrap_or(VERBS),
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        out.push(doc);
        if super::handlers::has_scale(r) {
            out.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
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

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`), which clients ask for
/// first and recognise the answer by.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asks for aggregated discovery v2 anywhere in its `Accept` (client-go
/// lists protobuf and v2beta1 alternatives too; JSON v2 is what this server offers).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|m| {
        let params: Vec<&str> = m.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
    })
}

fn resource_discovery(r: &ResourceInfo) -> Value {
    let kind = |group: &str, version: &str, kind: &str| json!({"group": group, "version": version, "kind": kind});
    let mut subresources = Vec::new();
    if r.status {
        subresources.push(json!({"subresource": "status",
            "responseKind": kind(&r.group, &r.version, &r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if super::handlers::has_scale(r) {
        subresources.push(json!({"subresource": "scale",
            "responseKind": kind("autoscaling", "v1", "Scale"), "verbs": ["get", "patch", "update"]}));
    }
    let mut doc = json!({
        "resource": r.plural,
        "responseKind": kind(&r.group, &r.version, &r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": super::reviews::verbs(r).unwrap_or(VERBS),
    });
    if !r.short_names.is_empty() {
        doc["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        doc["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        doc["subresources"] = json!(subresources);
    }
    doc
}

/// `GET /api` (`core`) or `GET /apis` as an `apidiscovery.k8s.io/v2` APIGroupDiscoveryList:
/// every group with its versions (preferred first) and their resources.
pub fn aggregated<'a>(resources: impl Iterator<Item = &'a ResourceInfo>, core: bool) -> Value {
    let resources: Vec<&ResourceInfo> = resources.filter(|r| r.group.is_empty() == core).collect();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in &resources {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    if !core {
        groups.sort();
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = resources
                        .iter()
                        .filter(|r| &r.group == group && &r.version == v)
                        .map(|r| resource_discovery(r))
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            let metadata = if core {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}
