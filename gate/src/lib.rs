//! The feasibility privacy gate: a FLARE-compatible endpoint in front of the site's query
//! executor that decides what count leaves the site.
//!
//! API, as FLARE v2.8.0 serves it (`rest/QueryController.java`): `POST /query/execute` with the
//! structured query as `application/sq+json`, answered `200` with the count as a bare JSON number,
//! `400 {"error": …}` for a query FLARE cannot map. The DSF feasibility process calls exactly this
//! (mii-process-feasibility v1.0.0.11, `FlareWebserviceClientImpl.requestFeasibility`: posts the
//! query, parses a digit string) and `GET /cache/stats` as its connection test, so the gate answers
//! both and a site points the process at the gate instead of FLARE.
//!
//! Two query listeners: plain HTTP inside the namespace (bearer tokens, `auth.rs`) and, in
//! direct-broker mode, mutual TLS that the gate terminates itself (`tls.rs`; the client
//! certificate is the caller).
//!
//! Per query: authenticate → parse → rate limit → ask the executor → cache / budget / noise
//! (`store::Store::decide`) → audit line → answer. Status codes: 400 bad query, 401 no or bad
//! token, 403 known but not allowed, 429 rate or budget (with Retry-After), 502 executor failed.
//! Refused logins are audited with the name claimed, never the credential.
//! Nothing logged or audited identifies a patient: no true count, no query text.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod executor;
pub mod mechanism;
pub mod metrics;
pub mod query;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{Gate, GateConfig, MtlsListener, Peer};
