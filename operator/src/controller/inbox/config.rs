//! `config.json` of the inbox service, as the controller writes it into the ConfigMap
//! `<inbox>-inbox`.
//!
//! The field names are the interface with the service (`inbox/`, `miracolix_inbox::config`):
//! until that crate is a dependency of the operator, this type mirrors it, and the test below
//! pins the JSON it produces.

use serde::Serialize;

use super::build::{
    OIDC_CLIENT_SECRET_FILE, SMTP_PASSWORD_FILE, SMTP_USERNAME_FILE, WEBHOOK_TOKEN_DIR,
};
use crate::api::{NotificationEvent, ProposalInbox};

/// Where the web page and the API are served under the site's host.
pub const BASE_PATH: &str = "/inbox";
/// Where the identity provider sends users back to, under [`BASE_PATH`].
pub const CALLBACK_PATH: &str = "/inbox/auth/callback";

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxConfig {
    pub site_id: String,
    pub inbox: String,
    pub uac: Uac,
    pub decisions: Decisions,
    pub notifications: Vec<NotificationConfig>,
    pub smtp: Option<Smtp>,
    pub oidc: Option<Oidc>,
    pub base_path: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uac {
    pub members: Vec<Member>,
    pub oidc_group: Option<String>,
    pub quorum: i32,
    pub review_deadline_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Member {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decisions {
    pub url: String,
    pub organization_identifier: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// Always listed: an empty list in the spec (all events) is expanded here.
    pub events: Vec<NotificationEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub url: String,
    pub token_file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Smtp {
    pub host: String,
    pub port: i32,
    pub from: String,
    pub starttls: bool,
    pub username_file: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret_file: String,
    pub redirect_url: String,
    pub groups_claim: String,
}

/// Every event, for a notification that lists none.
const ALL_EVENTS: [NotificationEvent; 3] = [
    NotificationEvent::ProposalReceived,
    NotificationEvent::DeadlineApproaching,
    NotificationEvent::DecisionRecorded,
];

/// Seconds of a duration such as `336h` or `1h30m` (the schema admits only `([0-9]+(h|m|s))+`).
pub fn duration_seconds(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    digits.is_empty().then_some(total)
}

/// The service's configuration for `inbox`, its site's id, login and public address.
pub fn config(
    inbox: &ProposalInbox,
    site_id: &str,
    oidc: Option<Oidc>,
) -> Result<InboxConfig, String> {
    let spec = &inbox.spec;
    let review_deadline_seconds = duration_seconds(&spec.uac.review_deadline).ok_or_else(|| {
        format!(
            "spec.uac.reviewDeadline {:?} is not a duration such as 336h",
            spec.uac.review_deadline
        )
    })?;
    let notifications = spec
        .notifications
        .iter()
        .map(|n| NotificationConfig {
            name: n.name.clone(),
            email: n.email.clone(),
            webhook: n.webhook.as_ref().map(|w| Webhook {
                url: w.url.clone(),
                token_file: w
                    .token_secret_ref
                    .as_ref()
                    .map(|_| format!("{WEBHOOK_TOKEN_DIR}/{}", n.name)),
            }),
            events: if n.events.is_empty() {
                ALL_EVENTS.to_vec()
            } else {
                n.events.clone()
            },
        })
        .collect();
    let smtp = spec.smtp.as_ref().map(|s| {
        let login = s.credentials_secret_ref.is_some();
        Smtp {
            host: s.host.clone(),
            port: s.port,
            from: s.from.clone(),
            starttls: s.starttls,
            username_file: login.then(|| SMTP_USERNAME_FILE.to_string()),
            password_file: login.then(|| SMTP_PASSWORD_FILE.to_string()),
        }
    });
    Ok(InboxConfig {
        site_id: site_id.to_string(),
        inbox: kube::ResourceExt::name_any(inbox),
        uac: Uac {
            members: spec
                .uac
                .members
                .iter()
                .map(|m| Member {
                    name: m.name.clone(),
                    email: m.email.clone(),
                })
                .collect(),
            oidc_group: spec.uac.oidc_group.clone(),
            quorum: spec.uac.quorum,
            review_deadline_seconds,
        },
        decisions: Decisions {
            url: spec.decisions.dsf_fhir_url.clone(),
            organization_identifier: spec.decisions.organization_identifier.clone(),
        },
        notifications,
        smtp,
        oidc,
        base_path: BASE_PATH.to_string(),
    })
}

/// The OIDC block for a login and the site's public host.
pub fn oidc(login: &super::Login, host: &str) -> Oidc {
    Oidc {
        issuer_url: login.issuer_url.clone(),
        client_id: login.client_id.clone(),
        client_secret_file: OIDC_CLIENT_SECRET_FILE.to_string(),
        redirect_url: format!("https://{host}{CALLBACK_PATH}"),
        groups_claim: login.groups_claim.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_seconds() {
        assert_eq!(duration_seconds("336h"), Some(1_209_600));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("45s"), Some(45));
        assert_eq!(duration_seconds("3d"), None);
        assert_eq!(duration_seconds("12"), None);
    }
}
