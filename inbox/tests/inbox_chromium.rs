//! The web page in headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! `make tools`), driven over WebDriver: log in at a test OIDC issuer, see the proposal, vote with
//! the keyboard, see the decision, switch to German. Screenshots are written to
//! `target/tmp/inbox-screenshots/` (printed) and copied into docs/img/ by hand when the page
//! changes.
//!
//! Without Chromium the test is skipped with a message, except when `CI=true`: there it fails,
//! so a CI machine without the browser cannot pass silently.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fantoccini::{ClientBuilder, Locator};
use hyper::StatusCode;
use serde_json::json;

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver as a child process, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_driver(binary: &PathBuf) -> (Driver, String) {
    // A free port: bind, read it, release it for chromedriver.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    // Bounded wait for chromedriver to listen (it prints nothing we could wait on).
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port} within 10 s");
}

struct Shots {
    dir: PathBuf,
    taken: Vec<PathBuf>,
}

impl Shots {
    async fn take(&mut self, c: &fantoccini::Client, name: &str) {
        let png = c.screenshot().await.expect("screenshot");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        self.taken.push(path);
    }
}

async fn text_of(c: &fantoccini::Client, css: &str) -> String {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e.text().await.expect("text"),
        Err(e) => {
            let url = c.current_url().await.ok();
            let page = c.source().await.unwrap_or_default();
            panic!("{css} not on {url:?} within 10 s: {e}\n{page}")
        }
    }
}

