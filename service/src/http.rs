//! HTTP on hyper: one listener for the service's API and one for the ops endpoints (`/healthz`,
//! `/livez`, `/readyz`, `/metrics`), so a NetworkPolicy can open the API to callers and the ops
//! port to the kubelet and Prometheus only.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;

/// A finished HTTP answer.
pub type Answer = Response<Full<Bytes>>;

/// A service with an API and ops endpoints. Cheap to clone (shared state behind an `Arc`).
pub trait Service: Clone + Send + Sync + 'static {
    /// Answers one request of the API listener.
    fn api(&self, req: Request<Incoming>) -> impl Future<Output = Answer> + Send;
    /// Answers one request of the ops listener.
    fn ops(&self, method: &Method, path: &str) -> Answer;
}

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Opens the API and the ops listener.
pub async fn bind(
    api: std::net::SocketAddr,
    ops: std::net::SocketAddr,
) -> Result<(TcpListener, TcpListener), BindError> {
    let open = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })
    };
    Ok((open(api).await?, open(ops).await?))
}

/// Serves `service`'s API on `api` and its ops endpoints on `ops` until `shutdown` resolves.
pub async fn serve<S: Service>(
    service: S,
    api: TcpListener,
    ops: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, is_api) = tokio::select! {
            () = &mut shutdown => break,
            a = api.accept() => (a, true),
            o = ops.accept() => (o, false),
        };
        let stream = match stream {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let service = service.clone();
                async move {
                    let answer = if is_api {
                        service.api(req).await
                    } else {
                        service.ops(req.method(), req.uri().path())
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// The ops endpoints: liveness and readiness (the process answers, so it is both) and the
/// metrics of `registry` in the Prometheus text format.
pub fn ops(method: &Method, path: &str, registry: &Registry) -> Answer {
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    match path {
        "/healthz" | "/livez" | "/readyz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let mut out = String::new();
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, registry);
            let mut r = Response::new(Full::new(Bytes::from(out)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                ),
            );
            r
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `body` as `application/json`.
pub fn json_answer(code: StatusCode, body: &serde_json::Value) -> Answer {
    bytes_answer(code, "application/json", Bytes::from(body.to_string()))
}

/// An error as `{"error": "…"}` (FLARE's shape, `QueryController.Error`, which every service of
/// the project uses).
pub fn error(code: StatusCode, message: &str) -> Answer {
    json_answer(code, &json!({ "error": message }))
}

/// Plain text without a content type (probes read the status only).
pub fn text(code: StatusCode, body: &str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = code;
    r
}

/// `body` with the given content type.
pub fn bytes_answer(code: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
