//! Authentication and RBAC authorization as kube-apiserver 1.33 does them: the rule matcher
//! (verbs, groups, resources and subresources, resourceNames, non-resource URLs, wildcards),
//! how bindings scope rules, the exact 403 and 401 answers, and the review APIs through the real
//! kubectl (`auth can-i`, `auth can-i --list`, `auth whoami`, `create token`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kube::api::{Api, ListParams, Patch, PatchParams};
use miracolix_e2e::apiserver::authn::UserInfo;
use miracolix_e2e::apiserver::authz::{Attributes, Decision, PolicyRule};
use miracolix_e2e::apiserver::http::write_kubeconfig;
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use serde_json::{Value, json};

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    let v = |l: &[&str]| l.iter().map(ToString::to_string).collect();
    PolicyRule {
        verbs: v(verbs),
        api_groups: v(groups),
        resources: v(resources),
        resource_names: v(names),
        non_resource_urls: Vec::new(),
    }
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: verbs.iter().map(ToString::to_string).collect(),
        non_resource_urls: urls.iter().map(ToString::to_string).collect(),
        ..PolicyRule::default()
    }
}

fn req(verb: &str, group: &str, resource: &str, name: &str) -> Attributes {
    Attributes::resource(verb, group, resource, "ns", name)
}

/// A list or watch as the URL asks for it, with `?fieldSelector=...`.
fn selected(verb: &str, resource: &str, selector: &str) -> Attributes {
    let query = HashMap::from([("fieldSelector".to_string(), selector.to_string())]);
    Attributes::of_request(verb, "", resource, "", "ns", "", &query)
}

