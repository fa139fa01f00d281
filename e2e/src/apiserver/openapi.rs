//! OpenAPI v3 (`/openapi/v3` and `/openapi/v3/{api/v1|apis/group/version}`), as kubectl reads
//! it: `kubectl explain` finds a kind's schema by its `x-kubernetes-group-version-kind`, and
//! `kubectl apply` learns from the PATCH operations' `fieldValidation` parameter that the server
//! validates fields itself.
//!
//! Schemas come from Kubernetes, not from this file: built-in kinds from k8s-openapi's
//! generated `JsonSchema` implementations (feature `v1_33`, made from the Kubernetes 1.33
//! OpenAPI document), custom resources from the stored CRD's `openAPIV3Schema`, wrapped as
//! kube-apiserver's CRD OpenAPI builder does (`apiVersion`, `kind`, `metadata` as ObjectMeta,
//! the schema named `<reversed group>.<version>.<Kind>`).

use serde_json::{Map, Value, json};

use schemars::generate::{SchemaGenerator, SchemaSettings};

use super::resources::ResourceInfo;
use super::store::{ObjKey, Store};
use super::writes::{CRD_GROUP, CRD_PLURAL};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The CRD a custom resource comes from, as stored.
fn crd<'a>(store: &'a Store, res: &ResourceInfo) -> Option<&'a Value> {
    let name = res.crd.as_deref()?;
    store.get(&ObjKey {
        group: CRD_GROUP.to_string(),
        plural: CRD_PLURAL.to_string(),
        namespace: String::new(),
        name: name.to_string(),
    })
}

/// A group-version document changes when a CRD serving it does; clients cache documents by
/// this hash, as they do kube-apiserver's.
fn hash(store: &Store, group: &str, version: &str) -> String {
    let rvs: Vec<String> = store
        .resources()
        .filter(|r| r.group == group && r.version == version)
        .filter_map(|r| crd(store, r))
        .filter_map(|c| {
            c.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
        })
        .map(String::from)
        .collect();
    if rvs.is_empty() {
        "0".to_string()
    } else {
        rvs.join("-")
    }
}

