//! RBAC authorization, as kube-apiserver 1.33 runs it with `--authorization-mode=RBAC`:
//! the request's attributes (kube-apiserver's `authorizer.Attributes`, derived from the URL as
//! `staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` does) are checked
//! against the rules of every Role and ClusterRole bound to the user, found as
//! `pkg/registry/rbac/validation/rule.go` (`VisitRulesFor`) finds them, each rule matched as
//! `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RuleAllows`) and
//! `pkg/apis/rbac/v1/evaluation_helpers.go` match it. Members of `system:masters` are allowed
//! everything before RBAC is asked, as kube-apiserver's privileged-group authorizer does.
//! A denial is the 403 of `endpoints/handlers/responsewriters/errors.go` (`forbiddenMessage`)
//! wrapped by apimachinery's `NewForbidden`.
//!
//! Public so that tests can evaluate rules with the same code the server enforces them with.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::TestApiServer;
use super::authn::UserInfo;
use super::faults::RequestRecord;
use super::routes::Route;
use super::status::ApiError;
use super::store::{ObjKey, Store};

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members are allowed everything (`user.SystemPrivilegedGroup`).
pub const MASTERS: &str = "system:masters";

/// What a request asks for: kube-apiserver's `authorizer.Attributes` (user apart).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attributes {
    pub verb: String,
    /// A request for a resource (else `path` is a non-resource URL).
    pub resource_request: bool,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped objects and cluster-wide collections.
    pub namespace: String,
    /// Empty for collections, unless a list or watch selects one name by
    /// `fieldSelector=metadata.name=...` (requestinfo.go sets the name then).
    pub name: String,
    pub path: String,
}

impl Attributes {
    /// A resource request; `resource` may be `resource/subresource`.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Self {
            verb: verb.to_string(),
            resource_request: true,
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            path: String::new(),
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.to_string(),
            path: path.to_string(),
            ..Self::default()
        }
    }

    /// The attributes kube-apiserver derives for a request to a resource URL: a request for a
    /// namespace (`/api/v1/namespaces/x`, `.../x/status`) is in that namespace, and a list or
    /// watch with a `metadata.name` field selector names the object.
    pub fn of_request(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
        query: &HashMap<String, String>,
    ) -> Self {
        let mut a = Self::resource(verb, group, resource, namespace, name);
        a.subresource = subresource.to_string();
        if group.is_empty() && resource == "namespaces" && namespace.is_empty() {
            a.namespace = name.to_string();
        }
        if name.is_empty()
            && matches!(verb, "list" | "watch")
            && let Some(selected) = query.get("fieldSelector").and_then(|s| selected_name(s))
        {
            a.name = selected;
        }
        a
    }

    /// The attributes of a logged request, as the server authorized it.
    pub fn of_record(r: &RequestRecord) -> Self {
        let query = super::routes::query(r.path.split_once('?').map(|(_, q)| q));
        Self::of_request(
            &r.verb,
            &r.group,
            &r.resource,
            &r.subresource,
            &r.namespace,
            &r.name,
            &query,
        )
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// `fields.Selector.RequiresExactMatch("metadata.name")`, kept only when the name is a valid
/// path segment (`path.IsValidPathSegmentName`), as requestinfo.go does.
fn selected_name(selector: &str) -> Option<String> {
    let name = selector.split(',').find_map(|term| {
        let term = term.trim();
        term.strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))
    })?;
    is_path_segment(name).then(|| name.to_string())
}

/// `path.IsValidPathSegmentName` (the rule for RBAC object names too).
pub fn is_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// One `PolicyRule` of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

