//! NetworkPolicies and the Ingress.

mod common;

use common::{Fixture, find, json};
use miracolix_operator::catalog::Child;
use miracolix_operator::controller::dizsite::status;
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
        "components:\n  blaze: {}\n  ohdsi:\n    database:\n      external:\n        name: omop\nnetworkPolicy:\n  ingressNamespaceLabels:\n    team: edge\ningress:\n  host: diz.example.org\n  tls:\n    secretName: my-cert\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\n    clientSecretRef: {name: oidc, key: secret}\n",
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
    // Blaze is published with OIDC too.
    assert!(from_controller("test-blaze"));

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
            ("/fhir", "test-blaze"),
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

/// A small evaluator of NetworkPolicy semantics (networking.k8s.io/v1), enough to ask "is this
/// connection admitted by the generated policies?" for pods and external addresses. What it
/// implements, as the Kubernetes documentation defines it:
/// - a pod is isolated for a direction when a policy in its namespace selects it and lists that
///   policy type; an isolated pod accepts only what some rule of a selecting policy allows;
/// - a peer with only `podSelector` means pods of the policy's namespace; with only
///   `namespaceSelector` every pod of the selected namespaces; with both, pods matching both;
///   `ipBlock` matches addresses (external ones here);
/// - a rule without `from`/`to` matches every peer, without `ports` every port.
mod netpol {
    use std::collections::BTreeMap;

    use serde_json::Value;

    pub type Labels = BTreeMap<String, String>;

    #[derive(Clone, Debug)]
    pub struct Pod {
        pub namespace: String,
        pub labels: Labels,
    }

    impl Pod {
        pub fn new(namespace: &str, labels: &[(&str, &str)]) -> Pod {
            Pod {
                namespace: namespace.to_string(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        }

        /// The label every namespace carries (kube-apiserver sets it).
        fn namespace_labels(&self) -> Labels {
            Labels::from([(
                "kubernetes.io/metadata.name".to_string(),
                self.namespace.clone(),
            )])
        }
    }

    /// A connection's other end.
    pub enum Peer<'a> {
        Pod(&'a Pod),
        Address(&'a str),
    }

    pub fn selects(selector: &Value, labels: &Labels) -> bool {
        let labels_ok = selector["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
        let expressions_ok = selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let have = labels.get(key).map(String::as_str);
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => have.is_some_and(|h| values.contains(&h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    other => panic!("unknown operator {other}"),
                }
            });
        labels_ok && expressions_ok
    }

    fn ipv4(s: &str) -> u32 {
        s.split('.')
            .map(|o| o.parse::<u32>().expect("IPv4 octet"))
            .fold(0, |a, o| (a << 8) | o)
    }

    fn in_cidr(address: &str, cidr: &str) -> bool {
        let (net, bits) = cidr.split_once('/').expect("CIDR");
        let bits: u32 = bits.parse().expect("prefix length");
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        ipv4(address) & mask == ipv4(net) & mask
    }

    fn peer_matches(peer: &Value, policy_namespace: &str, other: &Peer) -> bool {
        match other {
            Peer::Address(a) => peer["ipBlock"]["cidr"]
                .as_str()
                .is_some_and(|c| in_cidr(a, c)),
            Peer::Pod(p) => {
                if !peer["ipBlock"].is_null() {
                    // Pod addresses are in-cluster; the generated policies use ipBlock for
                    // external addresses only.
                    return false;
                }
                let namespace_ok = match &peer["namespaceSelector"] {
                    Value::Null => p.namespace == policy_namespace,
                    s => selects(s, &p.namespace_labels()),
                };
                let pod_ok = match &peer["podSelector"] {
                    Value::Null => true,
                    s => selects(s, &p.labels),
                };
                namespace_ok && pod_ok
            }
        }
    }

    fn port_matches(rule: &Value, port: i64) -> bool {
        match rule["ports"].as_array() {
            None => true,
            Some(ports) if ports.is_empty() => true,
            Some(ports) => ports.iter().any(|p| p["port"].as_i64() == Some(port)),
        }
    }

    /// Whether `pod`'s policies let traffic in (`Ingress`, from `other`) or out (`Egress`, to
    /// `other`) on `port`.
    pub fn allowed(
        policies: &[Value],
        pod: &Pod,
        direction: &str,
        other: &Peer,
        port: i64,
    ) -> bool {
        let (rules_key, peers_key) = match direction {
            "Ingress" => ("ingress", "from"),
            _ => ("egress", "to"),
        };
        let selecting: Vec<&Value> = policies
            .iter()
            .filter(|p| p["metadata"]["namespace"].as_str() == Some(pod.namespace.as_str()))
            .filter(|p| selects(&p["spec"]["podSelector"], &pod.labels))
            .filter(|p| {
                p["spec"]["policyTypes"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == direction))
            })
            .collect();
        if selecting.is_empty() {
            return true;
        }
        selecting.iter().any(|policy| {
            policy["spec"][rules_key]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| {
                    let peers_ok = match rule[peers_key].as_array() {
                        None => true,
                        Some(peers) if peers.is_empty() => true,
                        Some(peers) => peers
                            .iter()
                            .any(|peer| peer_matches(peer, &pod.namespace, other)),
                    };
                    peers_ok && port_matches(rule, port)
                })
        })
    }

