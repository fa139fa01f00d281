//! Notifications: which events exist, who gets which (pure [`plan`]), and sending them by e-mail
//! (SMTP with `lettre`) or webhook (JSON POST with a bearer token).

use std::collections::BTreeMap;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::HttpClient;
use crate::config::{InboxConfig, Smtp};
use crate::store::{Change, OutboxItem};
use crate::workflow::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A proposal arrived from the central office.
    ProposalReceived,
    /// The DIZ recorded its check.
    DizChecked,
    /// The UAC's decision was taken (or the DIZ excluded the site).
    DecisionTaken,
    /// The researcher's answer to the UAC's conditions was recorded.
    ConditionsAnswered,
    /// An open proposal is close to its review deadline.
    DeadlineApproaching,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::ProposalReceived => "ProposalReceived",
            Event::DizChecked => "DizChecked",
            Event::DecisionTaken => "DecisionTaken",
            Event::ConditionsAnswered => "ConditionsAnswered",
            Event::DeadlineApproaching => "DeadlineApproaching",
        }
    }
}

/// The event a state change is.
pub fn event_of(change: &Change) -> Event {
    match change.action {
        None => Event::ProposalReceived,
        Some(Action::DizApprove | Action::DizApproveWithConditions) => Event::DizChecked,
        Some(Action::ConditionsAccepted | Action::ConditionsDeclined) => Event::ConditionsAnswered,
        Some(
            Action::DizExclude
            | Action::UacApprove
            | Action::UacApproveWithConditions
            | Action::UacDecline,
        ) => Event::DecisionTaken,
    }
}

/// One outbox row per configured target that wants `event` (an empty `events` list means all).
/// The key makes a repeat of the same event for the same proposal state a no-op.
pub fn plan(
    config: &InboxConfig,
    event: Event,
    change_key: &str,
    body: &serde_json::Value,
) -> Vec<OutboxItem> {
    config
        .notifications
        .iter()
        .filter(|n| n.events.is_empty() || n.events.contains(&event))
        .map(|n| OutboxItem {
            key: format!("notify:{}:{}:{change_key}", n.name, event.as_str()),
            channel: n.name.clone(),
            body: body.to_string(),
        })
        .collect()
}

/// The notification text: event, proposal id and title, state, deadline, link. No applicant or
/// summary: a mailbox is not the place for the proposal's content (the page is, behind login).
pub fn message(
    config: &InboxConfig,
    event: Event,
    id: &str,
    title: &str,
    state: &str,
    deadline: &str,
) -> serde_json::Value {
    json!({
        "event": event.as_str(),
        "inbox": config.inbox,
        "siteId": config.site_id,
        "proposalId": id,
        "title": title,
        "state": state,
        "deadline": deadline,
        "link": format!("{}/proposals/{}", config.oidc.as_ref().map(|o| public_base(&o.redirect_url, &config.base_path)).unwrap_or_default(), id),
    })
}

/// `https://host/inbox` from the redirect URL `https://host/inbox/auth/callback`.
pub fn public_base(redirect_url: &str, base_path: &str) -> String {
    match url::Url::parse(redirect_url) {
        Ok(u) => format!("{}{}", u.origin().ascii_serialization(), base_path),
        Err(_) => String::new(),
    }
}

/// Sends notifications to their targets.
pub struct Notifier {
    http: HttpClient,
    webhooks: BTreeMap<String, (String, Option<String>)>,
    emails: BTreeMap<String, String>,
    smtp: Option<SmtpSender>,
}

struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("smtp: {0}")]
    Smtp(String),
}

fn read_secret(path: &str) -> Result<String, NotifierError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| NotifierError::Read(path.to_string(), e))
}

impl Notifier {
    pub fn new(config: &InboxConfig, http: HttpClient) -> Result<Self, NotifierError> {
        let mut webhooks = BTreeMap::new();
        let mut emails = BTreeMap::new();
        for n in &config.notifications {
            if let Some(w) = &n.webhook {
                let token = w.token_file.as_deref().map(read_secret).transpose()?;
                webhooks.insert(n.name.clone(), (w.url.clone(), token));
            }
            if let Some(e) = &n.email {
                emails.insert(n.name.clone(), e.clone());
            }
        }
        let smtp = config.smtp.as_ref().map(smtp_sender).transpose()?;
        Ok(Self {
            http,
            webhooks,
            emails,
            smtp,
        })
    }

    /// Sends one notification; `Err` is retried later.
    pub async fn send(&self, channel: &str, key: &str, body: &str) -> Result<(), String> {
        if let Some((url, token)) = self.webhooks.get(channel) {
            let mut headers = vec![
                ("content-type", "application/json".to_string()),
                ("idempotency-key", key.to_string()),
            ];
            if let Some(t) = token {
                headers.push(("authorization", format!("Bearer {t}")));
            }
            let (status, _) = self
                .http
                .send(hyper::Method::POST, url, &headers, body.as_bytes().to_vec())
                .await
                .map_err(|e| e.to_string())?;
            return if status.is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {status}"))
            };
        }
        if let Some(to) = self.emails.get(channel) {
            let smtp = self.smtp.as_ref().ok_or("no smtp configured")?;
            let msg: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let field = |k: &str| {
                msg.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let subject = format!(
                "[{}] {}: {}",
                field("inbox"),
                field("event"),
                field("proposalId")
            );
            let text = format!(
                "{event}\n\nProposal: {id} — {title}\nState: {state}\nReview deadline: {deadline}\n{link}\n",
                event = field("event"),
                id = field("proposalId"),
                title = field("title"),
                state = field("state"),
                deadline = field("deadline"),
                link = field("link"),
            );
            let email = Message::builder()
                .from(smtp.from.clone())
                .to(to
                    .parse::<Mailbox>()
                    .map_err(|e| format!("address {to}: {e}"))?)
                .subject(subject)
                .header(ContentType::TEXT_PLAIN)
                .body(text)
                .map_err(|e| e.to_string())?;
            smtp.transport
                .send(email)
                .await
                .map_err(|e| format!("smtp: {e}"))?;
            return Ok(());
        }
        Err(format!("no notification target {channel} configured"))
    }
}

fn smtp_sender(smtp: &Smtp) -> Result<SmtpSender, NotifierError> {
    let mut builder = if smtp.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| NotifierError::Smtp(e.to_string()))?
    } else {
        // Plain SMTP: an in-cluster relay or a test sink. The config says so explicitly.
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
    }
    .port(smtp.port);
    if let (Some(u), Some(p)) = (&smtp.username_file, &smtp.password_file) {
        builder = builder.credentials(Credentials::new(read_secret(u)?, read_secret(p)?));
    }
    let from = smtp
        .from
        .parse::<Mailbox>()
        .map_err(|e| NotifierError::Smtp(format!("from {}: {e}", smtp.from)))?;
    Ok(SmtpSender {
        transport: builder.build(),
        from,
    })
}