impl PolicyRule {
    pub fn from_json(rule: &Value) -> Self {
        Self {
            verbs: strings(rule.get("verbs")),
            api_groups: strings(rule.get("apiGroups")),
            resources: strings(rule.get("resources")),
            resource_names: strings(rule.get("resourceNames")),
            non_resource_urls: strings(rule.get("nonResourceURLs")),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn of_role(role: &Value) -> Vec<Self> {
        role.get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Self::from_json)
            .collect()
    }

    /// `RuleAllows`: verb, then group, resource (incl. `*/subresource`) and resourceNames for
    /// a resource request; verb and URL (`*` or a trailing-`*` prefix) for the others.
    pub fn allows(&self, a: &Attributes) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        if !any(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
            });
        }
        let combined = a.combined_resource();
        any(&self.api_groups, &a.group)
            && self.resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!a.subresource.is_empty()
                        && r.strip_prefix("*/") == Some(a.subresource.as_str()))
            })
            // A rule with resourceNames never matches a request without a name: create, and
            // list/watch/deletecollection of a collection.
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"verbs": self.verbs});
        for (key, list) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() {
                v[key] = json!(list);
            }
        }
        v
    }
}

/// A rule together with the binding that grants it, described as RBAC's reasons describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundRule {
    pub rule: PolicyRule,
    /// e.g. `ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`.
    pub source: String,
}

/// `describeSubject` of rule.go.
fn describe_subject(s: &Value, binding_namespace: &str) -> String {
    let kind = s["kind"].as_str().unwrap_or_default();
    let name = s["name"].as_str().unwrap_or_default();
    if kind == "ServiceAccount" {
        let ns = s["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_namespace);
        return format!("{kind} {:?}", format!("{name}/{ns}"));
    }
    format!("{kind} {name:?}")
}

/// `appliesToUser` of rule.go: a ServiceAccount subject without a namespace means the
/// binding's namespace.
fn applies_to(user: &UserInfo, s: &Value, binding_namespace: &str) -> bool {
    let name = s["name"].as_str().unwrap_or_default();
    match s["kind"].as_str().unwrap_or_default() {
        "User" => user.username == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !ns.is_empty() && user.username == super::authn::service_account_username(ns, name)
        }
        _ => false,
    }
}

fn rbac_key(plural: &str, namespace: &str, name: &str) -> ObjKey {
    ObjKey {
        group: RBAC_GROUP.to_string(),
        plural: plural.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// The rules a binding's roleRef resolves to (`GetRoleReferenceRules`), or the lister's
/// not-found error.
fn role_rules(store: &Store, role_ref: &Value, namespace: &str) -> Result<Vec<PolicyRule>, String> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    let (plural, singular, ns) = match role_ref["kind"].as_str().unwrap_or_default() {
        "ClusterRole" => ("clusterroles", "clusterrole", ""),
        "Role" => ("roles", "role", namespace),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    store
        .get(&rbac_key(plural, ns, name))
        .map(PolicyRule::of_role)
        .ok_or_else(|| format!("{singular}.{RBAC_GROUP} {name:?} not found"))
}

/// `VisitRulesFor`: the rules of every ClusterRoleBinding, then (for a namespace) every
/// RoleBinding there, that binds `user`; plus the errors of bindings whose role is missing.
pub fn rules_for(store: &Store, user: &UserInfo, namespace: &str) -> (Vec<BoundRule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut visit = |binding: &Value, kind: &str, binding_ns: &str| {
        let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
        let Some(subject) = subjects.iter().find(|s| applies_to(user, s, binding_ns)) else {
            return;
        };
        let name = binding["metadata"]["name"].as_str().unwrap_or_default();
        let role_ref = &binding["roleRef"];
        let described_name = if binding_ns.is_empty() {
            name.to_string()
        } else {
            format!("{name}/{binding_ns}")
        };
        let source = format!(
            "{kind} {described_name:?} of {} {:?} to {}",
            role_ref["kind"].as_str().unwrap_or_default(),
            role_ref["name"].as_str().unwrap_or_default(),
            describe_subject(subject, binding_ns)
        );
        match role_rules(store, role_ref, binding_ns) {
            Ok(found) => rules.extend(found.into_iter().map(|rule| BoundRule {
                rule,
                source: source.clone(),
            })),
            Err(e) => errors.push(e),
        }
    };
    for binding in store.list(RBAC_GROUP, "clusterrolebindings", None) {
        visit(binding, "ClusterRoleBinding", "");
    }
    if !namespace.is_empty() {
        for binding in store.list(RBAC_GROUP, "rolebindings", Some(namespace)) {
            visit(binding, "RoleBinding", namespace);
        }
    }
    (rules, errors)
}

/// The authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// With the reason (`RBAC: allowed by ...`; empty for `system:masters`).
    Allow(String),
    /// With the reason (RBAC's errors, e.g. a binding to a missing role; usually empty).
    Deny(String),
}

/// Authorizes `a` for `user` from the RBAC objects in `store`.
pub fn authorize(store: &Store, user: &UserInfo, a: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision::Allow(String::new());
    }
    let (rules, errors) = rules_for(store, user, &a.namespace);
    if let Some(r) = rules.iter().find(|r| r.rule.allows(a)) {
        return Decision::Allow(format!("RBAC: allowed by {}", r.source));
    }
    Decision::Deny(if errors.is_empty() {
        String::new()
    } else {
        format!("RBAC: {}", aggregate(&errors))
    })
}

