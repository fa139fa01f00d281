//! HTTP: the query listener (FLARE's API) and the ops listener (`/healthz`, `/readyz`,
//! `/metrics`), on hyper like the operator's probe server.

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use miracolix_service::http::{error, json_answer};
use rand_chacha::ChaCha20Rng;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::audit::{AuditLog, Entry};
use crate::auth::{self, AuthError, Authenticator};
use crate::executor::{Executor, ExecutorError};
use crate::mechanism::Rules;
use crate::metrics::Metrics;
use crate::query::{self, MAX_QUERY_BYTES};
use crate::store::{Decision, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    pub rules: Rules,
    pub requests_per_hour: u32,
    /// Sum of ε one requester may spend per UTC day.
    pub daily_epsilon_budget: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

struct Inner {
    store: Store,
    rng: ChaCha20Rng,
    audit: AuditLog,
}

/// One gate. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Gate {
    config: GateConfig,
    auth: Arc<Authenticator>,
    executor: Executor,
    inner: Arc<Mutex<Inner>>,
    metrics: Metrics,
    clock: fn() -> DateTime<Utc>,
}

/// A finished HTTP answer.
type Answer = Response<Full<Bytes>>;

impl Gate {
    /// `rng` is seeded by the caller: from the OS in production (`SeedableRng::from_os_rng`), fixed
    /// in tests.
    pub fn new(
        config: GateConfig,
        auth: Authenticator,
        executor: Executor,
        store: Store,
        audit_path: &Path,
        rng: ChaCha20Rng,
    ) -> Result<Self, StartError> {
        let audit = AuditLog::open(audit_path).map_err(|source| StartError::Audit {
            path: audit_path.display().to_string(),
            source,
        })?;
        Ok(Self {
            config,
            auth: Arc::new(auth),
            executor,
            inner: Arc::new(Mutex::new(Inner { store, rng, audit })),
            metrics: Metrics::default(),
            clock: Utc::now,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Routes one request of the query listener. `peer` is how the connection came in: the plain
    /// listener (bearer tokens) or the mTLS listener with the client certificate the handshake
    /// verified.
    pub async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Answer {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/query/execute") => self.execute(req, peer).await,
            // The DSF process's connection test (FlareWebserviceClientImpl.testConnection).
            // FLARE's real stats describe its cache; the gate reveals nothing about either.
            (&Method::GET, "/cache/stats") => json_answer(StatusCode::OK, &json!({})),
            (_, "/query/execute") => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
            _ => error(
                StatusCode::NOT_FOUND,
                "the gate answers POST /query/execute",
            ),
        }
    }

    async fn execute(&self, req: Request<Incoming>, peer: &Peer) -> Answer {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let authenticated = match peer {
            Peer::Plain => self.auth.authenticate(authorization),
            Peer::Certificate(cert) => self.auth.authenticate_certificate(cert),
        };
        let requester = match authenticated {
            Ok(r) => r,
            Err(e) => {
                let (code, outcome) = match &e {
                    AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                    _ => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                };
                // Audited without a requester: the claimed name goes into `claimed` (a JWT's
                // claim or the certificate's names), never the credential.
                let claimed = match (&e, peer) {
                    (AuthError::Forbidden(name), _) => Some(name.clone()),
                    (_, Peer::Plain) => {
                        auth::claimed_requester(authorization, self.auth.requester_claim())
                    }
                    (_, Peer::Certificate(_)) => None,
                };
                self.record_refused_login(outcome, claimed);
                let mut answer = error(code, &e.to_string());
                if code == StatusCode::UNAUTHORIZED && matches!(peer, Peer::Plain) {
                    answer.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer"),
                    );
                }
                return answer;
            }
        };
        if let Some(ct) = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case(crate::executor::SQ_JSON)
                && !media.eq_ignore_ascii_case("application/json")
            {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the structured query as application/sq+json",
                );
            }
        }
        let body = match Limited::new(req.into_body(), MAX_QUERY_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the structured query exceeds {MAX_QUERY_BYTES} bytes"),
                );
            }
        };
        let query = match query::parse(body) {
            Ok(q) => q,
            Err(e) => {
                self.record(&requester, "bad-query", None, None, 0.0);
                return error(StatusCode::BAD_REQUEST, &e.to_string());
            }
        };
        let now = (self.clock)();
        let admitted = self.lock().store.admit(
            &requester,
            self.config.requests_per_hour,
            now.timestamp_millis(),
        );
        let admitted = match admitted {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the rate window; refusing");
                self.metrics.query(&requester, "state-error");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gate cannot record the query; nothing was released",
                );
            }
        };
        if let Err(wait) = admitted {
            self.record(
                &requester,
                "rate-limited",
                Some(&query.fingerprint),
                None,
                0.0,
            );
            let mut answer = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "rate limit: at most {} queries per hour; retry in {wait} s",
                    self.config.requests_per_hour
                ),
            );
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, wait.into());
            return answer;
        }
        let true_count = match self.executor.count(query.body.clone()).await {
            Ok(c) => c,
            Err(ExecutorError::Rejected(reason)) => {
                self.record(&requester, "bad-query", Some(&query.fingerprint), None, 0.0);
                return error(StatusCode::BAD_REQUEST, &reason);
            }
            Err(e) => {
                tracing::warn!(error = %e, "executor failed");
                self.record(
                    &requester,
                    "executor-error",
                    Some(&query.fingerprint),
                    None,
                    0.0,
                );
                return error(StatusCode::BAD_GATEWAY, &e.to_string());
            }
        };
        let decided = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let decision = inner.store.decide(
                &requester,
                &query.fingerprint,
                true_count,
                &self.config.rules,
                self.config.daily_epsilon_budget,
                &now.format("%Y-%m-%d").to_string(),
                &now.to_rfc3339(),
                &mut inner.rng,
            );
            let entry = |outcome: &str, released: Option<u64>, epsilon: f64| Entry {
                time: now.to_rfc3339(),
                requester: requester.clone(),
                outcome: outcome.into(),
                fingerprint: Some(query.fingerprint.clone()),
                released,
                epsilon,
                claimed: None,
            };
            // The audit line is written before the answer leaves; if it cannot be written the
            // answer is withheld (a release the site cannot see must not happen).
            match decision {
                Ok(Decision::Cached { released }) => inner
                    .audit
                    .append(&entry("cached", Some(released), 0.0))
                    .map(|()| Ok((released, 0.0, "cached"))),
                Ok(Decision::Fresh { released, epsilon }) => inner
                    .audit
                    .append(&entry("released", Some(released), epsilon))
                    .map(|()| Ok((released, epsilon, "released"))),
                Ok(Decision::OverBudget { spent, budget }) => inner
                    .audit
                    .append(&entry("over-budget", None, 0.0))
                    .map(|()| Err((spent, budget))),
                Err(e) => Err(std::io::Error::other(e)),
            }
        };
        match decided {
            Ok(Ok((released, epsilon, outcome))) => {
                self.metrics.query(&requester, outcome);
                if epsilon > 0.0 {
                    self.metrics.spent(&requester, epsilon);
                }
                json_answer(StatusCode::OK, &json!(released))
            }
            Ok(Err((spent, budget))) => {
                self.metrics.query(&requester, "over-budget");
                let tomorrow = (now.date_naive() + chrono::Days::new(1))
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc());
                let wait = tomorrow
                    .map(|t| (t - now).num_seconds().max(1))
                    .unwrap_or(86_400);
                let mut answer = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "privacy budget exhausted: {requester} spent ε {spent} of {budget} today (UTC); repeats of answered queries are still served"
                    ),
                );
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, wait.into());
                answer
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the answer; withholding it");
                self.metrics.query(&requester, "state-error");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gate cannot record the answer; nothing was released",
                )
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent SQLite state (transactions), so the
        // poisoned guard is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A refusal's audit line and metric.
    fn record(
        &self,
        requester: &str,
        outcome: &str,
        fingerprint: Option<&str>,
        released: Option<u64>,
        epsilon: f64,
    ) {
        self.metrics.query(requester, outcome);
        let entry = Entry {
            time: (self.clock)().to_rfc3339(),
            requester: requester.to_string(),
            outcome: outcome.to_string(),
            fingerprint: fingerprint.map(str::to_string),
            released,
            epsilon,
            claimed: None,
        };
        if let Err(e) = self.lock().audit.append(&entry) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// A refused login's audit line and metric (counted without a requester: the name is not
    /// proven).
    fn record_refused_login(&self, outcome: &str, claimed: Option<String>) {
        self.metrics.query("", outcome);
        let entry = Entry {
            time: (self.clock)().to_rfc3339(),
            requester: String::new(),
            outcome: outcome.to_string(),
            fingerprint: None,
            released: None,
            epsilon: 0.0,
            claimed,
        };
        if let Err(e) = self.lock().audit.append(&entry) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// Routes one request of the ops listener.
    pub fn ops(&self, method: &Method, path: &str) -> Answer {
        miracolix_service::http::ops(method, path, self.metrics.registry())
    }

    /// Serves the query API on `api` and the ops endpoints on `ops` until `shutdown` resolves.
    pub async fn serve(
        self,
        api: TcpListener,
        ops: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.serve_with_mtls(api, ops, None, shutdown).await
    }

    /// As [`Gate::serve`], plus the query API over mTLS on `mtls` (direct-broker mode).
    pub async fn serve_with_mtls(
        self,
        api: TcpListener,
        ops: TcpListener,
        mtls: Option<MtlsListener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let accept_mtls = async {
                match &mtls {
                    Some(m) => m.listener.accept().await,
                    None => std::future::pending().await,
                }
            };
            let (stream, kind) = tokio::select! {
                () = &mut shutdown => break,
                a = api.accept() => (a, Listener::Api),
                o = ops.accept() => (o, Listener::Ops),
                m = accept_mtls => (m, Listener::Mtls),
            };
            let stream = match stream {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let gate = self.clone();
            match (kind, &mtls) {
                (Listener::Mtls, Some(m)) => {
                    let acceptor = m.acceptor.clone();
                    tokio::spawn(async move {
                        // A client that never finishes its handshake must not hold a task forever.
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        let tls = match handshake {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                // No certificate, another CA's, an expired one: refused in the
                                // handshake, before any HTTP; counted, not audited (no name).
                                tracing::info!(error = %e, "mTLS handshake refused");
                                gate.metrics.query("", "unauthenticated");
                                return;
                            }
                            Err(_) => return,
                        };
                        let peer = match tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                        {
                            Some(cert) => Peer::Certificate(cert.clone().into_owned()),
                            None => return,
                        };
                        gate.serve_connection(TokioIo::new(tls), Some(Arc::new(peer)))
                            .await;
                    });
                }
                (Listener::Ops, _) => {
                    tokio::spawn(
                        async move { gate.serve_connection(TokioIo::new(stream), None).await },
                    );
                }
                _ => {
                    tokio::spawn(async move {
                        gate.serve_connection(TokioIo::new(stream), Some(Arc::new(Peer::Plain)))
                            .await
                    });
                }
            }
        }
    }

    /// HTTP/1 on one connection: the query API when `peer` is set, the ops endpoints otherwise.
    async fn serve_connection<I>(self, io: TokioIo<I>, peer: Option<Arc<Peer>>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let gate = self;
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let gate = gate.clone();
            let peer = peer.clone();
            async move {
                let answer = match peer {
                    Some(peer) => gate.handle(req, &peer).await,
                    None => gate.ops(req.method(), req.uri().path()),
                };
                Ok::<_, Infallible>(answer)
            }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await
        {
            tracing::debug!(error = %e, "connection ended");
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a query connection came in.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The plain listener, inside the cluster: bearer tokens.
    Plain,
    /// The mTLS listener: the client certificate the handshake verified against the broker CA.
    Certificate(CertificateDer<'static>),
}

/// The direct-broker listener: a TCP listener and the TLS acceptor that requires client
/// certificates (`tls::acceptor`).
pub struct MtlsListener {
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
}

#[derive(Clone, Copy)]
enum Listener {
    Api,
    Ops,
    Mtls,
}
