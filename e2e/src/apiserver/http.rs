//! Transport: the in-process tower service and the hyper HTTP/1 server, plus kubeconfig.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::TestApiServer;
use super::handlers;
use super::status::ApiError;
use super::watch::Body;

impl TestApiServer {
    async fn dispatch(&self, req: Request<Bytes>, host: String) -> Response<Body> {
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let outcome = handlers::handle(self, &req, &host);
        if let Some(r) = outcome.record {
            self.record(r);
        }
        self.start_rollout_timers();
        self.start_controllers();
        outcome.response
    }

    /// Serves over HTTP until the returned handle is dropped or shut down.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<ServerHandle> {
        self.serve_with(addr, None).await
    }

    /// Serves over HTTPS with a fresh self-signed certificate for 127.0.0.1 and localhost
    /// (kubeconfigs written for it skip verification). kubectl sends a kubeconfig's token only
    /// over TLS, so this is how kubectl authenticates ([`super::authn`]).
    pub async fn serve_tls(&self, addr: SocketAddr) -> std::io::Result<ServerHandle> {
        let acceptor = super::tls::acceptor()?;
        self.serve_with(addr, Some(acceptor)).await
    }

    async fn serve_with(
        &self,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let server = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop_rx.changed() => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let server = server.clone();
                let stop = stop_rx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let host = local.to_string();
                    match tls {
                        Some(acceptor) => {
                            // A client that fails the handshake gets no HTTP answer.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(server, TokioIo::new(stream), host, stop).await;
                            }
                        }
                        None => serve_connection(server, TokioIo::new(stream), host, stop).await,
                    }
                });
            }
        });
        Ok(ServerHandle {
            addr: local,
            scheme,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

/// Serves HTTP/1 requests on one connection until it closes or the server stops.
async fn serve_connection<I>(
    server: TestApiServer,
    io: I,
    host: String,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let server = server.clone();
        let host = host.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return Ok::<_, Infallible>(handlers::error_response(&ApiError::bad_request(
                        e.to_string(),
                    )));
                }
            };
            Ok(server
                .dispatch(Request::from_parts(parts, bytes), host)
                .await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = stop.changed() => {}
    }
}

/// A running HTTP server; stops when dropped.
pub struct ServerHandle {
    pub addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Writes a kubeconfig for `server_url`, with a bearer token if given (kubectl sends it only
/// to an `https` server, whose self-signed certificate it is told not to verify).
pub fn write_kubeconfig(path: &Path, server_url: &str, token: Option<&str>) -> std::io::Result<()> {
    let user = match token {
        Some(t) => format!("    token: {}\n", serde_json::Value::String(t.to_string())),
        None => "    {}\n".to_string(),
    };
    let user = if token.is_some() { user } else { String::new() };
    let user_block = if user.is_empty() {
        "- name: miracolix-testapi\n  user: {}\n".to_string()
    } else {
        format!("- name: miracolix-testapi\n  user:\n{user}")
    };
    let insecure = if server_url.starts_with("https://") {
        "    insecure-skip-tls-verify: true\n"
    } else {
        ""
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: miracolix-testapi\n  cluster:\n    server: {server_url}\n{insecure}contexts:\n- name: miracolix-testapi\n  context:\n    cluster: miracolix-testapi\n    user: miracolix-testapi\n    namespace: default\ncurrent-context: miracolix-testapi\nusers:\n{user_block}"
    );
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// The in-process transport for `kube::Client::new`.
#[derive(Clone)]
pub struct ApiService {
    server: TestApiServer,
    user_agent: Option<http::HeaderValue>,
    /// Sent as `Authorization: Bearer` when the client sets none.
    token: Option<http::HeaderValue>,
}

impl ApiService {
    pub(super) fn new(server: TestApiServer) -> Self {
        Self {
            server,
            user_agent: None,
            token: http::HeaderValue::from_str(&format!("Bearer {}", super::authn::ADMIN_TOKEN))
                .ok(),
        }
    }

    /// Authenticates with `token` (`None`: anonymously) instead of as the admin, which is
    /// the default.
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.and_then(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).ok());
        self
    }

    /// Sends this `User-Agent` when the client sets none (`kube::Client::new` does not),
    /// so the request log can tell clients apart.
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = http::HeaderValue::from_str(user_agent).ok();
        self
    }
}

impl tower::Service<Request<kube::client::Body>> for ApiService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let server = self.server.clone();
        let user_agent = self.user_agent.clone();
        let token = self.token.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if let Some(t) = token
                && !parts.headers.contains_key(http::header::AUTHORIZATION)
            {
                parts.headers.insert(http::header::AUTHORIZATION, t);
            }
            if let Some(ua) = user_agent
                && !parts.headers.contains_key(http::header::USER_AGENT)
            {
                parts.headers.insert(http::header::USER_AGENT, ua);
            }
            let bytes = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return Ok(handlers::error_response(&ApiError::bad_request(
                        e.to_string(),
                    )));
                }
            };
            Ok(server
                .dispatch(Request::from_parts(parts, bytes), "in-process".to_string())
                .await)
        })
    }
}
