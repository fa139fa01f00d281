//! The create-only APIs that answer questions instead of storing objects, as kube-apiserver
//! serves them (`pkg/registry/authorization/*`, `pkg/registry/authentication/*`):
//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//! SelfSubjectRulesReview (`kubectl auth can-i --list`), SubjectAccessReview and
//! LocalSubjectAccessReview; `authentication.k8s.io/v1` SelfSubjectReview
//! (`kubectl auth whoami`) and TokenReview; and the TokenRequest subresource
//! `serviceaccounts/<name>/token` (`kubectl create token`). Nothing is persisted.

use bytes::Bytes;
use http::{Request, header};
use serde_json::{Value, json};

use super::TestApiServer;
use super::authn::UserInfo;
use super::authz::{self, Attributes, Decision, PolicyRule};
use super::resources::ResourceInfo;
use super::routes::ResourcePath;
use super::status::ApiError;

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// The resources served here: (group, plural).
const REVIEWS: &[(&str, &str)] = &[
    (AUTHENTICATION, "selfsubjectreviews"),
    (AUTHENTICATION, "tokenreviews"),
    (AUTHORIZATION, "selfsubjectaccessreviews"),
    (AUTHORIZATION, "selfsubjectrulesreviews"),
    (AUTHORIZATION, "subjectaccessreviews"),
    (AUTHORIZATION, "localsubjectaccessreviews"),
];

/// The verbs discovery lists for `r`, when they are not the usual ones: create only.
pub fn verbs(r: &ResourceInfo) -> Option<&'static [&'static str]> {
    REVIEWS
        .iter()
        .any(|(g, p)| r.group == *g && r.plural == *p)
        .then_some(&["create"][..])
}

/// Answers `path` if it is one of the APIs above; `None` lets the caller serve it as a stored
/// resource.
pub(super) fn serve(
    server: &TestApiServer,
    req: &Request<Bytes>,
    path: &ResourcePath,
    verb: &str,
    user: &UserInfo,
) -> Option<Result<(u16, Value), ApiError>> {
    let token = path.group.is_empty()
        && path.plural == "serviceaccounts"
        && path.subresource.as_deref() == Some("token");
    let review = path.version == "v1"
        && path.subresource.is_none()
        && REVIEWS
            .iter()
            .any(|(g, p)| path.group == *g && path.plural == *p);
    if !token && !review {
        return None;
    }
    Some(answer(server, req, path, verb, user, token))
}

fn answer(
    server: &TestApiServer,
    req: &Request<Bytes>,
    path: &ResourcePath,
    verb: &str,
    user: &UserInfo,
    token: bool,
) -> Result<(u16, Value), ApiError> {
    if verb != "create" || (!token && path.name.is_some()) {
        return Err(ApiError::method_not_allowed());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body: Value = if super::protobuf::is_protobuf(content_type) {
        super::protobuf::decode(req.body())?
    } else if req.body().is_empty() {
        json!({})
    } else {
        serde_json::from_slice(req.body())
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?
    };
    let ns = path.namespace.clone().unwrap_or_default();
    if token {
        let name = path.name.as_deref().unwrap_or_default();
        return server.token_request(&ns, name, &body);
    }
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let kind = match path.plural.as_str() {
        "selfsubjectreviews" => "SelfSubjectReview",
        "tokenreviews" => "TokenReview",
        "selfsubjectaccessreviews" => "SelfSubjectAccessReview",
        "selfsubjectrulesreviews" => "SelfSubjectRulesReview",
        "subjectaccessreviews" => "SubjectAccessReview",
        _ => "LocalSubjectAccessReview",
    };
    let status = match path.plural.as_str() {
        "selfsubjectreviews" => json!({"userInfo": user.to_json()}),
        "tokenreviews" => {
            let presented = spec["token"].as_str().unwrap_or_default();
            match server.review_token(presented) {
                Some(u) => json!({"authenticated": true, "user": u.to_json(),
                    "audiences": ["https://kubernetes.default.svc.cluster.local"]}),
                None => json!({"user": {}, "error": "invalid bearer token"}),
            }
        }
        "selfsubjectrulesreviews" => {
            let namespace = spec["namespace"].as_str().unwrap_or_default();
            rules_review(server, user, namespace)
        }
        "selfsubjectaccessreviews" => access_review(server, user, &spec, kind, None)?,
        "subjectaccessreviews" => {
            let subject = UserInfo::from_review_spec(&spec);
            if subject.username.is_empty() && subject.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            access_review(server, &subject, &spec, kind, None)?
        }
        _ => {
            let subject = UserInfo::from_review_spec(&spec);
            access_review(server, &subject, &spec, kind, Some(&ns))?
        }
    };
    let mut metadata = body.get("metadata").cloned().unwrap_or(json!({}));
    metadata["creationTimestamp"] = Value::Null;
    if !ns.is_empty() {
        metadata["namespace"] = json!(ns);
    }
    let mut out = json!({"kind": kind, "apiVersion": format!("{}/v1", path.group),
        "metadata": metadata, "status": status});
    if kind != "SelfSubjectReview" {
        out["spec"] = spec;
    }
    Ok((201, out))
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        kind,
        AUTHORIZATION,
        "",
        vec![(field.to_string(), message.to_string())],
    )
}

