//! The hub over real HTTP on loopback: the feed's ETag and 304, every report refusal answered and
//! counted with nothing stored, idempotent retries, read access, the matrix and the Data Map.

mod common;

use base64::Engine as _;
use common::*;
use hyper::StatusCode;
use miracolix_hub::report::{self, Reason};
use miracolix_hub::store::{ReportStore, SqliteStore};

fn write(dir: &std::path::Path, name: &str, json: serde_json::Value) {
    std::fs::write(dir.join(name), json.to_string()).expect("write");
}

fn release(name: &str, verified: bool) -> serde_json::Value {
    serde_json::json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "ComponentRelease",
                       "metadata": {"name": name}, "verified": verified})
}

#[tokio::test]
async fn feed_serves_what_verifies_with_a_strong_etag_and_304() {
    let feed = temp_dir("feed-src");
    write(&feed, "10-a.json", release("miracolix-2026.1", true));
    write(&feed, "20-b.json", release("tampered", false));
    write(
        &feed,
        "30-revoke.json",
        serde_json::json!({"kind": "ReleaseRevocation", "metadata": {"name": "r"}, "verified": true}),
    );
    std::fs::write(feed.join("README.md"), "ignored").expect("write");
    let hub = start("feed", false, Some(&feed)).await;
    let url = hub.url("/feed/v1");

    // No token needed: the entries carry their own signatures.
    let first = get(&url, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let body = first.json();
    assert_eq!(body["apiVersion"], "hub.miracum.org/v1");
    assert_eq!(body["kind"], "ReleaseFeed");
    let names: Vec<&str> = body["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["miracolix-2026.1"],
        "the unverified entry is not served"
    );
    assert_eq!(body["revocations"].as_array().map(Vec::len), Some(1));
    let etag = first.headers["etag"].to_str().expect("etag").to_string();
    assert!(etag.starts_with("\"sha256-"), "strong ETag: {etag}");
    assert_eq!(first.headers["cache-control"], "no-cache");
    assert_eq!(
        metric(
            &hub,
            "miracolix_hub_feed_refused_entries{reason=\"BadSignature\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&hub, "miracolix_hub_feed_entries{kind=\"release\"}").await,
        1.0
    );

    let again = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["etag"].to_str().expect("etag"), etag);
    let other = get(&url, &[("if-none-match", "\"sha256-00\"")]).await;
    assert_eq!(other.status, StatusCode::OK);

    // A new verified file: a reload changes the ETag, the old one gets the full feed.
    write(&feed, "40-c.json", release("miracolix-2026.2", true));
    hub.hub.reload_feed().expect("reload");
    let changed = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers["etag"].to_str().expect("etag"), etag);
    assert_eq!(changed.json()["releases"].as_array().map(Vec::len), Some(2));

    // The directory disappears: the last good feed stays served, the failure is counted.
    let served = changed.headers["etag"].to_str().expect("etag").to_string();
    std::fs::remove_dir_all(&feed).expect("rm");
    assert!(hub.hub.reload_feed().is_err());
    let kept = get(&url, &[]).await;
    assert_eq!(kept.headers["etag"].to_str().expect("etag"), served);
    assert_eq!(
        metric(&hub, "miracolix_hub_feed_loads_total{outcome=\"error\"}").await,
        1.0
    );
    assert_eq!(
        metric(
            &hub,
            "miracolix_hub_feed_requests_total{outcome=\"not-modified\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn without_a_feed_dir_the_feed_is_not_found() {
    let hub = start("nofeed", false, None).await;
    assert_eq!(
        get(&hub.url("/feed/v1"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn reports_are_refused_by_reason_counted_and_never_stored() {
    let hub = start("reports", false, None).await;
    let at = now() - chrono::Duration::minutes(1);
    let good = report(0, 10, at, &[("Patient", 1200)]);
    let accepted = post_report(&hub, 0, &good).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.text());

    // The exact same envelope again (a retry whose answer was lost): 200, no new row.
    let retry = post_report(&hub, 0, &good).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert_eq!(retry.json()["status"], "duplicate");

    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = |i: usize, r: &report::Report| {
        report::sign_report(r, &key_id(SITES[i]), &site_key(i)).expect("sign")
    };
    let mut tampered = signed(0, &report(0, 11, at, &[("Patient", 1200)]));
    tampered.payload =
        b64.encode(serde_json::to_vec(&report(0, 11, at, &[("Patient", 9_999)])).expect("json"));
    let mut wrong_key =
        report::sign_report(&report(0, 12, at, &[]), &key_id(SITES[0]), &site_key(1))
            .expect("sign");
    wrong_key.key_id = key_id(SITES[0]);
    let mut unknown_site = signed(0, &report(0, 13, at, &[]));
    unknown_site.site_id = "leipzig".into();
    let mut unknown_key = signed(0, &report(0, 14, at, &[]));
    unknown_key.key_id = "erlangen-2019".into();
    let stale = signed(
        0,
        &report(0, 15, now() - chrono::Duration::minutes(61), &[]),
    );
    let future = signed(0, &report(0, 16, now() + chrono::Duration::minutes(6), &[]));
    let replayed = signed(0, &report(0, 9, at, &[]));
    let same_sequence = signed(0, &report(0, 10, at, &[("Patient", 1300)]));
    let not_obfuscated = signed(0, &report(0, 17, at, &[("Patient", 3)]));
    let json = |s: &report::SignedReport| serde_json::to_vec(s).expect("json");

    // (what, body, status, reason, words the message must contain)
    let cases: Vec<(&str, Vec<u8>, StatusCode, Reason, &str)> = vec![
        (
            "payload changed",
            json(&tampered),
            StatusCode::UNAUTHORIZED,
            Reason::BadSignature,
            "does not verify",
        ),
        (
            "another site's key",
            json(&wrong_key),
            StatusCode::UNAUTHORIZED,
            Reason::BadSignature,
            "does not verify",
        ),
        (
            "unregistered site",
            json(&unknown_site),
            StatusCode::FORBIDDEN,
            Reason::UnknownSite,
            "leipzig",
        ),
        (
            "unregistered key",
            json(&unknown_key),
            StatusCode::FORBIDDEN,
            Reason::UnknownKey,
            "erlangen-2019",
        ),
        (
            "older than the window",
            json(&stale),
            StatusCode::UNPROCESSABLE_ENTITY,
            Reason::Stale,
            "3660 s old",
        ),
        (
            "beyond the skew",
            json(&future),
            StatusCode::UNPROCESSABLE_ENTITY,
            Reason::Stale,
            "in the future",
        ),
        (
            "lower sequence",
            json(&replayed),
            StatusCode::CONFLICT,
            Reason::Replayed,
            "sequence 9",
        ),
        (
            "same sequence, other content",
            json(&same_sequence),
            StatusCode::CONFLICT,
            Reason::Replayed,
            "sequence 10",
        ),
        (
            "count below the floor",
            json(&not_obfuscated),
            StatusCode::BAD_REQUEST,
            Reason::Malformed,
            "dataMap.Patient",
        ),
        (
            "not JSON",
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
            Reason::Malformed,
            "envelope",
        ),
        (
            "missing field",
            br#"{"siteId":"dresden","keyId":"k","payload":""}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            Reason::Malformed,
            "signature",
        ),
    ];
    for (what, body, status, reason, words) in &cases {
        let before = metric(
            &hub,
            &format!("miracolix_hub_reports_total{{outcome=\"{reason}\"}}"),
        )
        .await;
        let answer = post_body(&hub, body.clone()).await;
        assert_eq!(answer.status, *status, "{what}: {}", answer.text());
        let json = answer.json();
        assert_eq!(json["reason"], reason.as_str(), "{what}");
        let message = json["error"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{what}: {message}");
        let after = metric(
            &hub,
            &format!("miracolix_hub_reports_total{{outcome=\"{reason}\"}}"),
        )
        .await;
        assert_eq!(after, before + 1.0, "{what} is counted");
    }
    for reason in Reason::ALL {
        assert!(
            cases.iter().any(|c| c.3 == reason),
            "no case refuses with {reason}"
        );
    }
    let too_big = post_body(&hub, vec![b' '; report::MAX_ENVELOPE_BYTES + 1]).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(
        metric(&hub, "miracolix_hub_reports_total{outcome=\"accepted\"}").await,
        1.0
    );
    assert_eq!(
        metric(&hub, "miracolix_hub_reports_total{outcome=\"duplicate\"}").await,
        1.0
    );
    // Nothing but the one accepted report was stored.
    let store = SqliteStore::open(&hub.dir.join("hub.db")).expect("store");
    assert_eq!(store.count().expect("count"), 1);
    assert_eq!(store.last_sequence("dresden").expect("last"), Some(10));

    // A retry of the accepted envelope still succeeds after the window has passed.
    hub.set_now(now() + chrono::Duration::hours(3));
    assert_eq!(post_report(&hub, 0, &good).await.status, StatusCode::OK);
    // And the next sequence is accepted.
    let next = report(
        0,
        11,
        now() + chrono::Duration::hours(3),
        &[("Patient", 1300)],
    );
    assert_eq!(
        post_report(&hub, 0, &next).await.status,
        StatusCode::CREATED
    );
    assert_eq!(store.count().expect("count"), 2);
}

#[tokio::test]
async fn matrix_and_datamap_follow_the_privacy_rules() {
    let hub = start("read", false, None).await;
    seed_reports(&hub).await;

    for path in ["/api/v1/matrix", "/api/v1/datamap", "/"] {
        let refused = get(&hub.url(path), &[]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(refused.headers["www-authenticate"], "Bearer");
        let wrong = get(&hub.url(path), &[("authorization", "Bearer nope")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let auth = bearer();
    let matrix = get(&hub.url("/api/v1/matrix"), &[("authorization", &auth)]).await;
    assert_eq!(matrix.status, StatusCode::OK, "{}", matrix.text());
    let matrix = matrix.json();
    let sites = matrix["sites"].as_array().expect("sites");
    let ids: Vec<&str> = sites.iter().filter_map(|s| s["siteId"].as_str()).collect();
    assert_eq!(ids, SITES);
    let row = |id: &str| sites.iter().find(|s| s["siteId"] == id).expect("row");
    assert_eq!(row("dresden")["stale"], false);
    assert_eq!(row("dresden")["ready"], true);
    assert_eq!(row("dresden")["release"]["name"], "miracolix-2026.1");
    assert_eq!(row("dresden")["lastReport"], "2026-11-29T22:00:00Z");
    assert_eq!(row("magdeburg")["ready"], false, "one component not ready");
    assert_eq!(row("marburg")["stale"], true, "last report two hours ago");
    assert_eq!(row("marburg")["components"][0]["name"], "blaze");
    assert_eq!(matrix["staleAfterSeconds"], 3600);

    let map = get(&hub.url("/api/v1/datamap"), &[("authorization", &auth)])
        .await
        .json();
    assert_eq!(map["minSites"], 3);
    let entry = |t: &str| {
        map["resourceTypes"]
            .as_array()
            .expect("types")
            .iter()
            .find(|e| e["resourceType"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t}: {map}"))
    };
    // Patient: 4 sites, 264,500 -> at least 100,000.
    assert_eq!(
        entry("Patient"),
        serde_json::json!({"resourceType": "Patient", "shown": true, "sites": 4, "atLeast": 100000})
    );
    // Condition: 3 sites (260,000 + 900,000 + 5) -> at least 1,000,000.
    assert_eq!(entry("Condition")["atLeast"], 1_000_000);
    assert_eq!(entry("Condition")["sites"], 3);
    // Specimen: 2 sites; Observation: 1 site; Consent: one site with 0. No number for any.
    for hidden in ["Specimen", "Observation", "Consent"] {
        assert_eq!(
            entry(hidden),
            serde_json::json!({"resourceType": hidden, "shown": false, "note": "fewer than 3 sites"}),
            "{hidden}"
        );
    }
    let text = map.to_string();
    for secret in ["264500", "1160005", "905", "5000000"] {
        assert!(
            !text.contains(secret),
            "exact total {secret} leaked: {text}"
        );
    }
}

#[tokio::test]
async fn the_page_speaks_german_and_english() {
    let hub = start("page", false, None).await;
    seed_reports(&hub).await;
    let auth = bearer();
    let de = get(
        &hub.url("/"),
        &[
            ("authorization", &auth),
            ("accept-language", "de-DE,de;q=0.9,en;q=0.5"),
        ],
    )
    .await;
    assert_eq!(de.status, StatusCode::OK);
    assert_eq!(de.headers["content-language"], "de");
    assert_eq!(de.headers["vary"], "Accept-Language");
    assert!(
        de.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = de.text();
    for needle in [
        "<html lang=\"de\">",
        "Release-Matrix",
        "weniger als 3 Standorte",
        "≥ 100.000",
        "veraltet",
        "nicht bereit",
    ] {
        assert!(html.contains(needle), "German page lacks {needle}");
    }
    let en = get(&hub.url("/"), &[("authorization", &auth)]).await.text();
    for needle in [
        "<html lang=\"en\">",
        "Release matrix",
        "fewer than 3 sites",
        "≥ 100,000",
        "stale",
        "not ready",
        "role=\"img\"",
        "<caption>",
    ] {
        assert!(en.contains(needle), "English page lacks {needle}");
    }
    assert!(!en.contains("<script"), "no scripts");
}
