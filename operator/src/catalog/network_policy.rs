//! NetworkPolicies: deny everything for the site's pods, then allow exactly the edges the
//! catalogue knows about.
//!
//! Who may reach what (the attacks they stop are tested in `operator/tests/catalog_network.rs`
//! by evaluating the generated objects):
//! - the site's pods: default deny in and out (`<site>-default-deny`); per part, ingress from the
//!   components that call it, from its own component's other parts, from the ingress controller
//!   when it is published (on the login proxy's port when it runs one), and from outside callers
//!   that carry the access label `diz.miracum.org/access-<part>: "true"` — only in the site's own
//!   namespace and in the namespaces `spec.networkPolicy.clientNamespaces` selects (namespace and
//!   pod selector in the same peer, so both must match);
//! - CloudNativePG database pods (which do not carry the site label, see
//!   [`super::database::cnpg_cluster`]): their own policy `<site>-<component>-db` denies ingress
//!   except from the parts that use the database, the cluster's own instances (replication) and
//!   CloudNativePG's operator (ports 8000 and 5432, as its documentation demands:
//!   <https://cloudnative-pg.io/documentation/current/networking/>). Their egress stays open: the
//!   instance manager in every database pod talks to the Kubernetes API server, whose address
//!   differs per cluster, and backups go to object stores the site chooses;
//! - egress to what is outside the cluster (the OIDC issuer on 443, external databases on the
//!   engine's port) goes to the CIDRs the site lists (`oidcIssuerCIDRs`, `externalDatabaseCIDRs`),
//!   else to any address, which [`open_egress`] reports for the `NetworkRestricted` condition.
//!
//! Not covered: Prometheus scraping of the metrics ports (add a policy allowing your monitoring
//! namespace).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::database::{self, Target};
use super::{
    Access, COMPONENT_LABEL, CatalogError, Child, Component, DatabaseNeed, Part, SITE_LABEL,
    SiteInput, enabled_components, ingress, login_proxy, site_meta,
};

/// Default namespace labels of the ingress controller.
pub const DEFAULT_INGRESS_NAMESPACE: (&str, &str) =
    ("kubernetes.io/metadata.name", "ingress-nginx");

/// Default namespace labels of CloudNativePG's operator: the namespace its manifests and chart
/// install into (<https://cloudnative-pg.io/documentation/current/networking/>).
pub const DEFAULT_CNPG_NAMESPACE: (&str, &str) = ("kubernetes.io/metadata.name", "cnpg-system");

/// The label of CloudNativePG's operator pod, as in its documented example policy
/// (<https://cloudnative-pg.io/documentation/1.18/samples/networkpolicy-example.yaml>).
pub const CNPG_OPERATOR_POD: (&str, &str) = ("app.kubernetes.io/name", "cloudnative-pg");

/// The instance manager's port on every database pod: the operator queries it for the
/// instance's status, and instances call each other's during failover and backups.
pub const CNPG_INSTANCE_MANAGER_PORT: i32 = 8000;

/// Prefix of the opt-in label for clients the operator does not deploy: a pod labelled
/// `diz.miracum.org/access-<part>: "true"` in the site's namespace, or in a namespace
/// `spec.networkPolicy.clientNamespaces` selects, may reach that part's first port.
pub const ACCESS_LABEL_PREFIX: &str = "diz.miracum.org/access-";

/// `diz.miracum.org/access-<part>`.
pub fn access_label(part: &str) -> String {
    format!("{ACCESS_LABEL_PREFIX}{part}")
}

pub fn enabled(site: &SiteInput) -> bool {
    site.spec.network_policy.as_ref().is_none_or(|n| n.enabled)
}

pub(crate) fn selector(labels: &[(&str, &str)]) -> LabelSelector {
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
    ports.iter().map(|p| tcp_port(*p)).collect()
}

/// One TCP port of a NetworkPolicy rule.
pub(crate) fn tcp_port(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
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
    for component in enabled_components(site) {
        for part in component.parts() {
            children.push(Child::from_typed(
                part_policy(site, component, part),
                Some(component),
            )?);
        }
        if let Some(policy) = database_policy(site, component) {
            children.push(Child::from_typed(policy, Some(component))?);
        }
    }
    Ok(children)
}

pub(super) fn spec_of<'a>(site: &SiteInput<'a>) -> Option<&'a crate::api::NetworkPolicySpec> {
    site.spec.network_policy.as_ref()
}

