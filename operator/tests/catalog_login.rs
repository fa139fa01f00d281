//! No service without a login on the ingress (docs/security.md, "A service without login on
//! the ingress"). Written as the attack: a browser on the internet asks the site's host for a
//! path; whatever the Ingress routes must answer with a login.

mod common;

use common::{Fixture, find, json};
use miracolix_operator::catalog::{self, CatalogError, Component, Exposure, login_proxy};
use miracolix_operator::controller::dizsite::status;
use serde_json::Value;

const INGRESS: &str = "ingress:\n  host: diz.example.org\n  tls:\n    secretName: diz-tls\n";
const OIDC: &str = "auth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: diz\n    clientSecretRef:\n      name: oidc\n      key: client-secret\n    cookieSecretRef:\n      name: login-proxy\n      key: cookie-secret\n";
/// DQA reading i2b2's database, and OHDSI: the components without a login of their own.
const ANALYTICS: &str = "components:\n  i2b2:\n    database:\n      external:\n        name: i2b2-db\n  ohdsi:\n    database:\n      external:\n        name: omop\n  dqa: {}\n";

fn ingress_paths(children: &[catalog::Child]) -> Vec<(String, String, String)> {
    children
        .iter()
        .filter(|c| c.resource.kind == "Ingress")
        .flat_map(|c| {
            json(c)["spec"]["rules"][0]["http"]["paths"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|p| {
            (
                p["path"].as_str().unwrap_or_default().to_string(),
                p["backend"]["service"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["backend"]["service"]["port"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Every component, alone, on a site with an ingress and no OIDC: whatever reaches the Ingress
/// has a login of its own. The registry is walked, so a new component cannot slip through.
#[test]
fn without_oidc_only_services_with_their_own_login_reach_the_ingress() {
    for c in Component::all() {
        let body = format!("{}{INGRESS}", catalog::minimal_components_yaml(c));
        let f = Fixture::spec_yaml(&body);
        let children = f.build();
        for (path, service, _) in ingress_paths(&children) {
            let part = Component::all()
                .flat_map(|c| c.parts())
                .find(|p| format!("test-{}", p.name) == service)
                .unwrap_or_else(|| panic!("{path} routes to an unknown service {service}"));
            assert!(
                matches!(part.exposure, Exposure::OwnLogin(_)),
                "{c}: {path} is published without OIDC, but {} has no login of its own",
                part.name
            );
        }
    }
}

#[test]
fn ohdsi_and_dqa_stay_inside_the_cluster_without_oidc_and_the_site_says_so() {
    let f = Fixture::spec_yaml(&format!("{ANALYTICS}{INGRESS}"));
    let children = f.build();
    let paths: Vec<String> = ingress_paths(&children)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    for hidden in ["/WebAPI", "/atlas", "/dqa"] {
        assert!(!paths.contains(&hidden.to_string()), "{hidden} published");
    }
    // No login proxy runs, and the ingress controller is admitted to none of them.
    let dqa = json(find(&children, "Deployment", "test-dqa"));
    assert_eq!(
        dqa["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    for policy in ["test-ohdsi-webapi", "test-ohdsi-atlas", "test-dqa"] {
        let p = json(find(&children, "NetworkPolicy", policy));
        assert!(
            !p.to_string().contains("ingress-nginx"),
            "{policy} admits the ingress controller: {p}"
        );
    }
    // The site learns it from a condition of its own, with every path named.
    let c = status::published_condition(&f.input());
    assert_eq!((c.status, c.reason.as_str()), ("False", "LoginRequired"));
    for p in ["/WebAPI", "/atlas", "/dqa", "spec.auth.oidc"] {
        assert!(c.message.contains(p), "{p} not in {:?}", c.message);
    }
}

#[test]
fn published_condition_is_true_when_nothing_waits_for_a_login() {
    let f = Fixture::spec_yaml(&format!("{ANALYTICS}{INGRESS}{OIDC}"));
    let c = status::published_condition(&f.input());
    assert_eq!((c.status, c.reason.as_str()), ("True", "Published"));
    assert!(c.message.contains("/dqa"), "{}", c.message);
    let no_ingress = Fixture::spec_yaml(ANALYTICS);
    let c = status::published_condition(&no_ingress.input());
    assert_eq!((c.status, c.reason.as_str()), ("True", "NoIngress"));
}

#[test]
fn with_oidc_dqa_is_published_only_through_the_login_proxy() {
    let f = Fixture::spec_yaml(&format!("{ANALYTICS}{INGRESS}{OIDC}"));
    let children = f.build();
    let paths = ingress_paths(&children);
    assert!(
        paths.contains(&("/dqa".into(), "test-dqa".into(), "login".into())),
        "{paths:?}"
    );
    assert!(paths.contains(&("/WebAPI".into(), "test-ohdsi-webapi".into(), "http".into())));
    assert!(paths.contains(&("/atlas".into(), "test-ohdsi-atlas".into(), "http".into())));

    // The Service carries the proxy's port next to the app's.
    let svc = json(find(&children, "Service", "test-dqa"));
    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["port"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(ports, [("http".into(), 3838), ("login".into(), 4180)]);

    // The ingress controller reaches the proxy's port only, never Shiny's.
    let policy = json(find(&children, "NetworkPolicy", "test-dqa"));
    let from_controller: Vec<&Value> = policy["spec"]["ingress"]
        .as_array()
        .expect("ingress rules")
        .iter()
        .filter(|r| r.to_string().contains("ingress-nginx"))
        .collect();
    assert_eq!(from_controller.len(), 1);
    assert_eq!(
        from_controller[0]["ports"],
        serde_json::json!([{"port": 4180, "protocol": "TCP"}])
    );
    // The proxy talks to the issuer.
    assert!(policy["spec"]["egress"].to_string().contains("443"));

    // The proxy: the release's image by digest, the site's issuer, secrets from Secrets,
    // callback under the published path, upstream on localhost.
    let dqa = json(find(&children, "Deployment", "test-dqa"));
    let containers = dqa["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let proxy = containers
        .iter()
        .find(|c| c["name"] == "login-proxy")
        .expect("login-proxy container");
    let image = &f.release.images[login_proxy::IMAGE];
    assert_eq!(
        proxy["image"],
        format!("{}@{}", image.repository, image.digest)
    );
    let env = |name: &str| -> Value {
        proxy["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(env("OAUTH2_PROXY_PROVIDER")["value"], "oidc");
    assert_eq!(
        env("OAUTH2_PROXY_OIDC_ISSUER_URL")["value"],
        "https://login.example.org/realms/diz"
    );
    assert_eq!(
        env("OAUTH2_PROXY_REDIRECT_URL")["value"],
        "https://diz.example.org/dqa/oauth2/callback"
    );
    assert_eq!(env("OAUTH2_PROXY_PROXY_PREFIX")["value"], "/dqa/oauth2");
    assert_eq!(
        env("OAUTH2_PROXY_UPSTREAMS")["value"],
        "http://127.0.0.1:3838/"
    );
    assert_eq!(env("OAUTH2_PROXY_HTTP_ADDRESS")["value"], "0.0.0.0:4180");
    assert_eq!(env("OAUTH2_PROXY_REVERSE_PROXY")["value"], "true");
    assert_eq!(env("OAUTH2_PROXY_SKIP_PROVIDER_BUTTON")["value"], "true");
    assert_eq!(
        env("OAUTH2_PROXY_COOKIE_SECRET")["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "login-proxy", "key": "cookie-secret"})
    );
    assert_eq!(
        env("OAUTH2_PROXY_CLIENT_SECRET")["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "oidc", "key": "client-secret"})
    );
    assert_eq!(proxy["readinessProbe"]["httpGet"]["path"], "/ping");
    assert_eq!(proxy["securityContext"]["runAsUser"], 65532);
    assert_eq!(proxy["securityContext"]["readOnlyRootFilesystem"], true);
}

#[test]
fn the_login_proxy_is_refused_without_its_secrets() {
    let oidc_without_secrets =
        "auth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: diz\n";
    let f = Fixture::spec_yaml(&format!(
        "components:\n  i2b2:\n    database:\n      external:\n        name: i2b2-db\n  dqa: {{}}\n{INGRESS}{oidc_without_secrets}"
    ));
    let errors = catalog::build(&f.input()).expect_err("refused");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        errors.iter().any(|e| matches!(
            e,
            CatalogError::UnsupportedCombination { detail, .. }
                if detail.contains("clientSecretRef") && detail.contains("cookieSecretRef")
        )),
        "{text:?}"
    );
}

#[test]
fn the_login_proxy_image_is_needed_only_where_it_runs() {
    let dqa =
        "components:\n  i2b2:\n    database:\n      external:\n        name: i2b2-db\n  dqa: {}\n";
    let without_proxy_image = |body: &str| {
        let mut f = Fixture::spec_yaml(body);
        f.release.images.remove(login_proxy::IMAGE);
        f
    };
    // Not published: the release need not carry the proxy.
    without_proxy_image(dqa).build();
    without_proxy_image(&format!("{dqa}{INGRESS}")).build();
    // Published: it must.
    let f = without_proxy_image(&format!("{dqa}{INGRESS}{OIDC}"));
    let errors = catalog::build(&f.input()).expect_err("refused");
    assert!(
        errors.iter().any(|e| matches!(
            e,
            CatalogError::ImageMissing { key, .. } if key == login_proxy::IMAGE
        )),
        "{errors:?}"
    );
}
