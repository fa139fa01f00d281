//! HTTP: the main listener (intake, the JSON API and the web page) and the ops listener
//! (`/healthz`, `/readyz`, `/metrics`, `GET /api/v1/summary`).
//!
//! Status codes: intake 201 stored, 200 the same proposal again, 400 malformed, 401 unknown key
//! or bad signature, 409 same id with other content, 413 too large, 422 not addressed to this
//! site. Actions: 401 not logged in, 403 not a member (votes), not DIZ staff (DIZ check,
//! answer to conditions) or bad CSRF token, 404 no such
//! proposal, 409 not allowed in the current state (with the allowed actions), 400 invalid input.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use miracolix_service::http::{self, Answer, json_answer, text};
use ring::signature::Ed25519KeyPair;
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{ChannelSummary, DecisionDelivery, Summary};
use crate::client::HttpClient;
use crate::config::InboxConfig;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::oidc::OidcClient;
use crate::outbox::{self, Deliverer, Round};
use crate::proposal::{CentralKeys, IntakeError, MAX_ENVELOPE_BYTES};
use crate::session::{self, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, Session, Signer};
use crate::store::{ChangeError, DECISION_CHANNEL, Intake, Store, StoreError};
use crate::web::{self, Lang, Page, Viewer};
use crate::workflow::{self, Action, Choice, Vote};

/// Largest form or JSON body of an action.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

type Loaded = (
    crate::store::Record,
    Vec<crate::store::StoredVote>,
    Vec<crate::store::AuditEntry>,
);

/// What the inbox is built from (the command line reads these from files; tests build them).
pub struct Parts {
    pub config: InboxConfig,
    pub keys: CentralKeys,
    pub store: Box<dyn Store>,
    pub decision_key: Ed25519KeyPair,
    pub session_secret: Vec<u8>,
    /// The OIDC client secret (when `config.oidc` is set).
    pub oidc_client_secret: Option<String>,
    pub http: HttpClient,
    pub clock: Clock,
}

struct Shared {
    config: InboxConfig,
    keys: CentralKeys,
    store: Mutex<Box<dyn Store>>,
    signer: Signer,
    oidc: Option<OidcClient>,
    deliverer: Deliverer,
    metrics: Metrics,
    clock: Clock,
}

/// The inbox service. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Notifier(#[from] crate::notify::NotifierError),
    #[error("oidc.clientSecretFile is needed when oidc is set")]
    NoClientSecret,
}

/// A refused action, mapped to one status code.
#[derive(Debug, thiserror::Error)]
enum ActError {
    #[error("log in first")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Change(#[from] ChangeError),
}

