//! `config.json` of the inbox service, as the controller writes it into the ConfigMap
//! `<inbox>-inbox`: the service's own type (`miracolix_inbox::config::InboxConfig`), so a field
//! the service does not know cannot be written, and the tests run the service's own validation on
//! what the controller builds.

use miracolix_inbox::config::{
    Decisions, DizStaff, InboxConfig, Member, Notification, Oidc, Smtp, Uac, Webhook,
};
use miracolix_inbox::notify::Event;

use super::build::{
    OIDC_CLIENT_SECRET_FILE, SMTP_PASSWORD_FILE, SMTP_USERNAME_FILE, WEBHOOK_TOKEN_DIR,
};
use crate::api::{NotificationEvent, ProposalInbox};

/// Where the web page and the API are served under the site's host.
pub const BASE_PATH: &str = "/inbox";
/// Where the identity provider sends users back to, under [`BASE_PATH`].
pub const CALLBACK_PATH: &str = "/inbox/auth/callback";

/// The service's event for the spec's. `DecisionRecorded` is the API's name for the service's
/// `DecisionTaken` (the UAC's decision, or the DIZ excluding the site).
pub fn event(e: NotificationEvent) -> Event {
    match e {
        NotificationEvent::ProposalReceived => Event::ProposalReceived,
        NotificationEvent::DizChecked => Event::DizChecked,
        NotificationEvent::DecisionRecorded => Event::DecisionTaken,
        NotificationEvent::ConditionsAnswered => Event::ConditionsAnswered,
        NotificationEvent::DeadlineApproaching => Event::DeadlineApproaching,
    }
}

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
        .map(|n| Notification {
            name: n.name.clone(),
            email: n.email.clone(),
            webhook: n.webhook.as_ref().map(|w| Webhook {
                url: w.url.clone(),
                token_file: w
                    .token_secret_ref
                    .as_ref()
                    .map(|_| format!("{WEBHOOK_TOKEN_DIR}/{}", n.name)),
            }),
            // Empty stays empty: the service sends every event then, including ones this
            // operator's API does not name yet.
            events: n.events.iter().copied().map(event).collect(),
        })
        .collect();
    let smtp = spec
        .smtp
        .as_ref()
        .map(|s| {
            let login = s.credentials_secret_ref.is_some();
            Ok::<_, String>(Smtp {
                host: s.host.clone(),
                port: u16::try_from(s.port)
                    .map_err(|_| format!("spec.smtp.port {} is not a TCP port", s.port))?,
                from: s.from.clone(),
                starttls: s.starttls,
                username_file: login.then(|| SMTP_USERNAME_FILE.to_string()),
                password_file: login.then(|| SMTP_PASSWORD_FILE.to_string()),
            })
        })
        .transpose()?;
    let quorum = u32::try_from(spec.uac.quorum).map_err(|_| {
        format!(
            "spec.uac.quorum {} is not a positive number",
            spec.uac.quorum
        )
    })?;
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
            quorum,
            review_deadline_seconds,
        },
        diz: spec.diz.as_ref().map(|d| DizStaff {
            members: d
                .members
                .iter()
                .map(|m| Member {
                    name: m.name.clone(),
                    email: m.email.clone(),
                })
                .collect(),
            oidc_group: d.oidc_group.clone(),
        }),
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
