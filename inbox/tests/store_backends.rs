//! One store test body, two backends: SQLite (in memory) and a real PostgreSQL server started by
//! the test (tests/common/postgres.rs; skipped with the reason outside CI when PostgreSQL is not
//! installed, a failure under `CI=true`). Plus what only PostgreSQL has: migrations recorded in
//! `schema_migrations`, TLS against the server's CA as with CloudNativePG.

mod common;

use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Duration, Utc};
use miracolix_inbox::pgstore::{self, PostgresStore, connect_options};
use miracolix_inbox::proposal::{Proposal, Verified};
use miracolix_inbox::store::{
    Change, DECISION_CHANNEL, Intake, OutboxItem, SqliteStore, Store, StoreError,
};
use miracolix_inbox::workflow::{Action, Choice, State, Vote};

use common::postgres::{PgServer, applied_versions, server_or_skip};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn verified(id: &str, title: &str) -> Verified {
    let proposal = Proposal {
        id: id.into(),
        title: title.into(),
        summary: "Hypertension cohort".into(),
        applicant: miracolix_inbox::proposal::Applicant {
            name: "Dr. R. Searcher".into(),
            institution: "Uni X".into(),
        },
        requested_data: vec!["Condition".into()],
        sites: vec!["erlangen".into()],
        issued_at: at("2026-03-01T08:00:00Z"),
    };
    let payload = serde_json::to_vec(&proposal).expect("json");
    Verified {
        proposal,
        payload,
        key_id: "fdpg-2026".into(),
        signature: "c2ln".into(),
    }
}

/// Every change plans one decision row when it reaches a reported state, and one notification
/// row for every change, like outbox::plan_change does with a notification target.
fn plan(c: &Change) -> Vec<OutboxItem> {
    let mut items = vec![OutboxItem {
        key: format!("{}/{}/note", c.record.proposal.id, c.record.state.as_str()),
        channel: "ticket-system".into(),
        body: format!("{} by {}", c.record.state.as_str(), c.actor),
    }];
    if c.record.state.is_reported() {
        items.push(OutboxItem {
            key: format!("{}/decision", c.record.proposal.id),
            channel: DECISION_CHANNEL.into(),
            body: c.record.state.as_str().into(),
        });
    }
    items
}

fn vote(member: &str, choice: Choice, text: Option<&str>) -> Vote {
    Vote {
        member: member.into(),
        choice,
        conditions: (choice == Choice::ApproveWithConditions).then(|| text.unwrap_or("").into()),
        reason: (choice == Choice::Decline).then(|| text.unwrap_or("").into()),
    }
}

