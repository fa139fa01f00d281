//! `config.json`: what the controller writes into the inbox's ConfigMap (docs/proposals.md,
//! "Configuration"). Unknown fields are refused with the field named, so a typo in the controller
//! or a hand-edited ConfigMap stops the inbox at start instead of being ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboxConfig {
    /// This site's id as the central office names it in a proposal's `sites`.
    pub site_id: String,
    /// The ProposalInbox's name (labels metrics and logs).
    pub inbox: String,
    pub uac: Uac,
    /// Who records the DIZ check (and the applicant's answer to conditions). Without it nobody
    /// can: the check decides what the site promises to deliver, so it is not open to every
    /// login of the site's identity provider.
    #[serde(default)]
    pub diz: Option<DizStaff>,
    pub decisions: Decisions,
    #[serde(default)]
    pub notifications: Vec<Notification>,
    #[serde(default)]
    pub smtp: Option<Smtp>,
    #[serde(default)]
    pub oidc: Option<Oidc>,
    /// Path prefix the web page and API are served under behind an ingress (`/inbox`); requests
    /// without it are served too (in-cluster calls to the Service).
    #[serde(default = "default_base_path")]
    pub base_path: String,
}

fn default_base_path() -> String {
    "/inbox".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Uac {
    #[serde(default)]
    pub members: Vec<Member>,
    /// When set, everyone whose OIDC groups claim holds this group is a member (in addition to
    /// `members`).
    #[serde(default)]
    pub oidc_group: Option<String>,
    /// Votes needed before the UAC's decision is taken.
    pub quorum: u32,
    /// Seconds from receipt until a proposal is overdue.
    pub review_deadline_seconds: u64,
}

/// The DIZ staff: listed people, everyone in an OIDC group, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DizStaff {
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub oidc_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decisions {
    /// Where the site's signed decision is POSTed.
    pub url: String,
    /// The site's organization identifier at the central office (sent with every decision).
    pub organization_identifier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Events this target receives; empty means all.
    #[serde(default)]
    pub events: Vec<crate::notify::Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// File holding the bearer token (a mounted Secret).
    #[serde(default)]
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub from: String,
    #[serde(default = "yes")]
    pub starttls: bool,
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret_file: String,
    pub redirect_url: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_groups_claim() -> String {
    "groups".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl InboxConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses and checks what serde cannot: a refusal names the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_slice(bytes).map_err(|source| ConfigError::Parse {
            path: "config".into(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.site_id.trim().is_empty() {
            return Err(invalid("siteId", "must not be empty"));
        }
        if self.uac.quorum == 0 {
            return Err(invalid("uac.quorum", "must be at least 1"));
        }
        if self.uac.oidc_group.is_none() && (self.uac.members.len() as u64) < self.uac.quorum as u64
        {
            return Err(invalid(
                "uac.quorum",
                format!(
                    "{} exceeds the {} listed members and no oidcGroup is set: no decision could ever be taken",
                    self.uac.quorum,
                    self.uac.members.len()
                ),
            ));
        }
        if self.uac.review_deadline_seconds == 0 {
            return Err(invalid("uac.reviewDeadlineSeconds", "must be at least 1"));
        }
        for (i, m) in self.uac.members.iter().enumerate() {
            if !m.email.contains('@') {
                return Err(invalid(
                    format!("uac.members[{i}].email"),
                    "is not an e-mail address",
                ));
            }
        }
        if let Some(diz) = &self.diz {
            if diz.members.is_empty() && diz.oidc_group.is_none() {
                return Err(invalid(
                    "diz",
                    "names nobody: set members, oidcGroup or both",
                ));
            }
            for (i, m) in diz.members.iter().enumerate() {
                if !m.email.contains('@') {
                    return Err(invalid(
                        format!("diz.members[{i}].email"),
                        "is not an e-mail address",
                    ));
                }
            }
        }
        url::Url::parse(&self.decisions.url)
            .map_err(|e| invalid("decisions.url", e.to_string()))?;
        for (i, n) in self.notifications.iter().enumerate() {
            match (&n.email, &n.webhook) {
                (Some(_), None) if self.smtp.is_none() => {
                    return Err(invalid(
                        format!("notifications[{i}].email"),
                        "needs smtp to be configured",
                    ));
                }
                (Some(_), None) => {}
                (None, Some(w)) => {
                    url::Url::parse(&w.url).map_err(|e| {
                        invalid(format!("notifications[{i}].webhook.url"), e.to_string())
                    })?;
                }
                _ => {
                    return Err(invalid(
                        format!("notifications[{i}]"),
                        "set exactly one of email and webhook",
                    ));
                }
            }
        }
        if !(self.base_path.is_empty()
            || (self.base_path.starts_with('/') && !self.base_path.ends_with('/')))
        {
            return Err(invalid(
                "basePath",
                "must start with / and not end with / (or be empty)",
            ));
        }
        if let Some(o) = &self.oidc {
            url::Url::parse(&o.issuer_url).map_err(|e| invalid("oidc.issuerUrl", e.to_string()))?;
            url::Url::parse(&o.redirect_url)
                .map_err(|e| invalid("oidc.redirectUrl", e.to_string()))?;
        }
        Ok(())
    }

    /// Whether `email` is a listed UAC member (case-insensitive, as mail systems treat it).
    pub fn listed_member(&self, email: &str) -> bool {
        self.uac
            .members
            .iter()
            .any(|m| m.email.eq_ignore_ascii_case(email))
    }

    /// Whether someone with `email` and OIDC `groups` is a UAC member.
    pub fn is_uac_member(&self, email: &str, groups: &[String]) -> bool {
        self.listed_member(email)
            || self
                .uac
                .oidc_group
                .as_ref()
                .is_some_and(|g| groups.iter().any(|x| x == g))
    }

    /// Whether someone with `email` and OIDC `groups` is DIZ staff (false without `diz`).
    pub fn is_diz_staff(&self, email: &str, groups: &[String]) -> bool {
        self.diz.as_ref().is_some_and(|d| {
            d.members
                .iter()
                .any(|m| m.email.eq_ignore_ascii_case(email))
                || d.oidc_group
                    .as_ref()
                    .is_some_and(|g| groups.iter().any(|x| x == g))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"{"siteId": "erlangen", "inbox": "erlangen",
      "uac": {"members": [{"name": "A", "email": "a@uk.de"}, {"name": "B", "email": "b@uk.de"}, {"name": "C", "email": "c@uk.de"}], "oidcGroup": null, "quorum": 3, "reviewDeadlineSeconds": 1209600},
      "diz": {"members": [{"name": "Dora", "email": "dora@uk.de"}], "oidcGroup": "diz-staff"},
      "decisions": {"url": "https://dsf.example/fhir", "organizationIdentifier": "forschen-fuer-gesundheit.de"},
      "notifications": [{"name": "uac-mailbox", "email": "uac@uk-erlangen.de", "events": ["ProposalReceived","DeadlineApproaching"]},
                        {"name": "ticket-system", "webhook": {"url": "https://tickets.example/hook", "tokenFile": "/etc/miracolix-inbox/webhook-tokens/ticket-system"}, "events": []}],
      "smtp": {"host": "mail", "port": 587, "from": "diz@uk.de", "starttls": true, "usernameFile": null, "passwordFile": null},
      "oidc": {"issuerUrl": "https://idp.example/realms/uk", "clientId": "inbox", "clientSecretFile": "/etc/miracolix-inbox/oidc/client-secret", "redirectUrl": "https://host/inbox/auth/callback", "groupsClaim": "groups"},
      "basePath": "/inbox"}"#;

    #[test]
    fn the_documented_example_parses() {
        let c = InboxConfig::parse(EXAMPLE.as_bytes()).expect("parse");
        assert_eq!(c.uac.quorum, 3);
        assert!(c.listed_member("A@UK.de"));
        assert!(c.is_diz_staff("DORA@uk.de", &[]));
        assert!(c.is_diz_staff("x@uk.de", &["diz-staff".into()]));
        assert!(!c.is_diz_staff("a@uk.de", &["uac".into()]));
        assert!(!c.is_uac_member("dora@uk.de", &["diz-staff".into()]));
        let mut without = c.clone();
        without.diz = None;
        assert!(!without.is_diz_staff("dora@uk.de", &["diz-staff".into()]));
        assert_eq!(c.notifications[0].events.len(), 2);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#""basePath": "/inbox""#,
                r#""basePath": "/inbox", "colour": 1"#,
                "colour",
            ),
            (r#""quorum": 3"#, r#""quorum": 4"#, "uac.quorum"),
            (r#""quorum": 3"#, r#""quorum": 0"#, "uac.quorum"),
            (
                r#""url": "https://dsf.example/fhir""#,
                r#""url": "not a url""#,
                "decisions.url",
            ),
            (
                r#""email": "a@uk.de""#,
                r#""email": "a""#,
                "uac.members[0].email",
            ),
            (
                r#""basePath": "/inbox""#,
                r#""basePath": "inbox/""#,
                "basePath",
            ),
            (r#""events": []"#, r#""events": ["Nonsense"]"#, "Nonsense"),
            (
                r#""name": "A", "#,
                r#""name": "A", "phone": "1", "#,
                "phone",
            ),
            (
                r#""diz": {"members": [{"name": "Dora", "email": "dora@uk.de"}], "oidcGroup": "diz-staff"}"#,
                r#""diz": {"members": [], "oidcGroup": null}"#,
                "diz: names nobody",
            ),
            (
                r#""email": "dora@uk.de""#,
                r#""email": "dora""#,
                "diz.members[0].email",
            ),
        ];
        for (from, to, field) in cases {
            assert!(EXAMPLE.contains(from), "{from}");
            let text = EXAMPLE.replacen(from, to, 1);
            let err = InboxConfig::parse(text.as_bytes())
                .expect_err(to)
                .to_string();
            assert!(err.contains(field), "{to}: {err}");
        }
        let no_smtp = EXAMPLE.replacen(r#""smtp": {"host": "mail", "port": 587, "from": "diz@uk.de", "starttls": true, "usernameFile": null, "passwordFile": null}"#, r#""smtp": null"#, 1);
        let err = InboxConfig::parse(no_smtp.as_bytes())
            .expect_err("smtp")
            .to_string();
        assert!(err.contains("notifications[0].email"), "{err}");
    }
}
