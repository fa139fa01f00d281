//! The client for the site's query executor (FLARE): forwards the structured query unchanged and
//! reads the true count. Plain HTTP inside the site's namespace; the NetworkPolicy makes the gate
//! the executor's only feasibility client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// FLARE's media type for structured queries (`QueryController.MEDIA_TYPE_SQ`).
pub const SQ_JSON: &str = "application/sq+json";

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// FLARE answered 400: the query names something it cannot map. The message is FLARE's (about
    /// terms, not patients) and goes back to the caller as 400.
    #[error("{0}")]
    Rejected(String),
    #[error("the executor is unreachable: {0}")]
    Unreachable(String),
    #[error("the executor answered {0}")]
    Status(StatusCode),
    #[error("the executor's answer is not a count")]
    NotACount,
}

#[derive(Clone)]
pub struct Executor {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: std::time::Duration,
}

impl Executor {
    pub fn new(base: &str, timeout: std::time::Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        Self {
            base: base.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// The true count for `query`.
    pub async fn count(&self, query: Bytes) -> Result<u64, ExecutorError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/query/execute", self.base))
            .header(header::CONTENT_TYPE, SQ_JSON)
            .body(Full::new(query))
            .map_err(|e| ExecutorError::Unreachable(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ExecutorError::Unreachable(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ExecutorError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, ExecutorError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                ExecutorError::Unreachable(format!("no answer within {:?}", self.timeout))
            })??;
        if status == StatusCode::BAD_REQUEST {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| "the executor cannot evaluate this query".into());
            return Err(ExecutorError::Rejected(message));
        }
        if !status.is_success() {
            return Err(ExecutorError::Status(status));
        }
        parse_count(&body)
    }
}

/// A bare non-negative integer, as FLARE writes it (and the DSF process parses it: `\d+`).
pub fn parse_count(body: &[u8]) -> Result<u64, ExecutorError> {
    std::str::from_utf8(body)
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(ExecutorError::NotACount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"42").ok(), Some(42));
        assert_eq!(parse_count(b" 7\n").ok(), Some(7));
        for bad in [&b""[..], b"-1", b"4.2", b"{\"count\":1}", b"\xff"] {
            assert!(parse_count(bad).is_err(), "{bad:?}");
        }
    }
}