/// The store contract, for any backend.
fn contract(store: &mut dyn Store) {
    let t0 = at("2026-03-02T09:00:00Z");
    let deadline = t0 + Duration::days(14);

    // Intake: created once, the same bytes again are "existing", other bytes a conflict.
    let p1 = verified("FDPG-1", "Blood pressure");
    let created = store.receive(&p1, t0, deadline, &plan).expect("receive");
    let Intake::Created(record) = created else {
        panic!("first intake creates: {created:?}")
    };
    assert_eq!(record.state, State::DizCheck);
    assert_eq!(record.received_at, t0);
    assert_eq!(record.data_amount, None);
    assert_eq!(record.deadline, deadline);
    assert_eq!(record.payload, p1.payload);
    assert!(matches!(
        store.receive(&p1, t0 + Duration::minutes(1), deadline, &plan),
        Ok(Intake::Existing(r)) if r.received_at == t0
    ));
    let other = verified("FDPG-1", "Another title");
    assert!(matches!(
        store.receive(&other, t0, deadline, &plan),
        Ok(Intake::Conflict(r)) if r.proposal.title == "Blood pressure"
    ));
    assert_eq!(store.list().expect("list").len(), 1);
    assert_eq!(
        store.outbox_counts("ticket-system").expect("counts"),
        (0, 1)
    );
    assert!(store.get("FDPG-none").expect("get").is_none());

    // An illegal transition changes nothing and names the allowed ones.
    let err = store
        .apply(
            "FDPG-1",
            Action::UacApprove,
            "dora",
            vec![],
            None,
            t0,
            &plan,
        )
        .expect_err("illegal");
    assert!(err.to_string().contains("dizApprove"), "{err}");
    assert_eq!(store.audit("FDPG-1").expect("audit").len(), 1);
    assert!(matches!(
        store.apply(
            "FDPG-none",
            Action::DizApprove,
            "dora",
            vec![],
            Some(1),
            t0,
            &plan
        ),
        Err(miracolix_inbox::store::ChangeError::NotFound(_))
    ));

    // A planner that fails half-way rolls the whole change back: no state, audit or outbox row.
    let t1 = t0 + Duration::hours(1);
    let boom = |_: &Change| -> Vec<OutboxItem> { panic!("planner failed") };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        store.apply(
            "FDPG-1",
            Action::DizApprove,
            "dora",
            vec![],
            Some(120),
            t1,
            &boom,
        )
    }));
    assert!(result.is_err(), "the planner panicked");
    assert_eq!(
        store.get("FDPG-1").expect("get").expect("there").state,
        State::DizCheck
    );
    assert_eq!(store.audit("FDPG-1").expect("audit").len(), 1);
    assert_eq!(
        store.outbox_counts("ticket-system").expect("counts"),
        (0, 1)
    );

    // DIZ check, then votes: a replaced vote counts once; the quorum takes the decision, and
    // the decision row is written with it.
    let change = store
        .apply(
            "FDPG-1",
            Action::DizApprove,
            "dora@uk.de",
            vec!["cohort fits".into()],
            Some(120),
            t1,
            &plan,
        )
        .expect("diz");
    assert_eq!(change.from, Some(State::DizCheck));
    assert_eq!(change.record.state, State::DizApproved);
    assert_eq!(change.record.data_amount, Some(120));
    let t2 = t1 + Duration::hours(1);
    assert!(
        store
            .vote(
                "FDPG-1",
                vote("anna", Choice::Decline, Some("too broad")),
                2,
                t2,
                &plan
            )
            .expect("vote")
            .is_none()
    );
    assert!(
        store
            .vote("FDPG-1", vote("anna", Choice::Approve, None), 2, t2, &plan)
            .expect("replace")
            .is_none(),
        "a replaced vote is still one vote"
    );
    let decided = store
        .vote(
            "FDPG-1",
            vote(
                "ben",
                Choice::ApproveWithConditions,
                Some("pseudonymised only"),
            ),
            2,
            t2 + Duration::minutes(5),
            &plan,
        )
        .expect("vote")
        .expect("quorum reached");
    assert_eq!(decided.record.state, State::ConditionalApprovalPending);
    assert_eq!(decided.record.decided_at, Some(t2 + Duration::minutes(5)));
    assert_eq!(
        decided.record.data_amount,
        Some(120),
        "the promise is kept with the decision"
    );
    assert_eq!(decided.texts, vec!["pseudonymised only".to_string()]);
    let votes = store.votes("FDPG-1").expect("votes");
    assert_eq!(
        votes
            .iter()
            .map(|v| v.vote.member.as_str())
            .collect::<Vec<_>>(),
        ["anna", "ben"]
    );
    assert_eq!(votes[0].vote.choice, Choice::Approve);
    assert_eq!(votes[0].vote.reason, None);
    // Voting is closed now.
    let err = store
        .vote("FDPG-1", vote("carla", Choice::Approve, None), 2, t2, &plan)
        .expect_err("closed");
    assert!(err.to_string().contains("vote"), "{err}");

    let audit = store.audit("FDPG-1").expect("audit");
    assert_eq!(
        audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        [
            "received",
            "dizApprove",
            "vote",
            "vote replaced",
            "vote",
            "uacApproveWithConditions"
        ]
    );
    assert_eq!(
        audit[1].detail,
        "DIZ_CHECK → DIZ_APPROVED: cohort fits [dataAmount 120]"
    );
    assert_eq!(audit[1].at, t1);

    // Outbox: due rows in order; a failure counts and postpones; delivery is once.
    assert_eq!(
        store.outbox_counts(DECISION_CHANNEL).expect("counts"),
        (0, 1)
    );
    let due = store.due(t2 + Duration::minutes(5)).expect("due");
    assert_eq!(due.len(), 4, "{due:?}");
    let decision = due
        .iter()
        .find(|p| p.channel == DECISION_CHANNEL)
        .expect("decision due")
        .clone();
    assert_eq!(decision.body, "CONDITIONAL_APPROVAL_PENDING");
    assert_eq!(decision.attempts, 0);
    let retry_at = t2 + Duration::minutes(10);
    store
        .failed(
            &decision.key,
            DECISION_CHANNEL,
            "503 from the target",
            retry_at,
        )
        .expect("failed");
    assert!(
        !store
            .due(t2 + Duration::minutes(6))
            .expect("due")
            .iter()
            .any(|p| p.key == decision.key),
        "not due before its next attempt"
    );
    let again = store.due(retry_at).expect("due");
    let retried = again
        .iter()
        .find(|p| p.key == decision.key)
        .expect("due again");
    assert_eq!(retried.attempts, 1);
    let channels = store.channels().expect("channels");
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].failures, 1);
    assert_eq!(
        channels[0].last_error.as_deref(),
        Some("503 from the target")
    );
    store
        .delivered(&decision.key, DECISION_CHANNEL, retry_at)
        .expect("delivered");
    store
        .delivered(
            &decision.key,
            DECISION_CHANNEL,
            retry_at + Duration::minutes(1),
        )
        .expect("delivered twice is a no-op");
    assert_eq!(
        store.outbox_counts(DECISION_CHANNEL).expect("counts"),
        (1, 0)
    );
    assert_eq!(store.channels().expect("channels")[0].last_error, None);
    assert_eq!(store.channels().expect("channels")[0].failures, 1);
    assert!(
        !store
            .due(retry_at + Duration::days(1))
            .expect("due")
            .iter()
            .any(|p| p.key == decision.key)
    );

    // enqueue keeps existing keys.
    let reminder = OutboxItem {
        key: "FDPG-1/reminder".into(),
        channel: "ticket-system".into(),
        body: "deadline".into(),
    };
    assert_eq!(
        store
            .enqueue(std::slice::from_ref(&reminder), t2)
            .expect("enqueue"),
        1
    );
    assert_eq!(store.enqueue(&[reminder], t2).expect("enqueue"), 0);

    // Listing is by deadline.
    let p2 = verified("FDPG-2", "Earlier deadline");
    store
        .receive(&p2, t2, t0 + Duration::days(7), &plan)
        .expect("receive 2");
    assert_eq!(
        store
            .list()
            .expect("list")
            .iter()
            .map(|r| r.proposal.id.as_str())
            .collect::<Vec<_>>(),
        ["FDPG-2", "FDPG-1"]
    );
}

