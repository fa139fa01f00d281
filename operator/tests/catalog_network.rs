//! NetworkPolicies and the Ingress.

mod common;

use common::{Fixture, find, json};
use miracolix_operator::catalog::Child;
use serde_json::{Value, json};

fn policy(children: &[Child], name: &str) -> Value {
    json(find(children, "NetworkPolicy", name))
}

const GATEWAY_SITE: &str = "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  vfps:\n    database:\n      cloudNativePG: {}\n  fhirGateway:\n    database:\n      external:\n        name: gw-db\n  flare: {}\n";

#[test]
fn default_deny_covers_every_site_pod() {
    let children = Fixture::spec_yaml(GATEWAY_SITE).build();
    let p = policy(&children, "test-default-deny");
    assert_eq!(
        p["spec"]["podSelector"]["matchLabels"],
        json!({"diz.miracum.org/site": "test"})
    );
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(p["spec"]["ingress"].is_null() && p["spec"]["egress"].is_null());
}

#[test]
fn ingress_only_from_dependents_on_their_ports() {
    let children = Fixture::spec_yaml(GATEWAY_SITE).build();
    let vfps = policy(&children, "test-vfps");
    let rules = vfps["spec"]["ingress"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["from"][0]["podSelector"]["matchLabels"]["diz.miracum.org/component"],
        "fhir-pseudonymizer"
    );
    assert_eq!(
        rules[0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}, {"port": 8081, "protocol": "TCP"}])
    );

    let blaze = policy(&children, "test-blaze");
    let callers: Vec<_> = blaze["spec"]["ingress"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| {
            r["from"][0]["podSelector"]["matchLabels"]["diz.miracum.org/component"].as_str()
        })
        .collect();
    assert_eq!(callers, ["fhir-gateway", "flare"]);
}

#[test]
fn egress_to_dependencies_dns_and_databases() {
    let children = Fixture::spec_yaml(GATEWAY_SITE).build();
    let gw = policy(&children, "test-fhir-gateway");
    let egress = gw["spec"]["egress"].as_array().expect("egress");
    assert_eq!(
        egress[0]["ports"],
        json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    );
    let targets: Vec<_> = egress
        .iter()
        .filter_map(|r| r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str())
        .collect();
    assert_eq!(targets, ["fhir-pseudonymizer", "blaze"]);
    // External database: port only, to any address.
    assert!(
        egress
            .iter()
            .any(|r| r["to"].is_null() && r["ports"] == json!([{"port": 5432, "protocol": "TCP"}]))
    );

    let vfps = policy(&children, "test-vfps");
    assert!(
        vfps["spec"]["egress"]
            .as_array()
            .expect("egress")
            .iter()
            .any(|r| {
                r["to"][0]["podSelector"]["matchLabels"]["cnpg.io/cluster"] == "test-vfps-db"
                    && r["ports"][0]["port"] == 5432
            })
    );
    // No OIDC configured: no 443 anywhere.
    assert!(
        !serde_json::to_string(&children.iter().map(json).collect::<Vec<_>>())
            .expect("json")
            .contains("\"port\":443")
    );
}

#[test]
fn oidc_issuer_is_reachable_for_oidc_clients_only() {
    // Without the gateway, which cannot write to Blaze under OIDC (refused, see catalog_errors).
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  vfps:\n    database:\n      cloudNativePG: {}\n  flare: {}\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\n",
    )
    .build();
    let has_443 = |name: &str| {
        policy(&children, name)["spec"]["egress"]
            .as_array()
            .expect("egress")
            .iter()
            .any(|r| r["ports"] == json!([{"port": 443, "protocol": "TCP"}]))
    };
    assert!(has_443("test-blaze"));
    assert!(has_443("test-flare"));
    assert!(!has_443("test-vfps"));
    assert!(!has_443("test-fhir-pseudonymizer"));
}

#[test]
fn ingress_controller_reaches_exposed_parts_only() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  ohdsi:\n    database:\n      external:\n        name: omop\nnetworkPolicy:\n  ingressNamespaceLabels:\n    team: edge\ningress:\n  host: diz.example.org\n  tls:\n    secretName: my-cert\n",
    )
    .build();
    let from_controller = |name: &str| {
        policy(&children, name)["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .any(|r| r["from"][0]["namespaceSelector"]["matchLabels"] == json!({"team": "edge"}))
    };
    assert!(from_controller("test-ohdsi-webapi"));
    assert!(from_controller("test-ohdsi-atlas"));
    assert!(!from_controller("test-ohdsi-achilles"));
    // Blaze without OIDC is never exposed.
    assert!(!from_controller("test-blaze"));

    let ing = json(find(&children, "Ingress", "test"));
    let paths: Vec<_> = ing["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap_or(""),
                p["backend"]["service"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            ("/WebAPI", "test-ohdsi-webapi"),
            ("/atlas", "test-ohdsi-atlas")
        ]
    );
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "my-cert");
    assert!(ing["metadata"]["annotations"].is_null());
}

#[test]
fn ingress_uses_cert_manager_when_an_issuer_is_named() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\ningress:\n  host: diz.example.org\n  tls:\n    issuerRef:\n      name: internal-ca\n      kind: Issuer\n",
    )
    .build();
    let ing = json(find(&children, "Ingress", "test"));
    assert_eq!(
        ing["metadata"]["annotations"],
        json!({"cert-manager.io/issuer": "internal-ca"})
    );
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "test-tls");
    assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["path"], "/fhir");
    // Exposed Blaze still links to its Service: ingress clients get public links from the
    // forwarded headers, in-cluster clients stay in the cluster.
    let cm = json(find(&children, "ConfigMap", "test-blaze"));
    assert_eq!(cm["data"]["BASE_URL"], "http://test-blaze:8080");
}

#[test]
fn pseudonymisation_services_are_never_exposed() {
    let children = Fixture::example("20-site-erlangen.yaml").build();
    let ing = json(find(&children, "Ingress", "erlangen"));
    let text = ing.to_string();
    for hidden in [
        "pseudonymizer",
        "vfps",
        "gpas",
        "gics",
        "mainzelliste",
        "fhir-gateway",
    ] {
        assert!(!text.contains(hidden), "{hidden} exposed");
    }
}

#[test]
fn no_ingress_and_no_policies_when_switched_off() {
    let children =
        Fixture::spec_yaml("components:\n  blaze: {}\nnetworkPolicy:\n  enabled: false\n").build();
    assert!(
        children
            .iter()
            .all(|c| c.resource.kind != "NetworkPolicy" && c.resource.kind != "Ingress")
    );
}

#[test]
fn external_clients_opt_in_by_label() {
    let children = Fixture::spec_yaml(GATEWAY_SITE).build();
    let gw = policy(&children, "test-fhir-gateway");
    assert!(
        gw["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .any(|r| {
                r["from"][0]["podSelector"]["matchLabels"]
                    == json!({"diz.miracum.org/access-fhir-gateway": "true"})
            })
    );
    let vfps = policy(&children, "test-vfps").to_string();
    assert!(
        !vfps.contains("diz.miracum.org/access-"),
        "VFPS has no external clients"
    );
}
