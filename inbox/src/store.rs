//! Persistent state behind the [`Store`] trait: proposals, votes, the audit trail and the outbox
//! of decisions and notifications still to deliver.
//!
//! Every change is one transaction: the state transition, its audit line and the outbox rows it
//! causes are written together (a transactional outbox), so a decision is never taken without
//! being queued for the central office, and a crash between the two cannot happen.
//!
//! The SQLite implementation is [`SqliteStore`] (one file on the inbox's volume, versioned
//! migrations from `miracolix_service::sqlite`); the PostgreSQL one is
//! [`crate::pgstore::PostgresStore`] (`postgres://` in `--database`), with the same numbered
//! migration steps (docs/proposals.md, "Storage").

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use miracolix_service::sqlite::{self, MigrateError};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::proposal::{Proposal, Verified};
use crate::workflow::{self, Action, Choice, Illegal, State, Vote};

pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE proposals (
        id TEXT PRIMARY KEY,
        payload BLOB NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL,
        received_at TEXT NOT NULL,
        deadline TEXT NOT NULL,
        decided_at TEXT
     );
     CREATE TABLE votes (
        proposal_id TEXT NOT NULL REFERENCES proposals(id),
        member TEXT NOT NULL,
        choice TEXT NOT NULL,
        conditions TEXT,
        reason TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (proposal_id, member)
     );
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        proposal_id TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
     );
     CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        delivered_at TEXT,
        last_error TEXT
     );
     CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
     );",
    // 1 -> 2: the data amount the DIZ check promises (FDPG's `dataAmount`).
    "ALTER TABLE proposals ADD COLUMN data_amount INTEGER;",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("database holds an unreadable value: {0}")]
    Corrupt(String),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("PostgreSQL connection: {0}")]
    Connect(String),
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no proposal {0}")]
    NotFound(String),
    #[error(transparent)]
    Illegal(#[from] Illegal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<miracolix_service::pg::PgError> for StoreError {
    fn from(e: miracolix_service::pg::PgError) -> Self {
        use miracolix_service::pg::PgError;
        match e {
            PgError::Sql(e) => StoreError::Postgres(e),
            PgError::Connect(text) => StoreError::Connect(text),
            PgError::Migrate(e) => StoreError::Migrate(e),
        }
    }
}

impl From<miracolix_service::pg::PgError> for ChangeError {
    fn from(e: miracolix_service::pg::PgError) -> Self {
        ChangeError::Store(e.into())
    }
}

impl From<postgres::Error> for ChangeError {
    fn from(e: postgres::Error) -> Self {
        ChangeError::Store(StoreError::Postgres(e))
    }
}

impl From<rusqlite::Error> for ChangeError {
    fn from(e: rusqlite::Error) -> Self {
        ChangeError::Store(StoreError::Sql(e))
    }
}

/// One stored proposal.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub proposal: Proposal,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub key_id: String,
    pub state: State,
    pub received_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// How many patients' data the site promises to deliver, recorded with the DIZ check
    /// (the MII portal's `dataAmount` of a site's approval).
    pub data_amount: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredVote {
    #[serde(flatten)]
    pub vote: Vote,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// What intake did with a verified proposal.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Created(Record),
    /// The same bytes were received before.
    Existing(Record),
    /// The id is known with different content.
    Conflict(Record),
}

/// A state change, for the outbox planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub record: Record,
    pub from: Option<State>,
    pub action: Option<Action>,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// Conditions or reasons that came with the change.
    pub texts: Vec<String>,
}

/// One message to deliver: to the central office (`channel` = [`DECISION_CHANNEL`]) or a
/// notification target (its name). `key` makes it unique: enqueuing the same key twice keeps the
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub key: String,
    pub channel: String,
    pub body: String,
}

pub const DECISION_CHANNEL: &str = "decisions";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub key: String,
    pub channel: String,
    pub body: String,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub name: String,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// Turns a change into the outbox rows it causes (decision, notifications); pure, supplied by the
/// caller from the configuration.
/// `Sync` because the PostgreSQL store runs a transaction on a helper thread (see
/// [`crate::pgstore`]).
pub type Planner<'a> = &'a (dyn Fn(&Change) -> Vec<OutboxItem> + Sync);