impl ActError {
    fn status(&self) -> StatusCode {
        match self {
            ActError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ActError::Forbidden(_) => StatusCode::FORBIDDEN,
            ActError::Invalid(_) => StatusCode::BAD_REQUEST,
            ActError::Change(ChangeError::NotFound(_)) => StatusCode::NOT_FOUND,
            ActError::Change(ChangeError::Illegal(_)) => StatusCode::CONFLICT,
            ActError::Change(ChangeError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> serde_json::Value {
        match self {
            ActError::Change(ChangeError::Illegal(i)) => json!({
                "error": self.to_string(),
                "state": i.from,
                "allowed": i.allowed.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            }),
            ActError::Change(ChangeError::Store(e)) => {
                tracing::error!(error = %e, "store failed");
                json!({ "error": "the inbox cannot record this now; nothing was changed" })
            }
            _ => json!({ "error": self.to_string() }),
        }
    }
}

/// What a logged-in user asked to do with a proposal.
#[derive(Debug, Clone, PartialEq)]
enum Act {
    /// DIZ check or the applicant's answer to conditions (`action` names which).
    Transition {
        action: Action,
        text: Option<String>,
        /// With the DIZ's approval: how many patients' data the site can deliver.
        data_amount: Option<u64>,
    },
    Vote {
        choice: Choice,
        conditions: Option<String>,
        reason: Option<String>,
    },
}

use miracolix_service::http::error;

fn redirect(to: &str, cookies: &[String]) -> Answer {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = header::HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = header::HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn html(code: StatusCode, body: String, cookies: &[String]) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page is never framed (clickjacking a vote form) and loads nothing from elsewhere.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    for c in cookies {
        if let Ok(v) = header::HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// The request's parts the handlers need, read before the body.
struct Ctx {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    cookies: String,
    accept_language: String,
    csrf_header: Option<String>,
    json: bool,
}

impl Ctx {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        session::read_cookie(&self.cookies, name)
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

impl Inbox {
    pub fn new(parts: Parts) -> Result<Self, StartError> {
        let notifier = Notifier::new(&parts.config, parts.http.clone())?;
        let oidc = match &parts.config.oidc {
            Some(o) => Some(OidcClient::new(
                o.clone(),
                parts
                    .oidc_client_secret
                    .clone()
                    .ok_or(StartError::NoClientSecret)?,
                parts.http.clone(),
            )),
            None => None,
        };
        let deliverer = Deliverer::new(
            &parts.config,
            parts.http.clone(),
            Arc::new(parts.decision_key),
            notifier,
        );
        Ok(Self {
            shared: Arc::new(Shared {
                signer: Signer::new(&parts.session_secret),
                config: parts.config,
                keys: parts.keys,
                store: Mutex::new(parts.store),
                oidc,
                deliverer,
                metrics: Metrics::default(),
                clock: parts.clock,
            }),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        (self.shared.clock)()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn Store>> {
        // SQLite transactions keep the state consistent even if a holder panicked.
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// A session cookie value and its CSRF token for `session` (what the OIDC callback sets;
    /// tests use it to act as a given user without an issuer).
    pub fn issue_session(&self, session: &Session) -> (String, String) {
        let sealed = self.shared.signer.seal(session);
        let csrf = self.shared.signer.csrf(&sealed);
        (sealed, csrf)
    }

    fn cookie_path(&self) -> &str {
        if self.shared.config.base_path.is_empty() {
            "/"
        } else {
            &self.shared.config.base_path
        }
    }

    /// One round of background work: expired conditions declined, deadline reminders queued,
    /// due outbox rows delivered.
    pub async fn tick(&self) -> Round {
        let now = self.now();
        let config = &self.shared.config;
        let plan = |c: &crate::store::Change| outbox::plan_change(config, c);
        let housekeeping = {
            let mut store = self.store();
            store.list().and_then(|records| {
                for r in records.iter().filter(|r| {
                    workflow::conditions_expired(
                        r.state,
                        r.decided_at,
                        config.uac.review_deadline_seconds,
                        now,
                    )
                }) {
                    if let Err(e) = store.apply(
                        &r.proposal.id,
                        Action::ConditionsDeclined,
                        "inbox (conditions unanswered for a review period)",
                        vec!["expired".into()],
                        None,
                        now,
                        &plan,
                    ) {
                        tracing::error!(error = %e, id = %r.proposal.id, "cannot expire conditions");
                    }
                }
                let items = outbox::plan_reminders(config, &records, now);
                store.enqueue(&items, now)
            })
        };
        if let Err(e) = housekeeping {
            tracing::error!(error = %e, "cannot queue deadline reminders");
        }
        let round = self.shared.deliverer.round(&self.shared.store, now).await;
        if round.delivered > 0 {
            self.shared.metrics.delivery("all", "delivered");
        }
        if round.failed > 0 {
            self.shared.metrics.delivery("all", "failed");
        }
        round
    }

    /// Background delivery every `period` until `shutdown`.
    pub async fn run_worker(
        self,
        period: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => { self.tick().await; }
            }
        }
    }

    pub fn summary(&self) -> Result<Summary, StoreError> {
        let now = self.now();
        let store = self.store();
        let records = store.list()?;
        let mut counts: std::collections::BTreeMap<String, u64> = workflow::State::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for r in &records {
            *counts.entry(r.state.as_str().to_string()).or_default() += 1;
        }
        let overdue = records
            .iter()
            .filter(|r| workflow::is_overdue(r.state, r.deadline, now))
            .count() as u64;
        let last_decision_at = records.iter().filter_map(|r| r.decided_at).max();
        let channels = store.channels()?;
        let status = |name: &str| channels.iter().find(|c| c.name == name);
        let notifications = self
            .shared
            .config
            .notifications
            .iter()
            .map(|n| ChannelSummary {
                name: n.name.clone(),
                failures: status(&n.name).map(|c| c.failures).unwrap_or(0),
                last_error: status(&n.name).and_then(|c| c.last_error.clone()),
            })
            .collect();
        let (_, pending) = store.outbox_counts(DECISION_CHANNEL)?;
        let decisions = DecisionDelivery {
            pending,
            failures: status(DECISION_CHANNEL).map(|c| c.failures).unwrap_or(0),
            last_error: status(DECISION_CHANNEL).and_then(|c| c.last_error.clone()),
        };
        Ok(Summary {
            counts,
            overdue,
            last_decision_at,
            notifications,
            decisions,
        })
    }

    /// Routes one request of the ops listener: the summary and a readiness that asks the
    /// database; liveness and metrics as every service of the project answers them.
    pub fn ops(&self, method: &Method, path: &str) -> Answer {
        match (method, path) {
            (&Method::GET, "/readyz") => match self.store().channels() {
                Ok(_) => text(StatusCode::OK, "ok\n"),
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}\n")),
            },
            (&Method::GET, "/api/v1/summary") => match self.summary() {
                Ok(s) => json_answer(StatusCode::OK, &json!(s)),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            _ => http::ops(method, path, self.shared.metrics.registry()),
        }
    }

    /// Routes one request of the main listener.
    pub async fn handle(&self, req: Request<Incoming>) -> Answer {
        let base = self.shared.config.base_path.clone();
        let full = req.uri().path().to_string();
        let path = match full.strip_prefix(base.as_str()) {
            Some(rest) if !base.is_empty() && (rest.is_empty() || rest.starts_with('/')) => {
                if rest.is_empty() {
                    "/".to_string()
                } else {
                    rest.to_string()
                }
            }
            _ => full,
        };
        let headers = req.headers();
        let get = |h: header::HeaderName| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let ctx = Ctx {
            method: req.method().clone(),
            query: req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            cookies: get(header::COOKIE),
            accept_language: get(header::ACCEPT_LANGUAGE),
            csrf_header: headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            json: get(header::CONTENT_TYPE).starts_with("application/json"),
            path,
        };
        let limit = if ctx.path == "/api/v1/proposals" {
            MAX_ENVELOPE_BYTES
        } else {
            MAX_FORM_BYTES
        };
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body exceeds {limit} bytes"),
                );
            }
        };
        let segments: Vec<&str> = ctx.path.trim_matches('/').split('/').collect();
        match (&ctx.method, segments.as_slice()) {
            (&Method::POST, ["api", "v1", "proposals"]) => self.intake(&body),
            (&Method::GET, ["api", "v1", "proposals"]) => self.api_list(&ctx),
            (&Method::GET, ["api", "v1", "proposals", id]) => self.api_get(&ctx, id),
            (&Method::POST, ["api", "v1", "proposals", id, kind]) => {
                let token = ctx.csrf_header.clone().unwrap_or_default();
                match self.act(&ctx, id, kind, &body, &token) {
                    Ok(answer) => json_answer(StatusCode::OK, &answer),
                    Err(e) => json_answer(e.status(), &e.body()),
                }
            }
            (&Method::GET, [""]) => self.page_list(&ctx),
            (&Method::GET, ["proposals", id]) => self.page_detail(&ctx, id),
            (&Method::POST, ["proposals", id, kind]) => self.page_act(&ctx, id, kind, &body),
            (&Method::GET, ["auth", "login"]) => self.login().await,
            (&Method::GET, ["auth", "callback"]) => self.callback(&ctx).await,
            (&Method::POST, ["auth", "logout"]) => self.logout(&ctx, &body),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn intake(&self, body: &[u8]) -> Answer {
        let m = &self.shared.metrics;
        let verified = match self.shared.keys.verify(body, &self.shared.config.site_id) {
            Ok(v) => v,
            Err(e) => {
                let (code, outcome) = match &e {
                    IntakeError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                    IntakeError::UnknownKey(_) | IntakeError::BadSignature(_) => {
                        (StatusCode::UNAUTHORIZED, "unauthenticated")
                    }
                    IntakeError::NotAddressed { .. } => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "not-addressed")
                    }
                };
                m.intake(outcome);
                tracing::info!(%outcome, error = %e, "proposal refused");
                return error(code, &e.to_string());
            }
        };
        let now = self.now();
        let deadline = workflow::deadline(now, self.shared.config.uac.review_deadline_seconds);
        let config = &self.shared.config;
        let plan = |c: &crate::store::Change| outbox::plan_change(config, c);
        let result = self.store().receive(&verified, now, deadline, &plan);
        let describe = |r: &crate::store::Record| {
            json!({
                "id": r.proposal.id,
                "state": r.state,
                "receivedAt": r.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "deadline": r.deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
            })
        };
        match result {
            Ok(Intake::Created(r)) => {
                m.intake("created");
                tracing::info!(id = %r.proposal.id, key = %r.key_id, "proposal received");
                json_answer(StatusCode::CREATED, &describe(&r))
            }
            Ok(Intake::Existing(r)) => {
                m.intake("repeated");
                json_answer(StatusCode::OK, &describe(&r))
            }
            Ok(Intake::Conflict(r)) => {
                m.intake("conflict");
                error(
                    StatusCode::CONFLICT,
                    &format!(
                        "proposal {} was received on {} with different content; a changed proposal needs a new id",
                        r.proposal.id,
                        r.received_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a proposal");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the inbox cannot store the proposal now; nothing was stored, retry later",
                )
            }
        }
    }

    /// The logged-in session (cookie signed by us, not expired) and its cookie value.
    fn session(&self, ctx: &Ctx) -> Option<(Session, String)> {
        let sealed = ctx.cookie(SESSION_COOKIE)?;
        let s = self.shared.signer.open::<Session>(sealed, self.now())?;
        Some((s, sealed.to_string()))
    }

    fn is_member(&self, s: &Session) -> bool {
        self.shared.config.is_uac_member(&s.email, &s.groups)
    }

    fn is_diz_staff(&self, s: &Session) -> bool {
        self.shared.config.is_diz_staff(&s.email, &s.groups)
    }

    fn parse_act(&self, kind: &str, body: &[u8], json_body: bool) -> Result<Act, ActError> {
        let fields: Vec<(String, String)> = if json_body {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ActError::Invalid(format!("body: {e}")))?;
            v.as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| {
                            // Strings, and numbers as their text (dataAmount).
                            v.as_str()
                                .map(str::to_string)
                                .or_else(|| v.as_u64().map(|n| n.to_string()))
                                .map(|s| (k.clone(), s))
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            form(body)
        };
        let text = |name: &str| field(&fields, name).map(str::to_string);
        match kind {
            "diz-check" | "conditions" => {
                let allowed: &[Action] = if kind == "diz-check" {
                    &[
                        Action::DizApprove,
                        Action::DizApproveWithConditions,
                        Action::DizExclude,
                    ]
                } else {
                    &[Action::ConditionsAccepted, Action::ConditionsDeclined]
                };
                let action = field(&fields, "action")
                    .and_then(Action::parse)
                    .filter(|a| allowed.contains(a))
                    .ok_or_else(|| {
                        ActError::Invalid(format!(
                            "field action must be one of {}",
                            allowed
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                let text = text("text");
                if matches!(
                    action,
                    Action::DizExclude | Action::DizApproveWithConditions
                ) && text.is_none()
                {
                    return Err(ActError::Invalid(format!(
                        "field text (the reason or the conditions) is required for {}",
                        action.as_str()
                    )));
                }
                // The DIZ's approval promises an amount (the MII portal records `dataAmount` with
                // a site's approval); an exclusion or an answer to conditions has none.
                let data_amount = if matches!(
                    action,
                    Action::DizApprove | Action::DizApproveWithConditions
                ) {
                    let raw = field(&fields, "dataAmount").ok_or_else(|| {
                        ActError::Invalid(format!(
                            "field dataAmount (how many patients' data the site can deliver) is required for {}",
                            action.as_str()
                        ))
                    })?;
                    Some(raw.trim().parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64).ok_or_else(|| {
                        ActError::Invalid(format!(
                            "field dataAmount must be a whole number of patients (0 or more), not {raw:?}"
                        ))
                    })?)
                } else {
                    None
                };
                Ok(Act::Transition {
                    action,
                    text,
                    data_amount,
                })
            }
            "votes" => {
                let choice = field(&fields, "choice")
                    .and_then(Choice::parse)
                    .ok_or_else(|| {
                        ActError::Invalid(
                            "field choice must be one of approve, approveWithConditions, decline"
                                .into(),
                        )
                    })?;
                Ok(Act::Vote {
                    choice,
                    conditions: text("conditions"),
                    reason: text("reason"),
                })
            }
            other => Err(ActError::Invalid(format!("no action {other}"))),
        }
    }

    /// Parses the act, checks login and the CSRF token (`token`: the API's header or the form's
    /// field), then records it (membership is checked for votes); counted in the metrics.
    fn act(
        &self,
        ctx: &Ctx,
        id: &str,
        kind: &str,
        body: &[u8],
        token: &str,
    ) -> Result<serde_json::Value, ActError> {
        let result = self.parse_act(kind, body, ctx.json).and_then(|act| {
            let (session, sealed) = self.session(ctx).ok_or(ActError::Unauthenticated)?;
            if !self.shared.signer.csrf_ok(&sealed, token) {
                return Err(ActError::Forbidden("missing or wrong CSRF token".into()));
            }
            self.apply(&session, id, act)
        });
        self.shared.metrics.action(match &result {
            Ok(_) => "done",
            Err(ActError::Forbidden(_)) => "forbidden",
            Err(ActError::Change(ChangeError::Illegal(_))) => "illegal",
            Err(_) => "invalid",
        });
        result
    }

    /// A proposal with its votes and audit trail.
    fn load(&self, id: &str) -> Result<Option<Loaded>, StoreError> {
        let store = self.store();
        Ok(match store.get(id)? {
            Some(r) => Some((r, store.votes(id)?, store.audit(id)?)),
            None => None,
        })
    }

    fn apply(&self, session: &Session, id: &str, act: Act) -> Result<serde_json::Value, ActError> {
        let now = self.now();
        let config = &self.shared.config;
        let plan = |c: &crate::store::Change| outbox::plan_change(config, c);
        let actor = format!("{} <{}>", session.name, session.email);
        let state = match act {
            Act::Transition {
                action,
                text,
                data_amount,
            } => {
                // The DIZ check and the answer to conditions are the DIZ staff's (config.diz).
                if !self.is_diz_staff(session) {
                    return Err(ActError::Forbidden(format!(
                        "{} is not DIZ staff; only the DIZ staff record {}",
                        session.email,
                        action.as_str()
                    )));
                }
                let change = self.store().apply(
                    id,
                    action,
                    &actor,
                    text.into_iter().collect(),
                    data_amount,
                    now,
                    &plan,
                )?;
                change.record.state
            }
            Act::Vote {
                choice,
                conditions,
                reason,
            } => {
                if !self.is_member(session) {
                    return Err(ActError::Forbidden(format!(
                        "{} is not a member of the UAC; only members vote",
                        session.email
                    )));
                }
                let vote = workflow::check_vote(Vote {
                    member: session.email.to_ascii_lowercase(),
                    choice,
                    conditions,
                    reason,
                })
                .map_err(|e| ActError::Invalid(e.to_string()))?;
                let mut store = self.store();
                match store.vote(id, vote, config.uac.quorum, now, &plan)? {
                    Some(change) => change.record.state,
                    None => {
                        store
                            .get(id)
                            .map_err(ChangeError::from)?
                            .ok_or_else(|| ChangeError::NotFound(id.to_string()))?
                            .state
                    }
                }
            }
        };
        Ok(json!({ "id": id, "state": state }))
    }

    fn api_list(&self, ctx: &Ctx) -> Answer {
        if self.session(ctx).is_none() {
            return error(StatusCode::UNAUTHORIZED, "log in first");
        }
        match self.store().list() {
            Ok(records) => json_answer(StatusCode::OK, &json!({ "proposals": records })),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }

    fn api_get(&self, ctx: &Ctx, id: &str) -> Answer {
        if self.session(ctx).is_none() {
            return error(StatusCode::UNAUTHORIZED, "log in first");
        }
        match self.load(id) {
            Ok(Some((record, votes, audit))) => json_answer(
                StatusCode::OK,
                &json!({
                    "proposal": record,
                    "allowed": workflow::allowed(record.state).iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                    "votes": votes,
                    "audit": audit,
                }),
            ),
            Ok(None) => error(StatusCode::NOT_FOUND, &format!("no proposal {id}")),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }

    /// The page language: `?lang=` (remembered in a cookie), the cookie, then Accept-Language.
    fn lang(&self, ctx: &Ctx) -> (Lang, Vec<String>) {
        if let Some(l) = ctx.query("lang").and_then(Lang::parse) {
            let c = session::cookie(LANG_COOKIE, l.code(), self.cookie_path(), 365 * 86_400);
            return (l, vec![c]);
        }
        if let Some(l) = ctx.cookie(LANG_COOKIE).and_then(Lang::parse) {
            return (l, Vec::new());
        }
        (Lang::negotiate(&ctx.accept_language), Vec::new())
    }

    fn page_list(&self, ctx: &Ctx) -> Answer {
        let (lang, cookies) = self.lang(ctx);
        let base = self.shared.config.base_path.as_str();
        let site = self.shared.config.site_id.as_str();
        let Some((session, sealed)) = self.session(ctx) else {
            let page = Page {
                lang,
                base,
                here: "/",
                site,
                viewer: None,
            };
            return html(
                StatusCode::OK,
                web::login(&page, self.shared.oidc.is_some()),
                &cookies,
            );
        };
        let csrf = self.shared.signer.csrf(&sealed);
        let viewer = Viewer {
            name: &session.name,
            email: &session.email,
            member: self.is_member(&session),
            diz: self.is_diz_staff(&session),
            csrf: &csrf,
        };
        let page = Page {
            lang,
            base,
            here: "/",
            site,
            viewer: Some(&viewer),
        };
        match self.store().list() {
            Ok(records) => html(
                StatusCode::OK,
                web::list(&page, &records, self.now()),
                &cookies,
            ),
            Err(e) => html(
                StatusCode::SERVICE_UNAVAILABLE,
                web::error(&page, &e.to_string(), None),
                &cookies,
            ),
        }
    }

    fn page_detail(&self, ctx: &Ctx, id: &str) -> Answer {
        let (lang, cookies) = self.lang(ctx);
        let base = self.shared.config.base_path.as_str();
        let site = self.shared.config.site_id.as_str();
        let here = format!("/proposals/{id}");
        let Some((session, sealed)) = self.session(ctx) else {
            return redirect(&format!("{base}/"), &cookies);
        };
        let csrf = self.shared.signer.csrf(&sealed);
        let viewer = Viewer {
            name: &session.name,
            email: &session.email,
            member: self.is_member(&session),
            diz: self.is_diz_staff(&session),
            csrf: &csrf,
        };
        let page = Page {
            lang,
            base,
            here: &here,
            site,
            viewer: Some(&viewer),
        };
        match self.load(id) {
            Ok(Some((record, votes, audit))) => {
                let d = web::Detail {
                    record: &record,
                    votes: &votes,
                    audit: &audit,
                    quorum: self.shared.config.uac.quorum,
                    now: self.now(),
                };
                html(StatusCode::OK, web::detail(&page, &d), &cookies)
            }
            Ok(None) => html(
                StatusCode::NOT_FOUND,
                web::error(&page, &format!("no proposal {id}"), None),
                &cookies,
            ),
            Err(e) => html(
                StatusCode::SERVICE_UNAVAILABLE,
                web::error(&page, &e.to_string(), None),
                &cookies,
            ),
        }
    }

    /// A form post: the CSRF token is a form field; success redirects back to the proposal
    /// (post/redirect/get), a refusal shows the reason with the same status code as the API.
    fn page_act(&self, ctx: &Ctx, id: &str, kind: &str, body: &[u8]) -> Answer {
        let fields = form(body);
        let (lang, cookies) = self.lang(ctx);
        let base = self.shared.config.base_path.as_str();
        let here = format!("/proposals/{id}");
        let token = field(&fields, "csrf").unwrap_or("");
        match self.act(ctx, id, kind, body, token) {
            Ok(_) => redirect(&format!("{base}{here}"), &cookies),
            Err(e) => {
                let page = Page {
                    lang,
                    base,
                    here: &here,
                    site: &self.shared.config.site_id,
                    viewer: None,
                };
                let message = e.body()["error"].as_str().unwrap_or("").to_string();
                html(
                    e.status(),
                    web::error(&page, &message, Some(&here)),
                    &cookies,
                )
            }
        }
    }

    async fn login(&self) -> Answer {
        let Some(oidc) = &self.shared.oidc else {
            return error(StatusCode::NOT_FOUND, "no OIDC login configured");
        };
        let expires = self.now().timestamp() + 600;
        match oidc.start(expires).await {
            Ok((url, login)) => {
                let sealed = self.shared.signer.seal(&login);
                redirect(
                    &url,
                    &[session::cookie(
                        LOGIN_COOKIE,
                        &sealed,
                        self.cookie_path(),
                        600,
                    )],
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "login cannot start");
                error(StatusCode::BAD_GATEWAY, &e.to_string())
            }
        }
    }

    async fn callback(&self, ctx: &Ctx) -> Answer {
        let Some(oidc) = &self.shared.oidc else {
            return error(StatusCode::NOT_FOUND, "no OIDC login configured");
        };
        let now = self.now();
        let login = ctx
            .cookie(LOGIN_COOKIE)
            .and_then(|c| self.shared.signer.open::<session::Login>(c, now));
        let (Some(login), Some(code), Some(state)) = (login, ctx.query("code"), ctx.query("state"))
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "no login in progress (or it expired), or the issuer sent no code: start again",
            );
        };
        match oidc
            .finish(
                &login,
                state,
                code,
                now.timestamp() + session::SESSION_SECONDS,
            )
            .await
        {
            Ok(s) => {
                tracing::info!(email = %s.email, member = self.is_member(&s), diz = self.is_diz_staff(&s), "logged in");
                let sealed = self.shared.signer.seal(&s);
                redirect(
                    &format!("{}/", self.shared.config.base_path),
                    &[
                        session::cookie(
                            SESSION_COOKIE,
                            &sealed,
                            self.cookie_path(),
                            session::SESSION_SECONDS,
                        ),
                        session::cookie(LOGIN_COOKIE, "", self.cookie_path(), 0),
                    ],
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "login refused");
                error(StatusCode::UNAUTHORIZED, &e.to_string())
            }
        }
    }

    fn logout(&self, ctx: &Ctx, body: &[u8]) -> Answer {
        let fields = form(body);
        if let Some((_, sealed)) = self.session(ctx)
            && !self
                .shared
                .signer
                .csrf_ok(&sealed, field(&fields, "csrf").unwrap_or(""))
        {
            return error(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
        redirect(
            &format!("{}/", self.shared.config.base_path),
            &[session::cookie(SESSION_COOKIE, "", self.cookie_path(), 0)],
        )
    }

    /// Serves the main listener on `api` and the ops endpoints on `ops` until `shutdown`.
    pub async fn serve(
        self,
        api: TcpListener,
        ops: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        http::serve(self, api, ops, shutdown).await;
    }
}

impl http::Service for Inbox {
    async fn api(&self, req: Request<Incoming>) -> Answer {
        self.handle(req).await
    }

    fn ops(&self, method: &Method, path: &str) -> Answer {
        Inbox::ops(self, method, path)
    }
}