/// apimachinery's `utilerrors.NewAggregate(...).Error()`: one message as is, several
/// de-duplicated in brackets.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    if errors.len() == 1 || seen.len() == 1 {
        seen.join("")
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// The 403 kube-apiserver answers a denied request with.
pub fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let who = &user.username;
    let mut msg = if !a.resource_request {
        format!("User {who:?} cannot {} path {:?}", a.verb, a.path)
    } else if !a.namespace.is_empty() {
        format!(
            "User {who:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            a.verb,
            a.combined_resource(),
            a.group,
            a.namespace
        )
    } else {
        format!(
            "User {who:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            a.verb,
            a.combined_resource(),
            a.group
        )
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    // NewForbidden: the qualified resource (no subresource) and the name lead the message.
    let (group, resource) = if a.resource_request {
        (a.group.as_str(), a.resource.as_str())
    } else {
        ("", "")
    };
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {:?} is forbidden: {msg}", a.name)
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("name", &a.name),
        ("group", &a.group),
        ("kind", &a.resource),
    ] {
        if !v.is_empty() && a.resource_request {
            details.insert(k.to_string(), json!(v));
        }
    }
    e.body["details"] = Value::Object(details);
    e
}

/// kube-controller-manager's clusterrole-aggregation controller
/// (`pkg/controller/clusterroleaggregation`): a ClusterRole with an `aggregationRule` gets the
/// rules of every other ClusterRole one of its `clusterRoleSelectors` matches, by name order,
/// without duplicates.
pub(super) fn aggregate_cluster_roles(store: &mut Store, cfg: &super::Config) {
    let roles: Vec<(ObjKey, Value)> = store
        .range(RBAC_GROUP, "clusterroles", None)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, role) in &roles {
        let Some(selectors) = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let selectors: Vec<super::selectors::LabelSelector> = selectors
            .iter()
            .filter_map(|s| super::selectors::LabelSelector::parse(&selector_string(s)).ok())
            .collect();
        let mut rules: Vec<Value> = Vec::new();
        // `roles` is in key order, which is name order for cluster-scoped objects.
        for (other_key, other) in &roles {
            if other_key == key || !selectors.iter().any(|s| s.matches(other)) {
                continue;
            }
            for rule in other["rules"].as_array().into_iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        if role["rules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            != rules.as_slice()
        {
            let mut updated = role.clone();
            updated["rules"] = Value::Array(rules);
            super::writes::server_write(store, cfg, key, updated);
        }
    }
}

/// A `metav1.LabelSelector` (matchLabels, matchExpressions) in the query-string syntax.
fn selector_string(s: &Value) -> String {
    let mut terms: Vec<String> = Vec::new();
    for (k, v) in s["matchLabels"].as_object().into_iter().flatten() {
        terms.push(format!("{k}={}", v.as_str().unwrap_or_default()));
    }
    for e in s["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values = strings(e.get("values")).join(",");
        terms.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    terms.join(",")
}

/// The default policy kube-apiserver bootstraps besides `cluster-admin`
/// (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`, 1.33): discovery and
/// health for every authenticated user, health and version for everyone, and the self-reviews
/// (`system:basic-user`) for every authenticated user.
pub fn bootstrap_policy() -> Vec<Value> {
    let meta = |name: &str| {
        json!({"name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta(name), "rules": rules})
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": meta(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": subjects})
    };
    let authenticated = super::authn::AUTHENTICATED;
    vec![
        role(
            "system:discovery",
            json!([{"verbs": ["get"], "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                "/openapi/*", "/readyz", "/version", "/version/"]}]),
        ),
        role(
            "system:public-info-viewer",
            json!([{"verbs": ["get"], "nonResourceURLs": [
                "/healthz", "/livez", "/readyz", "/version", "/version/"]}]),
        ),
        role(
            "system:basic-user",
            json!([
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"]},
            ]),
        ),
        binding("system:discovery", &[authenticated]),
        binding(
            "system:public-info-viewer",
            &[authenticated, super::authn::UNAUTHENTICATED],
        ),
        binding("system:basic-user", &[authenticated]),
    ]
}

/// Authenticates every request that is not for a resource (discovery, `/version`, health,
/// OpenAPI) and, when enforced, authorizes it as a non-resource URL; resource requests are
/// checked once their verb is known.
pub(super) fn check_path(
    server: &TestApiServer,
    req: &http::Request<bytes::Bytes>,
    route: &Route,
) -> Result<(), ApiError> {
    if matches!(route, Route::Resource(_)) {
        return Ok(());
    }
    let user = server.authenticate(req.headers())?;
    let verb = req.method().as_str().to_lowercase();
    enforce(
        server,
        &user,
        &Attributes::non_resource(&verb, req.uri().path()),
    )
}

/// Authorizes a request when authorization is enforced.
pub(super) fn enforce(
    server: &TestApiServer,
    user: &UserInfo,
    a: &Attributes,
) -> Result<(), ApiError> {
    if !server.authorization() {
        return Ok(());
    }
    match authorize(&server.store(), user, a) {
        Decision::Allow(_) => Ok(()),
        Decision::Deny(reason) => Err(forbidden(user, a, &reason)),
    }
}

/// The second check of an apply that creates its object (kube-apiserver 1.33
/// `endpoints/handlers/patch.go`, `withAuthorization`): `a` is the `create`. Its denial is not
/// the authorization filter's: `NewForbidden` of the resource and name with the authorizer's
/// reason alone (empty for RBAC unless a role could not be resolved), no "User ... cannot".
pub(super) fn enforce_create_on_apply(
    server: &TestApiServer,
    user: &UserInfo,
    a: &Attributes,
) -> Result<(), ApiError> {
    if !server.authorization() {
        return Ok(());
    }
    let reason = match authorize(&server.store(), user, a) {
        Decision::Allow(_) => return Ok(()),
        Decision::Deny(reason) => reason,
    };
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!("{qualified} {:?} is forbidden: {reason}", a.name),
    );
    e.body["details"] = json!({"name": a.name, "group": a.group, "kind": a.resource});
    if a.group.is_empty()
        && let Some(d) = e.body["details"].as_object_mut()
    {
        d.remove("group");
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_by_field_selector_names_its_object() {
        let q = super::super::routes::query(Some("fieldSelector=metadata.name%3Dx"));
        let a = Attributes::of_request("watch", "", "configmaps", "", "ns", "", &q);
        assert_eq!(a.name, "x");
        let q = super::super::routes::query(Some("fieldSelector=metadata.name%3Da%2Fb"));
        let a = Attributes::of_request("list", "", "configmaps", "", "ns", "", &q);
        assert_eq!(a.name, "", "not a path segment");
        let a = Attributes::of_request("get", "", "namespaces", "", "", "ns", &HashMap::new());
        assert_eq!(a.namespace, "ns", "a namespace is in itself");
    }

    #[test]
    fn errors_aggregate_like_apimachinery() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
