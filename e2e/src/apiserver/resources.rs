//! The table of served resources: built-in kinds plus whatever established CRDs add.

use serde_json::Value;

/// A printer column of a CRD (`additionalPrinterColumns`).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// `subresources.scale` of a CRD version: where `/scale` reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served resource at one group/version.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: the main resource ignores `status` and vice versa.
    pub status: bool,
    /// Tracks `metadata.generation` (the apiserver does so for kinds with a spec).
    pub generation: bool,
    /// The CRD that defines it, for custom resources.
    pub crd: Option<String>,
    pub printer_columns: Vec<PrinterColumn>,
    /// The `/scale` subresource of a custom resource (built-ins: see `has_scale`).
    pub scale: Option<ScalePaths>,
}

impl ResourceInfo {
    fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }

    /// `ReturnDeletedObject` of the kind's registry: a DELETE that removes the object at once
    /// answers with the object for these, with a `Status` for every other kind (custom
    /// resources included). Taken from kubernetes/pkg/registry/*/storage.go.
    pub fn returns_deleted_object(&self) -> bool {
        self.group.is_empty()
            && matches!(
                self.plural.as_str(),
                "namespaces" | "pods" | "services" | "serviceaccounts" | "persistentvolumeclaims"
            )
    }

    /// `AllowUnconditionalUpdate` of the kind's strategy: whether a PUT without
    /// `metadata.resourceVersion` overwrites. False for custom resources, CRDs, Leases and
    /// PodDisruptionBudgets; true for the other built-in kinds served here.
    pub fn allow_unconditional_update(&self) -> bool {
        !self.is_custom()
            && !self.is(super::writes::CRD_GROUP, super::writes::CRD_PLURAL)
            && !self.is("coordination.k8s.io", "leases")
            && !self.is("policy", "poddisruptionbudgets")
    }

    /// `AllowCreateOnUpdate` of the kind's strategy: whether a PUT to a missing name creates.
    pub fn allow_create_on_update(&self) -> bool {
        match self.group.as_str() {
            "" => matches!(self.plural.as_str(), "services" | "events"),
            "events.k8s.io" | "coordination.k8s.io" | "rbac.authorization.k8s.io" => true,
            _ => false,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    all: bool,
}

/// Namespaced.
const NS: u8 = 1;
/// Has a `/status` subresource.
const STATUS: u8 = 2;
/// In the `all` category.
const ALL: u8 = 4;

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
    flags: u8,
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced: flags & NS != 0,
        short,
        status: flags & STATUS != 0,
        all: flags & ALL != 0,
    }
}

/// Add a row here to serve another built-in kind.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", &["ns"], STATUS),
    b("", "v1", "configmaps", "ConfigMap", &["cm"], NS),
    b("", "v1", "secrets", "Secret", &[], NS),
    b("", "v1", "services", "Service", &["svc"], NS | STATUS | ALL),
    b("", "v1", "serviceaccounts", "ServiceAccount", &["sa"], NS),
    b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", &["pvc"], NS | STATUS),
    b("", "v1", "events", "Event", &["ev"], NS),
    b("", "v1", "nodes", "Node", &["no"], STATUS),
    b("", "v1", "pods", "Pod", &["po"], NS | STATUS | ALL),
    b("events.k8s.io", "v1", "events", "Event", &["ev"], NS),
    b("apps", "v1", "deployments", "Deployment", &["deploy"], NS | STATUS | ALL),
    b("apps", "v1", "statefulsets", "StatefulSet", &["sts"], NS | STATUS | ALL),
    b("apps", "v1", "replicasets", "ReplicaSet", &["rs"], NS | STATUS | ALL),
    b("batch", "v1", "jobs", "Job", &[], NS | STATUS | ALL),
    b("batch", "v1", "cronjobs", "CronJob", &["cj"], NS | STATUS | ALL),
    b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", &["netpol"], NS),
    b("networking.k8s.io", "v1", "ingresses", "Ingress", &["ing"], NS | STATUS),
    b("coordination.k8s.io", "v1", "leases", "Lease", &[], NS),
    b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", &["pdb"], NS | STATUS),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role", &[], NS),
    b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", &[], NS),
    b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", &[], 0),
    b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", &[], 0),
    // Create-only APIs answered by `reviews.rs`, never stored.
    b("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", &[], 0),
    b("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", &[], 0),
    b("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", &[], NS),
    b("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", &[], 0),
    b("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", &[], 0),
    b("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", &[], 0),
    b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", &["crd", "crds"], STATUS),
];

pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|r| ResourceInfo {
            group: r.group.to_string(),
            version: r.version.to_string(),
            plural: r.plural.to_string(),
            singular: r.kind.to_lowercase(),
            kind: r.kind.to_string(),
            namespaced: r.namespaced,
            short_names: r.short.iter().map(ToString::to_string).collect(),
            categories: if r.all {
                vec!["all".to_string()]
            } else {
                Vec::new()
            },
            status: r.status,
            // Namespaces, Nodes and Pods have a status but their strategies keep no generation.
            generation: r.status && !matches!(r.plural, "namespaces" | "nodes" | "pods"),
            crd: None,
            printer_columns: Vec::new(),
            scale: None,
        })
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a CRD serves, one per served version.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = s("/metadata/name");
    let group = s("/spec/group");
    let plural = s("/spec/names/plural");
    let kind = s("/spec/names/kind");
    let singular = match s("/spec/names/singular") {
        x if x.is_empty() => kind.to_lowercase(),
        x => x,
    };
    let namespaced = s("/spec/scope") != "Cluster";
    let short_names = strings(crd.pointer("/spec/names/shortNames"));
    let categories = strings(crd.pointer("/spec/names/categories"));
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .map(|v| ResourceInfo {
            group: group.clone(),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status: v.pointer("/subresources/status").is_some(),
            generation: true,
            crd: Some(name.clone()),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| cols.iter().map(printer_column).collect())
                .unwrap_or_default(),
            scale: v.pointer("/subresources/scale").map(|sc| {
                let path = |k: &str| sc.get(k).and_then(Value::as_str).map(String::from);
                ScalePaths {
                    spec_replicas: path("specReplicasPath").unwrap_or_default(),
                    status_replicas: path("statusReplicasPath").unwrap_or_default(),
                    label_selector: path("labelSelectorPath"),
                }
            }),
        })
        .collect()
}

fn printer_column(c: &Value) -> PrinterColumn {
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    PrinterColumn {
        name: s("name"),
        type_: s("type"),
        format: s("format"),
        description: s("description"),
        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        json_path: s("jsonPath"),
    }
}
