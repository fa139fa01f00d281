//! `FeasibilityEndpoint`: the site's answer to "how many patients fit this cohort?".
//!
//! The privacy schema enforces the consortium's floor: a site may be stricter than the MII
//! defaults (more noise, coarser rounding, a higher suppression threshold, fewer queries per hour)
//! but never laxer, so the API server refuses a laxer setting before it is ever deployed.

// kube-derive's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectRef;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "diz.miracum.org",
    version = "v1alpha1",
    kind = "FeasibilityEndpoint",
    plural = "feasibilityendpoints",
    shortname = "feas",
    category = "miracum",
    namespaced,
    status = "FeasibilityEndpointStatus",
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.siteRef.name"),
    printcolumn(
        name = "Epsilon",
        type_ = "number",
        json_path = ".spec.privacy.epsilon"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FeasibilityEndpointSpec {
    /// The DizSite (same namespace) whose data answers the queries.
    pub site_ref: LocalObjectRef,
    /// Where queries are evaluated.
    #[serde(default)]
    pub data_source: DataSource,
    /// Obfuscation, suppression and rate limits applied before a count leaves the site.
    #[serde(default)]
    pub privacy: PrivacyRules,
    /// The link to the central research portal through the Data Sharing Framework (DSF).
    pub portal: PortalLink,
    /// Direct-broker mode: the gate's query API on the site's ingress over mutual TLS, for a
    /// broker that calls the site without the DSF (docs/feasibility.md, "Direct mode"). Absent:
    /// the gate is reachable inside the namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectAccess>,
}

/// A DNS name as the API takes host names: lowercase, at least two labels, no wildcard.
const FQDN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$";

/// How a broker reaches the gate from outside: the ingress passes TLS through to the gate
/// (ingress-nginx `ssl-passthrough`, which the controller enables with
/// `--enable-ssl-passthrough`), and the gate itself verifies the broker's client certificate.
/// No header set by the ingress is trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectAccess {
    /// Host name brokers connect to, e.g. `feasibility.uk-erlangen.de`. All TLS for this host
    /// goes to the gate, so it must not be the site's `spec.ingress.host`.
    #[x_kube(validation = Rule::new(format!("self.matches('{FQDN}')")).message("direct.host must be a fully qualified DNS name such as feasibility.uk-erlangen.de"))]
    #[schemars(length(min = 3, max = 253))]
    pub host: String,
    /// IngressClass; the site's `spec.ingress.className` when absent, else the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// Secret of type `kubernetes.io/tls` (`tls.crt`, `tls.key`): the gate's own certificate
    /// for `host`, which brokers verify. The gate mounts it; the operator never reads it.
    pub server_certificate_secret_ref: LocalObjectRef,
    /// Secret with key `ca.crt`: the CA certificate(s), PEM, that certify the brokers' client
    /// certificates. A client certificate from any other CA fails the TLS handshake.
    pub client_ca_secret_ref: LocalObjectRef,
    /// DNS names (subject alternative names) of the broker client certificates allowed to query.
    /// Each name is one requester with its own rate limit, budget and audit lines. A certificate
    /// of the CA with another name is refused with 403 and audited.
    #[schemars(length(min = 1, max = 50), inner(length(min = 3, max = 253)))]
    #[schemars(transform = allowed_client_items)]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))").message("direct.allowedClients must not list a name twice"))]
    pub allowed_clients: Vec<String>,
}

/// Each entry of `allowedClients` gets its own rule, so that a refusal names the entry
/// (`spec.direct.allowedClients[1]`); schemars' `inner(...)` takes no CEL.
fn allowed_client_items(schema: &mut schemars::Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert(
            "x-kubernetes-validations".to_string(),
            serde_json::json!([{
                "rule": format!("self.matches('{FQDN}')"),
                "message": "direct.allowedClients entries are DNS names such as broker.forschen-fuer-gesundheit.de (the client certificate's subject alternative name; no wildcard)",
            }]),
        );
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// FHIR base URL to query. Defaults to the site's Blaze FHIR server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))").message("fhirBaseUrl must be an http(s) URL such as http://blaze:8080/fhir"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("fhirBaseUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[schemars(length(min = 8, max = 2048))]
    pub fhir_base_url: Option<String>,
    /// Query executor.
    #[serde(default)]
    pub executor: Executor,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// FLARE translates structured queries to FHIR search.
    #[default]
    Flare,
    /// Blaze evaluates CQL directly.
    Cql,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivacyRules {
    /// Laplace privacy budget ε (sensitivity 1). Smaller is more private. Consortium floor: ≤ 0.5.
    #[serde(default = "default_epsilon")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 0.5").message("epsilon must be greater than 0 and at most 0.5 (the consortium floor); a smaller value adds more noise"))]
    pub epsilon: f64,
    /// Results are rounded to a multiple of this. Consortium floor: 10.
    #[serde(default = "default_round_to")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 1000").message("roundTo must be between 10 (the consortium floor) and 1000"))]
    pub round_to: i32,
    /// Counts below this are reported as 0. Consortium floor: 5.
    #[serde(default = "default_suppress_below")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 1000").message("suppressBelow must be between 5 (the consortium floor) and 1000"))]
    pub suppress_below: i32,
    /// Queries accepted per hour from one requesting network. Consortium limit: 999.
    #[serde(default = "default_rate")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 999").message("requestsPerHour must be between 1 and 999 (the consortium limit)"))]
    pub requests_per_hour: i32,
    /// Sum of ε one requester may spend per UTC day (fresh answers only; repeats are served from
    /// the gate's cache for free). Past it the gate refuses new queries until midnight UTC. Must
    /// be at least `epsilon`. Behind the DSF the requester is the whole portal.
    #[serde(default = "default_daily_budget")]
    #[x_kube(validation = Rule::new("self >= 0.5 && self <= 1000.0").message("dailyEpsilonBudget must be between 0.5 and 1000 (the sum of epsilon one requester may spend per day)"))]
    pub daily_epsilon_budget: f64,
}

impl Default for PrivacyRules {
    fn default() -> Self {
        Self {
            epsilon: default_epsilon(),
            round_to: default_round_to(),
            suppress_below: default_suppress_below(),
            requests_per_hour: default_rate(),
            daily_epsilon_budget: default_daily_budget(),
        }
    }
}

fn default_epsilon() -> f64 {
    0.5
}
fn default_round_to() -> i32 {
    10
}
fn default_suppress_below() -> i32 {
    5
}
fn default_rate() -> i32 {
    999
}
/// 100 fresh answers a day at the default ε 0.5 (docs/feasibility.md).
fn default_daily_budget() -> f64 {
    50.0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalLink {
    /// FHIR endpoint of the central DSF, e.g. `https://dsf.forschen-fuer-gesundheit.de/fhir`.
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("dsfFhirUrl must be an https:// URL"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("dsfFhirUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub dsf_fhir_url: String,
    /// The site's organisation identifier in the DSF allow list, e.g. `uk-erlangen.de`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')").message("organizationIdentifier must be a DNS-style identifier such as uk-erlangen.de"))]
    #[schemars(length(min = 3, max = 253))]
    pub organization_identifier: String,
    /// Secret of type `kubernetes.io/tls` with the site's DSF client certificate.
    pub client_certificate_secret_ref: LocalObjectRef,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeasibilityEndpointStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