/// The inbox's persistence. Implementations make each method atomic.
pub trait Store: Send {
    /// Stores a verified proposal in `DIZ_CHECK`, idempotent on its id.
    fn receive(
        &mut self,
        verified: &Verified,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Intake, StoreError>;
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;
    fn list(&self) -> Result<Vec<Record>, StoreError>;
    /// Applies `action` (checked by [`workflow::transition`]) by `actor`; `data_amount`, when
    /// given, is recorded with it.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        id: &str,
        action: Action,
        actor: &str,
        texts: Vec<String>,
        data_amount: Option<u64>,
        now: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Change, ChangeError>;
    /// Records (or replaces) `vote` while voting is open, then takes the decision if the quorum
    /// is reached. Returns the change when the decision was taken.
    fn vote(
        &mut self,
        id: &str,
        vote: Vote,
        quorum: u32,
        now: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Option<Change>, ChangeError>;
    fn votes(&self, id: &str) -> Result<Vec<StoredVote>, StoreError>;
    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError>;
    /// Queues items outside a state change (deadline reminders); existing keys are kept.
    fn enqueue(&mut self, items: &[OutboxItem], now: DateTime<Utc>) -> Result<usize, StoreError>;
    /// Undelivered items whose next attempt is due.
    fn due(&self, now: DateTime<Utc>) -> Result<Vec<Pending>, StoreError>;
    fn delivered(&mut self, key: &str, channel: &str, now: DateTime<Utc>)
    -> Result<(), StoreError>;
    fn failed(
        &mut self,
        key: &str,
        channel: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn channels(&self) -> Result<Vec<ChannelStatus>, StoreError>;
    /// (delivered, pending) outbox rows of `channel`.
    fn outbox_counts(&self, channel: &str) -> Result<(u64, u64), StoreError>;
}

pub struct SqliteStore {
    conn: Connection,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {s:?}: {e}")))
}

const RECORD_COLUMNS: &str =
    "payload, key_id, state, received_at, deadline, decided_at, data_amount";

type RawRecord = (
    Vec<u8>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
);

fn raw_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// The amount as stored (a signed column in both databases) back to the count it is.
pub fn amount_from_db(v: Option<i64>) -> Result<Option<u64>, StoreError> {
    v.map(|n| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("data amount {n}"))))
        .transpose()
}

/// The count as stored; amounts beyond i64 are refused before they reach the store.
pub fn amount_to_db(v: Option<u64>) -> Result<Option<i64>, ChangeError> {
    v.map(|n| {
        i64::try_from(n).map_err(|_| {
            ChangeError::Store(StoreError::Corrupt(format!("data amount {n} is too large")))
        })
    })
    .transpose()
}

/// A vote is a transition too: refused unless the state is open for voting (the decision is
/// taken, or the DIZ check is not done). Both backends ask this inside their transaction.
pub fn voting_open(state: State) -> Result<(), ChangeError> {
    if state.voting_open() {
        return Ok(());
    }
    Err(ChangeError::Illegal(Illegal {
        from: state.as_str(),
        action: "vote",
        allowed: workflow::allowed(state),
    }))
}

/// The audit trail's action and detail for a vote: the choice, with its conditions or reason.
pub fn vote_audit(vote: &Vote, replaced: bool) -> (&'static str, String) {
    let text = vote
        .conditions
        .as_deref()
        .or(vote.reason.as_deref())
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    (
        if replaced { "vote replaced" } else { "vote" },
        format!("{}{text}", vote.choice.as_str()),
    )
}

/// The audit line of a transition.
pub fn transition_detail(from: State, to: State, texts: &[String], amount: Option<u64>) -> String {
    let mut detail = format!("{} → {}", from.as_str(), to.as_str());
    if !texts.is_empty() {
        detail.push_str(": ");
        detail.push_str(&texts.join("; "));
    }
    if let Some(n) = amount {
        detail.push_str(&format!(" [dataAmount {n}]"));
    }
    detail
}

fn record(raw: RawRecord) -> Result<Record, StoreError> {
    let (payload, key_id, state, received_at, deadline, decided_at, data_amount) = raw;
    let proposal = serde_json::from_slice(&payload)
        .map_err(|e| StoreError::Corrupt(format!("stored proposal: {e}")))?;
    Ok(Record {
        proposal,
        payload,
        key_id,
        state: State::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
        received_at: parse_ts(&received_at)?,
        deadline: parse_ts(&deadline)?,
        decided_at: decided_at.as_deref().map(parse_ts).transpose()?,
        data_amount: amount_from_db(data_amount)?,
    })
}

fn get_in(conn: &Connection, id: &str) -> Result<Option<Record>, StoreError> {
    conn.query_row(
        &format!("SELECT {RECORD_COLUMNS} FROM proposals WHERE id = ?1"),
        params![id],
        raw_record,
    )
    .optional()?
    .map(record)
    .transpose()
}

fn audit_in(
    tx: &Transaction<'_>,
    id: &str,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO audit (proposal_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, ts(at), actor, action, detail],
    )?;
    Ok(())
}