#[test]
fn rules_match_requests_as_rbac_does() {
    let deploy = rule(&["get", "patch"], &["apps"], &["deployments"], &[]);
    let named = rule(
        &["get", "list", "watch", "create", "update"],
        &[""],
        &["configmaps"],
        &["cm"],
    );
    let cases: Vec<(&str, PolicyRule, Attributes, bool)> = vec![
        (
            "exact",
            deploy.clone(),
            req("patch", "apps", "deployments", "d"),
            true,
        ),
        (
            "another verb",
            deploy.clone(),
            req("delete", "apps", "deployments", "d"),
            false,
        ),
        (
            "another group",
            deploy.clone(),
            req("get", "", "deployments", "d"),
            false,
        ),
        (
            "a subresource is its own resource",
            deploy.clone(),
            req("patch", "apps", "deployments/status", "d"),
            false,
        ),
        (
            "the subresource named",
            rule(&["patch"], &["apps"], &["deployments/status"], &[]),
            req("patch", "apps", "deployments/status", "d"),
            true,
        ),
        (
            "a subresource rule is not the main resource",
            rule(&["patch"], &["apps"], &["deployments/status"], &[]),
            req("patch", "apps", "deployments", "d"),
            false,
        ),
        (
            "*/subresource",
            rule(&["get"], &["*"], &["*/scale"], &[]),
            req("get", "apps", "statefulsets/scale", "s"),
            true,
        ),
        (
            "*/subresource only that one",
            rule(&["get"], &["*"], &["*/scale"], &[]),
            req("get", "apps", "statefulsets/status", "s"),
            false,
        ),
        (
            "*/subresource is not the main resource",
            rule(&["get"], &["*"], &["*/scale"], &[]),
            req("get", "apps", "statefulsets", "s"),
            false,
        ),
        (
            "* resource covers subresources",
            rule(&["get"], &["apps"], &["*"], &[]),
            req("get", "apps", "deployments/status", "d"),
            true,
        ),
        (
            "* verb",
            rule(&["*"], &["apps"], &["deployments"], &[]),
            req("deletecollection", "apps", "deployments", ""),
            true,
        ),
        (
            "* group",
            rule(&["get"], &["*"], &["deployments"], &[]),
            req("get", "apps", "deployments", "d"),
            true,
        ),
        (
            "resourceNames: that name",
            named.clone(),
            req("get", "", "configmaps", "cm"),
            true,
        ),
        (
            "resourceNames: another name",
            named.clone(),
            req("get", "", "configmaps", "other"),
            false,
        ),
        (
            "resourceNames: never a list",
            named.clone(),
            req("list", "", "configmaps", ""),
            false,
        ),
        (
            "resourceNames: never a create",
            named.clone(),
            req("create", "", "configmaps", ""),
            false,
        ),
        (
            "resourceNames: an update of it",
            named.clone(),
            req("update", "", "configmaps", "cm"),
            true,
        ),
        (
            "resourceNames: a list selecting it by name",
            named.clone(),
            selected("list", "configmaps", "metadata.name=cm"),
            true,
        ),
        (
            "resourceNames: a watch selecting it by name",
            named.clone(),
            selected(
                "watch",
                "configmaps",
                "metadata.name==cm,metadata.namespace=ns",
            ),
            true,
        ),
        (
            "resourceNames: a list selecting another",
            named.clone(),
            selected("list", "configmaps", "metadata.name=other"),
            false,
        ),
        (
            "resourceNames: a list not selecting by name",
            named.clone(),
            selected("list", "configmaps", "metadata.namespace=ns"),
            false,
        ),
        (
            "a resource rule is no URL rule",
            rule(&["get"], &["*"], &["*"], &[]),
            Attributes::non_resource("get", "/apis"),
            false,
        ),
        (
            "URL: exact",
            urls(&["get"], &["/healthz"]),
            Attributes::non_resource("get", "/healthz"),
            true,
        ),
        (
            "URL: exact is exact",
            urls(&["get"], &["/healthz"]),
            Attributes::non_resource("get", "/healthz/etcd"),
            false,
        ),
        (
            "URL: prefix*",
            urls(&["get"], &["/apis/*"]),
            Attributes::non_resource("get", "/apis/apps/v1"),
            true,
        ),
        (
            "URL: prefix* needs the prefix",
            urls(&["get"], &["/apis/*"]),
            Attributes::non_resource("get", "/apis"),
            false,
        ),
        (
            "URL: *",
            urls(&["*"], &["*"]),
            Attributes::non_resource("post", "/anything"),
            true,
        ),
        (
            "URL: verb",
            urls(&["get"], &["/version"]),
            Attributes::non_resource("post", "/version"),
            false,
        ),
        (
            "a URL rule is no resource rule",
            urls(&["*"], &["*"]),
            req("get", "", "pods", "p"),
            false,
        ),
    ];
    for (what, rule, attrs, allowed) in cases {
        assert_eq!(rule.allows(&attrs), allowed, "{what}: {rule:?} {attrs:?}");
    }
}

fn sa(ns: &str, name: &str) -> UserInfo {
    UserInfo::service_account(ns, name, "uid")
}

fn binding(
    kind: &str,
    ns: Option<&str>,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects})
}

fn server_with(objects: Vec<Value>) -> TestApiServer {
    let server = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
        authorization: true,
        ..Config::default()
    });
    for ns in ["a", "b"] {
        server
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
    }
    for o in objects {
        server.create(o).expect("fixture");
    }
    server
}

fn allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allow(_))
}

