//! `ProposalInbox`: the site's inbox for project proposals and its Use and Access Committee.
//!
//! The controller (`controller/inbox/`) runs the inbox service (the `inbox` subcommand of the
//! operator image, pinned as `miracolix-inbox` in the release) with its storage, Service,
//! NetworkPolicy and an Ingress path `/inbox` on the site's host (docs/proposals.md, "Deploying an
//! inbox"). Every credential is a reference to a Secret the site creates; the operator mounts
//! them into the inbox's pod and never reads them.

// kube-derive's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CloudNativePgSpec, LocalObjectRef, SecretKeyRef, StorageSpec};

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
    printcolumn(name = "Overdue", type_ = "integer", json_path = ".status.overdue"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.notifications) || !self.notifications.exists(n, has(n.email)) || has(self.smtp)").message("smtp is required when a notification sends e-mail (spec.notifications[].email): set spec.smtp (host, from, and credentialsSecretRef if the server wants a login)"))]
pub struct ProposalInboxSpec {
    /// The DizSite (same namespace) this inbox belongs to.
    pub site_ref: LocalObjectRef,
    /// The site's Use and Access Committee.
    pub uac: UacSettings,
    /// The DIZ staff: they record the DIZ check (can the site deliver the requested data, and
    /// how much) and the applicant's answer to conditions on the inbox's page. Without it
    /// nobody can record them, so every proposal stays in DIZ_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diz: Option<DizStaff>,
    /// Where the site's decisions flow back to.
    pub decisions: DecisionTarget,
    /// Who is told about new proposals, approaching deadlines and decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notifications: Vec<Notification>,
    /// The central office's Ed25519 public keys (PEM, one key per Secret key): a proposal is
    /// accepted only when signed by one of them. Mounted as a directory, never read by the
    /// operator.
    pub central_keys_secret_ref: LocalObjectRef,
    /// The site's Ed25519 private key (PKCS#8 PEM) that signs the decisions it sends back.
    pub decision_key_secret_ref: SecretKeyRef,
    /// At least 32 random bytes that sign the web page's session cookies, e.g.
    /// `openssl rand -base64 48`.
    pub session_secret_ref: SecretKeyRef,
    /// The inbox's own OpenID Connect client. Without it, the web page logs in through the site's
    /// `spec.auth.oidc` (which then needs `clientSecretRef`). Register
    /// `https://<the site's ingress host>/inbox/auth/callback` as a redirect URI of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<InboxOidc>,
    /// The mail server for e-mail notifications; required when a notification has `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSettings>,
    /// The volume of the inbox's SQLite database. Default 1Gi on the cluster's default
    /// StorageClass. Kept when the inbox is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// PostgreSQL instead of SQLite on the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<InboxDatabase>,
}

/// The inbox's own OIDC client (confidential: the web page exchanges the code server-side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxOidc {
    /// Issuer URL, e.g. `https://login.uk-erlangen.de/realms/diz`.
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self)").message("oidc.issuerUrl must be an https:// URL"))]
    #[x_kube(validation = Rule::new(super::rules::NO_WHITESPACE).message("oidc.issuerUrl must not contain spaces or line breaks (look for a trailing space)"))]
    #[x_kube(validation = Rule::new("!self.contains('/.well-known/')").message("oidc.issuerUrl is the issuer itself, not its discovery document: remove /.well-known/openid-configuration"))]
    #[schemars(length(min = 9, max = 2048))]
    pub issuer_url: String,
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// The client's secret.
    pub client_secret_ref: SecretKeyRef,
    /// The ID token claim that lists the user's groups (for `uac.oidcGroup`).
    #[serde(default = "default_groups_claim")]
    #[schemars(length(min = 1, max = 256))]
    pub groups_claim: String,
}

pub fn default_groups_claim() -> String {
    "groups".to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSettings {
    /// Host name of the mail server, e.g. `smtp.uk-erlangen.de`.
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("smtp.host must be a host name such as smtp.uk-erlangen.de (no scheme, no port)"))]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// 587 (submission with STARTTLS) by default.
    #[serde(default = "default_smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Sender address, e.g. `diz-inbox@uk-erlangen.de`.
    #[x_kube(validation = Rule::new(r"self.matches('^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')").message("smtp.from must be an e-mail address"))]
    #[schemars(length(min = 3, max = 320))]
    pub from: String,
    /// Upgrade the connection with STARTTLS (refuse to send when the server cannot).
    #[serde(default = "default_true")]
    pub starttls: bool,
    /// A Secret with keys `username` and `password`, when the server wants a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
}

fn default_smtp_port() -> i32 {
    587
}

fn default_true() -> bool {
    true
}

/// PostgreSQL for the inbox instead of SQLite on its volume: exactly one of `externalSecretRef`
/// and `cloudNativePG`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.externalSecretRef) != has(self.cloudNativePG)").message("set exactly one of database.externalSecretRef (a Secret key with the URL of an existing PostgreSQL database) or database.cloudNativePG (a cluster run by CloudNativePG)"))]
pub struct InboxDatabase {
    /// A Secret key holding the connection URL, e.g.
    /// `postgres://inbox:…@db.uk-erlangen.de:5432/inbox?sslmode=verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_ref: Option<SecretKeyRef>,
    /// A PostgreSQL cluster `<inbox>-inbox-db` the operator creates through CloudNativePG (which
    /// must be installed). Kept when the inbox is deleted.
    #[serde(
        default,
        rename = "cloudNativePG",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgSpec>,
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

/// Listed people, a group in the site's identity provider, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.members) && size(self.members) > 0) || has(self.oidcGroup)").message("set diz.members (a list of people), diz.oidcGroup (a group in the site's identity provider) or both"))]
pub struct DizStaff {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["email"]))]
    pub members: Vec<UacMember>,
    /// Group claim value (`spec.oidc.groupsClaim`) whose members are DIZ staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub oidc_group: Option<String>,
}

/// A person, identified by the e-mail address of their OIDC login.
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
    /// A proposal arrived from the central office.
    ProposalReceived,
    /// The DIZ recorded its check.
    DizChecked,
    /// The UAC's decision was taken (or the DIZ excluded the site).
    DecisionRecorded,
    /// The researcher's answer to the UAC's conditions was recorded.
    ConditionsAnswered,
    /// An open proposal is close to its review deadline.
    DeadlineApproaching,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalInboxStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Proposals per state (e.g. `DIZ_CHECK: 2`), as the inbox last reported them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, i64>,
    /// Proposals past their review deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<i64>,
    /// When the site last recorded a decision (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_time: Option<String>,
    /// Notifications that failed, with the last error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notifications: Vec<NotificationStatus>,
    /// Why the counts above are not current: the inbox's summary could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    pub name: String,
    /// Deliveries that failed (after retries).
    pub failures: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
