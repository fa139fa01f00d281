//! The proposal inbox of one site (docs/proposals.md): the central office posts signed research
//! proposals; the DIZ checks whether it can deliver the data; the site's Use and Access Committee
//! votes; the decision is signed and posted back; every step is in the audit trail; people are
//! notified by e-mail or webhook. Staff and members use a server-rendered page behind the site's
//! OIDC login.
//!
//! Modules: `workflow` (the pure state machine, quorum, deadline), `proposal` (signed intake and
//! keys), `store` (persistence behind a trait; SQLite), `pgstore` (PostgreSQL), `outbox` (decisions and notifications,
//! retried), `notify` (e-mail, webhook), `oidc` and `session` (login), `web` (the page),
//! `server` (routing), `api` (the summary the controller reads), `cli`.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod outbox;
pub mod pgstore;
pub mod proposal;
pub mod server;
pub mod session;
pub mod store;
pub mod web;
pub mod workflow;

pub use server::{Inbox, Parts};