#[test]
fn bindings_scope_rules_as_rbac_does() {
    let reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]});
    let writer = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "writer", "namespace": "a"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]});
    let server = server_with(vec![
        reader,
        writer,
        // A ClusterRole bound in one namespace grants only there.
        binding(
            "RoleBinding",
            Some("a"),
            "read",
            "ClusterRole",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "sa"}]),
        ),
        // A Role bound in its namespace, to a group.
        binding(
            "RoleBinding",
            Some("a"),
            "write",
            "Role",
            "writer",
            json!([{"kind": "Group", "name": "system:serviceaccounts:b"}]),
        ),
        // A ClusterRole bound cluster-wide, to a user.
        binding(
            "ClusterRoleBinding",
            None,
            "read-all",
            "ClusterRole",
            "reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        binding(
            "RoleBinding",
            Some("b"),
            "dangling",
            "Role",
            "missing",
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]),
        ),
    ]);
    let alice = UserInfo {
        username: "alice".into(),
        groups: vec!["system:authenticated".into()],
        ..UserInfo::default()
    };
    let get_cm = |ns: &str| Attributes::resource("get", "", "configmaps", ns, "x");
    let list_all = Attributes::resource("list", "", "configmaps", "", "");
    let patch_deploy = |ns: &str| Attributes::resource("patch", "apps", "deployments", ns, "d");

    // The RoleBinding's ServiceAccount subject without namespace is the binding's namespace.
    let d = server.authorize(&sa("a", "sa"), &get_cm("a"));
    assert_eq!(
        d,
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "read/a" of ClusterRole "reader" to ServiceAccount "sa/a""#
                .into()
        )
    );
    assert!(
        !allowed(&server.authorize(&sa("a", "sa"), &get_cm("c"))),
        "another namespace"
    );
    assert!(
        !allowed(&server.authorize(&sa("a", "sa"), &list_all)),
        "cluster scope"
    );
    assert!(
        !allowed(&server.authorize(&sa("c", "sa"), &get_cm("a"))),
        "another account"
    );
    assert!(!allowed(
        &server.authorize(&sa("a", "sa"), &patch_deploy("a"))
    ));

    assert!(
        allowed(&server.authorize(&sa("b", "x"), &patch_deploy("a"))),
        "group"
    );
    assert!(
        !allowed(&server.authorize(&sa("b", "x"), &patch_deploy("b"))),
        "a Role is namespaced"
    );

    let d = server.authorize(&alice, &list_all);
    assert_eq!(
        d,
        Decision::Allow(
            r#"RBAC: allowed by ClusterRoleBinding "read-all" of ClusterRole "reader" to User "alice""#
                .into()
        )
    );
    assert!(allowed(&server.authorize(&alice, &get_cm("b"))));

    // A binding to a missing role is an error the denial reports.
    assert_eq!(
        server.authorize(&sa("a", "sa"), &get_cm("b")),
        Decision::Deny(r#"RBAC: role.rbac.authorization.k8s.io "missing" not found"#.into())
    );

    // system:masters needs no binding; the bootstrap policy allows discovery to the
    // authenticated, health and version to everyone.
    assert_eq!(
        server.authorize(&UserInfo::admin(), &patch_deploy("kube-system")),
        Decision::Allow(String::new())
    );
    let anonymous = UserInfo::anonymous();
    for (path, anyone) in [
        ("/healthz", true),
        ("/version", true),
        ("/readyz", true),
        ("/apis", false),
        ("/api/v1", false),
        ("/openapi/v3", false),
    ] {
        let a = Attributes::non_resource("get", path);
        assert_eq!(
            allowed(&server.authorize(&anonymous, &a)),
            anyone,
            "anonymous {path}"
        );
        assert!(
            allowed(&server.authorize(&sa("a", "sa"), &a)),
            "authenticated {path}"
        );
    }
    assert!(
        allowed(&server.authorize(
            &sa("a", "sa"),
            &Attributes::resource(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                ""
            )
        )),
        "system:basic-user"
    );
}

fn status(e: kube::Error) -> (u16, String, Value) {
    let s = common::api_error(e);
    (s.code, s.message, json!(s.reason))
}