#[test]
fn sqlite_store_contract() {
    contract(&mut SqliteStore::in_memory().expect("sqlite"));
}

/// A proposal stored by the first schema version, as a released inbox left it.
const V1_ROW: &str =
    "INSERT INTO proposals (id, payload, key_id, signature, title, state, received_at, deadline)";

fn v1_payload() -> Vec<u8> {
    verified("FDPG-OLD", "Stored by version 1").payload
}

#[test]
fn sqlite_upgrade_from_the_first_schema_keeps_the_proposals() {
    let dir = std::env::temp_dir().join(format!("inbox-sqlite-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("inbox.db");
    let conn = miracolix_service::sqlite::migrate(
        rusqlite::Connection::open(&path).expect("open"),
        &miracolix_inbox::store::MIGRATIONS[..1],
    )
    .expect("v1");
    conn.execute(
        &format!("{V1_ROW} VALUES ('FDPG-OLD', ?1, 'fdpg-2026', 'c2ln', 'Stored by version 1', 'DIZ_CHECK', '2026-03-02T09:00:00.000Z', '2026-03-16T09:00:00.000Z')"),
        rusqlite::params![v1_payload()],
    )
    .expect("v1 row");
    drop(conn);
    let store = SqliteStore::open(&path).expect("upgrade");
    let old = store.get("FDPG-OLD").expect("get").expect("kept");
    assert_eq!((old.state, old.data_amount), (State::DizCheck, None));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tls_options(server: &PgServer, database: &str) -> pgstore::ConnectOptions {
    // As the controller runs it for spec.database.cloudNativePG: the -app uri without sslmode,
    // and the cluster CA in a file.
    connect_options(&server.url(database), Some(&server.ca_file)).expect("options")
}

#[test]
fn postgres_store_contract_migrations_and_tls() {
    let Some(server) = server_or_skip() else {
        return;
    };

    // The contract, over TLS verified against the server's CA.
    server.database("contract");
    let mut store = PostgresStore::open(tls_options(&server, "contract")).expect("open");
    contract(&mut store);
    drop(store);

    // Inside a tokio runtime too (the server calls the store from its handlers).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listed = runtime.block_on(async {
        let store = PostgresStore::open(tls_options(&server, "contract")).expect("reopen");
        store.list().expect("list").len()
    });
    assert_eq!(listed, 2);

    // Migrations: recorded once; re-running is a no-op; a newer schema is refused.
    let mut admin = server.admin("contract");
    let versions = |c: &mut postgres::Client| applied_versions(c, "schema_migrations");
    let expected: Vec<i32> = (1..=pgstore::MIGRATIONS.len() as i32).collect();
    assert_eq!(versions(&mut admin), expected);
    assert_eq!(
        pgstore::migrate(&mut admin, pgstore::MIGRATIONS).expect("re-run"),
        0,
        "re-running the migrations applies nothing"
    );
    assert_eq!(versions(&mut admin), expected);
    let mut newer: Vec<&str> = pgstore::MIGRATIONS.to_vec();
    newer.push("CREATE TABLE from_the_future (x INTEGER);");
    assert_eq!(pgstore::migrate(&mut admin, &newer).expect("newer"), 1);
    let err = PostgresStore::open(tls_options(&server, "contract"))
        .err()
        .expect("a newer schema is refused");
    assert!(matches!(err, StoreError::Migrate(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {}", newer.len())) && text.contains("newer"),
        "{text}"
    );

    // An inbox that ran the first schema is upgraded in place, its proposals kept.
    server.database("upgrade");
    let mut old = server.admin("upgrade");
    assert_eq!(
        pgstore::migrate(&mut old, &pgstore::MIGRATIONS[..1]).expect("v1"),
        1
    );
    old.execute(
        &format!("{V1_ROW} VALUES ('FDPG-OLD', $1, 'fdpg-2026', 'c2ln', 'Stored by version 1', 'DIZ_CHECK', now(), now())"),
        &[&v1_payload()],
    )
    .expect("v1 row");
    let upgraded = PostgresStore::open(tls_options(&server, "upgrade")).expect("upgrade");
    let kept = upgraded.get("FDPG-OLD").expect("get").expect("kept");
    assert_eq!((kept.state, kept.data_amount), (State::DizCheck, None));
    drop(upgraded);

    // TLS is verified: the system roots do not know the test CA, so sslmode=require without
    // the CA fails with the reason; sslmode=disable works where pg_hba allows it (CNPG's does).
    server.database("tls");
    let err = PostgresStore::open(
        connect_options(&format!("{}?sslmode=require", server.url("tls")), None).expect("opts"),
    )
    .err()
    .expect("unknown CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let plain = PostgresStore::open(
        connect_options(&format!("{}?sslmode=disable", server.url("tls")), None).expect("opts"),
    )
    .expect("plain connection");
    assert!(plain.list().expect("list").is_empty());
    // A wrong password is an error naming authentication, not a hang.
    let wrong = server
        .url("tls")
        .replace(common::postgres::PASSWORD, "wrong");
    let err = PostgresStore::open(connect_options(&wrong, Some(&server.ca_file)).expect("opts"))
        .err()
        .expect("wrong password");
    assert!(err.to_string().contains("password"), "{err}");
}
