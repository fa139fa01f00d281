//! HTTP: the API listener (feed, reports, matrix, Data Map, page) and the ops listener
//! (`/healthz`, `/readyz`, `/metrics`), on the project's shared hyper server.
//!
//! Answers to `POST /api/v1/reports`: `201` accepted, `200` the same envelope again (idempotent:
//! nothing new is stored), `400` malformed, `401` bad signature, `403` unknown site or key, `409`
//! replayed sequence, `413` too large, `422` stale, `503` the store failed. Every refusal body is
//! `{"error": "...", "reason": "<outcome>"}` and is counted in `miracolix_hub_reports_total`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, header};
use miracolix_service::http::{Answer, Service, bytes_answer, error, json_answer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::access::Access;
use crate::feed::{self, EntryVerifier, FeedError, LoadedFeed};
use crate::metrics::Metrics;
use crate::report::{self, Reason, Refused};
use crate::sites::Registry;
use crate::store::{Inserted, NewReport, ReportStore, StoreError};
use crate::{datamap, matrix, page};

/// Where the matrix and the Data Map are served.
pub const MATRIX_PATH: &str = "/api/v1/matrix";
pub const DATAMAP_PATH: &str = "/api/v1/datamap";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Reports whose `generatedAt` is older are refused as stale.
    pub report_window: Duration,
    /// Reports whose `generatedAt` is further in the future are refused as stale.
    pub clock_skew: Duration,
    /// A site whose last report is older is shown as stale.
    pub stale_after: Duration,
    /// Data Map counts of 1 up to below this are refused as not obfuscated.
    pub floor: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            report_window: Duration::from_secs(3600),
            clock_skew: Duration::from_secs(300),
            stale_after: Duration::from_secs(3600),
            floor: report::DEFAULT_FLOOR,
        }
    }
}

/// The feed directory and how its files are verified.
struct FeedSource {
    dir: PathBuf,
    verifier: Arc<dyn EntryVerifier>,
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One hub. Cheap to clone (shared state behind `Arc`s).
#[derive(Clone)]
pub struct Hub {
    config: HubConfig,
    sites: Arc<Registry>,
    access: Arc<Access>,
    store: Arc<Mutex<Box<dyn ReportStore>>>,
    feed: Arc<RwLock<Option<Arc<LoadedFeed>>>>,
    feed_source: Option<Arc<FeedSource>>,
    metrics: Metrics,
    clock: Clock,
}

impl Hub {
    pub fn new(
        config: HubConfig,
        sites: Registry,
        access: Access,
        store: impl ReportStore + 'static,
    ) -> Self {
        Self {
            config,
            sites: Arc::new(sites),
            access: Arc::new(access),
            store: Arc::new(Mutex::new(Box::new(store))),
            feed: Arc::new(RwLock::new(None)),
            feed_source: None,
            metrics: Metrics::default(),
            clock: Arc::new(Utc::now),
        }
    }

    /// Serves the verified files of `dir` as the feed; loads it now (an unreadable directory at
    /// start is an error, so a misconfigured hub does not start).
    pub fn with_feed(
        mut self,
        dir: PathBuf,
        verifier: Arc<dyn EntryVerifier>,
    ) -> Result<Self, FeedError> {
        self.feed_source = Some(Arc::new(FeedSource { dir, verifier }));
        self.reload_feed()?;
        Ok(self)
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Re-reads the feed directory. On error the last good feed stays served.
    pub fn reload_feed(&self) -> Result<(), FeedError> {
        let Some(source) = &self.feed_source else {
            return Ok(());
        };
        let loaded = match feed::load_dir(&source.dir, source.verifier.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                self.metrics.feed_load_failed();
                tracing::warn!(error = %e, "cannot load the feed; serving the last good one");
                return Err(e);
            }
        };
        let previous = self.current_feed();
        if previous
            .as_ref()
            .is_none_or(|p| p.etag != loaded.etag || p.refused != loaded.refused)
        {
            for r in &loaded.refused {
                tracing::warn!(
                    file = %r.file,
                    reason = %r.refusal.reason,
                    message = %r.refusal.message,
                    "feed entry does not verify; not served"
                );
            }
            tracing::info!(
                releases = loaded.feed.releases.len(),
                revocations = loaded.feed.revocations.len(),
                refused = loaded.refused.len(),
                etag = %loaded.etag,
                "feed loaded"
            );
        }
        let reasons: Vec<&str> = loaded
            .refused
            .iter()
            .map(|r| r.refusal.reason.as_str())
            .collect();
        self.metrics.feed_loaded(
            loaded.feed.releases.len(),
            loaded.feed.revocations.len(),
            &reasons,
        );
        *self.feed.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(loaded));
        Ok(())
    }