    /// A connection from pod `from` to pod `to` on `port`: both ends' policies must allow it.
    pub fn connects(policies: &[Value], from: &Pod, to: &Pod, port: i64) -> bool {
        allowed(policies, from, "Egress", &Peer::Pod(to), port)
            && allowed(policies, to, "Ingress", &Peer::Pod(from), port)
    }
}

use netpol::{Peer, Pod, allowed, connects};

fn policies(children: &[Child]) -> Vec<Value> {
    children
        .iter()
        .filter(|c| c.resource.kind == "NetworkPolicy")
        .map(json)
        .collect()
}

/// A pod of the site, as the catalogue labels it.
fn site_pod(component: &str, part: &str) -> Pod {
    Pod::new(
        "diz-test",
        &[
            ("diz.miracum.org/site", "test"),
            ("diz.miracum.org/component", component),
            ("app.kubernetes.io/name", part),
        ],
    )
}

const ACCESS: (&str, &str) = ("diz.miracum.org/access-fhir-gateway", "true");

#[test]
fn a_pod_in_another_namespace_with_the_access_label_is_not_admitted() {
    let p = policies(&Fixture::spec_yaml(GATEWAY_SITE).build());
    let gateway = site_pod("fhir-gateway", "fhir-gateway");
    let attacker = Pod::new("tenant-b", &[ACCESS]);
    assert!(!connects(&p, &attacker, &gateway, 8080));
    // The same label in the site's own namespace is the documented way in.
    let etl = Pod::new("diz-test", &[ACCESS]);
    assert!(connects(&p, &etl, &gateway, 8080));
    // And only on the entry point's port.
    assert!(!connects(&p, &etl, &gateway, 8081));
}

#[test]
fn access_labels_count_only_in_the_namespaces_the_site_lists() {
    let body = format!(
        "{GATEWAY_SITE}networkPolicy:\n  clientNamespaces:\n    - matchLabels:\n        kubernetes.io/metadata.name: hospital-etl\n"
    );
    let p = policies(&Fixture::spec_yaml(&body).build());
    let gateway = site_pod("fhir-gateway", "fhir-gateway");
    assert!(connects(
        &p,
        &Pod::new("hospital-etl", &[ACCESS]),
        &gateway,
        8080
    ));
    // In the listed namespace without the label: no.
    assert!(!connects(
        &p,
        &Pod::new("hospital-etl", &[]),
        &gateway,
        8080
    ));
    // With the label anywhere else: no.
    for ns in ["tenant-b", "kube-system", "diz-other"] {
        assert!(
            !connects(&p, &Pod::new(ns, &[ACCESS]), &gateway, 8080),
            "{ns}"
        );
    }
}

/// A spec that bypassed the CRD's validation (the rule refuses empty selectors) still does not
/// turn an empty selector into "every namespace".
#[test]
fn an_empty_client_namespace_selector_admits_no_other_namespace() {
    let body = format!("{GATEWAY_SITE}networkPolicy:\n  clientNamespaces:\n    - {{}}\n");
    let p = policies(&Fixture::spec_yaml(&body).build());
    let gateway = site_pod("fhir-gateway", "fhir-gateway");
    assert!(!connects(
        &p,
        &Pod::new("tenant-b", &[ACCESS]),
        &gateway,
        8080
    ));
}

#[test]
fn a_pod_elsewhere_cannot_reach_a_cloudnativepg_database() {
    let p = policies(&Fixture::spec_yaml(GATEWAY_SITE).build());
    // A database pod of VFPS's cluster, as CloudNativePG labels it.
    let db = Pod::new(
        "diz-test",
        &[
            ("cnpg.io/cluster", "test-vfps-db"),
            ("cnpg.io/instanceRole", "primary"),
        ],
    );
    let from = |pod: &Pod, port| allowed(&p, &db, "Ingress", &Peer::Pod(pod), port);
    // Attackers: a pod in another namespace, an unlabelled pod next to the site, another
    // component of the site, a pod that copies CloudNativePG's operator label outside its
    // namespace.
    assert!(!from(&Pod::new("tenant-b", &[]), 5432));
    assert!(!from(&Pod::new("diz-test", &[]), 5432));
    assert!(!from(&site_pod("fhir-gateway", "fhir-gateway"), 5432));
    assert!(!from(
        &Pod::new("tenant-b", &[("app.kubernetes.io/name", "cloudnative-pg")]),
        8000
    ));
    // Its own component, end to end (VFPS's egress allows it too).
    assert!(connects(&p, &site_pod("vfps", "vfps"), &db, 5432));
    assert!(!from(&site_pod("vfps", "vfps"), 8000));
    // CloudNativePG's operator on the instance manager and PostgreSQL, as its docs demand.
    let operator = Pod::new(
        "cnpg-system",
        &[("app.kubernetes.io/name", "cloudnative-pg")],
    );
    assert!(from(&operator, 8000));
    assert!(from(&operator, 5432));
    // Replication between the cluster's instances.
    let replica = Pod::new("diz-test", &[("cnpg.io/cluster", "test-vfps-db")]);
    assert!(from(&replica, 5432));
    // Another site's database in the same namespace is not a replica.
    let other = Pod::new("diz-test", &[("cnpg.io/cluster", "other-vfps-db")]);
    assert!(!from(&other, 5432));
}

#[test]
fn a_component_reading_another_components_database_is_admitted_to_it() {
    let p = policies(
        &Fixture::spec_yaml(
            "components:\n  i2b2:\n    database:\n      cloudNativePG: {}\n  dqa: {}\n",
        )
        .build(),
    );
    let db = Pod::new("diz-test", &[("cnpg.io/cluster", "test-i2b2-db")]);
    assert!(connects(&p, &site_pod("dqa", "dqa"), &db, 5432));
    assert!(connects(
        &p,
        &site_pod("i2b2", "i2b2-core-server"),
        &db,
        5432
    ));
    // The i2b2 web client never talks to the database.
    assert!(!connects(
        &p,
        &site_pod("i2b2", "i2b2-webclient"),
        &db,
        5432
    ));
}

const OIDC_AND_EXTERNAL_DB: &str = "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  vfps:\n    database:\n      external:\n        name: vfps-db\n  flare: {}\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\n";

#[test]
fn egress_leaves_the_cluster_only_to_the_cidrs_the_site_lists() {
    let body = format!(
        "{OIDC_AND_EXTERNAL_DB}networkPolicy:\n  oidcIssuerCIDRs: [10.40.8.20/32]\n  externalDatabaseCIDRs: [10.40.12.0/24]\n"
    );
    let f = Fixture::spec_yaml(&body);
    let p = policies(&f.build());
    let blaze = site_pod("blaze", "blaze");
    let vfps = site_pod("vfps", "vfps");
    let out =
        |pod: &Pod, address: &str, port| allowed(&p, pod, "Egress", &Peer::Address(address), port);
    assert!(out(&blaze, "10.40.8.20", 443));
    // A pod taken over cannot send data anywhere else on 443.
    assert!(!out(&blaze, "203.0.113.7", 443));
    assert!(!out(&blaze, "10.40.8.21", 443));
    assert!(out(&vfps, "10.40.12.9", 5432));
    assert!(!out(&vfps, "203.0.113.7", 5432));
    // VFPS does not talk to the issuer.
    assert!(!out(&vfps, "10.40.8.20", 443));
    let c = status::network_condition(&f.input());
    assert_eq!((c.status, c.reason.as_str()), ("True", "Restricted"));
}

#[test]
fn unrestricted_egress_is_reported_until_the_site_lists_cidrs() {
    let f = Fixture::spec_yaml(OIDC_AND_EXTERNAL_DB);
    let p = policies(&f.build());
    assert!(allowed(
        &p,
        &site_pod("blaze", "blaze"),
        "Egress",
        &Peer::Address("203.0.113.7"),
        443
    ));
    let c = status::network_condition(&f.input());
    assert_eq!(
        (c.status, c.reason.as_str()),
        ("False", "EgressUnrestricted")
    );
    for named in ["test-blaze", "test-flare", "test-vfps", "oidcIssuerCIDRs"] {
        assert!(c.message.contains(named), "{named} not in {}", c.message);
    }
    let off = Fixture::spec_yaml("components:\n  blaze: {}\nnetworkPolicy:\n  enabled: false\n");
    let c = status::network_condition(&off.input());
    assert_eq!(
        (c.status, c.reason.as_str()),
        ("False", "NetworkPoliciesDisabled")
    );
}
