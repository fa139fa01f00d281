//! The consortium hub: the one place that sees every site, without access to any site's cluster.
//!
//! - **Release feed** (`GET /feed/v1`, [`feed`]): the signed ComponentReleases and revocations the
//!   consortium published, served from a directory, each verified against the trusted keys before
//!   it is served; an operator following the feed verifies again.
//! - **Site reports** (`POST /api/v1/reports`, [`report`]): a signed, minimal report per site
//!   (release, component health, Data Map counts already obfuscated at the site), verified against
//!   the site's registered key ([`sites`]); refused and counted when bad, stale or replayed.
//! - **Release matrix** (`GET /api/v1/matrix`, [`matrix`]) and **Data Map**
//!   (`GET /api/v1/datamap`, [`datamap`]: shown per resource type only when at least three sites
//!   report it, totals in buckets), as JSON and as a web page ([`page`]).
//!
//! The formats ([`feed`], [`report`]) are what the operator's feed follower and report pusher
//! speak; they depend on this crate for them. docs/consortium.md describes the flow.

pub mod access;
pub mod cli;
pub mod datamap;
pub mod feed;
pub mod matrix;
pub mod metrics;
pub mod page;
pub mod pgstore;
pub mod report;
pub mod server;
pub mod sites;
pub mod store;
pub mod testing;

pub use server::{Hub, HubConfig};
