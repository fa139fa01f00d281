//! NetworkPolicies: deny everything for the site's pods, then allow exactly the edges the
//! catalogue knows about.
//!
//! Not covered: Prometheus scraping of the metrics ports (add a policy allowing your monitoring
//! namespace) and CloudNativePG's pods, which do not carry the site label (see
//! [`super::database::cnpg_cluster`]).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::database::{self, Target};
use super::{
    Access, COMPONENT_LABEL, CatalogError, Child, Component, Part, SITE_LABEL, SiteInput,
    enabled_components, ingress, site_meta,
};

/// Default namespace labels of the ingress controller.
pub const DEFAULT_INGRESS_NAMESPACE: (&str, &str) =
    ("kubernetes.io/metadata.name", "ingress-nginx");

/// Prefix of the opt-in label for clients the operator does not deploy: a pod in any namespace
/// labelled `diz.miracum.org/access-<part>: "true"` may reach that part's first port.
pub const ACCESS_LABEL_PREFIX: &str = "diz.miracum.org/access-";

/// `diz.miracum.org/access-<part>`.
pub fn access_label(part: &str) -> String {
    format!("{ACCESS_LABEL_PREFIX}{part}")
}

pub fn enabled(site: &SiteInput) -> bool {
    site.spec.network_policy.as_ref().is_none_or(|n| n.enabled)
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

fn part_selector(site: &SiteInput, component: Component, part: &str) -> LabelSelector {
    selector(&[
        (SITE_LABEL, site.name),
        (COMPONENT_LABEL, component.name()),
        ("app.kubernetes.io/name", part),
    ])
}

fn pod_peer(s: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(s),
        ..NetworkPolicyPeer::default()
    }
}

fn tcp(ports: &[i32]) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(*p)),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        })
        .collect()
}

pub(crate) fn build(site: &SiteInput) -> Result<Vec<Child>, CatalogError> {
    if !enabled(site) {
        return Ok(Vec::new());
    }
    let mut children = vec![Child::from_typed(
        NetworkPolicy {
            metadata: site_meta(
                site,
                format!("{}-default-deny", site.name),
                "network-policy",
            ),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector(&[(SITE_LABEL, site.name)])),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ..NetworkPolicySpec::default()
            }),
        },
        None,
    )?];
    for component in enabled_components(site.spec) {
        for part in component.parts() {
            children.push(Child::from_typed(
                part_policy(site, component, part),
                Some(component),
            )?);
        }
    }
    Ok(children)
}