fn enqueue_in(
    tx: &Transaction<'_>,
    items: &[OutboxItem],
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    for item in items {
        n += tx.execute(
            "INSERT OR IGNORE INTO outbox (key, channel, body, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![item.key, item.channel, item.body, ts(now)],
        )?;
    }
    Ok(n)
}

/// Moves the stored proposal with `action`, writes the audit line and the planned outbox rows.
#[allow(clippy::too_many_arguments)]
fn transition_in(
    tx: &Transaction<'_>,
    id: &str,
    action: Action,
    actor: &str,
    texts: Vec<String>,
    data_amount: Option<u64>,
    now: DateTime<Utc>,
    plan: Planner,
) -> Result<Change, ChangeError> {
    let current = get_in(tx, id)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
    let to = workflow::transition(current.state, action)?;
    let decided = to.is_reported().then(|| ts(now));
    tx.execute(
        "UPDATE proposals SET state = ?2, decided_at = COALESCE(?3, decided_at),
            data_amount = COALESCE(?4, data_amount) WHERE id = ?1",
        params![id, to.as_str(), decided, amount_to_db(data_amount)?],
    )?;
    let detail = transition_detail(current.state, to, &texts, data_amount);
    audit_in(tx, id, now, actor, action.as_str(), &detail)?;
    let record = get_in(tx, id)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
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

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: sqlite::migrate(Connection::open(path)?, MIGRATIONS)?,
        })
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: sqlite::migrate(Connection::open_in_memory()?, MIGRATIONS)?,
        })
    }

    fn immediate(&mut self) -> rusqlite::Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
    }
}