/// `to` of an egress rule towards something outside the cluster: the CIDRs the site lists, or
/// any address (`None`) when it lists none.
pub(super) fn external_peers(cidrs: &[String]) -> Option<Vec<NetworkPolicyPeer>> {
    (!cidrs.is_empty()).then(|| {
        cidrs
            .iter()
            .map(|c| NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: c.clone(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            })
            .collect()
    })
}

/// Who may carry an access label: pods of the site's own namespace (a pod selector alone
/// selects in the policy's namespace), and pods of the namespaces the site lists — namespace
/// and pod selector in one peer, so a pod must match both.
fn access_peers(site: &SiteInput, part: &Part) -> Vec<NetworkPolicyPeer> {
    let pods = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            access_label(part.name),
            "true".to_string(),
        )])),
        ..LabelSelector::default()
    };
    let mut peers = vec![pod_peer(pods.clone())];
    for namespaces in spec_of(site)
        .map(|n| n.client_namespaces.as_slice())
        .unwrap_or_default()
    {
        // An empty selector would select every namespace; the CRD refuses it, and this keeps a
        // spec that bypassed validation from reopening the hole.
        let selects = namespaces
            .match_labels
            .as_ref()
            .is_some_and(|m| !m.is_empty())
            || namespaces
                .match_expressions
                .as_ref()
                .is_some_and(|e| !e.is_empty());
        if selects {
            peers.push(NetworkPolicyPeer {
                namespace_selector: Some(namespaces.clone()),
                pod_selector: Some(pods.clone()),
                ..NetworkPolicyPeer::default()
            });
        }
    }
    peers
}

/// The parts (component, part) whose pods connect to `component`'s database: its own parts that
/// use it, and the primary part of every component whose needs reach it as `Access::Database`.
fn database_clients(site: &SiteInput, component: Component) -> Vec<(Component, &'static Part)> {
    let mut clients: Vec<(Component, &'static Part)> = component
        .parts()
        .iter()
        .filter(|p| p.uses_database)
        .map(|p| (component, p))
        .collect();
    for reader in enabled_components(site) {
        let reads = reader
            .dependencies(site.spec)
            .iter()
            .any(|d| d.chosen == Some(component) && matches!(d.access, Access::Database));
        if let (true, Some(primary)) = (reads, reader.parts().first()) {
            clients.push((reader, primary));
        }
    }
    clients
}

/// The policy of a component's CloudNativePG database pods, when it has one: ingress only from
/// its clients, its own instances and CloudNativePG's operator.
fn database_policy(site: &SiteInput, component: Component) -> Option<NetworkPolicy> {
    if matches!(component.database_need(), DatabaseNeed::None) {
        return None;
    }
    let wiring = component
        .spec(&site.spec.components)
        .and_then(|s| database::wiring(site, component, s))?;
    let Target::CloudNativePg { cluster } = wiring.target else {
        return None;
    };
    let instances = selector(&[(database::CNPG_CLUSTER_LABEL, cluster.as_str())]);
    let clients: Vec<NetworkPolicyPeer> = database_clients(site, component)
        .into_iter()
        .map(|(c, p)| pod_peer(part_selector(site, c, p.name)))
        .collect();
    let operator_namespace = spec_of(site)
        .map(|n| n.cloud_native_pg_operator_namespace_labels.clone())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| {
            BTreeMap::from([(
                DEFAULT_CNPG_NAMESPACE.0.to_string(),
                DEFAULT_CNPG_NAMESPACE.1.to_string(),
            )])
        });
    let both = [database::POSTGRES_PORT, CNPG_INSTANCE_MANAGER_PORT];
    let mut rules = Vec::new();
    if !clients.is_empty() {
        rules.push(NetworkPolicyIngressRule {
            from: Some(clients),
            ports: Some(tcp(&[database::POSTGRES_PORT])),
        });
    }
    rules.push(NetworkPolicyIngressRule {
        // Streaming replication and the instance managers talking to each other: "pods can
        // connect to each other" (CloudNativePG, networking).
        from: Some(vec![pod_peer(instances.clone())]),
        ports: Some(tcp(&both)),
    });
    rules.push(NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(operator_namespace),
                ..LabelSelector::default()
            }),
            pod_selector: Some(selector(&[CNPG_OPERATOR_POD])),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(tcp(&both)),
    });
    let mut meta = site_meta(
        site,
        database::cluster_name(site.name, component),
        "network-policy",
    );
    if let Some(l) = meta.labels.as_mut() {
        l.insert(COMPONENT_LABEL.to_string(), component.name().to_string());
    }
    Some(NetworkPolicy {
        metadata: meta,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(instances),
            // Ingress only: egress stays open for the instance manager's API calls and backups
            // (module comment).
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        }),
    })
}

