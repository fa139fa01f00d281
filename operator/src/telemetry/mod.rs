//! The probe (`/livez`, `/readyz`) and metrics (`/metrics`) HTTP endpoints.
//!
//! Plain HTTP/1.1 on hyper: the kubelet and Prometheus are the only clients, neither needs TLS
//! inside the pod network, and hyper is compiled for kube's client anyway.

pub mod health;
pub mod metrics;
pub mod requests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use health::{Health, Readiness};
pub use metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Which endpoints one listener answers. The probe and metrics addresses may be the same, and
/// then one listener serves both.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub health: Option<Health>,
    pub metrics: Option<Metrics>,
}

/// Binds before serving, so a taken port fails the start-up instead of leaving the pod without
/// probes (and restarted forever by the kubelet for a reason hidden in a background task).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, TelemetryError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "probe/metrics server cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&endpoints, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "probe/metrics connection ended");
            }
        });
    }
}

/// The answer for one request. Pure apart from reading the shared state.
pub fn respond(endpoints: &Endpoints, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match (path, &endpoints.health, &endpoints.metrics) {
        ("/livez" | "/healthz", Some(_), _) => text(StatusCode::OK, "ok\n"),
        ("/readyz", Some(health), _) => {
            let r = health.readiness();
            let code = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(code, &format!("{}\n", r.message))
        }
        ("/metrics", _, Some(metrics)) => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(code: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bare HTTP/1.1 GET, so the test needs no HTTP client crate.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let code = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (code, body.to_string())
    }

    #[tokio::test]
    async fn probes_follow_health_and_metrics_are_served() {
        let health = Health::new();
        let metrics = Metrics::new();
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Endpoints {
                health: Some(health.clone()),
                metrics: Some(metrics.clone()),
            },
            async {
                let _ = stopped.await;
            },
        ));
        let run = async {
            assert_eq!(get(addr, "/livez").await.0, 200);
            let (code, body) = get(addr, "/readyz").await;
            assert_eq!(code, 503, "{body}");
            health.set_api_reachable();
            assert_eq!(get(addr, "/readyz").await.0, 503, "controllers not started");
            health.set_controllers_started(true);
            assert_eq!(
                get(addr, "/readyz").await,
                (200, "ok: controllers running\n".into())
            );

            metrics.reconciled("DizSite", Duration::from_millis(5), None);
            metrics.site("diz-marburg", "marburg", true, Some("miracolix-2026.1"));
            let (code, body) = get(addr, "/metrics").await;
            assert_eq!(code, 200);
            for want in [
                "miracolix_reconcile_total{kind=\"DizSite\",result=\"ok\"} 1",
                "miracolix_site_ready{namespace=\"diz-marburg\",site=\"marburg\"} 1",
                "miracolix_site_release_info{namespace=\"diz-marburg\",site=\"marburg\",release=\"miracolix-2026.1\"} 1",
            ] {
                assert!(body.contains(want), "missing {want:?} in:\n{body}");
            }
            assert_eq!(get(addr, "/nope").await.0, 404);
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("probe server answers in time");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops")
            .expect("server task");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "listener closed after shutdown"
        );
    }

    #[test]
    fn endpoints_answer_only_what_they_serve() {
        let only_metrics = Endpoints {
            health: None,
            metrics: Some(Metrics::new()),
        };
        assert_eq!(
            respond(&only_metrics, &Method::GET, "/readyz").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&only_metrics, &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let m = respond(&only_metrics, &Method::GET, "/metrics");
        assert_eq!(
            m.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(metrics::CONTENT_TYPE.as_bytes())
        );
    }
}
