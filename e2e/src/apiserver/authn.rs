//! Authentication: bearer tokens to users, as kube-apiserver's token authenticators do.
//!
//! - [`ADMIN_TOKEN`] is the cluster admin (`kubernetes-admin` in `system:masters`, as kubeadm's
//!   admin.conf was); the test's own clients ([`TestApiServer::client`]) and the kubeconfig
//!   `miracolix-testapi` writes carry it.
//! - ServiceAccount tokens, issued by [`TestApiServer::service_account_token`] or the
//!   TokenRequest subresource (`POST .../serviceaccounts/<name>/token`, what
//!   `kubectl create token` and kubelets use), authenticate as
//!   `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts`,
//!   `system:serviceaccounts:<ns>` and `system:authenticated`, while the ServiceAccount they
//!   were issued for exists (a token of a deleted and re-created account is refused, as the
//!   bound-token authenticator checks the uid). They are opaque, not JWTs.
//! - No token: `system:anonymous` in `system:unauthenticated` (anonymous auth is on by
//!   default); RBAC then allows only what is bound to that group (health and version).
//! - Any other token: 401 `Unauthorized`.
//!
//! With authorization off ([`super::Config::authorization`]) every request is allowed and a
//! request without a known token counts as the admin, so `kubectl auth whoami` and the review
//! APIs answer consistently with "everything is allowed".

use std::collections::{BTreeMap, HashMap};

use http::HeaderMap;
use serde_json::{Value, json};

use super::TestApiServer;
use super::status::ApiError;
use super::store::ObjKey;

/// The admin's bearer token.
pub const ADMIN_TOKEN: &str = "miracolix-testapi-admin";
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ANONYMOUS: &str = "system:anonymous";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// How long issued tokens are valid (TokenRequest's default `expirationSeconds`).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Who made a request: kube-apiserver's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn admin() -> Self {
        Self {
            username: ADMIN_USER.to_string(),
            groups: vec![super::authz::MASTERS.to_string(), AUTHENTICATED.to_string()],
            ..Self::default()
        }
    }

    pub fn anonymous() -> Self {
        Self {
            username: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..Self::default()
        }
    }

    /// `serviceaccount.UserInfo`: the username and the three groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        Self {
            username: service_account_username(namespace, name),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.to_string(),
            ],
            ..Self::default()
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }

    /// A user as a SubjectAccessReview's spec names it.
    pub fn from_review_spec(spec: &Value) -> Self {
        let extra = spec
            .get("extra")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let vals = v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect();
                        (k.clone(), vals)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            username: spec["user"].as_str().unwrap_or_default().to_string(),
            uid: spec["uid"].as_str().unwrap_or_default().to_string(),
            groups: spec["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            extra,
        }
    }
}

/// `serviceaccount.MakeUsername`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// One issued ServiceAccount token.
#[derive(Clone, Debug)]
struct Issued {
    namespace: String,
    name: String,
    /// The ServiceAccount's uid when issued: a re-created account does not inherit tokens.
    uid: String,
    /// The token's id (`credential-id` in the user's extra, as for bound tokens).
    id: String,
}

/// The tokens this server issued.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, Issued>,
    counter: u64,
    /// Seeds the opaque token strings (tokens of two servers differ).
    salt: u64,
}

impl Tokens {
    fn issue(&mut self, namespace: &str, name: &str, uid: &str) -> String {
        if self.salt == 0 {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x6d69_7261_636f_6c78);
            self.salt = h.finish() | 1;
        }
        self.counter += 1;
        let id = format!("{:016x}{:08x}", self.salt, self.counter);
        let token = format!("testapi-sa.{id}");
        self.issued.insert(
            token.clone(),
            Issued {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: uid.to_string(),
                id,
            },
        );
        token
    }
}

fn sa_key(namespace: &str, name: &str) -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "serviceaccounts".to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl TestApiServer {
    /// Whether requests are authorized by RBAC ([`super::Config::authorization`]).
    pub fn authorization(&self) -> bool {
        super::lock(&self.inner.config).authorization
    }

    /// Switches RBAC authorization on or off for the following requests.
    pub fn set_authorization(&self, on: bool) {
        super::lock(&self.inner.config).authorization = on;
    }

    /// A bearer token for the ServiceAccount `namespace/name`, which must exist.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        let uid = self
            .store()
            .get(&sa_key(namespace, name))
            .and_then(|sa| sa.pointer("/metadata/uid"))
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
        Ok(super::lock(&self.inner.tokens).issue(namespace, name, &uid))
    }

    /// What the RBAC authorizer answers `user` asking for `a` now, whether or not
    /// authorization is enforced.
    pub fn authorize(
        &self,
        user: &UserInfo,
        a: &super::authz::Attributes,
    ) -> super::authz::Decision {
        super::authz::authorize(&self.store(), user, a)
    }

    /// A client sending `token` (and `user_agent`, for the request log).
    pub fn client_with_token(&self, user_agent: &str, token: &str) -> kube::Client {
        kube::Client::new(
            self.service()
                .with_user_agent(user_agent)
                .with_token(Some(token)),
            "default",
        )
    }

    /// The user a token stands for, if this server knows it.
    fn token_user(&self, token: &str) -> Option<UserInfo> {
        if token == ADMIN_TOKEN {
            return Some(UserInfo::admin());
        }
        let issued = super::lock(&self.inner.tokens).issued.get(token).cloned()?;
        let live_uid = self
            .store()
            .get(&sa_key(&issued.namespace, &issued.name))
            .and_then(|sa| sa.pointer("/metadata/uid"))
            .and_then(Value::as_str)
            .map(String::from)?;
        if live_uid != issued.uid {
            return None;
        }
        let mut user = UserInfo::service_account(&issued.namespace, &issued.name, &issued.uid);
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", issued.id)],
        );
        Some(user)
    }

    /// Authenticates a request from its `Authorization` header.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let enforced = self.authorization();
        match bearer(headers) {
            Some(token) => match self.token_user(token) {
                Some(user) => Ok(user),
                None if enforced => Err(unauthorized()),
                None => Ok(UserInfo::admin()),
            },
            None if enforced => Ok(UserInfo::anonymous()),
            None => Ok(UserInfo::admin()),
        }
    }

    /// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (TokenRequest).
    pub(super) fn token_request(
        &self,
        namespace: &str,
        name: &str,
        req: &Value,
    ) -> Result<(u16, Value), ApiError> {
        let expiration = req
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if expiration < 600 {
            return Err(ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                vec![(
                    "spec.expirationSeconds".to_string(),
                    format!(
                        "Invalid value: {expiration}: may not specify a duration less than 10 minutes"
                    ),
                )],
            ));
        }
        let token = self.service_account_token(namespace, name)?;
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::seconds(expiration);
        let audiences = req
            .pointer("/spec/audiences")
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
            .unwrap_or(json!(["https://kubernetes.default.svc.cluster.local"]));
        let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
        if let Some(bound) = req.pointer("/spec/boundObjectRef") {
            spec["boundObjectRef"] = bound.clone();
        }
        Ok((
            201,
            json!({
                "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace,
                    "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                "spec": spec,
                "status": {"token": token,
                    "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
            }),
        ))
    }

    /// TokenReview: who a token stands for.
    pub(super) fn review_token(&self, token: &str) -> Option<UserInfo> {
        self.token_user(token)
    }
}