/// Egress the site's policies allow to any address, as `(policy, ports)`: empty when every
/// opening is narrowed to CIDRs (or there is none). For the `NetworkRestricted` condition.
pub fn open_egress(site: &SiteInput) -> Vec<(String, Vec<i32>)> {
    if !enabled(site) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for component in enabled_components(site) {
        for part in component.parts() {
            let policy = part_policy(site, component, part);
            let ports = any_address_ports(&policy);
            if !ports.is_empty() {
                out.push((policy.metadata.name.unwrap_or_default(), ports));
            }
        }
    }
    // The reporter (spec.reporting) reaches the hub and the API server outside the site.
    if let Some((name, ports)) = super::reporter::open_egress(site) {
        out.push((name, ports));
    }
    out
}

/// The ports of `policy`'s egress rules that allow any address (no `to`).
pub(super) fn any_address_ports(policy: &NetworkPolicy) -> Vec<i32> {
    policy
        .spec
        .iter()
        .flat_map(|s| s.egress.iter().flatten())
        .filter(|r| r.to.is_none())
        .flat_map(|r| r.ports.iter().flatten())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(n)) => Some(n),
            _ => None,
        })
        .collect()
}

fn part_policy(site: &SiteInput, component: Component, part: &'static Part) -> NetworkPolicy {
    let mut ingress_rules = Vec::new();
    let mut egress_rules = vec![dns_rule()];

    // Callers: components whose chosen dependency is this part.
    for caller in enabled_components(site) {
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
    // An entry point's clients reach its first port and its sidecars' (TORCH's callers fetch
    // results from its file server).
    let first_port: Vec<i32> = part
        .ports
        .iter()
        .take(1)
        .chain(part.sidecars.iter().map(|s| &s.port))
        .map(|p| p.port)
        .collect();
    // The site's reporter counts Blaze's resources (`spec.reporting`).
    if component.name() == "blaze"
        && component
            .parts()
            .first()
            .is_some_and(|p| p.name == part.name)
        && let Some(rule) = super::reporter::blaze_ingress(site)
    {
        ingress_rules.push(rule);
    }
    if part.entry_point {
        ingress_rules.push(NetworkPolicyIngressRule {
            from: Some(access_peers(site, part)),
            ports: Some(tcp(&first_port)),
        });
    }
    if ingress::is_exposed(site, part) {
        let labels = spec_of(site)
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
            // Behind the login proxy only the proxy's port: the service itself never.
            ports: Some(tcp(&login_proxy::published_port(site, part)
                .map(|p| p.port)
                .into_iter()
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
                        .map(|w| database_rule(site, &w.target))
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
            .map(|w| database_rule(site, &w.target))
    {
        egress_rules.push(rule);
    }
    // The login proxy in the pod talks to the issuer too (discovery, token exchange).
    let oidc_client = part.uses_oidc || login_proxy::runs(site, part);
    if oidc_client && site.spec.auth.as_ref().is_some_and(|a| a.oidc.is_some()) {
        // HTTPS to the issuer: at the CIDRs the site lists, else anywhere (its address is not
        // known to the catalogue and may change).
        egress_rules.push(NetworkPolicyEgressRule {
            to: external_peers(
                spec_of(site)
                    .map(|n| n.oidc_issuer_cidrs.as_slice())
                    .unwrap_or_default(),
            ),
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

pub(crate) fn dns_rule() -> NetworkPolicyEgressRule {
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

fn database_rule(site: &SiteInput, target: &Target) -> NetworkPolicyEgressRule {
    match target {
        Target::CloudNativePg { cluster } => NetworkPolicyEgressRule {
            to: Some(vec![pod_peer(selector(&[(
                database::CNPG_CLUSTER_LABEL,
                cluster.as_str(),
            )]))]),
            ports: Some(tcp(&[database::POSTGRES_PORT])),
        },
        // The external server's address is in a Secret the catalogue never reads (and may
        // resolve to any IP): the CIDRs the site lists, else any address. The port is the
        // engine's default, since the Secret's port is unknown too.
        Target::External { engine } => NetworkPolicyEgressRule {
            to: external_peers(
                spec_of(site)
                    .map(|n| n.external_database_cidrs.as_slice())
                    .unwrap_or_default(),
            ),
            ports: Some(tcp(&[engine.default_port()])),
        },
    }
}
