//! The inbox's own account of its proposals: `GET /api/v1/summary` on its ops port (8081), which
//! the status mirrors (counts per state, overdue, last decision, failing notifications).
//!
//! Read through [`SummarySource`] in the controller's context, so that tests point it at a stub
//! server (the test API server runs no pods); [`HttpSummary`] is the real one, and its
//! [`Resolver`] is the only part a test replaces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::build::OPS_PORT;

/// What `GET /api/v1/summary` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    #[serde(default)]
    pub overdue: i64,
    #[serde(default)]
    pub last_decision_at: Option<String>,
    #[serde(default)]
    pub notifications: Vec<NotificationSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSummary {
    pub name: String,
    #[serde(default)]
    pub failures: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {1}: {0}")]
    Http(String, String),
    #[error("GET {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: not a summary: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("GET {url}: no answer within {seconds}s")]
    Timeout { url: String, seconds: u64 },
}

/// Reads an inbox's summary.
pub trait SummarySource: Send + Sync {
    fn fetch(
        &self,
        namespace: &str,
        inbox: &str,
    ) -> BoxFuture<'static, Result<Summary, SummaryError>>;
}

/// `host:port` of an inbox's ops port, from its namespace and name.
pub type Resolver = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// The summary over plain HTTP/1.1 (inside the cluster; the NetworkPolicy admits the operator's
/// pods to port 8081 only).
pub struct HttpSummary {
    resolve: Resolver,
    timeout: Duration,
}

/// The cluster address of the inbox's Service: `<inbox>-inbox.<namespace>.svc:8081`.
pub fn in_cluster(namespace: &str, inbox: &str) -> String {
    format!("{inbox}-inbox.{namespace}.svc:{OPS_PORT}")
}

/// At most this much of an answer is read: a summary is a few hundred bytes.
const MAX_BODY: usize = 1 << 20;
pub const PATH: &str = "/api/v1/summary";

impl Default for HttpSummary {
    fn default() -> Self {
        Self::with_resolver(Arc::new(in_cluster))
    }
}

impl HttpSummary {
    pub fn with_resolver(resolve: Resolver) -> Self {
        Self {
            resolve,
            timeout: Duration::from_secs(3),
        }
    }
}

impl SummarySource for HttpSummary {
    fn fetch(
        &self,
        namespace: &str,
        inbox: &str,
    ) -> BoxFuture<'static, Result<Summary, SummaryError>> {
        let addr = (self.resolve)(namespace, inbox);
        let timeout = self.timeout;
        Box::pin(async move {
            let url = format!("http://{addr}{PATH}");
            match tokio::time::timeout(timeout, get(&addr, &url)).await {
                Ok(r) => r,
                Err(_) => Err(SummaryError::Timeout {
                    url,
                    seconds: timeout.as_secs(),
                }),
            }
        })
    }
}

async fn get(addr: &str, url: &str) -> Result<Summary, SummaryError> {
    let http = |e: &dyn std::fmt::Display| SummaryError::Http(e.to_string(), url.to_string());
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| SummaryError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(&e))?;
    let driver = tokio::spawn(conn);
    let request = http::Request::get(PATH)
        .header(http::header::HOST, addr)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| http(&*e))?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(SummaryError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| SummaryError::Decode {
        url: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_json_decodes() {
        let s: Summary = serde_json::from_str(
            r#"{"counts": {"DIZ_CHECK": 1, "UAC_APPROVED": 2}, "overdue": 1,
                "lastDecisionAt": "2026-11-29T10:00:00Z",
                "notifications": [{"name": "uac-mailbox", "failures": 3, "lastError": "550"}]}"#,
        )
        .expect("summary");
        assert_eq!(s.counts["UAC_APPROVED"], 2);
        assert_eq!(s.overdue, 1);
        assert_eq!(s.last_decision_at.as_deref(), Some("2026-11-29T10:00:00Z"));
        assert_eq!(s.notifications[0].failures, 3);
        let empty: Summary = serde_json::from_str(
            r#"{"counts": {}, "overdue": 0, "lastDecisionAt": null, "notifications": []}"#,
        )
        .expect("empty summary");
        assert_eq!(empty, Summary::default());
    }

    /// What the inbox service itself serializes decodes here, field for field.
    #[test]
    fn the_services_summary_decodes() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let service = miracolix_inbox::api::Summary {
            counts: [
                ("DIZ_CHECK".to_string(), 1),
                ("UAC_APPROVED".to_string(), 0),
            ]
            .into(),
            overdue: 2,
            last_decision_at: Some(at),
            notifications: vec![miracolix_inbox::api::ChannelSummary {
                name: "uac-mailbox".into(),
                failures: 3,
                last_error: Some("550".into()),
            }],
            decisions: Default::default(),
        };
        let s: Summary =
            serde_json::from_value(serde_json::to_value(&service).expect("json")).expect("decodes");
        assert_eq!(s.counts["DIZ_CHECK"], 1);
        assert_eq!(s.overdue, 2);
        let back = s
            .last_decision_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        assert_eq!(back.map(|t| t.with_timezone(&chrono::Utc)), Some(at));
        assert_eq!(s.notifications[0].name, "uac-mailbox");
        assert_eq!(s.notifications[0].failures, 3);
        assert_eq!(s.notifications[0].last_error.as_deref(), Some("550"));
    }

    #[test]
    fn the_cluster_address_is_the_service_ops_port() {
        assert_eq!(
            in_cluster("diz-erlangen", "erlangen"),
            "erlangen-inbox.diz-erlangen.svc:8081"
        );
    }
}