#[tokio::test]
async fn denials_are_kube_apiservers_403_and_401() {
    let server = server_with(vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "a"}}),
    ]);
    let token = server.service_account_token("a", "sa").expect("token");
    let client = server.client_with_token("test", &token);
    let user = "system:serviceaccount:a:sa";
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "a");
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    let cases = [
        (
            deployments
                .patch("x", &PatchParams::default(), &patch)
                .await
                .map(|_| ()),
            format!(
                r#"deployments.apps "x" is forbidden: User "{user}" cannot patch resource "deployments" in API group "apps" in the namespace "a""#
            ),
        ),
        (
            deployments
                .patch_status("x", &PatchParams::default(), &patch)
                .await
                .map(|_| ()),
            format!(
                r#"deployments.apps "x" is forbidden: User "{user}" cannot patch resource "deployments/status" in API group "apps" in the namespace "a""#
            ),
        ),
        (
            Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "a")
                .list(&ListParams::default())
                .await
                .map(|_| ()),
            format!(
                r#"configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API group "" in the namespace "a""#
            ),
        ),
        (
            Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map(|_| ()),
            format!(
                r#"configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API group "" at the cluster scope"#
            ),
        ),
        (
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .get("b")
                .await
                .map(|_| ()),
            format!(
                r#"namespaces "b" is forbidden: User "{user}" cannot get resource "namespaces" in API group "" in the namespace "b""#
            ),
        ),
        (
            Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
                .get("n")
                .await
                .map(|_| ()),
            format!(
                r#"nodes "n" is forbidden: User "{user}" cannot get resource "nodes" in API group "" at the cluster scope"#
            ),
        ),
    ];
    for (result, message) in cases {
        let (code, got, reason) = status(result.expect_err(&message));
        assert_eq!(
            (code, got.as_str(), reason),
            (403, message.as_str(), json!("Forbidden"))
        );
    }
    let log = server.requests();
    let last = log.last().expect("logged");
    assert_eq!(
        (last.code, last.user.as_str()),
        (403, user),
        "denials are logged"
    );

    // Non-resource URLs: discovery needs authentication, /version does not.
    let anonymous = kube::Client::new(server.service().with_token(None), "default");
    let get = |path: &str| http::Request::get(path).body(Vec::new()).expect("request");
    let (code, message, _) = status(
        anonymous
            .request_text(get("/apis"))
            .await
            .expect_err("anonymous discovery"),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            r#"forbidden: User "system:anonymous" cannot get path "/apis""#
        )
    );
    anonymous
        .request_text(get("/version"))
        .await
        .expect("anyone reads /version");
    client
        .request_text(get("/apis"))
        .await
        .expect("the authenticated discover");
    client.apiserver_version().await.expect("version");

    // An unknown token, or that of an account deleted since, is a 401.
    let stranger = server.client_with_token("test", "not-a-token");
    let (code, message, reason) = status(
        stranger
            .request_text(get("/version"))
            .await
            .expect_err("401"),
    );
    assert_eq!(
        (code, message.as_str(), reason),
        (401, "Unauthorized", json!("Unauthorized"))
    );
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(server.client(), "a")
        .delete("sa", &Default::default())
        .await
        .expect("delete the account");
    let (code, ..) = status(
        client
            .request_text(get("/version"))
            .await
            .expect_err("revoked"),
    );
    assert_eq!(code, 401);

    // Authorization off: everything is allowed, whoever asks.
    server.set_authorization(false);
    let nobody = server.client_with_token("test", "not-a-token");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::all(nobody)
        .list(&ListParams::default())
        .await
        .expect("allowed when authorization is off");
}

/// kube-rs clients ask for tokens with the TokenRequest subresource too.
#[tokio::test]
async fn token_requests_issue_working_tokens() {
    let server = server_with(vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "a"}}),
    ]);
    let admin = server.client();
    let request = http::Request::post("/api/v1/namespaces/a/serviceaccounts/sa/token")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600}}),
            )
            .expect("json"),
        )
        .expect("request");
    let answer: Value =
        serde_json::from_str(&admin.request_text(request).await.expect("token")).expect("json");
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 600);
    let token = answer["status"]["token"].as_str().expect("a token");
    let review = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
            )
            .expect("json"),
        )
        .expect("request");
    let me: Value = serde_json::from_str(
        &server
            .client_with_token("test", token)
            .request_text(review)
            .await
            .expect("whoami"),
    )
    .expect("json");
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:a:sa"
    );
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:a",
            "system:authenticated"
        ])
    );

    // Without `create serviceaccounts/token`, a ServiceAccount cannot mint tokens.
    let request = http::Request::post("/api/v1/namespaces/a/serviceaccounts/sa/token")
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .expect("request");
    let (code, message, _) = status(
        server
            .client_with_token("test", token)
            .request_text(request)
            .await
            .expect_err("forbidden"),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            r#"serviceaccounts "sa" is forbidden: User "system:serviceaccount:a:sa" cannot create resource "serviceaccounts/token" in API group "" in the namespace "a""#
        )
    );
}