/// The index: one entry per served group version.
pub fn index(store: &Store) -> Value {
    let mut paths = Map::new();
    for r in store.resources() {
        let p = gv_path(&r.group, &r.version);
        let url = format!("/openapi/v3/{p}?hash={}", hash(store, &r.group, &r.version));
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// One group version: the PATCH operations with their parameters, and every schema its kinds
/// need under `components.schemas`.
pub fn group_version(store: &Store, path: &str) -> Option<Value> {
    let resources: Vec<&ResourceInfo> = store
        .resources()
        .filter(|r| gv_path(&r.group, &r.version) == path)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in &resources {
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
    let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    let mut kinds: Vec<(String, &ResourceInfo)> = Vec::new();
    let mut custom: Vec<(String, Value)> = Vec::new();
    for r in &resources {
        if r.is_custom() {
            if let Some(schema) = crd(store, r).and_then(|c| custom_schema(c, r)) {
                let name = custom_schema_name(r);
                kinds.push((name.clone(), r));
                custom.push((name, schema));
            }
        } else if let Some(name) = builtin_schema(&mut generator, r) {
            kinds.push((name, r));
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.extend(custom);
    for (name, r) in kinds {
        if let Some(s) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "kind": r.kind, "version": r.version}]),
            );
            // k8s-openapi marks `metadata` required (its Rust field is not optional); the
            // Kubernetes OpenAPI does not.
            if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|f| f != "metadata");
                if req.is_empty() {
                    s.remove("required");
                }
            }
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `diz.miracum.org` → `org.miracum.diz`, as kube-apiserver names CRD schemas.
fn custom_schema_name(r: &ResourceInfo) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// A CRD version's schema with the type and object metadata fields kube-apiserver adds.
fn custom_schema(crd: &Value, r: &ResourceInfo) -> Option<Value> {
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(r.version.as_str()))?;
    let mut schema = version
        .pointer("/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    let obj = schema.as_object_mut()?;
    let props = obj
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    props.insert("apiVersion".into(), json!({"type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
    props.insert("kind".into(), json!({"type": "string",
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
    props.insert("metadata".into(), json!({
        "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}],
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
    Some(schema)
}

/// Registers a built-in kind's schema (and everything it references) with the generator;
/// returns its name.
fn builtin_schema(generator: &mut SchemaGenerator, r: &ResourceInfo) -> Option<String> {
    use k8s_openapi::api::{
        apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
        batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
        events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    fn add<T: schemars::JsonSchema>(g: &mut SchemaGenerator) -> Option<String> {
        g.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    let g = generator;
    match (r.group.as_str(), r.version.as_str(), r.kind.as_str()) {
        ("", "v1", "Namespace") => add::<core::Namespace>(g),
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>(g),
        ("", "v1", "Secret") => add::<core::Secret>(g),
        ("", "v1", "Service") => add::<core::Service>(g),
        ("", "v1", "ServiceAccount") => add::<core::ServiceAccount>(g),
        ("", "v1", "PersistentVolumeClaim") => add::<core::PersistentVolumeClaim>(g),
        ("", "v1", "Event") => add::<core::Event>(g),
        ("", "v1", "Node") => add::<core::Node>(g),
        ("", "v1", "Pod") => add::<core::Pod>(g),
        ("events.k8s.io", "v1", "Event") => add::<events::Event>(g),
        ("apps", "v1", "Deployment") => add::<apps::Deployment>(g),
        ("apps", "v1", "StatefulSet") => add::<apps::StatefulSet>(g),
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>(g),
        ("batch", "v1", "Job") => add::<batch::Job>(g),
        ("batch", "v1", "CronJob") => add::<batch::CronJob>(g),
        ("networking.k8s.io", "v1", "NetworkPolicy") => add::<networking::NetworkPolicy>(g),
        ("networking.k8s.io", "v1", "Ingress") => add::<networking::Ingress>(g),
        ("coordination.k8s.io", "v1", "Lease") => add::<coordination::Lease>(g),
        ("policy", "v1", "PodDisruptionBudget") => add::<policy::PodDisruptionBudget>(g),
        ("rbac.authorization.k8s.io", "v1", "Role") => add::<rbac::Role>(g),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => add::<rbac::RoleBinding>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => add::<rbac::ClusterRole>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            add::<rbac::ClusterRoleBinding>(g)
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => add::<authn::SelfSubjectReview>(g),
        ("authentication.k8s.io", "v1", "TokenReview") => add::<authn::TokenReview>(g),
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => {
            add::<authz::LocalSubjectAccessReview>(g)
        }
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            add::<authz::SelfSubjectAccessReview>(g)
        }
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => {
            add::<authz::SelfSubjectRulesReview>(g)
        }
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => {
            add::<authz::SubjectAccessReview>(g)
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            add::<apiextensions::CustomResourceDefinition>(g)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources;
    use super::*;

    #[test]
    fn every_served_built_in_kind_has_its_schema() {
        let store = Store::new(10);
        for r in resources::builtins() {
            let doc = group_version(&store, &gv_path(&r.group, &r.version)).expect("served");
            let schemas = doc["components"]["schemas"].as_object().expect("schemas");
            let found = schemas.values().any(|s| {
                s["x-kubernetes-group-version-kind"]
                    == json!([{"group": r.group, "kind": r.kind, "version": r.version}])
            });
            assert!(found, "no schema for {}/{}", r.api_version(), r.kind);
        }
    }

    #[test]
    fn references_resolve_within_the_document() {
        let store = Store::new(10);
        let doc = group_version(&store, "apis/apps/v1").expect("served");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert_eq!(replicas["type"], "integer");
        assert!(
            schemas["io.k8s.api.apps.v1.Deployment"]
                .get("required")
                .is_none()
        );
    }

    #[test]
    fn crd_schemas_are_named_by_reversed_group() {
        let r = ResourceInfo {
            group: "diz.miracum.org".into(),
            version: "v1alpha1".into(),
            kind: "DizSite".into(),
            ..resources::builtins().remove(0)
        };
        assert_eq!(custom_schema_name(&r), "org.miracum.diz.v1alpha1.DizSite");
    }
}