/// The attributes a review's spec asks about (`ResourceAttributesFrom` and
/// `NonResourceAttributesFrom` of pkg/registry/authorization/util): exactly one of
/// `resourceAttributes` and `nonResourceAttributes`.
fn review_attributes(spec: &Value, kind: &str) -> Result<Attributes, ApiError> {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes {
            verb: s(r, "verb"),
            resource_request: true,
            group: s(r, "group"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            namespace: s(r, "namespace"),
            name: s(r, "name"),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes::non_resource(&s(n, "verb"), &s(n, "path"))),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn access_review(
    server: &TestApiServer,
    user: &UserInfo,
    spec: &Value,
    kind: &str,
    local_namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let a = review_attributes(spec, kind)?;
    if let Some(ns) = local_namespace
        && a.namespace != ns
    {
        return Err(invalid(
            kind,
            "spec.resourceAttributes.namespace",
            &format!(
                "Invalid value: {:?}: must match metadata.namespace",
                a.namespace
            ),
        ));
    }
    // With authorization off the server allows everything, as `AlwaysAllow` answers.
    let decision = if server.authorization() {
        authz::authorize(&server.store(), user, &a)
    } else {
        Decision::Allow(String::new())
    };
    let (allowed, reason) = match decision {
        Decision::Allow(r) => (true, r),
        Decision::Deny(r) => (false, r),
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    Ok(status)
}

/// `RulesFor` of the RBAC authorizer (after the privileged-group authorizer's `*` rules for
/// `system:masters`, or everything when authorization is off).
fn rules_review(server: &TestApiServer, user: &UserInfo, namespace: &str) -> Value {
    let everything = json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false});
    if !server.authorization() {
        return everything;
    }
    let mut resource_rules: Vec<Value> = Vec::new();
    let mut non_resource_rules: Vec<Value> = Vec::new();
    if user.groups.iter().any(|g| g == authz::MASTERS) {
        resource_rules.extend(
            everything["resourceRules"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        non_resource_rules.extend(
            everything["nonResourceRules"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let (rules, errors) = authz::rules_for(&server.store(), user, namespace);
    for PolicyRule {
        verbs,
        api_groups,
        resources,
        resource_names,
        non_resource_urls,
    } in rules.into_iter().map(|r| r.rule)
    {
        if !resources.is_empty() {
            let rule = PolicyRule {
                verbs: verbs.clone(),
                api_groups,
                resources,
                resource_names,
                non_resource_urls: Vec::new(),
            };
            resource_rules.push(rule.to_json());
        }
        if !non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    let mut status = json!({"resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules, "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}
