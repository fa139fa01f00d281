//! Persistent state: the answer cache and the daily privacy budget, in SQLite on the gate's volume.
//!
//! Both must survive a restart, or a restart would hand out a fresh noise draw (averaging) and a
//! fresh budget. The decision for one query (cached? budget left? draw, record) runs in one
//! transaction under the caller's lock, so two identical queries at once cannot both draw.
//!
//! Schema versions: `miracolix_service::sqlite::migrate` (`MIGRATIONS[i]` moves version i to i+1).

use std::path::Path;

use miracolix_service::sqlite::MigrateError;
use rand_core::RngCore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::mechanism::{self, Rules};
use crate::ratelimit;

const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE answers (
        requester TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        true_count INTEGER NOT NULL,
        released INTEGER NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (requester, fingerprint, true_count)
     );
     CREATE TABLE budget (
        requester TEXT NOT NULL,
        day TEXT NOT NULL,
        spent REAL NOT NULL,
        PRIMARY KEY (requester, day)
     );",
    // 1 -> 2: the rate limit's sliding window, so that a restart does not reset it.
    "CREATE TABLE admitted (
        requester TEXT NOT NULL,
        at_ms INTEGER NOT NULL
     );
     CREATE INDEX admitted_by_requester ON admitted (requester, at_ms);",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// What the gate does with one query whose true count is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The same requester asked the same query with the same true count before: same answer, no ε.
    Cached { released: u64 },
    /// A fresh draw, recorded and charged.
    Fresh { released: u64, epsilon: f64 },
    /// A fresh draw would exceed today's budget.
    OverBudget { spent: f64, budget: f64 },
}

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::migrate(Connection::open(path)?)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(conn: Connection) -> Result<Self, StoreError> {
        let conn = miracolix_service::sqlite::migrate(conn, MIGRATIONS)?;
        Ok(Self { conn })
    }

    /// The rate limit: admits one query of `requester` at `now_ms` (Unix milliseconds) and
    /// records it, or says how many seconds to wait (`ratelimit::decide`). Entries older than an
    /// hour are dropped on the way, so the table holds at most `per_hour` rows per requester.
    pub fn admit(
        &mut self,
        requester: &str,
        per_hour: u32,
        now_ms: i64,
    ) -> Result<Result<(), u64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM admitted WHERE requester = ?1 AND at_ms <= ?2",
            params![requester, now_ms - ratelimit::HOUR_MS],
        )?;
        let (admitted, oldest_ms): (i64, Option<i64>) = tx.query_row(
            "SELECT COUNT(*), MIN(at_ms) FROM admitted WHERE requester = ?1",
            params![requester],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let window = ratelimit::Window {
            admitted: admitted.max(0) as u64,
            oldest_ms,
        };
        let decision = ratelimit::decide(window, per_hour, now_ms);
        if decision.is_ok() {
            tx.execute(
                "INSERT INTO admitted (requester, at_ms) VALUES (?1, ?2)",
                params![requester, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(decision)
    }

    /// Decides and records the answer for `true_count`. `day` is the UTC date (`YYYY-MM-DD`) the
    /// budget is charged to; `now` the RFC 3339 time recorded with a fresh answer.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        requester: &str,
        fingerprint: &str,
        true_count: u64,
        rules: &Rules,
        daily_budget: f64,
        day: &str,
        now: &str,
        rng: &mut impl RngCore,
    ) -> Result<Decision, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cached: Option<i64> = tx
            .query_row(
                "SELECT released FROM answers WHERE requester = ?1 AND fingerprint = ?2 AND true_count = ?3",
                params![requester, fingerprint, true_count as i64],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(released) = cached {
            return Ok(Decision::Cached {
                released: released.max(0) as u64,
            });
        }
        let spent: f64 = tx
            .query_row(
                "SELECT spent FROM budget WHERE requester = ?1 AND day = ?2",
                params![requester, day],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0.0);
        // A small tolerance so that ten queries at ε 0.1 fit a budget of 1.0 despite rounding.
        if spent + rules.epsilon > daily_budget + 1e-9 {
            return Ok(Decision::OverBudget {
                spent,
                budget: daily_budget,
            });
        }
        let released = mechanism::obfuscate(true_count, rules, rng);
        tx.execute(
            "INSERT INTO answers (requester, fingerprint, true_count, released, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![requester, fingerprint, true_count as i64, released as i64, now],
        )?;
        tx.execute(
            "INSERT INTO budget (requester, day, spent) VALUES (?1, ?2, ?3)
             ON CONFLICT (requester, day) DO UPDATE SET spent = spent + excluded.spent",
            params![requester, day, rules.epsilon],
        )?;
        tx.commit()?;
        Ok(Decision::Fresh {
            released,
            epsilon: rules.epsilon,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const RULES: Rules = Rules {
        epsilon: 0.5,
        round_to: 10,
        suppress_below: 5,
    };

    #[test]
    fn caching_defeats_averaging() {
        // Without the cache, averaging n answers shrinks the noise by √n; with it every repeat
        // returns the first answer, so the average is that one draw.
        let mut store = Store::in_memory().expect("store");
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut answers = Vec::new();
        for _ in 0..50 {
            match store
                .decide("a", "fp", 137, &RULES, 100.0, "2026-11-29", "t", &mut rng)
                .expect("decide")
            {
                Decision::Fresh { released, .. } | Decision::Cached { released } => {
                    answers.push(released)
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        // The cache is per requester: another requester gets its own draw (and pays for it).
        let other = store
            .decide("b", "fp", 137, &RULES, 100.0, "2026-11-29", "t", &mut rng)
            .expect("decide");
        assert!(matches!(other, Decision::Fresh { .. }), "{other:?}");
        // A changed true count (new data) is a new answer.
        let changed = store
            .decide("a", "fp", 138, &RULES, 100.0, "2026-11-29", "t", &mut rng)
            .expect("decide");
        assert!(matches!(changed, Decision::Fresh { .. }), "{changed:?}");
    }

    #[test]
    fn without_the_cache_averaging_would_tell_close_counts_apart() {
        // The threat the cache exists for, shown with the mechanism alone: one answer for 133 or
        // 137 is usually "130" or "140" either way, but the averages of 2000 fresh answers
        // separate the two true counts clearly.
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let mut mean = |true_count| {
            (0..2000)
                .map(|_| mechanism::obfuscate(true_count, &RULES, &mut rng) as f64)
                .sum::<f64>()
                / 2000.0
        };
        let (low, high) = (mean(133), mean(137));
        assert!(high - low > 2.0, "means {low} and {high}");
    }

    #[test]
    fn budget_is_spent_per_fresh_answer_and_refuses_when_exhausted() {
        let mut store = Store::in_memory().expect("store");
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let day = "2026-11-29";
        for i in 0..4 {
            let d = store
                .decide("a", &format!("q{i}"), 10, &RULES, 2.0, day, "t", &mut rng)
                .expect("decide");
            assert!(
                matches!(d, Decision::Fresh { epsilon, .. } if epsilon == 0.5),
                "{d:?}"
            );
        }
        // Fifth distinct query: 2.0 spent, 0.5 more would exceed the budget.
        let d = store
            .decide("a", "q4", 10, &RULES, 2.0, day, "t", &mut rng)
            .expect("decide");
        assert_eq!(
            d,
            Decision::OverBudget {
                spent: 2.0,
                budget: 2.0
            }
        );
        // A repeat of an answered query is still served: it releases nothing new.
        let d = store
            .decide("a", "q0", 10, &RULES, 2.0, day, "t", &mut rng)
            .expect("decide");
        assert!(matches!(d, Decision::Cached { .. }), "{d:?}");
        // Next day, fresh budget; another requester never shared it.
        let d = store
            .decide("a", "q4", 10, &RULES, 2.0, "2026-11-30", "t", &mut rng)
            .expect("decide");
        assert!(matches!(d, Decision::Fresh { .. }), "{d:?}");
        let d = store
            .decide("b", "q4", 10, &RULES, 2.0, day, "t", &mut rng)
            .expect("decide");
        assert!(matches!(d, Decision::Fresh { .. }), "{d:?}");
    }

    #[test]
    fn rate_window_is_per_requester_and_slides() {
        let mut store = Store::in_memory().expect("store");
        const HOUR: i64 = ratelimit::HOUR_MS;
        assert_eq!(store.admit("a", 2, 0).expect("admit"), Ok(()));
        assert_eq!(store.admit("a", 2, 1_000).expect("admit"), Ok(()));
        assert_eq!(store.admit("a", 2, 2_000).expect("admit"), Err(3_598));
        assert_eq!(store.admit("b", 2, 2_000).expect("admit"), Ok(()));
        // One hour after the first query one slot is free again; the refusal took none.
        assert_eq!(store.admit("a", 2, HOUR).expect("admit"), Ok(()));
        assert_eq!(store.admit("a", 2, HOUR + 1).expect("admit"), Err(1));
    }

    #[test]
    fn state_survives_reopening_and_refuses_a_newer_schema() {
        let dir = std::env::temp_dir().join(format!("gate-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let first = {
            let mut s = Store::open(&path).expect("open");
            s.decide("a", "fp", 40, &RULES, 5.0, "d", "t", &mut rng)
                .expect("decide")
        };
        let Decision::Fresh { released, .. } = first else {
            panic!("{first:?}")
        };
        let mut s = Store::open(&path).expect("reopen");
        let again = s
            .decide("a", "fp", 40, &RULES, 5.0, "d", "t", &mut rng)
            .expect("decide");
        assert_eq!(again, Decision::Cached { released });
        s.conn
            .pragma_update(None, "user_version", 99)
            .expect("bump");
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::Migrate(MigrateError::TooNew { found: 99, .. }))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
