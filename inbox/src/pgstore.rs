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
//! TLS, the connection and the migration runner are `miracolix_service::pg`'s (shared with the
//! hub): see [`miracolix_service::pg::connect_options`].

use std::path::Path;

use chrono::{DateTime, Utc};
use miracolix_service::pg::{self, Connection, PgError, Schema};
use postgres::{Client, GenericClient, Row, Transaction};

pub use miracolix_service::pg::ConnectOptions;

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

/// The steps and where the applied versions are recorded (the inbox's first release named the
/// table so; the hub has its own, so both may share one database).
const SCHEMA: Schema = Schema {
    migrations: MIGRATIONS,
    versions_table: "schema_migrations",
};

/// [`pg::connect_options`] as the inbox connects (`application_name=miracolix-inbox`).
pub fn connect_options(url: &str, ca_file: Option<&Path>) -> Result<ConnectOptions, StoreError> {
    Ok(pg::connect_options(url, ca_file, "miracolix-inbox")?)
}

/// Brings the database to `steps.len()`; returns how many steps were applied.
pub fn migrate(client: &mut Client, steps: &[&str]) -> Result<usize, StoreError> {
    Ok(pg::migrate(client, SCHEMA.versions_table, steps)?)
}

pub struct PostgresStore {
    conn: Connection,
}

impl PostgresStore {
    /// Connects and migrates.
    pub fn open(options: ConnectOptions) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Connection::open(options, SCHEMA)?,
        })
    }

    fn with<T: Send, E: From<PgError> + Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        self.conn.with(f)
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
}