fn part_policy(site: &SiteInput, component: Component, part: &'static Part) -> NetworkPolicy {
    let mut ingress_rules = Vec::new();
    let mut egress_rules = vec![dns_rule()];

    // Callers: components whose chosen dependency is this part.
    for caller in enabled_components(site.spec) {
        for dep in caller.dependencies(site.spec) {
            if let (
                Some(chosen),
                Access::Service {
                    part: target,
                    ports,
                },
            ) = (dep.chosen, dep.access)
                && chosen == component
                && target == part.name
            {
                ingress_rules.push(NetworkPolicyIngressRule {
                    from: Some(vec![pod_peer(selector(&[
                        (SITE_LABEL, site.name),
                        (COMPONENT_LABEL, caller.name()),
                    ]))]),
                    ports: Some(tcp(ports)),
                });
            }
        }
    }
    // Calls between parts of the same component ([`Part::calls`]).
    for caller in component.parts() {
        for (to, ports) in caller.calls {
            if *to == part.name {
                ingress_rules.push(NetworkPolicyIngressRule {
                    from: Some(vec![pod_peer(part_selector(site, component, caller.name))]),
                    ports: Some(tcp(ports)),
                });
            }
        }
    }
    for (to, ports) in part.calls {
        egress_rules.push(NetworkPolicyEgressRule {
            to: Some(vec![pod_peer(part_selector(site, component, to))]),
            ports: Some(tcp(ports)),
        });
    }
    let first_port: Vec<i32> = part.ports.iter().take(1).map(|p| p.port).collect();
    if part.entry_point {
        ingress_rules.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        access_label(part.name),
                        "true".to_string(),
                    )])),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(tcp(&first_port)),
        });
    }
    if ingress::is_exposed(site, part) {
        let labels = site
            .spec
            .network_policy
            .as_ref()
            .map(|n| n.ingress_namespace_labels.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| {
                BTreeMap::from([(
                    DEFAULT_INGRESS_NAMESPACE.0.to_string(),
                    DEFAULT_INGRESS_NAMESPACE.1.to_string(),
                )])
            });
        ingress_rules.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(labels),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(tcp(&part
                .ports
                .iter()
                .take(1)
                .map(|p| p.port)
                .collect::<Vec<_>>())),
        });
    }

    // What this part calls. Dependencies hold for the component's primary part only; the
    // other parts (Atlas, Achilles, the i2b2 web client) have none.
    let primary = component
        .parts()
        .first()
        .is_some_and(|p| p.name == part.name);
    if primary {
        for dep in component.dependencies(site.spec) {
            let Some(chosen) = dep.chosen else { continue };
            match dep.access {
                Access::Service {
                    part: target,
                    ports,
                } => {
                    egress_rules.push(NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(part_selector(site, chosen, target))]),
                        ports: Some(tcp(ports)),
                    });
                }
                Access::Database => {
                    if let Some(rule) = chosen
                        .spec(&site.spec.components)
                        .and_then(|s| database::wiring(site, chosen, s))
                        .map(|w| database_rule(&w.target))
                    {
                        egress_rules.push(rule);
                    }
                }
            }
        }
    }
    if part.uses_database
        && let Some(rule) = component
            .spec(&site.spec.components)
            .and_then(|s| database::wiring(site, component, s))
            .map(|w| database_rule(&w.target))
    {
        egress_rules.push(rule);
    }
    if part.uses_oidc && site.spec.auth.as_ref().is_some_and(|a| a.oidc.is_some()) {
        // The issuer is outside the cluster at an unknown address: HTTPS to anywhere.
        egress_rules.push(NetworkPolicyEgressRule {
            to: None,
            ports: Some(tcp(&[443])),
        });
    }

    NetworkPolicy {
        metadata: {
            let mut m = site_meta(
                site,
                format!("{}-{}", site.name, part.name),
                "network-policy",
            );
            if let Some(l) = m.labels.as_mut() {
                l.insert(COMPONENT_LABEL.to_string(), component.name().to_string());
            }
            m
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(part_selector(site, component, part.name)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress_rules),
            egress: Some(egress_rules),
        }),
    }
}

fn dns_rule() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        // kube-dns/CoreDNS carries `k8s-app: kube-dns` in every common distribution; the
        // namespace is left open because not all of them run it in kube-system.
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![
            NetworkPolicyPort {
                port: Some(IntOrString::Int(53)),
                protocol: Some("UDP".into()),
                ..NetworkPolicyPort::default()
            },
            NetworkPolicyPort {
                port: Some(IntOrString::Int(53)),
                protocol: Some("TCP".into()),
                ..NetworkPolicyPort::default()
            },
        ]),
    }
}

fn database_rule(target: &Target) -> NetworkPolicyEgressRule {
    match target {
        Target::CloudNativePg { cluster } => NetworkPolicyEgressRule {
            to: Some(vec![pod_peer(selector(&[(
                database::CNPG_CLUSTER_LABEL,
                cluster.as_str(),
            )]))]),
            ports: Some(tcp(&[database::POSTGRES_PORT])),
        },
        // The external server's address is in a Secret the catalogue never reads (and may
        // resolve to any IP), so only the port is pinned: the engine's default port, since the
        // Secret's port is unknown too.
        Target::External { engine } => NetworkPolicyEgressRule {
            to: None,
            ports: Some(tcp(&[engine.default_port()])),
        },
    }
}
