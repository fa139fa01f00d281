//! PostgreSQL behind the [`Store`] trait: the CloudNativePG cluster the controller creates for
//! `spec.database.cloudNativePG`, or an external server (`spec.database.externalSecretRef`).
//!
//! Same guarantees as [`crate::store::SqliteStore`]: every change is one transaction (state,
//! audit line and outbox rows together); intake is idempotent on the proposal id (`INSERT … ON
//! CONFLICT DO NOTHING`, so two replicas racing on the same proposal store it once); a
//! transition locks its proposal row (`SELECT … FOR UPDATE`) so two changes to one proposal are
//! serialised as SQLite's single writer serialises them.
//!
//! Migrations: [`MIGRATIONS`] has the same numbered steps as [`crate::store::MIGRATIONS`] (the
//! SQL differs: `TIMESTAMPTZ`, `BYTEA`, `BIGSERIAL`). Applied versions are rows of
//! `schema_migrations`; all pending steps run in one transaction under an advisory lock, so two
//! inbox pods starting together migrate once. A database with a newer version than this
//! program knows is refused (an older binary after a rollback must not write a newer schema).
//!
//! TLS: see [`connect_options`].
//!
//! The `postgres` crate is synchronous and drives its connection on a runtime of its own, which
//! tokio forbids on a thread that already runs async tasks (the server calls the store from its
//! handlers, like the SQLite store). [`off_runtime`] runs each call on a short scoped thread
//! there; the store's own lock serialises calls, as the server's mutex already does.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use miracolix_service::sqlite::MigrateError;
use postgres::config::SslMode;
use postgres::{Client, Config, GenericClient, Row, Transaction};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::proposal::Verified;
use crate::store::{
    AuditEntry, Change, ChangeError, ChannelStatus, Intake, OutboxItem, Pending, Planner, Record,
    Store, StoreError, StoredVote, amount_from_db, amount_to_db, transition_detail, vote_audit,
    voting_open,
};
use crate::workflow::{self, Action, Choice, State, Vote};

/// Schema steps; `MIGRATIONS[i]` moves version i to i+1, the same steps as SQLite's
/// (`store::MIGRATIONS`). Never edit a released step; add one.
pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE proposals (
        id TEXT PRIMARY KEY,
        payload BYTEA NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        deadline TIMESTAMPTZ NOT NULL,
        decided_at TIMESTAMPTZ
     );
     CREATE TABLE votes (
        proposal_id TEXT NOT NULL REFERENCES proposals(id),
        member TEXT NOT NULL,
        choice TEXT NOT NULL,
        conditions TEXT,
        reason TEXT,
        at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (proposal_id, member)
     );
     CREATE TABLE audit (
        seq BIGSERIAL PRIMARY KEY,
        proposal_id TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
     );
     CREATE INDEX audit_proposal ON audit (proposal_id, seq);
     CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        delivered_at TIMESTAMPTZ,
        last_error TEXT
     );
     CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        failures BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
     );",
    // 1 -> 2: the data amount the DIZ check promises (FDPG's `dataAmount`).
    "ALTER TABLE proposals ADD COLUMN data_amount BIGINT;",
];

/// `pg_advisory_xact_lock` key of the migration step: "MIRACOLX" in ASCII, so it does not
/// collide with another program's lock on a shared server.
const MIGRATION_LOCK: i64 = 0x4D49_5241_434F_4C58;