impl Store for SqliteStore {
    fn receive(
        &mut self,
        verified: &Verified,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Intake, StoreError> {
        let tx = self.immediate()?;
        let id = &verified.proposal.id;
        if let Some(existing) = get_in(&tx, id)? {
            return Ok(if existing.payload == verified.payload {
                Intake::Existing(existing)
            } else {
                Intake::Conflict(existing)
            });
        }
        tx.execute(
            "INSERT INTO proposals (id, payload, key_id, signature, title, state, received_at, deadline)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                verified.payload,
                verified.key_id,
                verified.signature,
                verified.proposal.title,
                State::DizCheck.as_str(),
                ts(now),
                ts(deadline)
            ],
        )?;
        audit_in(
            &tx,
            id,
            now,
            &format!("central office (key {})", verified.key_id),
            "received",
            "→ DIZ_CHECK",
        )?;
        let record = get_in(&tx, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("{id} vanished after insert")))?;
        let change = Change {
            record: record.clone(),
            from: None,
            action: None,
            actor: "central office".into(),
            at: now,
            texts: Vec::new(),
        };
        enqueue_in(&tx, &plan(&change), now)?;
        tx.commit()?;
        Ok(Intake::Created(record))
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        get_in(&self.conn, id)
    }

    fn list(&self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM proposals ORDER BY deadline, id"
        ))?;
        let raws = stmt
            .query_map([], raw_record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(record).collect()
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
        let tx = self.immediate()?;
        let change = transition_in(&tx, id, action, actor, texts, data_amount, now, plan)?;
        tx.commit()?;
        Ok(change)
    }

    fn vote(
        &mut self,
        id: &str,
        vote: Vote,
        quorum: u32,
        now: DateTime<Utc>,
        plan: Planner,
    ) -> Result<Option<Change>, ChangeError> {
        let tx = self.immediate()?;
        let current = get_in(&tx, id)?.ok_or_else(|| ChangeError::NotFound(id.to_string()))?;
        voting_open(current.state)?;
        let replaced = tx.execute(
            "DELETE FROM votes WHERE proposal_id = ?1 AND member = ?2",
            params![id, vote.member],
        )? > 0;
        tx.execute(
            "INSERT INTO votes (proposal_id, member, choice, conditions, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, vote.member, vote.choice.as_str(), vote.conditions, vote.reason, ts(now)],
        )?;
        let (action, detail) = vote_audit(&vote, replaced);
        audit_in(&tx, id, now, &vote.member, action, &detail)?;
        let votes = votes_in(&tx, id)?
            .into_iter()
            .map(|v| v.vote)
            .collect::<Vec<_>>();
        let change = match workflow::tally(&votes, quorum) {
            Some(outcome) => {
                let action = outcome.action;
                Some(transition_in(
                    &tx,
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
    }

    fn votes(&self, id: &str) -> Result<Vec<StoredVote>, StoreError> {
        votes_in(&self.conn, id)
    }

    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, actor, action, detail FROM audit WHERE proposal_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(at, actor, action, detail)| {
                Ok(AuditEntry {
                    at: parse_ts(&at)?,
                    actor,
                    action,
                    detail,
                })
            })
            .collect()
    }

    fn enqueue(&mut self, items: &[OutboxItem], now: DateTime<Utc>) -> Result<usize, StoreError> {
        let tx = self.immediate()?;
        let n = enqueue_in(&tx, items, now)?;
        tx.commit()?;
        Ok(n)
    }

    fn due(&self, now: DateTime<Utc>) -> Result<Vec<Pending>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, channel, body, attempts FROM outbox
             WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY created_at, key",
        )?;
        let rows = stmt
            .query_map(params![ts(now)], |r| {
                Ok(Pending {
                    key: r.get(0)?,
                    channel: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn delivered(
        &mut self,
        key: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.immediate()?;
        tx.execute(
            "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE key = ?1 AND delivered_at IS NULL",
            params![key, ts(now)],
        )?;
        tx.execute(
            "INSERT INTO channels (name, last_error) VALUES (?1, NULL)
             ON CONFLICT (name) DO UPDATE SET last_error = NULL",
            params![channel],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn failed(
        &mut self,
        key: &str,
        channel: &str,
        error: &str,
        next_attempt: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.immediate()?;
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE key = ?1",
            params![key, error, ts(next_attempt)],
        )?;
        tx.execute(
            "INSERT INTO channels (name, failures, last_error) VALUES (?1, 1, ?2)
             ON CONFLICT (name) DO UPDATE SET failures = failures + 1, last_error = excluded.last_error",
            params![channel, error],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn channels(&self) -> Result<Vec<ChannelStatus>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, failures, last_error FROM channels ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ChannelStatus {
                    name: r.get(0)?,
                    failures: r.get::<_, i64>(1)?.max(0) as u64,
                    last_error: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn outbox_counts(&self, channel: &str) -> Result<(u64, u64), StoreError> {
        let (delivered, pending): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(delivered_at), COUNT(*) - COUNT(delivered_at) FROM outbox WHERE channel = ?1",
            params![channel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((delivered.max(0) as u64, pending.max(0) as u64))
    }
}

fn votes_in(conn: &Connection, id: &str) -> Result<Vec<StoredVote>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member, choice, conditions, reason, at FROM votes WHERE proposal_id = ?1 ORDER BY at, member",
    )?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(member, choice, conditions, reason, at)| {
            Ok(StoredVote {
                vote: Vote {
                    member,
                    choice: Choice::parse(&choice)
                        .ok_or_else(|| StoreError::Corrupt(format!("vote {choice}")))?,
                    conditions,
                    reason,
                },
                at: parse_ts(&at)?,
            })
        })
        .collect()
}
