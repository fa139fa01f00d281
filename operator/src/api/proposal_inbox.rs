//! `ProposalInbox`: the site's inbox for project proposals and its Use and Access Committee.

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
    kind = "ProposalInbox",
    plural = "proposalinboxes",
    shortname = "inbox",
    category = "miracum",
    namespaced,
    status = "ProposalInboxStatus",
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.siteRef.name"),
    printcolumn(name = "Quorum", type_ = "integer", json_path = ".spec.uac.quorum"),
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
pub struct ProposalInboxSpec {
    /// The DizSite (same namespace) this inbox belongs to.
    pub site_ref: LocalObjectRef,
    /// The site's Use and Access Committee.
    pub uac: UacSettings,
    /// Where the site's decisions flow back to.
    pub decisions: DecisionTarget,
    /// Who is told about new proposals, approaching deadlines and decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notifications: Vec<Notification>,
}

/// Exactly one of `members` and `oidcGroup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.members) && size(self.members) > 0) != has(self.oidcGroup)").message("set exactly one of uac.members (a list of people) or uac.oidcGroup (a group in the site's identity provider)"))]
#[x_kube(validation = Rule::new("!has(self.members) || self.quorum <= size(self.members)").message("uac.quorum cannot be larger than the number of uac.members"))]
pub struct UacSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["email"]))]
    pub members: Vec<UacMember>,
    /// Group claim value in the site's OIDC provider whose members form the UAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub oidc_group: Option<String>,
    /// Votes needed for a decision.
    #[schemars(range(min = 1, max = 50))]
    pub quorum: i32,
    /// How long the UAC has to decide, e.g. `336h` (two weeks).
    #[serde(default = "default_review_deadline")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(h|m|s))+$')").message("reviewDeadline must be a duration such as 336h (two weeks)"))]
    #[x_kube(validation = Rule::new(super::rules::NONZERO_DURATION).message("reviewDeadline must be longer than zero: it is how long the UAC has to decide (e.g. 336h, two weeks)"))]
    #[schemars(length(min = 2, max = 20))]
    pub review_deadline: String,
}

fn default_review_deadline() -> String {
    "336h".to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UacMember {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[x_kube(validation = Rule::new(r"self.matches('^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')").message("email must be an e-mail address"))]
    #[x_kube(validation = Rule::new(super::rules::NO_SCHEME).message("email must be a plain address such as uac@uk-erlangen.de, without mailto: or another scheme"))]
    #[schemars(length(min = 3, max = 320))]
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionTarget {
    /// FHIR endpoint of the central DSF that collects decisions.
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("dsfFhirUrl must be an https:// URL"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("dsfFhirUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub dsf_fhir_url: String,
    /// Organisation identifier of the central office, e.g. `forschen-fuer-gesundheit.de`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')").message("organizationIdentifier must be a DNS-style identifier such as forschen-fuer-gesundheit.de"))]
    #[schemars(length(min = 3, max = 253))]
    pub organization_identifier: String,
}

/// Exactly one of `email` and `webhook`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.email) != has(self.webhook)").message("a notification needs exactly one of email or webhook"))]
pub struct Notification {
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("notification name must be a DNS label"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(r"self.matches('^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')").message("email must be an e-mail address"))]
    #[x_kube(validation = Rule::new(super::rules::NO_SCHEME).message("email must be a plain address such as uac@uk-erlangen.de, without mailto: or another scheme"))]
    #[schemars(length(min = 3, max = 320))]
    pub email: Option<String>,
    /// Webhook URL; the payload never contains patient data, only proposal ids and states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// Which events to send; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub events: Vec<NotificationEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("webhook url must be an https:// URL"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("webhook url must not contain spaces or line breaks (look for a trailing space)"))]
    #[schemars(length(min = 9, max = 2048))]
    pub url: String,
    /// Secret key holding a token sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<super::SecretKeyRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NotificationEvent {
    ProposalReceived,
    DeadlineApproaching,
    DecisionRecorded,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalInboxStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