/// kubectl from `make tools` (1.37) and the system's (1.32), if installed.
fn kubectls() -> Vec<PathBuf> {
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl"),
        PathBuf::from("/usr/bin/kubectl"),
    ];
    let found: Vec<PathBuf> = candidates.into_iter().filter(|p| p.exists()).collect();
    if found.is_empty() {
        println!("skipped: kubectl not installed (make tools)");
    }
    found
}

async fn kubectl(bin: &Path, dir: &Path, kubeconfig: &str, args: &[&str]) -> (i32, String, String) {
    let out = common::within(
        &format!("kubectl {}", args.join(" ")),
        tokio::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", dir.join(kubeconfig))
            .env("HOME", dir)
            .arg("--cache-dir")
            .arg(dir.join(format!("cache-{kubeconfig}")))
            .output(),
    )
    .await
    .expect("kubectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_whoami_and_create_token() {
    for bin in kubectls() {
        let server = server_with(vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "a"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "deployer", "namespace": "a"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]}),
            binding(
                "RoleBinding",
                Some("a"),
                "deployer",
                "Role",
                "deployer",
                json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]),
            ),
        ]);
        let handle = server
            .serve_tls(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let dir = std::env::temp_dir().join(format!(
            "miracolix-e2e-authz-{}-{}",
            std::process::id(),
            bin.components().count()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_kubeconfig(
            &dir.join("admin"),
            &handle.url(),
            Some(miracolix_e2e::apiserver::authn::ADMIN_TOKEN),
        )
        .expect("kubeconfig");
        let run = |kubeconfig: &'static str, args: &'static [&'static str]| {
            let (bin, dir) = (bin.clone(), dir.clone());
            async move { kubectl(&bin, &dir, kubeconfig, args).await }
        };

        let (code, token, err) = run("admin", &["create", "token", "sa", "-n", "a"]).await;
        assert_eq!(code, 0, "{} create token: {err}", bin.display());
        write_kubeconfig(&dir.join("sa"), &handle.url(), Some(token.trim())).expect("kubeconfig");

        for (args, answer, exit) in [
            (
                &["auth", "can-i", "patch", "deployments", "-n", "a"][..],
                "yes",
                0,
            ),
            (
                &["auth", "can-i", "get", "deployments.apps/web", "-n", "a"][..],
                "yes",
                0,
            ),
            (
                &["auth", "can-i", "delete", "deployments", "-n", "a"][..],
                "no",
                1,
            ),
            (
                &["auth", "can-i", "patch", "deployments", "-n", "b"][..],
                "no",
                1,
            ),
            (
                &["auth", "can-i", "patch", "deployments", "--all-namespaces"][..],
                "no",
                1,
            ),
        ] {
            let (code, out, err) = kubectl(&bin, &dir, "sa", args).await;
            assert_eq!(
                (out.trim(), code),
                (answer, exit),
                "{} {args:?}: {err}",
                bin.display()
            );
        }
        let (code, out, _) = run("admin", &["auth", "can-i", "*", "*", "--all-namespaces"]).await;
        assert_eq!((out.trim(), code), ("yes", 0));

        let (code, out, err) = run("sa", &["auth", "whoami"]).await;
        assert_eq!(code, 0, "{err}");
        for expected in [
            "system:serviceaccount:a:sa",
            "system:serviceaccounts:a",
            "system:authenticated",
        ] {
            assert!(out.contains(expected), "{} whoami: {out}", bin.display());
        }
        let (code, out, err) = run("admin", &["auth", "whoami", "-o", "json"]).await;
        assert_eq!(code, 0, "{err}");
        let me: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(me["status"]["userInfo"]["username"], "kubernetes-admin");

        let (code, out, err) = run("sa", &["auth", "can-i", "--list", "-n", "a"]).await;
        assert_eq!(code, 0, "{err}");
        let line = out
            .lines()
            .find(|l| l.starts_with("deployments.apps"))
            .unwrap_or_else(|| panic!("{} can-i --list: {out}", bin.display()));
        assert!(line.contains("[get patch]"), "{line}");
        assert!(
            out.contains("selfsubjectaccessreviews.authorization.k8s.io"),
            "{out}"
        );
        assert!(out.contains("/apis/*"), "{out}");

        // What a denied kubectl user sees.
        let (code, _, err) = run("sa", &["get", "deployments", "-n", "a"]).await;
        assert_ne!(code, 0);
        assert!(
            err.contains(r#"Error from server (Forbidden): deployments.apps is forbidden: User "system:serviceaccount:a:sa" cannot list resource "deployments" in API group "apps" in the namespace "a""#),
            "{} get: {err}",
            bin.display()
        );
        handle.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The clusterrole-aggregation controller: an aggregated ClusterRole collects the rules of the
/// ClusterRoles its selectors match, and follows them when they change.
#[tokio::test]
async fn aggregated_cluster_roles_collect_their_pieces() {
    let piece = |name: &str, resource: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"example.org/aggregate-to-reader": "true"}},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]})
    };
    let server = server_with(vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"example.org/aggregate-to-reader": "true"}}]}}),
        piece("reader-configmaps", "configmaps"),
        binding(
            "ClusterRoleBinding",
            None,
            "reader",
            "ClusterRole",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]),
        ),
    ]);
    let get = |resource: &str| Attributes::resource("get", "", resource, "a", "x");
    assert!(allowed(
        &server.authorize(&sa("a", "sa"), &get("configmaps"))
    ));
    assert!(!allowed(
        &server.authorize(&sa("a", "sa"), &get("services"))
    ));
    let rules = server
        .object("rbac.authorization.k8s.io", "clusterroles", "", "reader")
        .expect("reader")["rules"]
        .clone();
    assert_eq!(
        rules,
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    );

    // A new piece, written through the API, is aggregated by the controller after the response.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(server.client());
    roles
        .create(
            &Default::default(),
            &serde_json::from_value(piece("reader-services", "services")).expect("role"),
        )
        .await
        .expect("create");
    common::within("the aggregated role follows", async {
        while !allowed(&server.authorize(&sa("a", "sa"), &get("services"))) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// kube-apiserver 1.33 (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`): a
/// server-side apply is a `patch`, and when it creates the object the creation is authorized
/// as `create` too. With `patch` alone an apply updates an existing ConfigMap but cannot create
/// one (403, `NewForbidden` with the RBAC authorizer's reason, which is empty: not the
/// authorization filter's "User ... cannot create"); with `create` as well it can.
#[tokio::test]
async fn an_apply_that_creates_needs_create_as_well_as_patch() {
    let server = server_with(vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "a"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "patcher", "namespace": "a"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}),
        binding(
            "RoleBinding",
            Some("a"),
            "patcher",
            "Role",
            "patcher",
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]),
        ),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "there", "namespace": "a"}}),
    ]);
    let token = server.service_account_token("a", "sa").expect("token");
    let client = server.client_with_token("test", &token);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "a");
    let apply = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let params = PatchParams::apply("test");
    cms.patch("there", &params, &Patch::Apply(apply("there")))
        .await
        .expect("an apply to an existing object needs patch only");
    let (code, message, _) = status(
        cms.patch("new", &params, &Patch::Apply(apply("new")))
            .await
            .expect_err("creating needs create"),
    );
    assert_eq!(code, 403);
    assert_eq!(message, r#"configmaps "new" is forbidden: "#);
    let record = server
        .requests()
        .into_iter()
        .find(|r| r.name == "new")
        .expect("recorded");
    assert!(record.apply_creates && record.verb == "patch", "{record:?}");
    server
        .create(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "creator", "namespace": "a"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}),
        )
        .expect("role");
    server
        .create(binding(
            "RoleBinding",
            Some("a"),
            "creator",
            "Role",
            "creator",
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]),
        ))
        .expect("binding");
    cms.patch("new", &params, &Patch::Apply(apply("new")))
        .await
        .expect("with create and patch the apply creates");
}