/// How the store connects: the parsed URL and the TLS connector.
#[derive(Clone)]
pub struct ConnectOptions {
    config: Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's Debug redacts the password.
        f.debug_struct("ConnectOptions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn connect_error(message: impl Into<String>) -> StoreError {
    StoreError::Connect(message.into())
}

/// Parses a libpq-style URL (`postgres://` or `postgresql://`) and decides TLS.
///
/// CloudNativePG (checked against its source and docs): the `<cluster>-app` Secret's `uri` is
/// `postgresql://<owner>:<password>@<cluster>-rw.<namespace>:5432/<database>` without any
/// `sslmode`; the server always has TLS on, with a certificate signed by the cluster's own CA
/// (Secret `<cluster>-ca`, key `ca.crt`, "used as sslrootcert in clients" — CNPG docs,
/// Certificates); its default pg_hba.conf ends in `host all all all scram-sha-256`
/// (pkg/postgres/configuration.go, hbaTemplateString), so the server would also accept a plain
/// connection. The inbox does not allow that when it has a CA: with `ca_file` (the controller
/// mounts `<cluster>-ca` there) an unset `sslmode` becomes `require`, verified against that CA
/// and the host name (the server certificate names the `-rw` Service).
///
/// `tokio-postgres` knows only `disable`, `prefer` and `require`; libpq's `verify-ca` and
/// `verify-full` are read as `require`, which with rustls always verifies the chain and the host
/// name (so `verify-ca` is stricter here than in libpq). `sslrootcert=<path>` in the URL is
/// the CA file when `ca_file` is not given. Without a CA file the system's roots are used.
pub fn connect_options(url: &str, ca_file: Option<&Path>) -> Result<ConnectOptions, StoreError> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| connect_error(format!("--database is no URL: {e}")))?;
    let mut ssl_mode: Option<String> = None;
    let mut root_cert: Option<PathBuf> = None;
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => ssl_mode = Some(v.into_owned()),
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let ca = ca_file.map(Path::to_path_buf).or(root_cert);
    let mode = match ssl_mode.as_deref() {
        None if ca.is_some() => SslMode::Require,
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => {
            return Err(connect_error(format!(
                "sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut config =
        Config::from_str(parsed.as_str()).map_err(|e| connect_error(format!("--database: {e}")))?;
    config.ssl_mode(mode);
    if config.get_application_name().is_none() {
        config.application_name("miracolix-inbox");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let mut roots = rustls::RootCertStore::empty();
    match &ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| connect_error(format!("CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(connect_error(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| connect_error(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => {
            // Unreadable system certificates are skipped, as every rustls client here does.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| connect_error(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(ConnectOptions {
        config,
        tls: MakeRustlsConnect::new(tls),
    })
}

/// Runs `f` where the synchronous client may block: directly outside a tokio runtime, else on
/// a scoped thread (a panic in `f` is re-raised here, so a transaction's drop still rolls back).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

pub struct PostgresStore {
    options: ConnectOptions,
    /// `None` only while dropping: the client's own drop blocks on its runtime, so it is
    /// dropped off the async runtime too ([`Drop`] below).
    client: Mutex<Option<Client>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let slot = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = slot.take() {
            off_runtime(move || drop(client));
        }
    }
}

/// Brings the database to `steps.len()`; returns how many steps were applied.
pub fn migrate(client: &mut Client, steps: &[&str]) -> Result<usize, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = steps.len() as i64;
    if i64::from(found) > known {
        return Err(StoreError::Migrate(MigrateError::TooNew {
            found: found.into(),
            known,
        }));
    }
    let mut applied = 0;
    for (i, sql) in steps.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )?;
        applied += 1;
    }
    tx.commit()?;
    Ok(applied)
}

fn connect(options: &ConnectOptions) -> Result<Client, StoreError> {
    let options = options.clone();
    off_runtime(move || {
        options
            .config
            .connect(options.tls)
            .map_err(|e| connect_error(describe_connect_error(&e)))
    })
}

/// The error with its causes: a TLS failure ("invalid peer certificate: UnknownIssuer") is the
/// source, which `Display` alone does not show.
fn describe_connect_error(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl PostgresStore {
    /// Connects and migrates.
    pub fn open(options: ConnectOptions) -> Result<Self, StoreError> {
        Self::open_with(options, MIGRATIONS)
    }

    /// [`Self::open`] with other steps (tests: a schema newer than the binary).
    pub fn open_with(options: ConnectOptions, steps: &[&str]) -> Result<Self, StoreError> {
        let mut client = connect(&options)?;
        if let Err(e) = off_runtime(|| migrate(&mut client, steps)) {
            off_runtime(move || drop(client));
            return Err(e);
        }
        Ok(Self {
            options,
            client: Mutex::new(Some(client)),
        })
    }

    /// Runs `f` with the connection, reconnecting first when the server closed it (a failover
    /// of the CloudNativePG primary closes every connection).
    fn with<T: Send, E: From<StoreError> + Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let slot: &mut Option<Client> = &mut guard;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let fresh = connect(&self.options)?;
            if let Some(old) = slot.replace(fresh) {
                off_runtime(move || drop(old));
            }
        }
        match slot.as_mut() {
            Some(client) => off_runtime(move || f(client)),
            None => Err(connect_error("no connection").into()),
        }
    }
}

