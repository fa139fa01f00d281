//! The inbox over real HTTP on loopback: intake refusals and idempotency, DIZ check and UAC votes
//! with their 403/409 answers, the audit trail, decision posting with retries to a stub target,
//! webhook and e-mail notifications with a failing target, deadline reminders, the summary.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use common::*;
use hyper::StatusCode;
use miracolix_inbox::api::Summary;
use miracolix_inbox::outbox::Decision;
use miracolix_inbox::proposal::Envelope;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::{Value, json};

async fn post_envelope(r: &Running, body: &Value) -> (StatusCode, Value) {
    let (s, _, v) = call(
        "POST",
        &format!("http://{}/api/v1/proposals", r.api),
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await;
    (s, v)
}

async fn summary(r: &Running) -> Summary {
    let (s, _, v) = call(
        "GET",
        &format!("http://{}/api/v1/summary", r.ops),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    serde_json::from_value(v).expect("summary")
}

/// A JSON action as `email`, with the session's CSRF token.
async fn act(r: &Running, email: &str, id: &str, kind: &str, body: Value) -> (StatusCode, Value) {
    let (cookie, csrf) = r.inbox.issue_session(&member(email));
    let (s, _, v) = call(
        "POST",
        &format!("http://{}/inbox/api/v1/proposals/{id}/{kind}", r.api),
        &[
            ("content-type", "application/json"),
            ("cookie", &format!("inbox_session={cookie}")),
            ("x-csrf-token", &csrf),
        ],
        body.to_string().into_bytes(),
    )
    .await;
    (s, v)
}

async fn detail(r: &Running, id: &str) -> Value {
    let (cookie, _) = r.inbox.issue_session(&member(MEMBERS[0]));
    let (s, _, v) = call(
        "GET",
        &format!("http://{}/api/v1/proposals/{id}", r.api),
        &[("cookie", &format!("inbox_session={cookie}"))],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn counts(s: &Summary) -> Vec<(String, u64)> {
    s.counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

#[tokio::test]
async fn refused_proposals_are_answered_with_the_reason_and_nothing_is_stored() {
    let target = Arc::new(Target::default());
    let url = start_target(target.clone()).await;
    let r = start(
        config(&url, None, None, None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    let good = proposal("FDPG-2026-0042", &["erlangen", "marburg"]);
    let other = keypair();
    let mut tampered = envelope(&r.central, &good);
    let mut changed = good.clone();
    changed["title"] = json!("Something else");
    tampered["payload"] = json!(STANDARD.encode(changed.to_string()));
    let mut no_title = good.clone();
    no_title.as_object_mut().expect("object").remove("title");
    let mut unknown_key = envelope(&r.central, &good);
    unknown_key["keyId"] = json!("someone");
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "not an envelope",
            json!({"hello": 1}),
            StatusCode::BAD_REQUEST,
            "unknown field `hello`",
        ),
        (
            "payload not base64",
            json!({"keyId": "fdpg-2026", "payload": "%%%", "signature": "AA=="}),
            StatusCode::BAD_REQUEST,
            "payload is not base64",
        ),
        (
            "field missing",
            envelope(&r.central, &no_title),
            StatusCode::BAD_REQUEST,
            "missing field `title`",
        ),
        (
            "unknown key",
            unknown_key,
            StatusCode::UNAUTHORIZED,
            "unknown signing key \"someone\"",
        ),
        (
            "signed by someone else",
            envelope(&other, &good),
            StatusCode::UNAUTHORIZED,
            "does not verify",
        ),
        (
            "payload changed after signing",
            tampered,
            StatusCode::UNAUTHORIZED,
            "does not verify",
        ),
        (
            "not for this site",
            envelope(&r.central, &proposal("FDPG-2026-0043", &["marburg"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not addressed to this site (erlangen)",
        ),
    ];
    for (name, body, want, reason) in cases {
        let (status, answer) = post_envelope(&r, &body).await;
        assert_eq!(status, want, "{name}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{name}: {message}");
    }
    let s = summary(&r).await;
    assert!(counts(&s).is_empty(), "something was stored: {s:?}");
    assert_eq!(
        r.inbox.tick().await.delivered,
        0,
        "a refusal queued something"
    );
}

#[tokio::test]
async fn intake_is_idempotent_on_the_proposal_id() {
    let target = Arc::new(Target::default());
    let url = start_target(target.clone()).await;
    let r = start(
        config(&url, None, None, None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    let p = proposal("FDPG-2026-0042", &["erlangen"]);
    let (s, first) = post_envelope(&r, &envelope(&r.central, &p)).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["state"], "DIZ_CHECK");
    assert_eq!(first["deadline"], "2026-11-16T09:00:00Z");
    // The same proposal again (a retry of the central office): 200 with the stored state.
    r.clock.advance(Duration::hours(1));
    let (s, again) = post_envelope(&r, &envelope(&r.central, &p)).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    // Same id, other content: refused, the stored one stays.
    let mut changed = p.clone();
    changed["summary"] = json!("A different study");
    let (s, conflict) = post_envelope(&r, &envelope(&r.central, &changed)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{conflict}");
    assert!(
        conflict["error"]
            .as_str()
            .unwrap_or("")
            .contains("different content"),
        "{conflict}"
    );
    assert_eq!(
        detail(&r, "FDPG-2026-0042").await["proposal"]["proposal"]["summary"],
        p["summary"]
    );
    assert_eq!(
        counts(&summary(&r).await),
        vec![("DIZ_CHECK".to_string(), 1)]
    );
}

#[tokio::test]
async fn diz_check_votes_quorum_and_the_refusals_on_the_way() {
    let target = Arc::new(Target::default());
    let url = start_target(target.clone()).await;
    let r = start(
        config(&url, None, None, None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    let id = "FDPG-2026-0042";
    assert_eq!(
        post_envelope(&r, &envelope(&r.central, &proposal(id, &["erlangen"])))
            .await
            .0,
        StatusCode::CREATED
    );

    // Voting before the DIZ check: 409 with what is allowed now.
    let (s, v) = act(&r, MEMBERS[0], id, "votes", json!({"choice": "approve"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["allowed"],
        json!(["dizApprove", "dizApproveWithConditions", "dizExclude"])
    );
    assert_eq!(v["state"], "DIZ_CHECK");
    // No CSRF token: 403, nothing recorded.
    let (cookie, _) = r.inbox.issue_session(&member("diz@uk-erlangen.de"));
    let (s, _, v) = call(
        "POST",
        &format!("http://{}/api/v1/proposals/{id}/diz-check", r.api),
        &[
            ("content-type", "application/json"),
            ("cookie", &format!("inbox_session={cookie}")),
        ],
        json!({"action": "dizApprove", "dataAmount": 120})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // Not logged in: 401.
    let (s, _, _) = call(
        "POST",
        &format!("http://{}/api/v1/proposals/{id}/diz-check", r.api),
        &[("content-type", "application/json")],
        json!({"action": "dizApprove", "dataAmount": 120})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only the DIZ staff record the DIZ check: a UAC member (and anyone else who can log in)
    // gets 403, and nothing is recorded.
    for outsider in [MEMBERS[0], "someone@uk-erlangen.de"] {
        let (s, v) = act(
            &r,
            outsider,
            id,
            "diz-check",
            json!({"action": "dizApprove", "dataAmount": "120"}),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{outsider}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains("not DIZ staff"),
            "{v}"
        );
    }
    assert_eq!(detail(&r, id).await["proposal"]["state"], "DIZ_CHECK");
    assert_eq!(
        detail(&r, id).await["audit"].as_array().map(Vec::len),
        Some(1)
    );
    // Exclusion needs a reason.
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "diz-check",
        json!({"action": "dizExclude"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("field text"),
        "{v}"
    );
    // An approval promises how many patients' data the site can deliver: required, a count.
    for body in [
        json!({"action": "dizApprove"}),
        json!({"action": "dizApprove", "dataAmount": "many"}),
        json!({"action": "dizApprove", "dataAmount": "-3"}),
    ] {
        let (s, v) = act(&r, DIZ, id, "diz-check", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains("dataAmount"),
            "{v}"
        );
    }
    assert_eq!(detail(&r, id).await["proposal"]["state"], "DIZ_CHECK");
    // The DIZ approves; doing it twice is an illegal transition.
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "diz-check",
        json!({"action": "dizApprove", "dataAmount": 120}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("DIZ_APPROVED")),
        "{v}"
    );
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "diz-check",
        json!({"action": "dizApprove", "dataAmount": 120}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["allowed"],
        json!(["uacApprove", "uacApproveWithConditions", "uacDecline"])
    );
    let d = detail(&r, id).await;
    assert_eq!(d["proposal"]["dataAmount"], 120, "{d}");
    assert!(
        d["audit"][1]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("dataAmount 120"),
        "{d}"
    );

    // A non-member may not vote.
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "votes",
        json!({"choice": "approve"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("not a member"),
        "{v}"
    );
    // A decline needs a reason.
    let (s, v) = act(&r, MEMBERS[0], id, "votes", json!({"choice": "decline"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Anna declines, then changes her mind: the second vote replaces the first.
    let (s, v) = act(
        &r,
        MEMBERS[0],
        id,
        "votes",
        json!({"choice": "decline", "reason": "too broad"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("DIZ_APPROVED")),
        "{v}"
    );
    r.clock.advance(Duration::minutes(5));
    let (s, _) = act(&r, MEMBERS[0], id, "votes", json!({"choice": "approve"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = act(
        &r,
        MEMBERS[1],
        id,
        "votes",
        json!({"choice": "approveWithConditions", "conditions": "aggregate results only"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("DIZ_APPROVED")),
        "two of three votes: no decision yet: {v}"
    );
    let d = detail(&r, id).await;
    assert_eq!(d["votes"].as_array().map(Vec::len), Some(2), "{d}");
    // The third vote reaches the quorum: approved with Ben's conditions.
    let (s, v) = act(
        &r,
        MEMBERS[2],
        id,
        "votes",
        json!({"choice": "decline", "reason": "no ethics vote attached"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("CONDITIONAL_APPROVAL_PENDING")),
        "{v}"
    );
    // After the decision a vote (also a changed one) is refused.
    let (s, v) = act(
        &r,
        MEMBERS[0],
        id,
        "votes",
        json!({"choice": "decline", "reason": "changed my mind"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["allowed"],
        json!(["conditionsAccepted", "conditionsDeclined"])
    );
    // The applicant accepts the conditions.
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "conditions",
        json!({"action": "conditionsAccepted"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("CONDITIONAL_APPROVAL_ACCEPTED")),
        "{v}"
    );

    // The audit trail: every step, who and what, in order.
    let d = detail(&r, id).await;
    let trail: Vec<(String, String)> = d["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap_or("").to_string(),
                a["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("central office (key fdpg-2026)", "received"),
        ("diz <diz@uk-erlangen.de>", "dizApprove"),
        ("anna@uk-erlangen.de", "vote"),
        ("anna@uk-erlangen.de", "vote replaced"),
        ("ben@uk-erlangen.de", "vote"),
        ("carla@uk-erlangen.de", "vote"),
        ("UAC (quorum 3)", "uacApproveWithConditions"),
        ("diz <diz@uk-erlangen.de>", "conditionsAccepted"),
    ];
    assert_eq!(
        trail,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(
        d["audit"][6]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("aggregate results only"),
        "{d}"
    );
    // Unanswered conditions expire a review period after the decision (shown on a copy).
    let expiring = "FDPG-2026-0099";
    post_envelope(
        &r,
        &envelope(&r.central, &proposal(expiring, &["erlangen"])),
    )
    .await;
    act(
        &r,
        "diz@uk-erlangen.de",
        expiring,
        "diz-check",
        json!({"action": "dizApprove", "dataAmount": 120}),
    )
    .await;
    for m in MEMBERS {
        act(
            &r,
            m,
            expiring,
            "votes",
            json!({"choice": "approveWithConditions", "conditions": "k-anonymity 10"}),
        )
        .await;
    }
    assert_eq!(
        detail(&r, expiring).await["proposal"]["state"],
        "CONDITIONAL_APPROVAL_PENDING"
    );
    r.clock.advance(Duration::days(14));
    r.inbox.tick().await;
    assert_eq!(
        detail(&r, expiring).await["proposal"]["state"],
        "CONDITIONAL_APPROVAL_PENDING",
        "expired too early"
    );
    r.clock.advance(Duration::seconds(1));
    r.inbox.tick().await;
    let d = detail(&r, expiring).await;
    assert_eq!(
        d["proposal"]["state"], "CONDITIONAL_APPROVAL_DECLINED",
        "{d}"
    );
    assert_eq!(
        d["audit"]
            .as_array()
            .and_then(|a| a.last())
            .map(|a| a["actor"].clone()),
        Some(json!("inbox (conditions unanswered for a review period)"))
    );
    let s = summary(&r).await;
    assert_eq!(
        counts(&s),
        vec![
            ("CONDITIONAL_APPROVAL_ACCEPTED".to_string(), 1),
            ("CONDITIONAL_APPROVAL_DECLINED".to_string(), 1)
        ]
    );
    assert!(s.last_decision_at.is_some());

    // The signed decisions carry the promised amount with an approval, and none with a
    // decline.
    r.inbox.tick().await;
    let sent: Vec<Decision> = target
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, body)| {
            let envelope: Envelope = serde_json::from_slice(body).expect("envelope");
            serde_json::from_slice(&STANDARD.decode(&envelope.payload).expect("base64"))
                .expect("decision")
        })
        .collect();
    let amount_of = |pid: &str, state: &str| {
        sent.iter()
            .find(|d| d.proposal_id == pid && d.state.as_str() == state)
            .map(|d| d.data_amount)
    };
    assert_eq!(
        amount_of(id, "CONDITIONAL_APPROVAL_PENDING"),
        Some(Some(120)),
        "{sent:?}"
    );
    assert_eq!(
        amount_of(id, "CONDITIONAL_APPROVAL_ACCEPTED"),
        Some(Some(120)),
        "{sent:?}"
    );
    assert_eq!(
        amount_of(expiring, "CONDITIONAL_APPROVAL_DECLINED"),
        Some(None),
        "{sent:?}"
    );
}

#[tokio::test]
async fn the_decision_is_signed_retried_with_backoff_and_delivered_once() {
    let target = Arc::new(Target::default());
    target.fail_next.store(2, Ordering::SeqCst);
    let url = start_target(target.clone()).await;
    let r = start(
        config(&url, None, None, None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    let id = "FDPG-2026-0042";
    post_envelope(&r, &envelope(&r.central, &proposal(id, &["erlangen"]))).await;
    assert_eq!(
        r.inbox.tick().await.delivered,
        0,
        "nothing to report on receipt"
    );
    let (s, v) = act(
        &r,
        "diz@uk-erlangen.de",
        id,
        "diz-check",
        json!({"action": "dizExclude", "text": "no lab data before 2018"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("REQUESTED_BUT_EXCLUDED")),
        "{v}"
    );

    // First attempt fails (503); the retry waits 5 s, the next 10 s.
    let round = r.inbox.tick().await;
    assert_eq!((round.delivered, round.failed), (0, 1));
    assert_eq!(
        r.inbox.tick().await.failed,
        0,
        "retried before the backoff elapsed"
    );
    r.clock.advance(Duration::seconds(5));
    assert_eq!(r.inbox.tick().await.failed, 1);
    r.clock.advance(Duration::seconds(9));
    assert_eq!(
        r.inbox.tick().await.failed + r.inbox.tick().await.delivered,
        0,
        "retried before 10 s"
    );
    let s = summary(&r).await;
    assert_eq!((s.decisions.pending, s.decisions.failures), (1, 2), "{s:?}");
    assert!(
        s.decisions
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("503"),
        "{s:?}"
    );
    r.clock.advance(Duration::seconds(1));
    assert_eq!(r.inbox.tick().await.delivered, 1);
    // Delivered: never again, however often the worker runs.
    r.clock.advance(Duration::hours(2));
    assert_eq!(r.inbox.tick().await.delivered, 0);
    let requests = target.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "two failures and one success");
    let s = summary(&r).await;
    assert_eq!(
        (
            s.decisions.pending,
            s.decisions.failures,
            s.decisions.last_error.clone()
        ),
        (0, 2, None),
        "{s:?}"
    );

    // Each attempt carried the same idempotency key and the same signed bytes.
    let keys: Vec<_> = requests
        .iter()
        .map(|(h, _)| {
            h.get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        keys.iter()
            .all(|k| k == "decision:erlangen:FDPG-2026-0042:REQUESTED_BUT_EXCLUDED"),
        "{keys:?}"
    );
    assert!(
        requests.windows(2).all(|w| w[0].1 == w[1].1),
        "the body changed between attempts"
    );
    let envelope: Envelope = serde_json::from_slice(&requests[2].1).expect("envelope");
    assert_eq!(envelope.key_id, "erlangen");
    let payload = STANDARD.decode(&envelope.payload).expect("base64");
    let signature = STANDARD.decode(&envelope.signature).expect("base64");
    UnparsedPublicKey::new(&ED25519, &r.decision_public)
        .verify(&payload, &signature)
        .expect("the decision's signature verifies with the site's key");
    let decision: Decision = serde_json::from_slice(&payload).expect("decision");
    assert_eq!(decision.proposal_id, id);
    assert_eq!(decision.state.as_str(), "REQUESTED_BUT_EXCLUDED");
    assert_eq!(decision.texts, vec!["no lab data before 2018"]);
    assert_eq!(decision.data_amount, None, "an exclusion promises nothing");
    assert_eq!(decision.organization_identifier, "uk-erlangen.de");
}

#[tokio::test]
async fn notifications_by_webhook_and_email_failures_counted_and_deadline_reminders() {
    let decisions = Arc::new(Target::default());
    let decisions_url = start_target(decisions.clone()).await;
    let webhook = Arc::new(Target::default());
    webhook.fail_next.store(1, Ordering::SeqCst);
    let webhook_url = start_target(webhook.clone()).await;
    let mails = Arc::new(Mutex::new(Vec::new()));
    let port = start_smtp_sink(mails.clone()).await;
    let r = start(
        config(&decisions_url, Some(&webhook_url), Some(port), None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    let id = "FDPG-2026-0042";
    post_envelope(&r, &envelope(&r.central, &proposal(id, &["erlangen"]))).await;

    // ProposalReceived: to the mailbox and the webhook; the webhook fails once.
    let round = r.inbox.tick().await;
    assert_eq!((round.delivered, round.failed), (1, 1), "{round:?}");
    let mail = mails.lock().expect("lock").clone();
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("ProposalReceived: FDPG-2026-0042"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("To: uac@uk-erlangen.de"), "{}", mail[0]);
    let s = summary(&r).await;
    let hook = s
        .notifications
        .iter()
        .find(|n| n.name == "ticket-system")
        .expect("listed");
    assert_eq!(hook.failures, 1);
    assert!(
        hook.last_error.as_deref().unwrap_or("").contains("503"),
        "{hook:?}"
    );
    let mailbox = s
        .notifications
        .iter()
        .find(|n| n.name == "uac-mailbox")
        .expect("listed");
    assert_eq!((mailbox.failures, mailbox.last_error.clone()), (0, None));
    r.clock.advance(Duration::seconds(5));
    assert_eq!(r.inbox.tick().await.delivered, 1, "the webhook retried");
    let hooks = webhook.requests.lock().expect("lock").clone();
    assert_eq!(hooks.len(), 2);
    let (headers, body) = &hooks[1];
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {WEBHOOK_TOKEN}").as_str())
    );
    let event: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(
        (event["event"].clone(), event["proposalId"].clone()),
        (json!("ProposalReceived"), json!(id))
    );
    assert!(
        event.get("summary").is_none(),
        "notifications carry no proposal content: {event}"
    );
    let s = summary(&r).await;
    assert_eq!(
        s.notifications
            .iter()
            .find(|n| n.name == "ticket-system")
            .and_then(|n| n.last_error.clone()),
        None
    );

    // Twelve days later (two before the deadline): one reminder to each, once.
    r.clock.advance(Duration::days(12));
    assert_eq!(r.inbox.tick().await.delivered, 2);
    r.clock.advance(Duration::hours(1));
    assert_eq!(
        r.inbox.tick().await.delivered,
        0,
        "the reminder went out twice"
    );
    assert!(
        mails
            .lock()
            .expect("lock")
            .last()
            .is_some_and(|m| m.contains("DeadlineApproaching"))
    );
    // Past the deadline: overdue in the summary.
    r.clock.advance(Duration::days(2));
    assert_eq!(summary(&r).await.overdue, 1);
}

#[tokio::test]
async fn ops_port_health_metrics_and_main_port_base_path() {
    let target = Arc::new(Target::default());
    let url = start_target(target).await;
    let r = start(
        config(&url, None, None, None, ""),
        ManualClock::new("2026-11-02T09:00:00Z"),
    )
    .await;
    for path in ["/healthz", "/readyz"] {
        let (s, _, _) = call("GET", &format!("http://{}{path}", r.ops), &[], vec![]).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    post_envelope(
        &r,
        &envelope(&r.central, &proposal("FDPG-1", &["erlangen"])),
    )
    .await;
    let (s, _, m) = call("GET", &format!("http://{}/metrics", r.ops), &[], vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        m.as_str()
            .unwrap_or("")
            .contains("miracolix_inbox_intake_total{outcome=\"created\"} 1"),
        "{m}"
    );
    // The summary is not on the main port, and proposals are not on the ops port.
    let (s, _, _) = call(
        "GET",
        &format!("http://{}/api/v1/summary", r.api),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(
        "GET",
        &format!("http://{}/api/v1/proposals", r.ops),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Without a session the API answers 401 and the page offers the login.
    let (s, _, _) = call(
        "GET",
        &format!("http://{}/inbox/api/v1/proposals", r.api),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, h, page) = call(
        "GET",
        &format!("http://{}/inbox/", r.api),
        &[("accept-language", "en")],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get("content-security-policy").is_some());
    assert!(
        page.as_str().unwrap_or("").contains("<html lang=\"en\">"),
        "{page}"
    );
}
