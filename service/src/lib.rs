//! What the project's HTTP services share, so that each service crate (`gate/`, `hub/`, `inbox/`)
//! holds only its own rules: the server loop with an API and an ops listener ([`http`]), the stop
//! signal ([`shutdown`]), versioned SQLite migrations ([`sqlite`]), the PostgreSQL connection,
//! `--database` URL and migrations ([`pg`]), hashed static bearer tokens ([`token`]), JSON
//! config files ([`config`]) and the process wrapper with JSON logs ([`process`]).

pub mod config;
pub mod http;
pub mod pg;
#[cfg(feature = "test-postgres")]
pub mod pg_test_server;
pub mod process;
pub mod sqlite;
pub mod token;

pub use process::shutdown;