const RECORD_COLUMNS: &str =
    "payload, key_id, state, received_at, deadline, decided_at, data_amount";

fn record(row: &Row) -> Result<Record, StoreError> {
    let payload: Vec<u8> = row.try_get(0)?;
    let state: String = row.try_get(2)?;
    let proposal = serde_json::from_slice(&payload)
        .map_err(|e| StoreError::Corrupt(format!("stored proposal: {e}")))?;
    Ok(Record {
        proposal,
        payload,
        key_id: row.try_get(1)?,
        state: State::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
        received_at: row.try_get(3)?,
        deadline: row.try_get(4)?,
        decided_at: row.try_get(5)?,
        data_amount: amount_from_db(row.try_get(6)?)?,
    })
}

fn get_in(c: &mut impl GenericClient, id: &str, lock: bool) -> Result<Option<Record>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM proposals WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(sql.as_str(), &[&id])?
        .as_ref()
        .map(record)
        .transpose()
}

fn audit_in(
    tx: &mut Transaction<'_>,
    id: &str,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO audit (proposal_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &at, &actor, &action, &detail],
    )?;
    Ok(())
}

fn enqueue_in(
    tx: &mut Transaction<'_>,
    items: &[OutboxItem],
    now: DateTime<Utc>,
) -> Result<usize, postgres::Error> {
    let mut n = 0;
    for item in items {
        n += tx.execute(
            "INSERT INTO outbox (key, channel, body, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (key) DO NOTHING",
            &[&item.key, &item.channel, &item.body, &now],
        )? as usize;
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
fn transition_in(
    tx: &mut Transaction<'_>,
    id: &str,
    action: Action,
    actor: &str,
    texts: Vec<String>,
    data_amount: Option<u64>,
    now: DateTime<Utc>,
    plan: Planner,
) -> Result<Change, ChangeError> {
    let current = get_in(tx, id, true)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
    let to = workflow::transition(current.state, action)?;
    let decided = to.is_reported().then_some(now);
    let amount = amount_to_db(data_amount)?;
    tx.execute(
        "UPDATE proposals SET state = $2, decided_at = COALESCE($3, decided_at),
            data_amount = COALESCE($4, data_amount) WHERE id = $1",
        &[&id, &to.as_str(), &decided, &amount],
    )?;
    let detail = transition_detail(current.state, to, &texts, data_amount);
    audit_in(tx, id, now, actor, action.as_str(), &detail)?;
    let record = get_in(tx, id, false)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
    let change = Change {
        record,
        from: Some(current.state),
        action: Some(action),
        actor: actor.to_string(),
        at: now,
        texts,
    };
    enqueue_in(tx, &plan(&change), now)?;
    Ok(change)
}

fn votes_in(c: &mut impl GenericClient, id: &str) -> Result<Vec<StoredVote>, StoreError> {
    c.query(
        "SELECT member, choice, conditions, reason, at FROM votes WHERE proposal_id = $1 ORDER BY at, member",
        &[&id],
    )?
    .iter()
    .map(|r| {
        let choice: String = r.try_get(1)?;
        Ok(StoredVote {
            vote: Vote {
                member: r.try_get(0)?,
                choice: Choice::parse(&choice)
                    .ok_or_else(|| StoreError::Corrupt(format!("vote {choice}")))?,
                conditions: r.try_get(2)?,
                reason: r.try_get(3)?,
            },
            at: r.try_get(4)?,
        })
    })
    .collect()
}

impl Store for PostgresStore {
    fn receive(
        &mut self,
        verified: &Verified,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Intake, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let id = verified.proposal.id.as_str();
            let inserted = tx.execute(
                "INSERT INTO proposals (id, payload, key_id, signature, title, state, received_at, deadline)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                &[
                    &id,
                    &verified.payload,
                    &verified.key_id,
                    &verified.signature,
                    &verified.proposal.title,
                    &State::DizCheck.as_str(),
                    &now,
                    &deadline,
                ],
            )?;
            if inserted == 0 {
                let existing = get_in(&mut tx, id, false)?
                    .ok_or_else(|| StoreError::Corrupt(format!("{id} conflicted but is missing")))?;
                return Ok(if existing.payload == verified.payload {
                    Intake::Existing(existing)
                } else {
                    Intake::Conflict(existing)
                });
            }
            audit_in(
                &mut tx,
                id,
                now,
                &format!("central office (key {})", verified.key_id),
                "received",
                "→ DIZ_CHECK",
            )?;
            let record = get_in(&mut tx, id, false)?
                .ok_or_else(|| StoreError::Corrupt(format!("{id} vanished after insert")))?;
            let change = Change {
                record: record.clone(),
                from: None,
                action: None,
                actor: "central office".into(),
                at: now,
                texts: Vec::new(),
            };
            enqueue_in(&mut tx, &plan(&change), now)?;
            tx.commit()?;
            Ok(Intake::Created(record))
        })
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.with(|c| get_in(c, id, false))
    }

    fn list(&self) -> Result<Vec<Record>, StoreError> {
        self.with(|c| {
            c.query(
                format!("SELECT {RECORD_COLUMNS} FROM proposals ORDER BY deadline, id").as_str(),
                &[],
            )?
            .iter()
            .map(record)
            .collect()
        })
    }

    fn apply(
        &mut self,
        id: &str,
        action: Action,
        actor: &str,
        texts: Vec<String>,
        data_amount: Option<u64>,
        now: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Change, ChangeError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let change = transition_in(&mut tx, id, action, actor, texts, data_amount, now, plan)?;
            tx.commit()?;
            Ok(change)
        })
    }

    fn vote(
        &mut self,
        id: &str,
        vote: Vote,
        quorum: u32,
        now: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Option<Change>, ChangeError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let current =
                get_in(&mut tx, id, true)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
            voting_open(current.state)?;
            let replaced = tx.execute(
                "DELETE FROM votes WHERE proposal_id = $1 AND member = $2",
                &[&id, &vote.member],
            )? > 0;
            tx.execute(
                "INSERT INTO votes (proposal_id, member, choice, conditions, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &vote.member, &vote.choice.as_str(), &vote.conditions, &vote.reason, &now],
            )?;
            let (action, detail) = vote_audit(&vote, replaced);
            audit_in(&mut tx, id, now, &vote.member, action, &detail)?;
            let votes = votes_in(&mut tx, id)?
                .into_iter()
                .map(|v| v.vote)
                .collect::<Vec<_>>();
            let change = match workflow::tally(&votes, quorum) {
                Some(outcome) => {
                    let action = outcome.action;
                    Some(transition_in(
                        &mut tx,
                        id,
                        action,
                        &format!("UAC (quorum {quorum})"),
                        outcome.into_texts(),
                        None,
                        now,
                        plan,
                    )?)
                }
                None => None,
            };
            tx.commit()?;
            Ok(change)
        })
    }

    fn votes(&self, id: &str) -> Result<Vec<StoredVote>, StoreError> {
        self.with(|c| votes_in(c, id))
    }

    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT at, actor, action, detail FROM audit WHERE proposal_id = $1 ORDER BY seq",
                &[&id],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    detail: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn enqueue(&mut self, items: &[OutboxItem], now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let n = enqueue_in(&mut tx, items, now)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn due(&self, now: DateTime<Utc>) -> Result<Vec<Pending>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT key, channel, body, attempts FROM outbox
                 WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY created_at, key",
                &[&now],
            )?
            .iter()
            .map(|r| {
                Ok(Pending {
                    key: r.try_get(0)?,
                    channel: r.try_get(1)?,
                    body: r.try_get(2)?,
                    attempts: r.try_get::<_, i32>(3)?.max(0) as u32,
                })
            })
            .collect()
        })
    }

    fn delivered(
        &mut self,
        key: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE key = $1 AND delivered_at IS NULL",
                &[&key, &now],
            )?;
            tx.execute(
                "INSERT INTO channels (name, last_error) VALUES ($1, NULL)
                 ON CONFLICT (name) DO UPDATE SET last_error = NULL",
                &[&channel],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn failed(
        &mut self,
        key: &str,
        channel: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE key = $1",
                &[&key, &error, &next_attempt],
            )?;
            tx.execute(
                "INSERT INTO channels (name, failures, last_error) VALUES ($1, 1, $2)
                 ON CONFLICT (name) DO UPDATE SET failures = channels.failures + 1, last_error = excluded.last_error",
                &[&channel, &error],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn channels(&self) -> Result<Vec<ChannelStatus>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT name, failures, last_error FROM channels ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ChannelStatus {
                    name: r.try_get(0)?,
                    failures: r.try_get::<_, i64>(1)?.max(0) as u64,
                    last_error: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn outbox_counts(&self, channel: &str) -> Result<(u64, u64), StoreError> {
        self.with(|c| {
            let row = c.query_one(
                "SELECT COUNT(delivered_at), COUNT(*) - COUNT(delivered_at) FROM outbox WHERE channel = $1",
                &[&channel],
            )?;
            let delivered: i64 = row.try_get(0)?;
            let pending: i64 = row.try_get(1)?;
            Ok((delivered.max(0) as u64, pending.max(0) as u64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_numbered_steps_as_sqlite() {
        assert_eq!(MIGRATIONS.len(), crate::store::MIGRATIONS.len());
    }

    fn mode(url: &str, ca: Option<&Path>) -> Result<SslMode, String> {
        connect_options(url, ca)
            .map(|o| o.config.get_ssl_mode())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ssl_modes_from_the_url_and_the_ca_file() {
        let dir = std::env::temp_dir().join(format!("pgstore-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.crt");
        let cert = rcgen::generate_simple_self_signed(vec!["db".into()]).expect("cert");
        std::fs::write(&ca, cert.cert.pem()).expect("write");
        // CloudNativePG's uri has no sslmode: with its CA mounted, TLS is required.
        let cnpg = "postgresql://app:pw@inbox-inbox-db-rw.ns:5432/app";
        assert_eq!(mode(cnpg, Some(&ca)), Ok(SslMode::Require));
        assert_eq!(mode(cnpg, None), Ok(SslMode::Prefer));
        assert_eq!(
            mode(&format!("{cnpg}?sslmode=verify-full"), None),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode(
                &format!("{cnpg}?sslmode=verify-ca&sslrootcert={}", ca.display()),
                None
            ),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode(&format!("{cnpg}?sslmode=disable"), Some(&ca)),
            Ok(SslMode::Disable)
        );
        let err = mode(&format!("{cnpg}?sslmode=allow"), None).expect_err("allow");
        assert!(err.contains("sslmode=allow"), "{err}");
        let missing = dir.join("missing.crt");
        let err = mode(cnpg, Some(&missing)).expect_err("missing CA");
        assert!(err.contains("missing.crt"), "{err}");
        std::fs::write(&missing, "not a certificate").expect("write");
        let err = mode(cnpg, Some(&missing)).expect_err("empty CA");
        assert!(err.contains("no certificate"), "{err}");
        // The password never shows in the options' Debug output.
        let shown = format!("{:?}", connect_options(cnpg, None).expect("options"));
        assert!(!shown.contains("pw"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