    fn current_feed(&self) -> Option<Arc<LoadedFeed>> {
        self.feed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, Box<dyn ReportStore>> {
        // Both stores keep their state consistent across a panic (an insert is one transaction).
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes one request of the API listener.
    pub async fn handle(&self, req: Request<Incoming>) -> Answer {
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, feed::PATH) => self.serve_feed(&req),
            (Method::POST, report::PATH) => self.receive(req).await,
            (Method::GET, MATRIX_PATH | DATAMAP_PATH | "/") => self.read(&req, &path),
            (_, feed::PATH | MATRIX_PATH | DATAMAP_PATH | "/") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "use GET")
            }
            (_, report::PATH) => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn serve_feed(&self, req: &Request<Incoming>) -> Answer {
        let Some(loaded) = self.current_feed() else {
            return error(
                StatusCode::NOT_FOUND,
                "this hub serves no release feed (no --feed-dir)",
            );
        };
        let etag = header::HeaderValue::from_str(&loaded.etag)
            .unwrap_or_else(|_| header::HeaderValue::from_static("\"\""));
        let not_modified = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| feed::if_none_match(v, &loaded.etag));
        let mut answer = if not_modified {
            self.metrics.feed_request("not-modified");
            bytes_answer(StatusCode::NOT_MODIFIED, "application/json", Bytes::new())
        } else {
            self.metrics.feed_request("full");
            bytes_answer(StatusCode::OK, "application/json", loaded.body.clone())
        };
        let headers = answer.headers_mut();
        headers.insert(header::ETAG, etag);
        // Caches must ask again every time; the ETag makes asking cheap.
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        answer
    }

    async fn receive(&self, req: Request<Incoming>) -> Answer {
        let body = match Limited::new(req.into_body(), report::MAX_ENVELOPE_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                self.metrics.report(Reason::Malformed.as_str());
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "a report envelope is at most {} bytes",
                        report::MAX_ENVELOPE_BYTES
                    ),
                );
            }
        };
        match self.accept(&body) {
            Ok(Accepted::New) => {
                self.metrics.report("accepted");
                json_answer(StatusCode::CREATED, &json!({"status": "accepted"}))
            }
            Ok(Accepted::Duplicate) => {
                self.metrics.report("duplicate");
                json_answer(StatusCode::OK, &json!({"status": "duplicate"}))
            }
            Err(Refusal::Refused(r)) => {
                self.metrics.report(r.reason.as_str());
                tracing::info!(reason = %r.reason, message = %r.message, "report refused");
                let code = match r.reason {
                    Reason::Malformed => StatusCode::BAD_REQUEST,
                    Reason::BadSignature => StatusCode::UNAUTHORIZED,
                    Reason::UnknownSite | Reason::UnknownKey => StatusCode::FORBIDDEN,
                    Reason::Replayed => StatusCode::CONFLICT,
                    Reason::Stale => StatusCode::UNPROCESSABLE_ENTITY,
                };
                json_answer(
                    code,
                    &json!({"error": r.message, "reason": r.reason.as_str()}),
                )
            }
            Err(Refusal::Store(e)) => {
                self.metrics.report("store-error");
                tracing::error!(error = %e, "cannot store a report");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub cannot store the report now; send it again later",
                )
            }
        }
    }

    /// Checks in order: envelope, site, key, signature, fields (`report::open`); the same envelope
    /// again; freshness; sequence. Only then is anything stored.
    fn accept(&self, body: &[u8]) -> Result<Accepted, Refusal> {
        let opened = report::open(body, &self.sites, self.config.floor)?;
        let now = (self.clock)();
        let site = &opened.report.site_id;
        let mut store = self.lock_store();
        // A retry of an accepted report (its answer was lost) succeeds, however old it is now.
        if store.has_envelope(site, &opened.envelope_sha256)? {
            return Ok(Accepted::Duplicate);
        }
        report::check_fresh(
            &opened.report,
            now,
            self.config.report_window,
            self.config.clock_skew,
        )?;
        report::check_sequence(&opened.report, store.last_sequence(site)?)?;
        // The store checks both again with its write: another replica on the same database
        // may have accepted this envelope or a higher sequence since.
        match store.insert(&NewReport {
            report: &opened.report,
            payload: &opened.payload,
            envelope_sha256: &opened.envelope_sha256,
            received_at: now,
        })? {
            Inserted::New => {
                tracing::info!(site = %site, sequence = opened.report.sequence, "report accepted");
                Ok(Accepted::New)
            }
            Inserted::SameEnvelope => Ok(Accepted::Duplicate),
            Inserted::NotNewer { last } => Err(report::not_newer(&opened.report, last).into()),
        }
    }

    fn read(&self, req: &Request<Incoming>, path: &str) -> Answer {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if self.access.reader(authorization).is_none() {
            let mut answer = error(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <reader token>",
            );
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return answer;
        }
        let latest = match self.lock_store().latest_per_site() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot read reports");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the report store is unavailable",
                );
            }
        };
        let now = (self.clock)();
        let matrix = || matrix::build(&self.sites, &latest, now, self.config.stale_after);
        let mut answer = match path {
            MATRIX_PATH => json_answer(StatusCode::OK, &json!(matrix())),
            DATAMAP_PATH => json_answer(StatusCode::OK, &json!(datamap::aggregate(&latest, now))),
            _ => {
                let accept = req
                    .headers()
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok());
                let lang = page::negotiate(accept);
                let html = page::render(&matrix(), &datamap::aggregate(&latest, now), lang);
                let mut a = bytes_answer(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    Bytes::from(html),
                );
                let h = a.headers_mut();
                h.insert(
                    header::CONTENT_LANGUAGE,
                    header::HeaderValue::from_static(lang.code()),
                );
                h.insert(
                    header::VARY,
                    header::HeaderValue::from_static("Accept-Language"),
                );
                // No scripts, no external resources: the page needs only its inline styles.
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    header::HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                    ),
                );
                a
            }
        };
        let h = answer.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        answer
    }

    /// Routes one request of the ops listener.
    pub fn ops(&self, method: &Method, path: &str) -> Answer {
        miracolix_service::http::ops(method, path, self.metrics.registry())
    }

    /// Serves the API on `api` and the ops endpoints on `ops` until `shutdown` resolves.
    pub async fn serve(
        self,
        api: TcpListener,
        ops: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        miracolix_service::http::serve(self, api, ops, shutdown).await;
    }
}

impl Service for Hub {
    async fn api(&self, req: Request<Incoming>) -> Answer {
        self.handle(req).await
    }

    fn ops(&self, method: &Method, path: &str) -> Answer {
        Hub::ops(self, method, path)
    }
}

enum Accepted {
    New,
    Duplicate,
}

enum Refusal {
    Refused(Refused),
    Store(StoreError),
}

impl From<Refused> for Refusal {
    fn from(r: Refused) -> Self {
        Refusal::Refused(r)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}