#[tokio::test]
async fn log_in_see_the_proposal_vote_and_see_the_decision_in_chromium() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let (Some(driver_bin), Some(chromium)) = (
        find_binary(&["chromedriver"]),
        find_binary(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        assert!(
            !ci,
            "CI=true but chromium or chromedriver is missing: install them with `make tools` (Debian packages chromium, chromium-driver)"
        );
        eprintln!("SKIPPED: chromium or chromedriver not on PATH (make tools installs them)");
        return;
    };

    // The inbox on localhost (a secure context, so the Secure session cookie is kept over http).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let inbox_base = format!(
        "http://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let issuer = miracolix_e2e::oidc_issuer::start(miracolix_e2e::oidc_issuer::Client {
        id: "inbox".into(),
        secret: "client-secret".into(),
        groups: vec!["diz-staff".into()],
    })
    .await
    .expect("issuer");
    let target = Arc::new(Target::default());
    let decisions = start_target(target.clone()).await;
    let mut config = config(&decisions, None, None, Some(&issuer), &inbox_base);
    config.uac.quorum = 1;
    let r = start_with(
        config,
        ManualClock::new("2026-11-02T09:00:00Z"),
        Some(listener),
    )
    .await;
    let post = |p: serde_json::Value| {
        let body = envelope(&r.central, &p).to_string().into_bytes();
        let url = format!("http://{}/api/v1/proposals", r.api);
        async move {
            call("POST", &url, &[("content-type", "application/json")], body)
                .await
                .0
        }
    };
    assert_eq!(
        post(proposal("FDPG-2026-0042", &["erlangen", "marburg"])).await,
        StatusCode::CREATED
    );
    let mut second = proposal("FDPG-2026-0057", &["erlangen"]);
    second["title"] = json!("Sepsis in intensive care: antibiotic timing");
    assert_eq!(post(second).await, StatusCode::CREATED);
    // The DIZ has checked the first one (through the API, as DIZ staff would on the page).
    let (cookie, csrf) = r.inbox.issue_session(&member("diz@uk-erlangen.de"));
    let (s, _, v) = call(
        "POST",
        &format!("http://{}/api/v1/proposals/FDPG-2026-0042/diz-check", r.api),
        &[
            ("content-type", "application/json"),
            ("cookie", &format!("inbox_session={cookie}")),
            ("x-csrf-token", &csrf),
        ],
        json!({"action": "dizApprove", "dataAmount": 120})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (_driver, driver_url) = start_driver(&driver_bin).await;
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1300", "--lang=en"],
    }));
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("WebDriver session");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inbox-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let mut shots = Shots {
        dir,
        taken: Vec::new(),
    };

    let result: Result<(), fantoccini::error::CmdError> = async {
        // Not logged in: the login page, in English by the switch.
        c.goto(&format!("{inbox_base}/inbox/?lang=en")).await?;
        assert_eq!(text_of(&c, "h1").await, "Proposal inbox");
        shots.take(&c, "01-login").await;
        c.find(Locator::LinkText("Log in")).await?.click().await?;
        // At the issuer: type the e-mail, press Enter.
        let email = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("email"))
            .await?;
        email.send_keys(MEMBERS[0]).await?;
        email.send_keys("\u{E007}").await?;
        // Back in the inbox, logged in: the list by state and deadline.
        assert_eq!(text_of(&c, "main h1").await, "Proposals");
        let header = text_of(&c, "header").await;
        assert!(header.contains(MEMBERS[0]), "{header}");
        shots.take(&c, "02-list").await;
        // The proposal.
        c.find(Locator::LinkText("FDPG-2026-0042"))
            .await?
            .click()
            .await?;
        assert_eq!(
            text_of(&c, "main h1").await,
            "Diabetes and kidney function 2015–2025"
        );
        assert!(text_of(&c, "#state").await.contains("DIZ_APPROVED"));
        // What the DIZ check promised.
        assert_eq!(text_of(&c, "#data-amount").await, "120 patients");
        shots.take(&c, "03-proposal").await;
        // Vote with the keyboard only: Space selects the radio, Tab moves on, Enter submits.
        let approve = c.find(Locator::Id("choice-approveWithConditions")).await?;
        approve.send_keys(" ").await?;
        let conditions = c.find(Locator::Id("conditions")).await?;
        conditions
            .send_keys("Aggregate results only; no free-text fields.")
            .await?;
        let focused = c.active_element().await?;
        assert_eq!(
            focused.attr("id").await?.as_deref(),
            Some("conditions"),
            "focus follows the typing"
        );
        shots.take(&c, "04-vote").await;
        let submit = c
            .find(Locator::Css("form[action$='/votes'] button[type=submit]"))
            .await?;
        submit.send_keys("\u{E007}").await?;
        // The decision (quorum 1): approved with the condition, in the audit trail too.
        let decision = text_of(&c, "#decision-text").await;
        assert!(
            decision.contains("Approved with conditions, answer pending"),
            "{decision}"
        );
        let texts = text_of(&c, "#decision-texts").await;
        assert_eq!(texts, "Aggregate results only; no free-text fields.");
        let audit = text_of(&c, "#audit-trail").await;
        assert!(audit.contains("uacApproveWithConditions"), "{audit}");
        assert!(audit.contains(MEMBERS[0]), "{audit}");
        shots.take(&c, "05-decision").await;
        // German.
        c.find(Locator::LinkText("Deutsch")).await?.click().await?;
        let decision = text_of(&c, "#decision-text").await;
        assert!(decision.contains("Genehmigt mit Auflagen"), "{decision}");
        assert_eq!(text_of(&c, "#data-amount").await, "120 Patient:innen");
        shots.take(&c, "06-decision-de").await;
        // The second proposal waits for the DIZ check: a UAC member is told who records it and
        // gets no form.
        c.goto(&format!(
            "{inbox_base}/inbox/proposals/FDPG-2026-0057?lang=en"
        ))
        .await?;
        assert!(text_of(&c, "#state").await.contains("DIZ_CHECK"));
        assert!(
            text_of(&c, "main")
                .await
                .contains("Only the DIZ staff record this step."),
            "{}",
            text_of(&c, "main").await
        );
        assert!(
            c.find(Locator::Css("form[action$='/diz-check']"))
                .await
                .is_err(),
            "a UAC member sees no DIZ form"
        );
        Ok(())
    }
    .await;
    let _ = c.close().await;
    result.expect("browser flow");

    // The decision went to the central office, once.
    assert_eq!(r.inbox.tick().await.delivered, 1);
    assert_eq!(target.requests.lock().expect("lock").len(), 1);
    println!(
        "screenshots: {}",
        shots
            .taken
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
}
